/**
 * Leak cycles: every kind of object is made, used and given back over and
 * over — up to a million times per kind in a long run — and nothing may
 * stay behind: no descriptor, no kernel object, no mapping, no thread, no
 * heap that grows with the cycles.
 *
 * Each kind runs in a child process of its own, started with --expose-gc so
 * that it can collect garbage on demand. A cycle creates the object, uses
 * it (sync and async calls), then ends in one of eight ways: closed (three
 * of the eight; one through `Symbol.asyncDispose`), closed while a call
 * waits, a waiting call aborted through an AbortSignal, a waiting call timed
 * out, dropped without `close()`, dropped after a waiting call timed out.
 * The object itself is always removed (unlink / IPC_RMID) by name. A handle
 * dropped without `close()` must give back what it held once it is
 * collected (the FinalizationRegistry in src/internal/handle.ts closes its
 * descriptors; a mapping goes with its SharedArrayBuffer): after every few
 * dropped handles the child collects garbage, gives the event loop a turn,
 * and checks that the dropped handles are gone and the descriptors are
 * back where they started.
 *
 * The child measures after a warm-up (one-time, per-thread machinery — the
 * readiness registry's epoll set, the signal descriptors, the first waiter
 * thread — is made then) and again at the end, both after garbage
 * collection: descriptors, the run's kernel objects, shared mappings,
 * threads and the JavaScript heap. The parent then looks for the run's
 * objects once more (what outlives the process is the worst leak) and
 * removes whatever is left, whatever happened.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  Channel, Fifo, IpcError, Mutex, NamedSemaphore, type PipeReadEnd, type PipeWriteEnd, PosixMessageQueue, PosixSharedMemory, Semaphore, SemaphoreSet,
  SysvMessageQueue, SysvSharedMemory, bind, connect, connectSync, listen, listenForSignals, pipe, sendSignal, signalNumber,
} from '../src/index.js';
import type { WaitOptions } from '../src/index.js';
import { native } from '../src/native.js';
import { type Section, type SectionResult, chosenNames, descriptorTargets, fmt, removeOnInterrupt, runStandalone } from './report.js';

const SELF = fileURLToPath(import.meta.url);
/** Marks a child process; its value is the {@link ChildConfig} as JSON. */
const CHILD_ENV = 'IPCKIT_LEAKS_CHILD';

/** Cycles per kind at which a long run stops. */
const GOAL = 1_000_000;
/**
 * Names (and System V keys) per kind, reused in turn: every cycle removes
 * its object, so a name still taken when its turn comes again is a leak
 * (the create fails with EEXIST), and the end-of-run checks stay small.
 */
const SLOTS = 64;
/** Time a child needs besides its cycles (start, warm-up, final collection), ms. */
const CHILD_OVERHEAD_MS = 800;
/** A child that has not reported this long after its budget is hung, ms. */
const HANG_GRACE_MS = 60_000;
/** Waiter threads end after 30 s without work; a child with this much budget waits to see it. */
const IDLE_OUT_BUDGET_MS = 120_000;
const IDLE_OUT_WAIT_MS = 35_000;
/** The heap bound: see `about`. */
const HEAP_ABSOLUTE_BYTES = 8 * 2 ** 20;
const HEAP_FLOOR_BYTES = 2 ** 20;
const HEAP_PER_CYCLE_BYTES = 64;
const MiB = 2 ** 20;

// ===========================================================================
// What a cycle does

/** How a cycle ends. */
type Ending = 'close' | 'dispose' | 'close-pending' | 'abort' | 'timeout' | 'drop' | 'drop-pending';

/** The eight endings, in turn. */
const ENDINGS: readonly Ending[] = ['close', 'close', 'dispose', 'close-pending', 'abort', 'timeout', 'drop', 'drop-pending'];

const isDrop = (e: Ending): boolean => e === 'drop' || e === 'drop-pending';
const hasPending = (e: Ending): boolean => e === 'close-pending' || e === 'abort' || e === 'timeout' || e === 'drop-pending';

/** What a waiting call must reject with, for each ending that interrupts one. */
const EXPECTED: Partial<Record<Ending, string>> = {
  'close-pending': 'ERR_IPC_CLOSED', abort: 'ERR_IPC_ABORTED', timeout: 'ERR_IPC_TIMEOUT', 'drop-pending': 'ERR_IPC_TIMEOUT',
};

/**
 * Starts a call that has to wait (`start`), interrupts it as `ending` says
 * — abort, a 1 ms timeout, or `close()` — and checks that it rejected with
 * the matching code. In every other round of eight cycles the call first
 * gets a turn of the event loop, so that its wait is armed (its waiter
 * thread started) before the interruption; otherwise it is interrupted at
 * once.
 */
async function interruptWait(ending: Ending, i: number, start: (opts: WaitOptions) => Promise<unknown>, close: () => void): Promise<void> {
  const controller = new AbortController();
  const opts: WaitOptions = ending === 'abort' ? { signal: controller.signal } : ending === 'close-pending' ? {} : { timeout: 1 };
  // Handled from the start: a 1 ms timeout may fire during the turn below.
  const settled = start(opts).then(() => 'a result', (err: unknown) => (err instanceof IpcError ? err.code : String(err)));
  if ((i >> 3) % 2 === 1) await nextTurn();
  if (ending === 'abort') controller.abort();
  if (ending === 'close-pending') close();
  const code = await settled;
  if (code !== EXPECTED[ending]) throw new Error(`${ending}: the waiting call ended with ${code}, not ${EXPECTED[ending]}`);
}

function expectBytes(got: Uint8Array | null | undefined, want: Uint8Array, what: string): void {
  if (got === null || got === undefined || Buffer.compare(got, want) !== 0) {
    throw new Error(`${what}: read ${got === null ? 'the end' : got === undefined ? 'nothing' : Buffer.from(got).toString('hex')}, not ${Buffer.from(want).toString('hex')}`);
  }
}

function payload(i: number): Buffer {
  return Buffer.from(`cycle ${i}`);
}

