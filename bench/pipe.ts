/**
 * Pipe and FIFO benchmark: round trips of 64 bytes and one-way throughput of
 * 64 KiB writes, for ipckit's *Sync and async calls, beside C doing plain
 * read/write on blocking descriptors and Node's own child_process stdio pipes.
 * Also one-way throughput of 256-byte framed messages over an anonymous
 * pipe (`msgs`): one message per call (send / receive) and batched
 * (sendMany / receiveMany), and packed in a MessageBatch (sendBatch /
 * receiveBatch), beside C writing one message per write or 64 per writev,
 * and reading 64 KiB at a time.
 */
import { spawn as spawnChild } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fifo, MessageBatch, PipeReadEnd, PipeWriteEnd, pipe, spawn } from '../src/index.js';
import type { BenchContext, Row } from './harness.js';
import { inRounds, rowsFor } from './harness.js';
import { BATCHED_SCALE, measureRoundTrips, measureThroughput, print, throughputBatches, totalRoundTrips } from './stats.js';

export const mechanism = 'pipe';

const RTT_SIZE = 64;
const THROUGHPUT_SIZE = 64 * 1024;
const MESSAGE_SIZE = 256;
/** Messages a batched sender hands to one sendMany. */
const SEND_BATCH = 64;
const RUNNER = fileURLToPath(new URL('./runner.js', import.meta.url));

type Kind = 'rtt' | 'tput' | 'msgs';
type Mode = 'sync' | 'async' | 'sync batch' | 'async batch' | 'sync packed' | 'async packed';

interface Params {
  kind: Kind;
  mode: Mode;
  iterations: number;
  size: number;
  /** FIFO paths (client to server, server to client); absent for anonymous pipes. */
  a?: string;
  b?: string;
}

/** One receive buffer per process: bulk readers read into their own memory (readInto). */
const inbox = Buffer.alloc(THROUGHPUT_SIZE);

/** Reads exactly `size` bytes. */
async function readFull(end: PipeReadEnd, size: number, mode: Mode): Promise<void> {
  for (let got = 0; got < size;) {
    const target = inbox.subarray(0, Math.min(size - got, THROUGHPUT_SIZE));
    const n = mode.startsWith('sync') ? end.readIntoSync(target) : await end.readInto(target);
    if (n === null) throw new Error('unexpected end of the pipe');
    got += n;
  }
}

async function write(end: PipeWriteEnd, data: Buffer, mode: Mode): Promise<void> {
  if (mode.startsWith('sync')) end.writeSync(data);
  else await end.write(data);
}

/** Receives framed messages in `mode`: how many one call took. */
async function receiveSome(end: PipeReadEnd, mode: Mode): Promise<number> {
  switch (mode) {
    case 'sync': return end.receiveSync() === null ? end0() : 1;
    case 'async': return (await end.receive()) === null ? end0() : 1;
    case 'sync batch': return end.receiveManySync({ max: 1024 })?.length ?? end0();
    case 'async batch': return (await end.receiveMany({ max: 1024 }))?.length ?? end0();
    case 'sync packed': return end.receiveBatchSync(inBatch) ?? end0();
    case 'async packed': return (await end.receiveBatch(inBatch)) ?? end0();
  }
}

/** The receiver's batch: room for 4096 messages in 1 MiB, as receiveMany's 1,024 plus what a 64 KiB read brings. */
const inBatch = new MessageBatch({ bytes: 1 << 20, messages: 4096 });

/** A batch of `n` copies of `data`. */
function batchOf(data: Buffer, n: number): MessageBatch {
  const batch = new MessageBatch({ bytes: n * data.length || 1, messages: n });
  for (let i = 0; i < n; i++) batch.push(data);
  return batch;
}

function end0(): never {
  throw new Error('unexpected end of the pipe');
}

/** Sends `n` framed messages of `data` in `mode`. */
async function sendMessages(end: PipeWriteEnd, data: Buffer, n: number, mode: Mode): Promise<void> {
  const batch = Array.from({ length: SEND_BATCH }, () => data);
  const packed = mode.endsWith('packed') ? batchOf(data, SEND_BATCH) : undefined;
  for (let i = 0; i < n;) {
    switch (mode) {
      case 'sync': end.sendSync(data); i++; break;
      case 'async': await end.send(data); i++; break;
      case 'sync batch': i += end.sendManySync(n - i >= SEND_BATCH ? batch : batch.slice(0, n - i)); break;
      case 'async batch': i += await end.sendMany(n - i >= SEND_BATCH ? batch : batch.slice(0, n - i)); break;
      case 'sync packed': i += end.sendBatchSync(n - i >= SEND_BATCH ? packed! : batchOf(data, n - i)); break;
      case 'async packed': i += await end.sendBatch(n - i >= SEND_BATCH ? packed! : batchOf(data, n - i)); break;
    }
  }
}

