/**
 * The one timeout rule and the plumbing shared by every operation that can
 * wait: `timeout` undefined waits forever, 0 tries once, n waits n ms;
 * `signal` aborts.
 * @internal
 * @module
 */
import { IpcError } from '../errors.js';
import { invalidArgument, optionalInteger } from './validate.js';

/** Options of every async operation that can wait. */
export interface WaitOptions {
  /** Milliseconds to wait: `undefined` waits forever, `0` tries once. */
  timeout?: number | undefined;
  /** Cancels the wait. */
  signal?: AbortSignal | undefined;
}

/** Options of every `*Sync` operation that can wait. */
export interface SyncWaitOptions {
  /** Milliseconds to wait: `undefined` waits forever, `0` tries once. */
  timeout?: number | undefined;
}

/** Default spin budget of a wait, in microseconds; see {@link SpinOptions.spin}. */
export const DEFAULT_SPIN_US = 50;

/** The spin option every waiting handle takes. */
export interface SpinOptions {
  /**
   * Microseconds a wait keeps retrying, yielding the CPU between attempts,
   * before it sleeps (in the kernel for `*Sync` calls, on the event loop for
   * async ones). Waking a sleeping process costs tens of microseconds, so a
   * short spin pays off when replies come quickly; 0 sleeps at once. The
   * spin of an async call holds the event loop for at most this long.
   * Default {@link DEFAULT_SPIN_US}; at most 10000.
   */
  spin?: number;
}

export function checkSpin(spin: unknown): number {
  return optionalInteger(spin, 'spin', 0, 10_000, DEFAULT_SPIN_US);
}

/** Longest finite timeout: Node timers hold at most 2^31-1 ms. */
export const MAX_TIMEOUT = 2 ** 31 - 1;

/** The validated timeout: `Infinity` for "forever". */
export function checkTimeout(timeout: unknown): number {
  if (timeout === undefined || timeout === Infinity) return Infinity;
  if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0 || timeout > MAX_TIMEOUT) {
    throw invalidArgument('timeout', timeout, `a number of milliseconds from 0 to ${MAX_TIMEOUT}, or undefined to wait forever`);
  }
  return timeout;
}

export function checkSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) throw invalidArgument('signal', signal, 'an AbortSignal');
  return signal;
}

/** The timeout as the addon wants it: -1 for forever. */
export function nativeTimeout(timeout: number): number {
  return timeout === Infinity ? -1 : timeout;
}

export function timeoutError(what: string, address: string, timeout: number): IpcError {
  return new IpcError('ERR_IPC_TIMEOUT', `${what} on ${address} timed out after ${timeout} ms. Wait longer, or use the try* call to poll.`, { address });
}

export function abortError(what: string, address: string, signal: AbortSignal): IpcError {
  return new IpcError('ERR_IPC_ABORTED', `${what} on ${address} was aborted.`, { address, cause: signal.reason });
}

export function closedError(what: string, address: string): IpcError {
  return new IpcError('ERR_IPC_CLOSED', `${what} on ${address}: the handle is closed. Open the object again to keep using it.`, { address });
}

/**
 * One pending async operation. Owns its timeout timer and abort listener;
 * when either fires it calls `interrupt(error)`, and the mechanism settles
 * the operation (at once, or after its waiter thread confirms).
 */
export class Pending<T> {
  readonly promise: Promise<T>;
  #resolve!: (value: T) => void;
  #reject!: (reason: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | undefined;
  #settled = false;

  constructor(what: string, address: string, timeout: number, signal: AbortSignal | undefined,
    interrupt: (error: IpcError) => void) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    if (timeout !== Infinity) {
      this.#timer = setTimeout(() => interrupt(timeoutError(what, address, timeout)), timeout);
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

/**
 * The async iteration of a receiver: receives until the handle is closed
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
