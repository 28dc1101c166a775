/**
 * Signal benchmark: round trips of a real-time signal carrying a value
 * (sigqueue one way, the same value back), for ipckit's listener taken with
 * receiveSync and with receive, beside C doing sigqueue + sigwaitinfo and
 * Node's own process.kill + process.on (a standard signal, with no value).
 */
import { spawn as spawnChild } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { listenForSignals, sendSignal } from '../src/index.js';
import type { BenchContext, Row } from './harness.js';
import { rowsFor } from './harness.js';
import { measureRoundTrips, totalRoundTrips } from './stats.js';

export const mechanism = 'signal';

const RUNNER = fileURLToPath(new URL('./runner.js', import.meta.url));
const PING = 'SIGRTMIN+1';
const PONG = 'SIGRTMIN+2';

type Mode = 'sync' | 'async';

interface Params {
  mode: Mode;
  iterations: number;
  /** The measuring process, for the echo side. */
  client?: number;
}

/** Starts the echo side of `role` and waits for its first signal, which says it is listening. */
function startServer(role: string, p: Params): ReturnType<typeof spawnChild> {
  return spawnChild(process.execPath, [RUNNER, mechanism, role, JSON.stringify({ ...p, client: process.pid })],
    { stdio: ['ignore', 'ignore', 'inherit'] });
}

function exited(child: ReturnType<typeof spawnChild>): Promise<unknown> {
  return child.exitCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve));
}

export const roles = {
  async 'ipckit-client'(p: Params): Promise<void> {
    using pongs = listenForSignals(PONG);
    const server = startServer('ipckit-server', p);
    const hello = await pongs.receive({ timeout: 10_000 });
    const pid = hello.pid!;
    let i = 0;
    await measureRoundTrips(p.iterations, p.mode === 'sync'
      ? () => {
        sendSignal(pid, PING, { value: ++i });
        if (pongs.receiveSync().value !== i) throw new Error('wrong value');
      }
      : async () => {
        sendSignal(pid, PING, { value: ++i });
        if ((await pongs.receive()).value !== i) throw new Error('wrong value');
      });
    await exited(server);
  },

  async 'ipckit-server'(p: Params): Promise<void> {
    using pings = listenForSignals(PING);
    sendSignal(p.client!, PONG, { value: 0 });
    for (let n = totalRoundTrips(p.iterations); n > 0; n--) {
      const info = p.mode === 'sync' ? pings.receiveSync() : await pings.receive();
      sendSignal(p.client!, PONG, { value: info.value! });
    }
  },

  /**
   * Node's own: process.kill and process.on('SIGUSR2'); a standard signal
   * carries no value. A signal listener does not keep Node alive: a timer does.
   */
  async 'node-client'(p: Params): Promise<void> {
    const alive = setInterval(() => undefined, 1 << 30);
    let wake: (() => void) | undefined;
    const onSignal = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    process.on('SIGUSR2', onSignal);
    const next = (): Promise<void> => new Promise((resolve) => { wake = resolve; });
    const hello = next();
    const server = startServer('node-server', p);
    await hello;
    await measureRoundTrips(p.iterations, async () => {
      const reply = next();
      process.kill(server.pid!, 'SIGUSR2');
      await reply;
    });
    process.removeListener('SIGUSR2', onSignal);
    await exited(server);
    clearInterval(alive);
  },

  async 'node-server'(p: Params): Promise<void> {
    const alive = setInterval(() => undefined, 1 << 30);
    let left = totalRoundTrips(p.iterations);
    await new Promise<void>((resolve) => {
      const onSignal = (): void => {
        process.kill(p.client!, 'SIGUSR2');
        if (--left === 0) {
          process.removeListener('SIGUSR2', onSignal);
          resolve();
        }
      };
      process.on('SIGUSR2', onSignal);
      process.kill(p.client!, 'SIGUSR2');
    });
    clearInterval(alive);
  },
};

export async function measure(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const iterations = ctx.rttIterations;
  const c = await ctx.runPair(undefined, [ctx.cProgram('signal'), 'rtt', String(iterations)]);
  rows.push(...rowsFor(mechanism, 'C sigqueue+sigwaitinfo', ctx.placement, c, null, null));
  for (const mode of ['sync', 'async'] as const) {
    const m = await ctx.runPair(undefined, ctx.nodeRole(mechanism, 'ipckit-client', { mode, iterations }));
    rows.push(...rowsFor(mechanism, `ipckit listener ${mode}`, ctx.placement, m, 'C sigqueue+sigwaitinfo', c));
  }
  const node = await ctx.runPair(undefined, ctx.nodeRole(mechanism, 'node-client', { mode: 'async', iterations }));
  rows.push(...rowsFor(mechanism, 'node process.kill/on', ctx.placement, node, 'C sigqueue+sigwaitinfo', c));
  return rows;
}
