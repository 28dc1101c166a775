/**
 * Named pipes (FIFOs): pipes with a path, so unrelated processes reach the
 * same pipe by name. One process opens it for reading, another for writing,
 * and from then on it behaves as a pipe ({@link PipeReadEnd},
 * {@link PipeWriteEnd}).
 *
 * Opening a FIFO waits for the other side: a reader for a writer, a writer
 * for a reader. `fs.open` does that wait on a libuv pool thread, and a few
 * such opens freeze every `fs` call of the process. ipckit's async opens
 * wait on the event loop instead (a non-blocking open plus an inotify watch
 * of the path) and take a timeout and an AbortSignal.
 *
 * @module
 */
import { fstatSync, lstatSync, unlinkSync } from 'node:fs';
import { IpcError, errnoValue, systemError } from './errors.js';
import { native, type NativeFdWatcher } from './native.js';
import { PipeReadEnd, PipeWriteEnd } from './pipe.js';
import { checkMode, checkOptions, invalidArgument } from './internal/validate.js';
import {
  type SpinOptions, type SyncWaitOptions, type WaitOptions, Pending, abortError, checkSignal, checkSpin, checkTimeout, nativeTimeout,
  timeoutError,
} from './internal/wait.js';

const P = native.pipeConstants;
const { READABLE } = native.readinessConstants;
const EAGAIN = -errnoValue('EAGAIN');
const ENXIO = -errnoValue('ENXIO');
const ETIMEDOUT = -errnoValue('ETIMEDOUT');
const EEXIST = -errnoValue('EEXIST');
const ENOENT = -errnoValue('ENOENT');

/** Options of the FIFO opens. */
export interface FifoOpenOptions extends WaitOptions, SpinOptions {
  /**
   * Do not wait for the other side: a writer with no reader fails at once
   * with `ENXIO`, a reader opens at once. The end's descriptor also gets
   * O_NONBLOCK. Default false.
   */
  nonBlocking?: boolean;
}

/** Options of the synchronous FIFO opens. */
export interface FifoOpenSyncOptions extends SyncWaitOptions, SpinOptions {
  nonBlocking?: boolean;
}

function checkPath(path: unknown): string {
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) {
    throw new IpcError('ERR_IPC_INVALID_ADDRESS', `A FIFO path must be a non-empty string without NUL characters; got ${JSON.stringify(path)}.`);
  }
  return path;
}

/** Refuses anything at `path` but a FIFO (a symbolic link included); returns its identity. */
function checkFifoAt(path: string): { dev: number; ino: number } {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).errno ?? -errnoValue('ENOENT');
    throw systemError(errno, 'lstat', path, errno === ENOENT ? 'No FIFO there: create it first (Fifo.create, ipckit fifo create or mkfifo).' : undefined);
  }
  if (!st.isFIFO()) {
    const what = st.isSymbolicLink() ? 'a symbolic link (ipckit does not follow them)' : st.isDirectory() ? 'a directory' : 'not a FIFO';
    throw new IpcError('ERR_IPC_NOT_A_FIFO', `${path} is ${what}. Give the path of a FIFO (mkfifo).`, { address: path });
  }
  return { dev: st.dev, ino: st.ino };
}

/** Opens `path` with `flags`; checks that what was opened is the FIFO that was checked. */
function openChecked(path: string, flags: number, timeoutMs: number): number {
  const identity = checkFifoAt(path);
  const fd = native.openPath(path, flags | P.O_NOFOLLOW, timeoutMs);
  if (fd < 0) return fd;
  const st = fstatSync(fd);
  if (!st.isFIFO() || st.ino !== identity.ino || st.dev !== identity.dev) {
    native.close(fd);
    throw new IpcError('ERR_IPC_NOT_A_FIFO', `${path} was replaced while it was being opened; nothing was opened.`, { address: path });
  }
  return fd;
}

function openError(r: number, path: string, syscall = 'open'): IpcError {
  if (r === ENXIO) return systemError(r, syscall, path, 'No process has the FIFO open for reading and the open was told not to wait (nonBlocking): start the reader first, or let the open wait.');
  if (r === -errnoValue('ELOOP')) return new IpcError('ERR_IPC_NOT_A_FIFO', `${path} is a symbolic link; ipckit does not follow them.`, { address: path });
  return systemError(r, syscall, path);
}

/** Puts a descriptor in the mode the caller asked for (blocking unless nonBlocking). */
function setMode(fd: number, nonBlocking: boolean, path: string): void {
  const r = native.setNonBlocking(fd, nonBlocking);
  if (r < 0) {
    native.close(fd);
    throw systemError(r, 'fcntl', path);
  }
}

