/**
 * The kernel's own semaphores, the ones C programs, Python and `ipcs` use:
 *
 * - {@link NamedSemaphore} (`sem_open`): a counter named `/like-this`,
 *   shared with every program that calls `sem_open` on the name. It is a
 *   32-byte file in /dev/shm holding glibc's `sem_t`; waiting and posting
 *   touch only that memory (a system call only to sleep or to wake).
 * - {@link SemaphoreSet} (`semget`): a set of counters addressed by a
 *   System V key, changed by atomic multi-semaphore operations (`semop`),
 *   with `SEM_UNDO`: the kernel reverses a process's operations when it
 *   dies, even by SIGKILL.
 *
 * Both offer the blocking triple: `op()` (a Promise that never blocks the
 * event loop; the wait runs on an ipckit waiter thread, never on the libuv
 * pool), `opSync()` and `tryOp()`.
 *
 * @module
 */
import { existsSync, fstatSync, readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { E, IpcError, defineHints, limitError, systemError } from './errors.js';
import { lazily, native } from './native.js';
import { type SysvAddress, checkPosixName, resolveSysvAddress } from './internal/address.js';
import { Handle, createOrOpen } from './internal/handle.js';
import { DONE, JobLane, type Operation, resolvedNow, run, runSync } from './internal/operation.js';
import { type OwnerOption, checkOwner, verifyOwnership } from './internal/trust.js';
import { checkBoolean, checkInteger, checkMode, checkOptions, invalidArgument } from './internal/validate.js';
import { type SpinOptions, type SyncWaitOptions, type WaitOptions, checkSpin } from './internal/wait.js';
import { SEM_VALUE_MAX } from './lock.js';
import { type DevShmFile, devShmCreateError, openChecked, statOfFd, flaggedTruncated } from './shared-memory.js';

const C = lazily(() => native.constants);

defineHints({
  sem_open: {
    EEXIST: 'The semaphore already exists: use NamedSemaphore.open() or openOrCreate(), or remove it first (ipckit rm).',
    ENOENT: 'No such semaphore: create it first (NamedSemaphore.create or ipckit sem create).',
    EACCES: 'Its mode does not let this user read and write it.',
  },
  sem_unlink: { ENOENT: 'No such semaphore (already removed?).' },
  semget: {
    EEXIST: 'A semaphore set with this key already exists: use SemaphoreSet.open() or openOrCreate(), or remove it first (ipckit rm).',
    ENOENT: 'No semaphore set has this key: create it first (SemaphoreSet.create or ipckit sem create).',
    EACCES: 'Its mode does not let this user read and alter it.',
  },
  ...Object.fromEntries(['semop', 'semctl'].map((call) => [call, {
    EIDRM: 'The semaphore set was removed; open or create it again.',
    EINVAL: 'The semaphore set was removed (or never existed); open or create it again.',
  }])),
});

/** The halves of a sem_t's 64-bit data word, as 32-bit indices: the value is its low half. */
const VALUE = endianness() === 'LE' ? 0 : 1;
const WAITERS = 1 - VALUE;

/** @internal Size of glibc's `sem_t` on a 64-bit machine: the size of a named semaphore's file. */
export const SEM_FILE_SIZE = 32;

/** Longest name after the "/" of a named semaphore, bytes: NAME_MAX less the "sem." glibc puts in front. */
export const SEM_NAME_MAX = 251;

/** Largest value of a System V semaphore (`SEMVMX`, fixed in the kernel). */
export const SEMVMX = 32767;

/** Largest undo adjustment a process may accumulate on one System V semaphore (`SEMAEM`, fixed in the kernel). */
export const SEMAEM = 32767;

const KERNEL_SEM = '/proc/sys/kernel/sem';

const semFile = (name: string): DevShmFile => ({ file: `/sem.${name.slice(1)}`, label: name, kind: 'a POSIX named semaphore', syscall: 'sem_open' });

function checkSemName(name: unknown): string {
  return checkPosixName(name, 'semaphore', SEM_NAME_MAX);
}

// ===========================================================================
// POSIX named semaphores

/** Options of {@link NamedSemaphore.open}. */
export interface NamedSemaphoreOpenOptions extends SpinOptions {
  /** Who must own an existing semaphore (default: this process's effective uid; `'any'` accepts anyone). */
  owner?: OwnerOption;
}

/** Options of {@link NamedSemaphore.create} and {@link NamedSemaphore.openOrCreate}. */
export interface NamedSemaphoreCreateOptions extends NamedSemaphoreOpenOptions {
  /** Initial value, 0 to SEM_VALUE_MAX (default 0). */
  value?: number;
  /** Permission bits, set exactly (the umask does not apply); default 0o600. */
  mode?: number;
}

/** What `stat()` tells of a named semaphore's file. */
export interface NamedSemaphoreStat {
  /** Permission bits. */
  mode: number;
  /** Owner's uid. */
  uid: number;
  /** Owner's gid. */
  gid: number;
  /** Last change of the file's owner or mode (`st_ctime`). */
  changeTime: Date;
}

/**
 * A POSIX named semaphore: a counter that any process may `post` (add one)
 * and `wait` on (take one, sleeping while it is zero). The same object as
 * C's `sem_open(name)` and Python's `posix_ipc.Semaphore(name)`.
 *
 * The semaphore lives until `unlink()` (or a reboot): it has no owner that
 * the kernel tracks, so a process killed after `wait` and before `post`
 * leaves it taken for good. For a lock that survives its holder's death,
 * use a {@link SemaphoreSet} operation with `undo`, or an in-segment
 * `Mutex`.
 *
 * @example
 * ```ts
 * import { NamedSemaphore } from 'ipckit';
 *
 * // One printer: at most one process prints at a time.
 * const printer = NamedSemaphore.openOrCreate('/ipckit-example-printer', { value: 1 });
 * try {
 *   await printer.wait({ timeout: 1000 });
 *   try {
 *     console.log('printing');
 *   } finally {
 *     printer.post();
 *   }
 * } finally {
 *   printer.close();
 *   printer.unlink();
 * }
 * ```
 */
export class NamedSemaphore extends Handle {
  /** The name, `/like-this`. */
  readonly name: string;
  /** Whether this handle created the semaphore. */
  readonly created: boolean;

  /** The mapping of the file, shared with this thread's other handles on it (released after the last). */
  readonly #mapping: SharedMapping;
  /** The sem_t within it. */
  readonly #view: Uint8Array;
  /** Its data word as two 32-bit halves: [VALUE] and [WAITERS] (see {@link VALUE}). */
  readonly #words: Int32Array;
  /** The mapping's truncation flag (see shared-memory.ts), or -1. */
  readonly #slot: number;
  readonly #lane: JobLane;

  private constructor(name: string, mapping: SharedMapping, created: boolean, spin: number) {
    super();
    this.name = name;
    this.created = created;
    this.#mapping = mapping;
    const { buffer } = mapping;
    dropped.register(this, mapping, this);
    this.#view = new Uint8Array(buffer, 0, SEM_FILE_SIZE);
    this.#words = new Int32Array(buffer, 0, 2);
    this.#slot = native.guardSlot(buffer);
    this.#lane = new JobLane(this, spin);
  }

  /** Creates a new semaphore; fails with `EEXIST` if the name is taken. */
  static create(name: string, options?: NamedSemaphoreCreateOptions): NamedSemaphore {
    const opts = checkOptions(options, CREATE_KEYS);
    checkSemName(name);
    const sem = NamedSemaphore.#create(name, opts);
    if (sem === undefined) throw systemError(E.EEXIST, 'sem_open', name);
    return sem;
  }

  /** Opens an existing semaphore; it must belong to `owner` (this user by default). */
  static open(name: string, options?: NamedSemaphoreOpenOptions): NamedSemaphore {
    const opts = checkOptions(options, OPEN_KEYS);
    checkSemName(name);
    const sem = NamedSemaphore.#open(name, opts, undefined);
    if (sem === undefined) throw systemError(E.ENOENT, 'sem_open', name);
    return sem;
  }

  /**
   * Opens the semaphore, creating it with `options` if there is none. Race
   * free: whichever process creates it, every caller gets the same
   * semaphore, initialized once (an existing one keeps its value). With
   * `mode`, an existing semaphore must grant nothing outside it.
   */
  static openOrCreate(name: string, options?: NamedSemaphoreCreateOptions): NamedSemaphore {
    const opts = checkOptions(options, CREATE_KEYS);
    checkSemName(name);
    const expectMode = opts.mode === undefined ? undefined : checkMode(opts.mode);
    return createOrOpen(() => NamedSemaphore.#create(name, opts), () => NamedSemaphore.#open(name, opts, expectMode), 'sem_open', name);
  }

  /** Removes the name (`sem_unlink`); processes that have it open keep using it. */
  static unlink(name: string): void {
    checkSemName(name);
    const r = native.shmUnlink(semFile(name).file);
    if (r < 0) throw systemError(r, 'sem_unlink', name);
  }

  /**
   * The semaphore is made without a name (O_TMPFILE), initialized by
   * glibc's sem_init, and only then named (linkat): no process ever sees it
   * half made, as with glibc's own sem_open. `undefined` if the name is taken.
   */
  static #create(name: string, opts: NamedSemaphoreCreateOptions): NamedSemaphore | undefined {
    const value = opts.value === undefined ? 0 : checkInteger(opts.value, 'value', 0, SEM_VALUE_MAX);
    const mode = checkMode(opts.mode);
    const spin = checkSpin(opts.spin);
    checkOwner(opts.owner);
    const at = semFile(name);
    const fd = native.shmCreateUnnamed(mode);
    if (fd < 0) throw devShmCreateError(fd, 'sem_open', name);
    let buffer: SharedArrayBuffer | undefined;
    try {
      // Taken: no need to make it only to find it out.
      if (existsSync(`/dev/shm${at.file}`)) return undefined;
      const r = native.allocate(fd, SEM_FILE_SIZE);
      if (r < 0) {
        throw r === E.ENOSPC || r === E.EFBIG ? devShmCreateError(r, 'sem_open', name, SEM_FILE_SIZE) : systemError(r, 'sem_open', name);
      }
      const mapped = native.mapFd(fd, SEM_FILE_SIZE, false);
      if (typeof mapped === 'number') throw systemError(mapped, 'mmap', name);
      buffer = mapped;
      const init = native.semInit(new Uint8Array(buffer, 0, SEM_FILE_SIZE), value);
      if (init < 0) throw systemError(init, 'sem_init', name);
      const p = native.shmPublish(fd, at.file);
      if (p === E.EEXIST) {
        native.detachMapping(buffer);
        return undefined;
      }
      if (p < 0) throw systemError(p, 'linkat', name);
      // Mapped again through its name, so that /proc (maps, and ipckit ls) shows the name, not the unnamed file.
      const byName = native.shmOpen(at.file, C.O_RDWR, 0);
      let mapping: SharedMapping | undefined;
      if (byName >= 0) {
        try {
          const [a, b] = [fstatSync(fd), fstatSync(byName)];
          if (a.ino === b.ino && a.dev === b.dev) mapping = shareMapping(byName, undefined, name);
        } finally {
          native.close(byName);
        }
      }
      if (mapping === undefined) {
        mapping = shareMapping(fd, buffer);
      } else {
        native.detachMapping(buffer);
      }
      buffer = undefined;
      return new NamedSemaphore(name, mapping, true, spin);
    } catch (err) {
      if (buffer !== undefined) native.detachMapping(buffer);
      throw err;
    } finally {
      native.close(fd);
    }
  }

  /** Opens a semaphore that must belong to `opts.owner` and, with `expectMode`, grant nothing outside it. */
  static #open(name: string, opts: NamedSemaphoreOpenOptions, expectMode: number | undefined): NamedSemaphore | undefined {
    const spin = checkSpin(opts.spin);
    const owner = checkOwner(opts.owner);
    const at = semFile(name);
    const fd = openChecked(at, C.O_RDWR, (stat) => {
      verifyOwnership(stat, owner, expectMode, name, 'semaphore');
      if (stat.size !== SEM_FILE_SIZE) throw notASemaphore(name, stat.size);
    });
    if (fd === undefined) return undefined;
    try {
      // Checked on the path; the open file could have been resized since.
      const size = statOfFd(fd, at).size;
      if (size !== SEM_FILE_SIZE) throw notASemaphore(name, size);
      return new NamedSemaphore(name, shareMapping(fd, undefined, name), false, spin);
    } finally {
      native.close(fd);
    }
  }

  get address(): string {
    return this.name;
  }

  /** The current value (`sem_getvalue`): how many `wait` calls would succeed now. */
  get value(): number {
    return this.#read('value', VALUE);
  }

  /**
   * How many threads (of any process) are registered as waiting: those in
   * a wait that found the value zero, asleep or about to be. glibc keeps
   * this count in the semaphore so that `post` knows whether to wake anyone.
   */
  get waiters(): number {
    return this.#read('waiters', WAITERS);
  }

  /** One half of the semaphore's 64-bit word; checked again after the read, whose fault is what reveals a truncated file. */
  #read(what: string, half: number): number {
    this.check(what);
    const value = Atomics.load(this.#words, half) >>> 0;
    this.check(what);
    return value;
  }

  /** Mode and owner of the semaphore's file (it may have been changed since it was opened). */
  stat(): NamedSemaphoreStat {
    this.check('stat');
    const at = semFile(this.name);
    const fd = openChecked(at, C.O_RDONLY, () => undefined);
    if (fd === undefined) throw systemError(E.ENOENT, 'sem_open', this.name, 'The name was removed (sem_unlink); this handle still works, but has no file to describe.');
    try {
      const s = statOfFd(fd, at);
      return { mode: s.mode, uid: s.uid, gid: s.gid, changeTime: s.changeTime };
    } finally {
      native.close(fd);
    }
  }

  /** Takes one unit, waiting while the value is zero. Never blocks the event loop. */
  wait(options?: WaitOptions): Promise<void> {
    // Uncontended and without options: the unit is taken here, as the engine's first attempt would.
    try {
      if (options === undefined && this.#uncontended('wait')) return resolvedNow(undefined);
    } catch (err) {
      return Promise.reject(err);
    }
    return run(this.#lane, 'wait', options, NO_KEYS, this.#waitOp);
  }

  /** Takes one unit, blocking the calling thread while the value is zero. */
  waitSync(options?: SyncWaitOptions): void {
    if (options === undefined && this.#uncontended('waitSync')) return;
    runSync(this.#lane, 'waitSync', options, NO_KEYS, this.#waitOp);
  }

  /** Takes one unit if the value is not zero now (`sem_trywait`); `false` otherwise (or while earlier waits of this handle wait). */
  tryWait(): boolean {
    this.check('tryWait');
    const took = !this.#lane.busy && this.#take();
    // The read that faults is what reveals a truncated file: look again.
    this.check('tryWait');
    return took;
  }

  /**
   * Adds `n` (default 1) at once, waking up to `n` waiters (`sem_post`,
   * n times in one step). Fails with `EOVERFLOW`, adding nothing, if the
   * value would pass SEM_VALUE_MAX.
   */
  post(n = 1): void {
    this.check('post');
    const count = checkInteger(n, 'n', 1, SEM_VALUE_MAX);
    // glibc's sem_post: add to the value, then wake sleepers if the waiter count says there may be any.
    const w = this.#words;
    for (let v = Atomics.load(w, VALUE); ;) {
      if ((v >>> 0) > SEM_VALUE_MAX - count) {
        throw systemError(E.EOVERFLOW, 'sem_post', this.name, `The value would pass SEM_VALUE_MAX (${SEM_VALUE_MAX}); nothing was added.`);
      }
      const seen = Atomics.compareExchange(w, VALUE, v, v + count);
      if (seen === v) break;
      v = seen;
    }
    if (Atomics.load(w, WAITERS) !== 0) native.semWake(this.#view, count);
    this.check('post');
  }

  /** Removes the name (works on a closed handle too); see {@link NamedSemaphore.unlink}. */
  unlink(): void {
    NamedSemaphore.unlink(this.name);
  }

  /**
   * @internal Throws if the handle is closed, or if a process truncated the
   * semaphore's file under this mapping.
   */
  override check(what: string): void {
    super.check(what);
    if (flaggedTruncated(this.#slot)) throw this.#truncatedError(what);
  }

  protected override released(): void {
    dropped.unregister(this);
    const mapping = this.#mapping;
    // A cancelled waiter thread still leaves glibc's waiter count: release the file after it.
    if (this.#lane.jobsRunning) void this.#lane.settledJobs().then(() => unshareMapping(mapping));
    else unshareMapping(mapping);
  }

  /** Whether a unit was taken at once: no call of this handle waits, and the value was not zero. */
  #uncontended(what: string): boolean {
    this.check(what);
    const took = !this.#lane.busy && this.#take();
    this.check(what);
    return took;
  }

  /** The wait, the same for every call (it has no state of its own). */
  readonly #waitOp = (): Operation<typeof DONE> => this.#waitOperation;

  readonly #waitOperation: Operation<typeof DONE> = {
    step: (timeout, spin) => {
      // Uncontended, glibc's fast path in JavaScript; the native call spins and sleeps.
      const r = this.#take() ? 0 : timeout === 0 && spin === 0 ? E.EAGAIN : native.semWait(this.#view, timeout, spin);
      this.check('wait');
      if (r === 0) return DONE;
      if (r === E.EAGAIN) return undefined;
      throw systemError(r, 'sem_wait', this.name);
    },
    job: {
      start: (done) => native.semWaitAsync(this.#view, this.#slot, done),
      finish: (r) => {
        if (r === E.ESTALE) throw this.#truncatedError('wait');
        if (r < 0) throw systemError(r, 'sem_wait', this.name);
        return DONE;
      },
    },
  };

  /** Takes one unit if the value is not zero (glibc's compare-and-swap on the value half; the waiter half is left alone). */
  #take(): boolean {
    const w = this.#words;
    for (let v = Atomics.load(w, VALUE); v !== 0;) {
      const seen = Atomics.compareExchange(w, VALUE, v, v - 1);
      if (seen === v) return true;
      v = seen;
    }
    return false;
  }

  #truncatedError(what: string): IpcError {
    return new IpcError('ERR_IPC_SIZE_MISMATCH',
      `${what} on ${this.name}: another process truncated the semaphore's file (/dev/shm/sem.${this.name.slice(1)}). ` +
      'This handle no longer shares it with anyone. Close it; unlink and create the semaphore again.', { address: this.name });
  }
}

/**
 * A semaphore file's mapping, shared by the handles of this thread that
 * have it open, as glibc shares one mapping per file among `sem_open`
 * calls: a program can hold a handle on the same semaphore in many places
 * without spending a mapping on each (a process may have vm.max_map_count,
 * 65,530 by default). Files are told apart by device and inode.
 */
interface SharedMapping {
  readonly key: string;
  readonly buffer: SharedArrayBuffer;
  handles: number;
}

const mappings = new Map<string, SharedMapping>();

/** Handles collected without close() give their share back. */
const dropped = new FinalizationRegistry<SharedMapping>((mapping) => unshareMapping(mapping));

/**
 * The shared mapping of the semaphore file open at `fd`: `made` (a mapping
 * of it just made), the one this thread has, or a new one. A mapping whose
 * file was truncated under it is not shared any more.
 */
function shareMapping(fd: number, made: SharedArrayBuffer | undefined, name = ''): SharedMapping {
  const st = fstatSync(fd);
  const key = `${st.dev}:${st.ino}`;
  let mapping = mappings.get(key);
  if (mapping !== undefined && made === undefined && !mappingTruncated(mapping.buffer)) {
    mapping.handles++;
    return mapping;
  }
  let buffer = made;
  if (buffer === undefined) {
    const mapped = native.mapFd(fd, SEM_FILE_SIZE, false);
    if (typeof mapped === 'number') throw systemError(mapped, 'mmap', name);
    buffer = mapped;
  }
  mapping = { key, buffer, handles: 1 };
  mappings.set(key, mapping);
  return mapping;
}

function unshareMapping(mapping: SharedMapping): void {
  if (--mapping.handles > 0) return;
  if (mappings.get(mapping.key) === mapping) mappings.delete(mapping.key);
  native.detachMapping(mapping.buffer);
}

function mappingTruncated(buffer: SharedArrayBuffer): boolean {
  const slot = native.guardSlot(buffer);
  return flaggedTruncated(slot);
}

function notASemaphore(name: string, size: number): IpcError {
  return new IpcError('ERR_IPC_SIZE_MISMATCH',
    `/dev/shm/sem.${name.slice(1)} has ${size} bytes, not the ${SEM_FILE_SIZE} of a named semaphore (glibc's sem_t): ` +
    'it was not made by sem_open. Nothing was mapped. Remove it (if it is yours) or use another name.', { address: name });
}

const NO_KEYS: readonly string[] = [];
const OPEN_KEYS = ['spin', 'owner'] as const;
const CREATE_KEYS = [...OPEN_KEYS, 'value', 'mode'] as const;

// ===========================================================================
// System V semaphore sets

/** One operation of a {@link SemaphoreSet.op} call. */
export interface SemaphoreOperation {
  /** Which semaphore of the set (0 to count - 1). */
  index: number;
  /**
   * What to do: n > 0 adds n; n < 0 takes |n|, waiting while the value is
   * below |n|; 0 waits until the value is zero. From -32767 to 32767.
   */
  delta: number;
  /**
   * `SEM_UNDO`: the kernel records the change and reverses it when this
   * process exits, however it exits (SIGKILL included).
   */
  undo?: boolean;
  /**
   * `IPC_NOWAIT` on this operation only: if it cannot proceed at once the
   * whole call fails with `EAGAIN` (nothing is applied) instead of waiting.
   */
  noWait?: boolean;
}

/** Options of {@link SemaphoreSet.open}. */
export interface SemaphoreSetOpenOptions extends SpinOptions {
  /** Who must own (and have created) an existing set: this process's effective uid by default; `'any'` accepts anyone. */
  owner?: OwnerOption;
}

/** Options of {@link SemaphoreSet.create} and {@link SemaphoreSet.openOrCreate}. */
export interface SemaphoreSetCreateOptions extends SemaphoreSetOpenOptions {
  /** How many semaphores (1 to SEMMSL, the first field of kernel.sem). Default 1. */
  count?: number;
  /** Initial values: one for all, or one per semaphore (0 to 32767). Default 0. */
  value?: number | readonly number[];
  /** Permission bits (default 0o600). */
  mode?: number;
}

/** `semctl(IPC_STAT)` and the per-semaphore counters. */
export interface SemaphoreSetStat {
  /** The key, or 0 for a private set. */
  key: number;
  /** The set identifier (`semid`). */
  id: number;
  /** How many semaphores the set has. */
  count: number;
  /** Permission bits. */
  mode: number;
  /** Owner's uid. */
  uid: number;
  /** Owner's gid. */
  gid: number;
  /** Creator's uid. */
  cuid: number;
  /** Creator's gid. */
  cgid: number;
  /** Each semaphore's value (GETVAL). */
  values: number[];
  /** Processes waiting for each value to grow (GETNCNT). */
  waitingForIncrease: number[];
  /** Processes waiting for each value to become zero (GETZCNT). */
  waitingForZero: number[];
  /** The last process that changed each semaphore (semop, SETVAL, SETALL: GETPID), 0 if none. */
  lastPids: number[];
  /** When a `semop` last changed the set, or null if none ever did. */
  lastOpTime: Date | null;
  /** Time of creation or of the last `semctl` that changed the set (whole seconds). */
  changeTime: Date;
}

/** The kernel's System V semaphore limits: the four fields of `kernel.sem` and the fixed ones. */
export interface SemaphoreSetLimits {
  /** Semaphores per set (SEMMSL). */
  semmsl: number | undefined;
  /** Semaphores in the system (SEMMNS). */
  semmns: number | undefined;
  /** Operations per semop call (SEMOPM). */
  semopm: number | undefined;
  /** Sets in the system (SEMMNI). */
  semmni: number | undefined;
  /** Largest value (SEMVMX, fixed). */
  semvmx: number;
  /** Largest undo adjustment (SEMAEM, fixed). */
  semaem: number;
}

/** The four fields of kernel.sem: SEMMSL, SEMMNS, SEMOPM, SEMMNI. */
function readKernelSem(): (number | undefined)[] {
  try {
    const fields = readFileSync(KERNEL_SEM, 'utf8').trim().split(/\s+/).map(Number);
    if (fields.length === 4 && fields.every(Number.isFinite)) return fields;
  } catch {
    /* No procfs: messages go without the values. */
  }
  return [undefined, undefined, undefined, undefined];
}

/** `kernel.sem field N (SEMMSL, now 32000)` for messages. */
function semSetting(field: number): string {
  const names = ['SEMMSL', 'SEMMNS', 'SEMOPM', 'SEMMNI'];
  const value = readKernelSem()[field];
  return `kernel.sem field ${field + 1} (${names[field]}${value === undefined ? '' : `, now ${value}`})`;
}

function semgetError(r: number, label: string, count?: number): IpcError {
  if (r === E.EINVAL && count !== undefined) {
    return limitError(r, 'semget', label, `a set of ${count} semaphores exceeds ${semSetting(0)}, semaphores per set. ` +
      'Use fewer, or raise it: sysctl kernel.sem="SEMMSL SEMMNS SEMOPM SEMMNI".');
  }
  if (r === E.ENOSPC) {
    return limitError(r, 'semget', label, `the system would exceed ${semSetting(3)} sets or ${semSetting(1)} semaphores in all. ` +
      'Remove unused sets (ipckit ls, ipckit rm) or raise kernel.sem.');
  }
  return systemError(r, 'semget', label);
}

/**
 * A System V semaphore set: `count` counters under one key, changed only by
 * atomic operations on any of them at once ({@link SemaphoreSet.op}). What
 * `ipcs -s` lists, what C's `semget` and Python's `sysv_ipc.Semaphore` open.
 *
 * An operation with `undo` is reversed by the kernel when the process that
 * made it exits, however it dies: a lock taken with `undo` is given back
 * even after SIGKILL. Without `undo`, a killed holder keeps it for good.
 * Waits run on ipckit waiter threads for async calls (one per distinct
 * pending operation list; calls with the same list wait in order).
 *
 * @example
 * ```ts
 * import { SemaphoreSet } from 'ipckit';
 *
 * // Semaphore 0 is a lock, semaphore 1 counts jobs.
 * const set = SemaphoreSet.create(0x1bc0_0002, { count: 2, value: [1, 0] });
 * try {
 *   set.opSync({ index: 1, delta: 1 }); // a job arrives
 *   // Take the lock and a job at once; with undo the kernel gives the lock back if this process dies.
 *   await set.op([{ index: 0, delta: -1, undo: true }, { index: 1, delta: -1 }], { timeout: 1000 });
 *   console.log(set.values()); // [ 0, 0 ]
 *   set.opSync({ index: 0, delta: 1, undo: true });
 * } finally {
 *   set.remove(); // also closes the handle
 * }
 * ```
 */
export class SemaphoreSet extends Handle {
  /** The set identifier (`semid`, as `ipcs -s` shows it). */
  readonly id: number;
  /** The key, or 0 for a private set. */
  readonly key: number;
  /** How the set was addressed, for messages: `0x00001234`, `id 5`, … */
  readonly address: string;
  /** Whether this handle created the set. */
  readonly created: boolean;
  /** How many semaphores the set has. */
  readonly count: number;

  readonly #lane: JobLane;
  /** Where a single operation is packed. */
  readonly #scratch = new Uint16Array(3);

  private constructor(id: number, key: number, address: string, count: number, spin: number, created: boolean) {
    super();
    this.id = id;
    this.key = key;
    this.address = address;
    this.count = count;
    this.created = created;
    this.#lane = new JobLane(this, spin);
  }

  /** Creates a new set; fails with `EEXIST` if the key is taken. */
  static create(address: SysvAddress, options?: SemaphoreSetCreateOptions): SemaphoreSet {
    const opts = checkOptions(options, SET_CREATE_KEYS);
    const target = resolveSysvAddress(address);
    if (target.key === undefined) {
      throw new IpcError('ERR_IPC_INVALID_ADDRESS', `Cannot create a semaphore set at ${target.label}: identifiers are assigned by the kernel; give a key.`);
    }
    const set = SemaphoreSet.#get(target.key, target.label, opts, true, undefined);
    if (set === undefined) throw semgetError(E.EEXIST, target.label);
    return set;
  }

  /** Opens an existing set by key, ftok pair, or `{ id }`. */
  static open(address: SysvAddress, options?: SemaphoreSetOpenOptions): SemaphoreSet {
    const opts = checkOptions(options, SET_OPEN_KEYS);
    const target = resolveSysvAddress(address);
    if (target.id !== undefined) {
      const spin = checkSpin(opts.spin);
      const stat = native.semStat(target.id);
      if (typeof stat === 'number') throw systemError(stat, 'semctl', target.label);
      verifyOwnership(stat, checkOwner(opts.owner), undefined, target.label, 'semaphore set');
      return new SemaphoreSet(target.id, stat.key, target.label, stat.count, spin, false);
    }
    const set = SemaphoreSet.#get(target.key, target.label, opts, false, undefined);
    if (set === undefined) throw semgetError(E.ENOENT, target.label);
    return set;
  }

  /**
   * Opens the set with this key, creating it with `options` if there is
   * none. An existing set keeps its values; it must have at least `count`
   * semaphores (ERR_IPC_SIZE_MISMATCH otherwise) and, with `mode`, grant
   * nothing outside it.
   */
  static openOrCreate(address: SysvAddress, options?: SemaphoreSetCreateOptions): SemaphoreSet {
    const opts = checkOptions(options, SET_CREATE_KEYS);
    const target = resolveSysvAddress(address);
    if (target.key === undefined) return SemaphoreSet.open(address, { spin: opts.spin, owner: opts.owner });
    const { key, label } = target;
    const mode = checkMode(opts.mode);
    return createOrOpen(() => SemaphoreSet.#get(key, label, opts, true, undefined),
      () => SemaphoreSet.#get(key, label, opts, false, opts.mode === undefined ? undefined : mode), 'semget', label);
  }

  /**
   * Creates, or opens a set that must belong to `opts.owner` and, with
   * `expectMode`, grant nothing outside it. `undefined` when creating finds
   * the key taken, or opening finds none.
   *
   * System V has no atomic create-and-initialize: a set is made with every
   * value 0, then given its values (SETALL). A process that opens the set in
   * between sees zeros; with the default value 0 there is no in between.
   */
  static #get(key: number, label: string, opts: SemaphoreSetCreateOptions, create: boolean,
    expectMode: number | undefined): SemaphoreSet | undefined {
    const spin = checkSpin(opts.spin);
    const owner = checkOwner(opts.owner);
    const mode = checkMode(opts.mode);
    const count = opts.count === undefined ? 1 : checkInteger(opts.count, 'count', 1, 65535);
    const values = initialValues(opts.value, count);
    const semmsl = readKernelSem()[0];
    if (create && semmsl !== undefined && count > semmsl) throw semgetError(E.EINVAL, label, count);
    // Opening asks for read and alter access, so that a user the mode does not allow fails here.
    const id = native.semGet(key, create ? count : 0, create ? C.IPC_CREAT | C.IPC_EXCL : 0, create ? mode : 0o600);
    if (id === (create ? E.EEXIST : E.ENOENT)) return undefined;
    if (id < 0) throw semgetError(id, label, create ? count : undefined);
    const stat = native.semStat(id);
    // Removed since semget: as if there were none (openOrCreate tries again).
    if (stat === E.EINVAL || stat === E.EIDRM) return undefined;
    if (typeof stat === 'number') throw systemError(stat, 'semctl', label);
    if (create) {
      if (values.some((v) => v !== 0)) {
        const r = native.semSetAll(id, Uint16Array.from(values));
        if (r < 0) {
          native.semRemove(id);
          throw systemError(r, 'semctl', label);
        }
      }
    } else {
      verifyOwnership(stat, owner, expectMode, label, 'semaphore set');
      if (opts.count !== undefined && stat.count < count) {
        throw new IpcError('ERR_IPC_SIZE_MISMATCH', `The semaphore set ${label} has ${stat.count} semaphores, fewer than the ${count} asked for. ` +
          'Ask for at most that many, or remove the set and create it again.', { address: label });
      }
    }
    return new SemaphoreSet(id, key, label, stat.count, spin, create);
  }

  /**
   * Removes the set at once (`IPC_RMID`): waiters in every process fail
   * with `EIDRM`, undo records are dropped. Its owner or creator may remove
   * it whatever its mode.
   */
  static remove(address: SysvAddress): void {
    const target = resolveSysvAddress(address);
    const id = target.id ?? native.semGet(target.key, 0, 0, 0);
    if (id < 0) throw semgetError(id, target.label);
    const r = native.semRemove(id);
    if (r < 0) throw systemError(r, 'semctl', target.label);
  }

  /** The kernel's current System V semaphore limits. */
  static limits(): SemaphoreSetLimits {
    const [semmsl, semmns, semopm, semmni] = readKernelSem();
    return { semmsl, semmns, semopm, semmni, semvmx: SEMVMX, semaem: SEMAEM };
  }

  /**
   * Applies `ops` atomically (`semop`): all of them, in order, or none.
   * Waits while any operation cannot proceed (a take larger than the value,
   * a wait for zero on a non-zero value). Never blocks the event loop.
   */
  op(ops: SemaphoreOperation | readonly SemaphoreOperation[], options?: WaitOptions): Promise<void> {
    // Without options, one attempt here first: what the engine's first attempt would do, without the engine.
    // With options, the engine checks them before the operations.
    if (options !== undefined) return run(this.#lane, 'op', options, NO_KEYS, () => this.#op(this.#pack('op', ops).slice()));
    let packed: Uint16Array;
    try {
      packed = this.#pack('op', ops);
      if (this.#applied(packed)) return resolvedNow(undefined);
    } catch (err) {
      return Promise.reject(err);
    }
    return run(this.#lane, 'op', options, NO_KEYS, this.#waiting(packed));
  }

  /** Applies `ops` atomically, blocking the calling thread while they cannot proceed (`semtimedop`). */
  opSync(ops: SemaphoreOperation | readonly SemaphoreOperation[], options?: SyncWaitOptions): void {
    if (options !== undefined) {
      runSync(this.#lane, 'opSync', options, NO_KEYS, () => this.#op(this.#pack('opSync', ops).slice()));
      return;
    }
    const packed = this.#pack('opSync', ops);
    if (this.#applied(packed)) return;
    runSync(this.#lane, 'opSync', options, NO_KEYS, this.#waiting(packed));
  }

  /** Applies `ops` atomically if they can proceed now (`IPC_NOWAIT`); `false` otherwise (or while the same operations of this handle wait). */
  tryOp(ops: SemaphoreOperation | readonly SemaphoreOperation[]): boolean {
    const packed = this.#pack('tryOp', ops);
    return this.#applied(packed);
  }

  /** The value of semaphore `index` (GETVAL). */
  getValue(index: number): number {
    this.check('getValue');
    const i = this.#index(index);
    const r = native.semGetValue(this.id, i);
    if (r < 0) throw systemError(r, 'semctl', this.address);
    return r;
  }

  /** Every value (GETALL, one atomic read). */
  values(): number[] {
    this.check('values');
    const out = new Uint16Array(this.count);
    const r = native.semGetAll(this.id, out);
    if (r < 0) throw systemError(r, 'semctl', this.address);
    return [...out];
  }

  /**
   * Sets semaphore `index` to `value` (SETVAL), waking whoever that lets
   * proceed. It also clears every process's undo record for it: a later
   * exit of a process that took it with `undo` no longer gives it back.
   */
  setValue(index: number, value: number): void {
    this.check('setValue');
    const i = this.#index(index);
    const v = checkInteger(value, 'value', 0, SEMVMX);
    const r = native.semSetValue(this.id, i, v);
    if (r < 0) throw systemError(r, 'semctl', this.address);
  }

  /** Sets every value at once (SETALL; one value per semaphore), clearing every undo record of the set. */
  setAll(values: readonly number[]): void {
    this.check('setAll');
    if (!Array.isArray(values) || values.length !== this.count) {
      throw invalidArgument('values', values, `an array of ${this.count} values, one per semaphore`);
    }
    const r = native.semSetAll(this.id, Uint16Array.from(values.map((v, i) => checkInteger(v, `values[${i}]`, 0, SEMVMX))));
    if (r < 0) throw systemError(r, 'semctl', this.address);
  }

  /**
   * Owner, mode, times, and per semaphore its value, its waiters and the
   * last process to operate on it. The counters are read one by one, not
   * as one snapshot.
   */
  stat(): SemaphoreSetStat {
    this.check('stat');
    const s = native.semStat(this.id);
    if (typeof s === 'number') throw systemError(s, 'semctl', this.address);
    const out = new Float64Array(4 * s.count);
    const r = native.semInfo(this.id, out);
    if (r < 0) throw systemError(r, 'semctl', this.address);
    const column = (c: number): number[] => Array.from({ length: s.count }, (_, i) => out[4 * i + c]!);
    return {
      key: s.key, id: this.id, count: s.count, mode: s.mode, uid: s.uid, gid: s.gid, cuid: s.cuid, cgid: s.cgid,
      values: column(0), waitingForIncrease: column(1), waitingForZero: column(2), lastPids: column(3),
      lastOpTime: s.opTime === 0 ? null : new Date(s.opTime * 1000), changeTime: new Date(s.changeTime * 1000),
    };
  }

  /**
   * Removes the set (`IPC_RMID`); also closes this handle. Pending calls of
   * this handle reject with `ERR_IPC_CLOSED`, or `EIDRM` when the kernel's
   * wake-up reaches them first.
   */
  remove(): void {
    const r = native.semRemove(this.id);
    this.close();
    if (r < 0) throw systemError(r, 'semctl', this.address);
  }

  #index(index: unknown): number {
    return checkInteger(index, 'index', 0, this.count - 1);
  }

  /**
   * Checks the handle and packs `ops`; a single operation into the handle's
   * scratch array, which a call that must wait copies ({@link #waiting}).
   */
  #pack(what: string, ops: unknown): Uint16Array {
    this.check(what);
    return packOps(ops, this.count, this.address, this.#scratch);
  }

  /** The operation a call that must wait hands the engine: its own copy of the packed list. */
  #waiting(packed: Uint16Array): () => Operation<typeof DONE> {
    const own = packed === this.#scratch ? packed.slice() : packed;
    return () => this.#op(own);
  }

  /** One attempt that never waits, unless calls with the same operations wait first: whether `ops` were applied. */
  #applied(ops: Uint16Array): boolean {
    if (this.#lane.busyFor(keyOf(ops))) return false;
    const r = native.semOp(this.id, ops, 0, 0);
    if (r === 0) return true;
    if (r === E.EAGAIN) return false;
    throw this.#opError(r);
  }

  #op(ops: Uint16Array): Operation<typeof DONE> {
    const result = (r: number): typeof DONE | undefined => {
      if (r === 0) return DONE;
      if (r === E.EAGAIN) return undefined;
      throw this.#opError(r);
    };
    const noWait = ops.some((v, i) => i % 3 === 2 && (v & C.IPC_NOWAIT) !== 0);
    return {
      // Calls with the same operations wait in order; different ones independently.
      key: keyOf(ops),
      step: (timeout, spin) => {
        const r = native.semOp(this.id, ops, timeout, spin);
        // An attempt that may not sleep tries every operation with IPC_NOWAIT, and the kernel's
        // EAGAIN does not say which one stopped it: a noWait one fails the call, another waits.
        if (r === E.EAGAIN && timeout === 0 && noWait && this.#stopsAtNoWait(ops)) throw this.#opError(E.EBUSY);
        return result(r);
      },
      job: { start: (done) => native.semOpAsync(this.id, ops, done), finish: (r) => (r === 0 ? DONE : result(r)) },
    };
  }

  /**
   * Whether the first operation of `ops` that cannot proceed on the set's
   * values now is marked noWait: the kernel applies them in order, and the
   * first that would wait fails the call if it has IPC_NOWAIT, else waits.
   */
  #stopsAtNoWait(ops: Uint16Array): boolean {
    const values = new Uint16Array(this.count);
    if (native.semGetAll(this.id, values) < 0) return false;
    for (let k = 0; k < ops.length; k += 3) {
      const index = ops[k]!;
      const delta = (ops[k + 1]! << 16) >> 16;
      const next = values[index]! + delta;
      if (delta === 0 ? values[index] !== 0 : next < 0) return (ops[k + 2]! & C.IPC_NOWAIT) !== 0;
      if (next > SEMVMX) return false;
      values[index] = next;
    }
    return false;
  }

  #opError(r: number): IpcError {
    if (r === E.EBUSY) {
      return systemError(E.EAGAIN, 'semop', this.address,
        'An operation marked noWait could not proceed at once, so none was applied. Leave noWait off to wait for it.');
    }
    if (r === E.ERANGE) {
      return systemError(r, 'semop', this.address, `A value would pass ${SEMVMX} (SEMVMX), or an undo adjustment would pass ` +
        `${SEMAEM} (SEMAEM); nothing was applied.`);
    }
    if (r === E.E2BIG) {
      return limitError(r, 'semop', this.address, `more operations in one call than ${semSetting(2)}. Split the call, or raise kernel.sem.`);
    }
    if (r === E.ENOMEM) {
      return limitError(r, 'semop', this.address, 'the kernel could not allocate the undo record. Free memory, or leave undo off.');
    }
    return systemError(r, 'semop', this.address);
  }
}

/** The key of an operation list in the lane: calls with the same list wait in order, others independently. */
function keyOf(ops: Uint16Array): number | string {
  return ops.length === 3 ? ops[0]! * 2 ** 32 + ops[1]! * 2 ** 16 + ops[2]! : ops.join();
}

/** The initial values of a new set of `count`. */
function initialValues(value: unknown, count: number): number[] {
  if (value === undefined) return new Array<number>(count).fill(0);
  if (Array.isArray(value)) {
    if (value.length !== count) throw invalidArgument('value', value, `a number, or an array of ${count} values (count)`);
    return value.map((v, i) => checkInteger(v, `value[${i}]`, 0, SEMVMX));
  }
  return new Array<number>(count).fill(checkInteger(value, 'value', 0, SEMVMX));
}

const OP_KEYS = ['index', 'delta', 'undo', 'noWait'] as const;
const OP_KEY_SET: ReadonlySet<string> = new Set(OP_KEYS);

/** SEMOPM as last read (the kernel's default until then). */
let semopmSeen = 500;

/** Checks operations and packs them as semop's [index, delta, flags] triples. */
function packOps(input: unknown, count: number, address: string, scratch?: Uint16Array): Uint16Array {
  const list: readonly unknown[] = Array.isArray(input) ? input : [input];
  if (list.length === 0) throw invalidArgument('ops', input, 'at least one operation { index, delta }');
  // SEMOPM can be raised while the process runs: read again before refusing.
  if (list.length > semopmSeen && list.length > (semopmSeen = readKernelSem()[2] ?? Infinity)) {
    throw limitError(E.E2BIG, 'semop', address, `${list.length} operations in one call exceed ${semSetting(2)}. Split the call, or raise kernel.sem.`);
  }
  const packed = scratch !== undefined && list.length === 1 ? scratch : new Uint16Array(3 * list.length);
  for (let k = 0; k < list.length; k++) {
    const op = list[k] as Record<string, unknown> | null;
    // Checked without building the names the errors need: only a bad operation pays for them.
    if (typeof op !== 'object' || op === null) throw invalidArgument(`ops[${k}]`, op, 'an operation { index, delta, undo?, noWait? }');
    for (const key in op) if (!OP_KEY_SET.has(key)) checkOptions(op, OP_KEYS, `ops[${k}]`);
    const { index, delta, undo, noWait } = op;
    packed[3 * k] = Number.isInteger(index) && (index as number) >= 0 && (index as number) < count
      ? index as number : checkInteger(index, `ops[${k}].index`, 0, count - 1);
    packed[3 * k + 1] = (Number.isInteger(delta) && Math.abs(delta as number) <= SEMVMX
      ? delta as number : checkInteger(delta, `ops[${k}].delta`, -SEMVMX, SEMVMX)) & 0xffff;
    packed[3 * k + 2] = (flag(undo, k, 'undo') ? C.SEM_UNDO : 0) | (flag(noWait, k, 'noWait') ? C.IPC_NOWAIT : 0);
  }
  return packed;
}

function flag(value: unknown, k: number, name: string): boolean {
  return value === undefined || typeof value === 'boolean' ? value === true : checkBoolean(value, `ops[${k}].${name}`);
}

const SET_OPEN_KEYS = ['spin', 'owner'] as const;
const SET_CREATE_KEYS = [...SET_OPEN_KEYS, 'count', 'value', 'mode'] as const;
