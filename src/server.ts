/**
 * Servers for many connections: the fixes for the blocking server the notes
 * describe, as one API with one connection-handler contract.
 *
 * A blocking call (accept, a read from an empty socket, a write to a full
 * one) stops the process until it completes: while it waits, no other
 * connection is served. `serve(address, handler, { strategy })` runs the
 * same handler five ways:
 *
 * - `'blocking'`: the problem itself. One process, blocking `accept` and
 *   blocking reads, one connection at a time; the others wait in the
 *   listen backlog.
 * - `'fork'`: a dedicated child process per connection, handed its
 *   descriptor; the child may block freely. Node cannot `fork(2)` itself
 *   (its threads and event loop would not survive the copy), so the
 *   faithful reading is a fresh process per connection, started with the
 *   connection as descriptor 3.
 * - `'prefork'`: a fixed pool of child processes started once; the server
 *   accepts and passes each connection to one of them over a Unix socket
 *   (SCM_RIGHTS). Each child serves the connections it holds with
 *   readiness notifications.
 * - `'poll'`: one process, non-blocking sockets visited every `interval` ms.
 * - `'event'`: one process, readiness notifications from a {@link Poller}:
 *   work in proportion to the connections that are ready.
 *
 * The handler is called with each message (or, with `framing: 'bytes'`,
 * each chunk read) and what it returns is written back. Strategies that
 * run it in other processes (`blocking`, `fork`, `prefork`) need it as a
 * module (a path or file URL whose default export, or export `handler`, is
 * the function); `poll` and `event` also take the function itself.
 *
 * @module
 */
