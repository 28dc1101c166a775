/**
 * Channel benchmark: round trips of 64-byte messages over two channels
 * (ping and pong) between two processes, and one-way throughput of 64 KiB
 * messages with batch acknowledgements; ipckit's `*Sync` and async calls
 * (spin-then-sleep with the default 50 µs, and spin=0) and a busy-polling
 * loop of `try*` calls, beside C running the same ring with the same futex
 * protocol (bench/c/channel.c), a busy-polling C ring, and in the same run
 * the other ways a Node program moves a message to another process or
 * thread: child_process IPC, worker_threads postMessage, `net` over a Unix
 * socket (4-byte framing), ipckit's MessageSocket over a Unix socket and
 * its POSIX message queue (round trips only: a queue's messages are at
 * most 8 KiB for an unprivileged user).
 *
 * Small messages (256 bytes, one way) also run batched: sendMany of 64 and
 * receiveMany, and the same in a MessageBatch (sendBatch / receiveBatch,
 * 'packed'), beside the same calls one message at a time and the C ring at
 * that size.
 *
 * Busy-polling on one CPU only measures the scheduler's time slice, so the
 * busy-polling rows are measured in the unpinned placement only, with each
 * process pinned to a CPU of its own (CPUs 0 and 1), the way busy-polling
 * benchmarks run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, parentPort } from 'node:worker_threads';
import { Channel, DEFAULT_SPIN_US, MessageBatch, PosixMessageQueue, PosixSharedMemory } from '../src/index.js';
import type { BenchContext, Command, Measurement, Row } from './harness.js';
import { inRounds, rowsFor } from './harness.js';
import { BATCHED_SCALE, measureRoundTrips, measureThroughput, print, throughputBatches, totalRoundTrips } from './stats.js';

export const mechanism = 'channel';

const RUNNER = fileURLToPath(new URL('./runner.js', import.meta.url));
const RTT_SIZE = 64;
const THROUGHPUT_SIZE = 64 * 1024;
/** Ring bytes of every channel (and of the C ring): the default, 16 messages of 64 KiB. */
const CAPACITY = 1 << 20;
/** src/channel.ts's header: the ring starts at byte 1536. */
const HEADER = 1536;
/** A measuring or echoing process that has not finished by then is killed (a lost peer must not hang the harness). */
const WATCHDOG_MS = 120_000;

type Kind = 'rtt' | 'tput';
/**
 * `*Sync` calls, awaited calls, a loop of `try*` calls (receiving into one
 * reused buffer), or (throughput) `receiveIntoSync` into one reused buffer,
 * or loans and views.
 */
type Mode = 'sync' | 'async' | 'busy' | 'into' | 'loan-view' | 'sync batch' | 'async batch' | 'sync packed' | 'async packed';
/** Bytes of a small message, and how many a batched sender hands to one sendMany. */
const SMALL_SIZE = 256;
const SEND_BATCH = 64;

interface Params {
  kind: Kind;
  mode: Mode;
  /** Client → server channel, server → client channel. */
  ping: string;
  pong: string;
  iterations: number;
  size: number;
  spin: number;
}

/**
 * Kills this process after `ms`, from a process of its own: a busy or
 * blocking loop on the main thread would never let a timer run, and a
 * watchdog thread would share the measured CPU while it starts. The guard
 * waits for the end of a pipe from this process, so it goes quietly when
 * this process ends, however it ends.
 */
function watchdog(ms: number): void {
  const guard = spawn('sh', ['-c', `timeout ${Math.ceil(ms / 1000)} cat >/dev/null; [ $? -eq 124 ] && kill -9 ${process.pid}`],
    { stdio: ['pipe', 'ignore', 'ignore'] });
  guard.unref();
  (guard.stdin as unknown as { unref(): void }).unref();
}

