/**
 * `ipckit channel` (create, send, recv, stat, rm) and the top-level `rm` of
 * a channel, run as real child processes: exit codes, exact output, blocking
 * receives and sends, roles, a peer that dies, and what each leaves behind.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { Channel, PosixSharedMemory } from '../src/index.js';
import { all, exitOnItsOwn, fails, ipckit, json, jsonLines, launch, launchIntoPipe, ok } from './helpers/cli.js';
import { ObjectTracker } from './helpers/objects.js';
import { killAllPeers, runningChildren, trackChild } from './helpers/peer.js';
import { blockedIn } from './helpers/proc.js';
import { waitUntil } from './helpers/assert.js';
import { waitsForBell } from './helpers/channel-header.js';

const objects = new ObjectTracker();
const INDEX = new URL('../src/index.js', import.meta.url).href;

after(async () => {
  await killAllPeers();
  objects.cleanup();
});

const exists = (name: string): boolean => existsSync(`/dev/shm${name}`);

/** The messages left in a channel, taken by this process (which becomes its consumer). */
function drain(ch: Channel): string[] {
  const left: string[] = [];
  for (let m = ch.tryReceive(); m !== undefined; m = ch.tryReceive()) left.push(m.data.toString());
  return left;
}

/**
 * Runs a Node process that opens channel `name`, runs `body` (with `ch` in scope) and then
 * kills itself with SIGKILL, holding whatever role `body` took; resolves with its pid once dead.
 */
async function dieHolding(name: string, body: string): Promise<number> {
  const script = `const { Channel } = await import(${JSON.stringify(INDEX)}); const ch = Channel.open(${JSON.stringify(name)}); ${body}; ` +
    'process.kill(process.pid, "SIGKILL");';
  const child = trackChild(spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, sig) => resolve(sig)));
  assert.equal(signal, 'SIGKILL', stderr);
  return child.pid!;
}

/** Waits until `pid` waits for channel `name`: its doorbell armed, its main thread asleep in epoll_wait (a send or receive waiting for its peer). */
async function waitingOn(pid: number, name: string): Promise<void> {
  await waitUntil(`pid ${pid} waits for a doorbell of ${name}`, () => waitsForBell(name, pid));
  await blockedIn(pid, 'epoll_wait', { main: true });
}

