/**
 * Entry point of a benchmark child process:
 * `node runner.js <mechanism> <role> <json params>`.
 */
import * as messageQueue from './message-queue.js';
import * as sharedMemory from './shared-memory.js';
import * as pipeBench from './pipe.js';
import * as signalBench from './signal.js';
import * as socketBench from './socket.js';
import * as channelBench from './channel.js';
import * as semaphoreBench from './semaphore.js';
import * as natsBench from './nats.js';

/** The roles a mechanism's benchmark runs in child processes. */
export type Roles = Record<string, (params: any) => Promise<void>>;

const ROLES: Record<string, Roles> = {
  [messageQueue.mechanism]: messageQueue.roles,
  [sharedMemory.mechanism]: sharedMemory.roles,
  [pipeBench.mechanism]: pipeBench.roles,
  [signalBench.mechanism]: signalBench.roles,
  [socketBench.mechanism]: socketBench.roles,
  [channelBench.mechanism]: channelBench.roles,
  [semaphoreBench.mechanism]: semaphoreBench.roles,
  [natsBench.mechanism]: natsBench.roles,
};

const [mechanism, role, params] = process.argv.slice(2);
const run = ROLES[mechanism!]?.[role!];
if (run === undefined) {
  process.stderr.write(`unknown benchmark role ${mechanism} ${role}\n`);
  process.exit(2);
}
await run(JSON.parse(params ?? '{}'));
