/**
 * Waiting for a descriptor on the event loop: callers queue attempts, a
 * libuv poll handle watches the descriptor while any are queued, and each
 * readiness report retries the attempts in order. No thread is parked and
 * nothing is polled.
 * @internal
 * @module
 */
import { type IpcError, systemError } from '../errors.js';
import { native, type NativeFdWatcher } from '../native.js';
import { Pending } from './wait.js';

/** An attempt: a result, or `undefined` when it would block. Throwing fails the caller. */
export type Attempt<T> = () => T | undefined;

interface Entry {
  attempt: Attempt<unknown>;
  pending: Pending<unknown>;
}

const { READABLE, WRITABLE } = native.readinessConstants;

/**
 * The calls waiting on one descriptor, in two FIFOs: those waiting to read
 * (READABLE) and those waiting to write (WRITABLE). libuv allows one poll
 * handle per descriptor, so both directions share it.
 */
export class ReadinessQueue {
  readonly #fd: number;
  readonly #address: string;
  readonly #queues = new Map<number, Entry[]>([[READABLE, []], [WRITABLE, []]]);
  #watcher: NativeFdWatcher | undefined;
  #armed = 0;
  #idleCheckQueued = false;

  constructor(fd: number, address: string) {
    this.#fd = fd;
    this.#address = address;
  }

  /** Whether calls wait for `direction` (a new call must queue behind them to keep the order). */
  busy(direction: number): boolean {
    return this.#queues.get(direction)!.length > 0;
  }

  /**
   * Queues `attempt` until it succeeds, retrying when the descriptor is ready
   * for `direction` (READABLE or WRITABLE). `timeout` and `signal` follow the
   * one timeout rule.
   */
  wait<T>(what: string, direction: number, timeout: number, signal: AbortSignal | undefined, attempt: Attempt<T>): Promise<T> {
    const queue = this.#queues.get(direction)!;
    const entry: Entry = {
      attempt,
      pending: new Pending<unknown>(what, this.#address, timeout, signal, (err) => {
        const i = queue.indexOf(entry);
        if (i >= 0) queue.splice(i, 1);
        entry.pending.reject(err);
        this.#update();
      }),
    };
    queue.push(entry);
    this.#update();
    return entry.pending.promise as Promise<T>;
  }

  /** Rejects every queued call with `error` and releases the poll handle. */
  close(error: IpcError): void {
    for (const queue of this.#queues.values()) for (const entry of queue.splice(0)) entry.pending.reject(error);
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#armed = 0;
  }

  #update(): void {
    let want = 0;
    for (const [direction, queue] of this.#queues) if (queue.length > 0) want |= direction;
    if (want === this.#armed) return;
    this.#armed = want;
    if (want === 0) {
      this.#watcher?.stop();
      return;
    }
    this.#watcher ??= new native.FdWatcher(this.#fd, (status) => this.#onReady(status));
    const r = this.#watcher.start(want);
    if (r < 0) this.#fail(systemError(r, 'epoll_ctl', this.#address));
  }

  #onReady(status: number): void {
    if (status < 0) {
      this.#fail(systemError(status, 'epoll_wait', this.#address));
      return;
    }
    // Readiness is a hint: another process may take the data (or the room)
    // first, so each direction's callers retry in order until one would wait.
    for (const queue of this.#queues.values()) {
      while (queue.length > 0) {
        const entry = queue[0]!;
        let result: unknown;
        try {
          result = entry.attempt();
        } catch (err) {
          queue.shift();
          entry.pending.reject(err);
          continue;
        }
        if (result === undefined) break;
        queue.shift();
        entry.pending.resolve(result);
      }
    }
    this.#deferIdleCheck();
  }

  /**
   * Disarms only after the settled callers had their turn: a caller that
   * waits again at once (a request/reply loop) finds the handle still armed.
   */
  #deferIdleCheck(): void {
    if (this.#idleCheckQueued) return;
    this.#idleCheckQueued = true;
    queueMicrotask(() => process.nextTick(() => {
      this.#idleCheckQueued = false;
      this.#update();
    }));
  }

  #fail(error: IpcError): void {
    for (const queue of this.#queues.values()) for (const entry of queue.splice(0)) entry.pending.reject(error);
    this.#update();
  }
}
