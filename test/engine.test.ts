/**
 * The waiting engine shared by every mechanism: descriptor modes left alone,
 * bounded waiter threads, terminable *Sync waits in workers, handles and
 * locks released when dropped, strict options, caller order, disposal,
 * codecs, and the error class across copies of the package.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MessageChannel } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoValue } from '../src/errors.js';
import {
  Fifo, IpcError, Mutex, PipeReadEnd, PosixMessageQueue, PosixSharedMemory, Semaphore, SysvMessageQueue, listenForSignals, pipe, sendSignal,
  socketPair,
} from '../src/index.js';
import { native } from '../src/native.js';
import { type LaneOwner, NotifyLane, loopStarved } from '../src/internal/operation.js';
import { type Pollable, pollTarget } from '../src/internal/readiness.js';
import { ObjectTracker, openFds } from './helpers/objects.js';
import { Peer, asUser, canRunAs, killAllPeers } from './helpers/peer.js';
import { rejectsWith, stillPending, throwsWith } from './helpers/assert.js';
import { asleepIn, threadsAsleepIn } from './helpers/proc.js';

const objects = new ObjectTracker();
after(async () => {
  await killAllPeers();
  objects.cleanup();
});

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Collects garbage until `done()` holds (finalizers run after a collection, on a later turn). */
async function collectUntil(done: () => boolean): Promise<boolean> {
  for (let round = 0; round < 50; round++) {
    gc();
    await sleep(10);
    if (done()) return true;
  }
  return false;
}

/** Waiter threads running a job now. */
function busyWaiters(): number {
  const [threads, idle] = native.waiterThreads();
  return threads - idle;
}

const { O_NONBLOCK } = native.constants;

describe('strings wherever bytes are sent', () => {
  it('a string is sent or written as its UTF-8 bytes: queues, pipes (raw and framed), sockets, segments', async () => {
    const text = 'héllo, wörld ✓';
    const bytes = Buffer.from(text, 'utf8');
    const name = objects.name();
    using posix = PosixMessageQueue.create(name, { maxMessages: 2, maxMessageSize: 64 });
    posix.sendSync(text);
    assert.deepEqual(posix.receiveSync().data, bytes);
    assert.equal(posix.trySend(text), true);
    assert.deepEqual(posix.tryReceive()!.data, bytes);
    posix.unlink();
    const key = objects.key();
    using sysv = SysvMessageQueue.create(key);
    await sysv.send(3, text);
    assert.deepEqual(sysv.receiveSync(), { data: bytes, type: 3 });
    sysv.remove();
    const ends = pipe();
    using r = ends.readEnd;
    using w = ends.writeEnd;
    w.writeSync(text);
    await w.writeMessage(text);
    assert.deepEqual(r.readSync({ maxBytes: bytes.length }), bytes);
    assert.deepEqual(await r.readMessage(), bytes);
    const [a, b] = socketPair();
    using left = a;
    using right = b;
    await left.send(text);
    assert.deepEqual((await right.receive()).data, bytes);
    using shm = PosixSharedMemory.create(objects.shmName(), { size: 64 });
    shm.write(text, 4);
    assert.deepEqual(shm.read(4, bytes.length), bytes);
    shm.unlink();
    throwsWith(() => w.writeSync(7 as never), 'ERR_IPC_INVALID_ARGUMENT', /a Uint8Array, Buffer or string/);
  });
});

describe('descriptor modes', () => {
  it('an async receive that waited leaves the queue descriptor blocking: *Sync calls still wait', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 1, maxMessageSize: 16 });
    using other = PosixMessageQueue.open(name);
    const waiting = q.receive();
    assert.equal(await stillPending(waiting, 20), true);
    other.sendSync(Buffer.from('x'));
    assert.equal((await waiting).data.toString(), 'x');
    assert.equal(native.getFlags(q.fd) & O_NONBLOCK, 0);
    const start = performance.now();
    throwsWith(() => q.receiveSync({ timeout: 150 }), 'ERR_IPC_TIMEOUT');
    assert.ok(performance.now() - start >= 140, 'receiveSync returned before its timeout');
    // The same for a send that waited for room.
    q.sendSync(Buffer.from('full'));
    const sending = q.send(Buffer.from('second'));
    assert.equal(await stillPending(sending, 20), true);
    assert.equal(other.receiveSync().data.toString(), 'full');
    await sending;
    assert.equal(native.getFlags(q.fd) & O_NONBLOCK, 0);
    throwsWith(() => q.sendSync(Buffer.from('third'), { timeout: 100 }), 'ERR_IPC_TIMEOUT');
    q.unlink();
  });

  it('a pipe end that waited on the event loop stays blocking for the child it is handed to', async () => {
    const { readEnd, writeEnd } = pipe();
    const reading = readEnd.read();
    assert.equal(await stillPending(reading, 20), true);
    await writeEnd.write(Buffer.from('first'));
    assert.equal((await reading)?.toString(), 'first');
    assert.equal(readEnd.nonBlocking, false);
    // head reads its stdin with blocking reads: on a non-blocking descriptor it fails with EAGAIN.
    const child = spawn('head', ['-c', '6'], { stdio: [readEnd.fd, 'pipe', 'pipe'] });
    readEnd.close();
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    // Only write once the child sits in its read: an empty pipe is the case that matters.
    await asleepIn(child.pid!, /pipe_read/);
    await writeEnd.write(Buffer.from('second'));
    writeEnd.close();
    assert.equal(await exited, 0, err);
    assert.equal(out, 'second');
  });

  it('mixing send() and sendSync() on one queue delivers everything to another process', async () => {
    const name = objects.name();
    // One slot and no spinning: async sends keep finding the queue full, so the sync ones meet a descriptor an async wait used.
    using q = PosixMessageQueue.create(name, { maxMessages: 1, maxMessageSize: 64, spin: 0 });
    const count = 4000;
    const peer = new Peer('soak-receive', { family: 'posix', address: name, count, mode: 'async' });
    assert.equal((await peer.next()).event, 'ready');
    const { createHash } = await import('node:crypto');
    for (let seq = 0; seq < count; seq++) {
      const payload = Buffer.alloc(32, seq % 251);
      payload.writeUInt32LE(seq, 0);
      const sum = createHash('sha256').update(String(seq)).update(payload).digest('hex').slice(0, 16);
      const body = Buffer.concat([Buffer.from(sum), payload]);
      if (seq % 2 === 0) await q.send(body, { timeout: 20_000 });
      else q.sendSync(body);
    }
    const done = await peer.next(30_000);
    assert.deepEqual(done, { event: 'done', received: count, bad: 0, firstBad: null, leftover: 0 });
    await peer.success();
    q.unlink();
  });
});

