/**
 * `ipckit watch`: the objects `ipckit ls` lists, refreshed like `top`, with
 * their depth and the rates measured between two refreshes.
 *
 * Samples are taken in a worker thread (watch-worker.ts), so the event loop
 * only schedules, draws and listens to the keyboard and signals. A refresh
 * is due every interval, counted from the start; one that falls due while a
 * sample is still being taken or printed is skipped, never queued.
 * @internal
 * @module
 */
import { writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import type { IpcObjectKind } from '../../inventory.js';
import { type CommandContext, intOption, jsonText, type Leaf, onStopSignals, usageError, writeOut } from '../program.js';
import { type WatchFilter, type WatchSample, type WatchedObject, parseKinds } from '../watch-sample.js';
import { addressNote, printable, processesCell, table } from './ls.js';

const WORKER = new URL('../watch-worker.js', import.meta.url);

const SORTS = ['name', 'depth', 'rate'] as const;
type Sort = (typeof SORTS)[number];

/**
 * Rates per second between the previous sample of an object and this one:
 * `depth` and `bytes`, the change of those gauges (negative when they fell);
 * `sent` and `received`, messages counted by a channel's own counters. Null
 * when there is no earlier sample, a gauge is unknown, or the object keeps
 * no such count.
 */
interface WatchRates {
  depth: number | null;
  bytes: number | null;
  sent: number | null;
  received: number | null;
}

/** One refresh, as --json prints it (one line each). */
interface Frame {
  /** When the sample began, in milliseconds since the epoch (fractional). */
  time: number;
  /** The --interval, in seconds. */
  interval: number;
  /** Seconds since the previous frame's time; null for the first. */
  elapsed: number | null;
  /** Refreshes that fell due while the previous one was still being taken or printed, and were skipped. */
  skipped: number;
  counts: { objects: number; kinds: Partial<Record<IpcObjectKind, number>>; all: number };
  objects: (WatchedObject & { rates: WatchRates })[];
  notes: string[];
}

interface Settings {
  intervalMs: number;
  /** Frames to print before exiting; undefined: until asked to stop. */
  limit: number | undefined;
  sort: Sort;
  filter: WatchFilter;
  filtered: boolean;
}

function settings(ctx: CommandContext): Settings {
  const raw = ctx.values.interval === undefined ? '1' : String(ctx.values.interval);
  const seconds = /^([0-9]+(\.[0-9]*)?|\.[0-9]+)$/.test(raw) ? Number(raw) : NaN;
  if (!(seconds >= 0.1 && seconds <= 3600)) throw usageError(`--interval must be a number of seconds from 0.1 to 3600; got "${raw}".`);
  if (ctx.values.once === true && ctx.values.iterations !== undefined) throw usageError('Use either --once or -n, not both.');
  const limit = ctx.values.once === true ? 1 : intOption(ctx, 'iterations', 1, 2 ** 31 - 1);
  const sort = String(ctx.values.sort ?? 'name');
  if (!(SORTS as readonly string[]).includes(sort)) throw usageError(`--sort must be name, depth or rate; got "${sort}".`);
  const filter: WatchFilter = {};
  if (ctx.values.kind !== undefined) filter.kinds = parseKinds(String(ctx.values.kind));
  if (ctx.values.name !== undefined) {
    if (ctx.values.name === '') throw usageError('--name must not be empty.');
    filter.name = String(ctx.values.name);
  }
  return { intervalMs: seconds * 1000, limit, sort: sort as Sort, filter, filtered: Object.keys(filter).length > 0 };
}

/** What identifies an object from one sample to the next (a System V object removed and made again under its key has a new id). */
function identity(o: WatchedObject): string {
  return JSON.stringify([o.kind, o.address, o.id ?? null, o.inode ?? null, o.deleted === true]);
}

/** Change per second of a gauge; null without both values. */
function gaugeRate(before: number | null | undefined, now: number | null | undefined, seconds: number): number | null {
  return before === null || before === undefined || now === null || now === undefined ? null : (now - before) / seconds;
}

/** Counts per second of a counter; null without both values, or if it went back (the object was made again). */
function counterRate(before: number | undefined, now: number | undefined, seconds: number): number | null {
  return before === undefined || now === undefined || now < before ? null : (now - before) / seconds;
}

/** The frame of `sample`, with rates against `previous` (the frame before it, if any). Objects that vanished are simply absent. */
function buildFrame(sample: WatchSample, previous: Frame | undefined, s: Settings, skipped: number): Frame {
  const seconds = previous === undefined ? null : (sample.time - previous.time) / 1000;
  const before = new Map(previous?.objects.map((o) => [identity(o), o]));
  const objects = sample.objects.map((o) => {
    const last = seconds === null || seconds <= 0 ? undefined : before.get(identity(o));
    const rates: WatchRates = last === undefined ? { depth: null, bytes: null, sent: null, received: null } : {
      depth: gaugeRate(last.depth, o.depth, seconds!),
      bytes: gaugeRate(last.bytes, o.bytes, seconds!),
      sent: counterRate(last.sent, o.sent, seconds!),
      received: counterRate(last.received, o.received, seconds!),
    };
    return { ...o, rates };
  });
  objects.sort(ORDER[s.sort]);
  const kinds: Frame['counts']['kinds'] = {};
  for (const o of objects) kinds[o.kind] = (kinds[o.kind] ?? 0) + 1;
  return {
    time: sample.time, interval: s.intervalMs / 1000, elapsed: seconds, skipped,
    counts: { objects: objects.length, kinds, all: sample.all }, objects, notes: sample.notes,
  };
}

type Row = Frame['objects'][number];
const byName = (a: Row, b: Row): number => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0);
/** Unknown values sort after every known one (two unknown ones differ by NaN, which `||` passes over like 0). */
const known = (value: number | null | undefined): number => value ?? -Infinity;
/** How busy an object is: the largest of its depth's change and its counted sends and receives, per second. */
function activity(o: Row): number {
  const rates = [o.rates.depth === null ? null : Math.abs(o.rates.depth), o.rates.sent, o.rates.received].filter((r): r is number => r !== null);
  return rates.length === 0 ? -Infinity : Math.max(...rates);
}
const ORDER: Record<Sort, (a: Row, b: Row) => number> = {
  name: byName,
  depth: (a, b) => known(b.depth) - known(a.depth) || known(b.bytes) - known(a.bytes) || byName(a, b),
  rate: (a, b) => activity(b) - activity(a) ||
    known(b.rates.bytes === null ? null : Math.abs(b.rates.bytes)) - known(a.rates.bytes === null ? null : Math.abs(a.rates.bytes)) || byName(a, b),
};

