// Terminal 1: node examples/channel/consumer.js [/channel-name]
//
// Opens the channel (creating it if the producer has not yet), receives the
// producer's readings until it says it is done, and removes the channel.
// Each message is a JSON value: the codec encodes and decodes it.
//
// It waits with a Poller on two things at once: the channel (readable when
// a reading is there) and SIGINT/SIGTERM (Ctrl-C stops it cleanly).
import { Channel, Poller, listenForSignals } from 'ipckit';

const name = process.argv[2] ?? '/ipckit-example-channel';
const channel = Channel.openOrCreate(name, { capacity: 64 * 1024, maxMessageSize: 1024, codec: 'json' });
const signals = listenForSignals(['SIGINT', 'SIGTERM']);
// Waiting for the channel to be readable makes this process its consumer.
const poller = new Poller().add(channel).add(signals);
try {
  console.log(`consumer ${process.pid}: waiting for readings on ${name}`);
  wait: for (;;) {
    for (const { object } of await poller.wait({ timeout: 30_000 })) {
      if (object === signals) {
        console.log(`consumer ${process.pid}: stopped by ${signals.tryReceive()?.signal}`);
        break wait;
      }
      // Readiness says "look": take every reading there is now.
      for (let m = channel.tryReceive(); m !== undefined; m = channel.tryReceive()) {
        if (m.data.done) {
          const { sent, received } = channel.stats();
          console.log(`consumer ${process.pid}: the producer is done (${sent} messages sent, ${received} received); removing ${name}`);
          break wait;
        }
        console.log(`consumer ${process.pid}: reading ${m.data.seq}: ${m.data.sensor} = ${m.data.value}`);
      }
    }
  }
} finally {
  // Removed whatever happened: the segment outlives its processes until someone removes it.
  poller.close();
  signals.close();
  channel.close();
  Channel.unlink(name);
}
