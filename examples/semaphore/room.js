// Terminal 1: node examples/semaphore/room.js [/printers-name] [jobs]
//
// Opens a printing room: a POSIX named semaphore counts the free printers
// (two), and a System V set holds the lock on the shared log and counts
// finished jobs. Waits until `jobs` jobs are finished, reports what is left
// and removes both.
import { NamedSemaphore, SemaphoreSet } from 'ipckit';
import { FINISHED, LOG_LOCK, setKey } from './shared.js';

const name = process.argv[2] ?? '/ipckit-example-printers';
const jobs = Number(process.argv[3] ?? 4);
const printers = NamedSemaphore.create(name, { value: 2 });
const room = SemaphoreSet.create(setKey(name), { count: 2, value: [1, 0] });
try {
  console.log(`room ${process.pid}: 2 printers free, waiting for ${jobs} jobs`);
  // One atomic operation takes all the finished-job units at once.
  await room.op({ index: FINISHED, delta: -jobs }, { timeout: 30_000 });
  console.log(`room ${process.pid}: ${jobs} jobs finished`);
  console.log(`room ${process.pid}: log lock ${room.getValue(LOG_LOCK) === 1 ? 'free' : 'taken'}, ` +
    `printers free: ${printers.value} of 2`);
} finally {
  // Kernel semaphores outlive their processes: removed whatever happened.
  printers.close();
  NamedSemaphore.unlink(name);
  room.remove();
  console.log(`room ${process.pid}: semaphores removed`);
}
