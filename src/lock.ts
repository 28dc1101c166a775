/**
 * Cross-process locks that live inside a shared-memory segment.
 *
 * - {@link Mutex}: mutual exclusion, robust against a holder that dies: the
 *   next locker takes the lock over and is told (`ERR_IPC_OWNER_DIED`).
 * - {@link Semaphore}: a counting semaphore.
 *
 * Both are futex-based: taking a free lock or a positive count is one atomic
 * instruction in JavaScript, with no system call; only waiting sleeps in the
 * kernel. Waits follow the one timeout rule and come in three forms
 * (`lock()` / `lockSync()` / `tryLock()`, `wait()` / `waitSync()` / `tryWait()`).
 *
 * Ownership of a mutex belongs to the thread that locked it — for async code,
 * the event loop's thread — so any code on that thread may unlock it.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { IpcError, errnoValue, systemError } from './errors.js';
import { native } from './native.js';
import type { SegmentDependent, SharedMemory } from './shared-memory.js';
import { checkInteger, checkOptions, optionalInteger } from './internal/validate.js';
import {
  type SyncWaitOptions, type WaitOptions, Pending, abortError, checkSignal, checkTimeout, nativeTimeout, timeoutError,
} from './internal/wait.js';

const { WAITERS, TID_MASK } = native.lockConstants;
const ETIMEDOUT = -errnoValue('ETIMEDOUT');
const ECANCELED = -errnoValue('ECANCELED');
const EDEADLK = -errnoValue('EDEADLK');
const ENOTRECOVERABLE = -errnoValue('ENOTRECOVERABLE');

const MUTEX_MAGIC = 0x4d555458; // 'MUTX'
const SEMAPHORE_MAGIC = 0x53454d41; // 'SEMA'
const STATUS_CONSISTENT = 0;
const STATUS_OWNER_DIED = 1;
const STATUS_NOT_RECOVERABLE = 2;

/** Largest semaphore value (`SEM_VALUE_MAX`). */
export const SEM_VALUE_MAX = 0x7fffffff;

/** Default spin budget of a lock wait, µs, before it sleeps on the futex. */
const DEFAULT_LOCK_SPIN_US = 50;

/** This thread's identity as a lock owner: its tid and start time (to survive pid reuse). */
const self = (() => {
  const tid = native.gettid();
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Field 22 (starttime) is the 20th after the command name.
  const start = Number(BigInt(fields[19]!) & 0xffffffffn);
  return { tid, start: start | 0, startUnsigned: start };
})();
const TID = self.tid;
const START = self.start;
/**
 * Spinning only pays when the holder can run at the same time: with a
 * single CPU available (affinity included, as with `taskset -c 0`) a waiter
 * sleeps on the futex at once and the holder's unlock wakes it.
 */
const MULTI_CPU = availableParallelism() > 1;
/** Attempts of the lock-free spin in JavaScript before a wait goes native. */
const JS_SPIN = MULTI_CPU ? 100 : 0;

/** Options of {@link Mutex.create} / {@link Mutex.open} and the semaphore factories. */
export interface LockOptions {
  /** Microseconds a wait spins before it sleeps (default 50); see docs/shared-memory.md. */
  spin?: number;
}

/** Options of {@link Mutex.withLock}. */
export interface WithLockOptions extends WaitOptions {
  /**
   * Called, holding the lock, when the previous holder died while holding
   * it. Repair the protected data here; the mutex is then marked consistent
   * and `fn` runs. Without it, `withLock` unlocks and rejects with
   * `ERR_IPC_OWNER_DIED`, leaving the mutex not recoverable.
   */
  onOwnerDied?: () => unknown;
}

/** Views four 32-bit words of `segment` at `offset` (checked). */
function wordsAt(segment: SharedMemory, offset: unknown, what: string): Int32Array {
  const size = segment.size;
  checkInteger(offset, 'offset', 0, Math.max(0, size - 16));
  if ((offset as number) % 4 !== 0) {
    throw new IpcError('ERR_IPC_INVALID_ARGUMENT', `offset must be a multiple of 4 for a ${what} (futexes need aligned words); got ${String(offset)}.`);
  }
  if (size < 16) {
    throw new IpcError('ERR_IPC_INVALID_ARGUMENT', `A ${what} needs 16 bytes; ${segment.address} has only ${size}.`);
  }
  return new Int32Array(segment.buffer, offset as number, 4);
}