import { type ChildProcess, spawn as spawnProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { E, IpcError, systemError } from './errors.js';
import { lazily, native } from './native.js';
import { Poller } from './select.js';
import {
  DEFAULT_FRAME_TIMEOUT, DEFAULT_MAX_MESSAGE_SIZE, type MessageSocket, type PeerCredentials, type SocketKind, type SocketServer, listen, nameOf, socketPair,
} from './socket.js';
import { type Codec, type CodecOption, encodeWith, resolveCodec } from './internal/codec.js';
import { REPLY, REQUEST, envelope, failureEnvelope, openEnvelope } from './internal/envelope.js';
import { FRAME_HEADER, MAX_FRAME } from './internal/framing.js';
import { OwnedFd } from './internal/handle.js';
import { type PollTarget, pollTarget, READABLE, WRITABLE } from './internal/readiness.js';
import { parseSocketAddress } from './internal/socket-address.js';
import { checkInteger, checkMode, checkOptions, invalidArgument, isBytes, notBytes, optionalInteger, realByteLength, viewFrom } from './internal/validate.js';
import { checkSignal } from './internal/wait.js';

const S = lazily(() => native.socketConstants);
const C = lazily(() => native.constants);

/** How a server serves its connections; see the module documentation. */
export type ServerStrategy = 'blocking' | 'poll' | 'event' | 'fork' | 'prefork';

/** Every strategy, in the order the notes present the problem and its fixes. */
export const SERVER_STRATEGIES: readonly ServerStrategy[] = ['blocking', 'fork', 'prefork', 'poll', 'event'];

/**
 * How a connection's bytes become handler calls: `'message'` (default):
 * length-prefixed messages, the framing of {@link connect} and
 * `MessageSocket` (4-byte big-endian length, then the bytes), each reply
 * framed the same way; `'requests'`: those messages carry the requests of
 * `MessageSocket.request()` (the envelope of docs/socket.md), each reply
 * goes back with its request's id, and a handler that throws answers that
 * request with `ERR_IPC_REMOTE` instead of closing the connection;
 * `'bytes'`: each chunk as read, replies written raw (a byte stream: a
 * client's write may arrive in several chunks or merged with the next one).
 */
export type Framing = 'message' | 'requests' | 'bytes';

/** Bytes read at once from a connection. */
const READ_SIZE = 64 * 1024;

/** Replies a client has not read, beyond which its connection is not read either (its requests wait in the kernel). */
const OUTPUT_LIMIT = 1024 * 1024;

/** Connections accepted in a row before other ready connections get a turn. */
const ACCEPT_BATCH = 64;

/** Default of `maxChildren` (fork). */
export const DEFAULT_MAX_CHILDREN = 64;

/** Default of `interval` (poll), in ms. */
export const DEFAULT_POLL_INTERVAL = 10;

/** How long stopped children get to exit after SIGTERM before SIGKILL, in ms. */
const STOP_GRACE = 5000;

/**
 * A fork server refuses a connection rather than start a process when less
 * memory than this is available (MemAvailable): a process per connection
 * would otherwise end in the kernel's out-of-memory killer.
 */
const MIN_AVAILABLE_MEMORY = 512 * 1024 * 1024;

/** One connection, as the handler sees it. */
export interface Connection<T = Buffer> {
  /** The connection's number on this server (from 1; per child process under `fork`). */
  readonly id: number;
  /** The client's address (`tcp://127.0.0.1:50312`), or null for an unnamed Unix client. */
  readonly remoteAddress: string | null;
  /** The client process's pid, uid and gid (Unix sockets, from SO_PEERCRED), or null (TCP). */
  readonly peer: Omit<PeerCredentials, 'pidfd'> | null;
  /** Whether the connection is closed (the client left, or `end()` took effect). */
  readonly closed: boolean;
  /**
   * Sends a message (framed like a reply) besides or instead of the reply,
   * through the codec if there is one. Under the event, poll and prefork
   * strategies it is queued if the client does not read yet; under
   * blocking and fork it is written at once.
   */
  write(data: T | Uint8Array | string): void;
  /** Closes the connection once what was written (and the current reply) has been sent. */
  end(): void;
}

/** What a handler returns: written back to the client (nothing for null or undefined). */
export type Reply<T = Buffer> = T | Uint8Array | string | null | undefined | void;

/**
 * Called once per message (framing `'message'` or `'requests'`, decoded by
 * the codec if one is set) or per chunk read (framing `'bytes'`). Calls for
 * one connection never overlap: the next waits until a returned promise
 * settles. A handler that throws or rejects closes that connection only
 * (with framing `'requests'` it answers that request with the failure).
 */
export type ConnectionHandler<T = Buffer> = (data: T, connection: Connection<T>) => Reply<T> | Promise<Reply<T>>;

/** Options of {@link serve}. */
export interface ServerOptions<T = Buffer> {
  /** Default `'event'`. */
  strategy?: ServerStrategy;
  /** Default `'message'`. */
  framing?: Framing;
  /** `'json'` or `'msgpack'` (a custom codec only where the handler runs in this process: poll, event). Not with framing `'bytes'`. */
  codec?: CodecOption<T> | undefined;
  /** Largest message a client may announce; a larger one closes its connection before anything is allocated. Default 16 MiB. */
  maxMessageSize?: number;
  /**
   * ms a client may take to send a message whole once it has begun it;
   * a connection that takes longer is closed (a slow or stuck client would
   * otherwise hold its descriptor for ever). `Infinity`: no limit. Default
   * 30 s, as a `MessageSocket`'s. Framing `'message'` only.
   */
  frameTimeout?: number;
  /** ms a connection may send nothing before it is closed (not while its handler call is pending). Default `Infinity`. */
  idleTimeout?: number;
  /** `poll`: ms between visits to every connection. Default 10. */
  interval?: number;
  /** `fork`: most children at once; further connections wait in the listen backlog. Default 64. */
  maxChildren?: number;
  /** `prefork`: children in the pool. Default: the CPUs this process may use. */
  workers?: number;
  /** Mode of a Unix socket file. Default 0o600. */
  mode?: number;
  /** Listen backlog. Default 511 (the kernel caps it at net.core.somaxconn). */
  backlog?: number;
  /** Closes the server when aborted. */
  signal?: AbortSignal;
}

/** Counters of a {@link Server}. */
export interface ServerStats {
  /** The strategy the server runs. */
  strategy: ServerStrategy;
  /** Connections this process accepted so far (under 'blocking' its child accepts: 0 here). */
  accepted: number;
  /** Connections open now in this process (poll, event), or children serving (fork), or 0. */
  open: number;
  /** Messages (or chunks) handled in this process (poll, event). */
  messages: number;
  /** Handler failures in this process (each closed its connection). */
  handlerErrors: number;
  /** Connections closed at once for lack of descriptors, processes or memory. */
  refused: number;
  /** Child processes running (blocking, fork, prefork). */
  children: number;
  /** The last limit that refused or delayed a connection, if any. */
  limit: string | null;
  /** Connections closed by frameTimeout or idleTimeout in this process (poll, event). */
  timedOut: number;
}


/** Settings every strategy's connection loop needs, also handed to child processes. */
interface LoopSettings {
  framing: Framing;
  codec: 'json' | 'msgpack' | undefined;
  maxMessageSize: number;
  /** ms a started message may take to arrive whole; null: no limit (JSON has no Infinity). */
  frameTimeout: number | null;
  /** ms a connection may send nothing; null: no limit. */
  idleTimeout: number | null;
}

/** A handler given as a module: its URL. */
function moduleUrl(source: string | URL): string {
  if (source instanceof URL) {
    if (source.protocol !== 'file:') throw invalidArgument('handler', source.href, 'a file: URL, a path, or a function');
    return source.href;
  }
  if (source.startsWith('file:')) return new URL(source).href;
  if (/^[a-z][a-z0-9+.-]*:/i.test(source)) throw invalidArgument('handler', source, 'a path, a file: URL or a package name (other URL schemes cannot be loaded)');
  if (source.startsWith('.') || path.isAbsolute(source)) return pathToFileURL(path.resolve(source)).href;
  // A package name: resolved from the working directory, as the user's own code would.
  try {
    return pathToFileURL(createRequire(path.join(process.cwd(), 'index.js')).resolve(source)).href;
  } catch (err) {
    throw new IpcError('ERR_IPC_INVALID_ARGUMENT', `The handler module "${source}" was not found from ${process.cwd()}: ` +
      'give a path ("./handler.js"), a file: URL, or an installed package name.', { cause: err });
  }
}

/** Imports a handler module and takes its function (the default export, or `handler`). */
export async function loadHandler<T>(url: string): Promise<ConnectionHandler<T>> {
  let loaded: Record<string, unknown>;
  try {
    loaded = await import(url) as Record<string, unknown>;
  } catch (err) {
    throw new IpcError('ERR_IPC_INVALID_ARGUMENT', `The handler module ${url} could not be loaded: ${(err as Error)?.message ?? err}`, { cause: err });
  }
  const fn = typeof loaded.default === 'function' ? loaded.default : loaded.handler;
  if (typeof fn !== 'function') {
    throw new IpcError('ERR_IPC_INVALID_ARGUMENT', `The handler module ${url} exports no function: ` +
      'export default (data, connection) => reply, or export function handler(data, connection).');
  }
  return fn as ConnectionHandler<T>;
}

/** A reply as bytes (strings as UTF-8), through the codec when there is one; null for nothing. */
function replyBytes<T>(reply: unknown, codec: Codec<T> | undefined): Uint8Array | null {
  if (reply === null || reply === undefined) return null;
  // With a codec every value goes through it (a string too: the client decodes with the same codec).
  if (codec !== undefined) return encodeWith(codec, reply as T, 'a reply');
  if (typeof reply === 'string') return Buffer.from(reply, 'utf8');
  if (isBytes(reply)) return reply;
  if (reply instanceof Uint8Array) throw notBytes("A handler's reply", reply, 'a Uint8Array');
  throw new IpcError('ERR_IPC_INVALID_ARGUMENT', `A handler returned ${typeof reply}: return a Uint8Array, a string, ` +
    'or nothing (or set a codec to return other values).');
}

/** connection.write() under framing 'requests', where the client takes only replies to its requests. */
function writeAmongRequests(): IpcError {
  return new IpcError('ERR_IPC_INVALID_ARGUMENT', "connection.write() has no place with framing 'requests': the client " +
    'takes only the reply to each of its requests. Return the reply from the handler.');
}

/** What connection.write() sends: like a reply, but there must be something. */
function writable<T>(data: unknown, codec: Codec<T> | undefined): Uint8Array {
  const bytes = replyBytes(data, codec);
  if (bytes === null) throw invalidArgument('data', data, 'a Uint8Array or a string (or, with a codec, a value to encode)');
  return bytes;
}

const NO_BYTES = new Uint8Array(0);

/** `bytes` with its length prefix (message framing) or as they are. */
function framed(bytes: Uint8Array, framing: Framing): Uint8Array {
  // As they are, in a view of the handler's memory whose length is the built-in one: the writes that follow size
  // themselves by it (see isBytes).
  if (framing === 'bytes') return realByteLength(bytes) === 0 ? NO_BYTES : viewFrom(bytes, 0);
  // (The size from the memory: a `length` of the handler's could tell the header one thing and the copy another.)
  const size = realByteLength(bytes);
  if (size > MAX_FRAME) {
    throw new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `A ${size}-byte reply exceeds the framing limit of ${MAX_FRAME} bytes.`);
  }
  const out = Buffer.allocUnsafe(FRAME_HEADER + size);
  out.writeUInt32BE(size, 0);
  out.set(bytes, FRAME_HEADER);
  return out;
}

/** The smallest buffer a partial message starts in. */
const MIN_PARTIAL = 256;

/**
 * Splits what a connection delivers into handler inputs: whole messages
 * (framing 'message', the announced length bounded before anything is
 * allocated) or chunks as they are. A partial message is kept in one
 * buffer that at most doubles as bytes arrive, so a client sending a byte
 * at a time costs at most twice what it sent, and an idle connection
 * holds nothing.
 */
class Splitter {
  #partial: Buffer | undefined;
  #length = 0;

  constructor(private readonly settings: LoopSettings, private readonly label: string) {}