/** Ends a cycle's handles: closed (or disposed), or dropped — recorded in `dropped` so the run can tell whether they are collected. */
async function finish(ending: Ending, handles: (Disposable & AsyncDisposable & object)[], dropped: WeakRef<object>[]): Promise<void> {
  if (isDrop(ending)) {
    for (const h of handles) dropped.push(new WeakRef(h));
  } else if (ending === 'dispose') {
    for (const h of handles) await h[Symbol.asyncDispose]();
  } else {
    for (const h of handles) h[Symbol.dispose]();
  }
}

/** Whether `err` is an `IpcError` with `code`. */
function hasCode(err: unknown, code: string): boolean {
  return err instanceof IpcError && err.code === code;
}

/**
 * Makes an object, waiting out a system-wide limit that other processes
 * may hold for a moment (fs.mqueue.queues_max is 256 for the whole
 * machine): a limit that does not clear within a second is reported.
 */
async function made<T>(make: () => T): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return make();
    } catch (err) {
      if (!hasCode(err, 'ERR_IPC_LIMIT') || attempt >= 40) throw err;
      await sleep(25);
    }
  }
}

/** Where a kind's objects live, and the run's names for them. */
interface ChildConfig {
  kind: KindName;
  /** Time for the cycles, ms. */
  cycleMs: number;
  goal: number;
  /** Prefix of POSIX names (`/ipckit-leaks-<pid>-<random>-`). */
  prefix: string;
  /** First of the {@link SLOTS} System V keys. */
  keyBase: number;
  /** Directory for FIFOs. */
  dir: string;
  /** Whether to wait for idle waiter threads to end. */
  watchIdleOut: boolean;
}

interface Kind {
  /** Cycle `i`, ending as `ending`; handles it drops go to `dropped`. */
  cycle(i: number, ending: Ending, dropped: WeakRef<object>[]): Promise<void>;
  /** The run's kernel objects that exist now; undefined when the kind has none besides descriptors. */
  objects(): number | undefined;
  /** Dropped handles between collections: few where every one holds a system-wide object. */
  collectEvery: number;
}

type KindName = 'posix-mq' | 'sysv-mq' | 'posix-shm+mutex' | 'sysv-shm+semaphore' | 'named-semaphore' | 'semaphore-set' | 'channel' | 'fifo' | 'pipe'
  | 'signal-listener' | 'socket';
const KIND_NAMES: readonly KindName[] = ['posix-mq', 'sysv-mq', 'posix-shm+mutex', 'sysv-shm+semaphore', 'named-semaphore', 'semaphore-set', 'channel', 'fifo',
  'pipe', 'signal-listener', 'socket'];

/**
 * The kinds to cycle: all of them, or (run alone) those named by `--kinds
 * a,b`, so that a long run can be split over processes.
 */
function chosenKinds(): readonly KindName[] {
  return chosenNames('--kinds', KIND_NAMES, import.meta.url);
}

const slot = (i: number): number => i % SLOTS;
const mqName = (c: ChildConfig, i: number): string => `${c.prefix}q${slot(i)}`;
const shmName = (c: ChildConfig, i: number): string => `${c.prefix}s${slot(i)}`;
/** A named semaphore `/x` is the file /dev/shm/sem.x. */
const semName = (c: ChildConfig, i: number): string => `${c.prefix}n${slot(i)}`;
const fifoPath = (c: ChildConfig, i: number): string => join(c.dir, `f${slot(i)}`);

type SysvKind = 'msg' | 'shm' | 'sem';

/** Lines of /proc/sysvipc/<kind> after the header, as columns. */
function sysvRows(kind: SysvKind): string[][] {
  return readFileSync(`/proc/sysvipc/${kind}`, 'utf8').trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
}

/** The run's System V keys that name an object of `kind` now. */
function sysvKeysInUse(kind: SysvKind, keyBase: number): number[] {
  return sysvRows(kind).map((r) => Number(r[0])).filter((k) => k >= keyBase && k < keyBase + SLOTS);
}

/** The run's POSIX queues that exist now: /dev/mqueue when it is mounted, otherwise an open of each name. */
function posixQueuesLeft(prefix: string): string[] {
  if (existsSync('/dev/mqueue')) return readdirSync('/dev/mqueue').filter((n) => `/${n}`.startsWith(prefix)).map((n) => `/${n}`);
  const left: string[] = [];
  const C = native.constants;
  for (let s = 0; s < SLOTS; s++) {
    const name = `${prefix}q${s}`;
    const fd = native.mqOpen(name, C.O_RDONLY | C.O_CLOEXEC, 0, 0, 0);
    if (fd >= 0) {
      native.close(fd);
      left.push(name);
    }
  }
  return left;
}

function shmLeft(prefix: string): string[] {
  return readdirSync('/dev/shm').filter((n) => `/${n}`.startsWith(prefix)).map((n) => `/${n}`);
}

/** The run's named semaphores that exist now (their files, /dev/shm/sem.<name>), by name. */
function semaphoresLeft(prefix: string): string[] {
  return readdirSync('/dev/shm').filter((n) => n.startsWith(`sem.${prefix.slice(1)}`)).map((n) => `/${n.slice('sem.'.length)}`);
}

