/**
 * Message queues, both families, between real processes.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { fstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Fifo, IpcError, MQ_PRIO_MAX, PosixMessageQueue, PosixSharedMemory, SYSV_TYPE_MAX, SysvMessageQueue } from '../src/index.js';
import { native } from '../src/native.js';
import { parseAddress } from '../src/internal/address.js';
import { ObjectTracker, mqueueFds } from './helpers/objects.js';
import { Peer, killAllPeers, asUser, canRunAs } from './helpers/peer.js';
import { blockedIn, onDescriptor, onSysvQueue, waitingOnLoop, watchedByThisLoop } from './helpers/proc.js';
import { rejectsWith, stillPending, threadPoolIsFree, throwsWith, waitUntil } from './helpers/assert.js';

const objects = new ObjectTracker();
after(async () => {
  await killAllPeers();
  objects.cleanup();
});

const text = (m: { data: Buffer } | undefined): string | undefined => m?.data.toString();

/** Waits until process `pid` waits to receive from the POSIX queue `name`, blocked in the call (sync) or on its event loop (async). */
function receivingFrom(pid: number, name: string, how: 'sync' | 'async'): Promise<unknown> {
  return how === 'sync' ? blockedIn(pid, 'mq_timedreceive', { where: onDescriptor(pid, name) }) : waitingOnLoop(pid, name);
}

/** Waits until `count` threads of process `pid` are blocked in `call` on the System V queue `id`. */
function blockedOnQueue(pid: number, call: 'msgrcv' | 'msgsnd', id: number, count = 1): Promise<unknown> {
  return blockedIn(pid, call, { count, where: onSysvQueue(id) });
}

