/**
 * The batched calls of the shared-memory channel: sendMany publishes many
 * records with one store of the tail, receiveMany takes many and gives
 * their space back with one store of the head. Exact counts when a batch
 * ends part-way, the channel's counters, codec refusals (held messages
 * reach receive, receiveInto and views in order), shared sides, and
 * argument checks. The conformance suite runs them between processes.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Channel } from '../src/index.js';
import { refusingCodec, rejectsWith, stillPending, throwsWith } from './helpers/assert.js';
import { ObjectTracker } from './helpers/objects.js';

const objects = new ObjectTracker();

/** A resizable ArrayBuffer (ES2024; typed here by hand). */
function resizable(length: number, maxByteLength: number): ArrayBuffer & { resize(length: number): void } {
  const Resizable = ArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => ArrayBuffer & { resize(length: number): void };
  return new Resizable(length, { maxByteLength });
}
after(() => objects.cleanup());

/** A producer and a consumer handle of a fresh channel (`codec` goes to both). */
function pair<T = Buffer>(options: { capacity?: number; maxMessageSize?: number; codec?: 'json' } = {}): { p: Channel<T>; c: Channel<T>; done(): void } {
  const name = objects.shmName('ch-batch');
  const p = Channel.create(name, options) as unknown as Channel<T>;
  const c = Channel.open(name, options.codec === undefined ? undefined : { codec: options.codec }) as unknown as Channel<T>;
  return {
    p, c, done() {
      p.close();
      c.close();
      Channel.unlink(name);
    },
  };
}

