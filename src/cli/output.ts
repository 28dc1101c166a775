/**
 * stdout for the commands that consume what they print: `mq recv`,
 * `fifo read` and `signal wait`. A message taken from a queue, bytes read
 * from a FIFO and a signal taken from the kernel exist nowhere else once
 * taken, so these commands
 *
 * - take nothing once stdout's reader is gone (checked before each take);
 * - stop waiting as soon as it goes (a pipe or socket reports its reader's
 *   departure without a write: POLLERR / POLLHUP);
 * - print each item before taking the next, and wait until the write is done;
 * - when a write fails after an item was taken, fail with what was lost.
 *
 * Either way they exit 1: they did not print what they were asked for.
 * What a write already put in the pipe belongs to the reader; no writer can
 * know whether a reader that left had read it.
 *
 * @internal
 * @module
 */
import { fstatSync } from 'node:fs';
import { E, IpcError, type IpcErrorCode } from '../errors.js';
import { lazily, native } from '../native.js';
import { READABLE, type ReadinessSubscriber, type Watch, watchDescriptor } from '../internal/readiness.js';
import { withDetails, writeOut } from './program.js';

const C = lazily(() => native.constants);
const STDOUT = 1;

/** A failure as a consumer describes it: the message, and fields for its --json form. */
export interface Account {
  message: string;
  details?: Record<string, unknown>;
}

/** What a consumer says when its reader left while nothing it took was unprinted (or what was). */
export type GoneAccount = () => Account;

/** What a consumer says about an item it took and could not print; `reason` is why the write failed. */
export type LostAccount = (reason: string) => Account;

/** stdout of a consuming command. Dispose of it (`using`) to stop watching stdout. */
export class ConsumerOutput implements Disposable {
  readonly #gone: GoneAccount;
  /** stdout in this thread's readiness registry, while it can tell that its reader left. */
  #watch: Watch | undefined;
  /** Aborts the current wait when the reader leaves. */
  #controller: AbortController | undefined;
  readonly #subscriber: ReadinessSubscriber = { onReady: (events) => this.#onReady(events) };
  readonly #failures = new WeakSet<IpcError>();

  constructor(gone: GoneAccount) {
    this.#gone = gone;
    // Only pipes and sockets have a reader that can leave; files and terminals stay writable.
    let st;
    try {
      st = fstatSync(STDOUT);
    } catch {
      return; // No stdout at all: the first write says so.
    }
    if (st.isFIFO() || st.isSocket()) this.#watch = watchDescriptor(STDOUT);
  }

  /** Throws the reader-gone error if nobody can read stdout any more. */
  ensureReader(): void {
    const revents = native.pollFd(STDOUT, 0, 0);
    if (revents > 0 && (revents & (C.POLLERR | C.POLLHUP)) !== 0) throw this.#goneError();
  }

  /**
   * Takes the next item: checks the reader first, then runs `attempt` (a
   * receive, a read, a signal wait) with an AbortSignal that fires if the
   * reader leaves while it waits; that departure is then the error.
   */
  async take<T>(attempt: (signal: AbortSignal | undefined) => T | Promise<T>): Promise<T> {
    this.ensureReader();
    const watch = this.#watch;
    if (watch === undefined) return attempt(undefined);
    const controller = new AbortController();
    this.#controller = controller;
    // Never keeps the process alive by itself: the wait it guards does.
    watch.subscribe(this.#subscriber, READABLE, false);
    try {
      return await attempt(controller.signal);
    } catch (err) {
      if (controller.signal.aborted) throw this.#goneError();
      throw err;
    } finally {
      this.#controller = undefined;
      this.#watch?.unsubscribe(this.#subscriber);
    }
  }

  /**
   * Prints an item that was taken and waits until the write is done; if it
   * fails, throws the error `lost` describes (exit 1).
   */
  async print(data: string | Uint8Array, lost: LostAccount): Promise<void> {
    const err = await writeOut(data, { report: 'caller' });
    if (err === undefined) return;
    // A stream destroyed by an earlier failure (ERR_STREAM_DESTROYED) failed with EPIPE then.
    const code = (typeof err.code === 'string' && /^E[A-Z0-9]+$/.test(err.code) ? err.code : 'EPIPE') as IpcErrorCode;
    const reason = code === 'EPIPE' ? 'stdout\'s reader left' : `writing to stdout failed with ${code}`;
    const { message, details } = lost(reason);
    throw this.#failure(new IpcError(code, message, { errno: typeof err.errno === 'number' ? err.errno : E.EPIPE, syscall: 'write' }), details);
  }

  /** Whether `err` is this output's own failure (the reader left, a write failed), not the taking's. */
  failedWith(err: unknown): boolean {
    return err instanceof IpcError && this.#failures.has(err);
  }

  [Symbol.dispose](): void {
    this.#watch?.release();
    this.#watch = undefined;
  }

  #onReady(events: number): void {
    if ((events & (C.EPOLLERR | C.EPOLLHUP)) !== 0) {
      this.#controller?.abort();
      return;
    }
    // Readable without a hang-up (a socket whose peer wrote into it): this says nothing about the
    // reader, and would be reported again and again. Stop watching; the checks before each take remain.
    this.#watch?.unsubscribe(this.#subscriber);
    this.#watch?.release();
    this.#watch = undefined;
  }

  #goneError(): IpcError {
    const { message, details } = this.#gone();
    return this.#failure(new IpcError('EPIPE', message, { errno: E.EPIPE }), details);
  }

  #failure(err: IpcError, details: Record<string, unknown> | undefined): IpcError {
    this.#failures.add(err);
    return details === undefined ? err : withDetails(err, details);
  }
}