describe('spinning of queued calls', () => {
  it('a lane\'s wake-up lends the calls it serves one spin budget in all; a pass made for a try or sync call lends none', async () => {
    const owner: LaneOwner = { address: 'a test lane', check: () => undefined, laneBusy: () => undefined };
    const lane = new NotifyLane(owner, 50);
    const seen: [string, number][] = [];
    // A call that spends 30 µs of what its pass lends, then completes; and one that records what is left and keeps waiting.
    const spender = lane.enqueue('spender', { step: () => {
      seen.push(['spender', lane.retrySpin]);
      lane.retrySpin -= 30;
      return 1;
    } }, Infinity, undefined);
    const waiter = lane.enqueue('waiter', { step: () => {
      seen.push(['waiter', lane.retrySpin]);
      return undefined;
    } }, Infinity, undefined);
    waiter.catch(() => undefined);
    assert.equal(lane.retrySpin, 0, 'nothing to spend outside a pass');
    lane.wake();
    assert.deepEqual(seen, [['spender', 50], ['waiter', 20]]);
    assert.equal(await spender, 1);
    lane.serve();
    assert.deepEqual(seen.slice(2), [['waiter', 0]]);
    assert.equal(lane.retrySpin, 0);
    lane.rejectAll(new IpcError('ERR_IPC_CLOSED', 'closed'));
    await rejectsWith(() => waiter, 'ERR_IPC_CLOSED');
  });
});

describe('readiness registry', () => {
  it('a descriptor closed behind its back while a copy stays open does not make the process spin', async () => {
    const peer = new Peer('stray-readiness', {});
    const done = await peer.next<{ outcome: string; cpuMs: number }>();
    assert.equal(done.outcome, 'f');
    assert.ok(done.cpuMs < 150, `${done.cpuMs} ms of CPU in 300 ms of waiting for nothing`);
    await peer.success();
  });
});

describe('the Pollable contract', () => {
  /** Whether the handle's target says an operation in `direction` may complete now. */
  const ready = (handle: Pollable, direction: 'readable' | 'writable'): boolean => {
    const target = handle[pollTarget](direction);
    const events = target[direction];
    // A hang-up or an error also means the next attempt completes (with the end, or the error).
    const { POLLHUP, POLLERR } = native.constants;
    return events !== 0 && (native.pollFd(target.fd, events, 0) & (events | POLLHUP | POLLERR)) !== 0;
  };

  it('a POSIX queue is readable while a message waits and writable while there is room, per its access', () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 1, maxMessageSize: 8 });
    using reader = PosixMessageQueue.open(name, { access: 'read' });
    using writer = PosixMessageQueue.open(name, { access: 'write' });
    assert.deepEqual([ready(q, 'readable'), ready(q, 'writable')], [false, true]);
    assert.deepEqual([reader[pollTarget]().writable, writer[pollTarget]().readable], [0, 0]);
    writer.sendSync(Buffer.from('m'));
    assert.deepEqual([ready(reader, 'readable'), ready(writer, 'writable')], [true, false]);
    assert.equal(reader.tryReceive()?.data.toString(), 'm');
    assert.equal(native.getFlags(q.fd) & O_NONBLOCK, 0);
    q.unlink();
    q.close();
    throwsWith(() => q[pollTarget](), 'ERR_IPC_CLOSED');
  });

  it('pipe ends are readable with data or at the end, writable with room', () => {
    const { readEnd, writeEnd } = pipe({ capacity: 4096 });
    assert.deepEqual([ready(readEnd, 'readable'), ready(writeEnd, 'writable')], [false, true]);
    assert.equal(writeEnd.tryWrite(Buffer.alloc(10_000)), 4096);
    assert.deepEqual([ready(readEnd, 'readable'), ready(writeEnd, 'writable')], [true, false]);
    assert.equal(readEnd.tryRead()?.length, 4096);
    writeEnd.close();
    assert.equal(ready(readEnd, 'readable'), true);
    assert.equal(readEnd.tryRead(), null);
    readEnd.close();
  });

  it('a signal listener is readable once a handled signal is pending', () => {
    using listener = listenForSignals('SIGRTMIN+7');
    assert.equal(ready(listener, 'readable'), false);
    sendSignal(process.pid, 'SIGRTMIN+7', { value: 3 });
    assert.equal(ready(listener, 'readable'), true);
    assert.equal(listener.tryReceive()?.value, 3);
    assert.equal(ready(listener, 'readable'), false);
  });
});

describe('waiter threads', () => {
  it('2,000 pending receives on one System V queue occupy one thread, and are served in order', async () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key);
    const before = busyWaiters();
    const pending = Array.from({ length: 2000 }, () => q.receive({ timeout: 20_000 }));
    await threadsAsleepIn(/msgrcv/);
    assert.ok(busyWaiters() - before <= 1, `${busyWaiters() - before} threads for one queue`);
    using sender = SysvMessageQueue.open(key);
    for (let i = 0; i < 2000; i++) sender.sendSync(1, Buffer.from(String(i)));
    const got = await Promise.all(pending);
    assert.deepEqual(got.map((m) => m.data.toString()), Array.from({ length: 2000 }, (_, i) => String(i)));
    q.remove();
  });

  it('receives with different type selectors wait independently, each on its own thread', async () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key);
    const two = q.receive({ type: 2, timeout: 5000 });
    const three = q.receive({ type: 3, timeout: 5000 });
    await threadsAsleepIn(/msgrcv/, 2);
    q.sendSync(3, Buffer.from('for three'));
    assert.equal((await three).data.toString(), 'for three');
    assert.equal(await stillPending(two, 20), true);
    q.sendSync(2, Buffer.from('for two'));
    assert.equal((await two).data.toString(), 'for two');
    q.remove();
  });

  it('past the cap of waiter threads a wait fails with ERR_IPC_LIMIT instead of aborting the process', async () => {
    const peer = new Peer('waiter-cap', {});
    const done = await peer.next<{ started: number; code: string; message: string; threads: number }>(30_000);
    assert.equal(done.code, 'ERR_IPC_LIMIT', done.message);
    assert.equal(done.started, native.maxWaiterThreads + 1);
    assert.match(done.message, new RegExp(`${native.maxWaiterThreads} waits without a descriptor`));
    assert.equal(done.threads, native.maxWaiterThreads);
    await peer.success();
  });

  it('a thread the kernel refuses (RLIMIT_NPROC) is an ERR_IPC_LIMIT, not an abort', async (t) => {
    // A uid of its own, so that no other process counts against its limit.
    const uid = 40_000 + (process.pid % 20_000);
    if (!canRunAs(uid) || spawnSync('prlimit', ['--version']).status !== 0) {
      t.skip('needs root, setpriv(1), prlimit(1), and a checkout other users can read');
      return;
    }
    const peer = new Peer('waiter-refused', {}, { prefix: asUser(uid) });
    const ready = await peer.next<{ event: string; id: number }>();
    assert.equal(ready.event, 'ready', peer.stderr);
    try {
      const tasks = readdirSync(`/proc/${peer.pid}/task`).length;
      // Lowered by the same user (root here may lack CAP_SYS_RESOURCE over another user's process).
      const limit = spawnSync(asUser(uid)[0]!, [...asUser(uid).slice(1), 'prlimit', `--pid=${peer.pid}`, `--nproc=${tasks + 3}`]);
      assert.equal(limit.status, 0, limit.stderr.toString());
      const done = await peer.next<{ code: string; errno: number; started: number; message: string }>(30_000);
      assert.equal(done.code, 'ERR_IPC_LIMIT', done.message);
      assert.equal(done.errno, -errnoValue('EAGAIN'));
      assert.match(done.message, /refused a thread.*ulimit -u/);
      assert.ok(done.started >= 1 && done.started < 200, `${done.started} receives started`);
      await peer.success();
    } finally {
      // The child removes its queue; if it could not, do it here.
      try {
        SysvMessageQueue.remove({ id: ready.id });
      } catch { /* Already removed. */ }
    }
  });

  for (const kind of ['sysv', 'posix', 'mutex', 'semaphore', 'pipe', 'fifo', 'signal']) {
    it(`a worker blocked in a *Sync wait (${kind}) ends when terminated`, async () => {
      let address: string | number = '';
      let cleanup = (): void => undefined;
      if (kind === 'sysv') {
        address = objects.key();
        const q = SysvMessageQueue.create(address);
        cleanup = () => q.remove();
      } else if (kind === 'posix') {
        address = objects.name();
        PosixMessageQueue.create(address).close();
        cleanup = () => PosixMessageQueue.unlink(address as string);
      } else if (kind === 'mutex' || kind === 'semaphore') {
        address = objects.shmName();
        const shm = PosixSharedMemory.create(address, { size: 64 });
        const mutex = Mutex.create(shm, 0);
        Semaphore.create(shm, 16);
        if (kind === 'mutex') mutex.lockSync();
        cleanup = () => {
          shm.close();
          PosixSharedMemory.unlink(address as string);
        };
      } else if (kind === 'fifo') {
        address = `/tmp/ipckit-engine-${process.pid}-${Math.random().toString(36).slice(2)}`;
        Fifo.create(address);
        cleanup = () => Fifo.unlink(address as string);
      }
      try {
        const peer = new Peer('worker-terminate', { kind, address, offset: kind === 'semaphore' ? 16 : 0 });
        const done = await peer.next<{ event: string; wchan: string; ms: number }>(20_000);
        assert.equal(done.event, 'done', JSON.stringify(done));
        assert.notEqual(done.wchan, 'do_epoll_wait');
        assert.ok(done.ms < 2000, `terminate() took ${done.ms} ms`);
        await peer.success();
      } finally {
        cleanup();
      }
    });
  }
});