async function serve(input: PipeReadEnd, output: PipeWriteEnd, p: Params): Promise<void> {
  const data = Buffer.alloc(p.size);
  if (p.kind === 'msgs') {
    for (const n of throughputBatches(p.iterations)) {
      for (let got = 0; got < n;) got += await receiveSome(input, p.mode);
      await write(output, Buffer.from('k'), p.mode);
    }
    return;
  }
  if (p.kind === 'rtt') {
    for (let i = totalRoundTrips(p.iterations); i > 0; i--) {
      await readFull(input, p.size, p.mode);
      await write(output, data, p.mode);
    }
    return;
  }
  for (const n of throughputBatches(p.iterations)) {
    await readFull(input, n * p.size, p.mode);
    await write(output, Buffer.from('k'), p.mode);
  }
}

async function drive(output: PipeWriteEnd, input: PipeReadEnd, p: Params): Promise<void> {
  const data = Buffer.alloc(p.size);
  if (p.kind === 'rtt') {
    await measureRoundTrips(p.iterations, p.mode === 'sync'
      ? () => { output.writeSync(data); readFullSync(input, p.size); }
      : async () => { await output.write(data); await readFull(input, p.size, 'async'); });
    return;
  }
  await measureThroughput(p.iterations, p.size, async (n) => {
    if (p.kind === 'msgs') await sendMessages(output, data, n, p.mode);
    else for (let i = 0; i < n; i++) await write(output, data, p.mode);
    await readFull(input, 1, p.mode);
  });
}

function readFullSync(end: PipeReadEnd, size: number): void {
  for (let got = 0; got < size;) got += end.readIntoSync(inbox.subarray(0, Math.min(size - got, THROUGHPUT_SIZE)))!;
}

export const roles = {
  /** Anonymous pipes: makes both, starts the echo side as a child with fds 3 and 4, and measures. */
  async 'pipe-client'(p: Params): Promise<void> {
    const toChild = pipe();
    const toParent = pipe();
    const child = spawn(process.execPath, [RUNNER, mechanism, 'pipe-server', JSON.stringify(p)],
      { fds: { 3: toChild.readEnd, 4: toParent.writeEnd }, stdio: ['ignore', 'ignore', 'inherit'] });
    toChild.readEnd.close();
    toParent.writeEnd.close();
    await drive(toChild.writeEnd, toParent.readEnd, p);
    await new Promise((resolve) => child.once('exit', resolve));
  },

  async 'pipe-server'(p: Params): Promise<void> {
    await serve(PipeReadEnd.fromFd(3), PipeWriteEnd.fromFd(4), p);
  },

  async 'fifo-server'(p: Params): Promise<void> {
    print({ ready: true });
    const input = p.mode === 'sync' ? Fifo.openReadSync(p.a!) : await Fifo.openRead(p.a!);
    const output = p.mode === 'sync' ? Fifo.openWriteSync(p.b!) : await Fifo.openWrite(p.b!);
    await serve(input, output, p);
  },

  async 'fifo-client'(p: Params): Promise<void> {
    const output = p.mode === 'sync' ? Fifo.openWriteSync(p.a!) : await Fifo.openWrite(p.a!);
    const input = p.mode === 'sync' ? Fifo.openReadSync(p.b!) : await Fifo.openRead(p.b!);
    await drive(output, input, p);
    process.exit(0);
  },

  /** Node's own: a child's stdin and stdout pipes, through streams. */
  async 'stdio-client'(p: Params): Promise<void> {
    const child = spawnChild(process.execPath, [RUNNER, mechanism, 'stdio-server', JSON.stringify(p)], { stdio: ['pipe', 'pipe', 'inherit'] });
    let buffered = 0;
    let waiter: { need: number; resolve: () => void } | undefined;
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.length;
      if (waiter && buffered >= waiter.need) {
        buffered -= waiter.need;
        const w = waiter;
        waiter = undefined;
        w.resolve();
      }
    });
    const receive = (need: number): Promise<void> => {
      if (buffered >= need) {
        buffered -= need;
        return Promise.resolve();
      }
      return new Promise((resolve) => { waiter = { need, resolve }; });
    };
    const send = (data: Buffer): Promise<void> => new Promise((resolve) => {
      if (child.stdin!.write(data)) resolve();
      else child.stdin!.once('drain', resolve);
    });
    const data = Buffer.alloc(p.size);
    if (p.kind === 'rtt') {
      await measureRoundTrips(p.iterations, async () => {
        const reply = receive(p.size);
        await send(data);
        await reply;
      });
    } else {
      await measureThroughput(p.iterations, p.size, async (n) => {
        const ack = receive(1);
        for (let i = 0; i < n; i++) await send(data);
        await ack;
      });
    }
    child.stdin!.end();
    await new Promise((resolve) => child.once('exit', resolve));
  },

  async 'stdio-server'(p: Params): Promise<void> {
    const batches = p.kind === 'rtt' ? [] : throughputBatches(p.iterations).map((n) => n * p.size);
    let pending = 0;
    process.stdin.on('data', (chunk: Buffer) => {
      if (p.kind === 'rtt') {
        pending += chunk.length;
        while (pending >= p.size) {
          pending -= p.size;
          process.stdout.write(Buffer.alloc(p.size));
        }
        return;
      }
      pending += chunk.length;
      while (batches.length > 0 && pending >= batches[0]!) {
        pending -= batches.shift()!;
        process.stdout.write('k');
      }
    });
    await new Promise((resolve) => process.stdin.once('end', resolve));
  },
};

