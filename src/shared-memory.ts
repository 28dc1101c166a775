/**
 * Shared memory: the kernel maps the same physical pages into several
 * processes, which then use them as ordinary memory. Two families:
 *
 * - {@link PosixSharedMemory} (`shm_open` + `mmap`), named `/like-this`;
 * - {@link SysvSharedMemory} (`shmget` + `shmat`), addressed by a key.
 *
 * Either way `.buffer` is a `SharedArrayBuffer` over the mapping: typed
 * arrays, `DataView` and `Atomics` work on it across processes, with no
 * copies. Concurrent updates need a lock: see {@link Mutex} in `lock.ts`.
 *
 * @module
 */
import { constants } from 'node:buffer';
import { type Stats, existsSync, fstatSync, readlinkSync, statfsSync } from 'node:fs';
import { E, IpcError, defineHints, limitError, systemError } from './errors.js';
import { lazily, native } from './native.js';
import { type SysvAddress, checkPosixName, resolveSysvAddress } from './internal/address.js';
import { Handle, createOrOpen } from './internal/handle.js';
import { describeSetting, descriptorError, readProcNumber } from './internal/limits.js';
import { type OwnerOption, checkOwner, verifyOwnership } from './internal/trust.js';
import { checkBoolean, checkBytes, checkInteger, checkMode, checkOptions, invalidArgument, realBuffer, realByteLength, toBytes } from './internal/validate.js';

const C = lazily(() => native.constants);

defineHints({
  shm_open: {
    EEXIST: 'The segment already exists: use PosixSharedMemory.open() or openOrCreate(), or remove it first (ipckit rm).',
    ENOENT: 'No such segment: create it first (PosixSharedMemory.create or ipckit shm create).',
    ELOOP: 'The name is a symbolic link in /dev/shm; ipckit refuses to follow it.',
  },
  shm_unlink: { ENOENT: 'No such segment (already removed?).' },
  shmget: {
    EEXIST: 'A segment with this key already exists: use SysvSharedMemory.open() or openOrCreate(), or remove it first (ipckit rm).',
    ENOENT: 'No segment has this key: create it first (SysvSharedMemory.create or ipckit shm create).',
  },
  ...Object.fromEntries(['shmctl', 'shmat'].map((call) => [call, {
    EIDRM: 'The segment was removed (or never existed); open or create it again.',
    EINVAL: 'The segment was removed (or never existed); open or create it again.',
  }])),
});

/** Largest segment ipckit maps: 2^48 bytes (far beyond any machine's memory). */
export const SHM_MAX_SIZE = 2 ** 48;

const KERNEL_PROC = '/proc/sys/kernel';

/** Options of `create` and `openOrCreate`. */
export interface SharedMemoryCreateOptions {
  /** Size in bytes, at least 1. Required to create. */
  size: number;
  /** Permission bits of a new segment, exactly (the umask does not apply). Default `0o600`. */
  mode?: number;
  /**
   * The uid an existing segment must belong to (System V: and have been
   * created by), or `'any'`. Default: this process's effective uid. An
   * existing segment must also grant nothing outside `mode`, when given. Otherwise
   * `ERR_IPC_UNTRUSTED` (see docs/errors.md).
   */
  owner?: OwnerOption;
}

/** Options of `open`. */
export interface SharedMemoryOpenOptions {
  /**
   * The size you expect at least. Opening never resizes: a segment smaller
   * than this fails with `ERR_IPC_SIZE_MISMATCH`.
   */
  size?: number;
  /**
   * Map with `PROT_READ` (System V: `SHM_RDONLY`). Needed when you may only
   * read the segment. ipckit's own writers (`write()`, locks) refuse with
   * `ERR_IPC_READ_ONLY`; a store through a typed array is a memory fault,
   * as it is in C.
   */
  readOnly?: boolean;
  /**
   * The uid the segment must belong to (System V: and have been created by),
   * or `'any'`. Default: this process's effective uid; otherwise
   * `ERR_IPC_UNTRUSTED`.
   */
  owner?: OwnerOption;
}

/** `fstat` of a POSIX segment. */
export interface PosixSharedMemoryStat {
  /** Size in bytes now (another process may have resized it since this handle mapped it). */
  size: number;
  /** Permission bits. */
  mode: number;
  /** Owner's uid. */
  uid: number;
  /** Owner's gid. */
  gid: number;
  /** Last change of the file's size, owner or mode (`st_ctime`). */
  changeTime: Date;
}

