// Terminal 2: node examples/fifo/writer.js [path]
//
// Waits for a reader on the FIFO, then writes a few lines, one per 100 ms.
import { Fifo } from 'ipckit';

const path = process.argv[2] ?? '/tmp/ipckit-example-fifo';
const end = await Fifo.openWrite(path, { timeout: 30_000 });
console.log(`writer ${process.pid}: a reader is there`);
for (const line of ['hello through a named pipe', 'the kernel keeps the order', 'goodbye']) {
  await end.write(Buffer.from(`${line}\n`));
  await new Promise((resolve) => setTimeout(resolve, 100));
}
end.close();
console.log(`writer ${process.pid}: done`);
