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
export type IpcObjectKind = 'posix-mq' | 'sysv-mq';

/** A process related to an object. */
export interface IpcProcessRef {
  pid: number;
  /** `holder`: has it open now; `last-send` / `last-receive`: the kernel's record of the last user. */
  role: 'holder' | 'last-send' | 'last-receive';
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
  processes: IpcProcessRef[];
}

/** The objects found, and notes on what could not be listed and why. */
export interface IpcInventory {
  objects: IpcObjectInfo[];
  notes: string[];
}

const MQUEUE_MAGIC = 0x19800202;
const MQUEUE_DIR = '/dev/mqueue';

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

function sysvMessageQueues(): IpcObjectInfo[] {
  let text: string;
  try {
    text = readFileSync('/proc/sysvipc/msg', 'utf8');
  } catch {
    return [];
  }
  const [header, ...rows] = text.trim().split('\n');
  const columns = (header ?? '').trim().split(/\s+/);
  return rows.filter((row) => row.trim() !== '').map((row) => {
    const values = row.trim().split(/\s+/);
    const field = (name: string): number => Number(values[columns.indexOf(name)]);
    // Permissions are printed in octal.
    const mode = Number.parseInt(values[columns.indexOf('perms')] ?? '0', 8) & 0o777;
    // /proc prints the key as a signed decimal.
    const key = field('key') >>> 0;
    const id = field('msqid');
    const processes: IpcProcessRef[] = [];
    for (const [role, pid] of [['last-send', field('lspid')], ['last-receive', field('lrpid')]] as const) {
      if (pid > 0) processes.push({ pid, role, alive: isAlive(pid) });
    }
    return {
      kind: 'sysv-mq', address: key === 0 ? `id:${id}` : formatKey(key), id, key,
      uid: field('uid'), owner: userName(field('uid')), mode,
      messages: field('qnum'), bytes: field('cbytes'), maxBytes: sysvMaxBytes(id), processes,
    } satisfies IpcObjectInfo;
  });
}

/** POSIX queues some process has open now, found through /proc/PID/fd. */
function openPosixQueues(): Map<string, { holders: Set<number>; fdPath: string; deleted: boolean }> {
  const found = new Map<string, { holders: Set<number>; fdPath: string; deleted: boolean }>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((entry) => /^[0-9]+$/.test(entry));
  } catch {
    return found;
  }
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
        const match = /^(\/[^/]+?)( \(deleted\))?$/.exec(readlinkSync(fdPath));
        if (match === null || statfsSync(fdPath).type !== MQUEUE_MAGIC) continue;
        const name = match[1]!;
        const deleted = match[2] !== undefined;
        const key = deleted ? `${name} (deleted)` : name;
        const entry = found.get(key) ?? { holders: new Set<number>(), fdPath, deleted };
        entry.holders.add(Number(pid));
        found.set(key, entry);
      } catch {
        /* The descriptor closed while we looked. */
      }
    }
  }
  return found;
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

function posixMessageQueues(notes: string[]): IpcObjectInfo[] {
  let mounted = false;
  try {
    mounted = statfsSync(MQUEUE_DIR).type === MQUEUE_MAGIC;
  } catch {
    /* Not there. */
  }
  const open = openPosixQueues();
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
      kind: 'posix-mq', address, uid: st.uid, owner: userName(st.uid), mode: st.mode & 0o777,
      messages: attrs?.messages ?? null, bytes, maxBytes: attrs?.maxBytes ?? null,
      processes: [...(holders ?? [])].map((pid) => ({ pid, role: 'holder' as const, alive: true })),
    });
  };
  for (const name of [...names].sort()) {
    const entry = open.get(name);
    describe(name, mounted ? `${MQUEUE_DIR}${name}` : entry!.fdPath, entry?.holders, true);
  }
  for (const [key, entry] of open) {
    if (entry.deleted) describe(key, entry.fdPath, entry.holders, false);
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
  const objects = [...posixMessageQueues(notes), ...sysvMessageQueues()];
  return { objects, notes };
}