/** The common lifecycle of a lock: its segment, its pending waits. */
abstract class SegmentLock implements SegmentDependent {
  protected readonly words: Int32Array;
  protected readonly spin: number;
  readonly #segment: SharedMemory;
  readonly #offset: number;
  readonly #jobs = new Set<(err: IpcError) => void>();

  protected constructor(segment: SharedMemory, words: Int32Array, offset: number, spin: number) {
    this.#segment = segment;
    this.words = words;
    this.#offset = offset;
    this.spin = MULTI_CPU ? spin : 0;
    segment.addDependent(this);
  }

  /** `/name@offset`, for messages. */
  get address(): string {
    return `${this.#segment.address}@${this.#offset}`;
  }

  /** @internal */
  segmentClosed(error: IpcError): void {
    for (const interrupt of [...this.#jobs]) interrupt(error);
  }

  protected check(what: string): void {
    if (this.#segment.closed) throw this.#segment.closedError(what);
  }

  /**
   * Waits on a waiter thread; a timeout, an abort or the segment's close()
   * cancels it, and the call settles when the thread confirms (with success
   * if it had already succeeded).
   */
  protected waitOnThread(what: string, timeout: number, signal: AbortSignal | undefined,
    start: (done: (r: number) => void) => number, finish: (r: number) => void): Promise<void> {
    let reason: IpcError | undefined;
    let job = 0;
    const interrupt = (err: IpcError): void => {
      reason ??= err;
      native.cancelJob(job);
    };
    const pending = new Pending<void>(what, this.address, timeout, signal, interrupt);
    job = start((r) => {
      this.#jobs.delete(interrupt);
      if (r === ECANCELED) {
        pending.reject(reason ?? this.#segment.closedError(what));
        return;
      }
      try {
        finish(r);
        pending.resolve();
      } catch (err) {
        pending.reject(err);
      }
    });
    this.#jobs.add(interrupt);
    return pending.promise;
  }
}

/**
 * A robust cross-process mutex in 16 bytes of a shared-memory segment.
 *
 * If the holder dies (even by SIGKILL), the next locker takes the lock over:
 * its lock call fails with `ERR_IPC_OWNER_DIED` **while holding the lock**.
 * It repairs the protected data and calls {@link markConsistent} before
 * {@link unlock}; unlocking without that leaves the mutex not recoverable
 * (`ERR_IPC_NOT_RECOVERABLE` for every later locker), as POSIX robust
 * mutexes do. Owners are identified by thread id and start time, so a reused
 * pid is never mistaken for the dead owner.
 *
 * @example
 * ```ts
 * using shm = PosixSharedMemory.openOrCreate('/counter', { size: 64 });
 * const mutex = shm.created ? Mutex.create(shm, 0) : Mutex.open(shm, 0);
 * const counter = new Int32Array(shm.buffer, 16, 1);
 * await mutex.withLock(() => { counter[0] += 1; });
 * ```
 */
export class Mutex extends SegmentLock {
  /** Bytes a mutex occupies. */
  static readonly SIZE = 16;

  private constructor(segment: SharedMemory, words: Int32Array, offset: number, spin: number) {
    super(segment, words, offset, spin);
  }

  /** Initialises a mutex at `offset` (a multiple of 4) of `segment`: unlocked and consistent. */
  static create(segment: SharedMemory, offset: number, options?: LockOptions): Mutex {
    const opts = checkOptions(options);
    if (segment.readOnly) throw segment.readOnlyError('Mutex.create');
    const words = wordsAt(segment, offset, 'Mutex');
    const spin = optionalInteger(opts.spin, 'spin', 0, 10_000, DEFAULT_LOCK_SPIN_US);
    Atomics.store(words, 0, 0);
    Atomics.store(words, 1, 0);
    Atomics.store(words, 3, STATUS_CONSISTENT);
    Atomics.store(words, 2, MUTEX_MAGIC);
    return new Mutex(segment, words, offset, spin);
  }

  /** Uses the mutex another process created at `offset` of `segment`. */
  static open(segment: SharedMemory, offset: number, options?: LockOptions): Mutex {
    const opts = checkOptions(options);
    if (segment.readOnly) throw segment.readOnlyError('Mutex.open');
    const words = wordsAt(segment, offset, 'Mutex');
    if (Atomics.load(words, 2) !== MUTEX_MAGIC) {
      throw new IpcError('ERR_IPC_INVALID_ARGUMENT',
        `No mutex at ${segment.address}@${offset}: nothing was initialised there with Mutex.create().`, { address: segment.address });
    }
    return new Mutex(segment, words, offset, optionalInteger(opts.spin, 'spin', 0, 10_000, DEFAULT_LOCK_SPIN_US));
  }

  /** Whether some thread holds the lock now. */
  get locked(): boolean {
    this.check('locked');
    return Atomics.load(this.words, 0) !== 0;
  }

  /** The holder's thread id (its pid for a single-threaded process), or null. */
  get owner(): number | null {
    this.check('owner');
    const state = Atomics.load(this.words, 0);
    return state === 0 ? null : state & TID_MASK;
  }

  /** Whether the calling thread holds the lock. */
  get held(): boolean {
    return this.owner === TID;
  }

  /**
   * Takes the lock, waiting while another holds it. Never blocks the event
   * loop. Rejects with `ERR_IPC_OWNER_DIED` when it took the lock over from a
   * dead holder (the lock is then held: repair, `markConsistent()`, `unlock()`).
   */
  lock(options?: WaitOptions): Promise<void> {
    let timeout: number;
    let signal: AbortSignal | undefined;
    try {
      this.check('lock');
      const opts = checkOptions(options);
      timeout = checkTimeout(opts.timeout);
      signal = checkSignal(opts.signal);
      if (signal?.aborted) throw abortError('lock', this.address, signal);
      if (this.#fastLock() || this.#spinLock()) return Promise.resolve();
      // Spin on the event loop first: the holder often lets go within microseconds.
      const r = this.#owned(native.mutexLock(this.words, TID, START, 0, this.spin, true), 'lock', 0, true);
      if (r) return Promise.resolve();
      if (timeout === 0) {
        if (this.#takeOverIfDead()) return Promise.resolve();
        throw timeoutError('lock', this.address, 0);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.waitOnThread('lock', timeout, signal,
      (done) => native.mutexLockAsync(this.words, TID, START, done),
      (r) => {
        this.#owned(r, 'lock', timeout, false);
      });
  }

  /**
   * Takes the lock, blocking the calling thread while another holds it.
   * Fails with `ERR_IPC_DEADLOCK` if this thread already holds it.
   */
  lockSync(options?: SyncWaitOptions): void {
    this.check('lockSync');
    const timeout = options === undefined ? Infinity : checkTimeout(checkOptions(options).timeout);
    if (this.#fastLock() || this.#spinLock()) return;
    const r = native.mutexLock(this.words, TID, START, nativeTimeout(timeout), this.spin, false);
    if (r === ETIMEDOUT && timeout === 0 && this.#takeOverIfDead()) return;
    this.#owned(r, 'lockSync', timeout, false);
  }

  /**
   * Takes the lock if it is free now (or its holder is dead: then it throws
   * `ERR_IPC_OWNER_DIED`, holding the lock); `false` if another holds it.
   */
  tryLock(): boolean {
    this.check('tryLock');
    if (this.#fastLock()) return true;
    return this.#takeOverIfDead();
  }

  /**
   * Releases the lock. Fails with `ERR_IPC_NOT_OWNER` unless the calling
   * thread holds it. After a takeover that was not acknowledged with
   * {@link markConsistent}, this makes the mutex not recoverable.
   */
  unlock(): void {
    this.check('unlock');
    const w = this.words;
    // Plain reads and writes suffice while we hold the lock; the exchange
    // that releases it publishes them (it is sequentially consistent).
    const state = w[0]!;
    if ((state & TID_MASK) !== TID) throw this.#notOwner('unlock', state);
    const abandoned = w[3] === STATUS_OWNER_DIED;
    if (abandoned) w[3] = STATUS_NOT_RECOVERABLE;
    // Clear the start time first: a checker that then sees a new owner's tid
    // reads 0 ("being recorded"), never this owner's start time.
    w[1] = 0;
    const previous = Atomics.exchange(w, 0, 0);
    // Everyone must learn that the mutex is gone; otherwise one waiter is enough.
    if ((previous & WAITERS) !== 0) native.futexWake(w, 0, abandoned ? SEM_VALUE_MAX : 1);
  }

  /** Acknowledges a takeover from a dead holder: the data is repaired, the mutex is usable again. */
  markConsistent(): void {
    this.check('markConsistent');
    const state = Atomics.load(this.words, 0);
    if ((state & TID_MASK) !== TID) throw this.#notOwner('markConsistent', state);
    Atomics.compareExchange(this.words, 3, STATUS_OWNER_DIED, STATUS_CONSISTENT);
  }

  /** Runs `fn` holding the lock and always unlocks, also when `fn` throws. */
  async withLock<R>(fn: () => R | Promise<R>, options?: WithLockOptions): Promise<R> {
    const opts = checkOptions(options);
    try {
      await this.lock({ timeout: opts.timeout, signal: opts.signal });
    } catch (err) {
      if (!(err instanceof IpcError) || err.code !== 'ERR_IPC_OWNER_DIED') throw err;
      if (opts.onOwnerDied === undefined) {
        this.unlock();
        throw err;
      }
      try {
        await opts.onOwnerDied();
      } catch (repairError) {
        this.unlock();
        throw repairError;
      }
      this.markConsistent();
    }
    try {
      return await fn();
    } finally {
      this.unlock();
    }
  }

  /** The uncontended path: one compare-and-swap, no system call. */
  #fastLock(): boolean {
    const w = this.words;
    if (Atomics.compareExchange(w, 0, 0, TID) !== 0) return false;
    w[1] = START;
    if (w[3] === STATUS_NOT_RECOVERABLE) {
      w[1] = 0;
      Atomics.store(w, 0, 0);
      throw this.#notRecoverable();
    }
    return true;
  }

  /** A short lock-free spin: a holder on another CPU often lets go within a few hundred nanoseconds. */
  #spinLock(): boolean {
    const w = this.words;
    for (let i = 0; i < JS_SPIN; i++) {
      if (Atomics.load(w, 0) === 0 && this.#fastLock()) return true;
    }
    return false;
  }

  /** Takes the lock over if its holder is dead (then throws ERR_IPC_OWNER_DIED); false otherwise. */
  #takeOverIfDead(): boolean {
    const r = native.mutexTryTakeOver(this.words, TID, START);
    if (r === 1) throw this.#ownerDied();
    if (r === ENOTRECOVERABLE) throw this.#notRecoverable();
    return false;
  }

  /**
   * Interprets a native lock result: true when acquired; throws for a
   * takeover, a timeout and errors. With `busyIsFalse`, a timeout of the
   * spin-only attempt returns false instead.
   */
  #owned(r: number, what: string, timeout: number, busyIsFalse: boolean): boolean {
    if (r === 0) return true;
    if (r === 1) throw this.#ownerDied();
    if (r === ETIMEDOUT) {
      if (busyIsFalse) return false;
      throw timeoutError(what, this.address, timeout);
    }
    if (r === EDEADLK) {
      throw new IpcError('ERR_IPC_DEADLOCK', `${what} on ${this.address}: this thread already holds the mutex, so waiting would never end. ` +
        'Unlock it first (or use the async lock(), which waits for this thread\'s other tasks).', { address: this.address });
    }
    if (r === ENOTRECOVERABLE) throw this.#notRecoverable();
    throw systemError(r, 'futex', this.address);
  }

  #ownerDied(): IpcError {
    return new IpcError('ERR_IPC_OWNER_DIED',
      `The previous holder of ${this.address} died while holding it; this thread now holds the lock. ` +
      'Repair the data it protects, call markConsistent(), then unlock() (unlocking without markConsistent() makes the mutex not recoverable).',
      { address: this.address });
  }

  #notRecoverable(): IpcError {
    return new IpcError('ERR_IPC_NOT_RECOVERABLE',
      `${this.address} is not recoverable: a holder took it over from a dead one and unlocked without markConsistent(). ` +
      'Re-initialise it with Mutex.create() once no process uses it.', { address: this.address });
  }

  #notOwner(what: string, state: number): IpcError {
    const holder = state === 0 ? 'nobody holds it' : `thread ${state & TID_MASK} holds it`;
    return new IpcError('ERR_IPC_NOT_OWNER', `${what} on ${this.address}: this thread (${TID}) does not hold the mutex; ${holder}.`, { address: this.address });
  }
}

/**
 * A counting semaphore in 16 bytes of a shared-memory segment.
 *
 * @example
 * ```ts
 * const slots = Semaphore.create(shm, 32, { value: 3 });  // three at a time
 * await slots.wait();
 * try { await work(); } finally { slots.post(); }
 * ```
 */
export class Semaphore extends SegmentLock {
  /** Bytes a semaphore occupies. */
  static readonly SIZE = 16;

  private constructor(segment: SharedMemory, words: Int32Array, offset: number, spin: number) {
    super(segment, words, offset, spin);
  }

  /** Initialises a semaphore at `offset` (a multiple of 4) with `value` (default 0). */
  static create(segment: SharedMemory, offset: number, options?: LockOptions & { value?: number }): Semaphore {
    const opts = checkOptions(options);
    if (segment.readOnly) throw segment.readOnlyError('Semaphore.create');
    const words = wordsAt(segment, offset, 'Semaphore');
    const value = optionalInteger(opts.value, 'value', 0, SEM_VALUE_MAX, 0);
    const spin = optionalInteger(opts.spin, 'spin', 0, 10_000, DEFAULT_LOCK_SPIN_US);
    Atomics.store(words, 0, value);
    Atomics.store(words, 1, 0);
    Atomics.store(words, 2, SEMAPHORE_MAGIC);
    return new Semaphore(segment, words, offset, spin);
  }

  /** Uses the semaphore another process created at `offset` of `segment`. */
  static open(segment: SharedMemory, offset: number, options?: LockOptions): Semaphore {
    const opts = checkOptions(options);
    if (segment.readOnly) throw segment.readOnlyError('Semaphore.open');
    const words = wordsAt(segment, offset, 'Semaphore');
    if (Atomics.load(words, 2) !== SEMAPHORE_MAGIC) {
      throw new IpcError('ERR_IPC_INVALID_ARGUMENT',
        `No semaphore at ${segment.address}@${offset}: nothing was initialised there with Semaphore.create().`, { address: segment.address });
    }
    return new Semaphore(segment, words, offset, optionalInteger(opts.spin, 'spin', 0, 10_000, DEFAULT_LOCK_SPIN_US));
  }

  /** The current count. */
  get value(): number {
    this.check('value');
    return Atomics.load(this.words, 0);
  }

  /** Decrements the count, waiting while it is 0. Never blocks the event loop. */
  wait(options?: WaitOptions): Promise<void> {
    let timeout: number;
    let signal: AbortSignal | undefined;
    try {
      this.check('wait');
      const opts = checkOptions(options);
      timeout = checkTimeout(opts.timeout);
      signal = checkSignal(opts.signal);
      if (signal?.aborted) throw abortError('wait', this.address, signal);
      if (this.#tryTake() || native.semWait(this.words, 0, this.spin) === 0) return Promise.resolve();
      if (timeout === 0) throw timeoutError('wait', this.address, 0);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.waitOnThread('wait', timeout, signal, (done) => native.semWaitAsync(this.words, done), (r) => {
      if (r < 0) throw systemError(r, 'futex', this.address);
    });
  }

  /** Decrements the count, blocking the calling thread while it is 0. */
  waitSync(options?: SyncWaitOptions): void {
    this.check('waitSync');
    const timeout = checkTimeout(checkOptions(options).timeout);
    if (this.#tryTake()) return;
    const r = native.semWait(this.words, nativeTimeout(timeout), this.spin);
    if (r === ETIMEDOUT) throw timeoutError('waitSync', this.address, timeout);
    if (r < 0) throw systemError(r, 'futex', this.address);
  }

  /** Decrements the count if it is positive; `false` if it is 0. */
  tryWait(): boolean {
    this.check('tryWait');
    return this.#tryTake();
  }

  /** Increments the count by `n` (default 1), waking as many waiters. */
  post(n = 1): void {
    this.check('post');
    checkInteger(n, 'n', 1, SEM_VALUE_MAX);
    const w = this.words;
    for (;;) {
      const c = Atomics.load(w, 0);
      if (c > SEM_VALUE_MAX - n) {
        throw new IpcError('ERR_IPC_LIMIT', `post on ${this.address}: the count ${c} + ${n} would exceed SEM_VALUE_MAX (${SEM_VALUE_MAX}).`, { address: this.address });
      }
      if (Atomics.compareExchange(w, 0, c, c + n) === c) break;
    }
    if (Atomics.load(w, 1) > 0) native.futexWake(w, 0, n);
  }

  #tryTake(): boolean {
    const w = this.words;
    for (let c = Atomics.load(w, 0); c > 0; c = Atomics.load(w, 0)) {
      if (Atomics.compareExchange(w, 0, c, c - 1) === c) return true;
    }
    return false;
  }
}

/** This thread's owner identity (tid and start time), as recorded in a held mutex. @internal */
export function lockOwnerIdentity(): { tid: number; start: number } {
  return { tid: self.tid, start: self.startUnsigned };
}
