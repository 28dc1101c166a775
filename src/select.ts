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
import { E, limitError, systemError } from './errors.js';
import { lazily, native, type NativeFdWatcher } from './native.js';
import { Handle } from './internal/handle.js';
import { type LaneOwner, NotifyLane, type Operation, receiveUntilClosed, run, runSync } from './internal/operation.js';
import { EpollSet, type Interest, LookTimer, type Pollable, type PollTarget, pollTarget } from './internal/readiness.js';
import { checkBoolean, checkOptions, invalidArgument } from './internal/validate.js';
import { type SyncWaitOptions, type WaitOptions, checkSignal } from './internal/wait.js';

const C = lazily(() => native.constants);

export type { Interest };

/** An object that is ready, and how. A hang-up or an error counts as ready for what was asked. */
export interface Ready<T extends Pollable = Pollable> {
  /** The object, as it was passed in. */
  object: T;
  /** A receive, read or accept may complete now (a hint: another process may take it first). */
  readable: boolean;
  /** A send or write may complete now. */
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
  /** What to wait for, for every object. Default `'readable'`. */
  events?: Interest;
}

/** What a wait needs of one object. */
interface Target {
  fd: number;
  poll: number;
  epoll: number;
  pending: (() => boolean) | undefined;
  check: (() => number) | undefined;
  release: (() => void) | undefined;
  subscribe: ((wake: () => void) => () => void) | undefined;
}

/** The descriptor and the poll events of one object, refusing what has none. */
function targetOf(object: unknown, interest: Interest, what: string): Target {
  const method = object !== null && typeof object === 'object' ? (object as Partial<Pollable>)[pollTarget] : undefined;
  if (typeof method !== 'function') {
    const name = object !== null && typeof object === 'object' ? object.constructor?.name ?? 'object' : typeof object;
    throw invalidArgument(what, name, 'an ipckit object that can be polled (a socket, a pipe or FIFO end, a POSIX message queue, ' +
      'a signal listener, a channel). System V queues, mutexes and semaphores have no descriptor: wait on them with their own calls');
  }
  const target: PollTarget = method.call(object, interest);
  let epoll = 0;
  if (interest !== 'writable') epoll |= target.readable;
  if (interest !== 'readable') epoll |= target.writable;
  if (epoll === 0) {
    target.release?.();
    throw invalidArgument(what, (object as object).constructor?.name, `an object that can become ${interest === 'both' ? 'readable or writable' : interest} ` +
      `(a ${target.readable === 0 ? 'write' : 'read'} end cannot)`);
  }
  // The readiness bits are the same in poll and epoll for IN, OUT, ERR and HUP.
  return {
    fd: target.fd, poll: epoll & (C.POLLIN | C.POLLOUT), epoll, pending: interest === 'writable' ? undefined : target.pending,
    check: target.check, release: target.release, subscribe: interest === 'writable' ? undefined : target.subscribe,
  };
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
 * Where a select waits: an epoll set of its own holding the objects'
 * descriptors, whose descriptor the event loop watches, made when the call
 * starts to wait and closed when it ends. (Not the thread's shared
 * registry: an object closed while the select waits leaves this set by
 * itself, and nothing shared keeps a stale entry for its number.)
 */
class SelectWait implements LaneOwner {
  readonly address = 'select';
  readonly lane: NotifyLane;
  #set: EpollSet | undefined;
  #watcher: NativeFdWatcher | undefined;
  #look: LookTimer | undefined;

  /** `looks`: some objects ring doorbells (channels): the wait also looks by itself now and then. */
  constructor(fds: Int32Array, events: number[], looks = false) {
    this.lane = new NotifyLane(this, 0, () => {
      this.#arm(fds, events);
      if (looks) this.#look = new LookTimer(() => this.lane.wake());
    }, () => this.#release());
  }

  check(): void { /* A select ends by itself. */ }

  laneBusy(): void { /* Nothing to reject. */ }

  #arm(fds: Int32Array, events: number[]): void {
    const set = new EpollSet();
    this.#set = set;
    try {
      for (let i = 0; i < fds.length; i++) {
        const r = set.control(C.EPOLL_CTL_ADD, fds[i]!, events[i]!, i);
        // The same descriptor twice (one object listed twice): once is enough.
        if (r < 0 && r !== E.EEXIST) throw systemError(r, 'epoll_ctl', `fd ${fds[i]}`);
      }
      this.#watcher = watchSet(set, this.lane);
    } catch (err) {
      this.#release();
      throw err;
    }
  }

  #release(): void {
    this.#look?.stop();
    this.#look = undefined;
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#set?.close();
    this.#set = undefined;
  }
}

