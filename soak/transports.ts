/**
 * The message transports the reliability suite drives, behind one small
 * interface: the parent prepares the object, producer and consumer processes
 * open endpoints on it. A transport plugs in by adding an entry to
 * TRANSPORTS.
 *
 * Every message is MESSAGE_SIZE bytes, so byte streams (pipes, FIFOs) stay
 * message-aligned with several writers and readers: each write is one
 * atomic pipe write (at most PIPE_BUF), and each read takes exactly one.
 *
 * Connection-oriented sockets (Unix stream and seqpacket, TCP) have no
 * object that several receivers share: every consumer is a server of its
 * own, which reports the address it listens on when it is ready; producer n
 * connects to consumer n mod consumers, one connection per producer, and
 * the parent's stop markers go one to each consumer, each on a connection
 * of its own. A consumer serves its connections in turn and keeps a stop
 * marker back until every other connection has ended, so that the marker
 * still comes behind all the data. The Unix datagram transport is a shared
 * object like a queue: one bound socket, made by the parent, that every
 * consumer inherits.
 *
 * UDP is not a transport here: it may drop a datagram that finds the
 * receiver's buffer full, so exactly-once does not hold for it by design
 * (docs/reliability.md); the fuzzing and leak sections cover it.
 *
 * The channel (src/channel.ts) is a ring with one producer and one consumer:
 * runs over it have one process of each role at a time (`single`), and a
 * process that takes a role over from a dead one is the next of that role. It
 * is at-least-once across a consumer's death (`redelivers`): a message the
 * dead consumer held as a view, its space not yet given back, comes again to
 * the next consumer, first of all; the ledger accepts exactly that repeat
 * (ledger.ts) and nothing else.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { crc32 } from 'node:zlib';
import {
  Channel, DatagramSocket, Fifo, IpcError, type MessageSocket, type PipeReadEnd, type PipeWriteEnd, PipeReadEnd as ReadEnd, PipeWriteEnd as WriteEnd,
  PosixMessageQueue, type SocketServer, SysvMessageQueue, bind, connect, connectSync, listen, pipe,
} from '../src/index.js';

/** Bytes per message: producer, sequence, send time, payload, CRC32. */
export const MESSAGE_SIZE = 64;

/** The producer field of a stop marker (peer.ts makes them): one per consumer ends a run. */
export const STOP = 0xffffffff;

/** One side of a transport, in a child process. Sync and async forms of each call. */
export interface Endpoint {
  sendSync(message: Uint8Array): void;
  send(message: Uint8Array): Promise<void>;
  /** One whole message. */
  receiveSync(): Uint8Array;
  receive(): Promise<Uint8Array>;
  /**
   * The batched calls, on the transports that have them (the `batch` mode
   * runs there only): how many of `messages` went, and the messages one
   * batched receive took (at most {@link RECEIVE_BATCH}).
   */
  sendMany?(messages: Uint8Array[]): Promise<number>;
  sendManySync?(messages: Uint8Array[]): number;
  receiveMany?(): Promise<Uint8Array[]>;
  receiveManySync?(): Uint8Array[];
  close(): void;
  /** A receiver that is a server: the address its senders connect to (reported in its ready line). */
  listening?: string;
  /** Figures of a receiver that is a server (or of a channel end), for its final report. */
  stats?(): ServerStats | ChannelEndStats;
}

/** What a consumer that is a server saw of its connections. */
export interface ServerStats {
  /** Connections accepted (the parent's stop connection included). */
  connections: number;
  /** Connections that ended inside a frame: the producer died in the middle of a send (ERR_IPC_FRAMING); nothing of it was delivered. */
  cut: number;
}

