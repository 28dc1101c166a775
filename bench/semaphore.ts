/**
 * Semaphore benchmark: ipckit's kernel semaphores (NamedSemaphore, the
 * sem_open family; SemaphoreSet, System V) beside its in-segment Mutex and
 * Semaphore, each against C making the same calls:
 *
 * - pair: one process, nothing to wait for: take then give, ns per pair;
 * - rtt: a ping-pong through two semaphores between two processes (A posts
 *   x, B waits for x and posts y, A waits for y), median and p99 round trip;
 *   Node's nearest built-in, Atomics.wait/notify between two worker
 *   threads (Node has no cross-process semaphore), beside them;
 * - contend: two processes each take and give one lock K times at once,
 *   lock cycles per second over both.
 */
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Worker, workerData } from 'node:worker_threads';
import { DEFAULT_SPIN_US as SPIN, Mutex, NamedSemaphore, PosixSharedMemory, Semaphore, SemaphoreSet } from '../src/index.js';
import type { BenchContext, Command, Measurement, Row } from './harness.js';
import { rowsFor } from './harness.js';
import { measureRoundTrips, print, totalRoundTrips } from './stats.js';

export const mechanism = 'semaphore';

const RUNNER = fileURLToPath(new URL('./runner.js', import.meta.url));

/**
 * The segment: bytes 0–1023 hold the shared-memory C program's area (its
 * pthread mutex, the Mutex's reference); from FLAGS on, the contend words
 * (int32 start, end, counter: semaphore.c says the same), then ipckit's
 * in-segment locks.
 */
const SEGMENT_SIZE = 4096;
const FLAGS = 1024;
const AT = { mutex: 1088, unit: 1104, x: 1120, y: 1136 } as const;
const START = 0;
const END = 1;
const COUNTER = 2;

/** One semaphore (or lock) as the roles name it. */
type Target =
  | { kind: 'named'; name: string }
  | { kind: 'set'; key: number; index: number; undo: boolean }
  | { kind: 'semaphore' | 'mutex'; segment: string; offset: number };

/** How a role takes: `tryOp()` (which must succeed), `opSync()`, or `await op()`. */
type How = 'try' | 'sync' | 'async';

/** Take and give of one target, bound to how it is taken. */
interface Gate {
  take: () => void | Promise<void>;
  give: () => void;
}

interface PairParams {
  target: Target;
  how: How;
  iterations: number;
}

interface RttParams {
  x: Target;
  y: Target;
  how: How;
  spin: number;
  iterations: number;
}

interface ContendParams {
  lock: Target;
  segment: string;
  iterations: number;
}

/** The take of `how` among an object's three forms; a `try` must succeed (nothing else holds the object). */
function takeOf(how: How, forms: { tryOp: () => boolean; sync: () => void; async: () => Promise<void> }): Gate['take'] {
  if (how === 'sync') return forms.sync;
  if (how === 'async') return forms.async;
  return () => {
    if (!forms.tryOp()) throw new Error('an uncontended take found the semaphore taken');
  };
}

function openGate(t: Target, how: How, spin: number): Gate {
  switch (t.kind) {
    case 'named': {
      const s = NamedSemaphore.open(t.name, { spin });
      return { take: takeOf(how, { tryOp: () => s.tryWait(), sync: () => s.waitSync(), async: () => s.wait() }), give: () => s.post() };
    }
    case 'set': {
      const set = SemaphoreSet.open(t.key, { spin });
      const down = { index: t.index, delta: -1, undo: t.undo };
      const up = { index: t.index, delta: 1, undo: t.undo };
      return { take: takeOf(how, { tryOp: () => set.tryOp(down), sync: () => set.opSync(down), async: () => set.op(down) }), give: () => set.opSync(up) };
    }
    case 'semaphore': {
      const s = Semaphore.open(PosixSharedMemory.open(t.segment), t.offset, { spin });
      return { take: takeOf(how, { tryOp: () => s.tryWait(), sync: () => s.waitSync(), async: () => s.wait() }), give: () => s.post() };
    }
    case 'mutex': {
      const m = Mutex.open(PosixSharedMemory.open(t.segment), t.offset, { spin });
      return { take: takeOf(how, { tryOp: () => m.tryLock(), sync: () => m.lockSync(), async: () => m.lock() }), give: () => m.unlock() };
    }
  }
}

