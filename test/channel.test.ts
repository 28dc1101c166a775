/**
 * The shared-memory channel: factories and their checks, the blocking
 * triple on a full and an empty ring, wrap-around and padding, roles,
 * loans and zero-copy views, peer death on both sides, a producer killed
 * mid-stream, corrupted headers and records, and an exactly-once run of a
 * million checksummed messages between two processes.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn as spawnChild } from 'node:child_process';
import { existsSync, openSync, writeSync, closeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Channel, Poller, PosixSharedMemory, select, selectSync } from '../src/index.js';
import { LOCK_WORDS } from '../src/lock.js';
import { rejectsWith, stillPending, throwsWith, waitUntil } from './helpers/assert.js';
import { ObjectTracker } from './helpers/objects.js';
import { killAllPeers, trackChild } from './helpers/peer.js';
import { blockedIn } from './helpers/proc.js';
import { readRecord, record } from './helpers/records.js';
import { CONSUMER_BELLS, PRODUCER_BELLS, bellSlots as listedBells } from './helpers/channel-header.js';

const PEER = fileURLToPath(new URL('./helpers/channel-peer.js', import.meta.url));
/** The header of `ch`, mapped again (closed when the suite ends). */
function headerWords(ch: Channel<unknown>): Int32Array {
  const shm = PosixSharedMemory.open(ch.address);
  mappings.push(shm);
  return new Int32Array(shm.buffer, 0, 384);
}
const mappings: PosixSharedMemory[] = [];
const bellSlots = (ch: Channel<unknown>): [string, number][] => listedBells(ch.address).map(([side, slot]) => [side, slot]);
const tracker = new ObjectTracker();
const opened = new Set<Channel<unknown>>();

after(async () => {
  for (const ch of opened) ch.close();
  for (const shm of mappings) shm.close();
  await killAllPeers();
  tracker.cleanup();
  assert.deepEqual(tracker.leftovers(), []);
});

function fresh<T = Buffer>(options: Parameters<typeof Channel.create<T>>[1] = {}): Channel<T> {
  const ch = Channel.create<T>(tracker.shmName('ch'), options);
  opened.add(ch as Channel<unknown>);
  return ch;
}

function openedAgain<T = Buffer>(ch: Channel<unknown>): Channel<T> {
  const other = Channel.open<T>(ch.address);
  opened.add(other as Channel<unknown>);
  return other;
}

/** A peer process in `role`; resolves with it and its line reader once it printed its first line. */
async function peer(role: string, name: string, params: object): Promise<{ child: ChildProcess; first: string; lines: AsyncIterator<string> }> {
  const child = trackChild(spawnChild(process.execPath, [PEER, role, name, JSON.stringify(params)], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = (await lines.next()).value as string;
  return { child, first, lines };
}

function exited(child: ChildProcess): Promise<unknown> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve));
}

describe('Channel factories', () => {
  it('create, open, openOrCreate and unlink, with the limits checked', () => {
    const ch = fresh({ capacity: 1000, maxMessageSize: 100 });
    assert.equal(ch.capacity, 1024, 'rounded up to a power of two');
    assert.equal(ch.maxMessageSize, 100);
    const again = openedAgain(ch);
    assert.deepEqual([again.capacity, again.maxMessageSize], [1024, 100]);
    const same = Channel.openOrCreate(ch.address, { capacity: 64 });
    opened.add(same);
    assert.equal(same.capacity, 1024, 'an existing channel keeps its size');
    throwsWith(() => Channel.create(ch.address), 'EEXIST');
    throwsWith(() => Channel.create(tracker.shmName('ch'), { capacity: 32 }), 'ERR_IPC_INVALID_ARGUMENT', /capacity/);
    throwsWith(() => Channel.create(tracker.shmName('ch'), { capacity: 1024, maxMessageSize: 1024 }), 'ERR_IPC_INVALID_ARGUMENT', /maxMessageSize/);
    throwsWith(() => Channel.create(tracker.shmName('ch'), { capasity: 1024 } as never), 'ERR_IPC_INVALID_ARGUMENT', /did you mean "capacity"/);
    throwsWith(() => Channel.open(tracker.shmName('ch')), 'ENOENT');
    const name = ch.address;
    ch.unlink();
    assert.equal(existsSync(`/dev/shm${name}`), false);
    // Open handles go on working.
    assert.equal(again.trySend(Buffer.from('still')), true);
    assert.equal(again.tryReceive()!.data.toString(), 'still');
  });

  it('a segment that is not a channel is refused before anything in it is trusted', () => {
    const name = tracker.shmName('notch');
    const shm = PosixSharedMemory.create(name, { size: 4096 });
    throwsWith(() => Channel.open(name), 'ERR_IPC_CORRUPTED', /header was never completed/);
    const words = new Int32Array(shm.buffer);
    words[0] = 0x4c4e4843;
    words[1] = 2;
    words[2] = 1 << 20;
    throwsWith(() => Channel.open(name), 'ERR_IPC_CORRUPTED', /capacity word holds 1048576/);
    words[2] = 1024;
    words[3] = 600;
    throwsWith(() => Channel.open(name), 'ERR_IPC_CORRUPTED', /maxMessageSize word holds 600/);
    words[1] = 7;
    throwsWith(() => Channel.open(name), 'ERR_IPC_CORRUPTED', /layout version is 7/);
    shm.close();
  });
});

