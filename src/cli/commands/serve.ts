/**
 * `ipckit serve <address> --strategy S (--echo | --handler MODULE)`: a
 * server of any strategy, from the shell.
 * @internal
 * @module
 */
import { fileURLToPath } from 'node:url';
import { type Framing, SERVER_STRATEGIES, type ServerStrategy, serve } from '../../server.js';
import { type Leaf, intOption, modeOption, onStopSignals, printJson, usageError } from '../program.js';

const ECHO = fileURLToPath(new URL('../../internal/echo-handler.js', import.meta.url));

export const serveCommand: Leaf = {
  name: 'serve',
  summary: 'serve connections with one of the five strategies (blocking, fork, prefork, poll, event)',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: 'ADDRESS: unix:/path, unix:@name (abstract) or tcp://host:port (port 0: any free port).\n' +
    'Strategies: blocking (one connection at a time: the problem), fork (a process per connection),\n' +
    'prefork (a pool of processes handed connections over a Unix socket), poll (non-blocking sockets visited\n' +
    'every --interval ms), event (readiness notifications; the default).\n' +
    '--echo sends every message back; --handler MODULE serves with the default export of a module,\n' +
    '(data, connection) => reply. Messages are length-prefixed (4-byte big-endian length, then the bytes,\n' +
    'as "ipckit socket send" and connect() speak); --framing requests serves the requests of\n' +
    'MessageSocket.request() (each reply carries its request\'s id; a failing handler answers with ERR_IPC_REMOTE);\n' +
    '--framing bytes serves the raw byte stream (nc, socat).\n' +
    'Once it accepts connections it prints "listening on ADDRESS (strategy S) in pid N", or with --json\n' +
    '{"listening": ADDRESS, "pid", "strategy"}, on stdout. It runs until SIGINT, SIGTERM or SIGHUP: then it\n' +
    'stops accepting, stops its child processes, removes its socket file, prints its counters\n' +
    '({"stopped": {"accepted", "open", "messages", "handlerErrors", "refused", "children", "limit", "timedOut"}}) and exits 0.',
  options: {
    strategy: { type: 'string', value: 'S', description: `${SERVER_STRATEGIES.join('|')} (default event)` },
    echo: { type: 'boolean', description: 'send every message back' },
    handler: { type: 'string', value: 'MODULE', description: 'serve with this module\'s default export' },
    framing: { type: 'string', value: 'F', description: 'message (default), requests or bytes' },
    interval: { type: 'string', value: 'MS', description: 'poll: ms between visits (default 10)' },
    'max-children': { type: 'string', value: 'N', description: 'fork: most children at once (default 64)' },
    workers: { type: 'string', value: 'N', description: 'prefork: children in the pool (default: one per CPU)' },
    'max-message-size': { type: 'string', value: 'BYTES', description: 'largest message a client may send (default 16 MiB)' },
    'frame-timeout': { type: 'string', value: 'MS', description: 'a message begun must arrive whole within MS, or its connection closes (default 30000)' },
    'idle-timeout': { type: 'string', value: 'MS', description: 'close a connection that sends nothing for MS (default: never)' },
    mode: { type: 'string', value: 'OCTAL', description: 'mode of the socket file (default 600)' },
  },
  async run(ctx) {
    const strategy = (ctx.values.strategy ?? 'event') as ServerStrategy;
    if (!SERVER_STRATEGIES.includes(strategy)) throw usageError(`--strategy must be one of ${SERVER_STRATEGIES.join(', ')}; got "${strategy}".`);
    const framing = (ctx.values.framing ?? 'message') as Framing;
    if (framing !== 'message' && framing !== 'requests' && framing !== 'bytes') throw usageError(`--framing must be message, requests or bytes; got "${framing}".`);
    if ((ctx.values.echo === true) === (ctx.values.handler !== undefined)) throw usageError('Give exactly one of --echo and --handler MODULE.');
    const only = (option: string, wanted: ServerStrategy): void => {
      if (ctx.values[option] !== undefined && strategy !== wanted) throw usageError(`--${option} is an option of --strategy ${wanted}.`);
    };
    only('interval', 'poll');
    only('max-children', 'fork');
    only('workers', 'prefork');
    const server = await serve(ctx.positionals[0]!, ctx.values.echo === true ? ECHO : String(ctx.values.handler), {
      strategy,
      framing,
      interval: intOption(ctx, 'interval', 1, 60_000),
      maxChildren: intOption(ctx, 'max-children', 1, 32_768),
      workers: intOption(ctx, 'workers', 1, 1024),
      maxMessageSize: intOption(ctx, 'max-message-size', 0, 2 ** 31 - 1),
      frameTimeout: intOption(ctx, 'frame-timeout', 1, 2 ** 31 - 1),
      idleTimeout: intOption(ctx, 'idle-timeout', 1, 2 ** 31 - 1),
      mode: ctx.values.mode === undefined ? undefined : modeOption(ctx, 0o600),
    });
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => { stop = resolve; });
    const restoreSignals = onStopSignals(() => stop());
    server.on('error', (err: Error) => {
      process.stderr.write(`${(err as { code?: string }).code ?? 'ERR_IPC_INTERNAL'}: ${err.message}\n`);
      process.exitCode = 1;
      stop();
    });
    if (ctx.json) printJson({ listening: server.address, pid: process.pid, strategy });
    else process.stdout.write(`listening on ${server.address} (strategy ${strategy}) in pid ${process.pid}\n`);
    try {
      await stopped;
    } finally {
      const stats = server.stats();
      await server.close();
      restoreSignals();
      if (ctx.json) printJson({ stopped: stats });
      else {
        process.stdout.write(`stopped: ${stats.accepted} connections accepted, ${stats.refused} refused` +
          `${stats.limit === null ? '' : ` (${stats.limit})`}\n`);
      }
    }
  },
};
