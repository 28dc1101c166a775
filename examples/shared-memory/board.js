// Terminal 1: node examples/shared-memory/board.js [/segment-name] [updates]
//
// Publishes a status line in shared memory, one update at a time: it writes
// under the segment's Mutex, posts the "updates" semaphore, and waits for the
// watcher's acknowledgement before the next update.
import { Mutex, PosixSharedMemory, Semaphore } from 'ipckit';
import { LAYOUT } from './layout.js';

const name = process.argv[2] ?? '/ipckit-example-board';
const count = Number(process.argv[3] ?? 10);
const shm = PosixSharedMemory.create(name, { size: LAYOUT.size });
try {
  const mutex = Mutex.create(shm, LAYOUT.mutex);
  const updates = Semaphore.create(shm, LAYOUT.updates);
  const acks = Semaphore.create(shm, LAYOUT.acks);
  const words = new Int32Array(shm.buffer);
  console.log(`board ${process.pid}: publishing ${count} updates in ${name}`);

  for (let i = 1; i <= count; i++) {
    const text = i === count ? 'done' : `status ${i}: ${['green', 'amber', 'red'][i % 3]} at ${new Date().toISOString()}`;
    await mutex.withLock(() => {
      const bytes = Buffer.from(text);
      shm.write(bytes, LAYOUT.text);
      words[LAYOUT.length / 4] = bytes.length;
      words[LAYOUT.version / 4] = i;
    });
    updates.post();
    await acks.wait({ timeout: 30_000 });
  }
  console.log(`board ${process.pid}: every update was read; removing ${name}`);
} finally {
  // Removed whatever happened (a watcher that never came): a segment outlives its processes.
  shm.close();
  PosixSharedMemory.unlink(name);
}
