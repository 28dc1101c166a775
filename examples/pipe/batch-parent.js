// node examples/pipe/batch-parent.js [records]
//
// Packed batches: a child sends fixed-size binary records through a pipe,
// a MessageBatch of up to 1,000 at a time (sendBatchSync); the parent takes
// every whole record there per call (receiveBatch) into one batch of its
// own, reused, and reads the records where they lie in the batch's buffer:
// no object per record on either side.
import { fileURLToPath } from 'node:url';
import { MessageBatch, pipe, spawn } from 'ipckit';

const records = Number(process.argv[2] ?? 100_000);
const { readEnd, writeEnd } = pipe();
const child = fileURLToPath(new URL('./batch-child.js', import.meta.url));
const sender = spawn(process.execPath, [child, String(records)], { fds: { 3: writeEnd }, stdio: ['ignore', 'inherit', 'inherit'] });
writeEnd.close();

const batch = new MessageBatch({ bytes: 1 << 20, messages: 16_384 });
const view = new DataView(batch.data.buffer, batch.data.byteOffset, batch.data.byteLength);
let count = 0;
let total = 0n;
for (;;) {
  const n = await readEnd.receiveBatch(batch);
  if (n === null) break;
  // Every record is 12 bytes: a sequence number (u32) and a value (u64), big-endian.
  let at = 0;
  for (let i = 0; i < n; i++) {
    if (batch.lengths[i] !== 12 || view.getUint32(at) !== count + i) throw new Error(`record ${count + i} is out of order or torn`);
    total += view.getBigUint64(at + 4);
    at += batch.lengths[i];
  }
  count += n;
}
readEnd.close();
await new Promise((resolve) => (sender.exitCode === null ? sender.once('exit', resolve) : resolve()));
console.log(`parent ${process.pid}: ${count} records from child ${sender.pid}, in order`);
console.log(`parent ${process.pid}: total ${total}`);