  /** The complete inputs in `chunk` (and what came before it). Throws on a length prefix over maxMessageSize. */
  feed(chunk: Buffer): Buffer[] {
    if (this.settings.framing === 'bytes') return [chunk];
    // Messages cut from a chunk of their own can share its memory; from the reused partial buffer they are copied.
    const own = this.#length === 0;
    const data = own ? chunk : this.#append(chunk);
    const out: Buffer[] = [];
    let at = 0;
    while (data.length - at >= FRAME_HEADER) {
      const length = data.readUInt32BE(at);
      if (length > this.settings.maxMessageSize) {
        throw new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `A message on ${this.label} announces ${length} bytes, more than maxMessageSize ` +
          `${this.settings.maxMessageSize}: nothing was allocated and the connection is closed.`, { address: this.label });
      }
      if (data.length - at - FRAME_HEADER < length) break;
      const message = data.subarray(at + FRAME_HEADER, at + FRAME_HEADER + length);
      out.push(own ? message : Buffer.from(message));
      at += FRAME_HEADER + length;
    }
    this.#keep(data, at);
    return out;
  }

  /** Whether part of a message is held (the stream would end inside it). */
  get inMessage(): boolean {
    return this.#length > 0;
  }

  /** The partial message with `chunk` after it. */
  #append(chunk: Buffer): Buffer {
    const needed = this.#length + chunk.length;
    let buffer = this.#partial!;
    if (buffer.length < needed) {
      const grown = Buffer.allocUnsafe(Math.max(needed, buffer.length * 2));
      buffer.copy(grown, 0, 0, this.#length);
      buffer = grown;
      this.#partial = grown;
    }
    chunk.copy(buffer, this.#length);
    this.#length = needed;
    return buffer.subarray(0, needed);
  }

  /** Keeps data[at..] as the partial message. */
  #keep(data: Buffer, at: number): void {
    const rest = data.length - at;
    if (rest === 0) {
      this.#partial = undefined;
      this.#length = 0;
      return;
    }
    if (this.#partial === undefined || this.#partial.length > 4 * Math.max(rest, MIN_PARTIAL)) {
      // A fresh buffer: the first partial message, or one much larger than what is left.
      const buffer = Buffer.allocUnsafe(Math.max(rest, MIN_PARTIAL));
      data.copy(buffer, 0, at);
      this.#partial = buffer;
    } else if (at > 0) {
      this.#partial.copyWithin(0, at, data.length);
    }
    this.#length = rest;
  }
}

/** A timeout option in ms, 1 to 2^31 − 1, or Infinity; null stands for Infinity (the form children receive in JSON). */
function timeoutOption(value: unknown, name: string, fallback: number): number | null {
  if (value === undefined) return fallback === Infinity ? null : fallback;
  if (value === Infinity) return null;
  return checkInteger(value, name, 1, 2 ** 31 - 1);
}

/** The peer of a Unix connection, from SO_PEERCRED; null for TCP or on failure. */
function peerOf(fd: number, kind: SocketKind): Omit<PeerCredentials, 'pidfd'> | null {
  if (kind === 'tcp') return null;
  const out = new Int32Array(3);
  if (native.peerCredentials(fd, out) < 0) return null;
  return { pid: out[0]!, uid: out[1]!, gid: out[2]! };
}

function kindOfListener(address: string): SocketKind {
  const parsed = parseSocketAddress(address);
  if (parsed.family === 'unix' && parsed.type === 'stream') return 'unix';
  if (parsed.family === 'inet' && parsed.protocol === 'tcp') return 'tcp';
  throw new IpcError('ERR_IPC_INVALID_ADDRESS', `${parsed.text}: a server serves connections over a stream socket: ` +
    'give a unix:/path, unix:@name or tcp://host:port address.', { address: parsed.text });
}

/** Calls the handler on one input and hands over its reply; failures close the connection. */
interface Invoker {
  handler: ConnectionHandler<unknown>;
  codec: Codec<unknown> | undefined;
  failed(connection: Connection<unknown>, err: unknown): void;
}

/**
 * Framing 'requests': calls the handler on one request and makes the reply
 * envelope its client matches by id: the reply, or the failure the handler
 * threw (or that decoding the request or encoding the reply met). A promise
 * when the handler returns one. Throws only for a message that is no
 * request, after which the connection cannot be trusted.
 */
function answerRequest(input: Buffer, invoker: { handler: ConnectionHandler<unknown>; codec: Codec<unknown> | undefined },
  connection: Connection<unknown>, label: string): Uint8Array | Promise<Uint8Array> {
  const request = openEnvelope(input);
  if (request === undefined || request.kind !== REQUEST) {
    throw new IpcError('ERR_IPC_FRAMING', `A ${input.length}-byte message on ${label} is no request (framing 'requests' takes ` +
      'the envelope of MessageSocket.request(): kind 1, a 4-byte id, the body); the connection is closed.', { address: label });
  }
  const { id } = request;
  const answer = (reply: unknown): Uint8Array => {
    try {
      const bytes = invoker.codec !== undefined ? encodeWith(invoker.codec, reply, 'a reply') : replyBytes(reply, undefined) ?? EMPTY;
      return envelope(REPLY, id, bytes);
    } catch (err) {
      return failureEnvelope(id, err);
    }
  };
  let result: unknown;
  try {
    result = invoker.handler(decodeInput(request.body, invoker.codec, label), connection);
  } catch (err) {
    return failureEnvelope(id, err);
  }
  if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
    return Promise.resolve(result).then(answer, (err: unknown) => failureEnvelope(id, err));
  }
  return answer(result);
}

const EMPTY = Buffer.alloc(0);

