/**
 * An inventory of the IPC objects on this machine, of every kind ipckit
 * knows: what `ipckit ls` prints. Like `ipcs`, but also for POSIX objects
 * and Unix sockets, and with whether the processes that used them are still
 * alive.
 *
 * @module
 */
import {
  type Stats, closeSync, constants as fsConstants, fstatSync, lstatSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, statSync, statfsSync,
  unlinkSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { endianness, tmpdir } from 'node:os';
import { E, IpcError, systemError } from './errors.js';
import { formatKey } from './internal/address.js';
import { type Binding, oPathFlags, bindingOf } from './internal/socket-file.js';
import { PosixMessageQueue } from './message-queue.js';
import { CHANNEL_HEADER_BYTES, type ChannelHeader, channelHeaderFacts } from './channel.js';
import { lazily, native } from './native.js';
import { SEM_FILE_SIZE } from './semaphore.js';

/** The kinds of Unix socket, named as their address schemes are (`unix:`, `unix-dgram:`, `unix-seqpacket:`). */
export type UnixSocketKind = 'unix' | 'unix-dgram' | 'unix-seqpacket';

export { type ChannelHeader, type ChannelRoleHolder } from './channel.js';

/** The kinds of object the inventory reports. */
export type IpcObjectKind = 'posix-mq' | 'sysv-mq' | 'posix-shm' | 'sysv-shm' | 'channel' | 'posix-sem' | 'sysv-sem' | 'fifo' | UnixSocketKind;

/** A process related to an object. */
export interface IpcProcessRef {
  /** A process id; for a channel's `producer` and `consumer`, the thread id (a process's main thread id is its pid). */
  pid: number;
  /**
   * `holder`: has it open or mapped now; `creator`: created it (System V
   * shared memory); `last-send` / `last-receive` / `last-attach`: the
   * kernel's record of the last user; `last-op`: the kernel's record of
   * the last process to change a semaphore of a System V set (by an
   * operation, or by setting its value), one entry per distinct process;
   * `producer` / `consumer`: the thread holding that role of a channel, as
   * the channel's header records it.
   */
  role: 'holder' | 'creator' | 'last-send' | 'last-receive' | 'last-attach' | 'last-op' | 'producer' | 'consumer';
  /** Whether a process with this pid exists now (for a channel's role, that very thread: same id and start time). */
  alive: boolean;
}

/** One IPC object. */
export interface IpcObjectInfo {
  /** What it is: a POSIX or System V queue, segment or semaphore, a channel, a FIFO, or a kind of Unix socket. */
  kind: IpcObjectKind;
  /**
   * How to address it with ipckit: `/name`, `0x00001234` or `id:N` (private
   * System V objects), a FIFO's path, or a socket's `unix:/path` /
   * `unix:@name` (with the scheme of its kind).
   */
  address: string;
  /** System V identifier. */
  id?: number;
  /** System V key (0 for private objects). */
  key?: number;
  /** Unix socket: the socket's inode, as /proc/net/unix and `ss -x` show it (a stale file has none). */
  inode?: number;
  /**
   * The owner. Null only for a Unix socket without a file (abstract, or its
   * file removed) that no process we may inspect holds.
   */
  uid: number | null;
  /** User name of `uid`, the number as text, or `?` when unknown. */
  owner: string;
  /**
   * Permission bits. A socket file's are the file's; an abstract socket has
   * none (anyone in the network namespace may connect): 0o777.
   */
  mode: number;
  /** Messages queued now, when known (a channel: sent less received). */
  messages: number | null;
  /** Bytes queued now, when known (a channel: the ring bytes its messages take, headers and padding included). */
  bytes: number | null;
  /** Capacity in bytes (System V, a channel's ring) or messages × size (POSIX), when known. */
  maxBytes: number | null;
  /** Shared memory: size in bytes. */
  size?: number;
  /** System V shared memory: processes attached now. */
  attachments?: number;
  /** POSIX named semaphore: its value, or null when its file cannot be read. */
  value?: number | null;
  /**
   * POSIX named semaphore: the threads registered as sleeping on it (glibc
   * keeps the count in the semaphore), or null when its file cannot be read.
   */
  waiters?: number | null;
  /** System V semaphore set: how many semaphores it has. */
  semaphores?: number;
  /**
   * Unix socket: `listening` (a server), `bound` (a datagram socket, or a
   * stream socket bound and not listening), `connected` (bound, and
   * connected to a peer). A stale file has no state.
   */
  state?: 'listening' | 'bound' | 'connected';
  /** Listening Unix socket: connections it accepted that are open now. */
  connections?: number;
  /** Listening Unix socket: connections waiting to be accepted. */
  pending?: number;
  /**
   * A POSIX object whose name was removed while processes still hold it
   * open; a Unix socket whose file was removed or replaced, so that its
   * address no longer reaches it.
   */
  deleted?: boolean;
  /** A socket file no socket is bound to (its server exited without removing it): `ipckit rm` removes it. */
  stale?: boolean;
  /** The processes that hold it open or map it, and for System V objects the last ones to use it (see {@link IpcProcessRef}). */
  processes: IpcProcessRef[];
}

/** The objects found, and notes on what could not be listed and why. */
export interface IpcInventory {
  /** Every object found, sorted by kind and address. */
  objects: IpcObjectInfo[];
  /** What could not be seen, and why (a missing /dev/mqueue, an unreadable /proc entry): each a sentence for a person. */
  notes: string[];
}

const MQUEUE_MAGIC = 0x19800202;
const LITTLE_ENDIAN = endianness() === 'LE';
const MQUEUE_DIR = '/dev/mqueue';
const SHM_DIR = '/dev/shm';

/** Whether a process with `pid` exists (EPERM still means it exists). */
export function isAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let userNames: Map<number, string> | undefined;

function userName(uid: number | null): string {
  if (uid === null) return '?';
  if (userNames === undefined) {
    userNames = new Map();
    try {
      for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
        const [name, , id] = line.split(':');
        if (name && id && !userNames.has(Number(id))) userNames.set(Number(id), name);
      }
    } catch {
      /* No passwd file: owners are shown as numbers. */
    }
  }
  return userNames.get(uid) ?? String(uid);
}

