/**
 * The benchmark harness: `npm run bench -- [mechanism...] [--quick] [--json]`.
 *
 * Every mechanism is measured beside a C reference doing the same system
 * calls (bench/c/) and the Node built-in a user would otherwise pick, in the
 * same run, in two placements: both processes pinned to CPU 0 (the software
 * cost) and unpinned (what the scheduler gives). Ratios are the figures that
 * count; absolute times on shared machines are noise.
 *
 * Results go to stdout and to bench/results/latest.json and latest.html.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import * as messageQueue from './message-queue.js';
import * as sharedMemory from './shared-memory.js';
import * as pipeBench from './pipe.js';
import * as signalBench from './signal.js';
import * as socketBench from './socket.js';
import * as connectionsBench from './connections.js';
import * as channelBench from './channel.js';
import * as semaphoreBench from './semaphore.js';
import * as natsBench from './nats.js';

const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench');
const RUNNER = fileURLToPath(new URL('./runner.js', import.meta.url));

export type Placement = 'pinned' | 'unpinned';
export type Metric = 'rtt_p50_us' | 'rtt_p99_us' | 'throughput_mb_s' | 'ns_per_op'
  | 'p50_ms' | 'p99_ms' | 'requests_per_s' | 'memory_per_connection_bytes' | 'cpu_s' | 'cycles_per_s';

/** One row of bench/results/latest.json (DESIGN.md §7). */
export interface Row {
  mechanism: string;
  variant: string;
  placement: Placement;
  metric: Metric;
  value: number;
  reference: { name: string; value: number } | null;
  ratio: number | null;
  /** Measured in this many rounds (see {@link inRounds}): `value` is their median. */
  rounds?: number;
  /** The lowest and highest of those rounds. */
  spread?: [number, number];
}

/** What a client process prints: latency percentiles or throughput. */
export interface Measurement {
  p50_us?: number;
  p99_us?: number;
  mb_s?: number;
  ns_per_op?: number;
  /** Lock cycles (take, give) per second, over every process. */
  cycles_per_s?: number;
  /** Set by {@link inRounds}: how many rounds the figures above are the median of. */
  rounds?: number;
  /** Set by {@link inRounds}: each figure's lowest and highest round. */
  spread?: Partial<Record<Figure, [number, number]>>;
}

/** The figures of a {@link Measurement}. */
type Figure = 'p50_us' | 'p99_us' | 'mb_s' | 'ns_per_op' | 'cycles_per_s';
const FIGURES: readonly Figure[] = ['p50_us', 'p99_us', 'mb_s', 'ns_per_op', 'cycles_per_s'];

/**
 * Runs every trial `rounds` times, taking turns: each round runs them all
 * once, in the order given, so that a C reference and the variants
 * compared with it meet the same moments of a shared machine, whose speed
 * drifts from second to second (unpinned, one C program moved anywhere
 * from 906 to 2,615 MB/s in twelve runs in a row). Each result holds the
 * median of its rounds, figure by figure, with the lowest and highest;
 * other numbers a run reports (counts of datagrams sent and received) are
 * summed over the rounds.
 */
export async function inRounds(rounds: number, trials: readonly (() => Promise<Measurement>)[]): Promise<Measurement[]> {
  const seen: Measurement[][] = trials.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (const [i, trial] of trials.entries()) seen[i]!.push(await trial());
  }
  return seen.map((runs) => {
    if (runs.length === 1) return runs[0]!;
    const out: Measurement = { rounds: runs.length, spread: {} };
    for (const run of runs) {
      for (const [key, value] of Object.entries(run)) {
        if (typeof value !== 'number' || (FIGURES as readonly string[]).includes(key)) continue;
        const sums = out as Record<string, unknown>;
        sums[key] = (typeof sums[key] === 'number' ? sums[key] as number : 0) + value;
      }
    }
    for (const figure of FIGURES) {
      const values = runs.map((m) => m[figure]).filter((v): v is number => v !== undefined).sort((a, b) => a - b);
      if (values.length === 0) continue;
      const mid = values.length >> 1;
      out[figure] = values.length % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
      out.spread![figure] = [values[0]!, values[values.length - 1]!];
    }
    return out;
  });
}

/** A process to run: an argv. */
export type Command = string[];

export interface BenchContext {
  placement: Placement;
  /** Round trips per latency measurement. */
  rttIterations: number;
  /** Messages per throughput measurement. */
  throughputMessages: number;
  /** Rounds of the comparisons measured with {@link inRounds} (IPCKIT_BENCH_ROUNDS, default 5; 1 with --quick). */
  rounds: number;
  /** Path of a compiled C reference program. */
  cProgram(name: string): string;
  /** argv running a Node role of a mechanism module (see runner.ts). */
  nodeRole(mechanism: string, role: string, params: unknown): Command;
  /** Runs an optional server then a client (both with the placement) and returns the client's measurement. */
  runPair(server: Command | undefined, client: Command): Promise<Measurement>;
}

