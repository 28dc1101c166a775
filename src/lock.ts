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
import { E, IpcError, systemError } from './errors.js';
import { native } from './native.js';
import type { SharedMemory } from './shared-memory.js';
import { DONE, type Job, JobLane, type Operation, resolvedNow, run, runSync, tryRun } from './internal/operation.js';
import { checkInteger, checkOptions, invalidArgument, optionalInteger } from './internal/validate.js';
import { type SyncWaitOptions, type WaitOptions } from './internal/wait.js';

// The protocols of both locks, the only definition of them: lock.cc only
// waits for words to change and wakes sleepers.
//
// Mutex: four 32-bit words at a 4-byte aligned offset.
//   [STATE]  0 = free; otherwise the owner's thread id | WAITERS
//   [START]  the owner's start time (low 32 bits of /proc/<tid>/stat field
//            22), 0 while it is being recorded
//   [MAGIC]  MUTEX_MAGIC once initialised
//   [STATUS] CONSISTENT, OWNER_DIED (taken over, not yet repaired) or
//            NOT_RECOVERABLE
// A waiter that finds the lock held sets WAITERS and sleeps on STATE; an
// unlock that finds WAITERS set wakes one. A waiter that slept acquires with
// WAITERS set, since others may still sleep. Every WATCH_SLICE_MS a sleeper
// checks that the owner (tid and start time: a reused pid is not the owner)
// still exists, and takes the lock over from a dead one.
//
// Semaphore: [COUNT] the count, [SLEEPERS] waiters asleep on COUNT,
// [MAGIC] SEMAPHORE_MAGIC; the fourth word is unused.
//
// Initialisation: create() writes the other words, then MAGIC last. Zeroed
// words (a new segment) already are an unlocked, consistent mutex and a
// semaphore of count 0, so openOrCreate() only publishes MAGIC with a
// compare-and-swap from 0: exactly one process wins, and a semaphore's
// initial value is then posted, never stored (posts made meanwhile count).
const STATE = 0;
const START = 1;
const MAGIC = 2;
const STATUS = 3;
const COUNT = 0;
const SLEEPERS = 1;
const WAITERS = 0x40000000;
const TID_MASK = 0x3fffffff;
const MUTEX_MAGIC = 0x4d555458; // 'MUTX'
const SEMAPHORE_MAGIC = 0x53454d41; // 'SEMA'
const CONSISTENT = 0;
const OWNER_DIED = 1;
const NOT_RECOVERABLE = 2;
/**
 * @internal The words and values of both protocols, for tools that craft or
 * inspect lock words (the reliability suite). Programs use the classes.
 */
export const LOCK_WORDS = {
  STATE, START, MAGIC, STATUS, COUNT, SLEEPERS, WAITERS, TID_MASK, MUTEX_MAGIC, SEMAPHORE_MAGIC, CONSISTENT, OWNER_DIED, NOT_RECOVERABLE,
} as const;
/**
 * How long a waiter sleeps before it looks again: at a mutex owner that may
 * have died, at a word whose wake-up may have been lost (waiter threads do
 * the same natively).
 */
const WATCH_SLICE_MS = 20;

/** Largest semaphore value (`SEM_VALUE_MAX`). */
export const SEM_VALUE_MAX = 0x7fffffff;

/** Default spin budget of a lock wait, µs, before it sleeps on the futex. */
const DEFAULT_LOCK_SPIN_US = 50;

/** This thread's identity as a lock owner: its tid and start time (to survive pid reuse). */
const self = (() => {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  // Field 1 is the thread's id (what gettid() returns), before the command name in parentheses.
  const tid = Number.parseInt(stat, 10);
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Field 22 (starttime) is the 20th after the command name.
  const start = Number(BigInt(fields[19]!) & 0xffffffffn);
  return { tid, start: start | 0 };
})();
const TID = self.tid;
const MY_START = self.start;
/** @internal This thread as an owner (tid and start time), for other protocols in shared memory (the channel's roles). */
export const THREAD_IDENTITY: { readonly tid: number; readonly start: number } = self;
/**
 * With a single CPU available (affinity included, as with `taskset -c 0`)
 * a mutex's waiter does not spin: its holder runs only when the waiter
 * gives the CPU up, and a waiter that sleeps lets it run to its unlock (pinned
 * back to back, a contended lock+unlock was slower with a yielding waiter). A
 * semaphore's waiter still spins, yielding between looks: the post it
 * waits for comes from a peer that then runs at once, where a sleep would
 * cost a wake-up and, for an async wait, a waiter thread's round trip
 * (an async round trip pinned: 34 -> 9 µs in the bench).
 */
