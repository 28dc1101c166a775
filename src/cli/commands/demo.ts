/**
 * `ipckit demo <topic>`: single phenomena of the notes, between real processes.
 * @internal
 * @module
 */
import { tmpdir } from 'node:os';
import { SERVER_STRATEGIES, type ServerStrategy, serve } from '../../server.js';
import { onSignal } from '../../signal.js';
import { type MessageSocket, connect } from '../../socket.js';
import { createRaceSegment, race } from '../race.js';
import { type Group, type Leaf, intOption, onStopSignals, printJson } from '../program.js';
import { describeSignal, signalJson } from './signal.js';

const raceDemo: Leaf = {
  name: 'race',
  summary: 'processes updating one shared counter lose updates, until a Mutex guards it',
  args: '',
  minArgs: 0,
  maxArgs: 0,
  details: 'N processes each add 1 to one counter in a shared-memory segment M times: first with a plain\n' +
    'read-modify-write (concurrent updates overwrite each other: the total comes out short), then under\n' +
    'the segment\'s Mutex (the total is exact). --json prints\n' +
    '{ "processes", "increments", "expected", "unlocked", "locked" } (the last two are final counter values).',
  options: {
    processes: { type: 'string', value: 'N', description: 'worker processes (default 4)' },
    increments: { type: 'string', value: 'M', description: 'increments per process (default 100000)' },
  },
  async run(ctx) {
    const processes = intOption(ctx, 'processes', 1, 64, 4)!;
    const increments = intOption(ctx, 'increments', 1, 10_000_000, 100_000)!;
    const expected = processes * increments;
    const segment = createRaceSegment();
    try {
      if (!ctx.json) {
        process.stdout.write(`${processes} processes each add 1 to one counter in ${segment.name} ${increments} times (expected total ${expected}).\n`);
      }
      const unlocked = await race(segment, false, processes, increments);
      if (!ctx.json) {
        const lost = expected - unlocked.counter;
        process.stdout.write(`  without a lock: counter = ${unlocked.counter}  (${lost} updates lost, ${(100 * lost / expected).toFixed(1)}%) in ${unlocked.ms} ms\n`);
      }
      const locked = await race(segment, true, processes, increments);
      if (ctx.json) {
        printJson({ processes, increments, expected, unlocked: unlocked.counter, locked: locked.counter });
      } else {
        const lost = expected - locked.counter;
        process.stdout.write(`  with the Mutex: counter = ${locked.counter}  (${lost === 0 ? 'none lost' : `${lost} lost`}) in ${locked.ms} ms\n`);
      }
    } finally {
      segment.close();
      segment.unlink();
    }
  },
};

const ctrlCDemo: Leaf = {
  name: 'ctrl-c',
  summary: 'a process with its own SIGINT handler: Ctrl+C runs it, and it shuts down cleanly',
  args: '',
  minArgs: 0,
  maxArgs: 0,
  details: 'Works until interrupted. Ctrl+C makes the terminal send SIGINT to the foreground process group;\n' +
    'instead of dying (the default action), this process runs its handler, which says who sent the\n' +
    'signal, cleans up for --cleanup milliseconds and exits with status 130 (128 + SIGINT). A second\n' +
    'Ctrl+C during the cleanup forces the exit at once. From another shell: ipckit signal send PID SIGINT.\n' +
    'With --json: one object per event ("ready", "signal", "forced", "clean-exit").',
  options: {
    cleanup: { type: 'string', value: 'MS', description: 'how long the clean shutdown takes (default 3000)' },
  },
  async run(ctx) {
    const cleanupMs = intOption(ctx, 'cleanup', 0, 600_000, 3000)!;
    const status = 130;
    const say = (event: string, text: string, extra: Record<string, unknown> = {}): void => {
      if (ctx.json) printJson({ event, process: process.pid, ...extra });
      else process.stdout.write(`${text}\n`);
    };
    let interrupts = 0;
    let ticks = 0;
    const ticker = setInterval(() => {
      ticks++;
      if (!ctx.json) process.stdout.write(`working… ${ticks} s\n`);
    }, 1000);
    const done = new Promise<void>((resolve) => {
      onSignal('SIGINT', (info) => {
        interrupts++;
        if (interrupts === 1) {
          clearInterval(ticker);
          say('signal', `handler: got ${describeSignal(info)}.\n` +
            `handler: shutting down cleanly (${cleanupMs} ms); press Ctrl+C again to force the exit.`,
          { ...signalJson(info), count: 1 });
          setTimeout(() => {
            say('clean-exit', `handler: clean shutdown done; exiting with status ${status} (128 + SIGINT).`, { status });
            resolve();
          }, cleanupMs);
          return;
        }
        say('forced', `handler: second ${info.signal}: forcing the exit now (status ${status}).`, { ...signalJson(info), count: interrupts, status });
        process.exit(status);
      });
    });
    say('ready', `pid ${process.pid} is working. Press Ctrl+C: its own SIGINT handler will run instead of the default action.\n` +
      `(From another shell: ipckit signal send ${process.pid} SIGINT)`);
    await done;
    process.exit(status);
  },
};

