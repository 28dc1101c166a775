/**
 * Socket benchmark: round trips of 64-byte messages, one-way throughput of
 * 64 KiB messages, and bursts of 1 to 10,000 messages in flight, over Unix
 * stream, seqpacket and datagram sockets, TCP and UDP on 127.0.0.1; for
 * ipckit's *Sync and async calls, beside C making the same system calls
 * (bench/c/socket.c), Node's `net` with the same 4-byte length framing, and
 * node-ipc over a Unix socket.
 *
 * Small messages (256 bytes, one way) also run batched: ipckit's sendMany
 * of 64 (a gathered sendmsg on a stream, sendmmsg otherwise) and
 * receiveMany (recvmmsg for packets), and a MessageBatch of 64 sent with
 * sendBatch and received with receiveBatch, beside C sending 64 per sendmsg
 * or sendmmsg and receiving packets with recvmmsg.
 *
 * Every measurement is one measuring process that starts its echo (or sink)
 * peer as a child, so both share the placement.
 */
import { spawn as spawnChild } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DatagramSocket, IpcError, MessageBatch, MessageSocket, bind, connect, connectSync, listen } from '../src/index.js';
import type { BenchContext, Measurement, Row } from './harness.js';
import { inRounds, rowsFor } from './harness.js';
import { BATCHED_SCALE, latency, print, throughputBatches, totalRoundTrips } from './stats.js';

export const mechanism = 'socket';

const RUNNER = fileURLToPath(new URL('./runner.js', import.meta.url));
const RTT_SIZE = 64;
const THROUGHPUT_SIZE = 64 * 1024;
/** The largest UDP payload over IPv4: 64 KiB does not fit in one datagram. */
const UDP_THROUGHPUT_SIZE = 65_507;
const BURSTS = [1, 10, 100, 1000, 10_000];
/** An acknowledgement request: a 4-byte batch id. The answer: the id and the count received (8 bytes). */
const CONTROL = 4;
/** Ms a datagram round trip waits for its answer before the request is sent again. */
const RTT_RESEND_MS = 200;
/** Ms a datagram acknowledgement request waits before it is sent again (UDP drops it when the receiver is full). */
const ACK_RESEND_MS = 1;
/** A measuring process that has not finished by then gives up (a lost peer must not hang the harness). */
const WATCHDOG_MS = 120_000;

type Transport = 'unix' | 'unix-seqpacket' | 'unix-dgram' | 'tcp' | 'udp';
type Kind = 'rtt' | 'tput' | 'burst';
/** ipckit's blocking or async calls, Node's net, or node-ipc. */
type Impl = 'sync' | 'async' | 'net' | 'node-ipc' | 'sync batch' | 'async batch' | 'sync packed' | 'async packed';
/** Bytes of a small message, and how many a batched sender hands to one sendMany. */
const SMALL_SIZE = 256;
const SEND_BATCH = 64;

interface Params {
  transport: Transport;
  kind: Kind;
  impl: Impl;
  iterations: number;
  size: number;
  /** The server's socket file (Unix transports). */
  path: string;
}

type Maybe<T> = T | Promise<T>;

/** The measuring side of a connection: whole messages each way. */
interface Link {
  send(data: Buffer): Maybe<void>;
  /**
   * A message (ipckit's, or the bytes Node's net delivered), or a promise of one: ipckit's call's own promise,
   * with no wrapper of the benchmark's between them.
   */
  receive(): Maybe<Buffer | { readonly data: Buffer }>;
  /** Sends many (ipckit's batches): how many went. */
  sendMany?(list: Buffer[]): Maybe<number>;
  /** Sends a packed batch (ipckit's MessageBatch): how many went. */
  sendBatch?(batch: MessageBatch): Maybe<number>;
  /** Datagrams sent again because no answer came in time. */
  readonly resent: number;
  close(): void;
}

const C_KIND: Record<Transport, string> = { unix: 'unix', 'unix-seqpacket': 'seqpacket', 'unix-dgram': 'dgram', tcp: 'tcp', udp: 'udp' };
const LABEL: Record<Transport, string> = { unix: 'unix stream', 'unix-seqpacket': 'unix seqpacket', 'unix-dgram': 'unix dgram', tcp: 'tcp', udp: 'udp' };

