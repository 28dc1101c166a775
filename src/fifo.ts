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
 * The opens take the ends' `codec` (and, for a read end, `maxMessageSize`):
 * the ends then send and receive typed messages, as {@link pipe}'s do.
 *
 * @module
 */
import { type Stats, fstatSync, lstatSync, unlinkSync } from 'node:fs';
import { E, IpcError, defineHints, limitError, systemError } from './errors.js';
import { lazily, native } from './native.js';
import {
  type EndSettings, PipeReadEnd, type PipeReadEndOptions, PipeWriteEnd, type PipeWriteEndOptions, READ_END_KEYS, WRITE_END_KEYS, endSettings,
} from './pipe.js';
import { type Codec } from './internal/codec.js';
import { OwnedFd } from './internal/handle.js';
import { type LaneOwner, NotifyLane, type Operation, run, runSync } from './internal/operation.js';
import { describeSetting } from './internal/limits.js';
import { READABLE, type ReadinessSubscriber, type Watch, watchDescriptor } from './internal/readiness.js';
import { type OwnerOption, checkOwner, verifyOwnership } from './internal/trust.js';
import { checkBoolean, checkMode, checkOptions, isWellFormed } from './internal/validate.js';
import { type SpinOptions, type SyncWaitOptions, type WaitOptions, checkSpin } from './internal/wait.js';

const C = lazily(() => native.constants);

defineHints({
  open: {
    ENXIO: 'No process has the FIFO open for reading and the open was told not to wait (nonBlocking): start the reader first, or let the open wait.',
  },
  mkfifo: { EEXIST: 'Something already exists at that path: use it (if it is a FIFO) or remove it first.' },
  inotify_add_watch: { EACCES: 'ipckit watches the FIFO to learn when the other side opens it; this needs read permission on it.' },
});

/** Options of the FIFO opens (for a read end, see {@link FifoOpenReadOptions}). */
export interface FifoOpenOptions<T = Buffer> extends WaitOptions, PipeWriteEndOptions<T> {
  /**
   * Do not wait for the other side: a writer with no reader fails at once
   * with `ENXIO`, a reader opens at once. The end's descriptor also gets
   * O_NONBLOCK. Default false.
   */
  nonBlocking?: boolean;
  /**
   * The uid the FIFO must belong to, or `'any'`. Default: this process's
   * effective uid. Checked before opening: a FIFO another user placed at the
   * path is refused with `ERR_IPC_UNTRUSTED` without meeting its other end.
   */
  owner?: OwnerOption;
}

/** Options of the synchronous FIFO opens. */
export interface FifoOpenSyncOptions<T = Buffer> extends SyncWaitOptions, PipeWriteEndOptions<T> {
  /** See {@link FifoOpenOptions.nonBlocking}. */
  nonBlocking?: boolean;
  /** See {@link FifoOpenOptions.owner}. */
  owner?: OwnerOption;
}

/** Options of {@link Fifo.openRead}: those of every open, and the largest message the read end receives. */
export interface FifoOpenReadOptions<T = Buffer> extends FifoOpenOptions<T>, Pick<PipeReadEndOptions<T>, 'maxMessageSize'> {}

/** Options of {@link Fifo.openReadSync}. */
export interface FifoOpenReadSyncOptions<T = Buffer> extends FifoOpenSyncOptions<T>, Pick<PipeReadEndOptions<T>, 'maxMessageSize'> {}

const READ_OPEN_KEYS = ['nonBlocking', 'owner', ...READ_END_KEYS] as const;
const WRITE_OPEN_KEYS = ['nonBlocking', 'owner', ...WRITE_END_KEYS] as const;

/** How often a waiting async writer looks for a reader still blocked in its open. */
const WRITER_LOOK_MS = 20;

function checkPath(path: unknown): string {
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0') || !isWellFormed(path)) {
    throw new IpcError('ERR_IPC_INVALID_ADDRESS',
      `A FIFO path must be a non-empty string without NUL characters or lone UTF-16 surrogates (they have no UTF-8 form); got ${JSON.stringify(path)}.`);
  }
  return path;
}