describe('ipckit channel create', () => {
  it('creates a channel whose sides are shared (--producers multi --consumers multi); a bad side is a usage error', async () => {
    const name = objects.shmName('channel');
    const info = json((await ok(['channel', 'create', name, '--producers', 'multi', '--consumers', 'multi', '--json'])).stdout);
    assert.deepEqual([info.producers, info.consumers], ['multi', 'multi']);
    await all([() => ok(['channel', 'send', name, 'one']), () => ok(['channel', 'send', name, 'two'])]);
    using ch = Channel.open(name);
    assert.deepEqual(drain(ch).sort(), ['one', 'two']);
    ch.unlink();
    const stderr = await fails(['channel', 'create', objects.shmName('channel'), '--producers', 'many'], 2, 'ERR_IPC_USAGE');
    assert.equal(stderr, 'ERR_IPC_USAGE: --producers must be single or multi; got "many".\n');
  });

  it('creates a channel with the capacity rounded up to a power of two, exact --json, mode 0660 (the umask does not apply)', async () => {
    const name = objects.shmName('channel');
    const umask = process.umask(0o077);
    let info: Record<string, unknown>;
    try {
      info = json((await ok(['channel', 'create', name, '--capacity', '1000', '--max-message-size', '100', '--mode', '660', '--json'])).stdout);
    } finally {
      process.umask(umask);
    }
    assert.deepEqual(info, {
      name, sent: 0, sentBytes: 0, received: 0, receivedBytes: 0, depth: 0, depthBytes: 0, producerWaits: 0, consumerWaits: 0,
      capacity: 1024, maxMessageSize: 100, producers: 'single', consumers: 'single', producerTid: 0, consumerTid: 0, producerAlive: null, consumerAlive: null,
      size: 1536 + 1024, mode: 0o660, uid: process.getuid!(), gid: process.getgid!(),
    });
    assert.equal(statSync(`/dev/shm${name}`).mode & 0o777, 0o660);
    using ch = Channel.open(name);
    assert.deepEqual([ch.capacity, ch.maxMessageSize], [1024, 100]);

    // The name is taken: exit 1, and the channel is untouched.
    const taken = await fails(['channel', 'create', name, '--capacity', '64'], 1, 'EEXIST');
    assert.ok(taken.startsWith(`EEXIST: shm_open ${name} failed: File exists (EEXIST).`), taken);
    assert.equal(ch.capacity, 1024);
    ch.unlink();
  });

  it('creates with the defaults and text output: 1 MiB ring, 64 KiB messages, mode 0600', async () => {
    const name = objects.shmName('channel');
    assert.equal((await ok(['channel', 'create', name])).stdout, `created ${name} (capacity 1048576 bytes, messages up to 65536 bytes)\n`);
    assert.equal(statSync(`/dev/shm${name}`).mode & 0o777, 0o600);
    // A small ring caps the default message size at half of it less 8 bytes.
    const small = objects.shmName('channel');
    assert.equal((await ok(['channel', 'create', small, '--capacity', '64'])).stdout, `created ${small} (capacity 64 bytes, messages up to 24 bytes)\n`);
    await ok(['channel', 'rm', name]);
    await ok(['channel', 'rm', small]);
    assert.deepEqual([exists(name), exists(small)], [false, false]);
  });

  it('refuses bad names and options with exit 2, creating nothing', async () => {
    const name = objects.shmName('channel');
    const [capacity, tooLarge, mode, sysv, relative] = await all([
      () => fails(['channel', 'create', name, '--capacity', '32'], 2, 'ERR_IPC_USAGE'),
      () => fails(['channel', 'create', name, '--capacity', '64', '--max-message-size', '25'], 2, 'ERR_IPC_INVALID_ARGUMENT'),
      () => fails(['channel', 'create', name, '--mode', '999'], 2, 'ERR_IPC_USAGE'),
      () => fails(['channel', 'create', '0x1234'], 2, 'ERR_IPC_INVALID_ADDRESS'),
      () => fails(['channel', 'send', 'jobs', 'x'], 2, 'ERR_IPC_INVALID_ADDRESS'),
    ]);
    assert.equal(capacity, 'ERR_IPC_USAGE: --capacity must be an integer from 64 to 1073741824; got "32".\n');
    assert.equal(tooLarge, 'ERR_IPC_INVALID_ARGUMENT: maxMessageSize must be an integer from 0 to 24; got 25.\n');
    assert.match(mode!, /--mode must be octal permission bits/);
    assert.equal(sysv, 'ERR_IPC_INVALID_ADDRESS: Invalid POSIX channel name "0x1234": it must start with "/" (e.g. "/jobs").\n');
    assert.match(relative!, /Invalid POSIX channel name "jobs"/);
    assert.equal(exists(name), false);
  });
});

