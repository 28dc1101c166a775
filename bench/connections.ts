/**
 * The connections benchmark: how a concurrent-connection server holds up
 * under N connections each sending a small request every 1/R s.
 *
 * One run ({@link runConnections}; `ipckit bench connections --strategy S
 * --connections N --duration SEC`) starts the server under test as a process
 * of its own (`ipckit serve <address> --strategy S --echo --framing bytes
 * --json`, or bench/net-echo.ts for the reference strategy `net`), waits for
 * its ready line, reads its idle memory, and starts load-generating
 * processes (bench/connections-client.ts, one per 2,500 connections) that
 * ramp the connections in. Once all are up (or failed), it measures for the
 * duration: latency from write to full echo, requests answered, errors, the
 * peak resident memory of the server and all its descendants, and their CPU
 * time. Then it stops the clients, sends the server SIGTERM (SIGKILL after
 * 10 s, reported) and removes the socket directory.
 *
 * In the harness (`npm run bench -- connections`) every strategy is measured
 * beside `net` at N = 1, 10, 100 (`--quick`: 1, 10, shorter);
 * IPCKIT_BENCH_CONNECTIONS=1,10,100,1000,10000 sets the sizes,
 * IPCKIT_BENCH_CONNECTIONS_DURATION the seconds of each run and
 * IPCKIT_BENCH_CONNECTIONS_TRANSPORT=tcp the transport.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ClientParams, ClientReady, ClientResult, FailureKind } from './connections-client.js';
import { bucketValue } from './connections-client.js';
import type { BenchContext, Metric, Placement, Row } from './harness.js';

export const mechanism = 'connections';
/** One placement: pinning a server and its load to one CPU measures nothing useful here. */
export const placements: Placement[] = ['unpinned'];

export const STRATEGIES = ['net', 'blocking', 'poll', 'event', 'fork', 'prefork'] as const;
export type Strategy = typeof STRATEGIES[number];
export type Transport = 'unix' | 'tcp';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const NET_ECHO = fileURLToPath(new URL('./net-echo.js', import.meta.url));
const CLIENT = fileURLToPath(new URL('./connections-client.js', import.meta.url));

/** Connections per load-generating process. */
const PER_CLIENT = 2_500;
/** Requests per second one load-generating process is given at most. */
const RATE_PER_CLIENT = 20_000;
const CONNECT_CONCURRENCY = 100;
const CONNECT_TIMEOUT_MS = 10_000;
const ANSWER_TIMEOUT_MS = 5_000;
const READY_TIMEOUT_MS = 20_000;
const TERM_GRACE_MS = 10_000;
const SAMPLE_MS = 500;
/** Time the server is given to settle before its idle memory is read. */
const SETTLE_MS = 300;
const STDERR_KEPT = 4_000;

export interface ConnectionsOptions {
  strategy: Strategy;
  connections: number;
  durationSeconds: number;
  /** Requests per connection per second. */
  rate: number;
  /** Request size in bytes. */
  size: number;
  transport: Transport;
  /** Passed on to `ipckit serve`. */
  workers?: number;
  maxChildren?: number;
  intervalMs?: number;
  /** Progress lines (stderr in the command). */
  progress?: (line: string) => void;
}