/** Whether this process catches `sig` now (its bit in SigCgt of /proc/self/status). */
function catches(sig: number): boolean {
  const mask = /^SigCgt:\s+([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  return ((BigInt(`0x${mask}`) >> BigInt(sig - 1)) & 1n) === 1n;
}

const SIGNAL = 'SIGUSR2';

/** The socket kinds the socket leak cycles take in turn, each for a round of the eight endings. */
const SOCKET_VARIANTS = ['unix', 'unix-seqpacket', 'tcp', 'unix-dgram', 'udp'] as const;

/** How many Unix sockets (/proc/net/unix) are bound to a name that contains one of `tags`. */
function unixSocketsNamed(tags: string[]): number {
  return readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1).filter((line) => tags.some((t) => line.includes(t))).length;
}

/**
 * Descriptors over a Unix socket: `send` passes a pipe's read end with
 * `data`, `receive` takes it and the receiver closes it; then, unless
 * `leaveUnread` is false, `send` passes the write end in a message nobody
 * reads, which the receiving socket's close (or collection) must release.
 */
function passDescriptors(send: (fds: (PipeReadEnd | PipeWriteEnd)[], data: Buffer) => void, receive: () => { data: Buffer; fds: number[] },
  data: Buffer, leaveUnread: boolean): void {
  const { readEnd, writeEnd } = pipe();
  try {
    send([readEnd], data);
    const got = receive();
    expectBytes(got.data, data, 'a message with a descriptor');
    if (got.fds.length !== 1) throw new Error(`${got.fds.length} descriptors arrived, not 1`);
    closeSync(got.fds[0]!);
    if (leaveUnread) send([writeEnd], data);
  } finally {
    readEnd.close();
    writeEnd.close();
  }
}

/**
 * A connection's life: listen, connect (sync or async), accept, messages
 * both ways, descriptors (Unix) received and left unread, or a request
 * answered by a served handler; the waiting call is a receive, or a request
 * the handler never answers. The server is always closed (its socket file
 * removed); the two ends are closed or dropped as `ending` says.
 */
async function connectedCycle(address: string, i: number, ending: Ending, dropped: WeakRef<object>[]): Promise<void> {
  const server = listen(address);
  const ends: (Disposable & AsyncDisposable & object)[] = [];
  try {
    const client = i % 2 === 0 ? connectSync(server.address, { timeout: 5000 }) : await connect(server.address, { timeout: 5000 });
    ends.push(client);
    const conn = i % 2 === 0 ? server.acceptSync({ timeout: 5000 }) : await server.accept({ timeout: 5000 });
    ends.push(conn);
    const data = payload(i);
    client.sendSync(data);
    expectBytes(conn.receiveSync({ timeout: 5000 }).data, data, 'receiveSync');
    await conn.send(data);
    expectBytes((await client.receive({ timeout: 5000 })).data, data, 'receive');
    // A socket that serves reads as long as its peer is open: never dropped while it serves.
    const requests = !isDrop(ending) && (i >> 4) % 2 === 1;
    if (client.kind !== 'tcp') passDescriptors((fds, d) => client.sendFdsSync(fds, d), () => conn.receiveSync({ timeout: 5000 }), data, !requests);
    if (requests) {
      // An empty request is never answered.
      void conn.serve((d) => (d.length === 0 ? new Promise<Buffer>(() => undefined) : Buffer.concat([d, d]))).catch(() => undefined);
      expectBytes(await client.request(data, { timeout: 5000 }), Buffer.concat([data, data]), 'reply');
    }
    if (hasPending(ending)) {
      await interruptWait(ending, i, (o) => (requests ? client.request(Buffer.alloc(0), o) : client.receive(o)), () => client.close());
    }
  } finally {
    server.close();
    await finish(ending, ends, dropped);
  }
}

/** Two datagram sockets: datagrams both ways (sync and async), descriptors (Unix); the waiting call is a receive. */
async function datagramCycle(addresses: [string, string], i: number, ending: Ending, dropped: WeakRef<object>[]): Promise<void> {
  const ends: (Disposable & AsyncDisposable & object)[] = [];
  try {
    const a = bind(addresses[0]);
    ends.push(a);
    const b = bind(addresses[1]);
    ends.push(b);
    const [toA, toB] = [a.localAddress!, b.localAddress!];
    const data = payload(i);
    a.sendSync(data, { to: toB });
    const got = b.receiveSync({ timeout: 5000 });
    expectBytes(got.data, data, 'receiveSync');
    if (got.from !== toA) throw new Error(`a datagram from ${toA} arrived from ${got.from}`);
    await b.send(data, { to: toA });
    expectBytes((await a.receive({ timeout: 5000 })).data, data, 'receive');
    if (a.kind === 'unix-dgram') passDescriptors((fds, d) => a.sendSync(d, { to: toB, fds }), () => b.receiveSync({ timeout: 5000 }), data, true);
    if (hasPending(ending)) await interruptWait(ending, i, (o) => a.receive(o), () => a.close());
  } finally {
    await finish(ending, ends, dropped);
  }
}

function kindOf(c: ChildConfig): Kind {
  switch (c.kind) {
    case 'posix-mq': return {
      collectEvery: 8,
      objects: () => posixQueuesLeft(c.prefix).length,
      async cycle(i, ending, dropped) {
        const name = mqName(c, i);
        const q = await made(() => PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 64 }));
        try {
          const data = payload(i);
          q.sendSync(data, { priority: i % 8 });
          expectBytes(q.receiveSync({ timeout: 0 }).data, data, 'receiveSync');
          await q.send(data);
          expectBytes((await q.receive()).data, data, 'receive');
          if (hasPending(ending)) await interruptWait(ending, i, (o) => q.receive(o), () => q.close());
        } finally {
          PosixMessageQueue.unlink(name);
          await finish(ending, [q], dropped);
        }
      },
    };
    case 'sysv-mq': return {
      collectEvery: 64,
      objects: () => sysvKeysInUse('msg', c.keyBase).length,
      async cycle(i, ending, dropped) {
        const q = await made(() => SysvMessageQueue.create(c.keyBase + slot(i)));
        try {
          const data = payload(i);
          q.sendSync(1 + (i % 3), data);
          expectBytes(q.receiveSync({ type: -3, timeout: 0 }).data, data, 'receiveSync');
          await q.send(2, data);
          expectBytes((await q.receive({ type: 2 })).data, data, 'receive');
          if (hasPending(ending)) await interruptWait(ending, i, (o) => q.receive({ type: 7, ...o }), () => q.close());
        } finally {
          // remove() works on a closed handle, and closes an open one: a dropped handle is removed by key instead.
          if (isDrop(ending)) SysvMessageQueue.remove(c.keyBase + slot(i));
          else q.remove();
          await finish(ending, [q], dropped);
        }
      },
    };
    case 'posix-shm+mutex': return {
      collectEvery: 64,
      objects: () => shmLeft(c.prefix).length,
      async cycle(i, ending, dropped) {
        const name = shmName(c, i);
        const shm = await made(() => PosixSharedMemory.create(name, { size: 4096 }));
        try {
          const mutex = Mutex.create(shm, 0);
          const data = payload(i);
          mutex.lockSync();
          shm.write(data, 64);
          mutex.unlock();
          await mutex.withLock(() => expectBytes(shm.read(64, data.length), data, 'read'));
          if (hasPending(ending)) {
            // Held by this thread: an async lock() waits (on a waiter thread) for it.
            mutex.lockSync();
            await interruptWait(ending, i, (o) => mutex.lock(o), () => shm.close());
            if (ending !== 'close-pending') mutex.unlock();
          }
        } finally {
          PosixSharedMemory.unlink(name);
          await finish(ending, [shm], dropped);
        }
      },
    };
    case 'sysv-shm+semaphore': return {
      collectEvery: 64,
      // Counted by creator pid: a removed segment still attached somewhere has lost its key.
      objects: () => sysvRows('shm').filter((r) => Number(r[4]) === process.pid || (Number(r[0]) >= c.keyBase && Number(r[0]) < c.keyBase + SLOTS)).length,
      async cycle(i, ending, dropped) {
        const shm = await made(() => SysvSharedMemory.create(c.keyBase + slot(i), { size: 4096 }));
        try {
          const semaphore = Semaphore.create(shm, 0, { value: 1 });
          const data = payload(i);
          semaphore.waitSync({ timeout: 0 });
          shm.write(data, 64);
          semaphore.post();
          await semaphore.wait();
          expectBytes(shm.read(64, data.length), data, 'read');
          // At 0 now: a wait() waits (on a waiter thread) for a post.
          if (hasPending(ending)) await interruptWait(ending, i, (o) => semaphore.wait(o), () => shm.close());
        } finally {
          shm.remove();
          await finish(ending, [shm], dropped);
        }
      },
    };
    case 'named-semaphore': return {
      collectEvery: 64,
      objects: () => semaphoresLeft(c.prefix).length,
      async cycle(i, ending, dropped) {
        const name = semName(c, i);
        const sem = await made(() => NamedSemaphore.create(name, { value: 1 }));
        const handles: (Disposable & AsyncDisposable & object)[] = [sem];
        try {
          // A second handle, a mapping of its own: every post and take goes through the one file.
          const other = NamedSemaphore.open(name);
          handles.push(other);
          sem.waitSync({ timeout: 0 });
          other.post();
          await other.wait();
          sem.post(2);
          if (!other.tryWait()) throw new Error('tryWait found nothing after post(2)');
          await sem.wait({ timeout: 1000 });
          // At 0: the wait sleeps on a waiter thread until the other handle's post wakes it.
          const woken = sem.wait({ timeout: 5000 });
          await nextTurn();
          other.post();
          await woken;
          if (sem.value !== 0 || other.waiters !== 0) throw new Error(`value ${sem.value}, waiters ${other.waiters} after the cycle's takes`);
          if (hasPending(ending)) await interruptWait(ending, i, (o) => sem.wait(o), () => sem.close());
        } finally {
          NamedSemaphore.unlink(name);
          await finish(ending, handles, dropped);
        }
      },
    };
    case 'semaphore-set': return {
      collectEvery: 64,
      objects: () => sysvKeysInUse('sem', c.keyBase).length,
      async cycle(i, ending, dropped) {
        const key = c.keyBase + slot(i);
        const set = await made(() => SemaphoreSet.create(key, { count: 3, value: [1, 0, 0] }));
        const handles: (Disposable & AsyncDisposable & object)[] = [set];
        try {
          const other = SemaphoreSet.open(key);
          handles.push(other);
          // A lock taken and given back with undo, then two semaphores at once.
          set.opSync({ index: 0, delta: -1, undo: true }, { timeout: 0 });
          other.opSync({ index: 0, delta: 1, undo: true });
          await set.op([{ index: 0, delta: -1 }, { index: 1, delta: 1 }]);
          if (!other.tryOp({ index: 1, delta: -1 })) throw new Error(`tryOp found nothing: values ${set.values().join()}`);
          // Semaphore 2 is 0: the op waits on a waiter thread until the other handle's op lets it through.
          const woken = set.op({ index: 2, delta: -1 }, { timeout: 5000 });
          await nextTurn();
          other.opSync([{ index: 2, delta: 1 }, { index: 0, delta: 1 }]);
          await woken;
          const values = other.values();
          if (values.join() !== '1,0,0') throw new Error(`values ${values.join()} after the cycle, not 1,0,0`);
          // Semaphore 1 is 0: an op waits (on a waiter thread) for an increase.
          if (hasPending(ending)) await interruptWait(ending, i, (o) => set.op({ index: 1, delta: -1 }, o), () => set.close());
        } finally {
          // remove() works on a closed handle, and closes an open one: a dropped handle is removed by key instead.
          if (isDrop(ending)) SemaphoreSet.remove(key);
          else set.remove();
          await finish(ending, handles, dropped);
        }
      },
    };
    case 'channel': return {
      collectEvery: 64,
      objects: () => shmLeft(c.prefix).length,
      async cycle(i, ending, dropped) {
        const name = shmName(c, i);
        // Two handles of this thread: one takes the producer role, the other the consumer role.
        const producer = await made(() => Channel.create(name, { capacity: 4096 }));
        const handles: (Disposable & AsyncDisposable & object)[] = [producer];
        try {
          const consumer = Channel.open(name);
          handles.push(consumer);
          const data = payload(i);
          producer.sendSync(data);
          expectBytes(consumer.receiveSync({ timeout: 0 }).data, data, 'receiveSync');
          await producer.send(data);
          expectBytes((await consumer.receive()).data, data, 'receive');
          // A loan committed, and a view (its space given back by the next receive, or by close).
          const slot = producer.loanSync(data.length, { timeout: 0 });
          slot.set(data);
          producer.commit(slot);
          expectBytes(consumer.receiveSync({ view: true, timeout: 0 }).data, data, 'view');
          // Empty: a receive waits (on a waiter thread, watching the producer: this thread) for a send.
          if (hasPending(ending)) await interruptWait(ending, i, (o) => consumer.receive(o), () => consumer.close());
        } finally {
          Channel.unlink(name);
          await finish(ending, handles, dropped);
        }
      },
    };
    case 'fifo': return {
      collectEvery: 128,
      objects: () => readdirSync(c.dir).length,
      async cycle(i, ending, dropped) {
        const path = fifoPath(c, i);
        Fifo.create(path);
        const ends: (Disposable & AsyncDisposable & object)[] = [];
        try {
          // Half the waiting calls are opens (no writer yet: an inotify watch waits), half are reads.
          const pendingOpen = hasPending(ending) && ending !== 'close-pending' && (i >> 4) % 2 === 0;
          if (pendingOpen) await interruptWait(ending, i, (o) => Fifo.openRead(path, o), () => undefined);
          const readEnd = await Fifo.openRead(path, { nonBlocking: true });
          ends.push(readEnd);
          const writeEnd = await Fifo.openWrite(path, { nonBlocking: true });
          ends.push(writeEnd);
          const data = payload(i);
          writeEnd.writeSync(data);
          expectBytes(readEnd.readSync({ timeout: 0 }), data, 'readSync');
          await writeEnd.write(data);
          expectBytes(await readEnd.read(), data, 'read');
          if (hasPending(ending) && !pendingOpen) await interruptWait(ending, i, (o) => readEnd.read(o), () => readEnd.close());
        } finally {
          Fifo.unlink(path);
          await finish(ending, ends, dropped);
        }
      },
    };
    case 'pipe': return {
      collectEvery: 128,
      objects: () => undefined,
      async cycle(i, ending, dropped) {
        const { readEnd, writeEnd } = pipe();
        try {
          const data = payload(i);
          writeEnd.writeSync(data);
          expectBytes(readEnd.readSync({ timeout: 0 }), data, 'readSync');
          await writeEnd.write(data);
          expectBytes(await readEnd.read(), data, 'read');
          if (hasPending(ending)) await interruptWait(ending, i, (o) => readEnd.read(o), () => readEnd.close());
        } finally {
          await finish(ending, [readEnd, writeEnd], dropped);
        }
      },
    };
    case 'signal-listener': {
      const n = signalNumber(SIGNAL);
      return {
        collectEvery: 64,
        // The signal's disposition: caught only while a listener is open.
        objects: () => (catches(n) ? 1 : 0),
        async cycle(i, ending, dropped) {
          const listener = listenForSignals(SIGNAL);
          try {
            sendSignal(process.pid, SIGNAL, { value: i });
            const sync = listener.receiveSync({ timeout: 1000 });
            sendSignal(process.pid, SIGNAL, { value: i + 1 });
            const async = await listener.receive({ timeout: 1000 });
            if (sync.value !== i || async.value !== i + 1) throw new Error(`received values ${sync.value} and ${async.value}, not ${i} and ${i + 1}`);
            if (hasPending(ending)) await interruptWait(ending, i, (o) => listener.receive(o), () => listener.close());
          } finally {
            await finish(ending, [listener], dropped);
          }
        },
      };
    }
    case 'socket': {
      // Names of the run: abstract ones under the prefix, socket files in the run's directory.
      const tag = c.prefix.slice(1);
      const name = (what: string, i: number): string => `@${tag}-${what}${slot(i)}`;
      return {
        collectEvery: 16,
        objects: () => readdirSync(c.dir).length + unixSocketsNamed([tag, c.dir]),
        async cycle(i, ending, dropped) {
          const variant = SOCKET_VARIANTS[Math.floor(i / ENDINGS.length) % SOCKET_VARIANTS.length]!;
          if (variant === 'unix-dgram' || variant === 'udp') {
            await datagramCycle(variant === 'udp' ? ['udp://127.0.0.1:0', 'udp://127.0.0.1:0'] : [`unix-dgram:${name('da', i)}`, `unix-dgram:${name('db', i)}`], i, ending, dropped);
            return;
          }
          const address = variant === 'tcp' ? 'tcp://127.0.0.1:0' : variant === 'unix' ? `unix:${join(c.dir, `s${slot(i)}.sock`)}` : `unix-seqpacket:${name('q', i)}`;
          await connectedCycle(address, i, ending, dropped);
        },
      };
    }
  }
}