/** `shmctl(IPC_STAT)` of a System V segment. */
export interface SysvSharedMemoryStat {
  /** The key, or 0 for a private segment. */
  key: number;
  /** The segment identifier (`shmid`). */
  id: number;
  /** Size in bytes, fixed at creation (`shm_segsz`). */
  size: number;
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
  /** Processes attached now (`shm_nattch`). */
  attachments: number;
  /** Pid of the creator. */
  creatorPid: number;
  /** Pid of the last `shmat`/`shmdt`. */
  lastPid: number;
  /** Time of the last `shmat` (whole seconds), or null if none. */
  lastAttachTime: Date | null;
  /** Time of the last `shmdt` (whole seconds), or null if none. */
  lastDetachTime: Date | null;
  /** Time of creation or of the last `shmctl(IPC_SET)` (whole seconds). */
  changeTime: Date;
  /** Whether `remove()` was called: it dies when the last process detaches. */
  removed: boolean;
}

/** The kernel's shared-memory limits. */
export interface SharedMemoryLimits {
  /** `kernel.shmmax`: the largest System V segment, bytes. */
  shmmax: number | undefined;
  /** `kernel.shmall`: all System V segments together, pages. */
  shmall: number | undefined;
  /** `kernel.shmmni`: System V segments in the system. */
  shmmni: number | undefined;
  /** Free bytes in /dev/shm, where POSIX segments live. */
  devShmFree: number | undefined;
}

let truncationFlags: Int32Array | undefined;

/** @internal The flags the native SIGBUS handler raises for truncated mappings. */
export function truncation(): Int32Array {
  truncationFlags ??= new Int32Array(native.truncationFlags());
  return truncationFlags;
}

/**
 * @internal Whether the SIGBUS handler flagged mapping `slot` (-1: none) as
 * truncated. A plain read, not `Atomics.load`, which is a call into V8
 * costing about 8 ns on a lock's fast path: a flag only ever goes from 0 to
 * 1, and a read that misses one raised on another thread this very instant
 * is the race of a truncation just after the check, which no read can close.
 */
export function flaggedTruncated(slot: number): boolean {
  return slot >= 0 && truncation()[slot] !== 0;
}

/** The largest typed array (and Buffer) Node makes: 4 GiB. */
const MAX_VIEW = constants.MAX_LENGTH;

const CREATE_KEYS = ['size', 'mode', 'owner'] as const;
const OPEN_KEYS = ['size', 'readOnly', 'owner'] as const;

function checkSize(size: unknown, name = 'size'): number {
  return checkInteger(size, name, 1, SHM_MAX_SIZE);
}

function sizeMismatch(address: string, wanted: number, actual: number): IpcError {
  return new IpcError('ERR_IPC_SIZE_MISMATCH',
    `${address} is ${actual} bytes, smaller than the ${wanted} asked for. Opening never resizes a segment: ` +
    'open it without a size (or a smaller one), or remove it and create it again.', { address });
}

/** The buffers of segments mapped read-only, which must never be written through a native copy. */
const readOnlyMappings = new WeakSet<ArrayBufferLike>();

/**
 * What both families share: the mapping, its views, and its lifetime. Locks
 * in the segment wait in lanes the segment owns: closing it rejects them.
 */
export abstract class SharedMemory extends Handle {
  /** Whether this handle mapped the segment read-only. */
  readonly readOnly: boolean;
  /** Whether this handle created the segment. */
  readonly created: boolean;
  #buffer: SharedArrayBuffer | undefined;
  #bytes: Uint8Array | undefined;
  readonly #size: number;

  /** Where the SIGBUS handler flags this mapping as truncated (POSIX segments), or -1. */
  readonly #slot: number;

  protected constructor(buffer: SharedArrayBuffer, readOnly: boolean, created: boolean) {
    super();
    this.#buffer = buffer;
    this.#size = buffer.byteLength;
    this.#slot = native.guardSlot(buffer);
    this.readOnly = readOnly;
    if (readOnly) readOnlyMappings.add(buffer);
    this.created = created;
  }