/** msg_qbytes, which /proc/sysvipc/msg does not show; null if this user may not stat the queue. */
function sysvMaxBytes(id: number): number | null {
  const stat = native.msgStat(id);
  return typeof stat === 'number' ? null : stat.maxBytes;
}

/** Rows of a /proc/sysvipc table as name → number (keys are printed signed, perms in octal). */
function sysvTable(file: string): Record<string, number>[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const [header, ...rows] = text.trim().split('\n');
  const columns = (header ?? '').trim().split(/\s+/);
  return rows.filter((row) => row.trim() !== '').map((row) => {
    const values = row.trim().split(/\s+/);
    const record: Record<string, number> = {};
    columns.forEach((column, i) => {
      record[column] = column === 'perms' ? Number.parseInt(values[i] ?? '0', 8) & 0o777 : Number(values[i]);
    });
    record.key = record.key! >>> 0;
    return record;
  });
}

function pidRefs(refs: [IpcProcessRef['role'], number][]): IpcProcessRef[] {
  return refs.filter(([, pid]) => pid > 0).map(([role, pid]) => ({ pid, role, alive: isAlive(pid) }));
}

function sysvAddress(key: number, id: number): string {
  return key === 0 ? `id:${id}` : formatKey(key);
}

function sysvMessageQueues(): IpcObjectInfo[] {
  return sysvTable('/proc/sysvipc/msg').map((r) => ({
    kind: 'sysv-mq', address: sysvAddress(r.key!, r.msqid!), id: r.msqid!, key: r.key!,
    uid: r.uid!, owner: userName(r.uid!), mode: r.perms!,
    messages: r.qnum!, bytes: r.cbytes!, maxBytes: sysvMaxBytes(r.msqid!),
    processes: pidRefs([['last-send', r.lspid!], ['last-receive', r.lrpid!]]),
  }));
}

function sysvSharedMemory(): IpcObjectInfo[] {
  return sysvTable('/proc/sysvipc/shm').map((r) => ({
    kind: 'sysv-shm', address: sysvAddress(r.key!, r.shmid!), id: r.shmid!, key: r.key!,
    uid: r.uid!, owner: userName(r.uid!), mode: r.perms!,
    messages: null, bytes: null, maxBytes: null, size: r.size!, attachments: r.nattch!,
    processes: pidRefs([['creator', r.cpid!], ['last-attach', r.lpid!]]),
  }));
}

/** A holder's descriptor of an object: its /proc path, and the inode it was open on when the scan met it. */
interface HolderFd {
  path: string;
  ino: number;
}

/** What the processes we may inspect hold: POSIX queues (by descriptor) and /dev/shm segments (by descriptor or mapping). */
interface ProcessScan {
  /** Each queue with its holders, and a descriptor of each (path and inode: it may be closed, or its number reused, by the time it is read). */
  queues: Map<string, { holders: Set<number>; fds: HolderFd[]; deleted: boolean }>;
  segments: Map<string, Set<number>>;
  /**
   * The processes mapping each /dev/shm file, by inode: also a file mapped
   * before it had its name (a named semaphore is made nameless, then named),
   * which /proc/PID/maps shows as "/dev/shm/#INODE (deleted)".
   */
  mappedInodes: Map<number, Set<number>>;
  /** FIFOs (named pipes) open in some process, by path. */
  fifos: Map<string, Set<number>>;
  /** Sockets by inode: the processes holding one, and one of their descriptors (to stat the socket). */
  sockets: Map<number, { holders: Set<number>; fdPath: string }>;
  /** Processes whose descriptors this user may not read (another user's, without root). */
  unreadable: number;
}

function scanProcesses(): ProcessScan {
  const scan: ProcessScan = { queues: new Map(), segments: new Map(), mappedInodes: new Map(), fifos: new Map(), sockets: new Map(), unreadable: 0 };
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((entry) => /^[0-9]+$/.test(entry));
  } catch {
    return scan;
  }
  const holdsSegment = (name: string, pid: number): void => {
    const holders = scan.segments.get(name) ?? new Set<number>();
    holders.add(pid);
    scan.segments.set(name, holders);
  };
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') scan.unreadable++;
      continue; // Gone, or not ours to read.
    }
    for (const fd of fds) {
      const fdPath = `/proc/${pid}/fd/${fd}`;
      try {
        const target = readlinkSync(fdPath);
        const socket = /^socket:\[([0-9]+)\]$/.exec(target);
        if (socket) {
          const inode = Number(socket[1]);
          const entry = scan.sockets.get(inode) ?? { holders: new Set<number>(), fdPath };
          entry.holders.add(Number(pid));
          scan.sockets.set(inode, entry);
          continue;
        }
        // Removed from its name: the file has no link left. (A " (deleted)" suffix in the link
        // may also be part of a live name another user chose, so the suffix alone proves nothing.)
        const st = statSync(fdPath);
        const deleted = st.nlink === 0;
        const name = deleted && target.endsWith(' (deleted)') ? target.slice(0, -' (deleted)'.length) : target;
        const shm = /^\/dev\/shm\/([^/]+)$/.exec(name);
        if (shm) {
          if (!deleted) holdsSegment(`/${shm[1]}`, Number(pid));
          continue;
        }
        if (name.startsWith('/') && !deleted && st.isFIFO()) {
          const holders = scan.fifos.get(name) ?? new Set<number>();
          holders.add(Number(pid));
          scan.fifos.set(name, holders);
          continue;
        }
        if (!/^\/[^/]+$/.test(name) || statfsSync(fdPath).type !== MQUEUE_MAGIC) continue;
        // A removed queue is kept apart from a live one of the same name (NUL is in no name).
        const key = deleted ? `${name}\0` : name;
        const entry = scan.queues.get(key) ?? { holders: new Set<number>(), fds: [], deleted };
        entry.holders.add(Number(pid));
        entry.fds.push({ path: fdPath, ino: st.ino });
        scan.queues.set(key, entry);
      } catch {
        /* The descriptor closed while we looked. */
      }
    }
    try {
      // "address perms offset dev inode   path"; a mapped file stays allocated, so its inode names it alone.
      for (const m of readFileSync(`/proc/${pid}/maps`, 'utf8').matchAll(/ ([0-9]+) +\/dev\/shm\/([^/\n]+)$/gm)) {
        if (!/\s/.test(m[2]!)) holdsSegment(`/${m[2]}`, Number(pid));
        const holders = scan.mappedInodes.get(Number(m[1])) ?? new Set<number>();
        holders.add(Number(pid));
        scan.mappedInodes.set(Number(m[1]), holders);
      }
    } catch {
      /* Not ours to read. */
    }
  }
  return scan;
}

