/**
 * Readiness over many objects at once: {@link select} for one wait, a
 * {@link Poller} for a reusable interest set.
 *
 * Every ipckit object with a kernel descriptor takes part: socket
 * connections, servers and datagram sockets, pipe and FIFO ends, POSIX
 * message queues, signal listeners. Objects without one (System V queues,
 * mutexes and semaphores) are refused with `ERR_IPC_INVALID_ARGUMENT`
 * saying so: their waits run on waiter threads, and nothing in the kernel
 * reports their readiness.
 *
 * Readiness is a hint: another process may take the message first, so a
 * caller woken by it makes a non-blocking attempt (`tryReceive()`,
 * `tryRead()`, `tryAccept()`, ...).
 *
 * @module
 */
import { E, systemError } from './errors.js';
import { native, type NativeFdWatcher } from './native.js';
import { Handle } from './internal/handle.js';
import { type LaneOwner, NotifyLane, type Operation, receiveUntilClosed, run, runSync } from './internal/operation.js';
import { EpollSet, type Pollable, type PollTarget, type ReadinessSubscriber, type Watch, pollTarget, watchDescriptor } from './internal/readiness.js';
import { checkBoolean, checkOptions, invalidArgument } from './internal/validate.js';
import { type SyncWaitOptions, type WaitOptions, checkSignal } from './internal/wait.js';

const C = native.constants;

/** What to wait for: a receive or read (`'readable'`), a send or write (`'writable'`), or either. */
export type Interest = 'readable' | 'writable' | 'both';

/** An object that is ready, and how. A hang-up or an error counts as ready for what was asked. */
export interface Ready<T extends Pollable = Pollable> {
  object: T;
  readable: boolean;
  writable: boolean;
  /** The other side is gone (a pipe's writers, a connection's peer): the next read finds the end. */
  hangup: boolean;
  /** The descriptor reports an error: the next attempt says which. */
  error: boolean;
}

/** Options of {@link select}. */
export interface SelectOptions extends WaitOptions {
  /** What to wait for, for every object. Default `'readable'`. */
  events?: Interest;
}

/** Options of {@link selectSync}. */
export interface SelectSyncOptions extends SyncWaitOptions {
  events?: Interest;
}

/** The descriptor and the poll events of one object, refusing what has none. */
function targetOf(object: unknown, interest: Interest, what: string): { fd: number; poll: number; epoll: number; pending: (() => boolean) | undefined } {
  const method = object !== null && typeof object === 'object' ? (object as Partial<Pollable>)[pollTarget] : undefined;
  if (typeof method !== 'function') {
    const name = object !== null && typeof object === 'object' ? object.constructor?.name ?? 'object' : typeof object;
    throw invalidArgument(what, name, 'an ipckit object with a kernel descriptor (a socket, a pipe or FIFO end, a POSIX message queue, ' +
      'a signal listener). System V queues, mutexes and semaphores have none: wait on them with their own calls');
  }
  const target: PollTarget = method.call(object);
  let epoll = 0;
  if (interest !== 'writable') epoll |= target.readable;
  if (interest !== 'readable') epoll |= target.writable;
  if (epoll === 0) {
    throw invalidArgument(what, (object as object).constructor?.name, `an object that can become ${interest === 'both' ? 'readable or writable' : interest} ` +
      `(a ${target.readable === 0 ? 'write' : 'read'} end cannot)`);
  }
  // The readiness bits are the same in poll and epoll for IN, OUT, ERR and HUP.
  return { fd: target.fd, poll: epoll & (C.POLLIN | C.POLLOUT), epoll, pending: interest === 'writable' ? undefined : target.pending };
}

function checkInterest(value: unknown): Interest {
  if (value === undefined) return 'readable';
  if (value === 'readable' || value === 'writable' || value === 'both') return value;
  throw invalidArgument('events', value, "'readable', 'writable' or 'both'");
}

function readyOf<T extends Pollable>(object: T, revents: number): Ready<T> {
  return {
    object,
    readable: (revents & C.POLLIN) !== 0,
    writable: (revents & C.POLLOUT) !== 0,
    hangup: (revents & C.POLLHUP) !== 0,
    error: (revents & (C.POLLERR | C.POLLNVAL)) !== 0,
  };
}

