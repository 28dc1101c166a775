/**
 * `ipckit watch`: refreshes of what `ipckit ls` lists, with depths and rates,
 * checked on objects this file creates (every name and path holds one System
 * V key, so that `--name KEY` picks them all and nothing else), as NDJSON,
 * plain frames and in a real pseudo-terminal.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Channel, Fifo, NamedSemaphore, type PipeReadEnd, type PipeWriteEnd, PosixMessageQueue, SemaphoreSet, SysvMessageQueue, formatKey,
} from '../src/index.js';
import { CLI, fails, ipckit, jsonLines, launchIntoPipe, ok } from './helpers/cli.js';
import { MQUEUE_MAGIC, ObjectTracker, posixQueueExists, sysvQueueKeys, sysvSegmentKeys, sysvSemaphoreKeys } from './helpers/objects.js';
import { killAllPeers, trackChild } from './helpers/peer.js';
import { fifoBytes } from '../src/cli/watch-sample.js';
import { fifoSwap } from './helpers/fifo-swap.js';

const objects = new ObjectTracker();
const dirs: string[] = [];

after(async () => {
  await killAllPeers();
  objects.cleanup();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const PTY_RUN = fileURLToPath(new URL('../../test/helpers/pty-run.py', import.meta.url));
/** Whether python3 and its pty module are there to run a pseudo-terminal. */
const HAS_PTY = spawnSync('python3', ['-c', 'import pty']).status === 0;
/** This process's command name, as watch shows it. */
const COMMAND = readFileSync('/proc/self/comm', 'utf8').trim();
/** Whether a POSIX queue's bytes (QSIZE) can be read: from /dev/mqueue, or as root through a private mqueue mount. */
const QSIZE_KNOWN = ((): boolean => {
  try {
    if (statfsSync('/dev/mqueue').type === MQUEUE_MAGIC) return true;
  } catch {
    /* Not mounted. */
  }
  return process.getuid!() === 0 && spawnSync('unshare', ['--mount', 'true']).status === 0;
})();

interface Rates { depth: number | null; bytes: number | null; sent: number | null; received: number | null }
interface WatchedProcess { pid: number; role: string; alive: boolean; command: string | null }
interface Watched {
  kind: string; address: string; id?: number; depth: number | null; messages: number | null; bytes: number | null;
  value?: number | null; values?: number[]; sent?: number; received?: number; processes: WatchedProcess[]; rates: Rates;
}
interface Frame {
  time: number; interval: number; elapsed: number | null; skipped: number;
  counts: { objects: number; kinds: Record<string, number>; all: number }; objects: Watched[]; notes: string[];
}

/** What a header line may end with on a loaded machine. */
const SKIPPED = '(?: {2}\\d+ refresh(?:es)? skipped)?';

const NO_RATES: Rates = { depth: null, bytes: null, sent: null, received: null };

/** A System V key no queue, segment or set uses; watched objects of every kind carry it in their address. */
function freshKey(): { key: number; hex: string } {
  const key = objects.key();
  objects.sysvSem.add(key);
  return { key, hex: formatKey(key) };
}

/** A directory of this file's own, removed at the end. */
function freshDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-watch-'));
  dirs.push(dir);
  return dir;
}

/** The frames of a finished --json run. */
function frames(stdout: string): Frame[] {
  return jsonLines(stdout) as unknown as Frame[];
}

function find(frame: Frame, kind: string, address: string): Watched | undefined {
  return frame.objects.find((o) => o.kind === kind && o.address === address);
}

/** The change per second between two frames, computed as watch must: from the frames' own times. */
function perSecond(change: number, first: Frame, second: Frame): number {
  return change / ((second.time - first.time) / 1000);
}

/**
 * Runs `watch --json -n 2` on the objects `act` changes between the two
 * frames, after `setup`. `act` runs once the first frame is printed; the run
 * counts only if the second sample began after `act` was done (on a loaded
 * machine the watch may take it sooner: then it is run again, up to 5 times).
 */