/** How long a blocking wait over doorbells sleeps before it looks at their objects by itself, ms. */
const SYNC_LOOK_MS = 100;

/** A blocking wait's timeout (ms, -1: none), capped to SYNC_LOOK_MS. */
const lookCap = (timeout: number): number => (timeout < 0 || timeout > SYNC_LOOK_MS ? SYNC_LOOK_MS : timeout);

/** A libuv watch of an epoll set that wakes `lane` (made at module level: it refers to nothing else). */
function watchSet(set: EpollSet, lane: NotifyLane): NativeFdWatcher {
  const watcher = new native.FdWatcher(set.fd, (status: number) => {
    if (status < 0) lane.rejectAll(systemError(status, 'epoll_wait', 'select'));
    else lane.wake();
  });
  const r = watcher.start();
  if (r < 0) {
    watcher.close();
    throw systemError(r, 'uv_poll_start', 'select');
  }
  return watcher;
}

/** The objects, their descriptors and events, and the poll(2) step over them. */
function prepare<T extends Pollable>(objects: readonly T[], interest: Interest):
{ fds: Int32Array; epoll: number[]; op: Operation<Ready<T>[]>; release: () => void; subscribers: ((wake: () => void) => () => void)[]; looks: boolean } {
  if (!Array.isArray(objects)) throw invalidArgument('objects', objects, 'an array of ipckit objects');
  if (objects.length === 0) throw invalidArgument('objects', objects, 'at least one object (nothing would ever be ready)');
  const fds = new Int32Array(objects.length);
  const pollEvents = new Int32Array(objects.length);
  const revents = new Int32Array(objects.length);
  const epoll: number[] = [];
  const pending: ((() => boolean) | undefined)[] = [];
  const checks: ((() => number) | undefined)[] = [];
  const releases: (() => void)[] = [];
  const subscribers: ((wake: () => void) => () => void)[] = [];
  const release = (): void => {
    for (const r of releases.splice(0)) r();
  };
  try {
    objects.forEach((object, i) => {
      const target = targetOf(object, interest, `objects[${i}]`);
      if (target.release !== undefined) releases.push(target.release);
      fds[i] = target.fd;
      pollEvents[i] = target.poll;
      epoll.push(target.epoll);
      pending.push(target.pending);
      checks.push(target.check);
      if (target.subscribe !== undefined) subscribers.push(target.subscribe);
    });
  } catch (err) {
    release();
    throw err;
  }
  const looks = checks.some((c) => c !== undefined);
  const op: Operation<Ready<T>[]> = {
    step: (timeout) => {
      // What ipckit holds in user space is ready now, whatever the descriptors say: then poll does not wait.
      const held = pending.map((p) => p?.() === true);
      // Objects whose readiness is their own (channels): asked first, which also arms their doorbells.
      const now = checks.map((c) => c?.() ?? 0);
      const readyNow = held.includes(true) || now.some((events) => events !== 0);
      // A blocking wait over doorbells looks again every SYNC_LOOK_MS, as an async one does on its timer.
      const n = native.pollMany(fds, pollEvents, revents, readyNow ? 0 : looks ? lookCap(timeout) : timeout);
      if (n === E.EINVAL) {
        throw limitError(n, 'poll', 'select', `${fds.length} objects are more than this process may have descriptors (ulimit -n, RLIMIT_NOFILE).`);
      }
      if (n < 0) throw systemError(n, 'poll', 'select');
      const ready: Ready<T>[] = [];
      for (let i = 0; i < objects.length; i++) {
        const check = checks[i];
        if (check !== undefined) {
          // A doorbell that rang only says "look again".
          const events = now[i] !== 0 ? now[i]! : revents[i] !== 0 ? check() : 0;
          if (events !== 0) ready.push(readyOf(objects[i]!, events));
        } else if (held[i]) ready.push(readyOf(objects[i]!, revents[i]! | C.POLLIN));
        else if (revents[i] !== 0) ready.push(readyOf(objects[i]!, revents[i]!));
      }
      return ready.length > 0 ? ready : undefined;
    },
  };
  return { fds, epoll, op, release, subscribers, looks };
}

