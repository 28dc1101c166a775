/**
 * The batched calls of the message queues (sendMany / receiveMany and
 * their sync and try forms), both families: what one call moves, exact
 * counts when a timeout, an abort or close() ends a batch part-way,
 * argument checks, codecs (a message the codec refuses ends a batch and
 * nothing after it is lost), and how the batches fit the slab they land in;
 * and receives into a buffer of the caller's; and packed batches
 * (sendBatch / receiveBatch with a MessageBatch). The conformance suite
 * runs the batched calls between processes, soaks included.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { IpcError, MessageBatch, PosixMessageQueue, SysvMessageQueue } from '../src/index.js';
import { E } from '../src/errors.js';
import { batchSend } from '../src/internal/batch.js';
import { rejectsWith, stillPending, throwsWith, waitUntil } from './helpers/assert.js';
import { ObjectTracker } from './helpers/objects.js';
import { assertNothingLeft, fdSnapshot } from './helpers/leaks.js';

/** The descriptors open before any test: the file must leave no other behind. */
const fdBaseline = fdSnapshot();

const objects = new ObjectTracker();
after(() => objects.cleanup());

const texts = (messages: { data: Buffer }[]): string[] => messages.map((m) => m.data.toString());
const words = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `w${from + i}`);

describe('PosixMessageQueue batches', () => {
  it('trySendMany sends what fits, in order; tryReceiveMany takes up to max, highest priority first', () => {
    const name = objects.name();
    const q = PosixMessageQueue.create(name, { maxMessages: 5, maxMessageSize: 32 });
    try {
      assert.equal(q.trySendMany(words(3)), 3);
      assert.equal(q.trySendMany(['urgent-a', 'urgent-b'], { priority: 7 }), 2);
      assert.equal(q.trySendMany(['no room']), 0);
      assert.equal(q.trySendMany([]), 0);
      const first = q.tryReceiveMany({ max: 3 });
      assert.deepEqual(first.map((m) => [m.data.toString(), m.priority]), [['urgent-a', 7], ['urgent-b', 7], ['w0', 0]]);
      assert.deepEqual(texts(q.tryReceiveMany()), ['w1', 'w2']);
      assert.deepEqual(q.tryReceiveMany(), []);
      assert.equal(q.attributes().messages, 0);
    } finally {
      q.close();
      PosixMessageQueue.unlink(name);
    }
  });

  it('sendManySync fills, waits for room and resolves with the count; a timeout part-way reports exactly what went in', () => {
    const name = objects.name();
    const q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 32 });
    try {
      assert.equal(q.sendManySync(words(2)), 2);
      // Room for two: the timeout ends the batch with 2 of 5 in.
      assert.equal(q.sendManySync(words(5, 2), { timeout: 30 }), 2);
      assert.deepEqual(texts(q.receiveManySync({ max: 10, timeout: 0 })), ['w0', 'w1', 'w2', 'w3']);
      // Full, and nothing goes in: the usual timeout error.
      assert.equal(q.trySendMany(words(4)), 4);
      throwsWith(() => q.sendManySync(['x'], { timeout: 20 }), 'ERR_IPC_TIMEOUT', / timed out after 20 ms/);
      throwsWith(() => q.sendManySync(['x'], { timeout: 0 }), 'ERR_IPC_TIMEOUT', / timed out after 0 ms/);
      assert.equal(q.attributes().messages, 4);
    } finally {
      q.close();
      PosixMessageQueue.unlink(name);
    }
  });

  it('sendMany: waits while full, goes on as room is made; timeout, abort and close part-way resolve with the count', async () => {
    const name = objects.name();
    const q = PosixMessageQueue.create(name, { maxMessages: 2, maxMessageSize: 32 });
    const reader = PosixMessageQueue.open(name);
    try {
      // 5 through a queue of 2: the reader makes room twice, then the timeout ends it with 4 in.
      const sending = q.sendMany(words(5), { timeout: 60_000 });
      await waitUntil('the first two are in', () => q.attributes().messages === 2);
      assert.equal(await stillPending(sending, 20), true, 'the other three wait for room');
      const got: string[] = [];
      while (got.length < 5) got.push(...texts(await reader.receiveMany({ timeout: 10_000 })));
      assert.deepEqual(got, words(5));
      assert.equal(await sending, 5);

      const timed = q.sendMany(words(5, 10), { timeout: 40 });
      assert.equal(await timed, 2);
      assert.deepEqual(texts(reader.tryReceiveMany()), ['w10', 'w11']);

      const ac = new AbortController();
      const aborted = q.sendMany(words(3, 20), { signal: ac.signal });
      await waitUntil('two are in', () => q.attributes().messages === 2);
      ac.abort();
      assert.equal(await aborted, 2);
      // Pre-aborted: nothing goes in.
      await rejectsWith(() => q.sendMany(['late'], { signal: ac.signal }), 'ERR_IPC_ABORTED');
      assert.deepEqual(texts(reader.tryReceiveMany()), ['w20', 'w21']);

      const cut = q.sendMany(words(3, 30));
      const waitingNothing = q.sendMany(['never']);
      waitingNothing.catch(() => undefined);
      await waitUntil('two are in', () => q.attributes().messages === 2);
      q.close();
      assert.equal(await cut, 2, 'close part-way: the count that went in');
      await rejectsWith(() => waitingNothing, 'ERR_IPC_CLOSED');
      assert.deepEqual(texts(reader.tryReceiveMany()), ['w30', 'w31']);
    } finally {
      q.close();
      reader.close();
      PosixMessageQueue.unlink(name);
    }
  });

  it('receiveMany waits for the first message, then takes what is queued now (never an empty batch)', async () => {
    const name = objects.name();
    const q = PosixMessageQueue.create(name, { maxMessages: 10, maxMessageSize: 64 });
    const writer = PosixMessageQueue.open(name);
    try {
      const pending = q.receiveMany({ max: 4 });
      assert.equal(await stillPending(pending, 30), true);
      writer.sendSync('only');
      assert.deepEqual(texts(await pending), ['only']);
      writer.sendManySync(words(6));
      assert.deepEqual(texts(await q.receiveMany({ max: 4 })), ['w0', 'w1', 'w2', 'w3']);
      assert.deepEqual(texts(q.receiveManySync({ max: 4 })), ['w4', 'w5']);
      await rejectsWith(() => q.receiveMany({ timeout: 20 }), 'ERR_IPC_TIMEOUT', / timed out after 20 ms/);
      throwsWith(() => q.receiveManySync({ timeout: 0 }), 'ERR_IPC_TIMEOUT');
      const ac = new AbortController();
      const aborted = q.receiveMany({ signal: ac.signal });
      ac.abort();
      await rejectsWith(() => aborted, 'ERR_IPC_ABORTED');
    } finally {
      q.close();
      writer.close();
      PosixMessageQueue.unlink(name);
    }
  });

  it('a batch fills 8 KiB messages into its slab: many per call, each intact, none lost at the slab\'s end', () => {
    const name = objects.name();
    const q = PosixMessageQueue.create(name, { maxMessages: 10, maxMessageSize: 8192 });
    try {
      const payload = (i: number): Buffer => Buffer.alloc(8192 - (i % 3), 65 + (i % 26));
      const got: Buffer[] = [];
      let calls = 0;
      for (let sent = 0; got.length < 100; calls++) {
        sent += q.trySendMany(Array.from({ length: Math.min(10, 100 - sent) }, (_, i) => payload(sent + i)));
        for (const m of q.tryReceiveMany({ max: 1024 })) got.push(m.data);
      }
      assert.ok(calls <= 20, `${calls} receives for 100 messages: batches of several`);
      assert.equal(got.length, 100);
      got.forEach((data, i) => assert.deepEqual(data, payload(i), `message ${i}`));
    } finally {
      q.close();
      PosixMessageQueue.unlink(name);
    }
  });

  it('a message its codec refuses ends the batch: the ones before come, its error comes next, the rest follow', () => {
    const name = objects.name();
    const raw = PosixMessageQueue.create(name, { maxMessages: 10, maxMessageSize: 64 });
    const json = PosixMessageQueue.open(name, { codec: 'json' });
    try {
      raw.sendManySync(['{"n":1}', '{"n":2}', 'not json', '{"n":4}', '{"n":5}']);
      assert.deepEqual(json.receiveManySync().map((m) => m.data), [{ n: 1 }, { n: 2 }]);
      throwsWith(() => json.receiveManySync(), 'ERR_IPC_CODEC');
      assert.deepEqual(json.tryReceive()?.data, { n: 4 });
      assert.deepEqual(json.tryReceiveMany().map((m) => m.data), [{ n: 5 }]);
      // A refused first message: its error at once, the rest kept.
      raw.sendManySync(['bad', '{"n":7}']);
      throwsWith(() => json.receiveManySync(), 'ERR_IPC_CODEC');
      assert.deepEqual(json.receiveManySync().map((m) => m.data), [{ n: 7 }]);
      // A codec that refuses to encode one message sends none of the batch.
      throwsWith(() => json.sendManySync([{ ok: 1 }, { big: 1n }]), 'ERR_IPC_CODEC');
      assert.equal(raw.attributes().messages, 0);
    } finally {
      raw.close();
      json.close();
      PosixMessageQueue.unlink(name);
    }
  });

  it('refuses bad batches before sending anything', async () => {
    const name = objects.name();
    const q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 8 });
    try {
      throwsWith(() => q.sendManySync(['ok', 'much too long']), 'ERR_IPC_MESSAGE_TOO_LARGE', /13-byte message/);
      throwsWith(() => q.trySendMany('ab' as unknown as string[]), 'ERR_IPC_INVALID_ARGUMENT', /messages must be an array/);
      // A hole in a sparse array is a message that is not bytes, not one skipped.
      const sparse = ['a'];
      sparse[2] = 'c';
      throwsWith(() => q.trySendMany(sparse), 'ERR_IPC_INVALID_ARGUMENT', /data must be a Uint8Array/);
      await rejectsWith(() => q.sendMany(['a'], { priority: -1 }), 'ERR_IPC_INVALID_ARGUMENT', /priority/);
      await rejectsWith(() => q.sendMany(['a'], { timeOut: 5 } as object), 'ERR_IPC_INVALID_ARGUMENT', /"timeOut"; did you mean "timeout"\?/);
      for (const max of [0, 1025, 1.5, '4']) throwsWith(() => q.tryReceiveMany({ max } as { max: number }), 'ERR_IPC_INVALID_ARGUMENT', /max must be/);
      await rejectsWith(() => q.receiveMany({ maxx: 2 } as object), 'ERR_IPC_INVALID_ARGUMENT', /"maxx"/);
      assert.equal(q.attributes().messages, 0);
    } finally {
      q.close();
      PosixMessageQueue.unlink(name);
    }
  });
});

