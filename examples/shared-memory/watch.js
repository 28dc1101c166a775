// Terminal 2: node examples/shared-memory/watch.js [/segment-name]
//
// Waits for the board's segment to appear, then sleeps on the "updates"
// semaphore (no polling), reads each update under the Mutex, and
// acknowledges it. Stops at "done".
import { IpcError, Mutex, PosixSharedMemory, Semaphore } from 'ipckit';
import { LAYOUT } from './layout.js';

const name = process.argv[2] ?? '/ipckit-example-board';

async function openWhenReady() {
  for (let attempt = 0; attempt < 300; attempt++) {
    try {
      const shm = PosixSharedMemory.open(name, { size: LAYOUT.size });
      // The board initialises the locks right after creating the segment.
      if (new Int32Array(shm.buffer)[(LAYOUT.acks + 8) / 4] !== 0) return shm;
      shm.close();
    } catch (err) {
      if (!(err instanceof IpcError) || err.code !== 'ENOENT') throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${name} did not appear within 30 s: start the board`);
}

console.log(`watch ${process.pid}: waiting for ${name}`);
const shm = await openWhenReady();
const mutex = Mutex.open(shm, LAYOUT.mutex);
const updates = Semaphore.open(shm, LAYOUT.updates);
const acks = Semaphore.open(shm, LAYOUT.acks);
const words = new Int32Array(shm.buffer);

for (;;) {
  await updates.wait({ timeout: 30_000 });
  const { version, text } = await mutex.withLock(() => ({
    version: words[LAYOUT.version / 4],
    text: shm.read(LAYOUT.text, words[LAYOUT.length / 4]).toString(),
  }));
  console.log(`watch ${process.pid}: update ${version}: ${text}`);
  acks.post();
  if (text === 'done') break;
}
shm.close();
