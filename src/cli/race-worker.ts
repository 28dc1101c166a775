/**
 * A worker of `ipckit demo race` and the tour: started as a separate process,
 * it increments a counter in a shared-memory segment, with or without the
 * segment's Mutex, once every worker is ready. Or, in `hold` mode, it takes
 * the mutex and waits to be killed.
 *
 *   node race-worker.js <segment> unlocked|locked|hold <increments>
 *
 * The segment's layout is RACE_LAYOUT in race.ts.
 * @internal
 * @module
 */
import { PosixSharedMemory } from '../shared-memory.js';
import { Mutex } from '../lock.js';
import { RACE_LAYOUT } from './race.js';

const [name, mode, count] = process.argv.slice(2);
const segment = PosixSharedMemory.open(name!);
const words = new Int32Array(segment.buffer);
const mutex = Mutex.open(segment, RACE_LAYOUT.mutex, { spin: 20 });
const increments = Number(count);

if (mode === 'hold') {
  mutex.lockSync();
  process.stdout.write('holding\n');
  setInterval(() => undefined, 1 << 30);
} else {
  Atomics.add(words, RACE_LAYOUT.ready, 1);
  // Every worker starts at the same moment, so the updates really overlap.
  while (Atomics.load(words, RACE_LAYOUT.go) === 0) { /* spin until the parent says go */ }
  if (mode === 'locked') {
    for (let i = 0; i < increments; i++) {
      mutex.lockSync();
      Atomics.store(words, RACE_LAYOUT.counter, Atomics.load(words, RACE_LAYOUT.counter) + 1);
      mutex.unlock();
    }
  } else {
    // Read, add one, write back: three steps another process can interleave with.
    for (let i = 0; i < increments; i++) {
      Atomics.store(words, RACE_LAYOUT.counter, Atomics.load(words, RACE_LAYOUT.counter) + 1);
    }
  }
  segment.close();
}
