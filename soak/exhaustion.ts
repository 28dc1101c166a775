/**
 * Resource exhaustion: every limit ipckit can run into is hit on purpose, in
 * a child process of its own. The answer must be a clear `IpcError` (the
 * documented code, a message naming the setting to raise), never an abort,
 * a crash, a hang or a leak; and once the limit is lifted (handles closed,
 * or the setting raised) the same call must work again.
 *
 * Each child runs in a private IPC namespace, and where /dev/shm matters in
 * a private mount namespace with a small tmpfs there: whatever it makes dies
 * with it, and the machine's own limits and /dev/shm are never touched. It
 * runs as an unprivileged user (the per-user counters, RLIMIT_NPROC and
 * RLIMIT_MSGQUEUE, under a uid no other process uses, so nobody else's
 * processes share the count), under `prlimit` where a resource limit is the
 * subject. It prints one JSON report; a child that outlives its bound is a
 * hang, one that dies by a signal or exits non-zero is a crash.
 *
 * When a limit can only be lifted from outside (a sysctl of the child's IPC
 * namespace, the size of its tmpfs), the child prints `{"lift":true}` and
 * waits for a line on stdin; this process lifts the limit with `nsenter`
 * and answers. A soft RLIMIT_AS the child lowered itself, it raises again.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, promises as fsp, readFileSync, readSync, readdirSync, statfsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  Channel, IpcError, NamedSemaphore, PosixMessageQueue, PosixSharedMemory, Semaphore, SemaphoreSet, SysvMessageQueue, SysvSharedMemory, pipe,
} from '../src/index.js';
import { native } from '../src/native.js';
import { type Section, type SectionResult, descriptorTargets, openDescriptors, runStandalone } from './report.js';

const SELF = fileURLToPath(import.meta.url);
/** Set in a child's environment: the routine it runs, and its argument. */
const CHILD_ENV = 'IPCKIT_EXHAUSTION_CHILD';
const ARG_ENV = 'IPCKIT_EXHAUSTION_ARG';
const NOBODY = 65534;
const MiB = 2 ** 20;

// ===========================================================================
// What a child reports

/** How a call was refused: `code` is the IpcError's, `ok` if the call succeeded, or says what else was thrown. */
interface Refusal {
  code: string;
  errno?: string;
  syscall?: string;
  message: string;
}

interface ChildReport {
  refusal: Refusal;
  /** Calls that succeeded before the refusal (handles opened, waits parked, ...). */
  attempts: number;
  /** Whether the same call worked once the limit was lifted. */
  recovered: boolean;
  fdsBefore: number;
  fdsAfter: number;
  /** Invariants the child found broken: objects or descriptors left behind, space not returned, ... */
  problems: string[];
}

/** Errno names by value; the first name wins (EAGAIN, not EWOULDBLOCK). */
const ERRNO_NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(osConstants.errno)) if (!ERRNO_NAMES.has(value)) ERRNO_NAMES.set(value, name);

function refusalOf(err: unknown): Refusal {
  if (err === undefined) return { code: 'ok', message: '' };
  if (!(err instanceof IpcError)) {
    const e = err as Error | undefined;
    return { code: `not an IpcError (${e?.name ?? typeof err})`, message: String(e?.stack ?? err) };
  }
  return {
    code: err.code,
    ...(err.errno === undefined ? {} : { errno: ERRNO_NAMES.get(Math.abs(err.errno)) ?? `E${Math.abs(err.errno)}` }),
    ...(err.syscall === undefined ? {} : { syscall: err.syscall }),
    message: err.message,
  };
}

/** What `fn` threw, or undefined. */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err ?? new Error('threw a nullish value');
  }
}

/** What `promise` rejected with, or undefined if it resolved. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return err ?? new Error('rejected with a nullish value');
  }
}

const sleep = (ms: number): Promise<'pending'> => new Promise((resolve) => setTimeout(() => resolve('pending'), ms));

// ===========================================================================
// What a child measures (only while a descriptor is free: reading /proc takes one)


/**
 * Descriptors open now that were not in `before`. The thread's readiness
 * registry (one epoll set, created with the first descriptor-backed handle
 * and kept for the thread's life) is not a leak.
 */
function leakedDescriptors(before: string[]): string[] {
  const left = [...before];
  const extra: string[] = [];
  for (const target of descriptorTargets()) {
    const at = left.indexOf(target);
    if (at >= 0) left.splice(at, 1);
    else extra.push(target);
  }
  const registry = extra.indexOf('anon_inode:[eventpoll]');
  if (registry >= 0) extra.splice(registry, 1);
  return extra;
}

/** Reports the descriptors left open since the previous check (or since it was made), each once. */
class DescriptorWatch {
  /** Descriptors when the watch was made. */
  readonly count = openDescriptors();
  #seen = descriptorTargets();

  check(when: string): string[] {
    const extra = leakedDescriptors(this.#seen);
    this.#seen = descriptorTargets();
    return extra.length === 0 ? [] : [`${when}: ${extra.length} descriptor(s) left open (${extra.join(', ')})`];
  }
}

/** Entries in this namespace's /dev/shm (the child's own tmpfs). */
function shmEntries(): string[] {
  return readdirSync('/dev/shm');
}

function shmFreeBytes(): number {
  const s = statfsSync('/dev/shm');
  return s.bavail * s.bsize;
}

/** System V objects of this IPC namespace: lines of /proc/sysvipc/<kind> after the header. */
function sysvObjects(kind: 'msg' | 'shm' | 'sem'): number {
  return readFileSync(`/proc/sysvipc/${kind}`, 'utf8').trim().split('\n').length - 1;
}

function queueExists(name: string): boolean {
  const err = thrownBy(() => PosixMessageQueue.open(name).close());
  return !(err instanceof IpcError && err.code === 'ENOENT');
}

/** ipckit's waiter threads in this process now. */
function waiterThreads(): number {
  let n = 0;
  for (const task of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim() === 'ipckit-waiter') n++;
    } catch {
      /* The thread ended meanwhile. */
    }
  }
  return n;
}

/** Tasks (threads) of all processes whose real uid is `uid`: what RLIMIT_NPROC counts. */
function tasksOfUid(uid: number): number {
  let n = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) === uid) n += Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    } catch {
      /* Gone meanwhile. */
    }
  }
  return n;
}

/** Asks the parent to lift the limit, and waits until it has. */
function liftByParent(): void {
  process.stdout.write(`${JSON.stringify({ lift: true })}\n`);
  // A plain blocking read: a stdin stream would hold descriptors of its own.
  readSync(0, Buffer.alloc(16));
}