/** The semaphore as the C reference takes it: `/name` or `KEY:INDEX`. */
function cAddress(t: Target): string {
  if (t.kind === 'named') return t.name;
  if (t.kind === 'set') return `${t.key}:${t.index}`;
  throw new Error(`the C reference has no ${t.kind}`);
}

/** Arrives at word `at`, then sleeps 50 µs at a time until both processes have. */
function meet(flags: Int32Array, at: number): void {
  Atomics.add(flags, at, 1);
  for (let v = Atomics.load(flags, at); v < 2; v = Atomics.load(flags, at)) Atomics.wait(flags, at, v, 0.05);
}

/** Cycles of a sync or try gate: take, counter += 1 (when `counter` is given), give. */
function cycles(lock: Gate, n: number, counter?: Int32Array): void {
  for (let i = 0; i < n; i++) {
    lock.take();
    if (counter) counter[COUNTER] = counter[COUNTER]! + 1;
    lock.give();
  }
}

function flagsOf(segment: string): Int32Array {
  return new Int32Array(PosixSharedMemory.open(segment).buffer, FLAGS, 3);
}

// Node's nearest built-in: a semaphore in an Int32Array word, taken with Atomics.wait.

type WaitAsync = (words: Int32Array, index: number, value: number) => { async: boolean; value: Promise<string> | string };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

function atomicsPost(words: Int32Array, index: number): void {
  Atomics.add(words, index, 1);
  Atomics.notify(words, index, 1);
}

/** Takes one unit of word `index` (one taker per word), waiting while it is 0. */
function atomicsTake(words: Int32Array, index: number): void {
  while (Atomics.load(words, index) === 0) Atomics.wait(words, index, 0);
  Atomics.sub(words, index, 1);
}

async function atomicsTakeAsync(words: Int32Array, index: number): Promise<void> {
  while (Atomics.load(words, index) === 0) {
    const r = waitAsync(words, index, 0);
    if (r.async) await r.value;
  }
  Atomics.sub(words, index, 1);
}

