/**
 * Readiness of descriptors, shared by every descriptor-backed object: one
 * registry per thread, one {@link Watch} per descriptor, one epoll set.
 *
 * ipckit never hands a user's descriptor to libuv (`uv_poll_init` would set
 * O_NONBLOCK on it, changing what `*Sync` calls and child processes see).
 * Each watched descriptor goes into the registry's epoll set, and libuv
 * watches only that set's own descriptor. A descriptor is in the set only
 * while someone waits for it.
 *
 * @internal
 * @module
 */
import { systemError } from '../errors.js';
import { native, type NativeFdWatcher } from '../native.js';
import { OwnedFd } from './handle.js';
import { descriptorError } from './limits.js';

// epoll's values are fixed by the kernel's ABI (include/uapi/linux/eventpoll.h), the same on every
// architecture: constants here, so that importing ipckit needs no addon.
const EPOLLIN = 0x001;
const EPOLLOUT = 0x004;
const EPOLLERR = 0x008;
const EPOLLHUP = 0x010;
/** epoll_ctl's operations. */
export const EPOLL_CTL = Object.freeze({ ADD: 1, DEL: 2, MOD: 3 });

/** Interest in reading (also reported on hang-up and error). */
export const READABLE = EPOLLIN;
/** Interest in writing (also reported on hang-up and error). */
export const WRITABLE = EPOLLOUT;

/**
 * What waiting for several objects at once (`select`, a `Poller`, servers)
 * needs of a handle: the descriptor to watch, and which events mean that an
 * operation may now complete without waiting. A hang-up or an error (which
 * the kernel reports whatever was asked) means so too: the attempt then
 * finds the end or the error. Readiness is a hint — another process may
 * take the message first — so a caller woken by it still makes a
 * non-blocking attempt (`tryReceive()`, `tryRead()`, …).
 */
export interface PollTarget {
  fd: number;
  /** Events after which a receive or read may complete (0: the handle cannot receive). */
  readable: number;
  /** Events after which a send or write may complete (0: the handle cannot send). */
  writable: number;
  /**
   * Whether a receive would complete now from what ipckit already holds in
   * user space (frames read ahead, signals taken from the kernel), which the
   * descriptor no longer shows.
   */
  pending?: () => boolean;
  /**
   * For an object whose `pending` can become true while no wait looks (the
   * event loop took signals off the descriptor for it): calls `wake` each
   * time it does, until the returned function is called. A wait on the
   * event loop subscribes, or it could miss what the loop took first.
   */
  subscribe?: (wake: () => void) => () => void;
  /**
   * For an object whose readiness is not its descriptor's (a shared-memory
   * channel, whose descriptor is a doorbell another process rings): empties
   * the descriptor, asks to be rung at the next change, and returns the
   * poll events (POLLIN, POLLOUT) ready now, or POLLNVAL once the object
   * is closed. It runs before every wait and after every report of the
   * descriptor, whose own events then mean nothing but "look again".
   */
  check?: () => number;
  /** Gives back what the target holds for one wait or registration (a doorbell). Called once. */
  release?: () => void;
}

/** What a wait is for: a receive or read (`'readable'`), a send or write (`'writable'`), or either. */
export type Interest = 'readable' | 'writable' | 'both';

/** The method a pollable handle implements (a symbol: it is not part of the public surface yet). */
export const pollTarget: unique symbol = Symbol('ipckit.pollTarget');

/**
 * A handle with a descriptor whose readiness can be waited for together with
 * others': POSIX queues, pipe and FIFO ends, signal listeners, sockets, and
 * shared-memory channels (through a doorbell). System V queues, mutexes and
 * semaphores have no descriptor and are not pollable; a Poller will take
 * them in through a waiter-thread job that signals an eventfd.
 */
export interface Pollable {
  /** @internal The target of one wait or registration for `interest` (a target with `release` is made for it alone). */
  [pollTarget](interest: Interest): PollTarget;
}

/** The first and the longest pause between the looks a wait over doorbells takes by itself, ms. */
const LOOK_FIRST_MS = 20;
const LOOK_MAX_MS = 1000;

/**
 * Calls `look` after 20 ms, then after twice as long each time, up to a
 * second, until stopped: a wait over doorbells (a shared-memory channel's)
 * looks at what it waits for by itself now and then, so a ring that was
 * lost (suppressed by a process that wrote over the header, or unable to
 * reach a waiter in another network namespace) costs a delay, never a hang.
 * `soon()` makes the next pauses short again (a ring came: the other side
 * is active).
 */