/** Sets this process's soft RLIMIT_AS with prlimit(1); the hard limit (unlimited) stays, so the process may raise it again. */
function limitAddressSpace(bytes: number | 'unlimited'): void {
  const r = spawnSync('prlimit', [`--pid=${process.pid}`, `--as=${bytes}:`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`prlimit --as failed: ${r.stderr}`);
}

function virtualSize(): number {
  return Number(/^VmSize:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) * 1024;
}

// ===========================================================================
// The children's routines

/** Most handles a child opens before giving up on reaching the limit. */
const MAX_HANDLES = 2000;
const ROUNDS = 3;

/**
 * Opens handles until the call is refused, closes them all, ROUNDS times;
 * each round must be refused alike and leave nothing behind. Then the same
 * call must work again. `settle`, when given, runs after each round's
 * closes, before anything is counted.
 */
async function untilRefused<T>(open: (i: number) => T, close: (handle: T) => void, leftovers: (refusedIndex: number) => string[],
  settle?: () => Promise<void>): Promise<ChildReport> {
  const fds = new DescriptorWatch();
  const problems: string[] = [];
  let first: Refusal | undefined;
  let attempts = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const held: T[] = [];
    let error: unknown;
    while (error === undefined && held.length < MAX_HANDLES) {
      try {
        held.push(open(held.length));
      } catch (err) {
        error = err ?? new Error('threw a nullish value');
      }
    }
    const refusal = refusalOf(error);
    if (first === undefined) {
      first = refusal;
      attempts = held.length;
    } else if (refusal.code !== first.code || held.length !== attempts) {
      problems.push(`round ${round}: ${refusal.code} after ${held.length} (round 1: ${first.code} after ${attempts})`);
    }
    for (const handle of held) close(handle);
    await settle?.();
    problems.push(...fds.check(`round ${round}`), ...leftovers(held.length));
  }
  // Lifted (every handle closed): the same call works again.
  const recovered = thrownBy(() => close(open(0))) === undefined;
  return { refusal: first!, attempts, recovered, fdsBefore: fds.count, fdsAfter: openDescriptors(), problems: [...new Set(problems)] };
}

/** The i-th POSIX queue, segment or named semaphore a child makes. */
const objectName = (i: number): string => `/exhaustion-${i}`;
/** The first System V semaphore-set key of a child (its IPC namespace is its own). */
const SEM_KEY = 0x5a00;

function closeQueue(q: PosixMessageQueue): void {
  q.close();
  q.unlink();
}

function closeSegment(s: PosixSharedMemory): void {
  s.close();
  s.unlink();
}

function closeChannel(ch: Channel): void {
  ch.close();
  ch.unlink();
}

/** A tiny queue: the descriptor is the scarce resource, not RLIMIT_MSGQUEUE. */
const openTinyQueue = (i: number): PosixMessageQueue => PosixMessageQueue.create(objectName(i), { maxMessages: 1, maxMessageSize: 16 });

function queueLeftover(name: string): string[] {
  return queueExists(name) ? [`the refused create left ${name} behind`] : [];
}

const refusedQueueLeftover = (refused: number): string[] => queueLeftover(objectName(refused));

function shmLeftovers(freeBefore: number): () => string[] {
  return () => {
    const out: string[] = [];
    const entries = shmEntries();
    if (entries.length > 0) out.push(`/dev/shm holds ${entries.join(', ')} after every segment was removed`);
    const free = shmFreeBytes();
    if (free !== freeBefore) out.push(`/dev/shm has ${free} bytes free, ${freeBefore} before`);
    return out;
  };
}

/**
 * The first descriptor-backed handle of a process, made with only `free`
 * descriptors left (the rest taken by plain files): it needs its own
 * descriptors and the thread's readiness registry. A refusal must leave no
 * descriptor and no object behind.
 */
function firstHandle(kind: 'queue' | 'pipe', free: number): ChildReport {
  const fds = new DescriptorWatch();
  const open = (): (() => void) => {
    if (kind === 'queue') {
      const q = openTinyQueue(0);
      return () => closeQueue(q);
    }
    const { readEnd, writeEnd } = pipe();
    return () => {
      readEnd.close();
      writeEnd.close();
    };
  };
  const filler: number[] = [];
  try {
    for (;;) filler.push(openSync('/dev/null', 'r'));
  } catch {
    /* EMFILE: every descriptor is taken. */
  }
  for (let i = 0; i < free && filler.length > 0; i++) closeSync(filler.pop()!);
  const made: { close?: () => void } = {};
  const error = thrownBy(() => {
    made.close = open();
  });
  for (const fd of filler) closeSync(fd);
  const problems: string[] = [];
  if (made.close === undefined) {
    problems.push(...fds.check(`refused with ${free} descriptor(s) free`));
    if (kind === 'queue') problems.push(...queueLeftover(objectName(0)));
  } else {
    made.close();
  }
  const recovered = thrownBy(() => open()()) === undefined;
  problems.push(...fds.check('at the end'));
  return { refusal: refusalOf(error), attempts: free, recovered, fdsBefore: fds.count, fdsAfter: openDescriptors(), problems };
}

/** Starts a wait and reports, after `graceMs`, whether it is still pending (then it holds a waiter thread). */
async function parked(wait: Promise<unknown>, graceMs: number): Promise<{ pending: Promise<unknown> } | { error: unknown }> {
  const settled = wait.then(() => undefined, (err: unknown) => err ?? new Error('rejected with a nullish value'));
  const first = await Promise.race([settled, sleep(graceMs)]);
  return first === 'pending' ? { pending: settled } : { error: first ?? new Error('the wait completed with nothing to receive') };
}

/** All of `settled` must end with ERR_IPC_CLOSED within `ms`. */
async function allClosed(settled: Promise<unknown>[], ms: number): Promise<string[]> {
  const outcome = await Promise.race([Promise.all(settled), sleep(ms)]);
  if (outcome === 'pending') return [`pending calls still waiting ${ms} ms after their handles were closed`];
  const wrong = (outcome as unknown[]).filter((err) => !(err instanceof IpcError && err.code === 'ERR_IPC_CLOSED'));
  return wrong.length === 0 ? [] : [`${wrong.length} pending call(s) ended with ${refusalOf(wrong[0]).code} instead of ERR_IPC_CLOSED`];
}

/** Whether a receive that has to wait (on a waiter thread) gets the message sent 20 ms later. */
async function receiveWorks(q: SysvMessageQueue, type: number): Promise<boolean> {
  const received = q.receive({ type, timeout: 5000 });
  setTimeout(() => q.trySend(type, Buffer.from('after the limit')), 20);
  const err = await rejectionOf(received);
  return err === undefined;
}