async function twoFrames(args: string[], steps: {
  setup?: () => void; act: (first: Frame) => void | Promise<void>; check: (first: Frame, second: Frame) => void;
}, t: { diagnostic(message: string): void }): Promise<void> {
  const { setup, act, check } = steps;
  for (let attempt = 1; ; attempt++) {
    setup?.();
    const run = launchIntoPipe(['watch', '--json', '-n', '2', '--interval', '0.2', ...args]);
    const first = JSON.parse(await run.readLine()) as Frame;
    await act(first);
    const acted = Date.now();
    const second = JSON.parse(await run.readLine()) as Frame;
    run.readEnd.close();
    const r = await run.done;
    assert.deepEqual([r.status, r.stderr], [0, '']);
    if (second.time >= acted) {
      check(first, second);
      return;
    }
    t.diagnostic(`attempt ${attempt}: the second sample began before the changes were made; again`);
    assert.ok(attempt < 5, 'the watch never sampled after the changes');
  }
}

describe('ipckit watch --json', () => {
  it('reports exact depths, and for the second frame the rates of the changes made in between', async (t) => {
    const { key, hex } = freshKey();
    const posixName = objects.name(`watch-${hex}`);
    const channelName = objects.shmName(`watch-${hex}`);
    const semName = objects.semName(`watch-${hex}`);
    const fifoPath = path.join(freshDir(), `fifo-${hex}`);
    using posix = PosixMessageQueue.create(posixName, { maxMessages: 10, maxMessageSize: 64 });
    using sysv = SysvMessageQueue.create(key);
    using channel = Channel.create(channelName, { capacity: 1024 });
    using sem = NamedSemaphore.create(semName, { value: 2 });
    using set = SemaphoreSet.create(key, { count: 2, value: [1, 4] });
    Fifo.create(fifoPath);
    const reader: PipeReadEnd = await Fifo.openRead(fifoPath, { nonBlocking: true });
    const writer: PipeWriteEnd = await Fifo.openWrite(fifoPath);
    try {
      // The state before the first frame, and what each turn adds.
      let posixMessages = 0;
      let posixBytes = 0;
      let sysvMessages = 0;
      let sysvBytes = 0;
      let fifoBytes = 0;
      let sent = 0;
      let received = 0;
      let semValue = 2;
      const setValues = [1, 4];
      const fill = (): void => {
        for (const m of ['one', 'three']) posix.sendSync(Buffer.from(m));
        posixMessages += 2;
        posixBytes += 8;
        sysv.sendSync(7, Buffer.from('abcd'));
        sysvMessages += 1;
        sysvBytes += 4;
        writer.writeSync('0123456789');
        fifoBytes += 10;
        for (let i = 0; i < 4; i++) channel.sendSync(Buffer.from('12345678'));
        sent += 4;
        assert.equal(channel.tryReceive()?.data.toString(), '12345678');
        received += 1;
        sem.post(3);
        semValue += 3;
        set.opSync({ index: 0, delta: 2 });
        setValues[0]! += 2;
      };
      fill();
      // Each message of 8 bytes takes 16 ring bytes (an 8-byte header, no padding).
      const expected = (): Record<string, Partial<Watched>> => ({
        posix: { depth: posixMessages, messages: posixMessages, bytes: QSIZE_KNOWN ? posixBytes : null },
        sysv: { depth: sysvMessages, messages: sysvMessages, bytes: sysvBytes },
        fifo: { depth: null, messages: null, bytes: fifoBytes },
        channel: { depth: sent - received, messages: sent - received, bytes: 16 * (sent - received), sent, received },
        sem: { depth: semValue, value: semValue },
        set: { depth: setValues[0]! + setValues[1]!, values: [...setValues] },
      });
      const pick = (frame: Frame): Record<string, Partial<Watched>> => {
        const entries: [string, string, string][] = [
          ['posix', 'posix-mq', posixName], ['sysv', 'sysv-mq', hex], ['fifo', 'fifo', fifoPath], ['channel', 'channel', channelName],
          ['sem', 'posix-sem', semName], ['set', 'sysv-sem', hex],
        ];
        return Object.fromEntries(entries.map(([label, kind, address]) => {
          const o = find(frame, kind, address);
          assert.ok(o, `${kind} ${address} is not in the frame: ${JSON.stringify(frame.objects.map((x) => [x.kind, x.address]))}`);
          const keys = Object.keys(expected()[label]!) as (keyof Watched)[];
          return [label, Object.fromEntries(keys.map((k) => [k, o[k]]))];
        }));
      };
      await twoFrames(['--name', hex], { act: (first) => {
        assert.deepEqual(pick(first), expected());
        // Only these objects: the key is in every address and in nothing else.
        assert.deepEqual(first.objects.map((o) => o.kind).sort(), ['channel', 'fifo', 'posix-mq', 'posix-sem', 'sysv-mq', 'sysv-sem']);
        assert.deepEqual([first.elapsed, first.skipped, first.interval, first.counts.objects], [null, 0, 0.2, 6]);
        assert.deepEqual(first.counts.kinds, { channel: 1, fifo: 1, 'posix-mq': 1, 'posix-sem': 1, 'sysv-mq': 1, 'sysv-sem': 1 });
        for (const o of first.objects) assert.deepEqual(o.rates, NO_RATES, o.address);
        fill();
      }, check: (first, second) => {
        assert.deepEqual(pick(second), expected());
        assert.equal(second.elapsed, (second.time - first.time) / 1000);
        const rates = (kind: string, address: string): Rates => find(second, kind, address)!.rates;
        const rate = (change: number): number => perSecond(change, first, second);
        assert.deepEqual(rates('posix-mq', posixName), { depth: rate(2), bytes: QSIZE_KNOWN ? rate(8) : null, sent: null, received: null });
        assert.deepEqual(rates('sysv-mq', hex), { depth: rate(1), bytes: rate(4), sent: null, received: null });
        assert.deepEqual(rates('fifo', fifoPath), { depth: null, bytes: rate(10), sent: null, received: null });
        assert.deepEqual(rates('channel', channelName), { depth: rate(3), bytes: rate(48), sent: rate(4), received: rate(1) });
        assert.deepEqual(rates('posix-sem', semName), { depth: rate(3), bytes: null, sent: null, received: null });
        assert.deepEqual(rates('sysv-sem', hex), { depth: rate(2), bytes: null, sent: null, received: null });
        // The processes, with their commands: this process holds the FIFO and sent to the System V queue last.
        const me = { pid: process.pid, alive: true, command: COMMAND };
        assert.deepEqual(find(second, 'fifo', fifoPath)!.processes.filter((p) => p.pid === process.pid), [{ ...me, role: 'holder' }]);
        assert.deepEqual(find(second, 'sysv-mq', hex)!.processes, [{ ...me, role: 'last-send' }]);
        assert.deepEqual(find(second, 'channel', channelName)!.processes.filter((p) => p.role !== 'holder'),
          [{ ...me, role: 'producer' }, { ...me, role: 'consumer' }]);
      } }, t);
    } finally {
      reader.close();
      writer.close();
      Fifo.unlink(fifoPath);
      posix.unlink();
      sysv.remove();
      channel.unlink();
      sem.unlink();
      set.remove();
    }
  });

  it('drops an object that vanished, and gives one that appeared (or was made again under its key) no rate', async (t) => {
    const { key, hex } = freshKey();
    const gone = objects.name(`watch-gone-${hex}`);
    const added = objects.name(`watch-new-${hex}`);
    let queue: SysvMessageQueue | undefined;
    let firstId = -1;
    /** Removes the System V queue, and makes it again with `messages` messages. */
    const makeQueue = (messages: number): void => {
      queue?.remove();
      queue?.close();
      queue = SysvMessageQueue.create(key);
      for (let i = 0; i < messages; i++) queue.sendSync(1, Buffer.from('x'));
    };
    try {
      await twoFrames(['--name', hex, '--kind', 'mq'], {
        setup: () => {
          PosixMessageQueue.openOrCreate(gone).close();
          if (posixQueueExists(added)) PosixMessageQueue.unlink(added);
          makeQueue(1);
          firstId = queue!.id;
        },
        act: (first) => {
          // By address: "/..." sorts before "0x...".
          assert.deepEqual(first.objects.map((o) => [o.address, o.depth]), [[gone, 0], [hex, 1]]);
          PosixMessageQueue.unlink(gone);
          PosixMessageQueue.create(added).close();
          // Removed and made again with more messages: a new queue, whose depth is no change of the old one's.
          makeQueue(5);
        },
        check: (_first, second) => {
          assert.deepEqual(second.objects.map((o) => [o.address, o.depth, o.rates]), [[added, 0, NO_RATES], [hex, 5, NO_RATES]]);
          assert.notEqual(second.objects[1]!.id, firstId);
        },
      }, t);
    } finally {
      queue?.remove();
      queue?.close();
      PosixMessageQueue.unlink(added);
    }
  });

  it('filters by --kind (families and kinds) and --name (substring, or * and ? patterns), and sorts', async () => {
    const { key, hex } = freshKey();
    const small = objects.name(`watch-a-${hex}`);
    const big = objects.name(`watch-b-${hex}`);
    using a = PosixMessageQueue.create(small);
    using b = PosixMessageQueue.create(big);
    using sysv = SysvMessageQueue.create(key);
    using set = SemaphoreSet.create(key, { value: 3 });
    for (let i = 0; i < 3; i++) b.sendSync(Buffer.from('b'));
    a.sendSync(Buffer.from('a'));
    for (let i = 0; i < 2; i++) sysv.sendSync(1, Buffer.from('s'));
    const listed = async (...args: string[]): Promise<string[]> => {
      const all = frames((await ok(['watch', '--json', '--once', ...args])).stdout);
      assert.equal(all.length, 1);
      return all[0]!.objects.map((o) => `${o.kind} ${o.address}`);
    };
    const [byName, byDepth, mqOnly, posixOnly, sem, pattern, one, none] = await Promise.all([
      listed('--name', hex),
      listed('--name', hex, '--sort', 'depth'),
      listed('--name', hex, '--kind', 'mq'),
      listed('--name', hex, '--kind', 'posix-mq,posix-sem'),
      listed('--name', hex, '--kind', 'sem'),
      listed('--name', `/ipckit-test-watch-?-${hex}-*`),
      listed('--name', hex, '--kind', 'sysv-mq'),
      listed('--name', `*${hex}`, '--kind', 'fifo,socket'),
    ]);
    // By address ("/..." before "0x..."), then by kind.
    assert.deepEqual(byName, [`posix-mq ${small}`, `posix-mq ${big}`, `sysv-mq ${hex}`, `sysv-sem ${hex}`]);
    assert.deepEqual(byDepth, [`posix-mq ${big}`, `sysv-sem ${hex}`, `sysv-mq ${hex}`, `posix-mq ${small}`]);
    assert.deepEqual(mqOnly.sort(), [`posix-mq ${big}`, `posix-mq ${small}`, `sysv-mq ${hex}`].sort());
    assert.deepEqual(posixOnly.sort(), [`posix-mq ${big}`, `posix-mq ${small}`].sort());
    assert.deepEqual(sem, [`sysv-sem ${hex}`]);
    assert.deepEqual(pattern.sort(), [`posix-mq ${big}`, `posix-mq ${small}`].sort());
    assert.deepEqual(one, [`sysv-mq ${hex}`]);
    assert.deepEqual(none, []);
    a.unlink();
    b.unlink();
    sysv.remove();
    set.remove();
  });

  it('--sort rate puts the busiest first', async (t) => {
    const { key, hex } = freshKey();
    const quiet = objects.name(`watch-quiet-${hex}`);
    const busy = objects.name(`watch-busy-${hex}`);
    using q = PosixMessageQueue.create(quiet);
    using b = PosixMessageQueue.create(busy, { maxMessages: 10 });
    using sysv = SysvMessageQueue.create(key);
    try {
      await twoFrames(['--name', hex, '--sort', 'rate'], {
        setup: () => {
          while (b.tryReceive() !== undefined) { /* Emptied for another attempt. */ }
          while (sysv.tryReceive() !== undefined) { /* Likewise. */ }
        },
        act: () => {
          for (let i = 0; i < 3; i++) b.sendSync(Buffer.from('x'));
          sysv.sendSync(1, Buffer.from('y'));
        },
        // 3 and 1 messages more per second; the quiet one, no change.
        check: (_first, second) => assert.deepEqual(second.objects.map((o) => o.address), [busy, hex, quiet]),
      }, t);
    } finally {
      q.unlink();
      b.unlink();
      sysv.remove();
    }
  });

  it('lists 2,000 System V queues in one frame, and draws them in a terminal that shows a few', async () => {
    const used = new Set([...sysvQueueKeys(), ...sysvSegmentKeys(), ...sysvSemaphoreKeys()]);
    // Consecutive keys from a random base, so that one --name prefix picks them all (and nothing else: checked first).
    let base: number;
    do base = (0x7f000000 | (Math.floor(Math.random() * 0xfff) << 12)) >>> 0; while ([...used].some((k) => k >>> 12 === base >>> 12));
    const prefix = formatKey(base).slice(0, -3);
    const keys = Array.from({ length: 2000 }, (_, i) => base + i);
    for (const k of keys) objects.sysv.add(k);
    const queues = keys.map((k) => SysvMessageQueue.create(k));
    try {
      queues[1999]!.sendSync(1, Buffer.from('last'));
      const r = await ok(['watch', '--json', '--once', '--kind', 'sysv-mq', '--name', prefix, '--sort', 'depth']);
      const [frame] = frames(r.stdout);
      // Another test may make a queue with a key of the same prefix meanwhile: only ours are checked.
      const mine = new Set(keys.map(formatKey));
      const listed = frame!.objects.filter((o) => mine.has(o.address));
      assert.deepEqual(listed.map((o) => o.address), [formatKey(keys[1999]!), ...keys.slice(0, 1999).map(formatKey)]);
      assert.deepEqual(listed.map((o) => o.depth), [1, ...Array<number>(1999).fill(0)]);

      if (!HAS_PTY) return;
      const screen = await inPty(['--kind', 'sysv-mq', '--name', prefix, '--sort', 'depth'], [{ waitFor: 'more', send: 'q' }], [12, 100]);
      assertRestored(screen);
      const lines = screens(screen.output)[0]!;
      assert.equal(lines.length, 12);
      assert.match(lines[0]!, /^ipckit watch {2}\d\d:\d\d:\d\d {2}every 1s {2}\d+ of \d+ objects \(\d+ sysv-mq\) {2}sort depth/);
      assert.ok(lines[2]!.startsWith(`sysv-mq  ${formatKey(keys[1999]!)}  1 `), lines[2]);
      // 9 rows shown: 2 lines above them, this one below.
      const more = /^… (\d+) more \(a taller terminal, --kind or --name show them\)$/.exec(lines[11]!);
      assert.ok(more, lines[11]);
      assert.equal(Number(more[1]) + 9, Number(/(\d+) sysv-mq/.exec(lines[0]!)![1]));
    } finally {
      for (const q of queues) {
        q.remove();
        q.close();
      }
    }
  });
});

