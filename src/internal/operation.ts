/**
 * The one engine behind every operation that can wait.
 *
 * A mechanism declares an {@link Operation}: a bounded attempt (`step`) and,
 * for waits without a descriptor, a waiter-thread job. The engine turns it
 * into the blocking triple:
 *
 * - {@link run}: `op()`, a Promise that never blocks the event loop;
 * - {@link runSync}: `opSync()`, which blocks the calling thread;
 * - {@link tryRun}: `tryOp()`, which never waits.
 *
 * and owns, once for all of them: strict options, the timeout rule
 * (`undefined` forever, `0` try once, `n` ms), aborts, caller order
 * (first come, first served), closing, and the only deadline loop.
 *
 * Pending async calls live in {@link Lane}s, the queues of a handle:
 * - a {@link NotifyLane} retries its calls in order when woken: by a
 *   descriptor's readiness ({@link ReadinessLane}) or by its owner (a
 *   signal listener fed by the dispatcher);
 * - a {@link JobLane} gives the first call of each key a waiter-thread job.
 *
 * @internal
 * @module
 */
import { isMainThread } from 'node:worker_threads';
import { E, IpcError, limitError } from '../errors.js';
import { native } from '../native.js';
import { type ReadinessSubscriber, type Watch } from './readiness.js';
import { checkOptions } from './validate.js';
import { abortError, checkSignal, checkTimeout, closedError, timeoutError } from './wait.js';

/**
 * One bounded attempt: spin up to `spinUs`, then sleep up to `timeoutMs`
 * (0: not at all; -1: as long as it takes). A result, or `undefined` when
 * there is none yet ({@link DONE} for operations that have no result).
 * Throwing fails the call.
 */
export type Step<T> = (timeoutMs: number, spinUs: number) => T | undefined;

/** The result of an operation that produces none (a send): the call resolves to `undefined`. */
export const DONE: unique symbol = Symbol('done');

/** What a call of an operation yielding `T` resolves to. */
export type Outcome<T> = T extends typeof DONE ? void : T;

function outcome<T>(value: T): Outcome<T> {
  return (value === DONE ? undefined : value) as Outcome<T>;
}

/** A blocking call run on a waiter thread, for waits without a descriptor. */
export interface Job<T> {
  /** Starts the call; `done(result, extra)` runs on the event loop when it ends. Returns the job id. */
  start(done: (result: number, extra?: number) => void): number;
  /** The outcome of a job that ended: a value, or `undefined` to attempt again. May throw. */
  finish(result: number, extra?: number): T | undefined;
}

/** What a mechanism declares for one call. */
export interface Operation<T> {
  step: Step<T>;
  /** How the call waits in a {@link JobLane}. */
  job?: Job<T>;
  /** In a JobLane, calls with different keys wait independently (System V type selectors). */
  key?: unknown;
  /**
   * Called when a timeout, an abort or the owner's close ends the call
   * before it completed, before the call is settled: an operation that
   * did part of its work (a stream send that wrote part of a message)
   * deals with that part here, and may return the error to report instead.
   */
  interrupted?(error: IpcError): IpcError | undefined;
  /**
   * A batch that did part of its work when a timeout, an abort or the
   * owner's close ended it: what the call resolves with instead of
   * rejecting (the count of messages that went in), or `undefined` when
   * nothing was done (the call then rejects as usual).
   */
  partial?(): T | undefined;
}

/** How an interrupted call ends: with its partial result, or with the error. */
function interruption(op: Operation<unknown>, error: IpcError): { value: unknown; failed: boolean } {
  const partial = op.partial?.();
  if (partial !== undefined) return { value: partial, failed: false };
  return { value: op.interrupted?.(error) ?? error, failed: true };
}

/** What owns lanes: something that can be closed and has an address for messages. */
export interface LaneOwner {
  readonly address: string;
  /** Throws `ERR_IPC_CLOSED` (or the owner's own error) once closed. */
  check(what: string): void;
  /** A lane started or stopped holding calls; the owner rejects busy lanes when it closes. */
  laneBusy(lane: Lane, busy: boolean): void;
}