// ===========================================================================
// What the child measures

interface Measure {
  fds: number;
  /** The run's kernel objects (null: the kind has none besides descriptors). */
  objects: number | null;
  /** Lines of /proc/self/maps for POSIX (/dev/shm) or System V (SYSV) shared memory. */
  mappings: number;
  /** Threads (tasks) besides ipckit's waiter threads. */
  threads: number;
  waiters: number;
  /** Waiter threads inside a job now. */
  busyWaiters: number;
  heapBytes: number;
}


function sharedMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/dev/shm/') || l.includes(' /SYSV')).length;
}

/** [all tasks, ipckit waiter threads] of this process. */
function tasks(): [number, number] {
  const all = readdirSync('/proc/self/task');
  let waiters = 0;
  for (const t of all) {
    try {
      if (readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === 'ipckit-waiter') waiters++;
    } catch {
      /* Ended meanwhile. */
    }
  }
  return [all.length, waiters];
}

const reachable = (ref: WeakRef<object>): boolean => ref.deref() !== undefined;

const collect = (): void => (globalThis as unknown as { gc: () => void }).gc();

/**
 * Collects garbage and lets the finalizers run: the FinalizationRegistry's
 * callbacks are a task after the collection, and array buffers (the
 * mappings) are swept concurrently, so two rounds with a turn of the event
 * loop in between.
 */