/** Which gauges a kind has at all: the others are shown as "-", an unknown value of one it has as "?". */
function hasGauge(o: Row, gauge: 'depth' | 'bytes'): boolean {
  if (gauge === 'bytes') return o.kind === 'posix-mq' || o.kind === 'sysv-mq' || o.kind === 'channel' || o.kind === 'fifo';
  return o.kind === 'posix-mq' || o.kind === 'sysv-mq' || o.kind === 'channel' || o.kind.endsWith('-sem') || o.state === 'listening';
}

function gaugeCell(o: Row, gauge: 'depth' | 'bytes'): string {
  const value = o[gauge];
  return value !== null ? String(value) : hasGauge(o, gauge) ? '?' : '-';
}

/** A rate as the table shows it: 3 significant figures at most, a sign on a change that is not 0; "-" when unknown. */
function rateCell(rate: number | null, signed: boolean): string {
  if (rate === null) return '-';
  const size = Math.abs(rate);
  const text = String(Number(size >= 100 ? size.toFixed(0) : size >= 10 ? size.toFixed(1) : size.toFixed(2)));
  return text === '0' ? '0' : `${rate < 0 ? '-' : signed ? '+' : ''}${text}`;
}

const COLUMNS = ['KIND', 'ADDRESS', 'DEPTH', 'DEPTH/s', 'BYTES', 'BYTES/s', 'SENT/s', 'RECV/s', 'PROCESSES'];

