/**
 * Pipes: half-duplex byte channels with a read end and a write end. Data
 * written into the write end waits in a kernel buffer until the read end
 * reads it. `pipe()` makes an anonymous pipe, whose ends you hand to child
 * processes with {@link spawn}; FIFOs (`fifo.ts`) are pipes with a name.
 *
 * Both ends offer the blocking triple (`read`/`readSync`/`tryRead`,
 * `write`/`writeSync`/`tryWrite`), length-prefixed messages, async
 * iteration and Node streams. Messages can be typed values, as on queues
 * and sockets: with a `codec`, `send`/`sendSync`/`trySend` encode and
 * frame a value, and `receive`/`receiveSync`/`tryReceive` resolve to
 * `{ data }` (or `null` at the end of the data).
 *
 * @module
 */
import { type ChildProcess, type SpawnOptions, spawn as spawnChild } from 'node:child_process';
import { fstatSync } from 'node:fs';
import { type Readable, type Writable } from 'node:stream';
import { E, IpcError, defineHints, limitError, systemError } from './errors.js';
import { lazily, native } from './native.js';
import { trackSpawned } from './internal/children.js';
import { type Codec, type CodecOption, type Outgoing, decodeWith, encodeWith, resolveCodec } from './internal/codec.js';
import { type ByteSource, MAX_FRAME, ReadAhead, checkFrame, frame } from './internal/framing.js';
import {
  type GatherList, type GatherOperation, Held, type ReceiveManyOptions, type ReceiveManySyncOptions, batchChanged, batchSend, checkMax, checkTargets,
  decodeBatch, encodeBatch, gatherCount, gatherOperation, ITERATION_BATCH, batchedIteration, packed, spread, writevList, LIST_CHANGED
} from './internal/batch.js';
import { type MessageBatch, batchTooSmall, checkBatchIntact, checkMessageBatch, idleBatch, pushIfRoom, unframeIntoBatch, withBatch } from './internal/message-batch.js';
import { Handle } from './internal/handle.js';
import { describeSetting, descriptorError } from './internal/limits.js';
import { DONE, type Operation, ReadinessLane, run, runSync, tryRun } from './internal/operation.js';
import { type Pollable, type PollTarget, READABLE, WRITABLE, pollTarget } from './internal/readiness.js';
import { type StreamOptions, readableFrom, writableTo } from './internal/streams.js';
import { checkBoolean, checkBytes, checkInteger, checkOptions, copyView, invalidArgument, isUint8Array, optionalInteger, realByteLength, toBytes, viewFrom } from './internal/validate.js';
import { type SpinOptions, type SyncWaitOptions, type WaitOptions, checkSignal, checkSpin } from './internal/wait.js';

const C = lazily(() => native.constants);

defineHints({
  write: { EPIPE: 'No process has the read end open any more: the reader closed or exited.' },
});

/** Writes of at most this many bytes are atomic: never interleaved with other writers' data (Linux's PIPE_BUF). */
export const PIPE_BUF = 4096;

/** Default largest read, in bytes. */
export const DEFAULT_READ_SIZE = 64 * 1024;

/** Reads of at most this many bytes go through a reused buffer and are copied out. */
const SCRATCH_SIZE = 16 * 1024;

/** Default largest framed message, in bytes. */
export const DEFAULT_MAX_MESSAGE = 1024 * 1024;

/** Options of a write end: how {@link PipeWriteEnd.send} encodes values. */
export interface PipeWriteEndOptions<T = Buffer> extends SpinOptions {
  /**
   * Layer typed messages over the framing: `'json'`, `'msgpack'` or
   * `{ encode, decode }`. Without one, messages are bytes (a string is sent
   * as its UTF-8 bytes).
   */
  codec?: CodecOption<T> | undefined;
}

/** Options of a read end: how {@link PipeReadEnd.receive} decodes messages, and the largest it accepts. */
export interface PipeReadEndOptions<T = Buffer> extends PipeWriteEndOptions<T> {
  /**
   * Largest message received, in bytes. A length prefix announcing more
   * fails with `ERR_IPC_MESSAGE_TOO_LARGE` before anything is allocated.
   * Also the default `maxSize` of {@link PipeReadEnd.readMessage}. Default
   * {@link DEFAULT_MAX_MESSAGE} (1 MiB).
   */
  maxMessageSize?: number;
}

/** Options of {@link pipe}: `codec` applies to both ends, `maxMessageSize` to the read end. */
export interface PipeOptions<T = Buffer> extends PipeReadEndOptions<T> {
  /** Give both descriptors O_NONBLOCK (what children inherit). Default false: blocking, as most programs expect. */
  nonBlocking?: boolean;
  /** Buffer size in bytes (`F_SETPIPE_SZ`; the kernel rounds it up to a power-of-two number of pages). */
  capacity?: number;
}

/** The two ends {@link pipe} makes. */
export interface PipeEnds<T = Buffer> {
  /** The end to read from: keep it, or hand it to the process that reads. */
  readEnd: PipeReadEnd<T>;
  /** The end to write to: keep it, or hand it to the process that writes. */
  writeEnd: PipeWriteEnd<T>;
}

/** A message received from a pipe or FIFO: its data, decoded by the end's codec (a `Buffer` without one). */
export interface PipeMessage<T = Buffer> {
  /** The message: decoded by the codec, or its bytes. */
  data: T;
}

/** @internal What an end is made with, once its options are checked. */
export interface EndSettings<T> {
  spin: number;
  codec: Codec<T>;
  /** Whether the codec was given (the end's iteration then yields decoded messages). */
  typed: boolean;
  maxMessageSize: number;
}

/** @internal The settings of an end from its options (already checked for unknown keys). */
export function endSettings<T>(opts: PipeReadEndOptions<T>): EndSettings<T> {
  return {
    spin: checkSpin(opts.spin),
    codec: resolveCodec<T>(opts.codec),
    typed: opts.codec !== undefined,
    maxMessageSize: optionalInteger(opts.maxMessageSize, 'maxMessageSize', 0, MAX_FRAME, DEFAULT_MAX_MESSAGE),
  };
}

/** @internal The option keys of a read end and of a write end. */
export const READ_END_KEYS = ['spin', 'codec', 'maxMessageSize'] as const;
export const WRITE_END_KEYS = ['spin', 'codec'] as const;

/** Options of a read. */
export interface ReadOptions extends WaitOptions {
  /** Largest chunk to return. Default 65536. */
  maxBytes?: number;
}

/** Options of a synchronous read. */
export interface ReadSyncOptions extends SyncWaitOptions {
  /** Largest chunk to return. Default 65536. */
  maxBytes?: number;
}

/** Options of a framed-message read. */
export interface MessageReadOptions extends WaitOptions {
  /** Largest message accepted; a longer announced length fails before anything is allocated. Default: the end's `maxMessageSize` (1 MiB). */
  maxSize?: number;
}

/** Options of a synchronous framed-message read. */
export interface MessageReadSyncOptions extends SyncWaitOptions {
  /** See {@link MessageReadOptions.maxSize}. */
  maxSize?: number;
}

/**
 * What both ends share. `fd` is the descriptor children get, in the mode
 * the user chose (blocking unless `nonBlocking`); ipckit never changes it.
 * ipckit's own non-blocking attempts go through a second, non-blocking open
 * file description of the same pipe, reopened through /proc/self/fd at the
 * first attempt. (RWF_NOWAIT would make single calls on `fd` non-blocking,
 * but only on pipes made by pipe(2), not on FIFOs nor on pipes opened by
 * path, and preadv2/pwritev2 cost more than read/write: 620 against 480 ns
 * a write and read here.)
 */
abstract class PipeEnd extends Handle implements Pollable {
  /** `pipe:[inode]` for an anonymous pipe, or the FIFO's path. */
  readonly address: string;
  readonly #fd: number;
  /** Where non-blocking attempts go (-1 until the first attempt opens it). */
  #io = -1;
  readonly #access: 'read' | 'write';
  /** Calls waiting for the pipe: readable for a read end, writable for a write end. */
  protected readonly lane: ReadinessLane;
  readonly #events: number;
  readonly #readable: boolean;

