/**
 * NATS mailbox benchmark: round trips of 64-byte messages (sent on one
 * mailbox, echoed back on a second) and one-way throughput of 8 KiB
 * messages (each batch acknowledged on the second mailbox) through
 * NatsMailbox, with memory and with file storage, against a nats-server
 * the benchmark starts on a free loopback port (pinned to CPU 0 with the
 * two processes in the pinned placement).
 *
 * In the same run: ipckit's async POSIX queue doing the same exchange (the
 * ratio reference, the message-queue benchmark's own roles), and the NATS
 * client alone — core publish/subscribe and request-reply, no JetStream,
 * nothing stored — which is what NatsMailbox costs over the client.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { DEFAULT_SPIN_US, NatsMailbox } from '../src/index.js';
import type { BenchContext, Measurement, Placement, Row } from './harness.js';
import { rowsFor } from './harness.js';
import { withQueues } from './message-queue.js';
import { measureRoundTrips, measureThroughput, print, throughputBatches, totalRoundTrips } from './stats.js';

export const mechanism = 'nats';

const RTT_SIZE = 64;
const THROUGHPUT_SIZE = 8192;
/**
 * Every NATS variant is measured with a tenth of the harness's counts (2,000
 * round trips, 5,000 messages in a full run): a mailbox round trip is about a
 * hundred times longer than a kernel queue's, and ten times as many would
 * only make the run last minutes, not change the percentiles.
 */
const SCALE = 10;

type Kind = 'rtt' | 'tput';
type Storage = 'memory' | 'file';

interface Params {
  kind: Kind;
  /** nats://127.0.0.1:PORT */
  url: string;
  /** Client → server mailbox (or subject) and server → client. */
  a: string;
  b: string;
  iterations: number;
  size: number;
}

async function openPair(p: Params): Promise<{ a: NatsMailbox; b: NatsMailbox }> {
  return { a: await NatsMailbox.open(`${p.url}/${p.a}`), b: await NatsMailbox.open(`${p.url}/${p.b}`) };
}

async function connectClient(url: string): Promise<NatsConnection> {
  const { connect } = await import('@nats-io/transport-node');
  return connect({ servers: url.replace(/^nats:\/\//, ''), name: 'ipckit-bench' });
}

export const roles = {
  /** Echoes (rtt) or takes a batch then acknowledges it (tput): receives on A, sends on B. */
  async 'mailbox-server'(p: Params): Promise<void> {
    const { a, b } = await openPair(p);
    print({ ready: true });
    if (p.kind === 'rtt') {
      for (let i = totalRoundTrips(p.iterations); i > 0; i--) await b.send((await a.receive()).data);
    } else {
      for (const n of throughputBatches(p.iterations)) {
        for (let i = 0; i < n; i++) await a.receive();
        await b.send(Buffer.from('k'));
      }
    }
    await a.close();
    await b.close();
    process.exit(0);
  },

  async 'mailbox-client'(p: Params): Promise<void> {
    const { a, b } = await openPair(p);
    const payload = Buffer.alloc(p.size, 0x61);
    if (p.kind === 'rtt') {
      await measureRoundTrips(p.iterations, async () => {
        await a.send(payload);
        await b.receive();
      });
    } else {
      await measureThroughput(p.iterations, p.size, async (n) => {
        for (let i = 0; i < n; i++) await a.send(payload);
        await b.receive();
      });
    }
    await a.close();
    await b.close();
    process.exit(0);
  },

  /** The client alone: a responder (rtt), or a subscriber that counts a batch and publishes an acknowledgement (tput). */
  async 'client-server'(p: Params): Promise<void> {
    const nc = await connectClient(p.url);
    const done = new Promise<void>((resolve) => {
      if (p.kind === 'rtt') {
        let left = totalRoundTrips(p.iterations);
        nc.subscribe(p.a, {
          callback: (_err, msg) => {
            msg.respond(msg.data);
            if (--left === 0) resolve();
          },
        });
      } else {
        const batches = throughputBatches(p.iterations);
        let received = 0;
        nc.subscribe(p.a, {
          callback: () => {
            if (++received < batches[0]!) return;
            received = 0;
            batches.shift();
            nc.publish(p.b, 'k');
            if (batches.length === 0) resolve();
          },
        });
      }
    });
    await nc.flush();
    print({ ready: true });
    await done;
    await nc.drain();
    process.exit(0);
  },

  async 'client-client'(p: Params): Promise<void> {
    const nc = await connectClient(p.url);
    const payload = Buffer.alloc(p.size, 0x61);
    if (p.kind === 'rtt') {
      await measureRoundTrips(p.iterations, async () => {
        await nc.request(p.a, payload, { timeout: 10_000 });
      });
    } else {
      const acks: (() => void)[] = [];
      nc.subscribe(p.b, { callback: () => acks.shift()?.() });
      await nc.flush();
      await measureThroughput(p.iterations, p.size, async (n) => {
        const ack = new Promise<void>((resolve) => acks.push(resolve));
        for (let i = 0; i < n; i++) {
          nc.publish(p.a, payload);
          // Core NATS has no flow control: a round trip to the server now and then keeps the
          // publisher from running far ahead of the subscriber (which the server would cut off
          // as a slow consumer).
          if (i % 64 === 63) await nc.flush();
        }
        await ack;
      });
    }
    await nc.close();
    process.exit(0);
  },
};

/** A nats-server with JetStream on a free loopback port and a storage folder of its own, pinned like the peers. */
async function startServer(placement: Placement): Promise<{ url: string; stop(): Promise<void> }> {
  const store = mkdtempSync(path.join(tmpdir(), 'ipckit-bench-nats-'));
  const argv = [...(placement === 'pinned' ? ['taskset', '-c', '0'] : []), 'nats-server', '-js', '-a', '127.0.0.1', '-p', '-1', '-sd', store];
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      log += chunk;
      const m = /Listening for client connections on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m && /Server is ready/.test(log)) resolve(Number(m[1]));
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`nats-server exited (${code}) before it was ready: ${log.trim()}`)));
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = once(child, 'exit');
        child.kill('SIGTERM');
        await gone;
      }
      rmSync(store, { recursive: true, force: true });
    },
  };
}