describe('handles and locks that are dropped', () => {
  it('queue, pipe and segment handles never closed release their descriptors when collected', async () => {
    const name = objects.name();
    const shmName = objects.shmName();
    PosixMessageQueue.create(name).close();
    PosixSharedMemory.create(shmName, { size: 64 }).close();
    const baseline = openFds().length;
    (() => {
      for (let i = 0; i < 300; i++) {
        PosixMessageQueue.open(name);
        PosixSharedMemory.open(shmName);
        pipe();
      }
    })();
    assert.ok(openFds().length >= baseline + 900);
    assert.equal(await collectUntil(() => openFds().length <= baseline), true, `${openFds().length - baseline} descriptors left`);
    PosixMessageQueue.unlink(name);
    PosixSharedMemory.unlink(shmName);
  });

  it('a Mutex or Semaphore nobody uses is collected while its segment stays open', async () => {
    const name = objects.shmName();
    using shm = PosixSharedMemory.create(name, { size: 64 });
    Mutex.create(shm, 0);
    Semaphore.create(shm, 16);
    // A FinalizationRegistry, not WeakRefs: creating a WeakRef keeps its target alive until the job ends.
    let collectedLocks = 0;
    const watcher = new FinalizationRegistry(() => { collectedLocks++; });
    (() => {
      for (let i = 0; i < 100; i++) {
        const m = Mutex.open(shm, 0);
        m.lockSync();
        m.unlock();
        watcher.register(m, 0);
        watcher.register(Semaphore.open(shm, 16), 0);
      }
    })();
    // The engine may keep the very last object in a register; all 200 stayed alive when segments held their locks.
    assert.equal(await collectUntil(() => collectedLocks >= 198), true, `${200 - collectedLocks} of 200 locks still alive`);
    shm.unlink();
  });

  it('a pending wait keeps its handle alive until it settles', async () => {
    const key = objects.key();
    let collectedQueue = false;
    const watcher = new FinalizationRegistry(() => { collectedQueue = true; });
    const pending = (() => {
      const q = SysvMessageQueue.create(key);
      watcher.register(q, 0);
      return q.receive({ timeout: 10_000 });
    })();
    assert.equal(await collectUntil(() => collectedQueue), false);
    using sender = SysvMessageQueue.open(key);
    sender.sendSync(1, Buffer.from('kept'));
    assert.equal((await pending).data.toString(), 'kept');
    sender.remove();
  });
});

describe('received messages', () => {
  it('transferring one message to another thread leaves the others received with it intact', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 64 });
    q.sendSync(Buffer.from('first'));
    q.sendSync(Buffer.from('second'));
    const a = q.receiveSync().data;
    const b = q.receiveSync().data;
    assert.equal(a.buffer, b.buffer, 'both messages come from one slab');
    const { port1, port2 } = new MessageChannel();
    const arrived = new Promise<Uint8Array>((resolve) => port2.once('message', resolve));
    // The slab is marked untransferable: Node 20 copies it instead; later Nodes refuse the transfer list
    // (DataCloneError), and the message is then posted as a copy. Either way the slab stays here.
    try {
      port1.postMessage(a, [a.buffer as ArrayBuffer]);
    } catch (err) {
      assert.equal((err as Error).name, 'DataCloneError');
      port1.postMessage(a);
    }
    assert.equal(Buffer.from(await arrived).toString(), 'first');
    port1.close();
    assert.equal(a.toString(), 'first');
    assert.equal(b.toString(), 'second');
    q.unlink();
  });

  it('an async System V receive lands in the receive slab, like a sync one', async () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key);
    const waiting = q.receive();
    await threadsAsleepIn(/msgrcv/);
    q.sendSync(7, Buffer.from('parked'));
    q.sendSync(8, Buffer.from('direct'));
    const parked = await waiting;
    const direct = q.receiveSync();
    assert.deepEqual([parked.type, parked.data.toString(), direct.type, direct.data.toString()], [7, 'parked', 8, 'direct']);
    assert.equal(parked.data.buffer, direct.data.buffer);
    q.remove();
  });
});

describe('caller order', () => {
  it('a System V receive never overtakes one that is already waiting', async () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key);
    const first = q.receive({ timeout: 5000 });
    await threadsAsleepIn(/msgrcv/);
    q.sendSync(1, Buffer.from('a'));
    const second = q.receive({ timeout: 5000 });
    q.sendSync(1, Buffer.from('b'));
    assert.deepEqual([(await first).data.toString(), (await second).data.toString()], ['a', 'b']);
    assert.equal(q.tryReceive(), undefined);
    q.remove();
  });

  it('a lock() made while earlier ones wait does not take the mutex first', async () => {
    using shm = PosixSharedMemory.create(objects.shmName(), { size: 64 });
    const m = Mutex.create(shm, 0);
    m.lockSync();
    const order: string[] = [];
    const first = m.lock().then(() => order.push('first'));
    m.unlock();
    assert.equal(m.tryLock(), false, 'tryLock went before a waiting lock()');
    const second = m.lock().then(() => order.push('second'));
    await first;
    m.unlock();
    await second;
    m.unlock();
    assert.deepEqual(order, ['first', 'second']);
    shm.unlink();
  });

  it('a Semaphore wait() made while earlier ones wait does not take the count first', async () => {
    using shm = PosixSharedMemory.create(objects.shmName(), { size: 64 });
    const s = Semaphore.create(shm, 0);
    const order: string[] = [];
    const first = s.wait().then(() => order.push('first'));
    s.post();
    const second = s.wait().then(() => order.push('second'));
    await first;
    s.post();
    await second;
    assert.deepEqual(order, ['first', 'second']);
    shm.unlink();
  });
});