describe('ipckit watch and a hostile FIFO', () => {
  it('reads a FIFO\'s bytes only through the FIFO its holder reads: a directory swapped for a symbolic link opens nothing else', async () => {
    const dir = freshDir();
    const swap = fifoSwap(dir);
    // This process holds the FIFO for reading (so watch may read its bytes), with 3 bytes in it.
    const reader = await Fifo.openRead(swap.fifo, { nonBlocking: true });
    const writer = await Fifo.openWrite(swap.fifo);
    writer.writeSync('abc');
    try {
      // Another user's game: the FIFO's directory and a link to the decoy's, exchanged as fast as it goes.
      await swap.start();
      const seen = { read: 0, none: 0 };
      for (let i = 0; i < 2000; i++) {
        const bytes = fifoBytes(swap.fifo, [process.pid]);
        // The held FIFO's 3 bytes, or nothing: never another file's count.
        assert.ok(bytes === 3 || bytes === null, String(bytes));
        seen[bytes === 3 ? 'read' : 'none']++;
      }
      assert.ok(seen.read > 0 && seen.none > 0, JSON.stringify(seen));
      // Nothing opened the decoy: its writer still waits.
      await swap.decoyUntouched();
    } finally {
      swap.stop();
      reader.close();
      writer.close();
    }
  });
});