describe('POSIX message queue', () => {
  it('creates with exact attributes, mode and O_CLOEXEC, and opens without changing them', () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 3, maxMessageSize: 100, mode: 0o640 });
    assert.equal(q.created, true);
    assert.deepEqual(q.attributes(), { maxMessages: 3, maxMessageSize: 100, messages: 0 });
    assert.equal(fstatSync(q.fd).mode & 0o777, 0o640);
    assert.equal(native.getFdFlags(q.fd) & native.constants.FD_CLOEXEC, native.constants.FD_CLOEXEC);
    using again = PosixMessageQueue.openOrCreate(name, { maxMessages: 8, maxMessageSize: 10 });
    assert.equal(again.created, false);
    assert.equal(again.maxMessages, 3);
    assert.equal(again.maxMessageSize, 100);
    throwsWith(() => PosixMessageQueue.create(name), 'EEXIST', /already exists: use PosixMessageQueue.open\(\)/);
    q.unlink();
    throwsWith(() => PosixMessageQueue.open(name), 'ENOENT', /create it first/);
    throwsWith(() => PosixMessageQueue.unlink(name), 'ENOENT');
  });

  it('a priority of -0 is priority 0, in every send form', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 8 });
    q.sendSync('s', { priority: -0 });
    assert.equal(q.trySend('t', { priority: -0 }), true);
    await q.send('a', { priority: -0 });
    assert.deepEqual([q.receiveSync(), q.receiveSync(), q.receiveSync()].map((m) => [String(m.data), m.priority]), [['s', 0], ['t', 0], ['a', 0]]);
    q.unlink();
  });

  it('delivers by priority, FIFO within a priority, between two processes', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 8, maxMessageSize: 64 });
    const sent: [string, number][] = [['a1', 1], ['b0', 0], ['c9', 9], ['d1', 1], ['e5', 5], ['f9', 9]];
    for (const [data, priority] of sent) q.sendSync(Buffer.from(data), { priority });
    const peer = new Peer('receive', { family: 'posix', address: name, count: 6, mode: 'sync' });
    assert.equal((await peer.next()).event, 'ready');
    const got = [];
    for (let i = 0; i < 6; i++) got.push(await peer.next());
    assert.deepEqual(got, [
      { data: 'c9', priority: 9 }, { data: 'f9', priority: 9 }, { data: 'e5', priority: 5 },
      { data: 'a1', priority: 1 }, { data: 'd1', priority: 1 }, { data: 'b0', priority: 0 },
    ]);
    await peer.success();
    q.unlink();
  });

  it('receives what another process sends, async and sync, and iterates', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 64 });
    const peer = new Peer('send', { family: 'posix', address: name, mode: 'async', messages: [
      { data: 'one', priority: 2 }, { data: 'two', priority: 2 }, { data: 'three', priority: 2 }, { data: 'four', priority: 2 },
      { data: 'five', priority: 2 }, { data: 'six', priority: 2 },
    ] });
    assert.deepEqual(await q.receive({ timeout: 10_000 }), { data: Buffer.from('one'), priority: 2 });
    assert.equal(text(q.receiveSync({ timeout: 10_000 })), 'two');
    const seen: string[] = [];
    for await (const m of q) {
      seen.push(`${m.data}:${m.priority}`);
      if (seen.length === 4) break;
    }
    assert.deepEqual(seen, ['three:2', 'four:2', 'five:2', 'six:2']);
    await peer.success();
    q.unlink();
  });

  it('receives the highest priority and the longest message exactly, in every receive form', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 8, maxMessageSize: 8192 });
    const top = MQ_PRIO_MAX - 1;
    const long = Buffer.alloc(8192, 0xa5);
    const into = Buffer.alloc(8192);
    q.sendSync(long, { priority: top });
    assert.deepEqual(q.receiveSync(), { data: long, priority: top });
    q.sendSync(Buffer.from('x'), { priority: top });
    q.sendSync(long, { priority: 1 });
    assert.deepEqual(q.receiveIntoSync(into), { length: 1, priority: top });
    assert.deepEqual(await q.receiveInto(into), { length: 8192, priority: 1 });
    assert.deepEqual(into, long);
    q.sendSync(Buffer.alloc(0), { priority: top });
    assert.deepEqual(await q.receive(), { data: Buffer.alloc(0), priority: top });
    q.sendSync(long, { priority: 0 });
    assert.deepEqual(q.tryReceive(), { data: long, priority: 0 });
    q.unlink();
  });

  it('full queue: trySend is false, a timed send fails, a blocked send is released when a reader drains', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 2, maxMessageSize: 32 });
    assert.equal(q.trySend(Buffer.from('m1')), true);
    assert.equal(q.trySend(Buffer.from('m2')), true);
    assert.equal(q.trySend(Buffer.from('m3')), false);
    await rejectsWith(() => q.send(Buffer.from('m3'), { timeout: 50 }), 'ERR_IPC_TIMEOUT', /timed out after 50 ms/);
    await rejectsWith(() => q.send(Buffer.from('m3'), { timeout: 0 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => q.sendSync(Buffer.from('m3'), { timeout: 30 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => q.sendSync(Buffer.from('m3'), { timeout: 0 }), 'ERR_IPC_TIMEOUT');
    const blocked = q.send(Buffer.from('m3'), { priority: 0 });
    assert.equal(await stillPending(blocked), true);
    assert.equal(q.attributes().messages, 2);
    const reader = new Peer('receive', { family: 'posix', address: name, count: 3, mode: 'async' });
    await reader.next();
    await blocked;
    assert.deepEqual([await reader.next(), await reader.next(), await reader.next()],
      [{ data: 'm1', priority: 0 }, { data: 'm2', priority: 0 }, { data: 'm3', priority: 0 }]);
    await reader.success();
    q.unlink();
  });

  it('empty queue: tryReceive is undefined, a timed receive fails, a blocked receive is released by a writer', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 2, maxMessageSize: 32 });
    assert.equal(q.tryReceive(), undefined);
    await rejectsWith(() => q.receive({ timeout: 50 }), 'ERR_IPC_TIMEOUT');
    await rejectsWith(() => q.receive({ timeout: 0 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => q.receiveSync({ timeout: 30 }), 'ERR_IPC_TIMEOUT');
    const blocked = q.receive();
    assert.equal(await stillPending(blocked), true);
    const writer = new Peer('send', { family: 'posix', address: name, mode: 'sync', messages: [{ data: 'hello', priority: 7 }] });
    assert.deepEqual(await blocked, { data: Buffer.from('hello'), priority: 7 });
    await writer.success();
    q.unlink();
  });

  it('a descriptor handed over with O_NONBLOCK set: *Sync waits sleep in poll(2) without spinning, and its flags stay', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 1, maxMessageSize: 32 });
    const C = native.constants;
    const fd = native.mqOpen(name, C.O_RDWR | C.O_NONBLOCK | C.O_CLOEXEC, 0, 0, 0);
    assert.ok(fd >= 0, `mq_open: ${fd}`);
    using nb = PosixMessageQueue.fromFd(fd);
    const cpuMs = (): number => {
      const used = process.cpuUsage();
      return (used.user + used.system) / 1000;
    };
    const timed = (call: () => unknown): { elapsed: number; cpu: number } => {
      const [start, cpu] = [performance.now(), cpuMs()];
      throwsWith(call, 'ERR_IPC_TIMEOUT');
      return { elapsed: performance.now() - start, cpu: cpuMs() - cpu };
    };
    // The queue is empty, then full: each wait lasts its timeout, asleep (a spin would burn all 300 ms).
    const receiving = timed(() => nb.receiveSync({ timeout: 300 }));
    q.sendSync('fill');
    const sending = timed(() => nb.sendSync('more', { timeout: 300 }));
    for (const [what, { elapsed, cpu }] of [['receiveSync', receiving], ['sendSync', sending]] as const) {
      assert.ok(elapsed >= 299, `${what} returned after ${elapsed} ms, before its timeout`);
      assert.ok(cpu < 150, `${what} used ${cpu.toFixed(1)} ms of CPU in a ${elapsed.toFixed(0)} ms wait`);
    }
    assert.equal(text(nb.receiveSync()), 'fill');
    assert.equal(native.getFlags(fd) & C.O_NONBLOCK, C.O_NONBLOCK, 'the description keeps O_NONBLOCK');
    // Async calls through it, and a peer whose *Sync receive sleeps in poll until a message comes.
    await rejectsWith(() => nb.receive({ timeout: 30 }), 'ERR_IPC_TIMEOUT');
    q.sendSync('async');
    assert.equal(text(await nb.receive()), 'async');
    const peer = new Peer('receive', { family: 'posix', address: name, nonBlockingFd: true, mode: 'sync', count: 1 });
    await peer.next();
    await blockedIn(peer.pid, 'poll', { main: true, what: 'the peer\'s receiveSync sleeps in poll on its non-blocking descriptor' });
    q.sendSync('woken');
    assert.deepEqual(await peer.next(), { data: 'woken', priority: 0 });
    await peer.success();
    q.unlink();
  });

  it('keeps the event loop free while receives wait, and serves concurrent receivers in order', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 32 });
    const waits = [q.receive(), q.receive(), q.receive()];
    let ticks = 0;
    const interval = setInterval(() => ticks++, 5);
    // The receives wait on the event loop, which meanwhile runs timers (waitUntil's own included).
    await watchedByThisLoop(name);
    await waitUntil('five timer ticks ran while the receives waited', () => ticks >= 5);
    clearInterval(interval);
    for (const wait of waits) assert.equal(await stillPending(wait, 0), true);
    const writer = new Peer('send', { family: 'posix', address: name, mode: 'sync', messages: [
      { data: 'x' }, { data: 'y' }, { data: 'z' },
    ] });
    assert.deepEqual((await Promise.all(waits)).map(text), ['x', 'y', 'z']);
    await writer.success();
    q.unlink();
  });

  it('aborts waiting calls with AbortSignal', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 1, maxMessageSize: 16 });
    const ac = new AbortController();
    const receiving = q.receive({ signal: ac.signal });
    setTimeout(() => ac.abort(new Error('stop')), 20);
    const err = await rejectsWith(() => receiving, 'ERR_IPC_ABORTED', /receive on .* was aborted/);
    assert.equal((err.cause as Error).message, 'stop');
    await rejectsWith(() => q.receive({ signal: AbortSignal.abort() }), 'ERR_IPC_ABORTED');
    q.sendSync(Buffer.from('full'));
    const ac2 = new AbortController();
    const sending = q.send(Buffer.from('x'), { signal: ac2.signal });
    ac2.abort();
    await rejectsWith(() => sending, 'ERR_IPC_ABORTED');
    // The aborted send did not go through, and the queue still works.
    assert.equal(text(q.tryReceive()), 'full');
    assert.equal(q.tryReceive(), undefined);
    q.unlink();
  });

  it('rejects hostile names with ERR_IPC_INVALID_ADDRESS', () => {
    for (const bad of ['jobs', '', '/', '/a/b', '/a\0b', `/${'x'.repeat(256)}`, '/..', '/.', 42, null]) {
      throwsWith(() => PosixMessageQueue.create(bad as string), 'ERR_IPC_INVALID_ADDRESS');
      throwsWith(() => PosixMessageQueue.open(bad as string), 'ERR_IPC_INVALID_ADDRESS');
    }
    throwsWith(() => PosixMessageQueue.create('jobs'), 'ERR_IPC_INVALID_ADDRESS', /must start with "\/"/);
    throwsWith(() => PosixMessageQueue.create('/a/b'), 'ERR_IPC_INVALID_ADDRESS', /only the leading character/);
    throwsWith(() => PosixMessageQueue.create(`/${'x'.repeat(256)}`), 'ERR_IPC_INVALID_ADDRESS', /at most 255 bytes/);
    // A lone surrogate has no UTF-8 form: both names would reach the kernel as "/a\uFFFD".
    for (const lone of ['/a\uD800', '/a\uDC00', '/\uDC00\uD800']) {
      throwsWith(() => PosixMessageQueue.create(lone), 'ERR_IPC_INVALID_ADDRESS', /lone UTF-16 surrogate/);
      throwsWith(() => PosixSharedMemory.create(lone, { size: 1 }), 'ERR_IPC_INVALID_ADDRESS', /lone UTF-16 surrogate/);
      throwsWith(() => Fifo.create(`/tmp${lone}`), 'ERR_IPC_INVALID_ADDRESS', /lone UTF-16 surrogates/);
      throwsWith(() => SysvMessageQueue.open({ path: `/tmp${lone}`, projectId: 1 }), 'ERR_IPC_INVALID_ADDRESS', /lone UTF-16 surrogate/);
    }
    // A surrogate pair is a character like any other.
    const emoji = objects.name('pair\uD83D\uDE00');
    PosixMessageQueue.create(emoji, { maxMessages: 1, maxMessageSize: 8 }).close();
    PosixMessageQueue.unlink(emoji);
    // 255 bytes after the slash is the longest valid name.
    const longest = `/${'y'.repeat(255)}`;
    objects.posix.add(longest);
    using q = PosixMessageQueue.create(longest, { maxMessages: 1, maxMessageSize: 8 });
    q.unlink();
  });

  it('rejects bad options and oversize messages before any system call', () => {
    const name = objects.name();
    throwsWith(() => PosixMessageQueue.create(name, { maxMessages: 0 }), 'ERR_IPC_INVALID_ARGUMENT', /maxMessages must be an integer/);
    throwsWith(() => PosixMessageQueue.create(name, { maxMessageSize: -1 }), 'ERR_IPC_INVALID_ARGUMENT');
    throwsWith(() => PosixMessageQueue.create(name, { mode: 0o1777 }), 'ERR_IPC_INVALID_ARGUMENT', /mode/);
    throwsWith(() => PosixMessageQueue.create(name, { access: 'sideways' as 'read' }), 'ERR_IPC_INVALID_ARGUMENT', /access/);
    using q = PosixMessageQueue.create(name, { maxMessages: 2, maxMessageSize: 16 });
    throwsWith(() => q.trySend(Buffer.alloc(17)), 'ERR_IPC_MESSAGE_TOO_LARGE', /17-byte message does not fit .* limit is 16 bytes/);
    throwsWith(() => q.sendSync(Buffer.alloc(17)), 'ERR_IPC_MESSAGE_TOO_LARGE');
    throwsWith(() => q.trySend(Buffer.from('x'), { priority: MQ_PRIO_MAX }), 'ERR_IPC_INVALID_ARGUMENT', /priority/);
    throwsWith(() => q.trySend(42 as unknown as Buffer), 'ERR_IPC_INVALID_ARGUMENT', /a Uint8Array, Buffer or string/);
    throwsWith(() => q.receiveSync({ timeout: -1 }), 'ERR_IPC_INVALID_ARGUMENT', /timeout/);
    assert.equal(q.trySend(Buffer.alloc(16)), true);
    assert.equal(q.trySend(new Uint8Array(0)), true);
    assert.equal(q.tryReceive()!.data.length, 16);
    assert.equal(q.tryReceive()!.data.length, 0);
    q.unlink();
  });

  it('fails with ERR_IPC_CLOSED after close, which is idempotent and rejects pending calls', async () => {
    const name = objects.name();
    const q = PosixMessageQueue.create(name, { maxMessages: 1, maxMessageSize: 8 });
    const pending = q.receive();
    q.close();
    q.close();
    await rejectsWith(() => pending, 'ERR_IPC_CLOSED');
    assert.equal(q.closed, true);
    throwsWith(() => q.fd, 'ERR_IPC_CLOSED');
    throwsWith(() => q.trySend(Buffer.from('x')), 'ERR_IPC_CLOSED');
    throwsWith(() => q.receiveSync(), 'ERR_IPC_CLOSED');
    throwsWith(() => q.attributes(), 'ERR_IPC_CLOSED');
    await rejectsWith(() => q.receive(), 'ERR_IPC_CLOSED');
    await rejectsWith(() => q.send(Buffer.from('x')), 'ERR_IPC_CLOSED');
    const seen = [];
    for await (const m of q) seen.push(m);
    assert.deepEqual(seen, []);
    q.unlink();
  });

  it('reports a kernel limit as ERR_IPC_LIMIT naming the setting', async (t) => {
    const name = objects.name();
    const limits = PosixMessageQueue.limits();
    assert.equal(typeof limits.msgMax, 'number');
    // Without CAP_SYS_RESOURCE, msg_max caps maxMessages. With it, the hard ceiling does.
    const err = throwsWith(() => PosixMessageQueue.create(name, { maxMessages: 70_000, maxMessageSize: 8 }), 'ERR_IPC_LIMIT');
    assert.equal(err.errno, -22);
    assert.equal(err.syscall, 'mq_open');
    assert.match(err.message, /msg_max|65536/);
    // RLIMIT_MSGQUEUE, lowered for one child process with prlimit(1).
    const prlimit = spawnSync('prlimit', ['--version']);
    if (prlimit.status !== 0) {
      t.diagnostic('prlimit(1) not found: RLIMIT_MSGQUEUE case skipped');
      return;
    }
    const peer = new Peer('create-posix', { name, maxMessages: 4, maxMessageSize: 1024 }, { prefix: ['prlimit', '--msgqueue=1000', '--'] });
    const result = await peer.next<{ created: boolean; code: string; errno: number; message: string }>();
    await peer.success();
    assert.equal(result.created, false);
    assert.equal(result.code, 'ERR_IPC_LIMIT');
    assert.equal(result.errno, -24);
    assert.match(result.message, /RLIMIT_MSGQUEUE \(ulimit -q, now 1000 bytes/);
  });

  it('refuses at open, with EACCES, a user the queue\'s mode does not allow', async (t) => {
    if (!canRunAs(65534)) {
      t.skip('needs root, setpriv(1), and a checkout user nobody can read');
      return;
    }
    const key = objects.key();
    using q = SysvMessageQueue.create(key, { mode: 0o600 });
    const peer = new Peer('sysv-open', { key }, { prefix: asUser(65534) });
    assert.deepEqual(await peer.next(), { event: 'refused', code: 'EACCES' });
    await peer.success();
    q.remove();
  });

  it('names msg_max when an unprivileged process asks for more than 10 messages', async (t) => {
    const name = objects.name();
    const msgMax = PosixMessageQueue.limits().msgMax!;
    // Run as an unprivileged user when we are root; as ourselves otherwise.
    const asNobody = process.getuid!() === 0;
    if (asNobody && !canRunAs(65534)) {
      t.diagnostic('setpriv(1) is missing, or user nobody cannot read the compiled tests: unprivileged case skipped');
      return;
    }
    const unprivileged = new Peer('create-posix', { name, maxMessages: msgMax + 1, maxMessageSize: 64 }, { prefix: asNobody ? asUser(65534) : [] });
    const result = await unprivileged.next<{ created: boolean; code: string; message: string }>();
    await unprivileged.success();
    if (result.created) {
      t.diagnostic('this process holds CAP_SYS_RESOURCE even unprivileged: nothing to check');
      return;
    }
    assert.equal(result.code, 'ERR_IPC_LIMIT');
    assert.match(result.message, new RegExp(`maxMessages ${msgMax + 1} exceeds /proc/sys/fs/mqueue/msg_max \\(now ${msgMax}\\).*sysctl fs.mqueue.msg_max`));
  });

  it('loses no queued message when a receiver is killed with SIGKILL', async () => {
    for (const hang of ['sync', 'async'] as const) {
      const name = objects.name();
      const idle = objects.name();
      using q = PosixMessageQueue.create(name, { maxMessages: 10, maxMessageSize: 32 });
      using empty = PosixMessageQueue.create(idle, { maxMessages: 1, maxMessageSize: 8 });
      for (let i = 0; i < 10; i++) q.sendSync(Buffer.from(`msg ${i}`));
      // Killed mid-stream, while blocked elsewhere: nothing still queued is lost.
      const receiver = new Peer('receive', { family: 'posix', address: name, count: 4, mode: 'sync', then: hang, hangOn: idle });
      await receiver.next();
      for (let i = 0; i < 4; i++) assert.deepEqual(await receiver.next(), { data: `msg ${i}`, priority: 0 });
      assert.deepEqual(await receiver.next(), { event: 'hanging' });
      await receivingFrom(receiver.pid, idle, hang);
      assert.deepEqual(await receiver.kill('SIGKILL'), { code: null, signal: 'SIGKILL' });
      assert.equal(q.attributes().messages, 6);
      // Killed while waiting on this very queue: later messages are not swallowed by the dead waiter.
      const waiter = new Peer('receive', { family: 'posix', address: idle, count: 0, mode: 'sync', then: hang });
      await waiter.next();
      await waiter.next();
      await receivingFrom(waiter.pid, idle, hang);
      await waiter.kill('SIGKILL');
      empty.sendSync(Buffer.from('after'));
      assert.equal(text(empty.tryReceive()), 'after');
      const rest = [];
      for (let m = q.tryReceive(); m !== undefined; m = q.tryReceive()) rest.push(text(m));
      assert.deepEqual(rest, ['msg 4', 'msg 5', 'msg 6', 'msg 7', 'msg 8', 'msg 9']);
      q.unlink();
      empty.unlink();
    }
  });

  it('does not keep the process alive after close() with a receive pending', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 1, maxMessageSize: 8 });
    const peer = new Peer('close-pending', { family: 'posix', address: name });
    assert.deepEqual(await peer.next(), { event: 'rejected', code: 'ERR_IPC_CLOSED' });
    assert.deepEqual(await peer.exited, { code: 0, signal: null });
    q.unlink();
  });

  it('layers typed messages with the json codec and a custom codec', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create<{ job: string; n: number }>(name, { maxMessages: 2, maxMessageSize: 64, codec: 'json' });
    await q.send({ job: 'resize', n: 3 }, { priority: 4 });
    assert.deepEqual(await q.receive(), { data: { job: 'resize', n: 3 }, priority: 4 });
    using raw = PosixMessageQueue.open(name);
    raw.sendSync(Buffer.from('{not json'));
    const err = await rejectsWith(() => q.receive(), 'ERR_IPC_CODEC', /could not be decoded/);
    assert.ok(err.cause instanceof SyntaxError);
    throwsWith(() => q.trySend({ job: 'x'.repeat(100), n: 1 }), 'ERR_IPC_MESSAGE_TOO_LARGE');
    using upper = PosixMessageQueue.open<string>(name, {
      codec: { encode: (s: string) => Buffer.from(s.toUpperCase()), decode: (b) => b.toString().toLowerCase() },
    });
    upper.sendSync('Hello');
    assert.deepEqual(raw.tryReceive(), { data: Buffer.from('HELLO'), priority: 0 });
    throwsWith(() => PosixMessageQueue.open(name, { codec: 'yaml' as 'json' }), 'ERR_IPC_INVALID_ARGUMENT', /codec/);
    // Values JSON has no form for are refused at send time, not sent as an empty message nobody can decode.
    using anything = PosixMessageQueue.open<unknown>(name, { codec: 'json' });
    for (const value of [undefined, () => 1, Symbol('s')]) {
      throwsWith(() => anything.sendSync(value), 'ERR_IPC_CODEC', /has no JSON form/);
    }
    assert.equal(q.attributes().messages, 0);
    anything.sendSync(null);
    assert.deepEqual(anything.receiveSync(), { data: null, priority: 0 });
    q.unlink();
  });

  it('is a plain kernel object: a Python ctypes program talks to it both ways', async (t) => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 64 });
    q.sendSync(Buffer.from('from ipckit'), { priority: 3 });
    const script = `
import ctypes, ctypes.util, os, sys
rt = ctypes.CDLL(ctypes.util.find_library('rt') or 'librt.so.1', use_errno=True)
rt.mq_open.restype = ctypes.c_int
rt.mq_receive.restype = ctypes.c_ssize_t
mqd = rt.mq_open(sys.argv[1].encode(), os.O_RDWR)
if mqd < 0: raise OSError(ctypes.get_errno(), 'mq_open')
buf = ctypes.create_string_buffer(64)
prio = ctypes.c_uint()
n = rt.mq_receive(mqd, buf, 64, ctypes.byref(prio))
print(buf.raw[:n].decode(), prio.value)
msg = b'from python'
if rt.mq_send(mqd, msg, len(msg), 6) != 0: raise OSError(ctypes.get_errno(), 'mq_send')
rt.mq_close(mqd)
`;
    let out: string;
    try {
      out = execFileSync('python3', ['-c', script, name], { encoding: 'utf8' });
    } catch (err) {
      t.diagnostic(`python3 with ctypes is not usable here: ${(err as Error).message}`);
      return;
    }
    assert.equal(out, 'from ipckit 3\n');
    assert.deepEqual(q.receiveSync({ timeout: 1000 }), { data: Buffer.from('from python'), priority: 6 });
    q.unlink();
  });

  it('delivers 2000 messages exactly once and in order between processes (soak)', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 10, maxMessageSize: 1024 });
    const receiver = new Peer('soak-receive', { family: 'posix', address: name, count: 2000, mode: 'async' });
    await receiver.next();
    const sender = new Peer('soak-send', { family: 'posix', address: name, count: 2000, size: 700, mode: 'sync' });
    await sender.success();
    assert.deepEqual(await receiver.next(30_000), { event: 'done', received: 2000, bad: 0, firstBad: null, leftover: 0 });
    await receiver.success();
    q.unlink();
  });
});