describe('the event loop under calls that complete at once', () => {
  /**
   * Awaits `step()` until a 1 ms timer fires, for at most 3 s. A call that
   * completes at once resolves as a microtask, so without a yield now and
   * then the timer could never fire while the loop runs.
   */
  async function timerFiresDuring(step: () => Promise<unknown>): Promise<{ fired: boolean; iterations: number }> {
    let fired = false;
    const timer = setTimeout(() => { fired = true; }, 1);
    const start = performance.now();
    let iterations = 0;
    try {
      while (!fired && performance.now() - start < 3000) {
        await step();
        iterations++;
      }
    } finally {
      clearTimeout(timer);
    }
    return { fired, iterations };
  }

  /** Keeps awaiting `step()` (a call that completes at once) without the event loop turning, until calls of this thread are deferred. */
  async function starve(step: () => Promise<unknown>): Promise<void> {
    const start = performance.now();
    while (performance.now() - start < 3000) {
      await step();
      // Once it says so, it stays so until the event loop turns, which the awaits here never let it do.
      if (loopStarved()) return;
    }
    assert.fail('calls were never deferred in 3 s of calls that complete at once');
  }

  const message = Buffer.from('m');

  it('a loop awaiting queue, pipe, lock and signal calls that never wait still lets timers run', async () => {
    const name = objects.name();
    using mq = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 16 });
    const key = objects.key();
    using sysv = SysvMessageQueue.create(key);
    const { readEnd, writeEnd } = pipe();
    using r = readEnd;
    using w = writeEnd;
    using shm = PosixSharedMemory.create(objects.shmName(), { size: 64 });
    const mutex = Mutex.create(shm, 0);
    const semaphore = Semaphore.create(shm, 16, { value: 1 });
    using listener = listenForSignals('SIGRTMIN+6');
    const loops: [string, () => Promise<unknown>][] = [
      ['POSIX queue', async () => { await mq.send(message); await mq.receive(); }],
      ['System V queue', async () => { await sysv.send(1, message); await sysv.receive(); }],
      ['pipe', async () => { await w.write(message); await r.read(); }],
      ['mutex', async () => { await mutex.lock(); mutex.unlock(); }],
      ['semaphore', async () => { await semaphore.wait(); semaphore.post(); }],
      ['signal listener', async () => { sendSignal(process.pid, 'SIGRTMIN+6'); await listener.receive(); }],
      ['receive with timeout 0', async () => { await mq.send(message, { timeout: 0 }); await mq.receive({ timeout: 0 }); }],
    ];
    for (const [what, step] of loops) {
      const { fired, iterations } = await timerFiresDuring(step);
      assert.equal(fired, true, `${what}: a 1 ms timer never fired during 3 s of calls (${iterations} iterations)`);
    }
    sysv.remove();
    mq.unlink();
    shm.unlink();
  });

  it('results taken while the loop is starved keep caller order, and *Sync and try calls take the next ones', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 8, maxMessageSize: 16 });
    await starve(async () => { await q.send(message); await q.receive(); });
    for (const text of ['a', 'b', 'c', 'd']) q.sendSync(Buffer.from(text));
    const first = q.receive();
    const second = q.receive();
    assert.equal(q.tryReceive()?.data.toString(), 'c');
    assert.equal(q.receiveSync({ timeout: 0 }).data.toString(), 'd');
    assert.deepEqual([(await first).data.toString(), (await second).data.toString()], ['a', 'b']);
    q.unlink();
  });

  it('System V receives and Mutex locks made while the loop is starved take their result at once', async () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key);
    await starve(async () => { await q.send(1, message); await q.receive(); });
    for (const text of ['a', 'b', 'c']) q.sendSync(1, Buffer.from(text));
    const first = q.receive();
    const second = q.receive();
    assert.equal(q.tryReceive()?.data.toString(), 'c');
    assert.deepEqual([(await first).data.toString(), (await second).data.toString()], ['a', 'b']);
    // A receive of any type made first takes the one message, though a receive of its type follows at once.
    q.sendSync(1, Buffer.from('x'));
    await starve(async () => { await q.send(2, message); await q.receive({ type: 2 }); });
    const any = q.receive({ timeout: 2000 });
    const typed = q.receive({ type: 1, timeout: 200 });
    assert.equal((await any).data.toString(), 'x');
    await rejectsWith(() => typed, 'ERR_IPC_TIMEOUT');
    q.remove();

    using shm = PosixSharedMemory.create(objects.shmName(), { size: 64 });
    const m = Mutex.create(shm, 0);
    await starve(async () => { await m.lock(); m.unlock(); });
    const locked = m.lock();
    // This thread holds the mutex already: a second take is a deadlock.
    throwsWith(() => m.lockSync({ timeout: 0 }), 'ERR_IPC_DEADLOCK');
    await locked;
    assert.equal(m.held, true);
    m.unlock();
    shm.unlink();
  });

  it('an async wait never times out before its timeout, fractional or not, whatever it spun first', async () => {
    using shm = PosixSharedMemory.create(objects.shmName(), { size: 64 });
    for (const [timeout, spin] of [[1.5, 50], [2.999, 50], [12, 50], [5.9, 3000]] as const) {
      const sem = Semaphore.create(shm, 0, { spin });
      for (let i = 0; i < 10; i++) {
        // Start at a random point of the event loop's millisecond.
        const until = performance.now() + Math.random();
        while (performance.now() < until) { /* busy */ }
        const started = performance.now();
        await rejectsWith(() => sem.wait({ timeout }), 'ERR_IPC_TIMEOUT');
        const elapsed = performance.now() - started;
        assert.ok(elapsed >= timeout, `wait({ timeout: ${timeout} }) with spin ${spin} µs gave up after ${elapsed.toFixed(3)} ms`);
      }
    }
    shm.unlink();
  });

  it('a call made while the loop is starved is not failed by its timeout when what it asked for was there', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 16 });
    using shm = PosixSharedMemory.create(objects.shmName(), { size: 64 });
    const m = Mutex.create(shm, 0);
    await starve(async () => { await q.send(message); await q.receive(); });
    q.sendSync(Buffer.from('x'));
    const received = q.receive({ timeout: 5 });
    const locked = m.lock({ timeout: 5 });
    // Longer than both timeouts before the loop can turn.
    const until = performance.now() + 20;
    while (performance.now() < until) { /* busy */ }
    assert.equal((await received).data.toString(), 'x');
    await locked;
    assert.equal(m.held, true);
    m.unlock();
    q.unlink();
    shm.unlink();
  });

  it('a send made while the loop is starved is in the queue when the call returns: a *Sync receive of the thread gets it', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 16 });
    const { readEnd, writeEnd } = pipe();
    using r = readEnd;
    using w = writeEnd;
    await starve(async () => { await q.send(message); await q.receive(); });
    const sent = q.send(Buffer.from('x'));
    const written = w.write(Buffer.from('y'));
    assert.equal(q.receiveSync({ timeout: 300 }).data.toString(), 'x');
    assert.equal(r.readSync({ timeout: 300 })?.toString(), 'y');
    await Promise.all([sent, written]);
    // A timeout-0 call that finds nothing fails at once; it is not left waiting in front of a *Sync call.
    await starve(async () => { await q.send(message); await q.receive(); });
    await rejectsWith(() => q.receive({ timeout: 0 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => q.receiveSync({ timeout: 20 }), 'ERR_IPC_TIMEOUT');
    q.unlink();
  });

  it('calls queued behind a call made while the loop is starved are served, whatever becomes of it', async () => {
    const name = objects.name();
    using mq = PosixMessageQueue.create(name, { maxMessages: 8, maxMessageSize: 16 });
    const key = objects.key();
    using sysv = SysvMessageQueue.create(key);
    const queues = [
      { what: 'POSIX', send: (t: string) => mq.sendSync(Buffer.from(t)), receive: (o?: { timeout?: number; signal?: AbortSignal }) => mq.receive(o) },
      { what: 'System V', send: (t: string) => sysv.sendSync(1, Buffer.from(t)), receive: (o?: { timeout?: number; signal?: AbortSignal }) => sysv.receive(o) },
    ];
    for (const q of queues) {
      const loop = async (): Promise<void> => { q.send('-'); await q.receive(); };
      await starve(loop);
      q.send('a');
      q.send('b');
      const tried = q.receive({ timeout: 0 });
      const behind = q.receive({ timeout: 2000 });
      assert.deepEqual([(await tried).data.toString(), (await behind).data.toString()], ['a', 'b'], q.what);
      await starve(loop);
      const empty = q.receive({ timeout: 0 });
      const next = q.receive({ timeout: 2000 });
      await rejectsWith(() => empty, 'ERR_IPC_TIMEOUT');
      q.send('c');
      assert.equal((await next).data.toString(), 'c', q.what);
      await starve(loop);
      const ac = new AbortController();
      const aborted = q.receive({ signal: ac.signal });
      const after = q.receive({ timeout: 2000 });
      ac.abort();
      await rejectsWith(() => aborted, 'ERR_IPC_ABORTED');
      q.send('d');
      assert.equal((await after).data.toString(), 'd', q.what);
    }
    sysv.remove();
    mq.unlink();
  });

  it('a signal receive made while the loop is starved takes one of the signals it drains, and leaves the others to the calls behind it', async () => {
    using listener = listenForSignals('SIGRTMIN+5');
    await starve(async () => { sendSignal(process.pid, 'SIGRTMIN+5'); await listener.receive(); });
    sendSignal(process.pid, 'SIGRTMIN+5', { value: 1 });
    sendSignal(process.pid, 'SIGRTMIN+5', { value: 2 });
    const first = listener.receive({ timeout: 0 });
    const second = listener.receive({ timeout: 2000 });
    assert.deepEqual([(await first).value, (await second).value], [1, 2]);
  });

  it('several loops of one thread on calls that never wait share it fairly', async () => {
    const queues = [0, 1, 2].map(() => PosixMessageQueue.create(objects.name(), { maxMessages: 4, maxMessageSize: 16 }));
    try {
      const counts = [0, 0, 0];
      const until = performance.now() + 300;
      await Promise.all(queues.map(async (q, i) => {
        while (performance.now() < until) {
          q.sendSync(message);
          await q.receive();
          counts[i]!++;
        }
      }));
      assert.ok(Math.min(...counts) * 4 >= Math.max(...counts), `iterations per loop: ${counts.join(', ')}`);
    } finally {
      for (const q of queues) {
        q.close();
        PosixMessageQueue.unlink(q.name);
      }
    }
  });

  it('a receive that took its message before close() still resolves with it; a timeout-0 call that finds nothing fails', async () => {
    const name = objects.name();
    const q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 16 });
    try {
      await starve(async () => { await q.send(message); await q.receive(); });
      await rejectsWith(() => q.receive({ timeout: 0 }), 'ERR_IPC_TIMEOUT');
      await starve(async () => { await q.send(message); await q.receive(); });
      q.sendSync(Buffer.from('x'));
      assert.equal((await q.receive({ timeout: 0 })).data.toString(), 'x');
      await starve(async () => { await q.send(message); await q.receive(); });
      q.sendSync(Buffer.from('y'));
      const taken = q.receive();
      q.close();
      assert.equal((await taken).data.toString(), 'y');
    } finally {
      q.close();
      PosixMessageQueue.unlink(name);
    }
  });
});

