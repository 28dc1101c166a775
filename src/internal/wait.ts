/**
 * The options of every operation that can wait and their checks: the one
 * timeout rule (`timeout` undefined waits forever, 0 tries once, n waits n
 * ms), `signal` aborts, `spin` tunes. The engine that applies them is
 * operation.ts.
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

export function timeoutError(what: string, address: string, timeout: number): IpcError {
  return new IpcError('ERR_IPC_TIMEOUT', `${what} on ${address} timed out after ${timeout} ms. Wait longer, or use the try* call to poll.`, { address });
}

export function abortError(what: string, address: string, signal: AbortSignal): IpcError {
  return new IpcError('ERR_IPC_ABORTED', `${what} on ${address} was aborted.`, { address, cause: signal.reason });
}

export function closedError(what: string, address: string): IpcError {
  return new IpcError('ERR_IPC_CLOSED', `${what} on ${address}: the handle is closed. Open the object again to keep using it.`, { address });
}