describe('ipckit watch as plain text', () => {
  it('prints one frame per refresh when stdout is no terminal: a header, the table, a blank line', async () => {
    const { key, hex } = freshKey();
    using sysv = SysvMessageQueue.create(key);
    sysv.sendSync(1, Buffer.from('hello'));
    const r = await ok(['watch', '-n', '2', '--interval', '0.2', '--name', hex]);
    const blocks = r.stdout.split('\n\n');
    assert.deepEqual(blocks.slice(2), ['']);
    blocks.slice(0, 2).forEach((block, i) => {
      const [header, titles, row, ...rest] = block.split('\n');
      assert.match(header!, new RegExp(`^ipckit watch {2}\\d\\d:\\d\\d:\\d\\d {2}every 0\\.2s {2}1 of \\d+ objects \\(1 sysv-mq\\) {2}sort name${SKIPPED}$`));
      assert.deepEqual(titles!.split(/ {2,}/), ['KIND', 'ADDRESS', 'DEPTH', 'DEPTH/s', 'BYTES', 'BYTES/s', 'SENT/s', 'RECV/s', 'PROCESSES']);
      // The second frame: no change, a rate of 0.
      const rate = i === 0 ? '-' : '0';
      assert.deepEqual(row!.split(/ {2,}/), ['sysv-mq', hex, '1', rate, '5', rate, '-', '-', `sent:${process.pid}(${COMMAND})`]);
      assert.deepEqual(rest, []);
    });
    // A name that would clear the screen and forge a row is shown escaped, as ls shows it.
    const hostile = `/ipckit-test-watch-${hex}-\x1b[2J\nsysv-mq  0x1`;
    PosixMessageQueue.create(hostile).close();
    objects.posix.add(hostile);
    const shown = await ok(['watch', '--once', '--name', hex, '--kind', 'posix-mq']);
    assert.equal(shown.stdout.includes('\x1b'), false);
    assert.deepEqual(shown.stdout.split('\n').slice(2, 4).map((line) => line.split(/ {2,}/).slice(0, 3)),
      [['posix-mq', `/ipckit-test-watch-${hex}-\\e[2J\\nsysv-mq`, '0x1'], ['']]);
    PosixMessageQueue.unlink(hostile);
    const empty = await ok(['watch', '--once', '--name', `${hex}-nothing`]);
    assert.match(empty.stdout, /^ipckit watch {2}\d\d:\d\d:\d\d {2}every 1s {2}0 of \d+ objects {2}sort name\nNo IPC objects found\.\n\n$/);
    sysv.remove();
  });

  it('exits 0 once the reader of stdout leaves (… | head -1), with or without --json', async () => {
    const { hex } = freshKey();
    for (const json of [[], ['--json']]) {
      const run = launchIntoPipe(['watch', '--interval', '0.2', '--name', hex, ...json]);
      const line = await run.readLine();
      assert.ok(json.length === 0 ? line.startsWith('ipckit watch  ') : JSON.parse(line).counts.objects === 0, line);
      run.readEnd.close();
      const r = await run.done;
      assert.deepEqual([r.status, r.signal, r.stderr], [0, null, '']);
    }
  });
});