export interface ConnectionsReport {
  strategy: Strategy;
  transport: Transport;
  connections: number;
  durationSeconds: number;
  rate: number;
  size: number;
  /** Connections that connected at all. */
  opened: number;
  /** Connections open at the end with every request answered. */
  sustained: number;
  /** Requests sent in the window and answered in full. */
  requests: number;
  /** Requests sent in the window. */
  sent: number;
  /** Failed connects, resets, unexpected EOFs, unanswered requests (5 s) and wrong echoes, over the whole run. */
  errors: number;
  connectFailures: number;
  failures: Record<FailureKind, number>;
  requestsPerSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** Server tree (the server and every descendant) VmRSS, ready and idle. */
  serverIdleRssBytes: number;
  /** Peak server tree VmRSS during the window. */
  serverRssBytes: number;
  memoryPerConnectionBytes: number | null;
  /**
   * Server tree memory private to its processes (smaps_rollup Private_Clean + Private_Dirty) at the end of
   * the window, idle, and its growth per sustained connection: unlike summed RSS, a forked child's shared
   * pages (the Node binary, the parent's heap) are not counted once per child.
   */
  serverPrivateBytes: number | null;
  serverIdlePrivateBytes: number | null;
  privatePerConnectionBytes: number | null;
  /** Most server processes seen at once. */
  serverProcesses: number;
  /** Server tree CPU time (user + system, reaped children included) over the window; null if the server died in it. */
  cpuSeconds: number | null;
  clientProcesses: number;
  rampMs: number;
  /**
   * How the server stopped: after SIGTERM (`killed`: SIGKILLed 10 s later), or `duringRun` on its own;
   * `leftoverProcesses`: descendants still running after it exited (killed).
   */
  serverExit: { code: number | null; signal: string | null; killed: boolean; duringRun: boolean; ms: number; leftoverProcesses: number };
  /** What `ipckit serve` printed as it stopped: {"accepted", "open", "messages", "refused", "limit", ...}. */
  serverCounters?: unknown;
  /** Why not every connection was sustained, when so. */
  limit?: string;
  firstErrors: string[];
}

// ---- the server's process tree ----------------------------------------------------------

interface ProcInfo {
  pid: number;
  ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks. */
  ticks: number;
  /** Start time since boot, in clock ticks: with the pid, names a process across pid reuse. */
  start: number;
}

let clockTicks: number | undefined;

function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number.parseInt(out.stdout ?? '', 10);
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

function readProc(pid: number): ProcInfo | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name, in parentheses, may hold spaces and parentheses: the fields follow the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): ppid is field 4, utime..cstime 14..17, starttime 22.
  const at = (field: number): number => Number(fields[field - 3]);
  return { pid, ppid: at(4), ticks: at(14) + at(15) + at(16) + at(17), start: at(22) };
}

/** `root` and every descendant of it, from one pass over /proc. */
function processTree(root: number): ProcInfo[] {
  const children = new Map<number, ProcInfo[]>();
  let rootInfo: ProcInfo | undefined;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = readProc(Number(name));
    if (info === undefined) continue;
    if (info.pid === root) rootInfo = info;
    const siblings = children.get(info.ppid);
    if (siblings) siblings.push(info);
    else children.set(info.ppid, [info]);
  }
  if (rootInfo === undefined) return [];
  const tree = [rootInfo];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!.pid) ?? []));
  return tree;
}

/** The value of `key` in /proc text of `key: value kB` lines, in bytes (0 when absent). */
function kbOf(text: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : 0;
}

/** The value in kB of `key` in a /proc file, in bytes (0 if the process is gone). */
function procKb(file: string, key: string): number {
  try {
    return kbOf(readFileSync(file, 'utf8'), key);
  } catch {
    return 0;
  }
}

interface Memory { rss: number; private: number | null; processes: number; tree: ProcInfo[] }

/** The server tree's summed VmRSS, and with `withPrivate` its private memory (smaps_rollup is slower to read). */
function treeMemory(root: number, withPrivate: boolean): Memory {
  const tree = processTree(root);
  let rss = 0;
  let own: number | null = withPrivate ? 0 : null;
  for (const p of tree) {
    rss += procKb(`/proc/${p.pid}/status`, 'VmRSS');
    if (own !== null) {
      let text = '';
      try {
        text = readFileSync(`/proc/${p.pid}/smaps_rollup`, 'utf8');
      } catch {
        // gone, or no smaps_rollup (before Linux 4.14)
      }
      own += kbOf(text, 'Private_Clean') + kbOf(text, 'Private_Dirty');
    }
  }
  return { rss, private: own === 0 ? null : own, processes: tree.length, tree };
}