/** Two mailboxes of one storage for a run, removed afterwards. */
async function withMailboxes<R>(url: string, storage: Storage, run: (a: string, b: string) => Promise<R>): Promise<R> {
  const names = [`bench-a-${storage}`, `bench-b-${storage}`];
  const boxes = [];
  for (const name of names) boxes.push(await NatsMailbox.create(`${url}/${name}`, { storage }));
  try {
    return await run(names[0]!, names[1]!);
  } finally {
    for (const box of boxes) {
      await box.unlink();
      await box.close();
    }
  }
}

const POSIX = 'ipckit posix async';
const CLIENT = 'nats.js core';

export async function measure(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const server = await startServer(ctx.placement);
  try {
    for (const kind of ['rtt', 'tput'] as const) {
      const iterations = Math.max(100, Math.floor((kind === 'rtt' ? ctx.rttIterations : ctx.throughputMessages) / SCALE));
      const size = kind === 'rtt' ? RTT_SIZE : THROUGHPUT_SIZE;
      // The reference: the message-queue benchmark's async POSIX pair (default spin), same counts.
      const posix = await withQueues('posix', (a, b) => {
        const params = { family: 'posix', mode: 'async', kind, a, b, iterations, size, spin: DEFAULT_SPIN_US };
        return ctx.runPair(ctx.nodeRole('message-queue', 'server', params), ctx.nodeRole('message-queue', 'client', params));
      });
      rows.push(...rowsFor(mechanism, POSIX, ctx.placement, posix, null, null));
      const subjects = { a: `ipckit-bench.${process.pid}.a`, b: `ipckit-bench.${process.pid}.b` };
      const clientParams: Params = { kind, url: server.url, ...subjects, iterations, size };
      const client: Measurement = await ctx.runPair(ctx.nodeRole(mechanism, 'client-server', clientParams),
        ctx.nodeRole(mechanism, 'client-client', clientParams));
      rows.push(...rowsFor(mechanism, CLIENT, ctx.placement, client, POSIX, posix));
      for (const storage of ['memory', 'file'] as const) {
        const m = await withMailboxes(server.url, storage, (a, b) => {
          const params: Params = { kind, url: server.url, a, b, iterations, size };
          return ctx.runPair(ctx.nodeRole(mechanism, 'mailbox-server', params), ctx.nodeRole(mechanism, 'mailbox-client', params));
        });
        rows.push(...rowsFor(mechanism, `NatsMailbox ${storage}`, ctx.placement, m, POSIX, posix));
        // The same measurement against the client alone: what the mailbox costs over it.
        rows.push(...rowsFor(mechanism, `NatsMailbox ${storage} / client`, ctx.placement, m, CLIENT, client));
      }
    }
  } finally {
    await server.stop();
  }
  return rows;
}
