// Terminal 1: node examples/message-queue/worker.js [/jobs-queue-name]
//
// Takes jobs from a POSIX message queue (urgent ones first: the kernel
// orders them by priority) and reports each result on a System V queue,
// typed by job kind so the dispatcher can pick what it wants.
import { PosixMessageQueue, SysvMessageQueue } from 'ipckit';
import { resultsKey } from './shared.js';

const jobsName = process.argv[2] ?? '/ipckit-example-jobs';
const jobs = PosixMessageQueue.openOrCreate(jobsName, { maxMessages: 8, maxMessageSize: 512, codec: 'json' });
const results = SysvMessageQueue.openOrCreate(resultsKey(jobsName), { codec: 'json' });
console.log(`worker ${process.pid}: waiting for jobs on ${jobsName}`);

for await (const { data: job, priority } of jobs) {
  if (job.kind === 'stop') break;
  // Pretend the work takes a while, so jobs pile up in the queue.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const output = job.kind === 'shout' ? job.text.toUpperCase() : job.text.split(/\s+/).length;
  console.log(`worker ${process.pid}: job ${job.id} (${job.kind}, priority ${priority}) -> ${JSON.stringify(output)}`);
  // Type 1 carries word counts, type 2 shouted text.
  await results.send(job.kind === 'count' ? 1 : 2, { id: job.id, output, worker: process.pid });
}
console.log(`worker ${process.pid}: stopping`);
jobs.close();
results.close();