/**
 * Where a select waits: every object's descriptor subscribed in this
 * thread's readiness registry, while the call waits (shared with the
 * objects' own pending calls: nothing is handed to libuv).
 */
class SelectWait implements LaneOwner, ReadinessSubscriber {
  readonly address = 'select';
  readonly lane: NotifyLane;
  #watches: Watch[] = [];

  constructor(fds: Int32Array, events: number[]) {
    this.lane = new NotifyLane(this, 0, () => {
      try {
        for (let i = 0; i < fds.length; i++) {
          const watch = watchDescriptor(fds[i]!);
          this.#watches.push(watch);
          watch.subscribe(this, events[i]!);
        }
      } catch (err) {
        this.#release();
        throw err;
      }
    }, () => this.#release());
  }

  check(): void { /* A select ends by itself. */ }

  laneBusy(): void { /* Nothing to reject. */ }

  onReady(): void {
    this.lane.wake();
  }

  #release(): void {
    for (const watch of this.#watches.splice(0)) {
      watch.unsubscribe(this);
      watch.release();
    }
  }
}

/** The objects, their descriptors and events, and the poll(2) step over them. */
function prepare<T extends Pollable>(objects: readonly T[], interest: Interest): { fds: Int32Array; epoll: number[]; op: Operation<Ready<T>[]> } {
  if (!Array.isArray(objects)) throw invalidArgument('objects', objects, 'an array of ipckit objects');
  if (objects.length === 0) throw invalidArgument('objects', objects, 'at least one object (nothing would ever be ready)');
  const fds = new Int32Array(objects.length);
  const pollEvents = new Int32Array(objects.length);
  const revents = new Int32Array(objects.length);
  const epoll: number[] = [];
  const pending: ((() => boolean) | undefined)[] = [];
  objects.forEach((object, i) => {
    const target = targetOf(object, interest, `objects[${i}]`);
    fds[i] = target.fd;
    pollEvents[i] = target.poll;
    epoll.push(target.epoll);
    pending.push(target.pending);
  });
  const op: Operation<Ready<T>[]> = {
    step: (timeout) => {
      // What ipckit holds in user space is ready now, whatever the descriptors say: then poll does not wait.
      const held = pending.map((p) => p?.() === true);
      const n = native.pollMany(fds, pollEvents, revents, held.includes(true) ? 0 : timeout);
      if (n < 0) throw systemError(n, 'poll', 'select');
      const ready: Ready<T>[] = [];
      for (let i = 0; i < objects.length; i++) {
        if (held[i]) ready.push(readyOf(objects[i]!, revents[i]! | C.POLLIN));
        else if (revents[i] !== 0) ready.push(readyOf(objects[i]!, revents[i]!));
      }
      return ready.length > 0 ? ready : undefined;
    },
  };
  return { fds, epoll, op };
}

/**
 * Waits until at least one of `objects` is ready, and resolves with every
 * one that is (in the order given). Never blocks the event loop; `timeout`
 * and `signal` as everywhere. Unlike the kernel's select(2), any number of
 * objects and any descriptor number.
 *
 * @example
 * ```ts
 * const ready = await select([conn, queue, signals], { timeout: 1000 });
 * for (const { object } of ready) if (object === queue) queue.tryReceive();
 * ```
 */
export function select<T extends Pollable>(objects: readonly T[], options?: SelectOptions): Promise<Ready<T>[]> {
  let prepared: ReturnType<typeof prepare<T>>;
  try {
    const opts = checkOptions(options, ['events', 'timeout', 'signal']);
    prepared = prepare(objects, checkInterest(opts.events));
  } catch (err) {
    return Promise.reject(err);
  }
  const wait = new SelectWait(prepared.fds, prepared.epoll);
  const opts = options === undefined ? undefined : { timeout: options.timeout, signal: options.signal };
  return run(wait.lane, 'select', opts, [], () => prepared.op);
}

/** The blocking form of {@link select}: poll(2) on the calling thread. */
export function selectSync<T extends Pollable>(objects: readonly T[], options?: SelectSyncOptions): Ready<T>[] {
  const opts = checkOptions(options, ['events', 'timeout']);
  const prepared = prepare(objects, checkInterest(opts.events));
  const wait = new SelectWait(prepared.fds, prepared.epoll);
  return runSync(wait.lane, 'selectSync', { timeout: opts.timeout }, [], () => prepared.op);
}

