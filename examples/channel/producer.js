// Terminal 2: node examples/channel/producer.js [/channel-name] [readings]
//
// Opens the channel (creating it if the consumer has not yet) and sends a
// number of sensor readings, then a last message that says it is done. A
// send waits only while the ring is full.
import { Channel } from 'ipckit';

const name = process.argv[2] ?? '/ipckit-example-channel';
const count = Number(process.argv[3] ?? 10);
const channel = Channel.openOrCreate(name, { capacity: 64 * 1024, maxMessageSize: 1024, codec: 'json' });
try {
  console.log(`producer ${process.pid}: sending ${count} readings on ${name}`);
  for (let seq = 1; seq <= count; seq++) {
    // The first send makes this process the channel's producer.
    await channel.send({ seq, sensor: ['boiler', 'intake', 'exhaust'][seq % 3], value: 20 + seq / 2 }, { timeout: 30_000 });
  }
  await channel.send({ done: true }, { timeout: 30_000 });
  console.log(`producer ${process.pid}: done`);
} finally {
  // Gives the producer role back; what was sent stays in the ring for the consumer.
  channel.close();
}
