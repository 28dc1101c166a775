/**
 * Unique names for test objects, and a tracker that removes whatever a test
 * created and checks that nothing is left behind.
 */
import { existsSync, readFileSync, readdirSync, readlinkSync, statfsSync } from 'node:fs';
import {
  NamedSemaphore, PosixMessageQueue, PosixSharedMemory, SemaphoreSet, SysvMessageQueue, SysvSharedMemory,
} from '../../src/index.js';
import { native } from '../../src/native.js';

let counter = 0;

/** A POSIX name no other test (or run) uses: `/ipckit-test-<pid>-<n>-<random>`. */
export function uniqueName(label = 'q'): string {
  counter++;
  return `/ipckit-test-${label}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** The rows of a /proc/sysvipc table, each by its column names (numbers; keys unsigned). */
function sysvRows(file: string): Record<string, number>[] {
  const [header, ...rows] = readFileSync(file, 'utf8').trim().split('\n');
  const names = header!.trim().split(/\s+/);
  return rows.map((row) => {
    const cells = row.trim().split(/\s+/).map(Number);
    const entry = Object.fromEntries(names.map((name, i) => [name, cells[i]!]));
    entry.key = entry.key! >>> 0;
    return entry;
  });
}

/** System V queues now: key, id, and the pids of the last sender and receiver. */
export function sysvQueues(): { key: number; id: number; lspid: number; lrpid: number }[] {
  return sysvRows('/proc/sysvipc/msg').map((r) => ({ key: r.key!, id: r.msqid!, lspid: r.lspid!, lrpid: r.lrpid! }));
}

/** System V shared-memory segments now: key, id, and the pids of the creator and the last attacher. */
export function sysvSegments(): { key: number; id: number; cpid: number; lpid: number }[] {
  return sysvRows('/proc/sysvipc/shm').map((r) => ({ key: r.key!, id: r.shmid!, cpid: r.cpid!, lpid: r.lpid! }));
}

/** System V semaphore sets now: key, id and how many semaphores each has. */
export function sysvSemaphoreSets(): { key: number; id: number; nsems: number }[] {
  return sysvRows('/proc/sysvipc/sem').map((r) => ({ key: r.key!, id: r.semid!, nsems: r.nsems! }));
}

/** System V queue keys in use now. */
export function sysvQueueKeys(): Set<number> {
  return new Set(sysvQueues().map((q) => q.key));
}

/** System V shared-memory keys in use now. */
export function sysvSegmentKeys(): Set<number> {
  return new Set(sysvSegments().map((s) => s.key));
}

/** System V semaphore set keys in use now. */
export function sysvSemaphoreKeys(): Set<number> {
  return new Set(sysvSemaphoreSets().map((s) => s.key));
}

/** Whether the POSIX named semaphore `name` exists (its file, /dev/shm/sem.NAME). */
export function namedSemaphoreExists(name: string): boolean {
  return existsSync(`/dev/shm/sem.${name.slice(1)}`);
}

/** A System V key in 0x7f000000..0x7fffffff that no queue, segment or semaphore set uses now. */
export function uniqueKey(): number {
  const used = new Set([...sysvQueueKeys(), ...sysvSegmentKeys(), ...sysvSemaphoreKeys()]);
  for (;;) {
    const key = (0x7f000000 | Math.floor(Math.random() * 0x1000000)) >>> 0;
    if (!used.has(key)) return key;
  }
}

/** Whether a POSIX queue with this name exists. */
export function posixQueueExists(name: string): boolean {
  const fd = native.mqOpen(name, native.constants.O_RDONLY | native.constants.O_CLOEXEC, 0, 0, 0);
  if (fd >= 0) {
    native.close(fd);
    return true;
  }
  return false;
}

/** Open descriptors of this process. */
export function openFds(): string[] {
  return readdirSync('/proc/self/fd');
}

/** The descriptors open now, each with what it links to (one closed meanwhile, as the listing's own, left out). */
export function fdIdentities(): string[] {
  return openFds().flatMap((fd) => {
    try {
      return [`${fd} ${readlinkSync(`/proc/self/fd/${fd}`)}`];
    } catch {
      return [];
    }
  });
}

/** What kinds of descriptor ipckit keeps for the life of the process (or thread): its readiness registry, the signal dispatcher and its doorbells. */
const LIFELONG = ['anon_inode:[eventpoll]', 'anon_inode:[eventfd]', 'anon_inode:[signalfd]'];

/**
 * Descriptors open now that were not in `baseline` (from `fdIdentities`, as `fdSnapshot` takes it), each with what it
 * links to, but for the descriptors ipckit keeps for the process's life
 * ({@link LIFELONG}). A descriptor that is gone by the time it is looked
 * at is not counted: the listing's own directory descriptor is one (its
 * number moves whenever a lifelong descriptor takes the one it had in the
 * baseline).
 */
export function fdsBeyond(baseline: Set<string>): string[] {
  return fdIdentities().filter((id) => !baseline.has(id) && !LIFELONG.includes(id.slice(id.indexOf(' ') + 1)));
}

/** Descriptors of this process that are pipes, or (with `under`) FIFOs or files below that folder. */
export function pipeFds(under?: string): string[] {
  return openFds().filter((fd) => {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      return target.startsWith('pipe:') || (under !== undefined && target.startsWith(under));
    } catch {
      return false;
    }
  });
}

/** How many sockets this process has open (the readiness of a channel, its ringing socket: see src/channel.ts). */
export function openSockets(): number {
  return openFds().filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:');
    } catch {
      // The directory's own descriptor, closed by now.
      return false;
    }
  }).length;
}

/**
 * Records the objects a test file creates; `cleanup()` removes any that are
 * left, and `leftovers()` reports what still exists.
 */
export class ObjectTracker {
  readonly posix = new Set<string>();
  readonly sysv = new Set<number>();
  readonly posixShm = new Set<string>();
  readonly sysvShm = new Set<number>();
  readonly posixSem = new Set<string>();
  readonly sysvSem = new Set<number>();

  /** A unique POSIX shared-memory name. */
  shmName(label = 'shm'): string {
    const name = uniqueName(label);
    this.posixShm.add(name);
    return name;
  }

  /** A System V key for a shared-memory segment. */
  shmKey(): number {
    const key = uniqueKey();
    this.sysvShm.add(key);
    return key;
  }

  /** A unique POSIX named-semaphore name. */
  semName(label = 'sem'): string {
    const name = uniqueName(label);
    this.posixSem.add(name);
    return name;
  }

  /** A System V key for a semaphore set. */
  semKey(): number {
    const key = uniqueKey();
    this.sysvSem.add(key);
    return key;
  }

  name(label?: string): string {
    const name = uniqueName(label);
    this.posix.add(name);
    return name;
  }

  key(): number {
    const key = uniqueKey();
    this.sysv.add(key);
    return key;
  }

  leftovers(): string[] {
    const left: string[] = [];
    for (const name of this.posix) if (posixQueueExists(name)) left.push(name);
    const keys = sysvQueueKeys();
    for (const key of this.sysv) if (keys.has(key)) left.push(`0x${key.toString(16)}`);
    for (const name of this.posixShm) if (existsSync(`/dev/shm${name}`)) left.push(`shm ${name}`);
    const segments = sysvSegmentKeys();
    for (const key of this.sysvShm) if (segments.has(key)) left.push(`shm 0x${key.toString(16)}`);
    for (const name of this.posixSem) if (namedSemaphoreExists(name)) left.push(`sem ${name}`);
    const sets = sysvSemaphoreKeys();
    for (const key of this.sysvSem) if (sets.has(key)) left.push(`sem 0x${key.toString(16)}`);
    return left;
  }

  cleanup(): void {
    // Whatever a test already removed fails here quietly.
    const quietly = <K>(items: Set<K>, remove: (item: K) => void): void => {
      for (const item of items) {
        try {
          remove(item);
        } catch {
          /* Already removed by the test. */
        }
      }
    };
    quietly(this.posix, (name) => PosixMessageQueue.unlink(name));
    quietly(this.sysv, (key) => SysvMessageQueue.remove(key));
    quietly(this.posixShm, (name) => PosixSharedMemory.unlink(name));
    quietly(this.sysvShm, (key) => SysvSharedMemory.remove(key));
    quietly(this.posixSem, (name) => NamedSemaphore.unlink(name));
    quietly(this.sysvSem, (key) => SemaphoreSet.remove(key));
  }

}

/** The filesystem magic number of the mqueue filesystem (statfs f_type). */
export const MQUEUE_MAGIC = 0x19800202;

/** Descriptors of this process that are POSIX message queues. */
export function mqueueFds(): string[] {
  return openFds().filter((fd) => {
    try {
      return statfsSync(`/proc/self/fd/${fd}`).type === MQUEUE_MAGIC;
    } catch {
      return false;
    }
  });
}
