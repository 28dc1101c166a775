/**
 * `ipckit bench`: runs the benchmark harness of a source checkout, or one
 * run of its connections benchmark (`ipckit bench connections --strategy S
 * --connections N --duration SEC`).
 * @internal
 * @module
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { IpcError } from '../../errors.js';
import type * as Connections from '../../../bench/connections.js';
import { type CommandContext, type Leaf, intOption, printJson, usageError } from '../program.js';

const HARNESS = fileURLToPath(new URL('../../../bench/harness.js', import.meta.url));
const CONNECTIONS = new URL('../../../bench/connections.js', import.meta.url);

const CHECKOUT_ONLY = 'The benchmark harness ships with the source checkout only: clone the repository, run "npm ci", then "npm run bench".';
const STRATEGIES = ['net', 'blocking', 'poll', 'event', 'fork', 'prefork'] as const;
/** The options of one connections run; any of them makes the command line one. */
const RUN_OPTIONS = ['strategy', 'connections', 'duration', 'rate', 'size', 'transport', 'workers', 'max-children', 'interval'];

/** A positive number option (decimals allowed), or `fallback`. */
function numberOption(ctx: CommandContext, name: string, max: number, fallback?: number): number | undefined {
  const raw = ctx.values[name];
  if (raw === undefined) return fallback;
  const text = String(raw);
  const value = /^[0-9]+(\.[0-9]+)?$/.test(text) ? Number(text) : NaN;
  if (!(value > 0 && value <= max)) throw usageError(`--${name} must be a number above 0 and at most ${max}; got "${text}".`);
  return value;
}

/** The options of `ipckit bench connections --strategy S ...`, checked. */
function connectionsOptions(ctx: CommandContext): Connections.ConnectionsOptions {
  const usage = 'Run "ipckit bench --help".';
  if (ctx.positionals.length !== 1 || ctx.positionals[0] !== 'connections') {
    throw usageError(`--${RUN_OPTIONS.find((o) => ctx.values[o] !== undefined)} belongs to "ipckit bench connections --strategy S ..." alone. ${usage}`);
  }
  if (ctx.values.quick) throw usageError(`--quick is for the harness; a connections run takes --duration. ${usage}`);
  const strategy = ctx.values.strategy;
  if (strategy === undefined) throw usageError(`"ipckit bench connections" with options needs --strategy (${STRATEGIES.join('|')}); without options it runs the harness over every strategy. ${usage}`);
  if (!(STRATEGIES as readonly unknown[]).includes(strategy)) throw usageError(`--strategy must be one of ${STRATEGIES.join(', ')}; got "${String(strategy)}".`);
  for (const required of ['connections', 'duration']) {
    if (ctx.values[required] === undefined) throw usageError(`ipckit bench connections needs --${required}. ${usage}`);
  }
  const transport = ctx.values.transport ?? 'unix';
  if (transport !== 'unix' && transport !== 'tcp') throw usageError(`--transport must be unix or tcp; got "${String(transport)}".`);
  const serverOptions = ['workers', 'max-children', 'interval'].filter((o) => ctx.values[o] !== undefined);
  if (strategy === 'net' && serverOptions.length > 0) {
    throw usageError(`--${serverOptions[0]} is an option of "ipckit serve"; the net reference takes none.`);
  }
  const options: Connections.ConnectionsOptions = {
    strategy: strategy as Connections.Strategy,
    connections: intOption(ctx, 'connections', 1, 100_000)!,
    durationSeconds: numberOption(ctx, 'duration', 3600)!,
    rate: numberOption(ctx, 'rate', 1000, 1)!, // a connection's timer fires at most every ms
    size: intOption(ctx, 'size', 1, 1 << 20, 64)!,
    transport,
  };
  const workers = intOption(ctx, 'workers', 1, 1024);
  const maxChildren = intOption(ctx, 'max-children', 1, 100_000);
  const intervalMs = intOption(ctx, 'interval', 0, 60_000);
  if (workers !== undefined) options.workers = workers;
  if (maxChildren !== undefined) options.maxChildren = maxChildren;
  if (intervalMs !== undefined) options.intervalMs = intervalMs;
  return options;
}

