// Terminal 2 (and more): node examples/semaphore/worker.js [/printers-name] [jobs] [--crash]
//
// Prints `jobs` jobs: takes a free printer (the named semaphore), writes a
// line to the shared log under the room's lock, taken with SEM_UNDO, then
// gives the printer back and counts the job finished. With --crash the
// worker kills itself with SIGKILL while it holds both the lock and a
// printer: the kernel gives the lock back (undo); nothing gives the
// printer back (a named semaphore has no undo).
import { NamedSemaphore, SemaphoreSet } from 'ipckit';
import { FINISHED, LOG_LOCK, setKey } from './shared.js';

const name = process.argv[2] ?? '/ipckit-example-printers';
const jobs = Number(process.argv[3] ?? 2);
const crash = process.argv.includes('--crash');
const printers = NamedSemaphore.open(name);
const room = SemaphoreSet.open(setKey(name));

for (let job = 1; job <= jobs; job++) {
  await printers.wait({ timeout: 30_000 });
  await room.op({ index: LOG_LOCK, delta: -1, undo: true }, { timeout: 30_000 });
  if (crash) {
    console.log(`worker ${process.pid}: crashing with the log lock and a printer`);
    process.kill(process.pid, 'SIGKILL');
  }
  console.log(`worker ${process.pid}: printing job ${job}`);
  room.opSync({ index: LOG_LOCK, delta: 1, undo: true });
  await new Promise((resolve) => setTimeout(resolve, 50));
  printers.post();
  room.opSync({ index: FINISHED, delta: 1 });
}
console.log(`worker ${process.pid}: done`);
printers.close();
room.close();