describe('ipckit channel send / recv', () => {
  it('delivers in order, with --json, stdin (-), an empty message, and base64 for bytes that are not UTF-8', async () => {
    const name = objects.shmName('channel');
    using ch = Channel.create(name, { capacity: 4096, maxMessageSize: 64 });
    const binary = Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x80]);
    // One producer at a time: the sends run one after another.
    assert.equal((await ok(['channel', 'send', name, 'first', '--json'])).stdout, '{"sent":true,"bytes":5}\n');
    assert.equal((await ok(['channel', 'send', name, '-', '--json'], 'from stdin\nline two')).stdout, '{"sent":true,"bytes":19}\n');
    assert.equal((await ok(['channel', 'send', name, '-'], binary)).stdout, '');
    assert.equal((await ok(['channel', 'send', name, '-', '--json'], '')).stdout, '{"sent":true,"bytes":0}\n');
    await ok(['channel', 'send', name, 'plain']);
    const stats = ch.stats();
    assert.deepEqual([stats.sent, stats.sentBytes, stats.depth, stats.producerTid], [5, 34, 5, 0]);
    assert.deepEqual(jsonLines((await ok(['channel', 'recv', name, '--count', '4', '--json'])).stdout), [
      { data: 'first' }, { data: 'from stdin\nline two' }, { data: binary.toString('base64'), encoding: 'base64' }, { data: '' },
    ]);
    // Without --json the bytes are written as they are, each followed by a newline.
    ch.sendSync(binary);
    assert.deepEqual((await ok(['channel', 'recv', name, '--count', '2'])).stdoutBytes, Buffer.from(`plain\n${binary.toString('latin1')}\n`, 'latin1'));
    assert.deepEqual([ch.stats().received, ch.stats().depth, ch.stats().consumerTid], [6, 0, 0]);
    ch.unlink();
  });

  it('refuses an oversize message (exit 1) and combined --nonblock / --timeout or --count / --follow (exit 2)', async () => {
    const name = objects.shmName('channel');
    using ch = Channel.create(name, { capacity: 256, maxMessageSize: 8 });
    const [tooLarge, sendBoth, recvBoth, countFollow] = await all([
      () => fails(['channel', 'send', name, '123456789'], 1, 'ERR_IPC_MESSAGE_TOO_LARGE'),
      () => fails(['channel', 'send', name, 'x', '--nonblock', '--timeout', '10'], 2, 'ERR_IPC_USAGE'),
      () => fails(['channel', 'recv', name, '--nonblock', '--timeout', '10'], 2, 'ERR_IPC_USAGE'),
      () => fails(['channel', 'recv', name, '--count', '2', '--follow'], 2, 'ERR_IPC_USAGE'),
    ]);
    assert.equal(tooLarge, `ERR_IPC_MESSAGE_TOO_LARGE: A 9-byte message exceeds the maxMessageSize of ${name} (8 bytes, set when it was created). ` +
      'Create the channel with a larger one, or split the message.\n');
    assert.equal(sendBoth, 'ERR_IPC_USAGE: Use either --nonblock or --timeout, not both.\n');
    assert.equal(recvBoth, sendBoth);
    assert.equal(countFollow, 'ERR_IPC_USAGE: Use either --count or --follow, not both.\n');
    await ok(['channel', 'send', name, '12345678']);
    assert.deepEqual(drain(ch), ['12345678']);
    ch.unlink();
  });

  it('an empty or full ring fails with EAGAIN (--nonblock) or ERR_IPC_TIMEOUT (--timeout); --count stops at the first failure', async () => {
    const name = objects.shmName('channel');
    // 64 bytes of ring: four 9..16-byte messages fill it (8-byte header, payload padded to 8).
    using ch = Channel.create(name, { capacity: 64, maxMessageSize: 8 });
    // One consumer at a time: the receives run one after another.
    const nonblock = await ipckit(['channel', 'recv', name, '--nonblock']);
    assert.deepEqual([nonblock.status, nonblock.stdout, nonblock.stderr], [1, '', `EAGAIN: The channel ${name} is empty and --nonblock was given.\n`]);
    const waited = await ipckit(['channel', 'recv', name, '--timeout', '100']);
    assert.deepEqual([waited.status, waited.stdout, waited.stderr],
      [1, '', `ERR_IPC_TIMEOUT: receive on ${name} timed out after 100 ms. Wait longer, or use the try* call to poll.\n`]);
    assert.ok(waited.elapsedMs >= 100, `returned after ${waited.elapsedMs} ms`);
    const tryOnce = await fails(['channel', 'recv', name, '--timeout', '0', '--json'], 1, 'ERR_IPC_TIMEOUT');
    assert.equal(JSON.parse(tryOnce).error.message, `receive on ${name} timed out after 0 ms. Wait longer, or use the try* call to poll.`);

    for (const m of ['a', 'b', 'c', 'd']) ch.sendSync(Buffer.from(m));
    ch.close();
    const full = await fails(['channel', 'send', name, 'e', '--nonblock'], 1, 'EAGAIN');
    assert.equal(full, `EAGAIN: The channel ${name} is full and --nonblock was given.\n`);
    const fullTimed = await fails(['channel', 'send', name, 'e', '--timeout', '100', '--json'], 1, 'ERR_IPC_TIMEOUT');
    assert.equal(JSON.parse(fullTimed).error.message, `send on ${name} timed out after 100 ms. Wait longer, or use the try* call to poll.`);
    const partial = await ipckit(['channel', 'recv', name, '--count', '5', '--nonblock']);
    assert.deepEqual([partial.status, partial.stdout, partial.stderr], [1, 'a\nb\nc\nd\n', `EAGAIN: The channel ${name} is empty and --nonblock was given.\n`]);
    Channel.unlink(name);
  });

  it('a blocking recv sleeps until another process sends, which wakes it', async () => {
    const name = objects.shmName('channel');
    using ch = Channel.create(name, { capacity: 64, maxMessageSize: 24 });
    const receiver = launch(['channel', 'recv', name, '--json']);
    await waitingOn(receiver.child.pid!, name);
    assert.equal(ch.stats().consumerTid, receiver.child.pid);
    await ch.send(Buffer.from('wake up'));
    assert.deepEqual(await receiver.done.then((r) => [r.status, r.stdout, r.stderr]), [0, '{"data":"wake up"}\n', '']);
    // Its role went with it.
    assert.equal(ch.stats().consumerTid, 0);

    ch.unlink();
  });

  it('a blocking send sleeps on a full ring until the consumer makes room', async () => {
    const name = objects.shmName('channel');
    {
      // Two 24-byte messages (32 ring bytes each) fill a 64-byte ring.
      using producer = Channel.create(name, { capacity: 64, maxMessageSize: 24 });
      producer.sendSync(Buffer.alloc(24, 'a'));
      producer.sendSync(Buffer.alloc(24, 'b'));
    }
    using consumer = Channel.open(name);
    const sender = launch(['channel', 'send', name, 'third']);
    await waitingOn(sender.child.pid!, name);
    assert.equal(consumer.stats().producerTid, sender.child.pid);
    assert.equal(consumer.tryReceive()?.data.toString(), 'a'.repeat(24));
    assert.deepEqual(await sender.done.then((r) => [r.status, r.stdout, r.stderr]), [0, '', '']);
    assert.deepEqual(drain(consumer), ['b'.repeat(24), 'third']);
    // It slept (once per 20 ms slice it waited: how many depends on the machine).
    assert.ok(consumer.stats().producerWaits >= 1);
    consumer.unlink();
  });

  it('--follow prints what a producer sent before it died, then fails with ERR_IPC_PEER_DEAD; a second recv is refused with ERR_IPC_BUSY', async () => {
    const name = objects.shmName('channel');
    Channel.create(name, { capacity: 1024 }).close();
    const follower = launch(['channel', 'recv', name, '--follow']);
    const pid = follower.child.pid!;
    await waitingOn(pid, name);
    const busy = await fails(['channel', 'recv', name, '--timeout', '0'], 1, 'ERR_IPC_BUSY');
    assert.equal(busy, `ERR_IPC_BUSY: Thread ${pid} is the consumer of ${name}: a channel has one consumer. ` +
      'Wait until it closes the channel, or use another channel.\n');
    const producer = await dieHolding(name, '["one", "two", "three", "last words"].forEach((m) => ch.sendSync(Buffer.from(m)))');
    const r = await follower.done;
    assert.deepEqual([r.status, r.stdout], [1, 'one\ntwo\nthree\nlast words\n']);
    assert.equal(r.stderr, `ERR_IPC_PEER_DEAD: The producer of ${name} (thread ${producer}) died: ` +
      'nothing more will be sent until another producer opens the channel.\n');
    // The dead producer's role is taken over by the next sender.
    await ok(['channel', 'send', name, 'after']);
    using ch = Channel.open(name);
    assert.deepEqual(drain(ch), ['after']);
    ch.unlink();
  });

  it('--follow keeps receiving from one sender process after another (each gives the producer role back as it exits)', async () => {
    const name = objects.shmName('channel');
    Channel.create(name, { capacity: 1024 }).close();
    const follower = launchIntoPipe(['channel', 'recv', name, '--follow']);
    try {
      await waitingOn(follower.pid, name);
      for (const m of ['one', 'two', 'three']) {
        await ok(['channel', 'send', name, m]);
        assert.equal(await follower.readLine(), m);
      }
      // Still waiting for the next producer.
      await waitingOn(follower.pid, name);
      process.kill(follower.pid, 'SIGTERM');
      const r = await follower.done;
      assert.deepEqual([r.signal, r.stderr], ['SIGTERM', '']);
    } finally {
      follower.readEnd.close();
      await follower.done;
      Channel.unlink(name);
    }
  });

  it('a send waiting on a full ring fails with ERR_IPC_PEER_DEAD when the consumer has died', async () => {
    const name = objects.shmName('channel');
    {
      using ch = Channel.create(name, { capacity: 64, maxMessageSize: 24 });
      ch.sendSync(Buffer.alloc(24));
      ch.sendSync(Buffer.alloc(24));
    }
    // The consumer holds a view of the first message (its space not given back yet) and dies holding the role.
    const consumer = await dieHolding(name, 'ch.tryReceive({ view: true })');
    const stderr = await fails(['channel', 'send', name, '-'], 1, 'ERR_IPC_PEER_DEAD', Buffer.alloc(24));
    assert.equal(stderr, `ERR_IPC_PEER_DEAD: The consumer of ${name} (thread ${consumer}) died: ` +
      'nothing will make room until another consumer opens the channel.\n');
    Channel.unlink(name);
  });
});

