#!/usr/bin/env node
/**
 * The `ipckit` command: `ipckit <noun> <verb> [options]`.
 * Exit status: 0 ok, 1 the operation failed (`CODE: message` on stderr), 2 usage.
 * @module
 */
import { benchCommand, benchInCheckout } from './commands/bench.js';
import { channelCommand } from './commands/channel.js';
import { demoCommand } from './commands/demo.js';
import { lsCommand, rmCommand } from './commands/ls.js';
import { mqCommand } from './commands/mq.js';
import { fifoCommand, pipeCommand } from './commands/pipe.js';
import { shmCommand } from './commands/shm.js';
import { signalCommand } from './commands/signal.js';
import { semCommand } from './commands/sem.js';
import { serveCommand } from './commands/serve.js';
import { socketCommand } from './commands/socket.js';
import { tourCommand } from './commands/tour.js';
import { watchCommand } from './commands/watch.js';
import { type Group, runCommandLine } from './program.js';

const root: Group = {
  name: 'ipckit',
  summary: 'Every IPC mechanism of the Linux kernel, from the shell.',
  details: 'Every command takes --help and --json; ipckit --version prints the version. Exit status: 0 ok, 1 the operation failed\n' +
    '(the error code and message are printed on stderr), 2 the command line was not understood.',
  children: [mqCommand, shmCommand, semCommand, channelCommand, pipeCommand, fifoCommand, signalCommand, socketCommand, serveCommand, lsCommand, watchCommand, rmCommand, tourCommand, demoCommand,
    ...(benchInCheckout() ? [benchCommand] : [])],
};

process.exitCode = await runCommandLine(root, process.argv.slice(2), 'ipckit');
