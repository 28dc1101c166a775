/**
 * What a process is doing right now, read from /proc: which of its threads
 * sleep in which system call, on which object. Tests wait with these probes
 * until a peer (or a waiter thread of this process) has really reached its
 * blocking call, instead of sleeping for a while and hoping it has.
 *
 * How a wait shows up here (checked on Linux 6.x, x86_64):
 *
 * - A synchronous call blocks the calling thread in the kernel: the thread is
 *   asleep (state S) and /proc/<pid>/task/<tid>/syscall starts with the
 *   syscall number and its arguments — msgrcv(msqid, ...) with wchan
 *   do_msgrcv, mq_timedreceive(mqd, ...) with wq_sleep, futex(uaddr, ...)
 *   with futex_do_wait, openat of a FIFO with wait_for_partner, poll(2) for
 *   a signal wait.
 * - An async System V queue, Mutex or Semaphore call runs the same blocking
 *   call on an ipckit waiter thread: one thread of the process shows it.
 * - An async wait on a descriptor (POSIX queue, pipe, FIFO open, signals)
 *   parks no thread: ipckit's readiness registry (an epoll set, itself in
 *   the event loop's epoll set) holds the descriptor, and the main thread
 *   sleeps in epoll_pwait on the loop's set. The probes follow nested sets. "Asleep in epoll_wait"
 *   alone proves nothing — an idle Node process always is, and so is one of
 *   Node's own threads on another epoll set — so the probe requires the main
 *   thread to sleep on the set (the syscall's first argument) that lists the
 *   awaited descriptor. libuv adds a descriptor to the set only when a poll
 *   handle watches it, right before it sleeps, but removes it lazily, so a
 *   descriptor that was watched before may still be listed: callers whose
 *   peer waited on the same descriptor earlier first wait for the peer's
 *   report that it started the new call, and only then probe.
 * - Node's own threads (V8 workers, the libuv pool) sleep in futex on their
 *   own words, so a futex probe names the shared-memory segment the word
 *   must lie in.
 *
 * The syscall file needs ptrace access to the process (a parent has it over
 * its children unless kernel.yama.ptrace_scope >= 2). Where it is refused,
 * the probes fall back to the thread's wait channel and can no longer check
 * the arguments; where both are hidden, they time out with a message saying so.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { arch } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

/** The blocking calls the tests wait for, by name. */
export type BlockingCall = 'epoll_wait' | 'futex' | 'mq_timedreceive' | 'msgrcv' | 'msgsnd' | 'openat' | 'poll' | 'read';

/** Syscall numbers of each call (and its variants: epoll_pwait, ppoll) per architecture. */
const NUMBERS: Record<string, Record<BlockingCall, number[]>> = {
  x64: {
    epoll_wait: [232, 281, 441], futex: [202], mq_timedreceive: [243], msgrcv: [70], msgsnd: [69], openat: [257], poll: [7, 271], read: [0, 17, 19, 295],
  },
  arm64: {
    epoll_wait: [22, 441], futex: [98], mq_timedreceive: [183], msgrcv: [188], msgsnd: [189], openat: [56], poll: [73], read: [63, 65, 67, 69],
  },
};

/** The kernel functions a thread blocked in each call sleeps in, for when the syscall file is refused. */
const WAIT_CHANNELS: Record<BlockingCall, RegExp> = {
  epoll_wait: /ep_poll|epoll_wait/, futex: /futex/, mq_timedreceive: /wq_sleep/, msgrcv: /do_msgrcv/, msgsnd: /do_msgsnd/,
  openat: /wait_for_partner|fifo_open/, poll: /poll_schedule_timeout|do_poll|do_sys_poll/, read: /pipe_read/,
};

/** The syscall numbers of `call` on this machine. */
function syscallNumbers(call: BlockingCall): number[] {
  const table = NUMBERS[arch()];
  assert.ok(table, `no syscall table for ${arch()} in test/helpers/proc.ts`);
  return table[call];
}

/** One thread of a process, as /proc shows it now. */
export interface ThreadState {
  tid: number;
  /** Scheduler state: R running, S asleep (interruptible), D, T, Z... */
  state: string;
  /** The syscall it is in, or null when running or when the kernel refuses to say. */
  syscall: number | null;
  /** The syscall's arguments, or null when the syscall file is refused. */
  args: bigint[] | null;
  /** The kernel function it sleeps in ('0' or '' when hidden or running). */
  wchan: string;
  /** The thread's name (ipckit's waiter threads are `ipckit-waiter`). */
  comm: string;
}

