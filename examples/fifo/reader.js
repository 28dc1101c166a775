// Terminal 1: node examples/fifo/reader.js [path]
//
// Creates a FIFO (if needed), waits for a writer without tying up a thread,
// and prints each line that arrives until the writers are done.
import { Fifo } from 'ipckit';
import { existsSync } from 'node:fs';

const path = process.argv[2] ?? '/tmp/ipckit-example-fifo';
if (!existsSync(path)) Fifo.create(path, { mode: 0o600 });
try {
  console.log(`reader ${process.pid}: waiting for a writer on ${path}`);
  const end = await Fifo.openRead(path);
  let pending = '';
  for await (const chunk of end) {
    pending += chunk.toString();
    for (let i = pending.indexOf('\n'); i >= 0; i = pending.indexOf('\n')) {
      console.log(`reader ${process.pid}: ${pending.slice(0, i)}`);
      pending = pending.slice(i + 1);
    }
  }
  console.log(`reader ${process.pid}: the writers are done; removing ${path}`);
  end.close();
} finally {
  // Removed whatever happened: the path stays until someone removes it.
  Fifo.unlink(path);
}
