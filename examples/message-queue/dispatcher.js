// Terminal 2: node examples/message-queue/dispatcher.js [/jobs-queue-name]
//
// Queues jobs at different priorities, collects the results by type, then
// tells the worker to stop and removes both queues.
import { PosixMessageQueue, SysvMessageQueue } from 'ipckit';
import { resultsKey } from './shared.js';

const jobsName = process.argv[2] ?? '/ipckit-example-jobs';
const jobs = PosixMessageQueue.openOrCreate(jobsName, { maxMessages: 8, maxMessageSize: 512, codec: 'json' });
const results = SysvMessageQueue.openOrCreate(resultsKey(jobsName), { codec: 'json' });

const work = [
  { id: 1, kind: 'count', text: 'the quick brown fox', priority: 1 },
  { id: 2, kind: 'shout', text: 'server room is on fire', priority: 9 },
  { id: 3, kind: 'count', text: 'jumps over the lazy dog again', priority: 1 },
  { id: 4, kind: 'shout', text: 'coffee is ready', priority: 5 },
];
try {
  for (const { priority, ...job } of work) {
    await jobs.send(job, { priority });
    console.log(`dispatcher: queued job ${job.id} (${job.kind}) at priority ${priority}`);
  }

  // Shouts first (type 2), then counts (type 1): the System V queue lets the
  // receiver choose by type whatever order they arrived in.
  for (const type of [2, 2, 1, 1]) {
    const { data } = await results.receive({ type, timeout: 30_000 });
    console.log(`dispatcher: result of job ${data.id} from worker ${data.worker}: ${JSON.stringify(data.output)}`);
  }

  await jobs.send({ kind: 'stop' });
} finally {
  // Removed whatever happened (a worker that never answered): queues outlive their processes.
  // The worker may still hold them open; its handles keep working until it closes them.
  jobs.close();
  PosixMessageQueue.unlink(jobsName);
  results.remove();
}
console.log('dispatcher: done, queues removed');
