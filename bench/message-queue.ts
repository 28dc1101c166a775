/**
 * Message-queue benchmark: round-trip latency of 64-byte messages and
 * one-way throughput of 8 KiB messages (the default message-size limit of
 * both families), for ipckit's *Sync and async calls, beside the C
 * reference doing the same calls and Node's child_process IPC. Throughput
 * also runs batched (`sync batch`, `async batch`): sendMany / receiveMany
 * on both sides, many messages per native call (the kernel has no batched
 * queue call, so C stays one message per call); `sync packed`, `async
 * packed`: the same with MessageBatch (sendBatch / receiveBatch, no
 * JavaScript object per message); and `sync into`, `async into`: single
 * sends, received with receiveInto into one reused buffer, as C receives.
 * The round trip has `into` rows too: both sides receive into a buffer
 * of their own, and the server echoes from it.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SPIN_US, MessageBatch, PosixMessageQueue, SysvMessageQueue } from '../src/index.js';
import type { BenchContext, Measurement, Row } from './harness.js';
import { inRounds, rowsFor } from './harness.js';
import { measureRoundTrips, measureThroughput, print, throughputBatches, totalRoundTrips } from './stats.js';

export const mechanism = 'message-queue';

const RTT_SIZE = 64;
const THROUGHPUT_SIZE = 8192;

type Family = 'posix' | 'sysv';
type Mode = 'sync' | 'async' | 'sync batch' | 'async batch' | 'sync packed' | 'async packed' | 'sync into' | 'async into';
/** Messages a batched sender hands to one sendMany (it waits for room as the receiver drains). */
const SEND_BATCH = 64;
type Kind = 'rtt' | 'tput';

interface RoleParams {
  family: Family;
  mode: Mode;
  kind: Kind;
  /** Client → server queue and server → client queue. */
  a: string;
  b: string;
  iterations: number;
  size: number;
  /** Spin budget of the handles, µs. */
  spin: number;
}

interface Pair {
  send: (data: Uint8Array) => void | Promise<void>;
  /** A message, or the receive's own promise of one (no wrapper of the benchmark's between them). */
  receive: () => { data: Buffer } | Promise<{ data: Buffer }>;
  /** Batched modes: sends every message of `list`; resolves with the number of messages one receiveMany took. */
  sendMany: (list: Uint8Array[]) => number | Promise<number>;
  receiveMany: () => number | Promise<number>;
  /** `into` modes: one message into `into`, a buffer reused for every receive. */
  receiveInto: () => { length: number } | Promise<{ length: number }>;
  into: Buffer;
  /** Packed modes: sends every message of `batch`; resolves with the number one receiveBatch took. */
  sendBatch: (batch: MessageBatch) => number | Promise<number>;
  receiveBatch: () => number | Promise<number>;
}

/** The receiving batch of the packed modes: 64 slots, room for the 10 messages a queue holds and one more. */
function receivingBatch(): MessageBatch {
  return new MessageBatch({ bytes: 11 * THROUGHPUT_SIZE, messages: 64 });
}

/** Both directions of a pair, opened from this process: sends on A, receives on B. */
function openPair(p: RoleParams): Pair {
  const sync = p.mode.startsWith('sync');
  if (p.family === 'posix') {
    const a = PosixMessageQueue.open(p.a, { spin: p.spin });
    const b = PosixMessageQueue.open(p.b, { spin: p.spin });
    const into = Buffer.alloc(b.maxMessageSize);
    const batch = receivingBatch();
    return sync
      ? { send: (d) => a.sendSync(d), receive: () => b.receiveSync(), sendMany: (l) => a.sendManySync(l),
        receiveMany: () => b.receiveManySync({ max: 1024 }).length, receiveInto: () => b.receiveIntoSync(into), into,
        sendBatch: (l) => a.sendBatchSync(l), receiveBatch: () => b.receiveBatchSync(batch) }
      : { send: (d) => a.send(d), receive: () => b.receive(), sendMany: (l) => a.sendMany(l),
        receiveMany: async () => (await b.receiveMany({ max: 1024 })).length, receiveInto: () => b.receiveInto(into), into,
        sendBatch: (l) => a.sendBatch(l), receiveBatch: () => b.receiveBatch(batch) };
  }
  const a = SysvMessageQueue.open(Number(p.a), { spin: p.spin });
  const b = SysvMessageQueue.open(Number(p.b), { spin: p.spin });
  const into = Buffer.alloc(b.maxMessageSize);
  const batch = receivingBatch();
  return sync
    ? { send: (d) => a.sendSync(1, d), receive: () => b.receiveSync(), sendMany: (l) => a.sendManySync(1, l),
      receiveMany: () => b.receiveManySync({ max: 1024 }).length, receiveInto: () => b.receiveIntoSync(into), into,
      sendBatch: (l) => a.sendBatchSync(1, l), receiveBatch: () => b.receiveBatchSync(batch) }
    : { send: (d) => a.send(1, d), receive: () => b.receive(), sendMany: (l) => a.sendMany(1, l),
      receiveMany: async () => (await b.receiveMany({ max: 1024 })).length, receiveInto: () => b.receiveInto(into), into,
      sendBatch: (l) => a.sendBatch(1, l), receiveBatch: () => b.receiveBatch(batch) };
}

