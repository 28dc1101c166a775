// node examples/channel/batch-consumer.js [/channel-name] [records]
//
// Packed batches through a channel: a child process sends fixed-size binary
// records, a MessageBatch of up to 512 at a time (sendBatch); this process
// takes every record in the ring per call (receiveBatch) into one batch of
// its own, reused, and reads them where they lie in the batch's buffer.
// Native calls copy the records into and out of the ring: no object per
// record on either side. An empty message says the producer is done.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Channel, MessageBatch } from 'ipckit';

const name = process.argv[2] ?? '/ipckit-example-batches';
const records = Number(process.argv[3] ?? 100_000);
const channel = Channel.openOrCreate(name, { capacity: 1 << 20 });
try {
  const producer = spawn(process.execPath, [fileURLToPath(new URL('./batch-producer.js', import.meta.url)), name, String(records)],
    { stdio: ['ignore', 'inherit', 'inherit'] });
  const batch = new MessageBatch({ bytes: 256 * 1024, messages: 16_384 });
  const view = new DataView(batch.data.buffer, batch.data.byteOffset, batch.data.byteLength);
  let count = 0;
  let total = 0n;
  receiving: for (;;) {
    const n = await channel.receiveBatch(batch, { timeout: 30_000 });
    // Every record is 12 bytes: a sequence number (u32) and a value (u64), big-endian.
    let at = 0;
    for (let i = 0; i < n; i++) {
      if (batch.lengths[i] === 0) break receiving;
      if (batch.lengths[i] !== 12 || view.getUint32(at) !== count) throw new Error(`record ${count} is out of order or torn`);
      total += view.getBigUint64(at + 4);
      at += batch.lengths[i];
      count++;
    }
  }
  await new Promise((resolve) => (producer.exitCode === null ? producer.once('exit', resolve) : resolve()));
  const { sent, received } = channel.stats();
  console.log(`consumer ${process.pid}: ${count} records from producer ${producer.pid}, in order (${sent} messages sent, ${received} received)`);
  console.log(`consumer ${process.pid}: total ${total}`);
} finally {
  channel.close();
  Channel.unlink(name);
}