/** A mechanism's benchmark module. */
export interface BenchModule {
  mechanism: string;
  measure(ctx: BenchContext): Promise<Row[]>;
  /** The placements it is measured in (default: both). */
  placements?: Placement[];
}

const MODULES: BenchModule[] = [messageQueue, sharedMemory, pipeBench, signalBench, socketBench, connectionsBench, channelBench, semaphoreBench, natsBench];

function pinPrefix(placement: Placement): string[] {
  return placement === 'pinned' ? ['taskset', '-c', '0'] : [];
}

/** Spawns a command and resolves with its first JSON stdout line; the rest of stdout is ignored. */
function firstLine(child: ReturnType<typeof spawn>, what: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    const lines = createInterface({ input: child.stdout! });
    let done = false;
    lines.once('line', (line) => {
      done = true;
      try {
        resolve(JSON.parse(line) as Record<string, unknown>);
      } catch {
        reject(new Error(`${what} printed ${line}`));
      }
    });
    child.on('close', (code) => {
      if (!done) reject(new Error(`${what} exited ${code} without a result: ${stderr.trim()}`));
    });
    child.on('error', reject);
  });
}

function exited(child: ReturnType<typeof spawn>): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.on('close', (code) => resolve(code));
  });
}

function makeContext(placement: Placement, quick: boolean, rounds: number): BenchContext {
  return {
    placement,
    rttIterations: quick ? 2_000 : 20_000,
    throughputMessages: quick ? 5_000 : 50_000,
    rounds,
    cProgram: (name) => path.join(BENCH_DIR, 'c', 'build', name),
    nodeRole: (mechanism, role, params) => [process.execPath, RUNNER, mechanism, role, JSON.stringify(params)],
    async runPair(server, client) {
      const prefix = pinPrefix(placement);
      let serverProcess: ReturnType<typeof spawn> | undefined;
      if (server) {
        const [cmd, ...args] = [...prefix, ...server];
        serverProcess = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        await firstLine(serverProcess, `server ${server.join(' ')}`);
      }
      try {
        const [cmd, ...args] = [...prefix, ...client];
        const clientProcess = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        const result = await firstLine(clientProcess, `client ${client.join(' ')}`);
        await exited(clientProcess);
        if (serverProcess) await exited(serverProcess);
        return result as Measurement;
      } finally {
        if (serverProcess && serverProcess.exitCode === null) serverProcess.kill('SIGKILL');
      }
    },
  };
}

/** Rounds of an {@link inRounds} comparison: IPCKIT_BENCH_ROUNDS, 1 to 25, default 5 (a usage error otherwise). */
function roundsSetting(): number {
  const text = process.env.IPCKIT_BENCH_ROUNDS;
  if (text === undefined || text === '') return 5;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 25) {
    process.stderr.write(`ERR_IPC_USAGE: IPCKIT_BENCH_ROUNDS must be a whole number from 1 to 25, not "${text}"\n`);
    process.exit(2);
  }
  return n;
}