function posixAttributes(name: string): { messages: number; maxBytes: number } | undefined {
  for (const access of ['read', 'write'] as const) {
    try {
      using q = PosixMessageQueue.open(name, { access });
      const a = q.attributes();
      return { messages: a.messages, maxBytes: a.maxMessages * a.maxMessageSize };
    } catch (err) {
      if (!(err instanceof IpcError) || err.code !== 'EACCES') return undefined;
    }
  }
  return undefined;
}

/**
 * The POSIX queues of this IPC namespace seen through a private mqueue
 * mount, for root when /dev/mqueue is not mounted: `unshare --mount` gives
 * the mount a namespace of its own (this machine's mounts are untouched),
 * and the shell there prints each queue's name, owner, mode and QSIZE,
 * NUL-separated (a name may hold any byte but "/"). Undefined when that
 * cannot be done.
 */
function queuesThroughPrivateMount(): Map<string, { uid: number; mode: number; bytes: number | null }> | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const script = 'd=$(mktemp -d) && mount -t mqueue ipckit-ls "$d" && cd "$d" || exit 1\n' +
    'for f in * .[!.]* ..?*; do [ -e "$f" ] || continue; ' +
    'printf "%s\\0%s\\0%s\\0%s\\0" "$f" "$(stat -c %u -- "$f")" "$(stat -c %a -- "$f")" "$(sed -n "s/^QSIZE:\\([0-9]*\\).*/\\1/p" -- "$f")"; done\n' +
    'cd / && umount "$d" && rmdir "$d"';
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { encoding: 'latin1', timeout: 5_000 });
  if (r.status !== 0 || typeof r.stdout !== 'string') return undefined;
  const fields = r.stdout.split('\0');
  const view = new Map<string, { uid: number; mode: number; bytes: number | null }>();
  for (let i = 0; i + 3 < fields.length; i += 4) {
    const name = Buffer.from(fields[i]!, 'latin1').toString('utf8');
    view.set(`/${name}`, { uid: Number(fields[i + 1]), mode: Number.parseInt(fields[i + 2]!, 8), bytes: fields[i + 3] === '' ? null : Number(fields[i + 3]) });
  }
  return view;
}

function posixMessageQueues(scan: ProcessScan, notes: string[]): IpcObjectInfo[] {
  let mounted = false;
  try {
    mounted = statfsSync(MQUEUE_DIR).type === MQUEUE_MAGIC;
  } catch {
    /* Not there. */
  }
  const open = scan.queues;
  const names = new Set<string>();
  // Without the mount, root can still look through one of its own, in a mount namespace of its own.
  const privateView = mounted ? undefined : queuesThroughPrivateMount();
  if (mounted) {
    for (const entry of readdirSync(MQUEUE_DIR)) names.add(`/${entry}`);
  } else if (privateView !== undefined) {
    for (const name of privateView.keys()) names.add(name);
  } else {
    notes.push(`${MQUEUE_DIR} is not mounted, so POSIX message queues that no process has open cannot be listed ` +
      '(the ones open in a process you may inspect are shown). To list them all: ' +
      `sudo mkdir -p ${MQUEUE_DIR} && sudo mount -t mqueue none ${MQUEUE_DIR}`);
  }
  for (const [key, entry] of open) if (!entry.deleted) names.add(key);
  const objects: IpcObjectInfo[] = [];
  // A queue's owner and mode: from its file, else from any holder's descriptor still open on it (a holder may be another
  // lister that opened it for a moment), else as the private mount saw it; undefined once it is gone. A removed queue
  // (not `live`) has only its descriptors.
  const ownerOf = (address: string, fds: HolderFd[] | undefined, live: boolean): { uid: number; mode: number } | undefined => {
    if (mounted && live) {
      try {
        return statSync(`${MQUEUE_DIR}${address}`);
      } catch {
        return undefined; // Removed while we looked.
      }
    }
    for (const fd of fds ?? []) {
      try {
        const st = statSync(fd.path);
        if (st.ino === fd.ino) return st;
      } catch {
        /* Closed since the scan: another holder's may still be open. */
      }
    }
    return live ? privateView?.get(address) : undefined;
  };
  const describe = (address: string, fds: HolderFd[] | undefined, holders: Set<number> | undefined, live: boolean): void => {
    const seen = privateView?.get(address);
    const st = ownerOf(address, fds, live);
    if (st === undefined) return;
    const attrs = live ? posixAttributes(address) : undefined;
    let bytes: number | null = seen?.bytes ?? null;
    if (mounted && live) {
      let qsize: string | undefined;
      try {
        qsize = /QSIZE:\s*([0-9]+)/.exec(readFileSync(`${MQUEUE_DIR}${address}`, 'utf8'))?.[1];
      } catch {
        return; // Removed while we looked.
      }
      if (qsize !== undefined) bytes = Number(qsize);
    }
    objects.push({
      kind: 'posix-mq', address, uid: st.uid, owner: userName(st.uid),
      mode: st.mode & 0o777, messages: attrs?.messages ?? null, bytes, maxBytes: attrs?.maxBytes ?? null,
      ...(live ? {} : { deleted: true }),
      processes: [...(holders ?? [])].map((pid) => ({ pid, role: 'holder' as const, alive: true })),
    });
  };
  for (const name of [...names].sort()) {
    const entry = open.get(name);
    describe(name, entry?.fds, entry?.holders, true);
  }
  for (const [key, entry] of open) {
    if (entry.deleted) describe(key.slice(0, -1), entry.fds, entry.holders, false);
  }
  return objects;
}

