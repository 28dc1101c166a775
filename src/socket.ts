/**
 * Sockets: Unix stream, datagram and seqpacket sockets (bound to a path or
 * to an exact abstract name), TCP and UDP, behind one address syntax
 * (`unix:/run/app.sock`, `unix-dgram:@name`, `tcp://127.0.0.1:7000`, ...).
 *
 * - {@link listen} makes a server; {@link connect} a {@link MessageSocket};
 *   {@link socketPair} two connected sockets, one of which a child process
 *   can take. A MessageSocket carries whole messages: on stream transports
 *   each is a 4-byte unsigned big-endian length then the bytes (any language
 *   can speak it); seqpacket keeps boundaries itself. It also offers
 *   request/reply, descriptor passing, peer credentials, and a raw byte mode.
 * - {@link bind} makes a {@link DatagramSocket}: `send(data, { to })` and
 *   `receive()` resolving to `{ data, from }`.
 *
 * Descriptors a user or a child may rely on (connections, pairs, datagram
 * sockets) stay blocking; ipckit's own attempts pass MSG_DONTWAIT. Only a
 * listening socket is non-blocking (accept has no per-call flag).
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { chmodSync, closeSync, fstatSync, lstatSync, openSync, unlinkSync } from 'node:fs';
import { Duplex } from 'node:stream';
import { markAsUntransferable } from 'node:worker_threads';
import { E, IpcError, defineHints, systemError } from './errors.js';
import { lazily, native } from './native.js';
import { type Codec, type CodecOption, type Outgoing, decodeWith, encodeWith, resolveCodec } from './internal/codec.js';
import { FAILURE, REPLY, REQUEST, envelope, failureEnvelope, openEnvelope } from './internal/envelope.js';
import { type ByteSource, FRAME_HEADER, MAX_FRAME, ReadAhead, checkFrame } from './internal/framing.js';
import {
  type GatherList, type GatherOperation, Held, type ReceiveManyOptions, type ReceiveManySyncOptions, batchChanged, batchSend, checkMax, checkTargets,
  decodeBatch, encodeBatch, gatherBytes, gatherCount, gatherOperation, gatherView, ITERATION_BATCH, batchedIteration, packed, sendMmsgList, spread, writevList, LIST_CHANGED, listSizes, unlessChanged
} from './internal/batch.js';
import { type MessageBatch, batchFromHeld, batchGone, batchTooSmall, checkBatchIntact, checkMessageBatch, idleBatch, pushIfRoom, unframeIntoBatch, withBatch } from './internal/message-batch.js';
import { Handle, OwnedFd } from './internal/handle.js';
import { descriptorError } from './internal/limits.js';
import { DONE, type LaneOwner, NotifyLane, type Operation, Pending, ReadinessLane, receiveUntilClosed, run, runSync, tryRun } from './internal/operation.js';
import { type Pollable, type PollTarget, READABLE, type ReadinessSubscriber, WRITABLE, type Watch, pollTarget, watchDescriptor } from './internal/readiness.js';
import { type SocketAddress, type SocketType, parseSocketAddress } from './internal/socket-address.js';
import { oPathFlags, bindingAt } from './internal/socket-file.js';
import { type StreamOptions } from './internal/streams.js';
import { type OwnerOption, checkOwner } from './internal/trust.js';
import { checkBytes, checkInteger, checkMode, checkOptions, copyView, invalidArgument, optionalInteger, realByteLength, toBytes, viewFrom } from './internal/validate.js';
import { type SpinOptions, type SyncWaitOptions, type WaitOptions, abortError, checkSignal, checkSpin, checkTimeout } from './internal/wait.js';

const C = lazily(() => native.constants);
const S = lazily(() => native.socketConstants);
/** Not in Node's errno table. */

defineHints({
  connect: {
    ECONNREFUSED: 'Nothing listens at that address (a Unix socket file left by a server that exited, or no server on that port). Start the server first.',
    ENOENT: 'No socket file at that path: start the server first, or check the path.',
    EPROTOTYPE: 'The socket at that address is of another type (stream, datagram or seqpacket): use the matching address scheme.',
  },
  bind: {
    EADDRINUSE: 'Another socket is bound there. Pick another address (port 0 picks a free port), or stop the process that holds it.',
    EACCES: 'Binding there is not allowed: a port below 1024 needs privileges, a path needs write permission on its directory.',
    EADDRNOTAVAIL: 'That IP address belongs to no interface of this machine (or of this network namespace).',
  },
  send: {
    EPIPE: 'The other end closed the connection.',
    ECONNRESET: 'The other end closed the connection with data unread, or crashed.',
    ECONNREFUSED: 'Nobody receives at that address any more.',
    EMSGSIZE: 'The message is larger than the socket can send in one piece: send less, or raise the send buffer (sendBuffer option, net.core.wmem_max).',
    ENOBUFS: 'The kernel ran out of buffer space; retry later, or send less at once.',
  },
  receive: { ECONNRESET: 'The other end closed the connection with data unread, or crashed.' },
});

/** The kinds of socket, as address schemes name them. */
export type SocketKind = 'unix' | 'unix-dgram' | 'unix-seqpacket' | 'tcp' | 'udp';

/** Default largest message received, in bytes: a longer announced length closes the connection before anything is allocated. */
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;
/** Default bytes of sends that may wait for the peer to read before a further send is refused. */
export const DEFAULT_HIGH_WATER_MARK = 16 * 1024 * 1024;
/** Default longest time, in ms, between the first and the last byte of one framed message. */
export const DEFAULT_FRAME_TIMEOUT = 30_000;
/** The most descriptors one message may carry (the kernel's SCM_MAX_FD, 253 in include/net/scm.h). */
export const SCM_MAX_FD = 253;

/** Default largest raw read, in bytes. */
const READ_SIZE = 64 * 1024;
/**
 * Stream receives land in slabs of this size, at least {@link SLAB_MIN_FREE}
 * bytes at a time, and messages of 32 KiB or more are handed out as views
 * of them: a large message that arrived within one receive is never copied
 * (it keeps its slab alive, as Node's own Buffer pool does; smaller ones are
 * copied out).
 */
const SLAB_SIZE = 256 * 1024;
const SLAB_MIN_FREE = 64 * 1024;
/** Datagrams up to this size are received in one call; larger limits ask the kernel for the size first. */
const DATAGRAM_SCRATCH = 256 * 1024;
/** Why native recvPackets stopped (native/socket.cc, PacketStop). */
const PACKET_STOP = { done: 0, tooLarge: 1, cut: 2, empty: 3, noRoom: 4, failed: 5, lost: 6 } as const;

/** What a peer is, as the kernel saw it when the connection was made (Unix sockets). */
export interface PeerCredentials {
  /** The peer's pid (`SO_PEERCRED`), as the kernel saw it at connect time; 0 if unknown. */
  pid: number;
  /** The peer's effective uid. */
  uid: number;
  /** The peer's effective gid. */
  gid: number;
  /**
   * A pid file descriptor of the peer (`SO_PEERPIDFD`, Linux 6.5+), owned
   * by the socket and closed with it: it keeps naming that process even
   * after its pid is reused. `undefined` where the kernel has none.
   */
  pidfd?: number;
}

/** A message received on a connection: its data, and the descriptors that came with it (the receiver owns and closes them). */
export interface SocketMessage<T = Buffer> {
  /** The payload: a `Buffer` of its bytes, or the codec's decoded value. */
  data: T;
  /** Descriptors passed with it (`SCM_RIGHTS`), close-on-exec; empty if none. */
  fds: number[];
}

/** A datagram received: its data, the sender's address (`null` if the sender is unbound), and descriptors. */
export interface Datagram<T = Buffer> {
  /** The payload: a `Buffer` of its bytes, or the codec's decoded value. */
  data: T;
  /** The sender's address in the socket's address syntax (`unix-dgram:/path`, `udp://127.0.0.1:7000`), or `null` if it is unbound. */
  from: string | null;
  /** Descriptors passed with it (`SCM_RIGHTS`, Unix only), close-on-exec; empty if none. */
  fds: number[];
}

/** What a receive into a buffer of yours got: the message is `target.subarray(0, length)`, with the descriptors that came with it. */
export interface SocketReceivedInto {
  /** Bytes of the message, at the start of the target. */
  length: number;
  /** Descriptors passed with it, close-on-exec; empty if none. */
  fds: number[];
}

/** What a datagram received into a buffer of yours got: its length, sender and descriptors. */
export interface DatagramReceivedInto extends SocketReceivedInto {
  /** The sender's address, or `null` if it is unbound. */
  from: string | null;
}

/** Something whose descriptor can be passed: a number, or an ipckit handle with `fd`. */
export type PassableFd = number | {
  /** The descriptor to pass; the sender keeps its own copy open. */
  readonly fd: number;
};

/** Options shared by connections, whether connected, accepted or paired. */
export interface MessageSocketOptions<T = Buffer> extends SpinOptions {
  /** Typed messages over the bytes ({@link CodecOption}). Default: raw bytes. */
  codec?: CodecOption<T> | undefined;
  /** Largest message received, checked before anything is allocated. Default 16 MiB. */
  maxMessageSize?: number;
  /** Bytes of sends that may wait for the peer before a further `send` is refused with ERR_IPC_LIMIT. Default 16 MiB. */
  highWaterMark?: number;
  /** Ms from the first to the last byte of a framed message before the connection is closed (`Infinity`: no limit). Default 30000. */
  frameTimeout?: number;
  /** Ms without any byte received or sent before the connection is closed. Default: no limit. */
  idleTimeout?: number;
}

/** Options of {@link connect}. */
export interface ConnectOptions<T = Buffer> extends MessageSocketOptions<T>, WaitOptions {
  /** The kernel's send buffer in bytes (SO_SNDBUF; it doubles the value). */
  sendBuffer?: number;
  /** The kernel's receive buffer in bytes (SO_RCVBUF). */
  receiveBuffer?: number;
}

/** Options of {@link listen}. */
export interface ListenOptions<T = Buffer> extends MessageSocketOptions<T> {
  /** Mode of a Unix socket file, applied before it exists. Default 0o600. */
  mode?: number;
  /** Pending connections the kernel keeps (listen backlog). Default 511. */
  backlog?: number;
  /** Only these uids may connect (Unix sockets): others are closed before anything is read. */
  allowUids?: readonly number[];
  /** Only these gids may connect (Unix sockets). With allowUids, either suffices. */
  allowGids?: readonly number[];
  /** The uid that must own a stale socket file for it to be replaced, or 'any'. Default: this process's euid. */
  owner?: OwnerOption;
}

/** Options of {@link bind}. */
export interface BindOptions<T = Buffer> extends SpinOptions {
  /** Typed messages over the bytes ({@link CodecOption}). Default: raw bytes. */
  codec?: CodecOption<T> | undefined;
  /** Largest datagram received; a larger one is consumed and reported with ERR_IPC_MESSAGE_TOO_LARGE. Default 16 MiB. */
  maxMessageSize?: number;
  /** Mode of a Unix socket file, applied before it exists. Default 0o600. */
  mode?: number;
  /** The uid that must own a stale socket file for it to be replaced, or 'any'. Default: this process's euid. */
  owner?: OwnerOption;
  /** The kernel's send buffer in bytes (SO_SNDBUF; it doubles the value), 1024 to 2^30. */
  sendBuffer?: number;
  /** The kernel's receive buffer in bytes (SO_RCVBUF; it doubles the value), 1024 to 2^30. */
  receiveBuffer?: number;
}

/** Options of {@link MessageSocket.serve}. */
export interface ServeOptions {
  /**
   * Requests handled at once, at most (default 64). At the bound nothing
   * more is read, so a peer that floods requests fills the socket's buffers
   * and waits, instead of making this process start handlers without end.
   */
  concurrency?: number;
}

/** Default of {@link ServeOptions.concurrency}. */
export const DEFAULT_CONCURRENCY = 64;

/** Options of a request. */
export interface RequestOptions extends WaitOptions {
  /** Descriptors to pass with the request (Unix sockets). */
  fds?: readonly PassableFd[];
}

/** Options of a datagram send. */
export interface DatagramSendOptions extends WaitOptions {
  /** The address to send to (the same kind as the socket's). */
  to: string;
  /** Descriptors to pass with the datagram (Unix datagram sockets), at most {@link SCM_MAX_FD}. */
  fds?: readonly PassableFd[];
}

/** Options of a batched datagram send ({@link DatagramSocket.sendMany}): one destination for all. */
export interface DatagramSendManyOptions extends WaitOptions {
  /** The address to send every datagram of the batch to (the same kind as the socket's). */
  to: string;
}

/** Options of a datagram socket's `receiveBatch`. */
export interface DatagramReceiveBatchOptions extends WaitOptions {
  /**
   * An array of yours that gets each datagram's sender, at the datagram's
   * index in the batch (`null` for an unbound sender); its length is set
   * to the batch's count. Without it no address is decoded.
   */
  senders?: (string | null)[];
}

/** Options of a datagram socket's `receiveBatchSync`. */
export interface DatagramReceiveBatchSyncOptions extends SyncWaitOptions {
  /** As for {@link DatagramReceiveBatchOptions.senders}. */
  senders?: (string | null)[];
}

const KIND_OF: Record<string, SocketKind> = { stream: 'unix', dgram: 'unix-dgram', seqpacket: 'unix-seqpacket' };
const TYPE_OF: Record<SocketType, number> = lazily(() => ({ stream: S.SOCK_STREAM, dgram: S.SOCK_DGRAM, seqpacket: S.SOCK_SEQPACKET }));

function kindOf(address: SocketAddress): SocketKind {
  return address.family === 'unix' ? KIND_OF[address.type]! : address.protocol;
}

function domainOf(address: SocketAddress): number {
  return address.family === 'unix' ? S.AF_UNIX : address.version === 4 ? S.AF_INET : S.AF_INET6;
}

/** The kernel form of an address. */
function sockaddrOf(address: SocketAddress): Buffer {
  const r = address.family === 'unix'
    ? native.unixAddress(address.abstract ? address.name : Buffer.from(address.path), address.abstract)
    : native.inetAddress(address.host, address.port, address.zone ?? '');
  if (typeof r === 'number') {
    throw new IpcError('ERR_IPC_INVALID_ADDRESS', r === E.ENODEV
      ? `${address.text}: no network interface is called ${address.family === 'inet' ? address.zone : ''}.`
      : `${address.text} cannot be expressed as a socket address.`, { address: address.text });
  }
  return r;
}

/** The text form of a kernel address, in the scheme of `kind`; `null` for an unbound socket. */
function textOf(kind: SocketKind, sockaddr: Uint8Array): string | null {
  const d = native.decodeAddress(sockaddr);
  if (d[0] === 'unnamed') return null;
  if (d[0] === 'unix') return `${kind}:${d[2] ? '@' : ''}${d[1].toString('utf8')}`;
  const [, host, port, version, zone] = d;
  const scheme = kind === 'udp' ? 'udp' : 'tcp';
  return version === 6 ? `${scheme}://[${host}${zone ? `%${zone}` : ''}]:${port}` : `${scheme}://${host}:${port}`;
}

/** A socket's own (or, with `peer`, its peer's) address as text. @internal */
export function nameOf(fd: number, kind: SocketKind, peer: boolean): string | null {
  const r = native.socketName(fd, peer);
  return typeof r === 'number' ? null : textOf(kind, r);
}

function fdList(fds: unknown, what = 'fds'): Int32Array | null {
  if (fds === undefined) return null;
  if (!Array.isArray(fds)) throw invalidArgument(what, fds, 'an array of descriptors (numbers or handles with fd)');
  if (fds.length > SCM_MAX_FD) {
    throw new IpcError('ERR_IPC_LIMIT', `${fds.length} descriptors in one message: the kernel passes at most ${SCM_MAX_FD} (SCM_MAX_FD). ` +
      'Send them in several messages.');
  }
  const out = new Int32Array(fds.length);
  fds.forEach((item: unknown, i) => {
    const fd = typeof item === 'number' ? item : item !== null && typeof item === 'object' ? (item as { fd?: unknown }).fd : undefined;
    out[i] = checkInteger(fd, `${what}[${i}]`, 0, 2 ** 31 - 1);
  });
  return out.length === 0 ? null : out;
}

function setBufferSizes(fd: number, opts: { sendBuffer?: unknown; receiveBuffer?: unknown }, address: string): void {
  for (const [key, name] of [['sendBuffer', S.SO_SNDBUF], ['receiveBuffer', S.SO_RCVBUF]] as const) {
    const value = opts[key];
    if (value === undefined) continue;
    const r = native.setSockOpt(fd, S.SOL_SOCKET, name, checkInteger(value, key, 1024, 2 ** 30));
    if (r < 0) throw systemError(r, 'setsockopt', address);
  }
}

function optionalMs(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === Infinity) return Infinity;
  return checkInteger(value, name, 1, 2 ** 31 - 1);
}

interface Settings<T> {
  codec: Codec<T>;
  maxMessageSize: number;
  highWaterMark: number;
  frameTimeout: number;
  idleTimeout: number;
  spin: number;
}

const SOCKET_KEYS = ['codec', 'maxMessageSize', 'highWaterMark', 'frameTimeout', 'idleTimeout', 'spin'] as const;

function settingsOf<T>(opts: MessageSocketOptions<T>): Settings<T> {
  return {
    codec: resolveCodec<T>(opts.codec),
    maxMessageSize: optionalInteger(opts.maxMessageSize, 'maxMessageSize', 0, MAX_FRAME, DEFAULT_MAX_MESSAGE_SIZE),
    highWaterMark: optionalInteger(opts.highWaterMark, 'highWaterMark', 1, 2 ** 40, DEFAULT_HIGH_WATER_MARK),
    frameTimeout: optionalMs(opts.frameTimeout, 'frameTimeout', DEFAULT_FRAME_TIMEOUT),
    idleTimeout: optionalMs(opts.idleTimeout, 'idleTimeout', Infinity),
    spin: checkSpin(opts.spin),
  };
}

/** The socket's kind, read from the kernel (for descriptors handed over). */
function kindOfFd(fd: number): SocketKind {
  const domain = native.getSockOpt(fd, S.SOL_SOCKET, S.SO_DOMAIN);
  const type = native.getSockOpt(fd, S.SOL_SOCKET, S.SO_TYPE);
  if (domain === E.ENOTSOCK || type === E.ENOTSOCK) throw invalidArgument('fd', fd, 'a socket descriptor');
  if (domain < 0) throw systemError(domain, 'getsockopt', `fd ${fd}`, 'Is the descriptor open (passed to this process)?');
  if (domain === S.AF_UNIX) {
    if (type === S.SOCK_STREAM) return 'unix';
    if (type === S.SOCK_SEQPACKET) return 'unix-seqpacket';
    return 'unix-dgram';
  }
  if (domain === S.AF_INET || domain === S.AF_INET6) return type === S.SOCK_STREAM ? 'tcp' : 'udp';
  throw invalidArgument('fd', fd, 'a Unix, TCP or UDP socket');
}

/**
 * What every socket shares: its descriptor, a lane of calls waiting to
 * receive and one of calls waiting to send, readiness, and bounded sleeps
 * for the *Sync calls.
 */
abstract class SocketBase extends Handle implements Pollable {
  /** The kind of socket, as its address scheme names it. */
  readonly kind: SocketKind;
  readonly #fd: number;
  #address: string;
  protected readonly spin: number;
  protected readonly readLane: ReadinessLane;
  protected readonly writeLane: NotifyLane;