async function runConnections(ctx: CommandContext): Promise<void> {
  const options = connectionsOptions(ctx);
  if (!existsSync(fileURLToPath(CONNECTIONS))) throw new IpcError('ERR_IPC_USAGE', CHECKOUT_ONLY);
  const bench = await import(CONNECTIONS.href) as typeof Connections;
  if (!ctx.json) options.progress = (line) => process.stderr.write(`${line}\n`);
  let report: Connections.ConnectionsReport;
  try {
    report = await bench.runConnections(options);
  } catch (err) {
    if (err instanceof bench.RunFailure) {
      throw new IpcError(err.kind === 'usage' ? 'ERR_IPC_USAGE' : err.kind === 'interrupted' ? 'ERR_IPC_ABORTED' : 'ERR_IPC_PEER_FAILED', err.message);
    }
    throw err;
  }
  if (ctx.json) printJson(report);
  else process.stdout.write(`${bench.formatReport(report)}\n`);
}

/** Whether the benchmark harness is here: in a source checkout, not in the published package, which does not offer the command. */
export function benchInCheckout(): boolean {
  return existsSync(HARNESS);
}

export const benchCommand: Leaf = {
  name: 'bench',
  summary: 'measure every mechanism against a C reference and the Node built-in',
  args: '[mechanism...]',
  minArgs: 0,
  maxArgs: 32,
  details: 'The same as "npm run bench -- [mechanism...]" in a checkout; prints ratios and writes bench/results/latest.json.\n' +
    '"connections" loads every "ipckit serve" strategy beside a Node net echo server (N = 1, 10, 100; more with\n' +
    'IPCKIT_BENCH_CONNECTIONS=1,10,100,1000,10000).\n\n' +
    'One connections run: ipckit bench connections --strategy S --connections N --duration SEC\n' +
    '  [--rate R] [--size BYTES] [--transport unix|tcp] [--workers N] [--max-children N] [--interval MS]\n' +
    'starts the server, opens N connections from load processes of their own, each sending SIZE bytes\n' +
    'R times a second and checking the echo, and reports latency, requests, errors, the server\'s memory\n' +
    'per connection and CPU time.',
  options: {
    quick: { type: 'boolean', description: 'fewer iterations (a smoke run, not for figures)' },
    strategy: { type: 'string', value: 'S', description: `connections run: the server strategy (${STRATEGIES.join('|')}; net: a Node net echo server)` },
    connections: { type: 'string', value: 'N', description: 'connections run: concurrent connections' },
    duration: { type: 'string', value: 'SEC', description: 'connections run: seconds measured once all connections are up' },
    rate: { type: 'string', value: 'R', description: 'connections run: requests per connection per second (default 1)' },
    size: { type: 'string', value: 'BYTES', description: 'connections run: request size (default 64)' },
    transport: { type: 'string', value: 'unix|tcp', description: 'connections run: Unix socket (default) or TCP on 127.0.0.1' },
    workers: { type: 'string', value: 'N', description: 'connections run: passed to "ipckit serve" (prefork)' },
    'max-children': { type: 'string', value: 'N', description: 'connections run: passed to "ipckit serve" (fork)' },
    interval: { type: 'string', value: 'MS', description: 'connections run: passed to "ipckit serve"' },
  },
  async run(ctx) {
    if (RUN_OPTIONS.some((o) => ctx.values[o] !== undefined)) {
      await runConnections(ctx);
      return;
    }
    if (!existsSync(HARNESS)) throw new IpcError('ERR_IPC_USAGE', CHECKOUT_ONLY);
    const args = [HARNESS, ...ctx.positionals, ...(ctx.values.quick ? ['--quick'] : []), ...(ctx.json ? ['--json'] : [])];
    const code = await new Promise<number>((resolve, reject) => {
      spawn(process.execPath, args, { stdio: 'inherit' }).on('error', reject).on('close', (c) => resolve(c ?? 1));
    });
    process.exitCode = code;
  },
};