/** The handler of the servers of `demo blocking`: it replies with the pid of the process that ran it. */
const PID_HANDLER = new URL('../pid-handler.js', import.meta.url);

/** Processes in the prefork pool of `demo blocking`: fixed, so that the figures mean the same on every machine. */
const DEMO_WORKERS = 2;

/** What one server did in `demo blocking` (its --json form). */
export interface HoldRun {
  /** Processes that ran the handler for the waiting clients (distinct pids in their replies). */
  processes: number;
  /** How long each waiting client waited for its reply after sending its request, in ms, in the order they connected. */
  waitMs: number[];
  medianWaitMs: number;
  maxWaitMs: number;
  /** Replies that came while the slow client still held its connection. */
  repliedWhileSlowHeld: number;
  /** No client had its reply before the slow client left: read from the order of the events, not from times. */
  waitedForSlowClient: boolean;
  /** How long the slow client held its connection, in ms. */
  slowHeldMs: number;
}

const tenths = (ms: number): number => Math.round(ms * 10) / 10;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * One server of `strategy` at `address`: a slow client connects first and
 * sends nothing; then `clients` clients each send one request and wait for
 * the reply. The slow client leaves after `holdMs`, or as soon as every
 * other client has its reply. `track` is given the function that closes
 * everything, for as long as there is something to close.
 */
async function holdAndAsk(strategy: ServerStrategy, address: string, clients: number, holdMs: number,
  track: (stop: (() => Promise<void>) | undefined) => void): Promise<HoldRun> {
  const server = await serve(address, PID_HANDLER, { strategy, ...(strategy === 'prefork' ? { workers: DEMO_WORKERS } : {}) });
  const socks: MessageSocket[] = [];
  let timer: NodeJS.Timeout | undefined;
  const stop = async (): Promise<void> => {
    clearTimeout(timer);
    for (const sock of socks) sock.close();
    // Stops and reaps its children, and removes its socket file.
    await server.close();
  };
  track(stop);
  try {
    // A request first to each process started with the server, so that none of them is still starting below.
    for (let i = 0; i < (strategy === 'prefork' ? DEMO_WORKERS : 1); i++) {
      const sock = await connect(address, { timeout: 5000 });
      socks.push(sock);
      await sock.send(Buffer.from('ready?'));
      await sock.receive({ timeout: 10_000 });
      sock.close();
    }
    socks.length = 0;
    const slow = await connect(address, { timeout: 5000 });
    socks.push(slow);
    const since = performance.now();
    // Events are numbered as they happen: a reply numbered after the departure came after it, however long either took.
    let events = 0;
    let departure: { event: number; ms: number } | undefined;
    const leave = (): { event: number; ms: number } => {
      if (departure === undefined) {
        departure = { event: ++events, ms: performance.now() - since };
        slow.close();
      }
      return departure;
    };
    timer = setTimeout(leave, holdMs);
    // One after the other: the kernel queues them in this order, behind the slow client.
    for (let i = 0; i < clients; i++) socks.push(await connect(address, { timeout: 5000 }));
    const replies = await Promise.all(socks.slice(1).map(async (sock) => {
      const sent = performance.now();
      await sock.send(Buffer.from('which process serves me?'));
      const { data } = await sock.receive({ timeout: holdMs + 10_000 });
      const reply = { pid: data.toString(), event: ++events, waited: performance.now() - sent };
      // A blocking server takes the next connection only once this one has ended.
      sock.close();
      return reply;
    }));
    const left = leave();
    const waits = replies.map((r) => r.waited);
    const before = replies.filter((r) => r.event < left.event).length;
    return {
      processes: new Set(replies.map((r) => r.pid)).size,
      waitMs: waits.map(tenths),
      medianWaitMs: tenths(median(waits)),
      maxWaitMs: tenths(Math.max(...waits)),
      repliedWhileSlowHeld: before,
      waitedForSlowClient: before === 0,
      slowHeldMs: tenths(left.ms),
    };
  } finally {
    track(undefined);
    await stop();
  }
}