function readOrNull(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** The threads of `pid` now (none once it has exited). */
function threads(pid: number): ThreadState[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const result: ThreadState[] = [];
  for (const tid of tids) {
    const base = `/proc/${pid}/task/${tid}`;
    const stat = readOrNull(`${base}/stat`);
    if (stat === null) continue; // The thread has just exited.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    // "<nr> <arg0> ... <arg5> <sp> <pc>" while blocked, "running", or "-1 <sp> <pc>" outside a syscall.
    const fields = readOrNull(`${base}/syscall`)?.trim().split(' ');
    const blocked = fields !== undefined && fields.length === 9;
    result.push({
      tid: Number(tid),
      state,
      syscall: blocked ? Number(fields[0]) : null,
      args: fields === undefined ? null : blocked ? fields.slice(1, 7).map((a) => BigInt(a)) : [],
      wchan: readOrNull(`${base}/wchan`)?.trim() ?? '',
      comm: readOrNull(`${base}/comm`)?.trim() ?? '',
    });
  }
  return result;
}

/** Whether `t` is asleep in `call`, judged by its syscall number or, where that is refused, by its wait channel. */
function sleepsIn(t: ThreadState, call: BlockingCall): boolean {
  if (t.state !== 'S') return false;
  if (t.args !== null) return t.syscall !== null && syscallNumbers(call).includes(t.syscall);
  return WAIT_CHANNELS[call].test(t.wchan);
}

function describeThreads(pid: number): string {
  const all = threads(pid);
  if (all.length === 0) return `pid ${pid} does not exist (any more)`;
  return all.map((t) => `${t.tid === pid ? 'main' : t.tid}:${t.state}:${t.args === null ? 'syscall hidden' : t.syscall ?? '-'}:${t.wchan || 'wchan hidden'}`).join(' ');
}

export interface BlockedOptions {
  /** What the test waits for, for the failure message. */
  what?: string;
  /** Only the main thread (the event loop's) counts. */
  main?: boolean;
  /** How many distinct threads must be blocked so (default 1). */
  count?: number;
  /** A further condition on the blocked thread, e.g. {@link onDescriptor} or {@link inSegment}. */
  where?: (t: ThreadState) => boolean;
  /** Give up (failing the test) after this many ms; default 10 s. */
  timeoutMs?: number;
}

/**
 * One look for {@link blockedIn}: the threads found, or undefined to look
 * again; fails once `deadline` (performance.now()) has passed, or `pid` has
 * exited.
 */
function blockedNow(pid: number, call: BlockingCall, options: BlockedOptions, deadline: number): ThreadState[] | undefined {
  const { main = false, count = 1, where = () => true, timeoutMs = 10_000 } = options;
  const what = options.what ?? `${main ? 'the main thread' : `${count} thread(s)`} of pid ${pid} sleep(s) in ${call}`;
  const now = threads(pid);
  const found = now.filter((t) => (!main || t.tid === pid) && sleepsIn(t, call) && where(t));
  if (found.length >= count) return found;
  if (now.length === 0 || now.find((t) => t.tid === pid)?.state === 'Z') assert.fail(`pid ${pid} exited before ${what}`);
  if (performance.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting until ${what}; threads: ${describeThreads(pid)}`);
  return undefined;
}

/**
 * Waits until `count` threads of `pid` are asleep in `call` (and satisfy
 * `where`); resolves with them. Fails with the threads' states if that does
 * not happen within the timeout.
 */
export async function blockedIn(pid: number, call: BlockingCall, options: BlockedOptions = {}): Promise<ThreadState[]> {
  const deadline = performance.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    const found = blockedNow(pid, call, options, deadline);
    if (found !== undefined) return found;
    await sleep(2);
  }
}

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/**
 * {@link blockedIn} without ever yielding to the event loop: for a test that
 * must see another process asleep while completions already queued on its
 * own loop (a waiter thread that was woken) stay unhandled.
 */
export function blockedInSync(pid: number, call: BlockingCall, options: BlockedOptions = {}): ThreadState[] {
  const deadline = performance.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    const found = blockedNow(pid, call, options, deadline);
    if (found !== undefined) return found;
    Atomics.wait(PAUSE, 0, 0, 2);
  }
}

function linkOf(pid: number, fd: number | bigint): string | null {
  try {
    return readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return null;
  }
}

/** Whether a descriptor's link (`/name` of a queue, `pipe:[ino]`, a FIFO path, `anon_inode:inotify`) is `target`. */
function linkMatches(link: string | null, target: string | RegExp): boolean {
  if (link === null) return false;
  return typeof target === 'string' ? link === target : target.test(link);
}

/** A `where` for mq_timedreceive, whose first argument is a descriptor: the descriptor of `pid` is `target`. */
export function onDescriptor(pid: number, target: string | RegExp): (t: ThreadState) => boolean {
  return (t) => t.args === null || linkMatches(linkOf(pid, t.args[0]!), target);
}

/** A `where` for msgrcv and msgsnd: the call is on the System V queue with identifier `id`. */
export function onSysvQueue(id: number): (t: ThreadState) => boolean {
  return (t) => t.args === null || t.args[0] === BigInt(id);
}

/**
 * A `where` for futex: the word waited on lies in a mapping of `pid` whose
 * path contains `segment` (`/dev/shm/<name>`, or `SYSV<key in hex>`).
 */
export function inSegment(pid: number, segment: string): (t: ThreadState) => boolean {
  return (t) => {
    if (t.args === null) return true; // Hidden: the call alone must do.
    const maps = readOrNull(`/proc/${pid}/maps`) ?? '';
    return maps.split('\n').filter((line) => line.includes(segment)).some((line) => {
      const [start, end] = line.split(' ')[0]!.split('-').map((h) => BigInt(`0x${h}`));
      return t.args![0]! >= start! && t.args![0]! < end!;
    });
  };
}

/** The descriptors an epoll set of `pid` watches (in the sets it watches too) whose link is `target`. */
function watchedBy(pid: number, epfd: number | bigint, target: string | RegExp, depth = 0): number[] {
  const info = readOrNull(`/proc/${pid}/fdinfo/${epfd}`) ?? '';
  const fds = [...info.matchAll(/^tfd:\s+(\d+)\s/gm)].map((m) => Number(m[1]));
  const nested = depth < 3 ? fds.filter((fd) => linkOf(pid, fd) === 'anon_inode:[eventpoll]') : [];
  return [...fds.filter((fd) => linkMatches(linkOf(pid, fd), target)), ...nested.flatMap((fd) => watchedBy(pid, fd, target, depth + 1))];
}

/** Every epoll set of `pid`, by descriptor. */
function epollSets(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/fd`).map(Number).filter((fd) => linkOf(pid, fd) === 'anon_inode:[eventpoll]');
  } catch {
    return [];
  }
}

