/**
 * The batched calls of the shared-memory channel: sendMany publishes many
 * records with one store of the tail, receiveMany takes many and gives
 * their space back with one store of the head. Exact counts when a batch
 * ends part-way, the channel's counters, codec refusals (held messages
 * reach receive, receiveInto and views in order), shared sides, and
 * argument checks; and packed batches (sendBatch / receiveBatch with a
 * MessageBatch, copied by native ringPut / ringTake). The conformance
 * suite runs them between processes.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, writeSync } from 'node:fs';
import { Channel, MessageBatch } from '../src/index.js';
import { refusingCodec, rejectsWith, stillPending, throwsWith } from './helpers/assert.js';
import { ObjectTracker } from './helpers/objects.js';
import { assertNothingLeft, fdSnapshot } from './helpers/leaks.js';

/** The descriptors open before any test: the file must leave no other behind. */
const fdBaseline = fdSnapshot();

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

/** A batch holding `list`. */
function batchOf(list: readonly (string | Uint8Array)[], bytes = 64 * 1024, messages = 1024): MessageBatch {
  const batch = new MessageBatch({ bytes, messages });
  for (const m of list) assert.equal(batch.push(m), true);
  return batch;
}
const strings = (batch: MessageBatch): string[] => [...batch].map(String);

describe('Channel packed batches (MessageBatch)', () => {
  it('sendBatch and receiveBatch move many per call, in order, across the ring\'s end; counters; 0 and waits while empty', async () => {
    // 256 bytes of ring: records of 8 + up to 40 bytes wrap with padding every few messages.
    const { p, c, done } = pair({ capacity: 256, maxMessageSize: 64 });
    try {
      const sent: string[] = [];
      const got: string[] = [];
      const into = new MessageBatch({ bytes: 4096, messages: 16 });
      for (let round = 0; round < 40; round++) {
        const list = Array.from({ length: 1 + (round % 5) }, (_, i) => `r${round}m${i}`.padEnd(1 + ((round * 7 + i * 13) % 40), '.'));
        const batch = batchOf(list);
        for (let n = 0; n < list.length;) {
          const k = p.trySendBatch(batch);
          // What went is the batch's head: send the rest next time, after the consumer made room.
          sent.push(...list.slice(n, n + k));
          n += k;
          const rest = batchOf(list.slice(n));
          batch.clear();
          for (const m of rest) batch.push(m);
          if (c.tryReceiveBatch(into) > 0) got.push(...strings(into));
        }
      }
      while (c.tryReceiveBatch(into) > 0) got.push(...strings(into));
      assert.deepEqual(got, sent);
      const stats = p.stats();
      const bytes = sent.reduce((sum, m) => sum + m.length, 0);
      assert.deepEqual([stats.sent, stats.received, stats.depth, stats.sentBytes, stats.receivedBytes], [sent.length, sent.length, 0, bytes, bytes]);
      assert.equal(c.tryReceiveBatch(into), 0);
      assert.equal(into.count, 0);
      throwsWith(() => c.receiveBatchSync(into, { timeout: 0 }), 'ERR_IPC_TIMEOUT');
      const waiting = c.receiveBatch(into, { timeout: 10_000 });
      assert.ok(await stillPending(waiting, 30));
      assert.equal(await p.sendBatch(batchOf(['late', '', 'later'])), 3);
      assert.equal(await waiting, 3);
      assert.deepEqual(strings(into), ['late', '', 'later']);
    } finally {
      done();
    }
  });

  it('receiveBatch takes what fits, in messages and bytes; a message larger than the whole batch stays, with ERR_IPC_MESSAGE_TOO_LARGE', () => {
    const { p, c, done } = pair({ capacity: 4096, maxMessageSize: 1024 });
    try {
      assert.equal(p.sendBatchSync(batchOf(['aaaa', 'bbbb', 'cccc', 'x'.repeat(600), 'dd'])), 5);
      const two = new MessageBatch({ bytes: 100, messages: 2 });
      assert.equal(c.receiveBatchSync(two), 2);
      assert.deepEqual(strings(two), ['aaaa', 'bbbb']);
      // 100 bytes: cccc fits, the 600-byte one does not and stays.
      const small = new MessageBatch({ bytes: 100, messages: 8 });
      assert.equal(c.receiveBatchSync(small), 1);
      assert.deepEqual(strings(small), ['cccc']);
      throwsWith(() => c.receiveBatchSync(small), 'ERR_IPC_MESSAGE_TOO_LARGE', /600 bytes, more than the 100 bytes a batch holds/);
      assert.equal(small.count, 0);
      assert.equal(c.tryReceive()?.data.length, 600);
      assert.equal(c.tryReceiveBatch(small), 1);
      assert.deepEqual(strings(small), ['dd']);
    } finally {
      done();
    }
  });

  it('sendBatch waits for room; a timeout, an abort or close part-way resolves with exactly what went', async () => {
    const { p, c, done } = pair({ capacity: 4096, maxMessageSize: 1024 });
    try {
      const list = Array.from({ length: 30 }, (_, i) => Buffer.alloc(400, i));
      const batch = batchOf(list);
      const fit = p.trySendBatch(batch);
      assert.ok(fit > 0 && fit < 30, `a 4 KiB ring takes some of thirty 400-byte messages, not ${fit}`);
      const into = new MessageBatch({ bytes: 64 * 1024 });
      assert.equal(c.receiveBatchSync(into), fit);
      assert.deepEqual([...into].map((m) => m[0]), Array.from({ length: fit }, (_, i) => i));
      assert.equal(p.sendBatchSync(batch, { timeout: 30 }), fit);
      assert.equal(c.tryReceiveBatch(into), fit);
      const controller = new AbortController();
      const aborted = p.sendBatch(batch, { signal: controller.signal });
      assert.ok(await stillPending(aborted, 30));
      controller.abort();
      assert.equal(await aborted, fit);
      assert.equal(c.tryReceiveBatch(into), fit);
      // Draining while it waits: it goes on, and all thirty arrive in order.
      const all = p.sendBatch(batch);
      const arrived: number[] = [];
      while (arrived.length < 30) {
        await c.receiveBatch(into, { timeout: 5_000 });
        arrived.push(...[...into].map((m) => m[0]!));
      }
      assert.equal(await all, 30);
      assert.deepEqual(arrived, Array.from({ length: 30 }, (_, i) => i));
      const closing = p.sendBatch(batch);
      assert.ok(await stillPending(closing, 20));
      p.close();
      assert.equal(await closing, fit);
    } finally {
      done();
    }
  });

  it('refuses a message over maxMessageSize, changed lengths, a pending loan and a batch in another call, sending nothing', async () => {
    const { p, c, done } = pair({ capacity: 4096, maxMessageSize: 16 });
    try {
      throwsWith(() => p.sendBatchSync(batchOf(['fits', 'x'.repeat(17)])), 'ERR_IPC_MESSAGE_TOO_LARGE');
      const changed = batchOf(['ab', 'cd']);
      changed.lengths[1] = 9;
      throwsWith(() => p.trySendBatch(changed), 'ERR_IPC_INVALID_ARGUMENT', /lengths of this MessageBatch add up to 11 bytes, not the 4/);
      throwsWith(() => p.trySendBatch({} as MessageBatch), 'ERR_IPC_INVALID_ARGUMENT', /a MessageBatch/);
      const loan = p.loanSync(8);
      loan.set([1]);
      throwsWith(() => p.trySendBatch(batchOf(['a'])), 'ERR_IPC_INVALID_ARGUMENT', /commit\(\) of the loan first/);
      p.commit(loan, 1);
      const into = new MessageBatch({ bytes: 64 });
      const waiting = c.receiveBatch(into);
      assert.equal(await stillPending(waiting, 20), false);
      assert.deepEqual([...into].map((m) => [...m]), [[1]]);
      const pending = c.receiveBatch(into);
      await rejectsWith(() => c.receiveBatch(into), 'ERR_IPC_INVALID_ARGUMENT', /in a pending call already/);
      throwsWith(() => c.tryReceiveBatch(into), 'ERR_IPC_INVALID_ARGUMENT', /in a pending call already/);
      c.close();
      await rejectsWith(() => pending, 'ERR_IPC_CLOSED');
      assert.equal(p.stats().sent, 1);
    } finally {
      done();
    }
  });

  it('messages held after a codec refusal come first into a batch, raw and alone; the ring\'s follow', () => {
    const codec = refusingCodec();
    const name = objects.shmName('ch-codec');
    const p = Channel.create(name, { capacity: 4096, codec });
    const c = Channel.open(name, { codec });
    try {
      p.sendManySync(['a', 'bad-1', 'b', 'c']);
      assert.deepEqual(c.receiveManySync().map((m) => m.data), ['a']);
      p.sendSync('d');
      // Held: bad-1, b, c. A batch takes them raw (no codec), and only them.
      const into = new MessageBatch({ bytes: 1024 });
      assert.equal(c.tryReceiveBatch(into), 3);
      assert.deepEqual(strings(into), ['bad-1', 'b', 'c']);
      assert.equal(c.receiveBatchSync(into), 1);
      assert.deepEqual(strings(into), ['d']);
      // A held message larger than the whole batch stays, with the error.
      p.sendManySync(['e', 'bad-2', 'longer than four']);
      assert.deepEqual(c.receiveManySync().map((m) => m.data), ['e']);
      const tiny = new MessageBatch({ bytes: 5 });
      assert.equal(c.tryReceiveBatch(tiny), 1);
      assert.deepEqual(strings(tiny), ['bad-2']);
      throwsWith(() => c.tryReceiveBatch(tiny), 'ERR_IPC_MESSAGE_TOO_LARGE', /16 bytes, more than the 5/);
      assert.equal(c.tryReceive()?.data, 'longer than four');
    } finally {
      p.close();
      c.close();
      Channel.unlink(name);
    }
  });

  it('a record another process overwrote fails a batch with ERR_IPC_CORRUPTED after the good ones before it', () => {
    const { p, c, done } = pair({ capacity: 4096, maxMessageSize: 64 });
    try {
      p.sendBatchSync(batchOf(['one', 'two', 'six']));
      // The second record (at ring offset 16: 8 + 3 bytes, padded to 16) gets kind 7: the ring starts at byte 1536.
      const fd = openSync(`/dev/shm${p.address}`, 'r+');
      writeSync(fd, Buffer.from([7, 0, 0, 0]), 0, 4, 1536 + 16 + 4);
      closeSync(fd);
      const into = new MessageBatch({ bytes: 1024 });
      assert.equal(c.tryReceiveBatch(into), 1);
      assert.deepEqual(strings(into), ['one']);
      throwsWith(() => c.tryReceiveBatch(into), 'ERR_IPC_CORRUPTED', /the record at 16 has kind 7 and length 3/);
      // A length past the ring's rules, in a padding record or a message, is refused too, never read.
      const again = openSync(`/dev/shm${p.address}`, 'r+');
      writeSync(again, Buffer.from([0xff, 0xff, 0, 0, 1, 0, 0, 0]), 0, 8, 1536 + 16);
      closeSync(again);
      throwsWith(() => c.tryReceiveBatch(into), 'ERR_IPC_CORRUPTED', /the record at 16 has kind 1 and length 65535/);
    } finally {
      done();
    }
  });
});