const ROUTINES: Record<string, (arg: number) => Promise<ChildReport> | ChildReport> = {
  pipes: () => untilRefused(() => pipe(), ({ readEnd, writeEnd }) => {
    readEnd.close();
    writeEnd.close();
  }, () => []),

  queues: () => untilRefused(openTinyQueue, closeQueue, refusedQueueLeftover),

  segments: () => untilRefused((i) => PosixSharedMemory.create(objectName(i), { size: 4096 }), closeSegment, shmLeftovers(shmFreeBytes())),

  /** Channels until refused: `arg` is the ring's size in KiB (small: descriptors run out; large: /dev/shm space does). */
  channels: (kib) => untilRefused((i) => Channel.create(objectName(i), { capacity: kib * 1024 }), closeChannel, shmLeftovers(shmFreeBytes())),

  /**
   * Named semaphores until /dev/shm is full. Each holds a page of the tmpfs
   * and no descriptor, so under RLIMIT_NOFILE 64 the space runs out first.
   * close() gives the mapping back a microtask later (see
   * docs/reliability.md): each round lets that run before it counts.
   */
  namedSemaphores: () => untilRefused((i) => NamedSemaphore.create(objectName(i), { value: 1 }), (s) => {
    s.close();
    s.unlink();
  }, shmLeftovers(shmFreeBytes()), () => sleep(0).then(() => undefined)),

  /** Semaphore sets of `count` until kernel.sem (SEMMNI or SEMMNS, lowered in the child's namespace) refuses one. */
  semaphoreSets: (count) => untilRefused((i) => SemaphoreSet.create(SEM_KEY + i, { count }), (set) => set.remove(),
    () => (sysvObjects('sem') === 0 ? [] : [`${sysvObjects('sem')} semaphore set(s) left after every set was removed`])),

  /** A set of SEMMSL + 1 semaphores; lifted by raising SEMMSL. */
  semaphoresPerSet() {
    const fds = new DescriptorWatch();
    const count = SemaphoreSet.limits().semmsl! + 1;
    const create = (): SemaphoreSet => SemaphoreSet.create(SEM_KEY, { count, value: 1 });
    const error = thrownBy(() => create().remove());
    const problems: string[] = [];
    if (sysvObjects('sem') !== 0) problems.push('the refused create left a set behind');
    liftByParent();
    const recovered = thrownBy(() => {
      const set = create();
      const values = set.values();
      set.remove();
      if (set.count !== count || values.length !== count || values.some((v) => v !== 1)) throw new Error(`a set of ${set.count}, values ${values.join()}`);
    }) === undefined;
    if (sysvObjects('sem') !== 0) problems.push('a set is left at the end');
    problems.push(...fds.check('at the end'));
    return { refusal: refusalOf(error), attempts: 0, recovered, fdsBefore: fds.count, fdsAfter: openDescriptors(), problems };
  },

  /** SEMOPM + 1 operations in one call, through opSync, tryOp and op alike; lifted by raising SEMOPM. */
  async operationsPerCall() {
    const fds = new DescriptorWatch();
    const n = SemaphoreSet.limits().semopm! + 1;
    const ops = Array.from({ length: n }, (_, k) => ({ index: k % 2, delta: 1 }));
    const set = SemaphoreSet.create(SEM_KEY, { count: 2 });
    const problems: string[] = [];
    const error = thrownBy(() => set.opSync(ops, { timeout: 1000 }));
    const others = [thrownBy(() => set.tryOp(ops)), await rejectionOf(set.op(ops, { timeout: 1000 }))];
    for (const [what, err] of [['tryOp', others[0]], ['op', others[1]]] as const) {
      const r = refusalOf(err);
      if (r.code !== refusalOf(error).code || r.errno !== refusalOf(error).errno) problems.push(`${what}: ${r.code} (${r.errno ?? '-'}), opSync: ${refusalOf(error).code}`);
    }
    if (set.values().join() !== '0,0') problems.push(`the refused calls changed the values: ${set.values().join()}`);
    liftByParent();
    const recovered = thrownBy(() => set.opSync(ops, { timeout: 1000 })) === undefined && set.values().join() === `${Math.ceil(n / 2)},${Math.floor(n / 2)}`;
    set.remove();
    if (sysvObjects('sem') !== 0) problems.push('a set is left at the end');
    problems.push(...fds.check('at the end'));
    return { refusal: refusalOf(error), attempts: 0, recovered, fdsBefore: fds.count, fdsAfter: openDescriptors(), problems };
  },

  firstQueue: (free) => firstHandle('queue', free),

  firstPipe: (free) => firstHandle('pipe', free),

  /**
   * More waits without a descriptor than the waiter pool has threads: System
   * V receives, semaphore waits in a segment, named semaphore waits (one
   * thread per handle) and semaphore-set operations (one thread per distinct
   * list) share the cap.
   */
  async waiterCap() {
    const fds = new DescriptorWatch();
    const cap = native.maxWaiterThreads;
    const key = 0x5e00 + (process.pid & 0xff);
    // Every kind of wait, so that the cap is seen to be shared: half receives, an eighth each in-segment and
    // named semaphore waits, a quarter set operations.
    const semaphores = cap / 8;
    const named = cap / 8;
    const setOps = cap / 4;
    const receives = cap - semaphores - named - setOps;
    const q = SysvMessageQueue.create(key);
    const seg = SysvSharedMemory.create(key, { size: Semaphore.SIZE * (semaphores + 1) });
    const sems = Array.from({ length: semaphores + 1 }, (_, i) => Semaphore.create(seg, i * Semaphore.SIZE, { value: 0 }));
    // One name, a handle per wait: each handle waits on a thread of its own.
    const name = '/waiter-cap';
    const nameds = [NamedSemaphore.create(name), ...Array.from({ length: named }, () => NamedSemaphore.open(name))];
    // One set, a take of a different semaphore per wait: each list waits on a thread of its own.
    const set = SemaphoreSet.create(key, { count: setOps + 1 });
    const problems: string[] = [];
    const settled: Promise<unknown>[] = [];
    const keep = (wait: Promise<unknown>): void => {
      settled.push(wait.then(() => undefined, (err: unknown) => err));
    };
    for (let type = 1; type <= receives; type++) keep(q.receive({ type }));
    for (let i = 0; i < semaphores; i++) keep(sems[i]!.wait());
    for (let i = 0; i < named; i++) keep(nameds[i]!.wait());
    for (let i = 0; i < setOps; i++) keep(set.op({ index: i, delta: -1 }));
    // Give the pool time to report any early failure, then go beyond the cap.
    await sleep(200);
    const early = await Promise.race([Promise.race(settled), sleep(0)]);
    if (early !== 'pending') problems.push(`a wait within the cap ended early: ${refusalOf(early).code}`);
    const threads = waiterThreads();
    if (threads !== cap) problems.push(`${threads} waiter threads for ${cap} parked waits`);
    const beyond = [
      ['receive', await parked(q.receive({ type: receives + 1 }), 200)],
      ['semaphore wait', await parked(sems[semaphores]!.wait(), 200)],
      ['named semaphore wait', await parked(nameds[named]!.wait(), 200)],
      ['semaphore-set operation', await parked(set.op({ index: setOps, delta: -1 }), 200)],
    ] as const;
    for (const [what, p] of beyond) {
      if ('pending' in p) {
        problems.push(`a ${what} beyond the cap still waits`);
        settled.push(p.pending);
      }
    }
    const refusals = beyond.map(([what, p]) => [what, refusalOf('error' in p ? p.error : undefined)] as const);
    const refusal = refusals[0]![1];
    for (const [what, r] of refusals.slice(1)) {
      if (r.code !== refusal.code || r.errno !== refusal.errno) {
        problems.push(`the ${what} beyond the cap: ${r.code} (${r.errno ?? '-'}), the receive: ${refusal.code} (${refusal.errno ?? '-'})`);
      }
    }
    if (waiterThreads() > cap) problems.push(`${waiterThreads()} waiter threads, above the cap of ${cap}`);
    // Lift: close the handles; every parked wait ends, and the same calls work again.
    q.close();
    seg.close();
    for (const n of nameds) n.close();
    set.close();
    problems.push(...await allClosed(settled, 10_000));
    const q2 = SysvMessageQueue.open(key);
    const seg2 = SysvSharedMemory.open(key);
    const sem = Semaphore.open(seg2, semaphores * Semaphore.SIZE);
    const named2 = NamedSemaphore.open(name);
    const set2 = SemaphoreSet.open(key);
    const received = await receiveWorks(q2, receives + 1);
    /** Whether a wait that has to wait (on a waiter thread) is let through by `release` 20 ms later. */
    const waitWorks = async (wait: Promise<unknown>, release: () => void): Promise<boolean> => {
      setTimeout(release, 20);
      return (await rejectionOf(wait)) === undefined;
    };
    const locked = await waitWorks(sem.wait({ timeout: 5000 }), () => sem.post());
    const namedTaken = await waitWorks(named2.wait({ timeout: 5000 }), () => named2.post());
    const opDone = await waitWorks(set2.op({ index: setOps, delta: -1 }, { timeout: 5000 }), () => set2.opSync({ index: setOps, delta: 1 }));
    for (const [what, ok] of [['semaphore wait', locked], ['named semaphore wait', namedTaken], ['semaphore-set operation', opDone]] as const) {
      if (!ok) problems.push(`after the lift, a ${what} did not work`);
    }
    q2.close();
    q2.remove();
    seg2.close();
    seg2.remove();
    named2.close();
    named2.unlink();
    set2.remove();
    if (sysvObjects('msg') + sysvObjects('shm') + sysvObjects('sem') !== 0) problems.push('System V objects left in the namespace');
    if (shmEntries().length !== 0) problems.push(`/dev/shm holds ${shmEntries().join(', ')} at the end`);
    if (waiterThreads() > cap) problems.push(`${waiterThreads()} waiter threads after recovery`);
    problems.push(...fds.check('at the end'));
    return {
      refusal, attempts: cap, recovered: received && locked && namedTaken && opDone, fdsBefore: fds.count, fdsAfter: openDescriptors(), problems,
    };
  },

  /** RLIMIT_NPROC for this (otherwise unused) uid, set a few threads above what the process has. */
  async nproc(headroom) {
    // Start libuv's pool now: once the limit is set, it could not start (and libuv aborts then).
    await fsp.readFile('/proc/self/status');
    const fds = new DescriptorWatch();
    const key = 0x5f00 + (process.pid & 0xff);
    const q = SysvMessageQueue.create(key);
    const limit = tasksOfUid(process.getuid!()) + headroom;
    const r = spawnSync('prlimit', [`--pid=${process.pid}`, `--nproc=${limit}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`prlimit --nproc failed: ${r.stderr}`);
    const problems: string[] = [];
    const settled: Promise<unknown>[] = [];
    let error: unknown;
    let type = 1;
    for (; type <= 64 && error === undefined; type++) {
      const p = await parked(q.receive({ type }), 100);
      if ('pending' in p) settled.push(p.pending);
      else error = p.error;
    }
    const refusedType = type - 1;
    if (error === undefined) problems.push(`64 waits parked under RLIMIT_NPROC ${limit}`);
    const threads = waiterThreads();
    if (threads !== settled.length) problems.push(`${threads} waiter threads for ${settled.length} parked waits`);
    // Lift: close the queue; the waits end, their threads go idle, and the refused call gets one.
    q.close();
    problems.push(...await allClosed(settled, 10_000));
    const q2 = SysvMessageQueue.open(key);
    const recovered = await receiveWorks(q2, refusedType);
    q2.close();
    q2.remove();
    problems.push(...fds.check('at the end'));
    return { refusal: refusalOf(error), attempts: settled.length, recovered, fdsBefore: fds.count, fdsAfter: openDescriptors(), problems };
  },

  /** One segment larger than the whole tmpfs; lifted by enlarging the tmpfs. */
  shmTooBig() {
    const fds = new DescriptorWatch();
    const leftovers = shmLeftovers(shmFreeBytes());
    const create = (): PosixSharedMemory => PosixSharedMemory.create('/too-big', { size: 2 * MiB });
    const error = thrownBy(() => closeSegment(create()));
    const problems = [...leftovers(), ...fds.check('after the refusal')];
    liftByParent();
    let recovered = false;
    const retry = thrownBy(() => {
      const s = create();
      // Every page is there: touching them all must not raise SIGBUS.
      new Uint8Array(s.buffer).fill(0xa5);
      recovered = new Uint8Array(s.buffer)[2 * MiB - 1] === 0xa5;
      closeSegment(s);
    });
    if (retry !== undefined) problems.push(`after the lift: ${refusalOf(retry).code}`);
    problems.push(...fds.check('at the end'));
    return { refusal: refusalOf(error), attempts: 0, recovered, fdsBefore: fds.count, fdsAfter: openDescriptors(), problems };
  },

  /** A segment that does not fit beside another; lifted by removing the other. */
  shmFull() {
    const fds = new DescriptorWatch();
    const leftovers = shmLeftovers(shmFreeBytes());
    const held = PosixSharedMemory.create('/held', { size: 768 * 1024 });
    const freeHeld = shmFreeBytes();
    const create = (): PosixSharedMemory => PosixSharedMemory.create('/second', { size: 512 * 1024 });
    const error = thrownBy(() => closeSegment(create()));
    const problems: string[] = [];
    if (shmEntries().join() !== 'held') problems.push(`/dev/shm holds ${shmEntries().join(', ')} after the refusal`);
    if (shmFreeBytes() !== freeHeld) problems.push(`the refusal kept ${freeHeld - shmFreeBytes()} bytes of /dev/shm`);
    closeSegment(held);
    const recovered = thrownBy(() => {
      const s = create();
      new Uint8Array(s.buffer).fill(1);
      closeSegment(s);
    }) === undefined;
    problems.push(...leftovers(), ...fds.check('at the end'));
    return { refusal: refusalOf(error), attempts: 1, recovered, fdsBefore: fds.count, fdsAfter: openDescriptors(), problems };
  },

  /** maxMessages (or maxMessageSize) one beyond fs.mqueue.msg_max (msgsize_max) of this namespace; lifted by raising it. */
  mqAttribute(which) {
    const fds = new DescriptorWatch();
    const limits = PosixMessageQueue.limits();
    const options = which === 0
      ? { maxMessages: limits.msgMax! + 1, maxMessageSize: 64 }
      : { maxMessages: 1, maxMessageSize: limits.msgsizeMax! + 1 };
    const name = '/attribute';
    const error = thrownBy(() => closeQueue(PosixMessageQueue.create(name, options)));
    const problems = [...queueLeftover(name), ...fds.check('after the refusal')];
    liftByParent();
    const recovered = thrownBy(() => {
      const q = PosixMessageQueue.create(name, options);
      q.sendSync(Buffer.alloc(options.maxMessageSize, 7));
      if (q.receiveSync({ timeout: 0 }).data.length !== options.maxMessageSize) throw new Error('the message came back short');
      closeQueue(q);
    }) === undefined;
    problems.push(...fds.check('at the end'));
    return { refusal: refusalOf(error), attempts: 0, recovered, fdsBefore: fds.count, fdsAfter: openDescriptors(), problems };
  },

  /** Queues until fs.mqueue.queues_max (set low in the child's namespace) refuses one. */
  queuesMax: () => untilRefused(openTinyQueue, closeQueue, refusedQueueLeftover),

  /** Queues until RLIMIT_MSGQUEUE refuses one. */
  msgqueueBytes: () => untilRefused((i) => PosixMessageQueue.create(objectName(i), { maxMessages: 4, maxMessageSize: 512 }),
    closeQueue, refusedQueueLeftover),

  /** maxBytes one beyond kernel.msgmnb of this namespace; lifted by raising it. */
  msgmnb() {
    const fds = new DescriptorWatch();
    const maxBytes = SysvMessageQueue.limits().msgmnb! + 1;
    const key = 0x5d00 + (process.pid & 0xff);
    const create = (): SysvMessageQueue => SysvMessageQueue.create(key, { maxBytes });
    const error = thrownBy(() => {
      const q = create();
      q.close();
      q.remove();
    });
    const problems: string[] = [];
    if (sysvObjects('msg') !== 0) problems.push('the refused create left a queue behind');
    liftByParent();
    const recovered = thrownBy(() => {
      const q = create();
      const got = q.stat().maxBytes;
      q.close();
      q.remove();
      if (got !== maxBytes) throw new Error(`capacity ${got}, asked for ${maxBytes}`);
    }) === undefined;
    problems.push(...fds.check('at the end'));
    return { refusal: refusalOf(error), attempts: 0, recovered, fdsBefore: fds.count, fdsAfter: openDescriptors(), problems };
  },

  /** A full System V queue: a send with a timeout ends with ERR_IPC_TIMEOUT on time; one receive makes room. */
  async sysvFull() {
    const fds = new DescriptorWatch();
    const key = 0x5c00 + (process.pid & 0xff);
    const q = SysvMessageQueue.create(key, { maxBytes: 1024 });
    const message = Buffer.alloc(100, 3);
    let held = 0;
    while (held < 1000 && q.trySend(1, message)) held++;
    const problems: string[] = [];
    const timed = async (what: string, call: () => Promise<unknown>): Promise<unknown> => {
      const t0 = performance.now();
      const err = await rejectionOf(call());
      const ms = performance.now() - t0;
      if (ms < 95 || ms > 2000) problems.push(`${what} with timeout 100 ended after ${ms.toFixed(0)} ms`);
      return err;
    };
    const error = await timed('send', () => q.send(1, message, { timeout: 100 }));
    const syncError = await timed('sendSync', async () => q.sendSync(1, message, { timeout: 100 }));
    if (refusalOf(syncError).code !== refusalOf(error).code) problems.push(`sendSync: ${refusalOf(syncError).code}, send: ${refusalOf(error).code}`);
    if (q.stat().messages !== held) problems.push(`${q.stat().messages} messages queued, ${held} sent`);
    // Lift: take one message out; the same send fits.
    q.tryReceive();
    const recovered = (await rejectionOf(q.send(1, message, { timeout: 100 }))) === undefined && q.stat().messages === held;
    q.close();
    q.remove();
    problems.push(...fds.check('at the end'));
    return { refusal: refusalOf(error), attempts: held, recovered, fdsBefore: fds.count, fdsAfter: openDescriptors(), problems };
  },

  /** A POSIX segment mapped beyond RLIMIT_AS (soft); lifted by raising it. */
  mapPosix() {
    const fds = new DescriptorWatch();
    const leftovers = shmLeftovers(shmFreeBytes());
    const size = 192 * MiB;
    limitAddressSpace(virtualSize() + 64 * MiB);
    const create = (): PosixSharedMemory => PosixSharedMemory.create('/mapped', { size });
    const error = thrownBy(() => closeSegment(create()));
    const problems = [...leftovers(), ...fds.check('after the refusal')];
    limitAddressSpace('unlimited');
    const recovered = thrownBy(() => {
      const s = create();
      const bytes = new Uint8Array(s.buffer);
      bytes[0] = 1;
      bytes[size - 1] = 2;
      closeSegment(s);
    }) === undefined;
    problems.push(...leftovers(), ...fds.check('at the end'));
    return { refusal: refusalOf(error), attempts: 0, recovered, fdsBefore: fds.count, fdsAfter: openDescriptors(), problems };
  },

  /** A System V segment attached beyond RLIMIT_AS (soft); lifted by raising it. */
  mapSysv() {
    const fds = new DescriptorWatch();
    const size = 1024 * MiB;
    const key = 0x5b00 + (process.pid & 0xff);
    limitAddressSpace(virtualSize() + 64 * MiB);
    const create = (): SysvSharedMemory => SysvSharedMemory.create(key, { size });
    const error = thrownBy(() => {
      const s = create();
      s.close();
      s.remove();
    });
    const problems: string[] = [];
    if (sysvObjects('shm') !== 0) problems.push('the refused create left a segment behind');
    limitAddressSpace('unlimited');
    const recovered = thrownBy(() => {
      const s = create();
      new Uint8Array(s.buffer)[size - 1] = 1;
      s.close();
      s.remove();
    }) === undefined;
    if (sysvObjects('shm') !== 0) problems.push('a segment is left at the end');
    problems.push(...fds.check('at the end'));
    return { refusal: refusalOf(error), attempts: 0, recovered, fdsBefore: fds.count, fdsAfter: openDescriptors(), problems };
  },
};

/**
 * After a leak: whether the descriptors are still open once garbage is
 * collected (a handle dropped half-made still has its finalizer).
 */
async function afterCollection(start: string[]): Promise<string> {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) return 'garbage collection not available (run with --expose-gc)';
  for (let i = 0; i < 5; i++) {
    collect();
    await sleep(20);
  }
  const extra = leakedDescriptors(start);
  return extra.length === 0
    ? 'they were closed only by garbage collection (the handles\' finalizers), not when the call failed'
    : `after garbage collection still open: ${extra.join(', ')}`;
}

/** A child's whole life: run the routine, print its report, exit. Anything it throws is reported, not hidden. */
async function childMain(routine: string, arg: number): Promise<never> {
  // The stdout stream opens a descriptor of its own (/dev/null) when first used: make it before anything is counted.
  process.stdout.write('');
  const start = descriptorTargets();
  let report: ChildReport;
  try {
    const run = ROUTINES[routine];
    if (run === undefined) throw new Error(`no routine ${routine}`);
    report = await run(arg);
    if (report.problems.some((p) => p.includes('left open'))) report.problems.push(await afterCollection(start));
  } catch (err) {
    report = { refusal: refusalOf(err), attempts: 0, recovered: false, fdsBefore: Number.NaN, fdsAfter: Number.NaN, problems: [`the routine threw: ${String((err as Error)?.stack ?? err)}`] };
  }
  process.stdout.write(`${JSON.stringify({ report })}\n`);
  process.exit(0);
}

// ===========================================================================
// The parent: which limits, how each child is started, what counts as right

type Who = 'nobody' | 'isolated';

interface Scenario {
  limit: string;
  /** How it was hit, given how many calls succeeded first. */
  how: (attempts: number) => string;
  routine: keyof typeof ROUTINES;
  /** One child per argument; their results make one row. */
  args?: number[];
  /** The documented codes (and errno name) of the refusal. */
  codes: string[];
  errno?: string;
  /** What the message must name: the setting to raise. */
  setting: RegExp;
  /** Some arguments may fit under the limit (a call that succeeds is then fine). */
  mayFit?: boolean;
  who: Who;
  prlimit?: string[];
  /** Size of a private tmpfs on /dev/shm. */
  tmpfs?: string;
  /** Sysctls of the child's IPC namespace, set before it starts. */
  sysctl?: Record<string, number | string>;
  /** The command that lifts the limit from outside, given the child's pid. */
  lift?: (pid: number) => string[];
  timeoutMs?: number;
}

const MQ_PROC = '/proc/sys/fs/mqueue';
/** SEMMSL SEMMNS SEMOPM SEMMNI, of the child's own IPC namespace: the machine's never change. */
const KERNEL_SEM = '/proc/sys/kernel/sem';
const inIpcNamespace = (pid: number, file: string, value: number | string): string[] =>
  ['nsenter', `--target=${pid}`, '--ipc', '--', 'sh', '-c', `echo ${value} > ${file}`];

const SCENARIOS: Scenario[] = [
  {
    limit: 'descriptors (RLIMIT_NOFILE 64)', how: (n) => `pipe() until refused, 3 rounds (refused after ${n})`,
    routine: 'pipes', codes: ['ERR_IPC_LIMIT'], errno: 'EMFILE', setting: /ulimit -n/, who: 'nobody', prlimit: ['--nofile=64:64'],
  },
  {
    limit: 'descriptors (RLIMIT_NOFILE 64)', how: (n) => `PosixMessageQueue.create until refused, 3 rounds (refused after ${n})`,
    routine: 'queues', codes: ['ERR_IPC_LIMIT'], errno: 'EMFILE', setting: /ulimit -n/, who: 'nobody', prlimit: ['--nofile=64:64'],
  },
  {
    limit: 'descriptors (RLIMIT_NOFILE 64)', how: (n) => `PosixSharedMemory.create until refused, 3 rounds (refused after ${n})`,
    routine: 'segments', codes: ['ERR_IPC_LIMIT', 'EMFILE'], errno: 'EMFILE', setting: /ulimit -n/, who: 'nobody',
    prlimit: ['--nofile=64:64'], tmpfs: '4m',
  },
  {
    limit: 'descriptors (RLIMIT_NOFILE 64)', how: (n) => `Channel.create (4 KiB rings) until refused, 3 rounds (refused after ${n})`,
    routine: 'channels', args: [4], codes: ['ERR_IPC_LIMIT', 'EMFILE'], errno: 'EMFILE', setting: /ulimit -n/, who: 'nobody',
    prlimit: ['--nofile=64:64'], tmpfs: '4m',
  },
  {
    limit: '/dev/shm space (tmpfs 1 MiB)', how: (n) => `Channel.create (64 KiB rings) until refused, 3 rounds (refused after ${n})`,
    routine: 'channels', args: [64], codes: ['ERR_IPC_LIMIT'], errno: 'ENOSPC', setting: /remount,size=/, who: 'nobody', tmpfs: '1m',
  },
  {
    limit: 'descriptors (RLIMIT_NOFILE 64)', how: () => 'first PosixMessageQueue of a process, 0–3 descriptors free',
    routine: 'firstQueue', args: [0, 1, 2, 3], mayFit: true, codes: ['ERR_IPC_LIMIT'], errno: 'EMFILE', setting: /ulimit -n/,
    who: 'nobody', prlimit: ['--nofile=64:64'],
  },
  {
    limit: 'descriptors (RLIMIT_NOFILE 64)', how: () => 'first pipe() of a process, 0–3 descriptors free',
    routine: 'firstPipe', args: [0, 1, 2, 3], mayFit: true, codes: ['ERR_IPC_LIMIT'], errno: 'EMFILE', setting: /ulimit -n/,
    who: 'nobody', prlimit: ['--nofile=64:64'],
  },
  {
    limit: `threads (waiter pool cap ${native.maxWaiterThreads})`,
    how: (n) => `${n} parked waits (System V receives of distinct types, semaphore waits in a segment, named semaphore waits, ` +
      'semaphore-set operations on distinct semaphores), then one more of each',
    routine: 'waiterCap', codes: ['ERR_IPC_LIMIT'], errno: 'ENOSR', setting: new RegExp(`${native.maxWaiterThreads} waits .*cap`),
    who: 'nobody', timeoutMs: 60_000, tmpfs: '1m',
  },
  {
    limit: 'threads (RLIMIT_NPROC of the user)', how: (n) => `System V receives of distinct types, limit 3 tasks above the user's count (refused after ${n})`,
    routine: 'nproc', args: [3], codes: ['ERR_IPC_LIMIT'], errno: 'EAGAIN', setting: /ulimit -u|pids\.max/, who: 'isolated',
  },
  {
    limit: '/dev/shm space (tmpfs 1 MiB)', how: () => '2 MiB POSIX segment; lifted: remount,size=4m',
    routine: 'shmTooBig', codes: ['ERR_IPC_LIMIT'], errno: 'ENOSPC', setting: /remount,size=/, who: 'nobody', tmpfs: '1m',
    lift: (pid) => ['nsenter', `--target=${pid}`, '--mount', '--', 'mount', '-o', 'remount,size=4m', '/dev/shm'],
  },
  {
    limit: '/dev/shm space (tmpfs 1 MiB)', how: () => '512 KiB segment beside a 768 KiB one; lifted: remove that one',
    routine: 'shmFull', codes: ['ERR_IPC_LIMIT'], errno: 'ENOSPC', setting: /remount,size=/, who: 'nobody', tmpfs: '1m',
  },
  {
    limit: '/dev/shm space (tmpfs 1 MiB), RLIMIT_NOFILE 64', how: (n) => `NamedSemaphore.create until refused, 3 rounds (refused after ${n}: a page each, no descriptor)`,
    routine: 'namedSemaphores', codes: ['ERR_IPC_LIMIT'], errno: 'ENOSPC', setting: /\/dev\/shm is full|remount,size=/, who: 'nobody', tmpfs: '1m',
    prlimit: ['--nofile=64:64'],
  },
  {
    limit: 'kernel.sem SEMMNI (8 sets)', how: (n) => `SemaphoreSet.create (1 semaphore) until refused, 3 rounds (refused after ${n})`,
    routine: 'semaphoreSets', args: [1], codes: ['ERR_IPC_LIMIT'], errno: 'ENOSPC', setting: /SEMMNI, now 8/, who: 'nobody',
    sysctl: { [KERNEL_SEM]: '250 32000 32 8' },
  },
  {
    limit: 'kernel.sem SEMMNS (64 semaphores)', how: (n) => `SemaphoreSet.create (16 semaphores) until refused, 3 rounds (refused after ${n})`,
    routine: 'semaphoreSets', args: [16], codes: ['ERR_IPC_LIMIT'], errno: 'ENOSPC', setting: /SEMMNS, now 64/, who: 'nobody',
    sysctl: { [KERNEL_SEM]: '250 64 32 128' },
  },
  {
    limit: 'kernel.sem SEMMSL (16 per set)', how: () => 'a set of 17 as nobody; lifted: SEMMSL 64',
    routine: 'semaphoresPerSet', codes: ['ERR_IPC_LIMIT'], errno: 'EINVAL', setting: /SEMMSL, now 16/, who: 'nobody',
    sysctl: { [KERNEL_SEM]: '16 32000 32 128' }, lift: (pid) => inIpcNamespace(pid, KERNEL_SEM, '64 32000 32 128'),
  },
  {
    limit: 'kernel.sem SEMOPM (8 per call)', how: () => '9 operations in one opSync, tryOp and op; lifted: SEMOPM 32',
    routine: 'operationsPerCall', codes: ['ERR_IPC_LIMIT'], errno: 'E2BIG', setting: /SEMOPM, now 8/, who: 'nobody',
    sysctl: { [KERNEL_SEM]: '250 32000 8 128' }, lift: (pid) => inIpcNamespace(pid, KERNEL_SEM, '250 32000 32 128'),
  },
  {
    limit: 'fs.mqueue.msg_max (default 10)', how: () => 'create with maxMessages 11 as nobody; lifted: msg_max=64',
    routine: 'mqAttribute', args: [0], codes: ['ERR_IPC_LIMIT'], errno: 'EINVAL', setting: /fs\.mqueue\.msg_max/, who: 'nobody',
    lift: (pid) => inIpcNamespace(pid, `${MQ_PROC}/msg_max`, 64),
  },
  {
    limit: 'fs.mqueue.msgsize_max (default 8192)', how: () => 'create with maxMessageSize 8193 as nobody; lifted: msgsize_max=65536',
    routine: 'mqAttribute', args: [1], codes: ['ERR_IPC_LIMIT'], errno: 'EINVAL', setting: /fs\.mqueue\.msgsize_max/, who: 'nobody',
    lift: (pid) => inIpcNamespace(pid, `${MQ_PROC}/msgsize_max`, 65536),
  },
  {
    limit: 'fs.mqueue.queues_max (4)', how: (n) => `queues until refused, 3 rounds (refused after ${n})`,
    routine: 'queuesMax', codes: ['ERR_IPC_LIMIT'], errno: 'ENOSPC', setting: /fs\.mqueue\.queues_max/, who: 'nobody',
    sysctl: { [`${MQ_PROC}/queues_max`]: 4 },
  },
  {
    limit: 'RLIMIT_MSGQUEUE (8192 bytes)', how: (n) => `4 × 512-byte queues until refused, 3 rounds (refused after ${n})`,
    routine: 'msgqueueBytes', codes: ['ERR_IPC_LIMIT'], errno: 'EMFILE', setting: /RLIMIT_MSGQUEUE/, who: 'isolated',
    prlimit: ['--msgqueue=8192:8192'],
  },
  {
    limit: 'kernel.msgmnb (default 16384)', how: () => 'System V create with maxBytes 16385 as nobody; lifted: msgmnb=65536',
    routine: 'msgmnb', codes: ['ERR_IPC_LIMIT'], errno: 'EPERM', setting: /kernel\.msgmnb/, who: 'nobody',
    lift: (pid) => inIpcNamespace(pid, '/proc/sys/kernel/msgmnb', 65536),
  },
  {
    limit: 'System V queue full (1024 bytes)', how: (n) => `${n} × 100 bytes, then send and sendSync with timeout 100; lifted: one receive`,
    routine: 'sysvFull', codes: ['ERR_IPC_TIMEOUT'], setting: /timed out after 100 ms/, who: 'nobody',
  },
  {
    limit: 'address space (RLIMIT_AS)', how: () => '192 MiB POSIX segment with 64 MiB left under the soft limit; lifted: soft limit unlimited',
    routine: 'mapPosix', codes: ['ERR_IPC_LIMIT'], errno: 'ENOMEM', setting: /ulimit -v/, who: 'nobody', tmpfs: '256m',
  },
  {
    limit: 'address space (RLIMIT_AS)', how: () => '1 GiB System V segment with 64 MiB left under the soft limit; lifted: soft limit unlimited',
    routine: 'mapSysv', codes: ['ERR_IPC_LIMIT'], errno: 'ENOMEM', setting: /ulimit -v/, who: 'nobody',
  },
];

interface ChildOutcome {
  report?: ChildReport;
  exit: { code: number | null; signal: NodeJS.Signals | null };
  hung: boolean;
  stderr: string;
  liftErrors: string[];
}

/** The argv that starts `routine` in private namespaces, as `uid`, under the scenario's limits. */
function childCommand(s: Scenario, uid: number): string[] {
  const setup = ['set -e'];
  if (s.tmpfs !== undefined) setup.push(`mount -t tmpfs -o size=${s.tmpfs},mode=1777 ipckit-exhaustion /dev/shm`);
  for (const [file, value] of Object.entries(s.sysctl ?? {})) setup.push(`echo ${value} > ${file}`);
  // exec all the way down: the child's pid is the node process, whose namespaces nsenter joins.
  setup.push('exec "$@"');
  return [
    'unshare', '--ipc', ...(s.tmpfs === undefined ? [] : ['--mount', '--propagation', 'private']), '--',
    'sh', '-c', setup.join('\n'), 'sh',
    'setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--',
    ...(s.prlimit === undefined ? [] : ['prlimit', ...s.prlimit, '--']),
    process.execPath, '--expose-gc', SELF,
  ];
}

async function runChild(s: Scenario, uid: number, arg: number): Promise<ChildOutcome> {
  const [command, ...args] = childCommand(s, uid);
  // Its own process group: a hung child is killed with everything it started.
  const child: ChildProcess = spawn(command!, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, [CHILD_ENV]: s.routine, [ARG_ENV]: String(arg) },
  });
  const outcome: ChildOutcome = { exit: { code: null, signal: null }, hung: false, stderr: '', liftErrors: [] };
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    outcome.stderr = (outcome.stderr + chunk).slice(-4000);
  });
  child.stdin!.on('error', () => { /* The child may be gone before it reads. */ });
  child.on('error', (err) => {
    outcome.stderr += `\n${err.message}`;
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let message: { lift?: boolean; report?: ChildReport };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      return;
    }
    if (message.report !== undefined) outcome.report = message.report;
    if (message.lift === true) {
      const lift = s.lift?.(child.pid!);
      if (lift === undefined) {
        outcome.liftErrors.push('the child asked for a lift this scenario does not define');
      } else {
        const r = spawnSync(lift[0]!, lift.slice(1), { encoding: 'utf8', timeout: 10_000 });
        if (r.status !== 0) outcome.liftErrors.push(`${lift.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`);
      }
      child.stdin!.write('lifted\n');
    }
  });
  const closed = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  const timer = setTimeout(() => {
    outcome.hung = true;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* Already gone. */
    }
  }, s.timeoutMs ?? 30_000);
  const [code, signal] = await closed;
  clearTimeout(timer);
  outcome.exit = { code, signal };
  return outcome;
}

