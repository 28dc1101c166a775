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

export class ReadinessQueue {
  readonly #fd: number;
  readonly #events: number;
  readonly #address: string;
  readonly #entries: Entry[] = [];
  #watcher: NativeFdWatcher | undefined;
  #armed = false;
  #idleCheckQueued = false;

  /** `events`: the readinessConstants bits to wait for (READABLE or WRITABLE). */
  constructor(fd: number, events: number, address: string) {
    this.#fd = fd;
    this.#events = events;
    this.#address = address;
  }

  /** Whether calls are queued (a new call must queue behind them to keep the order). */
  get busy(): boolean {
    return this.#entries.length > 0;
  }

  /** Queues `attempt` until it succeeds; `timeout` and `signal` follow the one timeout rule. */
  wait<T>(what: string, timeout: number, signal: AbortSignal | undefined, attempt: Attempt<T>): Promise<T> {
    const entry: Entry = {
      attempt,
      pending: new Pending<unknown>(what, this.#address, timeout, signal, (err) => {
        const i = this.#entries.indexOf(entry);
        if (i >= 0) this.#entries.splice(i, 1);
        entry.pending.reject(err);
        this.#update();
      }),
    };
    this.#entries.push(entry);
    this.#update();
    return entry.pending.promise as Promise<T>;
  }

  /** Rejects every queued call with `error` and releases the poll handle. */
  close(error: IpcError): void {
    for (const entry of this.#entries.splice(0)) entry.pending.reject(error);
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#armed = false;
  }

  #update(): void {
    const want = this.#entries.length > 0;
    if (want === this.#armed) return;
    this.#armed = want;
    if (!want) {
      this.#watcher?.stop();
      return;
    }
    this.#watcher ??= new native.FdWatcher(this.#fd, (status) => this.#onReady(status));
    const r = this.#watcher.start(this.#events);
    if (r < 0) this.#fail(systemError(r, 'epoll_ctl', this.#address));
  }

  #onReady(status: number): void {
    if (status < 0) {
      this.#fail(systemError(status, 'epoll_wait', this.#address));
      return;
    }
    // Readiness is a hint: another process may take the data (or the room) first.
    while (this.#entries.length > 0) {
      const entry = this.#entries[0]!;
      let result: unknown;
      try {
        result = entry.attempt();
      } catch (err) {
        this.#entries.shift();
        entry.pending.reject(err);
        continue;
      }
      if (result === undefined) break;
      this.#entries.shift();
      entry.pending.resolve(result);
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
    for (const entry of this.#entries.splice(0)) entry.pending.reject(error);
    this.#update();
  }
}