  protected constructor(fd: number, address: string, access: 'read' | 'write', spin: number, handedOver: boolean) {
    super();
    this.#fd = this.holdFd(fd, handedOver);
    this.address = address;
    this.#events = access === 'read' ? C.POLLIN : C.POLLOUT;
    this.#readable = access === 'read';
    this.#access = access;

    // Readiness is watched on `fd`: for a FIFO reopened after its writer
    // left, the kernel withholds POLLHUP from the new description.
    try {
      this.lane = new ReadinessLane(this, spin, this.watch(fd), access === 'read' ? READABLE : WRITABLE);
    } catch (err) {
      // The thread's first watch could not get a descriptor: the end is not made, and its descriptor not kept.
      this.close();
      throw err;
    }
  }

  /** The descriptor to hand to children. Throws `ERR_IPC_CLOSED` after `close()`. */
  get fd(): number {
    this.check('fd');
    return this.#fd;
  }

  /** @internal A read end is readable while data (or the end) is there; a write end writable while there is room. */
  [pollTarget](): PollTarget {
    return { fd: this.fd, readable: this.#readable ? READABLE : 0, writable: this.#readable ? 0 : WRITABLE, pending: this.buffered };
  }

  /** @internal Whether a read would complete from bytes read ahead in user space (see PollTarget.pending). */
  protected readonly buffered: (() => boolean) | undefined = undefined;

  /** The pipe's buffer size in bytes (`F_GETPIPE_SZ`). */
  get capacity(): number {
    const r = native.getPipeSize(this.fd);
    if (r < 0) throw systemError(r, 'fcntl', this.address);
    return r;
  }

  /** Whether `fd` has O_NONBLOCK. */
  get nonBlocking(): boolean {
    return (native.getFlags(this.fd) & C.O_NONBLOCK) !== 0;
  }

  /**
   * Closes this process's descriptors for this end. Pending calls reject with
   * `ERR_IPC_CLOSED`. Once every copy of the write end is closed, readers see
   * the end of the data; once every read end is closed, writes fail with EPIPE.
   */
  override close(): void {
    super.close();
  }

  /** One non-blocking read (`read`) or write from ipckit's side of the pipe: a count, or -errno. */
  protected transfer(read: boolean, buffer: Uint8Array, offset: number, length: number, spin: number): number {
    const io = this.#attemptFd();
    if (io < 0) return io;
    return read ? native.readFd(io, buffer, offset, length, spin) : native.writeFd(io, buffer, offset, length, spin);
  }

  /** One gathered write (native writevFd) from ipckit's side of the pipe, within the step's timeout: bytes written, or -errno. */
  protected gather(list: GatherList, at: Float64Array, mode: number, spin: number, timeout: number): number {
    const io = this.#attemptFd();
    if (io < 0) return io;
    return writevList(io, list, at, mode, spin, timeout);
  }

  /** One scattered read (readv) from ipckit's side of the pipe: bytes read (0: none, maybe the end), or -errno. */
  protected scatter(list: readonly Uint8Array[], spin: number): number {
    const io = this.#attemptFd();
    return io < 0 ? io : native.readvFd(io, list, 0, spin);
  }

  /** Where attempts go: the private description, opened at the first attempt (a write end whose reader already left could not open one: -EPIPE). */
  #attemptFd(): number {
    if (this.#io < 0) {
      const r = this.#privateDescription();
      if (r < 0) return r;
    }
    return this.#io;
  }