export class LookTimer {
  #timer: NodeJS.Timeout | undefined;
  #pause = LOOK_FIRST_MS;

  constructor(look: () => void) {
    const tick = (): void => {
      look();
      this.#pause = Math.min(LOOK_MAX_MS, this.#pause * 2);
      this.#timer = setTimeout(tick, this.#pause).unref();
    };
    // Unreferenced: what waits keeps the process alive through its descriptor's watch, not through this timer.
    this.#timer = setTimeout(tick, this.#pause).unref();
  }

  soon(): void {
    this.#pause = LOOK_FIRST_MS;
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}

/** Whatever epoll reports regardless of interest: wakes every subscriber. */
const ALWAYS = EPOLLERR | EPOLLHUP;

/**
 * An epoll set of ipckit's own. The signal dispatcher combines its two
 * descriptors in one; the readiness registry watches every waited-for
 * descriptor in another.
 */
export class EpollSet {
  readonly fd: number;
  readonly #owned: OwnedFd;
  readonly #reports = new Uint32Array(128);

  constructor() {
    const fd = native.epollCreate();
    if (fd < 0) {
      throw descriptorError(fd, 'epoll_create1', undefined);
    }
    this.#owned = new OwnedFd(fd, true);
    this.fd = fd;
  }

  close(): void {
    this.#owned.close();
  }

  /** Adds, changes or removes `fd`; `token` comes back with its reports. Returns 0 or -errno. */
  control(op: number, fd: number, events: number, token: number): number {
    return native.epollCtl(this.fd, op, fd, events, token);
  }

  /**
   * Waits up to `timeoutMs` (0: not at all; -1: no limit) and calls
   * `report(token, events)` for each ready descriptor of one batch (at most
   * 64); returns how many. One batch only: descriptors that stay ready
   * (level-triggered) would come back in every further batch, and looping
   * on full batches would then never end. The set stays readable while
   * more are ready, so the event loop comes back for the rest.
   */
  wait(timeoutMs: number, report: (token: number, events: number) => void): number {
    const out = this.#reports;
    const n = native.epollWait(this.fd, out, timeoutMs);
    if (n < 0) throw systemError(n, 'epoll_wait', undefined);
    for (let i = 0; i < n; i++) report(out[2 * i]!, out[2 * i + 1]!);
    return n;
  }
}

/** What a subscriber wants of a descriptor. */
export interface ReadinessSubscriber {
  /** Called when the descriptor reports one of the subscribed events (or an error or hang-up). */
  onReady(events: number): void;
}

interface Subscription {
  events: number;
  keepAlive: boolean;
}

/**
 * One descriptor in the registry, shared by everything that waits for it
 * (the read and write sides of a queue, two wrappers of one inherited
 * descriptor). In the epoll set only while it has subscribers.
 */
export class Watch {
  readonly fd: number;
  readonly #registry: Registry;
  readonly #token: number;
  readonly #subscribers = new Map<ReadinessSubscriber, Subscription>();
  #users = 0;
  /** The events the epoll set has for this descriptor (0: not in the set). */
  #registered = 0;
  #keepsAlive = false;

  /** @internal Use {@link watchDescriptor}. */
  constructor(registry: Registry, fd: number, token: number) {
    this.#registry = registry;
    this.fd = fd;
    this.#token = token;
  }

  /**
   * Starts (or changes) `subscriber`'s interest in `events`. `keepAlive`:
   * whether the wait keeps the process alive, as a pending call does.
   * Throws if the kernel refuses to watch the descriptor.
   */
  subscribe(subscriber: ReadinessSubscriber, events: number, keepAlive = true): void {
    this.#subscribers.set(subscriber, { events, keepAlive });
    this.#update();
  }

