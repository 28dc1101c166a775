/**
 * `ipckit demo <topic>`: single phenomena of the notes, between real processes.
 * @internal
 * @module
 */
import { createRaceSegment, race } from '../race.js';
import { type Group, type Leaf, intOption, printJson } from '../program.js';

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

export const demoCommand: Group = {
  name: 'demo',
  summary: 'single phenomena shown between real processes',
  children: [raceDemo],
};