describe('System V message queue', () => {
  it('creates, opens by key, ftok and id, and reports stat', () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key, { mode: 0o640, maxBytes: 4096 });
    assert.equal(q.created, true);
    assert.equal(q.key, key);
    const st = q.stat();
    assert.equal(st.key, key);
    assert.equal(st.id, q.id);
    assert.equal(st.mode, 0o640);
    assert.equal(st.maxBytes, 4096);
    assert.equal(st.messages, 0);
    assert.equal(st.lastSendPid, 0);
    assert.equal(st.lastSendTime, null);
    assert.equal(st.uid, process.getuid!());
    using byHex = SysvMessageQueue.open(`0x${key.toString(16)}`);
    using byDecimal = SysvMessageQueue.open(String(key));
    using byId = SysvMessageQueue.open({ id: q.id });
    assert.deepEqual([byHex.id, byDecimal.id, byId.id, byId.key], [q.id, q.id, q.id, key]);
    using again = SysvMessageQueue.openOrCreate(key, { maxBytes: 100 });
    assert.equal(again.created, false);
    assert.equal(again.stat().maxBytes, 4096);
    throwsWith(() => SysvMessageQueue.create(key), 'EEXIST', /already exists/);
    q.sendSync(9, Buffer.from('abc'));
    const after1 = q.stat();
    assert.equal(after1.messages, 1);
    assert.equal(after1.bytes, 3);
    assert.equal(after1.lastSendPid, process.pid);
    assert.ok(after1.lastSendTime instanceof Date);
    q.remove();
    throwsWith(() => SysvMessageQueue.open(key), 'ENOENT', /create it first/);
    throwsWith(() => byHex.stat(), 'EINVAL', /removed/);
  });

  it('derives the same key from ftok as the C library', (t) => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'ipckit-ftok-')), 'anchor');
    writeFileSync(file, '');
    try {
      const viaC = spawnSync('python3', ['-c', `
import ctypes, sys
libc = ctypes.CDLL(None)
libc.ftok.restype = ctypes.c_int
print(libc.ftok(sys.argv[1].encode(), 7) & 0xffffffff)`, file], { encoding: 'utf8' });
      if (viaC.status !== 0) {
        t.diagnostic('python3 with ctypes is not usable here: ftok comparison skipped');
        return;
      }
      using q = SysvMessageQueue.openOrCreate({ path: file, projectId: 7 });
      objects.sysv.add(q.key);
      assert.equal(q.key, Number(viaC.stdout.trim()));
      using same = SysvMessageQueue.open({ path: file, projectId: 7 });
      assert.equal(same.id, q.id);
      q.remove();
    } finally {
      rmSync(path.dirname(file), { recursive: true });
    }
  });

  it('selects by type between two processes: 0, n and -n', async () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key);
    const sent: [number, string][] = [[3, 'c'], [1, 'a'], [2, 'b1'], [5, 'e'], [2, 'b2'], [1, 'a2']];
    for (const [type, data] of sent) q.sendSync(type, Buffer.from(data));
    const byType = new Peer('receive', { family: 'sysv', address: key, count: 2, type: 2, mode: 'sync' });
    await byType.next();
    assert.deepEqual([await byType.next(), await byType.next()], [{ data: 'b1', type: 2 }, { data: 'b2', type: 2 }]);
    await byType.success();
    const lowest = new Peer('receive', { family: 'sysv', address: key, count: 2, type: -4, mode: 'async' });
    await lowest.next();
    assert.deepEqual([await lowest.next(), await lowest.next()], [{ data: 'a', type: 1 }, { data: 'a2', type: 1 }]);
    await lowest.success();
    const any = new Peer('receive', { family: 'sysv', address: key, count: 2, mode: 'iterate' });
    await any.next();
    assert.deepEqual([await any.next(), await any.next()], [{ data: 'c', type: 3 }, { data: 'e', type: 5 }]);
    await any.success();
    assert.equal(q.stat().lastReceivePid, any.pid);
    q.remove();
  });

  it('receives each type exactly, across the long\'s two 32-bit halves, in every receive form', async () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key);
    const types = [1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5, 0x7654321012345, SYSV_TYPE_MAX];
    for (const type of types) q.sendSync(type, Buffer.from(String(type)));
    for (const type of types.slice(0, 3)) assert.deepEqual(q.receiveSync({ type }), { data: Buffer.from(String(type)), type });
    const into = Buffer.alloc(q.maxMessageSize);
    assert.deepEqual(q.receiveIntoSync(into, { type: 2 ** 32 }), { length: 10, type: 2 ** 32 });
    assert.deepEqual(await q.receive(), { data: Buffer.from(String(2 ** 32 + 5)), type: 2 ** 32 + 5 });
    assert.deepEqual(q.tryReceive(), { data: Buffer.from(String(0x7654321012345)), type: 0x7654321012345 });
    assert.deepEqual(await q.receiveInto(into), { length: 16, type: SYSV_TYPE_MAX });
    assert.equal(into.subarray(0, 16).toString(), String(SYSV_TYPE_MAX));
    q.remove();
  });

  it('full queue: trySend is false, a timed send fails, a blocked send is released when a reader drains', async () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key, { maxBytes: 20 });
    assert.equal(q.trySend(1, Buffer.alloc(10, 1)), true);
    assert.equal(q.trySend(1, Buffer.alloc(10, 2)), true);
    assert.equal(q.trySend(1, Buffer.alloc(10, 3)), false);
    await rejectsWith(() => q.send(1, Buffer.alloc(10), { timeout: 50 }), 'ERR_IPC_TIMEOUT', /timed out after 50 ms/);
    throwsWith(() => q.sendSync(1, Buffer.alloc(10), { timeout: 30 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => q.sendSync(1, Buffer.alloc(10), { timeout: 0 }), 'ERR_IPC_TIMEOUT');
    const blocked = q.send(4, Buffer.from('late'));
    await blockedOnQueue(process.pid, 'msgsnd', q.id);
    assert.equal(await stillPending(blocked), true);
    const reader = new Peer('receive', { family: 'sysv', address: key, count: 3, mode: 'sync' });
    await reader.next();
    await blocked;
    const got = [await reader.next(), await reader.next(), await reader.next()];
    assert.deepEqual(got.map((m) => m.type), [1, 1, 4]);
    assert.equal(got[2]!.data, 'late');
    await reader.success();
    q.remove();
  });

  it('empty queue: tryReceive is undefined, a timed receive fails, a blocked receive is released by a writer', async () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key);
    assert.equal(q.tryReceive(), undefined);
    assert.equal(q.tryReceive({ type: 3 }), undefined);
    await rejectsWith(() => q.receive({ timeout: 50 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => q.receiveSync({ timeout: 30 }), 'ERR_IPC_TIMEOUT', /timed out after 30 ms/);
    throwsWith(() => q.receiveSync({ timeout: 0 }), 'ERR_IPC_TIMEOUT');
    const blocked = q.receive({ type: 8 });
    await blockedOnQueue(process.pid, 'msgrcv', q.id);
    assert.equal(await stillPending(blocked), true);
    const writer = new Peer('send', { family: 'sysv', address: key, mode: 'sync', messages: [{ type: 7, data: 'not me' }, { type: 8, data: 'me' }] });
    assert.deepEqual(await blocked, { data: Buffer.from('me'), type: 8 });
    await writer.success();
    assert.deepEqual(q.tryReceive(), { data: Buffer.from('not me'), type: 7 });
    q.remove();
  });

  it('never parks a libuv pool thread: 8 waiting receives leave fs work unaffected', async () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key);
    const waits = Array.from({ length: 8 }, (_, i) => q.receive({ type: i + 1 }));
    // All eight are blocked in the kernel, each on a thread of its own.
    await blockedOnQueue(process.pid, 'msgrcv', q.id, 8);
    await threadPoolIsFree();
    const writer = new Peer('send', { family: 'sysv', address: key, mode: 'sync',
      messages: Array.from({ length: 8 }, (_, i) => ({ type: 8 - i, data: `t${8 - i}` })) });
    assert.deepEqual((await Promise.all(waits)).map((m) => `${m.type}:${m.data}`),
      ['1:t1', '2:t2', '3:t3', '4:t4', '5:t5', '6:t6', '7:t7', '8:t8']);
    await writer.success();
    q.remove();
  });

  it('aborts and times out waiting calls, and never drops a message a cancelled wait had taken', async () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key, { maxBytes: 10 });
    const ac = new AbortController();
    const receiving = q.receive({ signal: ac.signal });
    await blockedOnQueue(process.pid, 'msgrcv', q.id);
    ac.abort();
    await rejectsWith(() => receiving, 'ERR_IPC_ABORTED');
    await rejectsWith(() => q.receive({ signal: AbortSignal.abort() }), 'ERR_IPC_ABORTED');
    q.sendSync(1, Buffer.alloc(10));
    const ac2 = new AbortController();
    const sending = q.send(1, Buffer.from('x'), { signal: ac2.signal });
    await blockedOnQueue(process.pid, 'msgsnd', q.id);
    ac2.abort();
    await rejectsWith(() => sending, 'ERR_IPC_ABORTED');
    assert.equal(q.stat().messages, 1);
    assert.equal(q.tryReceive()!.data.length, 10);
    // Many cancelled waits in a row: every message sent meanwhile is received exactly once.
    const received: string[] = [];
    for (let i = 0; i < 30; i++) {
      const p = q.receive({ timeout: 1 }).then((m) => received.push(m.data.toString()), () => undefined);
      if (i % 3 === 0) q.sendSync(1, Buffer.from(`m${i}`));
      await p;
    }
    for (let m = q.tryReceive(); m !== undefined; m = q.tryReceive()) received.push(m.data.toString());
    assert.deepEqual(received.sort(), Array.from({ length: 10 }, (_, i) => `m${i * 3}`).sort());
    q.remove();
  });

  it('rejects bad keys and arguments with the registry codes', () => {
    for (const bad of [0, -1, 0x1_0000_0000, 1.5, 'jobs', '0xZZ', '', '0x', { path: '/tmp' }, { path: '/tmp', projectId: 0 },
      { path: '/tmp', projectId: 256 }, { id: -1 }, null, true,
      // Values whose description itself would throw (no toString, BigInt in JSON).
      { id: Object.create(null) }, { path: '/', projectId: Object.create(null) }, { path: 10n, projectId: 1 }, { id: Symbol('x') }]) {
      throwsWith(() => SysvMessageQueue.create(bad as number), 'ERR_IPC_INVALID_ADDRESS');
      throwsWith(() => SysvMessageQueue.open(bad as number), 'ERR_IPC_INVALID_ADDRESS');
    }
    throwsWith(() => SysvMessageQueue.create(0), 'ERR_IPC_INVALID_ADDRESS', /IPC_PRIVATE/);
    throwsWith(() => SysvMessageQueue.open({ path: '/nonexistent/ipckit', projectId: 1 }), 'ENOENT', /ftok/);
    // On the command line, an ftok path may hold any character, a line break included: the last ":ID" ends it.
    assert.deepEqual(parseAddress('ftok:/tmp/a\nb:c:7', 'queue'), { family: 'sysv', address: { path: '/tmp/a\nb:c', projectId: 7 } });
    assert.deepEqual(parseAddress('ftok:\r:1', 'queue'), { family: 'sysv', address: { path: '\r', projectId: 1 } });
    throwsWith(() => SysvMessageQueue.open({ id: 0x7ffffff0 }), 'EINVAL');
    const key = objects.key();
    using q = SysvMessageQueue.create(key);
    throwsWith(() => q.trySend(0, Buffer.from('x')), 'ERR_IPC_INVALID_ARGUMENT', /type must be an integer from 1/);
    throwsWith(() => q.trySend(1.5, Buffer.from('x')), 'ERR_IPC_INVALID_ARGUMENT');
    throwsWith(() => q.tryReceive({ type: 0.5 }), 'ERR_IPC_INVALID_ARGUMENT');
    throwsWith(() => q.trySend(1, Buffer.alloc(q.maxMessageSize + 1)), 'ERR_IPC_MESSAGE_TOO_LARGE', /msgmax/);
    assert.equal(q.trySend(1, Buffer.alloc(q.maxMessageSize)), true);
    assert.equal(q.tryReceive()!.data.length, q.maxMessageSize);
    q.remove();
  });

  it('refuses a message larger than the queue capacity instead of waiting forever', async () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key, { maxBytes: 8 });
    throwsWith(() => q.trySend(1, Buffer.alloc(9)), 'ERR_IPC_MESSAGE_TOO_LARGE', /9-byte message .* limit is 8 bytes \(the queue's maxBytes/);
    throwsWith(() => q.sendSync(1, Buffer.alloc(9)), 'ERR_IPC_MESSAGE_TOO_LARGE');
    await rejectsWith(() => q.send(1, Buffer.alloc(9)), 'ERR_IPC_MESSAGE_TOO_LARGE');
    assert.equal(q.trySend(1, Buffer.alloc(8)), true);
    // Raised by another handle: the next send sees the new capacity.
    assert.equal(native.msgSetMaxBytes(q.id, 64), 0);
    assert.equal(q.trySend(1, Buffer.alloc(40)), true);
    assert.deepEqual([q.tryReceive()!.data.length, q.tryReceive()!.data.length], [8, 40]);
    q.remove();
  });

  it('reports capacity beyond kernel.msgmnb as ERR_IPC_LIMIT without CAP_SYS_RESOURCE', () => {
    const key = objects.key();
    const msgmnb = SysvMessageQueue.limits().msgmnb!;
    let q: SysvMessageQueue | undefined;
    try {
      q = SysvMessageQueue.create(key, { maxBytes: msgmnb * 4 });
    } catch (err) {
      assert.ok(err instanceof IpcError);
      assert.equal(err.code, 'ERR_IPC_LIMIT');
      assert.equal(err.errno, -1);
      assert.match(err.message, /kernel\/msgmnb \(now \d+\).*sysctl kernel.msgmnb/);
      // A refused create leaves nothing behind.
      throwsWith(() => SysvMessageQueue.open(key), 'ENOENT');
      return;
    }
    // Privileged: the capacity was granted.
    assert.equal(q.stat().maxBytes, msgmnb * 4);
    q.remove();
  });

  it('fails with ERR_IPC_CLOSED after close and rejects pending calls; the process can then exit', async () => {
    const key = objects.key();
    const q = SysvMessageQueue.create(key);
    const pending = q.receive();
    await blockedOnQueue(process.pid, 'msgrcv', q.id);
    q.close();
    q.close();
    await rejectsWith(() => pending, 'ERR_IPC_CLOSED');
    throwsWith(() => q.trySend(1, Buffer.from('x')), 'ERR_IPC_CLOSED');
    throwsWith(() => q.stat(), 'ERR_IPC_CLOSED');
    await rejectsWith(() => q.receive(), 'ERR_IPC_CLOSED');
    const peer = new Peer('close-pending', { family: 'sysv', address: key });
    assert.deepEqual(await peer.next(), { event: 'rejected', code: 'ERR_IPC_CLOSED' });
    assert.deepEqual(await peer.exited, { code: 0, signal: null });
    SysvMessageQueue.remove(key);
  });

  it('fails waiting calls with EIDRM when the queue is removed', async () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key);
    const waiting = q.receive();
    const waitingSync = new Peer('receive', { family: 'sysv', address: key, count: 1, mode: 'sync' });
    await waitingSync.next();
    // Both are blocked in msgrcv when the queue goes (a call made after the removal fails with EINVAL instead).
    await blockedOnQueue(process.pid, 'msgrcv', q.id);
    await blockedOnQueue(waitingSync.pid, 'msgrcv', q.id);
    SysvMessageQueue.remove(key);
    await rejectsWith(() => waiting, 'EIDRM', /removed/);
    const report = await waitingSync.next();
    assert.equal(report.event, 'error');
    assert.equal(report.code, 'EIDRM');
    assert.equal((await waitingSync.exited).code, 1);
  });

  it('loses no queued message when a receiver is killed with SIGKILL', async () => {
    for (const hang of ['sync', 'async'] as const) {
      const key = objects.key();
      using q = SysvMessageQueue.create(key);
      for (let i = 0; i < 8; i++) q.sendSync(1 + (i % 2), Buffer.from(`msg ${i}`));
      const receiver = new Peer('receive', { family: 'sysv', address: key, count: 2, type: 2, mode: 'async', then: hang });
      await receiver.next();
      assert.deepEqual([await receiver.next(), await receiver.next()], [{ data: 'msg 1', type: 2 }, { data: 'msg 3', type: 2 }]);
      assert.deepEqual(await receiver.next(), { event: 'hanging' });
      await blockedOnQueue(receiver.pid, 'msgrcv', q.id);
      assert.deepEqual(await receiver.kill('SIGKILL'), { code: null, signal: 'SIGKILL' });
      const rest = [];
      for (let m = q.tryReceive(); m !== undefined; m = q.tryReceive()) rest.push(`${m.type}:${m.data}`);
      assert.deepEqual(rest, ['1:msg 0', '1:msg 2', '1:msg 4', '2:msg 5', '1:msg 6', '2:msg 7']);
      q.remove();
    }
  });

  it('is a plain kernel object: ipcs lists it, and ipcmk and Python queues open in ipckit', async (t) => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key);
    const ipcs = spawnSync('ipcs', ['-q'], { encoding: 'utf8' });
    if (ipcs.status === 0) assert.match(ipcs.stdout, new RegExp(`0x${key.toString(16).padStart(8, '0')}\\s+${q.id}\\s`));
    else t.diagnostic('ipcs not found');
    const ipcmk = spawnSync('ipcmk', ['-Q'], { encoding: 'utf8' });
    if (ipcmk.status === 0) {
      const id = Number(/([0-9]+)\s*$/.exec(ipcmk.stdout.trim())![1]);
      using theirs = SysvMessageQueue.open({ id });
      try {
        assert.equal(theirs.stat().key, theirs.key);
        theirs.sendSync(3, Buffer.from('into ipcmk queue'));
        assert.equal(theirs.stat().messages, 1);
      } finally {
        theirs.remove();
      }
    } else {
      t.diagnostic('ipcmk not found');
    }
    q.sendSync(5, Buffer.from('from ipckit'));
    const script = `
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.msgrcv.restype = ctypes.c_ssize_t
class Msg(ctypes.Structure):
    _fields_ = [('mtype', ctypes.c_long), ('mtext', ctypes.c_char * 64)]
qid = libc.msgget(int(sys.argv[1]), 0)
m = Msg()
n = libc.msgrcv(qid, ctypes.byref(m), 64, 5, 0)
print(m.mtype, m.mtext[:n].decode())
out = Msg(9, b'from python')
if libc.msgsnd(qid, ctypes.byref(out), 11, 0) != 0: raise OSError(ctypes.get_errno(), 'msgsnd')
`;
    let out: string;
    try {
      out = execFileSync('python3', ['-c', script, String(key)], { encoding: 'utf8' });
    } catch (err) {
      t.diagnostic(`python3 with ctypes is not usable here: ${(err as Error).message}`);
      q.remove();
      return;
    }
    assert.equal(out, '5 from ipckit\n');
    assert.deepEqual(q.receiveSync({ timeout: 1000 }), { data: Buffer.from('from python'), type: 9 });
    q.remove();
  });

  it('delivers 2000 messages exactly once and in order between processes (soak)', async () => {
    const key = objects.key();
    using q = SysvMessageQueue.create(key);
    const receiver = new Peer('soak-receive', { family: 'sysv', address: key, count: 2000, mode: 'async' });
    await receiver.next();
    const sender = new Peer('soak-send', { family: 'sysv', address: key, count: 2000, size: 700, mode: 'async' });
    await sender.success();
    assert.deepEqual(await receiver.next(30_000), { event: 'done', received: 2000, bad: 0, firstBad: null, leftover: 0 });
    await receiver.success();
    q.remove();
  });
});