describe('ipckit channel recv and a reader that leaves', () => {
  it('takes no message once stdout\'s reader is gone: exit 1 with EPIPE, every message still in the channel', async () => {
    const name = objects.shmName('channel');
    using ch = Channel.create(name, { capacity: 1024 });
    ch.sendSync(Buffer.from('m0'));
    ch.sendSync(Buffer.from('m1'));
    const r = await launchIntoPipe(['channel', 'recv', name, '--count', '2'], { readerGone: true }).done;
    assert.deepEqual([r.status, r.stderr], [1,
      `EPIPE: stdout's reader left after 0 of 2 messages. Nothing more was taken: the messages not taken stay in ${name}.\n`]);
    assert.deepEqual(drain(ch), ['m0', 'm1']);
    ch.unlink();
  });

  it('--follow stops waiting as soon as the reader leaves, without taking the next message', async () => {
    const name = objects.shmName('channel');
    using ch = Channel.create(name, { capacity: 1024 });
    const run = launchIntoPipe(['channel', 'recv', name, '--follow']);
    ch.sendSync(Buffer.from('m0'));
    assert.equal(await run.readLine(), 'm0');
    await waitingOn(run.pid, name);
    run.readEnd.close();
    const { result, unblocked } = await exitOnItsOwn(run.done, () => ch.sendSync(Buffer.from('unblock')));
    assert.equal(unblocked, false, `recv did not notice that its reader left: ${JSON.stringify(result)}`);
    assert.deepEqual([result.status, result.stderr], [1,
      `EPIPE: stdout's reader left after 1 message. Nothing more was taken: the messages not taken stay in ${name}.\n`]);
    ch.sendSync(Buffer.from('m1'));
    assert.deepEqual(drain(ch), ['m1']);
    ch.unlink();
  });

  it('--json: a message taken and then not printed is named as lost, with its data; exit 1, the rest stay', async () => {
    const name = objects.shmName('channel');
    using ch = Channel.create(name, { capacity: 32768, maxMessageSize: 8000 });
    const big = 'x'.repeat(6000);
    ch.sendSync(Buffer.from(big));
    ch.sendSync(Buffer.from('m1'));
    // Its JSON line cannot fit a 4096-byte pipe that nobody reads: the write stays unfinished.
    const run = launchIntoPipe(['channel', 'recv', name, '--count', '2', '--json'], { capacity: 4096 });
    assert.equal((await run.readEnd.read({ maxBytes: 20 }))?.toString(), `{"data":"${big.slice(0, 11)}`);
    run.readEnd.close();
    const r = await run.done;
    assert.equal(r.status, 1);
    assert.deepEqual(JSON.parse(r.stderr), { error: {
      code: 'EPIPE', errno: -32, syscall: 'write', lost: { data: big },
      message: `Message 1 of 2 (6000 bytes) was taken from ${name} but could not be printed: stdout's reader left. ` +
        `That message is lost (a channel cannot take one back); the messages not taken stay in ${name}.`,
    } });
    assert.deepEqual(drain(ch), ['m1']);
    ch.unlink();
  });
});