/**
 * Lists the IPC objects of this machine that the calling user can see.
 *
 * @example
 * ```ts
 * import { listIpcObjects } from 'ipckit';
 *
 * const { objects, notes } = listIpcObjects();
 * for (const o of objects) console.log(o.kind, o.address, o.messages ?? '', o.processes.map((p) => p.pid).join(' '));
 * for (const note of notes) console.log('note:', note);
 * ```
 */
export function listIpcObjects(): IpcInventory {
  const notes: string[] = [];
  const scan = scanProcesses();
  const shm = devShmEntries(notes);
  const objects = [
    ...posixMessageQueues(scan, notes), ...sysvMessageQueues(), ...posixSharedMemory(scan, shm), ...sysvSharedMemory(),
    ...posixSemaphores(scan, shm), ...sysvSemaphoreSets(), ...fifos(scan),
    ...unixSockets(scan, notes),
  ];
  if (scan.unreadable > 0) {
    notes.push(`${scan.unreadable} process${scan.unreadable === 1 ? '' : 'es'} could not be inspected (another user's): ` +
      'the objects they hold are listed without them, and a socket without a file that only they hold has owner ?. Run as root to see every holder.');
  }
  return { objects, notes };
}

/**
 * FIFOs that some process has open (a FIFO can live anywhere in the file
 * system, so only those in use are found).
 */
function fifos(scan: ProcessScan): IpcObjectInfo[] {
  const objects: IpcObjectInfo[] = [];
  for (const [path, holders] of [...scan.fifos].sort()) {
    let st;
    try {
      st = statSync(path);
    } catch {
      continue; // Removed since it was opened.
    }
    if (!st.isFIFO()) continue;
    objects.push({
      kind: 'fifo', address: path, uid: st.uid, owner: userName(st.uid), mode: st.mode & 0o777,
      messages: null, bytes: null, maxBytes: null,
      processes: [...holders].map((pid) => ({ pid, role: 'holder' as const, alive: true })),
    });
  }
  return objects;
}

/** The entries of /dev/shm, sorted; none (and a note) if it cannot be read. */
function devShmEntries(notes: string[]): string[] {
  try {
    return readdirSync(SHM_DIR).sort();
  } catch {
    notes.push(`${SHM_DIR} cannot be read, so POSIX shared memory and named semaphores cannot be listed.`);
    return [];
  }
}

/** POSIX segments: the files of /dev/shm but the named semaphores' (see {@link semaphoreEntry}); a segment holding a channel is listed as one. */
function posixSharedMemory(scan: ProcessScan, entries: string[]): IpcObjectInfo[] {
  const objects: IpcObjectInfo[] = [];
  for (const entry of entries) {
    if (semaphoreEntry(entry) !== undefined) continue;
    let st;
    try {
      st = statSync(`${SHM_DIR}/${entry}`);
    } catch {
      continue; // Removed while we looked.
    }
    if (!st.isFile()) continue;
    const holders = [...scan.segments.get(`/${entry}`) ?? []].map((pid) => ({ pid, role: 'holder' as const, alive: true }));
    const owner = { address: `/${entry}`, uid: st.uid, owner: userName(st.uid), mode: st.mode & 0o777 };
    const channel = readChannelHeader(`/${entry}`);
    if (channel === undefined) {
      objects.push({ kind: 'posix-shm', ...owner, messages: null, bytes: null, maxBytes: null, size: st.size, processes: holders });
      continue;
    }
    const roles = (['producer', 'consumer'] as const).flatMap((role) => {
      const thread = channel[role];
      return thread === undefined ? [] : [{ pid: thread.tid, role, alive: thread.alive }];
    });
    objects.push({
      kind: 'channel', ...owner, messages: channel.messages, bytes: channel.bytes, maxBytes: channel.capacity, processes: [...roles, ...holders],
    });
  }
  return objects;
}

/**
 * The header of the channel in the POSIX segment `name`, or undefined if the
 * segment is not one (or cannot be read: it is then a plain segment to ls).
 * The file is read, never mapped; the open neither blocks nor follows a
 * symbolic link. The words are read at one moment by a process that does not
 * take part: they describe a channel in motion, not a consistent snapshot.
 */
export function readChannelHeader(name: string): ChannelHeader | undefined {
  const header = readDevShmFile(name, CHANNEL_HEADER_BYTES);
  return header === undefined ? undefined : channelHeaderFacts(header);
}

/**
 * The first `bytes` bytes of the /dev/shm file `name` (`/file`), read, never
 * mapped: the open neither blocks (on a FIFO) nor follows a symbolic link.
 * Undefined when it is gone, not ours to read, no regular file, shorter
 * than `bytes` or, with `exactly`, of another size.
 */
