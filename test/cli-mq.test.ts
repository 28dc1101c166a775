/**
 * `ipckit mq` (create, send, recv, stat, rm) and the top-level `rm`, run as
 * real child processes: exit codes, exact output, blocking receives, and
 * what each leaves in the kernel.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PosixMessageQueue, SysvMessageQueue, formatKey } from '../src/index.js';
import { native } from '../src/native.js';
import { type CliResult, all, exitOnItsOwn, fails, ipckit, json, launch, launchIntoPipe, ok } from './helpers/cli.js';
import { ObjectTracker, posixQueueExists, sysvQueueKeys } from './helpers/objects.js';
import { killAllPeers, runningChildren } from './helpers/peer.js';
import { blockedIn, onSysvQueue, waitingOnLoop } from './helpers/proc.js';

const objects = new ObjectTracker();

after(async () => {
  await killAllPeers();
  objects.cleanup();
});

function posixMode(name: string): number {
  using q = PosixMessageQueue.open(name);
  return fstatSync(q.fd).mode & 0o777;
}

describe('ipckit mq create', () => {
  it('creates a POSIX queue with exact attributes and mode (the umask does not apply)', async () => {
    const name = objects.name();
    const umask = process.umask(0o077);
    let r: CliResult;
    try {
      r = await ok(['mq', 'create', name, '--max-messages', '3', '--message-size', '100', '--mode', '660', '--json']);
    } finally {
      process.umask(umask);
    }
    const info = json(r.stdout);
    const limits = info.limits as Record<string, unknown>;
    delete info.limits;
    const me = { uid: process.getuid!(), gid: process.getgid!() };
    assert.deepEqual(info, { family: 'posix', name, maxMessages: 3, maxMessageSize: 100, messages: 0, mode: 0o660, ...me });
    assert.deepEqual(Object.keys(limits).sort(), ['msgDefault', 'msgMax', 'msgsizeDefault', 'msgsizeMax', 'queuesMax', 'rlimitBytes']);
    assert.equal(limits.msgMax, Number(readFileSync('/proc/sys/fs/mqueue/msg_max', 'utf8')));
    assert.equal(posixMode(name), 0o660);

    const [text, asJson] = await all([() => fails(['mq', 'create', name], 1, 'EEXIST'), () => fails(['mq', 'create', name, '--json'], 1, 'EEXIST')]);
    assert.ok(text!.startsWith(`EEXIST: mq_open ${name} failed: File exists`), text);
    assert.match(asJson!, /already exists/);
    // The failed creates did not touch the existing queue.
    using q = PosixMessageQueue.open(name);
    assert.deepEqual(q.attributes(), { maxMessages: 3, maxMessageSize: 100, messages: 0 });
    q.unlink();
  });

  it('creates a POSIX queue with text output and the default mode 0600', async () => {
    const name = objects.name();
    assert.equal((await ok(['mq', 'create', name, '--max-messages', '2'])).stdout, `created ${name}\n`);
    assert.equal(posixMode(name), 0o600);
    using q = PosixMessageQueue.open(name);
    assert.equal(q.attributes().maxMessages, 2);
    q.unlink();
  });

  it('creates a System V queue with exact capacity and mode', async () => {
    const key = objects.key();
    const address = formatKey(key);
    const info = json((await ok(['mq', 'create', address, '--max-bytes', '4096', '--mode', '640', '--json'])).stdout);
    using q = SysvMessageQueue.open(key);
    const limits = info.limits as Record<string, unknown>;
    assert.deepEqual(Object.keys(limits).sort(), ['msgmax', 'msgmnb', 'msgmni']);
    assert.equal(limits.msgmnb, Number(readFileSync('/proc/sys/kernel/msgmnb', 'utf8')));
    assert.equal(typeof info.changeTime, 'string');
    assert.ok(Math.abs(Date.parse(info.changeTime as string) - Date.now()) < 60_000);
    const uid = process.getuid!();
    const gid = process.getgid!();
    assert.deepEqual({ ...info, limits: undefined, changeTime: undefined }, {
      family: 'sysv', address, key, id: q.id, mode: 0o640, uid, gid, cuid: uid, cgid: gid,
      messages: 0, bytes: 0, maxBytes: 4096, lastSendPid: 0, lastReceivePid: 0,
      lastSendTime: null, lastReceiveTime: null, changeTime: undefined, limits: undefined,
    });
    const [hex] = await all([
      () => fails(['mq', 'create', address], 1, 'EEXIST'),
      // The decimal spelling of the key names the same queue.
      () => fails(['mq', 'create', String(key)], 1, 'EEXIST'),
    ]);
    assert.ok(hex!.startsWith(`EEXIST: msgget ${address} failed: File exists`), hex);
    assert.equal(q.stat().maxBytes, 4096);
    q.remove();

    // Text output names the identifier; the mode defaults to 0600.
    const again = (await ok(['mq', 'create', address])).stdout;
    using q2 = SysvMessageQueue.open(key);
    assert.equal(again, `created ${address} (id ${q2.id})\n`);
    assert.equal(q2.stat().mode, 0o600);
    q2.remove();
  });

  it('refuses options of the other family without creating anything', async () => {
    const name = objects.name();
    const key = objects.key();
    const [posix, sysv] = await all([
      () => fails(['mq', 'create', name, '--max-bytes', '100'], 2, 'ERR_IPC_USAGE'),
      () => fails(['mq', 'create', formatKey(key), '--max-messages', '3'], 2, 'ERR_IPC_USAGE'),
    ]);
    assert.match(posix!, /--max-bytes applies to System V queues/);
    assert.match(sysv!, /--max-messages and --message-size apply to POSIX queues/);
    assert.equal(posixQueueExists(name), false);
    assert.equal(sysvQueueKeys().has(key), false);
  });

  it('creates and removes a System V queue at an ftok address', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-cli-'));
    try {
      const file = path.join(dir, 'anchor');
      writeFileSync(file, '');
      const key = native.ftok(file, 7);
      assert.ok(key > 0);
      objects.sysv.add(key);
      const address = `ftok:${file}:7`;
      const info = json((await ok(['mq', 'create', address, '--json'])).stdout);
      assert.equal(info.key, key);
      assert.equal(info.address, `${formatKey(key)} (ftok ${file}:7)`);
      assert.equal(sysvQueueKeys().has(key), true);
      assert.equal((await ok(['rm', address])).stdout, `removed ${address} (message queue)\n`);
      assert.equal(sysvQueueKeys().has(key), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ipckit mq send / recv', () => {
  it('POSIX: receives in priority order, each message followed by a newline', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 64 });
    // Distinct priorities: the order of receipt does not depend on the order the senders ran in.
    const sends = await all([['low', '1'], ['high', '9'], ['mid', '5']].map(([text, priority]) =>
      () => ok(['mq', 'send', name, text!, '--priority', priority!])));
    for (const r of sends) assert.equal(r.stdout, '');
    assert.equal(q.attributes().messages, 3);
    assert.equal((await ok(['mq', 'recv', name, '--count', '3'])).stdout, 'high\nmid\nlow\n');
    assert.equal(q.attributes().messages, 0);
    q.unlink();
  });

  it('POSIX: --json on send and recv, stdin with -, and base64 for bytes that are not UTF-8', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 5, maxMessageSize: 64 });
    const binary = Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x80]);
    const [one, stdin, , empty] = await all([
      () => ok(['mq', 'send', name, 'a', '--priority', '3', '--json']),
      () => ok(['mq', 'send', name, '-', '--priority', '2', '--json'], 'from stdin\nline two'),
      () => ok(['mq', 'send', name, '-', '--priority', '7'], binary),
      // An empty stdin is an empty message.
      () => ok(['mq', 'send', name, '-', '--json'], ''),
    ]);
    assert.equal(one!.stdout, '{"sent":true,"bytes":1}\n');
    assert.equal(stdin!.stdout, '{"sent":true,"bytes":19}\n');
    assert.equal(empty!.stdout, '{"sent":true,"bytes":0}\n');
    assert.equal((await ok(['mq', 'recv', name, '--count', '4', '--json'])).stdout,
      `{"data":"${binary.toString('base64')}","encoding":"base64","priority":7}\n` +
      '{"data":"a","priority":3}\n{"data":"from stdin\\nline two","priority":2}\n{"data":"","priority":0}\n');
    // Without --json the bytes are written as they are.
    q.sendSync(binary);
    assert.deepEqual((await ok(['mq', 'recv', name])).stdoutBytes, Buffer.concat([binary, Buffer.from('\n')]));
    assert.equal(q.attributes().messages, 0);
    q.unlink();
  });

  it('POSIX: refuses --type, out-of-range priorities and oversize messages', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 2, maxMessageSize: 8 });
    const [sendType, recvType, priority, tooLarge] = await all([
      () => fails(['mq', 'send', name, 'x', '--type', '2'], 2, 'ERR_IPC_USAGE'),
      () => fails(['mq', 'recv', name, '--type', '2', '--nonblock'], 2, 'ERR_IPC_USAGE'),
      () => fails(['mq', 'send', name, 'x', '--priority', '32768'], 2, 'ERR_IPC_USAGE'),
      () => fails(['mq', 'send', name, '123456789'], 1, 'ERR_IPC_MESSAGE_TOO_LARGE'),
    ]);
    assert.match(sendType!, /--type applies to System V queues; .* is a POSIX queue/);
    assert.match(recvType!, /--type applies to System V queues/);
    assert.match(priority!, /--priority must be an integer from 0 to 32767/);
    assert.match(tooLarge!, /A 9-byte message does not fit .*: its limit is 8 bytes/);
    assert.equal(q.attributes().messages, 0);
    await ok(['mq', 'send', name, '12345678']);
    assert.equal(q.tryReceive()?.data.toString(), '12345678');
    q.unlink();
  });

  it('System V: --type n, --type=-n and type 0, with --json and stdin', async () => {
    const key = objects.key();
    const address = formatKey(key);
    using q = SysvMessageQueue.create(key);
    q.sendSync(2, Buffer.from('hello'));
    assert.equal((await ok(['mq', 'send', address, 'world', '--type', '3', '--json'])).stdout, '{"sent":true,"bytes":5}\n');
    await ok(['mq', 'send', address, '-'], 'one');
    q.sendSync(2, Buffer.from('two'));
    assert.equal((await ok(['mq', 'recv', address, '--type', '2', '--json'])).stdout, '{"data":"hello","type":2}\n');
    // The lowest type <= 3 is the type-1 message, although it was sent after "world".
    assert.equal((await ok(['mq', 'recv', address, '--type=-3', '--json'])).stdout, '{"data":"one","type":1}\n');
    // Type 0: the first message in the queue.
    assert.equal((await ok(['mq', 'recv', address, '--json'])).stdout, '{"data":"world","type":3}\n');
    assert.equal((await ok(['mq', 'recv', String(key)])).stdout, 'two\n');

    const binary = Buffer.from([0xc3, 0x28, 0xa0, 0xa1]);
    await ok(['mq', 'send', address, '-', '--type', '9'], binary);
    const [priority, typeZero] = await all([
      () => fails(['mq', 'send', address, 'x', '--priority', '1'], 2, 'ERR_IPC_USAGE'),
      () => fails(['mq', 'send', address, 'x', '--type', '0'], 2, 'ERR_IPC_USAGE'),
    ]);
    assert.match(priority!, /--priority applies to POSIX queues/);
    assert.match(typeZero!, /--type must be an integer from 1/);
    assert.equal((await ok(['mq', 'recv', address, '--json'])).stdout, `{"data":"${binary.toString('base64')}","encoding":"base64","type":9}\n`);
    assert.equal(q.stat().messages, 0);
    q.remove();
  });

  it('POSIX: empty and full queues fail with EAGAIN (--nonblock) or ERR_IPC_TIMEOUT (--timeout)', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 1, maxMessageSize: 16 });
    const [nonblock, timed, tryOnce] = await all([
      () => ipckit(['mq', 'recv', name, '--nonblock']),
      () => ipckit(['mq', 'recv', name, '--timeout', '100']),
      () => ipckit(['mq', 'recv', name, '--timeout', '0']),
    ]);
    assert.deepEqual([nonblock!.status, nonblock!.stdout], [1, '']);
    assert.match(nonblock!.stderr, /^EAGAIN: mq_receive .* The queue is empty and --nonblock was given\.\n$/);
    assert.deepEqual([timed!.status, timed!.stdout], [1, '']);
    assert.equal(timed!.stderr, `ERR_IPC_TIMEOUT: receive on ${name} timed out after 100 ms. Wait longer, or use the try* call to poll.\n`);
    assert.ok(timed!.elapsedMs >= 100, `returned after ${timed!.elapsedMs} ms`);
    assert.deepEqual([tryOnce!.status, tryOnce!.stderr.split(':')[0]], [1, 'ERR_IPC_TIMEOUT']);

    q.sendSync(Buffer.from('first'));
    const [full, fullTimed] = await all([
      () => fails(['mq', 'send', name, 'second', '--nonblock'], 1, 'EAGAIN'),
      () => fails(['mq', 'send', name, 'second', '--timeout', '100'], 1, 'ERR_IPC_TIMEOUT'),
    ]);
    assert.match(full!, /^EAGAIN: mq_send .* The queue is full and --nonblock was given\.\n$/);
    assert.match(fullTimed!, /send on .* timed out after 100 ms/);
    // --count stops at the first failure, after printing what it received.
    const partial = await ipckit(['mq', 'recv', name, '--count', '2', '--nonblock']);
    assert.equal(partial.status, 1);
    assert.equal(partial.stdout, 'first\n');
    assert.ok(partial.stderr.startsWith('EAGAIN: '), partial.stderr);
    q.unlink();
  });

  it('System V: empty and full queues fail with EAGAIN (--nonblock) or ERR_IPC_TIMEOUT (--timeout)', async () => {
    const key = objects.key();
    const address = formatKey(key);
    using q = SysvMessageQueue.create(key, { maxBytes: 8 });
    const [empty] = await all([
      () => fails(['mq', 'recv', address, '--nonblock'], 1, 'EAGAIN'),
      () => fails(['mq', 'recv', address, '--timeout', '100'], 1, 'ERR_IPC_TIMEOUT'),
    ]);
    assert.match(empty!, /^EAGAIN: msgrcv .* No matching message is queued and --nonblock was given\.\n$/);
    q.sendSync(4, Buffer.from('12345678'));
    const [, , full] = await all([
      // A message is queued, but not of the type asked for.
      () => fails(['mq', 'recv', address, '--type', '5', '--nonblock'], 1, 'EAGAIN'),
      () => fails(['mq', 'recv', address, '--type', '-3', '--timeout', '50'], 1, 'ERR_IPC_TIMEOUT'),
      () => fails(['mq', 'send', address, 'x', '--nonblock'], 1, 'EAGAIN'),
      () => fails(['mq', 'send', address, 'x', '--timeout', '100'], 1, 'ERR_IPC_TIMEOUT'),
    ]);
    assert.match(full!, /^EAGAIN: msgsnd .* The queue is full and --nonblock was given\.\n$/);
    assert.equal((await ok(['mq', 'recv', address, '--type', '4', '--nonblock'])).stdout, '12345678\n');
    assert.equal(q.stat().messages, 0);
    q.remove();
  });

  it('POSIX: a blocking recv waits until another process sends', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 2, maxMessageSize: 32 });
    const receiver = launch(['mq', 'recv', name, '--json']);
    const pid = receiver.child.pid!;
    // Its event loop sleeps watching the queue's descriptor: the receive waits.
    await waitingOnLoop(pid, name);
    assert.equal(receiver.child.exitCode, null, 'the receiver exited instead of waiting');
    assert.equal(q.attributes().messages, 0);
    await q.send(Buffer.from('wake up'), { priority: 4 });
    const woke = await receiver.done;
    assert.deepEqual([woke.status, woke.stdout, woke.stderr], [0, '{"data":"wake up","priority":4}\n', '']);
    assert.equal(q.attributes().messages, 0);
    q.unlink();
  });

  it('System V: a blocking recv of one type waits, ignores other types, and is released by a matching send', async () => {
    const key = objects.key();
    const address = formatKey(key);
    using q = SysvMessageQueue.create(key);
    const receiver = launch(['mq', 'recv', address, '--type', '7']);
    const pid = receiver.child.pid!;
    await blockedIn(pid, 'msgrcv', { where: onSysvQueue(q.id) });
    q.sendSync(1, Buffer.from('not for you'));
    // A send hands its message to a matching receiver asleep in msgrcv before it returns: this one
    // is still queued, and the receiver still waits.
    assert.equal(q.stat().messages, 1);
    await blockedIn(pid, 'msgrcv', { where: onSysvQueue(q.id) });
    assert.equal(receiver.child.exitCode, null, 'the receiver exited instead of waiting');
    q.sendSync(7, Buffer.from('for type 7'));
    const woke = await receiver.done;
    assert.deepEqual([woke.status, woke.stdout, woke.stderr], [0, 'for type 7\n', '']);
    // (lastReceivePid is not checked here: when a send hands the message straight to a
    // waiting receiver, the kernel records the receiving thread's id, not the process id.)
    const st = q.stat();
    assert.equal(st.messages, 1);
    assert.equal(st.lastSendPid, process.pid);
    assert.equal(q.tryReceive()?.data.toString(), 'not for you');
    q.remove();
  });
});

describe('ipckit mq recv and a reader that leaves', () => {
  /** The messages left in a POSIX queue, in the order a receiver gets them. */
  function drainPosix(q: PosixMessageQueue): string[] {
    const left: string[] = [];
    for (let m = q.tryReceive(); m !== undefined; m = q.tryReceive()) left.push(m.data.toString());
    return left;
  }

  function drainSysv(q: SysvMessageQueue): string[] {
    const left: string[] = [];
    for (let m = q.tryReceive(); m !== undefined; m = q.tryReceive()) left.push(`${m.type}:${m.data.toString()}`);
    return left;
  }

  it('takes no message once stdout\'s reader is gone: exit 1 with EPIPE, every message still queued', async () => {
    const name = objects.name();
    const key = objects.key();
    using posix = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 64 });
    using sysv = SysvMessageQueue.create(key);
    posix.sendSync(Buffer.from('m0'));
    posix.sendSync(Buffer.from('m1'));
    sysv.sendSync(3, Buffer.from('s0'));
    sysv.sendSync(4, Buffer.from('s1'));
    const address = formatKey(key);
    const [waiting, nonblock] = await all([
      () => launchIntoPipe(['mq', 'recv', name, '--count', '2'], { readerGone: true }).done,
      () => launchIntoPipe(['mq', 'recv', address, '--count', '2', '--nonblock', '--json'], { readerGone: true }).done,
    ]);
    assert.deepEqual([waiting!.status, waiting!.stderr], [1,
      `EPIPE: stdout's reader left after 0 of 2 messages. Nothing more was taken: the messages not taken stay in ${name}.\n`]);
    assert.deepEqual([nonblock!.status, JSON.parse(nonblock!.stderr)], [1, { error: {
      code: 'EPIPE', errno: -32,
      message: `stdout's reader left after 0 of 2 messages. Nothing more was taken: the messages not taken stay in ${address}.`,
    } }]);
    assert.ok(nonblock!.stderr.endsWith('}\n') && !nonblock!.stderr.slice(0, -1).includes('\n'), nonblock!.stderr);
    assert.deepEqual(drainPosix(posix), ['m0', 'm1']);
    assert.deepEqual(drainSysv(sysv), ['3:s0', '4:s1']);
    posix.unlink();
    sysv.remove();
  });

  it('stops waiting as soon as the reader leaves, without taking the next message', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 64 });
    const run = launchIntoPipe(['mq', 'recv', name, '--count', '3']);
    await waitingOnLoop(run.pid, name);
    q.sendSync(Buffer.from('m0'));
    assert.equal(await run.readLine(), 'm0');
    run.readEnd.close();
    // Nothing is sent now: a receiver that learns of its reader only by writing would wait forever.
    const { result, unblocked } = await exitOnItsOwn(run.done, () => q.sendSync(Buffer.from('unblock')));
    assert.equal(unblocked, false, `recv did not notice that its reader left: ${JSON.stringify(result)}`);
    assert.deepEqual([result.status, result.stderr], [1,
      `EPIPE: stdout's reader left after 1 of 3 messages. Nothing more was taken: the messages not taken stay in ${name}.\n`]);
    q.sendSync(Buffer.from('m1'));
    assert.deepEqual(drainPosix(q), ['m1']);
    q.unlink();
  });

  it('POSIX --json: a message taken and then not printed is named as lost, with its data; exit 1, the rest stay queued', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 8000 });
    const big = 'x'.repeat(6000);
    q.sendSync(Buffer.from(big), { priority: 5 });
    q.sendSync(Buffer.from('m1'));
    q.sendSync(Buffer.from('m2'));
    // Its JSON line (6000 bytes and more) cannot fit a 4096-byte pipe that nobody reads: the write stays unfinished.
    const run = launchIntoPipe(['mq', 'recv', name, '--count', '3', '--json'], { capacity: 4096 });
    const first = await run.readEnd.read({ maxBytes: 100 });
    assert.equal(first?.toString(), `{"data":"${big.slice(0, 91)}`);
    run.readEnd.close();
    const r = await run.done;
    assert.equal(r.status, 1);
    const message = `Message 1 of 3 (priority 5, 6000 bytes) was taken from ${name} but could not be printed: stdout's reader left. ` +
      `That message is lost (a queue cannot take one back); the messages not taken stay in ${name}.`;
    assert.deepEqual(JSON.parse(r.stderr), {
      error: { code: 'EPIPE', message, errno: -32, syscall: 'write', lost: { data: big, priority: 5 } },
    });
    assert.deepEqual(drainPosix(q), ['m1', 'm2']);
    q.unlink();
  });

  it('System V: a message taken and then not printed is named as lost on stderr; exit 1, the rest stay queued', async () => {
    const key = objects.key();
    const address = formatKey(key);
    using q = SysvMessageQueue.create(key);
    q.sendSync(4, Buffer.alloc(6000, 'y'));
    q.sendSync(5, Buffer.from('next'));
    const run = launchIntoPipe(['mq', 'recv', address, '--count', '2'], { capacity: 4096 });
    assert.equal((await run.readEnd.read({ maxBytes: 10 }))?.toString(), 'yyyyyyyyyy');
    run.readEnd.close();
    const r = await run.done;
    assert.deepEqual([r.status, r.stderr], [1,
      `EPIPE: Message 1 of 2 (type 4, 6000 bytes) was taken from ${address} but could not be printed: stdout's reader left. ` +
      `That message is lost (a queue cannot take one back); the messages not taken stay in ${address}.\n`]);
    assert.deepEqual(drainSysv(q), ['5:next']);
    q.remove();
  });
});