describe('ipckit watch usage errors', () => {
  it('refuses bad options with exit 2 and says what is expected', async () => {
    const cases: [string[], string][] = [
      [['--interval', '0'], '--interval must be a number of seconds from 0.1 to 3600; got "0".'],
      [['--interval', '0.05'], '--interval must be a number of seconds from 0.1 to 3600; got "0.05".'],
      [['--interval', '1s'], '--interval must be a number of seconds from 0.1 to 3600; got "1s".'],
      [['--interval', '-1'], '--interval must be a number of seconds from 0.1 to 3600; got "-1".'],
      [['--interval', '3601'], '--interval must be a number of seconds from 0.1 to 3600; got "3601".'],
      [['-n', '0'], '--iterations must be an integer from 1 to 2147483647; got "0".'],
      [['-n', 'x'], '--iterations must be an integer from 1 to 2147483647; got "x".'],
      [['--once', '-n', '2'], 'Use either --once or -n, not both.'],
      [['--sort', 'size'], '--sort must be name, depth or rate; got "size".'],
      [['--kind', 'mq,queue'], '--kind takes mq, shm, channel, sem, fifo, socket or a kind as ls prints it (posix-mq, sysv-mq, posix-shm, ' +
        'sysv-shm, channel, posix-sem, sysv-sem, fifo, unix, unix-dgram, unix-seqpacket), separated by commas; got "queue".'],
      [['--name', ''], '--name must not be empty.'],
      [['extra'], 'ipckit watch takes no arguments; got 1 argument. Run "ipckit watch --help".'],
    ];
    await Promise.all(cases.map(async ([args, message]) => {
      const stderr = await fails(['watch', ...args], 2, 'ERR_IPC_USAGE');
      assert.equal(stderr, `ERR_IPC_USAGE: ${message}\n`, args.join(' '));
    }));
    const unknown = await fails(['watch', '--every', '2'], 2, 'ERR_IPC_USAGE');
    assert.match(unknown, /^ERR_IPC_USAGE: Unknown option '--every'\. .*Run "ipckit watch --help" for the options\.\n$/);
    const json = await fails(['watch', '--json', '--interval', 'x'], 2, 'ERR_IPC_USAGE');
    assert.equal(JSON.parse(json).error.message, '--interval must be a number of seconds from 0.1 to 3600; got "x".');
  });
});

