// Started by batch-consumer.js: node examples/channel/batch-producer.js /channel-name records
//
// Packs `records` binary records into a MessageBatch, up to 512 at a time,
// and sends each batch with one call; a batch the ring has no room for yet
// waits (only what did not go is sent again). An empty message ends it.
import { Channel, MessageBatch } from 'ipckit';

const [name, records] = [process.argv[2], Number(process.argv[3])];
const channel = Channel.open(name);
try {
  const batch = new MessageBatch({ bytes: 512 * 12, messages: 512 });
  const record = Buffer.alloc(12);
  for (let seq = 0; seq < records;) {
    batch.clear();
    for (let i = 0; i < 512 && seq + i < records; i++) {
      record.writeUInt32BE(seq + i, 0);
      record.writeBigUInt64BE(BigInt(seq + i) * 3n, 4);
      batch.push(record);
    }
    // All of them, waiting for room as the consumer drains the ring.
    seq += await channel.sendBatch(batch, { timeout: 30_000 });
  }
  await channel.send(Buffer.alloc(0), { timeout: 30_000 });
} finally {
  channel.close();
}