describe('Channel batches', () => {
  it('many per call, in order, with a codec; [] while empty; the counters count each message', async () => {
    const json = pair<unknown>({ capacity: 4096, codec: 'json' });
    try {
      assert.equal(json.p.trySendMany([1, 'two', { three: 3 }]), 3);
      assert.equal(await json.p.sendMany([null]), 1);
      assert.equal(json.p.sendManySync([]), 0);
      assert.deepEqual(json.c.receiveManySync({ max: 2 }).map((m) => m.data), [1, 'two']);
      assert.deepEqual((await json.c.receiveMany()).map((m) => m.data), [{ three: 3 }, null]);
      assert.deepEqual(json.c.tryReceiveMany(), []);
      const stats = json.p.stats();
      assert.deepEqual([stats.sent, stats.received, stats.depth, stats.sentBytes, stats.receivedBytes], [4, 4, 0, 21, 21]);
      const waiting = json.c.receiveMany({ max: 3 });
      assert.ok(await stillPending(waiting, 30));
      json.p.sendManySync(['x', 'y']);
      assert.deepEqual((await waiting).map((m) => m.data), ['x', 'y']);
    } finally {
      json.done();
    }
  });

  it('sendMany waits for room; a timeout, an abort or close part-way resolves with exactly what went', async () => {
    const { p, c, done } = pair({ capacity: 4096, maxMessageSize: 1024 });
    try {
      const message = Buffer.alloc(400, 1);
      const list = Array.from({ length: 30 }, (_, i) => Buffer.alloc(400, i));
      const fit = p.trySendMany(list);
      assert.ok(fit > 0 && fit < 30, `a 4 KiB ring takes some of thirty 400-byte messages, not ${fit}`);
      await rejectsWith(() => p.sendMany([message], { timeout: 20 }), 'ERR_IPC_TIMEOUT');
      throwsWith(() => p.sendManySync([message], { timeout: 0 }), 'ERR_IPC_TIMEOUT');
      const got = c.receiveManySync({ max: 1024 });
      assert.deepEqual(got.map((m) => m.data[0]), Array.from({ length: fit }, (_, i) => i));
      // The same room: a batch of thirty ends at its timeout with the same count, and the consumer finds exactly those.
      assert.equal(p.sendManySync(list, { timeout: 30 }), fit);
      assert.equal(c.tryReceiveMany({ max: 1024 }).length, fit);
      const controller = new AbortController();
      const aborted = p.sendMany(list, { signal: controller.signal });
      await stillPending(aborted, 30);
      controller.abort();
      assert.equal(await aborted, fit);
      assert.equal(c.tryReceiveMany({ max: 1024 }).length, fit);
      // Draining while it waits: it goes on, and all thirty arrive in order.
      const all = p.sendMany(list);
      const arrived: Buffer[] = [];
      while (arrived.length < 30) arrived.push(...(await c.receiveMany({ max: 1024, timeout: 5_000 })).map((m) => m.data));
      assert.equal(await all, 30);
      assert.deepEqual(arrived.map((d) => d[0]), Array.from({ length: 30 }, (_, i) => i));
      const closing = p.sendMany(list);
      await stillPending(closing, 20);
      p.close();
      assert.equal(await closing, fit);
    } finally {
      done();
    }
  });

  it('a message its codec refuses ends the batch; the next receive (plain, into a buffer, or a view) takes the ones after it in order', () => {
    const codec = refusingCodec();
    const name = objects.shmName('ch-codec');
    const p = Channel.create(name, { capacity: 4096, codec });
    const c = Channel.open(name, { codec });
    try {
      p.sendManySync(['a', 'bad-1', 'b', 'c', 'bad-2', 'dd', 'e']);
      assert.deepEqual(c.receiveManySync().map((m) => m.data), ['a']);
      assert.equal(p.stats().depth, 0, 'the whole batch left the ring');
      throwsWith(() => c.receiveManySync(), 'ERR_IPC_CODEC', /refused bad-1/);
      assert.equal(c.receiveSync().data, 'b');
      const into = Buffer.alloc(8);
      assert.equal(c.receiveIntoSync(into), 1);
      assert.equal(into.subarray(0, 1).toString(), 'c');
      throwsWith(() => c.tryReceive(), 'ERR_IPC_CODEC', /refused bad-2/);
      throwsWith(() => c.tryReceiveInto(Buffer.alloc(1)), 'ERR_IPC_MESSAGE_TOO_LARGE', /2 bytes, more than the 1 of the target; it stays/);
      const view = c.receiveSync({ view: true });
      assert.equal(Buffer.from(view.data).toString(), 'dd');
      assert.deepEqual(c.tryReceiveMany().map((m) => m.data), ['e']);
      assert.deepEqual(c.tryReceiveMany(), []);
    } finally {
      p.close();
      c.close();
      Channel.unlink(name);
    }
  });

  it('shared sides: batches of two producers take turns and arrive whole, each producer\'s in order', async () => {
    const name = objects.shmName('ch-shared');
    const a = Channel.create(name, { capacity: 1024, producers: 'multi', consumers: 'multi' });
    const b = Channel.open(name);
    const c = Channel.open(name);
    try {
      const words = (tag: string): Buffer[] => Array.from({ length: 200 }, (_, i) => Buffer.from(`${tag}${i}`.padEnd(40, tag)));
      const sending = [(async () => { for (let i = 0; i < 200; i += 20) await a.sendMany(words('a').slice(i, i + 20)); })(),
        (async () => { for (let i = 0; i < 200; i += 20) await b.sendMany(words('b').slice(i, i + 20)); })()];
      const got: string[] = [];
      while (got.length < 400) got.push(...(await c.receiveMany({ max: 64, timeout: 5_000 })).map((m) => m.data.toString()));
      await Promise.all(sending);
      assert.deepEqual(got.filter((m) => m.startsWith('a')), words('a').map(String));
      assert.deepEqual(got.filter((m) => m.startsWith('b')), words('b').map(String));
    } finally {
      a.close();
      b.close();
      c.close();
      Channel.unlink(name);
    }
  });

  it('a view of a held message holds no turn of a shared side; other consumers and this handle go on', () => {
    const name = objects.shmName('ch-held-view');
    const p = Channel.create(name, { capacity: 4096, consumers: 'multi' });
    const c1 = Channel.open(name, { codec: 'json' });
    const c2 = Channel.open(name);
    try {
      p.sendManySync(['1', 'not json', '3']);
      assert.deepEqual(c1.receiveManySync().map((m) => m.data), [1]);
      throwsWith(() => c1.receiveSync(), 'ERR_IPC_CODEC');
      const view = c1.receiveSync({ view: true });
      assert.equal(Buffer.from(view.data).toString(), '3');
      p.sendSync('4');
      assert.equal(c2.tryReceive()?.data.toString(), '4', 'another consumer takes its turn');
      p.sendSync('5');
      assert.equal(c1.receiveSync({ timeout: 1_000 }).data, 5);
    } finally {
      p.close();
      c1.close();
      c2.close();
      Channel.unlink(name);
    }
  });

  it('a count never includes a message nobody can read: what a batch placed is published when a later one fails', async () => {
    const shared = objects.shmName('ch-detached');
    const p1 = Channel.create(shared, { capacity: 4096, producers: 'multi' });
    const p2 = Channel.open(shared);
    const c1 = Channel.open(shared);
    const name = objects.shmName('ch-changed');
    const p = Channel.create(name, { capacity: 4096 });
    const c = Channel.open(name);
    try {
      // A buffer detached before the call is an empty message, as a pipe or socket sends it; the batch is published whole.
      const gone = new Uint8Array(new ArrayBuffer(8));
      structuredClone(gone.buffer, { transfer: [gone.buffer] });
      assert.equal(await p1.sendMany([Buffer.from('a'), gone]), 2);
      p2.sendSync('b');
      assert.deepEqual(c1.tryReceiveMany().map((m) => m.data.toString()), ['a', '', 'b']);
      // A buffer grown while its batch waits (here past maxMessageSize) is refused, and what went before it is published.
      // (The ring full to its last byte: the batch places nothing before it waits.)
      while (p.trySend(Buffer.alloc(1000)));
      while (p.trySend(Buffer.alloc(0)));
      const growing = resizable(100, 8192);
      const sending = p.sendMany([Buffer.from('b'), new Uint8Array(growing)]);
      assert.ok(await stillPending(sending, 20));
      growing.resize(3000);
      const filler = c.tryReceiveMany({ max: 1024 }).length;
      assert.equal(await sending, 1);
      assert.deepEqual(c.tryReceiveMany().map((m) => m.data.toString()), ['b'], `after ${filler} fillers`);
      // A single send is held to the same rule.
      while (p.trySend(Buffer.alloc(1000)));
      while (p.trySend(Buffer.alloc(0)));
      const one = resizable(10, 100);
      const single = p.send(new Uint8Array(one));
      one.resize(20);
      c.tryReceiveMany({ max: 1024 });
      await rejectsWith(() => single, 'ERR_IPC_INVALID_ARGUMENT', /The message of a send .* changed while the call waited/);
      assert.deepEqual(c.tryReceiveMany(), []);
    } finally {
      for (const ch of [p1, p2, c1, p, c]) ch.close();
      Channel.unlink(shared);
      Channel.unlink(name);
    }
  });

  it('refuses bad batches before sending anything', async () => {
    const { p, c, done } = pair({ capacity: 4096, maxMessageSize: 100 });
    try {
      throwsWith(() => p.sendManySync('abc' as never), 'ERR_IPC_INVALID_ARGUMENT', /messages must be an array/);
      throwsWith(() => p.trySendMany(['ok', Buffer.alloc(101)]), 'ERR_IPC_MESSAGE_TOO_LARGE', /101-byte message/);
      await rejectsWith(() => p.sendMany(['x'], { priority: 1 } as never), 'ERR_IPC_INVALID_ARGUMENT', /priority/);
      throwsWith(() => c.receiveManySync({ max: 0 }), 'ERR_IPC_INVALID_ARGUMENT', /max/);
      throwsWith(() => c.tryReceiveMany({ max: 1025 }), 'ERR_IPC_INVALID_ARGUMENT', /max/);
      assert.equal(p.stats().sent, 0);
      await p.loan(10);
      throwsWith(() => p.trySendMany(['x']), 'ERR_IPC_INVALID_ARGUMENT', /commit\(\) of the loan first/);
    } finally {
      done();
    }
  });
});