/** The datagram servers' maxMessageSize: 64 KiB, which every message of this benchmark fits. */
const DATAGRAM_LIMIT = 64 * 1024;

function isDatagram(t: Transport): boolean {
  return t === 'unix-dgram' || t === 'udp';
}

/** The address a server of `p` listens on or binds (the kernel picks the port). */
function serverAddress(p: Params): string {
  if (p.transport === 'tcp' || p.transport === 'udp') return `${p.transport}://127.0.0.1:0`;
  return `${p.transport}:${p.path}`;
}

/**
 * The tput server's bookkeeping: counts messages, and answers an
 * acknowledgement request with its batch id and the messages counted since
 * the previous batch; a repeated request (its answer was lost) gets the
 * same answer again.
 */
class Sink {
  #count = 0;
  #lastId = -1;
  #lastCount = 0;

  /** The answer to `data`, if it is an acknowledgement request. */
  take(data: Buffer): Buffer | undefined {
    if (data.length !== CONTROL) {
      this.#count++;
      return undefined;
    }
    return this.ask(data.readUInt32BE(0));
  }

  count(): void {
    this.#count++;
  }

  ask(id: number): Buffer {
    if (id !== this.#lastId) {
      this.#lastId = id;
      this.#lastCount = this.#count;
      this.#count = 0;
    }
    const ack = Buffer.allocUnsafe(8);
    ack.writeUInt32BE(id, 0);
    ack.writeUInt32BE(this.#lastCount, 4);
    return ack;
  }
}

/** What the server of `kind` answers to a message: itself (echo), or the sink's acknowledgement. */
function responder(kind: Kind): (data: Buffer) => Buffer | undefined {
  if (kind !== 'tput') return (data) => data;
  const sink = new Sink();
  return (data) => sink.take(data);
}

// ---- ipckit ------------------------------------------------------------------------

function isTimeout(err: unknown): boolean {
  return err instanceof IpcError && err.code === 'ERR_IPC_TIMEOUT';
}

function isPeerClosed(err: unknown): boolean {
  return err instanceof IpcError && err.code === 'ERR_IPC_PEER_CLOSED';
}

/** A connection through ipckit: `send`/`receive` or `sendSync`/`receiveSync`. */
function messageLink(sock: MessageSocket, sync: boolean): Link {
  return sync
    ? {
      send: (d) => sock.sendSync(d), receive: () => sock.receiveSync(), sendMany: (l) => sock.sendManySync(l),
      sendBatch: (b) => sock.sendBatchSync(b), resent: 0, close: () => sock.close(),
    }
    : {
      send: (d) => sock.send(d), receive: () => sock.receive(), sendMany: (l) => sock.sendMany(l),
      sendBatch: (b) => sock.sendBatch(b), resent: 0, close: () => sock.close(),
    };
}

/**
 * Datagrams through ipckit. An answer belongs to the last message sent when
 * its first 4 bytes are the same (a sequence number, or a batch id); other
 * ones are late answers to a message sent again, and are skipped. With
 * `resendMs`, the last message is sent again when no answer came in time.
 */
function datagramLink(sock: DatagramSocket, to: string, sync: boolean, resendMs: number | undefined): Link {
  let last: Buffer = Buffer.alloc(CONTROL);
  const options = { to };
  const timeout = resendMs === undefined ? undefined : { timeout: resendMs };
  const link = {
    resent: 0,
    close: () => sock.close(),
    send: sync
      ? (d: Buffer): void => { last = d; sock.sendSync(d, options); }
      : (d: Buffer): Promise<void> => { last = d; return sock.send(d, options); },
    sendMany: sync ? (l: Buffer[]): number => sock.sendManySync(l, options) : (l: Buffer[]): Promise<number> => sock.sendMany(l, options),
    sendBatch: sync ? (b: MessageBatch): number => sock.sendBatchSync(b, options) : (b: MessageBatch): Promise<number> => sock.sendBatch(b, options),
    receive: sync
      ? (): { data: Buffer } => {
        for (;;) {
          try {
            const got = sock.receiveSync(timeout);
            if (got.data.readUInt32BE(0) === last.readUInt32BE(0)) return got;
          } catch (err) {
            if (!isTimeout(err)) throw err;
            link.resent++;
            sock.sendSync(last, options);
          }
        }
      }
      : async (): Promise<{ data: Buffer }> => {
        for (;;) {
          try {
            const got = await sock.receive(timeout);
            if (got.data.readUInt32BE(0) === last.readUInt32BE(0)) return got;
          } catch (err) {
            if (!isTimeout(err)) throw err;
            link.resent++;
            await sock.send(last, options);
          }
        }
      },
  };
  return link;
}

async function ipckitClient(p: Params, address: string): Promise<Link> {
  const sync = p.impl.startsWith('sync');
  if (!isDatagram(p.transport)) return messageLink(sync ? connectSync(address) : await connect(address), sync);
  const own = p.transport === 'udp' ? 'udp://127.0.0.1:0' : `unix-dgram:${p.path}.client`;
  // A round trip is re-sent after RTT_RESEND_MS, an acknowledgement request over UDP after ACK_RESEND_MS; nothing else is lost.
  const resendMs = p.kind === 'rtt' ? RTT_RESEND_MS : p.transport === 'udp' ? ACK_RESEND_MS : undefined;
  return datagramLink(bind(own), address, sync, resendMs);
}

/** Echoes (or sinks) until the peer closes; datagram servers until they are killed. */
async function ipckitServer(p: Params): Promise<void> {
  const answer = responder(p.kind);
  const sync = p.impl.startsWith('sync');
  const batched = p.impl.endsWith('batch');
  if (isDatagram(p.transport)) {
    // The largest datagram it takes, declared, as the C reference's slots of a known size do: a batch then receives
    // each datagram straight into its room (and receiveMany by recvmmsg), where with the default limit (16 MiB) each
    // Unix datagram is measured first. (UDP's are bounded by the protocol, declared or not.)
    const sock = bind(serverAddress(p), { maxMessageSize: DATAGRAM_LIMIT });
    print({ address: sock.localAddress });
    if (p.impl.endsWith('packed')) {
      // As the stream server's packed loop: only an acknowledgement request (CONTROL bytes) is looked at.
      const batch = new MessageBatch({ bytes: 1 << 20, messages: 4096 });
      const senders: (string | null)[] = [];
      for (;;) {
        if (sync) sock.receiveBatchSync(batch, { senders });
        else await sock.receiveBatch(batch, { senders });
        for (let i = 0; i < batch.count; i++) {
          const reply = answer(batch.lengths[i] === CONTROL ? batch.at(i) : NOT_CONTROL);
          if (reply !== undefined) sock.sendSync(reply, { to: senders[i]! });
        }
      }
    }
    while (batched) {
      for (const { data, from } of sync ? sock.receiveManySync({ max: 1024 }) : await sock.receiveMany({ max: 1024 })) {
        const reply = answer(data);
        if (reply !== undefined) sock.sendSync(reply, { to: from! });
      }
    }
    for (;;) {
      const got = sync ? sock.receiveSync() : sock.receive();
      const { data, from } = got instanceof Promise ? await got : got;
      const reply = answer(data);
      if (reply === undefined) continue;
      const sent = sync ? sock.sendSync(reply, { to: from! }) : sock.send(reply, { to: from! });
      if (sent) await sent;
    }
  }
  const server = listen(serverAddress(p));
  print({ address: server.address });
  const conn = sync ? server.acceptSync() : await server.accept();
  server.close();
  let failure: unknown;
  if (p.impl.endsWith('packed')) {
    // Only an acknowledgement request (CONTROL bytes) needs looking at: the others are counted by their length alone.
    const batch = new MessageBatch({ bytes: 1 << 20, messages: 4096 });
    for (;;) {
      try {
        if (sync) conn.receiveBatchSync(batch);
        else await conn.receiveBatch(batch);
      } catch (err) {
        if (isPeerClosed(err)) break;
        throw err;
      }
      for (let i = 0; i < batch.count; i++) {
        const reply = answer(batch.lengths[i] === CONTROL ? batch.at(i) : NOT_CONTROL);
        if (reply !== undefined) conn.sendSync(reply);
      }
    }
    conn.close();
    return;
  }
  while (batched) {
    let list;
    try {
      list = sync ? conn.receiveManySync({ max: 1024 }) : await conn.receiveMany({ max: 1024 });
    } catch (err) {
      if (isPeerClosed(err)) break;
      throw err;
    }
    for (const { data } of list) {
      const reply = answer(data);
      if (reply !== undefined) conn.sendSync(reply);
    }
  }
  for (;;) {
    if (batched) break;
    let data: Buffer;
    try {
      const got = sync ? conn.receiveSync() : conn.receive();
      data = (got instanceof Promise ? await got : got).data;
    } catch (err) {
      if (isPeerClosed(err)) break;
      throw err;
    }
    const reply = answer(data);
    if (reply === undefined) continue;
    if (sync) {
      conn.sendSync(reply);
      continue;
    }
    // As the net server writes without waiting, so does this one: sends queued behind a waiting one go out
    // together. It waits only once a megabyte waits for the peer (the bound a real server would keep).
    const sent = conn.send(reply);
    if (conn.pendingBytes > 1 << 20) await sent;
    else sent.catch((err: unknown) => { failure ??= err; });
  }
  if (failure !== undefined) throw failure;
  conn.close();
}

// ---- Node's net, with the same framing ---------------------------------------------

/** Splits a byte stream into 4-byte-length-prefixed messages, as a Node program over `net` would. */
class Deframer {
  #chunks: Buffer[] = [];
  #bytes = 0;

