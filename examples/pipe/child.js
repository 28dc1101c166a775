// A worker of parent.js: it inherited the pipe's write end as fd 3.
import { PipeWriteEnd } from 'ipckit';

const worker = Number(process.argv[2]);
const out = PipeWriteEnd.fromFd(3);
for (let i = 1; i <= 100; i++) {
  // Each record is one write of well under PIPE_BUF bytes: never torn apart by the other workers' records.
  out.writeMessageSync(Buffer.from(JSON.stringify({ worker, value: i * worker })));
}
out.close();