/** The cells of a row; the address is shortened to `addressWidth` characters (by its middle) when given. */
function cells(o: Row, addressWidth?: number): string[] {
  let address = `${printable(o.address)}${addressNote(o)}`;
  if (addressWidth !== undefined && [...address].length > addressWidth) {
    const chars = [...address];
    const head = Math.ceil((addressWidth - 1) / 2);
    address = `${chars.slice(0, head).join('')}…${chars.slice(chars.length - (addressWidth - 1 - head)).join('')}`;
  }
  return [
    o.kind, address, gaugeCell(o, 'depth'), rateCell(o.rates.depth, true), gaugeCell(o, 'bytes'), rateCell(o.rates.bytes, true),
    rateCell(o.rates.sent, false), rateCell(o.rates.received, false), processesCell(o, (p) => p.command),
  ];
}

/** The header line: time, interval, object counts (by kind), order, and skipped refreshes. */
function headerLine(frame: Frame, s: Settings): string {
  const time = new Date(frame.time).toTimeString().slice(0, 8);
  const kinds = Object.entries(frame.counts.kinds).map(([kind, n]) => `${n} ${kind}`).join(', ');
  const count = `${frame.counts.objects}${s.filtered ? ` of ${frame.counts.all}` : ''} object${frame.counts.all === 1 && !s.filtered ? '' : 's'}`;
  return `ipckit watch  ${time}  every ${frame.interval}s  ${count}${kinds ? ` (${kinds})` : ''}  sort ${s.sort}` +
    `${frame.skipped > 0 ? `  ${frame.skipped} refresh${frame.skipped === 1 ? '' : 'es'} skipped` : ''}`;
}

/** A frame as plain text, for a pipe, a file or -n: the header, the whole table (or a line saying there is nothing), a blank line. */
function plainFrame(frame: Frame, s: Settings, notes: boolean): string {
  const body = frame.objects.length === 0 ? 'No IPC objects found.' : table([COLUMNS, ...frame.objects.map((o) => cells(o))]);
  return `${headerLine(frame, s)}\n${body}\n${notes ? frame.notes.map((n) => `note: ${n}\n`).join('') : ''}\n`;
}

/** The longest an address is shown in the live view: longer ones lose their middle. */
const LIVE_ADDRESS_WIDTH = 40;

/**
 * A frame for a terminal of `columns` × `rows`: at most `rows` lines of at
 * most `columns` characters, the rows that do not fit replaced by a line
 * saying how many there are.
 */
function liveLines(frame: Frame, s: Settings, columns: number, rows: number): string[] {
  let lines: string[];
  if (frame.objects.length === 0) {
    lines = [headerLine(frame, s), 'No IPC objects found.'];
  } else {
    const room = rows - 2; // Below the header and the column titles.
    const shown = frame.objects.length <= room ? frame.objects : frame.objects.slice(0, Math.max(0, room - 1));
    lines = [headerLine(frame, s), ...table([COLUMNS, ...shown.map((o) => cells(o, LIVE_ADDRESS_WIDTH))]).split('\n')];
    const hidden = frame.objects.length - shown.length;
    if (hidden > 0) lines.push(`… ${hidden} more (a taller terminal, --kind or --name show them)`);
  }
  return lines.slice(0, Math.max(0, rows)).map((line) => [...line].slice(0, Math.max(0, columns)).join(''));
}

/** Alternate screen, cursor hidden, no line wrapping (a line longer than the terminal is cut, not wrapped). */
const ENTER = '\x1b[?1049h\x1b[?25l\x1b[?7l';
/** Wrapping, the cursor and the normal screen back. */
const LEAVE = '\x1b[?7h\x1b[?25h\x1b[?1049l';

/**
 * The live view on a terminal. `leave()` restores the terminal; it runs on
 * every way out (quit key, signal, error), and once more at process exit in
 * case something skipped it. Ctrl-Z (a key in raw mode) and SIGTSTP suspend
 * it as they suspend `top`: the terminal is restored, the process stops, and
 * on `fg` (SIGCONT) the view is drawn again.
 */