/** Why each strategy came out as it did, printed under the table. */
const HOLD_EXPLAINED: Record<ServerStrategy, string> = {
  blocking: 'its one serving process sat in read() on the slow client\'s connection; the others waited in the\n' +
    'listen backlog until the slow client left, and were then served one after another.',
  fork: 'a new process for each connection: the slow client ties up only its own. The wait is mostly a Node\n' +
    'process starting (Node cannot fork(2) itself, so each child is a fresh process).',
  prefork: `a pool of ${DEMO_WORKERS} processes started beforehand; the server hands each connection to the next one as an\n` +
    'open descriptor (SCM_RIGHTS), and each serves its connections as they become ready.',
  poll: 'one process, non-blocking sockets visited every 10 ms: a request waits for the next visit.',
  event: 'one process, woken by the kernel (epoll) for the connections that are ready, and only for those.',
};

const blockingDemo: Leaf = {
  name: 'blocking',
  summary: 'a slow client stalls a blocking server, but none of the four fixes (fork, prefork, poll, event)',
  args: '',
  minArgs: 0,
  maxArgs: 0,
  details: 'Starts a server of each strategy in turn (blocking, fork, prefork, poll, event), each on a socket file of\n' +
    'its own in the temporary directory. A slow client connects first and sends nothing; then K clients each\n' +
    'send one request and wait for the reply. The slow client leaves after --hold ms, or as soon as the K\n' +
    'have their replies. A blocking server answers nobody before the slow client leaves; the others answer\n' +
    'at once. Every server is closed, its children stopped and its socket file removed, also on failure,\n' +
    'SIGINT, SIGTERM or SIGHUP. --json prints { "clients", "holdMs", "strategies": { STRATEGY: {\n' +
    '"processes", "waitMs", "medianWaitMs", "maxWaitMs", "repliedWhileSlowHeld", "waitedForSlowClient",\n' +
    '"slowHeldMs" } } }. waitMs has each client\'s wait from its request to its reply; waitedForSlowClient\n' +
    'is true when no reply came before the slow client left (from the order of the events, not from times).',
  options: {
    clients: { type: 'string', value: 'K', description: 'clients that send a request (default 5)' },
    hold: { type: 'string', value: 'MS', description: 'longest time the slow client holds its connection (default 1000)' },
  },
  async run(ctx) {
    const clients = intOption(ctx, 'clients', 1, 64, 5)!;
    const holdMs = intOption(ctx, 'hold', 1, 60_000, 1000)!;
    let stopCurrent: (() => Promise<void>) | undefined;
    // Interrupted: close what is open (the children would stop anyway, with their parent) and exit as the signal would.
    const restoreSignals = onStopSignals((info) => {
      void (stopCurrent?.() ?? Promise.resolve()).finally(() => process.exit(128 + info.number));
    });
    try {
      const columns = (cells: string[]): string => `  ${cells[0]!.padEnd(10)}${cells[1]!.padStart(9)}  ${cells[2]!.padEnd(39)}` +
        `${cells[3]!.padStart(12)}${cells[4]!.padStart(14)}\n`;
      if (!ctx.json) {
        process.stdout.write('A server that reads its clients with blocking calls serves one at a time: while it waits in read()\n' +
          'for one client, every other client waits too. Below, one server per strategy. A slow client connects\n' +
          `first and sends nothing; then ${clients} clients each send one request. The slow client leaves after ${holdMs} ms,\n` +
          `or as soon as the ${clients} have their replies.\n\n`);
        process.stdout.write(columns(['strategy', 'processes', 'replied while the slow client held on', 'median wait', 'longest wait']));
      }
      const strategies = {} as Record<ServerStrategy, HoldRun>;
      for (const strategy of SERVER_STRATEGIES) {
        const address = `unix:${tmpdir()}/ipckit-demo-blocking-${process.pid}-${strategy}.sock`;
        const run = await holdAndAsk(strategy, address, clients, holdMs, (stop) => { stopCurrent = stop; });
        strategies[strategy] = run;
        if (!ctx.json) {
          process.stdout.write(columns([strategy, String(run.processes), `${run.repliedWhileSlowHeld} of ${clients}`,
            `${run.medianWaitMs.toFixed(1)} ms`, `${run.maxWaitMs.toFixed(1)} ms`]));
        }
      }
      if (ctx.json) {
        printJson({ clients, holdMs, strategies });
        return;
      }
      process.stdout.write('\n');
      for (const strategy of SERVER_STRATEGIES) {
        process.stdout.write(`${`${strategy}:`.padEnd(10)}${HOLD_EXPLAINED[strategy].replace(/\n/g, `\n${' '.repeat(10)}`)}\n`);
      }
      process.stdout.write('\nThe servers run the same handler (docs/server.md); ipckit serve starts any of them from the shell.\n');
    } finally {
      restoreSignals();
    }
  },
};

export const demoCommand: Group = {
  name: 'demo',
  summary: 'single phenomena shown between real processes',
  children: [raceDemo, ctrlCDemo, blockingDemo],
};