  push(chunk: Buffer, onMessage: (data: Buffer) => void): void {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    while (this.#bytes >= 4) {
      let head = this.#chunks[0]!;
      if (head.length < 4) head = this.#flatten();
      const length = head.readUInt32BE(0);
      if (this.#bytes < 4 + length) return;
      if (head.length < 4 + length) head = this.#flatten();
      onMessage(head.subarray(4, 4 + length));
      this.#bytes -= 4 + length;
      if (head.length === 4 + length) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(4 + length);
    }
  }

  #flatten(): Buffer {
    const all = Buffer.concat(this.#chunks, this.#bytes);
    this.#chunks = [all];
    return all;
  }
}

function framed(data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + data.length);
  out.writeUInt32BE(data.length, 0);
  data.copy(out, 4);
  return out;
}

/**
 * Messages arriving by events, handed out in order: at once if one is
 * there, else through a promise.
 */
class Inbox {
  #queue: Buffer[] = [];
  #head = 0;
  #waiter: ((data: Buffer) => void) | undefined;
  #failure: Error | undefined;
  #failed: ((err: Error) => void) | undefined;

  put(data: Buffer): void {
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter(data);
    } else {
      this.#queue.push(data);
    }
  }

  fail(err: Error): void {
    this.#failure = err;
    this.#failed?.(err);
  }