const MULTI_CPU = availableParallelism() > 1;
/**
 * A step's spin budget, µs: `spin`, but never longer than a timeout the
 * step has (`timeout` ms; 0 is a try, which may spin the whole budget, and
 * < 0 no limit), as the native waits bound theirs.
 */
function spinWithin(spin: number, timeout: number): number {
  return timeout > 0 ? Math.min(spin, timeout * 1000) : spin;
}

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

type LockKind = 'Mutex' | 'Semaphore';

const MAGIC_OF: Record<LockKind, number> = { Mutex: MUTEX_MAGIC, Semaphore: SEMAPHORE_MAGIC };

/** The four 32-bit words of a lock at `offset` of `segment` (checked: writable, in range, aligned). */
function locate(segment: SharedMemory, offset: unknown, kind: LockKind, how: string): Int32Array {
  if (segment.readOnly) throw segment.readOnlyError(`${kind}.${how}`);
  const size = segment.size;
  checkInteger(offset, 'offset', 0, Math.max(0, size - 16));
  if ((offset as number) % 4 !== 0) {
    throw new IpcError('ERR_IPC_INVALID_ARGUMENT', `offset must be a multiple of 4 for a ${kind} (futexes need aligned words); got ${String(offset)}.`);
  }
  if (size < 16) {
    throw new IpcError('ERR_IPC_INVALID_ARGUMENT', `A ${kind} needs 16 bytes; ${segment.address} has only ${size}.`);
  }
  return new Int32Array(segment.buffer, offset as number, 4);
}

/** The words of an initialised `kind` at `offset`, for `open`; fails if there is none. */
function existingWords(segment: SharedMemory, offset: unknown, kind: LockKind): Int32Array {
  const words = locate(segment, offset, kind, 'open');
  if (Atomics.load(words, MAGIC) !== MAGIC_OF[kind]) {
    throw new IpcError('ERR_IPC_INVALID_ARGUMENT',
      `No ${kind.toLowerCase()} at ${segment.address}@${String(offset)}: nothing was initialised there with ${kind}.create() ` +
      `or ${kind}.openOrCreate().`, { address: segment.address });
  }
  return words;
}

/**
 * Refuses to initialise `kind` over a lock in use: the other kind of lock,
 * a mutex a live thread holds, a semaphore processes sleep on.
 */
function checkReplaceable(words: Int32Array, segment: SharedMemory, offset: number, kind: LockKind): void {
  const magic = Atomics.load(words, MAGIC);
  const where = `${segment.address}@${offset}`;
  const refuse = (what: string): never => {
    throw new IpcError('ERR_IPC_INVALID_ARGUMENT',
      `${kind}.create at ${where} would destroy ${what}. Use another offset, or stop its users first ` +
      `(to reuse the bytes deliberately, clear them with segment.write(Buffer.alloc(16), ${offset})).`, { address: segment.address });
  };
  const other = kind === 'Mutex' ? SEMAPHORE_MAGIC : MUTEX_MAGIC;
  if (magic === other) refuse(`the ${kind === 'Mutex' ? 'semaphore' : 'mutex'} there`);
  if (magic === MUTEX_MAGIC) {
    const state = Atomics.load(words, STATE);
    const owner = state & TID_MASK;
    if (state !== 0 && (owner === TID || native.threadAlive(owner, Atomics.load(words, START) >>> 0))) {
      refuse(`the mutex there, held by thread ${owner}`);
    }
  } else if (magic === SEMAPHORE_MAGIC && Atomics.load(words, SLEEPERS) > 0) {
    refuse(`the semaphore there, on which ${Atomics.load(words, SLEEPERS)} waiter(s) sleep`);
  }
}

/**
 * The words of `kind` at `offset` for openOrCreate: publishes the magic
 * over zeroed words (`created`), or finds the lock already there.
 */