/**
 * Waits until the event loop of `pid` sleeps waiting for a descriptor whose
 * link is `target`: the main thread is asleep in epoll_wait on an epoll set
 * that lists it. See the module comment for why both are needed, and why a
 * caller waits for the peer's own report first when the descriptor was
 * watched before.
 */
export function waitingOnLoop(pid: number, target: string | RegExp, options: Omit<BlockedOptions, 'main' | 'where' | 'count'> = {}): Promise<ThreadState[]> {
  return blockedIn(pid, 'epoll_wait', {
    what: `the event loop of pid ${pid} waits for ${target}`,
    ...options,
    main: true,
    where: (t) => (t.args === null ? epollSets(pid) : [t.args[0]!]).some((epfd) => watchedBy(pid, epfd, target).length > 0),
  });
}

/**
 * Waits until the epoll sets of this process list `count` descriptors whose
 * link is `target`: that many async calls of this process wait for them on
 * the event loop. (This process is running the probe, so its main thread
 * cannot be asleep; the probe yields to the loop between looks, which is
 * when libuv adds the descriptors.)
 */
export async function watchedByThisLoop(target: string | RegExp, { count = 1, timeoutMs = 10_000 } = {}): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  const watched = (): number => new Set(epollSets(process.pid).flatMap((epfd) => watchedBy(process.pid, epfd, target))).size;
  while (watched() < count) {
    if (performance.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting until this event loop watches ${count} × ${target}`);
    await sleep(2);
  }
}

/** The scheduler state of `pid` from /proc (R, S, T, Z, ...), or null once it is gone. */
export function processState(pid: number): string | null {
  const stat = readOrNull(`/proc/${pid}/stat`);
  return stat === null ? null : stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

/**
 * Waits until process `pid` (its main thread) sleeps in a kernel function
 * matching `wchan`: `/pipe_read/`, `/futex/`, `/wait_for_partner/`.
 */
export async function asleepIn(pid: number, wchan: RegExp, timeoutMs = 10_000): Promise<void> {
  await blockedUntil(pid, (t) => t.tid === pid && t.state === 'S' && wchan.test(t.wchan), 1, `pid ${pid} sleeps in ${wchan}`, timeoutMs);
}

/**
 * Waits until `count` of ipckit's waiter threads (named `ipckit-waiter`) in
 * process `pid` (this one by default) sleep in a kernel function matching
 * `wchan`.
 */
export async function threadsAsleepIn(wchan: RegExp, count = 1, pid = process.pid, timeoutMs = 10_000): Promise<void> {
  await blockedUntil(pid, (t) => t.comm === 'ipckit-waiter' && t.state === 'S' && wchan.test(t.wchan), count,
    `${count} waiter thread(s) of pid ${pid} sleep in ${wchan}`, timeoutMs);
}

async function blockedUntil(pid: number, test: (t: ThreadState) => boolean, count: number, what: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (threads(pid).filter(test).length < count) {
    if (performance.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting until ${what}; threads: ${describeThreads(pid)}`);
    await sleep(2);
  }
}

/**
 * Waits until the inotify instances of this process watch `count` files:
 * that many FIFOs have opens waiting for their other side (one watch per
 * FIFO, in one instance shared by the thread).
 */
export async function inotifyWatching(count = 1, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  const watches = (): number => readdirSync('/proc/self/fd')
    .filter((fd) => linkOf(process.pid, Number(fd)) === 'anon_inode:inotify')
    .reduce((sum, fd) => sum + [...(readOrNull(`/proc/self/fdinfo/${fd}`) ?? '').matchAll(/^inotify wd:/gm)].length, 0);
  while (watches() < count) {
    if (performance.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting until ${count} FIFOs are watched (${watches()} are)`);
    await sleep(2);
  }
}
