/**
 * The `ipckit` command line, run as real child processes: help and usage,
 * exit codes (0 ok, 1 failed, 2 usage), exact output, and what it leaves
 * behind in the kernel.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, fstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fifo, type IpcObjectInfo, PosixMessageQueue, PosixSharedMemory, SysvMessageQueue, SysvSharedMemory, formatKey } from '../src/index.js';
import { native } from '../src/native.js';
import { ObjectTracker, posixQueueExists, sysvQueueKeys, sysvSegmentKeys } from './helpers/objects.js';
import { Peer, killAllPeers, runningChildren, trackChild } from './helpers/peer.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const MQUEUE_MAGIC = 0x19800202;
const objects = new ObjectTracker();

after(async () => {
  await killAllPeers();
  objects.cleanup();
});

interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
  pid: number;
  elapsedMs: number;
}

interface Launched {
  child: ChildProcess;
  done: Promise<CliResult>;
}

/** Starts `ipckit <args>` with `input` on its stdin; `done` resolves when it has exited (it is killed after 15 s). */
function launch(args: string[], input: string | Buffer = ''): Launched {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  trackChild(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr!.on('data', (chunk: Buffer) => err.push(chunk));
  child.stdin!.on('error', () => undefined); // The command may exit without reading stdin.
  child.stdin!.end(input);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({
        status, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr: Buffer.concat(err).toString('utf8'),
        pid: child.pid!, elapsedMs: performance.now() - started,
      });
    });
  });
  return { child, done };
}

/** Runs `ipckit <args>` to completion. */
function ipckit(args: string[], input?: string | Buffer): Promise<CliResult> {
  return launch(args, input).done;
}

function describeRun(args: string[], r: CliResult): string {
  return `ipckit ${args.join(' ')} -> status ${r.status ?? r.signal}; stdout ${JSON.stringify(r.stdout)}; stderr ${JSON.stringify(r.stderr)}`;
}

/** Runs `ipckit <args>`, asserts exit 0 and nothing on stderr. */
async function ok(args: string[], input?: string | Buffer): Promise<CliResult> {
  const r = await ipckit(args, input);
  assert.equal(r.status, 0, describeRun(args, r));
  assert.equal(r.stderr, '', describeRun(args, r));
  return r;
}

/** Runs `ipckit <args>`, asserts `status`, no stdout, and `CODE: ` opening stderr; resolves to stderr. */
async function fails(args: string[], status: 1 | 2, code: string, input?: string | Buffer): Promise<string> {
  const r = await ipckit(args, input);
  assert.equal(r.status, status, describeRun(args, r));
  assert.equal(r.stdout, '', describeRun(args, r));
  assert.ok(r.stderr.startsWith(`${code}: `), describeRun(args, r));
  assert.ok(r.stderr.endsWith('\n'), describeRun(args, r));
  return r.stderr;
}

/** Runs independent checks a few at a time (each one spawns a process). */
async function all<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs.length, Math.max(2, availableParallelism() * 2)) }, worker));
  return results;
}