/** How long one step of a *Sync call may sleep: in a worker, short enough that `terminate()` takes effect. */
const WORKER_SLICE_MS = 100;

function sliceOf(leftMs: number): number {
  if (isMainThread) return leftMs === Infinity ? -1 : leftMs;
  return Math.min(leftMs, WORKER_SLICE_MS);
}

/**
 * One pending async call: its promise, timeout timer and abort listener.
 * When the timer or the signal fires, `interrupt(error)` runs and the lane
 * settles the call (at once, or once its waiter thread confirms).
 */
export class Pending<T> {
  readonly promise: Promise<T>;
  #resolve!: (value: T) => void;
  #reject!: (reason: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | undefined;
  #settled = false;

  /** `left`: ms until the timeout, if part of it was spent before the call queued (its first attempt spun). */
  constructor(what: string, address: string, timeout: number, signal: AbortSignal | undefined,
    interrupt: (error: IpcError) => void, left = timeout) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    if (timeout !== Infinity) {
      // Node's timers keep the event loop's whole-millisecond clock and truncate a fractional delay: a timer can
      // fire up to 2 ms before the time asked (1.5 ms: at once). The call ends only once performance.now() says so.
      const deadline = performance.now() + left;
      const arm = (ms: number): void => {
        this.#timer = setTimeout(() => {
          const rest = deadline - performance.now();
          if (rest > 0) arm(rest);
          else interrupt(timeoutError(what, address, timeout));
        }, Math.max(Math.ceil(ms), 1));
      };
      arm(left);
    }
    if (signal !== undefined) {
      this.#signal = signal;
      this.#onAbort = () => interrupt(abortError(what, address, signal));
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  get settled(): boolean {
    return this.#settled;
  }

  resolve(value: T): void {
    if (this.#finish()) this.#resolve(value);
  }

  reject(reason: unknown): void {
    if (this.#finish()) this.#reject(reason);
  }

  #finish(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#onAbort !== undefined) this.#signal?.removeEventListener('abort', this.#onAbort);
    return true;
  }
}

interface Entry {
  what: string;
  op: Operation<unknown>;
  pending: Pending<unknown>;
  /** Settled and out of the queue (removed lazily: see {@link Lane.settle}). */
  done: boolean;
  /** Inside its step or its job's finish: an interrupt now only records its reason. */
  busy: boolean;
  /** Why the call was interrupted while it could not be settled at once. */
  reason?: IpcError | undefined;
  /** JobLane: the job running for this call. */
  job?: number | undefined;
}

/**
 * A queue of pending calls of one handle, served first come, first served.
 * Calls leave it in any order (timeouts, aborts); a settled call is only
 * marked and dropped once it reaches the front, so settling any number of
 * calls costs time in proportion to their number.
 */
export abstract class Lane {
  readonly owner: LaneOwner;
  /** Microseconds a call's first attempt spins before it queues. */
  readonly spin: number;
  /**
   * Microseconds the retries of queued calls may still spin in the pass
   * that serves them now: a lane's budget for each wake-up (readiness, a
   * waiter thread's result), shared by every call the pass serves; none
   * while a try or sync call serves the queue on its way, and none
   * outside a pass (see batchSend).
   */
  retrySpin = 0;
  readonly #entries: Entry[] = [];
  /** Entries before this index are settled. */
  #head = 0;
  #live = 0;

  constructor(owner: LaneOwner, spin: number) {
    this.owner = owner;
    this.spin = spin;
  }

  /** Whether calls are waiting (a new call must not overtake them). */
  get busy(): boolean {
    return this.#live > 0;
  }

  /**
   * Whether calls that a new call of `key` must not overtake are waiting:
   * any call, or, for a keyed call, the calls of its key (calls of
   * different keys wait independently: System V type selectors, semaphore
   * operations).
   */
  busyFor(key: unknown): boolean {
    return key === undefined ? this.busy : this.#live > 0 && this.first(key, true) !== undefined;
  }

  /** @internal Queues a call whose first attempt found nothing. */
  enqueue<T>(what: string, op: Operation<T>, timeout: number, signal: AbortSignal | undefined, left = timeout): Promise<T> {
    const entry: Entry = {
      what,
      op: op as Operation<unknown>,
      done: false,
      busy: false,
      pending: new Pending<unknown>(what, this.owner.address, timeout, signal, (err) => {
        // An interrupt that lands while the call is being served waits for the outcome: a result wins.
        if (entry.busy) entry.reason ??= err;
        else if (!entry.done) this.interrupted(entry, err);
      }, left),
    };
    this.#entries.push(entry);
    if (this.#live++ === 0) this.owner.laneBusy(this, true);
    try {
      this.queued(entry);
    } catch (err) {
      this.settle(entry, err, true);
    }
    return entry.pending.promise as Promise<T>;
  }

  /** Rejects every queued call with `error` (the owner closed). */
  rejectAll(error: IpcError): void {
    for (const entry of this.#entries.slice(this.#head)) {
      if (entry.done) continue;
      if (entry.busy) entry.reason ??= error;
      else this.interrupted(entry, error);
    }
  }

  /** Serves what waiting calls can take now, synchronously (before a sync or try call looks at `busy`). */
  serve(): void { /* Only a lane that retries calls itself can. */ }

  /** Resolves once no waiter thread works for this lane any more. */
  settledJobs(): Promise<void> {
    return Promise.resolve();
  }

  /** The calls still queued, in order. */
  /** The first call still queued (of `key`, when given). */
  protected first(key?: unknown, byKey = false): Entry | undefined {
    const entries = this.#entries;
    for (let i = this.#head; i < entries.length; i++) {
      const entry = entries[i]!;
      if (!entry.done && (!byKey || entry.op.key === key)) return entry;
    }
    return undefined;
  }

  /** Takes `entry` out and settles it: with a value, or with an error when `failed`. */
  protected settle(entry: Entry, outcome: unknown, failed: boolean): void {
    if (entry.done) return;
    entry.done = true;
    const entries = this.#entries;
    while (this.#head < entries.length && entries[this.#head]!.done) this.#head++;
    // Drop the settled front now and then, never one by one (that would be quadratic).
    if (this.#head > 64 && this.#head * 2 > entries.length) {
      entries.splice(0, this.#head);
      this.#head = 0;
    }
    if (failed) entry.pending.reject(outcome);
    else entry.pending.resolve(outcome === DONE ? undefined : outcome);
    if (--this.#live === 0) {
      entries.length = 0;
      this.#head = 0;
      this.owner.laneBusy(this, false);
      this.emptied();
    }
  }

  /**
   * Runs `produce` for `entry` (its step, or its job's finish) and settles
   * it with the outcome: true if it settled. A value wins over an interrupt
   * that came meanwhile (a message taken is never dropped); nothing yet
   * settles an interrupted call with its reason.
   */
  protected serveWith(entry: Entry, produce: () => unknown): boolean {
    let value: unknown;
    let failed = false;
    entry.busy = true;
    try {
      value = produce();
    } catch (err) {
      value = err;
      failed = true;
    } finally {
      entry.busy = false;
    }
    if (failed || value !== undefined) this.settle(entry, value, failed);
    else if (entry.reason !== undefined) this.interrupted(entry, entry.reason);
    return entry.done;
  }

  /** One non-blocking attempt for `entry`: true if it settled. Never on a closed owner (its memory may be gone). */
  protected attempt(entry: Entry): boolean {
    return this.serveWith(entry, () => this.retry(entry));
  }

  protected retry(entry: Entry): unknown {
    this.owner.check(entry.what);
    return entry.op.step(0, 0);
  }

  /** A call was queued (it is last). */
  protected abstract queued(entry: Entry): void;
  /** A call's timeout, abort or the owner's close came first. */
  protected abstract interrupted(entry: Entry, error: IpcError): void;
  /** The last call left. */
  protected abstract emptied(): void;
}

/**
 * Calls retried in order whenever the lane is woken: by readiness of a
 * descriptor, or by whatever feeds the owner. `arm()` runs when the first
 * call queues, `disarm()` once the lane has stayed empty until the callers
 * it served had their turn (a request/reply loop that waits again at once
 * finds it still armed).
 */
export class NotifyLane extends Lane {
  readonly #arm: () => void;
  readonly #disarm: () => void;
  #armed = false;
  #waking = false;
  #again = false;
  #idleCheck = false;

  constructor(owner: LaneOwner, spin: number, arm: () => void = () => undefined, disarm: () => void = () => undefined) {
    super(owner, spin);
    this.#arm = arm;
    this.#disarm = disarm;
  }

  override serve(): void {
    this.#pass(0);
  }

  /** Retries the queued calls in order until one has to keep waiting. */
  wake(): void {
    this.#pass(this.spin);
  }

  /** A pass over the queued calls, whose retries may spin `budget` µs in all. */
  #pass(budget: number): void {
    if (this.#waking) {
      this.#again = true;
      return;
    }
    this.#waking = true;
    this.retrySpin = budget;
    try {
      do {
        this.#again = false;
        for (let entry = this.first(); entry !== undefined && this.attempt(entry); entry = this.first()) { /* served in order */ }
      } while (this.#again);
    } finally {
      this.#waking = false;
      this.retrySpin = 0;
    }
  }

  protected queued(): void {
    if (this.#armed) return;
    this.#arm();
    this.#armed = true;
  }

  protected interrupted(entry: Entry, error: IpcError): void {
    const end = interruption(entry.op, error);
    this.settle(entry, end.value, end.failed);
  }

  protected emptied(): void {
    if (this.#idleCheck) return;
    this.#idleCheck = true;
    queueMicrotask(() => process.nextTick(() => {
      this.#idleCheck = false;
      if (this.busy || !this.#armed) return;
      this.#armed = false;
      this.#disarm();
    }));
  }
}

/** A NotifyLane woken by a descriptor's readiness for `events`. */
export class ReadinessLane extends NotifyLane implements ReadinessSubscriber {
  constructor(owner: LaneOwner, spin: number, watch: Watch, events: number) {
    super(owner, spin, () => watch.subscribe(this, events), () => watch.unsubscribe(this));
  }

  onReady(): void {
    this.wake();
  }
}

/**
 * Calls that wait on waiter threads: the first call of each key runs a job;
 * the others wait their turn behind it, so calls are served in order and
 * one handle occupies at most one thread per key.
 */
export class JobLane extends Lane {
  #running = 0;
  #drained: (() => void) | undefined;

  /** Whether a waiter thread works for this lane now (until its job's result is delivered). */
  get jobsRunning(): boolean {
    return this.#running > 0;
  }

  override settledJobs(): Promise<void> {
    if (this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.#drained;
      this.#drained = () => {
        previous?.();
        resolve();
      };
    });
  }

  protected queued(entry: Entry): void {
    if (this.first(entry.op.key, true) === entry) this.#start(entry);
  }

  protected interrupted(entry: Entry, error: IpcError): void {
    if (entry.job === undefined) {
      const end = interruption(entry.op, error);
      this.settle(entry, end.value, end.failed);
      return;
    }
    // The job may complete before it notices: its result then wins.
    entry.reason ??= error;
    native.cancelJob(entry.job);
  }

  protected emptied(): void { /* Jobs end by themselves. */ }

  #start(entry: Entry): void {
    const job = entry.op.job!;
    this.#running++;
    entry.job = job.start((result, extra) => {
      entry.job = undefined;
      if (--this.#running === 0 && this.#drained !== undefined) {
        const drained = this.#drained;
        this.#drained = undefined;
        drained();
      }
      this.#ended(entry, result, extra);
    });
  }

  #ended(entry: Entry, result: number, extra: number | undefined): void {
    // A waiter thread's result is this lane's wake-up: the retries it leads to may spin one budget in all.
    this.retrySpin = this.spin;
    try {
      this.#serveEnded(entry, result, extra);
    } finally {
      this.retrySpin = 0;
    }
  }

  #serveEnded(entry: Entry, result: number, extra: number | undefined): void {
    const key = entry.op.key;
    if (result === E.ECANCELED) {
      const end = interruption(entry.op, entry.reason ?? closedError('the pending call', this.owner.address));
      this.settle(entry, end.value, end.failed);
    } else if (result === E.EAGAIN || result === E.ENOSR) {
      this.settle(entry, waiterLimitError(result, this.owner.address), true);
    } else if (!this.serveWith(entry, () => entry.op.job!.finish(result, extra) ??
      // An interrupted batch ends with what it did (partial) rather than try again on a closed owner.
      (entry.reason !== undefined && entry.op.partial !== undefined ? undefined : this.retry(entry)))) {
      // Woken, and still nothing for it (another process was first): wait again.
      this.#start(entry);
      return;
    }
    // The next call of the same key tries at once, then takes over the wait.
    for (let next = this.first(key, true); next !== undefined; next = this.first(key, true)) {
      if (!this.attempt(next)) {
        this.#start(next);
        return;
      }
    }
  }
}

/** Why a job found no waiter thread. */
function waiterLimitError(result: number, address: string): IpcError {
  if (result === E.ENOSR) {
    return limitError(result, 'pthread_create', address, `${native.maxWaiterThreads} waits without a descriptor ` +
      '(System V queues, locks) are already parked on waiter threads, ipckit\'s cap. Wait on fewer objects at once.');
  }
  return limitError(result, 'pthread_create', address, 'the kernel refused a thread for the wait: the process or its user ' +
    'reached its thread limit (ulimit -u, or pids.max of the cgroup). Raise the limit, or wait on fewer objects at once.');
}

/** The options every waiting call takes besides its own. */
const ASYNC_KEYS = ['timeout', 'signal'] as const;
const SYNC_KEYS = ['timeout'] as const;

/**
 * How long async calls of this thread may keep completing at once before
 * one lets the event loop turn, ms. Such a call resolves as a microtask, so
 * a loop like `for (;;) await q.receive()` on a queue that never empties
 * would otherwise starve timers and I/O for as long as the queue stays full.
 */
export const STARVE_MS = 1;
let turned = true;
let starved = false;
let streakStart = 0;
let streakCalls = 0;
const markTurn = (): void => { turned = true; };

/**
 * Whether calls that completed at once have held this thread's event loop
 * for more than {@link STARVE_MS} since it last turned. A turn is marked by
 * a setImmediate made when the streak starts (ref'd: the poll phase does
 * not block, so idle time never counts); the clock is read every 16 calls.
 */
export function loopStarved(): boolean {
  if (turned) {
    turned = false;
    starved = false;
    streakCalls = 0;
    streakStart = performance.now();
    setImmediate(markTurn);
    return false;
  }
  if (!starved && (++streakCalls & 15) === 0) starved = performance.now() - streakStart > STARVE_MS;
  return starved;
}

const SETTLED = Promise.resolve();

/**
 * Runs `task` (which never throws) as a microtask queued now, so before the
 * continuation of a caller that awaits a promise returned after this call.
 * A reaction to a settled promise costs about a third of Node's
 * `queueMicrotask`, which makes an async resource for each task.
 */
function soon(task: () => void): void {
  void SETTLED.then(task);
}

/**
 * The promise of a result obtained at once: resolved now, or, once the
 * event loop is starved, in its next check phase. The result is taken
 * either way (a message received, a lock held, a unit taken), so order,
 * timeouts and the *Sync calls of the thread are unaffected: only the
 * caller's continuation waits for the loop to turn. Each deferred caller
 * then gets a fresh streak, so that several loops on one thread share it.
 * `after` (see {@link run}) runs just before the caller's continuation can.
 */
export function resolvedNow<T>(value: T, after?: () => void): Promise<T> {
  if (!loopStarved()) {
    if (after !== undefined) soon(after);
    return Promise.resolve(value);
  }
  return new Promise((resolve) => setImmediate(() => {
    turned = true;
    after?.();
    resolve(value);
  }));
}

/**
 * `op()`: resolves with the result; never blocks the event loop. `tried`:
 * the caller has made the first attempt already (see {@link plainAsync}),
 * so the call queues without trying (and spinning) again. `after` runs
 * once the call has settled, before its caller's continuation can run
 * (what a call holds while pending, such as a batch, is given back):
 * in a microtask for a call settled at once, which costs far less than a
 * `.finally()` chain on every call.
 */
export function run<T, O extends object = object>(lane: Lane, what: string, options: O | undefined, keys: readonly string[],
  prepare: (opts: Partial<O>) => Operation<T>, tried = false, after?: () => void): Promise<Outcome<T>> {
  try {
    lane.owner.check(what);
    const opts = checkOptions(options as Record<string, unknown> | undefined, keys, 'options', ASYNC_KEYS);
    const timeout = checkTimeout(opts.timeout);
    const signal = checkSignal(opts.signal);
    const op = prepare(opts as Partial<O>);
    if (signal?.aborted) throw abortError(what, lane.owner.address, signal);
    // Calls already waiting go first: only an idle lane (for this key) may try at once.
    const began = timeout === Infinity ? 0 : performance.now();
    if (!tried && !lane.busyFor(op.key)) {
      // The first attempt runs on the event loop: its spin stays within a shorter timeout, as a *Sync step's does.
      const value = op.step(0, firstSpin(lane, timeout));
      if (value !== undefined) return resolvedNow(outcome(value), after);
    }
    if (timeout === 0) {
      const end = interruption(op as Operation<unknown>, timeoutError(what, lane.owner.address, 0));
      if (end.failed) throw end.value;
      return resolvedNow(outcome(end.value as T), after);
    }
    // The first attempt's spin counts against the timeout, as a *Sync call's does (Pending ends the call by
    // performance.now(), never before its timeout).
    const pending = lane.enqueue(what, op, timeout, signal, timeout === Infinity ? Infinity : timeout - (performance.now() - began)) as Promise<Outcome<T>>;
    return after === undefined ? pending : pending.finally(after);
  } catch (err) {
    if (after !== undefined) soon(after);
    return Promise.reject(err);
  }
}

/**
 * Whether an async call may make its first attempt without the engine: no
 * options and no call waiting on the lane. The caller tries once (timeout
 * 0, the lane's spin), resolves with {@link resolvedNow} what it got, and
 * otherwise goes on with {@link run}, telling it that it tried.
 */
export function plainAsync(lane: Lane, options: object | undefined): boolean {
  return options === undefined && !lane.busy;
}

/** The timeout of a step that blocks until it is done (the main thread waits in one piece). */
export const UNTIL_DONE = -1;

/**
 * Whether a `*Sync` call may skip the engine: no options, no async call of
 * this thread waiting on the lane, and the main thread (a worker waits in
 * slices, so that terminate() can end it). Such a call is one step with
 * {@link UNTIL_DONE} and the lane's spin, as {@link runSync} would make it,
 * without its operation object and closures; a step that still ends
 * without a result (it was interrupted) goes on through runSync.
 */
export function plainSync(lane: Lane, options: object | undefined): boolean {
  return options === undefined && isMainThread && !lane.busy;
}

/**
 * The rest of a plain `*Sync` call (see {@link plainSync}) whose step
 * ended without a result, for a step that runs JavaScript (a signal
 * listener's runs handlers): it waits on as {@link runSync}'s loop would,
 * with no time limit, ending as closed if that code closed the handle. It
 * does not ask again whether async calls wait on the lane, as runSync's
 * entry would: any that do were started by that code after this call
 * began, and this call, waiting already, goes first, as it does through
 * runSync.
 */
export function finishPlainSync<T>(lane: Lane, what: string, step: (timeout: number, spin: number) => T | undefined): T {
  for (;;) {
    lane.owner.check(what);
    const value = step(UNTIL_DONE, 0);
    if (value !== undefined) return value;
  }
}

/** The spin of a call's first attempt (async) or step (sync): the lane's, but no longer than a shorter timeout (ms). */
function firstSpin(lane: Lane, timeout: number): number {
  return timeout > 0 && timeout < lane.spin / 1000 ? timeout * 1000 : lane.spin;
}

/**
 * `opSync()`: blocks the calling thread until the result, the timeout, or
 * (in a worker) `terminate()`. The only deadline loop of ipckit: each step
 * sleeps at most what is left.
 */
export function runSync<T, O extends object = object>(lane: Lane, what: string, options: O | undefined, keys: readonly string[],
  prepare: (opts: Partial<O>) => Operation<T>): Outcome<T> {
  lane.owner.check(what);
  const opts = checkOptions(options as Record<string, unknown> | undefined, keys, 'options', SYNC_KEYS);
  const timeout = checkTimeout(opts.timeout);
  const op = prepare(opts as Partial<O>);
  // Async calls of this thread that wait go first. What they can take now
  // they get; if some still wait, they can only be served once this thread
  // returns to its event loop, which a blocking call would prevent.
  if (lane.busyFor(op.key)) lane.serve();
  if (lane.busyFor(op.key)) {
    if (timeout === 0) throw timeoutError(what, lane.owner.address, 0);
    throw new IpcError('ERR_IPC_DEADLOCK', `${what} on ${lane.owner.address}: async calls of this thread are waiting first, and ` +
      'they can only be served once this thread returns to its event loop. Await them, or use the async form.', { address: lane.owner.address });
  }
  const start = timeout === Infinity ? 0 : performance.now();
  // The first step's spin stays within a shorter timeout, as an async call's first attempt does.
  let value = op.step(timeout === 0 ? 0 : sliceOf(timeout), firstSpin(lane, timeout));
  while (value === undefined) {
    // Closed by code the step ran (a signal handler closing the listener it waits on): the call ends as closed.
    lane.owner.check(what);
    const left = timeout - (performance.now() - start);
    if (left <= 0) {
      const end = interruption(op as Operation<unknown>, timeoutError(what, lane.owner.address, timeout));
      if (end.failed) throw end.value;
      return outcome(end.value as T);
    }
    value = op.step(sliceOf(left), 0);
  }
  return outcome(value);
}

/** `tryOp()`: the result if there is one now; `undefined` if it would wait (or earlier calls wait). */
export function tryRun<T, O extends object = object>(lane: Lane, what: string, options: O | undefined, keys: readonly string[],
  prepare: (opts: Partial<O>) => Operation<T>): T | undefined {
  lane.owner.check(what);
  const op = prepare(checkOptions(options as Record<string, unknown> | undefined, keys) as Partial<O>);
  if (lane.busyFor(op.key)) lane.serve();
  return lane.busyFor(op.key) ? undefined : op.step(0, 0);
}

/**
 * The async iteration of a receiver: receives until the owner is closed
 * (the loop then ends quietly) or a receive fails (the loop throws).
 */
export async function* receiveUntilClosed<M>(closed: () => boolean, receive: () => Promise<M>): AsyncGenerator<M, void, undefined> {
  while (!closed()) {
    try {
      yield await receive();
    } catch (err) {
      if (err instanceof IpcError && err.code === 'ERR_IPC_CLOSED') return;
      throw err;
    }
  }
}