describe('sync calls and waiting async calls of the same thread', () => {
  it('a *Sync call first serves the async calls that wait, then refuses to block behind the rest', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 16 });
    const first = q.receive({ timeout: 5000 });
    const second = q.receive({ timeout: 5000 });
    using other = PosixMessageQueue.open(name);
    other.sendSync(Buffer.from('one'));
    // The event loop has not run: the sync call hands 'one' to the first waiting call itself.
    throwsWith(() => q.receiveSync({ timeout: 0 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => q.receiveSync({ timeout: 1000 }), 'ERR_IPC_DEADLOCK', /async calls of this thread are waiting first/);
    assert.equal(q.tryReceive(), undefined);
    other.sendSync(Buffer.from('two'));
    other.sendSync(Buffer.from('three'));
    assert.deepEqual([(await first).data.toString(), (await second).data.toString()], ['one', 'two']);
    assert.equal(q.receiveSync({ timeout: 1000 }).data.toString(), 'three');
    q.unlink();
  });

  it('lockSync() while a lock() of this thread waits is a deadlock, not an overtaking', async () => {
    using shm = PosixSharedMemory.create(objects.shmName(), { size: 64 });
    const m = Mutex.create(shm, 0);
    m.lockSync();
    const waiting = m.lock();
    m.unlock();
    throwsWith(() => m.lockSync(), 'ERR_IPC_DEADLOCK');
    await waiting;
    assert.equal(m.held, true);
    m.unlock();
    shm.unlink();
  });
});

describe('a handle re-entered from its own callbacks', () => {
  it('a decode() that aborts or closes the call it serves does not drop the message it decodes', async () => {
    const name = objects.name();
    let hook = (): void => undefined;
    const codec = { encode: (v: string) => Buffer.from(v), decode: (b: Buffer) => { hook(); return b.toString(); } };
    using q = PosixMessageQueue.create<string>(name, { maxMessages: 4, maxMessageSize: 32, codec });
    using raw = PosixMessageQueue.open(name);
    const ac = new AbortController();
    const aborted = q.receive({ signal: ac.signal });
    hook = () => ac.abort();
    raw.sendSync(Buffer.from('kept'));
    assert.equal((await aborted).data, 'kept');
    const closing = q.receive();
    hook = () => q.close();
    raw.sendSync(Buffer.from('also kept'));
    assert.equal((await closing).data, 'also kept');
    assert.equal(raw.attributes().messages, 0);
    raw.unlink();
  });

  it('the same holds for a System V receive that completes on a waiter thread', async () => {
    const key = objects.key();
    let hook = (): void => undefined;
    const codec = { encode: (v: string) => Buffer.from(v), decode: (b: Buffer) => { hook(); return b.toString(); } };
    using q = SysvMessageQueue.create<string>(key, { codec });
    using raw = SysvMessageQueue.open(key);
    const ac = new AbortController();
    const aborted = q.receive({ signal: ac.signal });
    await threadsAsleepIn(/msgrcv/);
    hook = () => ac.abort();
    raw.sendSync(1, Buffer.from('kept'));
    assert.equal((await aborted).data, 'kept');
    assert.equal(raw.stat().messages, 0);
    raw.remove();
  });
});