async function settle(rounds = 2): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    collect();
    await sleep(1);
  }
}

function measure(kind: Kind): Measure {
  const [all, waiters] = tasks();
  const [poolThreads, idle] = native.waiterThreads();
  const objects = kind.objects();
  return {
    fds: readdirSync('/proc/self/fd').length,
    objects: objects ?? null,
    mappings: sharedMappings(),
    threads: all - waiters,
    waiters,
    busyWaiters: poolThreads - idle,
    heapBytes: process.memoryUsage().heapUsed,
  };
}

interface ChildReport {
  cycles: number;
  dropped: number;
  interrupted: number;
  /** Dropped handles still reachable at two collections in a row, or at the end (never released). */
  retained: number;
  /** Cycle after which drops stopped because dropped handles were not collected, or null. */
  dropsStoppedAt: number | null;
  /** Most descriptors above the start seen at a collection point with no dropped handle alive. */
  maxFdsAfterCollection: number;
  start: Measure;
  end: Measure;
  /** Descriptors open at the end that were not at the start. */
  extraFds: string[];
  /** Whether the idle waiter threads ended (null: not watched). */
  waitersIdledOut: boolean | null;
  cycleMs: number;
  errors: number;
  firstErrors: string[];
}

/** What the cycles of a child found, the warm-up's included. */
class Findings {
  errors = 0;
  readonly firstErrors: string[] = [];
  /** Dropped handles still reachable at two collections in a row. */
  retained = 0;
  /** Dropped handles reachable at the last collection: retained if still so at the next. */
  suspects: WeakRef<object>[] = [];
  /** The measured cycle after which drops stopped (see {@link runCycles}). */
  dropsStoppedAt: number | null = null;
  maxFdsAfterCollection = 0;

