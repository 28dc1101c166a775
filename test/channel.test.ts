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
import { Channel, Poller, PosixSharedMemory, selectSync } from '../src/index.js';
import { rejectsWith, stillPending, throwsWith, waitUntil } from './helpers/assert.js';
import { ObjectTracker } from './helpers/objects.js';
import { killAllPeers, trackChild } from './helpers/peer.js';
import { blockedIn } from './helpers/proc.js';
import { readRecord, record } from './helpers/records.js';

const PEER = fileURLToPath(new URL('./helpers/channel-peer.js', import.meta.url));
const tracker = new ObjectTracker();
const opened = new Set<Channel<unknown>>();

after(async () => {
  for (const ch of opened) ch.close();
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
    words[1] = 1;
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

  it('select and a Poller refuse a channel (it has no descriptor), saying to wait with its own calls', () => {
    const ch = fresh({ capacity: 128 });
    throwsWith(() => selectSync([ch as never], { timeout: 0 }), 'ERR_IPC_INVALID_ARGUMENT', /shared-memory channels have none: wait on them with their own calls/);
    const poller = new Poller();
    throwsWith(() => poller.add(ch as never), 'ERR_IPC_INVALID_ARGUMENT', /shared-memory channels have none/);
    poller.close();
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
    throwsWith(() => ch.tryLoan(200), 'ERR_IPC_INVALID_ARGUMENT', /size must be/);
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
    await waitUntil('the send sleeps holding the turn', () => new Int32Array(PosixSharedMemory.open(ch.address).buffer)[65] === 1);
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
    await waitUntil('the receive sleeps holding the turn', () => new Int32Array(PosixSharedMemory.open(ch.address).buffer)[49] === 1);
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
    await waitUntil('the receive sleeps', () => new Int32Array(PosixSharedMemory.open(ch.address).buffer)[49] === 1);
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
    await waitUntil('the receive sleeps', () => Atomics.load(words, 49) === 1);
    Atomics.store(words, 49, 0);
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
    // The first record's length word, at the start of the ring (byte 512).
    writeSync(fd, Buffer.from([0xff, 0xff, 0, 0]), 0, 4, 512);
    closeSync(fd);
    throwsWith(() => ch.tryReceive(), 'ERR_IPC_CORRUPTED', /the record at 0 has kind 1 and length 65535/);
  });
});