/**
 * Waits, on the event loop, until `ready()` returns a value. An inotify
 * watch on the path reports every open of the FIFO; each report (and the
 * start) calls `ready()` again. `cleanup` runs however it ends.
 */
function waitForPeer<T>(what: string, path: string, timeout: number, signal: AbortSignal | undefined,
  ready: () => T | undefined, cleanup: () => void): Promise<T> {
  const watch = native.inotifyWatch(path, P.IN_OPEN);
  if (watch < 0) {
    cleanup();
    return Promise.reject(systemError(watch, 'inotify_add_watch', path, 'ipckit watches the FIFO to learn when the other side opens it; this needs read permission on it.'));
  }
  let watcher: NativeFdWatcher | undefined;
  const finish = (): void => {
    watcher?.close();
    native.close(watch);
  };
  const pending = new Pending<T>(what, path, timeout, signal, (err) => {
    finish();
    cleanup();
    pending.reject(err);
  });
  const check = (): void => {
    native.drain(watch);
    let result: T | undefined;
    try {
      result = ready();
    } catch (err) {
      finish();
      cleanup();
      pending.reject(err);
      return;
    }
    if (result !== undefined) {
      finish();
      pending.resolve(result);
    }
  };
  watcher = new native.FdWatcher(watch, () => check());
  watcher.start(READABLE);
  check();
  return pending.promise;
}

/** Named pipes. All methods are static: a FIFO is a path, its ends are {@link PipeReadEnd} and {@link PipeWriteEnd}. */
export class Fifo {
  private constructor() { /* static only */ }

  /**
   * Creates a FIFO at `path` with exactly `mode` (default `0o600`; the umask
   * does not apply). Fails with `EEXIST` if anything is there, symbolic links
   * included.
   */
  static create(path: string, options?: { mode?: number }): void {
    checkPath(path);
    const mode = checkMode(checkOptions(options).mode);
    const r = native.mkfifo(path, 0o600 & mode);
    if (r < 0) throw systemError(r, 'mkfifo', path, r === EEXIST ? 'Something already exists at that path: use it (if it is a FIFO) or remove it first.' : undefined);
    // Set the exact mode through a descriptor, never through the path.
    const fd = openChecked(path, P.O_RDONLY | P.O_NONBLOCK, -1);
    if (fd < 0) throw systemError(fd, 'open', path);
    const c = native.fchmod(fd, mode);
    native.close(fd);
    if (c < 0) throw systemError(c, 'fchmod', path);
  }

  /** Removes the FIFO's path (it must be a FIFO); ends already open keep working. */
  static unlink(path: string): void {
    checkPath(path);
    checkFifoAt(path);
    try {
      unlinkSync(path);
    } catch (err) {
      throw systemError((err as NodeJS.ErrnoException).errno ?? ENOENT, 'unlink', path);
    }
  }

  /**
   * Opens the read end. Resolves once a writer is there — it has written
   * something, or has come and gone — without parking any thread. With
   * `{ nonBlocking: true }` it resolves at once.
   */
  static openRead(path: string, options?: FifoOpenOptions): Promise<PipeReadEnd> {
    let timeout: number;
    let signal: AbortSignal | undefined;
    let nonBlocking: boolean;
    let spin: number;
    let fd: number;
    try {
      checkPath(path);
      const opts = checkOptions(options);
      ({ timeout, signal, nonBlocking, spin } = openOptions(opts));
      if (signal?.aborted) throw abortError('openRead', path, signal);
      fd = openChecked(path, P.O_RDONLY | P.O_NONBLOCK, -1);
      if (fd < 0) throw openError(fd, path);
    } catch (err) {
      return Promise.reject(err);
    }
    const probe = Buffer.allocUnsafe(1);
    // A writer is there if a read finds data (kept for the first read) or
    // would wait (EAGAIN), or if one has already come and gone (POLLHUP).
    const writerSeen = (): Buffer | undefined => {
      const n = native.readFd(fd, probe, 0, 1, -1, 0);
      if (n === 1) return Buffer.from(probe);
      if (n === EAGAIN) return Buffer.alloc(0);
      if (n === 0) return (native.pollFd(fd, P.POLLIN, 0) & P.POLLHUP) !== 0 ? Buffer.alloc(0) : undefined;
      throw systemError(n, 'read', path);
    };
    const made = (initial: Buffer): PipeReadEnd => {
      setMode(fd, nonBlocking, path);
      return new PipeReadEnd(fd, path, initial, spin);
    };
    if (nonBlocking) return Promise.resolve(made(Buffer.alloc(0)));
    try {
      const first = writerSeen();
      if (first !== undefined) return Promise.resolve(made(first));
      if (timeout === 0) throw timeoutError('openRead', path, 0);
    } catch (err) {
      native.close(fd);
      return Promise.reject(err);
    }
    return waitForPeer('openRead', path, timeout, signal, () => {
      const first = writerSeen();
      return first === undefined ? undefined : made(first);
    }, () => native.close(fd));
  }

