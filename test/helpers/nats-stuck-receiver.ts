/**
 * A receiver that takes a message and dies before handing it over: its
 * codec's decode prints "fetched" and then never returns (the process is
 * SIGKILLed there), so the message is fetched but never acknowledged.
 * Usage: node nats-stuck-receiver.js ADDRESS
 */
import { NatsMailbox } from '../../src/index.js';

const box = await NatsMailbox.open(process.argv[2]!, {
  codec: {
    decode: (bytes: Buffer): string => {
      process.stdout.write(`fetched ${bytes.length}\n`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      return bytes.toString();
    },
    encode: (text: string) => Buffer.from(text),
  },
});
await box.receive({ timeout: 20_000 });