  /** Counts a cycle that failed; keeps the first few messages. */
  error(i: number, err: unknown): void {
    this.errors++;
    if (this.firstErrors.length < 5) this.firstErrors.push(`cycle ${i}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Runs cycles `from`, … while `more(i)`; collects after every
 * `collectEvery` dropped handles and checks that they are gone (and, given
 * `baselineFds`, that the descriptors are back to it). A handle can outlive
 * one collection for a moment (V8 may still hold it in a stale slot of a
 * suspended frame); one that is still reachable at the next collection,
 * cycles later, is held.
 */
async function runCycles(kind: Kind, from: number, more: (i: number) => boolean, found: Findings,
  baselineFds?: number): Promise<{ cycles: number; dropped: number; interrupted: number }> {
  let dropped: WeakRef<object>[] = [];
  const tally = { cycles: 0, dropped: 0, interrupted: 0 };
  let i = from;
  const check = async (): Promise<void> => {
    await settle();
    const held = found.suspects.filter(reachable);
    found.retained += held.length;
    found.suspects = dropped.filter(reachable);
    dropped = [];
    // A kind whose dropped handles are not collected has shown its leak; more drops would only exhaust the machine.
    if (held.length > 0 && baselineFds !== undefined) found.dropsStoppedAt ??= i;
    if (baselineFds !== undefined && found.retained === 0 && found.suspects.length === 0) {
      // A collected handle's last descriptors may close a few turns after its collection (a watch the readiness
      // thread lets go of, an unmap deferred to the next turn): they get ten more before they count.
      let open = readdirSync('/proc/self/fd').length - baselineFds;
      for (let round = 0; open > 0 && round < 10; round++) {
        await settle(1);
        open = readdirSync('/proc/self/fd').length - baselineFds;
      }
      found.maxFdsAfterCollection = Math.max(found.maxFdsAfterCollection, open);
    }
  };
  for (; more(i); i++) {
    let ending = ENDINGS[i % ENDINGS.length]!;
    if (isDrop(ending) && found.dropsStoppedAt !== null) ending = 'close';
    try {
      await kind.cycle(i, ending, dropped);
    } catch (err) {
      found.error(i, err);
    }
    tally.cycles++;
    if (isDrop(ending)) tally.dropped++;
    if (hasPending(ending)) tally.interrupted++;
    if (dropped.length >= kind.collectEvery) await check();
    if (i % 256 === 255) process.stdout.write(`${JSON.stringify({ progress: tally.cycles })}\n`);
  }
  await check();
  return tally;
}

async function childMain(c: ChildConfig): Promise<never> {
  // stdout opens its descriptor when first written: before anything is counted.
  process.stdout.write('');
  const kind = kindOf(c);
  const found = new Findings();
  // Kernel objects are counted from before the warm-up: none may outlive it.
  const objectsBefore = kind.objects() ?? null;
  // Warm-up: two cycles of every ending make the per-thread machinery.
  await runCycles(kind, 0, (i) => i < 2 * ENDINGS.length, found);
  measure(kind);
  await settle(3);
  const start = { ...measure(kind), objects: objectsBefore };
  const startFds = descriptorTargets();
  const t0 = performance.now();
  const from = 2 * ENDINGS.length;
  const tally = await runCycles(kind, from, (i) => i - from < c.goal && performance.now() - t0 < c.cycleMs, found, start.fds);
  const cycleMs = performance.now() - t0;
  // Several rounds: what is still there after them is held, not merely unswept.
  await settle(6);
  found.retained += found.suspects.filter(reachable).length;
  found.suspects = [];
  let waitersIdledOut: boolean | null = null;
  if (c.watchIdleOut) {
    const deadline = Date.now() + IDLE_OUT_WAIT_MS;
    while (tasks()[1] > 0 && Date.now() < deadline) await sleep(500);
    waitersIdledOut = tasks()[1] === 0;
  }
  const end = measure(kind);
  const left = [...startFds];
  const extraFds: string[] = [];
  for (const target of descriptorTargets()) {
    const at = left.indexOf(target);
    if (at >= 0) left.splice(at, 1);
    else extraFds.push(target);
  }
  const report: ChildReport = {
    ...tally, retained: found.retained, dropsStoppedAt: found.dropsStoppedAt, maxFdsAfterCollection: found.maxFdsAfterCollection,
    start, end, extraFds, waitersIdledOut, cycleMs, errors: found.errors, firstErrors: found.firstErrors,
  };
  process.stdout.write(`${JSON.stringify({ report })}\n`);
  process.exit(0);
}

// ===========================================================================
// The parent

interface ChildOutcome {
  report: ChildReport | undefined;
  /** Cycles the child said it had done (for a child that never reported). */
  progress: number;
  exit: string;
  stderr: string;
  hung: boolean;
}

async function runChild(c: ChildConfig): Promise<ChildOutcome> {
  const child: ChildProcess = spawn(process.execPath, ['--expose-gc', SELF], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, [CHILD_ENV]: JSON.stringify(c) },
  });
  const outcome: ChildOutcome = { report: undefined, progress: 0, exit: '', stderr: '', hung: false };
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    outcome.stderr = (outcome.stderr + chunk).slice(-4000);
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      const m = JSON.parse(line) as { progress?: number; report?: ChildReport };
      if (m.progress !== undefined) outcome.progress = m.progress;
      if (m.report !== undefined) outcome.report = m.report;
    } catch {
      outcome.stderr += `\n(stdout) ${line}`;
    }
  });
  const bound = c.cycleMs + CHILD_OVERHEAD_MS + (c.watchIdleOut ? IDLE_OUT_WAIT_MS : 0) + HANG_GRACE_MS;
  const timer = setTimeout(() => {
    outcome.hung = true;
    child.kill('SIGKILL');
  }, bound);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  outcome.exit = signal ?? `exit code ${code}`;
  return outcome;
}

/** The run's objects that outlived the child; removes them all, and the FIFO directory. Returns what was found. */
function sweep(c: ChildConfig): string[] {
  const found: string[] = [];
  const quietly = (what: string, remove: () => void): void => {
    found.push(what);
    try {
      remove();
    } catch {
      /* Gone meanwhile. */
    }
  };
  for (const name of posixQueuesLeft(c.prefix)) quietly(`queue ${name}`, () => PosixMessageQueue.unlink(name));
  for (const name of shmLeft(c.prefix)) quietly(`segment ${name}`, () => PosixSharedMemory.unlink(name));
  for (const name of semaphoresLeft(c.prefix)) quietly(`named semaphore ${name}`, () => NamedSemaphore.unlink(name));
  for (const key of sysvKeysInUse('msg', c.keyBase)) quietly(`System V queue 0x${key.toString(16)}`, () => SysvMessageQueue.remove(key));
  for (const key of sysvKeysInUse('shm', c.keyBase)) quietly(`System V segment 0x${key.toString(16)}`, () => SysvSharedMemory.remove(key));
  for (const key of sysvKeysInUse('sem', c.keyBase)) quietly(`System V semaphore set 0x${key.toString(16)}`, () => SemaphoreSet.remove(key));
  if (existsSync(c.dir)) {
    for (const f of readdirSync(c.dir)) quietly(`${c.kind === 'socket' ? 'socket file' : 'FIFO'} ${join(c.dir, f)}`, () => unlinkSync(join(c.dir, f)));
    rmSync(c.dir, { recursive: true, force: true });
  }
  return found;
}

/** A base for {@link SLOTS} keys of every System V kind that nothing uses now. */
function freeKeyBase(): number {
  for (;;) {
    const base = 0x4c000000 + randomInt(0, 2 ** 18) * SLOTS;
    if ((['msg', 'shm', 'sem'] as const).every((kind) => sysvKeysInUse(kind, base).length === 0)) return base;
  }
}

/** Bytes as MiB with two decimals (no "-0.00"). */
function mib(bytes: number): string {
  const text = (bytes / MiB).toFixed(2);
  return text === '-0.00' ? '0.00' : text;
}

/** Drift of a count from start to end; null where the kind has nothing to count. */
function drift(start: number | null, end: number | null): number | null {
  return start === null || end === null ? null : end - start;
}

/**
 * Heap drift beyond the bound: above {@link HEAP_ABSOLUTE_BYTES} outright, or
 * above {@link HEAP_FLOOR_BYTES} while growing more than
 * {@link HEAP_PER_CYCLE_BYTES} a cycle.
 */
function heapBeyondBound(bytes: number, cycles: number): boolean {
  return bytes > HEAP_ABSOLUTE_BYTES || (bytes > HEAP_FLOOR_BYTES && bytes / Math.max(1, cycles) > HEAP_PER_CYCLE_BYTES);
}

function judge(kind: KindName, o: ChildOutcome, leftAfterExit: string[]): { row: (string | number)[]; failures: string[] } {
  const failures: string[] = [];
  const r = o.report;
  if (r === undefined) {
    failures.push(`${kind}: the child ${o.hung ? 'hung and was killed' : `ended (${o.exit})`} without a report after ${o.progress} cycles; ` +
      `stderr: ${o.stderr.trim().split('\n').slice(-3).join(' / ') || '(empty)'}`);
    if (leftAfterExit.length > 0) failures.push(`${kind}: left after the child ended (removed now): ${leftAfterExit.join(', ')}`);
    return { row: [kind, o.progress, '–', '–', '–', '–', '–', '–', '–', '–'], failures };
  }
  const fds = r.end.fds - r.start.fds;
  const objects = drift(r.start.objects, r.end.objects);
  const mappings = r.end.mappings - r.start.mappings;
  const threads = r.end.threads - r.start.threads;
  const heap = r.end.heapBytes - r.start.heapBytes;
  if (fds > 0) failures.push(`${kind}: ${fds} descriptor(s) more at the end than at the start (${r.extraFds.join(', ') || 'targets not told apart'})`);
  if (r.maxFdsAfterCollection > 0 && fds <= 0) failures.push(`${kind}: up to ${r.maxFdsAfterCollection} descriptor(s) still open after a collection during the run`);
  if (objects !== null && objects > 0) failures.push(`${kind}: ${objects} kernel object(s) of the run more at the end than at the start`);
  if (mappings > 0) failures.push(`${kind}: ${mappings} shared mapping(s) more at the end than at the start`);
  if (threads > 0) failures.push(`${kind}: ${threads} thread(s) (not waiter threads) more at the end than at the start`);
  if (r.end.busyWaiters > 0) failures.push(`${kind}: ${r.end.busyWaiters} waiter thread(s) still inside a call at the end (a wait nobody cancelled)`);
  if (r.waitersIdledOut === false) failures.push(`${kind}: idle waiter threads did not end within ${IDLE_OUT_WAIT_MS / 1000} s`);
  if (heapBeyondBound(heap, r.cycles)) failures.push(`${kind}: heap grew ${mib(heap)} MiB over ${r.cycles} cycles (${(heap / r.cycles).toFixed(0)} B a cycle)`);
  if (r.retained > 0) {
    failures.push(`${kind}: ${r.retained} handle(s) dropped without close() were still reachable at two garbage collections cycles apart — never released` +
      (r.dropsStoppedAt === null ? '' : ` (drops stopped at cycle ${r.dropsStoppedAt}; later cycles close instead)`));
  }
  if (r.errors > 0) failures.push(`${kind}: ${r.errors} cycle(s) failed: ${r.firstErrors.join('; ')}`);
  if (leftAfterExit.length > 0) failures.push(`${kind}: left after the child exited (removed now): ${leftAfterExit.join(', ')}`);
  if (o.exit !== 'exit code 0') failures.push(`${kind}: the child ended with ${o.exit}`);
  const waiterNote = r.end.waiters === r.start.waiters ? '' : ` (waiters ${r.start.waiters}→${r.end.waiters}${r.end.busyWaiters === 0 ? ', idle' : ''})`;
  return {
    row: [
      kind, r.cycles, r.dropped, r.interrupted, fds, objects ?? '–', mappings, `${fmt(threads)}${waiterNote}`,
      mib(heap), Math.round(r.cycles / (r.cycleMs / 1000)),
    ],
    failures,
  };
}

export const section: Section = {
  name: 'leaks',
  async run(ctx): Promise<SectionResult> {
    const columns = ['kind', 'cycles', 'dropped without close', 'waits interrupted', 'fd drift', 'kernel-object drift', 'mapping drift',
      'thread drift', 'heap drift (MB)', 'cycles/s'];
    const end = Date.now() + ctx.budgetMs;
    // Each kind gets an equal share of the time left: what a kind that reached GOAL early did not use goes to the next ones.
    const share = (left: number): { cycleMs: number; watchIdleOut: boolean } => {
      const perKind = (end - Date.now()) / left;
      const watchIdleOut = perKind >= IDLE_OUT_BUDGET_MS;
      return { cycleMs: Math.max(1000, perKind - CHILD_OVERHEAD_MS - (watchIdleOut ? IDLE_OUT_WAIT_MS : 0)), watchIdleOut };
    };
    const kinds = chosenKinds();
    const first = share(kinds.length);
    const about = `Each kind runs in a child process of its own (--expose-gc) for an equal share of the time left (${(first.cycleMs / 1000).toFixed(0)} s for ` +
      `the first) or ${GOAL} cycles, whichever comes first. A cycle creates ` +
      'the object (unique names: parent pid + random; System V keys checked free), uses it with sync and async calls, and ends in one of ' +
      'eight ways in turn: closed (twice), disposed (Symbol.asyncDispose), closed while a call waits, a waiting call aborted (AbortController), ' +
      'a waiting call timed out (1 ms), dropped without close(), dropped after a waiting call timed out; the object is always removed by ' +
      'name (a socket\'s server is always closed, which removes its socket file). Socket cycles take in turn, eight cycles each, a Unix ' +
      'stream socket on a socket file, a Unix seqpacket socket on an abstract name and TCP on 127.0.0.1 (listen, connect, accept, messages ' +
      'both ways; over Unix, a descriptor passed, received and closed, and one passed and never read; every other round a request answered ' +
      'by a served handler instead), then a pair of Unix datagram sockets (with descriptors) and a pair of UDP sockets. Waiting calls: ' +
      'receives (queues, pipe and FIFO reads, signal listeners, sockets), socket requests nobody answers, FIFO opens with no writer, a ' +
      'Mutex held by the same thread, a Semaphore at 0, a channel\'s consumer on an empty ring (channel cycles: a 4 KiB channel created ' +
      'and opened again, a copy sent and received sync and async, a loan committed and received as a view, then ended as the others), ' +
      'a named semaphore at 0 and a semaphore-set operation waiting for an increase (kernel semaphores: the object created and opened ' +
      'again by a second handle, units taken and posted through both with waitSync, wait, tryWait and post(n), a set\'s lock taken and ' +
      'given back with undo and two semaphores taken at once, a wait parked on a waiter thread and woken by the other handle). After every few dropped handles the child collects garbage, gives the event loop a turn and checks that ' +
      'they were collected (their FinalizationRegistry then closes their descriptors); one still reachable at the next collection too, ' +
      'cycles later, or at the end, counts as never released, and its kind stops dropping (the leak is shown). Once every dropped handle is ' +
      'gone, the descriptors must be back to the start within ten more turns (a collected handle\'s last ones may close a turn or two later). ' +
      'Drift is end minus start, both after collection and after a warm-up that makes the per-thread ' +
      'machinery (epoll registry, signal descriptors, first waiter thread). Kernel objects: the run\'s POSIX queues (/dev/mqueue, or an ' +
      'open of each name), /dev/shm entries with the run\'s prefix (named semaphores: sem.<prefix>), /proc/sysvipc keys of the run ' +
      '(queues, segments and semaphore sets; segments also by creator pid), FIFOs in ' +
      'the run\'s directory, Unix sockets bound to the run\'s names (/proc/net/unix) and socket files in its directory, and for signals ' +
      'whether SIGUSR2 is still caught (SigCgt); the parent looks again after the child exits. ' +
      'Mappings: /proc/self/maps lines of /dev/shm or SYSV. Threads: tasks other than ipckit-waiter threads, which end after 30 s idle ' +
      `(in runs with ≥ ${IDLE_OUT_BUDGET_MS / 60_000} min per kind the child waits to see them end; otherwise they must be idle). Heap: ` +
      `heapUsed after collection; V8's figure moves by up to about 1 MiB between equal states, and no per-cycle state is kept by ipckit, ` +
      `so the drift fails above ${HEAP_ABSOLUTE_BYTES / MiB} MiB, or above ${HEAP_FLOOR_BYTES / MiB} MiB at more than ${HEAP_PER_CYCLE_BYTES} B ` +
      'a cycle (a retained handle costs hundreds of bytes, so a leak of one in eight cycles is well above that).';
    const rows: (string | number)[][] = [];
    const failures: string[] = [];
    const prefix = `/ipckit-leaks-${process.pid}-${randomBytes(4).toString('hex')}-`;
    for (const [i, kind] of kinds.entries()) {
      const { cycleMs, watchIdleOut } = share(kinds.length - i);
      const config: ChildConfig = {
        kind, cycleMs, goal: GOAL, prefix: `${prefix}${KIND_NAMES.indexOf(kind)}`, keyBase: freeKeyBase(),
        dir: mkdtempSync(join(tmpdir(), `ipckit-leaks-${process.pid}-`)), watchIdleOut,
      };
      let outcome: ChildOutcome;
      let left: string[];
      const removal = removeOnInterrupt(() => void sweep(config));
      try {
        outcome = await runChild(config);
      } finally {
        removal();
        left = sweep(config);
      }
      const judged = judge(kind, outcome, left);
      rows.push(judged.row);
      failures.push(...judged.failures);
      ctx.log(`${kind}: ${judged.row[1]} cycles${judged.failures.length > 0 ? `, ${judged.failures.length} failure(s)` : ''}`);
    }
    return { title: 'Leak cycles', about, columns, rows, failures };
  },
};

const childConfig = process.env[CHILD_ENV];
if (import.meta.url === `file://${process.argv[1]}` && childConfig !== undefined) await childMain(JSON.parse(childConfig) as ChildConfig);
if (import.meta.url === `file://${process.argv[1]}`) await runStandalone(section);