describe('ipckit mq stat, mq rm and rm', () => {
  it('POSIX stat: text and --json', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 3, maxMessageSize: 100 });
    q.sendSync(Buffer.from('queued'));
    const [asJson, asText] = await all([() => ok(['mq', 'stat', name, '--json']), () => ok(['mq', 'stat', name])]);
    const info = json(asJson!.stdout);
    const limits = info.limits as Record<string, number>;
    delete info.limits;
    assert.deepEqual(info, { family: 'posix', name, maxMessages: 3, maxMessageSize: 100, messages: 1, mode: 0o600, uid: process.getuid!(), gid: process.getgid!() });
    assert.deepEqual(asText!.stdout.split('\n'), [
      'family           posix', `name             ${name}`, 'maxMessages      3', 'maxMessageSize   100', 'messages         1',
      'mode             0600', `uid              ${process.getuid!()}`, `gid              ${process.getgid!()}`,
      `kernel limits    msgMax=${limits.msgMax} msgsizeMax=${limits.msgsizeMax} msgDefault=${limits.msgDefault} ` +
      `msgsizeDefault=${limits.msgsizeDefault} queuesMax=${limits.queuesMax} rlimitBytes=${limits.rlimitBytes ?? '?'}`,
      '',
    ]);
    // stat does not consume the message.
    assert.equal(q.attributes().messages, 1);
    q.unlink();
  });

  it('System V stat: depth, bytes, capacity and the pids of the last sender and receiver', async () => {
    const key = objects.key();
    const address = formatKey(key);
    await ok(['mq', 'create', address, '--max-bytes', '2048']);
    const first = await ok(['mq', 'send', address, 'hello', '--type', '3']);
    const second = await ok(['mq', 'send', address, '-', '--type', '1'], 'abc');
    assert.notEqual(first.pid, second.pid);
    const info = json((await ok(['mq', 'stat', address, '--json'])).stdout);
    assert.deepEqual(
      { messages: info.messages, bytes: info.bytes, maxBytes: info.maxBytes, lastSendPid: info.lastSendPid, lastReceivePid: info.lastReceivePid, mode: info.mode },
      { messages: 2, bytes: 8, maxBytes: 2048, lastSendPid: second.pid, lastReceivePid: 0, mode: 0o600 });
    assert.equal(typeof info.lastSendTime, 'string');
    assert.equal(info.lastReceiveTime, null);

    const receiver = await ok(['mq', 'recv', address, '--type', '3']);
    assert.equal(receiver.stdout, 'hello\n');
    const [after, text] = await all([() => ok(['mq', 'stat', address, '--json']), () => ok(['mq', 'stat', address])]);
    const now = json(after!.stdout);
    assert.deepEqual(
      { messages: now.messages, bytes: now.bytes, lastSendPid: now.lastSendPid, lastReceivePid: now.lastReceivePid },
      { messages: 1, bytes: 3, lastSendPid: second.pid, lastReceivePid: receiver.pid });
    assert.equal(typeof now.lastReceiveTime, 'string');
    const lines = text!.stdout;
    for (const line of [`key              ${address}`, 'mode             0600', 'messages         1', 'bytes            3',
      'maxBytes         2048', `lastSendPid      ${second.pid}`, `lastReceivePid   ${receiver.pid}`]) {
      assert.ok(lines.includes(`\n${line}\n`), `${JSON.stringify(line)} not in ${lines}`);
    }
    assert.ok(lines.startsWith(`family           sysv\naddress          ${address}\n`), lines);
    assert.match(lines, /\nkernel limits    msgmax=\d+ msgmnb=\d+ msgmni=\d+\n$/);
    await ok(['mq', 'rm', address]);
  });

  it('mq rm and rm remove a queue; stat, recv, send and rm then fail with ENOENT', async () => {
    const name = objects.name();
    PosixMessageQueue.create(name).close();
    assert.equal((await ok(['mq', 'rm', name])).stdout, `removed ${name} (message queue)\n`);
    assert.equal(posixQueueExists(name), false);
    const [stat, , , , top] = await all([
      () => fails(['mq', 'stat', name], 1, 'ENOENT'),
      () => fails(['mq', 'recv', name, '--nonblock'], 1, 'ENOENT'),
      () => fails(['mq', 'send', name, 'x'], 1, 'ENOENT'),
      () => fails(['mq', 'rm', name], 1, 'ENOENT'),
      () => fails(['rm', name], 1, 'ENOENT'),
    ]);
    assert.match(stat!, /No such queue: create it first/);
    assert.equal(top, `ENOENT: Nothing to remove at ${name}: no message queue, shared memory segment, semaphore or FIFO has this address. Run "ipckit ls" to see what exists.\n`);

    PosixMessageQueue.create(name).close();
    assert.equal((await ok(['rm', name])).stdout, `removed ${name} (message queue)\n`);
    assert.equal(posixQueueExists(name), false);

    const key = objects.key();
    const address = formatKey(key);
    SysvMessageQueue.create(key).close();
    assert.equal((await ok(['rm', address, '--json'])).stdout, `{"removed":"${address}","kind":"mq"}\n`);
    assert.equal(sysvQueueKeys().has(key), false);
    const [sysvStat] = await all([
      () => fails(['mq', 'stat', address], 1, 'ENOENT'),
      () => fails(['rm', address], 1, 'ENOENT'),
      () => fails(['mq', 'rm', address], 1, 'ENOENT'),
    ]);
    assert.match(sysvStat!, /No queue has this key/);

    SysvMessageQueue.create(key).close();
    assert.equal((await ok(['mq', 'rm', address, '--json'])).stdout, `{"removed":"${address}","kind":"mq"}\n`);
    assert.equal(sysvQueueKeys().has(key), false);
  });

  it('removes a System V queue by id:N', async () => {
    const key = objects.key();
    const q = SysvMessageQueue.create(key);
    q.close();
    assert.equal((await ok(['rm', `id:${q.id}`])).stdout, `removed id:${q.id} (message queue)\n`);
    assert.equal(sysvQueueKeys().has(key), false);
  });
});

describe('cli mq cleanup', () => {
  it('leaves no queue and no child process behind', async () => {
    await killAllPeers();
    assert.equal(runningChildren(), 0);
    assert.deepEqual(objects.leftovers(), []);
  });
});