function treeCpuSeconds(root: number): number {
  return processTree(root).reduce((sum, p) => sum + p.ticks, 0) / ticksPerSecond();
}

/** SIGKILLs the processes of `tree` that are still the same processes. */
function killAll(tree: ProcInfo[]): number {
  let killed = 0;
  for (const p of tree) {
    if (readProc(p.pid)?.start !== p.start) continue;
    try {
      process.kill(p.pid, 'SIGKILL');
      killed++;
    } catch {
      // gone meanwhile
    }
  }
  return killed;
}

// ---- processes -----------------------------------------------------------------------------

/** Whether this build has `ipckit serve` (another engineer's command; it may not be built yet). */
/** The last few thousand characters a stream wrote. */
function tail(stream: NodeJS.ReadableStream | null): () => string {
  let text = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    text = (text + chunk).slice(-STDERR_KEPT);
  });
  return () => text.trim();
}

/**
 * How a process ended. `event` 'exit' is when it ended; 'close' is once its
 * output is read to the end as well (for a process whose last line matters;
 * not for a server, whose children may hold its stdout open).
 */
function exitOf(child: ChildProcess, event: 'exit' | 'close' = 'exit'): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => {
    const ended = child.exitCode !== null || child.signalCode !== null;
    if (ended && (event === 'exit' || (child.stdout?.readableEnded ?? true))) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once(event, (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with `promise`, or rejects once `ms` passed. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

/** Each JSON line a process prints, to `onLine`; lines that are not JSON objects are ignored. */
function jsonLines(child: ChildProcess, onLine: (value: Record<string, unknown>) => void): void {
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return;
    }
    if (typeof value === 'object' && value !== null) onLine(value as Record<string, unknown>);
  });
}

/** A free TCP port on 127.0.0.1 (the kernel's choice, released again for the server). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The connect target of an address `unix:/path` or `tcp://host:port`. */
function targetOf(address: string): ClientParams['target'] {
  const tcp = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(address);
  if (tcp) return { host: tcp[1]!.replace(/^\[|\]$/g, ''), port: Number(tcp[2]) };
  return { path: address.replace(/^unix:/, '') };
}

/** The argv starting the server of `o` on `address`. */
function serverCommand(o: ConnectionsOptions, address: string): string[] {
  if (o.strategy === 'net') return [process.execPath, NET_ECHO, address];
  return [
    process.execPath, CLI, 'serve', address, '--strategy', o.strategy, '--echo', '--framing', 'bytes',
    ...(o.intervalMs === undefined ? [] : ['--interval', String(o.intervalMs)]),
    ...(o.maxChildren === undefined ? [] : ['--max-children', String(o.maxChildren)]),
    ...(o.workers === undefined ? [] : ['--workers', String(o.workers)]),
    '--json',
  ];
}

/**
 * The failure of a run: the server would not start, a deadline passed.
 * `kind` 'usage': the server refused its command line; 'interrupted': SIGINT or SIGTERM.
 */
export class RunFailure extends Error {
  constructor(message: string, readonly kind?: 'usage' | 'interrupted') {
    super(message);
  }
}

/** Connects not done by then (ms from the start of the ramp) fail: 10 s, plus 2 ms a connection. */
function rampTime(connections: number): number {
  return CONNECT_TIMEOUT_MS + connections * 2;
}

/** Percentile `q` of a merged histogram (the sample at index floor(n q) in order, as bench/stats.ts chooses). */
function percentile(histogram: Map<number, number>, total: number, q: number): number | null {
  if (total === 0) return null;
  const rank = Math.min(total - 1, Math.floor(total * q));
  let seen = 0;
  for (const bucket of [...histogram.keys()].sort((a, b) => a - b)) {
    seen += histogram.get(bucket)!;
    if (seen > rank) return round(bucketValue(bucket), 4);
  }
  return null;
}