describe('the addon and worker threads', () => {
  it('a worker that used ipckit can exit although the main thread never loaded it', async () => {
    const index = new URL('../src/index.js', import.meta.url).href;
    for (const body of ['const { readEnd, writeEnd } = m.pipe(); readEnd.close(); writeEnd.close();',
      'const q = m.SysvMessageQueue.create(0x7c000000 + (process.pid & 0xffff)); await q.receive({ timeout: 20 }).catch(() => {}); q.remove();']) {
      const script = `import { Worker } from 'node:worker_threads';
        const w = new Worker(\`import(${JSON.stringify(index)}).then(async (m) => { ${body.replace(/`/g, '\\`')} });\`, { eval: true });
        w.once('exit', () => console.log('worker exited'));`;
      const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
      assert.deepEqual([result.status, result.signal, result.stdout.trim()], [0, null, 'worker exited'], result.stderr);
    }
  });
});

describe('direct native calls', () => {
  // The hot single-message functions are V8 callbacks, not Node-API ones: each checks its arguments' types itself.
  type Loose = Record<string, (...args: unknown[]) => unknown>;
  const loose = native as unknown as Loose;
  const words = new Int32Array(new SharedArrayBuffer(64));
  const bytes = new Uint8Array(64);
  const calls: [string, unknown[], number, string][] = [
    ['mqSend', [-1, 'text', 0, 0, 0], 1, 'a Uint8Array'],
    ['mqReceive', [-1, bytes, 0, '0', 0], 3, 'a number'],
    ['msgSnd', [1.5, 1, bytes, 0, 0], 0, 'a 32-bit integer'],
    ['msgRcv', [-1, bytes, 0, 0, 0, undefined], 5, 'a number'],
    ['msgRcvInto', [-1, bytes, 'target', 0, 0, 0], 2, 'a Uint8Array'],
    ['readFd', [-1, [1, 2], 0, 1, 0], 1, 'a Uint8Array'],
    ['writeFd', [-1, bytes, {}, 1, 0], 2, 'a number'],
    ['futexWait', [new Uint32Array(4), 0, 0, 0, 0], 0, 'an Int32Array'],
    ['futexWake', [words, '0', 1], 1, 'a 32-bit integer'],
    ['semWait', [words, 0, 0], 0, 'a Uint8Array'],
    ['semWake', [bytes, 2 ** 31], 1, 'a 32-bit integer'],
    ['bellRing', [words], 1, 'a 32-bit integer'],
    ['bellDrain', [null], 0, 'a 32-bit integer'],
    ['sendMsg', [-1, bytes, 0, 1, [3], null, 0], 4, 'an Int32Array or null'],
    ['sendMsg', [-1, bytes, 0, 1, null, 'peer', 0], 5, 'a Uint8Array'],
    ['recvMsg', [-1, bytes, 0, 1, new Int32Array(253), null, new Int32Array(3), 0, 'x'], 8, 'a number'],
    ['recvMsg', [-1, bytes, 0, 1, null, null, new Int32Array(3), 0, 0], 4, 'an Int32Array'],
    ['signalDrain', [new Uint32Array(6)], 0, 'a Float64Array'],
    ['signalSpin', ['5'], 0, 'a number'],
    ['sigqueue', [process.pid, 34.5, 1], 1, 'a 32-bit integer'],
    ['sigqueue', [process.pid, 40, 1n], 2, 'a number'],
    ['kill', [`${process.pid}`, 0], 0, 'a 32-bit integer'],
  ];
  for (const [name, args, at, what] of calls) {
    it(`${name}: an argument of the wrong type is a TypeError naming it; it is not a constructor`, () => {
      assert.throws(() => loose[name]!(...args), { name: 'TypeError', message: `ipckit native call: argument ${at} must be ${what}` });
      assert.throws(() => Reflect.construct(loose[name]!, args), TypeError);
    });
  }

  it('offsets and lengths outside the buffer are -ERANGE, whatever number they are', () => {
    const [a, b] = [Buffer.alloc(16), Buffer.alloc(0)];
    const { readEnd, writeEnd } = pipe();
    try {
      for (const [offset, length] of [[17, 0], [-1, 1], [0, 17], [8, 9], [Number.NaN, 17], [2 ** 64, 1], [0, -1], [Infinity, 0]]) {
        assert.equal(native.readFd(readEnd.fd, a, offset!, length!, 0), -errnoValue('ERANGE'), `${offset}, ${length}`);
        assert.equal(native.writeFd(writeEnd.fd, a, offset!, length!, 0), -errnoValue('ERANGE'), `${offset}, ${length}`);
      }
      // An empty buffer (a detached one is empty too) writes nothing and reads nothing.
      assert.equal(native.writeFd(writeEnd.fd, b, 0, 0, 0), 0);
      assert.equal(native.writeFd(writeEnd.fd, a, 8, 8, 0), 8);
      assert.equal(native.readFd(readEnd.fd, a, 0, 16, 0), 8);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
    using q = SysvMessageQueue.create(objects.key());
    try {
      // NaN is offset 0: an empty queue's answer.
      for (const offset of [-8, 9, 2 ** 53, Number.NaN]) {
        assert.equal(native.msgRcv(q.id, Buffer.alloc(16), offset, 0, 0, 0), Number.isNaN(offset) ? -errnoValue('EAGAIN') : -errnoValue('ERANGE'), `${offset}`);
      }
      // msgRcvInto: a scratch buffer without room for msgrcv's long is -ERANGE; a payload longer than the
      // target is taken but not copied, -(4096 + its length), below every -errno; its bytes stay in the scratch.
      assert.equal(native.msgRcvInto(q.id, Buffer.alloc(7), Buffer.alloc(16), 0, 0, 0), -errnoValue('ERANGE'));
      q.sendSync(3, 'twelve bytes');
      const [scratch, small] = [Buffer.alloc(8 + 16), Buffer.alloc(4, 0x2e)];
      assert.equal(native.msgRcvInto(q.id, scratch, small, 0, 0, 0), -(4096 + 12));
      assert.equal(small.toString(), '....');
      assert.equal(scratch.subarray(8, 20).toString(), 'twelve bytes');
      q.sendSync(3, 'four');
      assert.equal(native.msgRcvInto(q.id, scratch, small, 0, 0, 0), 4);
      assert.equal(small.toString(), 'four');
    } finally {
      q.remove();
    }
    const name = objects.name();
    using m = PosixMessageQueue.create(name, { maxMessages: 1, maxMessageSize: 8 });
    try {
      assert.equal(native.mqReceive(m.fd, Buffer.alloc(16), 17, 0, 0), -errnoValue('ERANGE'));
      assert.equal(native.mqReceive(m.fd, Buffer.alloc(16), -1, 0, 0), -errnoValue('ERANGE'));
    } finally {
      m.unlink();
    }
  });

  it('a socket message goes with its frame head, the head from its offset; ranges outside either buffer are -ERANGE', () => {
    const S = native.socketConstants;
    const pair = native.socketPair(S.SOCK_SEQPACKET);
    assert.ok(Array.isArray(pair));
    const [a, b] = pair;
    try {
      const head = Buffer.from([9, 8, 7, 6]);
      const data = Buffer.from('xhello');
      assert.equal(native.sendMsg(a, data, 1, 5, null, null, 0, head, 2), 7);
      const into = Buffer.alloc(16);
      const fdsOut = new Int32Array(253);
      const meta = new Int32Array(3);
      assert.equal(native.recvMsg(b, into, 1, 15, fdsOut, null, meta, 0, 0), 7);
      assert.deepEqual([...into.subarray(0, 9)], [0, 7, 6, ...Buffer.from('hello'), 0]);
      assert.deepEqual([meta[0]! & S.MSG_TRUNC, meta[1]], [0, 0]);
      for (const [offset, length, headOffset] of [[0, 7, 0], [-1, 1, 0], [7, 0, 0], [0, 1, 5], [0, 1, -1], [Number.NaN, 7, 0]]) {
        assert.equal(native.sendMsg(a, data, offset!, length!, null, null, 0, head, headOffset!), -errnoValue('ERANGE'), `${offset}, ${length}, ${headOffset}`);
      }
      assert.equal(native.recvMsg(b, into, 8, 9, fdsOut, null, meta, 0, 0), -errnoValue('ERANGE'));
      assert.equal(native.recvMsg(b, into, 0, 1, new Int32Array(252), null, meta, 0, 0), -errnoValue('ERANGE'));
      assert.equal(native.recvMsg(b, into, 0, 1, fdsOut, null, new Int32Array(2), 0, 0), -errnoValue('ERANGE'));
      // Nothing was sent by the refused calls.
      assert.equal(native.recvMsg(b, into, 0, 16, fdsOut, null, meta, 0, 0), -errnoValue('EAGAIN'));
    } finally {
      native.close(a);
      native.close(b);
    }
  });

  it('an index or a view that does not hold the words or the sem_t it names is -ERANGE; -0 is index 0', () => {
    const ERANGE = -errnoValue('ERANGE');
    const words = new Int32Array(new SharedArrayBuffer(16));
    for (const at of [4, -1, 2 ** 31 - 1, 1 << 28]) {
      assert.equal(native.futexWait(words, at, 0, 0, 0), ERANGE, `${at}`);
      assert.equal(native.futexWake(words, at, 1), ERANGE, `${at}`);
      assert.equal(native.futexWaitAsync(words, at, 0, 0, 0, () => assert.fail('no job')), ERANGE, `${at}`);
    }
    // A bell's token is two words.
    assert.equal(native.bellRing(words, 3), ERANGE);
    assert.equal(native.bellOpen(words, 3), ERANGE);
    assert.equal(native.bellRing(words, -(1 << 29)), ERANGE);
    assert.equal(native.futexWake(words, -0, 1), 0);
    assert.equal(native.futexWait(words, -0, 1, 0, 0), 0);
    // Detached, and shrunk under a view: no words left.
    const detached = new Int32Array(4);
    structuredClone(detached.buffer, { transfer: [detached.buffer] });
    assert.equal(native.futexWait(detached, 0, 0, 0, 0), ERANGE);
    const Resizable = ArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void };
    const resizable = new Resizable(16, { maxByteLength: 64 });
    const fixed = new Int32Array(resizable, 0, 4);
    resizable.resize(0);
    assert.equal(native.futexWake(fixed, 0, 1), ERANGE);
    // A named semaphore's sem_t is 32 bytes.
    const small = new Uint8Array(new SharedArrayBuffer(31));
    assert.equal(native.semWait(small, 0, 0), ERANGE);
    assert.equal(native.semWake(small, 1), ERANGE);
    assert.equal(native.semInit(small, 1), ERANGE);
    assert.equal(native.semWaitAsync(small, -1, () => assert.fail('no job')), ERANGE);
  });

  it('a worker thread makes them too: a queue and a pipe used from a worker', async () => {
    const index = new URL('../src/index.js', import.meta.url).href;
    const key = objects.key();
    const body = `const q = m.SysvMessageQueue.create(${key}, { mode: 0o600 });
      try { q.sendSync(7, 'hi'); const got = q.receiveSync(); console.log(got.type, String(got.data)); } finally { q.remove(); }
      const { readEnd, writeEnd } = m.pipe(); writeEnd.writeSync('abc'); console.log(String(readEnd.readSync({ maxBytes: 8 }))); readEnd.close(); writeEnd.close();`;
    const script = `import { Worker } from 'node:worker_threads';
      new Worker(\`import(${JSON.stringify(index)}).then((m) => { ${body.replace(/`/g, '\\`')} });\`, { eval: true });`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.deepEqual([result.status, result.signal, result.stdout.trim()], [0, null, '7 hi\nabc'], result.stderr);
  });
});

