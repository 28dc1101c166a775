/**
 * An inventory of the IPC objects on this machine, of every kind ipckit
 * knows: what `ipckit ls` prints. Like `ipcs`, but also for POSIX objects,
 * and with whether the processes that used them are still alive.
 *
 * @module
 */
import { readFileSync, readdirSync, readlinkSync, statSync, statfsSync } from 'node:fs';
import { IpcError } from './errors.js';
import { formatKey } from './internal/address.js';
import { PosixMessageQueue } from './message-queue.js';
import { native } from './native.js';

/** The kinds of object the inventory reports. */
export type IpcObjectKind = 'posix-mq' | 'sysv-mq' | 'posix-shm' | 'sysv-shm' | 'fifo';

/** A process related to an object. */
export interface IpcProcessRef {
  pid: number;
  /**
   * `holder`: has it open or mapped now; `creator`: created it (System V
   * shared memory); `last-send` / `last-receive` / `last-attach`: the
   * kernel's record of the last user.
   */
  role: 'holder' | 'creator' | 'last-send' | 'last-receive' | 'last-attach';
  /** Whether a process with this pid exists now. */
  alive: boolean;
}

/** One IPC object. */
export interface IpcObjectInfo {
  kind: IpcObjectKind;
  /** How to address it with ipckit: `/name`, `0x00001234` or `id:N` (private System V objects). */
  address: string;
  /** System V identifier. */
  id?: number;
  /** System V key (0 for private objects). */
  key?: number;
  uid: number;
  /** User name of `uid`, or the number as text. */
  owner: string;
  /** Permission bits. */
  mode: number;
  /** Messages queued now, when known. */
  messages: number | null;
  /** Bytes queued now, when known. */
  bytes: number | null;
  /** Capacity in bytes (System V) or messages × size (POSIX), when known. */
  maxBytes: number | null;
  /** Shared memory: size in bytes. */
  size?: number;
  /** System V shared memory: processes attached now. */
  attachments?: number;
  /** A POSIX object whose name was removed while processes still hold it open. */
  deleted?: boolean;
  processes: IpcProcessRef[];
}

/** The objects found, and notes on what could not be listed and why. */
export interface IpcInventory {
  objects: IpcObjectInfo[];
  notes: string[];
}

const MQUEUE_MAGIC = 0x19800202;
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

function userName(uid: number): string {
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

/** What the processes we may inspect hold: POSIX queues (by descriptor) and /dev/shm segments (by descriptor or mapping). */
interface ProcessScan {
  queues: Map<string, { holders: Set<number>; fdPath: string; deleted: boolean }>;
  segments: Map<string, Set<number>>;
  /** FIFOs (named pipes) open in some process, by path. */
  fifos: Map<string, Set<number>>;
}

function scanProcesses(): ProcessScan {
  const scan: ProcessScan = { queues: new Map(), segments: new Map(), fifos: new Map() };
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
    } catch {
      continue; // Gone, or not ours to read.
    }
    for (const fd of fds) {
      const fdPath = `/proc/${pid}/fd/${fd}`;
      try {
        const target = readlinkSync(fdPath);
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
        const entry = scan.queues.get(key) ?? { holders: new Set<number>(), fdPath, deleted };
        entry.holders.add(Number(pid));
        scan.queues.set(key, entry);
      } catch {
        /* The descriptor closed while we looked. */
      }
    }
    try {
      for (const m of readFileSync(`/proc/${pid}/maps`, 'utf8').matchAll(/ \/dev\/shm\/([^/\s]+)$/gm)) holdsSegment(`/${m[1]}`, Number(pid));
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

function posixMessageQueues(scan: ProcessScan, notes: string[]): IpcObjectInfo[] {
  let mounted = false;
  try {
    mounted = statfsSync(MQUEUE_DIR).type === MQUEUE_MAGIC;
  } catch {
    /* Not there. */
  }
  const open = scan.queues;
  const names = new Set<string>();
  if (mounted) {
    for (const entry of readdirSync(MQUEUE_DIR)) names.add(`/${entry}`);
  } else {
    notes.push(`${MQUEUE_DIR} is not mounted, so POSIX message queues that no process has open cannot be listed ` +
      '(the ones open in a process you may inspect are shown). To list them all: ' +
      `sudo mkdir -p ${MQUEUE_DIR} && sudo mount -t mqueue none ${MQUEUE_DIR}`);
  }
  for (const [key, entry] of open) if (!entry.deleted) names.add(key);
  const objects: IpcObjectInfo[] = [];
  const describe = (address: string, statPath: string, holders: Set<number> | undefined, live: boolean): void => {
    let st;
    try {
      st = statSync(statPath);
    } catch {
      return; // Removed while we looked.
    }
    const attrs = live ? posixAttributes(address) : undefined;
    let bytes: number | null = null;
    if (mounted && live) {
      const qsize = /QSIZE:\s*([0-9]+)/.exec(readFileSync(`${MQUEUE_DIR}${address}`, 'utf8'))?.[1];
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
    describe(name, mounted ? `${MQUEUE_DIR}${name}` : entry!.fdPath, entry?.holders, true);
  }
  for (const [key, entry] of open) {
    if (entry.deleted) describe(key.slice(0, -1), entry.fdPath, entry.holders, false);
  }
  return objects;
}

/**
 * Lists the IPC objects of this machine that the calling user can see.
 *
 * @example
 * ```ts
 * for (const o of listIpcObjects().objects) console.log(o.kind, o.address, o.messages);
 * ```
 */
export function listIpcObjects(): IpcInventory {
  const notes: string[] = [];
  const scan = scanProcesses();
  const objects = [
    ...posixMessageQueues(scan, notes), ...sysvMessageQueues(), ...posixSharedMemory(scan, notes), ...sysvSharedMemory(), ...fifos(scan),
  ];
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

/** POSIX segments: the files of /dev/shm (POSIX named semaphores, sem.*, are not segments). */
function posixSharedMemory(scan: ProcessScan, notes: string[]): IpcObjectInfo[] {
  let entries: string[];
  try {
    entries = readdirSync(SHM_DIR);
  } catch {
    notes.push(`${SHM_DIR} cannot be read, so POSIX shared memory cannot be listed.`);
    return [];
  }
  const objects: IpcObjectInfo[] = [];
  for (const entry of entries.sort()) {
    if (entry.startsWith('sem.')) continue;
    let st;
    try {
      st = statSync(`${SHM_DIR}/${entry}`);
    } catch {
      continue; // Removed while we looked.
    }
    if (!st.isFile()) continue;
    const holders = scan.segments.get(`/${entry}`) ?? new Set<number>();
    objects.push({
      kind: 'posix-shm', address: `/${entry}`, uid: st.uid, owner: userName(st.uid), mode: st.mode & 0o777,
      messages: null, bytes: null, maxBytes: null, size: st.size,
      processes: [...holders].map((pid) => ({ pid, role: 'holder' as const, alive: true })),
    });
  }
  return objects;
}
