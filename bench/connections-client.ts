/**
 * A load-generating process of the connections benchmark (bench/connections.ts
 * starts several): `node connections-client.js <json params>`.
 *
 * It opens its share of the connections with plain `net` sockets, a bounded
 * number of connects in flight, and prints `{"event":"ready",...}` once every
 * one has connected or failed. Each connection then sends a request of `size`
 * bytes every 1/rate s (from a random phase), at most one outstanding, and
 * checks that the full echo comes back byte for byte. Commands arrive on stdin,
 * one a line: `start` opens the measured window, `stop` closes it; after
 * `stop` it waits for the requests still outstanding (up to the answer
 * timeout), prints `{"event":"result",...}` and exits. It exits when stdin
 * closes, so it never outlives the process that started it.
 */
import net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface ClientParams {
  /** A Unix socket path, or a TCP host and port. */
  target: { path: string } | { host: string; port: number };
  /** Number of this client's first connection (it goes into the payloads). */
  first: number;
  connections: number;
  /** Requests per connection per second. */
  rate: number;
  /** Request size in bytes. */
  size: number;
  /** Connects in flight at once. */
  connectConcurrency: number;
  /** A connection that is not up by then (counting retries) failed. */
  connectTimeoutMs: number;
  /** Connects not done within this (from the start) fail: a server that accepts nothing must not stall the ramp. */
  rampMs: number;
  /** A request not answered in full by then is an error. */
  answerTimeoutMs: number;
}

export type FailureKind = 'connect' | 'reset' | 'eof' | 'timeout' | 'mismatch';

export interface ClientReady {
  event: 'ready';
  opened: number;
  connectFailures: number;
  rampMs: number;
}

export interface ClientResult {
  event: 'result';
  /** Connections that ever connected. */
  opened: number;
  /** Connections open at the end, none of whose requests failed. */
  sustained: number;
  failures: Record<FailureKind, number>;
  /** Requests sent inside the measured window. */
  sent: number;
  /** Of those, answered in full. */
  answered: number;
  /** Latencies of the answered ones: [bucket, count] (see {@link bucketOf}). */
  histogram: [number, number][];
  /** The first distinct failure messages. */
  messages: string[];
}

/** Latency histogram buckets grow by this factor (0.5 % apart: percentiles within 0.25 %). */
export const BUCKET_BASE = 1.005;
const LOG_BASE = Math.log(BUCKET_BASE);

/** The histogram bucket of a latency in ms. */
export function bucketOf(ms: number): number {
  const us = ms * 1000;
  return us <= 1 ? 0 : Math.floor(Math.log(us) / LOG_BASE);
}

/** The latency (ms) a bucket stands for: its geometric middle. */
export function bucketValue(bucket: number): number {
  return bucket === 0 ? 0.001 : BUCKET_BASE ** (bucket + 0.5) / 1000;
}

const MESSAGES_KEPT = 5;
/**
 * A connect refused because the listener's backlog is full (Unix sockets: EAGAIN) is tried again after
 * this (plus jitter), half as long again after each refusal, up to MAX_RETRY_MS.
 */
const RETRY_MS = 5;
const MAX_RETRY_MS = 200;
const SWEEP_MS = 100;

interface Connection {
  id: number;
  socket: net.Socket;
  seq: number;
  /** The request being answered, or null. */
  expected: Buffer | null;
  /** Bytes of it echoed so far. */
  received: number;
  sentAt: number;
  /** Sent inside the measured window. */
  counted: boolean;
  /** A tick came while a request was outstanding: send when it is answered. */
  due: boolean;
  failed: boolean;
  timer: NodeJS.Timeout | undefined;
}