/** What the parent made, for the children: an address, and descriptors to hand to each role. */
export interface Prepared {
  address: string;
  /** Descriptors a sender and a receiver inherit as fd 3 (pipes, the datagram socket). */
  senderFd?: { readonly fd: number };
  receiverFd?: { readonly fd: number };
  /** Connection-oriented transports: the addresses the consumers listen on, by consumer index, once they are ready. */
  receivers: string[];
  /** The parent's own sending endpoint (for the stop markers). */
  parent: Endpoint;
  /** Removes the object and closes the parent's ends. */
  teardown(): void;
  /** After teardown, with every process of the run gone: what of the run is still there (sockets bound to its names, listeners on its ports). */
  leftovers?(): string[];
}

export interface Transport {
  name: string;
  /**
   * Consumers are servers (see the module comment). Chaos then kills
   * producers only: a killed server takes whatever its connections still
   * held with it, which no ledger can bound, while the point is that a
   * server survives its clients' deaths.
   */
  connected?: boolean;
  /**
   * One producer and one consumer at a time (a single-producer,
   * single-consumer channel): runs use one process of each role, and a
   * replacement takes the dead one's role over.
   */
  single?: boolean;
  /**
   * At-least-once across a consumer's death: the message a killed consumer
   * had taken but not given back may be received again, as the next
   * consumer's first message (peer.ts tells the ledger so).
   */
  redelivers?: boolean;
  /** Its endpoints have the batched calls: runs in the `batch` mode too. */
  batches?: boolean;
  /** In the parent: creates the object. */
  prepare(): Promise<Prepared>;
  /**
   * In a child: opens an endpoint. `address` is the prepared one, or for a
   * producer of a connected transport the address of its consumer; a pipe
   * end or the datagram socket arrives as fd 3. `index`: the child's index
   * among its role.
   */
  open(address: string, role: 'send' | 'receive', index: number): Promise<Endpoint>;
}

/** The address producer `index` sends to: its consumer's, for a connected transport. */
export function senderAddress(prepared: Prepared, index: number): string {
  const n = prepared.receivers.length;
  return n === 0 ? prepared.address : prepared.receivers[index % n]!;
}