describe('SysvMessageQueue batches', () => {
  it('sends and receives batches by type; a timeout part-way reports exactly what went in', () => {
    const key = objects.key();
    // 4 messages of 8 bytes fill it.
    const q = SysvMessageQueue.create(key, { maxBytes: 32 });
    try {
      assert.equal(q.trySendMany(1, ['a1......', 'a2......']), 2);
      assert.equal(q.sendManySync(2, ['b1......', 'b2......', 'b3......'], { timeout: 30 }), 2);
      assert.deepEqual(q.tryReceiveMany({ type: 2 }).map((m) => [m.data.toString(), m.type]), [['b1......', 2], ['b2......', 2]]);
      assert.deepEqual(q.receiveManySync({ max: 1, timeout: 0 }).map((m) => m.data.toString()), ['a1......']);
      assert.deepEqual(texts(q.tryReceiveMany({ type: -5 })), ['a2......']);
      throwsWith(() => q.receiveManySync({ type: 3, timeout: 20 }), 'ERR_IPC_TIMEOUT', / timed out after 20 ms/);
      throwsWith(() => q.trySendMany(0, ['x']), 'ERR_IPC_INVALID_ARGUMENT', /type/);
    } finally {
      q.remove();
    }
  });

  it('async batches wait on a waiter thread for the first, take the rest at once, and report a partial send exactly', async () => {
    const key = objects.key();
    const q = SysvMessageQueue.create(key, { maxBytes: 32 });
    const other = SysvMessageQueue.open(key);
    try {
      const receiving = q.receiveMany({ max: 3, timeout: 10_000 });
      assert.equal(await stillPending(receiving, 30), true);
      other.sendManySync(4, ['x1......', 'x2......', 'x3......', 'x4......']);
      assert.deepEqual((await receiving).map((m) => [m.data.toString(), m.type]), [['x1......', 4], ['x2......', 4], ['x3......', 4]]);
      assert.deepEqual(texts(other.tryReceiveMany()), ['x4......']);

      const sending = q.sendMany(1, words(6).map((w) => w.padEnd(8, '.')), { timeout: 10_000 });
      await waitUntil('four are in', () => q.stat().messages === 4);
      assert.equal(texts(other.receiveManySync({ max: 2 })).length, 2);
      assert.equal(await sending, 6);
      assert.deepEqual(texts(other.tryReceiveMany()), ['w2......', 'w3......', 'w4......', 'w5......']);

      const ac = new AbortController();
      const aborted = q.sendMany(1, words(6).map((w) => w.padEnd(8, '.')), { signal: ac.signal });
      await waitUntil('four are in', () => q.stat().messages === 4);
      ac.abort();
      assert.equal(await aborted, 4);
      assert.equal(q.stat().messages, 4);
    } finally {
      other.close();
      q.remove();
    }
  });

  it('a refused message ends a batch; a held one goes only to a receive whose type selects it', () => {
    const key = objects.key();
    const raw = SysvMessageQueue.create(key);
    const json = SysvMessageQueue.open(key, { codec: 'json' });
    try {
      raw.sendManySync(1, ['{"n":1}', 'oops']);
      raw.sendManySync(2, ['{"n":2}']);
      raw.sendManySync(3, ['{"n":3}']);
      assert.deepEqual(json.receiveManySync().map((m) => m.data), [{ n: 1 }]);
      // Held now: oops (1), n2 (2), n3 (3). Type 3 takes its own; type -2 the lowest type first.
      assert.deepEqual(json.tryReceiveMany({ type: 3 }).map((m) => m.data), [{ n: 3 }]);
      throwsWith(() => json.receiveSync({ type: -2 }), 'ERR_IPC_CODEC');
      assert.deepEqual(json.tryReceive({ type: -2 })?.data, { n: 2 });
      assert.deepEqual(json.tryReceiveMany(), []);
    } finally {
      json.close();
      raw.remove();
    }
  });
});