/** Options of {@link Poller.add} and {@link Poller.modify}. */
export interface PollerInterest {
  /** What to watch for. Default `'readable'`. */
  events?: Interest;
  /**
   * Edge-triggered: report a readiness once when it comes, not at every
   * wait while it lasts (EPOLLET). Default false (level-triggered). With
   * edges, drain the object (try* calls until nothing is left) after each report.
   */
  edge?: boolean;
}

/** One report of a {@link Poller} wait. */
export type PollEvent<T extends Pollable = Pollable> = Ready<T>;

interface Registration<T> {
  object: T;
  fd: number;
  token: number;
  /** What ipckit holds for it in user space (level-triggered, readable interest only). */
  pending: (() => boolean) | undefined;
}

/**
 * A reusable interest set: an epoll set of its own, whose descriptor the
 * event loop watches, so a wait never blocks Node and costs in proportion
 * to the objects that are ready, not to how many are registered (100,000
 * are fine). An object can be in a Poller and have pending calls of its
 * own at the same time: its descriptor simply sits in two epoll sets.
 *
 * @example
 * ```ts
 * const poller = new Poller();
 * poller.add(server);
 * for await (const { object } of poller) {
 *   if (object === server) poller.add(server.tryAccept()!);
 *   else handle(object.tryReceive());
 * }
 * ```
 */
export class Poller<T extends Pollable = Pollable> extends Handle implements AsyncIterable<PollEvent<T>> {
  get address(): string {
    return 'poller';
  }

  readonly #set: EpollSet;
  readonly #byToken = new Map<number, Registration<T>>();
  readonly #byObject = new Map<T, Registration<T>>();
  #nextToken = 1;
  readonly #lane: NotifyLane;
  #watcher: NativeFdWatcher | undefined;
  readonly #reports = new Uint32Array(256);

