// The sender of batch-parent.js: it inherited the pipe's write end as fd 3.
import { MessageBatch, PipeWriteEnd } from 'ipckit';

const records = Number(process.argv[2]);
const out = PipeWriteEnd.fromFd(3);
const batch = new MessageBatch({ bytes: 12 * 1000, messages: 1000 });
const record = Buffer.alloc(12);
for (let seq = 0; seq < records;) {
  batch.clear();
  for (; seq < records && batch.count < 1000; seq++) {
    record.writeUInt32BE(seq, 0);
    record.writeBigUInt64BE(BigInt(seq) * 3n, 4);
    batch.push(record);
  }
  out.sendBatchSync(batch);   // all of them, waiting while the pipe is full
}
out.close();