describe('receives into a buffer of yours', () => {
  it('PosixMessageQueue.receiveInto: the bytes at the start of the target, length and priority, the three forms', async () => {
    const name = objects.name();
    const q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 16 });
    const other = PosixMessageQueue.open(name, { codec: 'json' });
    try {
      const target = Buffer.alloc(16, 0x2e);
      assert.equal(q.tryReceiveInto(target), undefined);
      q.sendManySync(['first', 'second']);
      q.sendSync('urgent', { priority: 3 });
      assert.deepEqual(q.receiveIntoSync(target), { length: 6, priority: 3 });
      assert.equal(target.subarray(0, 6).toString(), 'urgent');
      assert.deepEqual(await q.receiveInto(target, { timeout: 0 }), { length: 5, priority: 0 });
      assert.equal(target.toString(), 'firstt..........', 'only the message\'s bytes are written');
      assert.deepEqual(q.tryReceiveInto(target), { length: 6, priority: 0 });
      const waiting = q.receiveInto(target);
      assert.equal(await stillPending(waiting, 30), true);
      q.sendSync('later');
      assert.deepEqual(await waiting, { length: 5, priority: 0 });
      // Raw bytes: a handle with a codec hands them over undecoded.
      other.sendSync({ n: 1 });
      assert.deepEqual(other.receiveIntoSync(target), { length: 7, priority: 0 });
      assert.equal(target.subarray(0, 7).toString(), '{"n":1}');
      throwsWith(() => q.tryReceiveInto(Buffer.alloc(15)), 'ERR_IPC_INVALID_ARGUMENT', /at least 16 bytes/);
      throwsWith(() => q.tryReceiveInto('nope' as unknown as Buffer), 'ERR_IPC_INVALID_ARGUMENT', /target/);
      await rejectsWith(() => q.receiveInto(target, { timeout: 10 }), 'ERR_IPC_TIMEOUT');
    } finally {
      q.close();
      other.close();
      PosixMessageQueue.unlink(name);
    }
  });

  it('SysvMessageQueue.receiveInto: by type, the three forms, async on a waiter thread', async () => {
    const key = objects.key();
    const q = SysvMessageQueue.create(key);
    try {
      const target = Buffer.alloc(q.maxMessageSize);
      assert.equal(q.tryReceiveInto(target), undefined);
      q.sendSync(1, 'one');
      q.sendSync(2, 'two!');
      assert.deepEqual(q.receiveIntoSync(target, { type: 2 }), { length: 4, type: 2 });
      assert.equal(target.subarray(0, 4).toString(), 'two!');
      assert.deepEqual(q.tryReceiveInto(target), { length: 3, type: 1 });
      const waiting = q.receiveInto(target, { type: 7, timeout: 10_000 });
      assert.equal(await stillPending(waiting, 30), true);
      q.sendSync(7, 'seven');
      assert.deepEqual(await waiting, { length: 5, type: 7 });
      assert.equal(target.subarray(0, 5).toString(), 'seven');
      throwsWith(() => q.tryReceiveInto(Buffer.alloc(8)), 'ERR_IPC_INVALID_ARGUMENT', /at least/);
    } finally {
      q.remove();
    }
  });

  it('receiveInto without options (the calls that skip the engine): held messages first, then the kernel\'s, errors as with options', async () => {
    const key = objects.key();
    const raw = SysvMessageQueue.create(key);
    const json = SysvMessageQueue.open(key, { codec: 'json' });
    const name = objects.name();
    const praw = PosixMessageQueue.create(name, { maxMessages: 8, maxMessageSize: 16 });
    const pjson = PosixMessageQueue.open(name, { codec: 'json' });
    try {
      const target = Buffer.alloc(raw.maxMessageSize, 0x2e);
      // A batch that meets "bad" holds the messages after it: receiveInto hands them over first, in order.
      raw.sendManySync(4, ['bad', '"x"', '"yy"']);
      throwsWith(() => json.tryReceiveMany({ max: 3 }), 'ERR_IPC_CODEC');
      raw.sendSync(9, 'kernel');
      assert.deepEqual(json.receiveIntoSync(target), { length: 3, type: 4 });
      assert.equal(target.subarray(0, 3).toString(), '"x"');
      assert.deepEqual(await json.receiveInto(target), { length: 4, type: 4 });
      assert.equal(target.subarray(0, 4).toString(), '"yy"');
      assert.deepEqual(json.receiveIntoSync(target), { length: 6, type: 9 });
      assert.equal(target.subarray(0, 7).toString(), 'kernel.');
      // Nothing queued: the async form waits (on a waiter thread), then gets it.
      const waiting = raw.receiveInto(target);
      assert.equal(await stillPending(waiting, 30), true);
      raw.sendSync(2 ** 40, 'late');
      assert.deepEqual(await waiting, { length: 4, type: 2 ** 40 });
      throwsWith(() => raw.receiveIntoSync(Buffer.alloc(8)), 'ERR_IPC_INVALID_ARGUMENT', /at least/);
      await rejectsWith(() => raw.receiveInto('x' as unknown as Buffer), 'ERR_IPC_INVALID_ARGUMENT', /target/);

      const ptarget = Buffer.alloc(16, 0x2e);
      praw.sendManySync(['bad', '"p"']);
      throwsWith(() => pjson.tryReceiveMany({ max: 2 }), 'ERR_IPC_CODEC');
      praw.sendSync('top', { priority: 5 });
      assert.deepEqual(pjson.receiveIntoSync(ptarget), { length: 3, priority: 0 });
      assert.equal(ptarget.subarray(0, 3).toString(), '"p"');
      assert.deepEqual(await pjson.receiveInto(ptarget), { length: 3, priority: 5 });
      const pwaiting = praw.receiveInto(ptarget);
      assert.equal(await stillPending(pwaiting, 30), true);
      praw.sendSync('later!');
      assert.deepEqual(await pwaiting, { length: 6, priority: 0 });
      assert.equal(ptarget.subarray(0, 6).toString(), 'later!');
      throwsWith(() => praw.receiveIntoSync(Buffer.alloc(15)), 'ERR_IPC_INVALID_ARGUMENT', /at least 16 bytes/);
      await rejectsWith(() => praw.receiveInto(Buffer.alloc(15)), 'ERR_IPC_INVALID_ARGUMENT', /at least 16 bytes/);
    } finally {
      json.close();
      raw.remove();
      pjson.close();
      praw.close();
      PosixMessageQueue.unlink(name);
    }
    throwsWith(() => json.receiveIntoSync(Buffer.alloc(json.maxMessageSize)), 'ERR_IPC_CLOSED', /receiveIntoSync/);
    await rejectsWith(() => json.receiveInto(Buffer.alloc(json.maxMessageSize)), 'ERR_IPC_CLOSED', /receiveInto/);
    throwsWith(() => pjson.receiveIntoSync(Buffer.alloc(16)), 'ERR_IPC_CLOSED', /receiveIntoSync/);
    await rejectsWith(() => pjson.receiveInto(Buffer.alloc(16)), 'ERR_IPC_CLOSED', /receiveInto/);
  });
});