const FORK_SERVER = fileURLToPath(new URL('./runner.js', import.meta.url));

export const roles = {
  /** Echoes (rtt) or swallows then acknowledges (tput): receives on A, sends on B. */
  async server(p: RoleParams): Promise<void> {
    const q = openPair({ ...p, a: p.b, b: p.a });
    print({ ready: true });
    if (p.kind === 'rtt' && p.mode.endsWith('into')) {
      // Echoes from the buffer it receives into: no allocation but the view of the echoed bytes.
      for (let i = totalRoundTrips(p.iterations); i > 0; i--) {
        const got = q.receiveInto();
        const n = (got instanceof Promise ? await got : got).length;
        const sent = q.send(q.into.subarray(0, n));
        if (sent) await sent;
      }
    } else if (p.kind === 'rtt') {
      for (let i = totalRoundTrips(p.iterations); i > 0; i--) {
        const got = q.receive();
        const sent = q.send((got instanceof Promise ? await got : got).data);
        if (sent) await sent;
      }
    } else if (p.mode.endsWith('batch') || p.mode.endsWith('packed')) {
      const take = p.mode.endsWith('batch') ? q.receiveMany : q.receiveBatch;
      for (const n of throughputBatches(p.iterations)) {
        for (let got = 0; got < n;) {
          const taken = take();
          got += typeof taken === 'number' ? taken : await taken;
        }
        const sent = q.send(Buffer.from('k'));
        if (sent) await sent;
      }
    } else if (p.mode.endsWith('into')) {
      for (const n of throughputBatches(p.iterations)) {
        for (let i = 0; i < n; i++) {
          const got = q.receiveInto();
          if (got instanceof Promise) await got;
        }
        const sent = q.send(Buffer.from('k'));
        if (sent) await sent;
      }
    } else {
      for (const n of throughputBatches(p.iterations)) {
        for (let i = 0; i < n; i++) {
          const data = q.receive();
          if (data instanceof Promise) await data;
        }
        const sent = q.send(Buffer.from('k'));
        if (sent) await sent;
      }
    }
    process.exit(0);
  },

  async client(p: RoleParams): Promise<void> {
    const q = openPair(p);
    const payload = Buffer.alloc(p.size, 0x61);
    if (p.kind === 'rtt' && p.mode.endsWith('into')) {
      await measureRoundTrips(p.iterations, p.mode === 'sync into'
        ? () => { q.send(payload); q.receiveInto(); }
        : async () => { await q.send(payload); await q.receiveInto(); });
    } else if (p.kind === 'rtt') {
      await measureRoundTrips(p.iterations, p.mode === 'sync'
        ? () => { q.send(payload); q.receive(); }
        : async () => { await q.send(payload); await q.receive(); });
    } else if (p.mode.endsWith('batch')) {
      const list = Array.from({ length: SEND_BATCH }, () => payload);
      await measureThroughput(p.iterations, p.size, async (n) => {
        for (let left = n; left > 0; left -= SEND_BATCH) {
          const sent = q.sendMany(left >= SEND_BATCH ? list : list.slice(0, left));
          if (typeof sent !== 'number') await sent;
        }
        const ack = q.receive();
        if (ack instanceof Promise) await ack;
      });
    } else if (p.mode.endsWith('packed')) {
      const full = new MessageBatch({ bytes: SEND_BATCH * p.size, messages: SEND_BATCH });
      while (full.push(payload));
      const tail = new MessageBatch({ bytes: SEND_BATCH * p.size, messages: SEND_BATCH });
      await measureThroughput(p.iterations, p.size, async (n) => {
        for (let left = n; left > 0; left -= SEND_BATCH) {
          let batch = full;
          if (left < SEND_BATCH) {
            tail.clear();
            for (let i = 0; i < left; i++) tail.push(payload);
            batch = tail;
          }
          const sent = q.sendBatch(batch);
          if (typeof sent !== 'number') await sent;
        }
        const ack = q.receive();
        if (ack instanceof Promise) await ack;
      });
    } else {
      await measureThroughput(p.iterations, p.size, async (n) => {
        for (let i = 0; i < n; i++) {
          const sent = q.send(payload);
          if (sent) await sent;
        }
        const ack = q.receive();
        if (ack instanceof Promise) await ack;
      });
    }
    process.exit(0);
  },

  /** The Node built-in: a parent and a forked child over child_process IPC (JSON over a socket). */
  async 'fork-client'(p: { kind: Kind; iterations: number; size: number }): Promise<void> {
    const child = fork(FORK_SERVER, [mechanism, 'fork-server', JSON.stringify(p)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const replies: ((m: unknown) => void)[] = [];
    child.on('message', (m) => replies.shift()?.(m));
    const reply = (): Promise<unknown> => new Promise((resolve) => replies.push(resolve));
    await new Promise((resolve) => child.once('message', resolve));
    const payload = 'a'.repeat(p.size);
    if (p.kind === 'rtt') {
      await measureRoundTrips(p.iterations, async () => {
        const r = reply();
        child.send(payload);
        await r;
      });
    } else {
      await measureThroughput(p.iterations, p.size, async (n) => {
        const ack = reply();
        for (let i = 0; i < n; i++) child.send(payload);
        await ack;
      });
    }
    child.kill();
    process.exit(0);
  },

  async 'fork-server'(p: { kind: Kind; iterations: number }): Promise<void> {
    const batches = throughputBatches(p.iterations);
    let received = 0;
    process.on('message', (m) => {
      if (p.kind === 'rtt') {
        process.send!(m);
      } else if (++received === batches[0]) {
        received = 0;
        batches.shift();
        process.send!('k');
      }
    });
    process.send!('ready');
  },
};

function cArgs(ctx: BenchContext, family: Family, role: 'server' | 'client', kind: Kind, a: string, b: string,
  iterations: number, size: number, spin: number): string[] {
  return [ctx.cProgram('message-queue'), family, role, kind, a, b, String(iterations), String(size), String(spin)];
}

/** Creates the two queues of one family for a run, and removes them afterwards (the NATS benchmark's reference uses it too). */
export async function withQueues<R>(family: Family, run: (a: string, b: string) => Promise<R>): Promise<R> {
  if (family === 'posix') {
    const names = [`/ipckit-bench-a-${process.pid}`, `/ipckit-bench-b-${process.pid}`];
    const queues: PosixMessageQueue[] = [];
    try {
      for (const n of names) queues.push(PosixMessageQueue.create(n, { maxMessages: 10, maxMessageSize: THROUGHPUT_SIZE }));
      return await run(names[0]!, names[1]!);
    } finally {
      for (const q of queues) {
        q.close();
        q.unlink();
      }
    }
  }
  const queues: SysvMessageQueue[] = [];
  try {
    while (queues.length < 2) {
      try {
        queues.push(SysvMessageQueue.create((0x7d000000 | Math.floor(Math.random() * 0xffffff)) >>> 0));
      } catch (err) {
        // Key taken: draw again. Anything else ends the run.
        if ((err as { code?: string }).code !== 'EEXIST') throw err;
      }
    }
    return await run(String(queues[0]!.key), String(queues[1]!.key));
  } finally {
    for (const q of queues) q.remove();
  }
}

export async function measure(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  for (const kind of ['rtt', 'tput'] as const) {
    // Throughput moves four times the other mechanisms' message count: at 50,000 messages of 8 KiB, C's timed part
    // took under 60 ms pinned on a fast day, and a batched sender made under 800 calls, its warm-up under 80.
    const iterations = kind === 'rtt' ? ctx.rttIterations : ctx.throughputMessages * 4;
    const size = kind === 'rtt' ? RTT_SIZE : THROUGHPUT_SIZE;
    let posixC: Measurement | undefined;
    for (const family of ['posix', 'sysv'] as const) {
      await withQueues(family, async (a, b) => {
        // Each ipckit variant is compared with C using the same waiting strategy: blocking
        // calls (spin 0), or spin-then-sleep with the same budget.
        for (const spin of [DEFAULT_SPIN_US, 0]) {
          const modes: Mode[] = kind === 'tput'
            ? ['sync', 'async', 'sync batch', 'async batch', 'sync packed', 'async packed', 'sync into', 'async into'] : ['sync', 'async', 'sync into', 'async into'];
          // In rounds, C and every variant taking turns: single runs on this shared machine differ by up to 3x.
          const [c, ...ours] = await inRounds(ctx.rounds, [
            () => ctx.runPair(cArgs(ctx, family, 'server', kind, a, b, iterations, size, spin), cArgs(ctx, family, 'client', kind, a, b, iterations, size, spin)),
            ...modes.map((mode) => () => {
              const params: RoleParams = { family, mode, kind, a, b, iterations, size, spin };
              return ctx.runPair(ctx.nodeRole(mechanism, 'server', params), ctx.nodeRole(mechanism, 'client', params));
            }),
          ]);
          const suffix = spin === DEFAULT_SPIN_US ? '' : ` spin=${spin}`;
          const referenceName = `C ${family} mq${suffix}`;
          rows.push(...rowsFor(mechanism, `C ${family}${suffix}`, ctx.placement, c!, null, null));
          if (family === 'posix' && spin === 0) posixC = c;
          for (const [i, mode] of modes.entries()) {
            rows.push(...rowsFor(mechanism, `ipckit ${family} ${mode}${suffix}`, ctx.placement, ours[i]!, referenceName, c!));
          }
        }
      });
    }
    const node = await ctx.runPair(undefined, ctx.nodeRole(mechanism, 'fork-client', { kind, iterations, size }));
    rows.push(...rowsFor(mechanism, 'node child_process IPC', ctx.placement, node, 'C posix mq spin=0', posixC!));
  }
  return rows;
}
