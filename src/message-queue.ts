/**
 * Message queues: kernel mailboxes that processes send messages to and
 * receive messages from. Two families:
 *
 * - {@link PosixMessageQueue} (`mq_open`): named `/like-this`; every message
 *   has a priority and the highest priority is received first. The queue is
 *   a pollable descriptor, so async calls wait on the event loop itself.
 * - {@link SysvMessageQueue} (`msgget`): addressed by a numeric key; every
 *   message has a type, and a receiver picks by type.
 *
 * Both offer the blocking triple: `op()` (a Promise that never blocks the
 * event loop), `opSync()` (blocks the calling thread) and `tryOp()` (never
 * waits).
 *
 * @module
 */
import { fstatSync, readlinkSync } from 'node:fs';
import { endianness } from 'node:os';
import { E, IpcError, defineHints, limitError, systemError } from './errors.js';
import { lazily, native } from './native.js';
import { type SysvAddress, checkPosixName, resolveSysvAddress } from './internal/address.js';
import { type Codec, type CodecOption, type Outgoing, decodeWith, encodeWith, resolveCodec } from './internal/codec.js';
import { Handle, createOrOpen } from './internal/handle.js';
import { describeSetting, hasSysResource, readProcNumber, readResourceLimit } from './internal/limits.js';
import {
  DONE, JobLane, type Operation, ReadinessLane, UNTIL_DONE, plainAsync, plainSync, receiveUntilClosed, resolvedNow, run, runSync, tryRun,
} from './internal/operation.js';
import { type Pollable, type PollTarget, READABLE, WRITABLE, pollTarget } from './internal/readiness.js';
import {
  BATCH_SLAB, type GatherList, Held, MAX_BATCH, type Packed, type ReceiveManyOptions, type ReceiveManySyncOptions, batchChanged, batchSend,
  checkMax, decodeBatch, encodeBatch, gatherCount, gatherView, packed, stagedNext, unstageNext, LIST_CHANGED, listSizes, unlessChanged
} from './internal/batch.js';
import { type MessageBatch, batchGone, checkBatchIntact, idleBatch, pushIfRoom, withBatch } from './internal/message-batch.js';
import { ReceiveBuffer } from './internal/receive-buffer.js';
import { type OwnerOption, checkOwner, verifyOwnership } from './internal/trust.js';
import { checkBytes, checkInteger, checkMode, checkOptions, copyView, invalidArgument, optionalInteger, realByteLength } from './internal/validate.js';
import { type SpinOptions, type SyncWaitOptions, type WaitOptions, DEFAULT_SPIN_US, checkSpin } from './internal/wait.js';

const C = lazily(() => native.constants);

defineHints({
  mq_open: {
    EEXIST: 'The queue already exists: use PosixMessageQueue.open() or openOrCreate(), or remove it first (ipckit rm).',
    ENOENT: 'No such queue: create it first (PosixMessageQueue.create or ipckit mq create).',
    EMFILE: 'The process has no free file descriptors (ulimit -n).',
  },
  mq_unlink: { ENOENT: 'No such queue (already removed?).' },
  msgget: {
    EEXIST: 'A queue with this key already exists: use SysvMessageQueue.open() or openOrCreate(), or remove it first (ipckit rm).',
    ENOENT: 'No queue has this key: create it first (SysvMessageQueue.create or ipckit mq create).',
  },
  ...Object.fromEntries(['msgsnd', 'msgrcv', 'msgctl'].map((call) => [call, {
    EIDRM: 'The queue was removed (or never existed); open or create it again.',
    EINVAL: 'The queue was removed (or never existed); open or create it again.',
  }])),
});

/** Highest POSIX message priority + 1 (`MQ_PRIO_MAX`: 32768, fixed in Linux's mqueue code). */
export const MQ_PRIO_MAX = 32768;

/** Kernel ceilings that no sysctl raises (HARD_MSGMAX, HARD_MSGSIZEMAX). */
const HARD_MSGMAX = 65536;
const HARD_MSGSIZEMAX = 16 * 1024 * 1024;

const MQ_PROC = '/proc/sys/fs/mqueue';

/** Which directions a handle may use. */
export type QueueAccess = 'read' | 'write' | 'readwrite';

/** Options of {@link PosixMessageQueue.create} and {@link PosixMessageQueue.openOrCreate}. */
export interface PosixMessageQueueCreateOptions<T = Buffer> extends SpinOptions {
  /** Capacity in messages. Default: the kernel's `fs.mqueue.msg_default` (10). */
  maxMessages?: number;
  /** Largest message in bytes. Default: the kernel's `fs.mqueue.msgsize_default` (8192). */
  maxMessageSize?: number;
  /** Permission bits of a newly created queue, exactly (the umask does not apply). Default `0o600`. */
  mode?: number;
  /** Typed messages over the bytes: `'json'`, `'msgpack'` or `{ encode, decode }` ({@link CodecOption}). Default: raw bytes. */
  codec?: CodecOption<T> | undefined;
  /** Open for reading, writing or both. Default `'readwrite'`. */
  access?: QueueAccess;
  /**
   * The uid an existing queue must belong to, or `'any'`. Default: this
   * process's effective uid. An existing queue must also grant nothing
   * outside `mode`, when given. Otherwise `ERR_IPC_UNTRUSTED` (see docs/errors.md).
   */
  owner?: OwnerOption;
}

/** Options of {@link PosixMessageQueue.open}. */
export interface PosixMessageQueueOpenOptions<T = Buffer> extends SpinOptions {
  /** Typed messages over the bytes ({@link CodecOption}). Default: raw bytes. */
  codec?: CodecOption<T> | undefined;
  /** Open for reading, writing or both; a direction not opened throws `EBADF`. Default `'readwrite'`. */
  access?: QueueAccess;
  /** The uid the queue must belong to, or `'any'`. Default: this process's effective uid; otherwise `ERR_IPC_UNTRUSTED`. */
  owner?: OwnerOption;
}

/** Options of a POSIX send. */
export interface PosixSendOptions extends WaitOptions {
  /** 0 (lowest, the default) to `MQ_PRIO_MAX - 1`; higher priorities are received first. */
  priority?: number;
}

/** Options of a POSIX `sendSync`. */
export interface PosixSendSyncOptions extends SyncWaitOptions {
  /** 0 (lowest, the default) to `MQ_PRIO_MAX - 1`; higher priorities are received first. */
  priority?: number;
}

/** Options of {@link PosixMessageQueue.receiveBatch}. */
export interface PosixReceiveBatchOptions extends WaitOptions {
  /**
   * Where each message's priority goes: `priorities[i]` is that of the
   * batch's message `i`. A `Uint32Array` with at least as many elements as
   * the batch has slots. Default: priorities are not kept.
   */
  priorities?: Uint32Array;
}

/** Options of {@link PosixMessageQueue.receiveBatchSync}. */
export interface PosixReceiveBatchSyncOptions extends SyncWaitOptions {
  /** As {@link PosixReceiveBatchOptions.priorities}. */
  priorities?: Uint32Array;
}

/** A message received from a POSIX queue. */
export interface PosixMessage<T = Buffer> {
  /** The payload: a `Buffer` of its bytes, or the codec's decoded value. */
  data: T;
  /** The priority it was sent with, 0 to `MQ_PRIO_MAX - 1`. */
  priority: number;
}

/** What a receive into a buffer of yours got: the message is `target.subarray(0, length)`. */
export interface PosixReceivedInto {
  /** Bytes of the message, at the start of the target. */
  length: number;
  /** Its priority. */
  priority: number;
}

/** `mq_getattr` of an open queue. */
export interface PosixMessageQueueAttributes {
  /** Capacity in messages. */
  maxMessages: number;
  /** Largest message in bytes. */
  maxMessageSize: number;
  /** Messages in the queue now (the depth). */
  messages: number;
}

/** The kernel's POSIX message-queue settings (`/proc/sys/fs/mqueue`). */
export interface PosixMessageQueueLimits {
  /** `fs.mqueue.msg_max`: the largest `maxMessages` without CAP_SYS_RESOURCE. */
  msgMax: number | undefined;
  /** `fs.mqueue.msgsize_max`: the largest `maxMessageSize` without CAP_SYS_RESOURCE. */
  msgsizeMax: number | undefined;
  /** `fs.mqueue.msg_default`: `maxMessages` when none is given. */
  msgDefault: number | undefined;
  /** `fs.mqueue.msgsize_default`: `maxMessageSize` when none is given. */
  msgsizeDefault: number | undefined;
  /** `fs.mqueue.queues_max`: queues in the system without CAP_SYS_RESOURCE. */
  queuesMax: number | undefined;
  /** `RLIMIT_MSGQUEUE` (`ulimit -q`): bytes of queues one user may hold. */
  rlimitBytes: number | undefined;
}

function accessFlags(access: unknown): number {
  switch (access ?? 'readwrite') {
    case 'read': return C.O_RDONLY;
    case 'write': return C.O_WRONLY;
    case 'readwrite': return C.O_RDWR;
    default: throw invalidArgument('access', access, '"read", "write" or "readwrite"');
  }
}

/**
 * A target that shrank (a resizable or detached buffer) while its receive
 * waited: the message goes back (`putBack`) and the call fails, rather
 * than being cut short.
 */
function fitInto(into: Uint8Array, length: number, putBack: () => void): void {
  if (realByteLength(into) >= length) return;
  putBack();
  throw shrankTarget(into, length);
}

function shrankTarget(into: Uint8Array, length: number): IpcError {
  return invalidArgument('target', into, `a Uint8Array of at least ${length} bytes: it shrank while the receive waited; the message was kept`);
}

/** msgRcvInto's results from here down: a message taken but not copied, -(NOT_COPIED + its length). */
const NOT_COPIED = 4096;

/** A System V message for a `receiveInto` target; one in a reused scratch buffer is copied before it is held. */
function deliverInto(into: Uint8Array, r: RawSysv, held: Held<RawSysv>): SysvReceivedInto {
  fitInto(into, r.bytes.length, () => held.putBack([{ bytes: Buffer.from(r.bytes), type: r.type }]));
  copyView(into, r.bytes);
  return { length: r.bytes.length, type: r.type };
}

/**
 * A batch a queue receives into: at least `size` bytes (the largest
 * message), so that its first message always fits.
 */
function checkBatchRoom(batch: MessageBatch, size: number, why: string): MessageBatch {
  if (batch.data.length < size) throw invalidArgument('batch', batch, `a MessageBatch of at least ${size} bytes (${why})`);
  return batch;
}

/** An optional output of a packed receive with one element per slot of `batch` (priorities, types). */
function checkSlots<A extends Uint32Array | Float64Array>(value: unknown, name: string, kind: { new (n: number): A; name: string },
  batch: MessageBatch): A | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof kind) || value.length < batch.lengths.length) {
    throw invalidArgument(name, value, `a ${kind.name} of at least ${batch.lengths.length} elements (one per slot of the batch)`);
  }
  return value;
}

/** The error of a send whose packed batch the native call refused: its memory went, or its lengths were changed, meanwhile. */
function packedFailure(list: Packed, address: string, r: number, otherwise: () => IpcError): IpcError {
  let sum = 0;
  for (let i = 0; i < list.count && i < list.lengths.length; i++) sum += list.lengths[i]!;
  const intact = list.lengths.length >= list.count && list.data.length >= list.size && sum === list.size;
  return r === E.EINVAL && !intact ? batchChanged(address) : otherwise();
}

/** The lengths of a packed batch to send, each checked by `check` before the first goes. */
function checkLengths(list: Packed, check: (length: number) => void): Packed {
  for (let i = 0; i < list.count; i++) check(list.lengths[i]!);
  return list;
}

