/**
 * Shared-memory and lock benchmark:
 * - uncontended lock + unlock (one process), against a pthread robust,
 *   process-shared mutex;
 * - contended lock + counter++ + unlock by two processes at once;
 * - 64 KiB copied into a segment and back out (one process), against memcpy;
 * - 64 KiB handed from one process to another through a segment with two
 *   semaphores, against C doing the same with POSIX semaphores, beside
 *   child_process IPC moving 64 KiB messages.
 */
import { Mutex, PosixSharedMemory, Semaphore } from '../src/index.js';
import type { BenchContext, Row } from './harness.js';
import { rowsFor } from './harness.js';
import { print } from './stats.js';

export const mechanism = 'shared-memory';

const SIZE = 64 * 1024;
/** ipckit's layout: mutex 0, semaphores 16 and 32, flags 48.., data from 128. */
const L = { mutex: 0, filled: 16, drained: 32, go: 12, done: 13, counter: 14, warmed: 15, data: 128 } as const;

interface Params {
  name: string;
  iterations: number;
  mode?: 'sync' | 'async';
}

function warmupOf(n: number): number {
  return Math.floor(n / 10);
}

function nsPerOp(t0: bigint, ops: number): { ns_per_op: number } {
  return { ns_per_op: Number(process.hrtime.bigint() - t0) / ops };
}

export const roles = {
  async 'lock-uncontended'(p: Params): Promise<void> {
    const shm = PosixSharedMemory.open(p.name);
    const m = Mutex.create(shm, L.mutex);
    const loop = (n: number): void => {
      for (let i = 0; i < n; i++) {
        m.lockSync();
        m.unlock();
      }
    };
    loop(warmupOf(p.iterations));
    const t0 = process.hrtime.bigint();
    loop(p.iterations);
    print(nsPerOp(t0, p.iterations));
  },

  async 'lock-contended-server'(p: Params): Promise<void> {
    const shm = PosixSharedMemory.open(p.name);
    const words = new Int32Array(shm.buffer);
    const m = Mutex.create(shm, L.mutex);
    Atomics.store(words, L.go, 0);
    Atomics.store(words, L.done, 0);
    Atomics.store(words, L.counter, 0);
    Atomics.store(words, L.warmed, 0);
    await warmUp(m, p);
    print({ ready: true });
    await until(() => Atomics.load(words, L.go) !== 0);
    await warmUpContended(m, words, p);
    await contend(m, words, p);
    Atomics.store(words, L.done, 1);
  },

  async 'lock-contended-client'(p: Params): Promise<void> {
    const shm = PosixSharedMemory.open(p.name);
    const words = new Int32Array(shm.buffer);
    const m = Mutex.open(shm, L.mutex);
    await warmUp(m, p);
    Atomics.store(words, L.go, 1);
    await warmUpContended(m, words, p);
    const t0 = process.hrtime.bigint();
    await contend(m, words, p);
    // Sleep while the other finishes, so a pinned run does not steal its CPU.
    await until(() => Atomics.load(words, L.done) !== 0);
    const result = nsPerOp(t0, 2 * p.iterations);
    if (Atomics.load(words, L.counter) !== 4 * p.iterations) throw new Error('lost an update');
    print(result);
  },

  async copy(p: Params): Promise<void> {
    const shm = PosixSharedMemory.open(p.name);
    const src = Buffer.alloc(SIZE, 7);
    const dst = Buffer.alloc(SIZE);
    const round = (): void => {
      shm.write(src, L.data);
      shm.readInto(dst, L.data);
    };
    for (let i = 0; i < warmupOf(p.iterations); i++) round();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < p.iterations; i++) round();
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    print({ mb_s: (p.iterations * SIZE) / us });
  },

  async 'transfer-server'(p: Params): Promise<void> {
    const shm = PosixSharedMemory.open(p.name);
    const filled = Semaphore.create(shm, L.filled);
    const drained = Semaphore.create(shm, L.drained);
    const dst = Buffer.alloc(SIZE);
    print({ ready: true });
    for (let i = 0; i < p.iterations + warmupOf(p.iterations); i++) {
      if (p.mode === 'async') await filled.wait();
      else filled.waitSync();
      shm.readInto(dst, L.data);
      drained.post();
    }
  },

  async 'transfer-client'(p: Params): Promise<void> {
    const shm = PosixSharedMemory.open(p.name);
    const filled = Semaphore.open(shm, L.filled);
    const drained = Semaphore.open(shm, L.drained);
    const src = Buffer.alloc(SIZE, 7);
    const one = async (): Promise<void> => {
      shm.write(src, L.data);
      filled.post();
      if (p.mode === 'async') await drained.wait();
      else drained.waitSync();
    };
    for (let i = 0; i < warmupOf(p.iterations); i++) await one();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < p.iterations; i++) await one();
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    print({ mb_s: (p.iterations * SIZE) / us });
  },
};

