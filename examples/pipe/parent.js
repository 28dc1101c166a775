// node examples/pipe/parent.js [workers]
//
// Makes one pipe and hands its write end to several child processes
// (fan-in). Each child sends JSON records (a codec over length-prefixed
// frames); the parent receives whole records, whatever the interleaving,
// until every child has closed.
import { fileURLToPath } from 'node:url';
import { pipe, spawn } from 'ipckit';

const workers = Number(process.argv[2] ?? 3);
const { readEnd, writeEnd } = pipe({ codec: 'json' });
const child = fileURLToPath(new URL('./child.js', import.meta.url));
const children = Array.from({ length: workers }, (_, i) =>
  spawn(process.execPath, [child, String(i + 1)], { fds: { 3: writeEnd }, stdio: ['ignore', 'inherit', 'inherit'] }));
console.log(`parent ${process.pid}: started ${children.map((c) => c.pid).join(', ')}, each writing into fd 3`);
// The children have their own copies. Closing ours lets the read end see
// the end of the data once they are all done.
writeEnd.close();

const totals = new Map();
for await (const record of readEnd) {
  totals.set(record.worker, (totals.get(record.worker) ?? 0) + record.value);
}
readEnd.close();
for (const [worker, total] of [...totals].sort((a, b) => a[0] - b[0])) {
  console.log(`parent ${process.pid}: worker ${worker} sent a total of ${total}`);
}