describe('ipckit channel stat, channel rm and rm', () => {
  it('stat: counters, depth, roles with liveness, and the segment\'s size, mode and owner', async () => {
    const name = objects.shmName('channel');
    using ch = Channel.create(name, { capacity: 256, maxMessageSize: 32 });
    ch.sendSync(Buffer.from('hello'));
    ch.sendSync(Buffer.from('world!'));
    const consumer = await dieHolding(name, 'ch.tryReceive()');
    const [asJson, asText] = await all([() => ok(['channel', 'stat', name, '--json']), () => ok(['channel', 'stat', name])]);
    const uid = process.getuid!();
    const gid = process.getgid!();
    assert.deepEqual(json(asJson!.stdout), {
      name, sent: 2, sentBytes: 11, received: 1, receivedBytes: 5, depth: 1, depthBytes: 16, producerWaits: 0, consumerWaits: 0,
      capacity: 256, maxMessageSize: 32, producers: 'single', consumers: 'single', producerTid: process.pid, consumerTid: consumer,
      producerAlive: true, consumerAlive: false,
      size: 1536 + 256, mode: 0o600, uid, gid,
    });
    assert.equal(asText!.stdout, [
      `name             ${name}`, 'sent             2', 'sentBytes        11', 'received         1', 'receivedBytes    5', 'depth            1',
      'depthBytes       16', 'producerWaits    0', 'consumerWaits    0', 'capacity         256', 'maxMessageSize   32',
      'producers        single', 'consumers        single',
      `producerTid      ${process.pid}`, `consumerTid      ${consumer}`, 'producerAlive    true', 'consumerAlive    false',
      'size             1792', 'mode             0600', `uid              ${uid}`, `gid              ${gid}`, '',
    ].join('\n'));
    // stat takes no role and no message.
    ch.close();
    using again = Channel.open(name);
    assert.deepEqual(drain(again), ['world!']);
    again.unlink();
  });

  it('channel rm and rm remove a channel; stat, send, recv and rm then fail with ENOENT', async () => {
    const name = objects.shmName('channel');
    Channel.create(name, { capacity: 64 }).close();
    assert.equal((await ok(['channel', 'rm', name])).stdout, `removed ${name} (channel)\n`);
    assert.equal(exists(name), false);
    const [stat, , , , top] = await all([
      () => fails(['channel', 'stat', name], 1, 'ENOENT'),
      () => fails(['channel', 'send', name, 'x'], 1, 'ENOENT'),
      () => fails(['channel', 'recv', name, '--nonblock'], 1, 'ENOENT'),
      () => fails(['channel', 'rm', name], 1, 'ENOENT'),
      () => fails(['rm', name], 1, 'ENOENT'),
    ]);
    assert.equal(stat, `ENOENT: shm_open ${name} failed: No such file or directory (ENOENT). ` +
      'No such channel: create it first (Channel.create or ipckit channel create).\n');
    assert.match(top!, /^ENOENT: Nothing to remove at /);

    // The top-level rm names a segment that holds a channel as a channel; --kind shm removes it too.
    Channel.create(name, { capacity: 64 }).close();
    assert.equal((await ok(['rm', name])).stdout, `removed ${name} (channel)\n`);
    Channel.create(name, { capacity: 64 }).close();
    assert.equal((await ok(['rm', name, '--kind', 'channel', '--json'])).stdout, `{"removed":"${name}","kind":"channel"}\n`);
    Channel.create(name, { capacity: 64 }).close();
    assert.equal((await ok(['rm', name, '--kind', 'shm'])).stdout, `removed ${name} (shared memory segment)\n`);
    // A plain segment stays a segment.
    PosixSharedMemory.create(name, { size: 4096 }).close();
    assert.equal((await ok(['rm', name, '--json'])).stdout, `{"removed":"${name}","kind":"shm"}\n`);
    Channel.create(name, { capacity: 64 }).close();
    assert.equal((await ok(['channel', 'rm', name, '--json'])).stdout, `{"removed":"${name}","kind":"channel"}\n`);
    assert.equal(exists(name), false);
  });
});

describe('cli channel cleanup', () => {
  it('leaves no channel and no child process behind', async () => {
    await killAllPeers();
    assert.equal(runningChildren(), 0);
    assert.deepEqual(objects.leftovers(), []);
  });
});
