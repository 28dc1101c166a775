// Terminal 1: node examples/channel/consumer.js [/channel-name]
//
// Opens the channel (creating it if the producer has not yet), receives the
// producer's readings until it says it is done, and removes the channel.
// Each message is a JSON value: the codec encodes and decodes it.
import { Channel } from 'ipckit';

const name = process.argv[2] ?? '/ipckit-example-channel';
const channel = Channel.openOrCreate(name, { capacity: 64 * 1024, maxMessageSize: 1024, codec: 'json' });
try {
  console.log(`consumer ${process.pid}: waiting for readings on ${name}`);
  for (;;) {
    // The first receive makes this process the channel's consumer.
    const { data } = await channel.receive({ timeout: 30_000 });
    if (data.done) break;
    console.log(`consumer ${process.pid}: reading ${data.seq}: ${data.sensor} = ${data.value}`);
  }
  const { sent, received } = channel.stats();
  console.log(`consumer ${process.pid}: the producer is done (${sent} messages sent, ${received} received); removing ${name}`);
} finally {
  // Removed whatever happened: the segment outlives its processes until someone removes it.
  channel.close();
  Channel.unlink(name);
}