describe('batches against their own edge cases', () => {
  it('messages held after a codec refusal come out in their order, batch after batch (both families)', () => {
    const name = objects.name();
    const raw = PosixMessageQueue.create(name, { maxMessages: 10, maxMessageSize: 32 });
    const json = PosixMessageQueue.open(name, { codec: 'json' });
    const key = objects.key();
    const sraw = SysvMessageQueue.create(key);
    const sjson = SysvMessageQueue.open(key, { codec: 'json' });
    try {
      raw.sendManySync(['0', 'bad', '1', '2', '3']);
      assert.deepEqual(json.tryReceiveMany({ max: 5 }).map((m) => m.data), [0]);
      // Held: bad, 1, 2, 3. A batch of the held ones meets "bad" first: its error, and 1 goes back in front.
      throwsWith(() => json.tryReceiveMany({ max: 2 }), 'ERR_IPC_CODEC');
      const got: unknown[] = [];
      for (let batch = json.tryReceiveMany({ max: 2 }); batch.length > 0; batch = json.tryReceiveMany({ max: 2 })) got.push(...batch.map((m) => m.data));
      assert.deepEqual(got, [1, 2, 3]);
      sraw.sendManySync(1, ['bad', '1', '2', 'bad', '4']);
      throwsWith(() => sjson.tryReceiveMany({ max: 5 }), 'ERR_IPC_CODEC');
      assert.deepEqual(sjson.tryReceiveMany({ max: 2 }).map((m) => m.data), [1, 2]);
      throwsWith(() => sjson.tryReceiveMany({ max: 2 }), 'ERR_IPC_CODEC');
      assert.deepEqual(sjson.tryReceiveMany({ max: 2 }).map((m) => m.data), [4]);
    } finally {
      raw.close();
      json.close();
      PosixMessageQueue.unlink(name);
      sjson.close();
      sraw.remove();
    }
  });

  it('a System V receiveMany parked on a waiter thread takes held messages of its type before the kernel\'s', async () => {
    const key = objects.key();
    const raw = SysvMessageQueue.create(key);
    const json = SysvMessageQueue.open(key, { codec: 'json' });
    try {
      const parked = json.receiveMany({ type: 5, max: 3, timeout: 10_000 });
      assert.equal(await stillPending(parked, 30), true);
      // The kernel hands "a" straight to the waiting msgrcv; its callback runs once this test awaits.
      raw.sendSync(5, '"a"');
      raw.sendManySync(5, ['bad', '"b"', '"c"']);
      // Another selector's batch takes "bad" and "b": it refuses "bad" and holds "b".
      throwsWith(() => json.tryReceiveMany({ max: 2 }), 'ERR_IPC_CODEC');
      assert.deepEqual((await parked).map((m) => m.data), ['a', 'b']);
      assert.deepEqual(json.tryReceiveMany({ type: 5 }).map((m) => m.data), ['c']);
    } finally {
      json.close();
      raw.remove();
    }
  });

  it('a System V batch whose queue is removed part-way resolves with the count that went in', async () => {
    const key = objects.key();
    const q = SysvMessageQueue.create(key, { maxBytes: 16 });
    try {
      const sending = q.sendMany(1, ['a'.repeat(8), 'b'.repeat(8), 'c'.repeat(8)], { timeout: 10_000 });
      await waitUntil('two are in', () => q.stat().messages === 2);
      assert.equal(await stillPending(sending, 20), true);
      SysvMessageQueue.remove(key);
      assert.equal(await sending, 2);
    } finally {
      q.close();
    }
  });

  it('a target whose length property lies is measured by its memory: refused before a message is taken (both families)', async () => {
    const key = objects.key();
    const q = SysvMessageQueue.create(key);
    const name = objects.name();
    const p = PosixMessageQueue.create(name, { maxMessages: 2, maxMessageSize: 16 });
    try {
      // Own `length` and `byteLength` properties claim room enough; the memory holds 4 bytes.
      const liar = (size: number): Uint8Array => {
        const view = new Uint8Array(4);
        Object.defineProperty(view, 'length', { value: size });
        Object.defineProperty(view, 'byteLength', { value: size });
        return view;
      };
      q.sendSync(7, 'thirteen byte');
      p.sendSync('fifteen bytes!!');
      for (const [queue, size] of [[q, q.maxMessageSize], [p, 16]] as const) {
        const target = liar(size);
        throwsWith(() => queue.receiveIntoSync(target), 'ERR_IPC_INVALID_ARGUMENT', new RegExp(`whose length says ${size}`));
        await rejectsWith(() => queue.receiveInto(target), 'ERR_IPC_INVALID_ARGUMENT', new RegExp(`whose length says ${size}`));
        throwsWith(() => queue.tryReceiveInto(target), 'ERR_IPC_INVALID_ARGUMENT', new RegExp(`whose length says ${size}`));
        assert.deepEqual([...target.subarray(0, 4)], [0, 0, 0, 0]);
      }
      const target = Buffer.alloc(q.maxMessageSize);
      assert.deepEqual(q.receiveIntoSync(target), { length: 13, type: 7 });
      assert.equal(target.subarray(0, 13).toString(), 'thirteen byte');
      assert.deepEqual(p.receiveIntoSync(target), { length: 15, priority: 0 });
    } finally {
      q.remove();
      p.close();
      PosixMessageQueue.unlink(name);
    }
  });

  it('a target that shrank while its receive waited fails, and the message stays for the next receive', async () => {
    const key = objects.key();
    const q = SysvMessageQueue.create(key);
    try {
      // A resizable ArrayBuffer (ES2024; Node 20 has it, the project's TypeScript lib does not name it).
      const Resizable = ArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void };
      const resizable = new Resizable(q.maxMessageSize, { maxByteLength: q.maxMessageSize });
      const target = new Uint8Array(resizable);
      const waiting = q.receiveInto(target, { timeout: 10_000 });
      assert.equal(await stillPending(waiting, 30), true);
      resizable.resize(3);
      q.sendSync(1, 'nine byte');
      await rejectsWith(() => waiting, 'ERR_IPC_INVALID_ARGUMENT', /shrank while the receive waited/);
      assert.equal(q.tryReceive()?.data.toString(), 'nine byte');
    } finally {
      q.remove();
    }
  });
});

