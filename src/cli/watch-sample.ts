/**
 * One sample of `ipckit watch`: the objects `ipckit ls` lists, filtered, with
 * the gauges and counters a rate can be measured from. Runs in the watch's
 * worker thread (watch-worker.ts): every read here is synchronous, and the
 * command's event loop stays free for the keyboard, signals and the screen.
 * @internal
 * @module
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { oPathFlags } from '../internal/socket-file.js';
import { type IpcObjectInfo, type IpcObjectKind, type IpcProcessRef, listIpcObjects, readChannelHeader } from '../inventory.js';
import { lazily, native } from '../native.js';
import { REMOVABLE_KINDS, type RemovableKind, usageError } from './program.js';

/** Each kind of object, and the `--kind` word (the one `ipckit rm --kind` takes) that names it with its family. */
const GROUP_OF: Record<IpcObjectKind, RemovableKind> = {
  'posix-mq': 'mq', 'sysv-mq': 'mq', 'posix-shm': 'shm', 'sysv-shm': 'shm', channel: 'channel', 'posix-sem': 'sem', 'sysv-sem': 'sem',
  fifo: 'fifo', unix: 'socket', 'unix-dgram': 'socket', 'unix-seqpacket': 'socket',
};

/** Which objects to watch: kinds (all when undefined) and an address pattern (see {@link addressMatcher}). */
export interface WatchFilter {
  kinds?: IpcObjectKind[];
  name?: string;
}

/**
 * The kinds a `--kind` value names: a comma-separated list of families
 * (`mq`, `shm`, `channel`, `sem`, `fifo`, `socket`) and kinds as ls prints
 * them (`posix-mq`, `unix-dgram`...). A usage error for anything else.
 */
export function parseKinds(text: string): IpcObjectKind[] {
  const kinds = new Set<IpcObjectKind>();
  for (const word of text.split(',')) {
    const named = (Object.keys(GROUP_OF) as IpcObjectKind[]).filter((kind) => kind === word || GROUP_OF[kind] === word);
    if (named.length === 0) {
      throw usageError(`--kind takes ${Object.keys(REMOVABLE_KINDS).join(', ')} or a kind as ls prints it ` +
        `(${Object.keys(GROUP_OF).join(', ')}), separated by commas; got "${word}".`);
    }
    for (const kind of named) kinds.add(kind);
  }
  return [...kinds];
}

/**
 * What `--name PATTERN` keeps: addresses containing PATTERN; with a `*` (any
 * characters) or `?` (one character) in it, addresses the whole pattern matches.
 */
export function addressMatcher(pattern: string): (address: string) => boolean {
  if (!/[*?]/.test(pattern)) return (address) => address.includes(pattern);
  const source = [...pattern].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&'))).join('');
  const re = new RegExp(`^${source}$`, 'su');
  return (address) => re.test(address);
}

/** A process related to an object, with its command name (`/proc/PID/comm`), or null once it is gone. */
export interface WatchedProcess extends IpcProcessRef {
  command: string | null;
}

/** An object as `ipckit watch` reports it: what ls reports, and the gauges it watches. */
export interface WatchedObject extends Omit<IpcObjectInfo, 'processes'> {
  /**
   * The count the object holds now: messages queued (queues, channels), the
   * value (a named semaphore; a System V set: the sum of its values),
   * connections waiting to be accepted (a listening socket). Null when it has
   * none, or it could not be read.
   */
  depth: number | null;
  /** System V semaphore set: the value of each semaphore, when this user may read them. */
  values?: number[];
  /** Channel: messages sent and received since it was created (its header's counters). */
  sent?: number;
  received?: number;
  processes: WatchedProcess[];
}

/** One sample: when it began (milliseconds since the epoch), the objects kept, how many there were in all, and ls's notes. */
export interface WatchSample {
  time: number;
  objects: WatchedObject[];
  all: number;
  notes: string[];
}

const C = lazily(() => native.constants);

/**
 * Takes one sample. `time` is read before anything else, so every value in
 * the sample was read after it.
 */
export function sampleObjects(filter: WatchFilter): WatchSample {
  const time = performance.timeOrigin + performance.now();
  const inventory = listIpcObjects();
  const kinds = filter.kinds === undefined ? undefined : new Set(filter.kinds);
  const named = filter.name === undefined ? undefined : addressMatcher(filter.name);
  // Filtered first: a FIFO or a channel is opened only if it is watched.
  const kept = inventory.objects.filter((o) => (kinds === undefined || kinds.has(o.kind)) && (named === undefined || named(o.address)));
  const commands = new Map<number, string | null>();
  const commandOf = (pid: number): string | null => {
    if (!commands.has(pid)) {
      let command: string | null = null;
      try {
        command = readFileSync(`/proc/${pid}/comm`, 'utf8').replace(/\n$/, '');
      } catch {
        /* Gone. */
      }
      commands.set(pid, command);
    }
    return commands.get(pid)!;
  };
  const objects = kept.map((o): WatchedObject => ({
    ...o,
    ...gauges(o),
    processes: o.processes.map((p) => ({ ...p, command: p.alive ? commandOf(p.pid) : null })),
  }));
  return { time, objects, all: inventory.objects.length, notes: inventory.notes };
}