/** One side's ends: sends on `out`, receives from `in`, with the mode's calls. */
/** `receive` may return what it received, or the call's own promise of it (no wrapper of the benchmark's between them). */
function ends(out: Channel, from: Channel, mode: Mode): { send: (d: Uint8Array) => void | Promise<void>; receive: () => unknown } {
  switch (mode) {
    case 'sync':
      return { send: (d) => out.sendSync(d), receive: () => { from.receiveSync(); } };
    case 'async':
      return { send: (d) => out.send(d), receive: () => from.receive() };
    case 'busy': {
      const target = Buffer.allocUnsafe(from.maxMessageSize);
      return {
        send: (d) => { while (!out.trySend(d)) { /* busy-poll */ } },
        receive: () => { while (from.tryReceiveInto(target) === undefined) { /* busy-poll */ } },
      };
    }
    case 'into': {
      // What the C reference does: copy in from one buffer, copy out into another, both reused.
      const target = Buffer.allocUnsafe(from.maxMessageSize);
      return { send: (d) => out.sendSync(d), receive: () => { from.receiveIntoSync(target); } };
    }
    case 'sync batch':
    case 'async batch':
    case 'sync packed':
    case 'async packed':
      // Batches are sent and received by the tput loops themselves; single calls carry the acknowledgement.
      return ends(out, from, mode.startsWith('sync') ? 'sync' : 'async');
    case 'loan-view':
      return {
        send: (d) => {
          const slot = out.loanSync(d.length);
          slot.set(d);
          out.commit(slot);
        },
        // The view is left in the ring: the next receive gives its space back.
        receive: () => { from.receiveSync({ view: true }); },
      };
  }
}