/**
 * Refuses anything at `path` but a FIFO (a symbolic link included) and, with
 * `owner`, a FIFO another user owns.
 */
function checkFifoAt(path: string, owner?: OwnerOption): void {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    throw noFifoError((err as NodeJS.ErrnoException).errno ?? E.ENOENT, 'lstat', path);
  }
  checkFifo(st, path, owner);
}

function noFifoError(errno: number, syscall: string, path: string): IpcError {
  return systemError(errno, syscall, path, errno === E.ENOENT ? 'No FIFO there: create it first (Fifo.create, ipckit fifo create or mkfifo).' : undefined);
}

/** Refuses `st`, found at `path`, unless it is a FIFO (of `owner`, when given). */
function checkFifo(st: Stats, path: string, owner: OwnerOption | undefined): void {
  if (!st.isFIFO()) {
    const what = st.isSymbolicLink() ? 'a symbolic link (ipckit does not follow them)' : st.isDirectory() ? 'a directory' : 'not a FIFO';
    throw new IpcError('ERR_IPC_NOT_A_FIFO', `${path} is ${what}. Give the path of a FIFO (mkfifo).`, { address: path });
  }
  if (owner !== undefined) verifyOwnership({ uid: st.uid, mode: st.mode }, owner, undefined, path, 'FIFO');
}

/**
 * Opens the FIFO at `path` with `flags` (waiting at most `timeoutMs` for a
 * blocking open): a descriptor, or -errno (-ETIMEDOUT when the wait ran out).
 * The path is resolved once, by an O_PATH open that opens nothing (no FIFO's
 * other side is met, no device's driver runs); what it names is checked
 * through that descriptor and opened through /proc/self/fd. So a path that
 * changes meanwhile (a directory swapped for a symbolic link) cannot make
 * ipckit open another file, nor meet a FIFO the owner check refuses.
 */
function openChecked(path: string, flags: number, owner: OwnerOption | undefined, timeoutMs = -1): number {
  const held = native.openPath(path, C.O_PATH | C.O_NOFOLLOW, -1);
  if (held < 0) throw noFifoError(held, 'open', path);
  try {
    checkFifo(fstatSync(held), path, owner);
    return native.openPath(`/proc/self/fd/${held}`, flags, timeoutMs);
  } finally {
    native.close(held);
  }
}

