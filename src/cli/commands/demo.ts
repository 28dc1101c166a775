/**
 * `ipckit demo <topic>`: single phenomena of the notes, between real processes.
 * @internal
 * @module
 */
import { onSignal } from '../../signal.js';
import { createRaceSegment, race } from '../race.js';
import { type Group, type Leaf, intOption, printJson } from '../program.js';
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

export const demoCommand: Group = {
  name: 'demo',
  summary: 'single phenomena shown between real processes',
  children: [raceDemo, ctrlCDemo],
};