class LiveScreen {
  #active = false;
  #frame: Frame | undefined;
  readonly #settings: Settings;
  readonly #quit: () => void;
  readonly #onResize = (): void => this.#draw();
  readonly #onKey = (chunk: Buffer): void => {
    // q, Q, or Ctrl-C (in raw mode a key, not a signal).
    if (chunk.includes(0x71) || chunk.includes(0x51) || chunk.includes(0x03)) this.#quit();
    else if (chunk.includes(0x1a)) this.#suspend(); // Ctrl-Z, likewise.
  };
  readonly #onStop = (): void => this.#suspend();
  readonly #onContinue = (): void => this.#resume();
  readonly #onExit = (): void => this.leave();

  constructor(s: Settings, quit: () => void) {
    this.#settings = s;
    this.#quit = quit;
  }

  enter(): void {
    this.#active = true;
    process.on('exit', this.#onExit);
    this.#take();
    process.stdout.on('resize', this.#onResize);
    if (process.stdin.isTTY) {
      process.stdin.on('data', this.#onKey);
      process.stdin.resume();
    }
    // process.on, not onSignal: removing the last listener gives SIGTSTP its default action back at once (see #suspend).
    process.on('SIGTSTP', this.#onStop);
    process.on('SIGCONT', this.#onContinue);
  }

  async show(frame: Frame): Promise<boolean> {
    this.#frame = frame;
    return (await writeOut(this.#screen())) === undefined;
  }

  #screen(): string {
    const lines = liveLines(this.#frame!, this.#settings, process.stdout.columns || 80, process.stdout.rows || 24);
    // Home, each line over the old one (the rest of it cleared), then the rest of the screen cleared.
    return `\x1b[H${lines.map((line) => `${line}\x1b[K`).join('\r\n')}\x1b[J`;
  }

  #draw(): void {
    if (this.#active && this.#frame !== undefined) void writeOut(this.#screen());
  }

  /** The alternate screen and raw keys; again after a stop, when the shell may have reset the terminal's modes. */
  #take(): void {
    writeSync(1, ENTER);
    if (process.stdin.isTTY) {
      // Node skips a switch to the mode it believes is set: leave it first.
      process.stdin.setRawMode(false);
      process.stdin.setRawMode(true);
    }
  }

  /** The terminal as it was before: its modes, the cursor, the normal screen. */
  #release(): void {
    if (process.stdin.isTTY) {
      try {
        process.stdin.setRawMode(false);
      } catch {
        /* The terminal is gone (SIGHUP). */
      }
    }
    try {
      writeSync(1, LEAVE);
    } catch {
      /* The terminal is gone. */
    }
  }

  /**
   * Ctrl-Z or SIGTSTP: restores the terminal, then stops the process as
   * SIGTSTP's default action does (the shell sees a stopped job). Once
   * continued, takes the terminal back and redraws. A process in an orphaned
   * process group is not stopped (the kernel discards the signal): the view
   * simply comes back.
   */
  #suspend(): void {
    if (!this.#active) return;
    this.#release();
    process.off('SIGTSTP', this.#onStop);
    try {
      // Delivered to this thread before kill() returns: it returns once the process is continued.
      process.kill(process.pid, 'SIGTSTP');
    } finally {
      process.on('SIGTSTP', this.#onStop);
    }
    this.#resume();
  }

  /** Continued (after our own stop, or a SIGSTOP from elsewhere): the terminal again, and the last frame. */
  #resume(): void {
    if (!this.#active) return;
    this.#take();
    this.#draw();
  }

  leave(): void {
    if (!this.#active) return;
    this.#active = false;
    process.off('exit', this.#onExit);
    process.off('SIGTSTP', this.#onStop);
    process.off('SIGCONT', this.#onContinue);
    process.stdout.off('resize', this.#onResize);
    if (process.stdin.isTTY) {
      process.stdin.off('data', this.#onKey);
      process.stdin.pause();
    }
    this.#release();
  }
}

/** Samples from the worker thread, one at a time. */
class Sampler {
  readonly #worker: Worker;
  #waiting: { resolve: (sample: WatchSample) => void; reject: (err: unknown) => void } | undefined;
  #failure: unknown;

  constructor(filter: WatchFilter) {
    this.#worker = new Worker(WORKER, { workerData: filter });
    this.#worker.on('message', (sample: WatchSample) => {
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting?.resolve(sample);
    });
    const fail = (err: unknown): void => {
      this.#failure ??= err;
      this.#waiting?.reject(err);
      this.#waiting = undefined;
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`The sampling thread exited (code ${code}).`)));
  }

  sample(): Promise<WatchSample> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
      this.#worker.postMessage('sample');
    });
  }

  close(): void {
    this.#worker.removeAllListeners('exit');
    void this.#worker.terminate();
  }
}

export const watchCommand: Leaf = {
  name: 'watch',
  summary: 'watch IPC objects live: depth, rates and processes, refreshed like top',
  args: '',
  minArgs: 0,
  maxArgs: 0,
  details: 'Lists what "ipckit ls" lists, every --interval seconds, with rates measured between two refreshes.\n' +
    'DEPTH: messages queued (queues, channels), the value (a named semaphore; a System V set: the sum of\n' +
    'its values), connections waiting to be accepted (a listening socket). BYTES: bytes queued (queues,\n' +
    'channels: the ring bytes; a FIFO: the bytes in its pipe, read only while some process has it open for\n' +
    'reading). DEPTH/s and BYTES/s: their change per second since the previous refresh. SENT/s and RECV/s:\n' +
    'messages per second counted by a channel\'s own counters; no other object keeps such counts. "-": no\n' +
    'such value, or no earlier refresh of this object to measure from; "?": a value that could not be read.\n' +
    'PROCESSES as in ls, with each live process\'s command: open:PID(COMMAND).\n' +
    'On a terminal: a live view (q or Ctrl-C quits; Ctrl-Z suspends it until fg). With -n/--once, or when\n' +
    'stdout is not a terminal: plain frames one after the other, each a header line, the table and a blank\n' +
    'line. --json: one JSON object per refresh (see docs/watch.md). A refresh due while the previous one is\n' +
    'still running is skipped. SIGINT, SIGTERM and SIGHUP end it like q: exit status 0.',
  options: {
    interval: { type: 'string', value: 'SECONDS', description: 'seconds between refreshes, 0.1 to 3600 (default 1)' },
    iterations: { type: 'string', short: 'n', value: 'N', description: 'print N refreshes, then exit' },
    once: { type: 'boolean', description: 'print one refresh, then exit (like -n 1; no rates)' },
    kind: { type: 'string', value: 'KINDS', description: 'only mq, shm, channel, sem, fifo, socket, or kinds as ls prints them (a,b,...)' },
    name: { type: 'string', value: 'PATTERN', description: 'only addresses containing PATTERN (with * or ?: matching it whole)' },
    sort: { type: 'string', value: 'name|depth|rate', description: 'row order: address (default), largest depth, busiest' },
  },
  async run(ctx) {
    const s = settings(ctx);
    const live = !ctx.json && s.limit === undefined && process.stdout.isTTY === true;
    const stopper = new AbortController();
    const stopped = new Promise<undefined>((resolve) => stopper.signal.addEventListener('abort', () => resolve(undefined), { once: true }));
    const stop = (): void => stopper.abort();
    const restoreSignals = onStopSignals(stop);
    const screen = live ? new LiveScreen(s, stop) : undefined;
    const sampler = new Sampler(s.filter);
    try {
      screen?.enter();
      const start = performance.now();
      let tick = 0;
      let skipped = 0;
      let frames = 0;
      let previous: Frame | undefined;
      let lastNotes: string | undefined;
      for (;;) {
        const sample = await Promise.race([sampler.sample(), stopped]);
        if (sample === undefined) break;
        const frame = buildFrame(sample, previous, s, skipped);
        previous = frame;
        skipped = 0;
        let printed: boolean;
        if (screen !== undefined) {
          printed = await screen.show(frame);
        } else {
          const notes = JSON.stringify(frame.notes);
          const text = ctx.json ? `${jsonText(frame)}\n` : plainFrame(frame, s, notes !== lastNotes);
          lastNotes = notes;
          printed = (await writeOut(text)) === undefined;
        }
        // A reader that left (… | head -1) ends the watch; nothing was lost.
        if (!printed || ++frames === s.limit) break;
        const due = Math.floor((performance.now() - start) / s.intervalMs) + 1;
        skipped = due - tick - 1;
        tick = due;
        await sleep(start + tick * s.intervalMs - performance.now(), undefined, { signal: stopper.signal }).catch(() => undefined);
        if (stopper.signal.aborted) break;
      }
    } finally {
      screen?.leave();
      sampler.close();
      restoreSignals();
    }
  },
};
