/**
 * `ipckit` help, usage errors and hostile addresses, run as real child
 * processes: exit status 2, exact messages, and nothing created.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Fifo, PosixMessageQueue, PosixSharedMemory, SysvMessageQueue, formatKey } from '../src/index.js';
import { native } from '../src/native.js';
import { CLI, all, describeRun, fails, ipckit, ok } from './helpers/cli.js';
import { ObjectTracker, sysvQueueKeys, sysvQueues } from './helpers/objects.js';
import { asUser, canRunAs, killAllPeers, runningChildren, trackChild } from './helpers/peer.js';

const objects = new ObjectTracker();
const INDEX = new URL('../src/index.js', import.meta.url).href;

after(async () => {
  await killAllPeers();
  objects.cleanup();
});

const ADDRESS_HELP = 'ADDRESS: /name for a POSIX queue; 0x1234, 4660, ftok:PATH:ID or id:N for a System V queue.';

describe('ipckit help and usage errors', () => {
  it('--version prints the package version (and -V, and --json); anything after it is a usage error', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal((await ok(['--version'])).stdout, `ipckit ${version}\n`);
    assert.equal((await ok(['-V'])).stdout, `ipckit ${version}\n`);
    assert.equal((await ok(['--version', '--json'])).stdout, `${JSON.stringify({ version })}\n`);
    await fails(['--version', 'mq'], 2, 'ERR_IPC_USAGE');
  });

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
      [['channel', 'recv', '--help'], 'Usage: ipckit channel recv <name> [options]'],
      [['ls', '--help'], 'Usage: ipckit ls [options]'],
      [['rm', '--help'], 'Usage: ipckit rm <address> [options]'],
      [['watch', '--help'], 'Usage: ipckit watch [options]'],
      [['tour', '--help'], 'Usage: ipckit tour [chapter...] [options]'],
      [['bench', '--help'], 'Usage: ipckit bench [mechanism...] [options]'],
      [['sem', '--help'], 'Usage: ipckit sem <command> [options]'],
      [['sem', 'wait', '--help'], 'Usage: ipckit sem wait <address> [options]'],
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
    for (const noun of ['mq', 'sem', 'channel', 'ls', 'watch', 'rm', 'tour', 'bench']) assert.match(root!, new RegExp(`\\n  ${noun} +\\S`));
    const [sem, semWait] = outputs.slice(-2);
    assert.ok(sem!.includes('\nADDRESS: /name for a POSIX named semaphore; 0x1234, 4660, ftok:PATH:ID or id:N for a System V semaphore set.\n'));
    for (const verb of ['create', 'wait', 'post', 'stat', 'rm']) assert.match(sem!, new RegExp(`\\n  ${verb} +\\S`));
    assert.match(semWait!, /\n {6}--index I +System V: which semaphore of the set \(default 0\)\n/);
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
      [['rm', '--kind', 'pipe', '/x'], 'ERR_IPC_USAGE: --kind must be mq, shm, channel, sem, fifo or socket; got "pipe".\n'],
      [['tour', 'bogus'], /Unknown tour chapter "bogus"; chapters: mq, shm, sem, pipe, signal, socket, server, channel\./],
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

describe('ipckit bad arguments are usage errors whether or not the object exists', () => {
  it('exits 2 with the same message for a missing and an existing object: arguments are checked before any object is', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-usage-'));
    const existing = { posix: objects.name(), sysv: formatKey(objects.key()), shm: objects.shmName(), fifo: path.join(dir, 'fifo') };
    const missing = { posix: objects.name(), sysv: formatKey(objects.key()), shm: objects.shmName(), fifo: path.join(dir, 'none') };
    PosixMessageQueue.create(existing.posix).close();
    SysvMessageQueue.create(existing.sysv).close();
    PosixSharedMemory.create(existing.shm, { size: 64 }).close();
    Fifo.create(existing.fifo);
    try {
      type Target = typeof existing;
      const cases: [(t: Target) => string[], string][] = [
        [(t) => ['mq', 'send', t.posix, 'x', '--priority', '32768'], '--priority must be an integer from 0 to 32767; got "32768".'],
        [(t) => ['mq', 'send', t.posix, 'x', '--type', '2'], `--type applies to System V queues; ${'ADDRESS'} is a POSIX queue (use --priority).`],
        [(t) => ['mq', 'send', t.sysv, 'x', '--type', '0'], '--type must be an integer from 1 to 9007199254740991; got "0".'],
        [(t) => ['mq', 'send', t.sysv, 'x', '--priority', '1'], `--priority applies to POSIX queues; ${'ADDRESS'} is a System V queue (use --type).`],
        [(t) => ['mq', 'recv', t.posix, '--type', '2'], `--type applies to System V queues; ${'ADDRESS'} is a POSIX queue (use --priority).`],
        [(t) => ['mq', 'recv', t.sysv, '--type', '99999999999999999999'], '--type must be an integer from -9007199254740991 to 9007199254740991; got "99999999999999999999".'],
        [(t) => ['mq', 'recv', t.sysv, '--count', '0'], '--count must be an integer from 1 to 2147483647; got "0".'],
        [(t) => ['shm', 'read', t.shm, '--length', '-1'], '--length must be an integer from 0 to 9007199254740991; got "-1".'],
        [(t) => ['shm', 'write', t.shm, 'x', '--offset', 'x'], '--offset must be an integer from 0 to 9007199254740991; got "x".'],
        [(t) => ['fifo', 'read', t.fifo, '--count', '0'], '--count must be an integer from 1 to 2147483647; got "0".'],
        [(t) => ['fifo', 'write', t.fifo, 'x', '--timeout', 'soon'], '--timeout must be an integer from 0 to 2147483647; got "soon".'],
      ];
      await all(cases.flatMap(([args, expected]) => [existing, missing].map((target) => async () => {
        const line = args(target);
        const stderr = await fails(line, 2, 'ERR_IPC_USAGE');
        assert.equal(stderr, `ERR_IPC_USAGE: ${expected.replace('ADDRESS', line[2]!)}\n`, line.join(' '));
      })));
    } finally {
      PosixMessageQueue.unlink(existing.posix);
      SysvMessageQueue.remove(existing.sysv);
      PosixSharedMemory.unlink(existing.shm);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ipckit --json failures', () => {
  it('prints every failure as one JSON object on stderr, with the exit status of the text form', async () => {
    const name = objects.name();
    const cases: [string[], 1 | 2, string][] = [
      [['frobnicate', '--json'], 2, 'ERR_IPC_USAGE'],
      [['mq', 'stat', '/x', '--frob', '--json'], 2, 'ERR_IPC_USAGE'],
      [['mq', 'recv', '/x', '--json', '/y'], 2, 'ERR_IPC_USAGE'],
      [['mq', 'stat', 'jobs', '--json'], 2, 'ERR_IPC_INVALID_ADDRESS'],
      [['mq', 'stat', name, '--json'], 1, 'ENOENT'],
      [['mq', 'recv', name, '--nonblock', '--json'], 1, 'ENOENT'],
      [['rm', name, '--json'], 1, 'ENOENT'],
      [['shm', 'read', name, '--json'], 1, 'ENOENT'],
      [['fifo', 'read', `/nonexistent-ipckit-${process.pid}/fifo`, '--nonblock', '--json'], 1, 'ENOENT'],
      [['signal', 'send', '123', 'SIGFOO', '--json'], 2, 'ERR_IPC_INVALID_ARGUMENT'],
      [['signal', 'wait', 'KILL', '--json'], 1, 'ERR_IPC_UNCATCHABLE'],
      [['pipe', 'run', '--json', '--', 'no-such-command-ipckit'], 1, 'ENOENT'],
      [['tour', 'bogus', '--json'], 2, 'ERR_IPC_USAGE'],
    ];
    const [, , , , stat] = await all(cases.map(([args, status, code]) => () => fails(args, status, code)));
    assert.deepEqual(JSON.parse(stat!), { error: {
      code: 'ENOENT', errno: -2, syscall: 'mq_open', address: name,
      message: `mq_open ${name} failed: No such file or directory (ENOENT). No such queue: create it first (PosixMessageQueue.create or ipckit mq create).`,
    } });
    // "--json" after "--" belongs to the pipeline's commands, not to ipckit.
    const text = await fails(['pipe', 'run', '--', 'no-such-command-ipckit', '--json'], 1, 'ENOENT');
    assert.ok(text.startsWith('ENOENT: '), text);
  });
});

describe('ipckit and a stdout that cannot be written', () => {
  /** Runs `ipckit <args>` with its stdout /dev/full, where every write fails with ENOSPC. */
  async function intoFullDevice(args: string[]): Promise<{ status: number | null; stderr: string }> {
    const full = openSync('/dev/full', 'w');
    try {
      const child = trackChild(spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', full, 'pipe'] }));
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
      const status = await new Promise<number | null>((resolve) => child.once('close', resolve));
      return { status, stderr };
    } finally {
      closeSync(full);
    }
  }

  it('a failed write is the command\'s failure, reported once; a consumer names the message it lost', async (t) => {
    if (!existsSync('/dev/full')) {
      t.skip('no /dev/full on this machine');
      return;
    }
    const name = objects.name();
    const segment = objects.shmName();
    using q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 64 });
    PosixSharedMemory.create(segment, { size: 16 }).close();
    q.sendSync(Buffer.from('one'));
    q.sendSync(Buffer.from('two'));
    const [recv, read, list] = await all([
      () => intoFullDevice(['mq', 'recv', name, '--count', '2']),
      () => intoFullDevice(['shm', 'read', segment, '--length', '4']),
      () => intoFullDevice(['ls', '--json']),
    ]);
    assert.deepEqual(recv, { status: 1, stderr: `ENOSPC: Message 1 of 2 (priority 0, 3 bytes) was taken from ${name} but could not be printed: ` +
      `writing to stdout failed with ENOSPC. That message is lost (a queue cannot take one back); the messages not taken stay in ${name}.\n` });
    assert.equal(q.tryReceive()?.data.toString(), 'two');
    assert.deepEqual(read, { status: 1, stderr: 'ENOSPC: write stdout failed: No space left on device (ENOSPC)\n' });
    assert.deepEqual([list!.status, JSON.parse(list!.stderr)], [1, { error: {
      code: 'ENOSPC', message: 'write stdout failed: No space left on device (ENOSPC)', errno: -28, syscall: 'write', address: 'stdout',
    } }]);
    q.unlink();
    PosixSharedMemory.unlink(segment);
  });
});