describe('Channel packed batches against a hostile peer or a careless caller', () => {
  /** The channel's segment as a file another process writes to. */
  function overwrite(address: string, at: number, bytes: number[]): void {
    const fd = openSync(`/dev/shm${address}`, 'r+');
    try {
      writeSync(fd, Buffer.from(bytes), 0, bytes.length, at);
    } finally {
      closeSync(fd);
    }
  }
  const u32 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];

  it('a TAIL another process left off a record\'s start is ERR_IPC_CORRUPTED, nothing written past the ring (batches and single sends)', () => {
    for (const d of [1, 4, 7]) {
      const name = objects.shmName('ch-tail');
      const c = Channel.create(name, { capacity: 64 });
      try {
        // TAIL and HEAD at 64 - d: a padding header of 8 bytes there would cross the ring's end; the bytes after it are the segment's.
        overwrite(c.address, 16 * 4, u32(64 - d));
        overwrite(c.address, 32 * 4, u32(64 - d));
        const p = Channel.open(name);
        try {
          throwsWith(() => p.trySendBatch(batchOf([Buffer.alloc(16, 0x55)])), 'ERR_IPC_CORRUPTED', new RegExp(`TAIL ${64 - d} is not a record's start`));
          throwsWith(() => p.trySend(Buffer.alloc(16, 0x55)), 'ERR_IPC_CORRUPTED', new RegExp(`TAIL ${64 - d} is not a record's start`));
        } finally {
          p.close();
        }
      } finally {
        c.close();
        Channel.unlink(name);
      }
    }
  });

  it('HEAD moved ahead of TAIL is ERR_IPC_CORRUPTED for every batch, not a batch that changed', () => {
    const { p, done } = pair({ capacity: 256, maxMessageSize: 64 });
    try {
      const batch = batchOf(Array.from({ length: 8 }, (_, i) => Buffer.alloc(56, i)));
      overwrite(p.address, 32 * 4, u32(1000));
      for (let k = 0; k < 3; k++) throwsWith(() => p.trySendBatch(batch), 'ERR_IPC_CORRUPTED', /HEAD 1000 is ahead of TAIL 0/);
    } finally {
      done();
    }
  });

  it('a batch whose memory went is ERR_IPC_INVALID_ARGUMENT, not an endless wait, and the messages stay for other receives', async () => {
    const { p, c, done } = pair({ capacity: 4096 });
    try {
      const into = new MessageBatch({ bytes: 1024, messages: 8 });
      const waiting = c.receiveBatch(into, { timeout: 10_000 });
      assert.ok(await stillPending(waiting, 30));
      structuredClone(into.lengths.buffer, { transfer: [into.lengths.buffer as ArrayBuffer] });
      p.sendSync('stays');
      await rejectsWith(() => waiting, 'ERR_IPC_INVALID_ARGUMENT', /lost its memory/);
      throwsWith(() => c.tryReceiveBatch(into), 'ERR_IPC_INVALID_ARGUMENT', /lost its memory/);
      const other = new MessageBatch({ bytes: 64 });
      structuredClone(other.data.buffer, { transfer: [other.data.buffer as ArrayBuffer] });
      throwsWith(() => c.receiveBatchSync(other, { timeout: 0 }), 'ERR_IPC_INVALID_ARGUMENT', /lost its memory/);
      assert.equal(c.tryReceive()?.data.toString(), 'stays');
    } finally {
      done();
    }
  });
});

describe('channel batch cleanup', () => {
  it('leaves no descriptor and no child process behind', () => assertNothingLeft(fdBaseline));
});
