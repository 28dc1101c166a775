/**
 * The race-condition demonstration shared by `ipckit demo race` and the
 * tour: N real processes increment one counter in shared memory, first with
 * a plain read-modify-write, then under the segment's Mutex.
 * @internal
 * @module
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { IpcError } from '../errors.js';
import { Mutex } from '../lock.js';
import { PosixSharedMemory } from '../shared-memory.js';

/** Word indexes in the race segment: the mutex occupies words 0–3. */
export const RACE_LAYOUT = { mutex: 0, counter: 4, ready: 5, go: 6, size: 64 } as const;

const WORKER = fileURLToPath(new URL('./race-worker.js', import.meta.url));

/** The outcome of one race: the final counter and how long it took. */
export interface RaceRun {
  counter: number;
  ms: number;
}

/** Starts a race worker (or a mutex holder, mode 'hold') on the segment `name`. */
export function startWorker(name: string, mode: 'unlocked' | 'locked' | 'hold', increments: number) {
  return spawn(process.execPath, [WORKER, name, mode, String(increments)], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function exited(child: ReturnType<typeof startWorker>): Promise<void> {
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new IpcError('ERR_IPC_PEER_FAILED', `A race worker (pid ${child.pid}) exited ${code}: ${stderr.trim()}`));
    });
  });
}

/** Runs `processes` workers doing `increments` each, all released at once; resolves with the final counter. */
export async function race(segment: PosixSharedMemory, locked: boolean, processes: number, increments: number): Promise<RaceRun> {
  const words = new Int32Array(segment.buffer);
  Atomics.store(words, RACE_LAYOUT.counter, 0);
  Atomics.store(words, RACE_LAYOUT.ready, 0);
  Atomics.store(words, RACE_LAYOUT.go, 0);
  const workers = Array.from({ length: processes }, () => startWorker(segment.name, locked ? 'locked' : 'unlocked', increments));
  const done = Promise.all(workers.map(exited));
  done.catch(() => undefined);
  try {
    // Release them together once all are ready, so their updates overlap.
    const deadline = Date.now() + 30_000;
    while (Atomics.load(words, RACE_LAYOUT.ready) < processes) {
      if (Date.now() > deadline) throw new IpcError('ERR_IPC_PEER_FAILED', 'The race workers did not start within 30 s.');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const started = performance.now();
    Atomics.store(words, RACE_LAYOUT.go, 1);
    await done;
    return { counter: Atomics.load(words, RACE_LAYOUT.counter), ms: Math.round(performance.now() - started) };
  } finally {
    for (const worker of workers) if (worker.exitCode === null) worker.kill('SIGKILL');
  }
}

/** Creates the race segment (with its mutex) under a name unique to this process. */
export function createRaceSegment(): PosixSharedMemory {
  const segment = PosixSharedMemory.create(`/ipckit-race-${process.pid}-${Date.now().toString(36)}`, { size: RACE_LAYOUT.size });
  Mutex.create(segment, RACE_LAYOUT.mutex * 4);
  return segment;
}