export const roles = {
  /** Echoes (rtt) or swallows then acknowledges each batch (tput): receives on ping, sends on pong. */
  async server(p: Params): Promise<void> {
    watchdog(WATCHDOG_MS);
    const ping = Channel.open(p.ping, { spin: p.spin });
    const pong = Channel.open(p.pong, { spin: p.spin });
    const side = ends(pong, ping, p.mode);
    print({ ready: true });
    if (p.kind === 'rtt') {
      // A 64-byte answer, as the echo of a 64-byte message (the copy out is made by the receive).
      const answer = Buffer.alloc(p.size, 0x62);
      for (let i = totalRoundTrips(p.iterations); i > 0; i--) {
        const got = side.receive();
        if (got) await got;
        const sent = side.send(answer);
        if (sent) await sent;
      }
    } else {
      const ack = Buffer.from('k');
      // Packed modes: a MessageBatch of 4,096 messages and 1 MiB, reused.
      const into = new MessageBatch({ bytes: 1 << 20, messages: 4096 });
      const batched = p.mode.endsWith('batch') || p.mode.endsWith('packed');
      for (const n of throughputBatches(p.iterations)) {
        if (p.mode === 'sync batch') for (let got = 0; got < n;) got += ping.receiveManySync({ max: 1024 }).length;
        else if (p.mode === 'async batch') for (let got = 0; got < n;) got += (await ping.receiveMany({ max: 1024 })).length;
        else if (p.mode === 'sync packed') for (let got = 0; got < n;) got += ping.receiveBatchSync(into);
        else if (p.mode === 'async packed') for (let got = 0; got < n;) got += await ping.receiveBatch(into);
        for (let i = 0; i < n && !batched; i++) {
          const got = side.receive();
          if (got) await got;
        }
        const sent = (p.mode === 'loan-view' ? ends(pong, ping, 'sync') : side).send(ack);
        if (sent) await sent;
      }
    }
    ping.close();
    pong.close();
    process.exit(0);
  },

  async client(p: Params): Promise<void> {
    watchdog(WATCHDOG_MS);
    const ping = Channel.open(p.ping, { spin: p.spin });
    const pong = Channel.open(p.pong, { spin: p.spin });
    const side = ends(ping, pong, p.mode);
    const payload = Buffer.alloc(p.size, 0x61);
    if (p.kind === 'rtt') {
      await measureRoundTrips(p.iterations, p.mode === 'async'
        ? async () => { await side.send(payload); await side.receive(); }
        : () => { void side.send(payload); void side.receive(); });
    } else {
      const ackSide = p.mode === 'loan-view' ? ends(ping, pong, 'sync') : side;
      const batch = Array.from({ length: SEND_BATCH }, () => payload);
      // Packed modes: the same 64 messages in a MessageBatch; a shorter one for a throughput batch's tail.
      const full = new MessageBatch({ bytes: SEND_BATCH * p.size, messages: SEND_BATCH });
      while (full.push(payload));
      const tail = new MessageBatch({ bytes: SEND_BATCH * p.size, messages: SEND_BATCH });
      const packedOf = (count: number): MessageBatch => {
        if (count === SEND_BATCH) return full;
        tail.clear();
        for (let k = 0; k < count; k++) tail.push(payload);
        return tail;
      };
      await measureThroughput(p.iterations, p.size, async (n) => {
        for (let i = 0; i < n;) {
          const list = n - i >= SEND_BATCH ? batch : batch.slice(0, n - i);
          if (p.mode === 'sync batch') i += ping.sendManySync(list);
          else if (p.mode === 'async batch') i += await ping.sendMany(list);
          else if (p.mode === 'sync packed' || p.mode === 'async packed') {
            // A batch that went in part is sent again from the first that did not: rebuilt from its count.
            const left = Math.min(n - i, SEND_BATCH);
            const b = packedOf(left);
            i += p.mode === 'sync packed' ? ping.sendBatchSync(b) : await ping.sendBatch(b);
          } else {
            const sent = side.send(payload);
            if (sent) await sent;
            i++;
          }
        }
        const ack = ackSide.receive();
        if (ack) await ack;
      });
    }
    process.exit(0);
  },

  /** The Node built-in between threads: this thread and a worker thread, structured-clone postMessage of a Uint8Array. */
  async 'worker-client'(p: { kind: Kind; iterations: number; size: number }): Promise<void> {
    watchdog(WATCHDOG_MS);
    const worker = new Worker(RUNNER, { argv: [mechanism, 'worker-echo', JSON.stringify(p)] });
    const replies: ((m: unknown) => void)[] = [];
    worker.on('message', (m) => replies.shift()?.(m));
    worker.on('error', (err) => {
      process.stderr.write(`worker: ${err}\n`);
      process.exit(1);
    });
    const reply = (): Promise<unknown> => new Promise((resolve) => replies.push(resolve));
    await reply();
    const payload = new Uint8Array(p.size).fill(0x61);
    if (p.kind === 'rtt') {
      await measureRoundTrips(p.iterations, async () => {
        const r = reply();
        worker.postMessage(payload);
        await r;
      });
    } else {
      await measureThroughput(p.iterations, p.size, async (n) => {
        const ack = reply();
        for (let i = 0; i < n; i++) worker.postMessage(payload);
        await ack;
      });
    }
    process.exit(0);
  },

  async 'worker-echo'(p: { kind: Kind; iterations: number }): Promise<void> {
    const port = parentPort!;
    const batches = throughputBatches(p.iterations);
    let received = 0;
    port.on('message', (m: Uint8Array) => {
      if (p.kind === 'rtt') {
        port.postMessage(m);
      } else if (++received === batches[0]) {
        received = 0;
        batches.shift();
        port.postMessage('k');
      }
    });
    port.postMessage('ready');
  },
};

// ---- the harness side ------------------------------------------------------------------

/** Segment names made by this harness process, removed when it ends however it ends. */
const made = new Set<string>();
let serial = 0;

function removeAll(): void {
  for (const name of made) {
    try {
      PosixSharedMemory.unlink(name);
    } catch {
      /* Already gone. */
    }
  }
  made.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  removeAll();
  process.kill(process.pid, signal);
}

/** Two fresh segments for one run (channels, or zero-filled segments for the C ring), removed afterwards. */
/** Two segments: channels (`shared`: both sides 'multi', taking turns), or raw ones for the C ring. */
async function withPair<R>(kind: 'channel' | 'shared' | 'raw', run: (ping: string, pong: string) => Promise<R>): Promise<R> {
  const names = ['ping', 'pong'].map((n) => `/ipckit-bench-channel-${process.pid}-${serial++}-${n}`);
  try {
    for (const name of names) {
      made.add(name);
      if (kind !== 'raw') {
        Channel.create(name, { capacity: CAPACITY, maxMessageSize: THROUGHPUT_SIZE, ...(kind === 'shared' ? { producers: 'multi', consumers: 'multi' } as const : {}) }).close();
      }
      else PosixSharedMemory.create(name, { size: HEADER + CAPACITY }).close();
    }
    return await run(names[0]!, names[1]!);
  } finally {
    for (const name of names) {
      made.delete(name);
      try {
        PosixSharedMemory.unlink(name);
      } catch {
        /* Not made. */
      }
    }
  }
}