  /** The mapping as a `SharedArrayBuffer`: typed arrays and `Atomics` over it work across processes. */
  get buffer(): SharedArrayBuffer {
    if (this.#buffer === undefined) throw this.closedError('buffer');
    return this.#buffer;
  }

  /**
   * A `Uint8Array` over the whole mapping. A segment larger than the largest
   * typed array (4 GiB) has none: `ERR_IPC_INVALID_ARGUMENT`; take views of
   * parts of `buffer` instead (`new Uint8Array(shm.buffer, offset, length)`),
   * or use `read`, `readInto` and `write`, which take any offset.
   */
  get bytes(): Uint8Array {
    if (this.#buffer === undefined) throw this.closedError('bytes');
    if (this.#size > MAX_VIEW) {
      throw new IpcError('ERR_IPC_INVALID_ARGUMENT',
        `bytes of ${this.address}: the segment's ${this.#size} bytes exceed the largest Uint8Array (${MAX_VIEW} bytes). ` +
        'Take a view of the part you need, new Uint8Array(segment.buffer, offset, length), or use read(), readInto() and write().',
        { address: this.address });
    }
    this.#bytes ??= new Uint8Array(this.#buffer);
    return this.#bytes;
  }

  /** A view and an index in it for `length` bytes at `offset` (checked): the whole mapping, or for a huge segment a window. */
  #span(offset: number, length: number): [Uint8Array, number] {
    if (this.#buffer === undefined) throw this.closedError('access');
    this.#checkRange(offset, length);
    if (this.#size <= MAX_VIEW) return [this.bytes, offset];
    return [new Uint8Array(this.#buffer, offset, length), 0];
  }

  /** Size in bytes of the mapping (the segment's size when it was opened). */
  get size(): number {
    return this.#size;
  }

  /**
   * Copies `length` bytes at `offset` out of the segment into a new Buffer.
   * (Copies use memmove: V8's own copies into and out of a
   * SharedArrayBuffer are about three times slower.)
   */
  read(offset = 0, length = this.#size - offset): Buffer {
    this.check('read');
    this.#checkRange(offset, length);
    if (length > MAX_VIEW) {
      throw new IpcError('ERR_IPC_INVALID_ARGUMENT', `read of ${length} bytes from ${this.address}: a Buffer holds at most ${MAX_VIEW} bytes; read in parts.`,
        { address: this.address });
    }
    const [bytes, at] = this.#span(offset, length);
    const out = Buffer.allocUnsafe(length);
    native.copyBytes(out, 0, bytes, at, length);
    this.check('read');
    return out;
  }

  /** Copies `target.length` bytes at `offset` into `target`, allocating nothing; returns `target`. */
  readInto<B extends Uint8Array>(target: B, offset = 0): B {
    this.check('readInto');
    const into = checkBytes(target, 'target');
    // A store into a read-only mapping is a memory fault that would kill the process. (The buffer the engine knows:
    // a `buffer` property of the caller's could name another.)
    if (readOnlyMappings.has(realBuffer(into))) {
      throw new IpcError('ERR_IPC_READ_ONLY', `readInto from ${this.address}: the target is a view of a segment mapped read-only.`, { address: this.address });
    }
    const size = realByteLength(into);
    const [bytes, at] = this.#span(offset, size);
    native.copyBytes(into, 0, bytes, at, size);
    this.check('readInto');
    return target;
  }

  /** Copies `data` into the segment at `offset` (a string: its UTF-8 bytes). */
  write(input: Uint8Array | string, offset = 0): void {
    this.check('write');
    const data = toBytes(input);
    if (this.readOnly) throw this.readOnlyError('write');
    const size = realByteLength(data);
    const [bytes, at] = this.#span(offset, size);
    native.copyBytes(bytes, at, data, 0, size);
    this.check('write');
  }

  /**
   * Unmaps this process's view (System V: detaches). Views taken from
   * `buffer` before stay valid memory but no longer show the segment: they
   * read zeros. Later use of this object throws `ERR_IPC_CLOSED`. Locks in
   * the segment reject their pending waits. Calling it again does nothing.
   */
  override close(): void {
    super.close();
  }

  protected override released(): void {
    const buffer = this.#buffer!;
    this.#buffer = undefined;
    this.#bytes = undefined;
    native.detachMapping(buffer);
  }

  /**
   * @internal Throws if the handle is closed, or if another process
   * truncated the segment under this mapping (see {@link truncatedError}).
   */
  override check(what: string): void {
    super.check(what);
    if (flaggedTruncated(this.#slot)) throw this.truncatedError(what);
  }

  /** @internal */
  truncatedError(what: string): IpcError {
    return new IpcError('ERR_IPC_SIZE_MISMATCH',
      `${what} on ${this.address}: another process truncated the segment below the ${this.#size} bytes this mapping has. ` +
      'Pages past its new end are gone: this process sees private zeros there, and nothing written there reaches anyone. ' +
      'Close the segment and open it again (stat().size tells its size now).', { address: this.address });
  }

  /** @internal */
  override closedError(what: string): IpcError {
    return new IpcError('ERR_IPC_CLOSED', `${what} on ${this.address}: the segment is closed. Open it again to keep using it.`, { address: this.address });
  }

  /** @internal */
  readOnlyError(what: string): IpcError {
    return new IpcError('ERR_IPC_READ_ONLY', `${what} on ${this.address}: the segment is mapped read-only. Open it without { readOnly: true } to write.`, { address: this.address });
  }

  #checkRange(offset: number, length: number): void {
    checkInteger(offset, 'offset', 0, this.#size);
    checkInteger(length, 'length', 0, this.#size - offset);
  }
}

// ===========================================================================
// POSIX

function devShmFree(): number | undefined {
  try {
    const { bavail, bsize } = statfsSync('/dev/shm');
    return bavail * bsize;
  } catch {
    return undefined;
  }
}

/**
 * @internal The error of a file that could not be made in /dev/shm: out of
 * room or out of inodes (ENOSPC) is `ERR_IPC_LIMIT` with what to do; out of
 * descriptors likewise; anything else as it is.
 */
export function devShmCreateError(r: number, syscall: string, address: string, bytes?: number): IpcError {
  if (r !== E.ENOSPC && r !== E.EFBIG) return descriptorError(r, syscall, address);
  let inodes = '';
  try {
    const { ffree } = statfsSync('/dev/shm');
    if (ffree === 0) inodes = ' and no inode left for another file';
  } catch {
    /* No statfs: the message goes without it. */
  }
  const what = bytes === undefined ? 'another object' : `${bytes} bytes`;
  return limitError(r, syscall, address, `/dev/shm has no room for ${what} (${devShmFree() ?? 'unknown'} bytes free${inodes}). ` +
    'Remove unused objects (ipckit ls, ipckit rm) or enlarge the tmpfs: mount -o remount,size=N,nr_inodes=M /dev/shm.');
}

/**
 * A POSIX shared-memory segment (`shm_open`, `mmap`): a file in /dev/shm
 * that processes map.
 *
 * @example
 * ```ts
 * import { PosixSharedMemory } from 'ipckit';
 *
 * const shm = PosixSharedMemory.create('/ipckit-example-shm', { size: 4096 });
 * try {
 *   const counters = new Int32Array(shm.buffer);
 *   Atomics.add(counters, 0, 1); // visible at once to every process that maps the segment
 *   console.log(Atomics.load(counters, 0)); // 1
 * } finally {
 *   shm.close();
 *   PosixSharedMemory.unlink('/ipckit-example-shm');
 * }
 * ```
 */
export class PosixSharedMemory extends SharedMemory {
  /** The segment's name, such as `/scores`. */
  readonly name: string;
  readonly #fd: number;

  private constructor(name: string, fd: number, buffer: SharedArrayBuffer, readOnly: boolean, created: boolean, handedOver = false) {
    super(buffer, readOnly, created);
    this.name = name;
    this.#fd = this.holdFd(fd, handedOver);
  }

  /**
   * Wraps a segment's descriptor this process was given (received over a
   * Unix socket, or inherited) and takes ownership of it: `close()` closes
   * it. Mapped read-write if the descriptor allows, else read-only (or
   * read-only when asked). The name is the one the segment had when opened.
   */
  static fromFd(fd: number, options?: { readOnly?: boolean }): PosixSharedMemory {
    checkInteger(fd, 'fd', 0, 2 ** 31 - 1);
    const opts = checkOptions(options, ['readOnly']);
    const flags = native.getFlags(fd);
    if (flags < 0) throw systemError(flags, 'fcntl', `fd ${fd}`, 'The descriptor is not open: was it passed to this process?');
    let name: string;
    try {
      name = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      name = `fd ${fd}`;
    }
    if (!name.startsWith('/dev/shm/')) throw invalidArgument('fd', fd, 'a descriptor of a POSIX shared-memory segment (in /dev/shm)');
    name = name.slice('/dev/shm'.length).replace(/ \(deleted\)$/, '');
    const writable = (flags & C.O_ACCMODE) === C.O_RDWR;
    const readOnly = checkBoolean(opts.readOnly, 'readOnly') || !writable;
    const size = statOfFd(fd, segmentFile(name)).size;
    if (size === 0) throw new IpcError('ERR_IPC_SIZE_MISMATCH', `${name} has size 0: nothing can be mapped.`, { address: name });
    const buffer = native.mapFd(fd, size, readOnly);
    if (typeof buffer === 'number') throw mapError(buffer, name, size);
    return new PosixSharedMemory(name, fd, buffer, readOnly, false, true);
  }

  get address(): string {
    return this.name;
  }

  /** Creates a segment of `size` bytes; fails with `E.EEXIST` if the name is taken. */
  static create(name: string, options: SharedMemoryCreateOptions): PosixSharedMemory {
    const opts = checkOptions(options, CREATE_KEYS);
    checkPosixName(name, 'shared memory');
    const size = checkSize(opts.size);
    const segment = PosixSharedMemory.#create(name, size, checkMode(opts.mode));
    if (segment === undefined) throw systemError(E.EEXIST, 'shm_open', name);
    return segment;
  }

  /** Opens an existing segment; never resizes it. */
  static open(name: string, options?: SharedMemoryOpenOptions): PosixSharedMemory {
    const opts = checkOptions(options, OPEN_KEYS);
    checkPosixName(name, 'shared memory');
    const segment = PosixSharedMemory.#open(name, opts, undefined);
    if (segment === undefined) throw systemError(E.ENOENT, 'shm_open', name);
    return segment;
  }

  /** Opens the segment, creating it with `options` if there is none; an existing one must be at least `size` bytes. */
  static openOrCreate(name: string, options: SharedMemoryCreateOptions): PosixSharedMemory {
    const opts = checkOptions(options, CREATE_KEYS);
    checkPosixName(name, 'shared memory');
    const size = checkSize(opts.size);
    const mode = checkMode(opts.mode);
    checkOwner(opts.owner);
    return createOrOpen(() => PosixSharedMemory.#create(name, size, mode),
      () => PosixSharedMemory.#open(name, { size, owner: opts.owner }, opts.mode === undefined ? undefined : mode), 'shm_open', name);
  }

  /** Size, mode and owner of the segment `name`, without mapping it. */
  static stat(name: string): PosixSharedMemoryStat {
    checkPosixName(name, 'shared memory');
    const found = pathOnly(segmentFile(name));
    if (found === undefined) throw systemError(E.ENOENT, 'shm_open', name);
    try {
      return statOfFd(found, segmentFile(name));
    } finally {
      native.close(found);
    }
  }

  /** Removes the name; mappings stay valid until every process closes them. */
  static unlink(name: string): void {
    checkPosixName(name, 'shared memory');
    const r = native.shmUnlink(name);
    if (r < 0) throw systemError(r, 'shm_unlink', name);
  }

  /**
   * Creates the segment, or returns `undefined` if the name is taken. The
   * segment is created without a name, sized, and only then named, so no
   * process ever opens it at size 0 (where O_TMPFILE or /proc is missing, it
   * is created under its name and sized at once, as C programs do).
   */
  static #create(name: string, size: number, mode: number): PosixSharedMemory | undefined {
    let fd = native.shmCreateUnnamed(mode);
    let named = fd < 0;
    if (named) {
      if (fd !== E.EOPNOTSUPP && fd !== E.EISDIR && fd !== E.ENOENT && fd !== E.EINVAL) throw devShmCreateError(fd, 'shm_open', name);
      fd = native.shmOpen(name, C.O_RDWR | C.O_CREAT | C.O_EXCL, mode);
      if (fd === E.EEXIST) return undefined;
      if (fd < 0) throw devShmCreateError(fd, 'shm_open', name);
    } else if (existsSync(`/dev/shm${name}`)) {
      // Taken: no need to reserve the memory only to find it out.
      native.close(fd);
      return undefined;
    }
    const fail = (error: IpcError): never => {
      native.close(fd);
      if (named) native.shmUnlink(name);
      throw error;
    };
    const r = native.allocate(fd, size);
    if (r < 0) {
      fail(r === E.ENOSPC || r === E.EFBIG ? devShmCreateError(r, 'posix_fallocate', name, size) : systemError(r, 'posix_fallocate', name));
    }
    if (!named) {
      const p = native.shmPublish(fd, name);
      if (p === E.EEXIST) {
        native.close(fd);
        return undefined;
      }
      if (p < 0) fail(systemError(p, 'linkat', name));
      named = true;
      // Use it through its name, so that /proc (maps, fd links, lsof) shows the name, not the unnamed file.
      const byName = native.shmOpen(name, C.O_RDWR, 0);
      if (byName >= 0) {
        const [a, b] = [fstatSync(fd), fstatSync(byName)];
        const same = a.ino === b.ino && a.dev === b.dev;
        native.close(same ? fd : byName);
        if (same) fd = byName;
      }
    }
    const buffer = native.mapFd(fd, size, false);
    if (typeof buffer === 'number') fail(mapError(buffer, name, size));
    return new PosixSharedMemory(name, fd, buffer as SharedArrayBuffer, false, true);
  }

  /** Opens a segment that must belong to `opts.owner` and, with `expectMode`, grant nothing outside it. */
  static #open(name: string, opts: SharedMemoryOpenOptions, expectMode: number | undefined): PosixSharedMemory | undefined {
    const readOnly = checkBoolean(opts.readOnly, 'readOnly');
    const wanted = opts.size === undefined ? undefined : checkSize(opts.size);
    const owner = checkOwner(opts.owner);
    const fd = openChecked(segmentFile(name), readOnly ? C.O_RDONLY : C.O_RDWR, (stat) => verifyOwnership(stat, owner, expectMode, name, 'segment'));
    if (fd === undefined) return undefined;
    try {
      const size = statOfFd(fd, segmentFile(name)).size;
      if (size === 0) {
        throw new IpcError('ERR_IPC_SIZE_MISMATCH', `${name} has size 0: its creator never sized it (ftruncate). Nothing can be mapped.`, { address: name });
      }
      if (wanted !== undefined && wanted > size) throw sizeMismatch(name, wanted, size);
      const buffer = native.mapFd(fd, size, readOnly);
      if (typeof buffer === 'number') throw mapError(buffer, name, size);
      return new PosixSharedMemory(name, fd, buffer, readOnly, false);
    } catch (err) {
      native.close(fd);
      throw err;
    }
  }

  /** The segment's descriptor (in /dev/shm). */
  get fd(): number {
    this.check('fd');
    return this.#fd;
  }

  /** Size, mode and owner, from `fstat` (the size may have been changed by another process). */
  stat(): PosixSharedMemoryStat {
    return statOfFd(this.fd, segmentFile(this.name));
  }

  /** Removes the name (works on a closed handle too); see {@link PosixSharedMemory.unlink}. */
  unlink(): void {
    PosixSharedMemory.unlink(this.name);
  }

}

/**
 * A file of /dev/shm as an opener sees it: `file` is its shm_open name
 * (`/jobs`; a named semaphore `/x` is the file `/sem.x`), `label` how
 * messages name it, `kind` what it must be.
 */
export interface DevShmFile {
  file: string;
  label: string;
  kind: string;
  syscall: string;
}

const segmentFile = (name: string): DevShmFile => ({ file: name, label: name, kind: 'a shared-memory segment', syscall: 'shm_open' });

/**
 * An O_PATH descriptor of /dev/shm<file> (where shm_open looks), which
 * opens nothing: a FIFO or device at the name is not touched. `undefined`
 * if there is nothing at the name.
 */
function pathOnly(at: DevShmFile): number | undefined {
  // With O_NOFOLLOW, a symbolic link is opened itself (and refused by its type), never followed.
  const fd = native.openPath(`/dev/shm${at.file}`, C.O_PATH | C.O_NOFOLLOW, -1);
  if (fd === E.ENOENT) return undefined;
  if (fd < 0) throw descriptorError(fd, at.syscall, at.label);
  return fd;
}

/**
 * Opens the file `at` with `flags`, having checked first — on an O_PATH
 * descriptor — that a regular file is there (not a FIFO, a directory, a
 * device) and passes `check` (its owner): nothing else is ever opened, so
 * no other program sees an open. The checked file itself is then reopened
 * through /proc/self/fd, so it cannot be swapped in between. `undefined` if
 * there is nothing at the name.
 */
export function openChecked(at: DevShmFile, flags: number, check: (stat: PosixSharedMemoryStat) => void): number | undefined {
  const found = pathOnly(at);
  if (found === undefined) return undefined;
  const { label, syscall } = at;
  try {
    check(statOfFd(found, at));
    const fd = native.openPath(`/proc/self/fd/${found}`, flags | C.O_NONBLOCK, -1);
    if (fd >= 0) return fd;
    if (fd !== E.ENOENT) throw fd === E.EMFILE || fd === E.ENFILE ? descriptorError(fd, syscall, label) : systemError(fd, syscall, label);
    // No /proc: open by name, and make sure it is the file that was checked.
    const byName = native.shmOpen(at.file, flags, 0);
    if (byName === E.ENOENT) return undefined;
    if (byName < 0) throw descriptorError(byName, syscall, label);
    const [a, b] = [fstatSync(found), fstatSync(byName)];
    if (a.ino !== b.ino || a.dev !== b.dev) {
      native.close(byName);
      throw new IpcError('ERR_IPC_INVALID_ADDRESS', `${label} was replaced while it was being opened; nothing was mapped. Try again.`, { address: label });
    }
    return byName;
  } finally {
    native.close(found);
  }
}

/** `fstat` of a /dev/shm file's descriptor; refuses anything at the name that is not a regular file (a FIFO, a device). */
export function statOfFd(fd: number, at: DevShmFile): PosixSharedMemoryStat {
  const st = fstatSync(fd);
  if (!st.isFile()) {
    throw new IpcError('ERR_IPC_INVALID_ADDRESS',
      `${at.label} in /dev/shm is not ${at.kind} but ${kindOf(st)}, placed there by someone else. ` +
      'Nothing was mapped. Remove it (if it is yours) or use another name.', { address: at.label });
  }
  return { size: st.size, mode: st.mode & 0o777, uid: st.uid, gid: st.gid, changeTime: st.ctime };
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSymbolicLink()) return 'a symbolic link (ipckit does not follow them)';
  if (st.isDirectory()) return 'a directory';
  return 'another kind of file';
}

function mapError(r: number, address: string, size: number): IpcError {
  if (r === E.ENOMEM) {
    return limitError(r, 'mmap', address, `mapping ${size} bytes needs more address space or memory than the process may use (ulimit -v) or the machine has.`);
  }
  return systemError(r, 'mmap', address);
}

// ===========================================================================
// System V

function sysvGetError(r: number, label: string, size?: number): IpcError {
  if (r === E.EINVAL && size !== undefined) {
    return limitError(r, 'shmget', label, `a segment of ${size} bytes exceeds ${describeSetting(`${KERNEL_PROC}/shmmax`)}. ` +
      'Use a smaller segment, or raise it: sysctl kernel.shmmax=N.');
  }
  if (r === E.ENOSPC) {
    return limitError(r, 'shmget', label, `the system's System V segments would exceed ${describeSetting(`${KERNEL_PROC}/shmall`)} pages ` +
      `or ${describeSetting(`${KERNEL_PROC}/shmmni`)} segments. Remove unused ones (ipckit ls, ipckit rm) or raise the sysctl.`);
  }
  if (r === E.ENOMEM) return limitError(r, 'shmget', label, 'the kernel could not allocate the segment (out of memory).');
  return systemError(r, 'shmget', label);
}

function statOfId(id: number, label: string): SysvSharedMemoryStat {
  const s = native.shmStat(id);
  if (typeof s === 'number') throw systemError(s, 'shmctl', label);
  const date = (seconds: number): Date | null => (seconds === 0 ? null : new Date(seconds * 1000));
  return {
    key: s.key, id, size: s.size, mode: s.mode, uid: s.uid, gid: s.gid, cuid: s.cuid, cgid: s.cgid,
    attachments: s.attachments, creatorPid: s.creatorPid, lastPid: s.lastPid,
    lastAttachTime: date(s.attachTime), lastDetachTime: date(s.detachTime), changeTime: new Date(s.changeTime * 1000),
    removed: s.removed,
  };
}

/**
 * A System V shared-memory segment (`shmget`, `shmat`), addressed by a key:
 * the same key gives the same memory in every process.
 *
 * @example
 * ```ts
 * import { SysvSharedMemory } from 'ipckit';
 *
 * const shm = SysvSharedMemory.create(0x1bc0_0003, { size: 1024 });
 * try {
 *   shm.write('hello');
 *   console.log(shm.read(0, 5).toString(), shm.stat().attachments); // hello 1
 * } finally {
 *   shm.remove();
 * }
 * ```
 */
export class SysvSharedMemory extends SharedMemory {
  /** The segment identifier (`shmid`, as `ipcs -m` shows it). */
  readonly id: number;
  /** The key, or 0 for a private segment. */
  readonly key: number;
  readonly #label: string;

  private constructor(id: number, key: number, label: string, buffer: SharedArrayBuffer, readOnly: boolean, created: boolean) {
    super(buffer, readOnly, created);
    this.id = id;
    this.key = key;
    this.#label = label;
  }

  get address(): string {
    return this.#label;
  }

  /** Creates a segment of `size` bytes; fails with `E.EEXIST` if the key is taken. */
  static create(address: SysvAddress, options: SharedMemoryCreateOptions): SysvSharedMemory {
    const opts = checkOptions(options, CREATE_KEYS);
    const target = resolveSysvAddress(address);
    if (target.key === undefined) {
      throw new IpcError('ERR_IPC_INVALID_ADDRESS', `Cannot create a segment at ${target.label}: identifiers are assigned by the kernel; give a key.`);
    }
    const size = checkSize(opts.size);
    const segment = SysvSharedMemory.#get(target.key, target.label, size, checkMode(opts.mode), true, {}, undefined);
    if (segment === undefined) throw sysvGetError(E.EEXIST, target.label);
    return segment;
  }

  /** Opens an existing segment by key, ftok pair or `{ id }`; never resizes it. */
  static open(address: SysvAddress, options?: SharedMemoryOpenOptions): SysvSharedMemory {
    const opts = checkOptions(options, OPEN_KEYS);
    const target = resolveSysvAddress(address);
    if (target.id !== undefined) return SysvSharedMemory.#attach(target.id, target.label, false, opts, undefined);
    const segment = SysvSharedMemory.#get(target.key, target.label, 0, 0, false, opts, undefined);
    if (segment === undefined) throw sysvGetError(E.ENOENT, target.label);
    return segment;
  }

  /** Opens the segment with this key, creating it with `options` if there is none. */
  static openOrCreate(address: SysvAddress, options: SharedMemoryCreateOptions): SysvSharedMemory {
    const opts = checkOptions(options, CREATE_KEYS);
    const target = resolveSysvAddress(address);
    const size = checkSize(opts.size);
    if (target.key === undefined) return SysvSharedMemory.open(address, { size, owner: opts.owner });
    const mode = checkMode(opts.mode);
    checkOwner(opts.owner);
    const { key, label } = target;
    return createOrOpen(() => SysvSharedMemory.#get(key, label, size, mode, true, {}, undefined),
      () => SysvSharedMemory.#get(key, label, 0, 0, false, { size, owner: opts.owner }, opts.mode === undefined ? undefined : mode), 'shmget', label);
  }

  /** Marks the segment for removal (`IPC_RMID`): it dies when the last process detaches. */
  static remove(address: SysvAddress): void {
    const { id, label } = SysvSharedMemory.#identify(address);
    const r = native.shmRemove(id);
    if (r < 0) throw systemError(r, 'shmctl', label);
  }

  /** `shmctl(IPC_STAT)` of the segment at `address`, without attaching it. */
  static stat(address: SysvAddress): SysvSharedMemoryStat {
    const { id, label } = SysvSharedMemory.#identify(address);
    return statOfId(id, label);
  }

  /** The identifier of an existing segment. */
  static #identify(address: SysvAddress): { id: number; label: string } {
    const target = resolveSysvAddress(address);
    const id = target.id ?? native.shmGet(target.key!, 0, 0, 0);
    if (id < 0) throw sysvGetError(id, target.label);
    return { id, label: target.label };
  }

  /** The kernel's current shared-memory limits. */
  static limits(): SharedMemoryLimits {
    return {
      shmmax: readProcNumber(`${KERNEL_PROC}/shmmax`),
      shmall: readProcNumber(`${KERNEL_PROC}/shmall`),
      shmmni: readProcNumber(`${KERNEL_PROC}/shmmni`),
      devShmFree: devShmFree(),
    };
  }

  static #get(key: number, label: string, size: number, mode: number, create: boolean, opts: SharedMemoryOpenOptions,
    expectMode: number | undefined): SysvSharedMemory | undefined {
    const id = native.shmGet(key, size, create ? C.IPC_CREAT | C.IPC_EXCL : 0, mode);
    if (id === (create ? E.EEXIST : E.ENOENT)) return undefined;
    if (id < 0) throw sysvGetError(id, label, create ? size : undefined);
    try {
      return SysvSharedMemory.#attach(id, label, create, opts, expectMode);
    } catch (err) {
      if (create) native.shmRemove(id);
      throw err;
    }
  }

  /** Attaches; a segment this call did not create must belong to `opts.owner` and, with `expectMode`, grant nothing outside it. */
  static #attach(id: number, label: string, created: boolean, opts: SharedMemoryOpenOptions, expectMode: number | undefined): SysvSharedMemory {
    const owner = checkOwner(opts.owner);
    const stat = native.shmStat(id);
    if (typeof stat === 'number') throw systemError(stat, 'shmctl', label);
    if (!created) verifyOwnership(stat, owner, expectMode, label, 'segment');
    const wanted = opts.size === undefined ? undefined : checkSize(opts.size);
    if (wanted !== undefined && wanted > stat.size) throw sizeMismatch(label, wanted, stat.size);
    const readOnly = checkBoolean(opts.readOnly, 'readOnly');
    const buffer = native.shmAttach(id, stat.size, readOnly);
    if (typeof buffer === 'number') throw buffer === E.ENOMEM ? mapError(buffer, label, stat.size) : systemError(buffer, 'shmat', label);
    return new SysvSharedMemory(id, stat.key, label, buffer, readOnly, created);
  }

  /** `shmctl(IPC_STAT)`: size, attach count, creator and last pids, times, owner, mode. */
  stat(): SysvSharedMemoryStat {
    this.check('stat');
    return statOfId(this.id, this.address);
  }

  /** Marks the segment for removal (`IPC_RMID`); this handle stays attached until closed. */
  remove(): void {
    const r = native.shmRemove(this.id);
    if (r < 0) throw systemError(r, 'shmctl', this.address);
  }

}