  take(): Maybe<Buffer> {
    if (this.#head < this.#queue.length) {
      const data = this.#queue[this.#head++]!;
      if (this.#head === this.#queue.length) {
        this.#queue = [];
        this.#head = 0;
      }
      return data;
    }
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#waiter = resolve;
      this.#failed = reject;
    });
  }
}

function netTarget(address: string): net.NetConnectOpts {
  const m = /^tcp:\/\/([^:]+):(\d+)$/.exec(address);
  return m ? { host: m[1]!, port: Number(m[2]) } : { path: address };
}

async function netClient(address: string): Promise<Link> {
  const socket = net.connect(netTarget(address));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.setNoDelay(true);
  const inbox = new Inbox();
  const deframer = new Deframer();
  const put = (data: Buffer): void => inbox.put(data);
  socket.on('data', (chunk: Buffer) => deframer.push(chunk, put));
  socket.on('error', (err) => inbox.fail(err));
  socket.on('close', () => inbox.fail(new Error('the server closed the connection')));
  let drained: Promise<void> | undefined;
  return {
    resent: 0,
    close: () => socket.end(),
    receive: () => inbox.take(),
    // Writes at once; a write past the stream's high-water mark waits for 'drain'.
    send: (data) => {
      if (socket.write(framed(data))) return undefined;
      drained ??= new Promise((resolve) => socket.once('drain', () => {
        drained = undefined;
        resolve();
      }));
      return drained;
    },
  };
}