async function contend(m: Mutex, words: Int32Array, p: Params): Promise<void> {
  if (p.mode === 'async') {
    for (let i = 0; i < p.iterations; i++) {
      await m.lock();
      words[L.counter] = words[L.counter]! + 1;
      m.unlock();
    }
    return;
  }
  for (let i = 0; i < p.iterations; i++) {
    m.lockSync();
    words[L.counter] = words[L.counter]! + 1;
    m.unlock();
  }
}

/** Compiles the lock paths before timing starts: lock and unlock, uncontended. */
async function warmUp(m: Mutex, p: Params): Promise<void> {
  for (let i = 0; i < warmupOf(p.iterations); i++) {
    if (p.mode === 'async') await m.lock();
    else m.lockSync();
    m.unlock();
  }
}

/**
 * Both processes contend as long as the timed run will, then wait for each
 * other. The first lock that finds the mutex held takes the wait path, and V8
 * then drops the code it had compiled for locks that never waited and
 * compiles it again (about 40 ms of compiler time here, on the benchmark's
 * CPU: as long as the timed run). Pinned, two processes only meet at a held
 * lock when one is preempted holding it, a few times a time slice, so a
 * shorter warm-up may not meet it at all.
 */
async function warmUpContended(m: Mutex, words: Int32Array, p: Params): Promise<void> {
  await contend(m, words, p);
  Atomics.add(words, L.warmed, 1);
  await until(() => Atomics.load(words, L.warmed) === 2);
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 1));
}

/** A fresh segment for one run (name unique to this harness process), removed afterwards. */
async function withSegment<R>(run: (name: string) => Promise<R>): Promise<R> {
  const name = `/ipckit-bench-shm-${process.pid}`;
  const shm = PosixSharedMemory.create(name, { size: 256 + SIZE });
  try {
    return await run(name);
  } finally {
    shm.close();
    shm.unlink();
  }
}

export async function measure(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const c = (...args: (string | number)[]): string[] => [ctx.cProgram('shared-memory'), ...args.map(String)];
  const node = (role: string, params: Params): string[] => ctx.nodeRole(mechanism, role, params);
  const locks = ctx.rttIterations * 50;
  await withSegment(async (name) => {
    const cUncontended = await ctx.runPair(undefined, c('lock-uncontended', name, locks));
    rows.push(...rowsFor(mechanism, 'C pthread robust mutex: lock+unlock', ctx.placement, cUncontended, null, null));
    const uncontended = await ctx.runPair(undefined, node('lock-uncontended', { name, iterations: locks }));
    rows.push(...rowsFor(mechanism, 'ipckit Mutex: lock+unlock', ctx.placement, uncontended, 'C pthread robust mutex', cUncontended));

    const contendedOps = ctx.rttIterations * 50;
    const cContended = await ctx.runPair(c('lock-contended', 'server', name, contendedOps), c('lock-contended', 'client', name, contendedOps));
    rows.push(...rowsFor(mechanism, 'C pthread robust mutex: contended', ctx.placement, cContended, null, null));
    for (const mode of ['sync', 'async'] as const) {
      const params = { name, iterations: contendedOps, mode };
      const m = await ctx.runPair(node('lock-contended-server', params), node('lock-contended-client', params));
      rows.push(...rowsFor(mechanism, `ipckit Mutex: contended ${mode}`, ctx.placement, m, 'C pthread robust mutex, contended', cContended));
    }

    const copies = ctx.throughputMessages;
    const cCopy = await ctx.runPair(undefined, c('copy', name, copies, SIZE));
    rows.push(...rowsFor(mechanism, 'C memcpy 64 KiB in+out', ctx.placement, cCopy, null, null));
    const copy = await ctx.runPair(undefined, node('copy', { name, iterations: copies }));
    rows.push(...rowsFor(mechanism, 'ipckit 64 KiB in+out', ctx.placement, copy, 'C memcpy', cCopy));

    const transfers = ctx.rttIterations;
    const cTransfer = await ctx.runPair(c('transfer', 'server', name, transfers, SIZE), c('transfer', 'client', name, transfers, SIZE));
    rows.push(...rowsFor(mechanism, 'C 64 KiB hand-off (sem_t)', ctx.placement, cTransfer, null, null));
    for (const mode of ['sync', 'async'] as const) {
      const params = { name, iterations: transfers, mode };
      const m = await ctx.runPair(node('transfer-server', params), node('transfer-client', params));
      rows.push(...rowsFor(mechanism, `ipckit 64 KiB hand-off ${mode}`, ctx.placement, m, 'C 64 KiB hand-off', cTransfer));
    }
    const ipc = await ctx.runPair(undefined, ctx.nodeRole('message-queue', 'fork-client', { kind: 'tput', iterations: transfers, size: SIZE }));
    rows.push(...rowsFor(mechanism, 'node child_process IPC 64 KiB', ctx.placement, ipc, 'C 64 KiB hand-off', cTransfer));
  });
  return rows;
}