function claimWords(segment: SharedMemory, offset: unknown, kind: LockKind): { words: Int32Array; created: boolean } {
  const words = locate(segment, offset, kind, 'openOrCreate');
  const magic = MAGIC_OF[kind];
  const clean = Atomics.load(words, 0) === 0 && Atomics.load(words, 1) === 0 && Atomics.load(words, 3) === 0;
  // Over bytes that are not zero, publish nothing: only say what is there.
  const found = clean ? Atomics.compareExchange(words, MAGIC, 0, magic) : Atomics.load(words, MAGIC);
  if (found === magic) return { words, created: false };
  if (found === 0 && clean) return { words, created: true };
  const what = found === MUTEX_MAGIC ? 'a mutex' : found === SEMAPHORE_MAGIC ? 'a semaphore' : 'bytes that are not a lock';
  throw new IpcError('ERR_IPC_INVALID_ARGUMENT',
    `${kind}.openOrCreate at ${segment.address}@${String(offset)} found ${what} there. openOrCreate initialises only zeroed bytes ` +
    '(a new segment): use another offset, or create() to initialise them deliberately.', { address: segment.address });
}

function checkLockOptions(options: LockOptions | undefined): number {
  return optionalInteger(checkOptions(options, ['spin']).spin, 'spin', 0, 10_000, DEFAULT_LOCK_SPIN_US);
}

/** The steps of a mutex's lock calls; a {@link LockCall} carries one call's state. */
interface LockProtocol {
  step(call: LockCall, timeout: number, spin: number): typeof DONE | undefined;
  start(call: LockCall, done: (result: number) => void): number;
  finish(call: LockCall, result: number): undefined;
  /** A call that slept ends without the lock (timeout, abort, close). */
  gaveUp(call: LockCall): void;
}

/** One lock call: its state, and the operation (and job) the engine runs. */
class LockCall implements Operation<typeof DONE>, Job<typeof DONE> {
  readonly job = this;
  /** Whether it slept (it then takes the lock with the waiters bit: others may sleep too). */
  waited = false;

  /**
   * `allowSelf`: the calling thread may hold the lock already (async calls
   * wait for this thread's other tasks); otherwise that is a deadlock.
   * `checkOwner`: the next attempt also takes the lock over from a dead
   * holder (a try, a call with timeout 0, or after the owner's death).
   */
  constructor(readonly protocol: LockProtocol, readonly allowSelf: boolean, public checkOwner: boolean) {}

  step(timeout: number, spin: number): typeof DONE | undefined {
    return this.protocol.step(this, timeout, spin);
  }

  start(done: (result: number) => void): number {
    return this.protocol.start(this, done);
  }

  finish(result: number): undefined {
    return this.protocol.finish(this, result);
  }

  interrupted(): undefined {
    if (this.waited) this.protocol.gaveUp(this);
    return undefined;
  }
}

/**
 * What both locks share: their words in a segment, and one lane of pending
 * waits owned by the segment (closing the segment rejects them; a lock
 * nobody waits on is not kept alive by it).
 */
abstract class SegmentLock {
  protected readonly words: Int32Array;
  protected readonly segment: SharedMemory;
  protected readonly lane: JobLane;
  readonly #offset: number;

  /** Whether this handle initialised the lock (`create`, or the `openOrCreate` that found zeroed bytes). */
  readonly created: boolean;

  protected constructor(segment: SharedMemory, words: Int32Array, offset: number, spin: number, created: boolean) {
    this.created = created;
    this.segment = segment;
    this.words = words;
    this.#offset = offset;
    this.lane = new JobLane(segment, spin);
  }

  /** `/name@offset`, for messages. */
  get address(): string {
    return `${this.segment.address}@${this.#offset}`;
  }

  protected check(what: string): void {
    this.segment.check(what);
  }

  /**
   * Closed only, for the calls that release (unlock, post): they must work on
   * a segment another process truncated, or the lock would stay taken.
   */
  protected checkOpen(what: string): void {
    if (this.segment.closed) throw this.segment.closedError(what);
  }

  /** A failed futex call: EFAULT means the words' page is past the segment's end (it was truncated). */
  protected futexError(r: number): IpcError {
    return r === E.EFAULT ? this.segment.truncatedError('wait') : systemError(r, 'futex', this.address);
  }