  constructor() {
    super();
    this.#set = new EpollSet();
    this.holdRelease(((set) => () => set.close())(this.#set));
    this.#lane = new NotifyLane(this, 0, () => this.#arm(), () => this.#disarm());
  }

  /** How many objects are registered. */
  get size(): number {
    return this.#byObject.size;
  }

  /** Registers `object` for `events` (default readable). An object is registered once: `modify` changes it. */
  add(object: T, options?: PollerInterest): this {
    this.check('add');
    if (this.#byObject.has(object)) throw invalidArgument('object', object?.constructor?.name, 'an object not in this Poller yet (use modify)');
    const { fd, events, pending } = this.#interest(object, options, 'add');
    const token = this.#nextToken;
    this.#nextToken = this.#nextToken >= 0xffffffff ? 1 : this.#nextToken + 1;
    const r = this.#set.control(C.EPOLL_CTL_ADD, fd, events, token);
    if (r < 0) throw systemError(r, 'epoll_ctl', `fd ${fd}`, r === E.EPERM ? 'That descriptor does not support readiness notification.' : undefined);
    const registration = { object, fd, token, pending };
    this.#byToken.set(token, registration);
    this.#byObject.set(object, registration);
    return this;
  }

  /** Changes what `object` is watched for. */
  modify(object: T, options?: PollerInterest): this {
    this.check('modify');
    const registration = this.#registration(object, 'modify');
    const { events, pending } = this.#interest(object, options, 'modify');
    const r = this.#set.control(C.EPOLL_CTL_MOD, registration.fd, events, registration.token);
    if (r < 0) throw systemError(r, 'epoll_ctl', `fd ${registration.fd}`);
    registration.pending = pending;
    return this;
  }

  /** Stops watching `object` (also fine after the object was closed). */
  remove(object: T): this {
    this.check('remove');
    const registration = this.#registration(object, 'remove');
    // A descriptor already closed left the set by itself.
    this.#set.control(C.EPOLL_CTL_DEL, registration.fd, 0, registration.token);
    this.#byToken.delete(registration.token);
    this.#byObject.delete(object);
    this.#recent.delete(registration);
    return this;
  }

  /** Whether `object` is registered. */
  has(object: T): boolean {
    return this.#byObject.has(object);
  }

  /** Waits for readiness of any registered object; resolves with every report (at least one). */
  wait(options?: WaitOptions): Promise<PollEvent<T>[]> {
    return run(this.#lane, 'wait', options, [], () => this.#waitOp);
  }

  /** The blocking form of {@link wait}: epoll_wait on the calling thread. */
  waitSync(options?: SyncWaitOptions): PollEvent<T>[] {
    return runSync(this.#lane, 'waitSync', options, [], () => this.#waitOp);
  }

  /** Reports if some are there now, else an empty array. Never waits. */
  tryWait(): PollEvent<T>[] {
    this.check('tryWait');
    return this.#collect(0) ?? [];
  }

  /** Reports one by one until the Poller is closed. */
  async *events(options?: { signal?: AbortSignal }): AsyncGenerator<PollEvent<T>, void, undefined> {
    const signal = checkSignal(checkOptions(options, ['signal']).signal);
    for await (const batch of receiveUntilClosed(() => this.closed, () => this.wait({ signal }))) yield* batch;
  }

  [Symbol.asyncIterator](): AsyncGenerator<PollEvent<T>, void, undefined> {
    return this.events();
  }

  protected override released(): void {
    this.#disarm();
    this.#recent.clear();
    this.#byObject.clear();
    this.#byToken.clear();
  }

  readonly #waitOp: Operation<PollEvent<T>[]> = { step: (timeout) => this.#collect(timeout) };

  /**
   * Objects reported by the last waits that hold messages in user space:
   * after a report the caller may take one message of several read ahead,
   * and the descriptor would not report the rest. Only these are asked
   * again, so a wait costs what was ready, not what is registered.
   */
  readonly #recent = new Set<Registration<T>>();

  /** One epoll_wait (timeout ms: 0 never waits); the reports, or undefined if none. */
  #collect(timeout: number): PollEvent<T>[] | undefined {
    const out: PollEvent<T>[] = [];
    const seen = new Set<Registration<T>>();
    for (const registration of this.#recent) {
      if (registration.pending?.() === true) {
        out.push(readyOf(registration.object, C.POLLIN));
        seen.add(registration);
      } else {
        this.#recent.delete(registration);
      }
    }
    const reports = this.#reports;
    let wait = out.length > 0 ? 0 : timeout;
    for (;;) {
      const n = native.epollWait(this.#set.fd, reports, wait);
      if (n < 0) throw systemError(n, 'epoll_wait', 'poller');
      for (let i = 0; i < n; i++) {
        const registration = this.#byToken.get(reports[2 * i]!);
        if (registration === undefined || seen.has(registration)) continue;
        out.push(readyOf(registration.object, reports[2 * i + 1]!));
        if (registration.pending !== undefined) this.#recent.add(registration);
      }
      if (n < 64) break;
      wait = 0;
    }
    return out.length > 0 ? out : undefined;
  }

  #interest(object: T, options: PollerInterest | undefined, what: string): { fd: number; events: number; pending: (() => boolean) | undefined } {
    const opts = checkOptions(options, ['events', 'edge']);
    const target = targetOf(object, checkInterest(opts.events), what);
    const edge = checkBoolean(opts.edge, 'edge');
    // Edge-triggered waits report changes only: what is held in user space is the caller's to drain.
    return { fd: target.fd, events: target.epoll | (edge ? C.EPOLLET : 0), pending: edge ? undefined : target.pending };
  }

  #registration(object: T, what: string): Registration<T> {
    const registration = this.#byObject.get(object);
    if (registration === undefined) throw invalidArgument(what, object?.constructor?.name, 'an object in this Poller');
    return registration;
  }

  #arm(): void {
    if (this.#watcher === undefined) {
      this.#watcher = new native.FdWatcher(this.#set.fd, (status: number) => {
        if (status < 0) {
          this.#lane.rejectAll(systemError(status, 'epoll_wait', 'poller'));
          return;
        }
        this.#lane.wake();
      });
    }
    const r = this.#watcher.start();
    if (r < 0) throw systemError(r, 'uv_poll_start', 'poller');
  }

  #disarm(): void {
    this.#watcher?.stop();
    if (this.closed) {
      this.#watcher?.close();
      this.#watcher = undefined;
    }
  }
}