  /** `timedWrites`: sends wait on a timer, not on writability (unconnected Unix datagram sockets: see DatagramSocket). */
  protected constructor(fd: number, kind: SocketKind, address: string, spin: number, handedOver = false, timedWrites = false) {
    super();
    this.#fd = this.holdFd(fd, handedOver);
    this.kind = kind;
    this.#address = address;
    this.spin = spin;
    try {
      const watch = this.watch(fd);
      this.readLane = new ReadinessLane(this, spin, watch, READABLE);
      this.writeLane = timedWrites ? new NotifyLane(this, spin, () => undefined, () => this.writesIdle()) : new ReadinessLane(this, spin, watch, WRITABLE);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  get address(): string {
    return this.#address;
  }

  protected set address(text: string) {
    this.#address = text;
  }

  /** The descriptor (blocking, close-on-exec). Throws `ERR_IPC_CLOSED` after `close()`. */
  get fd(): number {
    this.check('fd');
    return this.#fd;
  }

  /** The address this socket is bound to, as the kernel reports it (the real port after port 0); `null` if unbound. */
  get localAddress(): string | null {
    return nameOf(this.fd, this.kind, false);
  }

  /** @internal */
  [pollTarget](): PollTarget {
    return { fd: this.fd, readable: READABLE, writable: WRITABLE, pending: this.bufferedMessage };
  }

  /** @internal Whether a message is complete in what was read ahead (see PollTarget.pending). */
  protected readonly bufferedMessage: (() => boolean) | undefined = undefined;

  /** @internal The raw descriptor for attempts (no closed check: the lanes check). */
  protected get rawFd(): number {
    return this.#fd;
  }

  /**
   * Removes the socket file this socket made when it is closed (or
   * collected): only that file, found by device and inode, since another
   * socket may have taken the path meanwhile.
   */
  protected ownFile(file: SocketFile): void {
    this.holdRelease(() => {
      try {
        const st = lstatSync(file.path);
        if (st.isSocket() && st.dev === file.dev && st.ino === file.ino) unlinkSync(file.path);
      } catch { /* already gone */ }
    });
  }

  /** With timed writes: no send waits any more. */
  protected writesIdle(): void { /* Nothing by default. */ }

  /** Sleeps until the socket is ready for `events`, at most `timeout` ms (-1: no limit). */
  protected sleep(events: number, timeout: number): void {
    const r = native.pollFd(this.#fd, events, timeout);
    if (r < 0) throw systemError(r, 'poll', this.address);
  }

  /**
   * A step: `attempt(spin, timeout)`, then (if nothing and allowed) one
   * sleep and one more attempt. (`timeout` is the step's: a batch's
   * attempt asks its allowance how long it may spin, see batchSend.)
   */
  protected stepOf<R>(events: number, attempt: (spin: number, timeout: number) => R | undefined): Operation<R> {
    return {
      step: (timeout, spin) => {
        const first = attempt(spin, timeout);
        if (first !== undefined || timeout === 0) return first;
        this.sleep(events, timeout);
        return attempt(0, timeout);
      },
    };
  }
}

/** A socket file made by bind, known by device and inode. */
interface SocketFile {
  path: string;
  dev: number;
  ino: number;
}

/** Descriptors received on a stream, with the stream offset of the byte they belong to. */
interface ArrivedFds {
  at: number;
  fds: number[];
}


interface Waiting<T> {
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

/**
 * A connected socket that carries messages: Unix stream (framed), Unix
 * seqpacket (one message per packet), TCP (framed), or one end of a
 * {@link socketPair}.
 *
 * @example
 * ```ts
 * import { connect, listen } from 'ipckit';
 *
 * // An abstract Unix socket name: no file to remove afterwards.
 * const server = listen('unix:@ipckit-example-socket');
 * const client = await connect('unix:@ipckit-example-socket');
 * const connection = await server.accept({ timeout: 1000 });
 * try {
 *   await client.send('hello');
 *   const { data } = await connection.receive({ timeout: 1000 });
 *   console.log(data.toString(), connection.peer?.pid === process.pid); // hello true
 * } finally {
 *   connection.close();
 *   client.close();
 *   server.close();
 * }
 * ```
 */
export class MessageSocket<T = Buffer> extends SocketBase implements AsyncIterable<SocketMessage<T>> {
  readonly #settings: Settings<T>;
  readonly #framed: boolean;
  /** Credentials of the peer (Unix), captured when the connection was made. */
  readonly peer: PeerCredentials | null;
  readonly #remote: string | null;
  // Receiving (framed transports)
  readonly #ahead: ReadAhead;
  readonly #scratch: Buffer;
  #streamIn = 0;
  #streamOut = 0;
  /** Descriptors received and not yet handed out; closed with the socket, or when a dropped socket is collected. */
  readonly #inbox: { arrived: ArrivedFds[] } = { arrived: [] };
  #cutAt = -1;
  #ended = false;
  readonly #fdsOut = new Int32Array(SCM_MAX_FD);
  readonly #meta = new Int32Array(3);
  /** Messages (or a failure) a batch received but did not hand over: receives take these first. */
  readonly #held = new Held<Received | IpcError>();
  // Sending
  #queuedBytes = 0;
  /** The batch of sends queued last on the write lane, which later sends join. */
  #openBatch: OutItem[] | undefined;
  /** Sends made after one went at once in this turn of the code: they go together at its end. */
  #deferred: OutItem[] | undefined;
  #sentThisTurn = false;
  // Failure and timers
  #failure: IpcError | undefined;
  #frameTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  // Request/reply
  #requests: Map<number, Waiting<T>> | undefined;
  #nextId = 1;
  #pump: AbortController | undefined;
  /** Requests being handled, and the most at once (serve's concurrency). */
  #inFlight = 0;
  #concurrency = DEFAULT_CONCURRENCY;
  #slotFree: (() => void) | undefined;
  /** Set by the first request or serve: from then on every message is an envelope. */
  #carriesRequests = false;
  #serving: ((data: T, request: { fds: number[] }) => unknown) | undefined;
  #servedEnd: Waiting<void> | undefined;

  /** @internal */
  constructor(fd: number, kind: SocketKind, settings: Settings<T>, handedOver = false, remote?: string | null, label?: string) {
    const peerName = remote !== undefined ? remote : nameOf(fd, kind, true);
    super(fd, kind, peerName ?? label ?? `${kind} fd ${fd}`, settings.spin, handedOver);
    this.#settings = settings;
    this.#remote = peerName;
    this.#framed = kind === 'unix' || kind === 'tcp';
    this.#ahead = new ReadAhead(this.address, 'maxMessageSize');
    this.#scratch = this.#framed ? EMPTY : Buffer.allocUnsafe(Math.min(DATAGRAM_SCRATCH, Math.max(settings.maxMessageSize, 1)));
    this.peer = kind === 'tcp' ? null : this.#credentials(fd);
    const inbox = this.#inbox;
    const held = this.#held;
    this.holdRelease(() => {
      for (const { fds } of inbox.arrived.splice(0)) for (const received of fds) native.close(received);
      for (const m of held.takeMany(Infinity)) if (!(m instanceof IpcError)) for (const received of m.fds) native.close(received);
    });
    if (kind === 'tcp') native.setSockOpt(fd, S.IPPROTO_TCP, S.TCP_NODELAY, 1);
    this.#touch();
  }

  /**
   * Wraps an inherited socket descriptor (one end of a {@link socketPair}
   * given to this process) and takes ownership of it.
   */
  static fromFd<T = any>(fd: number, options: MessageSocketOptions<T> & { codec: 'json' | 'msgpack' }): MessageSocket<T>;
  static fromFd<T>(fd: number, options: MessageSocketOptions<T> & { codec: Codec<T> }): MessageSocket<T>;
  static fromFd<T = Buffer>(fd: number, options?: MessageSocketOptions<T>): MessageSocket<T>;
  static fromFd<T>(fd: number, options?: MessageSocketOptions<T>): MessageSocket<T> {
    checkInteger(fd, 'fd', 0, 2 ** 31 - 1);
    const settings = settingsOf(checkOptions(options, SOCKET_KEYS));
    const kind = kindOfFd(fd);
    if (kind === 'unix-dgram' || kind === 'udp') {
      throw invalidArgument('fd', fd, 'a connected stream or seqpacket socket (wrap datagram sockets with DatagramSocket.fromFd)');
    }
    return new MessageSocket<T>(fd, kind, settings, true);
  }

  /** The peer's address (`null` for an unbound Unix peer or a socket pair). */
  get remoteAddress(): string | null {
    return this.#remote;
  }

  /** Bytes of sends waiting for the peer to read. */
  get pendingBytes(): number {
    return this.#queuedBytes;
  }

  protected override readonly bufferedMessage = (): boolean => !this.closed &&
    (this.#held.size > 0 || (this.#framed && this.#ahead.complete(this.#settings.maxMessageSize)));

  /** @internal A connection closed by a failure (a frame timeout, an oversized frame) reports that failure from then on. */
  override closedError(what: string): IpcError {
    return this.#failure ?? super.closedError(what);
  }

  // ---- messages ----------------------------------------------------------

  /**
   * Sends one message, waiting while the socket's buffer is full (the peer
   * reads slowly). Never blocks the event loop. Fails with `ERR_IPC_LIMIT`
   * when more than `highWaterMark` bytes of sends already wait.
   */
  send(data: Outgoing<T>, options?: WaitOptions): Promise<void> {
    return this.#send('send', data, null, options);
  }

  /** The blocking form of {@link send}. */
  sendSync(data: Outgoing<T>, options?: SyncWaitOptions): void {
    this.#flushDeferred();
    runSync(this.writeLane, 'sendSync', options, NO_KEYS, () => this.#sendOp(this.#encode(data), null));
  }

  /**
   * Sends without waiting: true if the message went, false if the socket is
   * full (nothing sent). On a stream socket a message the kernel took only
   * part of is committed: true, and the rest follows as the peer reads
   * (a failure then closes the connection).
   */
  trySend(data: Outgoing<T>): boolean {
    return this.#trySend('trySend', () => this.#sendOp(this.#encode(data), null));
  }

  /** {@link sendFds} without waiting: true if the message went (or, on a stream, was committed), false if nothing was sent. */
  trySendFds(fds: readonly PassableFd[], data?: Outgoing<T>): boolean {
    return this.#trySend('trySendFds', () => this.#sendOp(this.#encode(data ?? this.#nothing()), this.#fdsFor(fds)));
  }

  #trySend(what: string, prepare: () => Operation<typeof DONE>): boolean {
    let op: Operation<typeof DONE> | undefined;
    this.#flushDeferred();
    const done = tryRun(this.writeLane, what, undefined, NO_KEYS, () => (op = prepare()));
    if (done !== undefined) return true;
    if (op === undefined || !(op as PartsOperation).started) return false;
    const rest = op;
    this.#openBatch = undefined;
    run(this.writeLane, what, undefined, NO_KEYS, () => rest).catch((err: unknown) => {
      this.#fail(err instanceof IpcError ? err : new IpcError('ERR_IPC_INTERNAL', String(err)));
    });
    return true;
  }

  /**
   * Sends one message with descriptors (`SCM_RIGHTS`, Unix sockets): the
   * receiver gets its own copies, close-on-exec, in `fds` of the message.
   * At most {@link SCM_MAX_FD} per message.
   */
  sendFds(fds: readonly PassableFd[], data?: Outgoing<T>, options?: WaitOptions): Promise<void> {
    try {
      return this.#send('sendFds', data ?? this.#nothing(), this.#fdsFor(fds), options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The blocking form of {@link sendFds}. */
  sendFdsSync(fds: readonly PassableFd[], data?: Outgoing<T>, options?: SyncWaitOptions): void {
    const list = this.#fdsFor(fds);
    const bytes = this.#encode(data ?? this.#nothing());
    this.#flushDeferred();
    runSync(this.writeLane, 'sendFdsSync', options, NO_KEYS, () => this.#sendOp(bytes, list));
  }

  /**
   * Receives one message, waiting for it. Rejects with
   * `ERR_IPC_PEER_CLOSED` once the peer has closed and every message it
   * sent was received.
   */
  receive(options?: WaitOptions): Promise<SocketMessage<T>> {
    if (this.#carriesRequests) return Promise.reject(this.#requestMode('receive'));
    return run(this.readLane, 'receive', options, NO_KEYS, () => this.#receiveOp(true));
  }

  /** The blocking form of {@link receive}. */
  receiveSync(options?: SyncWaitOptions): SocketMessage<T> {
    if (this.#carriesRequests) throw this.#requestMode('receiveSync');
    return runSync(this.readLane, 'receiveSync', options, NO_KEYS, () => this.#receiveOp(true));
  }

  /** A message if one is complete now, else `undefined`. */
  tryReceive(): SocketMessage<T> | undefined {
    if (this.#carriesRequests) throw this.#requestMode('tryReceive');
    return tryRun(this.readLane, 'tryReceive', undefined, NO_KEYS, () => this.#receiveOp(true));
  }

  /** Messages until the peer closes (or this socket is closed); a failure ends the loop with its error. */
  async *messages(options?: { signal?: AbortSignal }): AsyncGenerator<SocketMessage<T>, void, undefined> {
    const signal = checkSignal(checkOptions(options, ['signal']).signal);
    // In batches: a connection has one reader, and what a batch takes and the loop does not reach goes back to this socket.
    yield* batchedIteration(() => this.closed, () => {
      if (this.#carriesRequests) return Promise.reject(this.#requestMode('messages'));
      return run(this.readLane, 'receive', { signal }, NO_KEYS, () => this.#rawManyOp(ITERATION_BATCH)).then((b) => b.raw);
    }, (m) => this.#decoded(m), (rest) => this.#held.putBack(rest), ['ERR_IPC_CLOSED', 'ERR_IPC_PEER_CLOSED']);
  }

  /** `for await (const message of socket)`: {@link messages} without a signal. */
  [Symbol.asyncIterator](): AsyncGenerator<SocketMessage<T>, void, undefined> {
    return this.messages();
  }

  /**
   * Receives the next message into `target` (a buffer of yours, reused from
   * call to call: nothing is allocated for the bytes), waiting for it.
   * Resolves to `{ length, fds }`: the message is `target.subarray(0,
   * length)`. The bytes are raw: the codec is not applied. A message longer
   * than `target` fails the call with `ERR_IPC_MESSAGE_TOO_LARGE` and stays,
   * for a call with a larger target.
   */
  receiveInto(target: Uint8Array, options?: WaitOptions): Promise<SocketReceivedInto> {
    if (this.#carriesRequests) return Promise.reject(this.#requestMode('receiveInto'));
    return run(this.readLane, 'receiveInto', options, NO_KEYS, () => this.#receiveIntoOp(target));
  }

  /** The blocking form of {@link receiveInto}. */
  receiveIntoSync(target: Uint8Array, options?: SyncWaitOptions): SocketReceivedInto {
    if (this.#carriesRequests) throw this.#requestMode('receiveIntoSync');
    return runSync(this.readLane, 'receiveIntoSync', options, NO_KEYS, () => this.#receiveIntoOp(target));
  }

  /** {@link receiveInto} if a message is there now, else `undefined`. */
  tryReceiveInto(target: Uint8Array): SocketReceivedInto | undefined {
    if (this.#carriesRequests) throw this.#requestMode('tryReceiveInto');
    return tryRun(this.readLane, 'tryReceiveInto', undefined, NO_KEYS, () => this.#receiveIntoOp(target));
  }

  // ---- batches -------------------------------------------------------------

  /**
   * Sends `messages` in order, each as {@link send} would, waiting while the
   * socket is full; one native call sends as many as fit (a gathered
   * `sendmsg` of their frames on a stream, `sendmmsg` of one packet each on
   * seqpacket). Resolves with how many went: all of them, or, when the
   * timeout, an abort or `close()` came between two messages, that many.
   * When none went it rejects, as `send` does. Every message is encoded
   * first: one the codec refuses sends none. On a stream, a timeout or an
   * abort that lands inside a message closes the connection, as for `send`
   * (the error says how many went whole). Counts against `highWaterMark`
   * while it waits behind other sends.
   */
  sendMany(messages: readonly Outgoing<T>[], options?: WaitOptions): Promise<number> {
    return this.#sendBatched('sendMany', options, () => this.#sendManyOp(messages, false));
  }

  /** The blocking form of {@link sendMany}: how many went. */
  sendManySync(messages: readonly Outgoing<T>[], options?: SyncWaitOptions): number {
    this.#flushDeferred();
    return runSync(this.writeLane, 'sendManySync', options, NO_KEYS, () => this.#sendManyOp(messages, false));
  }

  /**
   * Sends what fits now of `messages`, in order: how many went (0 if the
   * socket is full, or sends wait before it). On a stream, a message the
   * kernel took part of is committed, as with {@link trySend}: it counts,
   * and its rest follows as the peer reads (a failure then closes the
   * connection).
   */
  trySendMany(messages: readonly Outgoing<T>[]): number {
    return this.#trySendBatched('trySendMany', () => this.#sendManyOp(messages, true));
  }

  /**
   * Sends the messages of `batch` (a {@link MessageBatch}), in order, as
   * {@link sendMany} sends messages: one native call sends them from the
   * batch's buffer (a gathered `sendmsg` of their frames on a stream,
   * `sendmmsg` on seqpacket), with no JavaScript work per message. The
   * bytes are raw (the codec is not applied). Resolves with how many went;
   * timeouts, aborts and `highWaterMark` work as for {@link sendMany}.
   * Leave the batch alone until the call resolves.
   */
  sendBatch(batch: MessageBatch, options?: WaitOptions): Promise<number> {
    return withBatch(batch, (b, release) => this.#sendBatched('sendBatch', options, () => this.#sendFramesOp(packed(b), false), release));
  }

  /** The blocking form of {@link sendBatch}: how many went. */
  sendBatchSync(batch: MessageBatch, options?: SyncWaitOptions): number {
    this.#flushDeferred();
    return runSync(this.writeLane, 'sendBatchSync', options, NO_KEYS, () => this.#sendFramesOp(packed(idleBatch(batch)), false));
  }

  /** Sends what fits now of `batch`, in order, as {@link trySendMany} does: how many went. */
  trySendBatch(batch: MessageBatch): number {
    return this.#trySendBatched('trySendBatch', () => this.#sendFramesOp(packed(idleBatch(batch)), true));
  }

  /**
   * A batched send (`op` makes its operation), counted against
   * highWaterMark while it waits behind others; `release` (a batch's) runs
   * once it has settled.
   */
  #sendBatched(name: string, options: WaitOptions | undefined, op: () => GatherOperation<number>, release?: () => void): Promise<number> {
    try {
      this.#flushDeferred();
      this.#openBatch = undefined;
    } catch (err) {
      release?.();
      return Promise.reject(err);
    }
    // Its bytes count as pending from the call until a step completes it (a call that completes at once never
    // counts when the caller looks), or until it settles otherwise.
    let counted = 0;
    const uncount = (): void => {
      this.#queuedBytes -= counted;
      counted = 0;
    };
    return run<number>(this.writeLane, name, options, NO_KEYS, () => {
      const made = op();
      if (this.writeLane.busy) {
        const refusal = this.#overHighWaterMark(name, made.total);
        if (refusal !== undefined) throw refusal;
      }
      counted = made.total;
      this.#queuedBytes += counted;
      const step = made.step;
      made.step = (timeout, spin) => {
        const r = step(timeout, spin);
        if (r !== undefined) uncount();
        return r;
      };
      return made;
    }, false, () => {
      uncount();
      release?.();
    });
  }

  /** A batched try (`op` makes its operation): what it sent, a message it cut committed (its rest follows). */
  #trySendBatched(name: string, op: () => GatherOperation<number>): number {
    let made: GatherOperation<number> | undefined;
    this.#flushDeferred();
    const sent = tryRun(this.writeLane, name, undefined, NO_KEYS, () => (made = op())) ?? 0;
    const rest = made?.rest();
    if (rest === undefined) return sent;
    this.#openBatch = undefined;
    run(this.writeLane, name, undefined, NO_KEYS, () => rest).catch((err: unknown) => {
      this.#fail(err instanceof IpcError ? err : new IpcError('ERR_IPC_INTERNAL', String(err)));
    });
    return sent + 1;
  }

  /**
   * Receives several messages at once: waits as {@link receive} does for
   * the first, then takes every message already there, up to `max` (1 to
   * 1024, default 64). Never an empty array. A message the codec refuses
   * ends the batch (the ones before it are returned, the next receive fails
   * with its `ERR_IPC_CODEC`, and the ones after it follow); so does a
   * failure met after the first message (the peer closed, an oversized
   * message), which the next call reports.
   */
  receiveMany(options?: ReceiveManyOptions): Promise<SocketMessage<T>[]> {
    if (this.#carriesRequests) return Promise.reject(this.#requestMode('receiveMany'));
    return run(this.readLane, 'receiveMany', options, MANY_KEYS, (o) => this.#receiveManyOp(o.max));
  }

  /** The blocking form of {@link receiveMany}. */
  receiveManySync(options?: ReceiveManySyncOptions): SocketMessage<T>[] {
    if (this.#carriesRequests) throw this.#requestMode('receiveManySync');
    return runSync(this.readLane, 'receiveManySync', options, MANY_KEYS, (o) => this.#receiveManyOp(o.max));
  }

  /** The messages there now, up to `max`: `[]` if none (or earlier receives wait). */
  tryReceiveMany(options?: { max?: number }): SocketMessage<T>[] {
    if (this.#carriesRequests) throw this.#requestMode('tryReceiveMany');
    return tryRun(this.readLane, 'tryReceiveMany', options, MANY_KEYS, (o) => this.#receiveManyOp(o.max)) ?? [];
  }

  /**
   * Receives messages into `batch` (a {@link MessageBatch} of yours, reused
   * from call to call): clears it, waits as {@link receive} does for the
   * first message, then takes every message already there that fits, up to
   * the batch's room in messages and bytes. Messages land in the batch's
   * own buffer (on a stream, reads unframed there; on seqpacket, one
   * `recvmsg` each, all in one native call): nothing is allocated, and no
   * JavaScript runs, per message. The bytes are raw
   * (the codec is not applied), and a batch has no place for descriptors:
   * any that came with its messages are closed, as `read` closes them.
   * Resolves to how many messages the batch holds (at least one).
   *
   * A message larger than the whole batch stays, and the call fails with
   * `ERR_IPC_MESSAGE_TOO_LARGE`: take it with {@link receive}, or use a
   * larger batch. A failure met after the first message ends the batch,
   * and the next call reports it, as with {@link receiveMany}.
   */
  receiveBatch(batch: MessageBatch, options?: WaitOptions): Promise<number> {
    if (this.#carriesRequests) return Promise.reject(this.#requestMode('receiveBatch'));
    return withBatch(batch, (b, release) => run(this.readLane, 'receiveBatch', options, NO_KEYS, () => this.#receiveBatchOp(b), false, release));
  }

  /** The blocking form of {@link receiveBatch}. */
  receiveBatchSync(batch: MessageBatch, options?: SyncWaitOptions): number {
    if (this.#carriesRequests) throw this.#requestMode('receiveBatchSync');
    return runSync(this.readLane, 'receiveBatchSync', options, NO_KEYS, () => this.#receiveBatchOp(idleBatch(batch)));
  }

  /** {@link receiveBatch} of the messages there now: 0 if none (or earlier receives wait; the batch is then empty). */
  tryReceiveBatch(batch: MessageBatch): number {
    if (this.#carriesRequests) throw this.#requestMode('tryReceiveBatch');
    const b = idleBatch(batch);
    const n = tryRun(this.readLane, 'tryReceiveBatch', undefined, NO_KEYS, () => this.#receiveBatchOp(b));
    if (n !== undefined) return n;
    b.clear();
    return 0;
  }

  /**
   * Writes all of `chunks`, in order, as raw bytes (stream sockets): one
   * gathered `sendmsg`, not a copy into one buffer, waiting while the
   * socket is full. A timeout or abort after part went says how much.
   */
  writev(chunks: readonly (Uint8Array | string)[], options?: WaitOptions): Promise<void> {
    let op: GatherOperation<typeof DONE> | undefined;
    try {
      this.#streamOnly('writev');
      this.#flushDeferred();
      this.#openBatch = undefined;
    } catch (err) {
      return Promise.reject(err);
    }
    return run(this.writeLane, 'writev', options, NO_KEYS, () => (op = this.#writevOp(chunks)))
      .then(() => undefined, (err: unknown) => {
        throw op === undefined ? err : this.#bytesWritten(err, op.written(), op.total);
      });
  }

  /** The blocking form of {@link writev}. */
  writevSync(chunks: readonly (Uint8Array | string)[], options?: SyncWaitOptions): void {
    this.#streamOnly('writevSync');
    this.#flushDeferred();
    let op: GatherOperation<typeof DONE> | undefined;
    try {
      runSync(this.writeLane, 'writevSync', options, NO_KEYS, () => (op = this.#writevOp(chunks)));
    } catch (err) {
      throw op === undefined ? err : this.#bytesWritten(err, op.written(), op.total);
    }
  }

  /** Writes what fits now of `chunks` (stream sockets): the bytes written (0 if the socket is full, or sends wait before it). */
  tryWritev(chunks: readonly (Uint8Array | string)[]): number {
    this.#streamOnly('tryWritev');
    this.#flushDeferred();
    let op: GatherOperation<typeof DONE> | undefined;
    tryRun(this.writeLane, 'tryWritev', undefined, NO_KEYS, () => (op = this.#writevOp(chunks, true)));
    return op?.written() ?? 0;
  }

  /**
   * Reads raw bytes into several buffers in one call (stream sockets;
   * `readv`): fills `targets` in order with what arrived, waiting for the
   * first byte. The number of bytes, or `null` once the peer closed. Up to
   * 1024 buffers. Descriptors that came with these bytes are closed, as
   * with {@link read}.
   */
  readv(targets: readonly Uint8Array[], options?: WaitOptions): Promise<number | null> {
    return run(this.readLane, 'readv', options, NO_KEYS, () => this.#readvOp(targets));
  }

  /** The blocking form of {@link readv}. */
  readvSync(targets: readonly Uint8Array[], options?: SyncWaitOptions): number | null {
    return runSync(this.readLane, 'readvSync', options, NO_KEYS, () => this.#readvOp(targets));
  }

  /** {@link readv} of what arrived: a count, `null` at the end, `undefined` if nothing is there. */
  tryReadv(targets: readonly Uint8Array[]): number | null | undefined {
    return tryRun(this.readLane, 'tryReadv', undefined, NO_KEYS, () => this.#readvOp(targets));
  }

  // ---- request / reply ---------------------------------------------------

  /**
   * Sends a request and resolves to the peer's reply. Several requests may
   * be in flight: each reply is matched to its request by an id, whatever
   * order the peer answers in. The peer answers with {@link serve} (or a
   * server of `serve()` with framing `'requests'`, or anything that speaks
   * the envelope documented in docs/socket.md). A socket that makes or
   * serves requests carries nothing else.
   */
  request(data: Outgoing<T>, options?: RequestOptions): Promise<T> {
    try {
      const opts = checkOptions(options, ['timeout', 'signal', 'fds']);
      const timeout = checkTimeout(opts.timeout);
      const signal = checkSignal(opts.signal);
      const fds = opts.fds === undefined ? null : this.#fdsFor(opts.fds);
      this.check('request');
      const id = this.#nextId;
      this.#nextId = this.#nextId >= 0xffffffff ? 1 : this.#nextId + 1;
      const bytes = envelope(REQUEST, id, this.#encode(data));
      this.#requests ??= new Map();
      const requests = this.#requests;
      if (signal?.aborted) throw abortError('request', this.address, signal);
      const finish = (): void => {
        requests.delete(id);
        this.#maybeStopPump();
      };
      // The engine's pending call keeps the timeout (never before it, whatever Node's timers round) and the abort.
      const pending: Pending<T> = new Pending<T>('request', this.address, timeout, signal, (error) => {
        finish();
        pending.reject(error);
      });
      requests.set(id, {
        resolve: (value) => {
          finish();
          pending.resolve(value);
        },
        reject: (err) => {
          finish();
          pending.reject(err);
        },
      });
      this.#startPump();
      this.#sendBytes('request', bytes, fds, undefined).catch((err: unknown) => requests.get(id)?.reject(err));
      return pending.promise;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Answers the peer's requests with `handler` until the peer closes (the
   * promise then resolves) or this socket fails. Requests are handled as
   * they come, several at once; a handler that throws sends the peer an
   * `ERR_IPC_REMOTE` failure carrying its error's code and message.
   */
  serve(handler: (data: T, request: { fds: number[] }) => Outgoing<T> | Promise<Outgoing<T>>, options?: ServeOptions): Promise<void> {
    if (typeof handler !== 'function') return Promise.reject(invalidArgument('handler', handler, 'a function'));
    if (this.#serving !== undefined) return Promise.reject(invalidArgument('handler', handler, 'one handler: this socket is served already'));
    try {
      this.#concurrency = optionalInteger(checkOptions(options, ['concurrency']).concurrency, 'concurrency', 1, 1_000_000, DEFAULT_CONCURRENCY);
      this.check('serve');
    } catch (err) {
      return Promise.reject(err);
    }
    this.#serving = handler;
    return new Promise<void>((resolve, reject) => {
      this.#servedEnd = { resolve, reject };
      this.#startPump();
    });
  }

  // ---- raw bytes ----------------------------------------------------------

  /**
   * Reads raw bytes (stream sockets): up to `maxBytes` of what arrived,
   * `null` once the peer closed. For programs that speak their own protocol;
   * do not mix with framed messages on one socket.
   */
  read(options?: WaitOptions & { maxBytes?: number }): Promise<Buffer | null> {
    return run(this.readLane, 'read', options, ['maxBytes'], (o) => this.#readOp(o.maxBytes));
  }

  /** The blocking form of {@link read}. */
  readSync(options?: SyncWaitOptions & { maxBytes?: number }): Buffer | null {
    return runSync(this.readLane, 'readSync', options, ['maxBytes'], (o) => this.#readOp(o.maxBytes));
  }

  /** Raw bytes if some arrived, `null` at the end, `undefined` if none yet. */
  tryRead(options?: { maxBytes?: number }): Buffer | null | undefined {
    return tryRun(this.readLane, 'tryRead', options, ['maxBytes'], (o) => this.#readOp(o.maxBytes));
  }

  /** Writes raw bytes (stream sockets), all of them, waiting while the socket is full. */
  write(data: Uint8Array | string, options?: WaitOptions): Promise<void> {
    try {
      this.#streamOnly('write');
      return this.#sendBytes('write', toBytes(data), null, options, false);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The blocking form of {@link write}. */
  writeSync(data: Uint8Array | string, options?: SyncWaitOptions): void {
    this.#streamOnly('writeSync');
    this.#flushDeferred();
    const bytes = toBytes(data);
    runSync(this.writeLane, 'writeSync', options, NO_KEYS, () => this.#streamOp(null, bytes, null));
  }

  /** Writes what fits now of raw bytes (stream sockets): the number written (0 if the socket is full, or sends wait before it). */
  tryWrite(input: Uint8Array | string): number {
    this.#streamOnly('tryWrite');
    const data = toBytes(input);
    this.#flushDeferred();
    let written = 0;
    tryRun(this.writeLane, 'tryWrite', undefined, NO_KEYS, () => ({
      step: () => {
        const n = native.sendMsg(this.rawFd, data, 0, realByteLength(data), null, null, 0);
        if (n === E.EAGAIN) return undefined;
        if (n < 0) throw this.#sendError(n);
        written = n;
        this.#touch();
        return DONE;
      },
    }));
    return written;
  }

  /**
   * Closes the sending direction (`shutdown(SHUT_WR)`) once every send made
   * before has been written: the peer reads the end of the data after the
   * rest.
   */
  end(): void {
    this.check('end');
    this.#flushDeferred();
    const shut = (): typeof DONE => {
      const r = native.shutdown(this.rawFd, S.SHUT_WR);
      if (r < 0 && r !== E.ENOTCONN) throw systemError(r, 'shutdown', this.address);
      return DONE;
    };
    if (!this.writeLane.busy) {
      shut();
      return;
    }
    this.#openBatch = undefined;
    run(this.writeLane, 'end', undefined, NO_KEYS, () => ({ step: shut })).catch(() => undefined);
  }

  /**
   * Closes the socket. Sends deferred to the end of this turn of the code
   * go first, as far as the kernel takes them now; sends still waiting for
   * room reject with `ERR_IPC_CLOSED`.
   */
  override close(): void {
    if (!this.closed) this.#flushDeferred();
    super.close();
  }

  /** A Node `Duplex` over the raw bytes of this stream socket; destroying it closes the socket. */
  toStream(options?: StreamOptions): Duplex {
    this.check('toStream');
    this.#streamOnly('toStream');
    const opts = checkOptions(options, ['highWaterMark']);
    const hwm = opts.highWaterMark === undefined ? undefined : checkInteger(opts.highWaterMark, 'highWaterMark', 1, 2 ** 31 - 1);
    const stream: Duplex = new Duplex({
      ...(hwm === undefined ? {} : { highWaterMark: hwm }),
      read: (size) => {
        this.read({ maxBytes: Math.max(1, Math.min(size, READ_SIZE)) }).then((chunk) => stream.push(chunk), (err: unknown) => stream.destroy(err as Error));
      },
      write: (chunk: Buffer, _encoding, done) => {
        this.write(chunk).then(() => done(), (err: unknown) => done(err as Error));
      },
      final: (done) => {
        try {
          this.end();
          done();
        } catch (err) {
          done(err as Error);
        }
      },
      destroy: (err, done) => {
        this.close();
        done(err);
      },
    });
    return stream;
  }

  protected override released(): void {
    clearTimeout(this.#frameTimer);
    clearTimeout(this.#idleTimer);
    // Sends deferred to the end of the turn never started.
    const deferred = this.#deferred;
    this.#deferred = undefined;
    if (deferred !== undefined) {
      const error = this.closedError('send');
      for (const item of deferred) item.reject(error);
    }

    this.#pump?.abort();
    this.#pump = undefined;
    const error = this.closedError('request');
    for (const waiting of [...(this.#requests?.values() ?? [])]) waiting.reject(error);
    const served = this.#servedEnd;
    this.#servedEnd = undefined;
    if (served !== undefined) {
      if (this.#failure === undefined || this.#failure.code === 'ERR_IPC_PEER_CLOSED') served.resolve();
      else served.reject(this.#failure);
    }
  }

  // ---- internals -----------------------------------------------------------

  #credentials(fd: number): PeerCredentials | null {
    const out = new Int32Array(3);
    if (native.peerCredentials(fd, out) < 0) return null;
    const peer: PeerCredentials = { pid: out[0]!, uid: out[1]! >>> 0, gid: out[2]! >>> 0 };
    // The pid descriptor is opened when first asked for (a descriptor per connection up front would halve
    // the connections a process can hold); the kernel keeps naming the process of connect time.
    let pidfd: number | undefined | null = null;
    Object.defineProperty(peer, 'pidfd', {
      enumerable: true,
      get: (): number | undefined => {
        if (pidfd === null && !this.closed && out[0]! > 0) {
          const r = native.peerPidfd(fd);
          pidfd = r >= 0 ? this.holdFd(r) : undefined;
        }
        return pidfd ?? undefined;
      },
    });
    return Object.freeze(peer);
  }

  /** What a sendFds without data sends: no bytes, or null through a codec. */
  #nothing(): Outgoing<T> {
    return (this.#settings.codec === RAW ? Buffer.alloc(0) : null) as Outgoing<T>;
  }

  #encode(data: Outgoing<T>): Uint8Array {
    return encodeWith(this.#settings.codec, data as T, this.address);
  }

  #fdsFor(fds: readonly PassableFd[]): Int32Array | null {
    if (this.kind === 'tcp') throw invalidArgument('fds', fds, 'none: descriptors pass only over Unix sockets');
    return fdList(fds);
  }

  #streamOnly(what: string): void {
    if (!this.#framed) throw invalidArgument(what, this.kind, 'a stream socket (unix: or tcp://): seqpacket sockets carry messages only');
  }

  #requestMode(what: string): IpcError {
    return invalidArgument(what, this.address, 'a socket that carries no requests: this one makes or serves requests, so its messages are the replies and requests');
  }

  /** Restarts the idle timer. */
  #touch(): void {
    if (this.#settings.idleTimeout === Infinity) return;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => this.#fail(new IpcError('ERR_IPC_TIMEOUT',
      `${this.address}: nothing was sent or received for ${this.#settings.idleTimeout} ms (idleTimeout); the connection was closed.`,
      { address: this.address })), this.#settings.idleTimeout);
    this.#idleTimer.unref();
  }

  /** Closes the connection because of `error`: pending and later calls fail with it. */
  #fail(error: IpcError): void {
    if (this.closed) return;
    this.#failure = error;
    this.close();
  }

  #send(what: string, data: Outgoing<T>, fds: Int32Array | null, options: WaitOptions | undefined): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = this.#encode(data);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#sendBytes(what, bytes, fds, options);
  }

  /** Sends `bytes` as one message (framed: true) or as raw bytes, counting what waits against highWaterMark. */
  #sendBytes(what: string, bytes: Uint8Array, fds: Int32Array | null, options: WaitOptions | undefined, message = true): Promise<void> {
    // Stream sends that only close() can interrupt, and carry no descriptors, queue together: one wait, one
    // sendmsg for as many as fit. (A send with descriptors goes alone: the receiver gives them to the message
    // holding the last byte of the buffer they came with, where the kernel ends a receive.)
    const joins = this.#framed && fds === null && (options === undefined || (options.timeout === undefined && options.signal === undefined));
    if (!this.writeLane.busy) {
      if (joins && (this.#sentThisTurn || this.#deferred !== undefined)) {
        // A second send in one turn of the code: it waits for the end of the turn, with every other one (the
        // first went at once, so a lone message never waits), and they go out in one sendmsg.
        return this.#queueInBatch(what, message, bytes, true);
      }
      this.#flushDeferred();
      if (!this.writeLane.busy) {
        this.#openBatch = undefined;
        if (joins) this.#markSent();
        return run(this.writeLane, what, options, NO_KEYS, () => this.#sendOp(bytes, fds, message));
      }
    }
    if (joins) return this.#queueInBatch(what, message, bytes, false);
    const size = realByteLength(bytes);
    const refusal = this.#overHighWaterMark(what, size);
    if (refusal !== undefined) return Promise.reject(refusal);
    this.#flushDeferred();
    this.#openBatch = undefined;
    this.#queuedBytes += size;
    return run(this.writeLane, what, options, NO_KEYS, () => this.#sendOp(bytes, fds, message))
      .finally(() => { this.#queuedBytes -= size; });
  }

  /** The ERR_IPC_LIMIT of a send that would pass highWaterMark, or undefined. */
  #overHighWaterMark(what: string, size: number): IpcError | undefined {
    if (this.#queuedBytes === 0 || this.#queuedBytes + size <= this.#settings.highWaterMark) return undefined;
    return new IpcError('ERR_IPC_LIMIT', `${what} on ${this.address}: ${this.#queuedBytes} bytes of sends already wait for the ` +
      `peer to read, and this one would pass highWaterMark (${this.#settings.highWaterMark}). Await earlier sends before sending more, ` +
      'or raise highWaterMark.', { address: this.address });
  }

  /** Notes that a send went at once in this turn; at its end, the sends deferred meanwhile go. */
  #markSent(): void {
    if (this.#sentThisTurn) return;
    this.#sentThisTurn = true;
    queueMicrotask(this.#endTurn);
  }

  readonly #endTurn = (): void => {
    this.#sentThisTurn = false;
    this.#flushDeferred();
  };

  /** Starts the batch deferred to the end of the turn (before any send that must not overtake it). */
  #flushDeferred(): void {
    const batch = this.#deferred;
    // A connection that failed (a send cut short) writes nothing more.
    if (batch === undefined || this.#failure !== undefined) return;
    this.#deferred = undefined;
    if (this.closed) return;
    this.#openBatch = batch;
    this.#runBatch(batch);
  }

  #runBatch(batch: OutItem[]): void {
    run(this.writeLane, 'send', undefined, NO_KEYS, () => this.#batchOp(batch)).catch((err: unknown) => {
      for (const left of batch.splice(0)) left.reject(err);
    });
  }

  /**
   * Adds a send to the batch queued last (or to the one deferred to the end
   * of the turn, or starts one); resolves once its bytes are all written.
   */
  #queueInBatch(what: string, message: boolean, data: Uint8Array, deferred: boolean): Promise<void> {
    try {
      this.check(what);
    } catch (err) {
      return Promise.reject(err);
    }
    // Sizes from the memory (see isBytes): the frame's header says what is written.
    const size = realByteLength(data);
    if (message && size > MAX_FRAME) return Promise.reject(this.#tooLarge(size));
    const refusal = this.#overHighWaterMark(what, size);
    if (refusal !== undefined) return Promise.reject(refusal);
    this.#queuedBytes += size;
    const head = message ? frameHead(size) : null;
    return new Promise<void>((resolve, reject) => {
      const item: OutItem = { head, data, size, headOffset: 0, dataOffset: 0, resolve, reject };
      const open = deferred ? this.#deferred : this.#openBatch;
      if (open !== undefined) {
        open.push(item);
        return;
      }
      const batch = [item];
      if (deferred) {
        this.#deferred = batch;
        this.#markSent();
        return;
      }
      this.#openBatch = batch;
      this.#runBatch(batch);
    }).finally(() => { this.#queuedBytes -= size; });
  }

  /** Sends a message: framed on stream sockets, one packet on seqpacket (or, message: false, raw bytes). */
  #sendOp(bytes: Uint8Array, fds: Int32Array | null, message = true): Operation<typeof DONE> {
    if (!this.#framed) return this.#packetOp(bytes, fds);
    if (!message) return this.#streamOp(null, bytes, fds);
    const size = realByteLength(bytes);
    if (size > MAX_FRAME) throw this.#tooLarge(size);
    return this.#streamOp(frameHead(size), bytes, fds);
  }

  /**
   * The error of a send whose buffer shrank or was detached while it waited, `written` of its `total` bytes (frame
   * header included) written. Part of a message written: the connection is closed, as for a send cut short.
   */
  #changed(written: number, framed: boolean, total: number): IpcError {
    const changed = batchChanged(this.address, true);
    if (written === 0) return changed;
    if (!framed) return new IpcError(changed.code, `${changed.message} ${written} of ${total} bytes had been written.`, { address: this.address });
    if (this.#failure !== undefined) return this.#failure;
    const failure = new IpcError(changed.code, `${changed.message} Part of the message had been written (${written} of ${total} bytes), ` +
      'so the connection was closed: the peer would have read what follows as the rest of it.', { address: this.address });
    this.#fail(failure);
    return failure;
  }

  #tooLarge(size: number): IpcError {
    return new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `A ${size}-byte message exceeds the framing limit of ${MAX_FRAME} bytes.`, { address: this.address });
  }

  /**
   * Writes `head` (a frame's length prefix, or nothing) then `data`, from
   * where the last attempt stopped, in one sendmsg (no copy of the
   * message); descriptors go with the first byte.
   */
  #streamOp(head: Buffer | null, data: Uint8Array, fds: Int32Array | null): PartsOperation {
    let headOffset = 0;
    let dataOffset = 0;
    let pending = fds;
    const headLength = head === null ? 0 : head.length;
    // The length the frame's header says (from the memory, see isBytes): a buffer that shrinks (or is detached) while
    // the send waits fails it.
    const length = realByteLength(data);
    const op = this.stepOf(C.POLLOUT, (spin) => {
      while (headOffset < headLength || dataOffset < length || pending !== null) {
        if (realByteLength(data) < length) throw this.#changed(headOffset + dataOffset, head !== null, headLength + length);
        const n = native.sendMsg(this.rawFd, data, dataOffset, length - dataOffset, pending, null, spin,
          headOffset < headLength ? head! : undefined, headOffset);
        if (n === E.EAGAIN) {
          op.started = headOffset > 0 || dataOffset > 0;
          return undefined;
        }
        if (n < 0) throw this.#sendError(n);
        pending = null;
        const fromHead = Math.min(n, headLength - headOffset);
        headOffset += fromHead;
        dataOffset += n - fromHead;
      }
      this.#touch();
      return DONE;
    }) as PartsOperation;
    op.started = false;
    op.interrupted = (error) => {
      if (headOffset === 0 && dataOffset === 0) return undefined;
      if (head === null) {
        // Raw bytes carry no boundaries to break: say how far the write got, as a pipe does.
        return new IpcError(error.code, `${error.message} ${dataOffset} of ${length} bytes had been written.`, { address: this.address, cause: error.cause });
      }
      if (this.#failure !== undefined) return this.#failure;
      // The peer would read what follows as the rest of this message: the connection cannot go on.
      const failure = new IpcError(error.code, `${error.message} Part of the message had been written (${headOffset + dataOffset} of ` +
        `${headLength + length} bytes), so the connection was closed: the peer would have read what follows as the rest of it.`,
      { address: this.address, cause: error.cause });
      this.#fail(failure);
      return failure;
    };
    return op;
  }

  /**
   * Writes a batch of queued sends in order, as many per sendmsg as fit
   * ({@link MAX_PARTS}, {@link MAX_BATCH}); each send resolves as soon as
   * its last byte is written. Sends added while it waits join it.
   */
  #batchOp(batch: OutItem[]): Operation<typeof DONE> {
    let first = 0;
    return this.stepOf(C.POLLOUT, (spin) => {
      while (first < batch.length) {
        const parts: Uint8Array[] = [];
        let bytes = 0;
        for (let i = first; i < batch.length && parts.length < MAX_PARTS && bytes < MAX_BATCH; i++) {
          const item = batch[i]!;
          const real = realByteLength(item.data);
          if (real < item.size) {
            // Its buffer shrank (or was detached) while it waited: it fails, alone while none of it is written.
            const written = (item.head === null ? 0 : item.headOffset) + item.dataOffset;
            if (written > 0) throw this.#changed(written, item.head !== null, (item.head === null ? 0 : item.head.length) + item.size);
            batch.splice(i--, 1);
            item.reject(batchChanged(this.address, true));
            continue;
          }
          // Only the first may be written in part: the others go as they are (no view to allocate, unless it grew).
          if (item.head !== null && item.headOffset < item.head.length) parts.push(item.headOffset === 0 ? item.head : item.head.subarray(item.headOffset));
          if (item.dataOffset < item.size) {
            parts.push(item.dataOffset === 0 && real === item.size ? item.data : viewFrom(item.data, item.dataOffset, item.size));
          }
          bytes += (item.head === null ? 0 : item.head.length - item.headOffset) + item.size - item.dataOffset;
        }
        const n = parts.length === 0 ? 0 : native.sendParts(this.rawFd, parts, null, spin);
        if (n === E.EAGAIN) return undefined;
        if (n < 0) throw this.#sendError(n);
        let left = n;
        while (first < batch.length) {
          const item = batch[first]!;
          const fromHead = Math.min(left, item.head === null ? 0 : item.head.length - item.headOffset);
          item.headOffset += fromHead;
          left -= fromHead;
          const fromData = Math.min(left, item.size - item.dataOffset);
          item.dataOffset += fromData;
          left -= fromData;
          if (item.dataOffset < item.size || (item.head !== null && item.headOffset < item.head.length)) break;
          item.resolve();
          first++;
        }
      }
      // Written whole: later sends start a new batch.
      if (this.#openBatch === batch) this.#openBatch = undefined;
      batch.length = 0;
      this.#touch();
      return DONE;
    });
  }

  /** One seqpacket message. */
  #packetOp(bytes: Uint8Array, fds: Int32Array | null): Operation<typeof DONE> {
    // The kernel takes the message from your buffer when there is room: one that changed size while the call waited
    // fails, rather than send what it holds then.
    const size = realByteLength(bytes);
    return this.stepOf(C.POLLOUT, (spin) => {
      if (realByteLength(bytes) !== size) throw batchChanged(this.address, true);
      const n = native.sendMsg(this.rawFd, bytes, 0, size, fds, null, spin);
      if (n >= 0) {
        this.#touch();
        return DONE;
      }
      if (n === E.EAGAIN) return undefined;
      throw this.#sendError(n);
    });
  }

  #sendError(n: number): IpcError {
    if (n === E.EPIPE || n === E.ECONNRESET || n === E.ENOTCONN) {
      return new IpcError('ERR_IPC_PEER_CLOSED', `send on ${this.address}: the other end closed the connection (${n === E.EPIPE ? 'EPIPE' : n === E.ECONNRESET ? 'ECONNRESET' : 'ENOTCONN'}).`,
        { address: this.address, errno: n, syscall: 'sendmsg' });
    }
    if (n === E.EMSGSIZE) {
      return new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `send on ${this.address}: the message is larger than a ${this.kind} socket can carry in one ` +
        'packet. Send less, or raise the send buffer (sendBuffer option; net.core.wmem_max bounds it).', { address: this.address, errno: n, syscall: 'sendmsg' });
    }
    if (n === -native.extraErrno.ETOOMANYREFS!) {
      return new IpcError('ERR_IPC_LIMIT', `send on ${this.address}: the kernel refused the descriptors (ETOOMANYREFS): too many are in flight ` +
        'in unread messages, or the limit of open files is reached. Let the receiver catch up.', { address: this.address, errno: n, syscall: 'sendmsg' });
    }
    return systemError(n, 'send', this.address);
  }

  /** One message (a held one first), or (inner: false) one envelope for the request pump. */
  #receiveOp(decode: boolean): Operation<SocketMessage<T>> {
    return this.stepOf(C.POLLIN, (spin) => {
      const m = this.#held.take() ?? this.#nextMessage(spin);
      if (m === undefined) return undefined;
      this.#touch();
      if (!decode) return { data: (m as Received).data as unknown as T, fds: (m as Received).fds };
      return this.#decoded(m);
    });
  }

  /**
   * The next message copied into `target`: a held one first; else a frame
   * from what was read ahead, or a packet from the reused scratch buffer,
   * neither copied before. One longer than the target stays (a copy held
   * in front) and fails the call.
   */
  #receiveIntoOp(target: unknown): Operation<SocketReceivedInto> {
    const into = checkBytes(target, 'target');
    return this.stepOf(C.POLLIN, (spin) => {
      const held = this.#held.take();
      if (held !== undefined) return this.#copyInto(held, into);
      // A view of what was read (the stream's slab, the packet scratch buffer), copied at once.
      const m = this.#framed ? this.#nextFrame(spin, false) : this.#nextPacket(spin, false);
      return m === undefined ? undefined : this.#copyInto(m, into);
    });
  }

  /** A message (or a held failure) copied into `into`; one longer stays, held in front, and fails the call. */
  #copyInto(m: Received | IpcError, into: Uint8Array): SocketReceivedInto {
    if (m instanceof IpcError) throw m;
    const room = realByteLength(into);
    if (m.data.length > room) {
      // A view of the slab would keep it alive while held: the held copy is the message's own.
      this.#held.putBack([{ data: Buffer.from(m.data), fds: m.fds }]);
      throw targetTooSmall(this.address, m.data.length, room);
    }
    copyView(into, m.data);
    this.#touch();
    return { length: m.data.length, fds: m.fds };
  }

  /** The next message from the kernel (a frame, or a packet), if one is there. */
  #nextMessage(spin: number): Received | undefined {
    return this.#framed ? this.#nextFrame(spin) : this.#nextPacket(spin);
  }

  /** A received message decoded (a held failure is thrown); one the codec refuses is consumed, its descriptors closed. */
  #decoded(m: Received | IpcError): SocketMessage<T> {
    if (m instanceof IpcError) throw m;
    return { data: decodeClosing(this.#settings.codec, m.data, this.address, m.fds), fds: m.fds };
  }

  /**
   * Held messages first (alone), else the first message (which may wait)
   * and every one there after it, up to `max`. A failure after the first
   * ends the batch and is held, so the next call reports it.
   */
  #receiveManyOp(max: unknown): Operation<SocketMessage<T>[]> {
    const take = this.#rawManyOp(checkMax(max));
    return {
      step: (timeout, spin) => {
        const batch = take.step(timeout, spin);
        return batch === undefined ? undefined : decodeBatch(batch.raw, (m) => this.#decoded(m), this.#held, batch.fromHeld, (_m, error) => error);
      },
    };
  }

  /** The raw messages of a batch: held ones first (alone: `fromHeld`), else as {@link receiveMany} takes them. */
  #rawManyOp(limit: number): Operation<{ raw: (Received | IpcError)[]; fromHeld: boolean }> {
    return this.stepOf(C.POLLIN, (spin) => {
      const raw = this.#held.takeMany(limit);
      const fromHeld = raw.length > 0;
      while (!fromHeld && raw.length < limit) {
        let m: Received | undefined;
        try {
          m = this.#nextMessage(raw.length === 0 ? spin : 0);
        } catch (err) {
          if (raw.length === 0 || !(err instanceof IpcError)) throw err;
          raw.push(err);
          break;
        }
        if (m === undefined) break;
        raw.push(m);
      }
      if (raw.length === 0) return undefined;
      this.#touch();
      return { raw, fromHeld };
    });
  }

  /** Messages into `batch`, after clearing it; see {@link receiveBatch}. */
  #receiveBatchOp(batch: unknown): Operation<number> {
    const b = checkMessageBatch(batch);
    return this.stepOf(C.POLLIN, (spin) => {
      // (A batch transferred while its call waited has no room, and would wait for ever.)
      checkBatchIntact(b, 1, this.address);
      b.clear();
      if (this.#held.size > 0 && !this.#batchFromHeld(b)) return this.#batchTaken(b);
      const wait = b.count > 0 ? 0 : spin;
      // (A failure the fast path met after messages is held: it comes next, alone.)
      if (!this.#framed) {
        if (this.#held.size === 0) this.#packetsIntoBatch(b, wait);
      } else if (this.#framesIntoBatch(b, wait) && this.#held.size === 0) this.#messagesIntoBatch(b, b.count > 0 ? 0 : wait);
      return this.#batchTaken(b);
    });
  }

  /** The count of a batch's step: `undefined` (wait) while it is empty. */
  #batchTaken(batch: MessageBatch): number | undefined {
    if (batch.count === 0) return undefined;
    this.#touch();
    return batch.count;
  }

  /** A message into `batch`, its descriptors closed (a batch has no place for them): false if it does not fit. */
  #intoBatch(batch: MessageBatch, m: Received): boolean {
    if (!pushIfRoom(batch, m.data)) return false;
    for (const fd of m.fds) native.close(fd);
    return true;
  }

  /** Held messages into `batch` as far as they fit, up to a held failure (thrown if it comes first): whether all went. */
  #batchFromHeld(batch: MessageBatch): boolean {
    return batchFromHeld(this.#held, batch, this.address, (m) => m.data, (m) => {
      for (const fd of m.fds) native.close(fd);
    });
  }

  /**
   * Whole frames of a stream into `batch`, after what it holds: what was
   * received ahead, then receives into the batch's buffer, unframed there
   * (native unframe) while they fill it and messages fit; what follows the
   * last message taken is kept ahead. Leaves what this cannot place (a
   * large message read straight into its buffer, more received ahead than
   * the batch has room for, a frame larger than the room left, a broken
   * stream, the end) to {@link #messagesIntoBatch}, which goes message by
   * message: whether it should.
   */
  #framesIntoBatch(batch: MessageBatch, spin: number): boolean {
    const ahead = this.#ahead;
    const max = this.#settings.maxMessageSize;
    if (ahead.direct || ahead.broken || ahead.length > batch.data.length - batch.size) return true;
    this.#batchEnded = false;
    const done = unframeIntoBatch(batch, ahead, max, spin, this.#receiveIntoBatch);
    this.#streamOut += done.consumed;
    if (done.failure !== undefined) {
      if (!(done.failure instanceof IpcError)) throw done.failure;
      // After messages: they come now, and the next call reports it.
      this.#held.keep([done.failure]);
      this.#batchEnded = true;
    }
    // Descriptors that came with the messages taken: a batch has no place for them.
    for (const fd of this.#takeFds(this.#streamOut)) native.close(fd);
    // Descriptors the kernel cut off (MSG_CTRUNC) among them: none would have been kept anyway.
    if (this.#cutAt >= 0 && this.#cutAt < this.#streamOut) this.#cutAt = -1;
    // Part of a message waits for its rest (whole ones the batch had no room for do not).
    if (ahead.inMessage && !ahead.complete(max)) this.#startFrameTimer();
    else this.#stopFrameTimer();
    return this.#batchEnded || done.slow;
  }

  /** Whether the stream ended, or failed after messages, during {@link #framesIntoBatch}. */
  #batchEnded = false;

  /** One receive of {@link #framesIntoBatch}: 0 when nothing is queued or the stream ended (then noted). */
  readonly #receiveIntoBatch = (data: Buffer, at: number, want: number, spin: number): number => {
    this.#readSpin = spin;
    const n = this.#receiveInto(data, at, want);
    if (typeof n === 'number') return n;
    if (n === null) this.#batchEnded = true;
    return 0;
  };

  /**
   * Seqpacket messages into `batch`, after what it holds, straight into its
   * buffer (native recvPackets), while they fit; one that does not stays
   * queued, and one larger than the whole batch is an error when it comes
   * first. Descriptors that came with them are closed. A failure after the
   * first message is held, and the next call reports it.
   */
  #packetsIntoBatch(batch: MessageBatch, spin: number): void {
    const io = this.#packetIo;
    const address = this.address;
    for (;;) {
      io[0] = batch.count;
      io[1] = batch.size;
      io[2] = this.#settings.maxMessageSize;
      const placed = native.recvPackets(this.rawFd, batch.data, batch.lengths, io, batch.count > 0 ? 0 : spin);
      if (placed < 0) throw batchGone(address);
      batch.place(io[0]!, io[1]!);
      const detail = io[4]!;
      let failure: IpcError;
      switch (io[3]) {
        case PACKET_STOP.done:
          return;
        case PACKET_STOP.noRoom:
          if (batch.count === 0) throw batchTooSmall(address, detail, batch);
          return;
        case PACKET_STOP.empty:
          if (!this.#packetsEnded()) {
            batch.lengths[batch.count] = 0;
            batch.place(batch.count + 1, batch.size);
            continue;
          }
          failure = this.#peerClosed();
          break;
        case PACKET_STOP.tooLarge:
          failure = this.#arrivedTooLarge(detail);
          break;
        case PACKET_STOP.cut:
          failure = truncatedError(address);
          break;
        case PACKET_STOP.lost:
          failure = new IpcError('ERR_IPC_TRUNCATED', `A ${detail}-byte message on ${address} was cut and lost: another process ` +
            'received from this socket while a batch was being filled. Give each socket one receiver.', { address });
          break;
        default:
          failure = -detail === E.ECONNRESET ? this.#peerClosed() : systemError(-detail, 'receive', address);
      }
      if (batch.count === 0) throw failure;
      this.#held.keep([failure]);
      return;
    }
  }

  /** io of native recvPackets: [count, size, maxMessageSize, why, detail]. */
  readonly #packetIo = new Float64Array(5);

  /**
   * A stream's messages into `batch` one at a time, after what it holds, as
   * {@link receiveMany} takes them, while they fit; one that does not stays
   * (in the stream, or held when it was taken already), and one larger than
   * the whole batch is an error when it comes first. A failure after the
   * first message is held, and the next call reports it.
   */
  #messagesIntoBatch(batch: MessageBatch, spin: number): void {
    while (batch.count < batch.lengths.length) {
      const next = this.#ahead.nextLength();
      if (next >= 0 && next <= this.#settings.maxMessageSize && next > batch.data.length - batch.size) {
        if (batch.count > 0) return;
        throw batchTooSmall(this.address, next, batch);
      }
      let m: Received | undefined;
      try {
        m = this.#nextFrame(batch.count === 0 ? spin : 0, false, batch.data.length - batch.size);
      } catch (err) {
        if (batch.count === 0 || !(err instanceof IpcError)) throw err;
        this.#held.keep([err]);
        return;
      }
      if (m === undefined) {
        // The next message announces more than the room left: the check above ends the batch (or refuses an empty one).
        const next = this.#ahead.nextLength();
        if (next >= 0 && next <= this.#settings.maxMessageSize && next > batch.data.length - batch.size) continue;
        return;
      }
      if (!this.#intoBatch(batch, m)) {
        // Taken already (a large frame read straight into its buffer): held, with its descriptors, for the next receive.
        this.#held.keep([{ data: Buffer.from(m.data), fds: m.fds }]);
        if (batch.count === 0) throw batchTooSmall(this.address, m.data.length, batch);
        return;
      }
    }
  }

  /**
   * `messages` encoded, then sent from the first not yet sent: frames by
   * gathered writes on a stream, one packet each by sendmmsg on seqpacket.
   * `partial` reports the count when an interruption lands between
   * messages; one landing inside a frame closes the connection.
   */
  #sendManyOp(messages: readonly Outgoing<T>[], tryForm: boolean): GatherOperation<number> {
    return this.#sendFramesOp(encodeBatch(messages, (data) => checkFrame(this.#encode(data), this.address)), tryForm);
  }

  /** {@link sendMany}'s sends, of encoded messages or of a packed batch's. */
  #sendFramesOp(list: GatherList, tryForm: boolean): GatherOperation<number> {
    const total = gatherCount(list);
    if (!this.#framed) {
      const fail = (r: number): IpcError => (r === E.EINVAL || r === LIST_CHANGED ? batchChanged(this.address) : this.#sendError(r));
      const batch = batchSend(total, this.writeLane, tryForm, fail);
      const sizes = listSizes(list);
      let sent = 0;
      const op = this.stepOf(C.POLLOUT, (spin, timeout) => {
        const r = batch.left()
          ? unlessChanged(list, sizes, batch.next[0]!, () => sendMmsgList(this.rawFd, list, null, batch.next, batch.spin(timeout, spin), timeout))
          : 0;
        if (r > 0) {
          sent += r;
          this.#touch();
        }
        return batch.outcome(r);
      }) as GatherOperation<number>;
      op.partial = batch.partial;
      op.total = gatherBytes(list, 0);
      op.written = () => sent;
      op.rest = () => undefined;
      return op;
    }
    const fail = (r: number): IpcError => (r === E.EINVAL || r === LIST_CHANGED ? batchChanged(this.address) : this.#sendError(r));
    const batch = batchSend(total, this.writeLane, tryForm, fail, new Float64Array(3));
    const at = batch.next;
    const cut = (error: IpcError): IpcError => {
      if (this.#failure !== undefined) return this.#failure;
      // The peer would read what follows as the rest of the message cut: the connection cannot go on.
      const failure = new IpcError(error.code, `${error.message} ${at[0]} of ${total} messages had been written whole, and ${at[1]} ` +
        'bytes of the next (with its length prefix), so the connection was closed: the peer would have read what follows as the rest of it.',
      { address: this.address, cause: error.cause });
      this.#fail(failure);
      return failure;
    };
    const op = this.#gatherOp(list, at, true, (r) => {
      // A failure inside a message (its buffer changed under the batch) cuts it, as an interruption would.
      if (r < 0 && r !== E.EAGAIN && at[1]! > 0) throw cut(fail(r));
      return batch.outcome(r);
    }, tryForm);
    op.partial = () => (at[1]! > 0 ? undefined : batch.partial());
    op.interrupted = (error) => (op.written() === 0 ? undefined : cut(error));
    return op;
  }

  /** `chunks` written as raw bytes by gathered writes; DONE once all went (a try: DONE or undefined). */
  #writevOp(chunks: readonly (Uint8Array | string)[], tryForm = false): GatherOperation<typeof DONE> {
    const list = encodeBatch(chunks, (chunk) => toBytes(chunk, 'chunks'), 'chunks');
    const at = new Float64Array(2);
    return this.#gatherOp(list, at, false, (r) => {
      if (r < 0 && r !== E.EAGAIN) throw r === E.EINVAL || r === LIST_CHANGED ? batchChanged(this.address) : this.#sendError(r);
      return at[0]! >= list.length ? DONE : undefined;
    }, tryForm);
  }

  /** {@link gatherOperation} over this socket: non-blocking gathered sendmsg on its (blocking) descriptor. */
  #gatherOp<R>(list: GatherList, at: Float64Array, framed: boolean, outcome: (r: number) => R | undefined, tryForm: boolean): GatherOperation<R> {
    const mode = C.GATHER_SOCKET | (framed ? C.GATHER_FRAMED : 0);
    return gatherOperation(list, at, framed, (l, a, spin, timeout) => {
      const r = writevList(this.rawFd, l, a, mode, spin, timeout);
      if (r > 0) this.#touch();
      return r;
    }, (attempt) => this.stepOf(C.POLLOUT, attempt), outcome, tryForm, (r) => this.#sendError(r));
  }

  /** A timeout or abort of a raw write that wrote part of the data says how much. */
  #bytesWritten(err: unknown, written: number, total: number): unknown {
    if (written === 0 || !(err instanceof IpcError) || (err.code !== 'ERR_IPC_TIMEOUT' && err.code !== 'ERR_IPC_ABORTED')) return err;
    return new IpcError(err.code, `${err.message} ${written} of ${total} bytes had been written.`, { address: this.address, cause: err.cause });
  }

  /** A scattered read of raw bytes: bytes received ahead first, else one non-blocking recvmsg into the targets. */
  #readvOp(targets: unknown): Operation<number | null> {
    this.#streamOnly('readv');
    const list = checkTargets(targets);
    return this.stepOf(C.POLLIN, (spin) => {
      let n: number;
      if (this.#ahead.length > 0) {
        n = spread(this.#ahead, list);
      } else {
        if (this.#ended) return null;
        n = native.readvFd(this.rawFd, list, C.GATHER_SOCKET, spin);
        if (n === E.EAGAIN) return undefined;
        if (n === 0 || n === E.ECONNRESET) {
          this.#ended = true;
          return null;
        }
        if (n < 0) throw systemError(n, 'receive', this.address);
        this.#streamIn += n;
      }
      this.#streamOut += n;
      // Raw reads do not carry descriptors: any that came are closed.
      for (const fd of this.#takeFds(this.#streamOut)) native.close(fd);
      this.#touch();
      return n;
    });
  }

  /** The next complete frame, if there is one. */
  #nextFrame(spin: number, own = true, room = Infinity): Received | undefined {
    let data: Buffer | null | undefined;
    this.#readSpin = spin;
    try {
      data = this.#ahead.message(this.#source, this.#settings.maxMessageSize, SLAB_SIZE, undefined, room);
    } catch (err) {
      if (err instanceof IpcError && (err.code === 'ERR_IPC_MESSAGE_TOO_LARGE' || err.code === 'ERR_IPC_FRAMING')) this.#fail(err);
      throw err;
    }
    if (data === undefined) {
      // Part of a message is here. One a batch has no room for is left unread past its header, and a whole message
      // the batch had no room for never started the timer either: the application may take its time with its batch.
      if (this.#ahead.inMessage && !(this.#ahead.nextLength() > room)) this.#startFrameTimer();
      return undefined;
    }
    this.#stopFrameTimer();
    if (data === null) throw this.#peerClosed();
    const start = this.#streamOut;
    this.#streamOut += FRAME_HEADER + data.length;
    return { data: own ? ownSmall(data) : data, fds: this.#fdsBefore(start, this.#streamOut) };
  }

  /** Descriptors that arrived with bytes before stream offset `end`; an error if the kernel cut some off. */
  #fdsBefore(start: number, end: number): number[] {
    if (this.#cutAt >= 0 && this.#cutAt < end && this.#cutAt >= start) {
      this.#cutAt = -1;
      for (const fd of this.#takeFds(end)) native.close(fd);
      throw truncatedError(this.address);
    }
    return this.#takeFds(end);
  }

  #takeFds(end: number): number[] {
    if (this.#inbox.arrived.length === 0 || this.#inbox.arrived[0]!.at >= end) return NO_FDS;
    const out: number[] = [];
    while (this.#inbox.arrived.length > 0 && this.#inbox.arrived[0]!.at < end) out.push(...this.#inbox.arrived.shift()!.fds);
    return out;
  }

  /** The ByteSource the framing reads from: one non-blocking receive, recording descriptors by stream offset. */
  readonly #source: ByteSource = {
    readChunk: (max: number): Buffer | null | undefined => {
      if (this.#slab.length - this.#slabOffset < SLAB_MIN_FREE) {
        // Zeroed: a message's .buffer exposes the whole slab, which must not hold stale process memory.
        this.#slab = Buffer.alloc(SLAB_SIZE);
        markAsUntransferable(this.#slab.buffer);
        this.#slabOffset = 0;
      }
      const start = this.#slabOffset;
      const n = this.#receiveInto(this.#slab, start, Math.min(max, this.#slab.length - start));
      if (typeof n !== 'number') return n;
      this.#slabOffset = start + n;
      return this.#slab.subarray(start, start + n);
    },
    readChunkInto: (target: Buffer, offset: number, length: number): number | null | undefined => this.#receiveInto(target, offset, length),
  };

  #slab = EMPTY;
  #slabOffset = 0;

  /** Spin budget of the next stream receive (the first of an attempt). */
  #readSpin = 0;

  /** One non-blocking stream receive into target: a count, null at the end, undefined if nothing is there. */
  #receiveInto(target: Buffer, offset: number, length: number): number | null | undefined {
    if (this.#ended) return null;
    const spin = this.#readSpin;
    this.#readSpin = 0;
    const n = native.recvMsg(this.rawFd, target, offset, length, this.#fdsOut, null, this.#meta, 0, spin);
    if (n > 0) {
      const end = this.#streamIn + n;
      this.#noteFds(end - 1);
      this.#streamIn = end;
      return n;
    }
    if (n === 0 || n === E.ECONNRESET) {
      this.#ended = true;
      return null;
    }
    if (n === E.EAGAIN) return undefined;
    throw systemError(n, 'receive', this.address);
  }

  #noteFds(at: number): void {
    const count = this.#meta[1]!;
    if ((this.#meta[0]! & S.MSG_CTRUNC) !== 0) this.#cutAt = at;
    if (count > 0) this.#inbox.arrived.push({ at, fds: Array.from(this.#fdsOut.subarray(0, count)) });
  }

  /** One seqpacket message, if one is there. */
  #nextPacket(spin: number, copy = true): Received | undefined {
    const max = this.#settings.maxMessageSize;
    let buffer = this.#scratch;
    if (max > buffer.length && native.queuedBytes(this.rawFd) > buffer.length) {
      // More is queued than the scratch buffer holds (FIONREAD counts every queued packet): the next packet's
      // own size, peeked, so that a small message never gets (and keeps) a buffer the size of the queue.
      const next = native.recvMsg(this.rawFd, PEEK_BUFFER, 0, 0, this.#fdsOut, null, this.#meta, S.MSG_PEEK | S.MSG_TRUNC, 0);
      if (next > buffer.length && next <= max) buffer = Buffer.allocUnsafe(next);
    }
    let n = native.recvMsg(this.rawFd, buffer, 0, buffer.length, this.#fdsOut, null, this.#meta, S.MSG_TRUNC, spin);
    // A peer that closed with messages of ours unread leaves ECONNRESET, which one receive reports (and clears)
    // before the messages it sent that are still queued: those come first, then the end.
    if (n === E.ECONNRESET) n = native.recvMsg(this.rawFd, buffer, 0, buffer.length, this.#fdsOut, null, this.#meta, S.MSG_TRUNC, 0);
    if (n === E.EAGAIN) return undefined;
    if (n < 0) {
      if (n === E.ECONNRESET) throw this.#peerClosed();
      throw systemError(n, 'receive', this.address);
    }
    const fds = Array.from(this.#fdsOut.subarray(0, this.#meta[1]!));
    if ((this.#meta[0]! & S.MSG_CTRUNC) !== 0) throw truncatedError(this.address);
    if (n === 0 && fds.length === 0 && this.#packetsEnded()) throw this.#peerClosed();
    if (n > max || n > buffer.length) {
      for (const fd of fds) native.close(fd);
      throw this.#arrivedTooLarge(n);
    }
    // (copy: false — a view of the scratch buffer, valid until the next receive: for a caller that copies it at once.)
    return { data: buffer === this.#scratch && copy ? Buffer.from(buffer.subarray(0, n)) : buffer.subarray(0, n), fds };
  }

  /** A message of `n` bytes, over maxMessageSize, arrived and was discarded. */
  #arrivedTooLarge(n: number): IpcError {
    return new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `A ${n}-byte message arrived on ${this.address}, more than maxMessageSize ` +
      `${this.#settings.maxMessageSize}; it was discarded. Raise maxMessageSize if the sender is trusted.`, { address: this.address });
  }

  /**
   * Whether a seqpacket receive of zero bytes (and no descriptor) is the
   * end: only once the peer is gone and nothing else is queued (an empty
   * message otherwise; an empty message that is the very last before the
   * peer closes cannot be told from the end).
   */
  #packetsEnded(): boolean {
    return this.#peerGone() && native.queuedBytes(this.rawFd) <= 0;
  }

  /** Whether the peer has shut down its side (a zero-length read is then the end, not an empty message). */
  #peerGone(): boolean {
    return (native.pollFd(this.rawFd, S.POLLRDHUP, 0) & (S.POLLRDHUP | C.POLLHUP)) !== 0;
  }

  #peerClosed(): IpcError {
    return new IpcError('ERR_IPC_PEER_CLOSED', `${this.address}: the other end closed the connection; every message it sent was received.`,
      { address: this.address });
  }

  #readOp(maxBytes: unknown): Operation<Buffer | null> {
    this.#streamOnly('read');
    const max = optionalInteger(maxBytes, 'maxBytes', 1, 2 ** 30, READ_SIZE);
    return this.stepOf(C.POLLIN, () => {
      if (this.#ahead.length === 0) {
        const chunk = this.#source.readChunk(max);
        if (chunk === undefined || chunk === null) return chunk;
        this.#ahead.push(chunk);
      }
      const bytes = ownSmall(this.#ahead.take(Math.min(max, this.#ahead.length)));
      this.#streamOut += bytes.length;
      // Raw reads do not carry descriptors: any that came are closed.
      for (const fd of this.#takeFds(this.#streamOut)) native.close(fd);
      this.#touch();
      return bytes;
    });
  }

  #startFrameTimer(): void {
    if (this.#frameTimer !== undefined || this.#settings.frameTimeout === Infinity) return;
    const ms = this.#settings.frameTimeout;
    this.#frameTimer = setTimeout(() => this.#fail(new IpcError('ERR_IPC_TIMEOUT',
      `${this.address}: a message took more than ${ms} ms to arrive whole (frameTimeout); the connection was closed.`,
      { address: this.address })), ms);
    this.#frameTimer.unref();
  }

  #stopFrameTimer(): void {
    if (this.#frameTimer === undefined) return;
    clearTimeout(this.#frameTimer);
    this.#frameTimer = undefined;
  }

  // ---- the request pump ------------------------------------------------------

  #startPump(): void {
    this.#carriesRequests = true;
    if (this.#pump !== undefined) return;
    const pump = new AbortController();
    this.#pump = pump;
    void this.#runPump(pump.signal);
  }

  #maybeStopPump(): void {
    if (this.#pump === undefined || this.#serving !== undefined || (this.#requests?.size ?? 0) > 0) return;
    this.#pump.abort();
    this.#pump = undefined;
    this.#slotFree?.();
  }

  async #runPump(signal: AbortSignal): Promise<void> {
    for (;;) {
      // At the bound, nothing more is read: the kernel's buffers fill and the peer's sends wait.
      while (this.#inFlight >= this.#concurrency && !signal.aborted) await new Promise<void>((resolve) => { this.#slotFree = resolve; });
      if (signal.aborted) return;
      let message: SocketMessage<T>;
      try {
        message = await run(this.readLane, 'receive', { signal }, NO_KEYS, () => this.#receiveOp(false));
      } catch (err) {
        if (signal.aborted) return;
        const error = err instanceof IpcError ? err : new IpcError('ERR_IPC_INTERNAL', String(err));
        for (const waiting of [...(this.#requests?.values() ?? [])]) waiting.reject(error);
        const served = this.#servedEnd;
        this.#servedEnd = undefined;
        this.#serving = undefined;
        this.#pump = undefined;
        if (served !== undefined) {
          if (error.code === 'ERR_IPC_PEER_CLOSED' || error.code === 'ERR_IPC_CLOSED') served.resolve();
          else served.reject(error);
        }
        return;
      }
      this.#dispatch(message.data as unknown as Buffer, message.fds);
    }
  }

  #dispatch(bytes: Buffer, fds: number[]): void {
    const opened = openEnvelope(bytes);
    if (opened === undefined) {
      for (const fd of fds) native.close(fd);
      this.#fail(new IpcError('ERR_IPC_FRAMING', `${this.address}: a ${bytes.length}-byte message is no request/reply envelope ` +
        '(a kind byte 1-3 and a 4-byte id first); the connection was closed.', { address: this.address }));
      return;
    }
    const { kind, id, body } = opened;
    if (kind === REQUEST) {
      const handler = this.#serving;
      if (handler === undefined) {
        for (const fd of fds) native.close(fd);
        this.#sendBytes('reply', envelope(FAILURE, id, Buffer.from(JSON.stringify({ code: 'ERR_IPC_REMOTE', message: 'nothing serves requests on this socket' }))), null, undefined)
          .catch(() => undefined);
        return;
      }
      let request: T;
      try {
        request = decodeWith(this.#settings.codec, body, this.address);
      } catch (err) {
        for (const fd of fds) native.close(fd);
        this.#sendBytes('reply', failureEnvelope(id, err), null, undefined).catch(() => undefined);
        return;
      }
      this.#inFlight++;
      Promise.resolve()
        .then(() => handler(request, { fds }))
        // A reply the codec cannot encode reaches the requester as a failure, never as silence.
        .then((reply) => envelope(REPLY, id, this.#encode(reply as Outgoing<T>)))
        .catch((err: unknown) => failureEnvelope(id, err))
        .then((out) => this.#sendBytes('reply', out, null, undefined))
        .catch(() => undefined)
        .finally(() => {
          this.#inFlight--;
          const free = this.#slotFree;
          this.#slotFree = undefined;
          free?.();
        });
      return;
    }
    for (const fd of fds) native.close(fd);
    const waiting = this.#requests?.get(id);
    if (waiting === undefined) return;
    if (kind === REPLY) {
      try {
        waiting.resolve(decodeWith(this.#settings.codec, body, this.address));
      } catch (err) {
        waiting.reject(err);
      }
      return;
    }
    let remote: { code?: unknown; message?: unknown } = {};
    try {
      const parsed: unknown = JSON.parse(body.toString('utf8'));
      if (parsed !== null && typeof parsed === 'object') remote = parsed as typeof remote;
    } catch { /* a failure without details */ }
    waiting.reject(new IpcError('ERR_IPC_REMOTE', `The request handler of ${this.address} failed` +
      `${typeof remote.code === 'string' ? ` with ${remote.code}` : ''}: ${typeof remote.message === 'string' ? remote.message : 'no details'}`,
    { address: this.address, cause: remote }));
  }
}

/** A queued stream send: its length prefix and data, how far each is written, and its caller's promise. */
interface OutItem {
  head: Buffer | null;
  data: Uint8Array;
  /** The bytes of `data` to write, fixed when the send was made (its header says so). */
  size: number;
  headOffset: number;
  dataOffset: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function frameHead(length: number): Buffer {
  const head = Buffer.allocUnsafe(FRAME_HEADER);
  head.writeUInt32BE(length, 0);
  return head;
}

/** Most parts and bytes one sendmsg of queued sends carries. */
const MAX_PARTS = 512;
const MAX_BATCH = 1024 * 1024;

/** A send of several parts, which knows whether it has written any byte yet. */
interface PartsOperation extends Operation<typeof DONE> {
  started: boolean;
}

/** A message as it came off the socket: its bytes and descriptors. */
interface Received {
  data: Buffer;
  fds: number[];
}

const RAW = resolveCodec<Buffer>(undefined);
const EMPTY = Buffer.alloc(0);
const PEEK_BUFFER = Buffer.alloc(1);

/** Stream messages smaller than this are copied out of their slab, so that keeping one does not keep 256 KiB. */
const OWN_BELOW = 32 * 1024;

function ownSmall(data: Buffer): Buffer {
  return data.length < OWN_BELOW && data.buffer.byteLength === SLAB_SIZE ? Buffer.from(data) : data;
}
const NO_KEYS: readonly string[] = [];
const NO_FDS: number[] = [];



/** `bytes` decoded by `codec`; a message the codec refuses is consumed, and the descriptors that came with it are closed. */
function decodeClosing<T>(codec: Codec<T>, bytes: Buffer, where: string, fds: readonly number[]): T {
  try {
    return decodeWith(codec, bytes, where);
  } catch (err) {
    for (const fd of fds) native.close(fd);
    throw err;
  }
}

/** A message longer than a receiveInto target: it stays, and this error says so. */
function targetTooSmall(address: string, length: number, room: number): IpcError {
  return new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `The next message on ${address} is ${length} bytes, more than the ${room} of the ` +
    `target; it stays. Receive it into a target of at least ${length} bytes.`, { address });
}

function truncatedError(address: string): IpcError {
  return new IpcError('ERR_IPC_TRUNCATED', `${address}: the descriptors sent with a message could not all be received (the kernel cut the ` +
    'control message): most often this process reached its limit of open files (ulimit -n, RLIMIT_NOFILE). Every descriptor that arrived ' +
    'was closed and the message was discarded; raise the limit or close descriptors.', { address });
}

// ---- servers -------------------------------------------------------------------

/** What a server reports of a connection it refused (the allow-lists). */
export interface RefusedPeer extends Omit<PeerCredentials, 'pidfd'> {
  /** Why it was refused, for logs: `uid 1001 / gid 1001 is not allowed`, or that its credentials are unknown. */
  reason: string;
}

/**
 * A listening socket (Unix stream or seqpacket, TCP). Connections come from
 * {@link accept} (the blocking triple), async iteration, or the
 * `'connection'` event.
 *
 * @example
 * ```ts
 * import { connect, listen } from 'ipckit';
 *
 * const server = listen('unix:@ipckit-example-server');
 * const client = await connect('unix:@ipckit-example-server');
 * await client.send('hello');
 * for await (const connection of server) {
 *   for await (const { data } of connection) {
 *     await connection.send(`echo: ${data.toString()}`);
 *     break; // one message is enough here
 *   }
 *   connection.close();
 *   break; // and one connection
 * }
 * console.log((await client.receive({ timeout: 1000 })).data.toString()); // echo: hello
 * client.close();
 * server.close();
 * ```
 */
export class SocketServer<T = Buffer> extends SocketBase implements AsyncIterable<MessageSocket<T>> {
  readonly #settings: Settings<T>;
  readonly #allowUids: ReadonlySet<number> | undefined;
  readonly #allowGids: ReadonlySet<number> | undefined;
  /** The socket file this server made (dev and inode), removed on close. */
  readonly #events = new EventEmitter();
  #accepting = false;
  /** Connections refused by the allow-lists so far. */
  refused = 0;

  /** @internal */
  constructor(fd: number, kind: SocketKind, settings: Settings<T>, allowUids: number[] | undefined, allowGids: number[] | undefined,
    file: SocketFile | undefined) {
    super(fd, kind, nameOf(fd, kind, false) ?? kind, settings.spin);
    this.#settings = settings;
    this.#allowUids = allowUids === undefined ? undefined : new Set(allowUids);
    this.#allowGids = allowGids === undefined ? undefined : new Set(allowGids);
    if (file !== undefined) this.ownFile(file);
  }

  /** The port a TCP server listens on (the one the kernel chose for port 0). */
  get port(): number {
    const m = /:(\d+)$/.exec(this.address);
    return m ? Number(m[1]) : 0;
  }

  /** Waits for the next connection (refused ones are closed and counted, not returned). */
  accept(options?: WaitOptions): Promise<MessageSocket<T>> {
    return run(this.readLane, 'accept', options, NO_KEYS, () => this.#acceptOp());
  }

  /** The blocking form of {@link accept}. */
  acceptSync(options?: SyncWaitOptions): MessageSocket<T> {
    return runSync(this.readLane, 'acceptSync', options, NO_KEYS, () => this.#acceptOp());
  }

  /** A connection if one waits now. */
  tryAccept(): MessageSocket<T> | undefined {
    return tryRun(this.readLane, 'tryAccept', undefined, NO_KEYS, () => this.#acceptOp());
  }

  /** Connections until the server is closed. */
  connections(options?: { signal?: AbortSignal }): AsyncGenerator<MessageSocket<T>, void, undefined> {
    const signal = checkSignal(checkOptions(options, ['signal']).signal);
    return receiveUntilClosed(() => this.closed, () => this.accept({ signal }));
  }

  /** `for await (const socket of server)`: {@link connections} without a signal. */
  [Symbol.asyncIterator](): AsyncGenerator<MessageSocket<T>, void, undefined> {
    return this.connections();
  }

  /**
   * The event form: `'connection'` (a MessageSocket), `'refused'` (a
   * {@link RefusedPeer}), `'error'`. Accepting starts with the first
   * `'connection'` listener and stops when the server closes.
   */
  on(event: 'connection', listener: (socket: MessageSocket<T>) => void): this;
  on(event: 'refused', listener: (peer: RefusedPeer) => void): this;
  on(event: 'error', listener: (error: IpcError) => void): this;
  on(event: string, listener: (...args: never[]) => void): this {
    if (event !== 'connection' && event !== 'refused' && event !== 'error') {
      throw invalidArgument('event', event, "'connection', 'refused' or 'error'");
    }
    this.#events.on(event, listener as (...args: unknown[]) => void);
    if (event === 'connection') this.#acceptLoop();
    return this;
  }

  /**
   * Removes a listener added with {@link on}. Without `'connection'`
   * listeners accepting stops: a connection the pending accept still takes
   * is closed.
   */
  off(event: 'connection' | 'refused' | 'error', listener: (...args: never[]) => void): this {
    this.#events.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  #acceptLoop(): void {
    if (this.#accepting) return;
    this.#accepting = true;
    void (async () => {
      let pause = 10;
      try {
        while (!this.closed && this.#events.listenerCount('connection') > 0) {
          let conn: MessageSocket<T>;
          try {
            conn = await this.accept();
          } catch (err) {
            if (err instanceof IpcError && err.code === 'ERR_IPC_CLOSED') return;
            if (this.#events.listenerCount('error') > 0) this.#events.emit('error', err);
            // Out of descriptors: the connection waits in the backlog; try again once some may be free.
            if (err instanceof IpcError && err.code === 'ERR_IPC_LIMIT') {
              await new Promise((resolve) => setTimeout(resolve, pause));
              pause = Math.min(pause * 2, 1000);
              continue;
            }
            if (this.#events.listenerCount('error') === 0) throw err;
            return;
          }
          pause = 10;
          if (this.#events.listenerCount('connection') === 0) {
            conn.close();
            break;
          }
          this.#events.emit('connection', conn);
        }
      } finally {
        this.#accepting = false;
      }
    })();
  }

  #acceptOp(): Operation<MessageSocket<T>> {
    return this.stepOf(C.POLLIN, () => {
      for (;;) {
        const fd = native.accept(this.rawFd);
        if (fd === E.EAGAIN) return undefined;
        if (fd < 0) {
          if (fd === E.EMFILE || fd === E.ENFILE) throw descriptorError(fd, 'accept4', this.address);
          throw systemError(fd, 'accept', this.address);
        }
        const refusal = this.#refusal(fd);
        if (refusal === undefined) {
          try {
            return new MessageSocket<T>(fd, this.kind, this.#settings, false, undefined, this.#connectionLabel(fd));
          } catch (err) {
            native.close(fd);
            throw err;
          }
        }
        native.close(fd);
        this.refused++;
        this.#events.emit('refused', refusal);
      }
    });
  }

  /** How an accepted connection from an unbound peer is named in messages: the server's address and the peer's pid. */
  #connectionLabel(fd: number): string {
    const out = new Int32Array(3);
    return native.peerCredentials(fd, out) === 0 && out[0]! > 0 ? `${this.address} (connection from pid ${out[0]})` : `${this.address} (connection)`;
  }

  /** Why the allow-lists refuse the peer on `fd`, or undefined. */
  #refusal(fd: number): RefusedPeer | undefined {
    if (this.#allowUids === undefined && this.#allowGids === undefined) return undefined;
    const out = new Int32Array(3);
    if (native.peerCredentials(fd, out) < 0) return { pid: 0, uid: -1, gid: -1, reason: 'the peer\'s credentials are unknown' };
    const [pid, uid, gid] = [out[0]!, out[1]! >>> 0, out[2]! >>> 0];
    if (this.#allowUids?.has(uid) || this.#allowGids?.has(gid)) return undefined;
    return { pid, uid, gid, reason: `uid ${uid} / gid ${gid} is not allowed` };
  }
}

// ---- datagrams -------------------------------------------------------------------

/**
 * A datagram socket (Unix datagram or UDP), bound to an address. Each send
 * is one datagram to the address in `to`; each receive one datagram with
 * its sender's address. Datagrams are never cut: one larger than
 * `maxMessageSize` is consumed and reported with ERR_IPC_MESSAGE_TOO_LARGE.
 */
export class DatagramSocket<T = Buffer> extends SocketBase implements AsyncIterable<Datagram<T>> {
  readonly #codec: Codec<T>;
  readonly #max: number;
  readonly #scratch: Buffer;
  readonly #from = Buffer.alloc(128);
  readonly #fdsOut = new Int32Array(SCM_MAX_FD);
  readonly #meta = new Int32Array(3);
  /** The last destination and its kernel form. */
  #to: [string, Buffer] | undefined;
  /** Datagrams (or a failure) a batch received but did not hand over: receives take these first. */
  readonly #held = new Held<RawDatagram | IpcError>();
  protected override readonly bufferedMessage = (): boolean => !this.closed && this.#held.size > 0;

  /** @internal */
  constructor(fd: number, kind: SocketKind, codec: Codec<T>, max: number, spin: number, file?: SocketFile,
    handedOver = false) {
    super(fd, kind, nameOf(fd, kind, false) ?? `${kind} fd ${fd}`, spin, handedOver, kind === 'unix-dgram');
    this.#codec = codec;
    this.#max = max;
    this.#scratch = Buffer.allocUnsafe(Math.min(DATAGRAM_SCRATCH, Math.max(max, 1)));
    if (file !== undefined) this.ownFile(file);
  }

  /** Wraps an inherited datagram socket descriptor and takes ownership of it. */
  static fromFd<T = any>(fd: number, options: { codec?: CodecOption<T> | undefined; maxMessageSize?: number; spin?: number } & { codec: 'json' | 'msgpack' }): DatagramSocket<T>;
  static fromFd<T>(fd: number, options: { codec?: CodecOption<T> | undefined; maxMessageSize?: number; spin?: number } & { codec: Codec<T> }): DatagramSocket<T>;
  static fromFd<T = Buffer>(fd: number, options?: { codec?: CodecOption<T> | undefined; maxMessageSize?: number; spin?: number }): DatagramSocket<T>;
  static fromFd<T>(fd: number, options?: { codec?: CodecOption<T> | undefined; maxMessageSize?: number; spin?: number }): DatagramSocket<T> {
    checkInteger(fd, 'fd', 0, 2 ** 31 - 1);
    const opts = checkOptions(options, ['codec', 'maxMessageSize', 'spin']);
    const kind = kindOfFd(fd);
    if (kind !== 'unix-dgram' && kind !== 'udp') throw invalidArgument('fd', fd, 'a datagram socket (unix-dgram or udp)');
    return new DatagramSocket<T>(fd, kind, resolveCodec<T>(opts.codec),
      optionalInteger(opts.maxMessageSize, 'maxMessageSize', 0, MAX_FRAME, DEFAULT_MAX_MESSAGE_SIZE), checkSpin(opts.spin), undefined, true);
  }

  /** Sends one datagram to `options.to`, waiting while the socket's buffer is full. */
  send(data: Outgoing<T>, options: DatagramSendOptions): Promise<void> {
    return run(this.writeLane, 'send', options, SEND_KEYS, (o) => this.#sendOp(data, o));
  }

  /** The blocking form of {@link send}. */
  sendSync(data: Outgoing<T>, options: { to: string; fds?: readonly PassableFd[]; timeout?: number }): void {
    runSync(this.writeLane, 'sendSync', options, SEND_KEYS, (o) => this.#sendOp(data, o));
  }

  /** Sends if the socket has room now: true if sent. */
  trySend(data: Outgoing<T>, options: { to: string; fds?: readonly PassableFd[] }): boolean {
    return tryRun(this.writeLane, 'trySend', options, SEND_KEYS, (o) => this.#sendOp(data, o)) !== undefined;
  }

  /** Receives one datagram, waiting for it. */
  receive(options?: WaitOptions): Promise<Datagram<T>> {
    return run(this.readLane, 'receive', options, NO_KEYS, () => this.#receiveOp());
  }

  /** The blocking form of {@link receive}. */
  receiveSync(options?: SyncWaitOptions): Datagram<T> {
    return runSync(this.readLane, 'receiveSync', options, NO_KEYS, () => this.#receiveOp());
  }

  /** A datagram if one is queued now, else `undefined`. */
  tryReceive(): Datagram<T> | undefined {
    return tryRun(this.readLane, 'tryReceive', undefined, NO_KEYS, () => this.#receiveOp());
  }

  /**
   * Receives the next datagram into `target` (a buffer of yours, reused
   * from call to call: nothing is allocated for the bytes), waiting for
   * it. Resolves to `{ length, from, fds }`: the datagram is
   * `target.subarray(0, length)`, raw (the codec is not applied). A
   * datagram longer than `target` fails the call with
   * `ERR_IPC_MESSAGE_TOO_LARGE` and stays (held by this socket), for a call
   * with a larger target; one over `maxMessageSize` is discarded as by
   * {@link receive}.
   */
  receiveInto(target: Uint8Array, options?: WaitOptions): Promise<DatagramReceivedInto> {
    return run(this.readLane, 'receiveInto', options, NO_KEYS, () => this.#receiveIntoOp(target));
  }

  /** The blocking form of {@link receiveInto}. */
  receiveIntoSync(target: Uint8Array, options?: SyncWaitOptions): DatagramReceivedInto {
    return runSync(this.readLane, 'receiveIntoSync', options, NO_KEYS, () => this.#receiveIntoOp(target));
  }

  /** {@link receiveInto} if a datagram is queued now, else `undefined`. */
  tryReceiveInto(target: Uint8Array): DatagramReceivedInto | undefined {
    return tryRun(this.readLane, 'tryReceiveInto', undefined, NO_KEYS, () => this.#receiveIntoOp(target));
  }

  /**
   * Sends `messages` in order, one datagram each, all to `options.to`,
   * waiting while the socket (or a Unix receiver's queue) is full; one
   * `sendmmsg` sends as many as fit. Resolves with how many went: all, or,
   * when the timeout, an abort or `close()` came after some had gone, that
   * many. When none went it rejects, as `send` does. Every message is
   * encoded first: one the codec refuses sends none. Descriptors go with
   * single sends only.
   */
  sendMany(messages: readonly Outgoing<T>[], options: DatagramSendManyOptions): Promise<number> {
    return run(this.writeLane, 'sendMany', options, MANY_SEND_KEYS, (o) => this.#sendManyOp(messages, o.to, false));
  }

  /** The blocking form of {@link sendMany}: how many went. */
  sendManySync(messages: readonly Outgoing<T>[], options: { to: string; timeout?: number }): number {
    return runSync(this.writeLane, 'sendManySync', options, MANY_SEND_KEYS, (o) => this.#sendManyOp(messages, o.to, false));
  }

  /** Sends what fits now of `messages` to `options.to`, in order: how many went (0 if full, or sends wait before it). */
  trySendMany(messages: readonly Outgoing<T>[], options: { to: string }): number {
    return tryRun(this.writeLane, 'trySendMany', options, MANY_SEND_KEYS, (o) => this.#sendManyOp(messages, o.to, true)) ?? 0;
  }

  /**
   * Receives several datagrams at once (`recvmmsg`): waits as
   * {@link receive} does for the first, then takes every one queued, up to
   * `max` (1 to 1024, default 64). Never an empty array. A datagram the
   * codec refuses, or one over `maxMessageSize` (discarded), ends the
   * batch: the ones before it are returned, the next receive fails with
   * its error, and the ones after it follow. A Unix datagram socket whose
   * `maxMessageSize` is over 64 KiB takes its batches one datagram per
   * system call (recvmmsg would need that much room for every datagram).
   */
  receiveMany(options?: ReceiveManyOptions): Promise<Datagram<T>[]> {
    return run(this.readLane, 'receiveMany', options, MANY_KEYS, (o) => this.#receiveManyOp(o.max));
  }

  /** The blocking form of {@link receiveMany}. */
  receiveManySync(options?: ReceiveManySyncOptions): Datagram<T>[] {
    return runSync(this.readLane, 'receiveManySync', options, MANY_KEYS, (o) => this.#receiveManyOp(o.max));
  }

  /** The datagrams queued now, up to `max`: `[]` if none (or earlier receives wait). */
  tryReceiveMany(options?: { max?: number }): Datagram<T>[] {
    return tryRun(this.readLane, 'tryReceiveMany', options, MANY_KEYS, (o) => this.#receiveManyOp(o.max)) ?? [];
  }

  /**
   * Sends the messages of `batch` (a {@link MessageBatch} of yours), one
   * datagram each, all to `options.to`, as {@link sendMany} does: one
   * `sendmmsg` sends as many as fit, straight from the batch's buffer, with
   * no JavaScript work per message. The bytes are raw (the codec is not
   * applied). Resolves with how many went. Leave the batch alone until the
   * call resolves.
   */
  sendBatch(batch: MessageBatch, options: DatagramSendManyOptions): Promise<number> {
    return withBatch(batch, (b, release) =>
      run(this.writeLane, 'sendBatch', options, MANY_SEND_KEYS, (o) => this.#sendListOp(packed(b), o.to, false), false, release));
  }

  /** The blocking form of {@link sendBatch}: how many went. */
  sendBatchSync(batch: MessageBatch, options: { to: string; timeout?: number }): number {
    return runSync(this.writeLane, 'sendBatchSync', options, MANY_SEND_KEYS, (o) => this.#sendListOp(packed(idleBatch(batch)), o.to, false));
  }

  /** Sends what fits now of `batch` to `options.to`, in order: how many went (0 if full, or sends wait before it). */
  trySendBatch(batch: MessageBatch, options: { to: string }): number {
    return tryRun(this.writeLane, 'trySendBatch', options, MANY_SEND_KEYS, (o) => this.#sendListOp(packed(idleBatch(batch)), o.to, true)) ?? 0;
  }

  /**
   * Receives datagrams into `batch` (a {@link MessageBatch} of yours,
   * reused from call to call): clears it, waits as {@link receive} does for
   * the first datagram, then takes every one queued now that fits, up to
   * the batch's room in messages and bytes. Each lands in the batch's own
   * buffer, received there by one `recvmsg` (all in one native call, each
   * measured first so that none is cut): nothing is allocated, and no
   * JavaScript runs, per datagram. A datagram of no bytes is a message of
   * length 0. The bytes are raw (the codec is not applied), and a batch has
   * no place for descriptors: any that came are closed. `senders` (an array
   * of yours) gets who sent each. Resolves to how many datagrams the batch
   * holds (at least one).
   *
   * A datagram larger than the whole batch stays queued, and the call fails
   * with `ERR_IPC_MESSAGE_TOO_LARGE`: take it with {@link receive}, or use
   * a larger batch. One over `maxMessageSize` is discarded, as by
   * {@link receive}; that failure, like any met after the first datagram,
   * ends the batch, and the next call reports it.
   */
  receiveBatch(batch: MessageBatch, options?: DatagramReceiveBatchOptions): Promise<number> {
    return withBatch(batch, (b, release) =>
      run(this.readLane, 'receiveBatch', options, BATCH_KEYS, (o) => this.#receiveBatchOp(b, o.senders), false, release));
  }

  /** The blocking form of {@link receiveBatch}. */
  receiveBatchSync(batch: MessageBatch, options?: DatagramReceiveBatchSyncOptions): number {
    return runSync(this.readLane, 'receiveBatchSync', options, BATCH_KEYS, (o) => this.#receiveBatchOp(idleBatch(batch), o.senders));
  }

  /** {@link receiveBatch} of the datagrams queued now: 0 if none (or earlier receives wait; the batch is then empty). */
  tryReceiveBatch(batch: MessageBatch, options?: { senders?: (string | null)[] }): number {
    const b = idleBatch(batch);
    const n = tryRun(this.readLane, 'tryReceiveBatch', options, BATCH_KEYS, (o) => this.#receiveBatchOp(b, o.senders));
    if (n !== undefined) return n;
    b.clear();
    if (Array.isArray(options?.senders)) options.senders.length = 0;
    return 0;
  }

  /** Datagrams until the socket is closed. */
  messages(options?: { signal?: AbortSignal }): AsyncGenerator<Datagram<T>, void, undefined> {
    const signal = checkSignal(checkOptions(options, ['signal']).signal);
    return receiveUntilClosed(() => this.closed, () => this.receive({ signal }));
  }

  /** `for await (const datagram of socket)`: {@link messages} without a signal. */
  [Symbol.asyncIterator](): AsyncGenerator<Datagram<T>, void, undefined> {
    return this.messages();
  }

  #destination(to: unknown): Buffer {
    if (this.#to !== undefined && this.#to[0] === to) return this.#to[1];
    if (to === undefined) throw invalidArgument('to', to, `the address to send to (${this.kind === 'udp' ? 'udp://host:port' : 'unix-dgram:/path or unix-dgram:@name'})`);
    const parsed = parseSocketAddress(to);
    if (kindOf(parsed) !== this.kind) throw new IpcError('ERR_IPC_INVALID_ADDRESS', `${String(to)} is not a ${this.kind} address; this socket sends ${this.kind} datagrams.`, { address: String(to) });
    const sockaddr = sockaddrOf(parsed);
    this.#to = [to as string, sockaddr];
    return sockaddr;
  }

  #sendOp(data: Outgoing<T>, o: Partial<DatagramSendOptions>): Operation<typeof DONE> {
    const to = this.#destination(o.to);
    if (o.fds !== undefined && this.kind === 'udp') throw invalidArgument('fds', o.fds, 'none: descriptors pass only over Unix sockets');
    const fds = fdList(o.fds);
    const bytes = encodeWith(this.#codec, data as T, this.address);
    // (As a seqpacket send: a buffer that changed size while the call waited fails it.)
    const size = realByteLength(bytes);
    return this.#sendStep(o.to as string, to, (spin) => {
      if (realByteLength(bytes) !== size) throw batchChanged(this.address, true);
      const n = native.sendMsg(this.rawFd, bytes, 0, size, fds, to, spin);
      if (n >= 0) return DONE;
      if (n === E.EAGAIN) return undefined;
      throw this.#sendError(n, size, o.to);
    });
  }

  /** `messages` encoded, then sent by sendmmsg from the first not yet sent; `partial` reports the count on an interruption after some. */
  #sendManyOp(messages: readonly Outgoing<T>[], toText: unknown, tryForm: boolean): Operation<number> {
    const to = this.#destination(toText);
    return this.#sendListOp(encodeBatch(messages, (data) => encodeWith(this.#codec, data as T, this.address)), toText, tryForm, to);
  }

  /** Datagrams of `list` to `toText` (`to`: its kernel form, when known), as many as go: see {@link sendMany}. */
  #sendListOp(list: GatherList, toText: unknown, tryForm: boolean, to = this.#destination(toText)): Operation<number> {
    const total = gatherCount(list);
    const next = new Uint32Array(1);
    const batch = batchSend(total, this.writeLane, tryForm, (r) => {
      // A packed batch's lengths or buffer changed while the call waited (sendMmsg found them out of range).
      if ((r === E.EINVAL && !Array.isArray(list)) || r === LIST_CHANGED) return batchChanged(this.address);
      return this.#sendError(r, r === E.EMSGSIZE && next[0]! < total ? gatherView(list, next[0]!).length : 0, toText);
    }, next);
    const sizes = listSizes(list);
    const op = this.#sendStep(toText as string, to, (spin, timeout) => batch.outcome(batch.left()
      ? unlessChanged(list, sizes, next[0]!, () => sendMmsgList(this.rawFd, list, to, batch.next, batch.spin(timeout, spin), timeout))
      : 0));
    op.partial = batch.partial;
    return op;
  }

  /** The error of a datagram send that failed with `n`. */
  #sendError(n: number, size: number, to: unknown): IpcError {
    if (n === E.EMSGSIZE) {
      return new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `A ${size}-byte datagram is more than a ${this.kind} socket can send ` +
        `(${this.kind === 'udp' ? '65507 bytes over IPv4, less over a path with a smaller MTU' : 'the send buffer: raise it with sendBuffer'}).`,
      { address: this.address, errno: n, syscall: 'sendmsg' });
    }
    return systemError(n, 'send', String(to));
  }

  /**
   * The step of a send whose `attempt` (a result, or undefined when there
   * is no room) goes to `to`. UDP waits for the socket to be writable. A
   * Unix datagram send waits for room in the receiver's queue, which an
   * unconnected sender's socket does not report (it polls writable
   * regardless). A socket connected to the receiver does: poll registers it
   * with the receiver and reports it writable once the queue has room. So
   * the wait goes through such a socket, kept for the last destination;
   * where none can be made, a growing pause on a timer (asleep for *Sync
   * calls) stands in.
   */
  #sendStep<R>(toText: string, to: Buffer, attempt: (spin: number, timeout: number) => R | undefined): Operation<R> {
    const tried = (spin: number, timeout: number): R | undefined => {
      const result = attempt(spin, timeout);
      if (result !== undefined) this.#backoff = 1;
      return result;
    };
    if (this.kind === 'udp') return this.stepOf(C.POLLOUT, tried);
    return {
      step: (timeout, spin) => {
        const first = tried(spin, timeout);
        if (first !== undefined) return first;
        const waiter = this.#waiterFor(toText, to);
        if (waiter !== undefined) {
          if (timeout === 0) {
            // Level-triggered: room that came since the attempt is reported at once.
            waiter.watch.subscribe(this.#waiterSubscriber, WRITABLE);
            return undefined;
          }
          native.pollFd(waiter.fd, C.POLLOUT, timeout);
          return tried(0, timeout);
        }
        const pause = timeout < 0 ? this.#backoff : Math.min(this.#backoff, timeout);
        this.#backoff = Math.min(this.#backoff * 2, 50);
        if (timeout === 0) {
          clearTimeout(this.#retry);
          this.#retry = setTimeout(() => this.writeLane.wake(), pause);
          return undefined;
        }
        Atomics.wait(PAUSE, 0, 0, pause);
        return tried(0, timeout);
      },
    };
  }

  /** The pause before a Unix datagram send tries again where no waiting socket could be made, ms. */
  #backoff = 1;
  #retry: NodeJS.Timeout | undefined;
  /** A socket connected to the last destination a send waited for, whose readiness tells when it has room. */
  #waiter: { to: string; fd: number; owned: OwnedFd; watch: Watch } | undefined;
  readonly #waiterSubscriber: ReadinessSubscriber = { onReady: () => this.writeLane.wake() };

  #waiterFor(to: string, sockaddr: Buffer): { fd: number; watch: Watch } | undefined {
    if (this.#waiter?.to === to) return this.#waiter;
    this.#dropWaiter();
    const fd = native.socketOpen(S.AF_UNIX, S.SOCK_DGRAM, true);
    if (fd < 0) return undefined;
    if (native.connect(fd, sockaddr) !== 0) {
      native.close(fd);
      return undefined;
    }
    const owned = new OwnedFd(fd, true);
    try {
      this.#waiter = { to, fd, owned, watch: watchDescriptor(fd) };
    } catch {
      owned.close();
      return undefined;
    }
    return this.#waiter;
  }

  #dropWaiter(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter === undefined) return;
    waiter.watch.release();
    waiter.owned.close();
  }

  protected override writesIdle(): void {
    this.#waiter?.watch.unsubscribe(this.#waiterSubscriber);
  }

  protected override released(): void {
    clearTimeout(this.#retry);
    this.#dropWaiter();
    for (const raw of this.#held.takeMany(Infinity)) if (!(raw instanceof IpcError)) for (const fd of raw.fds) native.close(fd);
  }

  #receiveOp(): Operation<Datagram<T>> {
    return this.stepOf(C.POLLIN, (spin) => {
      const raw = this.#held.take() ?? this.#nextDatagram(spin);
      return raw === undefined ? undefined : this.#decoded(raw);
    });
  }

  /**
   * The next datagram copied into `into`: a held one first; else one
   * received into the reused scratch buffer (a larger one into its own),
   * then copied. One longer than the target stays (a copy held in front)
   * and fails the call; one over maxMessageSize is discarded, as receive
   * discards it.
   */
  #receiveIntoOp(target: unknown): Operation<DatagramReceivedInto> {
    const into = checkBytes(target, 'target');
    return this.stepOf(C.POLLIN, (spin) => {
      const raw = this.#held.take() ?? this.#nextDatagram(spin, false);
      return raw === undefined ? undefined : this.#copyInto(raw, into);
    });
  }

  /** A datagram (or a held failure) copied into `into`; one longer stays, held in front, and fails the call. */
  #copyInto(raw: RawDatagram | IpcError, into: Uint8Array): DatagramReceivedInto {
    if (raw instanceof IpcError) throw raw;
    const room = realByteLength(into);
    if (raw.bytes.length > room) {
      // Held as a copy of its own: the bytes may be a view of the scratch buffer, which the next receive overwrites.
      this.#held.putBack([{ ...raw, bytes: Buffer.from(raw.bytes) }]);
      throw targetTooSmall(this.address, raw.bytes.length, room);
    }
    copyView(into, raw.bytes);
    return { length: raw.bytes.length, from: raw.from, fds: raw.fds };
  }

  /** One datagram from the kernel, if one is queued (not decoded). */
  #nextDatagram(spin: number, copy = true): RawDatagram | undefined {
    let buffer = this.#scratch;
    let wait = spin;
    if (this.#max > buffer.length) {
      // Measured first, by a peek (FIONREAD says 0 for an empty queue and an empty datagram alike, and a datagram
      // that came between it and the receive could be cut): one larger than the scratch gets room of its own.
      const next = native.datagramSize(this.rawFd, spin);
      if (next === E.EAGAIN) return undefined;
      if (next < 0) throw systemError(next, 'receive', this.address);
      if (next > buffer.length) buffer = Buffer.allocUnsafe(Math.min(next, this.#max) + 1);
      wait = 0;
    }
    const n = native.recvMsg(this.rawFd, buffer, 0, buffer.length, this.#fdsOut, this.#from, this.#meta, S.MSG_TRUNC, wait);
    if (n === E.EAGAIN) return undefined;
    if (n < 0) throw systemError(n, 'receive', this.address);
    const fds = this.#meta[1] === 0 ? [] : Array.from(this.#fdsOut.subarray(0, this.#meta[1]!));
    const from = this.#meta[2]! > 0 ? this.#senderOf(this.#from.subarray(0, Math.min(this.#meta[2]!, this.#from.length))) : null;
    if ((this.#meta[0]! & S.MSG_CTRUNC) !== 0) throw truncatedError(this.address);
    if (n > this.#max) throw this.#oversize(n, from, fds);
    // Longer than the room the peek measured for it: another reader took that one, and this one is cut.
    if (n > buffer.length) throw this.#cut(n, from, fds);
    // (copy: false — a view of the scratch buffer, valid until the next receive: for a caller that copies it at once.)
    return { bytes: buffer === this.#scratch && copy ? Buffer.from(buffer.subarray(0, n)) : buffer.subarray(0, n), from, fds };
  }

  /**
   * A sender's address as text. Datagrams mostly come from the same few
   * senders, and comparing the raw address with the last one costs far
   * less than decoding it again (a native call, a Buffer and a string).
   */
  #senderOf(sockaddr: Uint8Array): string | null {
    const last = this.#lastSender;
    if (last.length === sockaddr.length && last.equals(sockaddr)) return this.#lastSenderText;
    const text = textOf(this.kind, sockaddr);
    this.#lastSender = Buffer.from(sockaddr);
    this.#lastSenderText = text;
    return text;
  }

  #lastSender = Buffer.alloc(0);
  #lastSenderText: string | null = null;

  /** A datagram over maxMessageSize: discarded (its descriptors closed), and the error that says so. */
  #oversize(n: number, from: string | null, fds: readonly number[]): IpcError {
    for (const fd of fds) native.close(fd);
    return new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `A ${n}-byte datagram from ${from ?? 'an unbound sender'} arrived on ${this.address}, ` +
      `more than maxMessageSize ${this.#max}; it was discarded, not cut. Raise maxMessageSize to receive it.`, { address: this.address });
  }

  /** A received datagram decoded (a held failure is thrown); one the codec refuses is consumed, its descriptors closed. */
  #decoded(raw: RawDatagram | IpcError): Datagram<T> {
    if (raw instanceof IpcError) throw raw;
    return { data: decodeClosing(this.#codec, raw.bytes, raw.from ?? this.address, raw.fds), from: raw.from, fds: raw.fds };
  }

  /** Datagrams into `batch`, after clearing it, their senders into `senders` if given; see {@link receiveBatch}. */
  #receiveBatchOp(batch: MessageBatch, senders: unknown): Operation<number> {
    // (Refused before any datagram is taken: one taken could not be put back if the array then refused it.)
    if (senders !== undefined && (!Array.isArray(senders) || !Object.isExtensible(senders) ||
      Object.getOwnPropertyDescriptor(senders, 'length')?.writable !== true)) {
      throw invalidArgument('senders', senders, 'an array that can grow, which gets each datagram\'s sender');
    }
    const from = senders as (string | null)[] | undefined;
    return this.stepOf(C.POLLIN, (spin) => {
      // (A batch transferred while its call waited has no room, and would wait for ever.)
      checkBatchIntact(batch, 1, this.address);
      batch.clear();
      if (from !== undefined) from.length = 0;
      if (this.#held.size === 0 || this.#batchFromHeld(batch, from)) this.#datagramsIntoBatch(batch, from, batch.count > 0 ? 0 : spin);
      return batch.count > 0 ? batch.count : undefined;
    });
  }

  /** Held datagrams into `batch` as far as they fit, up to a held failure (thrown if it comes first): whether all went. */
  #batchFromHeld(batch: MessageBatch, from: (string | null)[] | undefined): boolean {
    return batchFromHeld(this.#held, batch, this.address, (d) => d.bytes, (d) => {
      for (const fd of d.fds) native.close(fd);
      from?.push(d.from);
    });
  }

  /**
   * Queued datagrams into `batch`, after what it holds, straight into its
   * buffer (native recvPackets), while they fit; one that does not stays
   * queued, and one larger than the whole batch is an error when it comes
   * first. A failure after the first datagram is held for the next call.
   */
  #datagramsIntoBatch(batch: MessageBatch, from: (string | null)[] | undefined, spin: number): void {
    const io = this.#packetIo;
    // (Always given: the sender of a datagram that fails the batch is named in its error.)
    const area = this.#senderArea ??= Buffer.alloc(SENDER_SLOTS * SENDER_SLOT);
    const senderAt = (i: number): string | null => {
      const length = area.readUInt32LE(i * SENDER_SLOT + SENDER_LENGTH);
      return length > 0 ? this.#senderOf(area.subarray(i * SENDER_SLOT, i * SENDER_SLOT + length)) : null;
    };
    for (;;) {
      io[0] = batch.count;
      io[1] = batch.size;
      // (A UDP datagram fits 64 KiB whatever the limit: told so, recvPackets receives each straight into the room.)
      io[2] = this.kind === 'udp' ? Math.min(this.#max, MMSG_SLOT) : this.#max;
      const placed = native.recvPackets(this.rawFd, batch.data, batch.lengths, io, batch.count > 0 ? 0 : spin, area);
      if (placed < 0) throw batchGone(this.address);
      batch.place(io[0]!, io[1]!);
      if (from !== undefined) for (let i = 0; i < placed; i++) from.push(senderAt(i));
      const detail = io[4]!;
      let failure: IpcError;
      switch (io[3]) {
        case PACKET_STOP.done:
          // (Stopped where the senders' slots ran out: there may be more.)
          if (placed === SENDER_SLOTS && batch.count < batch.lengths.length) continue;
          return;
        case PACKET_STOP.noRoom:
          if (batch.count === 0) throw batchTooSmall(this.address, detail, batch);
          return;
        case PACKET_STOP.tooLarge:
          failure = this.#oversize(detail, senderAt(placed), []);
          break;
        case PACKET_STOP.cut:
          failure = truncatedError(this.address);
          break;
        case PACKET_STOP.lost:
          failure = this.#cut(detail, senderAt(placed), []);
          break;
        default:
          failure = systemError(-detail, 'receive', this.address);
      }
      if (batch.count === 0) throw failure;
      this.#held.keep([failure]);
      return;
    }
  }

  /** io of native recvPackets: [count, size, maxMessageSize, why, detail, 1 (datagrams)]. */
  readonly #packetIo = new Float64Array([0, 0, 0, 0, 0, 1]);
  /** Where recvPackets writes the senders of a batch's datagrams. */
  #senderArea: Buffer | undefined;

  /**
   * Held datagrams first (alone), else the first (which may wait) and every
   * one queued after it, up to `max`: by recvmmsg into fixed slots, or, for
   * a Unix socket with a maxMessageSize over {@link MMSG_SLOT}, one by one.
   * A failure after the first ends the batch and is held for the next call.
   */
  #receiveManyOp(max: unknown): Operation<Datagram<T>[]> {
    const limit = checkMax(max);
    return this.stepOf(C.POLLIN, (spin) => {
      const raw: (RawDatagram | IpcError)[] = this.#held.takeMany(limit);
      const fromHeld = raw.length > 0;
      try {
        if (!fromHeld) this.#gather(raw, limit, spin);
      } catch (err) {
        if (raw.length === 0 || !(err instanceof IpcError)) throw err;
        raw.push(err);
      }
      if (raw.length === 0) return undefined;
      return decodeBatch(raw, (r) => this.#decoded(r), this.#held, fromHeld, (_r, error) => error);
    });
  }

  /**
   * Receives up to `limit` datagrams into `raw` (the first call may spin); a
   * datagram's failure after the first is pushed as it is. By recvmmsg into
   * fixed slots; or, for a Unix socket whose datagrams may be larger than a
   * slot, by native recvDatagrams: one recvmsg each, each measured first,
   * back to back into one scratch area, in one call into the addon (one
   * larger than the whole area comes alone, in a buffer of its own; one
   * another reader made this one cut is lost, and said so).
   */
  #gather(raw: (RawDatagram | IpcError)[], limit: number, spin: number): void {
    // UDP datagrams fit 64 KiB; a Unix one fits only its own limit, which may be far larger (slot 0: measured one by one).
    const slot = this.kind === 'udp' ? Math.min(Math.max(this.#max, 1), MMSG_SLOT) : this.#max <= MMSG_SLOT ? Math.max(this.#max, 1) : 0;
    const sized = slot === 0;
    const area = this.#mmsgArea(slot);
    while (raw.length < limit) {
      const want = Math.min(limit - raw.length, area.slots);
      area.io[0] = want;
      const first = raw.length === 0 ? spin : 0;
      const n = sized
        ? native.recvDatagrams(this.rawFd, area.scratch, area.io, area.from, area.fds, this.#max, first)
        : native.recvMmsg(this.rawFd, area.scratch, slot, area.io, area.from, area.fds, first);
      if (n === E.EAGAIN) return;
      if (n === E.EMSGSIZE && sized) {
        const alone = this.#nextDatagram(0);
        if (alone === undefined) return;
        raw.push(alone);
        continue;
      }
      if (n < 0) throw systemError(n, 'receive', this.address);
      let at = 0;
      let fdAt = 0;
      for (let i = 0; i < n; i++) {
        const length = area.io[1 + 4 * i]!;
        const flags = area.io[2 + 4 * i]!;
        const fds = area.io[3 + 4 * i] === 0 ? [] : Array.from(area.fds.subarray(fdAt, fdAt + area.io[3 + 4 * i]!));
        fdAt += fds.length;
        const addressLength = area.io[4 + 4 * i]!;
        const from = addressLength > 0 ? this.#senderOf(area.from.subarray(i * 128, i * 128 + Math.min(addressLength, 128))) : null;
        if ((flags & S.MSG_CTRUNC) !== 0) raw.push(truncatedError(this.address));
        else if (length > this.#max || (!sized && length > slot)) raw.push(this.#oversize(length, from, fds));
        else if (sized && (flags & S.MSG_TRUNC) !== 0) raw.push(this.#cut(length, from, fds));
        else {
          const start = sized ? at : i * slot;
          raw.push({ bytes: Buffer.from(area.scratch.subarray(start, start + length)), from, fds });
          at += length;
        }
      }
      // (recvDatagrams sets io[0] to 1 when the room ran out before the queue did.)
      if (n < want && !(sized && area.io[0] === 1)) return;
    }
  }

  /** A datagram cut by a concurrent reader (see recvDatagrams): its descriptors closed, and the error that says so. */
  #cut(length: number, from: string | null, fds: readonly number[]): IpcError {
    for (const fd of fds) native.close(fd);
    return new IpcError('ERR_IPC_TRUNCATED', `A ${length}-byte datagram from ${from ?? 'an unbound sender'} on ${this.address} was cut and ` +
      'lost: another process or thread took the datagram this receive had measured, and the next one was larger than the room left. ' +
      'Give each reader a socket of its own.', { address: this.address });
  }

  /**
   * Where a batch's recvmmsg lands: slots of `slot` bytes, their addresses,
   * and room for descriptors (Unix). Slot 0: recvDatagrams' area, all of
   * its scratch for datagrams back to back.
   */
  #mmsgArea(slot: number): MmsgArea {
    if (this.#area?.slot === slot) return this.#area;
    const slots = slot === 0 ? MMSG_MAX : Math.max(1, Math.min(MMSG_MAX, Math.floor(MMSG_SCRATCH / slot)));
    this.#area = {
      slot, slots, scratch: Buffer.allocUnsafe(slot === 0 ? MMSG_SCRATCH : slots * slot), io: new Uint32Array(1 + 4 * slots), from: Buffer.alloc(128 * slots),
      fds: this.kind === 'udp' ? new Int32Array(0) : new Int32Array(SCM_MAX_FD * slots),
    };
    return this.#area;
  }

  #area: MmsgArea | undefined;
}

/** A datagram as it came off the socket. */
interface RawDatagram {
  bytes: Buffer;
  from: string | null;
  fds: number[];
}

/** The memory of a socket's batched datagram receives. */
interface MmsgArea {
  slot: number;
  slots: number;
  scratch: Buffer;
  io: Uint32Array;
  from: Buffer;
  fds: Int32Array;
}

/** The largest datagram slot of a recvmmsg batch (UDP carries at most 65,507 bytes). */
const MMSG_SLOT = 64 * 1024;
/** Bytes of slots one recvmmsg may fill, and the most datagrams it takes. */
const MMSG_SCRATCH = 1024 * 1024;
const MMSG_MAX = 64;

const SEND_KEYS = ['to', 'fds'] as const;
const MANY_SEND_KEYS = ['to'] as const;
const BATCH_KEYS = ['senders'] as const;
/** The senders recvPackets writes in one call, and the bytes of each: a sockaddr, then its length at SENDER_LENGTH. */
const SENDER_SLOTS = 64;
const SENDER_LENGTH = 128;
const SENDER_SLOT = SENDER_LENGTH + 8;
const MANY_KEYS = ['max'] as const;

// ---- factories ---------------------------------------------------------------------

/**
 * Binds `fd` to `address`. A Unix socket file is made with `mode` from the
 * start (the socket's own mode is set before bind), and a stale file (a
 * socket nobody listens on, owned by `owner`) is replaced; a live one never
 * is. Returns the file made, for removal on close.
 */
function bindTo(fd: number, address: SocketAddress, sockaddr: Buffer, mode: number, owner: OwnerOption):
  SocketFile | undefined {
  const path = address.family === 'unix' && !address.abstract ? address.path : undefined;
  if (path !== undefined) {
    const r = native.fchmod(fd, mode);
    if (r < 0) throw systemError(r, 'fchmod', address.text);
  }
  let r = native.bind(fd, sockaddr);
  // A stale file (removed by staleSocketFile) is replaced; a file removed meanwhile is bound again too.
  if (r === E.EADDRINUSE && path !== undefined && (staleSocketFile(path, address, owner) || bindingAt(path).binding === 'absent')) {
    r = native.bind(fd, sockaddr);
  }
  if (r < 0) {
    if (r === E.EADDRINUSE && path !== undefined) {
      throw systemError(r, 'bind', address.text, 'A live socket is bound there (a server answers on it); it was left alone. Stop that server, or use another path.');
    }
    throw systemError(r, 'bind', address.text);
  }
  if (path === undefined) return undefined;
  // The file is reached through a descriptor that does not follow a symbolic link: in a directory others may
  // write, the name could be swapped for a link to someone's file, whose mode a chmod by name would change.
  const file = openSync(path, oPathFlags());
  try {
    const st = fstatSync(file);
    if (!st.isSocket()) throw new IpcError('EADDRINUSE', `bind ${address.text}: the socket file was replaced by something else as it was made.`, { address: address.text });
    // The umask may have taken bits the caller asked for: add them back (the file is never more open than asked).
    if ((st.mode & 0o777) !== mode) chmodSync(`/proc/self/fd/${file}`, mode);
    return { path, dev: st.dev, ino: st.ino };
  } finally {
    closeSync(file);
  }
}

/**
 * Whether the socket file at `path` is stale: a socket owned by `owner`
 * that nothing is bound to any more (asked of the kernel without
 * connecting to a live server; see internal/socket-file.ts).
 */
function staleSocketFile(path: string, address: SocketAddress, owner: OwnerOption): boolean {
  const found = bindingAt(path);
  if (found.binding === 'absent') return false;
  if (found.binding === 'not-socket') {
    throw new IpcError('EADDRINUSE', `bind ${address.text} failed: ${path} exists and is not a socket; it was left alone. Remove it, or use another path.`,
      { address: address.text, errno: E.EADDRINUSE, syscall: 'bind' });
  }
  if (found.binding !== 'none') return false;
  if (owner !== 'any' && found.uid !== owner) {
    throw new IpcError('ERR_IPC_UNTRUSTED', `bind ${address.text}: a stale socket file there belongs to uid ${found.uid}, not uid ${owner}; it ` +
      `was not replaced. If that is expected, pass { owner: ${found.uid} } or { owner: 'any' }, or remove it (ipckit rm).`, { address: address.text });
  }
  // Unlinking goes by name: only while the name still is the file found stale.
  try {
    const now = lstatSync(path);
    if (now.dev !== found.dev || now.ino !== found.ino) return false;
    unlinkSync(path);
  } catch { /* gone already: bind again */ }
  return true;
}

function openSocket(address: SocketAddress, nonBlocking: boolean): number {
  const fd = native.socketOpen(domainOf(address), TYPE_OF[address.type], nonBlocking);
  if (fd < 0) throw descriptorError(fd, 'socket', address.text);
  return fd;
}

/**
 * Listens on a stream or seqpacket address (`unix:`, `unix-seqpacket:`,
 * `tcp://`). A Unix socket file is created with `mode` (default 0o600)
 * without a moment where it is more open; a stale file left by a dead
 * server is replaced, a live one never (`EADDRINUSE`). `close()` removes the
 * file this server made, and only that file.
 */
export function listen<T = any>(address: string, options: ListenOptions<T> & { codec: 'json' | 'msgpack' }): SocketServer<T>;
export function listen<T>(address: string, options: ListenOptions<T> & { codec: Codec<T> }): SocketServer<T>;
export function listen<T = Buffer>(address: string, options?: ListenOptions<T>): SocketServer<T>;
export function listen<T>(address: string, options?: ListenOptions<T>): SocketServer<T> {
  const opts = checkOptions(options, [...SOCKET_KEYS, 'mode', 'backlog', 'allowUids', 'allowGids', 'owner']);
  const parsed = parseSocketAddress(address);
  if (parsed.type === 'dgram') {
    throw new IpcError('ERR_IPC_INVALID_ADDRESS', `${parsed.text} is a datagram address: datagram sockets do not listen; use bind().`, { address: parsed.text });
  }
  const settings = settingsOf(opts);
  const mode = checkMode(opts.mode);
  const backlog = optionalInteger(opts.backlog, 'backlog', 1, 65535, 511);
  const allowUids = checkIds(opts.allowUids, 'allowUids');
  const allowGids = checkIds(opts.allowGids, 'allowGids');
  if ((allowUids !== undefined || allowGids !== undefined) && parsed.family !== 'unix') {
    throw invalidArgument('allowUids', opts.allowUids ?? opts.allowGids, 'nothing on a TCP server: peer credentials exist only on Unix sockets');
  }
  const owner = checkOwner(opts.owner);
  const sockaddr = sockaddrOf(parsed);
  const fd = openSocket(parsed, true);
  let file;
  try {
    if (parsed.family === 'inet') native.setSockOpt(fd, S.SOL_SOCKET, S.SO_REUSEADDR, 1);
    file = bindTo(fd, parsed, sockaddr, mode, owner);
    const r = native.listen(fd, backlog);
    if (r < 0) throw systemError(r, 'listen', parsed.text);
  } catch (err) {
    native.close(fd);
    if (file !== undefined) unlinkSync(file.path);
    throw err;
  }
  return new SocketServer<T>(fd, kindOf(parsed), settings, allowUids, allowGids, file);
}

function checkIds(value: unknown, name: string): number[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw invalidArgument(name, value, 'an array of ids');
  return value.map((id: unknown, i) => checkInteger(id, `${name}[${i}]`, 0, 0xfffffffe));
}

/**
 * Where a connect waits: for the socket to become writable once the connect
 * is in progress, or for a retry timer while a Unix listener's backlog is
 * full (an unconnected Unix socket polls writable all the time: watching it
 * then would spin). It watches the descriptor without owning it: the
 * connection takes it over.
 */
class Connecting implements LaneOwner, ReadinessSubscriber {
  readonly address: string;
  readonly lane: NotifyLane;
  readonly #watch: Watch;
  #armed = false;
  #inProgress = false;
  #watching = false;

  constructor(fd: number, address: string) {
    this.address = address;
    this.#watch = watchDescriptor(fd);
    this.lane = new NotifyLane(this, 0, () => this.#want(true), () => this.#want(false));
  }

  check(): void { /* A connect ends by itself. */ }

  laneBusy(): void { /* Nothing to reject. */ }

  onReady(): void {
    this.lane.wake();
  }

  /** The connect is in progress: writability now means it finished. */
  started(): void {
    this.#inProgress = true;
    this.#update();
  }

  /** Leaves the readiness registry (before the descriptor is closed or handed over). */
  release(): void {
    this.#armed = false;
    this.#update();
    this.#watch.release();
  }

  #want(armed: boolean): void {
    this.#armed = armed;
    this.#update();
  }

  #update(): void {
    const want = this.#armed && this.#inProgress;
    if (want === this.#watching) return;
    if (want) this.#watch.subscribe(this, WRITABLE);
    else this.#watch.unsubscribe(this);
    this.#watching = want;
  }
}

const CONNECT_KEYS = [...SOCKET_KEYS, 'sendBuffer', 'receiveBuffer'] as const;

/**
 * Connects to a stream or seqpacket address and resolves to a
 * {@link MessageSocket}. Never blocks the event loop, also when a Unix
 * server's backlog is full (the connect is retried until it fits, the
 * timeout passes, or the signal aborts).
 */
export function connect<T = any>(address: string, options: ConnectOptions<T> & { codec: 'json' | 'msgpack' }): Promise<MessageSocket<T>>;
export function connect<T>(address: string, options: ConnectOptions<T> & { codec: Codec<T> }): Promise<MessageSocket<T>>;
export function connect<T = Buffer>(address: string, options?: ConnectOptions<T>): Promise<MessageSocket<T>>;
export function connect<T>(address: string, options?: ConnectOptions<T>): Promise<MessageSocket<T>> {
  let plan: ConnectPlan<T>;
  let conn: Connecting;
  try {
    plan = connectPlan<T>(address, options);
  } catch (err) {
    return Promise.reject(err);
  }
  try {
    conn = new Connecting(plan.fd, plan.parsed.text);
  } catch (err) {
    native.close(plan.fd);
    return Promise.reject(err);
  }
  const op = connectOperation(plan, () => conn.lane.wake(), () => conn.started());
  const opts = options === undefined ? undefined : { timeout: options.timeout, signal: options.signal };
  return run(conn.lane, 'connect', opts, NO_KEYS, () => op).then((fd) => {
    conn.release();
    return finishConnect<T>(fd, plan.parsed, plan.settings);
  }, (err: unknown) => {
    op.cancel();
    conn.release();
    native.close(plan.fd);
    throw err;
  });
}

/** The blocking form of {@link connect}. */
export function connectSync<T = any>(address: string, options: Omit<ConnectOptions<T>, 'signal'> & { codec: 'json' | 'msgpack' }): MessageSocket<T>;
export function connectSync<T>(address: string, options: Omit<ConnectOptions<T>, 'signal'> & { codec: Codec<T> }): MessageSocket<T>;
export function connectSync<T = Buffer>(address: string, options?: Omit<ConnectOptions<T>, 'signal'>): MessageSocket<T>;
export function connectSync<T>(address: string, options?: Omit<ConnectOptions<T>, 'signal'>): MessageSocket<T> {
  const plan = connectPlan<T>(address, options);
  let conn: Connecting | undefined;
  try {
    conn = new Connecting(plan.fd, plan.parsed.text);
    const op = connectOperation(plan, undefined, undefined);
    runSync(conn.lane, 'connectSync', options === undefined ? undefined : { timeout: options.timeout }, NO_KEYS, () => op);
  } catch (err) {
    conn?.release();
    native.close(plan.fd);
    throw err;
  }
  conn.release();
  return finishConnect<T>(plan.fd, plan.parsed, plan.settings);
}

/**
 * A connect as an operation. An attempt starts the connect (0: done;
 * EINPROGRESS: wait for the socket to become writable, then read SO_ERROR)
 * or finds a Unix listener's backlog full (EAGAIN: nothing is started and
 * there is nothing to wait on but time: async calls retry after a growing
 * pause, `wake`; a *Sync step sleeps that pause, bounded by its timeout).
 */
function connectOperation<T>(plan: ConnectPlan<T>, wake: (() => void) | undefined, started: (() => void) | undefined):
  Operation<number> & { cancel(): void } {
  let inProgress = false;
  let backoff = 1;
  let retry: NodeJS.Timeout | undefined;
  return {
    step: (timeout) => {
      if (!inProgress) {
        const r = native.connect(plan.fd, plan.sockaddr);
        if (r === 0) return plan.fd;
        if (r === E.EAGAIN) {
          const pause = timeout < 0 ? backoff : Math.min(backoff, timeout);
          backoff = Math.min(backoff * 2, 50);
          if (wake !== undefined) {
            clearTimeout(retry);
            retry = setTimeout(wake, pause);
          } else if (pause > 0) {
            Atomics.wait(PAUSE, 0, 0, pause);
          }
          return undefined;
        }
        if (r !== E.EINPROGRESS) throw systemError(r, 'connect', plan.parsed.text);
        inProgress = true;
        started?.();
      }
      const revents = native.pollFd(plan.fd, C.POLLOUT, wake !== undefined ? 0 : timeout);
      if ((revents & (C.POLLOUT | C.POLLERR | C.POLLHUP)) === 0) return undefined;
      const err = native.getSockOpt(plan.fd, S.SOL_SOCKET, S.SO_ERROR);
      if (err !== 0) throw systemError(err > 0 ? -err : err, 'connect', plan.parsed.text);
      return plan.fd;
    },
    cancel: () => clearTimeout(retry),
  };
}

/** What a *Sync connect sleeps on between retries (nothing ever wakes it early). */
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

interface ConnectPlan<T> {
  parsed: SocketAddress;
  settings: Settings<T>;
  fd: number;
  sockaddr: Buffer;
}

function connectPlan<T>(address: string, options: ConnectOptions<T> | undefined): ConnectPlan<T> {
  const opts = checkOptions(options, CONNECT_KEYS, 'options', ['timeout', 'signal']);
  checkTimeout(opts.timeout);
  checkSignal(opts.signal);
  const parsed = parseSocketAddress(address);
  if (parsed.type === 'dgram') {
    throw new IpcError('ERR_IPC_INVALID_ADDRESS', `${parsed.text} is a datagram address: use bind() and send(data, { to }).`, { address: parsed.text });
  }
  const settings = settingsOf(opts);
  const sockaddr = sockaddrOf(parsed);
  const fd = openSocket(parsed, true);
  try {
    setBufferSizes(fd, opts, parsed.text);
  } catch (err) {
    native.close(fd);
    throw err;
  }
  return { parsed, settings, fd, sockaddr };
}

/** The connection is made: the descriptor becomes blocking (what a child expects) and is wrapped. */
function finishConnect<T>(fd: number, parsed: SocketAddress, settings: Settings<T>): MessageSocket<T> {
  const r = native.setNonBlocking(fd, false);
  if (r < 0) {
    native.close(fd);
    throw systemError(r, 'fcntl', parsed.text);
  }
  try {
    return new MessageSocket<T>(fd, kindOf(parsed), settings, false, parsed.family === 'unix' ? parsed.text : undefined);
  } catch (err) {
    native.close(fd);
    throw err;
  }
}

/**
 * Two connected Unix sockets (`socketpair`), stream (framed messages) or
 * seqpacket. Hand one to a child with `spawn(cmd, args, { fds: { 3: b } })`
 * and wrap it there with `MessageSocket.fromFd(3)`.
 */
export function socketPair<T = any>(options: MessageSocketOptions<T> & { type?: 'stream' | 'seqpacket' } & { codec: 'json' | 'msgpack' }): [MessageSocket<T>, MessageSocket<T>];
export function socketPair<T>(options: MessageSocketOptions<T> & { type?: 'stream' | 'seqpacket' } & { codec: Codec<T> }): [MessageSocket<T>, MessageSocket<T>];
export function socketPair<T = Buffer>(options?: MessageSocketOptions<T> & { type?: 'stream' | 'seqpacket' }): [MessageSocket<T>, MessageSocket<T>];
export function socketPair<T>(options?: MessageSocketOptions<T> & { type?: 'stream' | 'seqpacket' }): [MessageSocket<T>, MessageSocket<T>] {
  const opts = checkOptions(options, [...SOCKET_KEYS, 'type']);
  const type = opts.type ?? 'stream';
  if (type !== 'stream' && type !== 'seqpacket') throw invalidArgument('type', type, "'stream' or 'seqpacket'");
  const settings = settingsOf(opts);
  const fds = native.socketPair(TYPE_OF[type]);
  if (typeof fds === 'number') throw descriptorError(fds, 'socketpair', undefined);
  const kind: SocketKind = type === 'stream' ? 'unix' : 'unix-seqpacket';
  let a: MessageSocket<T>;
  try {
    a = new MessageSocket<T>(fds[0], kind, settings, false, null);
  } catch (err) {
    native.close(fds[0]);
    native.close(fds[1]);
    throw err;
  }
  try {
    return [a, new MessageSocket<T>(fds[1], kind, settings, false, null)];
  } catch (err) {
    a.close();
    native.close(fds[1]);
    throw err;
  }
}

/**
 * Binds a datagram socket (`unix-dgram:/path`, `unix-dgram:@name`,
 * `udp://host:port`; port 0 picks a free port, reported by `localAddress`).
 */
export function bind<T = any>(address: string, options: BindOptions<T> & { codec: 'json' | 'msgpack' }): DatagramSocket<T>;
export function bind<T>(address: string, options: BindOptions<T> & { codec: Codec<T> }): DatagramSocket<T>;
export function bind<T = Buffer>(address: string, options?: BindOptions<T>): DatagramSocket<T>;
export function bind<T>(address: string, options?: BindOptions<T>): DatagramSocket<T> {
  const opts = checkOptions(options, ['codec', 'maxMessageSize', 'mode', 'owner', 'sendBuffer', 'receiveBuffer', 'spin']);
  const parsed = parseSocketAddress(address);
  if (parsed.type !== 'dgram') {
    throw new IpcError('ERR_IPC_INVALID_ADDRESS', `${parsed.text} is not a datagram address (unix-dgram: or udp://); use listen() or connect().`, { address: parsed.text });
  }
  const codec = resolveCodec<T>(opts.codec);
  const max = optionalInteger(opts.maxMessageSize, 'maxMessageSize', 0, MAX_FRAME, DEFAULT_MAX_MESSAGE_SIZE);
  const spin = checkSpin(opts.spin);
  const mode = checkMode(opts.mode);
  const owner = checkOwner(opts.owner);
  const sockaddr = sockaddrOf(parsed);
  const fd = openSocket(parsed, false);
  let file;
  try {
    setBufferSizes(fd, opts, parsed.text);
    file = bindTo(fd, parsed, sockaddr, mode, owner);
  } catch (err) {
    native.close(fd);
    throw err;
  }
  try {
    return new DatagramSocket<T>(fd, kindOf(parsed), codec, max, spin, file);
  } catch (err) {
    native.close(fd);
    if (file !== undefined) unlinkSync(file.path);
    throw err;
  }
}