function readDevShmFile(name: string, bytes: number, exactly = false): Buffer | undefined {
  const data = Buffer.alloc(bytes);
  let fd;
  try {
    fd = openSync(`${SHM_DIR}${name}`, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch {
    return undefined; // Gone, not ours to read, or a symbolic link.
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || (exactly && st.size !== bytes) || readSync(fd, data, 0, bytes, 0) < bytes) return undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
  return data;
}

// ---- Semaphores ------------------------------------------------------------------

/**
 * The file of /dev/shm `entry` as a named semaphore's: `sem.NAME`, a regular
 * file (a symbolic link is not followed) of the size of glibc's sem_t, as
 * sem_open makes it. Any other file there, sem.* or not, is a segment to
 * shm_open (by its own name, `/sem.NAME`). Undefined if it is none.
 */
function semaphoreEntry(entry: string): Stats | undefined {
  if (!entry.startsWith('sem.') || entry.length === 'sem.'.length) return undefined;
  try {
    const st = lstatSync(`${SHM_DIR}/${entry}`);
    return st.isFile() && st.size === SEM_FILE_SIZE ? st : undefined;
  } catch {
    return undefined; // Removed while we looked.
  }
}

/** Whether the POSIX named semaphore `name` (`/name`) exists: a file that {@link semaphoreEntry} accepts. */
export function isNamedSemaphore(name: string): boolean {
  return semaphoreEntry(`sem.${name.slice(1)}`) !== undefined;
}

/**
 * POSIX named semaphores: their value and waiters, read from the file (the
 * first 64-bit word of glibc's sem_t, in the machine's byte order: the value
 * in its low 32 bits, the waiters in its high 32), and the processes that
 * map it.
 */
function posixSemaphores(scan: ProcessScan, entries: string[]): IpcObjectInfo[] {
  const objects: IpcObjectInfo[] = [];
  for (const entry of entries) {
    const st = semaphoreEntry(entry);
    if (st === undefined) continue;
    const file = readDevShmFile(`/${entry}`, SEM_FILE_SIZE, true);
    const word = file === undefined ? undefined : LITTLE_ENDIAN ? file.readBigUInt64LE(0) : file.readBigUInt64BE(0);
    objects.push({
      kind: 'posix-sem', address: `/${entry.slice('sem.'.length)}`, uid: st.uid, owner: userName(st.uid), mode: st.mode & 0o777, ...NO_DEPTH,
      value: word === undefined ? null : Number(word & 0xffffffffn), waiters: word === undefined ? null : Number(word >> 32n),
      processes: [...scan.mappedInodes.get(st.ino) ?? []].map((pid) => ({ pid, role: 'holder' as const, alive: true })),
    });
  }
  return objects;
}

/**
 * System V semaphore sets, from /proc/sysvipc/sem. It names no process (not
 * even the creator); the kernel records, per semaphore, the last process to
 * change it, read here when this user may read the set.
 */
function sysvSemaphoreSets(): IpcObjectInfo[] {
  return sysvTable('/proc/sysvipc/sem').map((r) => ({
    kind: 'sysv-sem', address: sysvAddress(r.key!, r.semid!), id: r.semid!, key: r.key!,
    uid: r.uid!, owner: userName(r.uid!), mode: r.perms!, ...NO_DEPTH, semaphores: r.nsems!,
    processes: lastOperators(r.semid!, r.nsems!),
  }));
}

/** The distinct processes last to change each semaphore of set `id` (GETPID), in index order; none if this user may not read it. */
function lastOperators(id: number, count: number): IpcProcessRef[] {
  // Per semaphore: value, waiting for increase, waiting for zero, last pid.
  const info = new Float64Array(4 * count);
  if (native.semInfo(id, info) < 0) return [];
  const pids = new Set(Array.from({ length: count }, (_, i) => info[4 * i + 3]!));
  return pidRefs([...pids].map((pid) => ['last-op', pid]));
}

// ---- Unix sockets ------------------------------------------------------------------
//
// Where each fact comes from, and what is inferred:
// - /proc/net/unix lists the Unix sockets of this network namespace: inode, type, state
//   and the address as it was bound (a relative path stays relative; a path whose file
//   was removed or renamed since is still shown). Unnamed sockets (the client ends of
//   connections, socket pairs) have no address and are skipped; a server's accepted
//   connections carry its address and are counted on it, not listed.
// - The processes holding a socket come from the one scan of /proc/[pid]/fd.
// - Socket files that no socket is bound to any more are in no kernel table: they are
//   looked for in the directories of bound sockets and in the usual socket directories.
// - Which socket owns a file is not in /proc/net/unix (it matches by path, and the file
//   at a path may have been removed and bound again, or replaced). So the kernel is
//   asked about each file: a datagram connect through an O_PATH descriptor of the file
//   reaches exactly that inode and disturbs nobody (nothing is queued on a server). It
//   succeeds when a datagram socket is bound to the file, fails with EPROTOTYPE when a
//   stream or seqpacket socket is (listening or not), and with ECONNREFUSED when none
//   is: the file is stale. A bound file belongs to a socket of the type the kernel
//   reported that names its path; if several do (the file was removed and bound again
//   while the first socket lived on), to the one created last (highest inode): only the
//   last bind at a path can have made the file there. The others are `deleted`.

const S = lazily(() => native.socketConstants);
/** The kind of a socket of each type of /proc/net/unix's Type column. */
function kindOfType(type: number): UnixSocketKind | undefined {
  return type === S.SOCK_STREAM ? 'unix' : type === S.SOCK_DGRAM ? 'unix-dgram' : type === S.SOCK_SEQPACKET ? 'unix-seqpacket' : undefined;
}
/** __SO_ACCEPTCON in the Flags column: a listening socket. */
const ACCEPTCON = 0x10000;
/** SS_CONNECTED in the St column. */
const SS_CONNECTED = 3;
/** One entry of /proc/net/unix: Num RefCount Protocol Flags Type St Inode [Path]. */
const UNIX_LINE = /^[0-9a-f]+: [0-9A-F]{8} [0-9A-F]{8} ([0-9A-F]{8}) ([0-9A-F]{4}) ([0-9A-F]{2}) +([0-9]+)(?: (.*))?$/;
/** Where stale socket files are looked for, besides the directories of bound sockets: down to SOCKET_DIR_DEPTH levels. */
const SOCKET_DIRS = ['/tmp', '/run', '/var/run', '/dev/shm'];
const SOCKET_DIR_DEPTH = 3;
/** The most directory entries the search for stale socket files reads, so that a huge /tmp cannot make a listing slow. */
const SOCKET_DIR_ENTRIES = 50_000;

// Socket names are kept as byte strings (latin1: one character per byte), so that a path
// that is not UTF-8 still names its file; they are decoded as UTF-8 only to be shown.
const bytesOf = (name: string): Buffer => Buffer.from(name, 'latin1');
const textOf = (name: string): string => bytesOf(name).toString('utf8');

/** A named socket of /proc/net/unix. */
interface UnixEntry {
  /** 0 for a connection still waiting to be accepted (it has no socket object yet). */
  inode: number;
  kind: UnixSocketKind;
  listening: boolean;
  connected: boolean;
  /**
   * The address as a byte string: a path as it was bound, or `@name` for an abstract
   * name (the kernel prints the name's NUL bytes as `@` too). A relative path starting
   * with `@` cannot be told from an abstract name; ipckit's `unix:@` syntax reads it so too.
   */
  name: string;
}

/** A socket that is bound, and its file once known. */
interface BoundSocket {
  entry: UnixEntry;
  /** The absolute path of its address (a relative one resolved from a holder's working directory). */
  path?: string;
  file?: SocketFile;
  /** Whether its path is in a directory this user may not search: whose file it is cannot be told. */
  hidden?: boolean;
  connections: number;
  pending: number;
}

interface SocketFile {
  /** Absolute path, a byte string. */
  path: string;
  st: Stats;
  candidates: BoundSocket[];
}

/** What lstat says of a path: its Stats, `absent`, or `hidden` (a directory on the way may not be searched by this user). */
type Look = Stats | 'absent' | 'hidden';

/** lstat by byte-string path, remembered for one listing. */
function statCache(): (path: string) => Look {
  const cache = new Map<string, Look>();
  return (path) => {
    let st = cache.get(path);
    if (st === undefined) {
      try {
        st = lstatSync(bytesOf(path));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        st = code === 'ENOENT' || code === 'ENOTDIR' ? 'absent' : 'hidden';
      }
      cache.set(path, st);
    }
    return st;
  };
}

const isSocketStat = (st: Look): st is Stats => typeof st === 'object' && st.isSocket();

/** The absolute path of a path socket's address, or undefined (relative, and no holder we may inspect). */
function pathResolver(scan: ProcessScan): (entry: UnixEntry) => string | undefined {
  const cwds = new Map<number, string | null>();
  return (entry) => {
    if (entry.name.startsWith('/')) return entry.name;
    // The holder's working directory now: usually the one it bound from (the file's binding is checked anyway).
    const holder = [...scan.sockets.get(entry.inode)?.holders ?? []][0];
    if (holder === undefined) return undefined;
    let cwd = cwds.get(holder);
    if (cwd === undefined) {
      try {
        cwd = readlinkSync(`/proc/${holder}/cwd`, 'latin1');
      } catch {
        cwd = null;
      }
      cwds.set(holder, cwd);
    }
    return cwd === null ? undefined : `${cwd.endsWith('/') ? cwd : `${cwd}/`}${entry.name}`;
  };
}

/**
 * The named sockets of /proc/net/unix. The kernel prints a path as its raw bytes, so a
 * name with a newline continues on the next line, and a name may even go on with text
 * shaped like an entry, to forge one. A line that is no entry continues the previous
 * name; one shaped like an entry does too when the file system says so: the previous
 * path is no socket file and the longer one is. (An abstract name cannot be checked
 * that way: a forged line after one is taken as an entry.)
 */
function unixEntries(resolve: (entry: UnixEntry) => string | undefined, look: (path: string) => Look): UnixEntry[] | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/net/unix', 'latin1');
  } catch {
    return undefined;
  }
  const lines = text.split('\n').slice(1);
  if (lines.at(-1) === '') lines.pop();
  const continues = (entry: UnixEntry, line: string): boolean => {
    const path = entry.name.startsWith('@') ? undefined : resolve(entry);
    return path !== undefined && !isSocketStat(look(path)) && isSocketStat(look(`${path}\n${line}`));
  };
  const entries: UnixEntry[] = [];
  let last: UnixEntry | undefined;
  for (const line of lines) {
    const m = UNIX_LINE.exec(line);
    if (last !== undefined && (m === null || continues(last, line))) {
      last.name += `\n${line}`;
      continue;
    }
    last = undefined;
    const kind = m === null ? undefined : kindOfType(Number.parseInt(m[2]!, 16));
    if (m === null || kind === undefined || m[5] === undefined) continue; // Unnamed: no address to list.
    last = {
      inode: Number(m[4]), kind, listening: (Number.parseInt(m[1]!, 16) & ACCEPTCON) !== 0,
      connected: Number.parseInt(m[3]!, 16) === SS_CONNECTED, name: m[5],
    };
    entries.push(last);
  }
  return entries;
}