/** A uid no process runs as, for the per-user counters. */
function isolatedUid(): number {
  const used = new Set<number>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      used.add(Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]));
    } catch {
      /* Gone meanwhile. */
    }
  }
  let uid = 61_000;
  while (used.has(uid)) uid++;
  return uid;
}

/** Why this machine cannot run the section, or undefined. */
function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (namespaces, tmpfs mounts, other users, prlimit)';
  for (const tool of ['unshare', 'nsenter', 'prlimit', 'setpriv']) {
    if (spawnSync(tool, ['--version']).status !== 0) return `needs ${tool} (util-linux)`;
  }
  const reach = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(SELF)})`], { uid: NOBODY, gid: NOBODY });
  if (reach.status !== 0) return `user ${NOBODY} cannot read ${SELF}`;
  return undefined;
}

function describeResult(r: ChildReport): string {
  if (r.refusal.code === 'ok') return 'ok (fitted)';
  const detail = [r.refusal.errno, r.refusal.syscall].filter((x) => x !== undefined).join(', ');
  return detail === '' ? r.refusal.code : `${r.refusal.code} (${detail})`;
}

/** One row, and the invariants it broke. */
function judge(s: Scenario, outcomes: ChildOutcome[]): { row: (string | number)[]; failures: string[] } {
  const failures: string[] = [];
  const args = s.args ?? [0];
  const label = `${s.limit} (${s.routine})`;
  let crashes = 0;
  let mentions = true;
  let recovered = true;
  let refused = false;
  const results = new Set<string>();
  const fds = new Set<string>();
  let attempts = 0;
  outcomes.forEach((o, i) => {
    const at = args.length > 1 ? ` [${args[i]}]` : '';
    if (o.hung) failures.push(`${label}${at}: hung (killed after ${(s.timeoutMs ?? 30_000) / 1000} s)`);
    else if (o.exit.code !== 0 || o.exit.signal !== null) failures.push(`${label}${at}: child exited ${o.exit.signal ?? o.exit.code}: ${o.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    if (o.hung || o.exit.code !== 0 || o.exit.signal !== null || o.report === undefined) {
      crashes++;
      if (!o.hung && o.report === undefined && o.exit.code === 0) failures.push(`${label}${at}: no report`);
      recovered = false;
      return;
    }
    const r = o.report;
    attempts = r.attempts;
    results.add(describeResult(r));
    fds.add(`${r.fdsBefore} → ${r.fdsAfter}`);
    for (const e of o.liftErrors) failures.push(`${label}${at}: lift failed: ${e}`);
    if (r.refusal.code === 'ok') {
      if (!s.mayFit) failures.push(`${label}${at}: the call was never refused`);
    } else {
      refused = true;
      if (!s.codes.includes(r.refusal.code)) failures.push(`${label}${at}: ${r.refusal.code}, expected ${s.codes.join(' or ')}: ${r.refusal.message}`);
      else if (s.errno !== undefined && r.refusal.errno !== s.errno) failures.push(`${label}${at}: errno ${r.refusal.errno ?? 'none'}, expected ${s.errno}`);
      if (!s.setting.test(r.refusal.message)) {
        mentions = false;
        failures.push(`${label}${at}: the message does not name the setting (${s.setting.source}): "${r.refusal.message}"`);
      }
    }
    if (!r.recovered) {
      recovered = false;
      failures.push(`${label}${at}: the same call did not work once the limit was lifted`);
    }
    for (const p of r.problems) failures.push(`${label}${at}: ${p}`);
  });
  if (s.mayFit && !refused && crashes === 0) failures.push(`${label}: never refused`);
  const row = [
    s.limit, s.how(attempts), [...results].join(' / ') || '–', refused ? (mentions ? 'yes' : 'no') : '–',
    recovered ? 'yes' : 'no', crashes, [...fds].join(', ') || '–',
  ];
  return { row, failures };
}