describe('Channel: the blocking triple', () => {
  it('full: trySend is false, timeouts expire, and a send waits until the consumer makes room', async () => {
    const ch = fresh({ capacity: 64, maxMessageSize: 24 });
    const message = Buffer.alloc(24, 7);
    assert.equal(ch.trySend(message), true);
    assert.equal(ch.trySend(message), true);
    assert.equal(ch.trySend(message), false, 'two 32-byte records fill 64 bytes');
    throwsWith(() => ch.sendSync(message, { timeout: 0 }), 'ERR_IPC_TIMEOUT', / timed out after 0 ms/);
    throwsWith(() => ch.sendSync(message, { timeout: 30 }), 'ERR_IPC_TIMEOUT', / timed out after 30 ms/);
    await rejectsWith(() => ch.send(message, { timeout: 30 }), 'ERR_IPC_TIMEOUT');
    const pending = ch.send(Buffer.alloc(24, 9));
    assert.equal(await stillPending(pending, 30), true);
    assert.equal(ch.tryReceive()!.data[0], 7);
    await pending;
    assert.deepEqual([ch.tryReceive()!.data[0], ch.tryReceive()!.data[0], ch.tryReceive()], [7, 9, undefined]);
    assert.equal(ch.stats().producerWaits > 0, true);
  });

  it('empty: tryReceive is undefined, timeouts expire, and a receive waits until a message comes', async () => {
    const ch = fresh({ capacity: 256 });
    assert.equal(ch.tryReceive(), undefined);
    throwsWith(() => ch.receiveSync({ timeout: 0 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => ch.receiveSync({ timeout: 30 }), 'ERR_IPC_TIMEOUT', / timed out after 30 ms/);
    await rejectsWith(() => ch.receive({ timeout: 30 }), 'ERR_IPC_TIMEOUT');
    const stop = new AbortController();
    const aborted = ch.receive({ signal: stop.signal });
    stop.abort();
    await rejectsWith(() => aborted, 'ERR_IPC_ABORTED');
    const pending = ch.receive();
    assert.equal(await stillPending(pending, 30), true);
    ch.sendSync(Buffer.from('late'));
    assert.equal((await pending).data.toString(), 'late');
    await rejectsWith(() => ch.receive({ timeOut: 5 } as never), 'ERR_IPC_INVALID_ARGUMENT', /did you mean "timeout"/);
  });

  it('wraps around with padding records, for sizes from 0 bytes to maxMessageSize, in order and intact', () => {
    const ch = fresh({ capacity: 256 });
    assert.equal(ch.maxMessageSize, 120);
    let sent = 0;
    let received = 0;
    for (let round = 0; round < 2000; round++) {
      const size = (round * 37) % 121;
      const data = Buffer.alloc(size, round & 0xff);
      while (!ch.trySend(data)) {
        const got = ch.tryReceive()!.data;
        const size2 = (received * 37) % 121;
        assert.deepEqual(got, Buffer.alloc(size2, received & 0xff), `message ${received}`);
        received++;
      }
      sent++;
    }
    for (let got = ch.tryReceive(); got !== undefined; got = ch.tryReceive(), received++) {
      assert.deepEqual(got.data, Buffer.alloc((received * 37) % 121, received & 0xff));
    }
    assert.equal(received, sent);
    const stats = ch.stats();
    assert.deepEqual([stats.sent, stats.received, stats.depth, stats.depthBytes], [2000, 2000, 0, 0]);
  });

  it('positions pass 2^31 and 2^32 bytes (they count modulo 2^32) without a false corruption', () => {
    const ch = fresh({ capacity: 1 << 17, maxMessageSize: 32760 });
    const message = Buffer.alloc(32760, 5);
    // 32768-byte records: 2^17 of them carry the positions past 2^32.
    for (let i = 0; i < 2 ** 17 + 8; i++) {
      ch.sendSync(message);
      const got = ch.receiveSync();
      if (got.data.length !== 32760 || got.data[100] !== 5) assert.fail(`message ${i} came back wrong`);
    }
    assert.equal(ch.tryReceive(), undefined);
  });

  it('a message over maxMessageSize is refused before anything is written; codecs apply', async () => {
    const ch = fresh<{ n: number }>({ capacity: 1024, codec: 'json' });
    throwsWith(() => ch.trySend({ n: 1, pad: 'x'.repeat(600) } as never), 'ERR_IPC_MESSAGE_TOO_LARGE', /maxMessageSize/);
    await ch.send({ n: 42 });
    assert.deepEqual((await ch.receive()).data, { n: 42 });
    assert.equal(ch.stats().sent, 1);
  });

  it('select reports a channel readable while a message waits and writable while a largest message fits', async () => {
    const ch = fresh({ capacity: 256, maxMessageSize: 100 });
    throwsWith(() => selectSync([ch], { timeout: 0 }), 'ERR_IPC_TIMEOUT');
    assert.equal(ch.trySend(Buffer.from('one')), true);
    const ready = selectSync([ch], { events: 'both', timeout: 0 });
    assert.deepEqual(ready.map((r) => [r.object === ch, r.readable, r.writable, r.hangup, r.error]), [[true, true, true, false, false]]);
    assert.equal(ch.tryReceive()!.data.toString(), 'one');
    // 112-byte records: two fill the ring's 256 bytes less the room of a third.
    assert.equal(ch.trySend(Buffer.alloc(100)), true);
    assert.equal(ch.trySend(Buffer.alloc(100)), true);
    assert.deepEqual(selectSync([ch], { events: 'both', timeout: 0 }).map((r) => [r.readable, r.writable]), [[true, false]]);
    throwsWith(() => selectSync([ch], { events: 'writable', timeout: 0 }), 'ERR_IPC_TIMEOUT');
    // An async select is woken by the consumer making room, and reports writable only.
    const consumer = openedAgain(ch);
    const consumerBells = new Int32Array(PosixSharedMemory.open(ch.address).buffer);
    const waiting = select([ch], { events: 'writable', timeout: 10_000 });
    await waitUntil('the select armed the producers\' doorbell', () => Atomics.load(consumerBells, PRODUCER_BELLS) !== 0);
    assert.equal(ch.tryReceive()!.data.length, 100);
    assert.deepEqual((await waiting).map((r) => [r.readable, r.writable]), [[false, true]]);
    assert.equal(consumer.closed, false);
    // Every doorbell the selects listed is gone with them.
    assert.deepEqual(bellSlots(ch), []);
  });

  it('a Poller reports a channel at every wait while messages wait (level), once per change with edge, and is woken by a send', async () => {
    const ch = fresh({ capacity: 1024, maxMessageSize: 100 });
    const producer = openedAgain(ch);
    using poller = new Poller();
    poller.add(ch);
    assert.deepEqual(poller.tryWait(), []);
    const waiting = poller.wait({ timeout: 10_000 });
    await waitUntil('the Poller armed the consumers\' doorbell', () => Atomics.load(headerWords(ch), CONSUMER_BELLS) !== 0);
    producer.sendSync(Buffer.from('a'));
    producer.sendSync(Buffer.from('b'));
    assert.deepEqual((await waiting).map((r) => [r.object === ch, r.readable, r.writable]), [[true, true, false]]);
    assert.equal(poller.tryWait().length, 1, 'still readable: level-triggered');
    assert.equal(ch.tryReceive()!.data.toString(), 'a');
    assert.equal(poller.tryWait().length, 1);
    assert.equal(ch.tryReceive()!.data.toString(), 'b');
    assert.deepEqual(poller.tryWait(), []);
    poller.modify(ch, { edge: true });
    producer.sendSync(Buffer.from('c'));
    assert.equal(poller.tryWait().length, 1);
    assert.deepEqual(poller.tryWait(), [], 'reported once: edge-triggered');
    producer.sendSync(Buffer.from('d'));
    assert.equal((await poller.wait({ timeout: 10_000 })).length, 1, 'a new message is a new edge');
    assert.equal(bellSlots(ch).length, 1);
    poller.remove(ch);
    assert.deepEqual(bellSlots(ch), []);
    // A channel closed while registered leaves the Poller by itself.
    poller.add(ch);
    ch.close();
    assert.deepEqual(poller.tryWait(), []);
    assert.equal(poller.has(ch), false);
  });

  it('waiting for readiness takes the role a receive (a send) would: a role held elsewhere is ERR_IPC_BUSY', () => {
    const ch = fresh({ capacity: 256 });
    const other = openedAgain(ch);
    assert.equal(other.tryReceive(), undefined);
    using poller = new Poller();
    throwsWith(() => poller.add(ch), 'ERR_IPC_BUSY', /Another handle of this thread is the consumer/);
    poller.add(ch, { events: 'writable' });
    throwsWith(() => other.trySend(Buffer.from('x')), 'ERR_IPC_BUSY', /is the producer/);
    assert.deepEqual(bellSlots(ch), [['producer', 0]]);
  });

  it('a side lists 32 doorbells; a slot whose thread died is taken over; the 33rd live one is ERR_IPC_LIMIT', async () => {
    const ch = fresh({ capacity: 256, consumers: 'multi' });
    const words = headerWords(ch);
    const gone = trackChild(spawnChild('true'));
    await exited(gone);
    // Slots of a dead thread (a process killed while it waited).
    for (let slot = 0; slot < 32; slot++) Atomics.store(words, 128 + slot * 4, gone.pid!);
    const pollers = Array.from({ length: 33 }, () => new Poller());
    try {
      for (const p of pollers.slice(0, 32)) p.add(ch);
      throwsWith(() => pollers[32]!.add(ch), 'ERR_IPC_LIMIT', /32 doorbells of its consumers are taken/);
      assert.equal(bellSlots(ch).length, 32);
      pollers[0]!.close();
      pollers[32]!.add(ch);
    } finally {
      for (const p of pollers) p.close();
    }
    assert.deepEqual(bellSlots(ch), []);
  });

  it('a Poller in this process follows a producer in another, through a ring that fills', async () => {
    const ch = fresh({ capacity: 1024, maxMessageSize: 256 });
    const count = 3000;
    const producer = await peer('produce-after-line', ch.address, { count, maxBody: 200 });
    using poller = new Poller();
    poller.add(ch);
    let expected = 0;
    while (expected < count) {
      await poller.wait({ timeout: 20_000 });
      for (let m = ch.tryReceive(); m !== undefined; m = ch.tryReceive()) {
        const checked = readRecord(m.data);
        if (!checked.ok || checked.seq !== expected) assert.fail(`record ${expected} came as ${JSON.stringify(checked)}`);
        expected++;
      }
    }
    assert.equal((await producer.lines.next()).value, 'done');
  });

  it('select in this process feeds a consumer in another, waiting for room', async () => {
    const ch = fresh({ capacity: 1024, maxMessageSize: 256 });
    const count = 3000;
    const consumer = await peer('consume-after-line', ch.address, { count });
    for (let seq = 0; seq < count;) {
      await select([ch], { events: 'writable', timeout: 20_000 });
      while (seq < count && ch.trySend(record(seq, 200))) seq++;
    }
    assert.deepEqual(JSON.parse((await consumer.lines.next()).value as string), { received: count, bad: 0 });
  });

  it('close() rejects pending calls, and every later use fails with ERR_IPC_CLOSED', async () => {
    const ch = fresh({ capacity: 128 });
    const pending = ch.receive();
    ch.close();
    await rejectsWith(() => pending, 'ERR_IPC_CLOSED');
    ch.close();
    throwsWith(() => ch.trySend(Buffer.from('x')), 'ERR_IPC_CLOSED');
    throwsWith(() => ch.tryReceive(), 'ERR_IPC_CLOSED');
    throwsWith(() => ch.stats(), 'ERR_IPC_CLOSED');
    const got: unknown[] = [];
    for await (const m of ch) got.push(m);
    assert.deepEqual(got, []);
  });
});

describe('Channel: roles', () => {
  it('two threads taking a dead holder\'s role at the same moment: one of them gets it, never both', async () => {
    const ch = fresh({ capacity: 4096 });
    const words = headerWords(ch);
    const rounds = 1500;
    const control = new Int32Array(new SharedArrayBuffer(16));
    const source = `
      import { Channel } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
      import { workerData } from 'node:worker_threads';
      const { name, control, rounds, me } = workerData;
      for (let round = 1; round <= rounds; round++) {
        const h = Channel.open(name, { spin: 0 });
        while (Atomics.load(control, 0) !== round) Atomics.wait(control, 0, round - 1, 5);
        let outcome;
        try {
          outcome = h.trySend(Buffer.from('x')) ? 1 : 2;
        } catch (err) {
          outcome = err.code === 'ERR_IPC_BUSY' ? 0 : 3;
        }
        Atomics.or(control, 1, outcome << (me * 4));
        Atomics.add(control, 2, 1);
        Atomics.notify(control, 2);
        while (Atomics.load(control, 3) !== round) Atomics.wait(control, 3, round - 1, 5);
        h.close();
      }`;
    const workers = [0, 1].map((me) => new Worker(source, { eval: true, workerData: { name: ch.address, control, rounds, me } } as never));
    const outcomes = new Map<string, number>();
    try {
      for (let round = 1; round <= rounds; round++) {
        // A holder that died: a tid nobody has, a start time.
        Atomics.store(words, 17, 4_000_000 - (round % 1000));
        Atomics.store(words, 18, 777_777);
        Atomics.store(words, 32, Atomics.load(words, 16));
        Atomics.store(control, 1, 0);
        Atomics.store(control, 2, 0);
        Atomics.store(control, 0, round);
        Atomics.notify(control, 0);
        for (let done = Atomics.load(control, 2); done !== 2; done = Atomics.load(control, 2)) Atomics.wait(control, 2, done, 50);
        const both = Atomics.load(control, 1);
        const key = [both & 15, both >> 4].sort().join('');
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        Atomics.store(control, 3, round);
        Atomics.notify(control, 3);
      }
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
    // "01": one sent, the other was told ERR_IPC_BUSY. Never "11" (both sent as the one producer).
    assert.deepEqual([...outcomes.keys()], ['01']);
  });

  it('one producer and one consumer: another handle or live process is refused, a dead holder is taken over', async () => {
    const ch = fresh({ capacity: 256 });
    const other = openedAgain(ch);
    ch.trySend(Buffer.from('a'));
    throwsWith(() => other.trySend(Buffer.from('b')), 'ERR_IPC_BUSY', /Another handle of this thread is the producer/);
    // Both roles in one handle are fine; the consumer role is free for the other handle.
    assert.equal(other.tryReceive()!.data.toString(), 'a');
    throwsWith(() => ch.tryReceive(), 'ERR_IPC_BUSY', /consumer/);
    other.close();
    assert.equal(ch.tryReceive(), undefined, 'a closed handle gives its role back');
    ch.close();
    const mine = fresh({ capacity: 256 });
    const holder = await peer('hold', mine.address, { hold: 'producer' });
    assert.equal(holder.first, 'holding');
    throwsWith(() => mine.trySend(Buffer.from('x')), 'ERR_IPC_BUSY', new RegExp(`Thread ${holder.child.pid} is the producer`));
    holder.child.kill('SIGKILL');
    await exited(holder.child);
    assert.equal(mine.trySend(Buffer.from('mine now')), true);
    assert.equal(mine.tryReceive()!.data.toString(), 'mine now');
  });
});

describe('Channel: loans and views', () => {
  it('receiveInto copies the next message into the caller\'s buffer (its length back); a message longer than it stays', async () => {
    const ch = fresh<{ n: number }>({ capacity: 1024, maxMessageSize: 200, codec: 'json' });
    const consumer = openedAgain(ch);
    const target = Buffer.alloc(16, 0xee);
    assert.equal(consumer.tryReceiveInto(target), undefined);
    ch.sendSync({ n: 1 });
    ch.sendSync({ n: 22222222222 });
    // No codec: the JSON text as sent.
    assert.equal(consumer.receiveIntoSync(target), 7);
    assert.equal(target.subarray(0, 8).toString('latin1'), '{"n":1}\xee');
    throwsWith(() => consumer.tryReceiveInto(target), 'ERR_IPC_MESSAGE_TOO_LARGE', /is 17 bytes, more than the 16 of the target; it stays/);
    const big = Buffer.alloc(200);
    assert.equal(consumer.tryReceiveInto(big), 17);
    assert.equal(big.subarray(0, 17).toString(), '{"n":22222222222}');
    const waiting = consumer.receiveInto(big, { timeout: 10_000 });
    await waitUntil('the receive waits for its doorbell', () => Atomics.load(headerWords(ch), CONSUMER_BELLS) !== 0);
    ch.sendSync({ n: 3 });
    assert.equal(await waiting, 7);
    assert.deepEqual(consumer.stats().received, 3);
    throwsWith(() => consumer.tryReceiveInto('text' as never), 'ERR_IPC_INVALID_ARGUMENT', /target/);
    await rejectsWith(() => consumer.receiveInto(big, { timeout: 0 }), 'ERR_IPC_TIMEOUT');
  });

  it('receiveInto takes a shared side\'s turn as a receive does, and an empty message is 0 bytes', () => {
    const ch = fresh({ capacity: 256, consumers: 'multi' });
    const a = openedAgain(ch);
    const b = openedAgain(ch);
    ch.sendSync(Buffer.alloc(0));
    ch.sendSync(Buffer.from('two'));
    const target = Buffer.alloc(64);
    assert.equal(a.tryReceiveInto(target), 0);
    assert.equal(b.receiveIntoSync(target, { timeout: 0 }), 3);
    assert.equal(target.subarray(0, 3).toString(), 'two');
    assert.equal(a.tryReceiveInto(target), undefined);
  });

  it('a loan over maxMessageSize is ERR_IPC_MESSAGE_TOO_LARGE, as a send is; a loan pending when the handle closes is ERR_IPC_CLOSED', async () => {
    const ch = fresh({ capacity: 64, maxMessageSize: 24 });
    throwsWith(() => ch.tryLoan(25), 'ERR_IPC_MESSAGE_TOO_LARGE', /A 25-byte message exceeds the maxMessageSize/);
    throwsWith(() => ch.tryLoan(-1), 'ERR_IPC_INVALID_ARGUMENT', /size/);
    const consumer = openedAgain(ch);
    while (ch.trySend(Buffer.alloc(24))) { /* fill */ }
    const loaning = ch.loan(24);
    await waitUntil('the loan waits for its doorbell', () => Atomics.load(headerWords(ch), PRODUCER_BELLS) !== 0);
    // Room made, and the handle closed before the event loop turns: the loan must not take the room of a closed handle.
    assert.equal(consumer.tryReceive()!.data.length, 24);
    ch.close();
    await rejectsWith(() => loaning, 'ERR_IPC_CLOSED');
    assert.equal(consumer.stats().depth, 1);
  });

  it('a loan is written in place and published only by commit', () => {
    const ch = fresh({ capacity: 256 });
    const slot = ch.tryLoan(100)!;
    assert.equal(slot.length, 100);
    Buffer.from(slot.buffer, slot.byteOffset, slot.length).write('in place');
    assert.equal(ch.tryReceive(), undefined, 'nothing is visible before the commit');
    throwsWith(() => ch.trySend(Buffer.from('other')), 'ERR_IPC_INVALID_ARGUMENT', /commit\(\) of the loan first/);
    throwsWith(() => ch.commit(new Uint8Array(100)), 'ERR_IPC_INVALID_ARGUMENT', /the array the last loan returned/);
    throwsWith(() => ch.commit(slot, 101), 'ERR_IPC_INVALID_ARGUMENT', /length/);
    ch.commit(slot, 8);
    assert.equal(ch.tryReceive()!.data.toString(), 'in place');
    throwsWith(() => ch.commit(slot), 'ERR_IPC_INVALID_ARGUMENT', /each loan is committed once/);
    throwsWith(() => ch.tryLoan(200), 'ERR_IPC_MESSAGE_TOO_LARGE', /maxMessageSize/);
  });

  it('a view is the message in the ring until the next receive; then it is detectably stale', async () => {
    const ch = fresh({ capacity: 128, maxMessageSize: 56 });
    ch.sendSync(Buffer.alloc(56, 1));
    ch.sendSync(Buffer.alloc(56, 2));
    const view = ch.tryReceive({ view: true })!;
    assert.equal(view.valid, true);
    assert.deepEqual(Buffer.from(view.data), Buffer.alloc(56, 1));
    // Its space is not the producer's yet: the ring is still full.
    assert.equal(ch.trySend(Buffer.alloc(56, 3)), false);
    const second = ch.receiveSync({ view: true });
    assert.equal(view.valid, false);
    throwsWith(() => view.data, 'ERR_IPC_STALE_VIEW', /Copy what you keep/);
    assert.equal(second.data[0], 2);
    assert.equal(ch.trySend(Buffer.alloc(56, 3)), true, 'the first message\'s space went back');
    second.release();
    throwsWith(() => second.data, 'ERR_IPC_STALE_VIEW');
    const third = await ch.receive({ view: true });
    assert.equal(third.data[0], 3);
    ch.close();
    assert.equal(third.valid, false, 'close gives a view\'s space back too');
  });
});

describe('Channel: across processes', () => {
  it('exactly once, in order, intact: a million checksummed messages from 14 bytes to maxMessageSize', async () => {
    const ch = fresh({ capacity: 1 << 16, maxMessageSize: 4096 });
    const count = Number(process.env.IPCKIT_CHANNEL_COUNT ?? 1_000_000);
    const producer = trackChild(spawnChild(process.execPath, [PEER, 'produce', ch.address, JSON.stringify({ count, maxBody: 4096 - 14 })],
      { stdio: ['ignore', 'pipe', 'inherit'] }));
    let bad = 0;
    let expected = 0;
    for (let i = 0; i < count; i++) {
      const { data } = i % 3 === 0 ? ch.receiveSync({ timeout: 60_000 }) : await ch.receive({ timeout: 60_000 });
      const checked = readRecord(data);
      if (!checked.ok || checked.seq !== expected) bad++;
      expected = checked.seq + 1;
    }
    assert.equal(bad, 0);
    assert.equal(expected, count);
    await exited(producer);
    assert.equal(producer.exitCode, 0);
    assert.equal(ch.tryReceive(), undefined, 'nothing more than was sent');
    const stats = ch.stats();
    assert.deepEqual([stats.sent, stats.received, stats.depth], [count, count, 0]);
  });

  it('the consumer waiting on an empty ring learns that its producer died (async and sync)', async () => {
    const ch = fresh({ capacity: 256 });
    const holder = await peer('hold', ch.address, { hold: 'producer' });
    const pending = ch.receive();
    pending.catch(() => undefined);
    holder.child.kill('SIGKILL');
    await rejectsWith(() => pending, 'ERR_IPC_PEER_DEAD', new RegExp(`producer of .* \\(thread ${holder.child.pid}\\) died`));
    throwsWith(() => ch.receiveSync({ timeout: 5000 }), 'ERR_IPC_PEER_DEAD');
  });

  it('a producer that closes the channel and leaves is no death: the consumer waits on for the next one', async () => {
    const ch = fresh({ capacity: 256 });
    const producer = trackChild(spawnChild(process.execPath, [PEER, 'produce', ch.address, JSON.stringify({ count: 1, maxBody: 8 })],
      { stdio: ['ignore', 'pipe', 'inherit'] }));
    assert.deepEqual(readRecord((await ch.receive({ timeout: 20_000 })).data), { seq: 0, ok: true });
    const waiting = ch.receive({ timeout: 1500 });
    await exited(producer);
    await rejectsWith(() => waiting, 'ERR_IPC_TIMEOUT');
    throwsWith(() => ch.receiveSync({ timeout: 100 }), 'ERR_IPC_TIMEOUT');
  });

  it('a producer killed mid-stream leaves every published message whole and nothing torn; the consumer then learns it died', async () => {
    const ch = fresh({ capacity: 4096, maxMessageSize: 1024 });
    const flood = await peer('flood', ch.address, { maxBody: 1000 });
    assert.equal(flood.first, 'flooding');
    let expected = 0;
    for (let i = 0; i < 500; i++) {
      const checked = readRecord((await ch.receive({ timeout: 20_000 })).data);
      assert.deepEqual(checked, { seq: expected, ok: true });
      expected++;
    }
    flood.child.kill('SIGKILL');
    await exited(flood.child);
    for (;;) {
      let message;
      try {
        message = ch.receiveSync({ timeout: 5000 });
      } catch (err) {
        assert.equal((err as { code?: string }).code, 'ERR_IPC_PEER_DEAD');
        break;
      }
      assert.deepEqual(readRecord(message.data), { seq: expected, ok: true });
      expected++;
    }
    assert.ok(expected >= 500);
  });

  it('the producer waiting on a full ring learns that its consumer died, blocked or not', async () => {
    const ch = fresh({ capacity: 64, maxMessageSize: 24 });
    const holder = await peer('hold', ch.address, { hold: 'consumer' });
    while (ch.trySend(Buffer.alloc(24))) { /* fill */ }
    const pending = ch.send(Buffer.alloc(24));
    pending.catch(() => undefined);
    holder.child.kill('SIGKILL');
    await rejectsWith(() => pending, 'ERR_IPC_PEER_DEAD', /consumer of .* died: nothing will make room/);
    throwsWith(() => ch.sendSync(Buffer.alloc(24), { timeout: 5000 }), 'ERR_IPC_PEER_DEAD');
  });

  it('a sync receive sleeps in the kernel (futex), not in a spin, while it waits', async () => {
    const ch = fresh({ capacity: 256 });
    const consumer = trackChild(spawnChild(process.execPath, [PEER, 'consume', ch.address, JSON.stringify({ count: 1, maxBody: 8 })],
      { stdio: ['ignore', 'pipe', 'inherit'] }));
    await waitUntil('the consumer took its role', () => ch.stats().consumerTid === consumer.pid);
    await blockedIn(consumer.pid!, 'futex', { main: true });
    ch.sendSync(record(0, 8));
    const line = (await createInterface({ input: consumer.stdout! })[Symbol.asyncIterator]().next()).value as string;
    assert.deepEqual(JSON.parse(line), { received: 1, bad: 0 });
  });
});

describe('Channel: many producers and many consumers', () => {
  it('a call that gave up waiting for the turn leaves the turn that another call of the handle holds', async () => {
    const ch = fresh({ capacity: 256, consumers: 'multi' });
    const consumer = openedAgain(ch);
    const first = consumer.receive({ timeout: 10_000 });
    await waitUntil('the first receive waits holding the turn', () => Atomics.load(headerWords(ch), CONSUMER_BELLS) !== 0);
    await rejectsWith(() => consumer.receive({ timeout: 20 }), 'ERR_IPC_TIMEOUT');
    // The consumers' mutex (byte 464) is still this thread's, for the first receive.
    assert.equal(Atomics.load(headerWords(ch), 464 / 4 + LOCK_WORDS.STATE) & LOCK_WORDS.TID_MASK, process.pid);
    ch.sendSync(Buffer.from('only'));
    assert.equal((await first).data.toString(), 'only');
    assert.equal(ch.stats().received, 1);
  });

  it('a handle collected while its loan or view held a shared side\'s turn gives the turn back', async () => {
    const name = tracker.shmName('ch');
    const script = `
      import { Channel } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
      const name = ${JSON.stringify(name)};
      const ch = Channel.create(name, { capacity: 256, producers: 'multi', consumers: 'multi' });
      const collected = new FinalizationRegistry((what) => { gone.add(what); });
      const gone = new Set();
      (() => {
        const viewer = Channel.open(name);
        ch.sendSync(Buffer.from('seen'));
        collected.register(viewer, 'viewer');
        viewer.receiveSync({ view: true });
        const loaner = Channel.open(name);
        collected.register(loaner, 'loaner');
        loaner.loanSync(8);
      })();
      // The handles' own cleanup runs in tasks of its own, in no set order with this registry's: the turns may come back
      // a moment after both are seen gone, so the send is tried again for a while (never giving them back fails it).
      let sent = false;
      for (let i = 0; i < 200 && !sent; i++) {
        globalThis.gc();
        await new Promise((resolve) => setTimeout(resolve, 5));
        sent = gone.size === 2 && ch.trySend(Buffer.from('after'));
      }
      const received = gone.size === 2 ? ch.tryReceive()?.data.toString() : undefined;
      console.log(JSON.stringify({ gone: [...gone].sort(), sent, received }));
      ch.close();
      Channel.unlink(name);
    `;
    const child = trackChild(spawnChild(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    // Both turns came back: a send and a receive take them. The view nobody could read any more gave its space back with it.
    assert.deepEqual(JSON.parse((await lines.next()).value as string), { gone: ['loaner', 'viewer'], sent: true, received: 'after' });
  });

  it('three producer and two consumer processes: every record arrives once, intact, each producer\'s in order', async () => {
    const ch = fresh({ capacity: 4096, maxMessageSize: 512, producers: 'multi', consumers: 'multi' });
    const perProducer = 3000;
    const consumers = [0, 1].map(() => trackChild(spawnChild(process.execPath,
      [PEER, 'consume-until-empty-message', ch.address, '{}'], { stdio: ['ignore', 'pipe', 'inherit'] })));
    const reports = consumers.map((c) => createInterface({ input: c.stdout! })[Symbol.asyncIterator]().next().then((r) => JSON.parse(r.value as string)));
    const producers = [0, 1, 2].map((p) => trackChild(spawnChild(process.execPath,
      [PEER, 'produce-as', ch.address, JSON.stringify({ first: p * 1_000_000, count: perProducer, maxBody: 400 })], { stdio: ['ignore', 'ignore', 'inherit'] })));
    // This process produces too, between them.
    for (let i = 0; i < perProducer; i++) await ch.send(record(3_000_000 + i, 400));
    await Promise.all(producers.map(exited));
    for (const p of producers) assert.equal(p.exitCode, 0);
    ch.sendSync(Buffer.alloc(0));
    ch.sendSync(Buffer.alloc(0));
    const results = (await Promise.all(reports)) as { got: number[]; bad: number }[];
    const all = results.flatMap((r) => r.got);
    assert.deepEqual(results.map((r) => r.bad), [0, 0]);
    assert.equal(all.length, 4 * perProducer);
    assert.equal(new Set(all).size, all.length, 'no record twice');
    for (const { got } of results) {
      for (const producer of [0, 1, 2, 3]) {
        const mine = got.filter((seq) => Math.floor(seq / 1_000_000) === producer);
        assert.deepEqual(mine, [...mine].sort((a, b) => a - b), `producer ${producer}'s records in order`);
      }
    }
    assert.ok(results.every((r) => r.got.length > 0), 'both consumers took part');
  });

  it('a shared side has no role to refuse: several handles of one thread send and receive', () => {
    const ch = fresh({ capacity: 256, producers: 'multi', consumers: 'multi' });
    const other = openedAgain(ch);
    assert.equal(ch.trySend(Buffer.from('a')), true);
    assert.equal(other.trySend(Buffer.from('b')), true);
    assert.deepEqual([other.tryReceive()!.data.toString(), ch.tryReceive()!.data.toString()], ['a', 'b']);
    assert.deepEqual([ch.stats().producerTid, ch.stats().consumerTid], [0, 0]);
    throwsWith(() => Channel.create(tracker.shmName('ch'), { producers: 'many' as never }), 'ERR_IPC_INVALID_ARGUMENT', /producers/);
  });

  it('a view holds the consumers\' turn until it is released; a loan the producers\' until its commit', async () => {
    const ch = fresh({ capacity: 256, producers: 'multi', consumers: 'multi' });
    const other = openedAgain(ch);
    ch.sendSync(Buffer.from('one'));
    ch.sendSync(Buffer.from('two'));
    const view = ch.tryReceive({ view: true })!;
    assert.equal(other.tryReceive(), undefined, 'another consumer waits for the view');
    view.release();
    assert.equal(other.tryReceive()!.data.toString(), 'two');
    const slot = ch.tryLoan(8)!;
    assert.equal(other.trySend(Buffer.from('x')), false, 'another producer waits for the commit');
    const waiting = other.send(Buffer.from('after'));
    Buffer.from(slot.buffer, slot.byteOffset, 8).write('loaned');
    ch.commit(slot, 6);
    await waiting;
    assert.deepEqual([ch.tryReceive()!.data.toString(), ch.tryReceive()!.data.toString()], ['loaned', 'after']);
  });

  it('close() while an async call holds the turn rejects it with ERR_IPC_CLOSED and gives the turn back', async () => {
    const ch = fresh({ capacity: 64, maxMessageSize: 24, producers: 'multi', consumers: 'multi' });
    const other = openedAgain(ch);
    // A send that holds the producers' turn while it waits for room.
    while (other.trySend(Buffer.alloc(24, 1))) { /* fill */ }
    const a = openedAgain(ch);
    const waiting = a.send(Buffer.alloc(24, 2));
    await waitUntil('the send sleeps holding the turn', () => Atomics.load(new Int32Array(PosixSharedMemory.open(ch.address).buffer), PRODUCER_BELLS) !== 0);
    a.close();
    await rejectsWith(() => waiting, 'ERR_IPC_CLOSED');
    assert.equal(other.tryReceive()!.data[0], 1);
    assert.equal(other.trySend(Buffer.alloc(24, 3)), true, 'the producers\' turn is free again');
    // A send whose turn was taken at once, closed in the same tick; and a receive waiting on an empty ring.
    const b = openedAgain(ch);
    const sent = b.send(Buffer.alloc(1));
    b.close();
    await rejectsWith(() => sent, 'ERR_IPC_CLOSED');
    while (other.tryReceive() !== undefined) { /* drain */ }
    const c = openedAgain(ch);
    const receiving = c.receive();
    await waitUntil('the receive sleeps holding the turn', () => Atomics.load(new Int32Array(PosixSharedMemory.open(ch.address).buffer), CONSUMER_BELLS) !== 0);
    c.close();
    await rejectsWith(() => receiving, 'ERR_IPC_CLOSED');
    assert.equal(other.trySend(Buffer.from('x')), true);
    assert.equal(other.tryReceive()!.data.toString(), 'x', 'the consumers\' turn is free again');
  });

  it('a producer killed while it holds the producers\' turn leaves nothing torn; the next one takes over', async () => {
    const ch = fresh({ capacity: 4096, maxMessageSize: 1024, producers: 'multi' });
    const flood = await peer('flood', ch.address, { maxBody: 1000 });
    let expected = 0;
    for (let i = 0; i < 100; i++) {
      assert.deepEqual(readRecord((await ch.receive({ timeout: 20_000 })).data), { seq: expected, ok: true });
      expected++;
    }
    flood.child.kill('SIGKILL');
    await exited(flood.child);
    for (let m = ch.tryReceive(); m !== undefined; m = ch.tryReceive()) {
      assert.deepEqual(readRecord(m.data), { seq: expected, ok: true });
      expected++;
    }
    // It may have died holding the mutex: the next producer takes it over.
    assert.equal(ch.trySend(Buffer.from('next')), true);
    assert.equal(ch.tryReceive()!.data.toString(), 'next');
  });
});

describe('Channel: a hostile process with the segment', () => {
  it('a segment truncated under a waiting async receive fails the call (ERR_IPC_SIZE_MISMATCH), and the process lives on', async () => {
    const ch = fresh({ capacity: 256 });
    ch.sendSync(Buffer.from('first'));
    ch.receiveSync();
    const pending = ch.receive();
    pending.catch(() => undefined);
    await waitUntil('the receive sleeps', () => Atomics.load(new Int32Array(PosixSharedMemory.open(ch.address).buffer), CONSUMER_BELLS) !== 0);
    const truncate = trackChild(spawnChild('truncate', ['-s', '0', `/dev/shm${ch.address}`]));
    await exited(truncate);
    await rejectsWith(() => pending, 'ERR_IPC_SIZE_MISMATCH', /another process truncated the segment/);
    throwsWith(() => ch.trySend(Buffer.from('lost')), 'ERR_IPC_SIZE_MISMATCH');
  });

  it('an async receive whose wake-up another process suppressed still sees the message', async () => {
    const ch = fresh({ capacity: 256 });
    const producer = openedAgain(ch);
    const words = new Int32Array(PosixSharedMemory.open(ch.address).buffer);
    const pending = ch.receive({ timeout: 10_000 });
    await waitUntil('the receive waits for its doorbell', () => Atomics.load(words, CONSUMER_BELLS) !== 0);
    // A process that clears the doorbell word: the producer then rings nobody.
    Atomics.store(words, CONSUMER_BELLS, 0);
    assert.equal(producer.trySend(Buffer.from('unannounced')), true);
    assert.equal((await pending).data.toString(), 'unannounced');
  });

  it('header words changed after open do not change what the handle trusts', () => {
    const ch = fresh({ capacity: 1024, maxMessageSize: 100 });
    const words = new Int32Array(PosixSharedMemory.open(ch.address).buffer);
    const other = openedAgain(ch);
    words[2] = 1 << 28;
    words[3] = 0x7fffffff;
    assert.deepEqual([other.capacity, other.maxMessageSize], [1024, 100]);
    throwsWith(() => other.trySend(Buffer.alloc(101)), 'ERR_IPC_MESSAGE_TOO_LARGE');
    assert.equal(other.trySend(Buffer.alloc(100)), true);
    assert.equal(ch.tryReceive()!.data.length, 100);
  });

  it('a role recorded for a dead thread, or for this tid with another start time, is taken over', async () => {
    const ch = fresh({ capacity: 256 });
    const words = new Int32Array(PosixSharedMemory.open(ch.address).buffer);
    const gone = trackChild(spawnChild('true'));
    await exited(gone);
    // A holder killed between recording its tid and its start time.
    Atomics.store(words, 17, gone.pid!);
    Atomics.store(words, 18, 0);
    assert.equal(ch.trySend(Buffer.from('taken over')), true);
    assert.equal(ch.stats().producerTid, process.pid);
    // A dead thread that had this thread's id (tid reuse): its start time differs.
    Atomics.store(words, 33, process.pid);
    Atomics.store(words, 34, 12345);
    assert.equal(ch.tryReceive()!.data.toString(), 'taken over');
  });

  it('a modes word another process changed is checked: unknown bits, or a shared side with no mutex, are refused', () => {
    const ch = fresh({ capacity: 256 });
    const words = new Int32Array(PosixSharedMemory.open(ch.address).buffer);
    words[4] = 8;
    throwsWith(() => Channel.open(ch.address), 'ERR_IPC_CORRUPTED', /its modes word holds 8/);
    words[4] = 1;
    throwsWith(() => Channel.open(ch.address), 'ERR_IPC_CORRUPTED', /its producers share a side, and the mutex of that side is missing/);
  });

  it('bad handle options leave no segment behind', () => {
    const name = tracker.shmName('ch');
    throwsWith(() => Channel.create(name, { spin: -1 }), 'ERR_IPC_INVALID_ARGUMENT', /spin/);
    throwsWith(() => Channel.create(name, { codec: 'xml' as never }), 'ERR_IPC_INVALID_ARGUMENT', /codec/);
    assert.equal(existsSync(`/dev/shm${name}`), false);
  });
});

describe('Channel: corrupted records', () => {
  it('a record whose header another process overwrote is an error, not an out-of-bounds read or a loop', () => {
    const ch = fresh({ capacity: 256 });
    ch.sendSync(Buffer.from('hello'));
    const fd = openSync(`/dev/shm${ch.address}`, 'r+');
    // The first record's length word, at the start of the ring (byte 1536).
    writeSync(fd, Buffer.from([0xff, 0xff, 0, 0]), 0, 4, 1536);
    closeSync(fd);
    throwsWith(() => ch.tryReceive(), 'ERR_IPC_CORRUPTED', /the record at 0 has kind 1 and length 65535/);
  });

  it('a padding record the producer never writes (at the start, over half the ring, or with no message after it) is an error', () => {
    for (const [offset, length, tail] of [[0, 256, 256], [64, 192, 256], [224, 32, 256]] as const) {
      const ch = fresh({ capacity: 256 });
      const words = headerWords(ch);
      // The producer's and consumer's positions at `offset`, then a forged padding record published there.
      Atomics.store(words, 16, offset);
      Atomics.store(words, 32, offset);
      const ring = new Int32Array(words.buffer, 1536, 64);
      ring[offset / 4] = length;
      ring[offset / 4 + 1] = 2;
      Atomics.store(words, 16, tail);
      throwsWith(() => ch.tryReceive(), 'ERR_IPC_CORRUPTED', new RegExp(`a padding record at ${offset} claims ${length} bytes`));
    }
  });
});

describe('Channel: doorbells', () => {
  it('an async wait lists its doorbell only while it waits: idle handles leave the 32 slots of a side to others', async () => {
    const ch = fresh({ capacity: 256, consumers: 'multi' });
    const handles = Array.from({ length: 40 }, () => openedAgain(ch));
    for (const h of handles) await rejectsWith(() => h.receive({ timeout: 1 }), 'ERR_IPC_TIMEOUT');
    await waitUntil('every idle lane gave its slot back', () => bellSlots(ch).length === 0);
    const waiting = handles[39]!.receive({ timeout: 10_000 });
    await waitUntil('the receive waits for its doorbell', () => Atomics.load(headerWords(ch), CONSUMER_BELLS) !== 0);
    assert.equal(bellSlots(ch).length, 1);
    ch.sendSync(Buffer.from('to the last'));
    assert.equal((await waiting).data.toString(), 'to the last');
  });

  it('shared consumers: a message under a view is not readable, and the others are told when the turn comes back', async () => {
    const ch = fresh({ capacity: 256, consumers: 'multi' });
    const a = openedAgain(ch);
    const b = openedAgain(ch);
    ch.sendSync(Buffer.from('viewed'));
    const view = a.receiveSync({ view: true });
    assert.equal(Buffer.from(view.data).toString(), 'viewed');
    using poller = new Poller();
    poller.add(a);
    assert.deepEqual(poller.tryWait(), [], 'the only message is the view a holds');
    ch.sendSync(Buffer.from('next'));
    assert.equal(poller.tryWait().length, 1, 'a holds the turn: the next message is its to take');
    // b sees a message, but a holds the turn: not readable until a gives it back.
    throwsWith(() => selectSync([b], { timeout: 0 }), 'ERR_IPC_TIMEOUT');
    const waiting = select([b], { timeout: 10_000 });
    await waitUntil('b\'s select armed its doorbell', () => bellSlots(ch).length === 2 && Atomics.load(headerWords(ch), CONSUMER_BELLS) !== 0);
    view.release();
    assert.equal((await waiting)[0]!.object, b);
    assert.equal(b.tryReceive()!.data.toString(), 'next');
  });

  it('Poller.modify that cannot take the new role keeps the old registration; a failed \'both\' gives back the role it took', () => {
    const ch = fresh({ capacity: 256 });
    const producer = openedAgain(ch);
    assert.equal(producer.trySend(Buffer.from('x')), true);
    using poller = new Poller();
    poller.add(ch);
    throwsWith(() => poller.modify(ch, { events: 'writable' }), 'ERR_IPC_BUSY', /Another handle of this thread is the producer/);
    assert.deepEqual([poller.has(ch), poller.size, poller.tryWait().length], [true, 1, 1]);
    const other = openedAgain(ch);
    using second = new Poller();
    throwsWith(() => second.add(other, { events: 'both' }), 'ERR_IPC_BUSY', /is the consumer|is the producer/);
    // Neither role stayed with `other`: the first handle still receives, the producer still sends.
    assert.equal(ch.tryReceive()!.data.toString(), 'x');
    assert.equal(producer.trySend(Buffer.from('y')), true);
  });

  it('a Poller collected without close() gives its doorbells back', async () => {
    const name = tracker.shmName('ch');
    const script = `
      import { Channel, Poller } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
      const ch = Channel.create(${JSON.stringify(name)}, { capacity: 256, consumers: 'multi' });
      const gone = new Set();
      const collected = new FinalizationRegistry((i) => gone.add(i));
      for (let i = 0; i < 32; i++) collected.register(new Poller().add(Channel.open(ch.address)), i);
      for (let i = 0; i < 200 && gone.size < 32; i++) {
        globalThis.gc();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      // A new registration finds a slot: the collected ones gave theirs back.
      const p = new Poller().add(ch);
      console.log(JSON.stringify({ collected: gone.size, added: p.has(ch) }));
      p.close();
      ch.close();
      Channel.unlink(ch.address);
    `;
    const child = trackChild(spawnChild(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    assert.deepEqual(JSON.parse((await lines.next()).value as string), { collected: 32, added: true });
  });

  it('removing a registration whose slot another thread took over leaves that thread\'s slot alone', async () => {
    const ch = fresh({ capacity: 256 });
    const words = headerWords(ch);
    using poller = new Poller();
    poller.add(ch);
    assert.deepEqual(bellSlots(ch), [['consumer', 0]]);
    // Another process wrote the slot over, for a live thread of its own with its own token.
    const other = trackChild(spawnChild('sleep', ['30']));
    Atomics.store(words, 128, other.pid!);
    Atomics.store(words, 130, 0x1234);
    poller.remove(ch);
    assert.deepEqual([Atomics.load(words, 128), Atomics.load(words, 130)], [other.pid, 0x1234]);
    other.kill('SIGKILL');
    await exited(other);
  });

  it('a select or Poller wait whose ring another process suppressed still reports, by looking itself', async () => {
    const ch = fresh({ capacity: 256 });
    const producer = openedAgain(ch);
    const words = headerWords(ch);
    using poller = new Poller();
    poller.add(ch);
    for (const wait of [() => poller.wait({ timeout: 10_000 }), () => select([ch], { timeout: 10_000 })]) {
      const waiting = wait();
      await waitUntil('the wait armed its doorbell', () => Atomics.load(words, CONSUMER_BELLS) !== 0);
      Atomics.store(words, CONSUMER_BELLS, 0);
      assert.equal(producer.trySend(Buffer.from('unannounced')), true);
      assert.equal((await waiting)[0]!.object, ch);
      assert.equal(ch.tryReceive()!.data.toString(), 'unannounced');
    }
  });

  it('a select on a channel whose segment another process truncated fails with ERR_IPC_SIZE_MISMATCH', async () => {
    const ch = fresh({ capacity: 256 });
    const waiting = select([ch], { timeout: 10_000 });
    waiting.catch(() => undefined);
    await waitUntil('the select armed its doorbell', () => Atomics.load(headerWords(ch), CONSUMER_BELLS) !== 0);
    const truncate = trackChild(spawnChild('truncate', ['-s', '0', `/dev/shm${ch.address}`]));
    await exited(truncate);
    await rejectsWith(() => waiting, 'ERR_IPC_SIZE_MISMATCH', /truncated/);
  });

  it('a blocking select or Poller wait whose ring was suppressed looks by itself too', async () => {
    const ch = fresh({ capacity: 256 });
    // Another process: once this one waits, it clears the doorbell word, then sends (a ring that never comes).
    const script = `
      import { Channel, PosixSharedMemory } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
      const shm = PosixSharedMemory.open(${JSON.stringify(ch.address)});
      const words = new Int32Array(shm.buffer, 0, 128);
      const producer = Channel.open(${JSON.stringify(ch.address)});
      for (let round = 0; round < 2; round++) {
        while (Atomics.load(words, ${CONSUMER_BELLS}) === 0) await new Promise((resolve) => setTimeout(resolve, 2));
        Atomics.store(words, ${CONSUMER_BELLS}, 0);
        producer.sendSync(Buffer.from('quiet ' + round));
        // The next round once the message was taken.
        while (producer.stats().depth > 0) await new Promise((resolve) => setTimeout(resolve, 2));
      }
      producer.close();
      shm.close();
    `;
    const child = trackChild(spawnChild(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'inherit'] }));
    assert.equal(selectSync([ch], { timeout: 20_000 })[0]!.object, ch);
    assert.equal(ch.tryReceive()!.data.toString(), 'quiet 0');
    using poller = new Poller();
    poller.add(ch);
    assert.equal(poller.waitSync({ timeout: 20_000 })[0]!.object, ch);
    assert.equal(ch.tryReceive()!.data.toString(), 'quiet 1');
    await exited(child);
  });

  it('a handle closed while a call of it takes a shared side\'s turn keeps the ringing socket until that call has given the turn back', async () => {
    const ch = fresh({ capacity: 256, consumers: 'multi' });
    const script = `
      import { Channel } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
      import { openSockets as sockets } from ${JSON.stringify(new URL('./helpers/objects.js', import.meta.url).href)};
      const before = sockets();
      // This process's only handle: closing it ends the process's ringing socket, once no call of it can ring.
      const only = Channel.open(${JSON.stringify(ch.address)});
      only.receive().catch(() => undefined);
      only.close();
      // The receive is still taking the turn: it gives it back (and rings the side) once it settles, then the socket goes.
      const closed = sockets() - before;
      const deadline = performance.now() + 20000;
      while (sockets() !== before && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      console.log(JSON.stringify({ closed, settled: sockets() - before }));
    `;
    const child = trackChild(spawnChild(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const line = (await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next()).value as string;
    assert.deepEqual(JSON.parse(line), { closed: 1, settled: 0 });
  });

  it('a worker that ends with a channel open gives back its share of the process\'s ringing socket', async () => {
    const ch = fresh({ capacity: 256 });
    const script = `
      import { Worker } from 'node:worker_threads';
      import { openSockets as sockets } from ${JSON.stringify(new URL('./helpers/objects.js', import.meta.url).href)};
      const before = sockets();
      const worker = new Worker(\`
        import { Channel } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
        Channel.open(${JSON.stringify(ch.address)}).trySend(Buffer.from('left open'));
      \`, { eval: true });
      await new Promise((resolve) => worker.on('exit', resolve));
      console.log(JSON.stringify({ left: sockets() - before }));
    `;
    const child = trackChild(spawnChild(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const line = (await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next()).value as string;
    assert.deepEqual(JSON.parse(line), { left: 0 });
    assert.equal(ch.tryReceive()!.data.toString(), 'left open');
  });

  it('a blocking wait\'s own looks do not report an edge-triggered channel again when nothing changed', () => {
    const ch = fresh({ capacity: 256 });
    const producer = openedAgain(ch);
    assert.equal(producer.trySend(Buffer.from('once')), true);
    using poller = new Poller();
    poller.add(ch, { edge: true });
    assert.equal(poller.waitSync({ timeout: 5000 }).length, 1);
    throwsWith(() => poller.waitSync({ timeout: 250 }), 'ERR_IPC_TIMEOUT');
    assert.deepEqual(poller.tryWait(), []);
    assert.equal(producer.trySend(Buffer.from('twice')), true);
    assert.equal(poller.waitSync({ timeout: 5000 }).length, 1, 'a new message is a new edge');
  });

  it('rings still arrive when many doorbells of this process were rung and never read (a fresh ringer takes over)', async () => {
    const channels = Array.from({ length: 400 }, () => fresh({ capacity: 64 }));
    using idle = new Poller();
    for (const ch of channels) idle.add(ch);
    // Every bell armed once, then never read: each ring stays charged to this process's ringer.
    assert.deepEqual(idle.tryWait(), []);
    for (const ch of channels) assert.equal(ch.trySend(Buffer.alloc(1)), true);
    const last = fresh({ capacity: 64 });
    using live = new Poller();
    live.add(last);
    const waiting = live.wait({ timeout: 10_000 });
    await waitUntil('the live Poller armed its doorbell', () => Atomics.load(headerWords(last), CONSUMER_BELLS) !== 0);
    assert.equal(last.trySend(Buffer.from('heard')), true);
    assert.equal((await waiting)[0]!.object, last);
    for (const ch of channels) ch.close();
  });
});