function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * One run: starts the server of `o.strategy`, loads it with `o.connections`
 * connections for `o.durationSeconds`, stops it, and reports. Never hangs:
 * every wait has a deadline, and the server, its descendants and the load
 * processes are killed on the way out, whatever happened.
 */
export async function runConnections(o: ConnectionsOptions): Promise<ConnectionsReport> {
  const progress = o.progress ?? (() => {});
  const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-connections-'));
  const clients: ChildProcess[] = [];
  let server: ChildProcess | undefined;
  /** The server's tree as last seen: what to kill if it does not stop. */
  let lastTree: ProcInfo[] = [];
  let interrupted: ((err: Error) => void) | undefined;
  const interruption = new Promise<never>((_, reject) => { interrupted = reject; });
  interruption.catch(() => {});
  const onSignal = (signal: NodeJS.Signals): void => interrupted!(new RunFailure(`interrupted by ${signal}`, 'interrupted'));
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Every wait below has its own deadline; this one bounds their sum, whatever goes wrong.
  const overallMs = READY_TIMEOUT_MS + rampTime(o.connections) + o.durationSeconds * 1000 + ANSWER_TIMEOUT_MS + 60_000;
  const overall = setTimeout(() => interrupted!(new RunFailure(`no result within ${Math.round(overallMs / 1000)} s: gave up`)), overallMs);
  const guard = <T>(promise: Promise<T>): Promise<T> => Promise.race([promise, interruption]);
  try {
    const address = o.transport === 'unix' ? `unix:${path.join(dir, 'server.sock')}` : `tcp://127.0.0.1:${await freePort()}`;
    const argv = serverCommand(o, address);
    progress(`starting ${o.strategy} server: ${argv.slice(1).map((a) => (a.startsWith('/') ? path.relative(process.cwd(), a) : a)).join(' ')}`);
    const started = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    server = started;
    started.on('error', () => {});
    const serverStderr = tail(started.stderr);
    const serverExited = exitOf(started);
    let onStopped: (counters: unknown) => void = () => {};
    const stoppedLine = new Promise<unknown>((resolve) => { onStopped = resolve; });
    const readyLine = new Promise<Record<string, unknown>>((resolve) => jsonLines(started, (line) => {
      if (typeof line.listening === 'string') resolve(line);
      else if (typeof line.stopped === 'object' && line.stopped !== null) onStopped(line.stopped);
    }));
    const exitedEarly = serverExited.then(async ({ code, signal }): Promise<never> => {
      await sleep(100); // the rest of its stderr
      let said = serverStderr() || 'nothing on stderr';
      try {
        // `ipckit serve --json` fails with {"error": {"code", "message"}}.
        said = (JSON.parse(said) as { error: { message: string } }).error.message ?? said;
      } catch {
        // plain text
      }
      throw new RunFailure(`the ${o.strategy} server exited (${signal ?? code}) before it was ready: ${said}`, code === 2 ? 'usage' : undefined);
    });
    exitedEarly.catch(() => {});
    const ready = await guard(within(Promise.race([readyLine, exitedEarly]), READY_TIMEOUT_MS, `the ${o.strategy} server's ready line`));
    const root = started.pid!;
    let stopping = false;
    let serverGone: string | undefined;
    void serverExited.then(({ code, signal }) => {
      if (!stopping) serverGone = `the server exited (${signal ?? code}) during the run: ${serverStderr() || 'nothing on stderr'}`;
    });
    // Connect to the address the server printed when it names one (a TCP server may report the port it bound).
    const listening = String(ready.listening);
    const target = /^(unix:\/|tcp:\/\/[^:]+:[1-9])/.test(listening) ? targetOf(listening) : targetOf(address);

    await guard(sleep(SETTLE_MS));
    const idle = treeMemory(root, true);
    if (idle.tree.length > 0) lastTree = idle.tree;

    // The load: one process per PER_CLIENT connections (more at high rates), at least one.
    const count = Math.max(1, Math.ceil(o.connections / PER_CLIENT), Math.ceil((o.connections * o.rate) / RATE_PER_CLIENT));
    const n = Math.min(count, o.connections);
    const rampMs = rampTime(o.connections);
    const readies: Promise<ClientReady>[] = [];
    const results: Promise<ClientResult>[] = [];
    const clientStderr: (() => string)[] = [];
    let first = 0;
    for (let i = 0; i < n; i++) {
      const share = Math.floor(o.connections / n) + (i < o.connections % n ? 1 : 0);
      const params: ClientParams = {
        target, first, connections: share, rate: o.rate, size: o.size, connectConcurrency: CONNECT_CONCURRENCY,
        connectTimeoutMs: CONNECT_TIMEOUT_MS, rampMs, answerTimeoutMs: ANSWER_TIMEOUT_MS,
      };
      first += share;
      const child = spawn(process.execPath, [CLIENT, JSON.stringify(params)], { stdio: ['pipe', 'pipe', 'pipe'] });
      child.on('error', () => {});
      child.stdin!.on('error', () => {});
      clients.push(child);
      const stderr = tail(child.stderr);
      clientStderr.push(stderr);
      const died = exitOf(child, 'close').then(({ code, signal }): never => {
        throw new RunFailure(`load process ${i + 1} exited (${signal ?? code}) early: ${stderr() || 'nothing on stderr'}`);
      });
      died.catch(() => {});
      let onReady: (r: ClientReady) => void = () => {};
      let onResult: (r: ClientResult) => void = () => {};
      const readyOf = Promise.race([new Promise<ClientReady>((resolve) => { onReady = resolve; }), died]);
      const resultOf = Promise.race([new Promise<ClientResult>((resolve) => { onResult = resolve; }), died]);
      // Awaited later: a load process dying before then must not be an unhandled rejection.
      readyOf.catch(() => {});
      resultOf.catch(() => {});
      readies.push(readyOf);
      results.push(resultOf);
      jsonLines(child, (line) => {
        if (line.event === 'ready') onReady(line as unknown as ClientReady);
        else if (line.event === 'result') onResult(line as unknown as ClientResult);
      });
    }
    progress(`opening ${o.connections} connection${o.connections === 1 ? '' : 's'} from ${n} load process${n === 1 ? '' : 'es'}…`);
    const ramp = await guard(within(Promise.all(readies), rampMs + 10_000, 'the load processes\' connection ramp'));
    const opened = ramp.reduce((sum, r) => sum + r.opened, 0);
    progress(`${opened} of ${o.connections} connected; measuring for ${o.durationSeconds} s…`);

    // The measured window.
    const send = (command: string): void => { for (const c of clients) c.stdin!.write(`${command}\n`); };
    send('start');
    const cpu0 = treeCpuSeconds(root);
    const t0 = performance.now();
    let peak = idle.rss;
    let processes = idle.processes;
    const end = t0 + o.durationSeconds * 1000;
    for (;;) {
      const left = end - performance.now();
      if (left <= 0) break;
      await guard(sleep(Math.min(SAMPLE_MS, left)));
      // A dead server's pid may be another process's by now.
      if (serverGone !== undefined) continue;
      const m = treeMemory(root, false);
      if (m.tree.length > 0) lastTree = m.tree;
      peak = Math.max(peak, m.rss);
      processes = Math.max(processes, m.processes);
    }
    const cpu1 = serverGone === undefined ? treeCpuSeconds(root) : undefined;
    const windowSeconds = (performance.now() - t0) / 1000;
    const final: Memory = serverGone === undefined ? treeMemory(root, true) : { rss: 0, private: null, processes: 0, tree: [] };
    peak = Math.max(peak, final.rss);
    send('stop');
    const got = await guard(within(Promise.all(results), ANSWER_TIMEOUT_MS + 10_000, 'the load processes\' results'));
    await Promise.all(clients.map((c) => within(exitOf(c, 'close'), 5_000, 'a load process').catch(() => c.kill('SIGKILL'))));

    // Stop the server.
    const tree = processTree(root);
    if (tree.length > 0) lastTree = tree;
    const stopAt = performance.now();
    stopping = true;
    started.kill('SIGTERM');
    let killed = false;
    const exit = await within(serverExited, TERM_GRACE_MS, 'SIGTERM').catch(() => {
      killed = true;
      killAll(lastTree);
      return within(serverExited, 5_000, 'SIGKILL').catch(() => ({ code: null, signal: 'still running after SIGKILL' }));
    });
    const ms = Math.round(performance.now() - stopAt);
    // `ipckit serve` prints its counters as it stops (accepted, refused, ...): the last of its stdout.
    const serverCounters = o.strategy === 'net' ? undefined : await within(stoppedLine, 1_000, 'counters').catch(() => undefined);
    // Descendants the server should have stopped: reparented, they can no longer be found from it.
    await sleep(100);
    const leftoverProcesses = killAll(lastTree.filter((p) => p.pid !== root));

    // The figures.
    const histogram = new Map<number, number>();
    const failures: Record<FailureKind, number> = { connect: 0, reset: 0, eof: 0, timeout: 0, mismatch: 0 };
    const firstErrors: string[] = [];
    let sustained = 0;
    let answered = 0;
    let sent = 0;
    for (const r of got) {
      sustained += r.sustained;
      answered += r.answered;
      sent += r.sent;
      for (const [bucket, k] of r.histogram) histogram.set(bucket, (histogram.get(bucket) ?? 0) + k);
      for (const kind of Object.keys(failures) as FailureKind[]) failures[kind] += r.failures[kind];
      for (const message of r.messages) if (firstErrors.length < 5 && !firstErrors.includes(message)) firstErrors.push(message);
    }
    const errors = Object.values(failures).reduce((a, b) => a + b, 0);
    const maxBucket = histogram.size === 0 ? null : Math.max(...histogram.keys());
    const limits: string[] = [];
    if (serverGone !== undefined) limits.push(serverGone);
    if (opened < o.connections) limits.push(`${o.connections - opened} of ${o.connections} connections could not be opened (${firstErrors.find((e) => e.startsWith('connect')) ?? 'connect failed'})`);
    if (sustained < opened) limits.push(`${opened - sustained} open connections failed: ${failures.timeout} unanswered within ${ANSWER_TIMEOUT_MS} ms, ${failures.reset} reset, ${failures.eof} closed by the server, ${failures.mismatch} wrong echoes`);
    const report: ConnectionsReport = {
      strategy: o.strategy,
      transport: o.transport,
      connections: o.connections,
      durationSeconds: round(windowSeconds, 2),
      rate: o.rate,
      size: o.size,
      opened,
      sustained,
      requests: answered,
      sent,
      errors,
      connectFailures: failures.connect,
      failures,
      requestsPerSecond: round(answered / windowSeconds, 1),
      p50Ms: percentile(histogram, answered, 0.5),
      p99Ms: percentile(histogram, answered, 0.99),
      maxMs: maxBucket === null ? null : round(bucketValue(maxBucket), 4),
      serverIdleRssBytes: idle.rss,
      serverRssBytes: peak,
      memoryPerConnectionBytes: sustained > 0 ? Math.round((peak - idle.rss) / sustained) : null,
      serverPrivateBytes: final.private,
      serverIdlePrivateBytes: idle.private,
      privatePerConnectionBytes: sustained > 0 && final.private !== null && idle.private !== null
        ? Math.round((final.private - idle.private) / sustained) : null,
      serverProcesses: processes,
      cpuSeconds: cpu1 === undefined || serverGone !== undefined ? null : round(cpu1 - cpu0, 2),
      clientProcesses: n,
      rampMs: Math.max(...ramp.map((r) => r.rampMs)),
      serverExit: { code: exit.code, signal: exit.signal, killed, duringRun: serverGone !== undefined, ms, leftoverProcesses },
      firstErrors,
    };
    if (serverCounters !== undefined) report.serverCounters = serverCounters;
    if (limits.length > 0) report.limit = limits.join('; ');
    if (clientStderr.some((s) => s() !== '')) progress(`load processes wrote: ${clientStderr.map((s) => s()).filter(Boolean).join(' | ')}`);
    return report;
  } finally {
    clearTimeout(overall);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const c of clients) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (server && server.exitCode === null && server.signalCode === null) {
      const tree = server.pid === undefined ? [] : processTree(server.pid);
      killAll(tree.length > 0 ? tree : lastTree);
      server.kill('SIGKILL');
      await within(exitOf(server), 5_000, 'SIGKILL').catch(() => {});
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A report as a two-column table. */
export function formatReport(r: ConnectionsReport): string {
  const mib = (bytes: number | null): string => (bytes === null ? '-' : `${(bytes / 1048576).toFixed(1)} MiB`);
  const kib = (bytes: number | null): string => (bytes === null ? '-' : `${(bytes / 1024).toFixed(1)} KiB`);
  const ms = (x: number | null): string => (x === null ? '-' : `${x.toFixed(3)} ms`);
  const failures = Object.entries(r.failures).filter(([, k]) => k > 0).map(([kind, k]) => `${k} ${kind}`).join(', ');
  const lines: [string, string][] = [
    ['strategy', `${r.strategy} (${r.transport})`],
    ['connections', `${r.connections} asked, ${r.opened} opened, ${r.sustained} sustained`],
    ['load', `${r.rate} request${r.rate === 1 ? '' : 's'}/s per connection of ${r.size} bytes, ${r.durationSeconds} s measured (ramp ${r.rampMs} ms, ${r.clientProcesses} load process${r.clientProcesses === 1 ? '' : 'es'})`],
    ['requests', `${r.requests} answered of ${r.sent} sent: ${r.requestsPerSecond} /s`],
    ['errors', r.errors === 0 ? '0' : `${r.errors} (${failures})`],
    ['latency', `p50 ${ms(r.p50Ms)}, p99 ${ms(r.p99Ms)}, max ${ms(r.maxMs)}`],
    ['server memory', `RSS ${mib(r.serverIdleRssBytes)} idle, ${mib(r.serverRssBytes)} peak; private ${mib(r.serverIdlePrivateBytes)} idle, ` +
      `${mib(r.serverPrivateBytes)} at the end; ${r.serverProcesses} process${r.serverProcesses === 1 ? '' : 'es'}`],
    ['per connection', `${kib(r.memoryPerConnectionBytes)} RSS, ${kib(r.privatePerConnectionBytes)} private`],
    ['server CPU', r.cpuSeconds === null ? '-' : `${r.cpuSeconds} s (${Math.round((r.cpuSeconds / r.durationSeconds) * 100)} % of one CPU)`],
    ['server stop', `${r.serverExit.duringRun ? `died during the run (${r.serverExit.signal ?? r.serverExit.code})`
      : r.serverExit.killed ? `did not stop within 10 s of SIGTERM: killed after ${r.serverExit.ms} ms`
        : `exit ${r.serverExit.signal ?? r.serverExit.code} ${r.serverExit.ms} ms after SIGTERM`}` +
      `${r.serverExit.leftoverProcesses > 0 ? `; ${r.serverExit.leftoverProcesses} descendant process(es) outlived it (killed)` : ''}`],
  ];
  if (r.serverCounters !== undefined) lines.push(['server counters', JSON.stringify(r.serverCounters)]);
  if (r.limit !== undefined) lines.push(['limit', r.limit]);
  if (r.firstErrors.length > 0) lines.push(['first errors', r.firstErrors.join(' | ')]);
  return lines.map(([k, v]) => `${k.padEnd(15)} ${v}`).join('\n');
}

// ---- the harness side ---------------------------------------------------------------------

function envList(name: string): number[] | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const values = raw.split(',').map((s) => Number(s.trim()));
  if (values.some((v) => !Number.isInteger(v) || v < 1)) throw new Error(`${name} must be a comma-separated list of positive integers; got "${raw}"`);
  return values;
}

function envNumber(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = Number(raw);
  if (!(value > 0)) throw new Error(`${name} must be a positive number; got "${raw}"`);
  return value;
}

/** Rows of one run; `ref` is the `net` run at the same N (none for `net` itself). */
function rowsOf(r: ConnectionsReport, placement: Placement, ref: ConnectionsReport | undefined): Row[] {
  const variant = (s: string): string => `${s} N=${r.connections}`;
  const values: [Metric, (x: ConnectionsReport) => number | null][] = [
    ['p50_ms', (x) => x.p50Ms],
    ['p99_ms', (x) => x.p99Ms],
    ['requests_per_s', (x) => x.requestsPerSecond],
    ['memory_per_connection_bytes', (x) => x.memoryPerConnectionBytes],
    ['cpu_s', (x) => x.cpuSeconds],
  ];
  const rows: Row[] = [];
  for (const [metric, of] of values) {
    const value = of(r);
    if (value === null) continue;
    const refValue = ref === undefined ? null : of(ref);
    const reference = ref !== undefined && refValue !== null && refValue > 0 ? { name: variant('net'), value: refValue } : null;
    rows.push(Object.assign({
      mechanism, variant: variant(r.strategy), placement, metric, value, reference,
      ratio: reference ? round(value / reference.value) : null,
    }, { sustained: r.sustained, errors: r.errors, transport: r.transport, ...(r.limit === undefined ? {} : { limit: r.limit }) }));
  }
  return rows;
}

function summary(r: ConnectionsReport): string {
  return `${r.sustained}/${r.connections} sustained, ${r.requestsPerSecond} req/s, p50 ${r.p50Ms ?? '-'} ms, p99 ${r.p99Ms ?? '-'} ms, ` +
    `${r.memoryPerConnectionBytes === null ? '-' : (r.memoryPerConnectionBytes / 1024).toFixed(1)} KiB/conn, CPU ${r.cpuSeconds ?? '-'} s, ${r.errors} errors`;
}

export async function measure(ctx: BenchContext): Promise<Row[]> {
  // The harness's --quick shows in its iteration counts (2,000 round trips instead of 20,000).
  const quick = ctx.rttIterations < 20_000;
  const sizes = envList('IPCKIT_BENCH_CONNECTIONS') ?? (quick ? [1, 10] : [1, 10, 100]);
  const durationSeconds = envNumber('IPCKIT_BENCH_CONNECTIONS_DURATION') ?? (quick ? 2 : 5);
  const transport = process.env.IPCKIT_BENCH_CONNECTIONS_TRANSPORT === 'tcp' ? 'tcp' : 'unix';
  const strategies = STRATEGIES.filter((s) => s !== 'net');
  const say = (line: string): void => { process.stderr.write(`  ${line}\n`); };
  const rows: Row[] = [];
  for (const connections of sizes) {
    const run = async (strategy: Strategy): Promise<ConnectionsReport | undefined> => {
      try {
        // fork is measured until it fails: as many children as connections.
        const r = await runConnections({ strategy, connections, durationSeconds, rate: 1, size: 64, transport,
          ...(strategy === 'fork' ? { maxChildren: connections } : {}) });
        say(`${strategy} N=${connections}: ${summary(r)}${r.limit === undefined ? '' : ` — ${r.limit}`}`);
        return r;
      } catch (err) {
        if (err instanceof RunFailure && err.kind === 'interrupted') throw err;
        say(`${strategy} N=${connections}: failed: ${(err as Error).message}`);
        return undefined;
      }
    };
    const ref = await run('net');
    if (ref) rows.push(...rowsOf(ref, ctx.placement, undefined));
    for (const strategy of strategies) {
      const r = await run(strategy);
      if (r) rows.push(...rowsOf(r, ctx.placement, ref));
    }
  }
  return rows;
}