/** The depth of `o`, and what ls does not read: a channel's counters, a set's values, the bytes in a FIFO. */
function gauges(o: IpcObjectInfo): Pick<WatchedObject, 'depth' | 'bytes' | 'messages' | 'values' | 'sent' | 'received'> {
  switch (o.kind) {
    case 'posix-mq':
    case 'sysv-mq':
      return { depth: o.messages, bytes: o.bytes, messages: o.messages };
    case 'channel': {
      // Read once more, for the counters and a depth of the same moment.
      const header = readChannelHeader(o.address);
      if (header === undefined) return { depth: o.messages, bytes: o.bytes, messages: o.messages };
      return { depth: header.messages, messages: header.messages, bytes: header.bytes, sent: header.sent, received: header.received };
    }
    case 'posix-sem':
      return { depth: o.value ?? null, bytes: null, messages: null };
    case 'sysv-sem': {
      const values = semaphoreValues(o.id!, o.semaphores!);
      return values === undefined ? { depth: null, bytes: null, messages: null }
        : { depth: values.reduce((sum, v) => sum + v, 0), values, bytes: null, messages: null };
    }
    case 'fifo':
      return { depth: null, bytes: fifoBytes(o.address, o.processes.map((p) => p.pid)), messages: null };
    case 'unix':
    case 'unix-dgram':
    case 'unix-seqpacket':
      return { depth: o.state === 'listening' ? o.pending ?? 0 : null, bytes: null, messages: null };
    case 'posix-shm':
    case 'sysv-shm':
      // A segment's size is no depth: nothing is queued in it.
      return { depth: null, bytes: null, messages: null };
  }
}

/** The values of System V set `id` (GETVAL), or undefined if this user may not read it (or it is gone). */
function semaphoreValues(id: number, count: number): number[] | undefined {
  // Per semaphore: value, waiting for increase, waiting for zero, last pid.
  const info = new Float64Array(4 * count);
  if (native.semInfo(id, info) < 0) return undefined;
  return Array.from({ length: count }, (_, i) => info[4 * i]!);
}

/**
 * The bytes in the pipe of the FIFO at `path` (FIONREAD), or null when they
 * cannot be read without disturbing anyone. Reading them takes a descriptor
 * of the FIFO, and opening one for reading wakes the writers blocked in open()
 * when it is the first reader: those would then write to a FIFO whose reader
 * leaves at once. So it is opened (for reading, non-blocking) only while one of
 * `holders` has it open for reading itself: the kernel wakes nobody then.
 *
 * The path is resolved once, by an O_PATH open, which opens nothing (no
 * FIFO's other side, no device's driver); the checks and the real open go
 * through that descriptor, so a path whose directories another user swaps
 * meanwhile (a symbolic link to /dev, to another FIFO) cannot make watch
 * open anything but the FIFO the holder reads.
 */
export function fifoBytes(path: string, holders: number[]): number | null {
  let held;
  try {
    held = openSync(path, oPathFlags());
  } catch {
    return null; // Removed since it was listed, or not ours to reach.
  }
  try {
    const st = fstatSync(held);
    if (!st.isFIFO() || !holders.some((pid) => readsFile(pid, st.dev, st.ino))) return null;
    let fd;
    try {
      fd = openSync(`/proc/self/fd/${held}`, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | C.O_CLOEXEC);
    } catch {
      return null;
    }
    try {
      const n = native.queuedBytes(fd);
      return n < 0 ? null : n;
    } finally {
      closeSync(fd);
    }
  } finally {
    closeSync(held);
  }
}

/** Whether process `pid` has the file `dev`:`ino` open for reading (read-only or read-write, not O_PATH). */
function readsFile(pid: number, dev: number, ino: number): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  return fds.some((fd) => {
    try {
      const st = statSync(`/proc/${pid}/fd/${fd}`);
      if (st.dev !== dev || st.ino !== ino) return false;
      const flags = Number.parseInt(/^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1] ?? '', 8);
      return Number.isInteger(flags) && (flags & C.O_PATH) === 0 && (flags & C.O_ACCMODE) !== C.O_WRONLY;
    } catch {
      return false; // Closed meanwhile.
    }
  });
}