/** A *Sync open that may sleep: a blocking open bounded by `timeout`; `undefined` when the time ran out. */
function blockingOpen(path: string, access: number, owner: OwnerOption, timeout: number): number | undefined {
  const fd = openChecked(path, access, owner, timeout);
  if (fd === E.ETIMEDOUT) return undefined;
  if (fd < 0) throw systemError(fd, 'open', path);
  return fd;
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
 * The inotify instance of this thread: one for every FIFO open that waits
 * (the kernel allows a user only fs.inotify.max_user_instances of them),
 * with one watch per FIFO, kept while any open of it waits. Each report
 * makes every waiting open look again; they are few, and looking is cheap.
 */
class OpenWatches implements ReadinessSubscriber {
  #fd = -1;
  #owned: OwnedFd | undefined;
  #watch: Watch | undefined;
  /** The waiting opens of each watched FIFO. */
  readonly #byWd = new Map<number, Set<PeerWait>>();

  /** Watches `path` for `open`; returns the watch descriptor to give back with {@link remove}. */
  add(path: string, open: PeerWait): number {
    if (this.#fd < 0) {
      const fd = native.inotifyInit();
      if (fd < 0) {
        throw fd === E.EMFILE
          ? limitError(fd, 'inotify_init1', path, 'this user has fs.inotify.max_user_instances inotify instances already ' +
            `(${describeSetting('/proc/sys/fs/inotify/max_user_instances')}); raise it: sysctl fs.inotify.max_user_instances=N.`)
          : systemError(fd, 'inotify_init1', path);
      }
      const owned = new OwnedFd(fd, true);
      try {
        this.#watch = watchDescriptor(fd);
      } catch (err) {
        // No watch, no instance: the next open tries again from the start.
        owned.close();
        throw err;
      }
      this.#owned = owned;
      this.#fd = fd;
      this.#watch.subscribe(this, READABLE);
    }
    const wd = native.inotifyAddWatch(this.#fd, path, C.IN_OPEN);
    if (wd < 0) {
      if (this.#byWd.size === 0) this.#close();
      throw wd === E.ENOSPC
        ? limitError(wd, 'inotify_add_watch', path, `this user watches ${describeSetting('/proc/sys/fs/inotify/max_user_watches')} ` +
          'files already; raise it: sysctl fs.inotify.max_user_watches=N.')
        : systemError(wd, 'inotify_add_watch', path);
    }
    const opens = this.#byWd.get(wd) ?? new Set();
    opens.add(open);
    this.#byWd.set(wd, opens);
    return wd;
  }

  remove(wd: number, open: PeerWait): void {
    const opens = this.#byWd.get(wd);
    if (opens === undefined || !opens.delete(open) || opens.size > 0) return;
    this.#byWd.delete(wd);
    native.inotifyRmWatch(this.#fd, wd);
    if (this.#byWd.size === 0) this.#close();
  }

  onReady(): void {
    native.drainEvents(this.#fd);
    for (const opens of [...this.#byWd.values()]) for (const open of [...opens]) open.lane.wake();
  }

  #close(): void {
    this.#watch?.release();
    this.#watch = undefined;
    this.#owned?.close();
    this.#owned = undefined;
    this.#fd = -1;
  }
}

const openWatches = new OpenWatches();

/**
 * Where an open waits for the other side: an inotify watch on the path
 * reports every open of the FIFO (while anyone waits), and each report makes
 * the waiting opens look again. Nothing is parked and nothing is polled.
 */
class PeerWait implements LaneOwner {
  readonly address: string;
  readonly lane: NotifyLane;
  readonly #lookEvery: number | undefined;
  #wd = -1;
  #timer: NodeJS.Timeout | undefined;

  /** `lookEvery`: also look again every that many ms (a writer: readers blocked in open show no event). */
  constructor(path: string, spin: number, lookEvery?: number) {
    this.address = path;
    this.#lookEvery = lookEvery;
    this.lane = new NotifyLane(this, spin, () => this.#arm(), () => this.#disarm());
  }

  check(): void { /* An open cannot be closed: it ends by itself. */ }

  laneBusy(): void { /* Nothing to reject on close. */ }

  #arm(): void {
    this.#wd = openWatches.add(this.address, this);
    // The other side may have opened between the first attempt and the watch.
    queueMicrotask(() => this.lane.wake());
    // The pending open keeps the process alive through the watch; the timer need not.
    if (this.#lookEvery !== undefined) this.#timer = setInterval(() => this.lane.wake(), this.#lookEvery).unref();
  }

  #disarm(): void {
    if (this.#wd >= 0) openWatches.remove(this.#wd, this);
    this.#wd = -1;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
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
    const mode = checkMode(checkOptions(options, ['mode']).mode);
    const r = native.mkfifo(path, 0o600 & mode);
    if (r < 0) throw systemError(r, 'mkfifo', path);
    // Set the exact mode through a descriptor, never through the path.
    const fd = openChecked(path, C.O_RDONLY | C.O_NONBLOCK, checkOwner(undefined));
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
      throw systemError((err as NodeJS.ErrnoException).errno ?? E.ENOENT, 'unlink', path);
    }
  }

  /**
   * Opens the read end. Resolves once a writer is there — it has written
   * something, or has come and gone — without parking any thread. With
   * `{ nonBlocking: true }` it resolves at once. With `codec` (and
   * `maxMessageSize`), the end receives typed messages ({@link PipeReadEnd.receive}).
   */
  static openRead<T = any>(path: string, options: FifoOpenReadOptions<T> & { codec: 'json' | 'msgpack' }): Promise<PipeReadEnd<T>>;
  static openRead<T>(path: string, options: FifoOpenReadOptions<T> & { codec: Codec<T> }): Promise<PipeReadEnd<T>>;
  static openRead<T = Buffer>(path: string, options?: FifoOpenReadOptions<T>): Promise<PipeReadEnd<T>>;
  static openRead<T>(path: string, options?: FifoOpenReadOptions<T>): Promise<PipeReadEnd<T>> {
    return Fifo.#open('openRead', path, options, READ_OPEN_KEYS, (opts) => readOpen<T>(path, opts));
  }

  /**
   * Opens the write end. Resolves once a reader has the FIFO open, without
   * parking any thread. With `{ nonBlocking: true }` it fails at once with
   * `ENXIO` when there is no reader. With `codec`, the end sends typed
   * messages ({@link PipeWriteEnd.send}).
   */
  static openWrite<T = any>(path: string, options: FifoOpenOptions<T> & { codec: 'json' | 'msgpack' }): Promise<PipeWriteEnd<T>>;
  static openWrite<T>(path: string, options: FifoOpenOptions<T> & { codec: Codec<T> }): Promise<PipeWriteEnd<T>>;
  static openWrite<T = Buffer>(path: string, options?: FifoOpenOptions<T>): Promise<PipeWriteEnd<T>>;
  static openWrite<T>(path: string, options?: FifoOpenOptions<T>): Promise<PipeWriteEnd<T>> {
    return Fifo.#open('openWrite', path, options, WRITE_OPEN_KEYS, (opts) => writeOpen<T>(path, opts), WRITER_LOOK_MS);
  }

  /** Opens the read end, blocking the calling thread until a writer opens the FIFO. Options as {@link openRead}'s, `timeout` but no `signal`. */
  static openReadSync<T = any>(path: string, options: FifoOpenReadSyncOptions<T> & { codec: 'json' | 'msgpack' }): PipeReadEnd<T>;
  static openReadSync<T>(path: string, options: FifoOpenReadSyncOptions<T> & { codec: Codec<T> }): PipeReadEnd<T>;
  static openReadSync<T = Buffer>(path: string, options?: FifoOpenReadSyncOptions<T>): PipeReadEnd<T>;
  static openReadSync<T>(path: string, options?: FifoOpenReadSyncOptions<T>): PipeReadEnd<T> {
    return Fifo.#openSync('openReadSync', path, options, READ_OPEN_KEYS, (opts) => readOpen<T>(path, opts, true));
  }

  /** Opens the write end, blocking the calling thread until a reader opens the FIFO. Options as {@link openWrite}'s, `timeout` but no `signal`. */
  static openWriteSync<T = any>(path: string, options: FifoOpenSyncOptions<T> & { codec: 'json' | 'msgpack' }): PipeWriteEnd<T>;
  static openWriteSync<T>(path: string, options: FifoOpenSyncOptions<T> & { codec: Codec<T> }): PipeWriteEnd<T>;
  static openWriteSync<T = Buffer>(path: string, options?: FifoOpenSyncOptions<T>): PipeWriteEnd<T>;
  static openWriteSync<T>(path: string, options?: FifoOpenSyncOptions<T>): PipeWriteEnd<T> {
    return Fifo.#openSync('openWriteSync', path, options, WRITE_OPEN_KEYS, (opts) => writeOpen<T>(path, opts, true));
  }

  static #open<E, T>(what: string, path: string, options: FifoOpenReadOptions<T> | undefined, keys: readonly string[],
    prepare: (opts: OpenChoice<T>) => OpenOperation<E>, lookEvery?: number): Promise<E> {
    let wait: PeerWait;
    try {
      wait = new PeerWait(checkPath(path), spinOf(options), lookEvery);
    } catch (err) {
      return Promise.reject(err);
    }
    let op: OpenOperation<E> | undefined;
    return run(wait.lane, what, options, keys, (o) => (op = prepare(choice(o)))).finally(() => op?.cleanup()) as Promise<E>;
  }

  static #openSync<E, T>(what: string, path: string, options: FifoOpenReadSyncOptions<T> | undefined, keys: readonly string[],
    prepare: (opts: OpenChoice<T>) => OpenOperation<E>): E {
    const wait = new PeerWait(checkPath(path), spinOf(options));
    let op: OpenOperation<E> | undefined;
    try {
      return runSync(wait.lane, what, options, keys, (o) => (op = prepare(choice(o)))) as E;
    } finally {
      op?.cleanup();
    }
  }
}

/** The spin option, for the lane (the engine checks the options object itself). */
function spinOf(options: unknown): number {
  return checkSpin(options !== null && typeof options === 'object' ? (options as SpinOptions).spin : undefined);
}

interface OpenChoice<T> {
  nonBlocking: boolean;
  owner: OwnerOption;
  /** How the end is made (the spin, codec and message limit it gets). */
  settings: EndSettings<T>;
}

function choice<T>(o: Partial<FifoOpenReadOptions<T>>): OpenChoice<T> {
  return { nonBlocking: checkBoolean(o.nonBlocking, 'nonBlocking'), owner: checkOwner(o.owner), settings: endSettings(o) };
}

/** An open as an operation, and what to release when it ends without an end. */
interface OpenOperation<E> extends Operation<E> {
  cleanup(): void;
}

/**
 * Opening the read end. A writer is there if a non-blocking read finds data
 * (kept for the first read) or would wait (EAGAIN), or if one has already
 * come and gone (POLLHUP). `sync`: a step that may sleep makes a blocking
 * open, bounded by its timeout.
 */
function readOpen<T>(path: string, { nonBlocking, owner, settings }: OpenChoice<T>, sync = false): OpenOperation<PipeReadEnd<T>> {
  let fd = -1;
  const probe = Buffer.allocUnsafe(1);
  const made = (initial: Buffer): PipeReadEnd<T> => {
    const end = fd;
    fd = -1;
    setMode(end, nonBlocking, path);
    return new PipeReadEnd(end, settings, path, initial);
  };
  const writerSeen = (): Buffer | undefined => {
    const n = native.readFd(fd, probe, 0, 1, 0);
    if (n === 1) return Buffer.from(probe);
    if (n === E.EAGAIN) return Buffer.alloc(0);
    if (n === 0) return (native.pollFd(fd, C.POLLIN, 0) & C.POLLHUP) !== 0 ? Buffer.alloc(0) : undefined;
    throw systemError(n, 'read', path);
  };
  return {
    step: (timeout) => {
      if (sync && timeout !== 0 && !nonBlocking) {
        const blocking = blockingOpen(path, C.O_RDONLY, owner, timeout);
        return blocking === undefined ? undefined : new PipeReadEnd(blocking, settings, path);
      }
      if (fd < 0) {
        fd = openChecked(path, C.O_RDONLY | C.O_NONBLOCK, owner);
        if (fd < 0) {
          const r = fd;
          fd = -1;
          throw systemError(r, 'open', path);
        }
      }
      if (nonBlocking) return made(Buffer.alloc(0));
      const first = writerSeen();
      return first === undefined ? undefined : made(first);
    },
    cleanup: () => {
      if (fd >= 0) native.close(fd);
      fd = -1;
    },
  };
}

/**
 * Opening the write end: a non-blocking write-only open succeeds once a
 * reader is there, including a reader still blocked in its own open (cat, a
 * C program), which counts as a reader but shows no inotify event until its
 * open completes; the waiting open therefore also looks every
 * {@link WRITER_LOOK_MS}. (Holding a write end to let such a reader through
 * would need a momentary read-write open, which would also let through any
 * other program's blocked writer, to write into a FIFO with no reader.)
 */
function writeOpen<T>(path: string, { nonBlocking, owner, settings }: OpenChoice<T>, sync = false): OpenOperation<PipeWriteEnd<T>> {
  return {
    step: (timeout) => {
      if (sync && timeout !== 0 && !nonBlocking) {
        const blocking = blockingOpen(path, C.O_WRONLY, owner, timeout);
        return blocking === undefined ? undefined : new PipeWriteEnd(blocking, settings, path);
      }
      const fd = openChecked(path, C.O_WRONLY | C.O_NONBLOCK, owner);
      if (fd === E.ENXIO && !nonBlocking) return undefined;
      if (fd < 0) throw systemError(fd, 'open', path);
      setMode(fd, nonBlocking, path);
      return new PipeWriteEnd(fd, settings, path);
    },
    cleanup: () => undefined,
  };
}