/** A receive target: a Uint8Array of at least `size` bytes. */
function checkInto(target: unknown, size: number, why: string): Uint8Array {
  const into = checkBytes(target, 'target');
  if (realByteLength(into) < size) throw invalidArgument('target', target, `a Uint8Array of at least ${size} bytes (${why})`);
  return into;
}

function checkPosixInto(target: unknown, size: number): Uint8Array {
  return checkInto(target, size, 'the queue\'s maxMessageSize: mq_receive refuses a smaller buffer');
}

function checkSysvInto(target: unknown, size: number): Uint8Array {
  return checkInto(target, size, 'kernel.msgmax when this handle was opened');
}

/** The priority in mqReceive's result, above the length's 32 bits. */
function priorityOf(r: number): number {
  return (r - (r >>> 0)) / 2 ** 32;
}

const LITTLE_ENDIAN = endianness() === 'LE';

/** The type msgrcv wrote before a payload: the native `long` at buffer[at..]. */
function receivedType(buffer: Buffer, at: number): number {
  // Byte by byte: Buffer's readers check their offset, a cost on every receive.
  const lo = LITTLE_ENDIAN ? at : at + 4;
  const hi = LITTLE_ENDIAN ? at + 4 : at;
  const low = LITTLE_ENDIAN
    ? buffer[lo]! + buffer[lo + 1]! * 0x100 + buffer[lo + 2]! * 0x10000 + buffer[lo + 3]! * 0x1000000
    : buffer[lo + 3]! + buffer[lo + 2]! * 0x100 + buffer[lo + 1]! * 0x10000 + buffer[lo]! * 0x1000000;
  const high = LITTLE_ENDIAN
    ? buffer[hi]! | buffer[hi + 1]! << 8 | buffer[hi + 2]! << 16 | buffer[hi + 3]! << 24
    : buffer[hi + 3]! | buffer[hi + 2]! << 8 | buffer[hi + 1]! << 16 | buffer[hi]! << 24;
  return high * 2 ** 32 + low;
}

function tooLarge(address: string, length: number, max: number, setting: string): IpcError {
  return new IpcError('ERR_IPC_MESSAGE_TOO_LARGE',
    `A ${length}-byte message does not fit ${address}: its limit is ${max} bytes (${setting}). ` +
    'Send smaller messages, or create the queue with a larger limit.', { address });
}

/** Why the kernel refused to create a POSIX queue with these attributes. */
function posixCreateError(r: number, name: string, maxMessages: number, maxMessageSize: number): IpcError {
  const limits = PosixMessageQueue.limits();
  if (r === E.EINVAL || r === E.EOVERFLOW) {
    const privileged = hasSysResource();
    if (!privileged && limits.msgMax !== undefined && maxMessages > limits.msgMax) {
      return limitError(r, 'mq_open', name, `maxMessages ${maxMessages} exceeds ${MQ_PROC}/msg_max (now ${limits.msgMax}), ` +
        'the limit for processes without CAP_SYS_RESOURCE. Ask for fewer messages, or raise it: sysctl fs.mqueue.msg_max=N.');
    }
    if (!privileged && limits.msgsizeMax !== undefined && maxMessageSize > limits.msgsizeMax) {
      return limitError(r, 'mq_open', name, `maxMessageSize ${maxMessageSize} exceeds ${MQ_PROC}/msgsize_max (now ${limits.msgsizeMax}), ` +
        'the limit for processes without CAP_SYS_RESOURCE. Send smaller messages, or raise it: sysctl fs.mqueue.msgsize_max=N.');
    }
    return limitError(r, 'mq_open', name, `the kernel refused maxMessages ${maxMessages} × maxMessageSize ${maxMessageSize}: ` +
      `the hard ceilings are ${HARD_MSGMAX} messages and ${HARD_MSGSIZEMAX} bytes, and without CAP_SYS_RESOURCE ` +
      `${describeSetting(`${MQ_PROC}/msg_max`)} and ${describeSetting(`${MQ_PROC}/msgsize_max`)}.`);
  }
  if (r === E.ENOSPC) {
    return limitError(r, 'mq_open', name, `the system already holds ${describeSetting(`${MQ_PROC}/queues_max`)} queues. ` +
      'Remove unused queues (ipckit ls, ipckit rm) or raise it: sysctl fs.mqueue.queues_max=N.');
  }
  if (r === E.EMFILE) {
    return limitError(r, 'mq_open', name, 'either this user\'s queues would exceed RLIMIT_MSGQUEUE ' +
      `(ulimit -q, now ${limits.rlimitBytes ?? 'unknown'} bytes; a queue costs about maxMessages × (maxMessageSize + 64) bytes) ` +
      'or the process ran out of file descriptors (ulimit -n). Use smaller queues, remove unused ones, or raise the limit.');
  }
  return systemError(r, 'mq_open', name);
}

/** Native mqSendMany of `list` (an array, or a packed batch) from message `next[0]` on, its position staged (see stagedNext). */
function mqSendList(fd: number, list: GatherList, prio: number, next: Uint32Array, timeout: number, spin: number): number {
  const staged = stagedNext(next);
  const r = Array.isArray(list) ? native.mqSendMany(fd, list as readonly Uint8Array[], prio, staged, timeout, spin)
    : native.mqSendMany(fd, (list as Packed).data, prio, staged, timeout, spin, (list as Packed).lengths, (list as Packed).count);
  unstageNext(next);
  return r;
}

/** Native msgSndMany of `list` (an array, or a packed batch) from message `next[0]` on, its position staged (see stagedNext). */
function msgSndList(id: number, type: number, list: GatherList, next: Uint32Array, timeout: number, spin: number): number {
  const staged = stagedNext(next);
  const r = Array.isArray(list) ? native.msgSndMany(id, type, list as readonly Uint8Array[], staged, timeout, spin)
    : native.msgSndMany(id, type, (list as Packed).data, staged, timeout, spin, (list as Packed).lengths, (list as Packed).count);
  unstageNext(next);
  return r;
}

/**
 * A POSIX message queue (`mq_open`, `mq_send`, `mq_receive`).
 *
 * Messages are received highest priority first, FIFO within a priority.
 * Async calls wait for the queue's descriptor to become readable or writable
 * inside libuv: no thread is parked and nothing is polled.
 *
 * @example
 * ```ts
 * import { PosixMessageQueue } from 'ipckit';
 *
 * const queue = PosixMessageQueue.create('/ipckit-example-mq', { maxMessages: 10, maxMessageSize: 1024 });
 * try {
 *   await queue.send('routine');
 *   await queue.send('urgent', { priority: 9 });
 *   const { data, priority } = await queue.receive({ timeout: 1000 });
 *   console.log(data.toString(), priority); // urgent 9
 * } finally {
 *   queue.close();
 *   PosixMessageQueue.unlink('/ipckit-example-mq');
 * }
 * ```
 */
export class PosixMessageQueue<T = Buffer> extends Handle implements AsyncIterable<PosixMessage<T>>, Pollable {
  /** The queue's name, such as `/jobs`. */
  readonly name: string;
  /** Capacity in messages, fixed at creation. */
  readonly maxMessages: number;
  /** Largest message in bytes, fixed at creation. */
  readonly maxMessageSize: number;
  /** Whether this handle created the queue (always true after `create`). */
  readonly created: boolean;

  readonly #fd: number;
  readonly #access: number;
  readonly #codec: Codec<T>;
  readonly #rx: ReceiveBuffer;
  /** Sends waiting for room (the descriptor to become writable). */
  readonly #sending: ReadinessLane;
  /** Receives waiting for a message (the descriptor to become readable). */
  readonly #receiving: ReadinessLane;
  readonly #receiveOp: Operation<PosixMessage<T>> = { step: (timeout, spin) => this.#receiveStep(timeout, spin) };
  /** Where batched receives land, and their lengths and priorities (made on first use). */
  #rxMany: ReceiveBuffer | undefined;
  #manyIo: Uint32Array | undefined;
  /** A packed receive's [count, size, maxMessageSize] (see native mqReceiveBatch). */
  readonly #batchIo = new Float64Array(3);
  /** Taken by a batch, not yet handed over (its codec refused one): the next receives get these first. */
  readonly #held = new Held<RawPosix>();

  private constructor(name: string, fd: number, access: number, codec: Codec<T>, spin: number, created: boolean, handedOver = false) {
    super();
    this.name = name;
    this.#fd = this.holdFd(fd, handedOver);
    this.#access = access;
    this.#codec = codec;
    this.created = created;
    const attr = new Float64Array(4);
    const r = native.mqGetAttr(fd, attr);
    if (r < 0) {
      this.close();
      throw systemError(r, 'mq_getattr', name);
    }
    this.maxMessages = attr[1]!;
    this.maxMessageSize = attr[2]!;
    this.#rx = new ReceiveBuffer(this.maxMessageSize);
    let watch;
    try {
      watch = this.watch(fd);
    } catch (err) {
      // The thread's first watch could not get a descriptor: the handle is not made, and its descriptor not kept.
      this.close();
      throw err;
    }
    this.#sending = new ReadinessLane(this, spin, watch, WRITABLE);
    this.#receiving = new ReadinessLane(this, spin, watch, READABLE);
  }

  /**
   * Creates a new queue; fails with `EEXIST` if the name is taken.
   * `PosixMessageQueue.create('/jobs', { maxMessages: 8, maxMessageSize: 256 })`
   * makes a queue of up to 8 messages of up to 256 bytes, mode 0o600.
   */
  static create<T = any>(name: string, options: PosixMessageQueueCreateOptions<T> & { codec: 'json' | 'msgpack' }): PosixMessageQueue<T>;
  static create<T>(name: string, options: PosixMessageQueueCreateOptions<T> & { codec: Codec<T> }): PosixMessageQueue<T>;
  static create<T = Buffer>(name: string, options?: PosixMessageQueueCreateOptions<T>): PosixMessageQueue<T>;
  static create<T>(name: string, options?: PosixMessageQueueCreateOptions<T>): PosixMessageQueue<T> {
    const opts = checkOptions(options, CREATE_KEYS);
    const q = PosixMessageQueue.#openWith<T>(checkPosixName(name, 'message queue'), opts, 'create', undefined);
    if (q === undefined) throw systemError(E.EEXIST, 'mq_open', name);
    return q;
  }

  /** Opens an existing queue; fails with `ENOENT` if there is none. Never changes its attributes. */
  static open<T = any>(name: string, options: PosixMessageQueueOpenOptions<T> & { codec: 'json' | 'msgpack' }): PosixMessageQueue<T>;
  static open<T>(name: string, options: PosixMessageQueueOpenOptions<T> & { codec: Codec<T> }): PosixMessageQueue<T>;
  static open<T = Buffer>(name: string, options?: PosixMessageQueueOpenOptions<T>): PosixMessageQueue<T>;
  static open<T>(name: string, options?: PosixMessageQueueOpenOptions<T>): PosixMessageQueue<T> {
    const opts = checkOptions(options, OPEN_KEYS);
    const q = PosixMessageQueue.#openWith<T>(checkPosixName(name, 'message queue'), opts, 'open', undefined);
    if (q === undefined) throw systemError(E.ENOENT, 'mq_open', name);
    return q;
  }