export const roles = {
  async pair(p: PairParams): Promise<void> {
    const gate = openGate(p.target, p.how, SPIN);
    cycles(gate, Math.floor(p.iterations / 10));
    const t0 = process.hrtime.bigint();
    cycles(gate, p.iterations);
    print({ ns_per_op: Number(process.hrtime.bigint() - t0) / p.iterations });
  },

  async 'rtt-server'(p: RttParams): Promise<void> {
    const x = openGate(p.x, p.how, p.spin);
    const y = openGate(p.y, p.how, p.spin);
    print({ ready: true });
    for (let i = totalRoundTrips(p.iterations); i > 0; i--) {
      const pending = x.take();
      if (pending !== undefined) await pending;
      y.give();
    }
  },

  async 'rtt-client'(p: RttParams): Promise<void> {
    const x = openGate(p.x, p.how, p.spin);
    const y = openGate(p.y, p.how, p.spin);
    await measureRoundTrips(p.iterations, p.how === 'sync'
      ? () => { x.give(); y.take(); }
      : async () => { x.give(); await y.take(); });
  },

  async 'contend-server'(p: ContendParams): Promise<void> {
    const flags = flagsOf(p.segment);
    Atomics.store(flags, START, 0);
    Atomics.store(flags, END, 0);
    Atomics.store(flags, COUNTER, 0);
    const lock = openGate(p.lock, 'sync', SPIN);
    cycles(lock, Math.floor(p.iterations / 10));
    print({ ready: true });
    meet(flags, START);
    cycles(lock, p.iterations, flags);
    meet(flags, END);
  },

  async 'contend-client'(p: ContendParams): Promise<void> {
    const flags = flagsOf(p.segment);
    const lock = openGate(p.lock, 'sync', SPIN);
    cycles(lock, Math.floor(p.iterations / 10));
    meet(flags, START);
    const t0 = process.hrtime.bigint();
    cycles(lock, p.iterations, flags);
    meet(flags, END);
    const ns = Number(process.hrtime.bigint() - t0);
    if (Atomics.load(flags, COUNTER) !== 2 * p.iterations) throw new Error('lost an update: the lock let two holders in');
    print({ cycles_per_s: (2 * p.iterations * 1e9) / ns });
  },

  /** The Node built-in: this (main) thread posts word 0 and waits for word 1; a worker echoes. */
  async 'atomics-client'(p: { how: How; iterations: number }): Promise<void> {
    const words = new Int32Array(new SharedArrayBuffer(8));
    const worker = new Worker(RUNNER, { argv: [mechanism, 'atomics-echo', JSON.stringify(p)], workerData: words });
    await measureRoundTrips(p.iterations, p.how === 'sync'
      ? () => { atomicsPost(words, 0); atomicsTake(words, 1); }
      : async () => { atomicsPost(words, 0); await atomicsTakeAsync(words, 1); });
    await once(worker, 'exit');
  },

  async 'atomics-echo'(p: { iterations: number }): Promise<void> {
    const words = workerData as Int32Array;
    for (let i = totalRoundTrips(p.iterations); i > 0; i--) {
      atomicsTake(words, 0);
      atomicsPost(words, 1);
    }
  },
};

/** The objects of one run. */
interface Objects {
  segment: string;
  named: Record<'unit' | 'x' | 'y' | 'lock', Target>;
  set: Record<'unit' | 'unitUndo' | 'x' | 'y' | 'lock', Target>;
  semaphore: Record<'unit' | 'x' | 'y', Target>;
  mutex: Target;
}

/**
 * Creates every object a run uses, named after this process, and removes
 * them all afterwards: when the run ends or fails, and on SIGINT or SIGTERM.
 */
async function withObjects<R>(run: (o: Objects) => Promise<R>): Promise<R> {
  const removers: (() => void)[] = [];
  const removeAll = (): void => {
    for (const remove of removers.splice(0).reverse()) {
      try {
        remove();
      } catch (err) {
        process.stderr.write(`semaphore bench: cleanup: ${String(err)}\n`);
      }
    }
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    removeAll();
    process.kill(process.pid, signal);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const base = `/ipckit-bench-sem-${process.pid}`;
    const named = (suffix: string, value: number): Target => {
      const s = NamedSemaphore.create(`${base}-${suffix}`, { value });
      removers.push(() => { s.close(); s.unlink(); });
      return { kind: 'named', name: s.name };
    };
    const newSet = (value: number[]): number => {
      for (;;) {
        try {
          const set = SemaphoreSet.create((0x7e000000 | Math.floor(Math.random() * 0xffffff)) >>> 0, { count: value.length, value });
          removers.push(() => set.remove());
          return set.key;
        } catch (err) {
          if ((err as { code?: string }).code !== 'EEXIST') throw err;
        }
      }
    };
    const shm = PosixSharedMemory.create(base, { size: SEGMENT_SIZE });
    removers.push(() => { shm.close(); shm.unlink(); });
    Mutex.create(shm, AT.mutex);
    Semaphore.create(shm, AT.unit, { value: 1 });
    Semaphore.create(shm, AT.x);
    Semaphore.create(shm, AT.y);
    const inSegment = (kind: 'semaphore' | 'mutex', offset: number): Target => ({ kind, segment: base, offset });
    const unitKey = newSet([1]);
    const pingKey = newSet([0, 0]);
    const lockKey = newSet([1]);
    const set = (key: number, index: number, undo: boolean): Target => ({ kind: 'set', key, index, undo });
    return await run({
      segment: base,
      named: { unit: named('unit', 1), x: named('x', 0), y: named('y', 0), lock: named('lock', 1) },
      set: {
        unit: set(unitKey, 0, false), unitUndo: set(unitKey, 0, true),
        x: set(pingKey, 0, false), y: set(pingKey, 1, false), lock: set(lockKey, 0, true),
      },
      semaphore: { unit: inSegment('semaphore', AT.unit), x: inSegment('semaphore', AT.x), y: inSegment('semaphore', AT.y) },
      mutex: inSegment('mutex', AT.mutex),
    });
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    removeAll();
  }
}