describe('ipckit hostile addresses', () => {
  const VERBS = (address: string): string[][] => [['mq', 'create', address], ['mq', 'send', address, 'x'],
    ['mq', 'recv', address, '--nonblock'], ['mq', 'stat', address], ['mq', 'rm', address], ['rm', address]];

  it('exits 2 with ERR_IPC_INVALID_ADDRESS for malformed addresses', async () => {
    // What a lenient reading of these addresses would create: a queue at the key of ftok:/tmp:0 taken
    // as given, or a private one (key 0, IPC_PRIVATE: "0", "0x100000000" cut to 32 bits, "jobs" read
    // as a number). No test of this suite creates a private queue, so a new one would be this test's.
    const privateQueues = (): number[] => sysvQueues().filter((q) => q.key === 0).map((q) => q.id);
    const privateBefore = new Set(privateQueues());
    const ftokKey = native.ftok('/tmp', 0) >>> 0;
    // Every verb parses its address the same way: all of them for one address, `mq stat` for the others.
    const hostile = ['/a/b', '0', '/', '/..', 'x/y', '0x100000000', 'id:abc', `/${'a'.repeat(256)}`, 'ftok:/tmp:0', ''];
    const checks = [...VERBS('jobs'), ...hostile.map((address) => ['mq', 'stat', address])]
      .map((args) => () => fails(args, 2, 'ERR_IPC_INVALID_ADDRESS'));
    const [jobs, , , , , , slash, zero] = await all(checks);
    assert.equal(jobs, 'ERR_IPC_INVALID_ADDRESS: Cannot tell what "jobs" names: use /name for a POSIX message queue, ' +
      '0x1234 or 4660 for a System V key, ftok:PATH:ID, or id:N for a System V identifier.\n');
    assert.equal(slash, 'ERR_IPC_INVALID_ADDRESS: Invalid POSIX message queue name "/a/b": only the leading character may be "/".\n');
    assert.match(zero!, /^ERR_IPC_INVALID_ADDRESS: Invalid System V key "0" \(0 is IPC_PRIVATE, which no other process can open by key\)/);
    assert.deepEqual(privateQueues().filter((id) => !privateBefore.has(id)), []);
    assert.equal(sysvQueueKeys().has(ftokKey), false);
  });

  it('an ftok address of a missing file is a system error: exit 1 with ENOENT', async () => {
    const missing = `/nonexistent-ipckit-${process.pid}/file`;
    const address = `ftok:${missing}:1`;
    const [stat, , top] = await all([['mq', 'stat', address], ['mq', 'create', address], ['rm', address]]
      .map((args) => () => fails(args, 1, 'ENOENT')));
    assert.equal(stat, `ENOENT: ftok ${missing}:1 failed: No such file or directory (ENOENT). ` +
      'ftok derives the key from the file\'s inode: the path must exist and stay the same file.\n');
    assert.equal(top, `ENOENT: Nothing to remove at ${address}: no message queue, shared memory segment, semaphore or FIFO has this address. Run "ipckit ls" to see what exists.\n`);
  });
});

