// A worker of parent.js: it inherited the pipe's write end as fd 3.
import { PipeWriteEnd } from 'ipckit';

const worker = Number(process.argv[2]);
const out = PipeWriteEnd.fromFd(3, { codec: 'json' });
for (let i = 1; i <= 100; i++) {
  // Each record is one frame of well under PIPE_BUF bytes, written in one
  // write: never torn apart by the other workers' records.
  out.sendSync({ worker, value: i * worker });
}
out.close();
