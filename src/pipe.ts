/**
 * Pipes: half-duplex byte channels with a read end and a write end. Data
 * written into the write end waits in a kernel buffer until the read end
 * reads it. `pipe()` makes an anonymous pipe, whose ends you hand to child
 * processes with {@link spawn}; FIFOs (`fifo.ts`) are pipes with a name.
 *
 * Both ends offer the blocking triple (`read`/`readSync`/`tryRead`,
 * `write`/`writeSync`/`tryWrite`), length-prefixed messages, async
 * iteration and Node streams.
 *
 * @module
 */
import { type ChildProcess, type SpawnOptions, spawn as spawnChild } from 'node:child_process';
import { fstatSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { IpcError, errnoValue, limitError, systemError } from './errors.js';
import { native } from './native.js';
import { trackSpawned } from './internal/children.js';
import { describeSetting } from './internal/limits.js';
import { ReadinessQueue } from './internal/readiness.js';
import { checkBytes, checkInteger, checkOptions, invalidArgument, optionalInteger } from './internal/validate.js';
import {
  type SpinOptions, type SyncWaitOptions, type WaitOptions, abortError, checkSignal, checkSpin, checkTimeout, closedError, timeoutError,
} from './internal/wait.js';

const P = native.pipeConstants;
const { READABLE, WRITABLE } = native.readinessConstants;
const EAGAIN = -errnoValue('EAGAIN');
const EPIPE = -errnoValue('EPIPE');
const EPERM = -errnoValue('EPERM');
const EBUSY = -errnoValue('EBUSY');

/** Writes of at most this many bytes are atomic: never interleaved with other writers' data. */
export const PIPE_BUF = P.PIPE_BUF;

/** Default largest read, in bytes. */
export const DEFAULT_READ_SIZE = 64 * 1024;

/** Reads of at most this many bytes go through a reused buffer and are copied out. */
const SCRATCH_SIZE = 16 * 1024;

/** Default largest framed message, in bytes. */
export const DEFAULT_MAX_MESSAGE = 1024 * 1024;

/** Largest framed message a reader may be configured to accept (the 4-byte prefix's signed range). */
const MAX_MESSAGE_LIMIT = 2 ** 31 - 1;

const FRAME_HEADER = 4;

/** Options of {@link pipe}. */
export interface PipeOptions extends SpinOptions {
  /** Give both descriptors O_NONBLOCK (what children inherit). Default false: blocking, as most programs expect. */
  nonBlocking?: boolean;
  /** Buffer size in bytes (`F_SETPIPE_SZ`; the kernel rounds it up to a power-of-two number of pages). */
  capacity?: number;
}

/** Options of a read. */
export interface ReadOptions extends WaitOptions {
  /** Largest chunk to return. Default 65536. */
  maxBytes?: number;
}

/** Options of a synchronous read. */
export interface ReadSyncOptions extends SyncWaitOptions {
  maxBytes?: number;
}

/** Options of a framed-message read. */
export interface MessageReadOptions extends WaitOptions {
  /** Largest message accepted; a longer announced length fails before anything is allocated. Default 1 MiB. */
  maxSize?: number;
}

/** Options of a synchronous framed-message read. */
export interface MessageReadSyncOptions extends SyncWaitOptions {
  maxSize?: number;
}

/**
 * What both ends share. `fd` is the descriptor children get (blocking unless
 * `nonBlocking`); ipckit's own async and try calls go through a second,
 * non-blocking open file description of the same pipe (reopened through
 * /proc/self/fd), so a child never inherits a mode it did not ask for.
 */
abstract class PipeEnd implements Disposable {
  /** `pipe:[inode]` for an anonymous pipe, or the FIFO's path. */
  readonly address: string;
  #fd: number;
  #io: number;
  /** Whether `fd` was blocking when wrapped (a child flipping it only costs an EAGAIN and a poll). */
  readonly #blocking: boolean;
  protected readonly spin: number;
  protected readonly queue: ReadinessQueue;
  /** READABLE for a read end, WRITABLE for a write end. */
  protected readonly direction: number;

  protected constructor(fd: number, address: string, access: 'read' | 'write', spin: number) {
    this.#fd = fd;
    this.address = address;
    this.spin = spin;
    this.#blocking = (native.getFlags(fd) & P.O_NONBLOCK) === 0;
    const io = native.openPath(`/proc/self/fd/${fd}`, (access === 'read' ? P.O_RDONLY : P.O_WRONLY) | P.O_NONBLOCK, -1);
    if (io < 0) {
      native.close(fd);
      throw systemError(io, 'open', `/proc/self/fd/${fd}`, 'ipckit reopens pipe ends through /proc; it must be mounted.');
    }
    this.#io = io;
    // Readiness is watched on `fd`: for a FIFO reopened after its writer
    // left, the kernel withholds POLLHUP from the new description.
    this.direction = access === 'read' ? READABLE : WRITABLE;
    this.queue = new ReadinessQueue(fd, address);
  }

  /** The descriptor to hand to children. Throws `ERR_IPC_CLOSED` after `close()`. */
  get fd(): number {
    if (this.#fd < 0) throw closedError('fd', this.address);
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** The pipe's buffer size in bytes (`F_GETPIPE_SZ`). */
  get capacity(): number {
    const r = native.getPipeSize(this.fd);
    if (r < 0) throw systemError(r, 'fcntl', this.address);
    return r;
  }

  /** Whether `fd` has O_NONBLOCK. */
  get nonBlocking(): boolean {
    return (native.getFlags(this.fd) & P.O_NONBLOCK) !== 0;
  }

  /**
   * Closes this process's descriptors for this end. Pending calls reject with
   * `ERR_IPC_CLOSED`. Once every copy of the write end is closed, readers see
   * the end of the data; once every read end is closed, writes fail with EPIPE.
   */
  close(): void {
    if (this.#fd < 0) return;
    this.queue.close(closedError('the pending call', this.address));
    native.close(this.#io);
    native.close(this.#fd);
    this.#fd = -1;
    this.#io = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  protected get io(): number {
    return this.#io;
  }

  protected check(what: string): void {
    if (this.#fd < 0) throw closedError(what, this.address);
  }

  /** Splits the timeout into "wait forever on the blocking descriptor" or a bounded poll. */
  protected blockingFd(timeout: number): number | undefined {
    return timeout === Infinity && this.#blocking ? this.#fd : undefined;
  }
}

function deadlineLeft(deadline: number): number {
  return deadline === Infinity ? -1 : Math.max(0, deadline - performance.now());
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

function checkMaxSize(maxSize: unknown): number {
  return optionalInteger(maxSize, 'maxSize', 0, MAX_MESSAGE_LIMIT, DEFAULT_MAX_MESSAGE);
}

/**
 * The read end of a pipe or FIFO. `read()` resolves to a chunk of bytes, or
 * `null` at the end of the data (every writer has closed).
 *
 * @example
 * ```ts
 * const { readEnd, writeEnd } = pipe();
 * await writeEnd.write(Buffer.from('hello'));
 * writeEnd.close();
 * for await (const chunk of readEnd) process.stdout.write(chunk);
 * ```
 */
export class PipeReadEnd extends PipeEnd implements AsyncIterable<Buffer> {
  /** Bytes read from the kernel but not yet returned (framing, FIFO open probes). */
  #buffered: Buffer[] = [];
  #bufferedBytes = 0;
  #eof = false;
  /** Set when a framed stream was broken; messages cannot be found again. */
  #framingError: IpcError | undefined;

  /** Where small reads land before they are copied out. */
  readonly #scratch = Buffer.alloc(SCRATCH_SIZE);

  /** @internal */
  constructor(fd: number, address?: string, initial?: Buffer, spin?: number) {
    super(fd, address ?? pipeAddress(fd), 'read', spin ?? checkSpin(undefined));
    if (initial !== undefined && initial.length > 0) this.#push(initial);
  }

  /** Wraps an inherited descriptor (for example fd 3 given by a parent with {@link spawn}). */
  static fromFd(fd: number, options?: SpinOptions): PipeReadEnd {
    checkInheritedFd(fd, 'read');
    return new PipeReadEnd(fd, undefined, undefined, checkSpin(checkOptions(options).spin));
  }

  /** Reads up to `maxBytes`, waiting while the pipe is empty; `null` at the end. Never blocks the event loop. */
  read(options?: ReadOptions): Promise<Buffer | null> {
    let max: number;
    let timeout: number;
    let signal: AbortSignal | undefined;
    try {
      this.check('read');
      const opts = checkOptions(options);
      max = checkMaxBytes(opts.maxBytes);
      timeout = checkTimeout(opts.timeout);
      signal = checkSignal(opts.signal);
      if (signal?.aborted) throw abortError('read', this.address, signal);
      if (!this.queue.busy(this.direction)) {
        const chunk = this.#readNow(max, undefined, this.spin);
        if (chunk !== undefined) return Promise.resolve(chunk);
      }
      if (timeout === 0) throw timeoutError('read', this.address, 0);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.queue.wait('read', this.direction, timeout, signal, () => this.#readNow(max));
  }

  /** Reads up to `maxBytes`, blocking the calling thread while the pipe is empty; `null` at the end. */
  readSync(options?: ReadSyncOptions): Buffer | null {
    this.check('readSync');
    const opts = checkOptions(options);
    const max = checkMaxBytes(opts.maxBytes);
    const timeout = checkTimeout(opts.timeout);
    const deadline = timeout === Infinity ? Infinity : performance.now() + timeout;
    // Spin first (a reply often comes within microseconds), then sleep in the kernel.
    const first = this.#readNow(max, undefined, this.spin);
    if (first !== undefined) return first;
    for (;;) {
      const chunk = this.#readNow(max, this.blockingFd(timeout));
      if (chunk !== undefined) return chunk;
      const r = native.pollFd(this.fd, P.POLLIN, deadlineLeft(deadline));
      if (r === 0) throw timeoutError('readSync', this.address, timeout);
      if (r < 0) throw systemError(r, 'poll', this.address);
    }
  }

  /**
   * Reads into `target` (no allocation: for high-volume readers), waiting
   * while the pipe is empty. Resolves to the number of bytes read, or `null`
   * at the end of the data.
   */
  readInto(target: Uint8Array, options?: WaitOptions): Promise<number | null> {
    let timeout: number;
    let signal: AbortSignal | undefined;
    try {
      this.check('readInto');
      checkBytes(target, 'target');
      if (target.length === 0) throw invalidArgument('target', target, 'a non-empty Uint8Array');
      const opts = checkOptions(options);
      timeout = checkTimeout(opts.timeout);
      signal = checkSignal(opts.signal);
      if (signal?.aborted) throw abortError('readInto', this.address, signal);
      if (!this.queue.busy(this.direction)) {
        const n = this.#readIntoNow(target, undefined, this.spin);
        if (n !== undefined) return Promise.resolve(n);
      }
      if (timeout === 0) throw timeoutError('readInto', this.address, 0);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.queue.wait('readInto', this.direction, timeout, signal, () => this.#readIntoNow(target));
  }

  /** The blocking form of {@link readInto}. */
  readIntoSync(target: Uint8Array, options?: SyncWaitOptions): number | null {
    this.check('readIntoSync');
    checkBytes(target, 'target');
    if (target.length === 0) throw invalidArgument('target', target, 'a non-empty Uint8Array');
    const timeout = checkTimeout(checkOptions(options).timeout);
    const deadline = timeout === Infinity ? Infinity : performance.now() + timeout;
    const first = this.#readIntoNow(target, undefined, this.spin);
    if (first !== undefined) return first;
    for (;;) {
      const n = this.#readIntoNow(target, this.blockingFd(timeout));
      if (n !== undefined) return n;
      const r = native.pollFd(this.fd, P.POLLIN, deadlineLeft(deadline));
      if (r === 0) throw timeoutError('readIntoSync', this.address, timeout);
      if (r < 0) throw systemError(r, 'poll', this.address);
    }
  }

  /** Reads what is there now: a chunk, `null` at the end, or `undefined` if the pipe is empty. */
  tryRead(options?: { maxBytes?: number }): Buffer | null | undefined {
    this.check('tryRead');
    return this.#readNow(checkMaxBytes(checkOptions(options).maxBytes));
  }

  /**
   * Reads one length-prefixed message written by {@link PipeWriteEnd.writeMessage};
   * `null` at the end of the data. A prefix announcing more than `maxSize`
   * fails with `ERR_IPC_MESSAGE_TOO_LARGE` before anything is allocated.
   */
  readMessage(options?: MessageReadOptions): Promise<Buffer | null> {
    let max: number;
    let timeout: number;
    let signal: AbortSignal | undefined;
    try {
      this.check('readMessage');
      const opts = checkOptions(options);
      max = checkMaxSize(opts.maxSize);
      timeout = checkTimeout(opts.timeout);
      signal = checkSignal(opts.signal);
      if (signal?.aborted) throw abortError('readMessage', this.address, signal);
      if (!this.queue.busy(this.direction)) {
        const message = this.#messageNow(max);
        if (message !== undefined) return Promise.resolve(message);
      }
      if (timeout === 0) throw timeoutError('readMessage', this.address, 0);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.queue.wait('readMessage', this.direction, timeout, signal, () => this.#messageNow(max));
  }

  /** The blocking form of {@link readMessage}. */
  readMessageSync(options?: MessageReadSyncOptions): Buffer | null {
    this.check('readMessageSync');
    const opts = checkOptions(options);
    const max = checkMaxSize(opts.maxSize);
    const timeout = checkTimeout(opts.timeout);
    const deadline = timeout === Infinity ? Infinity : performance.now() + timeout;
    for (;;) {
      const message = this.#messageNow(max);
      if (message !== undefined) return message;
      const r = native.pollFd(this.fd, P.POLLIN, deadlineLeft(deadline));
      if (r === 0) throw timeoutError('readMessageSync', this.address, timeout);
      if (r < 0) throw systemError(r, 'poll', this.address);
    }
  }

  /** Chunks until the end of the data (or until the end is closed). */
  async *chunks(options?: { maxBytes?: number; signal?: AbortSignal }): AsyncGenerator<Buffer, void, undefined> {
    const opts = checkOptions(options);
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

  [Symbol.asyncIterator](): AsyncGenerator<Buffer, void, undefined> {
    return this.chunks();
  }

  /** A Node `Readable` over this end; it pulls only as fast as it is consumed. */
  toStream(options?: { highWaterMark?: number }): Readable {
    const stream: Readable = new Readable({
      highWaterMark: options?.highWaterMark,
      read: (size) => {
        this.read({ maxBytes: Math.max(1, Math.min(size, DEFAULT_READ_SIZE)) }).then(
          (chunk) => stream.push(chunk),
          (err: unknown) => stream.destroy(err as Error),
        );
      },
      destroy: (err, done) => {
        this.close();
        done(err);
      },
    });
    return stream;
  }

  /** One read into `target`: buffered bytes first; a count, `null` at the end, `undefined` if it would wait. */
  #readIntoNow(target: Uint8Array, blockingFd?: number, spin = 0): number | null | undefined {
    if (this.#bufferedBytes > 0) {
      const chunk = this.#take(Math.min(target.length, this.#bufferedBytes));
      target.set(chunk);
      return chunk.length;
    }
    if (this.#eof) return null;
    const n = native.readFd(blockingFd ?? this.io, target, 0, target.length, -1, spin);
    if (n > 0) return n;
    return this.#nothingRead(n);
  }

  /** One read: buffered bytes first, then the kernel; `null` at the end, `undefined` if it would wait. */
  #readNow(max: number, blockingFd?: number, spin = 0): Buffer | null | undefined {
    if (this.#bufferedBytes > 0) return this.#take(Math.min(max, this.#bufferedBytes));
    return this.#readKernel(max, blockingFd, spin);
  }

  /**
   * One read from the kernel (non-blocking unless `blockingFd` is given).
   * Small reads go through a reused scratch buffer and are copied out; large
   * ones land in a fresh buffer that is returned as it is when filled. No
   * returned Buffer carries stale bytes beyond its data.
   */
  #readKernel(max: number, blockingFd?: number, spin = 0): Buffer | null | undefined {
    if (this.#eof) return null;
    const fd = blockingFd ?? this.io;
    let n: number;
    if (max <= SCRATCH_SIZE) {
      n = native.readFd(fd, this.#scratch, 0, max, -1, spin);
      if (n > 0) {
        const out = Buffer.allocUnsafe(n);
        this.#scratch.copy(out, 0, 0, n);
        return out;
      }
    } else {
      const buf = Buffer.allocUnsafeSlow(max);
      n = native.readFd(fd, buf, 0, max, -1, spin);
      if (n === max) return buf;
      if (n > 0) return n > max / 2 ? buf.fill(0, n).subarray(0, n) : Buffer.from(buf.subarray(0, n));
    }
    return this.#nothingRead(n);
  }

  /** What a read that returned no data (`n` <= 0) means: wait (`undefined`), the end (`null`), or an error. */
  #nothingRead(n: number): null | undefined {
    if (n === EAGAIN) return undefined;
    if (n === 0) {
      // End of the data only once a writer has come and gone (POLLHUP);
      // a FIFO opened before any writer reads 0 too, and must keep waiting.
      if ((native.pollFd(this.fd, P.POLLIN, 0) & P.POLLHUP) === 0) return undefined;
      this.#eof = true;
      return null;
    }
    throw systemError(n, 'read', this.address);
  }

  /** One framed message if it is complete now; `null` at a clean end; `undefined` if more must arrive. */
  #messageNow(max: number): Buffer | null | undefined {
    if (this.#framingError) throw this.#framingError;
    for (;;) {
      if (this.#bufferedBytes >= FRAME_HEADER) {
        const length = this.#peekLength();
        if (length > max) {
          this.#framingError = new IpcError('ERR_IPC_MESSAGE_TOO_LARGE',
            `A message on ${this.address} announces ${length} bytes, more than maxSize ${max}. Nothing was allocated; ` +
            'the stream cannot be resynchronised, so further messages on this end fail too. Raise maxSize if the writer is trusted.',
            { address: this.address });
          throw this.#framingError;
        }
        if (this.#bufferedBytes >= FRAME_HEADER + length) {
          this.#take(FRAME_HEADER);
          return this.#take(length);
        }
      }
      const chunk = this.#readKernel(DEFAULT_READ_SIZE);
      if (chunk === undefined) return undefined;
      if (chunk === null) {
        if (this.#bufferedBytes === 0) return null;
        this.#framingError = new IpcError('ERR_IPC_FRAMING',
          `The writer of ${this.address} closed in the middle of a message (${this.#bufferedBytes} bytes of it arrived).`, { address: this.address });
        throw this.#framingError;
      }
      this.#push(chunk);
    }
  }

  #push(chunk: Buffer): void {
    this.#buffered.push(chunk);
    this.#bufferedBytes += chunk.length;
  }

  #peekLength(): number {
    const head = this.#buffered[0]!;
    if (head.length >= FRAME_HEADER) return head.readUInt32BE(0);
    return Buffer.concat(this.#buffered, FRAME_HEADER).readUInt32BE(0);
  }

  #take(n: number): Buffer {
    this.#bufferedBytes -= n;
    const head = this.#buffered[0]!;
    if (head.length === n) {
      this.#buffered.shift();
      return head;
    }
    if (head.length > n) {
      this.#buffered[0] = head.subarray(n);
      return head.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const part = this.#buffered[0]!;
      const used = Math.min(part.length, n - filled);
      part.copy(out, filled, 0, used);
      filled += used;
      if (used === part.length) this.#buffered.shift();
      else this.#buffered[0] = part.subarray(used);
    }
    return out;
  }
}

/**
 * The write end of a pipe or FIFO. `write()` resolves once every byte is in
 * the pipe; writes of at most {@link PIPE_BUF} bytes are atomic.
 */
export class PipeWriteEnd extends PipeEnd {
  /** @internal */
  constructor(fd: number, address?: string, spin?: number) {
    super(fd, address ?? pipeAddress(fd), 'write', spin ?? checkSpin(undefined));
  }

  /** Wraps an inherited descriptor (for example fd 3 given by a parent with {@link spawn}). */
  static fromFd(fd: number, options?: SpinOptions): PipeWriteEnd {
    checkInheritedFd(fd, 'write');
    return new PipeWriteEnd(fd, undefined, checkSpin(checkOptions(options).spin));
  }

  /**
   * Writes all of `data`, waiting while the pipe is full. Never blocks the
   * event loop. Fails with `EPIPE` when no process has the read end open.
   */
  write(data: Uint8Array, options?: WaitOptions): Promise<void> {
    let timeout: number;
    let signal: AbortSignal | undefined;
    const state = { offset: 0 };
    try {
      this.check('write');
      checkBytes(data);
      const opts = checkOptions(options);
      timeout = checkTimeout(opts.timeout);
      signal = checkSignal(opts.signal);
      if (signal?.aborted) throw abortError('write', this.address, signal);
      if (!this.queue.busy(this.direction) && this.#writeNow(data, state)) return Promise.resolve();
      if (timeout === 0) throw this.#partial(timeoutError('write', this.address, 0), state.offset, data.length);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.queue.wait('write', this.direction, timeout, signal, () => (this.#writeNow(data, state) ? true : undefined))
      .then(() => undefined, (err: unknown) => {
        throw err instanceof IpcError && (err.code === 'ERR_IPC_TIMEOUT' || err.code === 'ERR_IPC_ABORTED')
          ? this.#partial(err, state.offset, data.length) : err;
      });
  }

  /** Writes all of `data`, blocking the calling thread while the pipe is full. */
  writeSync(data: Uint8Array, options?: SyncWaitOptions): void {
    this.check('writeSync');
    checkBytes(data);
    const timeout = checkTimeout(checkOptions(options).timeout);
    const deadline = timeout === Infinity ? Infinity : performance.now() + timeout;
    const state = { offset: 0 };
    while (!this.#writeNow(data, state, this.blockingFd(timeout))) {
      const r = native.pollFd(this.fd, P.POLLOUT, deadlineLeft(deadline));
      if (r === 0) throw this.#partial(timeoutError('writeSync', this.address, timeout), state.offset, data.length);
      if (r < 0) throw systemError(r, 'poll', this.address);
    }
  }

  /** Writes what fits now; returns the number of bytes written (0 if the pipe is full). */
  tryWrite(data: Uint8Array): number {
    this.check('tryWrite');
    checkBytes(data);
    const state = { offset: 0 };
    this.#writeNow(data, state);
    return state.offset;
  }

  /**
   * Writes `data` as one length-prefixed message (a 4-byte big-endian length,
   * then the bytes), so the reader's {@link PipeReadEnd.readMessage} gets it
   * whole. Messages of at most `PIPE_BUF - 4` bytes are atomic, even with
   * several writers.
   */
  writeMessage(data: Uint8Array, options?: WaitOptions): Promise<void> {
    let frame: Buffer;
    try {
      frame = this.#frame(data);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.write(frame, options);
  }

  /** The blocking form of {@link writeMessage}. */
  writeMessageSync(data: Uint8Array, options?: SyncWaitOptions): void {
    this.writeSync(this.#frame(data), options);
  }

  /** A Node `Writable` over this end, with backpressure from the pipe. */
  toStream(options?: { highWaterMark?: number }): Writable {
    return new Writable({
      highWaterMark: options?.highWaterMark,
      write: (chunk: Buffer, _encoding, done) => {
        this.write(chunk).then(() => done(), (err: unknown) => done(err as Error));
      },
      final: (done) => {
        this.close();
        done();
      },
      destroy: (err, done) => {
        this.close();
        done(err);
      },
    });
  }

  #frame(data: Uint8Array): Buffer {
    checkBytes(data);
    if (data.length > MAX_MESSAGE_LIMIT) {
      throw new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `A ${data.length}-byte message exceeds the framing limit of ${MAX_MESSAGE_LIMIT} bytes.`, { address: this.address });
    }
    const frame = Buffer.allocUnsafe(FRAME_HEADER + data.length);
    frame.writeUInt32BE(data.length, 0);
    frame.set(data, FRAME_HEADER);
    return frame;
  }

  /** Writes from state.offset until done (true) or the pipe is full (false). */
  #writeNow(data: Uint8Array, state: { offset: number }, blockingFd?: number): boolean {
    while (state.offset < data.length) {
      const n = native.writeFd(blockingFd ?? this.io, data, state.offset, data.length - state.offset, -1, 0);
      if (n > 0) {
        state.offset += n;
        continue;
      }
      if (n === EAGAIN) return false;
      if (n === EPIPE) {
        throw systemError(n, 'write', this.address, 'No process has the read end open any more: the reader closed or exited.');
      }
      throw systemError(n, 'write', this.address);
    }
    return true;
  }

  #partial(err: IpcError, written: number, total: number): IpcError {
    if (written === 0) return err;
    return new IpcError(err.code, `${err.message} ${written} of ${total} bytes had been written.`, { address: this.address, cause: err.cause });
  }
}

function checkInheritedFd(fd: unknown, access: 'read' | 'write'): void {
  checkInteger(fd, 'fd', 0, 2 ** 31 - 1);
  let st;
  try {
    st = fstatSync(fd as number);
  } catch (err) {
    throw systemError(-((err as NodeJS.ErrnoException).errno ?? 0) || -errnoValue('EBADF'), 'fstat', `fd ${String(fd)}`,
      'The descriptor is not open: was it passed to this process (spawn with fds)?');
  }
  if (!st.isFIFO()) throw invalidArgument('fd', fd, 'a descriptor of a pipe or FIFO');
  const mode = native.getFlags(fd as number) & 3;
  const wanted = access === 'read' ? P.O_RDONLY : P.O_WRONLY;
  if (mode !== wanted && mode !== P.O_RDWR) throw invalidArgument('fd', fd, `the ${access} end of a pipe`);
}

/**
 * Makes an anonymous pipe (`pipe2` with O_CLOEXEC).
 *
 * @example
 * ```ts
 * const { readEnd, writeEnd } = pipe({ capacity: 1 << 20 });
 * const child = spawn('wc', ['-c'], { fds: { 0: readEnd }, stdio: ['pipe', 'inherit', 'inherit'] });
 * readEnd.close();              // the child has its own copy
 * await writeEnd.write(Buffer.alloc(1000));
 * writeEnd.close();             // wc sees the end and prints 1000
 * ```
 */
export function pipe(options?: PipeOptions): { readEnd: PipeReadEnd; writeEnd: PipeWriteEnd } {
  const opts = checkOptions(options);
  if (opts.nonBlocking !== undefined && typeof opts.nonBlocking !== 'boolean') throw invalidArgument('nonBlocking', opts.nonBlocking, 'a boolean');
  const capacity = opts.capacity === undefined ? undefined : checkInteger(opts.capacity, 'capacity', 1, 2 ** 31 - 1);
  const spin = checkSpin(opts.spin);
  const fds = native.pipe2(P.O_CLOEXEC | (opts.nonBlocking ? P.O_NONBLOCK : 0));
  if (typeof fds === 'number') {
    throw fds === -errnoValue('EMFILE') || fds === -errnoValue('ENFILE')
      ? limitError(fds, 'pipe2', undefined, 'no descriptor is free (ulimit -n, or fs.file-max for the system).')
      : systemError(fds, 'pipe2', undefined);
  }
  const [readFd, writeFd] = fds;
  const address = pipeAddress(readFd);
  if (capacity !== undefined) {
    const r = native.setPipeSize(writeFd, capacity);
    if (r < 0) {
      native.close(readFd);
      native.close(writeFd);
      if (r === EPERM) {
        throw limitError(r, 'fcntl', address, `capacity ${capacity} exceeds ${describeSetting('/proc/sys/fs/pipe-max-size')}, ` +
          'the limit without CAP_SYS_RESOURCE. Ask for less, or raise it: sysctl fs.pipe-max-size=N.');
      }
      throw systemError(r, 'fcntl', address, r === EBUSY ? 'The pipe holds more data than that capacity.' : undefined);
    }
  }
  let readEnd: PipeReadEnd;
  try {
    readEnd = new PipeReadEnd(readFd, address, undefined, spin);
  } catch (err) {
    native.close(writeFd);
    throw err;
  }
  try {
    return { readEnd, writeEnd: new PipeWriteEnd(writeFd, address, spin) };
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
  fds?: Record<number, PipeReadEnd | PipeWriteEnd | number>;
}

/**
 * `child_process.spawn` that also hands pipe ends to the child at chosen
 * descriptor numbers.
 *
 * @example
 * ```ts
 * const { readEnd, writeEnd } = pipe();
 * const child = spawn('sh', ['-c', 'echo hi >&3'], { fds: { 3: writeEnd } });
 * writeEnd.close();
 * console.log((await readEnd.read())?.toString());   // "hi\n"
 * ```
 */
export function spawn(command: string, args: readonly string[] = [], options: SpawnWithFdsOptions = {}): ChildProcess {
  const { fds, stdio, ...rest } = checkOptions(options);
  const base: unknown[] = stdio === undefined ? ['pipe', 'pipe', 'pipe']
    : typeof stdio === 'string' ? [stdio, stdio, stdio] : [...(stdio as unknown[])];
  for (const [key, end] of Object.entries(fds ?? {})) {
    const n = Number(key);
    if (!Number.isInteger(n) || n < 0 || n > 1023) throw invalidArgument(`fds key ${key}`, key, 'a descriptor number from 0 to 1023');
    while (base.length <= n) base.push('ignore');
    base[n] = typeof end === 'number' ? checkInteger(end, `fds[${key}]`, 0, 2 ** 31 - 1) : end.fd;
  }
  return trackSpawned(spawnChild(command, [...args], { ...rest, stdio: base as SpawnOptions['stdio'] }));
}