  /**
   * Opens the write end. Resolves once a reader has the FIFO open, without
   * parking any thread. With `{ nonBlocking: true }` it fails at once with
   * `ENXIO` when there is no reader.
   */
  static openWrite(path: string, options?: FifoOpenOptions): Promise<PipeWriteEnd> {
    let timeout: number;
    let signal: AbortSignal | undefined;
    let nonBlocking: boolean;
    let spin: number;
    try {
      checkPath(path);
      const opts = checkOptions(options);
      ({ timeout, signal, nonBlocking, spin } = openOptions(opts));
      if (signal?.aborted) throw abortError('openWrite', path, signal);
      const fd = openChecked(path, P.O_WRONLY | P.O_NONBLOCK, -1);
      if (fd >= 0) {
        setMode(fd, nonBlocking, path);
        return Promise.resolve(new PipeWriteEnd(fd, path, spin));
      }
      if (fd !== ENXIO || nonBlocking) throw openError(fd, path);
      if (timeout === 0) throw timeoutError('openWrite', path, 0);
    } catch (err) {
      return Promise.reject(err);
    }
    // No reader yet. Hold a write end, so a reader that opens in blocking
    // mode (cat, a C program) gets through at once and its open shows up in
    // the watch; then confirm a reader with a non-blocking probe open. To get
    // a write end with no reader, briefly hold a read-write one.
    let held = -1;
    const readerThere = (): PipeWriteEnd | undefined => {
      if (held < 0) {
        const placeholder = openChecked(path, P.O_RDWR | P.O_NONBLOCK, -1);
        if (placeholder < 0) throw openError(placeholder, path);
        held = openChecked(path, P.O_WRONLY | P.O_NONBLOCK, -1);
        native.close(placeholder);
        if (held < 0) throw openError(held, path);
      }
      const probe = native.openPath(path, P.O_WRONLY | P.O_NONBLOCK | P.O_NOFOLLOW, -1);
      if (probe === ENXIO) return undefined;
      if (probe < 0) throw openError(probe, path);
      native.close(probe);
      const fd = held;
      held = -1;
      setMode(fd, nonBlocking, path);
      return new PipeWriteEnd(fd, path, spin);
    };
    return waitForPeer('openWrite', path, timeout, signal, readerThere, () => {
      if (held >= 0) native.close(held);
      held = -1;
    });
  }

  /** Opens the read end, blocking the calling thread until a writer opens the FIFO. */
  static openReadSync(path: string, options?: FifoOpenSyncOptions): PipeReadEnd {
    return new PipeReadEnd(Fifo.#openSync(path, options, P.O_RDONLY, 'openReadSync'), path, undefined, checkSpin(options?.spin));
  }

  /** Opens the write end, blocking the calling thread until a reader opens the FIFO. */
  static openWriteSync(path: string, options?: FifoOpenSyncOptions): PipeWriteEnd {
    return new PipeWriteEnd(Fifo.#openSync(path, options, P.O_WRONLY, 'openWriteSync'), path, checkSpin(options?.spin));
  }

  static #openSync(path: string, options: FifoOpenSyncOptions | undefined, access: number, what: string): number {
    checkPath(path);
    const opts = checkOptions(options);
    const timeout = checkTimeout(opts.timeout);
    const nonBlocking = checkNonBlocking(opts.nonBlocking);
    if (nonBlocking || timeout === 0) {
      const fd = openChecked(path, access | P.O_NONBLOCK, -1);
      if (fd === ENXIO && !nonBlocking) throw timeoutError(what, path, 0);
      if (fd < 0) throw openError(fd, path);
      setMode(fd, nonBlocking, path);
      return fd;
    }
    // A blocking open, interrupted at the deadline by ipckit's wake signal.
    const fd = openChecked(path, access, nativeTimeout(timeout));
    if (fd === ETIMEDOUT) throw timeoutError(what, path, timeout);
    if (fd < 0) throw openError(fd, path);
    return fd;
  }
}

function checkNonBlocking(value: unknown): boolean {
  if (value !== undefined && typeof value !== 'boolean') throw invalidArgument('nonBlocking', value, 'a boolean');
  return value === true;
}

function openOptions(opts: Partial<FifoOpenOptions>): { timeout: number; signal: AbortSignal | undefined; nonBlocking: boolean; spin: number } {
  return {
    timeout: checkTimeout(opts.timeout), signal: checkSignal(opts.signal), nonBlocking: checkNonBlocking(opts.nonBlocking),
    spin: checkSpin(opts.spin),
  };
}