/** Parses JSON-lines output; every line must be JSON and the output must end with a newline. */
function jsonLines(stdout: string): Record<string, unknown>[] {
  assert.ok(stdout.endsWith('\n'), `output does not end with a newline: ${JSON.stringify(stdout)}`);
  return stdout.slice(0, -1).split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

function json(stdout: string): Record<string, unknown> {
  const lines = jsonLines(stdout);
  assert.equal(lines.length, 1, `expected one JSON line: ${stdout}`);
  return lines[0]!;
}

async function waitUntil(what: string, predicate: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting until ${what}`);
    await sleep(10);
  }
}

/** Whether process `pid` has a POSIX message queue descriptor open. */
function holdsMessageQueue(pid: number): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return statfsSync(`/proc/${pid}/fd/${fd}`).type === MQUEUE_MAGIC;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

/** The kernel wait channels of the threads of `pid` (empty strings where hidden). */
function waitChannels(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map((tid) => {
      try {
        return readFileSync(`/proc/${pid}/task/${tid}/wchan`, 'utf8').trim();
      } catch {
        return '';
      }
    });
  } catch {
    return [];
  }
}

function posixMode(name: string): number {
  using q = PosixMessageQueue.open(name);
  return fstatSync(q.fd).mode & 0o777;
}

const ADDRESS_HELP = 'ADDRESS: /name for a POSIX queue; 0x1234, 4660, ftok:PATH:ID or id:N for a System V queue.';

describe('ipckit help and usage errors', () => {
  it('prints a Usage line and exits 0 for --help at every level', async () => {
    const cases: [string[], string][] = [
      [['--help'], 'Usage: ipckit <command> [options]'],
      [['help'], 'Usage: ipckit <command> [options]'],
      [['mq', '--help'], 'Usage: ipckit mq <command> [options]'],
      [['mq', 'create', '--help'], 'Usage: ipckit mq create <address> [options]'],
      [['mq', 'send', '--help'], 'Usage: ipckit mq send <address> <message|-> [options]'],
      [['mq', 'recv', '-h'], 'Usage: ipckit mq recv <address> [options]'],
      [['mq', 'stat', '--help'], 'Usage: ipckit mq stat <address> [options]'],
      [['mq', 'rm', '--help'], 'Usage: ipckit mq rm <address> [options]'],
      [['ls', '--help'], 'Usage: ipckit ls [options]'],
      [['rm', '--help'], 'Usage: ipckit rm <address> [options]'],
      [['tour', '--help'], 'Usage: ipckit tour [chapter...] [options]'],
      [['bench', '--help'], 'Usage: ipckit bench [mechanism...] [options]'],
    ];
    const outputs = await all(cases.map(([args, usage]) => async () => {
      const r = await ok(args);
      assert.equal(r.stdout.split('\n')[0], usage, describeRun(args, r));
      if (usage.includes('<command>')) {
        assert.match(r.stdout, /\nCommands:\n/, describeRun(args, r));
      } else {
        // Every verb takes --json and --help.
        assert.match(r.stdout, /\nOptions:\n/, describeRun(args, r));
        assert.match(r.stdout, /\n {6}--json +print machine-readable JSON\n/, describeRun(args, r));
        assert.match(r.stdout, /\n {2}-h, --help +show this help\n$/, describeRun(args, r));
      }
      return r.stdout;
    }));
    const [root, help, mq] = outputs;
    assert.equal(help, root);
    for (const noun of ['mq', 'ls', 'rm', 'tour', 'bench']) assert.match(root!, new RegExp(`\\n  ${noun} +\\S`));
    assert.ok(mq!.includes(`\n${ADDRESS_HELP}\n`));
    for (const verb of ['create', 'send', 'recv', 'stat', 'rm']) assert.match(mq!, new RegExp(`\\n  ${verb} +\\S`));
    assert.match(outputs[5]!, /\n {6}--type T +System V: 0 any \(default\), n the first of type n, -n the lowest type <= n\n/);
  });

  it('exits 2 with the group help when a group is given no command', async () => {
    await all(([[[], 'Usage: ipckit <command> [options]'], [['mq'], 'Usage: ipckit mq <command> [options]']] as const)
      .map(([args, usage]) => async () => {
        const r = await ipckit([...args]);
        assert.equal(r.status, 2, describeRun([...args], r));
        assert.equal(r.stdout.split('\n')[0], usage);
        assert.equal(r.stderr, '');
      }));
  });

  it('exits 2 with ERR_IPC_USAGE for unknown commands, options, arguments and bad values', async () => {
    // Option values are checked before any queue is looked up, so these name no queue that exists.
    const cases: [string[], string | RegExp][] = [
      [['frobnicate'], 'ERR_IPC_USAGE: Unknown command "frobnicate" for ipckit. Run "ipckit --help" to see the commands.\n'],
      [['mq', 'frob'], 'ERR_IPC_USAGE: Unknown command "frob" for ipckit mq. Run "ipckit mq --help" to see the commands.\n'],
      [['mq', 'stat', '/x', '--frob'], /Unknown option '--frob'.*Run "ipckit mq stat --help" for the options\.\n$/s],
      [['ls', 'extra'], /ipckit ls takes no arguments; got 1 argument\./],
      [['mq', 'send', '/x'], /ipckit mq send takes <address> <message\|->; got 1 argument\./],
      [['mq', 'recv', '/x', '/y'], /got 2 arguments/],
      [['mq', 'recv', '/x', '--count', '0'], /--count must be an integer from 1 to 2147483647; got "0"\./],
      [['mq', 'recv', '/x', '--timeout=-1'], /--timeout must be an integer from 0 to/],
      [['mq', 'recv', '/x', '--timeout', '-1'], /--timeout must be an integer from 0 to/],
      [['mq', 'create', '/x', '--mode', '999'], /--mode must be octal permission bits/],
      [['mq', 'create', '/x', '--max-messages', '1.5'], /--max-messages must be an integer/],
      [['rm', '--kind', 'pipe', '/x'], 'ERR_IPC_USAGE: --kind must be mq or shm; got "pipe".\n'],
      [['tour', 'bogus'], /Unknown tour chapter "bogus"; chapters: mq, shm, pipe, signal\./],
    ];
    await all(cases.map(([args, expected]) => async () => {
      const stderr = await fails(args, 2, 'ERR_IPC_USAGE');
      if (typeof expected === 'string') assert.equal(stderr, expected);
      else assert.match(stderr, expected);
    }));
  });

  it('exits 2 when --nonblock and --timeout are combined', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 2, maxMessageSize: 16 });
    const [recv] = await all([
      () => fails(['mq', 'recv', name, '--nonblock', '--timeout', '100'], 2, 'ERR_IPC_USAGE'),
      () => fails(['mq', 'send', name, 'm', '--nonblock', '--timeout', '100'], 2, 'ERR_IPC_USAGE'),
    ]);
    assert.equal(recv, 'ERR_IPC_USAGE: Use either --nonblock or --timeout, not both.\n');
    assert.equal(q.attributes().messages, 0);
    q.unlink();
  });
});

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
    await waitUntil(`ipckit ${pid} opens ${name}`, () => holdsMessageQueue(pid));
    await sleep(200);
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
    const hidden = waitChannels(process.pid).every((w) => w === '0' || w === '');
    if (hidden) await sleep(500); // The kernel hides wait channels here: give the child time to reach msgrcv.
    else await waitUntil(`ipckit ${pid} waits in msgrcv`, () => waitChannels(pid).includes('do_msgrcv'));
    q.sendSync(1, Buffer.from('not for you'));
    await sleep(150);
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
    assert.equal((await ok(['mq', 'rm', name])).stdout, '');
    assert.equal(posixQueueExists(name), false);
    const [stat, , , , top] = await all([
      () => fails(['mq', 'stat', name], 1, 'ENOENT'),
      () => fails(['mq', 'recv', name, '--nonblock'], 1, 'ENOENT'),
      () => fails(['mq', 'send', name, 'x'], 1, 'ENOENT'),
      () => fails(['mq', 'rm', name], 1, 'ENOENT'),
      () => fails(['rm', name], 1, 'ENOENT'),
    ]);
    assert.match(stat!, /No such queue: create it first/);
    assert.equal(top, `ENOENT: Nothing to remove at ${name}: no message queue or shared memory segment has this address. Run "ipckit ls" to see what exists.\n`);

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
    assert.equal((await ok(['mq', 'rm', address, '--json'])).stdout, `{"removed":"${address}"}\n`);
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

describe('ipckit hostile addresses', () => {
  const VERBS = (address: string): string[][] => [['mq', 'create', address], ['mq', 'send', address, 'x'],
    ['mq', 'recv', address, '--nonblock'], ['mq', 'stat', address], ['mq', 'rm', address], ['rm', address]];

  it('exits 2 with ERR_IPC_INVALID_ADDRESS for malformed addresses', async () => {
    const before = sysvQueueKeys();
    // Every verb parses its address the same way: all of them for one address, `mq stat` for the others.
    const hostile = ['/a/b', '0', '/', '/..', 'x/y', '0x100000000', 'id:abc', `/${'a'.repeat(256)}`, 'ftok:/tmp:0', ''];
    const checks = [...VERBS('jobs'), ...hostile.map((address) => ['mq', 'stat', address])]
      .map((args) => () => fails(args, 2, 'ERR_IPC_INVALID_ADDRESS'));
    const [jobs, , , , , , slash, zero] = await all(checks);
    assert.equal(jobs, 'ERR_IPC_INVALID_ADDRESS: Cannot tell what "jobs" names: use /name for a POSIX message queue, ' +
      '0x1234 or 4660 for a System V key, ftok:PATH:ID, or id:N for a System V identifier.\n');
    assert.equal(slash, 'ERR_IPC_INVALID_ADDRESS: Invalid POSIX message queue name "/a/b": only the leading character may be "/".\n');
    assert.match(zero!, /^ERR_IPC_INVALID_ADDRESS: Invalid System V key "0" \(0 is IPC_PRIVATE, which no other process can open by key\)/);
    assert.deepEqual([...sysvQueueKeys()].filter((k) => !before.has(k)), []);
  });

  it('an ftok address of a missing file is a system error: exit 1 with ENOENT', async () => {
    const missing = `/nonexistent-ipckit-${process.pid}/file`;
    const address = `ftok:${missing}:1`;
    const [stat, , top] = await all([['mq', 'stat', address], ['mq', 'create', address], ['rm', address]]
      .map((args) => () => fails(args, 1, 'ENOENT')));
    assert.equal(stat, `ENOENT: ftok ${missing}:1 failed: No such file or directory (ENOENT). ` +
      'ftok derives the key from the file\'s inode: the path must exist and stay the same file.\n');
    assert.equal(top, `ENOENT: Nothing to remove at ${address}: no message queue or shared memory segment has this address. Run "ipckit ls" to see what exists.\n`);
  });
});

type LsObject = IpcObjectInfo;

/** `ipckit ls --json` and `ipckit ls`, run side by side. */
async function ls(): Promise<{ objects: LsObject[]; notes: string[]; text: string }> {
  const [asJson, asText] = await all([() => ok(['ls', '--json']), () => ok(['ls'])]);
  const inventory = json(asJson!.stdout) as unknown as { objects: LsObject[]; notes: string[] };
  return { ...inventory, text: asText!.stdout };
}

/** The row of `ipckit ls` text output for `address`, split into its columns. */
function lsRow(text: string, address: string): string[] | undefined {
  const lines = text.split('\n');
  assert.deepEqual(lines[0]!.split(/\s+/), ['KIND', 'ADDRESS', 'OWNER', 'MODE', 'MESSAGES', 'BYTES', 'PROCESSES']);
  return lines.map((line) => line.split(/ {2,}/)).find((cells) => cells[1] === address);
}

const mqueueMounted = ((): boolean => {
  try {
    return statfsSync('/dev/mqueue').type === MQUEUE_MAGIC;
  } catch {
    return false;
  }
})();

describe('ipckit ls', () => {
  it('lists a System V queue with its mode, depth and last sender / receiver, alive or not', async () => {
    const key = objects.key();
    const address = formatKey(key);
    using q = SysvMessageQueue.create(key, { mode: 0o640 });
    const sender = await ok(['mq', 'send', address, 'hello']);
    const owner = userInfo().username;
    const maxBytes = Number(readFileSync('/proc/sys/kernel/msgmnb', 'utf8'));
    const base = { kind: 'sysv-mq', address, id: q.id, key, uid: process.getuid!(), owner, mode: 0o640, maxBytes };
    const pick = (o: LsObject | undefined): unknown => o && {
      kind: o.kind, address: o.address, id: o.id, key: o.key, uid: o.uid, owner: o.owner, mode: o.mode,
      messages: o.messages, bytes: o.bytes, maxBytes: o.maxBytes, processes: o.processes,
    };
    let inventory = await ls();
    assert.deepEqual(pick(inventory.objects.find((o) => o.address === address)), {
      ...base, messages: 1, bytes: 5, processes: [{ pid: sender.pid, role: 'last-send', alive: false }],
    });
    assert.deepEqual(lsRow(inventory.text, address), ['sysv-mq', address, owner, '0640', '1', '5', `sent:${sender.pid}(dead)`]);

    // A receiver that stays alive after receiving.
    const peer = new Peer('receive', { family: 'sysv', address: key, count: 1, mode: 'async', then: 'async' });
    assert.equal((await peer.next()).event, 'ready');
    assert.deepEqual(await peer.next(), { data: 'hello', type: 1 });
    assert.equal((await peer.next()).event, 'hanging');
    inventory = await ls();
    assert.deepEqual(pick(inventory.objects.find((o) => o.address === address)), {
      ...base, messages: 0, bytes: 0, processes: [
        { pid: sender.pid, role: 'last-send', alive: false }, { pid: peer.pid, role: 'last-receive', alive: true }],
    });
    assert.deepEqual(lsRow(inventory.text, address), ['sysv-mq', address, owner, '0640', '0', '0', `sent:${sender.pid}(dead) recv:${peer.pid}`]);
    await peer.kill();
    inventory = await ls();
    assert.deepEqual(inventory.objects.find((o) => o.address === address)?.processes, [
      { pid: sender.pid, role: 'last-send', alive: false }, { pid: peer.pid, role: 'last-receive', alive: false }]);
    q.remove();
  });

  it('lists a POSIX queue held open by another process, with that process as holder', async () => {
    const name = objects.name();
    PosixMessageQueue.create(name, { maxMessages: 3, maxMessageSize: 50, mode: 0o640 }).close();
    const peer = new Peer('receive', { family: 'posix', address: name, count: 1, mode: 'async' });
    assert.equal((await peer.next()).event, 'ready');
    const owner = userInfo().username;
    let inventory = await ls();
    assert.deepEqual(inventory.objects.find((o) => o.address === name), {
      kind: 'posix-mq', address: name, uid: process.getuid!(), owner, mode: 0o640,
      messages: 0, bytes: mqueueMounted ? 0 : null, maxBytes: 150,
      processes: [{ pid: peer.pid, role: 'holder', alive: true }],
    });
    assert.deepEqual(lsRow(inventory.text, name), ['posix-mq', name, owner, '0640', '0', mqueueMounted ? '0' : '?', `open:${peer.pid}`]);

    // Once the holder has exited, the queue is listed only where /dev/mqueue is mounted.
    {
      using sender = PosixMessageQueue.open(name);
      sender.sendSync(Buffer.from('bye'));
    }
    assert.deepEqual(await peer.next(), { data: 'bye', priority: 0 });
    await peer.success();
    inventory = await ls();
    const entry = inventory.objects.find((o) => o.address === name);
    if (mqueueMounted) {
      assert.deepEqual(entry?.processes, []);
    } else {
      assert.equal(entry, undefined);
      assert.equal(inventory.notes.length, 1);
      assert.match(inventory.notes[0]!, /^\/dev\/mqueue is not mounted, so POSIX message queues that no process has open cannot be listed/);
      assert.ok(inventory.text.includes(`\nnote: ${inventory.notes[0]}\n`));
    }
    PosixMessageQueue.unlink(name);
  });
});

describe('ipckit tour', () => {
  it('narrates the message-queue chapter, as text and as JSON lines, and removes everything it created', async () => {
    const before = sysvQueueKeys();
    // The two tours use their own names and keys, so they may run side by side.
    const [text, asJson] = await all([() => ok(['tour']), () => ok(['tour', 'mq', '--json'])]);
    const heading = 'Message queues: a mailbox kept by the kernel';

    const out = text!.stdout;
    assert.ok(out.startsWith(`\n=== ${heading} ===\n`), out.slice(0, 200));
    // The shared-memory chapter: a child's write seen in the parent's mapping, the race and its cure,
    // and recovery from a killed lock holder; none of its segments remain.
    assert.ok(out.includes('\n=== Shared memory: the same memory in two processes, and the lock it needs ===\n'));
    assert.ok(out.includes('reads its own mapping: "written by the child"'));
    assert.match(out, /with the segment's Mutex: counter = 400000: none lost/);
    assert.match(out, /lock\(\) failed with ERR_IPC_OWNER_DIED, holding the lock/);
    assert.deepEqual(readdirSync('/dev/shm').filter((f) => f.includes(`-${text!.pid}`)), []);
    // The pipes chapter: sort fed through a pipe, EPIPE as an error, and a FIFO met by a CLI reader.
    assert.ok(out.includes('\n=== Pipes and FIFOs: one-way byte streams ===\n'));
    assert.ok(out.includes('printed "apple\\nfig\\npear\\n"'));
    assert.match(out, /closed: EPIPE, an error, not a killed process/);
    assert.match(out, /printed "first line", "second line"/);
    assert.equal(existsSync(`${tmpdir()}/ipckit-tour-fifo-${text!.pid}`), false);
    // The signals chapter: the sender's pid and a sigqueue value, merging against queueing, and a handled SIGINT.
    assert.ok(out.includes('\n=== Signals: a notification, with the sender\'s name on it ===\n'));
    assert.ok(out.includes(`] got SIGUSR2 from pid ${text!.pid} (uid ${process.getuid!()}) by kill\n`));
    assert.ok(out.includes(`] got SIGRTMIN+1 from pid ${text!.pid} (uid ${process.getuid!()}) by sigqueue, value 42\n`));
    assert.match(out, /\] got SIGUSR2, SIGRTMIN\+1=1, SIGRTMIN\+1=2, SIGRTMIN\+1=3; then ERR_IPC_TIMEOUT waiting for the rest \(exit 1\)\n/);
    assert.ok(out.includes('  1 SIGUSR2 out of 3 arrived; 3 SIGRTMIN+1 out of 3 did, values 1, 2, 3.'));
    assert.ok(out.includes(`] its handler ran: SIGINT from pid ${text!.pid}; cleaning up for 200 ms\n`));
    assert.match(out, /\] cleaned up, exited 130\n/);
    assert.ok(out.endsWith('\nTour complete: every object it created has been removed.\n'));
    assert.ok(out.includes(`] created /ipckit-tour-${text!.pid}: 4 messages of at most 256 bytes, mode 0600\n`));
    assert.ok(out.includes(`] unlinked /ipckit-tour-${text!.pid}\n`));
    const created = /\] created System V queue (0x[0-9a-f]{8}) \(id \d+\)\n/.exec(out);
    assert.ok(created, 'the tour names its System V queue');
    assert.ok(out.includes(`] removed ${created[1]}\n`));

    const events = jsonLines(asJson!.stdout);
    assert.ok(events.length > 20);
    assert.deepEqual(events[0], { chapter: heading, ms: events[0]!.ms, event: 'chapter', title: heading });
    for (const e of events) {
      assert.ok(['chapter', 'explain', 'step'].includes(e.event as string), JSON.stringify(e));
      assert.equal(e.chapter, heading);
      assert.equal(typeof e.ms, 'number');
    }
    const steps = events.filter((e) => e.event === 'step').map((e) => e.text as string);
    assert.deepEqual(steps.filter((t) => /^received ".*" \(priority \d+\)$/.test(t)), [
      'received "server room on fire" (priority 9)', 'received "routine report" (priority 1)', 'received "lunch is ready" (priority 0)',
    ]);
    assert.deepEqual(steps.filter((t) => t.startsWith('received type ')), [
      'received type 2: "job: resize photo"', 'received type 2: "job: send mail"',
      'received type 1: "log: disk at 80%"', 'received type 3: "alert: fan failed"',
    ]);
    assert.ok(steps.includes(`unlinked /ipckit-tour-${asJson!.pid}`));
    assert.ok(events.filter((e) => e.process === 'tour').every((e) => e.pid === asJson!.pid));
    const jsonKey = steps.map((t) => /^created System V queue (0x[0-9a-f]{8}) /.exec(t)?.[1]).find((k) => k !== undefined);
    assert.ok(jsonKey);
    assert.ok(steps.includes(`removed ${jsonKey}`));

    // Nothing is left: not the two POSIX queues, not the two System V queues, nor any other new
    // queue in the tour's key range (0x7e000000..0x7effffff).
    for (const pid of [text!.pid, asJson!.pid]) assert.equal(posixQueueExists(`/ipckit-tour-${pid}`), false);
    const added = [...sysvQueueKeys()].filter((k) => !before.has(k));
    assert.equal(added.includes(Number(created[1])), false);
    assert.equal(added.includes(Number(jsonKey)), false);
    assert.deepEqual(added.filter((k) => k >>> 24 === 0x7e).map(formatKey), []);
  });
});

describe('ipckit shm', () => {
  it('POSIX: create, write, read (text, --length, --hex, --json), stat and rm', async () => {
    const name = objects.shmName();
    assert.equal((await ok(['shm', 'create', name, '--size', '256', '--mode', '640'])).stdout, `created ${name} (256 bytes)\n`);
    await ok(['shm', 'write', name, 'hello shared world']);
    await ok(['shm', 'write', name, '-', '--offset', '100'], Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    assert.equal((await ok(['shm', 'read', name])).stdout, 'hello shared world');
    assert.equal((await ok(['shm', 'read', name, '--offset', '6', '--length', '6'])).stdout, 'shared');
    assert.equal((await ok(['shm', 'read', name, '--offset', '100', '--length', '4', '--hex'])).stdout,
      '00000064  de ad be ef                                      ....\n');
    assert.deepEqual(json((await ok(['shm', 'read', name, '--offset', '100', '--length', '4', '--json'])).stdout),
      { offset: 100, length: 4, data: '3q2+7w==', encoding: 'base64' });
    const info = json((await ok(['shm', 'stat', name, '--json'])).stdout);
    assert.deepEqual({ ...info, changeTime: 'x' }, { family: 'posix', name, size: 256, mode: 0o640, uid: process.getuid!(), gid: process.getgid!(), changeTime: 'x' });
    // The library sees what the command line wrote.
    using shm = PosixSharedMemory.open(name);
    assert.equal(shm.read(0, 18).toString(), 'hello shared world');
    assert.match(await fails(['shm', 'write', name, 'x', '--offset', '256'], 2, 'ERR_IPC_INVALID_ARGUMENT'), /length must be an integer from 0 to 0/);
    await fails(['shm', 'create', name, '--size', '10'], 1, 'EEXIST');
    await fails(['shm', 'create', objects.shmName()], 2, 'ERR_IPC_USAGE');
    await fails(['shm', 'create', objects.shmName(), '--size', '0'], 2, 'ERR_IPC_USAGE');
    assert.equal((await ok(['rm', name])).stdout, `removed ${name} (shared memory segment)\n`);
    await fails(['shm', 'stat', name], 1, 'ENOENT');
  });

  it('System V: create --json, stat with the creator pid, write and read by another process, rm', async () => {
    const key = objects.shmKey();
    const address = formatKey(key);
    const created = await ok(['shm', 'create', address, '--size', '100', '--json']);
    const info = json(created.stdout);
    assert.deepEqual([info.family, info.key, info.size, info.mode, info.creatorPid, info.attachments, info.removed],
      ['sysv', key, 100, 0o600, created.pid, 0, false]);
    const writer = await ok(['shm', 'write', address, 'abc', '--offset', '10', '--json']);
    assert.deepEqual(json(writer.stdout), { written: 3, offset: 10 });
    assert.equal((await ok(['shm', 'read', address, '--offset', '10'])).stdout, 'abc');
    const stat = json((await ok(['shm', 'stat', address, '--json'])).stdout);
    assert.equal(stat.creatorPid, created.pid);
    assert.equal(stat.attachments, 0);
    const text = (await ok(['shm', 'stat', address])).stdout;
    assert.match(text, new RegExp(`^family +sysv\nkey +${address}\n`));
    // ls: the segment with its size, attach count and creator (dead by now).
    const inventory = await ls();
    const row = inventory.objects.find((o) => o.kind === 'sysv-shm' && o.address === address);
    assert.deepEqual([row?.size, row?.attachments, row?.processes[0]], [100, 0, { pid: created.pid, role: 'creator', alive: false }]);
    assert.deepEqual(lsRow(inventory.text, address)?.slice(0, 6), ['sysv-shm', address, userInfo().username, '0600', '-', '100']);
    assert.equal((await ok(['shm', 'rm', address, '--json'])).stdout, `{"removed":"${address}"}\n`);
    assert.equal(sysvSegmentKeys().has(key), false);
  });

  it('ls shows a POSIX segment with the process that maps it', async () => {
    const name = objects.shmName();
    using shm = PosixSharedMemory.create(name, { size: 4096 });
    const peer = new Peer('shm-attach', { family: 'posix', address: name });
    await peer.next();
    const inventory = await ls();
    const row = inventory.objects.find((o) => o.kind === 'posix-shm' && o.address === name);
    assert.equal(row?.size, 4096);
    assert.deepEqual(row?.processes.map((p) => p.pid).sort(), [process.pid, peer.pid].sort());
    await peer.kill('SIGKILL');
    shm.unlink();
  });

  it('ls shows a FIFO while a process has it open', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-ls-'));
    const fifo = path.join(dir, 'fifo');
    try {
      Fifo.create(fifo, { mode: 0o640 });
      const reader = Fifo.openRead(fifo, { nonBlocking: true });
      const end = await reader;
      const inventory = await ls();
      const row = inventory.objects.find((o) => o.kind === 'fifo' && o.address === fifo);
      assert.deepEqual([row?.mode, row?.processes], [0o640, [{ pid: process.pid, role: 'holder', alive: true }]]);
      assert.deepEqual(lsRow(inventory.text, fifo), ['fifo', fifo, userInfo().username, '0640', '-', '-', `open:${process.pid}`]);
      end.close();
      assert.equal((await ls()).objects.some((o) => o.address === fifo), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rm asks for --kind when a queue and a segment share an address', async () => {
    const key = objects.shmKey();
    objects.sysv.add(key);
    const address = formatKey(key);
    SysvMessageQueue.create(key).close();
    SysvSharedMemory.create(key, { size: 10 }).close();
    assert.match(await fails(['rm', address], 2, 'ERR_IPC_USAGE'), /names both a message queue and a shared memory segment: add --kind mq or --kind shm/);
    assert.equal((await ok(['rm', address, '--kind', 'shm'])).stdout, `removed ${address} (shared memory segment)\n`);
    assert.equal((await ok(['rm', address])).stdout, `removed ${address} (message queue)\n`);
  });
});

describe('ipckit pipe run', () => {
  it('connects commands like the shell\'s | and exits with the last status', async () => {
    assert.equal((await ok(['pipe', 'run', '--', 'printf', 'pear\\napple\\nfig\\n', ':::', 'sort', ':::', 'tr', 'a-z', 'A-Z'])).stdout, 'APPLE\nFIG\nPEAR\n');
    const failing = await ipckit(['pipe', 'run', '--', 'echo', 'x', ':::', 'sh', '-c', 'cat >/dev/null; exit 4']);
    assert.equal(failing.status, 4);
    const summary = await ipckit(['pipe', 'run', '--json', '--', 'sh', '-c', 'exit 3', ':::', 'cat']);
    assert.equal(summary.status, 0);
    const info = json(summary.stdout);
    assert.equal(info.status, 0);
    assert.deepEqual((info.commands as { command: string[]; status: number }[]).map((c) => [c.command, c.status]), [[['sh', '-c', 'exit 3'], 3], [['cat'], 0]]);
    assert.match(await fails(['pipe', 'run', '--', 'no-such-command-ipckit', ':::', 'cat'], 1, 'ENOENT'), /no such command on the PATH/);
    await fails(['pipe', 'run', '--', ':::', 'cat'], 2, 'ERR_IPC_USAGE');
    await fails(['pipe', 'run'], 2, 'ERR_IPC_USAGE');
  });
});

describe('a reader that closes stdout early', () => {
  /** Runs ipckit, reads `lines` lines of its stdout, then closes the pipe. */
  function readThenClose(args: string[], lines: number): Promise<{ pid: number; status: number | null; signal: string | null; stderr: string; got: string[] }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      trackChild(child);
      let stderr = '';
      let buffered = '';
      const got: string[] = [];
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        buffered += chunk;
        let newline: number;
        while (got.length < lines && (newline = buffered.indexOf('\n')) >= 0) {
          got.push(buffered.slice(0, newline));
          buffered = buffered.slice(newline + 1);
        }
        if (got.length === lines) child.stdout!.destroy();
      });
      child.on('error', reject);
      child.on('close', (status, signal) => {
        resolve({ pid: child.pid!, status, signal, stderr, got });
      });
    });
  }

  it('tour: stops printing, still removes what it created, and does not crash', async () => {
    const before = sysvQueueKeys();
    const r = await readThenClose(['tour', '--json'], 3);
    assert.equal(r.got.length, 3);
    assert.equal(r.signal, null);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(posixQueueExists(`/ipckit-tour-${r.pid}`), false);
    assert.deepEqual([...sysvQueueKeys()].filter((k) => !before.has(k) && k >>> 24 === 0x7e).map(formatKey), []);
  });

  it('mq recv --count: stops taking messages once nobody reads them', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 8, maxMessageSize: 64 });
    const run = readThenClose(['mq', 'recv', name, '--count', '8'], 1);
    await sleep(300);
    q.sendSync(Buffer.from('m0'));
    // m0 is read, the pipe is closed; m1 is received but cannot be printed, and recv stops there
    // instead of draining the queue for nobody.
    await sleep(200);
    q.sendSync(Buffer.from('m1'));
    const r = await run;
    assert.deepEqual(r.got, ['m0']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(q.attributes().messages, 0);
    q.sendSync(Buffer.from('m2'));
    assert.equal(q.attributes().messages, 1);
    q.unlink();
  });
});

describe('ipckit signal', () => {
  /** Starts `ipckit signal wait <args>` and resolves once it has printed that it is waiting. */
  async function waiting(args: string[]): Promise<Launched> {
    const run = launch(['signal', 'wait', ...args]);
    let stderr = '';
    run.child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    await waitUntil('ipckit signal wait is ready', () => stderr.includes(` in pid ${run.child.pid}\n`) || run.child.exitCode !== null);
    return run;
  }

  it('wait prints each signal with its sender, value and origin; send delivers with kill or sigqueue', async () => {
    const run = await waiting(['SIGUSR2', 'rtmin+1', '--count', '3', '--json']);
    let lines = 0;
    run.child.stdout!.on('data', (chunk: Buffer) => { lines += chunk.toString().split('\n').length - 1; });
    // Pending signals are taken lowest number first: send each only once the previous one was printed.
    const sender = await ok(['signal', 'send', String(run.child.pid), 'SIGRTMIN+1', '--value', '-42']);
    await waitUntil('the first signal is printed', () => lines === 1);
    process.kill(run.child.pid!, 'SIGUSR2');
    await waitUntil('the second signal is printed', () => lines === 2);
    const asJson = await ok(['signal', 'send', String(run.child.pid), '35', '--json']);
    assert.deepEqual(json(asJson.stdout), { signal: 'SIGRTMIN+1', number: 35, target: run.child.pid, value: null });
    const r = await run.done;
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, `waiting for SIGUSR2, SIGRTMIN+1 in pid ${r.pid}\n`);
    const uid = process.getuid!();
    assert.deepEqual(jsonLines(r.stdout), [
      { signal: 'SIGRTMIN+1', number: 35, pid: sender.pid, uid, code: -1, origin: 'sigqueue', value: -42 },
      { signal: 'SIGUSR2', number: 12, pid: process.pid, uid, code: 0, origin: 'kill', value: null },
      { signal: 'SIGRTMIN+1', number: 35, pid: asJson.pid, uid, code: 0, origin: 'kill', value: null },
    ]);
  });

  it('wait describes a signal in one line of text', async () => {
    const run = await waiting(['USR2']);
    const sender = await ok(['signal', 'send', String(run.child.pid), 'USR2', '--value', '3']);
    assert.equal(sender.stdout, '');
    const r = await run.done;
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `SIGUSR2 (12) from pid ${sender.pid} (uid ${process.getuid!()}) by sigqueue, value 3\n`);
  });

  it('wait --timeout exits 1 with ERR_IPC_TIMEOUT', async () => {
    const r = await (await waiting(['SIGUSR2', '--timeout', '50'])).done;
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^waiting for SIGUSR2 in pid \d+\nERR_IPC_TIMEOUT: /);
  });

  it('send -PGID signals a process group', async () => {
    // setsid makes sleep the leader of its own group.
    const leader = trackChild(spawn('setsid', ['sleep', '30'], { stdio: 'ignore' }));
    const ended = new Promise<[number | null, string | null]>((resolve) => leader.once('close', (code, signal) => resolve([code, signal])));
    await waitUntil('sleep leads its group', () => {
      try {
        const stat = readFileSync(`/proc/${leader.pid}/stat`, 'utf8');
        return stat.includes('(sleep)') && Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === leader.pid;
      } catch {
        return false;
      }
    });
    const r = await ok(['signal', 'send', `-${leader.pid}`, 'TERM', '--json']);
    assert.deepEqual(json(r.stdout), { signal: 'SIGTERM', number: 15, target: { group: leader.pid }, value: null });
    assert.deepEqual(await ended, [null, 'SIGTERM']);
  });

  it('list prints every signal, its default action and whether it can be handled', async () => {
    const rows = JSON.parse((await ok(['signal', 'list', '--json'])).stdout) as Record<string, unknown>[];
    assert.equal(rows.length, 62);
    assert.deepEqual(rows[0], { number: 1, name: 'SIGHUP', defaultAction: 'terminate', catchable: true });
    assert.deepEqual(rows.find((row) => row.name === 'SIGSTOP'), { number: 19, name: 'SIGSTOP', defaultAction: 'stop', catchable: false });
    const text = (await ok(['signal', 'list'])).stdout.split('\n');
    assert.equal(text[0], 'NUM  NAME         DEFAULT    CATCHABLE');
    assert.equal(text[2], '  2  SIGINT       terminate  yes');
    assert.equal(text[10], ' 10  SIGUSR1      terminate  no: Node.js uses it to start the inspector; use SIGUSR2 or a real-time signal');
    assert.equal(text.length, 64);
  });

  it('fails clearly: no such process exits 1, bad targets and signals exit 2, uncatchable signals exit 1', async () => {
    const gone = spawn('true');
    await new Promise((resolve) => gone.once('close', resolve));
    const [esrch, group, minusOne, word, noSignal, unknown, value, kill, rt] = await all([
      () => fails(['signal', 'send', String(gone.pid), 'TERM'], 1, 'ESRCH'),
      () => fails(['signal', 'send', `-${gone.pid}`, 'TERM'], 1, 'ESRCH'),
      () => fails(['signal', 'send', '-1', 'TERM'], 2, 'ERR_IPC_USAGE'),
      () => fails(['signal', 'send', 'init', 'TERM'], 2, 'ERR_IPC_USAGE'),
      () => fails(['signal', 'send', '123'], 2, 'ERR_IPC_USAGE'),
      () => fails(['signal', 'send', '123', 'SIGFOO'], 2, 'ERR_IPC_INVALID_ARGUMENT'),
      () => fails(['signal', 'send', '123', 'USR2', '--value', '1.5'], 2, 'ERR_IPC_USAGE'),
      () => fails(['signal', 'wait', 'KILL'], 1, 'ERR_IPC_UNCATCHABLE'),
      () => fails(['signal', 'wait', 'SIGRTMAX'], 1, 'ERR_IPC_UNCATCHABLE'),
    ]);
    assert.equal(esrch, `ESRCH: kill pid ${gone.pid} failed: No such process (ESRCH). The process has exited, or the pid is wrong.\n`);
    assert.match(group!, new RegExp(`^ESRCH: kill process group ${gone.pid} failed`));
    assert.match(minusOne!, /-1 is not a process group: kill\(-1\) would signal every process of this user/);
    assert.match(word!, /The target must be a pid \(1234\) or a process group as a negative number \(-1234\); got "init"\./);
    assert.match(noSignal!, /ipckit signal send takes <pid\|-pgid> <signal>; got 1 argument\./);
    assert.match(unknown!, /a signal name such as "SIGUSR2"/);
    assert.match(value!, /--value must be an integer/);
    assert.match(kill!, /never lets a process catch, block or ignore SIGKILL/);
    assert.match(rt!, /ipckit reserves it/);
  });
});

describe('ipckit cleanup', () => {
  it('leaves no queue and no child process behind', async () => {
    await killAllPeers();
    assert.equal(runningChildren(), 0);
    assert.deepEqual(objects.leftovers(), []);
  });
});
