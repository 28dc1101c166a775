/**
 * Exactly-once delivery under load: for each transport and each calling
 * mode, N producer processes send numbered, checksummed messages to M
 * consumer processes for a while; the ledger then tells what was lost,
 * duplicated, reordered (per producer, as one consumer saw them) or
 * corrupt. Also: throughput, end-to-end latency, the processes' memory and
 * descriptors (start, peak, end) and their event loops' delay. Over a
 * connected socket transport the consumers are servers: they start first,
 * and the producers connect to the addresses they report.
 */
import { type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PosixSharedMemory, spawn } from '../src/index.js';
import { type ConsumerField, type DeliveryCounts, Ledger } from './ledger.js';
import { type LockerParams, type PeerParams, stopMarker } from './peer.js';
import { type Section, type SectionResult, chosenNames, descriptorsOf, percentile, removeOnInterrupt, rssOf, runStandalone } from './report.js';
import { TRANSPORTS, type Transport, senderAddress } from './transports.js';

const PEER = fileURLToPath(new URL('./peer.js', import.meta.url));
export const PRODUCERS = 4;
export const CONSUMERS = 3;
const MODES = ['sync', 'async', 'mixed', 'batch'] as const;

/** The modes a transport runs: the batched one where it has batches. */
function modesOf(transport: Transport): readonly PeerParams['mode'][] {
  return transport.batches === true ? MODES : MODES.filter((m) => m !== 'batch');
}

/** A child process with its output lines and resource samples. */
export class Child {
  readonly process: ChildProcess;
  readonly lines: string[] = [];
  readonly rss: number[] = [];
  readonly fds: number[] = [];
  /** What it wrote on stderr (its last 4 KiB), when made with `keepStderr`; otherwise stderr is the parent's. */
  stderr = '';
  #waiters: (() => void)[] = [];