describe('ipckit and objects another user created', () => {
  it('refuses them with ERR_IPC_UNTRUSTED unless --owner names that user (or any)', { skip: !canRunAs(65534) && 'needs root and setpriv' }, async () => {
    const queue = objects.name('cli-squat');
    const segment = objects.shmName('cli-squat');
    const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-cli-owner-'));
    chmodSync(dir, 0o1777);
    const fifo = path.join(dir, 'squatted');
    try {
      const made = spawnSync(asUser(65534)[0]!, [...asUser(65534).slice(1), process.execPath, '-e', `import(${JSON.stringify(INDEX)}).then((m) => {
        m.PosixMessageQueue.create('${queue}', { mode: 0o666 }).close();
        const shm = m.PosixSharedMemory.create('${segment}', { size: 64, mode: 0o666 }); shm.write(Buffer.from('theirs')); shm.close();
        m.Fifo.create(${JSON.stringify(fifo)}, { mode: 0o666 });
      })`], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(made.status, 0, made.stderr);
      const untrusted = /belongs to uid 65534.*\{ owner: 65534 \}/;
      assert.match(await fails(['mq', 'send', queue, 'x'], 1, 'ERR_IPC_UNTRUSTED'), untrusted);
      assert.match(await fails(['mq', 'recv', queue, '--nonblock'], 1, 'ERR_IPC_UNTRUSTED'), untrusted);
      assert.match(await fails(['mq', 'stat', queue], 1, 'ERR_IPC_UNTRUSTED'), untrusted);
      assert.match(await fails(['shm', 'read', segment], 1, 'ERR_IPC_UNTRUSTED'), untrusted);
      assert.match(await fails(['shm', 'write', segment, 'mine'], 1, 'ERR_IPC_UNTRUSTED'), untrusted);
      assert.match(await fails(['fifo', 'write', fifo, 'x', '--nonblock'], 1, 'ERR_IPC_UNTRUSTED'), untrusted);
      assert.match(await fails(['fifo', 'read', fifo, '--nonblock'], 1, 'ERR_IPC_UNTRUSTED'), untrusted);
      assert.match(await fails(['fifo', 'read', fifo, '--count', '1', '--nonblock'], 1, 'ERR_IPC_UNTRUSTED'), untrusted);
      // Named, they are used.
      await ok(['mq', 'send', queue, 'hello', '--owner', '65534']);
      assert.equal((await ok(['mq', 'recv', queue, '--owner', 'any'])).stdout, 'hello\n');
      assert.equal((await ok(['shm', 'read', segment, '--owner', '65534'])).stdout, 'theirs');
      // Past the owner check, a write with no reader fails as a FIFO write does.
      await fails(['fifo', 'write', fifo, 'x', '--nonblock', '--owner', 'any'], 1, 'ENXIO');
      await fails(['mq', 'send', queue, 'x', '--owner', 'nobody'], 2, 'ERR_IPC_USAGE');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      objects.cleanup();
    }
  });
});

describe('cli usage cleanup', () => {
  it('leaves no queue and no child process behind', async () => {
    await killAllPeers();
    assert.equal(runningChildren(), 0);
    assert.deepEqual(objects.leftovers(), []);
  });
});