/**
 * The sockets that hold an address, with what their address shares: a listener's
 * accepted connections and the ones waiting to be accepted carry its address, and
 * are counted on it (on the newest one, if several listen under one path).
 */
function boundSockets(entries: UnixEntry[]): BoundSocket[] {
  const groups = new Map<string, UnixEntry[]>();
  for (const entry of entries) {
    const key = `${entry.kind} ${entry.name}`;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [entry]);
    else group.push(entry);
  }
  const sockets: BoundSocket[] = [];
  for (const group of groups.values()) {
    let newestListener: BoundSocket | undefined;
    const hasListener = group.some((e) => e.listening);
    let connections = 0;
    let pending = 0;
    for (const entry of group) {
      if (entry.inode === 0) {
        pending++;
      } else if (hasListener && !entry.listening && entry.connected) {
        connections++;
      } else {
        const socket: BoundSocket = { entry, connections: 0, pending: 0 };
        sockets.push(socket);
        if (entry.listening && (newestListener === undefined || entry.inode > newestListener.entry.inode)) newestListener = socket;
      }
    }
    if (newestListener !== undefined) Object.assign(newestListener, { connections, pending });
  }
  return sockets;
}

/**
 * Socket files in `dirs` (the directories of bound sockets) and, down to a few levels,
 * in the usual socket directories; directories are read once, symbolic links not followed.
 */