  constructor(params: PeerParams | LockerParams, fd3?: number, keepStderr = false) {
    const stdio: ('pipe' | 'inherit')[] = ['pipe', 'pipe', keepStderr ? 'pipe' : 'inherit'];
    this.process = spawn(process.execPath, [PEER, JSON.stringify(params)], { stdio, ...(fd3 === undefined ? {} : { fds: { 3: fd3 } }) });
    createInterface({ input: this.process.stdout! }).on('line', (line) => {
      this.lines.push(line);
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.process.stderr?.setEncoding('utf8').on('data', (text: string) => {
      this.stderr = (this.stderr + text).slice(-4096);
    });
  }

  /** Resolves once `count` lines arrived; rejects if the process ends first or `ms` pass. */
  async lineCount(count: number, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.lines.length < count) {
      if (this.process.exitCode !== null || this.process.signalCode !== null) throw new Error(`pid ${this.process.pid} ended (${this.process.exitCode ?? this.process.signalCode}) before line ${count}`);
      if (Date.now() > deadline) throw new Error(`pid ${this.process.pid} printed nothing for ${ms} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.#waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  sample(): void {
    const pid = this.process.pid!;
    const rss = rssOf(pid);
    const fds = descriptorsOf(pid);
    if (!Number.isNaN(rss)) this.rss.push(rss);
    if (!Number.isNaN(fds)) this.fds.push(fds);
  }

  go(): void {
    this.process.stdin!.write('go\n');
  }

  async exited(ms: number): Promise<boolean> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return true;
    const timer = new Promise<false>((resolve) => setTimeout(() => resolve(false), ms).unref());
    return Promise.race([once(this.process, 'exit').then(() => true), timer]);
  }

  kill(): void {
    this.process.kill('SIGKILL');
  }
}

/** [start, peak, end] of samples taken across several processes: the largest of each. */
function spread(children: Child[], pick: (c: Child) => number[]): [number, number, number] {
  const series = children.map(pick).filter((s) => s.length > 0);
  if (series.length === 0) return [Number.NaN, Number.NaN, Number.NaN];
  return [Math.max(...series.map((s) => s[0]!)), Math.max(...series.map((s) => Math.max(...s))), Math.max(...series.map((s) => s.at(-1)!))];
}

export interface RunFigures extends DeliveryCounts {
  seconds: number;
  latenciesUs: number[];
  rss: [number, number, number];
  fds: [number, number, number];
  loopDelayP99Ms: number;
  stuck: string[];
}

/** One run: `transport`, `mode`, producers sending for `runMs`. */
export async function runOnce(transport: Transport, mode: PeerParams['mode'], runMs: number): Promise<RunFigures> {
  const prepared = await transport.prepare();
  const ledgerName = `/ipckit-soak-ledger-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  // A single-producer, single-consumer transport (the channel) runs one of each.
  const producerCount = transport.single === true ? 1 : PRODUCERS;
  const consumerCount = transport.single === true ? 1 : CONSUMERS;
  const ledger = Ledger.create(ledgerName, producerCount, consumerCount);
  const removal = removeOnInterrupt(() => {
    PosixSharedMemory.unlink(ledgerName);
    prepared.teardown();
  });
  const children: Child[] = [];
  const stuck: string[] = [];
  const sampler = setInterval(() => { for (const c of children) c.sample(); }, 100);
  try {
    const params = (role: PeerParams['role'], index: number): PeerParams => ({
      role, transport: transport.name, address: prepared.address, mode, index, producers: producerCount, consumers: consumerCount, ledger: ledgerName, runMs,
    });
    const consumers = Array.from({ length: consumerCount }, (_, i) => new Child(params('consumer', i), prepared.receiverFd?.fd));
    children.push(...consumers);
    if (transport.connected) {
      // The consumers are servers: the producers connect to the addresses they report, one connection each.
      await Promise.all(consumers.map((c) => c.lineCount(1, 20_000)));
      for (const c of consumers) prepared.receivers.push(listeningAddress(c));
    }
    const producers = Array.from({ length: producerCount }, (_, i) =>
      new Child({ ...params('producer', i), address: senderAddress(prepared, i) }, prepared.senderFd?.fd));
    children.push(...producers);
    await Promise.all(children.map((c) => c.lineCount(1, 20_000)));
    for (const c of children) c.sample();
    const t0 = performance.now();
    for (const c of children) c.go();
    // Producers end on their own; then one stop marker per consumer, behind all the data.
    for (const p of producers) if (!(await p.exited(runMs + 30_000))) stuck.push(`producer ${p.process.pid} did not finish`);
    for (let i = 0; i < consumerCount; i++) await prepared.parent.send(stopMarker());
    if (mode === 'batch') {
      // A batched receive may take more than one marker: while consumers are left, a few more go (the rest stay unread).
      for (let extra = 0; extra < consumerCount; extra++) {
        const left = await Promise.all(consumers.map(async (c) => !(await c.exited(300))));
        if (!left.some(Boolean)) break;
        await prepared.parent.send(stopMarker());
      }
    }
    for (const c of consumers) if (!(await c.exited(30_000))) stuck.push(`consumer ${c.process.pid} did not finish`);
    const seconds = (performance.now() - t0) / 1000;
    const figures = (c: Child): { latenciesUs?: number[]; loopDelayP99Ms?: number } => {
      const last = c.lines.at(-1);
      return last === undefined || last.startsWith('ready') ? {} : (JSON.parse(last) as { latenciesUs?: number[]; loopDelayP99Ms?: number });
    };
    const { sent, lost } = ledger.tally(producerCount);
    const total = (field: ConsumerField): number => ledger.total(field);
    return {
      sent, lost, seconds, stuck,
      received: total('received'),
      // No process is killed here: a redelivery (a consumer died holding a view) is a duplicate too.
      duplicated: total('duplicated') + total('redelivered'),
      reordered: total('reordered'),
      corrupt: total('corrupt'),
      latenciesUs: consumers.flatMap((c) => figures(c).latenciesUs ?? []),
      rss: spread(children, (c) => c.rss),
      fds: spread(children, (c) => c.fds),
      loopDelayP99Ms: Math.max(...children.map((c) => figures(c).loopDelayP99Ms ?? Number.NaN).filter((n) => !Number.isNaN(n))),
    };
  } finally {
    clearInterval(sampler);
    for (const c of children) if (c.process.exitCode === null && c.process.signalCode === null) c.kill();
    await Promise.all(children.map((c) => c.exited(10_000)));
    removal();
    ledger.segment.close();
    ledger.segment.unlink();
    prepared.teardown();
    // Every process of the run is gone: nothing may still be bound to its names or listen on its ports.
    stuck.push(...(prepared.leftovers?.() ?? []).map((what) => `left behind: ${what}`));
  }
}

/** The address a consumer that is a server reported in its ready line (`ready <address>`, peer.ts). */
export function listeningAddress(c: Child): string {
  const line = c.lines[0];
  if (line === undefined || !line.startsWith('ready ')) {
    throw new Error(`consumer ${c.process.pid} reported no address to connect to (its first line: ${line ?? 'none'})`);
  }
  return line.slice('ready '.length);
}

export const section: Section = {
  name: 'exactly-once',
  async run(ctx): Promise<SectionResult> {
    // Run alone, `--transports a,b` picks some of the transports.
    const chosen = chosenNames('--transports', TRANSPORTS.map((t) => t.name), import.meta.url);
    const runs = TRANSPORTS.filter((t) => chosen.includes(t.name)).reduce((n, t) => n + modesOf(t).length, 0);
    // Process start-up and the drain take about a second of each run.
    const runMs = Math.max(500, ctx.budgetMs / runs - 1500);
    const rows: (string | number)[][] = [];
    const failures: string[] = [];
    for (const transport of TRANSPORTS.filter((t) => chosen.includes(t.name))) {
      for (const mode of modesOf(transport)) {
        ctx.log(`${transport.name} ${mode}: ${(runMs / 1000).toFixed(1)} s`);
        const f = await runOnce(transport, mode, runMs);
        const label = `${transport.name} ${mode}`;
        rows.push([
          transport.name, mode, f.sent, f.received, f.lost, f.duplicated, f.reordered, f.corrupt,
          f.received / f.seconds, percentile(f.latenciesUs, 50), percentile(f.latenciesUs, 99), percentile(f.latenciesUs, 99.9),
          f.rss.map((n) => n.toFixed(0)).join(' / '), f.fds.join(' / '), mode === 'sync' ? '–' : f.loopDelayP99Ms,
        ]);
        if (f.lost > 0) failures.push(`${label}: ${f.lost} lost`);
        if (f.duplicated > 0) failures.push(`${label}: ${f.duplicated} duplicated`);
        if (f.reordered > 0) failures.push(`${label}: ${f.reordered} reordered`);
        if (f.corrupt > 0) failures.push(`${label}: ${f.corrupt} corrupt`);
        if (f.received !== f.sent) failures.push(`${label}: ${f.sent} sent but ${f.received} received`);
        failures.push(...f.stuck.map((s) => `${label}: ${s}`));
      }
    }
    return {
      title: 'Exactly-once delivery',
      about: `${PRODUCERS} producer and ${CONSUMERS} consumer processes per run; 64-byte messages carrying (producer, sequence, send time, CRC32). ` +
        'Over unix-stream (a socket file), unix-seqpacket (an abstract name) and tcp (127.0.0.1, an ephemeral port) each consumer is a ' +
        `server and producer n connects to consumer n mod ${CONSUMERS}, one connection per producer; over unix-dgram the consumers share ` +
        'one bound socket, as a queue. The channel (a single-producer, single-consumer ring in shared memory) runs one producer and one ' +
        'consumer process, its messages with 0–200 filler bytes (checked by the consumer) so that records wrap its 2 KiB ring at every ' +
        'offset; every third send is a loan and every other receive a view; channel-shared is the same ring with shared sides, run by ' +
        'all the producers and consumers at once, taking turns. After the run nothing may still be bound to the run\'s socket names or listen on its ports. ' +
        'Reordered counts a consumer seeing a producer\'s sequence go backwards. Latency is send to receive, µs; RSS (MiB) and descriptors ' +
        'are start / peak / end, the largest over the run\'s processes; loop delay is the worst p99 of their event loops, ms (not measured in ' +
        'sync mode, where *Sync calls block the loop by design; with 7 busy processes on the CPUs, a process waiting for a CPU counts as delay too).',
      columns: ['transport', 'mode', 'sent', 'received', 'lost', 'dup', 'reordered', 'corrupt', 'msg/s', 'p50 µs', 'p99 µs', 'p99.9 µs', 'RSS MiB', 'fds', 'loop p99 ms'],
      rows,
      failures,
    };
  },
};

if (import.meta.url === `file://${process.argv[1]}`) await runStandalone(section);