describe('plain calls (no options), which skip the engine', () => {
  it('keep the order of waiting calls, and a sync call still refuses to overtake an async one', { timeout: 20_000 }, async () => {
    const posix = PosixMessageQueue.create(objects.name(), { maxMessages: 4, maxMessageSize: 64 });
    const sysv = SysvMessageQueue.create(objects.key(), { mode: 0o600 });
    const families = [
      { q: posix, send: (d: string) => posix.sendSync(Buffer.from(d)), sendAsync: (d: string) => posix.send(Buffer.from(d)) },
      { q: sysv, send: (d: string) => sysv.sendSync(1, Buffer.from(d)), sendAsync: (d: string) => sysv.send(1, Buffer.from(d)) },
    ];
    for (const { q, send, sendAsync } of families) {
      const first = q.receive();
      const second = q.receive();
      assert.deepEqual([await stillPending(first), await stillPending(second)], [true, true]);
      send('a');
      assert.equal(text(await first), 'a');
      assert.equal(await stillPending(second), true, 'one message serves one call');
      // The second call still waits: a plain receive must not take the next message first.
      send('b');
      const third = q.receive();
      throwsWith(() => q.receiveSync(), 'ERR_IPC_DEADLOCK', /async calls of this thread are waiting first/);
      assert.equal(text(await second), 'b');
      send('c');
      assert.equal(text(await third), 'c');
      // Idle again: each plain call completes at once.
      await sendAsync('d');
      send('e');
      assert.equal(text(q.receiveSync()), 'd');
      assert.equal(text(await q.receive()), 'e');
    }
    posix.close();
    posix.unlink();
    sysv.remove();
  });
});