const unique = (): string => `ipckit-soak-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

/** A received message, checked to be exactly one message (a torn read says so, in the words chaos.ts counts as torn). */
function exact(chunk: Uint8Array | null): Uint8Array {
  if (chunk === null) throw new Error('the stream ended: every writer closed before the stop marker came');
  if (chunk.length !== MESSAGE_SIZE) throw new Error(`a read returned ${chunk.length} bytes, not one ${MESSAGE_SIZE}-byte message`);
  return chunk;
}

/** The most messages one batched receive takes, and one batched send carries (a pipe's 64-byte messages: 1 KiB, one atomic write). */
export const RECEIVE_BATCH = 16;

const dataOf = (messages: { data: Buffer }[]): Uint8Array[] => messages.map((m) => m.data);

function queueEndpoint(q: PosixMessageQueue | SysvMessageQueue): Endpoint {
  // One priority, one type: the queue is plain first-in first-out.
  const sysv = q instanceof SysvMessageQueue;
  return {
    sendSync: sysv ? (m) => q.sendSync(1, m) : (m) => q.sendSync(m),
    send: sysv ? (m) => q.send(1, m) : (m) => q.send(m),
    receiveSync: () => q.receiveSync().data,
    receive: async () => (await q.receive()).data,
    sendManySync: sysv ? (l) => q.sendManySync(1, l) : (l) => q.sendManySync(l),
    sendMany: sysv ? (l) => q.sendMany(1, l) : (l) => q.sendMany(l),
    receiveManySync: () => dataOf(q.receiveManySync({ max: RECEIVE_BATCH })),
    receiveMany: async () => dataOf(await q.receiveMany({ max: RECEIVE_BATCH })),
    close: () => q.close(),
  };
}

/** The whole messages a scattered read got: each target a message (a read of whole atomic writes is a multiple of one). */
function scattered(n: number | null, targets: Buffer[]): Uint8Array[] {
  if (n === null) throw new Error('the stream ended: every writer closed before the stop marker came');
  if (n % MESSAGE_SIZE !== 0) throw new Error(`a read returned ${n} bytes, not whole ${MESSAGE_SIZE}-byte messages`);
  return targets.slice(0, n / MESSAGE_SIZE);
}

const targets = (): Buffer[] => Array.from({ length: RECEIVE_BATCH }, () => Buffer.allocUnsafe(MESSAGE_SIZE));

function streamEndpoint(read: PipeReadEnd | undefined, write: PipeWriteEnd | undefined, close: () => void): Endpoint {
  return {
    sendSync: (m) => write!.writeSync(m),
    send: (m) => write!.write(m),
    receiveSync: () => exact(read!.readSync({ maxBytes: MESSAGE_SIZE })),
    receive: async () => exact(await read!.read({ maxBytes: MESSAGE_SIZE })),
    // A batch of at most 1 KiB is one atomic gathered write; a scattered read fills a target per message.
    sendManySync: (l) => {
      write!.writevSync(l);
      return l.length;
    },
    sendMany: async (l) => {
      await write!.writev(l);
      return l.length;
    },
    receiveManySync: () => {
      const into = targets();
      return scattered(read!.readvSync(into), into);
    },
    receiveMany: async () => {
      const into = targets();
      return scattered(await read!.readv(into), into);
    },
    close,
  };
}

const posixMq: Transport = {
  name: 'posix-mq',
  batches: true,
  async prepare() {
    const name = `/${unique()}`;
    const q = PosixMessageQueue.create(name, { maxMessages: 10, maxMessageSize: MESSAGE_SIZE });
    return { address: name, receivers: [], parent: queueEndpoint(q), teardown: () => { q.close(); PosixMessageQueue.unlink(name); } };
  },
  async open(address) {
    return queueEndpoint(PosixMessageQueue.open(address));
  },
};

const sysvMq: Transport = {
  name: 'sysv-mq',
  batches: true,
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
      return { address: String(key), receivers: [], parent: queueEndpoint(q), teardown: () => { q.close(); SysvMessageQueue.remove(key); } };
    }
  },
  async open(address) {
    return queueEndpoint(SysvMessageQueue.open(Number(address)));
  },
};

const anonymousPipe: Transport = {
  name: 'pipe',
  batches: true,
  async prepare() {
    const { readEnd, writeEnd } = pipe();
    return {
      address: 'fd 3',
      senderFd: writeEnd,
      receiverFd: readEnd,
      receivers: [],
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
  batches: true,
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
      receivers: [],
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

// ---------------------------------------------------------------------------
// Sockets

/** How long a producer (or the parent) waits for its consumer to take a connection, ms. */
const CONNECT_TIMEOUT = 20_000;

/** Why a connection stopped carrying messages: its sender closed at a message boundary, or died inside one. */
function connectionEnd(err: unknown): 'closed' | 'cut' {
  if (err instanceof IpcError && err.code === 'ERR_IPC_PEER_CLOSED') return 'closed';
  if (err instanceof IpcError && err.code === 'ERR_IPC_FRAMING') return 'cut';
  throw err;
}

/**
 * A consumer that is a server: it serves its connections in turn (one
 * message from each, accepting whatever connections wait first), drops a
 * connection whose sender has gone, and holds a stop marker back until no
 * other connection is left.
 */
class ServerEndpoint implements Endpoint {
  readonly listening: string;
  readonly #server: SocketServer;
  readonly #connections: MessageSocket[] = [];
  readonly #stats: ServerStats = { connections: 0, cut: 0 };
  #turn = 0;
  #stop: Uint8Array | undefined;

  constructor(server: SocketServer) {
    this.#server = server;
    this.listening = server.address;
  }

  stats(): ServerStats {
    return { ...this.#stats };
  }

  sendSync(): void {
    throw new Error('a consumer does not send');
  }

  send(): Promise<void> {
    return Promise.reject(new Error('a consumer does not send'));
  }

  receiveSync(): Uint8Array {
    for (;;) {
      const conn = this.#next();
      if (conn === undefined) {
        if (this.#stop !== undefined) return this.#stop;
        this.#add(this.#server.acceptSync());
        continue;
      }
      let data: Uint8Array;
      try {
        data = conn.receiveSync().data;
      } catch (err) {
        this.#drop(conn, connectionEnd(err));
        continue;
      }
      if (this.#take(conn, data)) return data;
    }
  }

  async receive(): Promise<Uint8Array> {
    for (;;) {
      const conn = this.#next();
      if (conn === undefined) {
        if (this.#stop !== undefined) return this.#stop;
        this.#add(await this.#server.accept());
        continue;
      }
      let data: Uint8Array;
      try {
        data = (await conn.receive()).data;
      } catch (err) {
        this.#drop(conn, connectionEnd(err));
        continue;
      }
      if (this.#take(conn, data)) return data;
    }
  }

  close(): void {
    for (const conn of this.#connections.splice(0)) conn.close();
    // Removes the socket file this server made (Unix path).
    this.#server.close();
  }

  /** Takes the connections waiting to be accepted, then the next connection in turn. */
  #next(): MessageSocket | undefined {
    for (let conn = this.#server.tryAccept(); conn !== undefined; conn = this.#server.tryAccept()) this.#add(conn);
    const n = this.#connections.length;
    return n === 0 ? undefined : this.#connections[this.#turn++ % n];
  }

  #add(conn: MessageSocket): void {
    this.#stats.connections++;
    this.#connections.push(conn);
  }

  #drop(conn: MessageSocket, why: 'closed' | 'cut'): void {
    if (why === 'cut') this.#stats.cut++;
    this.#connections.splice(this.#connections.indexOf(conn), 1);
    conn.close();
  }

  /** Whether `data` is a message for the consumer; a stop marker is kept back (its connection has nothing more). */
  #take(conn: MessageSocket, data: Uint8Array): boolean {
    const message = exact(data);
    if (Buffer.from(message.buffer, message.byteOffset, 4).readUInt32LE(0) !== STOP) return true;
    this.#stop = message;
    this.#drop(conn, 'closed');
    return false;
  }
}

/** A producer's connection. */
function clientEndpoint(conn: MessageSocket): Endpoint {
  return {
    sendSync: (m) => conn.sendSync(m),
    send: (m) => conn.send(m),
    receiveSync: () => exact(conn.receiveSync().data),
    receive: async () => exact((await conn.receive()).data),
    close: () => conn.close(),
  };
}

/** The parent's endpoint of a connected transport: each stop marker goes to the next consumer, on a connection of its own. */
function stopSender(receivers: string[]): Endpoint {
  let next = 0;
  const target = (): string => {
    if (receivers.length === 0) throw new Error('no consumer has reported its address yet');
    return receivers[next++ % receivers.length]!;
  };
  const never = (): never => {
    throw new Error('the parent only sends');
  };
  return {
    sendSync(m) {
      const conn = connectSync(target(), { timeout: CONNECT_TIMEOUT });
      try {
        conn.sendSync(m);
      } finally {
        conn.close();
      }
    },
    async send(m) {
      const conn = await connect(target(), { timeout: CONNECT_TIMEOUT });
      try {
        await conn.send(m);
      } finally {
        conn.close();
      }
    },
    receiveSync: never,
    receive: never,
    close() { /* Every connection is closed after its marker. */ },
  };
}

/** Lines of /proc/net/<file> after the header, as columns ([] where the file does not exist). */
function procNet(file: string): string[][] {
  try {
    return readFileSync(`/proc/net/${file}`, 'utf8').trim().split('\n').slice(1).map((line) => line.trim().split(/\s+/));
  } catch {
    return [];
  }
}

/** Unix sockets bound to a name containing `tag` (their last column is the path, `@` for abstract names). */
function unixSocketsNamed(tag: string): string[] {
  return procNet('unix').filter((row) => row.length >= 8 && row[7]!.includes(tag)).map((row) => `Unix socket ${row[7]}`);
}

/** TCP sockets still listening on `ports` (state 0A), IPv4 or IPv6. */
function tcpListeners(ports: number[]): string[] {
  const wanted = new Set(ports);
  return [...procNet('tcp'), ...procNet('tcp6')]
    .filter((row) => row[3] === '0A' && wanted.has(parseInt(row[1]!.split(':')[1]!, 16)))
    .map((row) => `TCP listener on port ${parseInt(row[1]!.split(':')[1]!, 16)}`);
}

/**
 * A connected socket transport. `address(base, index)` is where consumer
 * `index` listens: under `base`, a name unique to the run (a temporary
 * directory for socket files, an abstract name), or port 0 for TCP.
 */
function connectedTransport(name: string, base: () => { address: string; dir?: string }, address: (base: string, index: number) => string): Transport {
  return {
    name,
    connected: true,
    async prepare() {
      const made = base();
      const receivers: string[] = [];
      const tag = made.dir === undefined ? made.address : basename(made.dir);
      /** Socket files no server removed (each removes its own when it closes). */
      let files: string[] = [];
      return {
        address: made.address,
        receivers,
        parent: stopSender(receivers),
        teardown: () => {
          if (made.dir === undefined || !existsSync(made.dir)) return;
          files = readdirSync(made.dir).map((f) => `socket file ${join(made.dir!, f)}`);
          rmSync(made.dir, { recursive: true, force: true });
        },
        leftovers: () => [
          ...files,
          ...unixSocketsNamed(tag),
          ...tcpListeners(receivers.flatMap((r) => (r.startsWith('tcp://') ? [Number(/:(\d+)$/.exec(r)![1])] : []))),
        ],
      };
    },
    async open(at, role, index) {
      if (role === 'send') return clientEndpoint(await connect(at, { timeout: CONNECT_TIMEOUT }));
      // A frame announcing more than a message is refused before anything is allocated.
      return new ServerEndpoint(listen(address(at, index), { maxMessageSize: MESSAGE_SIZE }));
    },
  };
}

const unixStream = connectedTransport(
  'unix-stream',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipckit-soak-'));
    return { address: dir, dir };
  },
  (dir, index) => `unix:${join(dir, `consumer-${index}.sock`)}`,
);

const unixSeqpacket = connectedTransport(
  'unix-seqpacket',
  () => ({ address: unique() }),
  (name, index) => `unix-seqpacket:@${name}-consumer-${index}`,
);

const tcp = connectedTransport('tcp', () => ({ address: unique() }), () => 'tcp://127.0.0.1:0');

function datagramEndpoint(socket: DatagramSocket, to: string | undefined): Endpoint {
  return {
    sendSync: (m) => socket.sendSync(m, { to: to! }),
    send: (m) => socket.send(m, { to: to! }),
    receiveSync: () => exact(socket.receiveSync().data),
    receive: async () => exact((await socket.receive()).data),
    sendManySync: (l) => socket.sendManySync(l, { to: to! }),
    sendMany: (l) => socket.sendMany(l, { to: to! }),
    receiveManySync: () => socket.receiveManySync({ max: RECEIVE_BATCH }).map((d) => exact(d.data)),
    receiveMany: async () => (await socket.receiveMany({ max: RECEIVE_BATCH })).map((d) => exact(d.data)),
    close: () => socket.close(),
  };
}

/**
 * Unix datagrams: the parent binds the receiving socket (an abstract name)
 * and every consumer inherits it, as a queue; each producer binds a name of
 * its own under the run's and sends to it. A full receiver makes senders
 * wait (Unix datagrams are not dropped).
 */
const unixDatagram: Transport = {
  name: 'unix-dgram',
  batches: true,
  async prepare() {
    const tag = unique();
    const receiver = bind(`unix-dgram:@${tag}`, { maxMessageSize: MESSAGE_SIZE });
    const sender = bind(`unix-dgram:@${tag}-parent`);
    return {
      address: receiver.address,
      receiverFd: receiver,
      receivers: [],
      parent: datagramEndpoint(sender, receiver.address),
      teardown: () => {
        sender.close();
        receiver.close();
      },
      leftovers: () => unixSocketsNamed(tag),
    };
  },
  async open(address, role) {
    if (role === 'receive') return datagramEndpoint(DatagramSocket.fromFd(3, { maxMessageSize: MESSAGE_SIZE }), undefined);
    return datagramEndpoint(bind(`${address}-producer-${process.pid}`), address);
  },
};

// ---------------------------------------------------------------------------
// The shared-memory channel

/** Bytes of the run's ring: small, so that it fills, wraps (with padding records) and makes both sides sleep often. */
export const CHANNEL_RING = 2048;
/** Most filler bytes after a message (see {@link channelEndpoint}). */
const CHANNEL_FILLER_MAX = 200;

/** What a channel end did besides sending and receiving, for its final report. */
export interface ChannelEndStats {
  /** Waits that ended with ERR_IPC_PEER_DEAD (the other side was killed) and were tried again until its replacement came. */
  peerDead: number;
  /** Sends made through a loan (loan, fill, commit), and receives that took a view (its space given back at the next receive). */
  loans: number;
  views: number;
}

/** The filler after a message: its length and bytes follow from the message's CRC, so the receiver can check them. */
function fillerOf(message: Uint8Array): { length: number; byte: (i: number) => number } {
  const crc = Buffer.from(message.buffer, message.byteOffset + MESSAGE_SIZE - 4, 4).readUInt32LE(0);
  return { length: crc % (CHANNEL_FILLER_MAX + 1), byte: (i) => (crc + i * 7) & 0xff };
}

const pauseCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * An end of the channel. Each message goes out with 0 to 200 filler bytes
 * (a length and pattern derived from its CRC), so that records of many
 * sizes wrap the ring at many offsets; the receiver checks the filler and
 * returns the 64 bytes, its CRC spoiled if the filler is wrong (the
 * consumer then counts it corrupt). Every third send goes through a loan
 * (loan, fill, commit) and every other receive takes a view, copied at once
 * by the consumer; the view's space goes back at the next receive (or at
 * close), which is the window of redelivery. A wait that ends with
 * ERR_IPC_PEER_DEAD (the other side was killed) is tried again after a
 * pause until the replacement takes the role over.
 */
function channelEndpoint(ch: Channel): Endpoint & { stats(): ChannelEndStats } {
  const stats: ChannelEndStats = { peerDead: 0, loans: 0, views: 0 };
  let sends = 0;
  let receives = 0;
  const record = (message: Uint8Array): Buffer => {
    const filler = fillerOf(message);
    const out = Buffer.allocUnsafe(MESSAGE_SIZE + filler.length);
    out.set(message.subarray(0, MESSAGE_SIZE));
    for (let i = 0; i < filler.length; i++) out[MESSAGE_SIZE + i] = filler.byte(i);
    return out;
  };
  const checked = (data: Uint8Array): Uint8Array => {
    // Too short to hold a message: zeros, whose checksum is wrong.
    if (data.length < MESSAGE_SIZE) return Buffer.alloc(MESSAGE_SIZE);
    const message = Buffer.from(data.subarray(0, MESSAGE_SIZE));
    const filler = fillerOf(message);
    let whole = data.length === MESSAGE_SIZE + filler.length;
    for (let i = 0; whole && i < filler.length; i++) whole = data[MESSAGE_SIZE + i] === filler.byte(i);
    // A wrong filler is a torn or foreign record: the checksum is spoiled, so the consumer counts it corrupt.
    if (!whole) message.writeUInt32LE((crc32(message.subarray(0, MESSAGE_SIZE - 4)) ^ 1) >>> 0, MESSAGE_SIZE - 4);
    return message;
  };
  const peerDead = (err: unknown): boolean => {
    if (!(err instanceof IpcError) || err.code !== 'ERR_IPC_PEER_DEAD') return false;
    stats.peerDead++;
    return true;
  };
  const retrySync = <R>(call: () => R): R => {
    for (;;) {
      try {
        return call();
      } catch (err) {
        if (!peerDead(err)) throw err;
        Atomics.wait(pauseCell, 0, 0, 10);
      }
    }
  };
  const retry = async <R>(call: () => Promise<R>): Promise<R> => {
    for (;;) {
      try {
        return await call();
      } catch (err) {
        if (!peerDead(err)) throw err;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  };
  const viaLoan = (): boolean => {
    const yes = sends++ % 3 === 2;
    if (yes) stats.loans++;
    return yes;
  };
  const viaView = (): boolean => {
    const yes = receives++ % 2 === 1;
    if (yes) stats.views++;
    return yes;
  };
  return {
    sendSync(m) {
      const bytes = record(m);
      if (viaLoan()) {
        const slot = retrySync(() => ch.loanSync(bytes.length));
        slot.set(bytes);
        ch.commit(slot);
      } else {
        retrySync(() => ch.sendSync(bytes));
      }
    },
    async send(m) {
      const bytes = record(m);
      if (viaLoan()) {
        const slot = await retry(() => ch.loan(bytes.length));
        slot.set(bytes);
        ch.commit(slot);
      } else {
        await retry(() => ch.send(bytes));
      }
    },
    receiveSync: () => (viaView() ? checked(retrySync(() => ch.receiveSync({ view: true })).data) : checked(retrySync(() => ch.receiveSync()).data)),
    receive: async () => (viaView() ? checked((await retry(() => ch.receive({ view: true }))).data) : checked((await retry(() => ch.receive())).data)),
    sendManySync: (l) => retrySync(() => ch.sendManySync(l.map(record))),
    sendMany: (l) => retry(() => ch.sendMany(l.map(record))),
    receiveManySync: () => retrySync(() => ch.receiveManySync({ max: RECEIVE_BATCH })).map((m) => checked(m.data)),
    receiveMany: async () => (await retry(() => ch.receiveMany({ max: RECEIVE_BATCH }))).map((m) => checked(m.data)),
    close: () => ch.close(),
    stats: () => ({ ...stats }),
  };
}

/** The channel with one producer and one consumer, or (`shared`) with shared sides: any number of each, taking turns. */
const channelTransport = (shared: boolean): Transport => ({
  name: shared ? 'channel-shared' : 'channel',
  batches: true,
  single: !shared,
  redelivers: true,
  async prepare() {
    const name = `/${unique()}`;
    const sides = shared ? { producers: 'multi', consumers: 'multi' } as const : {};
    const ch = Channel.create(name, { capacity: CHANNEL_RING, maxMessageSize: MESSAGE_SIZE + CHANNEL_FILLER_MAX, ...sides });
    return {
      address: name,
      receivers: [],
      // The parent sends the stop markers: it takes the producer role once the last producer has closed (or died).
      parent: channelEndpoint(ch),
      teardown: () => {
        ch.close();
        if (existsSync(`/dev/shm${name}`)) Channel.unlink(name);
      },
      leftovers: () => (existsSync(`/dev/shm${name}`) ? [`segment /dev/shm${name}`] : []),
    };
  },
  async open(address) {
    return channelEndpoint(Channel.open(address));
  },
});

export const TRANSPORTS: Transport[] = [
  posixMq, sysvMq, anonymousPipe, fifo, unixStream, unixSeqpacket, unixDatagram, tcp, channelTransport(false), channelTransport(true),
];

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