  /**
   * Makes non-blocking attempts go through a private, non-blocking open file
   * description of the pipe: 0, or -EPIPE for a write end whose reader left
   * (the reopen fails with ENXIO; a write would have met EPIPE).
   */
  #privateDescription(): number {
    const path = `/proc/self/fd/${this.#fd}`;
    const io = native.openPath(path, (this.#access === 'read' ? C.O_RDONLY : C.O_WRONLY) | C.O_NONBLOCK, -1);
    if (io === E.ENXIO) return E.EPIPE;
    if (io < 0) throw systemError(io, 'open', path, 'ipckit reopens FIFO ends through /proc; it must be mounted.');
    this.#io = this.holdFd(io);
    return 0;
  }

  /** Sleeps in the kernel until the pipe is ready for this end, at most `timeout` ms (-1: no limit). */
  protected sleep(timeout: number): void {
    const r = native.pollFd(this.#fd, this.#events, timeout);
    if (r < 0) throw systemError(r, 'poll', this.address);
  }

  /** A step: `attempt(spin, timeout)`, then (if nothing and allowed) one sleep and one more attempt. */
  protected stepOf<T>(attempt: (spin: number, timeout: number) => T | undefined): Operation<T> {
    return {
      step: (timeout, spin) => {
        const first = attempt(spin, timeout);
        if (first !== undefined || timeout === 0) return first;
        this.sleep(timeout);
        return attempt(0, timeout);
      },
    };
  }
}

function pipeAddress(fd: number): string {
  try {
    return `pipe:[${fstatSync(fd).ino}]`;
  } catch {
    return `pipe fd ${fd}`;
  }
}

function checkMaxBytes(maxBytes: unknown): number {
  return optionalInteger(maxBytes, 'maxBytes', 1, 2 ** 30, DEFAULT_READ_SIZE);
}

function checkTarget(target: unknown): Uint8Array {
  const into = checkBytes(target, 'target');
  if (into.length === 0) throw invalidArgument('target', target, 'a non-empty Uint8Array');
  return into;
}

/**
 * The read end of a pipe or FIFO. `read()` resolves to a chunk of bytes, or
 * `null` at the end of the data (every writer has closed); `receive()` to
 * one length-prefixed message `{ data }`, decoded by the end's codec, or
 * `null` at the end.
 *
 * Async iteration yields what the end carries: with a codec, the decoded
 * value of each message; without one, raw chunks as `read()` returns them
 * (use {@link messages} for framed byte messages).
 *
 * @example
 * ```ts
 * import { pipe } from 'ipckit';
 *
 * const { readEnd, writeEnd } = pipe();
 * await writeEnd.write('hello\n');
 * writeEnd.close();                    // the reader sees the end of the data
 * for await (const chunk of readEnd) process.stdout.write(chunk);
 * readEnd.close();
 * ```
 */
export class PipeReadEnd<T = Buffer> extends PipeEnd implements AsyncIterable<T>, ByteSource {
  /** Largest message {@link receive} accepts, in bytes (the `maxMessageSize` option). */
  readonly maxMessageSize: number;
  /** Bytes read from the kernel but not yet returned (framing, FIFO open probes). */
  readonly #ahead: ReadAhead;
  #eof = false;
  /** Where small reads land before they are copied out. */
  readonly #scratch = Buffer.alloc(SCRATCH_SIZE);
  #defaultRead: Operation<Buffer | null> | undefined;
  readonly #codec: Codec<T>;
  readonly #typed: boolean;
  readonly #receiveOp: Operation<PipeMessage<T> | null>;
  /** Messages a batch took off the stream but did not hand over (the codec refused one): receives take these first. */
  readonly #held = new Held<Buffer>();
  protected override readonly buffered = (): boolean => !this.closed && (this.#ahead.ready || this.#held.size > 0);

  /** @internal */
  constructor(fd: number, settings: EndSettings<T>, address?: string, initial?: Buffer, handedOver = false) {
    const where = address ?? pipeAddress(fd);
    super(fd, where, 'read', settings.spin, handedOver);
    this.maxMessageSize = settings.maxMessageSize;
    this.#codec = settings.codec;
    this.#typed = settings.typed;
    this.#ahead = new ReadAhead(where, 'maxMessageSize');
    if (initial !== undefined) this.#ahead.push(initial);
    this.#receiveOp = this.stepOf(() => {
      const bytes = this.#held.take() ?? this.#ahead.message(this, this.maxMessageSize, DEFAULT_READ_SIZE);
      if (bytes === undefined || bytes === null) return bytes;
      // The message was taken off the stream before it is decoded: a failure leaves the next message in place.
      return { data: decodeWith(this.#codec, bytes, this.address) };
    });
  }

  /**
   * Wraps an inherited descriptor (for example fd 3 given by a parent with
   * {@link spawn}) and takes ownership of it: `close()` closes it. A
   * descriptor is wrapped once (`ERR_IPC_INVALID_ARGUMENT` if a handle of
   * this thread owns it already). Options: `codec`, `maxMessageSize`, `spin`.
   */
  static fromFd<T = any>(fd: number, options: PipeReadEndOptions<T> & { codec: 'json' | 'msgpack' }): PipeReadEnd<T>;
  static fromFd<T>(fd: number, options: PipeReadEndOptions<T> & { codec: Codec<T> }): PipeReadEnd<T>;
  static fromFd<T = Buffer>(fd: number, options?: PipeReadEndOptions<T>): PipeReadEnd<T>;
  static fromFd<T>(fd: number, options?: PipeReadEndOptions<T>): PipeReadEnd<T> {
    const settings = endSettings(checkOptions(options, READ_END_KEYS));
    checkInheritedFd(fd, 'read');
    return new PipeReadEnd<T>(fd, settings, undefined, undefined, true);
  }

  /**
   * Receives one length-prefixed message (as {@link PipeWriteEnd.send} or
   * `writeMessage` writes it, or any peer writing a 4-byte big-endian
   * length and the bytes), waiting for all of it; resolves to `{ data }`,
   * decoded by the end's codec, or to `null` at the end of the data. Never
   * blocks the event loop.
   *
   * Fails with `ERR_IPC_MESSAGE_TOO_LARGE` for a length over
   * `maxMessageSize` (before anything is allocated; the stream cannot be
   * read further), `ERR_IPC_FRAMING` when the writers closed inside a
   * message, and `ERR_IPC_CODEC` when the codec cannot decode it (that
   * message is consumed; the next receive reads the next one).
   */
  receive(options?: WaitOptions): Promise<PipeMessage<T> | null> {
    return run(this.lane, 'receive', options, NO_KEYS, () => this.#receiveOp);
  }

  /** The blocking form of {@link receive}: blocks the calling thread until a whole message (or the end) is there. */
  receiveSync(options?: SyncWaitOptions): PipeMessage<T> | null {
    return runSync(this.lane, 'receiveSync', options, NO_KEYS, () => this.#receiveOp);
  }

  /** A message if a whole one is there now; `null` at the end; `undefined` if more must arrive (or earlier receives wait). */
  tryReceive(): PipeMessage<T> | null | undefined {
    return tryRun(this.lane, 'tryReceive', undefined, NO_KEYS, () => this.#receiveOp);
  }

  /**
   * Receives several messages at once: waits as {@link receive} does for
   * the first, then takes every whole message already there (read ahead,
   * or in the pipe now), up to `max` (1 to 1024, default 64). Resolves to
   * `null` at the end of the data; never to an empty array.
   *
   * A message the codec refuses ends the batch: the messages before it are
   * returned, the next receive fails with its `ERR_IPC_CODEC`, and the ones
   * after it follow. A stream error met after the first message (a message
   * over `maxMessageSize`, writers gone inside a message) ends the batch
   * too, and the next call reports it.
   */
  receiveMany(options?: ReceiveManyOptions): Promise<PipeMessage<T>[] | null> {
    return run(this.lane, 'receiveMany', options, MANY_KEYS, (o) => this.#receiveManyOp(o.max));
  }

  /** The blocking form of {@link receiveMany}. */
  receiveManySync(options?: ReceiveManySyncOptions): PipeMessage<T>[] | null {
    return runSync(this.lane, 'receiveManySync', options, MANY_KEYS, (o) => this.#receiveManyOp(o.max));
  }

  /** The whole messages there now, up to `max`: `[]` if none (or earlier receives wait), `null` at the end. */
  tryReceiveMany(options?: { max?: number }): PipeMessage<T>[] | null {
    const batch = tryRun(this.lane, 'tryReceiveMany', options, MANY_KEYS, (o) => this.#receiveManyOp(o.max));
    return batch === undefined ? [] : batch;
  }

  /**
   * Receives whole messages into `batch` (a {@link MessageBatch} of yours,
   * reused from call to call): clears it, waits as {@link receive} does
   * for the first message, then takes every whole message already there
   * that fits, up to the batch's room in messages and bytes. One read from
   * the pipe lands in the batch's own buffer and the messages are unframed
   * there by one native call: nothing is allocated per message, and no
   * JavaScript runs per message. The bytes are raw (the codec is not
   * applied). Resolves to how many messages the batch now holds (at least
   * one), or `null` at the end of the data.
   *
   * A message larger than the whole batch stays where it is, and the call
   * fails with `ERR_IPC_MESSAGE_TOO_LARGE`: take it with {@link receive},
   * or use a larger batch. A stream error after the first message ends the
   * batch, and the next call reports it, as with {@link receiveMany}.
   */
  receiveBatch(batch: MessageBatch, options?: WaitOptions): Promise<number | null> {
    return withBatch(batch, (b, release) => run(this.lane, 'receiveBatch', options, NO_KEYS, () => this.#receiveBatchOp(b), false, release));
  }

  /** The blocking form of {@link receiveBatch}. */
  receiveBatchSync(batch: MessageBatch, options?: SyncWaitOptions): number | null {
    return runSync(this.lane, 'receiveBatchSync', options, NO_KEYS, () => this.#receiveBatchOp(idleBatch(batch)));
  }

  /** {@link receiveBatch} of the whole messages there now: 0 if none (or earlier receives wait; the batch is then empty), `null` at the end. */
  tryReceiveBatch(batch: MessageBatch): number | null {
    const b = idleBatch(batch);
    const n = tryRun(this.lane, 'tryReceiveBatch', undefined, NO_KEYS, () => this.#receiveBatchOp(b));
    if (n !== undefined) return n;
    b.clear();
    return 0;
  }

  /**
   * Reads into several buffers in one call (`readv`): fills `targets` in
   * order with what is there, waiting while the pipe is empty. Resolves to
   * the number of bytes read, or `null` at the end of the data. Up to 1024
   * buffers, at least one byte of room in all.
   */
  readv(targets: readonly Uint8Array[], options?: WaitOptions): Promise<number | null> {
    return run(this.lane, 'readv', options, NO_KEYS, () => this.#readvOp(targets));
  }

  /** The blocking form of {@link readv}. */
  readvSync(targets: readonly Uint8Array[], options?: SyncWaitOptions): number | null {
    return runSync(this.lane, 'readvSync', options, NO_KEYS, () => this.#readvOp(targets));
  }

  /** {@link readv} of what is there now: a count, `null` at the end, or `undefined` if the pipe is empty. */
  tryReadv(targets: readonly Uint8Array[]): number | null | undefined {
    return tryRun(this.lane, 'tryReadv', undefined, NO_KEYS, () => this.#readvOp(targets));
  }

  /**
   * Messages (`{ data }`, as {@link receive} resolves) until the end of the
   * data or until this end is closed; `signal` aborts the loop with
   * `ERR_IPC_ABORTED`. A message that cannot be decoded ends the loop with
   * `ERR_IPC_CODEC`; a new loop goes on with the next message.
   */
  messages(options?: { signal?: AbortSignal }): AsyncGenerator<PipeMessage<T>, void, undefined> {
    const { signal } = checkOptions(options, ['signal']);
    return this.#messages(checkSignal(signal));
  }

  /** Reads up to `maxBytes`, waiting while the pipe is empty; `null` at the end. Never blocks the event loop. */
  read(options?: ReadOptions): Promise<Buffer | null> {
    return run(this.lane, 'read', options, READ_KEYS, (o) => this.#readOp(o.maxBytes));
  }

  /** Reads up to `maxBytes`, blocking the calling thread while the pipe is empty; `null` at the end. */
  readSync(options?: ReadSyncOptions): Buffer | null {
    return runSync(this.lane, 'readSync', options, READ_KEYS, (o) => this.#readOp(o.maxBytes));
  }

  /** Reads what is there now: a chunk, `null` at the end, or `undefined` if the pipe is empty. */
  tryRead(options?: { maxBytes?: number }): Buffer | null | undefined {
    return tryRun(this.lane, 'tryRead', options, READ_KEYS, (o) => this.#readOp(o.maxBytes));
  }

  /**
   * Reads into `target` (no allocation: for high-volume readers), waiting
   * while the pipe is empty. Resolves to the number of bytes read, or `null`
   * at the end of the data.
   */
  readInto(target: Uint8Array, options?: WaitOptions): Promise<number | null> {
    return run(this.lane, 'readInto', options, NO_KEYS, () => this.#readIntoOp(checkTarget(target)));
  }

  /** The blocking form of {@link readInto}. */
  readIntoSync(target: Uint8Array, options?: SyncWaitOptions): number | null {
    return runSync(this.lane, 'readIntoSync', options, NO_KEYS, () => this.#readIntoOp(checkTarget(target)));
  }

  /**
   * Reads one length-prefixed message written by {@link PipeWriteEnd.writeMessage};
   * `null` at the end of the data. Its bytes as they are: no codec applies.
   * A prefix announcing more than `maxSize` (default: the end's
   * `maxMessageSize`) fails with `ERR_IPC_MESSAGE_TOO_LARGE` before
   * anything is allocated.
   */
  readMessage(options?: MessageReadOptions): Promise<Buffer | null> {
    return run(this.lane, 'readMessage', options, MESSAGE_KEYS, (o) => this.#messageOp(o.maxSize));
  }

  /** The blocking form of {@link readMessage}. */
  readMessageSync(options?: MessageReadSyncOptions): Buffer | null {
    return runSync(this.lane, 'readMessageSync', options, MESSAGE_KEYS, (o) => this.#messageOp(o.maxSize));
  }

  /** Reads into `target` what is there now: a count, `null` at the end, or `undefined` if the pipe is empty. */
  tryReadInto(target: Uint8Array): number | null | undefined {
    return tryRun(this.lane, 'tryReadInto', undefined, NO_KEYS, () => this.#readIntoOp(checkTarget(target)));
  }

  /** One length-prefixed message if it is complete now; `null` at the end; `undefined` if more must arrive. */
  tryReadMessage(options?: { maxSize?: number }): Buffer | null | undefined {
    return tryRun(this.lane, 'tryReadMessage', options, MESSAGE_KEYS, (o) => this.#messageOp(o.maxSize));
  }

  /** Chunks until the end of the data (or until the end is closed). */
  async *chunks(options?: { maxBytes?: number; signal?: AbortSignal }): AsyncGenerator<Buffer, void, undefined> {
    const opts = checkOptions(options, ['maxBytes', 'signal']);
    for (;;) {
      let chunk: Buffer | null;
      try {
        chunk = await this.read({ maxBytes: opts.maxBytes, signal: opts.signal });
      } catch (err) {
        if (err instanceof IpcError && err.code === 'ERR_IPC_CLOSED') return;
        throw err;
      }
      if (chunk === null) return;
      yield chunk;
    }
  }

  /** With a codec, the decoded value of each message; without one, raw chunks ({@link chunks}). Ends at the end of the data or on close. */
  [Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    // Without a codec T is Buffer: the chunks are what the end carries.
    return this.#typed ? this.#values() : this.chunks() as AsyncGenerator<unknown, void, undefined> as AsyncGenerator<T, void, undefined>;
  }

  async *#values(): AsyncGenerator<T, void, undefined> {
    for await (const { data } of this.#messages(undefined)) yield data;
  }

  /** Messages in batches (what was read ahead is this process's already): each step takes what is there, up to 64. */
  #messages(signal: AbortSignal | undefined): AsyncGenerator<PipeMessage<T>, void, undefined> {
    return batchedIteration(() => this.closed,
      () => run(this.lane, 'receive', { signal }, NO_KEYS, () => this.#rawManyOp(ITERATION_BATCH)).then((b) => (b === null ? null : b.raw)),
      (bytes) => ({ data: decodeWith(this.#codec, bytes, this.address) }),
      (rest) => this.#held.putBack(rest));
  }

  /** A Node `Readable` over this end; it pulls only as fast as it is consumed. */
  toStream(options?: StreamOptions): Readable {
    return readableFrom((maxBytes) => this.read({ maxBytes }), () => this.close(), DEFAULT_READ_SIZE, options);
  }

  /** @internal One non-blocking read from the kernel (ByteSource). */
  readChunk(max: number): Buffer | null | undefined {
    return this.#readKernel(max, 0);
  }

  /** A read of up to `maxBytes`; reads of the default size share one operation. */
  #readOp(maxBytes: unknown): Operation<Buffer | null> {
    if (maxBytes === undefined && this.#defaultRead !== undefined) return this.#defaultRead;
    const max = checkMaxBytes(maxBytes);
    const op = this.stepOf((spin) => (this.#ahead.length > 0 ? this.#ahead.take(Math.min(max, this.#ahead.length)) : this.#readKernel(max, spin)));
    if (maxBytes === undefined) this.#defaultRead = op;
    return op;
  }

  #readIntoOp(target: Uint8Array): Operation<number | null> {
    return this.stepOf((spin) => {
      // The room from the target's memory (see isBytes), as it is now: it may have shrunk while the call waited.
      const room = realByteLength(target);
      if (room === 0) {
        throw new IpcError('ERR_IPC_INVALID_ARGUMENT', `The target of a readInto on ${this.address} changed while the call waited ` +
          '(its buffer was transferred, detached or shrunk to nothing): leave it alone until the call resolves.', { address: this.address });
      }
      if (this.#ahead.length > 0) {
        const chunk = this.#ahead.take(Math.min(room, this.#ahead.length));
        copyView(target, chunk);
        return chunk.length;
      }
      if (this.#eof) return null;
      const n = this.transfer(true, target, 0, room, spin);
      return n > 0 ? n : this.#nothingRead(n);
    });
  }

  /**
   * Whole messages: held ones first (alone), else the first (which may
   * wait) and every one complete after it now, up to `max`; a stream
   * error after the first ends the batch (it stays, and the next call
   * meets it). Decoded by {@link decodeBatch}.
   */
  #receiveManyOp(max: unknown): Operation<PipeMessage<T>[] | null> {
    const limit = checkMax(max);
    const take = this.#rawManyOp(limit);
    return {
      step: (timeout, spin) => {
        const batch = take.step(timeout, spin);
        if (batch === undefined || batch === null) return batch;
        return decodeBatch(batch.raw, (bytes) => ({ data: decodeWith(this.#codec, bytes, this.address) }), this.#held, batch.fromHeld);
      },
    };
  }

  /**
   * The raw messages of a batch: held ones first (alone: `fromHeld`), else
   * whole messages as {@link receiveMany} takes them; `null` at the end.
   */
  #rawManyOp(limit: number): Operation<{ raw: Buffer[]; fromHeld: boolean } | null> {
    return this.stepOf(() => {
      const raw = this.#held.takeMany(limit);
      const fromHeld = raw.length > 0;
      while (raw.length < limit && !fromHeld) {
        let bytes: Buffer | null | undefined;
        try {
          bytes = this.#ahead.message(this, this.maxMessageSize, DEFAULT_READ_SIZE);
        } catch (err) {
          if (raw.length === 0) throw err;
          break;
        }
        if (bytes === undefined) break;
        if (bytes === null) {
          if (raw.length === 0) return null;
          break;
        }
        raw.push(bytes);
      }
      return raw.length === 0 ? undefined : { raw, fromHeld };
    });
  }

  #receiveBatchOp(batch: unknown): Operation<number | null> {
    const b = checkMessageBatch(batch);
    return this.stepOf((spin) => {
      // (A batch transferred while its call waited has no room, and would wait for ever.)
      checkBatchIntact(b, 1, this.address);
      b.clear();
      // Messages held (taken, their codec refused one) come first; then those still in the stream.
      if (this.#held.size > 0 && !this.#fillFromHeld(b)) return b.count;
      return this.#fillBatch(b, b.count > 0 ? 0 : spin);
    });
  }

  /** Held messages into `batch`, as many as fit: whether all did. */
  #fillFromHeld(batch: MessageBatch): boolean {
    while (this.#held.size > 0) {
      const message = this.#held.take()!;
      if (!pushIfRoom(batch, message)) {
        this.#held.putBack([message]);
        if (batch.count === 0) throw batchTooSmall(this.address, message.length, batch);
        return false;
      }
    }
    return true;
  }

  /**
   * Whole messages into `batch`, after those it holds: what was read ahead,
   * then reads from the pipe into the batch's buffer, unframed there (native
   * unframe) as long as the reads fill it and messages fit; what follows the
   * last message taken is read ahead for the next call. A large message
   * being read straight into its buffer, more read ahead than the batch has
   * room for, a broken stream, or a message whose frame is larger than the
   * batch go message by message ({@link #fillSlowly}). The count, `null`
   * at the end, `undefined` if nothing is whole yet.
   */
  #fillBatch(batch: MessageBatch, spin: number): number | null | undefined {
    const ahead = this.#ahead;
    if (ahead.direct || ahead.broken || ahead.length > batch.data.length - batch.size) return this.#fillSlowly(batch);
    // A read failure after messages is not kept: the next read meets it again.
    const done = unframeIntoBatch(batch, ahead, this.maxMessageSize, spin, this.#readIntoBatch);
    // A message over maxMessageSize, one whose frame is larger than the room left (its bytes may still fit), or the writers gone inside one.
    if (done.slow || this.#eof) return this.#fillSlowly(batch);
    return batch.count > 0 ? batch.count : undefined;
  }

  /** One read of {@link #fillBatch}: 0 when the pipe is empty or at its end (then noted). */
  readonly #readIntoBatch = (data: Buffer, at: number, want: number, spin: number): number => {
    if (this.#eof) return 0;
    const n = this.transfer(true, data, at, want, spin);
    if (n > 0) return n;
    this.#nothingRead(n);
    return 0;
  };

  /**
   * Whole messages into `batch` one by one, after those it holds, as
   * {@link receiveMany} takes them: the count, `null` at the end,
   * `undefined` if none is whole yet. A message that does not fit stays
   * in the stream; one larger than the whole batch is an error.
   */
  #fillSlowly(batch: MessageBatch): number | null | undefined {
    const ahead = this.#ahead;
    const max = this.maxMessageSize;
    while (batch.count < batch.lengths.length) {
      const next = ahead.nextLength();
      if (next <= max && next > batch.data.length - batch.size) {
        if (batch.count > 0) break;
        throw batchTooSmall(this.address, next, batch);
      }
      let message: Buffer | null | undefined;
      try {
        message = ahead.message(this, max, DEFAULT_READ_SIZE, undefined, batch.data.length - batch.size);
      } catch (err) {
        if (batch.count === 0) throw err;
        break;
      }
      if (message === undefined) {
        // The next message announces more than the room left: the check above ends the batch (or refuses an empty one).
        const after = ahead.nextLength();
        if (after >= 0 && after <= max && after > batch.data.length - batch.size) continue;
        break;
      }
      if (message === null) {
        if (batch.count === 0) return null;
        break;
      }
      if (!pushIfRoom(batch, message)) {
        // One read straight into its own buffer, taken from the stream already: it is held, and comes first next.
        this.#held.keep([message]);
        if (batch.count === 0) throw batchTooSmall(this.address, message.length, batch);
        break;
      }
    }
    return batch.count === 0 ? undefined : batch.count;
  }

  /** A scattered read: bytes read ahead first, else one readv from the pipe. */
  #readvOp(targets: unknown): Operation<number | null> {
    const list = checkTargets(targets);
    return this.stepOf((spin) => {
      if (this.#ahead.length > 0) return spread(this.#ahead, list);
      if (this.#eof) return null;
      const n = this.scatter(list, spin);
      return n > 0 ? n : this.#nothingRead(n);
    });
  }

  /** A framed read of raw bytes, bounded by `maxSize` when given, else by the end's maxMessageSize. */
  #messageOp(maxSize: unknown): Operation<Buffer | null> {
    const max = optionalInteger(maxSize, 'maxSize', 0, MAX_FRAME, this.maxMessageSize);
    const limitName = maxSize === undefined ? 'maxMessageSize' : 'maxSize';
    // Messages a batch held (its codec refused one) are framed messages too: they come first.
    return this.stepOf(() => this.#held.take() ?? this.#ahead.message(this, max, DEFAULT_READ_SIZE, limitName));
  }

  /**
   * One non-blocking read from the kernel. Small reads go through a reused
   * scratch buffer and are copied out; large ones land in a fresh buffer
   * that is returned as it is when filled. No returned Buffer carries stale
   * bytes beyond its data.
   */
  #readKernel(max: number, spin: number): Buffer | null | undefined {
    if (this.#eof) return null;
    let n: number;
    if (max <= SCRATCH_SIZE) {
      n = this.transfer(true, this.#scratch, 0, max, spin);
      if (n > 0) return Buffer.from(this.#scratch.subarray(0, n));
    } else {
      const buf = Buffer.allocUnsafeSlow(max);
      n = this.transfer(true, buf, 0, max, spin);
      if (n === max) return buf;
      if (n > 0) return n > max / 2 ? buf.fill(0, n).subarray(0, n) : Buffer.from(buf.subarray(0, n));
    }
    return this.#nothingRead(n);
  }

  /** What a read that returned no data (`n` <= 0) means: wait (`undefined`), the end (`null`), or an error. */
  #nothingRead(n: number): null | undefined {
    if (n === E.EAGAIN) return undefined;
    if (n === 0) {
      // The end of the data only once a writer has come and gone (POLLHUP);
      // a FIFO opened before any writer reads 0 too, and must keep waiting.
      if ((native.pollFd(this.fd, C.POLLIN, 0) & C.POLLHUP) === 0) return undefined;
      this.#eof = true;
      return null;
    }
    throw systemError(n, 'read', this.address);
  }
}

/**
 * The write end of a pipe or FIFO. `write()` resolves once every byte is in
 * the pipe; writes of at most {@link PIPE_BUF} bytes are atomic. `send()`
 * writes one value, encoded by the end's codec, as a length-prefixed
 * message; a message of at most `PIPE_BUF - 4` bytes is written atomically.
 */
export class PipeWriteEnd<T = Buffer> extends PipeEnd {
  readonly #codec: Codec<T>;
  /** Why this end was closed by a message cut short (later calls report it). */
  #failure: IpcError | undefined;

  /** @internal */
  constructor(fd: number, settings: Pick<EndSettings<T>, 'spin' | 'codec'>, address?: string, handedOver = false) {
    super(fd, address ?? pipeAddress(fd), 'write', settings.spin, handedOver);
    this.#codec = settings.codec;
  }

  /** Wraps an inherited descriptor and takes ownership of it, as {@link PipeReadEnd.fromFd} does. Options: `codec`, `spin`. */
  static fromFd<T = any>(fd: number, options: PipeWriteEndOptions<T> & { codec: 'json' | 'msgpack' }): PipeWriteEnd<T>;
  static fromFd<T>(fd: number, options: PipeWriteEndOptions<T> & { codec: Codec<T> }): PipeWriteEnd<T>;
  static fromFd<T = Buffer>(fd: number, options?: PipeWriteEndOptions<T>): PipeWriteEnd<T>;
  static fromFd<T>(fd: number, options?: PipeWriteEndOptions<T>): PipeWriteEnd<T> {
    const settings = endSettings(checkOptions(options, WRITE_END_KEYS));
    checkInheritedFd(fd, 'write');
    return new PipeWriteEnd<T>(fd, settings, undefined, true);
  }

  /** @internal An end closed because a message was cut short reports that, not just "closed". */
  override closedError(what: string): IpcError {
    return this.#failure ?? super.closedError(what);
  }

  /**
   * Sends one value as a length-prefixed message: encoded by the end's
   * codec (without one: bytes, a string as its UTF-8 bytes), then a 4-byte
   * big-endian length and the bytes, waiting while the pipe is full. Never
   * blocks the event loop. A message of at most `PIPE_BUF - 4` (4092) bytes
   * goes in one atomic write, never interleaved with other writers' data.
   *
   * A timeout or abort before the first byte sends nothing. Once part of the
   * message is in the pipe it cannot be taken back: a timeout or abort then
   * closes this end (the error says how much was written), so the reader
   * meets a cut message (`ERR_IPC_FRAMING`) rather than reading what
   * follows as its rest.
   */
  send(data: Outgoing<T>, options?: WaitOptions): Promise<void> {
    return run(this.lane, 'send', options, NO_KEYS, () => this.#frameOp(this.#encode(data)));
  }

  /** The blocking form of {@link send}: blocks the calling thread while the pipe is full. */
  sendSync(data: Outgoing<T>, options?: SyncWaitOptions): void {
    runSync(this.lane, 'sendSync', options, NO_KEYS, () => this.#frameOp(this.#encode(data)));
  }

  /**
   * Sends without waiting: `true` if the message went, `false` if nothing
   * was written (the pipe is full, or earlier sends wait). A message of at
   * most `PIPE_BUF - 4` bytes goes whole or not at all; of a larger one the
   * kernel may take part: it is then committed (`true`), and the rest
   * follows as the reader makes room, before any later write of this end.
   */
  trySend(data: Outgoing<T>): boolean {
    let op: FrameOperation | undefined;
    if (tryRun(this.lane, 'trySend', undefined, NO_KEYS, () => (op = this.#frameOp(this.#encode(data)))) !== undefined) return true;
    if (op === undefined || op.written() === 0) return false;
    const rest = op;
    // Its failures are EPIPE, which every later write meets too, and close(), which reports the cut.
    run(this.lane, 'trySend', undefined, NO_KEYS, () => rest).catch(() => undefined);
    return true;
  }

  /**
   * Writes all of `data`, waiting while the pipe is full. Never blocks the
   * event loop. Fails with `EPIPE` when no process has the read end open.
   */
  write(data: Uint8Array | string, options?: WaitOptions): Promise<void> {
    const state = { offset: 0 };
    return run(this.lane, 'write', options, NO_KEYS, () => this.#writeOp(toBytes(data), state))
      .catch((err: unknown) => {
        throw this.#partial(err, state.offset, () => sizeOf(data));
      });
  }

  /** Writes all of `data`, blocking the calling thread while the pipe is full. */
  writeSync(data: Uint8Array | string, options?: SyncWaitOptions): void {
    const state = { offset: 0 };
    try {
      runSync(this.lane, 'writeSync', options, NO_KEYS, () => this.#writeOp(toBytes(data), state));
    } catch (err) {
      throw this.#partial(err, state.offset, () => sizeOf(data));
    }
  }

  /** Writes what fits now; returns the number of bytes written (0 if the pipe is full, or earlier writes are waiting). */
  tryWrite(data: Uint8Array | string): number {
    const state = { offset: 0 };
    tryRun(this.lane, 'tryWrite', undefined, NO_KEYS, () => this.#writeOp(toBytes(data), state));
    return state.offset;
  }

  /**
   * Writes `data` as one length-prefixed message (a 4-byte big-endian length,
   * then the bytes), so the reader's {@link PipeReadEnd.readMessage} gets it
   * whole. Bytes as they are: no codec applies. Messages of at most
   * `PIPE_BUF - 4` bytes are atomic, even with several writers. A timeout
   * or abort after part of it was written closes this end, as for {@link send}.
   */
  writeMessage(data: Uint8Array | string, options?: WaitOptions): Promise<void> {
    return run(this.lane, 'writeMessage', options, NO_KEYS, () => this.#frameOp(toBytes(data)));
  }

  /** The blocking form of {@link writeMessage}. */
  writeMessageSync(data: Uint8Array | string, options?: SyncWaitOptions): void {
    runSync(this.lane, 'writeMessageSync', options, NO_KEYS, () => this.#frameOp(toBytes(data)));
  }

  /**
   * Sends `messages` in order, each as {@link send} frames it, waiting while
   * the pipe is full; one native call writes as many as there is room for
   * (gathered writes: messages of at most 1 KiB copied together, larger ones
   * written from where they lie). Resolves with how many went:
   * all of them, or, when the timeout, an abort or `close()` came after some
   * had gone, that many. When none went it rejects, as `send` does. Every
   * message is encoded first: one the codec refuses, or too large to frame,
   * sends none.
   *
   * A message of at most `PIPE_BUF - 4` bytes still goes in one atomic
   * write (whole messages are grouped up to `PIPE_BUF` bytes a write), so
   * other writers never cut into it. A larger one can be cut by a full
   * pipe: a timeout or abort that lands inside it closes this end, as for
   * `send`, and the error says how many went whole.
   */
  sendMany(messages: readonly Outgoing<T>[], options?: WaitOptions): Promise<number> {
    return run(this.lane, 'sendMany', options, NO_KEYS, () => this.#sendManyOp(messages));
  }

  /** The blocking form of {@link sendMany}: how many went. */
  sendManySync(messages: readonly Outgoing<T>[], options?: SyncWaitOptions): number {
    return runSync(this.lane, 'sendManySync', options, NO_KEYS, () => this.#sendManyOp(messages));
  }

  /**
   * Sends what fits now of `messages`, in order: how many went (0 if the
   * pipe is full, or earlier sends wait). As with {@link trySend}, a message
   * larger than `PIPE_BUF - 4` of which the kernel took part is committed:
   * it counts, and its rest follows as the reader makes room, before any
   * later write of this end.
   */
  trySendMany(messages: readonly Outgoing<T>[]): number {
    let op: GatherOperation<number> | undefined;
    const sent = tryRun(this.lane, 'trySendMany', undefined, NO_KEYS, () => (op = this.#sendManyOp(messages, true))) ?? 0;
    return this.#commitRest(op, sent, 'trySendMany');
  }

  /** What a try that cut a message short does: the rest follows, and the message counts. */
  #commitRest(op: GatherOperation<number> | undefined, sent: number, name: string): number {
    const rest = op?.rest();
    if (rest === undefined) return sent;
    // Its failures are EPIPE, which every later write meets too, and close(), which reports the cut.
    run(this.lane, name, undefined, NO_KEYS, () => rest).catch(() => undefined);
    return sent + 1;
  }

  /**
   * Sends the messages of `batch` (a {@link MessageBatch}), in order, each
   * framed as {@link send} frames it, waiting while the pipe is full: one
   * native call writes them all from the batch's buffer, with no
   * JavaScript work per message. The bytes are raw (the codec is not
   * applied), as {@link writeMessage} sends them. Resolves with how many
   * went, as {@link sendMany} does, and keeps its atomicity: a message of
   * at most `PIPE_BUF - 4` bytes goes whole in one write. Leave the batch
   * alone until the call resolves.
   */
  sendBatch(batch: MessageBatch, options?: WaitOptions): Promise<number> {
    return withBatch(batch, (b, release) => run(this.lane, 'sendBatch', options, NO_KEYS, () => this.#sendFramesOp(packed(b), false), false, release));
  }

  /** The blocking form of {@link sendBatch}: how many went. */
  sendBatchSync(batch: MessageBatch, options?: SyncWaitOptions): number {
    return runSync(this.lane, 'sendBatchSync', options, NO_KEYS, () => this.#sendFramesOp(packed(idleBatch(batch)), false));
  }

  /**
   * Sends what fits now of `batch`, in order: how many went (0 if the pipe
   * is full, or earlier sends wait). A large message the kernel took part
   * of is committed, as with {@link trySendMany}: its rest (copied from the
   * batch) follows before any later write of this end.
   */
  trySendBatch(batch: MessageBatch): number {
    let op: GatherOperation<number> | undefined;
    const sent = tryRun(this.lane, 'trySendBatch', undefined, NO_KEYS, () => (op = this.#sendFramesOp(packed(idleBatch(batch)), true))) ?? 0;
    return this.#commitRest(op, sent, 'trySendBatch');
  }

  /**
   * Writes all of `chunks`, in order, as one stream of bytes (`writev`;
   * chunks of at most 1 KiB copied together, larger ones written from
   * where they lie), waiting
   * while the pipe is full. Never blocks the event loop. At most
   * `PIPE_BUF` bytes in all go in one atomic write, as with {@link write};
   * a timeout or abort after part was written says how much.
   */
  writev(chunks: readonly (Uint8Array | string)[], options?: WaitOptions): Promise<void> {
    let op: GatherOperation<typeof DONE> | undefined;
    return run(this.lane, 'writev', options, NO_KEYS, () => (op = this.#writevOp(chunks)))
      .then(() => undefined, (err: unknown) => {
        throw op === undefined ? err : this.#partial(err, op.written(), op.total);
      });
  }

  /** The blocking form of {@link writev}. */
  writevSync(chunks: readonly (Uint8Array | string)[], options?: SyncWaitOptions): void {
    let op: GatherOperation<typeof DONE> | undefined;
    try {
      runSync(this.lane, 'writevSync', options, NO_KEYS, () => (op = this.#writevOp(chunks)));
    } catch (err) {
      throw op === undefined ? err : this.#partial(err, op.written(), op.total);
    }
  }

  /** Writes what fits now of `chunks`: the number of bytes written (0 if the pipe is full, or earlier writes wait). */
  tryWritev(chunks: readonly (Uint8Array | string)[]): number {
    let op: GatherOperation<typeof DONE> | undefined;
    tryRun(this.lane, 'tryWritev', undefined, NO_KEYS, () => (op = this.#writevOp(chunks, true)));
    return op?.written() ?? 0;
  }

  /** A Node `Writable` over this end, with backpressure from the pipe. */
  toStream(options?: StreamOptions): Writable {
    return writableTo((chunk) => this.write(chunk), () => this.close(), options);
  }

  /** Writes from state.offset until all is written (DONE) or the pipe is full. */
  #writeOp(data: Uint8Array, state: { offset: number }): Operation<typeof DONE> {
    // Its size from its memory (see isBytes), fixed now: a buffer that shrinks while the write waits fails it.
    const size = realByteLength(data);
    return this.stepOf((spin) => {
      while (state.offset < size) {
        if (realByteLength(data) < size) throw batchChanged(this.address, true);
        const n = this.transfer(false, data, state.offset, size - state.offset, spin);
        if (n > 0) {
          state.offset += n;
          continue;
        }
        if (n === E.EAGAIN) return undefined;
        throw systemError(n, 'write', this.address);
      }
      return DONE;
    });
  }

  #encode(data: Outgoing<T>): Uint8Array {
    return encodeWith(this.#codec, data as T, this.address);
  }

  /**
   * `messages` encoded, then written as frames by gathered writes of whole
   * frames (up to PIPE_BUF bytes a write), from the first not yet written.
   * The step resolves with the count once all went (a try: with what went
   * now); `partial` reports the count when an interruption lands between
   * messages, and one landing inside a message closes the end (`interrupted`).
   */
  #sendManyOp(messages: readonly Outgoing<T>[], tryForm = false): GatherOperation<number> {
    return this.#sendFramesOp(encodeBatch(messages, (data) => checkFrame(this.#encode(data), this.address)), tryForm);
  }

  /** {@link sendMany}'s writes, of encoded messages or of a packed batch's. */
  #sendFramesOp(list: GatherList, tryForm: boolean): GatherOperation<number> {
    const total = gatherCount(list);
    const fail = (r: number): IpcError => (r === E.EINVAL || r === LIST_CHANGED ? batchChanged(this.address) : systemError(r, 'write', this.address));
    const batch = batchSend(total, this.lane, tryForm, fail, new Float64Array(3));
    const at = batch.next;
    const cut = (): string => `${at[0]} of ${total} messages had been written whole, and ${at[1]} bytes of the next (with its length prefix)`;
    const op = this.#gatherOp(list, at, C.GATHER_FRAMED | C.GATHER_ATOMIC, (r) => {
      // A failure inside a message (its buffer changed under the batch) cuts it, as an interruption would.
      if (r < 0 && r !== E.EAGAIN && at[1]! > 0) throw this.#cut(fail(r), cut());
      return batch.outcome(r);
    }, tryForm);
    op.partial = () => (at[1]! > 0 ? undefined : batch.partial());
    op.interrupted = (error) => (op.written() === 0 ? undefined : this.#cut(error, cut()));
    return op;
  }

  /** `chunks` written as one stream of bytes by gathered writes; DONE once all went (a try: DONE or undefined). */
  #writevOp(chunks: readonly (Uint8Array | string)[], tryForm = false): GatherOperation<typeof DONE> {
    let list = encodeBatch(chunks, (chunk) => toBytes(chunk, 'chunks'), 'chunks');
    // At most PIPE_BUF bytes in all go in one write, as write's do, however many chunks carry them.
    if (list.length > 1) {
      // (Sizes and copies from the memory, see isBytes.)
      const sizes = list.map((c) => realByteLength(c));
      const total = sizes.reduce((sum, n) => sum + n, 0);
      if (total <= C.PIPE_BUF) {
        const one = Buffer.alloc(total);
        let at = 0;
        list.forEach((c, i) => {
          if (sizes[i]! > 0) copyView(one, viewFrom(c, 0, sizes[i]!), at);
          at += sizes[i]!;
        });
        list = [one];
      }
    }
    const at = new Float64Array(2);
    return this.#gatherOp(list, at, 0, (r) => {
      if (r < 0 && r !== E.EAGAIN) throw r === E.EINVAL || r === LIST_CHANGED ? batchChanged(this.address) : systemError(r, 'write', this.address);
      return at[0]! >= list.length ? DONE : undefined;
    }, tryForm);
  }

  /** {@link gatherOperation} over this end's gathered writes. */
  #gatherOp<R>(list: GatherList, at: Float64Array, mode: number, outcome: (r: number) => R | undefined, tryForm: boolean): GatherOperation<R> {
    return gatherOperation(list, at, (mode & C.GATHER_FRAMED) !== 0, (l, a, spin, timeout) => this.gather(l, a, mode, spin, timeout), (attempt) => this.stepOf(attempt), outcome,
      tryForm, (r) => systemError(r, 'write', this.address));
  }

  /**
   * What a timeout, an abort or close() that lands inside a message does: the
   * reader would take what follows as the rest of it, so this end is closed
   * (and reports why from then on). `cut` says how much had been written.
   */
  #cut(error: IpcError, cut: string): IpcError {
    // Closing for the cut rejects the calls still queued, this one included, with the same failure.
    if (this.#failure !== undefined) return this.#failure;
    if (error.code === 'ERR_IPC_CLOSED') {
      return new IpcError(error.code, `${error.message} ${cut}: the reader meets a message cut short.`, { address: this.address });
    }
    this.#failure = new IpcError(error.code, `${error.message} ${cut}, so this end was closed: the reader would have taken ` +
      'what follows as the rest of it, and meets a message cut short instead.', { address: this.address, cause: error.cause });
    this.close();
    return this.#failure;
  }

  /**
   * Writes `data` as one frame, in a single write when the pipe has room
   * (so a frame of at most PIPE_BUF bytes is atomic). A frame cut short by
   * a timeout, an abort or close() cannot be taken back: the reader would
   * take what follows as its rest, so the end is closed.
   */
  #frameOp(data: Uint8Array): FrameOperation {
    const framed = frame(data, this.address);
    const state = { offset: 0 };
    const op = this.#writeOp(framed, state) as FrameOperation;
    op.written = () => state.offset;
    op.interrupted = (error) => (state.offset === 0 ? undefined
      : this.#cut(error, `Part of the message had been written (${state.offset} of ${framed.length} bytes)`));
    return op;
  }

  /** A timeout or abort of a write that wrote part of the data says how much. */
  #partial(err: unknown, written: number, total: number | (() => number)): unknown {
    if (written === 0 || !(err instanceof IpcError) || (err.code !== 'ERR_IPC_TIMEOUT' && err.code !== 'ERR_IPC_ABORTED')) return err;
    const of = typeof total === 'number' ? total : total();
    return new IpcError(err.code, `${err.message} ${written} of ${of} bytes had been written.`, { address: this.address, cause: err.cause });
  }
}

/** The bytes a write of `data` carries, asked only once part of it went (whatever `data` is: it may have been refused). */
function sizeOf(data: unknown): number {
  return typeof data === 'string' ? Buffer.byteLength(data) : isUint8Array(data) ? realByteLength(data) : 0;
}

/** A frame being written: how much of it is in the pipe. */
interface FrameOperation extends Operation<typeof DONE> {
  written(): number;
}


const NO_KEYS: readonly string[] = [];
const READ_KEYS = ['maxBytes'] as const;
const MESSAGE_KEYS = ['maxSize'] as const;
const MANY_KEYS = ['max'] as const;

function checkInheritedFd(fd: unknown, access: 'read' | 'write'): void {
  checkInteger(fd, 'fd', 0, 2 ** 31 - 1);
  let st;
  try {
    st = fstatSync(fd as number);
  } catch (err) {
    throw systemError((err as NodeJS.ErrnoException).errno ?? E.EBADF, 'fstat', `fd ${String(fd)}`,
      'The descriptor is not open: was it passed to this process (spawn with fds)?');
  }
  if (!st.isFIFO()) throw invalidArgument('fd', fd, 'a descriptor of a pipe or FIFO');
  const mode = native.getFlags(fd as number) & C.O_ACCMODE;
  const wanted = access === 'read' ? C.O_RDONLY : C.O_WRONLY;
  if (mode !== wanted && mode !== C.O_RDWR) throw invalidArgument('fd', fd, `the ${access} end of a pipe`);
}

/**
 * Makes an anonymous pipe (`pipe2` with O_CLOEXEC). With `codec`, both
 * ends carry typed messages: `writeEnd.send(value)`, `readEnd.receive()`
 * resolving to `{ data }` (`null` at the end), and the read end iterates
 * decoded values; `maxMessageSize` bounds what the read end accepts.
 *
 * ```
 * const { readEnd, writeEnd } = pipe({ codec: 'json' });
 * await writeEnd.send({ id: 1 });
 * const message = await readEnd.receive();   // { data: { id: 1 } }
 * ```
 *
 * @example
 * ```ts
 * import { once } from 'node:events';
 * import { pipe, spawn } from 'ipckit';
 *
 * const { readEnd, writeEnd } = pipe({ capacity: 1 << 20 });
 * const child = spawn('wc', ['-c'], { fds: { 0: readEnd }, stdio: ['pipe', 'inherit', 'inherit'] });
 * readEnd.close();              // the child has its own copy
 * await writeEnd.write(Buffer.alloc(1000));
 * writeEnd.close();             // wc sees the end and prints 1000
 * await once(child, 'exit');
 * ```
 */
export function pipe<T = any>(options: PipeOptions<T> & { codec: 'json' | 'msgpack' }): PipeEnds<T>;
export function pipe<T>(options: PipeOptions<T> & { codec: Codec<T> }): PipeEnds<T>;
export function pipe<T = Buffer>(options?: PipeOptions<T>): PipeEnds<T>;
export function pipe<T>(options?: PipeOptions<T>): PipeEnds<T> {
  const opts = checkOptions(options, ['nonBlocking', 'capacity', ...READ_END_KEYS]);
  const nonBlocking = checkBoolean(opts.nonBlocking, 'nonBlocking');
  const capacity = opts.capacity === undefined ? undefined : checkInteger(opts.capacity, 'capacity', 1, 2 ** 31 - 1);
  const settings = endSettings(opts);
  const fds = native.pipe2(C.O_CLOEXEC | (nonBlocking ? C.O_NONBLOCK : 0));
  if (typeof fds === 'number') {
    throw descriptorError(fds, 'pipe2', undefined);
  }
  const [readFd, writeFd] = fds;
  const address = pipeAddress(readFd);
  if (capacity !== undefined) {
    const r = native.setPipeSize(writeFd, capacity);
    if (r < 0) {
      native.close(readFd);
      native.close(writeFd);
      if (r === E.EPERM) {
        throw limitError(r, 'fcntl', address, `capacity ${capacity} exceeds ${describeSetting('/proc/sys/fs/pipe-max-size')}, ` +
          'the limit without CAP_SYS_RESOURCE. Ask for less, or raise it: sysctl fs.pipe-max-size=N.');
      }
      throw systemError(r, 'fcntl', address, r === E.EBUSY ? 'The pipe holds more data than that capacity.' : undefined);
    }
  }
  let readEnd: PipeReadEnd<T>;
  try {
    readEnd = new PipeReadEnd(readFd, settings, address);
  } catch (err) {
    native.close(writeFd);
    throw err;
  }
  try {
    return { readEnd, writeEnd: new PipeWriteEnd(writeFd, settings, address) };
  } catch (err) {
    readEnd.close();
    throw err;
  }
}

/** Options of {@link spawn}: `child_process.spawn` options plus the pipe ends to hand over. */
export interface SpawnWithFdsOptions extends SpawnOptions {
  /**
   * Descriptors for the child: `{ 3: readEnd }` makes the child's fd 3 a copy
   * of `readEnd` (0, 1 and 2 replace stdin, stdout and stderr). Close your
   * own copy afterwards if you no longer use it, or the other side never
   * sees the end of the data.
   */
  fds?: Record<number, {
    /** The descriptor to copy into the child: an ipckit end, socket or queue has one. */
    readonly fd: number;
  } | number>;
}

/**
 * `child_process.spawn` that also hands pipe ends, sockets (any ipckit
 * handle with `fd`) or descriptor numbers to the child at chosen numbers.
 *
 * @example
 * ```ts
 * import { pipe, spawn } from 'ipckit';
 *
 * const { readEnd, writeEnd } = pipe();
 * spawn('sh', ['-c', 'echo hi >&3'], { fds: { 3: writeEnd } });
 * writeEnd.close();                                   // the child has its copy
 * console.log((await readEnd.read())?.toString());   // "hi\n"
 * readEnd.close();
 * ```
 */
export function spawn(command: string, args: readonly string[] = [], options: SpawnWithFdsOptions = {}): ChildProcess {
  if (options === null || typeof options !== 'object') throw invalidArgument('options', options, 'an object');
  const { fds, stdio, ...rest } = options;
  if (fds !== undefined && (fds === null || typeof fds !== 'object')) throw invalidArgument('fds', fds, 'an object such as { 3: readEnd }');
  const base: unknown[] = stdio === undefined ? ['pipe', 'pipe', 'pipe']
    : typeof stdio === 'string' ? [stdio, stdio, stdio] : [...(stdio as unknown[])];
  for (const [key, end] of Object.entries(fds ?? {})) {
    const n = Number(key);
    if (!Number.isInteger(n) || n < 0 || n > 1023) throw invalidArgument(`fds key ${key}`, key, 'a descriptor number from 0 to 1023');
    while (base.length <= n) base.push('ignore');
    if (typeof end === 'number') base[n] = checkInteger(end, `fds[${key}]`, 0, 2 ** 31 - 1);
    else if (end !== null && typeof end === 'object' && typeof (end as { fd?: unknown }).fd === 'number') base[n] = end.fd;
    else throw invalidArgument(`fds[${key}]`, end, 'a descriptor number or an ipckit handle with fd (a pipe end, a socket)');
  }
  return trackSpawned(spawnChild(command, [...args], { ...rest, stdio: base as SpawnOptions['stdio'] }));
}