async function main(p: ClientParams): Promise<void> {
  const failures: Record<FailureKind, number> = { connect: 0, reset: 0, eof: 0, timeout: 0, mismatch: 0 };
  const messages: string[] = [];
  const live = new Set<Connection>();
  const histogram = new Map<number, number>();
  let opened = 0;
  let sending = true;
  let measuring = false;
  let stopping = false;
  let sent = 0;
  let answered = 0;
  const period = 1000 / p.rate;
  const started = performance.now();

  // Every request is this pattern with the connection and sequence numbers in front, so a crossed or stale echo shows.
  const pattern = Buffer.allocUnsafe(p.size);
  for (let i = 0; i < p.size; i++) pattern[i] = (i * 7 + 13) & 0xff;
  const header = Buffer.allocUnsafe(8);

  const note = (kind: FailureKind, message: string): void => {
    failures[kind]++;
    if (messages.length < MESSAGES_KEPT && !messages.includes(message)) messages.push(message);
  };

  const fail = (c: Connection, kind: FailureKind, message: string): void => {
    if (c.failed) return;
    c.failed = true;
    live.delete(c);
    clearTimeout(c.timer);
    c.socket.destroy();
    note(kind, message);
  };

  const send = (c: Connection): void => {
    const payload = Buffer.allocUnsafe(p.size);
    pattern.copy(payload);
    header.writeUInt32BE(c.id >>> 0, 0);
    header.writeUInt32BE(c.seq++ >>> 0, 4);
    header.copy(payload, 0, 0, Math.min(8, p.size));
    c.expected = payload;
    c.received = 0;
    c.due = false;
    c.counted = measuring;
    if (measuring) sent++;
    c.sentAt = performance.now();
    c.socket.write(payload);
  };

  const tick = (c: Connection): void => {
    if (c.failed || !sending) return;
    if (c.expected !== null) c.due = true;
    else send(c);
  };

  const onData = (c: Connection, chunk: Buffer): void => {
    const expected = c.expected;
    if (expected === null) {
      fail(c, 'mismatch', `${chunk.length} bytes arrived with no request outstanding`);
      return;
    }
    const remaining = expected.length - c.received;
    const n = Math.min(remaining, chunk.length);
    if (!chunk.subarray(0, n).equals(expected.subarray(c.received, c.received + n))) {
      fail(c, 'mismatch', `the echo differs from the request (within bytes ${c.received} to ${c.received + n} of ${expected.length})`);
      return;
    }
    if (chunk.length > remaining) {
      fail(c, 'mismatch', `${chunk.length - remaining} bytes more than the request came back`);
      return;
    }
    c.received += n;
    if (c.received < expected.length) return;
    const ms = performance.now() - c.sentAt;
    c.expected = null;
    if (c.counted) {
      answered++;
      const b = bucketOf(ms);
      histogram.set(b, (histogram.get(b) ?? 0) + 1);
    }
    if (c.due && sending) send(c);
  };

  const begin = (c: Connection): void => {
    opened++;
    live.add(c);
    if ('host' in p.target) c.socket.setNoDelay(true);
    c.socket.on('data', (chunk: Buffer) => onData(c, chunk));
    c.socket.on('error', (err: NodeJS.ErrnoException) => fail(c, 'reset', `${err.code ?? 'error'}: ${err.message}`));
    c.socket.on('end', () => fail(c, 'eof', 'the server closed the connection'));
    c.socket.on('close', () => fail(c, 'eof', 'the connection closed'));
    c.timer = setTimeout(() => {
      if (c.failed) return;
      tick(c);
      c.timer = setInterval(() => tick(c), period);
    }, Math.random() * period);
  };

  /** Connects connection `id`, retrying a full backlog; resolves once it is up or has failed. */
  const connect = (id: number): Promise<void> => new Promise((resolve) => {
    const own = performance.now() + p.connectTimeoutMs;
    const deadline = Math.min(own, started + p.rampMs);
    const late = deadline === own ? `not connected within ${p.connectTimeoutMs} ms` : `not connected by the end of the ramp (${p.rampMs} ms)`;
    let retry = RETRY_MS;
    const attempt = (): void => {
      const socket = net.connect(p.target);
      const timer = setTimeout(() => {
        socket.destroy();
        note('connect', `connect: ${late}`);
        resolve();
      }, Math.max(0, deadline - performance.now()));
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        begin({ id, socket, seq: 0, expected: null, received: 0, sentAt: 0, counted: false, due: false, failed: false, timer: undefined });
        resolve();
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        socket.destroy();
        const wait = retry * (1 + Math.random());
        retry = Math.min(MAX_RETRY_MS, retry * 1.5);
        if (err.code === 'EAGAIN' && performance.now() + wait < deadline) {
          setTimeout(attempt, wait);
          return;
        }
        note('connect', err.code === 'EAGAIN' ? `connect: ${late} (the listen backlog stayed full: EAGAIN)` : `connect ${err.code ?? 'error'}: ${err.message}`);
        resolve();
      });
    };
    if (performance.now() >= deadline) {
      note('connect', 'connect: not attempted before the end of the ramp');
      resolve();
    } else attempt();
  });

  const sweep = setInterval(() => {
    const now = performance.now();
    for (const c of live) {
      if (c.expected !== null && now - c.sentAt > p.answerTimeoutMs) {
        fail(c, 'timeout', `no full answer within ${p.answerTimeoutMs} ms (${c.received} of ${p.size} bytes came back)`);
      }
    }
  }, SWEEP_MS);

  const finish = async (): Promise<void> => {
    sending = false;
    measuring = false;
    for (const c of live) clearInterval(c.timer);
    const until = performance.now() + p.answerTimeoutMs + 2 * SWEEP_MS;
    while (performance.now() < until && [...live].some((c) => c.expected !== null)) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    clearInterval(sweep);
    const sustained = live.size;
    stopping = true;
    for (const c of live) {
      c.failed = true;
      c.socket.destroy();
    }
    const result: ClientResult = {
      event: 'result', opened, sustained, failures, sent, answered, histogram: [...histogram], messages,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
  };

  const commands = createInterface({ input: process.stdin });
  commands.on('line', (line) => {
    const command = line.trim();
    if (command === 'start') {
      measuring = true;
    } else if (command === 'stop' && !stopping) {
      stopping = true;
      void finish();
    }
  });
  // The benchmark went away: so does its load.
  commands.on('close', () => {
    if (!stopping) process.exit(1);
  });

  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < p.connections) await connect(p.first + next++);
  };
  await Promise.all(Array.from({ length: Math.min(p.connectConcurrency, p.connections) }, worker));
  const ready: ClientReady = { event: 'ready', opened, connectFailures: failures.connect, rampMs: Math.round(performance.now() - started) };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

// Only as a process of its own: bench/connections.ts imports the histogram helpers.
if (process.argv[1] === fileURLToPath(import.meta.url)) await main(JSON.parse(process.argv[2] ?? '{}') as ClientParams);