/** Runs `body` with a new POSIX queue of `options`, closed and removed after. */
async function withPosix(options: { maxMessages: number; maxMessageSize: number }, body: (q: PosixMessageQueue) => unknown): Promise<void> {
  const name = objects.name();
  const q = PosixMessageQueue.create(name, options);
  try {
    await body(q);
  } finally {
    q.close();
    PosixMessageQueue.unlink(name);
  }
}

/** Runs `body` with a new System V queue, removed after. */
async function withSysv(body: (q: SysvMessageQueue) => unknown): Promise<void> {
  const q = SysvMessageQueue.create(objects.key());
  try {
    await body(q);
  } finally {
    q.remove();
  }
}

/** The messages of `batch` as strings. */
const strings = (batch: MessageBatch): string[] => [...batch].map(String);
/** A batch holding `list`, with room for `bytes` bytes and `messages` messages. */
function batchOf(list: readonly (string | Uint8Array)[], bytes = 4096, messages = 64): MessageBatch {
  const batch = new MessageBatch({ bytes, messages });
  for (const m of list) assert.equal(batch.push(m), true);
  return batch;
}

describe('packed batches (MessageBatch) on queues', () => {
  it('POSIX: sendBatch sends a batch at one priority, receiveBatch takes what is queued, highest priority first, with priorities', () => withPosix({ maxMessages: 10, maxMessageSize: 64 }, async (q) => {
      assert.equal(q.sendBatchSync(batchOf(['a', '', 'ccc'])), 3);
      assert.equal(q.trySendBatch(batchOf(['urgent']), { priority: 9 }), 1);
      assert.equal(q.trySendBatch(batchOf([])), 0);
      const into = new MessageBatch({ bytes: 4096, messages: 8 });
      const priorities = new Uint32Array(8).fill(77);
      assert.equal(q.receiveBatchSync(into, { priorities }), 4);
      assert.deepEqual(strings(into), ['urgent', 'a', '', 'ccc']);
      assert.deepEqual([...into.lengths.subarray(0, 4)], [6, 1, 0, 3]);
      assert.deepEqual([...priorities], [9, 0, 0, 0, 77, 77, 77, 77]);
      // Nothing queued: 0, the batch empty.
      assert.equal(q.tryReceiveBatch(into), 0);
      assert.equal(into.count, 0);
      throwsWith(() => q.receiveBatchSync(into, { timeout: 0 }), 'ERR_IPC_TIMEOUT');
      // Slots bound a batch: 3 of 5, then the other 2.
      q.sendManySync(words(5));
      const three = new MessageBatch({ bytes: 4096, messages: 3 });
      assert.equal(q.tryReceiveBatch(three), 3);
      assert.deepEqual(strings(three), ['w0', 'w1', 'w2']);
      assert.equal(q.tryReceiveBatch(three), 2);
      assert.deepEqual(strings(three), ['w3', 'w4']);
  }));

  it('POSIX: receiveBatch takes a message only while maxMessageSize bytes of room are left, as mq_receive demands', () => withPosix({ maxMessages: 10, maxMessageSize: 64 }, async (q) => {
      q.sendManySync(['0123456789', 'abcdefghij', 'ABCDEFGHIJ']);
      // 80 bytes: after two of 10, 60 are left, fewer than 64.
      const small = new MessageBatch({ bytes: 80 });
      assert.equal(q.receiveBatchSync(small), 2);
      assert.deepEqual(strings(small), ['0123456789', 'abcdefghij']);
      assert.equal(q.receiveBatchSync(small), 1);
      assert.deepEqual(strings(small), ['ABCDEFGHIJ']);
      // A full 64-byte message fills a batch of exactly 64.
      const exact = new MessageBatch({ bytes: 64 });
      q.sendSync('x'.repeat(64));
      q.sendSync('y');
      assert.equal(q.receiveBatchSync(exact), 1);
      assert.equal(exact.at(0).toString(), 'x'.repeat(64));
      assert.equal(q.receiveBatchSync(exact), 1);
      assert.equal(exact.at(0).toString(), 'y');
  }));

  it('POSIX: refuses a batch smaller than a message, bad priorities, a message too long and changed lengths, sending nothing', () => withPosix({ maxMessages: 4, maxMessageSize: 16 }, async (q) => {
      throwsWith(() => q.tryReceiveBatch(new MessageBatch({ bytes: 15 })), 'ERR_IPC_INVALID_ARGUMENT', /at least 16 bytes/);
      const into = new MessageBatch({ bytes: 64, messages: 4 });
      throwsWith(() => q.tryReceiveBatch(into, { priorities: new Uint32Array(3) }), 'ERR_IPC_INVALID_ARGUMENT', /at least 4 elements/);
      throwsWith(() => q.tryReceiveBatch(into, { priorities: new Int32Array(4) as unknown as Uint32Array }), 'ERR_IPC_INVALID_ARGUMENT',
        /priorities must be a Uint32Array/);
      await rejectsWith(() => q.receiveBatch(into, { prio: 1 } as object), 'ERR_IPC_INVALID_ARGUMENT', /"prio"/);
      throwsWith(() => q.receiveBatchSync([] as unknown as MessageBatch), 'ERR_IPC_INVALID_ARGUMENT', /a MessageBatch/);
      throwsWith(() => q.sendBatchSync(batchOf(['fits', 'x'.repeat(17)])), 'ERR_IPC_MESSAGE_TOO_LARGE', /17-byte message/);
      const changed = batchOf(['ab', 'cd']);
      changed.lengths[0] = 3;
      throwsWith(() => q.trySendBatch(changed), 'ERR_IPC_INVALID_ARGUMENT', /lengths of this MessageBatch add up to 5 bytes, not the 4/);
      await rejectsWith(() => q.sendBatch(batchOf(['a']), { priority: 40000 }), 'ERR_IPC_INVALID_ARGUMENT', /priority/);
      assert.equal(q.attributes().messages, 0);
  }));

  it('POSIX async: receiveBatch waits for the first, a timeout leaves the batch empty and free, close rejects, a batch is in one call at a time', async () => {
    const name = objects.name();
    const q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 32 });
    const other = PosixMessageQueue.open(name);
    try {
      const into = new MessageBatch({ bytes: 1024, messages: 8 });
      const waiting = q.receiveBatch(into, { timeout: 10_000 });
      assert.equal(await stillPending(waiting, 30), true);
      await rejectsWith(() => q.receiveBatch(into), 'ERR_IPC_INVALID_ARGUMENT', /in a pending call already/);
      throwsWith(() => q.tryReceiveBatch(into), 'ERR_IPC_INVALID_ARGUMENT', /in a pending call already/);
      other.sendManySync(['late', 'later']);
      assert.equal(await waiting, 2);
      assert.deepEqual(strings(into), ['late', 'later']);
      await rejectsWith(() => q.receiveBatch(into, { timeout: 20 }), 'ERR_IPC_TIMEOUT');
      assert.equal(into.count, 0);
      // Free again: a full queue, and a send that goes in part-way before its timeout reports the count.
      assert.equal(other.trySendBatch(batchOf(words(3))), 3);
      assert.equal(await q.sendBatch(batchOf(words(3, 3)), { timeout: 30 }), 1);
      assert.equal(q.tryReceiveBatch(into), 4);
      assert.deepEqual(strings(into), ['w0', 'w1', 'w2', 'w3']);
      const pending = q.receiveBatch(into);
      q.close();
      await rejectsWith(() => pending, 'ERR_IPC_CLOSED');
      throwsWith(() => q.tryReceiveBatch(into), 'ERR_IPC_CLOSED');
    } finally {
      q.close();
      other.close();
      PosixMessageQueue.unlink(name);
    }
  });

  it('messages held after a codec refusal come first into a batch, with their priority (System V: with their type, if selected)', () => {
    const name = objects.name();
    const raw = PosixMessageQueue.create(name, { maxMessages: 10, maxMessageSize: 32 });
    const json = PosixMessageQueue.open(name, { codec: 'json' });
    const key = objects.key();
    const sraw = SysvMessageQueue.create(key);
    const sjson = SysvMessageQueue.open(key, { codec: 'json' });
    try {
      raw.sendManySync(['1', 'bad', '3'], { priority: 4 });
      raw.sendSync('4');
      assert.deepEqual(json.receiveManySync().map((m) => m.data), [1]);
      // Held: bad, 3 (priority 4), 4 (0). A batch takes them raw, then what the kernel has.
      raw.sendSync('5', { priority: 1 });
      const into = new MessageBatch({ bytes: 256, messages: 8 });
      const priorities = new Uint32Array(8);
      assert.equal(json.tryReceiveBatch(into, { priorities }), 4);
      assert.deepEqual(strings(into), ['bad', '3', '4', '5']);
      assert.deepEqual([...priorities.subarray(0, 4)], [4, 4, 0, 1]);

      sraw.sendManySync(1, ['1', 'bad', '3']);
      sraw.sendManySync(2, ['"two"']);
      assert.deepEqual(sjson.receiveManySync().map((m) => m.data), [1]);
      // Held: bad (1), 3 (1), "two" (2). Type 2 takes its own, then any type takes the rest.
      const big = new MessageBatch({ bytes: sjson.maxMessageSize, messages: 8 });
      const types = new Float64Array(8);
      assert.equal(sjson.tryReceiveBatch(big, { type: 2, types }), 1);
      assert.deepEqual([strings(big), types[0]], [['"two"'], 2]);
      assert.equal(sjson.tryReceiveBatch(big, { types }), 2);
      assert.deepEqual([strings(big), [...types.subarray(0, 2)]], [['bad', '3'], [1, 1]]);
    } finally {
      raw.close();
      json.close();
      PosixMessageQueue.unlink(name);
      sjson.close();
      sraw.remove();
    }
  });

  it('System V: every size lands intact, each over the tail of the one before it, with its type; a selector picks', () => withSysv(async (q) => {
      // Sizes around the 8 bytes msgrcv writes before a payload, so both the first-message path and the early landing are used.
      const sizes = [0, 1, 7, 8, 9, 15, 16, 17, 0, 3, 100, 1, 0, 24];
      const sent = sizes.map((n, i) => Buffer.alloc(n, 0x41 + i));
      for (let i = 0; i < sent.length; i++) q.sendSync(1 + (i % 3), sent[i]!);
      const into = new MessageBatch({ bytes: q.maxMessageSize, messages: 64 });
      const types = new Float64Array(64);
      assert.equal(q.receiveBatchSync(into, { types, timeout: 0 }), sizes.length);
      sent.forEach((m, i) => assert.deepEqual(into.at(i), m, `message ${i} (${m.length} bytes)`));
      assert.deepEqual([...types.subarray(0, sizes.length)], sizes.map((_, i) => 1 + (i % 3)));
      assert.equal(into.size, sizes.reduce((a, b) => a + b, 0));
      // By type: 2 only, then the lowest type first up to 3.
      q.sendManySync(3, ['c1', 'c2']);
      q.sendManySync(2, ['b1']);
      q.sendManySync(1, ['a1']);
      assert.equal(q.tryReceiveBatch(into, { type: 2, types }), 1);
      assert.deepEqual(strings(into), ['b1']);
      assert.equal(q.tryReceiveBatch(into, { type: -3, types }), 3);
      assert.deepEqual([strings(into), [...types.subarray(0, 3)]], [['a1', 'c1', 'c2'], [1, 3, 3]]);
      assert.equal(q.tryReceiveBatch(into), 0);
  }));

  it('System V: a message larger than the room left stays queued for the next batch', () => withSysv(async (q) => {
      const into = new MessageBatch({ bytes: q.maxMessageSize + 100 });
      const a = Buffer.alloc(q.maxMessageSize - 50, 1);
      const b = Buffer.alloc(200, 2);
      q.sendManySync(1, [a, b, Buffer.from('c')]);
      assert.equal(q.receiveBatchSync(into), 1);
      assert.deepEqual(into.at(0), a);
      assert.equal(q.stat().messages, 2);
      assert.equal(q.receiveBatchSync(into), 2);
      assert.deepEqual([into.at(0), into.at(1).toString()], [b, 'c']);
      throwsWith(() => q.tryReceiveBatch(new MessageBatch({ bytes: q.maxMessageSize - 1 })), 'ERR_IPC_INVALID_ARGUMENT', /at least \d+ bytes/);
      throwsWith(() => q.tryReceiveBatch(into, { types: new Uint32Array(1024) as unknown as Float64Array }), 'ERR_IPC_INVALID_ARGUMENT',
        /types must be a Float64Array/);
      throwsWith(() => q.sendBatchSync(0, batchOf(['x'])), 'ERR_IPC_INVALID_ARGUMENT', /type/);
  }));

  it('System V async: a waiter thread waits for the first message, the rest are taken at once; a sendBatch waits for room', async () => {
    const key = objects.key();
    const q = SysvMessageQueue.create(key, { maxBytes: 32 });
    const other = SysvMessageQueue.open(key);
    try {
      const into = new MessageBatch({ bytes: q.maxMessageSize, messages: 8 });
      const types = new Float64Array(8);
      const receiving = q.receiveBatch(into, { types, timeout: 10_000 });
      assert.equal(await stillPending(receiving, 30), true);
      other.sendManySync(6, ['x1......', 'x2......', 'x3......']);
      assert.equal(await receiving, 3);
      assert.deepEqual([strings(into), [...types.subarray(0, 3)]], [['x1......', 'x2......', 'x3......'], [6, 6, 6]]);

      const eight = words(6).map((w) => w.padEnd(8, '.'));
      const sending = q.sendBatch(2, batchOf(eight), { timeout: 10_000 });
      await waitUntil('four are in', () => q.stat().messages === 4);
      // The waiting sender may put its next message in while this batch takes them (4 or more).
      const got: string[] = [];
      assert.ok(other.tryReceiveBatch(into) >= 4);
      got.push(...strings(into));
      assert.equal(await sending, 6);
      if (got.length < 6) {
        assert.equal(other.tryReceiveBatch(into), 6 - got.length);
        got.push(...strings(into));
      }
      assert.deepEqual(got, eight);

      const ac = new AbortController();
      const aborted = q.sendBatch(2, batchOf(eight), { signal: ac.signal });
      await waitUntil('four are in', () => q.stat().messages === 4);
      ac.abort();
      assert.equal(await aborted, 4);
      assert.equal(q.stat().messages, 4);
    } finally {
      other.close();
      q.remove();
    }
  });
});