  /**
   * Wraps a queue descriptor this process was given (received over a Unix
   * socket, or inherited) and takes ownership of it: `close()` closes it.
   * Its access (send, receive or both) is the descriptor's own.
   */
  static fromFd<T = any>(fd: number, options: { codec?: CodecOption<T> | undefined; spin?: number } & { codec: 'json' | 'msgpack' }): PosixMessageQueue<T>;
  static fromFd<T>(fd: number, options: { codec?: CodecOption<T> | undefined; spin?: number } & { codec: Codec<T> }): PosixMessageQueue<T>;
  static fromFd<T = Buffer>(fd: number, options?: { codec?: CodecOption<T> | undefined; spin?: number }): PosixMessageQueue<T>;
  static fromFd<T>(fd: number, options?: { codec?: CodecOption<T> | undefined; spin?: number }): PosixMessageQueue<T> {
    checkInteger(fd, 'fd', 0, 2 ** 31 - 1);
    const opts = checkOptions(options, ['codec', 'spin']);
    const flags = native.getFlags(fd);
    if (flags < 0) throw systemError(flags, 'fcntl', `fd ${fd}`, 'The descriptor is not open: was it passed to this process?');
    if (native.mqGetAttr(fd, new Float64Array(4)) < 0) throw invalidArgument('fd', fd, 'a descriptor of a POSIX message queue');
    let name: string;
    try {
      name = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      name = `mq fd ${fd}`;
    }
    return new PosixMessageQueue<T>(name, fd, flags & C.O_ACCMODE, resolveCodec<T>(opts.codec), checkSpin(opts.spin), false, true);
  }

  /**
   * Opens the queue, creating it with `options` if it does not exist.
   * An existing queue keeps its own attributes; check `created`,
   * `maxMessages` and `maxMessageSize` if they matter.
   */
  static openOrCreate<T = any>(name: string, options: PosixMessageQueueCreateOptions<T> & { codec: 'json' | 'msgpack' }): PosixMessageQueue<T>;
  static openOrCreate<T>(name: string, options: PosixMessageQueueCreateOptions<T> & { codec: Codec<T> }): PosixMessageQueue<T>;
  static openOrCreate<T = Buffer>(name: string, options?: PosixMessageQueueCreateOptions<T>): PosixMessageQueue<T>;
  static openOrCreate<T>(name: string, options?: PosixMessageQueueCreateOptions<T>): PosixMessageQueue<T> {
    const opts = checkOptions(options, CREATE_KEYS);
    checkPosixName(name, 'message queue');
    const mode = checkMode(opts.mode);
    return createOrOpen(() => PosixMessageQueue.#openWith<T>(name, opts, 'create', undefined),
      () => PosixMessageQueue.#openWith<T>(name, opts, 'open', opts.mode === undefined ? undefined : mode), 'mq_open', name);
  }

  /**
   * Opens or creates; `undefined` on EEXIST (create) or ENOENT (open). An
   * opened queue must belong to `opts.owner` and, with `expectMode`, grant
   * nothing outside it.
   */
  static #openWith<T>(name: string, opts: PosixMessageQueueCreateOptions<T>, how: 'create' | 'open',
    expectMode: number | undefined): PosixMessageQueue<T> | undefined {
    const codec = resolveCodec<T>(opts.codec);
    const spin = checkSpin(opts.spin);
    const owner = checkOwner(opts.owner);
    // Blocking descriptor: tries use an expired deadline instead of O_NONBLOCK (see native/message-queue.cc).
    const access = accessFlags(opts.access);
    let oflag = access | C.O_CLOEXEC;
    let maxMessages = 0;
    let maxMessageSize = 0;
    const mode = checkMode(opts.mode);
    if (how === 'create') {
      oflag |= C.O_CREAT | C.O_EXCL;
      if (opts.maxMessages !== undefined || opts.maxMessageSize !== undefined) {
        maxMessages = optionalInteger(opts.maxMessages, 'maxMessages', 1, 2 ** 31 - 1, readProcNumber(`${MQ_PROC}/msg_default`) ?? 10);
        maxMessageSize = optionalInteger(opts.maxMessageSize, 'maxMessageSize', 1, 2 ** 31 - 1, readProcNumber(`${MQ_PROC}/msgsize_default`) ?? 8192);
      }
    }
    const fd = native.mqOpen(name, oflag, mode, maxMessages, maxMessageSize);
    if (fd === E.EEXIST && how === 'create') return undefined;
    if (fd === E.ENOENT && how === 'open') return undefined;
    if (fd < 0) {
      throw how === 'create' ? posixCreateError(fd, name, maxMessages || (readProcNumber(`${MQ_PROC}/msg_default`) ?? 10),
        maxMessageSize || (readProcNumber(`${MQ_PROC}/msgsize_default`) ?? 8192)) : systemError(fd, 'mq_open', name);
    }
    if (how === 'open') {
      try {
        const st = fstatSync(fd);
        verifyOwnership({ uid: st.uid, mode: st.mode }, owner, expectMode, name, 'queue');
      } catch (err) {
        native.close(fd);
        throw err;
      }
    }
    try {
      return new PosixMessageQueue<T>(name, fd, access, codec, spin, how === 'create');
    } catch (err) {
      // A queue this call created is not left behind for a retry to meet as EEXIST.
      if (how === 'create') native.mqUnlink(name);
      throw err;
    }
  }

  /** Removes the queue's name; processes that have it open keep using it until they close it. */
  static unlink(name: string): void {
    checkPosixName(name, 'message queue');
    const r = native.mqUnlink(name);
    if (r < 0) throw systemError(r, 'mq_unlink', name);
  }

  /** The kernel's current POSIX message-queue limits. */
  static limits(): PosixMessageQueueLimits {
    return {
      msgMax: readProcNumber(`${MQ_PROC}/msg_max`),
      msgsizeMax: readProcNumber(`${MQ_PROC}/msgsize_max`),
      msgDefault: readProcNumber(`${MQ_PROC}/msg_default`),
      msgsizeDefault: readProcNumber(`${MQ_PROC}/msgsize_default`),
      queuesMax: readProcNumber(`${MQ_PROC}/queues_max`),
      rlimitBytes: readResourceLimit('Max msgqueue size'),
    };
  }

  get address(): string {
    return this.name;
  }

  /** The queue descriptor (pollable). Throws `ERR_IPC_CLOSED` after `close()`. */
  get fd(): number {
    this.check('fd');
    return this.#fd;
  }

  /** @internal The queue descriptor is readable while a message waits, writable while there is room. */
  [pollTarget](): PollTarget {
    this.check('poll');
    return {
      fd: this.#fd,
      readable: this.#access === C.O_WRONLY ? 0 : READABLE,
      writable: this.#access === C.O_RDONLY ? 0 : WRITABLE,
    };
  }