describe('the addon and Node lines', () => {
  // scripts/check-package.mjs fetches the other supported Node lines into build/node-binaries (CI runs the suite again on each).
  const root = new URL('../..', import.meta.url).pathname;
  const others = [20, 22, 24].map((major) => ({ major, node: `${root}build/node-binaries/${process.arch}-${major}/package/bin/node` }))
    .filter(({ node }) => existsSync(node));
  const addon = `${root}build/Release/ipckit.node`;
  it('a build for one Node line refuses to load in another, saying which (the loader then takes the prebuilt addon)',
    { skip: others.length === 0 && 'no other Node binary in build/node-binaries (scripts/check-package.mjs fetches them)' }, () => {
      const built = spawnSync(process.execPath, ['-p', `require(${JSON.stringify(addon)}) && process.versions.node.split('.')[0]`], { encoding: 'utf8' });
      const builtFor = Number(/built for Node\.js (\d+)/.exec(built.stderr)?.[1] ?? built.stdout.trim());
      for (const { major, node } of others) {
        const r = spawnSync(node, ['-e', `require(${JSON.stringify(addon)})`], { encoding: 'utf8', timeout: 20_000 });
        if (major === builtFor) {
          assert.equal(r.status, 0, r.stderr);
        } else {
          assert.notEqual(r.status, 0);
          assert.match(r.stderr, new RegExp(`built for Node\\.js ${builtFor} \\(ABI \\d+\\), not for this Node\\.js ${major}: rebuild it`));
        }
      }
    });
});