// ---- A real terminal ------------------------------------------------------------

interface PtyStep { waitFor: string; send?: string; resize?: [number, number]; kill?: string; fg?: boolean }
interface PtyResult { output: string; exitCode?: number; signal?: number; timedOut: boolean; stepsLeft: number }

/**
 * Runs `ipckit watch <args>` in a pseudo-terminal of `size` (rows, columns), taking `steps` like a user;
 * with `jobControl`, as a shell's foreground job (see pty-run.py).
 */
function inPty(args: string[], steps: PtyStep[], size: [number, number] = [24, 80], jobControl = false, shellDelayMs = 0): Promise<PtyResult> {
  const spec = { argv: [process.execPath, CLI, 'watch', ...args], steps, size, timeoutMs: 30_000, jobControl, shellDelayMs };
  const child = trackChild(spawn('python3', [PTY_RUN, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => {
      if (status !== 0) reject(new Error(`pty-run exited ${status}: ${stderr}`));
      else resolve(JSON.parse(stdout) as PtyResult);
    });
  });
}

const ENTER = '\x1b[?1049h\x1b[?25l';
const LEAVE = '\x1b[?25h\x1b[?1049l';

/** The screens drawn (each from the cursor's home to the clear below), as lines without their clear-to-end. */
function screens(output: string): string[][] {
  return [...output.matchAll(/\x1b\[H(.*?)\x1b\[J/gs)].map((m) => m[1]!.replace(/\x1b\[K/g, '').split(/\r*\n/));
}

/** Asserts that `output` enters the live view first and leaves it last, restoring the cursor and the screen. */
function assertRestored(r: PtyResult): void {
  assert.deepEqual([r.exitCode, r.signal, r.timedOut, r.stepsLeft], [0, undefined, false, 0], r.output);
  assert.ok(r.output.startsWith(ENTER), JSON.stringify(r.output.slice(0, 40)));
  const leave = r.output.lastIndexOf(LEAVE);
  assert.ok(leave > r.output.lastIndexOf('\x1b[J'), JSON.stringify(r.output.slice(-80)));
  assert.equal(r.output.slice(leave + LEAVE.length), '');
}

describe('ipckit watch in a terminal', { skip: !HAS_PTY && 'needs python3 with its pty module' }, () => {
  it('draws the live view, and q, Ctrl-C, SIGTERM and SIGHUP each end it with the terminal restored', async () => {
    const { key, hex } = freshKey();
    using sysv = SysvMessageQueue.create(key);
    sysv.sendSync(1, Buffer.from('hello'));
    const row = `sysv-mq  ${hex}  1`;
    const WIDE: [number, number] = [24, 200];
    const [q, ctrlC, term, hup] = await Promise.all([
      inPty(['--name', hex, '--interval', '0.2'], [{ waitFor: row, send: 'q' }], WIDE),
      inPty(['--name', hex, '--interval', '0.2'], [{ waitFor: row, send: '\x03' }], WIDE),
      inPty(['--name', hex, '--interval', '0.2'], [{ waitFor: row, kill: 'SIGTERM' }], WIDE),
      inPty(['--name', hex, '--interval', '0.2'], [{ waitFor: row, kill: 'SIGHUP' }], WIDE),
    ]);
    for (const r of [q, ctrlC, term, hup]) assertRestored(r);
    const [lines] = screens(q.output);
    assert.match(lines![0]!, new RegExp(`^ipckit watch {2}\\d\\d:\\d\\d:\\d\\d {2}every 0\\.2s {2}1 of \\d+ objects \\(1 sysv-mq\\) {2}sort name${SKIPPED}$`));
    assert.deepEqual(lines!.slice(1).map((line) => line.split(/ {2,}/)), [
      ['KIND', 'ADDRESS', 'DEPTH', 'DEPTH/s', 'BYTES', 'BYTES/s', 'SENT/s', 'RECV/s', 'PROCESSES'],
      ['sysv-mq', hex, '1', '-', '5', '-', '-', '-', `sent:${process.pid}(${COMMAND})`],
    ]);
    sysv.remove();
  });

  it('fits a 10x3 terminal, and redraws at once in the new size when the terminal is resized', async () => {
    const { key, hex } = freshKey();
    using sysv = SysvMessageQueue.create(key);
    // A long interval: only the resize can make it draw again.
    const r = await inPty(['--name', hex, '--interval', '600'], [
      { waitFor: 'sysv-mq', resize: [6, 60] },
      { waitFor: hex, send: 'q' },
    ], [3, 10]);
    assertRestored(r);
    const [small, large] = screens(r.output);
    assert.deepEqual(small, ['ipckit wat', 'KIND     A', 'sysv-mq  0']);
    assert.equal(large!.length, 3);
    assert.ok(large!.every((line) => [...line].length <= 60), JSON.stringify(large));
    assert.deepEqual(large![2]!.split(/ {2,}/).slice(0, 3), ['sysv-mq', hex, '0']);
    sysv.remove();
  });

  it('a job runs whichever of it and its shell puts it in the foreground first (the pty helper\'s own race)', async () => {
    // The job moves itself to the foreground with SIGTTOU ignored, as a shell's child does; with it at its
    // default, a job faster than its shell stopped there before it ever ran, and the steps timed out.
    const { key, hex } = freshKey();
    using sysv = SysvMessageQueue.create(key);
    const r = await inPty(['--name', hex, '--interval', '600'], [{ waitFor: `sysv-mq  ${hex}  0`, send: 'q' }], [24, 200], true, 300);
    assertRestored(r);
    sysv.remove();
  });

  it('Ctrl-Z and SIGTSTP restore the terminal and stop it as a job; fg draws the view again', async () => {
    const { key, hex } = freshKey();
    using sysv = SysvMessageQueue.create(key);
    const row = `sysv-mq  ${hex}  0`;
    // A long interval: only the return from the stop can make it draw again.
    const [byKey, bySignal] = await Promise.all(['\x1a', undefined].map((ctrlZ) => inPty(['--name', hex, '--interval', '600'], [
      ctrlZ === undefined ? { waitFor: row, kill: 'SIGTSTP' } : { waitFor: row, send: ctrlZ },
      { waitFor: '[stopped: ', fg: true },
      { waitFor: row, send: 'q' },
    ], [24, 200], true)));
    for (const r of [byKey!, bySignal!]) {
      assertRestored(r);
      const [before, after] = r.output.split(/\[stopped: (?:cooked|raw)\]/);
      // Stopped with the terminal as the shell had it: keys cooked, the cursor and the normal screen back.
      assert.match(r.output, /\[stopped: cooked\]/, JSON.stringify(r.output.slice(-200)));
      assert.ok(before!.endsWith(LEAVE), JSON.stringify(before!.slice(-40)));
      // Continued: the alternate screen again, and the same rows drawn.
      assert.ok(after!.includes(ENTER), JSON.stringify(after!.slice(0, 40)));
      assert.deepEqual(screens(after!)[0]!.slice(2).map((line) => line.split(/ {2,}/).slice(0, 3)), [['sysv-mq', hex, '0']]);
    }
    sysv.remove();
  });

  it('with --json or -n, prints plain output on a terminal too, and leaves the screen alone', async () => {
    const { key, hex } = freshKey();
    using sysv = SysvMessageQueue.create(key);
    const [json, counted] = await Promise.all([
      inPty(['--name', hex, '--json', '-n', '1'], []),
      inPty(['--name', hex, '-n', '1'], []),
    ]);
    for (const r of [json, counted]) {
      assert.deepEqual([r.exitCode, r.timedOut], [0, false], r.output);
      assert.equal(r.output.includes('\x1b'), false, JSON.stringify(r.output));
    }
    assert.equal((JSON.parse(json.output) as Frame).objects[0]!.address, hex);
    assert.match(counted.output, new RegExp(`\\r\\nsysv-mq  ${hex}  0 `));
    sysv.remove();
  });
});

describe('ipckit watch --help', () => {
  it('is listed in ipckit --help', async () => {
    const r = await ipckit(['--help']);
    assert.match(r.stdout, /\n {2}watch +watch IPC objects live: depth, rates and processes, refreshed like top\n/);
  });
});