/** Rows for one measured variant against its reference measurement. */
export function rowsFor(mechanism: string, variant: string, placement: Placement, m: Measurement,
  referenceName: string | null, reference: Measurement | null): Row[] {
  const rows: Row[] = [];
  const add = (metric: Metric, figure: Figure): void => {
    const value = m[figure];
    if (value === undefined) return;
    const refValue = reference?.[figure];
    const ref = referenceName !== null && refValue !== undefined ? { name: referenceName, value: refValue } : null;
    const row: Row = { mechanism, variant, placement, metric, value, reference: ref, ratio: ref ? round(value / ref.value) : null };
    const spread = m.spread?.[figure];
    if (m.rounds !== undefined && spread !== undefined) Object.assign(row, { rounds: m.rounds, spread });
    rows.push(row);
  };
  add('rtt_p50_us', 'p50_us');
  add('rtt_p99_us', 'p99_us');
  add('throughput_mb_s', 'mb_s');
  add('ns_per_op', 'ns_per_op');
  add('cycles_per_s', 'cycles_per_s');
  return rows;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function formatTable(rows: Row[]): string {
  const lines: string[] = [];
  const groups = new Map<string, Row[]>();
  for (const row of rows) {
    const key = `${row.mechanism} · ${row.placement}`;
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  for (const [title, group] of groups) {
    lines.push('', title);
    lines.push(`  ${'variant'.padEnd(26)} ${'metric'.padEnd(16)} ${'value'.padStart(10)}  ${'reference'.padEnd(22)} ${'ref value'.padStart(10)}  ratio`);
    for (const r of group) {
      lines.push(`  ${r.variant.padEnd(26)} ${r.metric.padEnd(16)} ${r.value.toFixed(2).padStart(10)}  ` +
        `${(r.reference?.name ?? '-').padEnd(22)} ${(r.reference ? r.reference.value.toFixed(2) : '-').padStart(10)}  ` +
        `${r.ratio === null ? '-' : `${r.ratio.toFixed(2)}×`}` +
        `${r.spread === undefined ? '' : `  (median of ${r.rounds}: ${r.spread[0].toFixed(2)}–${r.spread[1].toFixed(2)})`}`);
    }
  }
  return lines.join('\n');
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** An HTML page with one SVG bar chart of ratios per metric. */
function chart(rows: Row[], started: Date): string {
  const sections: string[] = [];
  for (const metric of ['rtt_p50_us', 'rtt_p99_us', 'throughput_mb_s', 'ns_per_op', 'cycles_per_s'] as const) {
    const bars = rows.filter((r) => r.metric === metric && r.ratio !== null);
    if (bars.length === 0) continue;
    const max = Math.max(2, ...bars.map((b) => b.ratio!));
    const width = 760;
    const barHeight = 18;
    const label = 300;
    const height = bars.length * (barHeight + 6) + 30;
    const scale = (x: number): number => label + (x / max) * (width - label - 60);
    const items = bars.map((b, i) => {
      const y = 10 + i * (barHeight + 6);
      return `<text x="${label - 8}" y="${y + 13}" text-anchor="end">${escapeXml(`${b.mechanism} ${b.variant} (${b.placement})`)}</text>` +
        `<rect x="${label}" y="${y}" width="${scale(b.ratio!) - label}" height="${barHeight}" fill="${b.variant.startsWith('node') ? '#b0b0b0' : '#3b7dd8'}"/>` +
        `<text x="${scale(b.ratio!) + 4}" y="${y + 13}">${b.ratio!.toFixed(2)}×</text>`;
    }).join('');
    const one = scale(1);
    sections.push(`<h2>${metric} — ratio to the C reference (${metric === 'throughput_mb_s' || metric === 'cycles_per_s' ? 'higher' : 'lower'} is better)</h2>` +
      `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">${items}` +
      `<line x1="${one}" y1="0" x2="${one}" y2="${height - 20}" stroke="#d33" stroke-dasharray="4 3"/>` +
      `<text x="${one + 3}" y="${height - 6}" fill="#d33">C = 1×</text></svg>`);
  }
  return `<!doctype html><meta charset="utf-8"><title>ipckit benchmark</title>` +
    `<h1>ipckit benchmark, ${started.toISOString()}</h1><p>Grey bars: the Node built-in. Dashed line: the C reference.</p>${sections.join('')}`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const quick = argv.includes('--quick');
  const json = argv.includes('--json');
  const wanted = argv.filter((a) => !a.startsWith('--'));
  const modules = wanted.length === 0 ? MODULES : wanted.map((w) => {
    const found = MODULES.find((m) => m.mechanism === w);
    if (!found) {
      process.stderr.write(`ERR_IPC_USAGE: unknown mechanism "${w}"; known: ${MODULES.map((m) => m.mechanism).join(', ')}\n`);
      process.exit(2);
    }
    return found;
  });
  const rounds = quick ? 1 : roundsSetting();
  const make = spawnSync('make', ['-s', '-C', path.join(BENCH_DIR, 'c')], { stdio: 'inherit' });
  if (make.status !== 0) throw new Error('building the C references failed (make -C bench/c)');
  const placements: Placement[] = ['pinned', 'unpinned'];
  if (spawnSync('taskset', ['-c', '0', 'true']).status !== 0) {
    process.stderr.write('taskset is not available: only the unpinned placement is measured\n');
    placements.shift();
  }
  const started = new Date();
  const rows: Row[] = [];
  for (const module of modules) {
    for (const placement of placements.filter((p) => module.placements?.includes(p) ?? true)) {
      if (!json) process.stderr.write(`measuring ${module.mechanism} (${placement})…\n`);
      rows.push(...await module.measure(makeContext(placement, quick, rounds)));
    }
  }
  const resultsDir = path.join(BENCH_DIR, 'results');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, 'latest.json'), `${JSON.stringify(rows, null, 2)}\n`);
  writeFileSync(path.join(resultsDir, 'latest.html'), chart(rows, started));
  if (json) process.stdout.write(`${JSON.stringify(rows)}\n`);
  else process.stdout.write(`${formatTable(rows)}\n\nwritten: bench/results/latest.json, bench/results/latest.html\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