function socketFilesIn(dirs: Iterable<string>, notes: string[]): string[] {
  const roots = new Set([tmpdir(), ...SOCKET_DIRS, process.env.XDG_RUNTIME_DIR ?? '', `/run/user/${process.getuid?.() ?? 0}`]);
  const queue: [string, number][] = [...dirs].map((dir) => [dir, 0]);
  for (const root of roots) if (root.startsWith('/')) queue.push([root, SOCKET_DIR_DEPTH]);
  const seen = new Map<string, number>();
  const found: string[] = [];
  let budget = SOCKET_DIR_ENTRIES;
  for (let i = 0; i < queue.length; i++) {
    const [dir, depth] = queue[i]!;
    let names;
    try {
      const st = statSync(bytesOf(dir));
      const id = `${st.dev}:${st.ino}`;
      if ((seen.get(id) ?? -1) >= depth) continue;
      seen.set(id, depth);
      names = readdirSync(bytesOf(dir), { withFileTypes: true, encoding: 'latin1' });
    } catch {
      continue; // Gone, or not ours to read.
    }
    if (names.length > budget) {
      notes.push(`The search for stale socket files stopped at ${textOf(dir)} after ${SOCKET_DIR_ENTRIES} directory entries; ` +
        'stale files further on are not listed (bound sockets all are).');
      break;
    }
    budget -= names.length;
    for (const dirent of names) {
      const path = `${dir.endsWith('/') ? dir : `${dir}/`}${dirent.name}`;
      if (dirent.isSocket()) found.push(path);
      else if (dirent.isDirectory() && depth > 0) queue.push([path, depth - 1]);
    }
  }
  return found;
}

/** What is bound to `file` now, or 'gone' if its path no longer names it. */
function fileBinding(file: SocketFile): Binding | { binding: 'gone' } {
  let fd;
  try {
    fd = openSync(bytesOf(file.path), oPathFlags());
  } catch {
    return { binding: 'gone' };
  }
  try {
    const st = fstatSync(fd);
    return st.dev === file.st.dev && st.ino === file.st.ino ? bindingOf(fd) : { binding: 'gone' };
  } finally {
    closeSync(fd);
  }
}

/** The sockets of /proc/net/unix with their files, and the socket files no listed socket owns. */
interface SocketSurvey {
  sockets: BoundSocket[];
  /** Socket files no listed socket owns, and what the kernel says is bound to each. */
  unowned: { file: SocketFile; binding: Binding['binding'] }[];
}

function surveySockets(scan: ProcessScan, notes: string[]): SocketSurvey | undefined {
  const look = statCache();
  const resolve = pathResolver(scan);
  const entries = unixEntries(resolve, look);
  if (entries === undefined) {
    notes.push('/proc/net/unix cannot be read, so Unix sockets are not listed.');
    return undefined;
  }
  const sockets = boundSockets(entries);
  const files = new Map<string, SocketFile>();
  const fileAt = (path: string, st: Look): SocketFile | undefined => {
    if (!isSocketStat(st)) return undefined;
    const id = `${st.dev}:${st.ino}`;
    let file = files.get(id);
    if (file === undefined) {
      file = { path, st, candidates: [] };
      files.set(id, file);
    }
    return file;
  };
  const dirs = new Set<string>();
  for (const socket of sockets) {
    if (socket.entry.name.startsWith('@')) continue;
    socket.path = resolve(socket.entry);
    if (socket.path === undefined) continue;
    dirs.add(socket.path.slice(0, Math.max(1, socket.path.lastIndexOf('/'))));
    const st = look(socket.path);
    if (st === 'hidden') socket.hidden = true;
    else fileAt(socket.path, st)?.candidates.push(socket);
  }
  for (const path of socketFilesIn(dirs, notes)) fileAt(path, look(path));
  const unowned: SocketSurvey['unowned'] = [];
  for (const file of files.values()) {
    const { binding } = fileBinding(file);
    if (binding === 'gone') continue; // Removed or replaced while we looked.
    const fits = (s: BoundSocket): boolean => binding === 'unknown' || (binding === 'dgram') === (s.entry.kind === 'unix-dgram');
    // The socket that made the file: one that is bound by itself before an accepted connection
    // that outlived its listener, then the one created last.
    const owner = binding === 'none' ? undefined : file.candidates.filter(fits)
      .sort((a, b) => Number(a.entry.connected) - Number(b.entry.connected) || b.entry.inode - a.entry.inode)[0];
    if (owner === undefined) unowned.push({ file, binding });
    else owner.file = file;
  }
  return { sockets, unowned };
}

/** The owner and mode of a socket without a file, from the socket itself (through a holder's descriptor). */
function socketOwner(inode: number, scan: ProcessScan): { uid: number | null; mode: number } {
  const fdPath = scan.sockets.get(inode)?.fdPath;
  if (fdPath !== undefined) {
    try {
      const st = statSync(fdPath);
      // The descriptor may have been closed and reused since the scan.
      if (st.ino === inode) return { uid: st.uid, mode: st.mode & 0o777 };
    } catch {
      /* Closed since. */
    }
  }
  return { uid: null, mode: 0o777 };
}

const NO_DEPTH = { messages: null, bytes: null, maxBytes: null } as const;

function socketInfo(socket: BoundSocket, scan: ProcessScan): IpcObjectInfo {
  const { entry, file } = socket;
  const abstract = entry.name.startsWith('@');
  const { uid, mode } = file !== undefined ? { uid: file.st.uid, mode: file.st.mode & 0o777 } : socketOwner(entry.inode, scan);
  const holders = [...scan.sockets.get(entry.inode)?.holders ?? []].sort((a, b) => a - b);
  return {
    kind: entry.kind, address: `${entry.kind}:${textOf(socket.path ?? entry.name)}`, inode: entry.inode,
    // An abstract socket has no permission bits: anyone in the network namespace may connect.
    uid, owner: userName(uid), mode: abstract ? 0o777 : mode, ...NO_DEPTH,
    state: entry.listening ? 'listening' : entry.kind !== 'unix-dgram' && entry.connected ? 'connected' : 'bound',
    ...(entry.listening ? { connections: socket.connections, pending: socket.pending } : {}),
    ...(socket.path !== undefined && file === undefined && !socket.hidden ? { deleted: true } : {}),
    processes: holders.map((pid) => ({ pid, role: 'holder' as const, alive: true })),
  };
}