/** One measured variant: a C reference (no `ref`) or a variant compared with the C row named `ref`. */
interface Spec {
  variant: string;
  server?: Command;
  client: Command;
  ref?: string;
}

export async function measure(ctx: BenchContext): Promise<Row[]> {
  return withObjects(async (o) => {
    const c = (...args: (string | number)[]): Command => [ctx.cProgram('semaphore'), ...args.map(String)];
    const node = (role: string, params: unknown): Command => ctx.nodeRole(mechanism, role, params);
    const cPair = (how: string, t: Target, n: number): Command => c('pair', how, cAddress(t), n);
    const pair = (target: Target, how: How, n: number): Command => node('pair', { target, how, iterations: n });

    const futexPairs = ctx.rttIterations * 50;
    const sysvPairs = ctx.rttIterations * 5;
    const uncontended: Spec[] = [
      { variant: 'C sem_trywait+sem_post', client: cPair('try', o.named.unit, futexPairs) },
      { variant: 'ipckit named tryWait+post', client: pair(o.named.unit, 'try', futexPairs), ref: 'C sem_trywait+sem_post' },
      { variant: 'C sem_wait+sem_post', client: cPair('wait', o.named.unit, futexPairs) },
      { variant: 'ipckit named waitSync+post', client: pair(o.named.unit, 'sync', futexPairs), ref: 'C sem_wait+sem_post' },
      { variant: 'ipckit Semaphore waitSync+post', client: pair(o.semaphore.unit, 'sync', futexPairs), ref: 'C sem_wait+sem_post' },
      { variant: 'C pthread mutex lock+unlock', client: [ctx.cProgram('shared-memory'), 'lock-uncontended', o.segment, String(futexPairs)] },
      { variant: 'ipckit Mutex lockSync+unlock', client: pair(o.mutex, 'sync', futexPairs), ref: 'C pthread mutex lock+unlock' },
      { variant: 'C semop -1,+1', client: cPair('wait', o.set.unit, sysvPairs) },
      { variant: 'ipckit set opSync -1,+1', client: pair(o.set.unit, 'sync', sysvPairs), ref: 'C semop -1,+1' },
      { variant: 'C semop -1,+1 SEM_UNDO', client: cPair('wait-undo', o.set.unit, sysvPairs) },
      { variant: 'ipckit set opSync undo', client: pair(o.set.unitUndo, 'sync', sysvPairs), ref: 'C semop -1,+1 SEM_UNDO' },
    ];

    const n = ctx.rttIterations;
    const cRtt = (x: Target, y: Target, spin: number): Pick<Spec, 'server' | 'client'> => ({
      server: c('rtt', 'server', cAddress(x), cAddress(y), n, spin),
      client: c('rtt', 'client', cAddress(x), cAddress(y), n, spin),
    });
    const rtt = (x: Target, y: Target, how: How, spin: number): Pick<Spec, 'server' | 'client'> => ({
      server: node('rtt-server', { x, y, how, spin, iterations: n }),
      client: node('rtt-client', { x, y, how, spin, iterations: n }),
    });
    const C_SEM_SPIN = `C sem, spin ${SPIN} µs`;
    const C_SEMOP_SPIN = `C semop, spin ${SPIN} µs`;
    const roundTrips: Spec[] = [
      { variant: C_SEM_SPIN, ...cRtt(o.named.x, o.named.y, SPIN) },
      { variant: 'ipckit named sync', ...rtt(o.named.x, o.named.y, 'sync', SPIN), ref: C_SEM_SPIN },
      { variant: 'ipckit named async', ...rtt(o.named.x, o.named.y, 'async', SPIN), ref: C_SEM_SPIN },
      { variant: 'ipckit Semaphore sync', ...rtt(o.semaphore.x, o.semaphore.y, 'sync', SPIN), ref: C_SEM_SPIN },
      { variant: 'ipckit Semaphore async', ...rtt(o.semaphore.x, o.semaphore.y, 'async', SPIN), ref: C_SEM_SPIN },
      { variant: 'C sem', ...cRtt(o.named.x, o.named.y, 0) },
      { variant: 'ipckit named sync spin=0', ...rtt(o.named.x, o.named.y, 'sync', 0), ref: 'C sem' },
      { variant: 'ipckit Semaphore sync spin=0', ...rtt(o.semaphore.x, o.semaphore.y, 'sync', 0), ref: 'C sem' },
      { variant: 'node Atomics.wait (threads)', client: node('atomics-client', { how: 'sync', iterations: n }), ref: 'C sem' },
      { variant: 'node Atomics.waitAsync (threads)', client: node('atomics-client', { how: 'async', iterations: n }), ref: 'C sem' },
      { variant: C_SEMOP_SPIN, ...cRtt(o.set.x, o.set.y, SPIN) },
      { variant: 'ipckit set sync', ...rtt(o.set.x, o.set.y, 'sync', SPIN), ref: C_SEMOP_SPIN },
      { variant: 'ipckit set async', ...rtt(o.set.x, o.set.y, 'async', SPIN), ref: C_SEMOP_SPIN },
      { variant: 'C semop', ...cRtt(o.set.x, o.set.y, 0) },
      { variant: 'ipckit set sync spin=0', ...rtt(o.set.x, o.set.y, 'sync', 0), ref: 'C semop' },
    ];

    // Long enough that the two processes overlap for most of the run, C included.
    const futexCycles = ctx.rttIterations * 50;
    const sysvCycles = ctx.rttIterations * 5 / 2;
    const cContend = (how: string, lock: Target, k: number): Pick<Spec, 'server' | 'client'> => ({
      server: c('contend', 'server', how, cAddress(lock), o.segment, k),
      client: c('contend', 'client', how, cAddress(lock), o.segment, k),
    });
    const contend = (lock: Target, k: number): Pick<Spec, 'server' | 'client'> => ({
      server: node('contend-server', { lock, segment: o.segment, iterations: k }),
      client: node('contend-client', { lock, segment: o.segment, iterations: k }),
    });
    const locks: Spec[] = [
      { variant: 'C sem lock', ...cContend('wait', o.named.lock, futexCycles) },
      { variant: 'ipckit named lock', ...contend(o.named.lock, futexCycles), ref: 'C sem lock' },
      { variant: 'ipckit Mutex lock', ...contend(o.mutex, futexCycles), ref: 'C sem lock' },
      { variant: 'C semop SEM_UNDO lock', ...cContend('wait-undo', o.set.lock, sysvCycles) },
      { variant: 'ipckit set undo lock', ...contend(o.set.lock, sysvCycles), ref: 'C semop SEM_UNDO lock' },
    ];

    const rows: Row[] = [];
    const measured = new Map<string, Measurement>();
    for (const spec of [...uncontended, ...roundTrips, ...locks]) {
      const m = await ctx.runPair(spec.server, spec.client);
      measured.set(spec.variant, m);
      rows.push(...rowsFor(mechanism, spec.variant, ctx.placement, m, spec.ref ?? null, spec.ref === undefined ? null : measured.get(spec.ref)!));
    }
    return rows;
  });
}