export async function measure(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-bench-pipe-'));
  try {
    for (const kind of ['rtt', 'tput'] as const) {
      const iterations = kind === 'rtt' ? ctx.rttIterations : Math.floor(ctx.throughputMessages / 10);
      const size = kind === 'rtt' ? RTT_SIZE : THROUGHPUT_SIZE;
      const cPipe = await ctx.runPair(undefined, [ctx.cProgram('pipe'), 'pipe', kind, String(iterations), String(size)]);
      rows.push(...rowsFor(mechanism, 'C pipe', ctx.placement, cPipe, null, null));
      for (const mode of ['sync', 'async'] as const) {
        const m = await ctx.runPair(undefined, ctx.nodeRole(mechanism, 'pipe-client', { kind, mode, iterations, size }));
        rows.push(...rowsFor(mechanism, `ipckit pipe ${mode}`, ctx.placement, m, 'C pipe', cPipe));
      }
      const a = path.join(dir, 'a');
      const b = path.join(dir, 'b');
      Fifo.create(a);
      Fifo.create(b);
      try {
        const cFifo = await ctx.runPair([ctx.cProgram('pipe'), 'fifo', 'server', kind, a, b, String(iterations), String(size)],
          [ctx.cProgram('pipe'), 'fifo', 'client', kind, a, b, String(iterations), String(size)]);
        rows.push(...rowsFor(mechanism, 'C fifo', ctx.placement, cFifo, null, null));
        for (const mode of ['sync', 'async'] as const) {
          const params = { kind, mode, iterations, size, a, b };
          const m = await ctx.runPair(ctx.nodeRole(mechanism, 'fifo-server', params), ctx.nodeRole(mechanism, 'fifo-client', params));
          rows.push(...rowsFor(mechanism, `ipckit fifo ${mode}`, ctx.placement, m, 'C fifo', cFifo));
        }
      } finally {
        Fifo.unlink(a);
        Fifo.unlink(b);
      }
      const node = await ctx.runPair(undefined, ctx.nodeRole(mechanism, 'stdio-client', { kind, mode: 'async', iterations, size }));
      rows.push(...rowsFor(mechanism, 'node child_process stdio', ctx.placement, node, 'C pipe', cPipe));
    }
    // Small framed messages, one per call and batched, over anonymous pipes.
    const iterations = ctx.throughputMessages * 4;
    // Batches move 2-10 times as much a second: BATCHED_SCALE times the messages keep their timed part long enough to measure.
    const many = iterations * BATCHED_SCALE;
    const modes = ['sync', 'async', 'sync batch', 'async batch', 'sync packed', 'async packed'] as const;
    const batchedMode = (mode: typeof modes[number]): boolean => mode !== 'sync' && mode !== 'async';
    // In rounds, the C references and every variant taking turns: single runs on this shared machine differ by up to 3x.
    const [cOne, cMany, cAtomic, ...ours] = await inRounds(ctx.rounds, [
      () => ctx.runPair(undefined, [ctx.cProgram('pipe'), 'pipe', 'msgs', String(iterations), String(MESSAGE_SIZE)]),
      () => ctx.runPair(undefined, [ctx.cProgram('pipe'), 'pipe', 'msgsv', String(many), String(MESSAGE_SIZE)]),
      // ipckit's batches keep every message atomic under other writers (whole frames of at most PIPE_BUF bytes a writev): C doing the same.
      () => ctx.runPair(undefined, [ctx.cProgram('pipe'), 'pipe', 'msgsa', String(many), String(MESSAGE_SIZE)]),
      ...modes.map((mode) => () => ctx.runPair(undefined, ctx.nodeRole(mechanism, 'pipe-client',
        { kind: 'msgs', mode, iterations: batchedMode(mode) ? many : iterations, size: MESSAGE_SIZE }))),
    ]);
    rows.push(...rowsFor(mechanism, 'C pipe 256 B messages', ctx.placement, cOne!, null, null));
    rows.push(...rowsFor(mechanism, 'C pipe 256 B messages writev', ctx.placement, cMany!, null, null));
    rows.push(...rowsFor(mechanism, 'C pipe 256 B messages writev atomic', ctx.placement, cAtomic!, null, null));
    for (const [i, mode] of modes.entries()) {
      const m = ours[i]!;
      const batched = batchedMode(mode);
      rows.push(...rowsFor(mechanism, `ipckit pipe 256 B messages ${mode}`, ctx.placement, m,
        batched ? 'C pipe 256 B messages writev' : 'C pipe 256 B messages', batched ? cMany! : cOne!));
      if (batched) rows.push(...rowsFor(mechanism, `ipckit pipe 256 B messages ${mode} vs atomic C`, ctx.placement, m, 'C pipe 256 B messages writev atomic', cAtomic!));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
