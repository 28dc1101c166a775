/**
 * The message transports the reliability suite drives, behind one small
 * interface: the parent creates the object, producer and consumer processes
 * open endpoints on it. Later transports (sockets, the channel) plug in by
 * adding an entry to TRANSPORTS.
 *
 * Every message is MESSAGE_SIZE bytes, so byte streams (pipes, FIFOs) stay
 * message-aligned with several writers and readers: each write is one
 * atomic pipe write (at most PIPE_BUF), and each read takes exactly one.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Fifo, type PipeReadEnd, type PipeWriteEnd, PipeReadEnd as ReadEnd, PipeWriteEnd as WriteEnd, PosixMessageQueue, SysvMessageQueue, pipe,
} from '../src/index.js';

/** Bytes per message: producer, sequence, send time, payload, CRC32. */
export const MESSAGE_SIZE = 64;

/** One side of a transport, in a child process. Sync and async forms of each call. */
export interface Endpoint {
  sendSync(message: Uint8Array): void;
  send(message: Uint8Array): Promise<void>;
  /** One whole message. */
  receiveSync(): Uint8Array;
  receive(): Promise<Uint8Array>;
  close(): void;
}

/** What the parent made, for the children: an address, and descriptors to hand to each role. */
export interface Prepared {
  address: string;
  /** Descriptors a sender and a receiver inherit as fd 3 (pipes). */
  senderFd?: PipeWriteEnd;
  receiverFd?: PipeReadEnd;
  /** The parent's own sending endpoint (for the stop markers). */
  parent: Endpoint;
  /** Removes the object and closes the parent's ends. */
  teardown(): void;
}

export interface Transport {
  name: string;
  /** In the parent: creates the object. */
  prepare(): Promise<Prepared>;
  /** In a child: opens an endpoint (`address` from prepare; a pipe end arrives as fd 3). */
  open(address: string, role: 'send' | 'receive'): Promise<Endpoint>;
}

const unique = (): string => `ipckit-soak-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

function queueEndpoint(q: PosixMessageQueue | SysvMessageQueue): Endpoint {
  // One priority, one type: the queue is plain first-in first-out.
  const sendSync = q instanceof SysvMessageQueue ? (m: Uint8Array) => q.sendSync(1, m) : (m: Uint8Array) => q.sendSync(m);
  const send = q instanceof SysvMessageQueue ? (m: Uint8Array) => q.send(1, m) : (m: Uint8Array) => q.send(m);
  return {
    sendSync,
    send,
    receiveSync: () => q.receiveSync().data,
    receive: async () => (await q.receive()).data,
    close: () => q.close(),
  };
}

function streamEndpoint(read: PipeReadEnd | undefined, write: PipeWriteEnd | undefined, close: () => void): Endpoint {
  const exact = (chunk: Buffer | null): Uint8Array => {
    if (chunk === null) throw new Error('the stream ended: every writer closed before the stop marker came');
    if (chunk.length !== MESSAGE_SIZE) throw new Error(`a read returned ${chunk.length} bytes, not one ${MESSAGE_SIZE}-byte message`);
    return chunk;
  };
  return {
    sendSync: (m) => write!.writeSync(m),
    send: (m) => write!.write(m),
    receiveSync: () => exact(read!.readSync({ maxBytes: MESSAGE_SIZE })),
    receive: async () => exact(await read!.read({ maxBytes: MESSAGE_SIZE })),
    close,
  };
}

const posixMq: Transport = {
  name: 'posix-mq',
  async prepare() {
    const name = `/${unique()}`;
    const q = PosixMessageQueue.create(name, { maxMessages: 10, maxMessageSize: MESSAGE_SIZE });
    return { address: name, parent: queueEndpoint(q), teardown: () => { q.close(); PosixMessageQueue.unlink(name); } };
  },
  async open(address) {
    return queueEndpoint(PosixMessageQueue.open(address));
  },
};

const sysvMq: Transport = {
  name: 'sysv-mq',
  async prepare() {
    for (;;) {
      const key = (0x7e000000 | Math.floor(Math.random() * 0xffffff)) >>> 0;
      let q: SysvMessageQueue;
      try {
        q = SysvMessageQueue.create(key);
      } catch (err) {
        if ((err as { code?: string }).code === 'EEXIST') continue;
        throw err;
      }
      return { address: String(key), parent: queueEndpoint(q), teardown: () => { q.close(); SysvMessageQueue.remove(key); } };
    }
  },
  async open(address) {
    return queueEndpoint(SysvMessageQueue.open(Number(address)));
  },
};

const anonymousPipe: Transport = {
  name: 'pipe',
  async prepare() {
    const { readEnd, writeEnd } = pipe();
    return {
      address: 'fd 3',
      senderFd: writeEnd,
      receiverFd: readEnd,
      parent: streamEndpoint(undefined, writeEnd, () => writeEnd.close()),
      teardown: () => { readEnd.close(); writeEnd.close(); },
    };
  },
  async open(_address, role) {
    if (role === 'send') {
      const end = WriteEnd.fromFd(3);
      return streamEndpoint(undefined, end, () => end.close());
    }
    const end = ReadEnd.fromFd(3);
    return streamEndpoint(end, undefined, () => end.close());
  },
};

const fifo: Transport = {
  name: 'fifo',
  async prepare() {
    const dir = mkdtempSync(join(tmpdir(), 'ipckit-soak-'));
    const path = join(dir, 'fifo');
    Fifo.create(path);
    // The parent holds the FIFO open both ways: readers never see the end of
    // the stream while producers come and go, and writers never wait.
    const keepReader = Fifo.openReadSync(path, { nonBlocking: true });
    const writer = Fifo.openWriteSync(path, { nonBlocking: true });
    return {
      address: path,
      parent: streamEndpoint(undefined, writer, () => writer.close()),
      teardown: () => {
        writer.close();
        keepReader.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  async open(address, role) {
    if (role === 'send') {
      const end = await Fifo.openWrite(address);
      return streamEndpoint(undefined, end, () => end.close());
    }
    // Non-blocking open: no first byte is read ahead to learn that a writer is there.
    const end = await Fifo.openRead(address, { nonBlocking: true });
    return streamEndpoint(end, undefined, () => end.close());
  },
};

export const TRANSPORTS: Transport[] = [posixMq, sysvMq, anonymousPipe, fifo];

/** The transport called `name`. */
export function transportNamed(name: string): Transport {
  const t = TRANSPORTS.find((x) => x.name === name);
  if (t === undefined) throw new Error(`no transport ${name}`);
  return t;
}

/** FIFO directories of this process's runs still in the temporary directory (the stale-object checks). */
export function fifoLeftovers(): string[] {
  return readdirSync(tmpdir()).filter((entry) => entry.startsWith('ipckit-soak-'));
}
