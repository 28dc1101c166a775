/**
 * Entry point of a test peer process: `node peer-main.js <scenario> <json>`.
 * Reports through JSON lines on stdout.
 */
import { createHash } from 'node:crypto';
import { IpcError, PosixMessageQueue, SysvMessageQueue } from '../../src/index.js';

type Mode = 'sync' | 'async' | 'iterate';

interface QueueParams {
  family: 'posix' | 'sysv';
  address: string | number;
}

function emit(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function open(p: QueueParams): PosixMessageQueue | SysvMessageQueue {
  return p.family === 'posix' ? PosixMessageQueue.open(p.address as string) : SysvMessageQueue.open(p.address);
}

/** Blocks forever in the given way, so the parent can kill the process there. */
async function hang(q: PosixMessageQueue | SysvMessageQueue, how: 'sync' | 'async'): Promise<never> {
  emit({ event: 'hanging' });
  if (how === 'sync') {
    if (q instanceof PosixMessageQueue) q.receiveSync();
    else q.receiveSync({ type: 999_999 });
  } else if (q instanceof PosixMessageQueue) {
    await q.receive();
  } else {
    await q.receive({ type: 999_999 });
  }
  throw new Error('hang() returned');
}

function digest(seq: number, payload: Buffer): string {
  return createHash('sha256').update(String(seq)).update(payload).digest('hex').slice(0, 16);
}

const scenarios: Record<string, (params: any) => Promise<void>> = {
  /** Receives `count` messages and prints each; optionally hangs afterwards. */
  async receive(p: QueueParams & { count: number; mode: Mode; type?: number; timeout?: number; then?: 'sync' | 'async'; hangOn?: string | number }) {
    const q = open(p);
    emit({ event: 'ready', pid: process.pid });
    let received = 0;
    const print = (m: { data: Buffer; priority?: number; type?: number }): void => {
      emit({ data: m.data.toString('utf8'), ...(m.priority === undefined ? {} : { priority: m.priority }), ...(m.type === undefined ? {} : { type: m.type }) });
    };
    if (p.mode === 'iterate') {
      const iterable = q instanceof PosixMessageQueue ? q.messages() : q.messages({ ...(p.type === undefined ? {} : { type: p.type }) });
      for await (const m of iterable) {
        print(m);
        if (++received === p.count) break;
      }
    }
    const options = { ...(p.type === undefined ? {} : { type: p.type }), ...(p.timeout === undefined ? {} : { timeout: p.timeout }) };
    for (; received < p.count; received++) {
      if (q instanceof PosixMessageQueue) print(p.mode === 'sync' ? q.receiveSync(options) : await q.receive(options));
      else print(p.mode === 'sync' ? q.receiveSync(options) : await q.receive(options));
    }
    if (p.then !== undefined) await hang(p.hangOn === undefined ? q : open({ family: p.family, address: p.hangOn }), p.then);
    q.close();
  },

  /** Sends the given messages. */
  async send(p: QueueParams & { mode: Mode; messages: { data: string; priority?: number; type?: number }[] }) {
    const q = open(p);
    emit({ event: 'ready', pid: process.pid });
    for (const m of p.messages) {
      const data = Buffer.from(m.data);
      if (q instanceof PosixMessageQueue) {
        if (p.mode === 'sync') q.sendSync(data, { priority: m.priority ?? 0 });
        else await q.send(data, { priority: m.priority ?? 0 });
      } else if (p.mode === 'sync') {
        q.sendSync(m.type ?? 1, data);
      } else {
        await q.send(m.type ?? 1, data);
      }
    }
    emit({ event: 'sent', count: p.messages.length });
    q.close();
  },

  /** Sends `count` numbered messages of `size` bytes, each with a checksum. */
  async 'soak-send'(p: QueueParams & { count: number; size: number; mode: Mode }) {
    const q = open(p);
    for (let seq = 0; seq < p.count; seq++) {
      const payload = Buffer.alloc(p.size, seq % 251);
      payload.writeUInt32LE(seq, 0);
      const body = Buffer.concat([Buffer.from(digest(seq, payload)), payload]);
      if (q instanceof PosixMessageQueue) {
        if (p.mode === 'sync') q.sendSync(body);
        else await q.send(body);
      } else if (p.mode === 'sync') {
        q.sendSync(1, body);
      } else {
        await q.send(1, body);
      }
    }
    emit({ event: 'sent', count: p.count });
    q.close();
  },

  /** Receives `count` soak messages and checks order and checksums. */
  async 'soak-receive'(p: QueueParams & { count: number; mode: Mode }) {
    const q = open(p);
    emit({ event: 'ready' });
    let bad = 0;
    let firstBad: string | undefined;
    for (let expected = 0; expected < p.count; expected++) {
      const m = q instanceof PosixMessageQueue
        ? (p.mode === 'sync' ? q.receiveSync({ timeout: 20_000 }) : await q.receive({ timeout: 20_000 }))
        : (p.mode === 'sync' ? q.receiveSync({ timeout: 20_000 }) : await q.receive({ timeout: 20_000 }));
      const sum = m.data.subarray(0, 16).toString();
      const payload = m.data.subarray(16);
      const seq = payload.readUInt32LE(0);
      if (seq !== expected || sum !== digest(seq, payload)) {
        bad++;
        firstBad ??= `expected #${expected}, got #${seq} (checksum ${sum === digest(seq, payload) ? 'ok' : 'bad'})`;
      }
    }
    emit({ event: 'done', received: p.count, bad, firstBad: firstBad ?? null, leftover: q instanceof PosixMessageQueue ? q.attributes().messages : q.stat().messages });
    q.close();
  },

  /** Starts a receive that cannot complete, then closes the handle; the process must then exit by itself. */
  async 'close-pending'(p: QueueParams) {
    const q = open(p);
    const pending = q instanceof PosixMessageQueue ? q.receive() : q.receive({ type: 424242 });
    setTimeout(() => q.close(), 50);
    try {
      await pending;
      emit({ event: 'resolved' });
    } catch (err) {
      emit({ event: 'rejected', code: (err as IpcError).code });
    }
  },

  /** Tries to create a POSIX queue and reports the error code. */
  async 'create-posix'(p: { name: string; maxMessages: number; maxMessageSize: number }) {
    try {
      PosixMessageQueue.create(p.name, { maxMessages: p.maxMessages, maxMessageSize: p.maxMessageSize }).close();
      PosixMessageQueue.unlink(p.name);
      emit({ created: true });
    } catch (err) {
      const e = err as IpcError;
      emit({ created: false, code: e.code, errno: e.errno ?? null, message: e.message });
    }
  },
};

const [scenario, json] = process.argv.slice(2);
const run = scenarios[scenario!];
if (run === undefined) {
  process.stderr.write(`unknown scenario ${scenario}\n`);
  process.exit(2);
}
try {
  await run(JSON.parse(json ?? '{}'));
} catch (err) {
  emit({ event: 'error', code: (err as IpcError).code ?? null, message: (err as Error).message });
  process.exitCode = 1;
}