/** Detaches `buffer` (as a transfer to another thread would). */
function detach(buffer: ArrayBufferLike): void {
  structuredClone(buffer, { transfer: [buffer as ArrayBuffer] });
}

describe('packed batches against a careless or hostile caller', () => {
  it('a System V batch far larger than a message receives its first one without a scratch of the batch\'s size', () => withSysv(async (q) => {
      // 256 MiB of batch, never touched: its pages stay unmapped until written.
      const big = new MessageBatch({ bytes: 256 * 1024 * 1024, messages: 4 });
      q.sendSync(1, 'x');
      const before = process.memoryUsage().rss;
      assert.equal(q.receiveBatchSync(big, { timeout: 0 }), 1);
      const grown = process.memoryUsage().rss - before;
      assert.ok(grown < 64 * 1024 * 1024, `receiving one byte grew the process by ${grown} bytes`);
      assert.equal(big.at(0).toString(), 'x');
  }));

  it('a batch whose memory goes while an async receive waits fails it with ERR_IPC_INVALID_ARGUMENT, and the message stays (both families)', async () => {
    const key = objects.key();
    const q = SysvMessageQueue.create(key);
    const name = objects.name();
    const pq = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 64 });
    try {
      const sysvBatch = new MessageBatch({ bytes: q.maxMessageSize });
      const waiting = q.receiveBatch(sysvBatch, { timeout: 10_000 });
      assert.equal(await stillPending(waiting, 30), true);
      detach(sysvBatch.data.buffer);
      q.sendSync(3, 'kept');
      await rejectsWith(() => waiting, 'ERR_IPC_INVALID_ARGUMENT', /lost its memory.*kept for the next receive/);
      assert.deepEqual([q.tryReceive()?.data.toString(), q.stat().messages], ['kept', 0]);

      const posixBatch = new MessageBatch({ bytes: 64 });
      const pending = pq.receiveBatch(posixBatch, { timeout: 10_000 });
      assert.equal(await stillPending(pending, 30), true);
      detach(posixBatch.lengths.buffer);
      pq.sendSync('kept too');
      await rejectsWith(() => pending, 'ERR_IPC_INVALID_ARGUMENT', /lost its memory/);
      assert.equal(pq.tryReceive()?.data.toString(), 'kept too');
      throwsWith(() => pq.tryReceiveBatch(posixBatch), 'ERR_IPC_INVALID_ARGUMENT', /lost its memory/);
    } finally {
      q.remove();
      pq.close();
      PosixMessageQueue.unlink(name);
    }
  });

  it('a send of a batch whose memory went is ERR_IPC_INVALID_ARGUMENT, not a system error about the queue (both families)', () => {
    const key = objects.key();
    const q = SysvMessageQueue.create(key);
    const name = objects.name();
    const pq = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 64 });
    try {
      const a = batchOf(['one', 'two']);
      detach(a.data.buffer);
      throwsWith(() => q.sendBatchSync(1, a), 'ERR_IPC_INVALID_ARGUMENT');
      throwsWith(() => pq.trySendBatch(a), 'ERR_IPC_INVALID_ARGUMENT');
      assert.deepEqual([q.stat().messages, pq.attributes().messages], [0, 0]);
    } finally {
      q.remove();
      pq.close();
      PosixMessageQueue.unlink(name);
    }
  });

  it('an object that only has a MessageBatch\'s prototype is refused as one', () => withPosix({ maxMessages: 4, maxMessageSize: 64 }, async (q) => {
      const fake = Object.create(MessageBatch.prototype) as MessageBatch;
      throwsWith(() => q.tryReceiveBatch(fake), 'ERR_IPC_INVALID_ARGUMENT', /batch must be a MessageBatch/);
      throwsWith(() => q.sendBatchSync(fake), 'ERR_IPC_INVALID_ARGUMENT', /batch must be a MessageBatch/);
  }));

  it('a batch spins for room while a receiver makes some, within its timeout and a slice of the event loop (both families, sync and async)', async () => {
    // A worker drains the full queue one message every 5 ms, for ever: 200 messages would take a second. The
    // sender's spin (10 ms, the most there is) may restart with each message that goes in, but the call stops
    // spinning 10 ms after its first message went, and never past its timeout: a *Sync call returns its partial
    // count by its timeout, an async call's attempt gives the event loop back within its slice, and an abort then
    // ends it with what went. Nothing is lost or sent twice.
    const SPIN_US = 10_000;
    const n = 200;
    for (const family of ['posix', 'sysv'] as const) {
      for (const form of ['sync', 'async'] as const) {
        const name = objects.name();
        const key = objects.key();
        const q = family === 'posix' ? PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 32, spin: SPIN_US })
          : SysvMessageQueue.create(key, { spin: SPIN_US });
        // System V counts bytes: four messages of 4,000 bytes fill its 16,384 (the default msgmnb).
        const text = (i: number): string => (family === 'posix' ? `m${i}` : `m${i}`.padEnd(4000, '.'));
        const control = new Int32Array(new SharedArrayBuffer(12));
        const worker = new Worker(`
          const { workerData: d, parentPort } = require('node:worker_threads');
          import(d.index).then((m) => {
            const q = d.family === 'posix' ? m.PosixMessageQueue.open(d.name, { spin: 0 }) : m.SysvMessageQueue.open(d.key, { spin: 0 });
            parentPort.postMessage('ready');
            Atomics.wait(d.control, 0, 0);
            const got = [];
            while (Atomics.load(d.control, 0) === 1) {
              const r = q.tryReceive();
              if (r !== undefined) got.push(String(r.data).replace(/\\.+$/, ''));
              Atomics.wait(d.control, 1, 0, 5);
            }
            q.close();
            parentPort.postMessage(got);
          });`, { eval: true, workerData: { index: new URL('../src/index.js', import.meta.url).href, family, name, key, control } });
        const what = `${family} ${form}`;
        try {
          let filled = 0;
          while (q instanceof PosixMessageQueue ? q.trySend(text(filled)) : q.trySend(1, text(filled))) filled++;
          assert.equal(filled, 4);
          assert.equal((await once(worker, 'message'))[0], 'ready');
          const list = Array.from({ length: n }, (_, i) => text(filled + i));
          Atomics.store(control, 0, 1);
          Atomics.notify(control, 0);
          const began = performance.now();
          let sent: number;
          if (form === 'sync') {
            sent = q instanceof PosixMessageQueue ? q.sendManySync(list, { timeout: 30 }) : q.sendManySync(1, list, { timeout: 30 });
            const took = performance.now() - began;
            assert.ok(took >= 29 && took < 400, `${what}: the call took ${took.toFixed(1)} ms with a timeout of 30`);
          } else {
            const signal = AbortSignal.timeout(60);
            const pending = q instanceof PosixMessageQueue ? q.sendMany(list, { signal }) : q.sendMany(1, list, { signal });
            const held = performance.now() - began;
            assert.ok(held < 300, `${what}: the first attempt held the event loop ${held.toFixed(1)} ms`);
            sent = await pending;
            const took = performance.now() - began;
            assert.ok(took >= 59 && took < 600, `${what}: the abort after 60 ms ended the call after ${took.toFixed(1)} ms`);
          }
          assert.ok(sent > 0 && sent < n, `${what}: ${sent} of ${n} went`);
          Atomics.store(control, 0, 2);
          const [got] = await once(worker, 'message') as [string[]];
          const rest = (q instanceof PosixMessageQueue ? q.tryReceiveMany({ max: 10 }) : q.tryReceiveMany({ max: 10 })).map((m) => String(m.data).replace(/\.+$/, ''));
          assert.deepEqual([...got, ...rest], Array.from({ length: filled + sent }, (_, i) => `m${i}`), `${what}: every message once, in order`);
        } finally {
          Atomics.store(control, 0, 2);
          Atomics.notify(control, 0);
          await worker.terminate();
          if (q instanceof PosixMessageQueue) {
            q.close();
            PosixMessageQueue.unlink(name);
          } else {
            q.remove();
          }
        }
      }
    }
  });

  it('a batch\'s retries spin from an allowance of one budget plus one per message that went, never more', () => {
    const unused = (): IpcError => new IpcError('ERR_IPC_INVALID_ARGUMENT', 'unused');
    // A lane in a wake-up pass with plenty left, so that only the allowance bounds the spin.
    const lane = { spin: 50, retrySpin: 1e9 };
    const next = new Uint32Array(1);
    const batch = batchSend(10, lane, false, unused, next);
    // A call's first attempt (the lane's spin) spins as a single call does, and costs no allowance.
    assert.deepEqual([batch.spin(100, 50), batch.spin(0, 50)], [50, 50]);
    // Retries after readiness (timeout 0, spin 0): one budget, then only what messages that went in paid for.
    assert.equal(batch.spin(0, 0), 50);
    assert.equal(batch.outcome(E.EAGAIN), undefined);
    assert.equal(batch.spin(0, 0), 0);
    assert.equal(batch.outcome(E.EAGAIN), undefined);
    next[0] = 3;
    assert.equal(batch.outcome(3), undefined);
    assert.deepEqual([batch.spin(0, 0), batch.spin(0, 0), batch.spin(0, 0), batch.spin(0, 0)], [50, 50, 50, 0]);
    // A try never spins.
    assert.equal(batchSend(10, lane, true, unused).spin(0, 0), 0);
  });

  it('a sync batch\'s retries after a sleep spin from the same allowance: a sleep that ended with nothing sent is not paid for', () => {
    const lane = { spin: 50, retrySpin: 0 };
    const next = new Uint32Array(1);
    const batch = batchSend(10, lane, false, () => new IpcError('ERR_IPC_INVALID_ARGUMENT', 'unused'), next);
    // The first retry after a sleep (a slice of the timeout ended, or room came): one budget; then nothing until messages go.
    assert.deepEqual([batch.spin(100, 0), batch.spin(100, 0), batch.spin(100, 0)], [50, 0, 0]);
    next[0] = 2;
    assert.equal(batch.outcome(2), undefined);
    assert.deepEqual([batch.spin(100, 0), batch.spin(100, 0), batch.spin(100, 0)], [50, 50, 0]);
    // Sync retries do not draw on the lane's pass.
    assert.equal(lane.retrySpin, 0);
  });

  it('queued batches share one spin budget per wake-up of their lane; a try or sync call serving the queue lends them none', () => {
    const unused = (): IpcError => new IpcError('ERR_IPC_INVALID_ARGUMENT', 'unused');
    const lane = { spin: 50, retrySpin: 50 };
    const nexts = [new Uint32Array([4]), new Uint32Array([4])];
    const [first, second] = nexts.map((next) => batchSend(10, lane, false, unused, next));
    // Both have sent messages and have allowance to spare; the pass has one budget for both.
    for (const b of [first!, second!]) assert.equal(b.outcome(4), undefined);
    assert.equal(first!.spin(0, 0), 50);
    assert.equal(second!.spin(0, 0), 0, 'the first call served spent the pass\'s budget');
    // A pass of serve() (a try or sync call on its way): none at all.
    lane.retrySpin = 0;
    assert.deepEqual([first!.spin(0, 0), second!.spin(0, 0)], [0, 0]);
    // The next wake-up: one budget again.
    lane.retrySpin = 50;
    assert.deepEqual([second!.spin(0, 0), first!.spin(0, 0)], [50, 0]);
  });
});

describe('message queue batch cleanup', () => {
  it('leaves no descriptor and no child process behind', () => assertNothingLeft(fdBaseline));
});