  unsubscribe(subscriber: ReadinessSubscriber): void {
    if (this.#subscribers.delete(subscriber)) this.#update();
  }

  /** @internal */
  acquire(): this {
    this.#users++;
    return this;
  }

  /** Gives up one user's share; the last one removes the descriptor from the registry. Call before closing it. */
  release(): void {
    if (--this.#users > 0) return;
    this.#subscribers.clear();
    this.#update();
    this.#registry.forget(this.fd, this.#token);
  }

  /** @internal Hands a report to the subscribers; false if nobody wants this descriptor any more. */
  dispatch(events: number): boolean {
    if (this.#registered === 0) return false;
    for (const [subscriber, { events: wanted }] of [...this.#subscribers]) {
      if ((events & (wanted | ALWAYS)) !== 0 && this.#subscribers.has(subscriber)) subscriber.onReady(events);
    }
    return true;
  }

  /** @internal Puts this descriptor in a new epoll set, if it is in the current one. */
  register(set: EpollSet): void {
    if (this.#registered !== 0) set.control(EPOLL_CTL.ADD, this.fd, this.#registered, this.#token);
  }

  #update(): void {
    let events = 0;
    let keepAlive = false;
    for (const s of this.#subscribers.values()) {
      events |= s.events;
      keepAlive ||= s.keepAlive;
    }
    if (events !== this.#registered) {
      const op = events === 0 ? EPOLL_CTL.DEL : this.#registered === 0 ? EPOLL_CTL.ADD : EPOLL_CTL.MOD;
      const r = this.#registry.set.control(op, this.fd, events, this.#token);
      // Removing a descriptor closed behind ipckit's back fails harmlessly.
      if (r < 0 && events !== 0) throw systemError(r, 'epoll_ctl', `fd ${this.fd}`);
      this.#registered = events;
    }
    keepAlive &&= events !== 0;
    if (keepAlive !== this.#keepsAlive) {
      this.#keepsAlive = keepAlive;
      this.#registry.keepAlive(keepAlive ? 1 : -1);
    }
  }
}

/** The registry of one thread (the main thread, or a worker): its epoll set and its one libuv watch. */
class Registry {
  set = new EpollSet();
  #watcher: NativeFdWatcher;
  readonly #byFd = new Map<number, Watch>();
  readonly #byToken = new Map<number, Watch>();
  #nextToken = 1;
  #alive = 0;

  constructor() {
    this.#watcher = this.#watch();
  }

  watch(fd: number): Watch {
    let watch = this.#byFd.get(fd);
    if (watch === undefined) {
      const token = this.#nextToken;
      this.#nextToken = this.#nextToken >= 0xffffffff ? 1 : this.#nextToken + 1;
      watch = new Watch(this, fd, token);
      this.#byFd.set(fd, watch);
      this.#byToken.set(token, watch);
    }
    return watch.acquire();
  }

  forget(fd: number, token: number): void {
    this.#byFd.delete(fd);
    this.#byToken.delete(token);
  }

  /** Counts watches that keep the process alive; libuv's watch is referenced while any does. */
  keepAlive(delta: number): void {
    const before = this.#alive;
    this.#alive += delta;
    if (before === 0 && this.#alive > 0) this.#watcher.ref();
    else if (before > 0 && this.#alive === 0) this.#watcher.unref();
  }

  /** Set by a report for a descriptor nobody waits for (see {@link #rebuild}). */
  #stray = false;
  readonly #report = (token: number, events: number): void => {
    if (this.#byToken.get(token)?.dispatch(events) !== true) this.#stray = true;
  };

  #watch(): NativeFdWatcher {
    const watcher = new native.FdWatcher(this.set.fd, (status: number) => {
      if (status < 0) throw systemError(status, 'epoll_wait', 'the readiness registry');
      this.#stray = false;
      this.set.wait(0, this.#report);
      if (this.#stray) this.#rebuild();
    });
    const r = watcher.start();
    if (r < 0) throw systemError(r, 'uv_poll_start', 'the readiness registry');
    if (this.#alive === 0) watcher.unref();
    return watcher;
  }

  /**
   * Reports for a descriptor nobody waits for: it was closed behind ipckit's
   * back while another copy keeps its file open, so it cannot be removed by
   * number and would be reported forever. A new set, holding only what is
   * wanted, replaces the old one.
   */
  #rebuild(): void {
    const old = this.set;
    this.set = new EpollSet();
    for (const watch of this.#byToken.values()) watch.register(this.set);
    this.#watcher.close();
    this.#watcher = this.#watch();
    old.close();
  }
}

let registry: Registry | undefined;

/**
 * The shared watch of `fd` in this thread's registry. Every user calls
 * `release()` once, before closing the descriptor.
 */
export function watchDescriptor(fd: number): Watch {
  registry ??= new Registry();
  return registry.watch(fd);
}