function unownedFileInfo({ file, binding }: SocketSurvey['unowned'][number]): IpcObjectInfo {
  // A file keeps no socket type: a stale one is listed as unix. One bound by a socket that
  // /proc/net/unix shows under no path reaching it (a renamed file, a relative path whose
  // holder we may not inspect) is listed as bound, with the type the kernel told.
  const kind: UnixSocketKind = binding === 'dgram' ? 'unix-dgram' : 'unix';
  const bound = binding === 'dgram' || binding === 'stream';
  return {
    kind, address: `${kind}:${textOf(file.path)}`, uid: file.st.uid, owner: userName(file.st.uid), mode: file.st.mode & 0o777, ...NO_DEPTH,
    ...(bound ? { state: 'bound' as const } : { stale: true }), processes: [],
  };
}

/** Unix sockets bound to a path or an abstract name, and stale socket files. */
function unixSockets(scan: ProcessScan, notes: string[]): IpcObjectInfo[] {
  const survey = surveySockets(scan, notes);
  if (survey === undefined) return [];
  const objects = [...survey.sockets.map((s) => socketInfo(s, scan)), ...survey.unowned.map(unownedFileInfo)];
  return objects.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : (a.inode ?? 0) - (b.inode ?? 0)));
}

function fileType(st: Stats): string {
  return st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symbolic link' : st.isFIFO() ? 'a FIFO' : st.isFile() ? 'a regular file' : 'a device file';
}

/** The bound sockets `matching` picks, each as "a listening unix socket held by pid 12", or undefined if none. */
function describeBound(matching: (socket: BoundSocket) => boolean): string | undefined {
  const scan = scanProcesses();
  const found = (surveySockets(scan, [])?.sockets ?? []).filter(matching).map((socket) => {
    const info = socketInfo(socket, scan);
    const pids = info.processes.map((p) => p.pid);
    const held = pids.length === 0 ? ' (its process could not be inspected)' : ` held by pid ${pids.join(', ')}`;
    return `a ${info.state} ${info.kind} socket${held}`;
  });
  return found.length === 0 ? undefined : found.join(' and ');
}

/**
 * Removes a stale Unix socket file: one that no socket is bound to any more (its
 * server exited without removing it). Just before removing, the kernel is asked
 * about the very file that would be removed; a live one (any socket bound to it,
 * listening or not) is refused with `EADDRINUSE`. An abstract name is no file and
 * cannot be removed: it vanishes when its socket closes.
 *
 * `address` is `unix:/path` (or `unix-dgram:`, `unix-seqpacket:`: a file keeps no
 * type, any scheme names it) or `unix:@name`.
 *
 * @example
 * ```ts
 * removeStaleSocket('unix:/tmp/app.sock'); // throws EADDRINUSE while a server is bound to it
 * ```
 */
export function removeStaleSocket(address: string): void {
  // Not parseSocketAddress: a file found by `ipckit ls` may have a longer path than sun_path
  // holds (bound by a relative one); the kernel is asked through a descriptor, whatever its length.
  const scheme = /^(unix|unix-dgram|unix-seqpacket):/.exec(address);
  const rest = scheme === null ? '' : address.slice(scheme[0].length);
  if (scheme === null || rest === '' || rest.includes('\0')) {
    throw new IpcError('ERR_IPC_INVALID_ADDRESS', `${JSON.stringify(address)} is not a Unix socket address: use unix:/path or unix:@name.`, { address });
  }
  if (rest.startsWith('@')) {
    const name = `@${Buffer.from(rest.slice(1)).toString('latin1')}`;
    const bound = describeBound((s) => s.entry.name === name);
    const why = `${address} is an abstract name: it is no file, and vanishes when the socket bound to it closes; there is nothing to remove.`;
    if (bound === undefined) throw new IpcError('ENOENT', `${why} No socket is bound to it now.`, { address, errno: E.ENOENT });
    throw new IpcError('EADDRINUSE', `${why} Bound to it: ${bound}. Stop that process to free the name.`, { address, errno: E.EADDRINUSE });
  }
  let fd;
  try {
    fd = openSync(rest, oPathFlags());
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).errno ?? E.ENOENT;
    throw systemError(errno, 'open', address, errno === E.ENOENT ? 'No socket file there; "ipckit ls" lists the socket files it finds.' : undefined);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isSocket()) {
      throw new IpcError('ERR_IPC_INVALID_ADDRESS', `${rest} is ${fileType(st)}, not a socket file; it was left alone.`, { address });
    }
    const found = bindingOf(fd);
    if (found.binding === 'unknown') {
      throw systemError(found.r, 'connect', address,
        'Whether a socket is bound to it cannot be told (asking needs write permission on the file), so it was left alone');
    }
    if (found.binding !== 'none') {
      const bound = describeBound((s) => s.file !== undefined && s.file.st.dev === st.dev && s.file.st.ino === st.ino) ??
        `a ${found.binding === 'dgram' ? 'datagram' : 'stream or seqpacket'} socket`;
      throw new IpcError('EADDRINUSE', `${address} is live: ${bound} is bound to it; it was left alone. ` +
        'ipckit rm removes only stale socket files; a server removes its own when it closes.', { address, errno: E.EADDRINUSE });
    }
    // Unlinking goes by name: only while the name still is the file found stale.
    let now;
    try {
      now = lstatSync(rest);
    } catch (err) {
      throw systemError((err as NodeJS.ErrnoException).errno ?? E.ENOENT, 'lstat', address);
    }
    if (now.dev !== st.dev || now.ino !== st.ino) {
      throw new IpcError('EAGAIN', `${address} was replaced while it was checked; nothing was removed. Run the command again.`, { address, errno: E.EAGAIN });
    }
    try {
      unlinkSync(rest);
    } catch (err) {
      throw systemError((err as NodeJS.ErrnoException).errno ?? E.ENOENT, 'unlink', address);
    }
  } finally {
    closeSync(fd);
  }
}

/** Whether `path` is a socket file (not following a final symbolic link). */
export function isSocketFile(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}
