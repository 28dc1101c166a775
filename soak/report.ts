/**
 * The reliability suite's shared parts: what a section reports, how the
 * report is printed, and the measurements every section takes.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { shutdownOn } from '../src/index.js';

/** What a section measured: a table, and the invariants it found broken (none, when all is well). */
export interface SectionResult {
  title: string;
  /** What the figures mean, for the report (one short paragraph). */
  about: string;
  columns: string[];
  rows: (string | number)[][];
  /** Broken invariants ("posix-mq async: 3 lost"); any makes the run fail. */
  failures: string[];
}

/** What a section is given. */
export interface SectionContext {
  /** Wall-clock budget for the section, ms. */
  budgetMs: number;
  /** Progress lines, on stderr. */
  log(line: string): void;
}

export interface Section {
  /** Short name for --only. */
  name: string;
  run(ctx: SectionContext): Promise<SectionResult>;
}

/** The p-th percentile (0..100) of `samples`, or NaN when there are none. */
export function percentile(samples: ArrayLike<number>, p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = Float64Array.from(samples as ArrayLike<number>).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

/** A number for a table: integers as they are, others with 3 significant digits. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return '–';
  if (Number.isInteger(n)) return String(n);
  return n >= 100 ? n.toFixed(0) : n.toPrecision(3);
}

/** This process's open descriptors, as their /proc link targets. */
export function descriptorTargets(): string[] {
  return [...descriptorMap().values()];
}

/** This process's open descriptors (their numbers) and what each points to. */
export function descriptorMap(): Map<string, string> {
  const out = new Map<string, string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.set(fd, readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      /* The directory's own descriptor, closed by now. */
    }
  }
  return out;
}

/** This process's open descriptors. */
export function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Resident set size of this process, MiB. */
export function rssMiB(): number {
  return process.memoryUsage.rss() / 2 ** 20;
}

/** Resident set size of process `pid` from /proc, MiB (NaN once it is gone). */
export function rssOf(pid: number): number {
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? Number.NaN : Number(kb) / 1024;
  } catch {
    return Number.NaN;
  }
}

/** Open descriptors of process `pid` (NaN once it is gone). */
export function descriptorsOf(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

/** Samples RSS and descriptors (start, peak, end) and the event loop's delay while it runs. */
export class ResourceWatch {
  readonly startRss = rssMiB();
  readonly startFds = openDescriptors();
  peakRss = this.startRss;
  peakFds = this.startFds;
  readonly #delay = monitorEventLoopDelay({ resolution: 10 });
  readonly #timer: NodeJS.Timeout;

  constructor() {
    this.#delay.enable();
    this.#timer = setInterval(() => this.sample(), 100);
    this.#timer.unref();
  }

  sample(): void {
    this.peakRss = Math.max(this.peakRss, rssMiB());
    this.peakFds = Math.max(this.peakFds, openDescriptors());
  }

  /** Stops sampling: [rss start/peak/end MiB, fds start/peak/end, loop delay p99 ms]. */
  stop(): { rss: [number, number, number]; fds: [number, number, number]; loopDelayP99Ms: number } {
    this.sample();
    clearInterval(this.#timer);
    this.#delay.disable();
    return {
      rss: [this.startRss, this.peakRss, rssMiB()],
      fds: [this.startFds, this.peakFds, openDescriptors()],
      loopDelayP99Ms: this.#delay.percentile(99) / 1e6,
    };
  }
}

/** The report as Markdown: one table per section, then what failed. */
export function renderMarkdown(results: SectionResult[], header: string): string {
  const out = [header, ''];
  for (const r of results) {
    out.push(`### ${r.title}`, '', r.about, '');
    out.push(`| ${r.columns.join(' | ')} |`, `|${r.columns.map(() => '---').join('|')}|`);
    for (const row of r.rows) out.push(`| ${row.map((c) => (typeof c === 'number' ? fmt(c) : c)).join(' | ')} |`);
    out.push('');
    if (r.failures.length > 0) out.push(`**Failed:** ${r.failures.join('; ')}`, '');
  }
  return out.join('\n');
}

/**
 * What a section run alone (`node dist/soak/<section>.js`) was asked to
 * cover with `flag a,b`: those names, each one of `all`; all of them
 * without the flag, or when the section runs in the whole suite.
 */
export function chosenNames<T extends string>(flag: string, all: readonly T[], moduleUrl: string): readonly T[] {
  const at = process.argv.indexOf(flag);
  if (moduleUrl !== `file://${process.argv[1]}` || at < 0) return all;
  const names = (process.argv[at + 1] ?? '').split(',');
  for (const name of names) {
    if (!(all as readonly string[]).includes(name)) throw new Error(`${flag}: no "${name}" (choose among ${all.join(', ')})`);
  }
  return names as T[];
}

/**
 * Runs one section alone (`node dist/soak/<section>.js [--minutes N]`) and
 * prints its report; for working on a section without the others.
 */
export async function runStandalone(section: Section, argv = process.argv.slice(2)): Promise<void> {
  const at = argv.indexOf('--minutes');
  const minutes = at >= 0 ? Number(argv[at + 1]) : 0.5;
  const result = await section.run({ budgetMs: minutes * 60_000, log: (line) => process.stderr.write(`[${section.name}] ${line}\n`) });
  process.stdout.write(`${renderMarkdown([result], `## ${section.name} (${minutes} min)`)}\n`);
  if (result.failures.length > 0) process.exitCode = 1;
}

const interruptCleanups = new Set<() => void>();
let shutdownInstalled = false;

/**
 * Runs `remove` if the run is interrupted (SIGINT, SIGTERM, SIGHUP) before
 * the returned function is called: a soak stopped with Ctrl-C still removes
 * the kernel objects it made (and stops the children spawned through
 * ipckit, which shutdownOn forwards the signal to).
 */
export function removeOnInterrupt(remove: () => void): () => void {
  if (!shutdownInstalled) {
    shutdownInstalled = true;
    shutdownOn(['SIGINT', 'SIGTERM', 'SIGHUP'], {
      cleanup: () => {
        for (const cleanup of interruptCleanups) {
          try {
            cleanup();
          } catch {
            /* Removed already, or never made: the others still run. */
          }
        }
      },
    });
  }
  interruptCleanups.add(remove);
  return () => void interruptCleanups.delete(remove);
}