describe('out of descriptors', () => {
  const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;
  it('a failed first handle of a thread keeps nothing: no descriptor, no queue left to meet as EEXIST', { skip: !hasPrlimit && 'needs prlimit' }, () => {
    // The first descriptor-backed handle of a thread also makes the thread's epoll set: with one
    // descriptor free, the handle's own open succeeds and the epoll set's fails.
    const name = objects.name('emfile');
    const script = `import(${JSON.stringify(new URL('../src/index.js', import.meta.url).href)}).then((m) => {
      const { openSync, closeSync, readdirSync } = require('node:fs');
      const fill = () => { const held = []; for (;;) { try { held.push(openSync('/dev/null', 'r')); } catch { return held; } } };
      const attempt = (free, call) => {
        const before = readdirSync('/proc/self/fd').length;
        const held = fill();
        for (const fd of held.splice(0, free)) closeSync(fd);
        let code = 'no error';
        try { call(); } catch (err) { code = err.code + (/ulimit -n/.test(err.message) ? ' (names ulimit -n)' : ''); }
        for (const fd of held) closeSync(fd);
        return [code, readdirSync('/proc/self/fd').length - before];
      };
      const out = {
        queue: attempt(1, () => m.PosixMessageQueue.create('${name}')),
        pipe: attempt(2, () => m.pipe()),
        segment: attempt(0, () => m.PosixSharedMemory.create('${name}', { size: 64 })),
      };
      // Nothing was left at the name: a retry creates it.
      m.PosixMessageQueue.create('${name}').close();
      m.PosixMessageQueue.unlink('${name}');
      console.log(JSON.stringify(out));
    })`;
    const result = spawnSync('prlimit', ['--nofile=64:64', '--', process.execPath, '-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), {
      queue: ['ERR_IPC_LIMIT (names ulimit -n)', 0],
      pipe: ['ERR_IPC_LIMIT (names ulimit -n)', 0],
      segment: ['ERR_IPC_LIMIT (names ulimit -n)', 0],
    });
  });
});

describe('descriptors a handle owns', () => {
  it('a descriptor is wrapped once: a second fromFd is refused, so neither can close it under the other', () => {
    const { readEnd, writeEnd } = pipe();
    throwsWith(() => PipeReadEnd.fromFd(readEnd.fd), 'ERR_IPC_INVALID_ARGUMENT', /already belongs to an ipckit handle/);
    writeEnd.writeSync(Buffer.from('still mine'));
    assert.equal(readEnd.readSync()?.toString(), 'still mine');
    readEnd.close();
    writeEnd.close();
  });

  it('a worker\'s descriptors (unclosed handles, its readiness registry) are closed when it ends', async () => {
    const peer = new Peer('worker-fds', { workers: 10 });
    assert.deepEqual(await peer.next(20_000), { event: 'done', gained: 0 });
    await peer.success();
  });

  it('a proxy around a Uint8Array is refused as data, not handed to the kernel', () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 2, maxMessageSize: 16 });
    throwsWith(() => q.sendSync(new Proxy(Buffer.from('x'), {})), 'ERR_IPC_INVALID_ARGUMENT', /a Uint8Array, Buffer or string/);
    assert.equal(q.attributes().messages, 0);
    q.unlink();
  });
});

describe('options, disposal, codecs and errors', () => {
  it('a misspelled option is refused, naming the closest valid one', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name);
    await rejectsWith(() => q.receive({ timeOut: 50 } as never), 'ERR_IPC_INVALID_ARGUMENT', /no key "timeOut"; did you mean "timeout"\?/);
    throwsWith(() => q.receiveSync({ Timeout: 50 } as never), 'ERR_IPC_INVALID_ARGUMENT', /did you mean "timeout"/);
    throwsWith(() => PosixMessageQueue.open(name, { acess: 'read' } as never), 'ERR_IPC_INVALID_ARGUMENT', /did you mean "access"/);
    throwsWith(() => pipe({ nonblocking: true } as never), 'ERR_IPC_INVALID_ARGUMENT', /did you mean "nonBlocking"/);
    throwsWith(() => PosixSharedMemory.open('/x', { readOnly: 'yes' } as never), 'ERR_IPC_INVALID_ARGUMENT', /readOnly must be true or false/);
    throwsWith(() => q.trySend(Buffer.from('x'), { prio: 1 } as never), 'ERR_IPC_INVALID_ARGUMENT', /valid keys: priority/);
    throwsWith(() => q.receiveSync({ zzzzzzzz: 1 } as never), 'ERR_IPC_INVALID_ARGUMENT', /no key "zzzzzzzz" \(valid keys: timeout\)/);
    q.unlink();
  });

  it('await using closes the handle and waits until no waiter thread works for it', async () => {
    const key = objects.key();
    const before = busyWaiters();
    let pending: Promise<unknown>;
    {
      await using q = SysvMessageQueue.create(key);
      pending = q.receive();
      await threadsAsleepIn(/msgrcv/);
      assert.equal(busyWaiters(), before + 1);
    }
    await rejectsWith(() => pending, 'ERR_IPC_CLOSED');
    assert.equal(busyWaiters(), before);
    SysvMessageQueue.remove(key);
  });

  it('msgpack carries typed values through both queue families', async () => {
    const value = { id: 7, when: new Date(1_700_000_000_000), bytes: new Uint8Array([1, 2, 3]), tags: ['a', 'b'], nested: { ok: true, none: null } };
    const name = objects.name();
    using posix = PosixMessageQueue.create<typeof value>(name, { codec: 'msgpack' });
    await posix.send(value);
    assert.deepEqual((await posix.receive()).data, value);
    const key = objects.key();
    using sysv = SysvMessageQueue.create<typeof value>(key, { codec: 'msgpack' });
    sysv.sendSync(3, value);
    const got = await sysv.receive({ type: 3 });
    assert.deepEqual(got.data, value);
    // 0xc1 is the one byte MessagePack never uses.
    using raw = PosixMessageQueue.open(name);
    raw.sendSync(Buffer.from([0xc1]));
    await rejectsWith(() => posix.receive(), 'ERR_IPC_CODEC', /could not be decoded/);
    // What MessagePack would carry but not deliver as sent is refused at the sender; nothing is queued.
    using anything = PosixMessageQueue.open<unknown>(name, { codec: 'msgpack' });
    const refused: [unknown, RegExp][] = [
      [JSON.parse('{"__proto__": 1}'), /own "__proto__" key/],
      [{ deep: [{ x: `${'x'.repeat(60)}\uD800` }] }, /lone UTF-16 surrogate/],
      [new Map([['\uDC00', 1]]), /lone UTF-16 surrogate/],
      [{ ['k\uD800']: 1 }, /lone UTF-16 surrogate/],
      [new Date(Number.NaN), /Invalid Date has no MessagePack timestamp/],
    ];
    for (const [value, reason] of refused) throwsWith(() => anything.sendSync(value), 'ERR_IPC_CODEC', reason);
    assert.equal(posix.attributes().messages, 0);
    // A timestamp beyond what a Date can hold (about 2^56 seconds) is refused when decoded, not turned into an Invalid Date.
    raw.sendSync(Buffer.from([0x91, 0xc7, 0x0c, 0xff, 0, 0, 0, 0, 1, 0, 0, 4, 0, 0, 0, 0]));
    await rejectsWith(() => anything.receive(), 'ERR_IPC_CODEC', /outside the range of a JavaScript Date/);
    posix.unlink();
    sysv.remove();
  });

  it('an IpcError from another copy of the package is an IpcError', async () => {
    const specifier = `../src/errors.js?copy=${Date.now()}`;
    const copy = (await import(specifier)) as typeof import('../src/errors.js');
    assert.notEqual(copy.IpcError, IpcError);
    const foreign = new copy.IpcError('ERR_IPC_TIMEOUT', 'from the other copy');
    assert.ok(foreign instanceof IpcError);
    assert.ok(new IpcError('ERR_IPC_CLOSED', 'from this copy') instanceof copy.IpcError);
    assert.ok(!(new Error('plain') instanceof IpcError));
    assert.ok(!({ code: 'ERR_IPC_TIMEOUT' } instanceof IpcError));
  });
});