describe('plain calls and a codec that queues a call on the same lane', () => {
  for (const form of ['send', 'sendSync'] as const) {
    it(`${form}: a send the codec queued while the queue was full goes first`, async () => {
      let queued: Promise<void> | undefined;
      const q: PosixMessageQueue<string> = PosixMessageQueue.create<string>(objects.name(), {
        maxMessages: 2, maxMessageSize: 8,
        codec: {
          // Encoding 'x' sends 'y', which must wait (the queue is full), then makes room.
          encode: (v: string) => {
            if (v === 'x') {
              queued = q.send('y');
              q.receiveSync();
              q.receiveSync();
            }
            return Buffer.from(v);
          },
          decode: (b: Uint8Array) => Buffer.from(b).toString(),
        },
      });
      q.sendSync('a');
      q.sendSync('b');
      if (form === 'send') await q.send('x');
      else q.sendSync('x');
      assert.equal(await stillPending(queued!, 1000), false, "'y' was sent");
      const got: string[] = [];
      for (let m = q.tryReceive(); m !== undefined; m = q.tryReceive()) got.push(m.data);
      q.close();
      q.unlink();
      assert.deepEqual(got, ['y', 'x']);
    });
  }
});

describe('message queue cleanup', () => {
  it('leaves no queue and no queue descriptor behind', async () => {
    await killAllPeers();
    assert.deepEqual(objects.leftovers(), []);
    assert.deepEqual(mqueueFds(), []);
  });
});