/** Two POSIX message queues for the round-trip reference, removed afterwards. */
async function withQueues<R>(run: (a: string, b: string) => Promise<R>): Promise<R> {
  const names = ['a', 'b'].map((n) => `/ipckit-bench-channel-mq-${process.pid}-${n}`);
  const queues: PosixMessageQueue[] = [];
  try {
    for (const name of names) queues.push(PosixMessageQueue.create(name, { maxMessages: 10, maxMessageSize: RTT_SIZE }));
    return await run(names[0]!, names[1]!);
  } finally {
    for (const q of queues) {
      q.close();
      q.unlink();
    }
  }
}

const WITH_CPU = (cpu: number, command: Command): Command => ['taskset', '-c', String(cpu), ...command];

function spinSuffix(spin: number): string {
  return spin === DEFAULT_SPIN_US ? '' : ` spin=${spin}`;
}

export async function measure(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const add = (variant: string, m: Measurement, reference: string | null, ref: Measurement | null): void => {
    rows.push(...rowsFor(mechanism, variant, ctx.placement, m, reference, ref));
  };
  const c = (kind: Kind, role: 'server' | 'client', ping: string, pong: string, iterations: number, size: number, wait: string): Command =>
    [ctx.cProgram('channel'), kind, role, ping, pong, String(iterations), String(size), wait];
  const node = (role: string, p: Params): Command => ctx.nodeRole(mechanism, role, p);
  // Busy-polling pairs run each on a CPU of its own, in the unpinned placement only (see the module's comment).
  const busy = ctx.placement === 'unpinned' && spawnSync('taskset', ['-c', '1', 'true']).status === 0;
  const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-bench-channel-'));
  process.on('exit', removeAll);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const kind of ['rtt', 'tput'] as const) {
      const iterations = kind === 'rtt' ? ctx.rttIterations : Math.floor(ctx.throughputMessages / 10);
      // The rings (C and the channel) move 64 KiB messages at GB/s: a run of 5,000 is over in tens of ms, before the
      // JIT has settled; they get five times as many.
      const ringIterations = kind === 'rtt' ? iterations : iterations * 5;
      const size = kind === 'rtt' ? RTT_SIZE : THROUGHPUT_SIZE;
      let reference: Measurement | undefined;
      for (const spin of [DEFAULT_SPIN_US, 0]) {
        const suffix = spinSuffix(spin);
        const cName = `C futex ring${suffix}`;
        const cm = await withPair('raw', (ping, pong) =>
          ctx.runPair(c(kind, 'server', ping, pong, ringIterations, size, String(spin)), c(kind, 'client', ping, pong, ringIterations, size, String(spin))));
        add(cName, cm, null, null);
        if (spin === DEFAULT_SPIN_US) reference = cm;
        const modes: Mode[] = kind === 'rtt' || spin !== DEFAULT_SPIN_US ? ['sync', 'async'] : ['sync', 'async', 'into', 'loan-view'];
        for (const mode of modes) {
          const m = await withPair('channel', (ping, pong) => {
            const p: Params = { kind, mode, ping, pong, iterations: ringIterations, size, spin };
            return ctx.runPair(node('server', p), node('client', p));
          });
          add(`ipckit channel ${mode === 'loan-view' ? 'loan+view' : mode === 'into' ? 'sync into' : mode}${suffix}`, m, cName, cm);
        }
        if (spin === DEFAULT_SPIN_US) {
          // The same with shared sides: every call takes its side's turn (an uncontended mutex) and gives it back.
          const m = await withPair('shared', (ping, pong) => {
            const p: Params = { kind, mode: 'sync', ping, pong, iterations: ringIterations, size, spin };
            return ctx.runPair(node('server', p), node('client', p));
          });
          add('ipckit channel sync, shared sides', m, cName, cm);
        }
      }
      if (kind === 'tput') {
        // Small messages, one per call and batched, against the C ring at the same size. Batches move several
        // times as much a second: as for pipes and sockets, they move BATCHED_SCALE times the messages, so that their
        // timed part is long enough to measure (and past the JIT's warm-up), and so does the C ring they are
        // compared with (which moves one record at a time).
        const small = ctx.throughputMessages * 4;
        const many = small * BATCHED_SCALE;
        const cRing = (count: number): Promise<Measurement> => withPair('raw', (ping, pong) =>
          ctx.runPair(c(kind, 'server', ping, pong, count, SMALL_SIZE, String(DEFAULT_SPIN_US)),
            c(kind, 'client', ping, pong, count, SMALL_SIZE, String(DEFAULT_SPIN_US))));
        const modes = ['sync', 'async', 'sync batch', 'async batch', 'sync packed', 'async packed'] as const;
        const batchedMode = (mode: typeof modes[number]): boolean => mode !== 'sync' && mode !== 'async';
        // In rounds, the C ring and every variant taking turns: single runs on this shared machine differ by up to 3x.
        const [cOne, cMany, ...ours] = await inRounds(ctx.rounds, [
          () => cRing(small),
          () => cRing(many),
          ...modes.map((mode) => () => withPair('channel', (ping, pong) => {
            const p: Params = { kind, mode, ping, pong, iterations: batchedMode(mode) ? many : small, size: SMALL_SIZE, spin: DEFAULT_SPIN_US };
            return ctx.runPair(node('server', p), node('client', p));
          })),
        ]);
        add('C futex ring 256 B', cOne!, null, null);
        add('C futex ring 256 B, long run', cMany!, null, null);
        for (const [i, mode] of modes.entries()) {
          const batched = batchedMode(mode);
          add(`ipckit channel 256 B ${mode}`, ours[i]!, batched ? 'C futex ring 256 B, long run' : 'C futex ring 256 B', batched ? cMany! : cOne!);
        }
      }
      if (busy && kind === 'rtt') {
        const cName = 'C busy-polling ring (CPUs 0|1)';
        const cm = await withPair('raw', (ping, pong) =>
          ctx.runPair(WITH_CPU(1, c(kind, 'server', ping, pong, iterations, size, 'busy')), WITH_CPU(0, c(kind, 'client', ping, pong, iterations, size, 'busy'))));
        add(cName, cm, null, null);
        const m = await withPair('channel', (ping, pong) => {
          const p: Params = { kind, mode: 'busy', ping, pong, iterations, size, spin: DEFAULT_SPIN_US };
          return ctx.runPair(WITH_CPU(1, node('server', p)), WITH_CPU(0, node('client', p)));
        });
        add('ipckit channel busy-polling (CPUs 0|1)', m, cName, cm);
      }
      const cName = 'C futex ring';
      // The other ways, each with the roles of its own module where it has them.
      const fork = await ctx.runPair(undefined, ctx.nodeRole('message-queue', 'fork-client', { kind, iterations, size }));
      add('node child_process IPC', fork, cName, reference!);
      const worker = await ctx.runPair(undefined, ctx.nodeRole(mechanism, 'worker-client', { kind, iterations, size }));
      add('node worker postMessage', worker, cName, reference!);
      for (const impl of ['net', 'sync', 'async'] as const) {
        const p = { transport: 'unix', kind, impl, iterations, size, path: path.join(dir, `s${serial++}`) };
        const m = await ctx.runPair(undefined, ctx.nodeRole('socket', 'client', p));
        add(impl === 'net' ? 'node net unix' : `ipckit unix stream ${impl}`, m, cName, reference!);
      }
      if (kind === 'rtt') {
        for (const mode of ['sync', 'async'] as const) {
          const m = await withQueues((a, b) => {
            const p = { family: 'posix', mode, kind, a, b, iterations, size, spin: DEFAULT_SPIN_US };
            return ctx.runPair(ctx.nodeRole('message-queue', 'server', p), ctx.nodeRole('message-queue', 'client', p));
          });
          add(`ipckit posix mq ${mode}`, m, cName, reference!);
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    removeAll();
    process.off('exit', removeAll);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return rows;
}
