/**
 * Peer scenarios of test/engine.test.ts: what must run in a process of its
 * own (a thread limit, a worker that must be terminable, a thread pool
 * filled to its cap). Reports through JSON lines, like peer-main.ts.
 */
import { spawn } from 'node:child_process';
import { closeSync, readFileSync, readdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { type IpcError, PosixSharedMemory, Semaphore, SysvMessageQueue, pipe } from '../../src/index.js';
import { native } from '../../src/native.js';

function emit(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts receives on `q` with type selectors 1, 2, … until one fails; returns its error and how many started. */
async function receivesUntilRefused(q: SysvMessageQueue, most: number): Promise<{ started: number; error: IpcError | undefined }> {
  const pending: Promise<unknown>[] = [];
  let failure: IpcError | undefined;
  for (let type = 1; type <= most && failure === undefined; type++) {
    const p = q.receive({ type });
    p.catch((err: IpcError) => {
      failure ??= err;
    });
    pending.push(p);
    // Let a refused thread report before the next receive starts.
    if (type % 8 === 0) await pause(1);
  }
  await pause(50);
  return { started: pending.length, error: failure };
}

/** This process's RLIMIT_NPROC, from /proc. */
function processLimit(): string {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max processes'));
  return line?.split(/\s{2,}/)[1] ?? 'unknown';
}

export const engineScenarios: Record<string, (params: any) => Promise<void>> = {
  /** Opens a System V queue (as whatever user this runs as) and reports how it went. */
  async 'sysv-open'(p: { key: number }) {
    try {
      SysvMessageQueue.open(p.key).close();
      emit({ event: 'opened' });
    } catch (err) {
      emit({ event: 'refused', code: (err as IpcError).code });
    }
  },

  /**
   * Runs workers that leave handles open (one with a read pending, one
   * idle), then counts this process's descriptors: a worker's ipckit
   * descriptors, its readiness registry's included, go when it ends.
   */
  async 'worker-fds'(p: { workers: number }) {
    const count = (): number => readdirSync('/proc/self/fd').length;
    const index = new URL('../../src/index.js', import.meta.url).href;
    const body = `(async () => {
      const m = await import(${JSON.stringify(index)});
      const a = m.pipe(); m.pipe(); a.readEnd.read().catch(() => {});
      require('node:worker_threads').parentPort.postMessage('ready');
    })();`;
    // One worker first, so that Node's own per-worker descriptors exist before counting.
    const run = async (): Promise<void> => {
      const w = new Worker(body, { eval: true });
      await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
      await w.terminate();
    };
    await run();
    const before = count();
    for (let i = 0; i < p.workers; i++) await run();
    emit({ event: 'done', gained: count() - before });
  },

  /**
   * Closes a pipe end's descriptor behind ipckit's back while a read waits
   * and a child keeps another copy of that end open, then makes it
   * readable: the read completes through ipckit's own description of the
   * pipe, and the process must not spin on readiness reports for a
   * descriptor nobody waits for any more.
   */
  async 'stray-readiness'() {
    const { readEnd, writeEnd } = pipe();
    const child = spawn('sleep', ['5'], { stdio: [readEnd.fd, 'ignore', 'ignore'] });
    // The read is queued, and its descriptor in the registry, as soon as read() returns.
    const reading = readEnd.read({ maxBytes: 1 });
    closeSync(readEnd.fd);
    // More than the read takes: the pipe stays readable after it.
    await writeEnd.write(Buffer.from('for nobody'));
    let outcome: string;
    try {
      outcome = String(await reading);
    } catch (err) {
      outcome = (err as IpcError).code;
    }
    const before = process.cpuUsage();
    await pause(300);
    const used = process.cpuUsage(before);
    child.kill();
    emit({ event: 'done', outcome, cpuMs: Math.round((used.user + used.system) / 1000) });
    process.exit(0);
  },

  /**
   * Waits on a semaphore whose count word another process overwrote with a
   * negative value, in every form; each must end (the process must not spin
   * forever) and report how.
   */
  async 'sem-corrupt'(p: { address: string; offset: number }) {
    const segment = PosixSharedMemory.open(p.address);
    const sem = Semaphore.open(segment, p.offset);
    const outcome = async (form: string, call: () => unknown): Promise<void> => {
      const start = performance.now();
      try {
        await call();
        emit({ form, code: null });
      } catch (err) {
        emit({ form, code: (err as IpcError).code, ms: Math.round(performance.now() - start) });
      }
    };
    await outcome('waitSync', () => sem.waitSync({ timeout: 300 }));
    await outcome('wait', () => sem.wait({ timeout: 300 }));
    await outcome('wait forever', () => sem.wait());
    await outcome('tryWait', () => sem.tryWait());
    await outcome('post', () => sem.post());
    segment.close();
  },

  /** Fills the waiter pool to its cap with receives of distinct types; the next one must be refused. */
  async 'waiter-cap'() {
    const q = SysvMessageQueue.create(0x7e000000 + (process.pid % 0xffffff));
    try {
      const { started, error } = await receivesUntilRefused(q, native.maxWaiterThreads + 1);
      emit({ event: 'done', started, code: error?.code ?? null, errno: error?.errno ?? null, message: error?.message ?? null, threads: native.waiterThreads()[0] });
    } finally {
      q.remove();
    }
  },

  /**
   * Waits until the parent lowers this process's RLIMIT_NPROC, then starts
   * receives that each need a thread until the kernel refuses one.
   */
  async 'waiter-refused'() {
    const q = SysvMessageQueue.create(0x7e000000 + (process.pid % 0xffffff));
    try {
      const before = processLimit();
      emit({ event: 'ready', id: q.id });
      while (processLimit() === before) await pause(5);
      const { started, error } = await receivesUntilRefused(q, 200);
      emit({ event: 'done', started, code: error?.code ?? null, errno: error?.errno ?? null, message: error?.message ?? null });
    } finally {
      q.remove();
    }
  },

  /** A worker blocked in a *Sync wait of `kind`: terminate() must end it. */
  async 'worker-terminate'(p: { kind: string; address: string | number; offset?: number }) {
    const worker = new Worker(new URL('./engine-worker.js', import.meta.url), { workerData: p });
    const tid = await new Promise<number>((resolve, reject) => {
      worker.once('message', (m: { tid: number }) => resolve(m.tid));
      worker.once('error', reject);
    });
    // Asleep in the kernel (not in the worker's event loop): the wait has begun.
    const asleep = (): boolean => {
      try {
        const wchan = readFileSync(`/proc/self/task/${tid}/wchan`, 'utf8');
        const state = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]![0];
        return state === 'S' && wchan !== 'do_epoll_wait' && wchan !== '0';
      } catch {
        return false;
      }
    };
    while (!asleep()) await pause(2);
    const wchan = readFileSync(`/proc/self/task/${tid}/wchan`, 'utf8');
    const start = performance.now();
    await worker.terminate();
    emit({ event: 'done', wchan, ms: Math.round(performance.now() - start) });
  },
};