/**
 * Waits until at least one of `objects` is ready, and resolves with every
 * one that is (in the order given). Never blocks the event loop; `timeout`
 * and `signal` as everywhere. Unlike the kernel's select(2), any number of
 * objects and any descriptor number.
 *
 * @example
 * ```ts
 * import { PosixMessageQueue, select } from 'ipckit';
 *
 * const jobs = PosixMessageQueue.create('/ipckit-example-select-jobs');
 * const alerts = PosixMessageQueue.create('/ipckit-example-select-alerts');
 * try {
 *   alerts.trySend('disk full');
 *   const ready = await select([jobs, alerts], { timeout: 1000 });
 *   for (const { object } of ready) {
 *     const message = object.tryReceive(); // readiness is a hint: try, never wait
 *     if (message !== undefined) console.log(object.name, message.data.toString());
 *   }
 * } finally {
 *   for (const queue of [jobs, alerts]) {
 *     queue.close();
 *     queue.unlink();
 *   }
 * }
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
  const wait = new SelectWait(prepared.fds, prepared.epoll, prepared.looks);
  const opts = options === undefined ? undefined : { timeout: options.timeout, signal: options.signal };
  // What the event loop takes off a descriptor for an object (signals) while this waits wakes it too.
  const unsubscribe = prepared.subscribers.map((subscribe) => subscribe(() => wait.lane.wake()));
  return run(wait.lane, 'select', opts, [], () => prepared.op).finally(() => {
    for (const u of unsubscribe) u();
    prepared.release();
  });
}

/** The blocking form of {@link select}: poll(2) on the calling thread. */
export function selectSync<T extends Pollable>(objects: readonly T[], options?: SelectSyncOptions): Ready<T>[] {
  const opts = checkOptions(options, ['events', 'timeout']);
  const prepared = prepare(objects, checkInterest(opts.events));
  const wait = new SelectWait(prepared.fds, prepared.epoll);
  try {
    return runSync(wait.lane, 'selectSync', { timeout: opts.timeout }, [], () => prepared.op);
  } finally {
    prepared.release();
  }
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

/** What a Poller registers for one object: its target, the epoll events asked for, and whether edge-triggered. */
type Registered = Pick<Target, 'fd' | 'pending' | 'check' | 'release' | 'subscribe'> & { events: number; edge: boolean };

/** One report of a {@link Poller} wait. */
export type PollEvent<T extends Pollable = Pollable> = Ready<T>;

interface Registration<T> {
  object: T;
  entry: Entry<T>;
  /** The epoll events this object asked for. */
  events: number;
  /** What ipckit holds for it in user space (level-triggered, readable interest only). */
  pending: (() => boolean) | undefined;
  /** Its readiness, for an object whose descriptor is only a doorbell (see PollTarget.check). */
  check: (() => number) | undefined;
  release: (() => void) | undefined;
  edge: boolean;
  /** Stops the object telling this Poller of what the event loop took for it (see PollTarget.subscribe). */
  unsubscribe: (() => void) | undefined;
}

/**
 * One descriptor in the Poller's epoll set, and the objects registered on
 * it (several signal listeners share the dispatcher's descriptor).
 */
interface Entry<T> {
  fd: number;
  token: number;
  events: number;
  registrations: Set<Registration<T>>;
}

const isClosed = (object: unknown): boolean => (object as { closed?: unknown }).closed === true;

/** Closes a Poller's epoll set when it is closed or collected (a module-level closure: it must not hold the Poller). */
function closeWith(holder: { set: EpollSet; releases: Set<() => void> }): () => void {
  return () => {
    holder.set.close();
    for (const release of [...holder.releases]) release();
  };
}

/**
 * A reusable interest set: an epoll set of its own, whose descriptor the
 * event loop watches while a wait is pending, so a wait never blocks Node
 * and costs in proportion to the objects that are ready, not to how many
 * are registered. An object can be in a Poller and have pending calls of
 * its own at the same time: its descriptor simply sits in two epoll sets.
 *
 * @example
 * ```ts
 * import { MessageSocket, Poller, connect, listen } from 'ipckit';
 *
 * // An abstract Unix socket name: no file to remove afterwards.
 * const server = listen('unix:@ipckit-example-poller');
 * const client = await connect('unix:@ipckit-example-poller');
 * const poller = new Poller();
 * try {
 *   poller.add(server);
 *   await client.send('ping');
 *   for await (const { object } of poller) {
 *     if (object === server) {
 *       const connection = server.tryAccept();
 *       if (connection !== undefined) poller.add(connection);
 *     } else if (object instanceof MessageSocket) {
 *       const message = object.tryReceive();
 *       if (message === undefined) continue;
 *       await object.send(`pong to ${message.data.toString()}`);
 *       poller.remove(object);
 *       object.close();
 *       break;
 *     }
 *   }
 *   const { data } = await client.receive({ timeout: 1000 });
 *   console.log(data.toString()); // pong to ping
 * } finally {
 *   poller.close();
 *   client.close();
 *   server.close();
 * }
 * ```
 */
export class Poller<T extends Pollable = Pollable> extends Handle implements AsyncIterable<PollEvent<T>> {
  get address(): string {
    return 'poller';
  }

  readonly #holder: { set: EpollSet; releases: Set<() => void> };
  readonly #byToken = new Map<number, Entry<T>>();
  readonly #byFd = new Map<number, Entry<T>>();
  readonly #byObject = new Map<T, Registration<T>>();
  #nextToken = 1;
  readonly #lane: NotifyLane;
  #watcher: NativeFdWatcher | undefined;
  #look: LookTimer | undefined;
  /** Registrations whose readiness is their own (channels): looked at by the wait itself now and then, too. */
  readonly #checked = new Set<Registration<T>>();
  readonly #reports = new Uint32Array(128);
  /** Set when the epoll set may hold a descriptor no live entry owns (closed behind it, or dup'd elsewhere). */
  #stale = false;
  /**
   * Registrations whose objects may hold messages in user space: after a
   * report the caller may take one message of several read ahead, and the
   * descriptor would not report the rest. Only these are asked again, so a
   * wait costs what was ready (and what was added since), not what is registered.
   */
  readonly #recent = new Set<Registration<T>>();

  constructor() {
    super();
    this.#holder = { set: new EpollSet(), releases: new Set() };
    this.holdRelease(closeWith(this.#holder));
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
    this.#register(object, this.#interest(object, options, 'add'));
    return this;
  }

  #register(object: T, interest: Registered): void {
    const { fd, events, pending, check, release: made, edge, subscribe } = interest;
    // What a target holds for this registration (a doorbell) goes with the Poller, even one collected without close().
    const releases = this.#holder.releases;
    const release = made === undefined ? undefined : (): void => {
      if (releases.delete(release!)) made();
    };
    if (release !== undefined) releases.add(release);
    let entry = this.#byFd.get(fd);
    if (entry !== undefined && ![...entry.registrations].some((r) => !isClosed(r.object))) {
      // Every object of that entry was closed: the number now names another file.
      this.#dropEntry(entry);
      entry = undefined;
    }
    const registration: Registration<T> = { object, entry: entry as Entry<T>, events, pending, check, release, edge, unsubscribe: undefined };
    if (entry === undefined) {
      const token = this.#nextToken;
      this.#nextToken = this.#nextToken >= 0xffffffff ? 1 : this.#nextToken + 1;
      const r = this.#holder.set.control(C.EPOLL_CTL_ADD, fd, events, token);
      if (r < 0) {
        release?.();
        throw systemError(r, 'epoll_ctl', `fd ${fd}`, r === E.EPERM ? 'That descriptor does not support readiness notification.' : undefined);
      }
      entry = { fd, token, events, registrations: new Set() };
      this.#byFd.set(fd, entry);
      this.#byToken.set(token, entry);
    }
    registration.entry = entry;
    entry.registrations.add(registration);
    this.#byObject.set(object, registration);
    this.#update(entry);
    // Asked at the next wait: what user space holds, or (a doorbell's object) its own readiness, which also arms the bell.
    if (pending !== undefined || check !== undefined) this.#recent.add(registration);
    if (check !== undefined) this.#checked.add(registration);
    this.#subscribe(registration, subscribe);
  }

  /** Changes what `object` is watched for. */
  modify(object: T, options?: PollerInterest): this {
    this.check('modify');
    const registration = this.#registration(object, 'modify');
    if (registration.release !== undefined) {
      // A doorbell is made for one interest: a new registration gets its own (made first: if it cannot be, the old one stays).
      const interest = this.#interest(object, options, 'modify');
      this.#forget(registration);
      this.#register(object, interest);
      return this;
    }
    const { events, pending, subscribe } = this.#interest(object, options, 'modify');
    registration.events = events;
    registration.pending = pending;
    this.#subscribe(registration, subscribe);
    this.#update(registration.entry);
    if (pending !== undefined) this.#recent.add(registration);
    else this.#recent.delete(registration);
    return this;
  }

  /** Stops watching `object` (also fine after the object was closed). */
  remove(object: T): this {
    this.check('remove');
    // A closed object may have been forgotten already (its descriptor left the set with it).
    if (!this.#byObject.has(object) && isClosed(object)) return this;
    const registration = this.#registration(object, 'remove');
    this.#forget(registration);
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

  /** Reports one by one until the Poller is closed (an object removed meanwhile is not reported). */
  async *events(options?: { signal?: AbortSignal }): AsyncGenerator<PollEvent<T>, void, undefined> {
    const signal = checkSignal(checkOptions(options, ['signal']).signal);
    for await (const batch of receiveUntilClosed(() => this.closed, () => this.wait({ signal }))) {
      for (const report of batch) if (this.#byObject.has(report.object)) yield report;
    }
  }

  /** `for await (const event of poller)`: {@link events} without a signal. */
  [Symbol.asyncIterator](): AsyncGenerator<PollEvent<T>, void, undefined> {
    return this.events();
  }

  protected override released(): void {
    this.#disarm();
    for (const registration of this.#byObject.values()) {
      registration.unsubscribe?.();
      registration.release?.();
    }
    this.#recent.clear();
    this.#byObject.clear();
    this.#checked.clear();
    this.#byToken.clear();
    this.#byFd.clear();
  }

  readonly #waitOp: Operation<PollEvent<T>[]> = { step: (timeout) => this.#collect(timeout) };

  /** One epoll_wait (timeout ms: 0 never waits) of at most one batch; the reports, or undefined if none. */
  #collect(timeout: number): PollEvent<T>[] | undefined {
    if (this.#stale) this.#rebuild();
    const out: PollEvent<T>[] = [];
    const seen = new Set<Registration<T>>();
    for (const registration of this.#recent) {
      if (isClosed(registration.object)) {
        this.#forget(registration);
        continue;
      }
      const events = registration.check?.() ?? (registration.pending?.() === true ? C.POLLIN : 0);
      if (events !== 0) {
        out.push(readyOf(registration.object, events));
        seen.add(registration);
        if (registration.edge) this.#recent.delete(registration);
      } else {
        this.#recent.delete(registration);
      }
    }
    const reports = this.#reports;
    // A blocking wait over doorbells looks again every SYNC_LOOK_MS, as an async one does on its timer.
    const capped = out.length === 0 && this.#checked.size > 0 && timeout !== 0;
    const n = native.epollWait(this.#holder.set.fd, reports, out.length > 0 ? 0 : capped ? lookCap(timeout) : timeout);
    if (n < 0) throw systemError(n, 'epoll_wait', 'poller');
    if (n === 0 && capped) this.#lookAgain();
    for (let i = 0; i < n; i++) {
      const entry = this.#byToken.get(reports[2 * i]!);
      if (entry === undefined) {
        // A descriptor no entry owns any more (closed here, still open elsewhere): it would be reported for ever.
        this.#stale = true;
        continue;
      }
      for (const registration of [...entry.registrations]) {
        if (isClosed(registration.object)) {
          this.#forget(registration);
          continue;
        }
        if (seen.has(registration)) continue;
        // A doorbell that rang only says "look again".
        const events = registration.check?.() ?? reports[2 * i + 1]! & (registration.events | C.EPOLLERR | C.EPOLLHUP);
        if (events === 0) continue;
        out.push(readyOf(registration.object, events));
        if (registration.pending !== undefined || (registration.check !== undefined && !registration.edge)) this.#recent.add(registration);
      }
    }
    return out.length > 0 ? out : undefined;
  }

  /** Takes a registration out; an entry left without objects leaves the set. */
  #forget(registration: Registration<T>): void {
    try {
      this.#unregister(registration);
    } finally {
      // A doorbell is closed once it has left the set.
      registration.release?.();
    }
  }

  /** Has the object tell this Poller when the event loop takes something for it (a level-triggered readable interest only). */
  #subscribe(registration: Registration<T>, subscribe: ((wake: () => void) => () => void) | undefined): void {
    registration.unsubscribe?.();
    registration.unsubscribe = registration.pending === undefined ? undefined : subscribe?.(() => {
      this.#recent.add(registration);
      this.#lane.wake();
    });
  }

  #unregister(registration: Registration<T>): void {
    this.#checked.delete(registration);
    registration.unsubscribe?.();
    registration.unsubscribe = undefined;
    this.#byObject.delete(registration.object);
    this.#recent.delete(registration);
    const entry = registration.entry;
    entry.registrations.delete(registration);
    if (entry.registrations.size > 0) {
      this.#update(entry);
      return;
    }
    if (isClosed(registration.object)) this.#dropEntry(entry);
    else {
      this.#holder.set.control(C.EPOLL_CTL_DEL, entry.fd, 0, entry.token);
      this.#byFd.delete(entry.fd);
      this.#byToken.delete(entry.token);
    }
  }

  /**
   * Drops an entry whose descriptor was closed: its number may name another
   * file now, so it is never deleted by number; if the old file is still
   * open elsewhere it stays in the set, which the next wait rebuilds.
   */
  #dropEntry(entry: Entry<T>): void {
    for (const registration of entry.registrations) {
      registration.unsubscribe?.();
      registration.release?.();
      this.#checked.delete(registration);
      this.#byObject.delete(registration.object);
      this.#recent.delete(registration);
    }
    this.#byFd.delete(entry.fd);
    this.#byToken.delete(entry.token);
    this.#stale = true;
  }

  /** The union of an entry's interests, in the kernel. */
  #update(entry: Entry<T>): void {
    let events = 0;
    for (const registration of entry.registrations) events |= registration.events;
    if (events === entry.events) return;
    const r = this.#holder.set.control(C.EPOLL_CTL_MOD, entry.fd, events, entry.token);
    if (r < 0) throw systemError(r, 'epoll_ctl', `fd ${entry.fd}`);
    entry.events = events;
  }

  /** A fresh epoll set with only the live entries (the old one may hold files closed here but open elsewhere). */
  #rebuild(): void {
    this.#stale = false;
    const old = this.#holder.set;
    const set = new EpollSet();
    for (const entry of [...this.#byFd.values()]) {
      const r = set.control(C.EPOLL_CTL_ADD, entry.fd, entry.events, entry.token);
      if (r < 0) this.#dropEntry(entry);
    }
    this.#stale = false;
    this.#holder.set = set;
    const watching = this.#watcher !== undefined;
    this.#disarm();
    old.close();
    if (watching) this.#arm();
  }

  #interest(object: T, options: PollerInterest | undefined, what: string): Registered {
    const opts = checkOptions(options, ['events', 'edge']);
    const interest = checkInterest(opts.events);
    const edge = checkBoolean(opts.edge, 'edge');
    const target = targetOf(object, interest, what);
    // Edge-triggered waits report changes only: what is held in user space is the caller's to drain.
    return {
      fd: target.fd, events: target.epoll | (edge ? C.EPOLLET : 0), pending: edge ? undefined : target.pending,
      check: target.check, release: target.release, edge, subscribe: target.subscribe,
    };
  }

  #registration(object: T, what: string): Registration<T> {
    const registration = this.#byObject.get(object);
    if (registration === undefined) throw invalidArgument(what, object?.constructor?.name, 'an object in this Poller');
    return registration;
  }

  /** Watches the set while a wait is pending; the watch is closed when none is (nothing holds the Poller then). */
  #arm(): void {
    this.#watcher = watchSet(this.#holder.set, this.#lane);
    this.#look = new LookTimer(() => {
      if (this.#checked.size === 0) return;
      this.#lookAgain();
      this.#lane.wake();
    });
  }

  /**
   * The wait's own look at the objects that ring doorbells: a level-triggered
   * one is asked again at the next collect. An edge-triggered one is left to
   * its rings: a look cannot tell a change from a state reported already
   * (and emptying its bell could swallow a ring the set has not reported yet).
   */
  #lookAgain(): void {
    for (const registration of this.#checked) if (!registration.edge) this.#recent.add(registration);
  }

  #disarm(): void {
    this.#look?.stop();
    this.#look = undefined;
    this.#watcher?.close();
    this.#watcher = undefined;
  }
}