  protected corrupted(word: string, value: number): IpcError {
    return new IpcError('ERR_IPC_CORRUPTED',
      `${this.address}: the ${word} word holds ${value}, a value the protocol never writes; another process overwrote the lock. ` +
      'Re-initialise it with create() once no process uses it.', { address: this.address });
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
 * import { Mutex, PosixSharedMemory } from 'ipckit';
 *
 * // Every process that opens the segment shares the mutex and the counter.
 * const shm = PosixSharedMemory.openOrCreate('/ipckit-example-mutex', { size: 64 });
 * try {
 *   const mutex = Mutex.openOrCreate(shm, 0); // bytes 0 to 15
 *   const counter = new Int32Array(shm.buffer, Mutex.SIZE, 1);
 *   await mutex.withLock(() => {
 *     counter[0] = (counter[0] ?? 0) + 1;
 *   });
 *   console.log(counter[0]); // 1 (more if other processes counted too)
 * } finally {
 *   shm.close();
 *   PosixSharedMemory.unlink('/ipckit-example-mutex');
 * }
 * ```
 */
export class Mutex extends SegmentLock {
  /** Bytes a mutex occupies. */
  static readonly SIZE = 16;

  private constructor(segment: SharedMemory, words: Int32Array, offset: number, spin: number, created: boolean) {
    super(segment, words, offset, MULTI_CPU ? spin : 0, created);
  }

  /**
   * Initialises a mutex at `offset` (a multiple of 4) of `segment`: unlocked
   * and consistent. Refuses to overwrite a lock in use (a semaphore, a mutex
   * a live thread holds).
   */
  static create(segment: SharedMemory, offset: number, options?: LockOptions): Mutex {
    const spin = checkLockOptions(options);
    const words = locate(segment, offset, 'Mutex', 'create');
    checkReplaceable(words, segment, offset, 'Mutex');
    Mutex.#init(words);
    Atomics.store(words, MAGIC, MUTEX_MAGIC);
    return new Mutex(segment, words, offset, spin, true);
  }

  /** Uses the mutex another process created at `offset` of `segment`. */
  static open(segment: SharedMemory, offset: number, options?: LockOptions): Mutex {
    const spin = checkLockOptions(options);
    return new Mutex(segment, existingWords(segment, offset, 'Mutex'), offset, spin, false);
  }

  /**
   * Uses the mutex at `offset` of `segment`, initialising it if the bytes
   * are still zero (a new segment). Safe when many processes call it at
   * once: exactly one initialises, the others wait for it. `created` tells
   * which. Bytes that hold anything else are refused. See the
   * {@link Mutex | class example}.
   */
  static openOrCreate(segment: SharedMemory, offset: number, options?: LockOptions): Mutex {
    const spin = checkLockOptions(options);
    const { words, created } = claimWords(segment, offset, 'Mutex');
    return new Mutex(segment, words, offset, spin, created);
  }

  static #init(words: Int32Array): void {
    Atomics.store(words, STATE, 0);
    Atomics.store(words, START, 0);
    Atomics.store(words, STATUS, CONSISTENT);
  }

  /** Whether some thread holds the lock now. */
  get locked(): boolean {
    this.check('locked');
    return Atomics.load(this.words, STATE) !== 0;
  }

  /** The holder's thread id (its pid for a single-threaded process), or null. */
  get owner(): number | null {
    this.check('owner');
    const state = Atomics.load(this.words, STATE);
    return state === 0 ? null : state & TID_MASK;
  }

  /**
   * @internal Whether a live thread holds the lock now (one that died
   * holding it leaves it to whoever takes it next).
   */
  heldByLiveThread(): boolean {
    const state = Atomics.load(this.words, STATE);
    return state !== 0 && native.threadAlive(state & TID_MASK, Atomics.load(this.words, START) >>> 0);
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
    // The uncontended path: one compare-and-swap.
    if (options === undefined && !this.lane.busy) {
      try {
        // Closed, or flagged truncated: refused before the shared word is touched.
        this.check('lock');
        if (this.#acquire(true, false, false)) return resolvedNow(undefined);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return run(this.lane, 'lock', options, [], (o) => this.#lockOp(true, o.timeout === 0));
  }

  /**
   * Takes the lock, blocking the calling thread while another holds it.
   * Fails with `ERR_IPC_DEADLOCK` if this thread already holds it.
   */
  lockSync(options?: SyncWaitOptions): void {
    if (options === undefined && !this.lane.busy) {
      // Closed, or flagged truncated: refused before the shared word is touched (the lock would stay taken).
      this.check('lockSync');
      if (this.#acquire(false, false, false)) return;
    }
    runSync(this.lane, 'lockSync', options, [], (o) => this.#lockOp(false, o.timeout === 0));
  }

  /**
   * Takes the lock if it is free now (or its holder is dead: then it throws
   * `ERR_IPC_OWNER_DIED`, holding the lock); `false` if another holds it (or
   * earlier lock() calls of this thread are waiting).
   */
  tryLock(): boolean {
    return tryRun(this.lane, 'tryLock', undefined, [], () => this.#lockOp(true, true)) !== undefined;
  }

  /**
   * Releases the lock. Fails with `ERR_IPC_NOT_OWNER` unless the calling
   * thread holds it. After a takeover that was not acknowledged with
   * {@link markConsistent}, this makes the mutex not recoverable.
   */
  unlock(): void {
    this.checkOpen('unlock');
    const w = this.words;
    // Plain reads and writes suffice while we hold the lock; the exchange
    // that releases it publishes them (it is sequentially consistent).
    const state = w[STATE]!;
    if ((state & TID_MASK) !== TID) throw this.#notOwner('unlock', state);
    const abandoned = w[STATUS] === OWNER_DIED;
    if (abandoned) w[STATUS] = NOT_RECOVERABLE;
    // Clear the start time first: a checker that then sees a new owner's tid
    // reads 0 ("being recorded"), never this owner's start time.
    w[START] = 0;
    const previous = Atomics.exchange(w, STATE, 0);
    // Everyone must learn that the mutex is gone; otherwise one waiter is enough.
    if ((previous & WAITERS) !== 0) native.futexWake(w, STATE, abandoned ? SEM_VALUE_MAX : 1);
  }

  /** Acknowledges a takeover from a dead holder: the data is repaired, the mutex is usable again. */
  markConsistent(): void {
    this.checkOpen('markConsistent');
    const state = Atomics.load(this.words, STATE);
    if ((state & TID_MASK) !== TID) throw this.#notOwner('markConsistent', state);
    Atomics.compareExchange(this.words, STATUS, OWNER_DIED, CONSISTENT);
  }

  /** Runs `fn` holding the lock and always unlocks, also when `fn` throws. */
  async withLock<R>(fn: () => R | Promise<R>, options?: WithLockOptions): Promise<R> {
    // Checked before the lock is taken: a bad argument must not leave it held.
    if (typeof fn !== 'function') throw invalidArgument('fn', fn, 'a function to run holding the lock');
    const opts = checkOptions(options, ['timeout', 'signal', 'onOwnerDied']);
    if (opts.onOwnerDied !== undefined && typeof opts.onOwnerDied !== 'function') throw invalidArgument('onOwnerDied', opts.onOwnerDied, 'a function');
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

  /** One lock call (see {@link LockCall} for the flags). */
  #lockOp(allowSelf: boolean, checkOwner: boolean): Operation<typeof DONE> {
    return new LockCall(this.#protocol, allowSelf, checkOwner);
  }

  /** The steps of a lock call, written once per mutex (a call only carries its state). */
  readonly #protocol: LockProtocol = {
    step: (call, timeout, spin) => {
      if (this.#acquire(call.allowSelf, call.waited, call.checkOwner) || this.#spinAcquire(spin, call.allowSelf)) return DONE;
      call.checkOwner = false;
      if (spin !== 0 && this.#spinWait(spinWithin(spin, timeout), call)) return DONE;
      if (timeout === 0) return undefined;
      const c = this.#markWaiting();
      if (c === 0) return this.#acquire(call.allowSelf, call.waited, false) ? DONE : undefined;
      call.waited = true;
      // No spin here: it was spent above, before the waiters bit was set.
      const r = native.futexWait(this.words, STATE, c, timeout < 0 ? WATCH_SLICE_MS : Math.min(timeout, WATCH_SLICE_MS), 0);
      if (r < 0 && r !== E.EAGAIN) throw this.futexError(r);
      // A whole slice asleep: the owner may be dead.
      return this.#acquire(call.allowSelf, true, r === E.EAGAIN) ? DONE : undefined;
    },
    start: (call, done) => {
      call.waited = true;
      const c = this.#markWaiting();
      // A free lock (0) must not be slept on: -1 never matches, so the wait ends at once.
      return native.futexWaitAsync(this.words, STATE, c === 0 ? -1 : c, c & TID_MASK, Atomics.load(this.words, START) >>> 0, done);
    },
    finish: (call, r) => {
      if (r < 0) throw this.futexError(r);
      // 1: the owner the thread watched is gone.
      call.checkOwner = r === 1;
      return undefined;
    },
    gaveUp: () => {
      // An unlock wakes one sleeper, and this call may have been that one: it leaves without the lock, so it
      // passes the wake-up on, or the others would sleep on a free lock until their watch slice ends. A held
      // lock gets the waiters bit back (its unlock then wakes the next); a free one wakes a sleeper now.
      // Words that are no longer a mutex (re-created as something else meanwhile) are left as they are.
      if (this.segment.closed || this.words[MAGIC] !== MUTEX_MAGIC) return;
      if (this.#markWaiting() === 0) native.futexWake(this.words, STATE, 1);
    },
  };

  /**
   * Takes the lock if it is free, or (with `checkOwner`) if its owner is
   * dead. Throws for a takeover (ERR_IPC_OWNER_DIED, holding the lock), a
   * lock that is not recoverable, a deadlock and a corrupted mutex.
   */
  #acquire(allowSelf: boolean, waited: boolean, checkOwner: boolean): boolean {
    const w = this.words;
    const c = Atomics.compareExchange(w, STATE, 0, waited ? TID | WAITERS : TID);
    if (c === 0) {
      // Checked before the call: a truncation flagged now hit these very words, so the lock taken is private memory.
      this.check('lock');
      w[START] = MY_START;
      this.#checkStatus();
      return true;
    }
    const owner = c & TID_MASK;
    if (owner === TID) {
      if (!allowSelf) throw this.#deadlock();
      return false;
    }
    if (!checkOwner || native.threadAlive(owner, Atomics.load(w, START) >>> 0)) return false;
    // The owner is gone: take the lock over, unless someone else just did.
    if (Atomics.compareExchange(w, STATE, c, TID | WAITERS) !== c) return false;
    w[START] = MY_START;
    this.#checkStatus();
    Atomics.store(w, STATUS, OWNER_DIED);
    throw this.#ownerDied();
  }

  /** After taking the lock: refuses a mutex that is not recoverable or was overwritten. */
  #checkStatus(): void {
    const w = this.words;
    const status = w[STATUS]!;
    const magic = w[MAGIC]!;
    if (status === CONSISTENT && magic === MUTEX_MAGIC) return;
    if (status === OWNER_DIED && magic === MUTEX_MAGIC) return;
    // Give it back, waking everyone so they learn it too.
    w[START] = 0;
    Atomics.store(w, STATE, 0);
    native.futexWake(w, STATE, SEM_VALUE_MAX);
    if (magic !== MUTEX_MAGIC) throw this.corrupted('magic', magic);
    if (status === NOT_RECOVERABLE) throw this.#notRecoverable();
    throw this.corrupted('status', status);
  }

  /** A short lock-free spin: a holder on another CPU often lets go within a few hundred nanoseconds. */
  #spinAcquire(spin: number, allowSelf: boolean): boolean {
    if (spin === 0) return false;
    const w = this.words;
    for (let i = 0; i < JS_SPIN; i++) {
      if (Atomics.load(w, STATE) === 0 && this.#acquire(allowSelf, false, false)) return true;
    }
    return false;
  }

  /**
   * Spins for up to `spin` µs watching the word, without announcing a
   * waiter, and takes the lock whenever it sees it free. Only a waiter that
   * is about to sleep sets WAITERS: a holder that unlocks while others merely
   * spin then makes no system call (it wakes nobody), and keeps the lock's
   * cache line to itself between hand-offs. A spinner that saw the bit
   * (others sleep) takes the lock with it, as a waiter that slept does: an
   * unlock clears the bit and wakes only one sleeper, so its unlock must
   * wake the next, whether or not the one woken got there first.
   */
  #spinWait(spin: number, call: LockCall): boolean {
    const w = this.words;
    const end = performance.now() + spin / 1000;
    let sleepers = false;
    for (;;) {
      const c = Atomics.load(w, STATE);
      if (c !== 0) {
        sleepers ||= (c & WAITERS) !== 0;
        const left = (end - performance.now()) * 1000;
        if (left <= 0) return false;
        native.futexWait(w, STATE, c, 0, left);
      }
      if (this.#acquire(call.allowSelf, call.waited || sleepers, false)) return true;
      if (performance.now() >= end) return false;
    }
  }

  /** Sets WAITERS on a held lock before sleeping; the state to sleep on, or 0 if the lock is free. */
  #markWaiting(): number {
    const w = this.words;
    for (;;) {
      const c = Atomics.load(w, STATE);
      if (c === 0 || (c & WAITERS) !== 0) return c;
      if (Atomics.compareExchange(w, STATE, c, c | WAITERS) === c) return c | WAITERS;
    }
  }

  #deadlock(): IpcError {
    return new IpcError('ERR_IPC_DEADLOCK', `lockSync on ${this.address}: this thread already holds the mutex, so waiting would never end. ` +
      'Unlock it first (or use the async lock(), which waits for this thread\'s other tasks).', { address: this.address });
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
 * import { PosixSharedMemory, Semaphore } from 'ipckit';
 *
 * const shm = PosixSharedMemory.create('/ipckit-example-slots', { size: 64 });
 * try {
 *   const slots = Semaphore.create(shm, 0, { value: 3 }); // three at a time
 *   await slots.wait({ timeout: 1000 });
 *   try {
 *     console.log('in; free slots:', slots.value); // in; free slots: 2
 *   } finally {
 *     slots.post();
 *   }
 * } finally {
 *   shm.close();
 *   PosixSharedMemory.unlink('/ipckit-example-slots');
 * }
 * ```
 */
export class Semaphore extends SegmentLock {
  /** Bytes a semaphore occupies. */
  static readonly SIZE = 16;

  private constructor(segment: SharedMemory, words: Int32Array, offset: number, spin: number, created: boolean) {
    super(segment, words, offset, spin, created);
  }

  /**
   * Initialises a semaphore at `offset` (a multiple of 4) with `value`
   * (default 0). Refuses to overwrite a lock in use (a mutex, a semaphore
   * waiters sleep on).
   */
  static create(segment: SharedMemory, offset: number, options?: LockOptions & { value?: number }): Semaphore {
    const opts = checkOptions(options, ['spin', 'value']);
    const spin = checkLockOptions({ spin: opts.spin });
    const value = optionalInteger(opts.value, 'value', 0, SEM_VALUE_MAX, 0);
    const words = locate(segment, offset, 'Semaphore', 'create');
    checkReplaceable(words, segment, offset, 'Semaphore');
    Semaphore.#init(words, value);
    Atomics.store(words, MAGIC, SEMAPHORE_MAGIC);
    return new Semaphore(segment, words, offset, spin, true);
  }

  /** Uses the semaphore another process created at `offset` of `segment`. */
  static open(segment: SharedMemory, offset: number, options?: LockOptions): Semaphore {
    const spin = checkLockOptions(options);
    return new Semaphore(segment, existingWords(segment, offset, 'Semaphore'), offset, spin, false);
  }

  /**
   * Uses the semaphore at `offset` of `segment`, initialising it with
   * `value` if the bytes are still zero (a new segment). Safe when many
   * processes call it at once: exactly one initialises, the others wait for
   * it. `created` tells which. Bytes that hold anything else are refused.
   */
  static openOrCreate(segment: SharedMemory, offset: number, options?: LockOptions & { value?: number }): Semaphore {
    const opts = checkOptions(options, ['spin', 'value']);
    const spin = checkLockOptions({ spin: opts.spin });
    const value = optionalInteger(opts.value, 'value', 0, SEM_VALUE_MAX, 0);
    const { words, created } = claimWords(segment, offset, 'Semaphore');
    const semaphore = new Semaphore(segment, words, offset, spin, created);
    if (created && value > 0) semaphore.post(value);
    return semaphore;
  }

  static #init(words: Int32Array, value: number): void {
    Atomics.store(words, COUNT, value);
    Atomics.store(words, SLEEPERS, 0);
    Atomics.store(words, STATUS, 0);
  }

  /** The current count. */
  get value(): number {
    this.check('value');
    return Atomics.load(this.words, COUNT);
  }

  /** Decrements the count, waiting while it is 0. Never blocks the event loop. */
  wait(options?: WaitOptions): Promise<void> {
    return run(this.lane, 'wait', options, [], () => this.#waitOp);
  }

  /** Decrements the count, blocking the calling thread while it is 0. */
  waitSync(options?: SyncWaitOptions): void {
    // A count above 0 with nothing of this thread waiting: taken at once, as lockSync takes a free lock.
    if (options === undefined && !this.lane.busy) {
      // Closed, or flagged truncated: refused before a unit of the shared count is taken.
      this.check('waitSync');
      if (this.#take()) return;
    }
    runSync(this.lane, 'waitSync', options, [], () => this.#waitOp);
  }

  /** Decrements the count if it is positive; `false` if it is 0 (or earlier wait() calls of this thread are waiting). */
  tryWait(): boolean {
    if (!this.lane.busy) {
      this.check('tryWait');
      return this.#take();
    }
    return tryRun(this.lane, 'tryWait', undefined, [], () => this.#waitOp) !== undefined;
  }

  /** Increments the count by `n` (default 1), waking as many waiters. */
  post(n = 1): void {
    this.checkOpen('post');
    checkInteger(n, 'n', 1, SEM_VALUE_MAX);
    const w = this.words;
    for (;;) {
      const c = Atomics.load(w, COUNT);
      if (c < 0) throw this.corrupted('count', c);
      if (c > SEM_VALUE_MAX - n) {
        throw new IpcError('ERR_IPC_LIMIT', `post on ${this.address}: the count ${c} + ${n} would exceed SEM_VALUE_MAX (${SEM_VALUE_MAX}).`, { address: this.address });
      }
      if (Atomics.compareExchange(w, COUNT, c, c + n) === c) break;
    }
    // Any sleeper count but 0 wakes: a word another process wrote must not silence the wake-ups.
    if (Atomics.load(w, SLEEPERS) !== 0) native.futexWake(w, COUNT, n);
  }

  /** A wait: it carries no state of its own, so every call shares this one. */
  readonly #waitOp: Operation<typeof DONE> = (() => {
    const w = this.words;
    return {
      step: (timeout: number, spin: number) => {
        if (this.#take()) return DONE;
        // Spinning is not sleeping: a post meanwhile must not pay for a wake-up, so SLEEPERS counts this call only once it sleeps.
        if (spin !== 0 && this.#spinTake(spinWithin(spin, timeout))) return DONE;
        if (timeout === 0) return undefined;
        Atomics.add(w, SLEEPERS, 1);
        // In slices: a post whose wake-up went nowhere (a sleepers word another process overwrote) is still seen.
        const r = native.futexWait(w, COUNT, 0, timeout < 0 ? WATCH_SLICE_MS : Math.min(timeout, WATCH_SLICE_MS), 0);
        Atomics.sub(w, SLEEPERS, 1);
        if (r < 0 && r !== E.EAGAIN) throw this.futexError(r);
        return this.#take() ? DONE : undefined;
      },
      job: {
        start: (done: (result: number) => void) => {
          Atomics.add(w, SLEEPERS, 1);
          return native.futexWaitAsync(w, COUNT, 0, 0, 0, (r) => {
            Atomics.sub(w, SLEEPERS, 1);
            done(r);
          });
        },
        finish: (r: number) => {
          if (r < 0) throw this.futexError(r);
          return undefined;
        },
      },
    };
  })();

  /** Spins for up to `spin` µs watching the count, taking one whenever it is positive. */
  #spinTake(spin: number): boolean {
    const end = performance.now() + spin / 1000;
    for (;;) {
      const left = (end - performance.now()) * 1000;
      if (left <= 0) return false;
      native.futexWait(this.words, COUNT, 0, 0, left);
      if (this.#take()) return true;
    }
  }

  /** Takes one if the count is positive. A negative count is a corrupted semaphore: waiting on it would never end. */
  #take(): boolean {
    const w = this.words;
    let taken = false;
    for (let c = Atomics.load(w, COUNT); c !== 0; c = Atomics.load(w, COUNT)) {
      if (c < 0) throw this.corrupted('count', c);
      if (Atomics.compareExchange(w, COUNT, c, c - 1) === c) {
        taken = true;
        break;
      }
    }
    // A truncation flagged during the call hit the count's page: what was read is private zeros.
    this.check('wait');
    return taken;
  }
}