async function netServer(p: Params): Promise<void> {
  const answer = responder(p.kind);
  const server = net.createServer((socket) => {
    server.close();
    socket.setNoDelay(true);
    const deframer = new Deframer();
    socket.on('data', (chunk: Buffer) => deframer.push(chunk, (data) => {
      const reply = answer(data);
      if (reply !== undefined) socket.write(framed(reply));
    }));
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => {
    if (p.transport === 'tcp') server.listen(0, '127.0.0.1', resolve);
    else server.listen(p.path, resolve);
  });
  const where = server.address();
  print({ address: typeof where === 'string' ? where : `tcp://127.0.0.1:${where!.port}` });
}

// ---- node-ipc --------------------------------------------------------------------

/** The part of node-ipc used here (it ships no types). */
interface NodeIpc {
  config: { id: string; silent: boolean; retry: number; maxRetries: number; unlink: boolean };
  serve(path: string, ready: () => void): void;
  server: { start(): void; on(event: string, f: (data: string, socket: unknown) => void): void; emit(socket: unknown, event: string, data: string): void };
  connectTo(id: string, path: string, ready: () => void): void;
  of: Record<string, { on(event: string, f: (data: string) => void): void; emit(event: string, data: string): void }>;
  disconnect(id: string): void;
}

async function loadNodeIpc(): Promise<NodeIpc> {
  const name = 'node-ipc';
  const ipc = ((await import(name)) as { default: NodeIpc }).default;
  ipc.config.silent = true;
  return ipc;
}

/*
 * node-ipc sends JSON text, so messages are strings here: payloads a string
 * of the same length, acknowledgement requests `?id`, answers `!id:count`.
 * Its receiver keeps appending what arrives to one string until a read ends
 * exactly at a message boundary, so a stream of 64 KiB messages makes it
 * copy an ever longer string; the sink therefore answers every payload with
 * `+` and a send waits for it.
 */
async function nodeIpcClient(p: Params): Promise<Link> {
  const ipc = await loadNodeIpc();
  ipc.config.id = 'bench-client';
  ipc.config.maxRetries = 0;
  await new Promise<void>((resolve) => ipc.connectTo('server', p.path, () => ipc.of.server!.on('connect', () => resolve())));
  const server = ipc.of.server!;
  const inbox = new Inbox();
  const received = new Inbox();
  server.on('m', (text) => {
    if (text === '+') received.put(EMPTY);
    else if (text.startsWith('!')) {
      const [id, count] = text.slice(1).split(':').map(Number);
      const ack = Buffer.allocUnsafe(8);
      ack.writeUInt32BE(id!, 0);
      ack.writeUInt32BE(count!, 4);
      inbox.put(ack);
    } else inbox.put(Buffer.from(text, 'latin1'));
  });
  const payload = 'a'.repeat(p.size);
  return {
    resent: 0,
    close: () => ipc.disconnect('server'),
    receive: () => inbox.take(),
    send: (data) => {
      if (data.length === CONTROL) {
        server.emit('m', `?${data.readUInt32BE(0)}`);
        return undefined;
      }
      server.emit('m', payload);
      if (p.kind !== 'tput') return undefined;
      const plus = received.take();
      return plus instanceof Promise ? plus.then(() => undefined) : undefined;
    },
  };
}

const EMPTY = Buffer.alloc(0);

async function nodeIpcServer(p: Params): Promise<void> {
  const ipc = await loadNodeIpc();
  ipc.config.id = 'bench-server';
  const sink = new Sink();
  ipc.serve(p.path, () => {
    ipc.server.on('m', (text, socket) => {
      if (p.kind !== 'tput') {
        ipc.server.emit(socket, 'm', text);
      } else if (text.startsWith('?')) {
        const ack = sink.ask(Number(text.slice(1)));
        ipc.server.emit(socket, 'm', `!${ack.readUInt32BE(0)}:${ack.readUInt32BE(4)}`);
      } else {
        sink.count();
        ipc.server.emit(socket, 'm', '+');
      }
    });
    print({ address: p.path });
  });
  ipc.server.start();
}

// ---- the measuring side --------------------------------------------------------------

/** Starts the peer of `p` and resolves with it and the address it printed. */
async function startServer(p: Params): Promise<{ child: ReturnType<typeof spawnChild>; address: string }> {
  const child = spawnChild(process.execPath, [RUNNER, mechanism, 'server', JSON.stringify(p)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const line = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the ${p.impl} ${p.transport} server exited ${code} before it was ready`)));
  });
  return { child, address: (JSON.parse(line) as { address: string }).address };
}

/**
 * Round trips of `p.size` bytes carrying a sequence number, timed after
 * warm-up ones: `*Sync` calls in a plain loop, async calls awaited.
 */
async function roundTrips(link: Link, p: Params): Promise<Result> {
  const payload = Buffer.alloc(p.size, 0x61);
  const total = totalRoundTrips(p.iterations);
  const samples = new Float64Array(p.iterations);
  for (let i = 0; i < total; i++) {
    payload.writeUInt32BE(i, 0);
    const t0 = process.hrtime.bigint();
    if (p.impl.startsWith('sync')) {
      link.send(payload);
      link.receive();
    } else {
      await link.send(payload);
      await link.receive();
    }
    if (i >= total - p.iterations) samples[i - (total - p.iterations)] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  return latency(samples);
}

/** A message that is not an acknowledgement request, for the sink to count. */
const NOT_CONTROL = Buffer.alloc(0);

/** A packed batch of `n` copies of `payload`. */
function packedOf(payload: Buffer, n: number): MessageBatch {
  const batch = new MessageBatch({ bytes: n * payload.length || 1, messages: n });
  for (let i = 0; i < n; i++) batch.push(payload);
  return batch;
}

/**
 * A warm-up batch, then a timed batch of `iterations` messages, each batch
 * closed by an acknowledgement request. MB/s counts only what the server
 * received: UDP may drop datagrams, which are counted, not waited for.
 */
async function throughput(link: Link, p: Params): Promise<Result> {
  const payload = Buffer.alloc(p.size, 0x61);
  const ask = Buffer.alloc(CONTROL);
  const list = Array.from({ length: SEND_BATCH }, () => payload);
  const packed = p.impl.endsWith('packed') ? packedOf(payload, SEND_BATCH) : undefined;
  const batch = async (n: number, id: number): Promise<number> => {
    for (let i = 0; i < n && packed !== undefined;) {
      const sent = link.sendBatch!(n - i >= SEND_BATCH ? packed : packedOf(payload, n - i));
      i += typeof sent === 'number' ? sent : await sent;
    }
    if (p.impl.endsWith('batch')) {
      for (let i = 0; i < n;) {
        const sent = link.sendMany!(n - i >= SEND_BATCH ? list : list.slice(0, n - i));
        i += typeof sent === 'number' ? sent : await sent;
      }
    }
    for (let i = 0; i < n && !p.impl.endsWith('batch') && packed === undefined; i++) {
      const sent = link.send(payload);
      if (sent) await sent;
    }
    ask.writeUInt32BE(id, 0);
    const sent = link.send(ask);
    if (sent) await sent;
    const got = link.receive();
    const message = got instanceof Promise ? await got : got;
    return (message instanceof Uint8Array ? message : message.data).readUInt32BE(4);
  };
  const [warmup, n] = throughputBatches(p.iterations) as [number, number];
  await batch(warmup, 1);
  const t0 = process.hrtime.bigint();
  const received = await batch(n, 2);
  const us = Number(process.hrtime.bigint() - t0) / 1000;
  if (received !== n && !isDatagram(p.transport)) throw new Error(`the server received ${received} of ${n} messages`);
  return { mb_s: (received * p.size) / us, sent: n, received };
}

/**
 * For each burst size K: one warm-up round, then max(1, iterations / K)
 * rounds of K messages sent without waiting, each echoed, all received.
 * Prints nanoseconds per message for each K.
 */
async function bursts(link: Link, p: Params): Promise<Result> {
  const payload = Buffer.alloc(p.size, 0x61);
  const round = async (k: number): Promise<void> => {
    const sends: Maybe<void>[] = [];
    for (let i = 0; i < k; i++) sends.push(link.send(payload));
    for (let i = 0; i < k; i++) {
      const got = link.receive();
      if (got instanceof Promise) await got;
    }
    await Promise.all(sends);
  };
  const out: Record<string, number> = {};
  for (const k of BURSTS) {
    const rounds = Math.max(1, Math.floor(p.iterations / k));
    await round(k);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) await round(k);
    out[k] = Number(process.hrtime.bigint() - t0) / (rounds * k);
  }
  return { bursts: out };
}

export const roles = {
  async client(p: Params): Promise<void> {
    setTimeout(() => {
      process.stderr.write(`socket ${p.impl} ${p.transport} ${p.kind}: no result after ${WATCHDOG_MS} ms\n`);
      process.exit(3);
    }, WATCHDOG_MS).unref();
    const { child, address } = await startServer(p);
    const link = p.impl === 'net' ? await netClient(address)
      : p.impl === 'node-ipc' ? await nodeIpcClient(p)
        : await ipckitClient(p, address);
    const result = p.kind === 'rtt' ? await roundTrips(link, p) : p.kind === 'tput' ? await throughput(link, p) : await bursts(link, p);
    print(isDatagram(p.transport) ? { ...result, resent: link.resent } : result);
    link.close();
    // Datagram and node-ipc servers serve until they are stopped; the others end with the connection.
    if (isDatagram(p.transport) || p.impl === 'node-ipc') child.kill();
    if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
    process.exit(0);
  },

  async server(p: Params): Promise<void> {
    if (p.impl === 'net') return netServer(p);
    if (p.impl === 'node-ipc') return nodeIpcServer(p);
    await ipckitServer(p);
    process.exit(0);
  },
};

// ---- the harness side ------------------------------------------------------------------

/** The variants measured beside C for each transport. */
const VARIANTS: Record<Transport, Impl[]> = {
  unix: ['sync', 'async', 'net', 'node-ipc'],
  'unix-seqpacket': ['sync', 'async'],
  'unix-dgram': ['sync', 'async'],
  tcp: ['sync', 'async', 'net'],
  udp: ['sync', 'async'],
};

/** Bursts: the reliable transports (UDP drops most of a 10,000-datagram burst), with ipckit's async calls. */
const BURST_VARIANTS: Partial<Record<Transport, Impl[]>> = {
  unix: ['async', 'net'],
  'unix-seqpacket': ['async'],
  'unix-dgram': ['async'],
  tcp: ['async', 'net'],
};

function variantName(impl: Impl | 'C', t: Transport): string {
  if (impl === 'C') return `C ${LABEL[t]}`;
  if (impl === 'net') return `node net ${t}`;
  if (impl === 'node-ipc') return `node-ipc ${t}`;
  return `ipckit ${LABEL[t]} ${impl}`;
}

interface Result extends Measurement {
  sent?: number;
  received?: number;
  resent?: number;
  bursts?: Record<string, number>;
}

/** Rows for one variant; datagram rows carry what was re-sent or lost. */
function rowsOf(ctx: BenchContext, variant: string, m: Result, reference: string | null, ref: Result | null): Row[] {
  const rows = rowsFor(mechanism, variant, ctx.placement, m, reference, ref);
  if (m.sent !== undefined && m.received !== m.sent) {
    process.stderr.write(`  ${variant} (${ctx.placement}): the server received ${m.received} of ${m.sent} datagrams${m.rounds === undefined ? '' : ` in ${m.rounds} rounds`}\n`);
    for (const row of rows) Object.assign(row, { sent: m.sent, received: m.received });
  }
  if (m.resent) for (const row of rows) Object.assign(row, { resent: m.resent });
  return rows;
}

/** Runs a measuring process (it starts its own peer) and returns what it printed. */
async function run(ctx: BenchContext, command: string[]): Promise<Result> {
  return await ctx.runPair(undefined, command) as Result;
}

export async function measure(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-bench-socket-'));
  let serial = 0;
  const params = (transport: Transport, kind: Kind, impl: Impl, iterations: number, size: number): Params =>
    ({ transport, kind, impl, iterations, size, path: path.join(dir, `s${serial++}`) });
  const cRun = (p: Params): Promise<Result> =>
    run(ctx, [ctx.cProgram('socket'), C_KIND[p.transport], p.kind, String(p.iterations), String(p.size), p.path]);
  try {
    for (const kind of ['rtt', 'tput'] as const) {
      for (const transport of Object.keys(VARIANTS) as Transport[]) {
        const iterations = kind === 'rtt' ? ctx.rttIterations : Math.floor(ctx.throughputMessages / 10);
        const size = kind === 'rtt' ? RTT_SIZE : transport === 'udp' ? UDP_THROUGHPUT_SIZE : THROUGHPUT_SIZE;
        const cName = variantName('C', transport);
        const c = await cRun(params(transport, kind, 'sync', iterations, size));
        rows.push(...rowsOf(ctx, cName, c, null, null));
        for (const impl of VARIANTS[transport]) {
          const m = await run(ctx, ctx.nodeRole(mechanism, 'client', params(transport, kind, impl, iterations, size)));
          rows.push(...rowsOf(ctx, variantName(impl, transport), m, cName, c));
        }
      }
    }
    // Small messages, one per call and batched, beside C one per call and C batched: in rounds, the C programs and
    // every variant taking turns (single runs on this shared machine differ by up to 3x).
    for (const transport of ['unix', 'unix-seqpacket', 'unix-dgram', 'udp'] as const) {
      const iterations = ctx.throughputMessages * 4;
      // Batches move 2-10 times as much a second: BATCHED_SCALE times the messages keep their timed part long enough to measure.
      const many = iterations * BATCHED_SCALE;
      const impls = ['sync', 'async', 'sync batch', 'async batch', 'sync packed', 'async packed'] as const;
      const batchedImpl = (impl: typeof impls[number]): boolean => impl !== 'sync' && impl !== 'async';
      const [cOne, cMany, ...ours] = await inRounds(ctx.rounds, [
        () => cRun(params(transport, 'tput', 'sync', iterations, SMALL_SIZE)),
        () => run(ctx, [ctx.cProgram('socket'), C_KIND[transport], 'tputv', String(many), String(SMALL_SIZE), path.join(dir, `s${serial++}`)]),
        ...impls.map((impl) => () => run(ctx, ctx.nodeRole(mechanism, 'client',
          params(transport, 'tput', impl, batchedImpl(impl) ? many : iterations, SMALL_SIZE)))),
      ]) as Result[];
      const cName = `${variantName('C', transport)} 256 B`;
      rows.push(...rowsOf(ctx, cName, cOne!, null, null));
      const cBatched = `${variantName('C', transport)} 256 B batched`;
      rows.push(...rowsOf(ctx, cBatched, cMany!, null, null));
      for (const [i, impl] of impls.entries()) {
        const batched = batchedImpl(impl);
        rows.push(...rowsOf(ctx, `ipckit ${LABEL[transport]} 256 B ${impl}`, ours[i]!, batched ? cBatched : cName, batched ? cMany! : cOne!));
      }
    }
    for (const [transport, impls] of Object.entries(BURST_VARIANTS) as [Transport, Impl[]][]) {
      const cName = variantName('C', transport);
      const c = await cRun(params(transport, 'burst', 'sync', ctx.rttIterations, RTT_SIZE));
      const burstRows = (variant: string, m: Result, reference: string | null): Row[] => BURSTS.flatMap((k) =>
        rowsFor(mechanism, `${variant} burst ${k}`, ctx.placement, { ns_per_op: m.bursts![k]! },
          reference === null ? null : `${reference} burst ${k}`, reference === null ? null : { ns_per_op: c.bursts![k]! }));
      rows.push(...burstRows(cName, c, null));
      for (const impl of impls) {
        const m = await run(ctx, ctx.nodeRole(mechanism, 'client', params(transport, 'burst', impl, ctx.rttIterations, RTT_SIZE)));
        rows.push(...burstRows(variantName(impl, transport), m, cName));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