  /** Capacity, message size limit and current depth. */
  attributes(): PosixMessageQueueAttributes {
    this.check('attributes');
    const attr = new Float64Array(4);
    const r = native.mqGetAttr(this.#fd, attr);
    if (r < 0) throw systemError(r, 'mq_getattr', this.name);
    return { maxMessages: attr[1]!, maxMessageSize: attr[2]!, messages: attr[3]! };
  }

  // -- send ---------------------------------------------------------------

  /**
   * Sends a message, waiting while the queue is full. Never blocks the event
   * loop.
   */
  send(data: Outgoing<T>, options?: PosixSendOptions): Promise<void> {
    if (plainAsync(this.#sending, options)) {
      let bytes;
      try {
        this.check('send');
        bytes = this.#sendBytes(data);
        // The codec is user code: it may have queued a call on this lane, which a plain attempt must not overtake.
        if (!this.#sending.busy && this.#sendStep(bytes, 0, 0, this.#sending.spin) !== undefined) return resolvedNow(undefined);
      } catch (err) {
        return Promise.reject(err);
      }
      return run(this.#sending, 'send', options, SEND_KEYS, () => this.#sendBytesOp(bytes, 0), true);
    }
    return run(this.#sending, 'send', options, SEND_KEYS, (o) => this.#sendOp(data, o.priority));
  }

  /** Sends a message, blocking the calling thread while the queue is full. */
  sendSync(data: Outgoing<T>, options?: PosixSendSyncOptions): void {
    if (plainSync(this.#sending, options)) {
      this.check('sendSync');
      const bytes = this.#sendBytes(data);
      if (this.#sending.busy || this.#sendStep(bytes, 0, UNTIL_DONE, this.#sending.spin) === undefined) runSync(this.#sending, 'sendSync', options, SEND_KEYS, () => this.#sendBytesOp(bytes, 0));
      return;
    }
    runSync(this.#sending, 'sendSync', options, SEND_KEYS, (o) => this.#sendOp(data, o.priority));
  }

  /** Sends a message if there is room now; `false` if the queue is full (or earlier sends are waiting). */
  trySend(data: Outgoing<T>, options?: { priority?: number }): boolean {
    return tryRun(this.#sending, 'trySend', options, SEND_KEYS, (o) => this.#sendOp(data, o.priority)) !== undefined;
  }

  /**
   * Sends `messages` in order, all with one priority, waiting while the
   * queue is full; one native call sends as many as there is room for.
   * Resolves with how many went in: all of them, or, when the timeout, an
   * abort or `close()` came after some had gone in, that many (the first
   * ones, in order). When none went in it rejects, as {@link send} does.
   * Every message is encoded and checked against `maxMessageSize` before
   * the first is sent.
   */
  sendMany(messages: readonly Outgoing<T>[], options?: PosixSendOptions): Promise<number> {
    return run(this.#sending, 'sendMany', options, SEND_KEYS, (o) => this.#sendManyOp(messages, o.priority));
  }

  /** {@link sendMany}, blocking the calling thread while the queue is full: how many went in. */
  sendManySync(messages: readonly Outgoing<T>[], options?: PosixSendSyncOptions): number {
    return runSync(this.#sending, 'sendManySync', options, SEND_KEYS, (o) => this.#sendManyOp(messages, o.priority));
  }

  /** Sends as many of `messages` as there is room for now, in order: how many went in (0 if full, or earlier sends wait). */
  trySendMany(messages: readonly Outgoing<T>[], options?: { priority?: number }): number {
    return tryRun(this.#sending, 'trySendMany', options, SEND_KEYS, (o) => this.#sendManyOp(messages, o.priority, true)) ?? 0;
  }

  /**
   * Sends the messages of `batch` (a {@link MessageBatch}), in order, all
   * with one priority, as {@link sendMany} sends an array: one native call
   * sends as many as there is room for, straight from the batch's buffer,
   * with no JavaScript work per message. The bytes are raw (the codec is
   * not applied). Every length is checked against `maxMessageSize` before
   * the first is sent. Resolves with how many went in, as `sendMany` does.
   * Leave the batch alone until the call resolves.
   */
  sendBatch(batch: MessageBatch, options?: PosixSendOptions): Promise<number> {
    return withBatch(batch, (b, release) => run(this.#sending, 'sendBatch', options, SEND_KEYS, (o) => this.#sendListOp(this.#packed(b), o.priority), false, release));
  }

  /** {@link sendBatch}, blocking the calling thread while the queue is full: how many went in. */
  sendBatchSync(batch: MessageBatch, options?: PosixSendSyncOptions): number {
    return runSync(this.#sending, 'sendBatchSync', options, SEND_KEYS, (o) => this.#sendListOp(this.#packed(idleBatch(batch)), o.priority));
  }

  /** Sends as many of `batch`'s messages as there is room for now, in order: how many went in (0 if full, or earlier sends wait). */
  trySendBatch(batch: MessageBatch, options?: { priority?: number }): number {
    return tryRun(this.#sending, 'trySendBatch', options, SEND_KEYS, (o) => this.#sendListOp(this.#packed(idleBatch(batch)), o.priority, true)) ?? 0;
  }

  // -- receive ------------------------------------------------------------

  /**
   * Receives the oldest message of the highest priority, waiting while the
   * queue is empty. Never blocks the event loop.
   */
  receive(options?: WaitOptions): Promise<PosixMessage<T>> {
    if (plainAsync(this.#receiving, options)) {
      try {
        this.check('receive');
        const message = this.#receiveStep(0, this.#receiving.spin);
        if (message !== undefined) return resolvedNow(message);
      } catch (err) {
        return Promise.reject(err);
      }
      return run(this.#receiving, 'receive', options, NO_KEYS, () => this.#receiveOp, true);
    }
    return run(this.#receiving, 'receive', options, NO_KEYS, () => this.#receiveOp);
  }

  /** Receives a message, blocking the calling thread while the queue is empty. */
  receiveSync(options?: SyncWaitOptions): PosixMessage<T> {
    if (plainSync(this.#receiving, options)) {
      this.check('receiveSync');
      const message = this.#receiveStep(UNTIL_DONE, this.#receiving.spin);
      if (message !== undefined) return message;
    }
    return runSync(this.#receiving, 'receiveSync', options, NO_KEYS, () => this.#receiveOp);
  }

  /** Receives a message if one is queued; `undefined` if the queue is empty (or earlier receives are waiting). */
  tryReceive(): PosixMessage<T> | undefined {
    return tryRun(this.#receiving, 'tryReceive', undefined, NO_KEYS, () => this.#receiveOp);
  }

  /**
   * Receives several messages in one native call: waits as {@link receive}
   * does for the first, then takes what is queued now, up to `max` (default
   * 64), in the order single receives would (highest priority first).
   * Never an empty array: a wait that ends without a message rejects.
   */
  receiveMany(options?: ReceiveManyOptions): Promise<PosixMessage<T>[]> {
    return run(this.#receiving, 'receiveMany', options, MANY_KEYS, (o) => this.#receiveManyOp(o.max));
  }

  /** {@link receiveMany}, blocking the calling thread while the queue is empty. */
  receiveManySync(options?: ReceiveManySyncOptions): PosixMessage<T>[] {
    return runSync(this.#receiving, 'receiveManySync', options, MANY_KEYS, (o) => this.#receiveManyOp(o.max));
  }

  /** The messages queued now, up to `max` (default 64); `[]` if none (or earlier receives wait). */
  tryReceiveMany(options?: { max?: number }): PosixMessage<T>[] {
    return tryRun(this.#receiving, 'tryReceiveMany', options, MANY_KEYS, (o) => this.#receiveManyOp(o.max)) ?? [];
  }

  /**
   * Receives messages into `batch` (a {@link MessageBatch} of yours, reused
   * from call to call): clears it, waits as {@link receive} does for the
   * first message, then takes the ones queued now, in the order single
   * receives would, while the batch has a free slot and at least
   * `maxMessageSize` bytes of room (`mq_receive` needs that much for any
   * message; the batch must hold at least that much). Each message lands
   * straight in the batch's buffer: one native call, no allocation and no
   * JavaScript work per message. The bytes are raw (the codec is not
   * applied); `priorities` receives their priorities. Resolves with how
   * many messages the batch holds (at least one).
   */
  receiveBatch(batch: MessageBatch, options?: PosixReceiveBatchOptions): Promise<number> {
    return withBatch(batch, (b, release) => run(this.#receiving, 'receiveBatch', options, BATCH_KEYS, (o) => this.#receiveBatchOp(b, o.priorities), false, release));
  }

  /** {@link receiveBatch}, blocking the calling thread while the queue is empty. */
  receiveBatchSync(batch: MessageBatch, options?: PosixReceiveBatchSyncOptions): number {
    return runSync(this.#receiving, 'receiveBatchSync', options, BATCH_KEYS, (o) => this.#receiveBatchOp(idleBatch(batch), o.priorities));
  }

  /** {@link receiveBatch} of the messages queued now: 0 if none (or earlier receives wait; the batch is then empty). */
  tryReceiveBatch(batch: MessageBatch, options?: { priorities?: Uint32Array }): number {
    const b = idleBatch(batch);
    const n = tryRun(this.#receiving, 'tryReceiveBatch', options, BATCH_KEYS, (o) => this.#receiveBatchOp(b, o.priorities));
    if (n !== undefined) return n;
    b.clear();
    return 0;
  }

  /**
   * Receives the next message into `target` (a buffer of yours, reused
   * from call to call: nothing is allocated for the bytes), waiting while
   * the queue is empty. `target` must hold `maxMessageSize` bytes, as
   * `mq_receive` demands. The bytes are raw: the codec is not applied.
   */
  receiveInto(target: Uint8Array, options?: WaitOptions): Promise<PosixReceivedInto> {
    if (plainAsync(this.#receiving, options)) {
      try {
        this.check('receiveInto');
        const got = this.#receiveIntoStep(checkPosixInto(target, this.maxMessageSize), 0, this.#receiving.spin);
        if (got !== undefined) return resolvedNow(got);
      } catch (err) {
        return Promise.reject(err);
      }
      return run(this.#receiving, 'receiveInto', options, NO_KEYS, () => this.#receiveIntoOp(target), true);
    }
    return run(this.#receiving, 'receiveInto', options, NO_KEYS, () => this.#receiveIntoOp(target));
  }

  /** {@link receiveInto}, blocking the calling thread while the queue is empty. */
  receiveIntoSync(target: Uint8Array, options?: SyncWaitOptions): PosixReceivedInto {
    if (plainSync(this.#receiving, options)) {
      this.check('receiveIntoSync');
      const got = this.#receiveIntoStep(checkPosixInto(target, this.maxMessageSize), UNTIL_DONE, this.#receiving.spin);
      if (got !== undefined) return got;
    }
    return runSync(this.#receiving, 'receiveIntoSync', options, NO_KEYS, () => this.#receiveIntoOp(target));
  }

  /** {@link receiveInto} if a message is queued; `undefined` if the queue is empty (or earlier receives wait). */
  tryReceiveInto(target: Uint8Array): PosixReceivedInto | undefined {
    return tryRun(this.#receiving, 'tryReceiveInto', undefined, NO_KEYS, () => this.#receiveIntoOp(target));
  }

  /**
   * Receives messages until the handle is closed (the loop then ends) or
   * `signal` aborts it (the loop throws `ERR_IPC_ABORTED`).
   */
  messages(options?: { signal?: AbortSignal }): AsyncGenerator<PosixMessage<T>, void, undefined> {
    const { signal } = checkOptions(options, ['signal']);
    return receiveUntilClosed(() => this.closed, () => this.receive({ signal }));
  }

  /** `for await (const message of queue)`: {@link messages} without a signal. */
  [Symbol.asyncIterator](): AsyncGenerator<PosixMessage<T>, void, undefined> {
    return this.messages();
  }

  /** Removes the queue's name (works on a closed handle too); see {@link PosixMessageQueue.unlink}. */
  unlink(): void {
    PosixMessageQueue.unlink(this.name);
  }

  // -- internals ----------------------------------------------------------

  #sendOp(data: Outgoing<T>, priority: unknown): Operation<typeof DONE> {
    const bytes = this.#sendBytes(data);
    return this.#sendBytesOp(bytes, optionalInteger(priority, 'priority', 0, MQ_PRIO_MAX - 1, 0));
  }

  #sendBytesOp(bytes: Uint8Array, prio: number): Operation<typeof DONE> {
    // mq_send takes the message from your buffer when there is room: one that changed size while the call waited
    // (shrunk, detached, transferred) fails, rather than send what it holds then.
    const size = realByteLength(bytes);
    return {
      step: (timeout, spin) => {
        if (realByteLength(bytes) !== size) throw batchChanged(this.name, true);
        return this.#sendStep(bytes, prio, timeout, spin);
      },
    };
  }

  /** `data` encoded, and refused if it is longer than the queue takes. */
  #sendBytes(data: Outgoing<T>): Uint8Array {
    const bytes = encodeWith(this.#codec, data as T, this.name);
    const size = realByteLength(bytes);
    if (size > this.maxMessageSize) {
      throw tooLarge(this.name, size, this.maxMessageSize, 'the queue\'s maxMessageSize');
    }
    return bytes;
  }

  #sendStep(bytes: Uint8Array, prio: number, timeout: number, spin: number): typeof DONE | undefined {
    const r = native.mqSend(this.#fd, bytes, prio, timeout, spin);
    if (r === 0) return DONE;
    if (r === E.EAGAIN) return undefined;
    throw systemError(r, 'mq_send', this.name);
  }

  /**
   * `messages` encoded and checked, then sent from the first not yet sent.
   * The step resolves with the count once all are in; `partial` reports
   * the count when an interruption comes after some. `tryForm`: the step
   * reports what went in now, even none.
   */
  #sendManyOp(messages: readonly Outgoing<T>[], priority: unknown, tryForm = false): Operation<number> {
    return this.#sendListOp(encodeBatch(messages, (data) => {
      const bytes = encodeWith(this.#codec, data as T, this.name);
      this.#checkLength(realByteLength(bytes));
      return bytes;
    }), priority, tryForm);
  }

  #checkLength(length: number): void {
    if (length > this.maxMessageSize) throw tooLarge(this.name, length, this.maxMessageSize, 'the queue\'s maxMessageSize');
  }

  /** `batch` as a send starting now finds it, every length checked. */
  #packed(batch: MessageBatch): Packed {
    return checkLengths(packed(batch), (length) => this.#checkLength(length));
  }

  /** The sends of {@link sendMany} and {@link sendBatch}: encoded messages, or a packed batch's. */
  #sendListOp(list: GatherList, priority: unknown, tryForm = false): Operation<number> {
    const prio = optionalInteger(priority, 'priority', 0, MQ_PRIO_MAX - 1, 0);
    const fail = (r: number): IpcError => (r === LIST_CHANGED ? batchChanged(this.name) : Array.isArray(list) ? systemError(r, 'mq_send', this.name)
      : packedFailure(list as Packed, this.name, r, () => systemError(r, 'mq_send', this.name)));
    const batch = batchSend(gatherCount(list), this.#sending, tryForm, fail);
    const sizes = listSizes(list);
    return {
      step: (timeout, spin) => batch.outcome(batch.left()
        ? unlessChanged(list, sizes, batch.next[0]!, () => mqSendList(this.#fd, list, prio, batch.next, timeout, batch.spin(timeout, spin)))
        : 0),
      partial: batch.partial,
    };
  }

  /** Held messages first (those a codec refused in a batch), then straight from the kernel into `batch`. */
  #receiveBatchOp(batch: MessageBatch, priorities: unknown): Operation<number> {
    checkBatchRoom(batch, this.maxMessageSize, 'the queue\'s maxMessageSize: mq_receive refuses a smaller buffer');
    const out = checkSlots(priorities, 'priorities', Uint32Array, batch);
    const io = this.#batchIo;
    return {
      step: (timeout, spin) => {
        checkBatchIntact(batch, this.maxMessageSize, this.name);
        batch.clear();
        while (this.#held.size > 0) {
          const held = this.#held.take()!;
          if (!pushIfRoom(batch, held.bytes)) {
            this.#held.putBack([held]);
            return batch.count;
          }
          if (out !== undefined) out[batch.count - 1] = held.priority;
        }
        io[0] = batch.count;
        io[1] = batch.size;
        io[2] = this.maxMessageSize;
        const wait = batch.count === 0;
        const n = native.mqReceiveBatch(this.#fd, batch.data, batch.lengths, io, wait ? timeout : 0, wait ? spin : 0, out);
        if (n > 0) batch.place(io[0]!, io[1]!);
        else if (wait) {
          if (n === E.EAGAIN) return undefined;
          throw systemError(n, 'mq_receive', this.name);
        }
        // (A failure after held messages: the next call meets it.)
        return batch.count;
      },
    };
  }

  #receiveIntoOp(target: unknown): Operation<PosixReceivedInto> {
    const into = checkPosixInto(target, this.maxMessageSize);
    return { step: (timeout, spin) => this.#receiveIntoStep(into, timeout, spin) };
  }

  /** One receive into `into`: a message a batch held back first, then mq_receive straight into it. */
  #receiveIntoStep(into: Uint8Array, timeout: number, spin: number): PosixReceivedInto | undefined {
    if (this.#held.size > 0) {
      const held = this.#held.take()!;
      fitInto(into, held.bytes.length, () => this.#held.putBack([held]));
      copyView(into, held.bytes);
      return { length: held.bytes.length, priority: held.priority };
    }
    const r = native.mqReceive(this.#fd, into, 0, timeout, spin);
    if (r === E.EAGAIN) return undefined;
    if (r < 0) throw systemError(r, 'mq_receive', this.name);
    return { length: r >>> 0, priority: priorityOf(r) };
  }

  #receiveManyOp(max: unknown): Operation<PosixMessage<T>[]> {
    const limit = checkMax(max);
    return { step: (timeout, spin) => this.#receiveManyStep(limit, timeout, spin) };
  }

  #receiveManyStep(limit: number, timeout: number, spin: number): PosixMessage<T>[] | undefined {
    const decode = (r: RawPosix): PosixMessage<T> => ({ data: decodeWith(this.#codec, r.bytes, this.name), priority: r.priority });
    if (this.#held.size > 0) return decodeBatch(this.#held.takeMany(limit), decode, this.#held, true);
    const rx = this.#rxMany ??= new ReceiveBuffer(this.maxMessageSize, BATCH_SLAB);
    const io = this.#manyIo ??= new Uint32Array(2 + 2 * MAX_BATCH);
    rx.ensureFor(limit);
    io[0] = limit;
    io[1] = this.maxMessageSize;
    const n = native.mqReceiveMany(this.#fd, rx.buffer, rx.offset, io, timeout, spin);
    if (n === E.EAGAIN) return undefined;
    if (n < 0) throw systemError(n, 'mq_receive', this.name);
    const raw: RawPosix[] = new Array<RawPosix>(n);
    for (let i = 0, at = rx.offset; i < n; i++, at = rx.offset) raw[i] = { bytes: rx.take(at, io[2 + 2 * i]!), priority: io[3 + 2 * i]! };
    return decodeBatch(raw, decode, this.#held);
  }

  #receiveStep(timeout: number, spin: number): PosixMessage<T> | undefined {
    const held = this.#held.take();
    if (held !== undefined) return { data: decodeWith(this.#codec, held.bytes, this.name), priority: held.priority };
    this.#rx.ensure();
    const r = native.mqReceive(this.#fd, this.#rx.buffer, this.#rx.offset, timeout, spin);
    if (r === E.EAGAIN) return undefined;
    if (r < 0) throw systemError(r, 'mq_receive', this.name);
    const bytes = this.#rx.take(this.#rx.offset, r >>> 0);
    return { data: decodeWith(this.#codec, bytes, this.name), priority: priorityOf(r) };
  }
}

/** A message a batch received, before its codec. */
interface RawPosix {
  bytes: Buffer;
  priority: number;
}

const NO_KEYS: readonly string[] = [];
const MANY_KEYS = ['max'] as const;
const BATCH_KEYS = ['priorities'] as const;
const SEND_KEYS = ['priority'] as const;
const OPEN_KEYS = ['codec', 'access', 'spin', 'owner'] as const;
const CREATE_KEYS = [...OPEN_KEYS, 'maxMessages', 'maxMessageSize', 'mode'] as const;


// ===========================================================================
// System V

/** Largest message type (`long`, kept within JavaScript's exact integers). */
export const SYSV_TYPE_MAX = Number.MAX_SAFE_INTEGER;

/** Options of {@link SysvMessageQueue.create} and {@link SysvMessageQueue.openOrCreate}. */
export interface SysvMessageQueueCreateOptions<T = Buffer> extends SpinOptions {
  /** Permission bits (the umask does not apply to System V objects). Default `0o600`. */
  mode?: number;
  /**
   * Capacity in bytes (`msg_qbytes`). Default: the kernel's `kernel.msgmnb`
   * (16384). More than that needs CAP_SYS_RESOURCE.
   */
  maxBytes?: number;
  /** Typed messages over the bytes ({@link CodecOption}). Default: raw bytes. */
  codec?: CodecOption<T> | undefined;
  /**
   * The uid that must own and have created an existing queue, or `'any'`.
   * Default: this process's effective uid. An existing queue must also grant
   * nothing outside `mode`, when given. Otherwise `ERR_IPC_UNTRUSTED` (see docs/errors.md).
   */
  owner?: OwnerOption;
}

/** Options of {@link SysvMessageQueue.open}. */
export interface SysvMessageQueueOpenOptions<T = Buffer> extends SpinOptions {
  /** Typed messages over the bytes ({@link CodecOption}). Default: raw bytes. */
  codec?: CodecOption<T> | undefined;
  /** The uid that must own and have created the queue, or `'any'`. Default: this process's effective uid. */
  owner?: OwnerOption;
}

/** Options of a batched System V receive. */
export interface SysvReceiveManyOptions extends ReceiveManyOptions {
  /** `msgrcv` type selection for every message of the batch, as {@link SysvReceiveOptions.type}. Default `0`. */
  type?: number;
}

/** Options of {@link SysvMessageQueue.receiveBatch}. */
export interface SysvReceiveBatchOptions extends WaitOptions {
  /** `msgrcv` type selection for every message of the batch, as {@link SysvReceiveOptions.type}. Default `0`. */
  type?: number;
  /**
   * Where each message's type goes: `types[i]` is that of the batch's
   * message `i`. A `Float64Array` with at least as many elements as the
   * batch has slots. Default: types are not kept.
   */
  types?: Float64Array;
}

/** Options of {@link SysvMessageQueue.receiveBatchSync}. */
export interface SysvReceiveBatchSyncOptions extends SyncWaitOptions {
  /** As {@link SysvReceiveBatchOptions.type}. */
  type?: number;
  /** As {@link SysvReceiveBatchOptions.types}. */
  types?: Float64Array;
}

/** Options of a batched System V `receiveManySync`. */
export interface SysvReceiveManySyncOptions extends ReceiveManySyncOptions {
  /** `msgrcv` type selection, as {@link SysvReceiveOptions.type}. Default `0`. */
  type?: number;
}

/** Options of a System V receive. */
export interface SysvReceiveOptions extends WaitOptions {
  /**
   * `msgrcv` type selection: `0` (default) the first message; `n > 0` the
   * first message of type n; `n < 0` the first message of the lowest type
   * that is at most |n|.
   */
  type?: number;
}

/** Options of a System V `receiveSync`. */
export interface SysvReceiveSyncOptions extends SyncWaitOptions {
  /** `msgrcv` type selection, as {@link SysvReceiveOptions.type}. Default `0`: the first message. */
  type?: number;
}

/** What a System V receive into a buffer of yours got: the message is `target.subarray(0, length)`. */
export interface SysvReceivedInto {
  /** Bytes of the message, at the start of the target. */
  length: number;
  /** Its type. */
  type: number;
}

/** A message received from a System V queue. */
export interface SysvMessage<T = Buffer> {
  /** The payload: a `Buffer` of its bytes, or the codec's decoded value. */
  data: T;
  /** The type it was sent with, 1 to `SYSV_TYPE_MAX`. */
  type: number;
}

/** `msgctl(IPC_STAT)` of a System V queue. */
export interface SysvMessageQueueStat {
  /** The key, or 0 for a private queue. */
  key: number;
  /** The queue identifier (`msqid`). */
  id: number;
  /** Permission bits. */
  mode: number;
  /** Owner's uid. */
  uid: number;
  /** Owner's gid. */
  gid: number;
  /** Creator's uid. */
  cuid: number;
  /** Creator's gid. */
  cgid: number;
  /** Messages in the queue now (the depth). */
  messages: number;
  /** Bytes in the queue now. */
  bytes: number;
  /** Capacity in bytes (`msg_qbytes`). */
  maxBytes: number;
  /** Pid of the last `msgsnd` (0 if none). */
  lastSendPid: number;
  /** Pid of the last `msgrcv` (0 if none). */
  lastReceivePid: number;
  /** Time of the last `msgsnd` (whole seconds), or null if none. */
  lastSendTime: Date | null;
  /** Time of the last `msgrcv` (whole seconds), or null if none. */
  lastReceiveTime: Date | null;
  /** Time of creation or of the last `msgctl(IPC_SET)` (whole seconds). */
  changeTime: Date;
}

/** The kernel's System V message-queue settings. */
export interface SysvMessageQueueLimits {
  /** `kernel.msgmax`: the largest message in bytes. */
  msgmax: number | undefined;
  /** `kernel.msgmnb`: the default (and, without CAP_SYS_RESOURCE, largest) queue capacity in bytes. */
  msgmnb: number | undefined;
  /** `kernel.msgmni`: queues in the system. */
  msgmni: number | undefined;
}

const KERNEL_PROC = '/proc/sys/kernel';

function sysvGetError(r: number, label: string): IpcError {
  if (r === E.ENOSPC) {
    return limitError(r, 'msgget', label, `the system already holds ${describeSetting(`${KERNEL_PROC}/msgmni`)} queues. ` +
      'Remove unused queues (ipckit ls, ipckit rm) or raise it: sysctl kernel.msgmni=N.');
  }
  return systemError(r, 'msgget', label);
}

/**
 * A System V message queue (`msgget`, `msgsnd`, `msgrcv`, `msgctl`).
 *
 * Every message carries a positive type, and receivers choose by type.
 * System V queues have no descriptor, so an async call that has to wait runs
 * its `msgrcv`/`msgsnd` on an ipckit waiter thread (never a libuv pool
 * thread) and can be cancelled at any moment. Pending calls are served in
 * order: at most one thread waits per handle and direction (per type
 * selector, for receives).
 *
 * @example
 * ```ts
 * import { SysvMessageQueue } from 'ipckit';
 *
 * const queue = SysvMessageQueue.create(0x1bc0_0001);
 * try {
 *   queue.sendSync(1, 'for type 1');
 *   queue.sendSync(2, 'for type 2');
 *   const { data, type } = await queue.receive({ type: 2, timeout: 1000 });
 *   console.log(data.toString(), type); // for type 2 2
 * } finally {
 *   queue.remove(); // also closes the handle
 * }
 * ```
 */
export class SysvMessageQueue<T = Buffer> extends Handle implements AsyncIterable<SysvMessage<T>> {
  /** The queue identifier (`msqid`, as `ipcs -q` shows it). */
  readonly id: number;
  /** The key, or 0 for a private queue. */
  readonly key: number;
  /** How the queue was addressed, for messages: `0x00001234`, `id 5`, … */
  readonly address: string;
  /** Whether this handle created the queue. */
  readonly created: boolean;
  /** Largest message this handle sends or receives: `kernel.msgmax` when opened. */
  readonly maxMessageSize: number;

  readonly #codec: Codec<T>;
  readonly #rx: ReceiveBuffer;
  /** msgrcv's type selector in, the received type out. */
  /** The queue's msg_qbytes as last seen (Infinity if this user may not stat it). */
  #maxBytes: number;
  readonly #sending: JobLane;
  readonly #receiving: JobLane;
  /** Where batched receives land, and their selector, limits, lengths and types (made on first use). */
  #rxMany: ReceiveBuffer | undefined;
  #manyIo: Float64Array | undefined;
  /** A packed receive's [count, size, selector, maxMessageSize] (see native msgRcvBatch). */
  readonly #batchIo = new Float64Array(4);
  /** Taken by a batch, not yet handed over (its codec refused one): matching receives get these first. */
  readonly #held = new Held<RawSysv>();
  /** Where a receive into a buffer of the caller's lands first (msgrcv writes the type before the payload). */
  #scratch: Buffer | undefined;

  private constructor(id: number, key: number, address: string, codec: Codec<T>, spin: number, created: boolean) {
    super();
    this.id = id;
    this.key = key;
    this.address = address;
    this.#codec = codec;
    this.created = created;
    this.maxMessageSize = readProcNumber(`${KERNEL_PROC}/msgmax`) ?? 8192;
    // msgrcv writes the long type in front of the payload.
    this.#rx = new ReceiveBuffer(8 + this.maxMessageSize);
    this.#maxBytes = this.#readMaxBytes();
    this.#sending = new JobLane(this, spin);
    this.#receiving = new JobLane(this, spin);
  }

  /** Creates a new queue; fails with `EEXIST` if the key is taken. */
  static create<T = any>(address: SysvAddress, options: SysvMessageQueueCreateOptions<T> & { codec: 'json' | 'msgpack' }): SysvMessageQueue<T>;
  static create<T>(address: SysvAddress, options: SysvMessageQueueCreateOptions<T> & { codec: Codec<T> }): SysvMessageQueue<T>;
  static create<T = Buffer>(address: SysvAddress, options?: SysvMessageQueueCreateOptions<T>): SysvMessageQueue<T>;
  static create<T>(address: SysvAddress, options?: SysvMessageQueueCreateOptions<T>): SysvMessageQueue<T> {
    const opts = checkOptions(options, SYSV_CREATE_KEYS);
    const target = resolveSysvAddress(address);
    if (target.key === undefined) {
      throw new IpcError('ERR_IPC_INVALID_ADDRESS', `Cannot create a queue at ${target.label}: identifiers are assigned by the kernel; give a key.`);
    }
    const q = SysvMessageQueue.#get<T>(target.key, target.label, opts, true, undefined);
    if (q === undefined) throw sysvGetError(E.EEXIST, target.label);
    return q;
  }

  /** Opens an existing queue by key, ftok pair, or `{ id }`. */
  static open<T = any>(address: SysvAddress, options: SysvMessageQueueOpenOptions<T> & { codec: 'json' | 'msgpack' }): SysvMessageQueue<T>;
  static open<T>(address: SysvAddress, options: SysvMessageQueueOpenOptions<T> & { codec: Codec<T> }): SysvMessageQueue<T>;
  static open<T = Buffer>(address: SysvAddress, options?: SysvMessageQueueOpenOptions<T>): SysvMessageQueue<T>;
  static open<T>(address: SysvAddress, options?: SysvMessageQueueOpenOptions<T>): SysvMessageQueue<T> {
    const opts = checkOptions(options, SYSV_OPEN_KEYS);
    const target = resolveSysvAddress(address);
    if (target.id !== undefined) {
      const codec = resolveCodec<T>(opts.codec);
      const spin = checkSpin(opts.spin);
      const stat = native.msgStat(target.id);
      if (typeof stat === 'number') throw systemError(stat, 'msgctl', target.label);
      verifyOwnership(stat, checkOwner(opts.owner), undefined, target.label, 'queue');
      return new SysvMessageQueue<T>(target.id, stat.key, target.label, codec, spin, false);
    }
    const q = SysvMessageQueue.#get<T>(target.key, target.label, opts, false, undefined);
    if (q === undefined) throw sysvGetError(E.ENOENT, target.label);
    return q;
  }

  /** Opens the queue with this key, creating it with `options` if there is none. */
  static openOrCreate<T = any>(address: SysvAddress, options: SysvMessageQueueCreateOptions<T> & { codec: 'json' | 'msgpack' }): SysvMessageQueue<T>;
  static openOrCreate<T>(address: SysvAddress, options: SysvMessageQueueCreateOptions<T> & { codec: Codec<T> }): SysvMessageQueue<T>;
  static openOrCreate<T = Buffer>(address: SysvAddress, options?: SysvMessageQueueCreateOptions<T>): SysvMessageQueue<T>;
  static openOrCreate<T>(address: SysvAddress, options?: SysvMessageQueueCreateOptions<T>): SysvMessageQueue<T> {
    const opts = checkOptions(options, SYSV_CREATE_KEYS);
    const target = resolveSysvAddress(address);
    // An identifier names an existing queue: there is nothing to create.
    if (target.key === undefined) return SysvMessageQueue.open(address, { codec: opts.codec, spin: opts.spin, owner: opts.owner });
    const { key, label } = target;
    const mode = checkMode(opts.mode);
    return createOrOpen(() => SysvMessageQueue.#get<T>(key, label, opts, true, undefined),
      () => SysvMessageQueue.#get<T>(key, label, opts, false, opts.mode === undefined ? undefined : mode), 'msgget', label);
  }

  /** Creates, or opens a queue that must belong to `opts.owner` and, with `expectMode`, grant nothing outside it. */
  static #get<T>(key: number, label: string, opts: SysvMessageQueueCreateOptions<T>, create: boolean,
    expectMode: number | undefined): SysvMessageQueue<T> | undefined {
    const codec = resolveCodec<T>(opts.codec);
    const spin = checkSpin(opts.spin);
    const owner = checkOwner(opts.owner);
    const mode = checkMode(opts.mode);
    const maxBytes = opts.maxBytes === undefined ? undefined : checkInteger(opts.maxBytes, 'maxBytes', 1, 2 ** 31 - 1);
    // Opening asks for read and write access, so that a user the mode does not allow fails here, not at the first send.
    const id = native.msgGet(key, create ? C.IPC_CREAT | C.IPC_EXCL : 0, create ? mode : 0o600);
    if (id === (create ? E.EEXIST : E.ENOENT)) return undefined;
    if (id < 0) throw sysvGetError(id, label);
    if (!create) {
      const stat = native.msgStat(id);
      // Removed since msgget: as if there were none (openOrCreate tries again).
      if (stat === E.EINVAL || stat === E.EIDRM) return undefined;
      if (typeof stat === 'number') throw systemError(stat, 'msgctl', label);
      verifyOwnership(stat, owner, expectMode, label, 'queue');
    }
    if (create && maxBytes !== undefined) {
      const r = native.msgSetMaxBytes(id, maxBytes);
      if (r < 0) {
        native.msgRemove(id);
        if (r === E.EPERM) {
          throw limitError(r, 'msgctl', label, `maxBytes ${maxBytes} exceeds ${describeSetting(`${KERNEL_PROC}/msgmnb`)}, ` +
            'the limit without CAP_SYS_RESOURCE. Ask for less, or raise it: sysctl kernel.msgmnb=N.');
        }
        throw systemError(r, 'msgctl', label);
      }
    }
    return new SysvMessageQueue<T>(id, key, label, codec, spin, create);
  }

  /**
   * Removes the queue at once (`IPC_RMID`): its messages are discarded and
   * waiters fail with `EIDRM`. Its owner or creator may remove it whatever
   * its mode.
   */
  static remove(address: SysvAddress): void {
    const target = resolveSysvAddress(address);
    const id = target.id ?? native.msgGet(target.key, 0, 0);
    if (id < 0) throw sysvGetError(id, target.label);
    const r = native.msgRemove(id);
    if (r < 0) throw systemError(r, 'msgctl', target.label);
  }

  /** The kernel's current System V message-queue limits. */
  static limits(): SysvMessageQueueLimits {
    return {
      msgmax: readProcNumber(`${KERNEL_PROC}/msgmax`),
      msgmnb: readProcNumber(`${KERNEL_PROC}/msgmnb`),
      msgmni: readProcNumber(`${KERNEL_PROC}/msgmni`),
    };
  }

  /** `msgctl(IPC_STAT)`: depth, bytes, capacity, last pids and times, owner and mode. */
  stat(): SysvMessageQueueStat {
    this.check('stat');
    const s = native.msgStat(this.id);
    if (typeof s === 'number') throw systemError(s, 'msgctl', this.address);
    const date = (seconds: number): Date | null => (seconds === 0 ? null : new Date(seconds * 1000));
    return {
      key: s.key, id: this.id, mode: s.mode, uid: s.uid, gid: s.gid, cuid: s.cuid, cgid: s.cgid,
      messages: s.messages, bytes: s.bytes, maxBytes: s.maxBytes,
      lastSendPid: s.lastSendPid, lastReceivePid: s.lastReceivePid,
      lastSendTime: date(s.sendTime), lastReceiveTime: date(s.receiveTime), changeTime: new Date(s.changeTime * 1000),
    };
  }

  // -- send ---------------------------------------------------------------

  /** Sends a message of `type` (≥ 1), waiting while the queue is full. Never blocks the event loop. */
  send(type: number, data: Outgoing<T>, options?: WaitOptions): Promise<void> {
    if (plainAsync(this.#sending, options)) {
      let t, bytes;
      try {
        this.check('send');
        t = checkInteger(type, 'type', 1, SYSV_TYPE_MAX);
        bytes = this.#encode(data);
        if (!this.#sending.busy && this.#sent(native.msgSnd(this.id, t, bytes, 0, this.#sending.spin)) !== undefined) return resolvedNow(undefined);
      } catch (err) {
        return Promise.reject(err);
      }
      return run(this.#sending, 'send', options, NO_KEYS, () => this.#sendBytesOp(t, bytes), true);
    }
    return run(this.#sending, 'send', options, NO_KEYS, () => this.#sendOp(type, data));
  }

  /** Sends a message, blocking the calling thread while the queue is full. */
  sendSync(type: number, data: Outgoing<T>, options?: SyncWaitOptions): void {
    if (plainSync(this.#sending, options)) {
      this.check('sendSync');
      const t = checkInteger(type, 'type', 1, SYSV_TYPE_MAX);
      const bytes = this.#encode(data);
      if (this.#sending.busy || this.#sent(native.msgSnd(this.id, t, bytes, UNTIL_DONE, this.#sending.spin)) === undefined) runSync(this.#sending, 'sendSync', options, NO_KEYS, () => this.#sendBytesOp(t, bytes));
      return;
    }
    runSync(this.#sending, 'sendSync', options, NO_KEYS, () => this.#sendOp(type, data));
  }

  /** Sends a message if there is room now; `false` if the queue is full (or earlier sends are waiting). */
  trySend(type: number, data: Outgoing<T>): boolean {
    return tryRun(this.#sending, 'trySend', undefined, NO_KEYS, () => this.#sendOp(type, data)) !== undefined;
  }

  /**
   * Sends `messages` in order, all of `type`, waiting while the queue is
   * full; one native call sends as many as there is room for. Resolves with
   * how many went in: all, or, when the timeout, an abort or `close()` came
   * after some had gone in, that many (the first ones, in order). When none
   * went in it rejects, as {@link send} does.
   */
  sendMany(type: number, messages: readonly Outgoing<T>[], options?: WaitOptions): Promise<number> {
    return run(this.#sending, 'sendMany', options, NO_KEYS, () => this.#sendManyOp(type, messages));
  }

  /** {@link sendMany}, blocking the calling thread while the queue is full: how many went in. */
  sendManySync(type: number, messages: readonly Outgoing<T>[], options?: SyncWaitOptions): number {
    return runSync(this.#sending, 'sendManySync', options, NO_KEYS, () => this.#sendManyOp(type, messages));
  }

  /** Sends as many of `messages` as there is room for now, in order: how many went in (0 if full, or earlier sends wait). */
  trySendMany(type: number, messages: readonly Outgoing<T>[]): number {
    return tryRun(this.#sending, 'trySendMany', undefined, NO_KEYS, () => this.#sendManyOp(type, messages, true)) ?? 0;
  }

  /**
   * Sends the messages of `batch` (a {@link MessageBatch}), in order, all
   * of `type`, as {@link sendMany} sends an array: one native call sends
   * as many as there is room for, from the batch's buffer, with no
   * JavaScript work per message. The bytes are raw (the codec is not
   * applied). Every length is checked against `maxMessageSize` and the
   * queue's capacity before the first is sent. Resolves with how many went
   * in, as `sendMany` does. Leave the batch alone until the call resolves.
   */
  sendBatch(type: number, batch: MessageBatch, options?: WaitOptions): Promise<number> {
    return withBatch(batch, (b, release) => run(this.#sending, 'sendBatch', options, NO_KEYS, () => this.#sendListOp(type, this.#packed(b)), false, release));
  }

  /** {@link sendBatch}, blocking the calling thread while the queue is full: how many went in. */
  sendBatchSync(type: number, batch: MessageBatch, options?: SyncWaitOptions): number {
    return runSync(this.#sending, 'sendBatchSync', options, NO_KEYS, () => this.#sendListOp(type, this.#packed(idleBatch(batch))));
  }

  /** Sends as many of `batch`'s messages as there is room for now, in order: how many went in (0 if full, or earlier sends wait). */
  trySendBatch(type: number, batch: MessageBatch): number {
    return tryRun(this.#sending, 'trySendBatch', undefined, NO_KEYS, () => this.#sendListOp(type, this.#packed(idleBatch(batch)), true)) ?? 0;
  }

  // -- receive ------------------------------------------------------------

  /** Receives a message chosen by `type` (see {@link SysvReceiveOptions}), waiting while there is none. */
  receive(options?: SysvReceiveOptions): Promise<SysvMessage<T>> {
    if (plainAsync(this.#receiving, options)) {
      try {
        this.check('receive');
        const message = this.#receiveStep(0, 0, this.#receiving.spin);
        if (message !== undefined) return resolvedNow(message);
      } catch (err) {
        return Promise.reject(err);
      }
      return run(this.#receiving, 'receive', options, RECEIVE_KEYS, () => this.#receiveOp(0), true);
    }
    return run(this.#receiving, 'receive', options, RECEIVE_KEYS, (o) => this.#receiveOp(o.type));
  }

  /** Receives a message chosen by `type`, blocking the calling thread while there is none. */
  receiveSync(options?: SysvReceiveSyncOptions): SysvMessage<T> {
    if (plainSync(this.#receiving, options)) {
      this.check('receiveSync');
      const message = this.#receiveStep(0, UNTIL_DONE, this.#receiving.spin);
      if (message !== undefined) return message;
    }
    return runSync(this.#receiving, 'receiveSync', options, RECEIVE_KEYS, (o) => this.#receiveOp(o.type));
  }

  /** Receives a message chosen by `type` if there is one; `undefined` otherwise (or while earlier receives wait). */
  tryReceive(options?: { type?: number }): SysvMessage<T> | undefined {
    return tryRun(this.#receiving, 'tryReceive', options, RECEIVE_KEYS, (o) => this.#receiveOp(o.type));
  }

  /**
   * Receives several messages chosen by `type` in one native call: waits as
   * {@link receive} does for the first, then takes the matching ones there
   * now, up to `max` (default 64), as successive receives would. Never an
   * empty array: a wait that ends without a message rejects.
   */
  receiveMany(options?: SysvReceiveManyOptions): Promise<SysvMessage<T>[]> {
    return run(this.#receiving, 'receiveMany', options, RECEIVE_MANY_KEYS, (o) => this.#receiveManyOp(o.type, o.max));
  }

  /** {@link receiveMany}, blocking the calling thread while no message matches. */
  receiveManySync(options?: SysvReceiveManySyncOptions): SysvMessage<T>[] {
    return runSync(this.#receiving, 'receiveManySync', options, RECEIVE_MANY_KEYS, (o) => this.#receiveManyOp(o.type, o.max));
  }

  /** The matching messages there now, up to `max` (default 64); `[]` if none (or earlier receives of the selector wait). */
  tryReceiveMany(options?: { type?: number; max?: number }): SysvMessage<T>[] {
    return tryRun(this.#receiving, 'tryReceiveMany', options, RECEIVE_MANY_KEYS, (o) => this.#receiveManyOp(o.type, o.max)) ?? [];
  }

  /**
   * Receives messages chosen by `type` into `batch` (a {@link MessageBatch}
   * of yours, reused from call to call): clears it, waits as
   * {@link receive} does for the first, then takes the matching ones there
   * now, as successive receives would, while they fit (the batch must hold
   * at least `maxMessageSize` bytes, so the first always does). Each lands
   * in the batch's buffer with one native call, no allocation and no
   * JavaScript work per message. The bytes are raw (the codec is not
   * applied); `types` receives their types. Resolves with how many
   * messages the batch holds (at least one).
   */
  receiveBatch(batch: MessageBatch, options?: SysvReceiveBatchOptions): Promise<number> {
    return withBatch(batch, (b, release) => run(this.#receiving, 'receiveBatch', options, BATCH_KEYS_SYSV, (o) => this.#receiveBatchOp(b, o.type, o.types), false, release));
  }

  /** {@link receiveBatch}, blocking the calling thread while no message matches. */
  receiveBatchSync(batch: MessageBatch, options?: SysvReceiveBatchSyncOptions): number {
    return runSync(this.#receiving, 'receiveBatchSync', options, BATCH_KEYS_SYSV, (o) => this.#receiveBatchOp(idleBatch(batch), o.type, o.types));
  }

  /** {@link receiveBatch} of the matching messages there now: 0 if none (or earlier receives of the selector wait; the batch is then empty). */
  tryReceiveBatch(batch: MessageBatch, options?: { type?: number; types?: Float64Array }): number {
    const b = idleBatch(batch);
    const n = tryRun(this.#receiving, 'tryReceiveBatch', options, BATCH_KEYS_SYSV, (o) => this.#receiveBatchOp(b, o.type, o.types));
    if (n !== undefined) return n;
    b.clear();
    return 0;
  }

  /**
   * Receives the next message chosen by `type` into `target` (a buffer of
   * yours, reused from call to call: nothing is allocated for the bytes),
   * waiting while there is none. `target` must hold `maxMessageSize`
   * bytes. The bytes are raw: the codec is not applied.
   */
  receiveInto(target: Uint8Array, options?: SysvReceiveOptions): Promise<SysvReceivedInto> {
    if (plainAsync(this.#receiving, options)) {
      try {
        this.check('receiveInto');
        const got = this.#receiveIntoStep(checkSysvInto(target, this.maxMessageSize), 0, 0, this.#receiving.spin);
        if (got !== undefined) return resolvedNow(got);
      } catch (err) {
        return Promise.reject(err);
      }
      return run(this.#receiving, 'receiveInto', options, RECEIVE_KEYS, () => this.#receiveIntoOp(target, 0), true);
    }
    return run(this.#receiving, 'receiveInto', options, RECEIVE_KEYS, (o) => this.#receiveIntoOp(target, o.type));
  }

  /** {@link receiveInto}, blocking the calling thread while no message matches. */
  receiveIntoSync(target: Uint8Array, options?: SysvReceiveSyncOptions): SysvReceivedInto {
    if (plainSync(this.#receiving, options)) {
      this.check('receiveIntoSync');
      const got = this.#receiveIntoStep(checkSysvInto(target, this.maxMessageSize), 0, UNTIL_DONE, this.#receiving.spin);
      if (got !== undefined) return got;
    }
    return runSync(this.#receiving, 'receiveIntoSync', options, RECEIVE_KEYS, (o) => this.#receiveIntoOp(target, o.type));
  }

  /** {@link receiveInto} if a message matches now; `undefined` otherwise (or while earlier receives of the selector wait). */
  tryReceiveInto(target: Uint8Array, options?: { type?: number }): SysvReceivedInto | undefined {
    return tryRun(this.#receiving, 'tryReceiveInto', options, RECEIVE_KEYS, (o) => this.#receiveIntoOp(target, o.type));
  }

  /** Receives messages (of `type`, default any) until the handle is closed or `signal` aborts. */
  messages(options?: { type?: number; signal?: AbortSignal }): AsyncGenerator<SysvMessage<T>, void, undefined> {
    const opts = checkOptions(options, ['type', 'signal']);
    return receiveUntilClosed(() => this.closed, () => this.receive({ type: opts.type, signal: opts.signal }));
  }

  /** `for await (const message of queue)`: {@link messages} of any type, without a signal. */
  [Symbol.asyncIterator](): AsyncGenerator<SysvMessage<T>, void, undefined> {
    return this.messages();
  }

  /** Removes the queue (`IPC_RMID`); also closes this handle. */
  remove(): void {
    const r = native.msgRemove(this.id);
    this.close();
    if (r < 0) throw systemError(r, 'msgctl', this.address);
  }

  // -- internals ----------------------------------------------------------

  #sendOp(type: unknown, data: Outgoing<T>): Operation<typeof DONE> {
    const t = checkInteger(type, 'type', 1, SYSV_TYPE_MAX);
    return this.#sendBytesOp(t, this.#encode(data));
  }

  #sendBytesOp(t: number, bytes: Uint8Array): Operation<typeof DONE> {
    return {
      step: (timeout, spin) => this.#sent(native.msgSnd(this.id, t, bytes, timeout, spin)),
      job: { start: (done) => native.msgSndAsync(this.id, t, bytes, done), finish: (r) => this.#sent(r) },
    };
  }

  /** What a msgsnd's result says: sent, not yet (EAGAIN), or a failure. */
  #sent(r: number): typeof DONE | undefined {
    if (r === 0) return DONE;
    if (r === E.EAGAIN) return undefined;
    throw systemError(r, 'msgsnd', this.address);
  }

  /** As PosixMessageQueue's: encoded and checked, then sent from the first not yet sent; a waiter thread sends one at a time. */
  #sendManyOp(type: unknown, messages: readonly Outgoing<T>[], tryForm = false): Operation<number> {
    const t = checkInteger(type, 'type', 1, SYSV_TYPE_MAX);
    return this.#sendListOp(t, encodeBatch(messages, (data) => this.#encode(data)), tryForm);
  }

  /** `batch` as a send starting now finds it, every length checked. */
  #packed(batch: MessageBatch): Packed {
    return checkLengths(packed(batch), (length) => this.#checkLength(length));
  }

  /** The sends of {@link sendMany} and {@link sendBatch}: encoded messages, or a packed batch's. */
  #sendListOp(type: unknown, list: GatherList, tryForm = false): Operation<number> {
    const t = checkInteger(type, 'type', 1, SYSV_TYPE_MAX);
    const fail = (r: number): IpcError => (r === LIST_CHANGED ? batchChanged(this.address) : Array.isArray(list) ? systemError(r, 'msgsnd', this.address)
      : packedFailure(list as Packed, this.address, r, () => systemError(r, 'msgsnd', this.address)));
    const batch = batchSend(gatherCount(list), this.#sending, tryForm, fail);
    const next = batch.next;
    const sizes = listSizes(list);
    return {
      step: (timeout, spin) => batch.outcome(batch.left()
        ? unlessChanged(list, sizes, next[0]!, () => msgSndList(this.id, t, list, next, timeout, batch.spin(timeout, spin)))
        : 0),
      job: {
        // The waiter thread's send copies the message when it starts.
        start: (done) => native.msgSndAsync(this.id, t, gatherView(list, next[0]!), done),
        finish: (r) => {
          if (r === 0) next[0] = next[0]! + 1;
          return batch.outcome(r);
        },
      },
      partial: batch.partial,
    };
  }

  #receiveManyOp(type: unknown, max: unknown): Operation<SysvMessage<T>[]> {
    const selector = optionalInteger(type, 'type', -SYSV_TYPE_MAX, SYSV_TYPE_MAX, 0);
    const limit = checkMax(max);
    const decode = (r: RawSysv): SysvMessage<T> => this.#message(r.bytes, r.type);
    const waiter = this.#receiveJob(selector);
    return {
      key: selector,
      step: (timeout, spin) => {
        const held = this.#takeHeld(selector, limit);
        if (held.length > 0) return decodeBatch(held, decode, this.#held, true);
        const raw = this.#receiveRaw(selector, limit, timeout, spin);
        return raw === undefined ? undefined : decodeBatch(raw, decode, this.#held);
      },
      job: {
        // The waiter thread waits for the first; the rest are taken without waiting once it has it.
        start: waiter.start,
        finish: (n, got) => {
          const raw = [waiter.received(n, got)];
          // Held meanwhile (another batch's codec refused one): those come before what the kernel has now.
          raw.push(...this.#takeHeld(selector, limit - 1));
          if (raw.length === 1 && limit > 1) {
            try {
              raw.push(...this.#receiveRaw(selector, limit - 1, 0, 0) ?? []);
            } catch {
              // The one already taken is handed over; the next call reports what failed.
            }
          }
          return decodeBatch(raw, decode, this.#held);
        },
      },
    };
  }

  /**
   * Held messages of the selector first (those a codec refused in a
   * batch), then straight from the kernel into `batch`; a waiter thread
   * waits for the first when the call must wait.
   */
  #receiveBatchOp(batch: MessageBatch, type: unknown, types: unknown): Operation<number> {
    const selector = optionalInteger(type, 'type', -SYSV_TYPE_MAX, SYSV_TYPE_MAX, 0);
    checkBatchRoom(batch, this.maxMessageSize, 'kernel.msgmax when this handle was opened');
    const out = checkSlots(types, 'types', Float64Array, batch);
    const io = this.#batchIo;
    const waiter = this.#receiveJob(selector);
    const add = (m: RawSysv): boolean => {
      if (!pushIfRoom(batch, m.bytes)) return false;
      if (out !== undefined) out[batch.count - 1] = m.type;
      return true;
    };
    // What is there for the batch now (held first), after what it holds; the first may wait.
    const fill = (timeout: number, spin: number): number | undefined => {
      checkBatchIntact(batch, this.maxMessageSize, this.address);
      const held = this.#takeHeld(selector, batch.lengths.length - batch.count);
      for (let i = 0; i < held.length; i++) {
        if (add(held[i]!)) continue;
        this.#held.putBack(held.slice(i));
        return batch.count;
      }
      io[0] = batch.count;
      io[1] = batch.size;
      io[2] = selector;
      io[3] = this.maxMessageSize;
      const wait = batch.count === 0;
      const n = native.msgRcvBatch(this.id, batch.data, batch.lengths, io, wait ? timeout : 0, wait ? spin : 0, out);
      if (n > 0) batch.place(io[0]!, io[1]!);
      else if (wait) {
        if (n === E.EAGAIN) return undefined;
        throw this.#receiveError(n);
      }
      // (A failure after messages: the next call meets it.)
      return batch.count;
    };
    return {
      key: selector,
      step: (timeout, spin) => {
        batch.clear();
        return fill(timeout, spin);
      },
      job: {
        start: waiter.start,
        finish: (n, got) => {
          const first = waiter.received(n, got);
          batch.clear();
          // At least maxMessageSize bytes and one slot, so the first fits, unless the batch's memory went while the thread waited.
          if (!add(first)) {
            this.#held.putBack([{ bytes: Buffer.from(first.bytes), type: first.type }]);
            throw batchGone(this.address);
          }
          return fill(0, 0);
        },
      },
    };
  }

  /** Up to `limit` messages of `selector` in one native call (the first may wait); undefined if none. */
  #receiveRaw(selector: number, limit: number, timeout: number, spin: number): RawSysv[] | undefined {
    // Half a slab: kernel.msgmax of 65536 plus the type header still lands in slabs.
    const rx = this.#rxMany ??= new ReceiveBuffer(8 + this.maxMessageSize, BATCH_SLAB, BATCH_SLAB / 2);
    const io = this.#manyIo ??= new Float64Array(3 + 2 * MAX_BATCH);
    rx.ensureFor(limit);
    io[0] = selector;
    io[1] = limit;
    io[2] = this.maxMessageSize;
    const n = native.msgRcvMany(this.id, rx.buffer, rx.offset, io, timeout, spin);
    if (n === E.EAGAIN) return undefined;
    if (n < 0) throw this.#receiveError(n);
    const raw: RawSysv[] = new Array<RawSysv>(n);
    for (let i = 0, at = rx.offset; i < n; i++, at = rx.offset) raw[i] = { bytes: rx.take(at + 8, io[3 + 2 * i]!), type: io[4 + 2 * i]! };
    return raw;
  }

  /** Held messages `selector` picks, as msgrcv would pick them (the lowest type first for a negative selector). */
  #takeHeld(selector: number, max: number): RawSysv[] {
    if (this.#held.size === 0) return [];
    return this.#held.takeChosen(max, (items) => {
      if (selector >= 0) return items.findIndex((r) => selector === 0 || r.type === selector);
      let best = -1;
      for (let i = 0; i < items.length; i++) if (items[i]!.type <= -selector && (best < 0 || items[i]!.type < items[best]!.type)) best = i;
      return best;
    });
  }

  /**
   * A waiter thread's msgrcv of one message of `selector`, straight into an
   * area of the slab kept for it: how to start it, and the message it got.
   */
  #receiveJob(selector: number): { start(done: (result: number, extra?: number) => void): number; received(n: number, type?: number): RawSysv } {
    let area = { buffer: this.#rx.buffer, offset: 0 };
    return {
      start: (done) => {
        area = this.#rx.reserveArea();
        return native.msgRcvAsync(this.id, area.buffer, area.offset, selector, done);
      },
      received: (n, type) => {
        if (n < 0) throw this.#receiveError(n);
        return { bytes: this.#rx.fromArea(area, area.offset + 8, n), type: type! };
      },
    };
  }

  /**
   * msgrcv writes a long type before the payload: a receive into `target`
   * lands in a scratch buffer of the handle, reused (hot in the cache),
   * and the payload is copied to the start of `target`.
   */
  #receiveIntoOp(target: unknown, type: unknown): Operation<SysvReceivedInto> {
    const into = checkSysvInto(target, this.maxMessageSize);
    const selector = optionalInteger(type, 'type', -SYSV_TYPE_MAX, SYSV_TYPE_MAX, 0);
    const waiter = this.#receiveJob(selector);
    return {
      key: selector,
      step: (timeout, spin) => this.#receiveIntoStep(into, selector, timeout, spin),
      job: { start: waiter.start, finish: (n, got) => deliverInto(into, waiter.received(n, got), this.#held) },
    };
  }

  /** One receive of `selector` into `into`: a message a batch held back first, then msgrcv (the copy is native). */
  #receiveIntoStep(into: Uint8Array, selector: number, timeout: number, spin: number): SysvReceivedInto | undefined {
    if (this.#held.size > 0) {
      const [held] = this.#takeHeld(selector, 1);
      if (held !== undefined) return deliverInto(into, held, this.#held);
    }
    const scratch = this.#scratch ??= Buffer.allocUnsafe(8 + this.maxMessageSize);
    const n = native.msgRcvInto(this.id, scratch, into, selector, timeout, spin);
    if (n >= 0) return { length: n, type: receivedType(scratch, 0) };
    if (n === E.EAGAIN) return undefined;
    if (n <= -NOT_COPIED) {
      // Taken, but longer than the target (one that shrank since the call began): kept for the next receive.
      const length = -n - NOT_COPIED;
      this.#held.putBack([{ bytes: Buffer.from(scratch.subarray(8, 8 + length)), type: receivedType(scratch, 0) }]);
      throw shrankTarget(into, length);
    }
    throw this.#receiveError(n);
  }

  #receiveOp(type: unknown): Operation<SysvMessage<T>> {
    const selector = optionalInteger(type, 'type', -SYSV_TYPE_MAX, SYSV_TYPE_MAX, 0);
    const waiter = this.#receiveJob(selector);
    return {
      key: selector,
      step: (timeout, spin) => this.#receiveStep(selector, timeout, spin),
      job: {
        start: waiter.start,
        finish: (n, got) => {
          const r = waiter.received(n, got);
          return this.#message(r.bytes, r.type);
        },
      },
    };
  }

  /** One receive of `selector`: a message a batch held back first, then msgrcv into the slab. */
  #receiveStep(selector: number, timeout: number, spin: number): SysvMessage<T> | undefined {
    if (this.#held.size > 0) {
      const [held] = this.#takeHeld(selector, 1);
      if (held !== undefined) return this.#message(held.bytes, held.type);
    }
    const rx = this.#rx;
    rx.ensure();
    const { buffer, offset } = rx;
    const n = native.msgRcv(this.id, buffer, offset, selector, timeout, spin);
    if (n === E.EAGAIN) return undefined;
    if (n < 0) throw this.#receiveError(n);
    return this.#message(rx.take(offset + 8, n), receivedType(buffer, offset));
  }

  #message(bytes: Buffer, type: number): SysvMessage<T> {
    return { data: decodeWith(this.#codec, bytes, this.address), type };
  }

  #encode(data: Outgoing<T>): Uint8Array {
    const bytes = encodeWith(this.#codec, data as T, this.address);
    this.#checkLength(realByteLength(bytes));
    return bytes;
  }

  #checkLength(length: number): void {
    if (length > this.maxMessageSize) {
      throw tooLarge(this.address, length, this.maxMessageSize, `${KERNEL_PROC}/msgmax`);
    }
    // A message larger than the queue's capacity would wait forever (or look
    // like a full queue to a try). Capacity can be raised by others: look again.
    if (length > this.#maxBytes && length > (this.#maxBytes = this.#readMaxBytes())) {
      throw tooLarge(this.address, length, this.#maxBytes, 'the queue\'s maxBytes, msg_qbytes');
    }
  }

  #readMaxBytes(): number {
    const s = native.msgStat(this.id);
    return typeof s === 'number' ? Infinity : s.maxBytes;
  }

  #receiveError(r: number): IpcError {
    if (r === E.E2BIG) {
      return new IpcError('ERR_IPC_MESSAGE_TOO_LARGE',
        `The next message on ${this.address} is larger than ${this.maxMessageSize} bytes (kernel.msgmax when this handle was opened); ` +
        'it was left in the queue. Reopen the queue after raising kernel.msgmax, or remove the message with a C tool.', { address: this.address });
    }
    return systemError(r, 'msgrcv', this.address);
  }
}

/** A message a batch received, before its codec. */
interface RawSysv {
  bytes: Buffer;
  type: number;
}

const RECEIVE_KEYS = ['type'] as const;
const RECEIVE_MANY_KEYS = ['type', 'max'] as const;
const BATCH_KEYS_SYSV = ['type', 'types'] as const;
const SYSV_OPEN_KEYS = ['codec', 'spin', 'owner'] as const;
const SYSV_CREATE_KEYS = [...SYSV_OPEN_KEYS, 'mode', 'maxBytes'] as const;

export { DEFAULT_SPIN_US };

/** Either family of queue. */
export type MessageQueue<T = Buffer> = PosixMessageQueue<T> | SysvMessageQueue<T>;