/** The resource-exhaustion section of the reliability suite. */
export const section: Section = {
  name: 'exhaustion',
  async run(ctx): Promise<SectionResult> {
    const columns = ['limit', 'how it was hit', 'result (code)', 'message names the setting', 'recovered', 'crash/hang', 'descriptors before → after'];
    const about = 'Each limit is hit on purpose in a child process of its own (private IPC namespace; a small private tmpfs for /dev/shm; ' +
      `uid ${NOBODY}, or an otherwise unused uid for the per-user counters; prlimit for resource limits). The refusal must be the documented ` +
      'IpcError with a message naming the setting; once the limit is lifted (handles closed, or the setting raised from outside) the same ' +
      'call must work again; no descriptor, object or /dev/shm byte may be left behind (the thread\'s readiness registry, one epoll ' +
      'descriptor kept for the thread\'s life, is not counted). A child that dies or outlives its bound counts under crash/hang.';
    const reason = cannotRun();
    if (reason !== undefined) {
      return { title: 'Resource exhaustion', about, columns, rows: [['–', `skipped: ${reason}`, '–', '–', '–', 0, '–']], failures: [] };
    }
    const isolated = isolatedUid();
    const rows: (string | number)[][] = [];
    const failures: string[] = [];
    for (const s of SCENARIOS) {
      const uid = s.who === 'nobody' ? NOBODY : isolated;
      const outcomes: ChildOutcome[] = [];
      for (const arg of s.args ?? [0]) outcomes.push(await runChild(s, uid, arg));
      const judged = judge(s, outcomes);
      rows.push(judged.row);
      failures.push(...judged.failures);
      ctx.log(`${s.limit}: ${judged.row[2]}${judged.failures.length > 0 ? ` — ${judged.failures.length} failure(s)` : ''}`);
    }
    return { title: 'Resource exhaustion', about, columns, rows, failures };
  },
};

const childRoutine = process.env[CHILD_ENV];
if (import.meta.url === `file://${process.argv[1]}` && childRoutine !== undefined) await childMain(childRoutine, Number(process.env[ARG_ENV] ?? 0));
if (import.meta.url === `file://${process.argv[1]}`) await runStandalone(section);