function decodeInput(input: Buffer, codec: Codec<unknown> | undefined, label: string): unknown {
  if (codec === undefined) return input;
  try {
    return codec.decode(input);
  } catch (err) {
    throw new IpcError('ERR_IPC_CODEC', `A ${input.length}-byte message on ${label} could not be decoded: ${(err as Error)?.message ?? err}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------
// The readiness engine: many non-blocking connections in one process (event,
// poll, and each prefork child).

/** A connection of the readiness engine. Lean: 10,000 of them must cost less than Node's own sockets. */
class ReadyConnection implements Connection<unknown> {
  closed = false;
  /** Replies the client has not taken yet. */
  output: Uint8Array[] | undefined;
  outputBytes = 0;
  /** The client has finished sending (or the reading failed). */
  ended = false;
  /** end() was called. */
  ending = false;
  /** Bytes of inputs waiting for a handler call in progress to settle. */
  waitingBytes = 0;
  /** The handler call in progress, when it returned a promise (later inputs wait for it). */
  tail: Promise<void> | undefined;
  /** When the client last sent something, and when the message it is in the middle of started (ms, performance.now()). */
  lastInput = performance.now();
  messageStarted = 0;
  readonly splitter: Splitter;
  readonly #owned: OwnedFd;

  constructor(readonly table: ConnectionTable, readonly fd: number, readonly id: number) {
    this.#owned = new OwnedFd(fd, true);
    this.splitter = new Splitter(table.settings, table.label);
  }

  get remoteAddress(): string | null {
    return this.closed ? null : nameOf(this.fd, this.table.kind, true);
  }

  get peer(): Omit<PeerCredentials, 'pidfd'> | null {
    return this.closed ? null : peerOf(this.fd, this.table.kind);
  }

  /**
   * Whether to read more from the client: not once it ended or end() was
   * called, nor while more than OUTPUT_LIMIT of replies wait for it to read
   * them, or of its requests wait for a slow handler (its further requests
   * then wait in the kernel, and its writes block: memory stays bounded).
   */
  get wantsInput(): boolean {
    return !this.ended && !this.ending && this.outputBytes <= OUTPUT_LIMIT && this.waitingBytes <= OUTPUT_LIMIT;
  }

  write(data: unknown): void {
    if (this.closed) throw new IpcError('ERR_IPC_CLOSED', `Connection ${this.id} of ${this.table.label} is closed: the client left or end() was called.`);
    if (this.table.settings.framing === 'requests') throw writeAmongRequests();
    this.table.send(this, writable(data, this.table.invoker.codec));
  }

  end(): void {
    if (this.ending) return;
    this.ending = true;
    // Inside the handler, its reply still goes first: look again after it.
    queueMicrotask(() => {
      this.table.changed(this);
      this.table.settle(this);
    });
  }

  [pollTarget](): PollTarget {
    return { fd: this.fd, readable: READABLE, writable: WRITABLE };
  }

  release(): void {
    this.#owned.close();
  }
}

/** What the strategy does when a connection's interests change. */
interface TableHooks {
  /** The connection now wants (or no longer wants) to read and to write. */
  interest(connection: ReadyConnection): void;
  /** The connection is closed and gone from the table. */
  closed(connection: ReadyConnection): void;
}

/** The connections of one readiness engine, and their reading, handling and writing. */
class ConnectionTable {
  readonly connections = new Set<ReadyConnection>();
  #nextId = 1;
  readonly #buffer = Buffer.allocUnsafe(READ_SIZE);
  readonly #fdsOut = new Int32Array(S.SCM_MAX_FD);
  readonly #meta = new Int32Array(3);
  messages = 0;
  handlerErrors = 0;

  constructor(readonly settings: LoopSettings, readonly invoker: Invoker, readonly kind: SocketKind, readonly label: string,
    private readonly hooks: TableHooks) {}

  add(fd: number): ReadyConnection {
    const connection = new ReadyConnection(this, fd, this.#nextId++);
    this.connections.add(connection);
    this.#startSweeping();
    return connection;
  }

  /** Connections closed by frameTimeout or idleTimeout. */
  timedOut = 0;
  #sweeper: NodeJS.Timeout | undefined;

  /**
   * Closes, once in a while, the connections that broke frameTimeout (a
   * message started and not finished: a slow or stuck client holding its
   * descriptor) or idleTimeout. One timer for the table, not one per connection.
   */
  #startSweeping(): void {
    const { frameTimeout, idleTimeout } = this.settings;
    if (this.#sweeper !== undefined || (frameTimeout === null && idleTimeout === null)) return;
    const every = Math.min(5000, Math.max(10, Math.min(frameTimeout ?? Infinity, idleTimeout ?? Infinity) / 4));
    this.#sweeper = setInterval(() => this.#sweep(), every);
    this.#sweeper.unref();
  }

  #sweep(): void {
    const now = performance.now();
    const { frameTimeout, idleTimeout } = this.settings;
    for (const connection of this.connections) {
      const stuck = frameTimeout !== null && connection.splitter.inMessage && now - connection.messageStarted > frameTimeout;
      const idle = idleTimeout !== null && connection.tail === undefined && now - connection.lastInput > idleTimeout;
      if (stuck || idle) {
        this.timedOut++;
        this.close(connection);
      }
    }
    if (this.connections.size === 0) this.#stopSweeping();
  }

  #stopSweeping(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  /** Reads what is there (a bounded number of reads, so one client cannot starve the others) and handles it. */
  readable(connection: ReadyConnection): void {
    for (let round = 0; round < 4 && !connection.closed && connection.wantsInput; round++) {
      const n = native.recvMsg(connection.fd, this.#buffer, 0, READ_SIZE, this.#fdsOut, null, this.#meta, 0, 0);
      // Descriptors a client sent along are not for us: close them.
      for (let i = 0; i < (n >= 0 ? this.#meta[1]! : 0); i++) native.close(this.#fdsOut[i]!);
      if (n === E.EAGAIN) return;
      if (n === E.EINTR) continue;
      if (n <= 0) {
        // The end, or a reset: nothing more will come.
        connection.ended = true;
        // A reset, or a client gone both ways (POLLHUP: not a mere shutdown of its sending side), takes no more
        // replies: close now, even with a handler call still pending (its result is dropped).
        if (n < 0 || connection.splitter.inMessage || (native.pollFd(connection.fd, 0, 0) & C.POLLHUP) !== 0) {
          this.close(connection);
          return;
        }
        this.hooks.interest(connection);
        this.settle(connection);
        return;
      }
      const chunk = Buffer.allocUnsafe(n);
      this.#buffer.copy(chunk, 0, 0, n);
      const wasInMessage = connection.splitter.inMessage;
      connection.lastInput = performance.now();
      let inputs: Buffer[];
      try {
        inputs = connection.splitter.feed(chunk);
      } catch {
        // A length prefix over maxMessageSize: the stream cannot be resynchronised.
        this.close(connection);
        return;
      }
      // A message begun in this chunk (after any it completed) starts its frameTimeout now.
      if (connection.splitter.inMessage && (!wasInMessage || inputs.length > 0)) connection.messageStarted = connection.lastInput;
      for (const input of inputs) this.#dispatch(connection, input);
      if (n < READ_SIZE) return;
    }
  }

  /** Writes what is queued; true when nothing is left. */
  writable(connection: ReadyConnection): void {
    const output = connection.output;
    while (output !== undefined && output.length > 0) {
      const head = output[0]!;
      const n = native.sendMsg(connection.fd, head, 0, head.length, null, null, 0);
      if (n === E.EAGAIN) return;
      if (n < 0) {
        // The client is gone (EPIPE, ECONNRESET): nothing more can reach it.
        this.close(connection);
        return;
      }
      connection.outputBytes -= n;
      if (n < head.length) output[0] = head.subarray(n);
      else output.shift();
    }
    connection.output = undefined;
    this.hooks.interest(connection);
    this.settle(connection);
  }

  /** Queues or writes a reply. */
  send(connection: ReadyConnection, bytes: Uint8Array): void {
    const data = framed(bytes, this.settings.framing);
    if (connection.output === undefined) {
      const n = native.sendMsg(connection.fd, data, 0, data.length, null, null, 0);
      if (n === data.length) return;
      if (n < 0 && n !== E.EAGAIN) {
        this.close(connection);
        return;
      }
      connection.output = [n > 0 ? viewFrom(data, n) : data];
      connection.outputBytes = data.length - Math.max(n, 0);
    } else {
      connection.output.push(data);
      connection.outputBytes += data.length;
    }
    this.hooks.interest(connection);
  }

  /** Closes a connection that is done: ended or ending, nothing queued, no handler call in progress. */
  settle(connection: ReadyConnection): void {
    // Replies still queued go out first (after the client's end too: it may only have shut down its sending side).
    if (connection.closed || !(connection.ended || connection.ending) || connection.tail !== undefined || connection.output !== undefined) return;
    this.close(connection);
  }

  /** What the connection waits for changed. */
  changed(connection: ReadyConnection): void {
    if (!connection.closed) this.hooks.interest(connection);
  }

  close(connection: ReadyConnection): void {
    if (connection.closed) return;
    connection.closed = true;
    connection.output = undefined;
    this.connections.delete(connection);
    this.hooks.closed(connection);
    connection.release();
  }

  closeAll(): void {
    for (const connection of [...this.connections]) this.close(connection);
    this.#stopSweeping();
  }

  #dispatch(connection: ReadyConnection, input: Buffer): void {
    // After end(), what the client still sends is not handled.
    if (connection.ending) return;
    this.messages++;
    if (connection.tail !== undefined) {
      connection.waitingBytes += input.length;
      this.#chain(connection, connection.tail.then(() => {
        const was = connection.wantsInput;
        connection.waitingBytes -= input.length;
        if (!was && connection.wantsInput) this.changed(connection);
        return this.#invoke(connection, input);
      }));
      if (!connection.wantsInput) this.changed(connection);
      return;
    }
    const pending = this.#invoke(connection, input);
    if (pending !== undefined) this.#chain(connection, pending);
  }

  #chain(connection: ReadyConnection, step: Promise<void>): void {
    const tail: Promise<void> = step.then(() => {
      if (connection.tail !== tail) return;
      connection.tail = undefined;
      this.settle(connection);
    });
    connection.tail = tail;
  }

  /** One handler call; a promise while an asynchronous one runs. */
  #invoke(connection: ReadyConnection, input: Buffer): Promise<void> | undefined {
    if (connection.closed) return undefined;
    if (this.settings.framing === 'requests') {
      let out: Uint8Array | Promise<Uint8Array>;
      try {
        out = answerRequest(input, this.invoker, connection, this.label);
      } catch (err) {
        this.#failed(connection, err);
        return undefined;
      }
      if (out instanceof Uint8Array) {
        this.send(connection, out);
        return undefined;
      }
      return out.then((bytes) => {
        if (!connection.closed) this.send(connection, bytes);
      });
    }
    let result: unknown;
    try {
      result = this.invoker.handler(decodeInput(input, this.invoker.codec, this.label), connection);
    } catch (err) {
      this.#failed(connection, err);
      return undefined;
    }
    if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
      return Promise.resolve(result).then((reply) => this.#reply(connection, reply), (err) => this.#failed(connection, err));
    }
    this.#reply(connection, result);
    return undefined;
  }

  #reply(connection: ReadyConnection, reply: unknown): void {
    if (connection.closed) return;
    let bytes: Uint8Array | null;
    try {
      bytes = replyBytes(reply, this.invoker.codec);
    } catch (err) {
      this.#failed(connection, err);
      return;
    }
    if (bytes !== null) this.send(connection, bytes);
  }

  #failed(connection: ReadyConnection, err: unknown): void {
    this.handlerErrors++;
    this.invoker.failed(connection, err);
    this.close(connection);
  }
}

/** A listener's accept: a descriptor, undefined when none waits, or an error to report. */
function acceptOne(listener: SocketServer<unknown>): number | undefined | IpcError {
  const fd = native.accept(listener.fd);
  if (fd >= 0) return fd;
  if (fd === E.EAGAIN || fd === E.EINTR) return undefined;
  if (fd === E.EMFILE || fd === E.ENFILE) {
    return new IpcError('ERR_IPC_LIMIT', `accept on ${listener.address} failed (${fd === E.EMFILE ? 'EMFILE' : 'ENFILE'}): ` +
      `out of descriptors; the connection waits in the backlog. Raise the limit with "ulimit -n" (RLIMIT_NOFILE)` +
      `${fd === E.ENFILE ? ' or fs.file-max' : ''}.`, { address: listener.address });
  }
  return systemError(fd, 'accept', listener.address);
}

/** A Unix or TCP connection's kind, read from the kernel. */
function kindOfFd(fd: number): SocketKind {
  return native.getSockOpt(fd, S.SOL_SOCKET, S.SO_DOMAIN) === S.AF_UNIX ? 'unix' : 'tcp';
}

/** Keeps a connection's registration in `poller` in step with what it waits for (reading, writing, or nothing now). */
function pollerHooks(poller: Poller<ReadyConnection | SocketServer<unknown>>): TableHooks {
  return {
    interest(connection) {
      if (connection.closed || poller.closed) return;
      const read = connection.wantsInput;
      const write = connection.output !== undefined;
      const registered = poller.has(connection);
      if (!read && !write) {
        if (registered) poller.remove(connection);
        return;
      }
      const interest = { events: read && write ? 'both' as const : read ? 'readable' as const : 'writable' as const };
      if (registered) poller.modify(connection, interest);
      else poller.add(connection, interest);
    },
    closed(connection) {
      if (!poller.closed && poller.has(connection)) poller.remove(connection);
    },
  };
}

/**
 * Waits on `poller` until it is closed and serves what is ready: objects
 * `other` claims (a listener), else connections (writes first, so replies
 * queued make room before more requests are read).
 */
async function runReactor<P extends ReadyConnection | SocketServer<unknown>>(poller: Poller<P>, other: (object: P) => boolean): Promise<void> {
  while (!poller.closed) {
    let events;
    try {
      events = await poller.wait();
    } catch (err) {
      if (poller.closed) return;
      throw err;
    }
    for (const event of events) {
      if (other(event.object)) continue;
      const connection = event.object as ReadyConnection;
      try {
        if (event.writable || event.error) connection.table.writable(connection);
        if (event.readable || event.hangup || event.error) connection.table.readable(connection);
      } catch (err) {
        // A failure of the kernel's bookkeeping for this connection (epoll_ctl out of memory): it alone ends.
        connection.table.close(connection);
        process.emitWarning(`Connection ${connection.id} of ${connection.table.label} was closed: ${(err as Error)?.message ?? err}`, 'IpcServerWarning');
      }
    }
  }
}

// ---------------------------------------------------------------------------
// The server.

/**
 * A running server: {@link serve} resolves with it once it listens.
 * `close()` stops accepting, closes its connections, stops its children
 * (SIGTERM, then SIGKILL after 5 s) and removes its socket file.
 *
 * Events: `'handlerError'` `(error, connectionId)` when a handler in this
 * process fails (the connection is closed; without a listener the error
 * is written to stderr as a warning); `'error'` `(error)` for failures of
 * the server itself (a prefork child that keeps dying).
 */
export class Server extends EventEmitter {
  /** How it serves its connections, fixed by {@link serve}. */
  readonly strategy: ServerStrategy;
  readonly #listener: SocketServer<unknown>;
  readonly #settings: LoopSettings;
  readonly #invoker: Invoker;
  readonly #handlerUrl: string | undefined;
  readonly #options: { interval: number; maxChildren: number; workers: number };
  readonly #children = new Set<ChildProcess>();
  #poller: Poller<ReadyConnection | SocketServer<unknown>> | undefined;
  #table: ConnectionTable | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  #accepted = 0;
  #refused = 0;
  #limit: string | null = null;
  /** Accepting is paused until this time (out of descriptors), or while at maxChildren. */
  #acceptPaused = false;
  /** prefork: the control sockets of the pool, in turn. */
  #workers: { socket: MessageSocket; child: ChildProcess }[] = [];
  #nextWorker = 0;
  #quickDeaths = 0;
  readonly #onShutdown: (() => void)[] = [];

  /** @internal */
  constructor(strategy: ServerStrategy, listener: SocketServer<unknown>, settings: LoopSettings, invoker: Invoker,
    handlerUrl: string | undefined, options: { interval: number; maxChildren: number; workers: number }) {
    super();
    this.strategy = strategy;
    this.#listener = listener;
    this.#settings = settings;
    this.#invoker = invoker;
    this.#handlerUrl = handlerUrl;
    this.#options = options;
  }

  /** The address it listens on (a TCP port 0 replaced by the real port). */
  get address(): string {
    return this.#listener.address;
  }

  /** The TCP port it listens on. */
  get port(): number {
    return this.#listener.port;
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** The pids of its child processes (blocking, fork, prefork). */
  get childPids(): number[] {
    return [...this.#children].map((child) => child.pid!).filter((pid) => pid !== undefined);
  }

  /** The counters now; the ones kept in child processes are not included (see {@link ServerStats}). */
  stats(): ServerStats {
    return {
      strategy: this.strategy,
      accepted: this.#accepted,
      open: this.#table?.connections.size ?? (this.strategy === 'fork' ? this.#children.size : 0),
      messages: this.#table?.messages ?? 0,
      handlerErrors: this.#table?.handlerErrors ?? 0,
      refused: this.#refused,
      children: this.#children.size,
      limit: this.#limit,
      timedOut: this.#table?.timedOut ?? 0,
    };
  }

  /** Stops the server; resolves once every child has exited. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /** `await using server = ...`: the same as {@link close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** @internal Starts serving. */
  start(): void {
    const kind = this.#listener.kind as SocketKind;
    switch (this.strategy) {
      case 'blocking':
        this.#startListenerChild();
        return;
      case 'event':
        this.#react((fd) => {
          const connection = this.#table!.add(fd);
          try {
            this.#poller!.add(connection);
          } catch (err) {
            this.#table!.close(connection);
            this.#refuse(`the connection could not be watched (${(err as Error).message}): see fs.epoll.max_user_watches`);
          }
        });
        this.#table = new ConnectionTable(this.#settings, this.#invoker, kind, this.address, pollerHooks(this.#poller!));
        return;
      case 'poll':
        this.#table = new ConnectionTable(this.#settings, this.#invoker, kind, this.address, { interest() {}, closed() {} });
        this.#timer = setInterval(() => this.#visit(), this.#options.interval);
        return;
      case 'fork':
        this.#react((fd) => this.#forkFor(fd));
        return;
      case 'prefork':
        for (let i = 0; i < this.#options.workers; i++) this.#startWorker(i);
        this.#react((fd) => this.#dispatch(fd));
        return;
    }
  }

  /** The event loop of the event, fork and prefork strategies: a Poller over the listener (and, for event, the connections). */
  #react(accepted: (fd: number) => void): void {
    const poller = new Poller<ReadyConnection | SocketServer<unknown>>();
    this.#poller = poller;
    poller.add(this.#listener);
    void runReactor(poller, (object) => {
      if (object !== this.#listener) return false;
      this.#acceptSome(accepted);
      return true;
    }).catch((err) => this.#fail(err));
  }

  /** Accepts up to a batch of waiting connections. */
  #acceptSome(accepted: (fd: number) => void): void {
    for (let i = 0; i < ACCEPT_BATCH && !this.#acceptPaused && !this.closed; i++) {
      if (this.strategy === 'fork' && this.#children.size >= this.#options.maxChildren) {
        // Further clients wait in the listen backlog until a child exits.
        this.#limit = `maxChildren (${this.#options.maxChildren}) children are serving: further clients wait in the listen backlog`;
        this.#pauseAccepting(undefined);
        return;
      }
      const fd = acceptOne(this.#listener);
      if (fd === undefined) return;
      if (fd instanceof IpcError) {
        this.#limit = fd.message;
        // Out of descriptors: leave the backlog alone for a while rather than spin on it.
        if (fd.code === 'ERR_IPC_LIMIT') this.#pauseAccepting(100);
        return;
      }
      this.#accepted++;
      accepted(fd);
    }
  }

  /** Stops watching the listener: for `ms`, or (undefined) until resumed. */
  #pauseAccepting(ms: number | undefined): void {
    if (this.#acceptPaused) return;
    this.#acceptPaused = true;
    if (this.#poller?.has(this.#listener)) this.#poller.remove(this.#listener);
    if (ms !== undefined) setTimeout(() => this.#resumeAccepting(), ms).unref();
  }

  #resumeAccepting(): void {
    if (!this.#acceptPaused || this.closed || this.#poller === undefined || this.#poller.closed) return;
    this.#acceptPaused = false;
    this.#poller.add(this.#listener);
  }

  /** poll: one visit to the listener and to every connection, ready or not. */
  #visit(): void {
    const table = this.#table!;
    if (!this.#acceptPaused) {
      for (;;) {
        const fd = acceptOne(this.#listener);
        if (fd === undefined) break;
        if (fd instanceof IpcError) {
          this.#limit = fd.message;
          break;
        }
        this.#accepted++;
        table.add(fd);
      }
    }
    for (const connection of table.connections) {
      if (connection.output !== undefined) table.writable(connection);
      if (!connection.closed) table.readable(connection);
    }
  }

  /** fork: a child process for this connection, which then belongs to it alone. */
  #forkFor(fd: number): void {
    try {
      const available = availableMemory();
      if (available !== undefined && available < MIN_AVAILABLE_MEMORY) {
        this.#refuse(`only ${Math.round(available / 2 ** 20)} MiB of memory available (MemAvailable): ` +
          `a process per connection stops below ${MIN_AVAILABLE_MEMORY / 2 ** 20} MiB`);
        return;
      }
      this.#spawnChild('connection', fd);
    } catch (err) {
      this.#refuse(`a process could not be started (${(err as Error).message}): see "ulimit -u" (RLIMIT_NPROC), kernel.pid_max and memory`);
    } finally {
      // The child has its own copy now (or there is none): this one is no longer ours.
      native.close(fd);
    }
  }

  #refuse(why: string): void {
    this.#refused++;
    this.#limit = why;
  }

  /** Starts a child running the handler on descriptor `fd` (its descriptor 3) in role `role`. */
  #spawnChild(role: 'listener' | 'connection' | 'worker', fd: number): ChildProcess {
    const config = JSON.stringify({ role, handler: this.#handlerUrl, parent: process.pid, ...this.#settings });
    const child = spawnProcess(process.execPath, [CHILD_PROGRAM, config], { stdio: ['ignore', 'inherit', 'inherit', fd] });
    this.#children.add(child);
    const gone = (): void => {
      if (!this.#children.delete(child)) return;
      if (this.strategy === 'fork') this.#resumeAccepting();
    };
    child.once('exit', gone);
    child.once('error', (err) => {
      gone();
      this.#refuse(`a process could not be started (${err.message}): see "ulimit -u" (RLIMIT_NPROC), kernel.pid_max and memory`);
    });
    return child;
  }

  /** prefork: starts (or restarts) pool member `index`. */
  #startWorker(index: number): void {
    const [mine, theirs] = socketPair({ type: 'stream' });
    let child: ChildProcess;
    try {
      child = this.#spawnChild('worker', theirs.fd);
    } finally {
      theirs.close();
    }
    this.#workers[index] = { socket: mine, child };
    this.#restartOnExit(child, () => {
      mine.close();
      this.#startWorker(index);
    });
  }

  /** blocking: the one child, started again if it dies. */
  #startListenerChild(): void {
    this.#restartOnExit(this.#spawnChild('listener', this.#listener.fd), () => this.#startListenerChild());
  }

  /**
   * Starts a long-lived child (a prefork worker, the blocking server) again
   * when it exits while the server runs. One that dies at once would die
   * again: after a few in a row the server reports it and stops.
   */
  #restartOnExit(child: ChildProcess, restart: () => void): void {
    const started = Date.now();
    child.once('exit', (code, signal) => {
      if (this.closed) return;
      this.#quickDeaths = Date.now() - started < 2000 ? this.#quickDeaths + 1 : 0;
      if (this.#quickDeaths >= 5) {
        this.#fail(new IpcError('ERR_IPC_PEER_FAILED', `The ${this.strategy} children of ${this.address} keep exiting at once ` +
          `(the last with ${signal ?? `code ${code}`}); the server stops. Their stderr says why.`));
        return;
      }
      restart();
    });
  }

  /** A failure of the server itself: 'error' if someone listens (else a warning), and it stops. */
  #fail(err: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else process.emitWarning(`The server on ${this.address} stopped: ${(err as Error)?.message ?? err}`, 'IpcServerWarning');
    void this.close();
  }

  /** prefork: hands a connection to the next child in turn. */
  #dispatch(fd: number): void {
    const worker = this.#workers[this.#nextWorker++ % this.#workers.length];
    if (worker === undefined || worker.socket.closed) {
      native.close(fd);
      this.#refuse('no prefork child is running');
      return;
    }
    worker.socket.sendFds([fd]).then(() => native.close(fd), () => {
      native.close(fd);
      this.#refuse('a prefork child did not take its connection (it exited)');
    });
  }

  /** @internal Runs `fn` when the server is closed. */
  onShutdown(fn: () => void): void {
    this.#onShutdown.push(fn);
  }

  async #shutdown(): Promise<void> {
    for (const fn of this.#onShutdown.splice(0)) fn();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#poller?.close();
    this.#table?.closeAll();
    this.#listener.close();
    for (const worker of this.#workers) worker.socket.close();
    await Promise.all([...this.#children].map(stopChild));
  }
}

/** SIGTERM, then SIGKILL after the grace period; resolves once it has exited (and was reaped). */
function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
      resolve();
      return;
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** MemAvailable in bytes, or undefined if /proc does not say. */
function availableMemory(): number | undefined {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'latin1'));
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** The program the blocking, fork and prefork strategies start. */
const CHILD_PROGRAM = fileURLToPath(new URL('./internal/server-child.js', import.meta.url));

/**
 * Reports a handler's failure: as a process warning in the server's own
 * process; in a child process straight to stderr (a warning is printed on
 * a later tick, which a child that exits, or blocks in accept, never reaches).
 */
function warn(err: unknown, id: number, label: string, child = false): void {
  const text = `A handler failed on connection ${id} of ${label}, which was closed: ${(err as Error)?.stack ?? err}`;
  if (child) process.stderr.write(`(ipckit server child ${process.pid}) IpcHandlerWarning: ${text}\n`);
  else process.emitWarning(text, 'IpcHandlerWarning');
}

/**
 * Listens on `address` (`unix:/path`, `unix:@name` or `tcp://host:port`)
 * and serves every connection with `handler`, the way `strategy` says.
 * Resolves once the server accepts connections. Where the handler runs in
 * other processes (`'blocking'`, `'fork'`, `'prefork'`) it is a module:
 * `serve('unix:/tmp/echo.sock', './echo.js', { strategy: 'prefork' })`,
 * with `export default (data) => data;` in echo.js.
 *
 * @example
 * ```ts
 * import { connect, serve } from 'ipckit';
 *
 * const server = await serve('unix:@ipckit-example-serve', (data) => data, { strategy: 'event' });
 * try {
 *   const client = await connect('unix:@ipckit-example-serve');
 *   try {
 *     await client.send('hi');
 *     const { data } = await client.receive({ timeout: 1000 });
 *     console.log(data.toString()); // hi
 *   } finally {
 *     client.close();
 *   }
 * } finally {
 *   await server.close();
 * }
 * ```
 */
export function serve<T = any>(address: string, handler: ConnectionHandler<T> | string | URL, options: ServerOptions<T> & { codec: 'json' | 'msgpack' }): Promise<Server>;
export function serve<T>(address: string, handler: ConnectionHandler<T> | string | URL, options: ServerOptions<T> & { codec: Codec<T> }): Promise<Server>;
export function serve<T = Buffer>(address: string, handler: ConnectionHandler<T> | string | URL, options?: ServerOptions<T>): Promise<Server>;
export async function serve<T>(address: string, handler: ConnectionHandler<T> | string | URL, options?: ServerOptions<T>): Promise<Server> {
  const opts = checkOptions(options, ['strategy', 'framing', 'codec', 'maxMessageSize', 'frameTimeout', 'idleTimeout', 'interval', 'maxChildren', 'workers',
    'mode', 'backlog', 'signal']);
  const strategy = opts.strategy ?? 'event';
  if (!SERVER_STRATEGIES.includes(strategy)) throw invalidArgument('strategy', strategy, `one of ${SERVER_STRATEGIES.map((s) => `'${s}'`).join(', ')}`);
  const framing = opts.framing ?? 'message';
  if (framing !== 'message' && framing !== 'requests' && framing !== 'bytes') throw invalidArgument('framing', framing, "'message', 'requests' or 'bytes'");
  const inProcess = strategy === 'poll' || strategy === 'event';
  if (opts.codec !== undefined && framing === 'bytes') throw invalidArgument('codec', opts.codec, "no codec with framing 'bytes' (chunks are not messages)");
  if (opts.maxMessageSize !== undefined && framing === 'bytes') {
    throw invalidArgument('maxMessageSize', opts.maxMessageSize, "no maxMessageSize with framing 'bytes' (chunks are not messages)");
  }
  if (opts.codec !== undefined && !inProcess && opts.codec !== 'json' && opts.codec !== 'msgpack') {
    throw invalidArgument('codec', 'a custom codec', `'json' or 'msgpack' with strategy '${strategy}' (the handler runs in other processes)`);
  }
  const codec = opts.codec === undefined ? undefined : resolveCodec<unknown>(opts.codec);
  const settings: LoopSettings = {
    framing,
    codec: opts.codec === 'json' || opts.codec === 'msgpack' ? opts.codec : undefined,
    maxMessageSize: optionalInteger(opts.maxMessageSize, 'maxMessageSize', 0, MAX_FRAME, DEFAULT_MAX_MESSAGE_SIZE),
    frameTimeout: timeoutOption(opts.frameTimeout, 'frameTimeout', framing === 'bytes' ? Infinity : DEFAULT_FRAME_TIMEOUT),
    idleTimeout: timeoutOption(opts.idleTimeout, 'idleTimeout', Infinity),
  };
  if (opts.frameTimeout !== undefined && framing === 'bytes') {
    throw invalidArgument('frameTimeout', opts.frameTimeout, "no frameTimeout with framing 'bytes' (chunks are not messages)");
  }
  const only = (key: 'interval' | 'maxChildren' | 'workers', wanted: ServerStrategy): void => {
    if (opts[key] !== undefined && strategy !== wanted) throw invalidArgument(key, opts[key], `no ${key} with strategy '${strategy}' (it is an option of '${wanted}')`);
  };
  only('interval', 'poll');
  only('maxChildren', 'fork');
  only('workers', 'prefork');
  const settingsOfStrategy = {
    interval: optionalInteger(opts.interval, 'interval', 1, 60_000, DEFAULT_POLL_INTERVAL),
    maxChildren: optionalInteger(opts.maxChildren, 'maxChildren', 1, 32_768, DEFAULT_MAX_CHILDREN),
    workers: optionalInteger(opts.workers, 'workers', 1, 1024, os.availableParallelism()),
  };
  const signal = checkSignal(opts.signal);
  if (opts.mode !== undefined) checkMode(opts.mode);
  kindOfListener(address);
  let fn: ConnectionHandler<unknown>;
  let url: string | undefined;
  if (typeof handler === 'function') {
    if (!inProcess) {
      throw invalidArgument('handler', 'a function', `a module (a path or file: URL whose default export is the handler) with strategy '${strategy}': ` +
        'its handler runs in other processes, which cannot receive a function');
    }
    fn = handler as ConnectionHandler<unknown>;
  } else if (typeof handler === 'string' || handler instanceof URL) {
    url = moduleUrl(handler);
    // Loaded here too: a broken module is one clear error now, not a child failing per connection.
    fn = await loadHandler<unknown>(url);
  } else {
    throw invalidArgument('handler', handler, 'a function (data, connection) => reply, or the path of a module exporting one');
  }
  if (signal?.aborted) throw new IpcError('ERR_IPC_ABORTED', `serve on ${address} was aborted before it started.`);
  const listener = listen<unknown>(address, { mode: opts.mode, backlog: opts.backlog });
  const label = listener.address;
  let server: Server;
  const invoker: Invoker = {
    handler: fn,
    codec,
    failed: (connection, err) => {
      if (server.listenerCount('handlerError') > 0) server.emit('handlerError', err, connection.id);
      else warn(err, connection.id, label);
    },
  };
  server = new Server(strategy, listener, settings, invoker, url, settingsOfStrategy);
  try {
    server.start();
  } catch (err) {
    await server.close();
    throw err;
  }
  if (signal !== undefined) {
    const onAbort = (): void => void server.close();
    signal.addEventListener('abort', onAbort, { once: true });
    server.onShutdown(() => signal.removeEventListener('abort', onAbort));
  }
  return server;
}

// ---------------------------------------------------------------------------
// The child processes' side (src/internal/server-child.ts runs these).

/** The configuration a child process receives as its argument. */
export interface ChildConfig extends LoopSettings {
  role: 'listener' | 'connection' | 'worker';
  handler: string;
  parent: number;
}

/** A connection served with blocking calls (blocking and fork strategies). */
class BlockingConnection implements Connection<unknown> {
  closed = false;
  ending = false;

  constructor(readonly fd: number, readonly id: number, readonly kind: SocketKind, readonly settings: LoopSettings,
    readonly codec: Codec<unknown> | undefined) {}

  get remoteAddress(): string | null {
    return this.closed ? null : nameOf(this.fd, this.kind, true);
  }

  get peer(): Omit<PeerCredentials, 'pidfd'> | null {
    return this.closed ? null : peerOf(this.fd, this.kind);
  }

  write(data: unknown): void {
    if (this.closed) throw new IpcError('ERR_IPC_CLOSED', `Connection ${this.id} is closed.`);
    if (this.settings.framing === 'requests') throw writeAmongRequests();
    this.writeAll(writable(data, this.codec));
  }

  end(): void {
    this.ending = true;
  }

  /** Blocking writes until every byte is taken; false once the client is gone. */
  writeAll(bytes: Uint8Array): boolean {
    const data = framed(bytes, this.settings.framing);
    let done = 0;
    while (done < data.length) {
      const n = native.writeFd(this.fd, data, done, data.length - done, 0);
      if (n === E.EINTR) continue;
      if (n < 0) {
        this.closed = true;
        return false;
      }
      done += n;
    }
    return true;
  }
}

/**
 * Serves one connection with blocking reads and writes until the client
 * leaves; the descriptor is closed at the end. While it runs, nothing else
 * in this process runs: that is the blocking server.
 */
export async function serveBlocking(fd: number, id: number, config: LoopSettings, handler: ConnectionHandler<unknown>,
  codec: Codec<unknown> | undefined): Promise<void> {
  const connection = new BlockingConnection(fd, id, kindOfFd(fd), config, codec);
  const splitter = new Splitter(config, `connection ${id}`);
  const buffer = Buffer.allocUnsafe(READ_SIZE);
  try {
    let messageStarted = 0;
    while (!connection.closed && !connection.ending) {
      // A message begun must arrive whole within frameTimeout; a connection may stay silent idleTimeout at most.
      const limit = splitter.inMessage ? config.frameTimeout === null ? null : config.frameTimeout - (performance.now() - messageStarted)
        : config.idleTimeout;
      if (limit !== null && (limit <= 0 || (native.pollFd(fd, C.POLLIN, Math.ceil(limit)) & (C.POLLIN | C.POLLHUP | C.POLLERR)) === 0)) break;
      // A blocking read: the process sleeps here until this client sends.
      const n = native.readFd(fd, buffer, 0, READ_SIZE, 0);
      if (n === E.EINTR) continue;
      if (n <= 0) break;
      const chunk = Buffer.allocUnsafe(n);
      buffer.copy(chunk, 0, 0, n);
      const wasInMessage = splitter.inMessage;
      const inputs = splitter.feed(chunk);
      if (splitter.inMessage && (!wasInMessage || inputs.length > 0)) messageStarted = performance.now();
      for (const input of inputs) {
        if (config.framing === 'requests') {
          if (!connection.writeAll(await answerRequest(input, { handler, codec }, connection, `connection ${id}`))) break;
          if (connection.ending) break;
          continue;
        }
        let reply = handler(decodeInput(input, codec, `connection ${id}`), connection);
        if (reply !== null && typeof reply === 'object' && typeof (reply as PromiseLike<unknown>).then === 'function') reply = await reply;
        const bytes = replyBytes(reply, codec);
        if (bytes !== null && !connection.writeAll(bytes)) break;
        // After end(), what the client still sent is not handled.
        if (connection.ending) break;
      }
    }
  } catch (err) {
    warn(err, id, `server child ${process.pid}`, true);
  } finally {
    connection.closed = true;
    native.close(fd);
  }
}

/** prefork child: serves the connections the parent passes over `control` with the readiness engine. */
export async function serveHandedOver(control: MessageSocket, config: LoopSettings, handler: ConnectionHandler<unknown>,
  codec: Codec<unknown> | undefined): Promise<void> {
  const poller = new Poller<ReadyConnection>();
  const invoker: Invoker = { handler, codec, failed: (connection, err) => warn(err, connection.id, `prefork child ${process.pid}`, true) };
  let table: ConnectionTable | undefined;
  const tableFor = (fd: number): ConnectionTable => {
    table ??= new ConnectionTable(config, invoker, kindOfFd(fd), `prefork child ${process.pid}`, pollerHooks(poller));
    return table;
  };
  void runReactor(poller, () => false).catch((err) => warn(err, 0, `prefork child ${process.pid}`, true));
  let lastLoss = 0;
  try {
    for (;;) {
      let message;
      try {
        message = await control.receive();
      } catch (err) {
        // Out of descriptors: the kernel closed the connection it could not install. Others go on.
        if (err instanceof IpcError && err.code === 'ERR_IPC_TRUNCATED') {
          if (Date.now() - lastLoss > 1000) {
            lastLoss = Date.now();
            process.stderr.write(`(ipckit server child ${process.pid}) IpcServerWarning: a connection handed to this child was closed: ` +
              'it has no descriptor left for it (raise "ulimit -n", RLIMIT_NOFILE).\n');
          }
          continue;
        }
        // The server closed the pool (or is gone).
        break;
      }
      for (const fd of message.fds) {
        const t = tableFor(fd);
        const connection = t.add(fd);
        try {
          poller.add(connection);
        } catch (err) {
          t.close(connection);
          warn(err, connection.id, `prefork child ${process.pid}`, true);
        }
      }
    }
  } finally {
    // The parent is gone or stopped the pool: so are this child's connections.
    table?.closeAll();
    poller.close();
  }
}
