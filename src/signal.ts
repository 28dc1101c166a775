/**
 * Signals: the kernel's way to notify a process of an event — from the
 * terminal (Ctrl+C is SIGINT), from the kernel, or from another process
 * (`kill`). Every signal has a default action; a process can override it
 * with its own handler.
 *
 * Node can already listen for a signal and send one. ipckit adds what it
 * cannot: the sender's pid and uid, the value carried by `sigqueue`,
 * real-time signals that queue instead of merging, waiting for a signal with
 * a timeout, process groups, and a graceful shutdown that forwards the
 * signal to the children ipckit started.
 *
 * Handlers run on the event loop, never in the async-signal context: the
 * native handler only records the signal's siginfo and wakes the loop.
 *
 * @module
 */
import { constants as osConstants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { E, IpcError, defineHints, systemError } from './errors.js';
import { lazily, native } from './native.js';
import { type ProcessRef, descendantsOf, signalProcess, spawnedChildren, stillRunning } from './internal/children.js';
import { Handle } from './internal/handle.js';
import { finishPlainSync, NotifyLane, type Operation, plainAsync, plainSync, receiveUntilClosed, resolvedNow, run, runSync, tryRun, UNTIL_DONE } from './internal/operation.js';
import {
  EPOLL_CTL, EpollSet, type PollTarget, type Pollable, READABLE, type ReadinessSubscriber, type Watch, pollTarget, watchDescriptor,
} from './internal/readiness.js';
import { descriptorError } from './internal/limits.js';
import { checkInteger, checkOptions, invalidArgument } from './internal/validate.js';
import { type SpinOptions, type SyncWaitOptions, type WaitOptions, checkSpin } from './internal/wait.js';

const S = lazily(() => native.signalConstants);
const SIGCHLD = osConstants.signals.SIGCHLD;

defineHints({
  kill: { EPERM: 'Only the owner of a process (or root) may signal it.' },
  sigqueue: { EPERM: 'Only the owner of a process (or root) may signal it.' },
});

/** A signal by name (`'SIGINT'`, `'INT'`, `'SIGRTMIN+2'`) or number; a name is checked when it is used. */
export type SignalSpec = NodeJS.Signals | `SIGRTMIN+${number}` | `SIGRTMAX-${number}` | 'SIGRTMIN' | 'SIGRTMAX' | number | (string & {});

/** What a handler learns about a delivered signal. */
export interface SignalInfo {
  /** The signal's name, such as `'SIGUSR2'` or `'SIGRTMIN+1'`. */
  signal: string;
  /** The signal's number on this system, such as 12 for SIGUSR2 on x86_64. */
  number: number;
  /**
   * The sender's pid, when the kernel reports one (not for signals from the
   * terminal). For a SIGCHLD the kernel sends, the child's pid.
   */
  pid: number | null;
  /** The sender's real uid, when the kernel reports one (for SIGCHLD, the child's). */
  uid: number | null;
  /** `si_code`: who sent it. See {@link SignalInfo.origin}. */
  code: number;
  /** `'kill'`, `'sigqueue'`, `'tkill'`, `'kernel'` (the terminal, the kernel) or `'other'`. */
  origin: 'kill' | 'sigqueue' | 'tkill' | 'kernel' | 'other';
  /** The integer sent with `sigqueue`, or null. */
  value: number | null;
}

/** A handler; what it returns is ignored, what it throws is reported as an uncaught exception. */
export type SignalHandler = (info: SignalInfo) => void;

/** Default actions, from signal(7). */
const DEFAULT_ACTIONS: Record<string, 'terminate' | 'core' | 'ignore' | 'stop' | 'continue'> = {
  SIGHUP: 'terminate', SIGINT: 'terminate', SIGQUIT: 'core', SIGILL: 'core', SIGTRAP: 'core', SIGABRT: 'core',
  SIGBUS: 'core', SIGFPE: 'core', SIGKILL: 'terminate', SIGUSR1: 'terminate', SIGSEGV: 'core', SIGUSR2: 'terminate',
  SIGPIPE: 'terminate', SIGALRM: 'terminate', SIGTERM: 'terminate', SIGSTKFLT: 'terminate', SIGCHLD: 'ignore',
  SIGCONT: 'continue', SIGSTOP: 'stop', SIGTSTP: 'stop', SIGTTIN: 'stop', SIGTTOU: 'stop', SIGURG: 'ignore',
  SIGXCPU: 'core', SIGXFSZ: 'core', SIGVTALRM: 'terminate', SIGPROF: 'terminate', SIGWINCH: 'ignore',
  SIGIO: 'terminate', SIGPWR: 'terminate', SIGSYS: 'core',
};

/** Signals a handler can never catch. */
const UNCATCHABLE = new Set(['SIGKILL', 'SIGSTOP']);

/** Signals ipckit will not handle, and why. */
const RESERVED: Record<string, string> = {
  SIGSEGV: 'a memory fault in this process: handling it in JavaScript cannot recover',
  SIGBUS: 'a memory fault in this process: handling it in JavaScript cannot recover',
  SIGFPE: 'an arithmetic fault in this process: handling it in JavaScript cannot recover',
  SIGILL: 'an illegal instruction in this process: handling it in JavaScript cannot recover',
  SIGUSR1: 'Node.js uses it to start the inspector; use SIGUSR2 or a real-time signal',
  SIGPROF: 'V8\'s profiler uses it',
};

const numberToName = new Map<number, string>();
for (const [name, value] of Object.entries(osConstants.signals)) if (!numberToName.has(value)) numberToName.set(value, name);

/** The name of signal `n`: `SIGINT`, or `SIGRTMIN+k` / `SIGRTMAX-k` for real-time signals. */
export function signalName(n: number): string {
  if (!isSignalNumber(n)) {
    throw invalidArgument('signal', n, `a signal number from 1 to ${S.SIGRTMAX}`);
  }
  if (n >= S.SIGRTMIN) return realTimeNames()[n - S.SIGRTMIN]!;
  return numberToName.get(n) ?? `SIG${n}`;
}

/** Whether `n` numbers a signal of this system (1 to SIGRTMAX). */
function isSignalNumber(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= S.SIGRTMAX;
}

/** The real-time signals' names, from SIGRTMIN (made once: every delivery names its signal). */
let rtNames: string[] | undefined;
function realTimeNames(): string[] {
  rtNames ??= Array.from({ length: S.SIGRTMAX - S.SIGRTMIN + 1 }, (_, fromMin) => {
    const fromMax = S.SIGRTMAX - S.SIGRTMIN - fromMin;
    if (fromMin === 0) return 'SIGRTMIN';
    if (fromMax === 0) return 'SIGRTMAX';
    return fromMin <= fromMax ? `SIGRTMIN+${fromMin}` : `SIGRTMAX-${fromMax}`;
  });
  return rtNames;
}

/** Names already resolved (senders repeat the same few). */
const resolvedNames = new Map<string, number>();

/** Resolves a name or number to the signal's number; `ERR_IPC_INVALID_ARGUMENT` if there is no such signal. */
export function signalNumber(sig: unknown): number {
  if (typeof sig === 'number') {
    if (isSignalNumber(sig)) return sig;
  } else if (typeof sig === 'string') {
    const known = resolvedNames.get(sig);
    if (known !== undefined) return known;
    const n = parseSignalName(sig);
    if (n !== undefined) {
      if (resolvedNames.size < 1024) resolvedNames.set(sig, n);
      return n;
    }
  }
  throw invalidArgument('signal', sig, `a signal name such as "SIGUSR2" or "SIGRTMIN+1", or a number from 1 to ${S.SIGRTMAX}`);
}

function parseSignalName(sig: string): number | undefined {
  const name = sig.toUpperCase().startsWith('SIG') ? sig.toUpperCase() : `SIG${sig.toUpperCase()}`;
  const rt = /^SIGRT(MIN|MAX)(?:([+-])(\d+))?$/.exec(name);
  if (rt) {
    const base = rt[1] === 'MIN' ? S.SIGRTMIN : S.SIGRTMAX;
    const offset = rt[3] === undefined ? 0 : Number(rt[3]) * (rt[2] === '+' ? 1 : -1);
    const n = base + offset;
    if ((rt[1] === 'MIN' ? offset >= 0 : offset <= 0) && n >= S.SIGRTMIN && n <= S.SIGRTMAX) return n;
  } else {
    const n = (osConstants.signals as Record<string, number>)[name];
    if (n !== undefined) return n;
    // A number, or SIG<number> as signalName() calls the ones without a name (32 and 33: glibc's own).
    const digits = /^(?:SIG)?(\d{1,3})$/.exec(name)?.[1];
    if (digits !== undefined) {
      const number = Number(digits);
      if (number >= 1 && number <= S.SIGRTMAX) return number;
    }
  }
  return undefined;
}

/** Why signal `n` cannot be handled, or undefined if it can. */
function uncatchableReason(n: number): string | undefined {
  const name = signalName(n);
  if (UNCATCHABLE.has(name)) return `the kernel never lets a process catch, block or ignore ${name}. It can only be sent`;
  if (n === native.wakeSignal) return 'ipckit reserves it to interrupt blocking calls. Use another real-time signal';
  if (n === native.maskSignal) return 'ipckit reserves it to change other threads\' signal masks. Use another real-time signal';
  return RESERVED[name];
}

/** Checks that `n` may be handled; returns its name. */
function catchable(n: number, what: string): string {
  const reason = uncatchableReason(n);
  if (reason !== undefined) throw new IpcError('ERR_IPC_UNCATCHABLE', `${what} ${signalName(n)}: ${reason}.`);
  return signalName(n);
}

function origin(code: number): SignalInfo['origin'] {
  if (code === S.SI_USER) return 'kill';
  if (code === S.SI_QUEUE) return 'sigqueue';
  if (code === S.SI_TKILL) return 'tkill';
  if (code === S.SI_KERNEL || code > 0) return 'kernel';
  return 'other';
}

// ---------------------------------------------------------------------------
// The dispatcher: the signalfd, the safety net's doorbell and this thread's
// eventfd in one epoll set, watched by the thread's readiness registry; one
// set of handlers per signal. Each thread (main, worker) has its own: native
// code copies every delivery to each thread that handles the signal.

const handlers = new Map<number, Set<SignalHandler>>();
/**
 * Each signal's handlers as an array, made again when they change: a
 * delivery runs the handlers there were when it began (one that a handler
 * adds waits for the next), without a copy of the set per signal.
 */
const handlerLists = new Map<number, readonly SignalHandler[]>();

function handlersChanged(n: number): void {
  const set = handlers.get(n);
  if (set === undefined || set.size === 0) handlerLists.delete(n);
  else handlerLists.set(n, [...set]);
}
/** The signal descriptors: readable while a handled signal waits to be taken by this thread. */
let sources: EpollSet | undefined;
let watch: Watch | undefined;
let dropped = 0;
const drainBuffer = new Float64Array(6 * 256);

/** Takes signals whenever one is pending; like process.on('SIGINT'), it does not keep the process alive. */
const dispatcher: ReadinessSubscriber = { onReady: () => dispatchPending() };

function ensureDispatcher(): void {
  if (sources !== undefined) return;
  const fds = native.signalSetup();
  if (typeof fds === 'number') throw descriptorError(fds, 'signalfd', undefined);
  const set = new EpollSet();
  try {
    for (const fd of fds) {
      const r = set.control(EPOLL_CTL.ADD, fd, READABLE, fd);
      if (r < 0) throw systemError(r, 'epoll_ctl', 'the signal descriptors');
    }
    watch = watchDescriptor(set.fd);
  } catch (err) {
    // Nothing half-made is kept: the next handler tries again from the start.
    set.close();
    throw err;
  }
  sources = set;
  watch.subscribe(dispatcher, READABLE, false);
}

let dispatching = false;

/** Delivers what the native handler recorded to the JavaScript handlers, oldest first. */
function dispatchPending(): void {
  // A handler (a listener waking its receivers) may ask again: the drain in
  // progress delivers everything, in order, and its buffer must not be reused.
  if (dispatching) return;
  dispatching = true;
  try {
    drain();
  } finally {
    dispatching = false;
  }
}

/**
 * Most deliveries one dispatch hands out (four drains of 256): a sender that
 * signals faster than the handlers run cannot hold the thread. What is left
 * keeps the descriptors readable (the kernel's pending signals, or this
 * thread's queue, whose eventfd the addon rings), so the event loop comes
 * back for it after its other work, and a receive's next step takes it.
 */
const DRAIN_ROUNDS = 4;

function drain(): void {
  for (let round = 0; round < DRAIN_ROUNDS; round++) {
    const n = native.signalDrain(drainBuffer);
    for (let i = 0; i < n; i++) {
      const at = i * 6;
      const number = drainBuffer[at]!;
      const code = drainBuffer[at + 1]!;
      // A process sent it; or a child changed state (SIGCHLD names the child).
      const fromProcess = (code <= 0 && code !== S.SI_KERNEL) || number === SIGCHLD;
      const info: SignalInfo = {
        signal: signalName(number), number,
        pid: fromProcess ? drainBuffer[at + 2]! : null,
        uid: fromProcess ? drainBuffer[at + 3]! : null,
        code, origin: origin(code),
        value: code === S.SI_QUEUE ? drainBuffer[at + 4]! : null,
      };
      const total = drainBuffer[at + 5]!;
      if (total > dropped) {
        process.emitWarning(`${total - dropped} signals arrived faster than the event loop could take them and were dropped.`, { code: 'ERR_IPC_LIMIT' });
        dropped = total;
      }
      for (const handler of handlerLists.get(number) ?? NO_HANDLERS) {
        try {
          handler(info);
        } catch (err) {
          // Reported as an uncaught exception, after the other handlers ran.
          queueMicrotask(() => {
            throw err;
          });
        }
      }
    }
    if (n < drainBuffer.length / 6) return;
  }
}

const NO_HANDLERS: readonly SignalHandler[] = [];

function addHandler(n: number, handler: SignalHandler): () => void {
  ensureDispatcher();
  let set = handlers.get(n);
  if (set === undefined) {
    set = new Set();
    handlers.set(n, set);
  }
  if (set.size === 0) {
    const r = native.signalHandle(n);
    if (r < 0) throw systemError(r, 'sigaction', signalName(n));
  }
  set.add(handler);
  handlersChanged(n);
  let removed = false;
  return () => {
    if (removed) return;
    removed = true;
    set.delete(handler);
    handlersChanged(n);
    if (set.size === 0) native.signalRelease(n, 0);
  };
}

function releaseAll(sig: unknown, disposition: 1 | 2, what: string): void {
  const n = signalNumber(sig);
  catchable(n, what);
  handlers.get(n)?.clear();
  handlersChanged(n);
  const r = native.signalRelease(n, disposition);
  if (r < 0) throw systemError(r, 'sigaction', signalName(n));
}

/**
 * Handles `sig` with `handler` until the returned function is called. While
 * any handler is installed the signal's default action is overridden (SIGINT
 * no longer ends the process); when the last one is removed, the action that
 * was there before returns. Handlers installed by Node (`process.on`) still
 * run too. As with `process.on`, a handler does not keep the process alive.
 *
 * @example
 * ```ts
 * import { onSignal, sendSignal } from 'ipckit';
 *
 * const received = new Promise((resolve, reject) => {
 *   // A handler does not keep the process alive (as with process.on): a timer does, meanwhile.
 *   const timer = setTimeout(() => reject(new Error('no SIGUSR2 within 1 s')), 1000);
 *   const stop = onSignal('SIGUSR2', ({ pid, uid, value }) => {
 *     console.log(`SIGUSR2 from pid ${pid} (uid ${uid}), value ${value}`);
 *     stop(); // SIGUSR2's previous action returns
 *     clearTimeout(timer);
 *     resolve(undefined);
 *   });
 * });
 * sendSignal(process.pid, 'SIGUSR2', { value: 42 });
 * await received;
 * ```
 */
export function onSignal(sig: SignalSpec, handler: SignalHandler): () => void {
  const n = signalNumber(sig);
  catchable(n, 'onSignal');
  if (typeof handler !== 'function') throw invalidArgument('handler', handler, 'a function');
  return addHandler(n, handler);
}

/** Removes every ipckit handler of `sig` and gives it its default action (SIG_DFL). */
export function restoreDefault(sig: SignalSpec): void {
  releaseAll(sig, 1, 'restoreDefault');
}

/** Removes every ipckit handler of `sig` and makes the process ignore it (SIG_IGN). */
export function ignore(sig: SignalSpec): void {
  releaseAll(sig, 2, 'ignore');
}

/** The target of {@link sendSignal}: a pid, or a process group. */
export type SignalTarget = number | {
  /** A process group id, 2 or more (`kill(-pgid)`). */
  group: number;
};

/**
 * Sends `sig` to a process or a process group (`kill`). With `value`, it uses
 * `sigqueue`, and the receiver's handler gets the value (and, for real-time
 * signals, every send is delivered, in order). `ESRCH` (no such process) and
 * `EPERM` (not allowed) come back as `IpcError`s.
 */
export function sendSignal(target: SignalTarget, sig: SignalSpec, options?: { value?: number }): void {
  const opts = checkOptions(options, ['value']);
  const n = signalNumber(sig);
  let pid: number;
  let label: string;
  if (typeof target === 'number') {
    pid = checkInteger(target, 'target', 1, 2 ** 31 - 1);
    label = `pid ${pid}`;
  } else if (target !== null && typeof target === 'object') {
    // kill(-1) is not process group 1 but every process this user may signal.
    const group = checkInteger((target as { group: unknown }).group, 'target.group', 2, 2 ** 31 - 1);
    pid = -group;
    label = `process group ${group}`;
  } else {
    throw invalidArgument('target', target, 'a pid or { group: pgid }');
  }
  let r: number;
  if (opts.value !== undefined) {
    const value = checkInteger(opts.value, 'value', -(2 ** 53) + 1, 2 ** 53 - 1);
    if (pid < 0) throw invalidArgument('target', target, 'a single pid when a value is sent (sigqueue cannot address a group)');
    r = native.sigqueue(pid, n, value);
  } else {
    r = native.kill(pid, n);
  }
  if (r === E.ESRCH) throw systemError(r, opts.value === undefined ? 'kill' : 'sigqueue', label,
    pid > 0 ? 'The process has exited, or the pid is wrong.' : 'No process is left in that group, or the number is wrong.');
  if (r < 0) throw systemError(r, opts.value === undefined ? 'kill' : 'sigqueue', label);
}

/** Listeners with a receive pending: reachable for it, whatever the caller kept. */
const waitingListeners = new Set<SignalListener>();

/** Most signals a {@link SignalListener} holds before it drops new ones. */
export const SIGNAL_LISTENER_CAPACITY = 65_536;

function numbersOf(sigs: SignalSpec | SignalSpec[], what: string): number[] {
  const list = Array.isArray(sigs) ? sigs : [sigs];
  if (list.length === 0) throw invalidArgument('signals', sigs, 'at least one signal');
  const numbers = [...new Set(list.map((s) => signalNumber(s)))];
  for (const n of numbers) catchable(n, what);
  return numbers;
}

/**
 * Takes `sigs` and keeps every delivery, in the order the kernel delivered
 * them, until it is closed: the receiving side of signals, with the blocking
 * triple (`receive`, `receiveSync`, `tryReceive`) and async iteration. While
 * it is open those signals do not take their default action. Unlike a
 * series of {@link waitForSignal} calls, nothing arriving between two
 * receives is lost.
 *
 * @example
 * ```ts
 * import { listenForSignals, sendSignal } from 'ipckit';
 *
 * const listener = listenForSignals(['SIGUSR2', 'SIGRTMIN+1']);
 * try {
 *   sendSignal(process.pid, 'SIGUSR2');
 *   sendSignal(process.pid, 'SIGRTMIN+1', { value: 7 });
 *   let seen = 0;
 *   for await (const { signal, pid, value } of listener) {
 *     console.log(signal, pid, value);
 *     if (++seen === 2) break;
 *   }
 * } finally {
 *   listener.close();
 * }
 * ```
 */
export class SignalListener extends Handle implements AsyncIterable<SignalInfo>, Pollable {
  /** The names of the signals it takes. */
  readonly signals: readonly string[];
  #queue: SignalInfo[] = [];
  #dropped = 0;
  /** Waits of select and Poller on the event loop, told when a signal is queued. */
  readonly #watchers = new Set<() => void>();
  /** Receives waiting for a signal; while any waits, the process stays alive. */
  readonly #waiting: NotifyLane;
  readonly #keepAlive: ReadinessSubscriber = { onReady: () => undefined };
  readonly #receiveOp: Operation<SignalInfo> = { step: (timeout, spin) => this.#take(timeout, spin) };

  /** @internal Use {@link listenForSignals}. */
  constructor(numbers: number[], spin: number) {
    super();
    this.signals = numbers.map((n) => signalName(n));
    this.#waiting = new NotifyLane(this, spin, () => {
      waitingListeners.add(this);
      watch!.subscribe(this.#keepAlive, READABLE, true);
    }, () => {
      waitingListeners.delete(this);
      watch?.unsubscribe(this.#keepAlive);
    });
    // The handlers reach the listener weakly: one dropped without close() is
    // collected, and its handlers go with it (the signals' previous action
    // returns once no other handler has them), instead of catching the
    // signals, and queueing them, forever.
    const forward = SignalListener.#forwarder(new WeakRef(this));
    try {
      for (const n of numbers) this.holdRelease(addHandler(n, forward));
    } catch (err) {
      this.close();
      throw err;
    }
  }

  get address(): string {
    return this.signals.join(', ');
  }

  /**
   * @internal Readable while any handled signal waits to be taken (for this
   * listener or another handler: a hint, as all readiness is).
   */
  [pollTarget](): PollTarget {
    this.check('poll');
    // The dispatcher takes signals off the descriptor as they come: the listener's own queue is what is ready.
    return {
      fd: sources!.fd, readable: READABLE, writable: 0, pending: () => this.#queue.length > 0,
      // The dispatcher may take a signal off the descriptor before a Poller's wait looks at it: the wait is told.
      subscribe: (wake) => {
        this.#watchers.add(wake);
        return () => this.#watchers.delete(wake);
      },
    };
  }

  /** Signals dropped because {@link SIGNAL_LISTENER_CAPACITY} were already waiting to be received. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Signals received by the listener and not yet taken. */
  get queued(): number {
    return this.#queue.length;
  }

  /** The next signal; waits for one (keeping the process alive) if none is queued. */
  receive(options?: WaitOptions): Promise<SignalInfo> {
    if (plainAsync(this.#waiting, options)) {
      try {
        this.check('receive');
        const info = this.#take(0, this.#waiting.spin);
        if (info !== undefined) return resolvedNow(info);
      } catch (err) {
        return Promise.reject(err);
      }
      return run(this.#waiting, 'receive', options, [], () => this.#receiveOp, true);
    }
    return run(this.#waiting, 'receive', options, [], () => this.#receiveOp);
  }

  /** The next signal; blocks the calling thread until one arrives (other handlers run meanwhile). */
  receiveSync(options?: SyncWaitOptions): SignalInfo {
    if (plainSync(this.#waiting, options)) {
      this.check('receiveSync');
      // Handlers run inside the wait: one may start a receive() of this listener, which must not end this call.
      return this.#take(UNTIL_DONE, this.#waiting.spin) ?? finishPlainSync(this.#waiting, 'receiveSync', (t, s) => this.#take(t, s));
    }
    return runSync(this.#waiting, 'receiveSync', options, [], () => this.#receiveOp);
  }

  /** The next signal if one has arrived; `undefined` otherwise. */
  tryReceive(): SignalInfo | undefined {
    return tryRun(this.#waiting, 'tryReceive', undefined, [], () => this.#receiveOp);
  }

  /** Receives until the listener is closed (the loop then ends) or `signal` aborts it. */
  received(options?: { signal?: AbortSignal }): AsyncGenerator<SignalInfo, void, undefined> {
    const { signal } = checkOptions(options, ['signal']);
    return receiveUntilClosed(() => this.closed, () => this.receive({ signal }));
  }

  /** `for await (const info of listener)`: {@link received} without a signal. */
  [Symbol.asyncIterator](): AsyncGenerator<SignalInfo, void, undefined> {
    return this.received();
  }

  /**
   * Stops taking the signals (the previous action returns once no other
   * handler has them). Pending receives reject with `ERR_IPC_CLOSED`;
   * calling it again does nothing.
   */
  override close(): void {
    super.close();
  }

  protected override released(): void {
    this.#queue = [];
    this.#watchers.clear();
  }

  /**
   * One step of a receive: signals the kernel delivered that the event loop
   * has not handed out yet are taken first; then it spins up to `spin` µs,
   * then sleeps on the signal descriptors up to `timeout` ms.
   */
  #take(timeout: number, spin: number): SignalInfo | undefined {
    // Inside a handler (a drain under way): the drain delivers what comes, in order, once the handler returns. A
    // spin now could only take a signal from the kernel that no drain would hand out before the thread sleeps,
    // and a wait (a *Sync call) could only last until its timeout, or forever.
    if (this.#queue.length === 0 && dispatching && timeout !== 0) {
      throw new IpcError('ERR_IPC_DEADLOCK', `A blocking receive on ${this.address} inside a signal handler would wait forever: ` +
        'signals are handed out in order once the handler returns. Use receive() (and await it after the handler), or tryReceive().',
      { address: this.address });
    }
    if (this.#queue.length === 0 && !dispatching) {
      if (spin > 0) {
        // A look (one system call) before each drain: a drain that finds nothing costs more.
        const end = performance.now() + spin / 1000;
        for (let left = spin; native.signalSpin(left) === 1; left = (end - performance.now()) * 1000) {
          dispatchPending();
          if (this.#queue.length > 0 || left <= 0) break;
        }
      } else {
        dispatchPending();
      }
    }
    // A handler the drain ran may have closed this listener: the caller then ends as closed, rather than sleeping.
    if (this.#queue.length === 0 && timeout !== 0 && !this.closed) {
      const r = native.pollFd(sources!.fd, native.constants.POLLIN, timeout);
      if (r < 0) throw systemError(r, 'poll', 'the signal descriptors');
      dispatchPending();
    }
    return this.#queue.shift();
  }

  /**
   * The handler that hands signals to `listener` while it exists. Made
   * outside the constructor: a closure made there would share its scope,
   * which holds the listener strongly.
   */
  static #forwarder(listener: WeakRef<SignalListener>): SignalHandler {
    return (info) => {
      const target = listener.deref();
      if (target !== undefined) target.#deliver(info);
    };
  }

  #deliver(info: SignalInfo): void {
    if (this.#queue.length < SIGNAL_LISTENER_CAPACITY) {
      this.#queue.push(info);
      this.#waiting.wake();
      if (this.#watchers.size > 0) for (const wake of [...this.#watchers]) wake();
    } else if (this.#dropped++ === 0) {
      process.emitWarning(`A signal listener for ${this.address} holds ${SIGNAL_LISTENER_CAPACITY} signals nobody received; newer ones are dropped.`, { code: 'ERR_IPC_LIMIT' });
    }
  }
}

/**
 * A {@link SignalListener} for `sigs`: from now on, none of their deliveries
 * is lost. `spin`: microseconds a receive keeps looking for a signal before
 * it sleeps (see {@link SpinOptions.spin}).
 */
export function listenForSignals(sigs: SignalSpec | SignalSpec[], options?: SpinOptions): SignalListener {
  const spin = checkSpin(checkOptions(options, ['spin']).spin);
  return new SignalListener(numbersOf(sigs, 'listenForSignals'), spin);
}

/**
 * Resolves with the first of `sigs` that arrives. While it waits, those
 * signals do not take their default action. Keeps the process alive.
 */
export async function waitForSignal(sigs: SignalSpec | SignalSpec[], options?: WaitOptions): Promise<SignalInfo> {
  const listener = new SignalListener(numbersOf(sigs, 'waitForSignal'), 0);
  try {
    return await listener.receive(options);
  } finally {
    listener.close();
  }
}

/** Blocks the calling thread until one of `sigs` arrives (other handlers run meanwhile). */
export function waitForSignalSync(sigs: SignalSpec | SignalSpec[], options?: SyncWaitOptions): SignalInfo {
  const listener = new SignalListener(numbersOf(sigs, 'waitForSignalSync'), 0);
  try {
    return listener.receiveSync(options);
  } finally {
    listener.close();
  }
}

/** Options of {@link shutdownOn}. */
export interface ShutdownOptions {
  /** Milliseconds to wait for `cleanup` and the children before forcing the exit. Default 10000. */
  timeout?: number;
  /** Runs once, on the first signal, before the process exits. */
  cleanup?: (info: SignalInfo) => unknown;
}

/**
 * A graceful shutdown on the first of `sigs`: runs `cleanup` once, forwards
 * the signal to the child processes started through ipckit's `spawn` and to
 * their descendants (as a signal to a process group would), waits for them
 * all, and exits with the conventional status 128 + the signal number. A
 * second signal, or the timeout, forces the exit at once (those still
 * running get SIGKILL). Returns a function that uninstalls it.
 *
 * @example
 * ```ts
 * import { serve, shutdownOn } from 'ipckit';
 *
 * const server = await serve('unix:@ipckit-example-shutdown', (data) => data);
 * // From now on Ctrl+C (SIGINT) or SIGTERM closes the server, then exits with 130 or 143.
 * const uninstall = shutdownOn(['SIGINT', 'SIGTERM'], {
 *   cleanup: async () => {
 *     await server.close();
 *   },
 * });
 * // ... the program's work. This one has none: it uninstalls and closes by itself.
 * uninstall();
 * await server.close();
 * ```
 */
export function shutdownOn(sigs: SignalSpec[] = ['SIGINT', 'SIGTERM'], options?: ShutdownOptions): () => void {
  const opts = checkOptions(options, ['timeout', 'cleanup']);
  const timeout = opts.timeout === undefined ? 10_000 : checkInteger(opts.timeout, 'timeout', 0, 2 ** 31 - 1);
  if (opts.cleanup !== undefined && typeof opts.cleanup !== 'function') throw invalidArgument('cleanup', opts.cleanup, 'a function');
  const numbers = numbersOf(sigs, 'shutdownOn');
  let shuttingDown: SignalInfo | undefined;
  // The children's descendants when the signal came: they get it too, as a
  // process group would, and the exit waits for them.
  let descendants: ProcessRef[] = [];
  const force = (status: number): never => {
    const children = spawnedChildren();
    const all = [...descendants, ...descendantsOf(children.map((child) => child.pid!))];
    for (const child of children) child.kill('SIGKILL');
    for (const ref of all) signalProcess(ref, 'SIGKILL');
    process.exit(status);
  };
  const onFirst = async (info: SignalInfo): Promise<void> => {
    const status = 128 + info.number;
    const timer = setTimeout(() => force(status), timeout);
    try {
      await opts.cleanup?.(info);
    } catch (err) {
      process.emitWarning(`shutdownOn: cleanup failed: ${(err as Error)?.stack ?? String(err)}`);
    }
    const children = spawnedChildren();
    descendants = descendantsOf(children.map((child) => child.pid!));
    for (const child of children) child.kill(info.number);
    for (const ref of descendants) signalProcess(ref, info.number);
    await Promise.all(children.map((child) => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve(undefined);
      else child.once('exit', resolve);
    })));
    // Descendants are not this process's children: no exit event, so look.
    while (descendants.some(stillRunning)) await sleep(20);
    clearTimeout(timer);
    process.exit(status);
  };
  const disposers = numbers.map((n) => addHandler(n, (info) => {
    if (shuttingDown !== undefined) force(128 + info.number);
    shuttingDown = info;
    void onFirst(info);
  }));
  return () => {
    for (const dispose of disposers) dispose();
  };
}

/** One row of {@link listSignals}. */
export interface SignalDescription {
  /** The signal's number on this system. */
  number: number;
  /** Its name, such as `'SIGTERM'` or `'SIGRTMIN+3'`. */
  name: string;
  /** What the kernel does by default: terminate, core (terminate with a core dump), ignore, stop, continue. */
  defaultAction: 'terminate' | 'core' | 'ignore' | 'stop' | 'continue';
  /** Whether a handler may be installed for it with ipckit. */
  catchable: boolean;
  /** Why it cannot be handled, when it cannot. */
  reason: string | null;
}

/** Every signal of this system, with its default action and whether ipckit can handle it. */
export function listSignals(): SignalDescription[] {
  const rows: SignalDescription[] = [];
  for (let n = 1; n <= S.SIGRTMAX; n++) {
    const name = signalName(n);
    if (!(n >= S.SIGRTMIN) && !numberToName.has(n)) continue;
    const reason = uncatchableReason(n) ?? null;
    rows.push({ number: n, name, defaultAction: DEFAULT_ACTIONS[name] ?? 'terminate', catchable: reason === null, reason });
  }
  return rows;
}
