/**
 * `ipckit sem` (create, wait, post, stat, rm) for POSIX named semaphores and
 * System V sets, run as real child processes: exit codes, exact output,
 * blocking waits released by another process, waits withdrawn by a stop
 * signal, and what each leaves in the kernel.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NamedSemaphore, SEM_VALUE_MAX, SemaphoreSet, formatKey } from '../src/index.js';
import { native } from '../src/native.js';
import { type CliResult, all, exitOnItsOwn, fails, ipckit, json, launch, ok } from './helpers/cli.js';
import { waitUntil } from './helpers/assert.js';
import { ObjectTracker, namedSemaphoreExists, sysvSemaphoreKeys } from './helpers/objects.js';
import { asUser, canRunAs, killAllPeers, runningChildren } from './helpers/peer.js';
import { blockedIn, inSegment } from './helpers/proc.js';

const objects = new ObjectTracker();
const INDEX = new URL('../src/index.js', import.meta.url).href;

after(async () => {
  await killAllPeers();
  objects.cleanup();
});

const me = (): { uid: number; gid: number } => ({ uid: process.getuid!(), gid: process.getgid!() });
const [SEMMSL, SEMMNS, SEMOPM, SEMMNI] = readFileSync('/proc/sys/kernel/sem', 'utf8').trim().split(/\s+/).map(Number);
const LIMITS = { semmsl: SEMMSL, semmns: SEMMNS, semopm: SEMOPM, semmni: SEMMNI, semvmx: 32767, semaem: 32767 };

/** A set's `sem stat --json` without the fields that change with time; those are checked to be ISO dates or null. */
function withoutTimes(info: Record<string, unknown>): Record<string, unknown> {
  const { changeTime, lastOpTime, ...rest } = info;
  assert.ok(Math.abs(Date.parse(changeTime as string) - Date.now()) < 60_000, String(changeTime));
  assert.ok(lastOpTime === null || Math.abs(Date.parse(lastOpTime as string) - Date.now()) < 60_000, String(lastOpTime));
  return rest;
}

/** Waits until the named semaphore counts `n` waiters: a `sem wait` registered as sleeping on it. */
async function waitersOf(name: string, n: number): Promise<void> {
  using sem = NamedSemaphore.open(name);
  await waitUntil(`${name} counts ${n} waiter(s)`, () => sem.waiters === n);
}

/** Waits until `n` processes are queued in the kernel waiting for semaphore `index` of the set at `key` to grow. */
async function queuedOn(key: number, index: number, n: number): Promise<void> {
  using set = SemaphoreSet.open(key);
  await waitUntil(`${n} process(es) wait on semaphore ${index} of ${formatKey(key)}`, () => set.stat().waitingForIncrease[index] === n);
}

describe('ipckit sem create', () => {
  it('creates a POSIX named semaphore with its value and exact mode (the umask does not apply); EEXIST after', async () => {
    const name = objects.semName();
    const umask = process.umask(0o077);
    let r: CliResult;
    try {
      r = await ok(['sem', 'create', name, '--value', '3', '--mode', '660', '--json']);
    } finally {
      process.umask(umask);
    }
    const info = json(r.stdout);
    assert.ok(Math.abs(Date.parse(info.changeTime as string) - Date.now()) < 60_000);
    assert.deepEqual(info, { family: 'posix', name, value: 3, waiters: 0, mode: 0o660, ...me(), changeTime: info.changeTime });
    const [text, asJson] = await all([() => fails(['sem', 'create', name], 1, 'EEXIST'), () => fails(['sem', 'create', name, '--json'], 1, 'EEXIST')]);
    assert.ok(text!.startsWith(`EEXIST: sem_open ${name} failed: File exists (EEXIST). The semaphore already exists`), text);
    assert.equal(JSON.parse(asJson!).error.syscall, 'sem_open');
    // The failed creates did not touch it.
    using sem = NamedSemaphore.open(name);
    assert.deepEqual([sem.value, sem.stat().mode], [3, 0o660]);
    sem.unlink();
  });

  it('creates a POSIX named semaphore with text output, the value 0 and the mode 0600 by default', async () => {
    const name = objects.semName();
    assert.equal((await ok(['sem', 'create', name])).stdout, `created ${name}\n`);
    using sem = NamedSemaphore.open(name);
    assert.deepEqual([sem.value, sem.waiters, sem.stat().mode], [0, 0, 0o600]);
    sem.unlink();
  });

  it('creates a System V set from a list of values, one per semaphore, with the full stat and the kernel limits', async () => {
    const key = objects.semKey();
    const address = formatKey(key);
    const info = json((await ok(['sem', 'create', address, '--value', '1,0,3', '--mode', '640', '--json'])).stdout);
    using set = SemaphoreSet.open(key);
    const { uid, gid } = me();
    // Setting the values (SETALL) makes the creating process the last to change each semaphore.
    const creator = (info.lastPids as number[])[0]!;
    assert.deepEqual(withoutTimes(info), {
      family: 'sysv', address, key, id: set.id, count: 3, mode: 0o640, uid, gid, cuid: uid, cgid: gid,
      values: [1, 0, 3], waitingForIncrease: [0, 0, 0], waitingForZero: [0, 0, 0], lastPids: [creator, creator, creator], limits: LIMITS,
    });
    assert.equal(info.lastOpTime, null);
    const [hex] = await all([
      () => fails(['sem', 'create', address, '--count', '2'], 1, 'EEXIST'),
      // The decimal spelling of the key names the same set.
      () => fails(['sem', 'create', String(key)], 1, 'EEXIST'),
    ]);
    assert.ok(hex!.startsWith(`EEXIST: semget ${address} failed: File exists (EEXIST). A semaphore set with this key already exists`), hex);
    assert.deepEqual(set.values(), [1, 0, 3]);
    set.remove();

    // --count with one value for all; text output names the identifier; the mode defaults to 0600.
    const again = (await ok(['sem', 'create', address, '--count', '4', '--value', '2'])).stdout;
    using set2 = SemaphoreSet.open(key);
    assert.equal(again, `created ${address} (id ${set2.id})\n`);
    assert.deepEqual([set2.values(), set2.stat().mode], [[2, 2, 2, 2], 0o600]);
    set2.remove();
    // Neither: one semaphore, 0.
    await ok(['sem', 'create', address]);
    using set3 = SemaphoreSet.open(key);
    assert.deepEqual(set3.values(), [0]);
    set3.remove();
  });

  it('creates and removes a set at an ftok address', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-cli-sem-'));
    try {
      const file = path.join(dir, 'anchor');
      writeFileSync(file, '');
      const key = native.ftok(file, 9);
      assert.ok(key > 0);
      objects.sysvSem.add(key);
      const address = `ftok:${file}:9`;
      const info = json((await ok(['sem', 'create', address, '--json'])).stdout);
      assert.deepEqual([info.key, info.address], [key, `${formatKey(key)} (ftok ${file}:9)`]);
      assert.equal((await ok(['sem', 'rm', address, '--json'])).stdout, `{"removed":"${address}","kind":"sem"}\n`);
      assert.equal(sysvSemaphoreKeys().has(key), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad values and the other family\'s options with exit 2, and creates nothing', async () => {
    const name = objects.semName();
    const address = formatKey(objects.semKey());
    const cases: [string[], string | RegExp][] = [
      [['sem', 'create', name, '--count', '2'], `--count applies to System V semaphore sets; ${name} is a POSIX named semaphore.`],
      [['sem', 'create', name, '--value', '1,2'], `--value must be an integer from 0 to ${SEM_VALUE_MAX}; got "1,2".`],
      [['sem', 'create', name, '--value', String(SEM_VALUE_MAX + 1)], `--value must be an integer from 0 to ${SEM_VALUE_MAX}; got "${SEM_VALUE_MAX + 1}".`],
      [['sem', 'create', address, '--value', '32768'], '--value must be an integer from 0 to 32767; got "32768".'],
      [['sem', 'create', address, '--value', '1,x'], '--value must be an integer from 0 to 32767; got "x".'],
      [['sem', 'create', address, '--value', '1,2,3', '--count', '2'], '--value lists 3 values but --count is 2: give one value for all of them, or one per semaphore.'],
      [['sem', 'create', address, '--count', '0'], '--count must be an integer from 1 to 65535; got "0".'],
      [['sem', 'create', address, '--mode', '999'], '--mode must be octal permission bits such as 600 or 0640; got "999".'],
      [['sem', 'create', name, '--frob'], /^ERR_IPC_USAGE: Unknown option '--frob'.* Run "ipckit sem create --help" for the options\.\n$/],
    ];
    await all(cases.map(([args, message]) => async () => {
      const stderr = await fails(args, 2, 'ERR_IPC_USAGE');
      if (typeof message === 'string') assert.equal(stderr, `ERR_IPC_USAGE: ${message}\n`);
      else assert.match(stderr, message);
    }));
    assert.equal(namedSemaphoreExists(name), false);
    assert.equal(sysvSemaphoreKeys().has(Number(address)), false);
  });

  it('a set larger than kernel.sem allows fails with ERR_IPC_LIMIT naming the sysctl', { skip: SEMMSL! >= 65535 && 'SEMMSL is at its maximum' }, async () => {
    const address = formatKey(objects.semKey());
    const stderr = await fails(['sem', 'create', address, '--count', String(SEMMSL! + 1)], 1, 'ERR_IPC_LIMIT');
    assert.match(stderr, new RegExp(`a set of ${SEMMSL! + 1} semaphores exceeds kernel\\.sem field 1 \\(SEMMSL, now ${SEMMSL}\\).*sysctl kernel\\.sem=`));
    assert.equal(sysvSemaphoreKeys().has(Number(address)), false);
  });
});

describe('ipckit sem wait / post', () => {
  it('POSIX: wait takes one, post adds --count; --nonblock fails with EAGAIN, --timeout with ERR_IPC_TIMEOUT', async () => {
    const name = objects.semName();
    using sem = NamedSemaphore.create(name, { value: 2 });
    assert.equal((await ok(['sem', 'wait', name, '--json'])).stdout, '{"taken":1}\n');
    assert.equal((await ok(['sem', 'wait', name])).stdout, '');
    assert.equal(sem.value, 0);
    const [nonblock, timed, once] = await all([
      () => ipckit(['sem', 'wait', name, '--nonblock']),
      () => ipckit(['sem', 'wait', name, '--timeout', '100']),
      () => ipckit(['sem', 'wait', name, '--timeout', '0', '--json']),
    ]);
    assert.deepEqual([nonblock!.status, nonblock!.stdout, nonblock!.stderr], [1, '',
      `EAGAIN: sem_wait ${name} failed: Resource temporarily unavailable (EAGAIN). The value is 0 and --nonblock was given.\n`]);
    assert.deepEqual([timed!.status, timed!.stdout, timed!.stderr], [1, '',
      `ERR_IPC_TIMEOUT: wait on ${name} timed out after 100 ms. Wait longer, or use the try* call to poll.\n`]);
    assert.ok(timed!.elapsedMs >= 100, `returned after ${timed!.elapsedMs} ms`);
    assert.deepEqual([once!.status, JSON.parse(once!.stderr).error.code], [1, 'ERR_IPC_TIMEOUT']);
    // A wait that gave up is no waiter.
    assert.deepEqual([sem.value, sem.waiters], [0, 0]);

    assert.equal((await ok(['sem', 'post', name, '--count', '3', '--json'])).stdout, '{"posted":3}\n');
    assert.equal((await ok(['sem', 'post', name])).stdout, '');
    assert.equal(sem.value, 4);
    const overflow = await fails(['sem', 'post', name, '--count', String(SEM_VALUE_MAX)], 1, 'EOVERFLOW');
    assert.equal(overflow, `EOVERFLOW: sem_post ${name} failed: Value too large for defined data type (EOVERFLOW). ` +
      `The value would pass SEM_VALUE_MAX (${SEM_VALUE_MAX}); nothing was added.\n`);
    assert.equal(sem.value, 4);
    sem.unlink();
  });

  it('POSIX: options of System V sets, and --nonblock with --timeout, are usage errors whether or not the semaphore exists', async () => {
    const existing = objects.semName();
    const missing = objects.semName();
    using sem = NamedSemaphore.create(existing, { value: 1 });
    const cases: [(name: string) => string[], string][] = [
      [(n) => ['sem', 'wait', n, '--index', '1'], '--index applies to System V semaphore sets; NAME is a POSIX named semaphore.'],
      [(n) => ['sem', 'wait', n, '--count', '2'], '--count applies to System V semaphore sets; NAME is a POSIX named semaphore.'],
      [(n) => ['sem', 'wait', n, '--index', '0', '--count', '2'], '--index and --count apply to System V semaphore sets; NAME is a POSIX named semaphore.'],
      [(n) => ['sem', 'post', n, '--index', '0'], '--index applies to System V semaphore sets; NAME is a POSIX named semaphore.'],
      [(n) => ['sem', 'wait', n, '--nonblock', '--timeout', '10'], 'Use either --nonblock or --timeout, not both.'],
      [(n) => ['sem', 'wait', n, '--timeout', 'soon'], '--timeout must be an integer from 0 to 2147483647; got "soon".'],
      [(n) => ['sem', 'post', n, '--count', '0'], `--count must be an integer from 1 to ${SEM_VALUE_MAX}; got "0".`],
    ];
    await all(cases.flatMap(([args, message]) => [existing, missing].map((name) => async () => {
      assert.equal(await fails(args(name), 2, 'ERR_IPC_USAGE'), `ERR_IPC_USAGE: ${message.replace('NAME', name)}\n`);
    })));
    assert.deepEqual([sem.value, namedSemaphoreExists(missing)], [1, false]);
    sem.unlink();
  });

  it('System V: wait takes --count from --index, post adds; EAGAIN, ERR_IPC_TIMEOUT, ERANGE and a bad --index', async () => {
    const key = objects.semKey();
    const address = formatKey(key);
    using set = SemaphoreSet.create(key, { count: 3, value: [1, 0, 5] });
    assert.equal((await ok(['sem', 'wait', address, '--index', '2', '--count', '5', '--json'])).stdout, '{"taken":5,"index":2}\n');
    // Index 0, 1 at a time, by default.
    assert.equal((await ok(['sem', 'wait', String(key)])).stdout, '');
    assert.deepEqual(set.values(), [0, 0, 0]);
    const [nonblock, many, timed, index, usage] = await all([
      () => fails(['sem', 'wait', address, '--index', '1', '--nonblock'], 1, 'EAGAIN'),
      () => fails(['sem', 'wait', address, '--count', '2', '--nonblock'], 1, 'EAGAIN'),
      () => fails(['sem', 'wait', address, '--index', '1', '--timeout', '100'], 1, 'ERR_IPC_TIMEOUT'),
      () => fails(['sem', 'wait', address, '--index', '3'], 2, 'ERR_IPC_USAGE'),
      () => fails(['sem', 'post', address, '--count', '32768'], 2, 'ERR_IPC_USAGE'),
    ]);
    assert.equal(nonblock, `EAGAIN: semop ${address} failed: Resource temporarily unavailable (EAGAIN). Semaphore 1 is 0 and --nonblock was given.\n`);
    assert.match(many!, /Semaphore 0 is below 2 and --nonblock was given\.\n$/);
    assert.equal(timed, `ERR_IPC_TIMEOUT: op on ${address} timed out after 100 ms. Wait longer, or use the try* call to poll.\n`);
    assert.equal(index, `ERR_IPC_USAGE: --index must be from 0 to 2: ${address} has 3 semaphores; got 3.\n`);
    assert.equal(usage, 'ERR_IPC_USAGE: --count must be an integer from 1 to 32767; got "32768".\n');

    assert.equal((await ok(['sem', 'post', address, '--index', '1', '--count', '32767', '--json'])).stdout, '{"posted":32767,"index":1}\n');
    assert.equal((await ok(['sem', 'post', address, '--json'])).stdout, '{"posted":1,"index":0}\n');
    const range = await fails(['sem', 'post', address, '--index', '1'], 1, 'ERANGE');
    assert.match(range, /^ERANGE: semop .* A value would pass 32767 \(SEMVMX\), or an undo adjustment would pass 32767 \(SEMAEM\); nothing was applied\.\n$/);
    assert.deepEqual(set.values(), [1, 32767, 0]);
    set.remove();
  });

  it('POSIX: a blocking wait sleeps, counted as a waiter, until another process posts', async () => {
    const name = objects.semName();
    using sem = NamedSemaphore.create(name);
    const waiter = launch(['sem', 'wait', name, '--json']);
    const pid = waiter.child.pid!;
    await waitersOf(name, 1);
    // Asleep on the semaphore's own word, in its mapping of the file.
    await blockedIn(pid, 'futex', { where: inSegment(pid, `/dev/shm/sem.${name.slice(1)}`) });
    const seen = json((await ok(['sem', 'stat', name, '--json'])).stdout);
    assert.deepEqual([seen.value, seen.waiters], [0, 1]);
    assert.equal(waiter.child.exitCode, null, 'the waiter exited instead of waiting');
    await ok(['sem', 'post', name]);
    const woke = await waiter.done;
    assert.deepEqual([woke.status, woke.stdout, woke.stderr], [0, '{"taken":1}\n', '']);
    assert.deepEqual([sem.value, sem.waiters], [0, 0]);
    sem.unlink();
  });

  it('System V: a blocking wait for 2 stays queued after a post of 1, and takes both after the next', async () => {
    const key = objects.semKey();
    const address = formatKey(key);
    using set = SemaphoreSet.create(key, { count: 2 });
    const waiter = launch(['sem', 'wait', address, '--index', '1', '--count', '2']);
    await queuedOn(key, 1, 1);
    const seen = json((await ok(['sem', 'stat', address, '--json'])).stdout);
    assert.deepEqual([seen.values, seen.waitingForIncrease, seen.waitingForZero], [[0, 0], [0, 1], [0, 0]]);
    const first = await ok(['sem', 'post', address, '--index', '1']);
    // The waiter cannot take 2 from 1: the post stays, and the waiter is queued again.
    await queuedOn(key, 1, 1);
    assert.deepEqual(set.values(), [0, 1]);
    assert.equal(set.stat().lastPids[1], first.pid);
    assert.equal(waiter.child.exitCode, null, 'the waiter exited instead of waiting');
    await ok(['sem', 'post', address, '--index', '1']);
    const woke = await waiter.done;
    assert.deepEqual([woke.status, woke.stdout, woke.stderr], [0, '', '']);
    assert.deepEqual([set.values(), set.stat().waitingForIncrease, set.stat().lastPids[1]], [[0, 0], [0, 0], woke.pid]);
    set.remove();
  });

  it('a stop signal withdraws a blocking wait at once: exit 128 + the signal, nothing taken, no waiter left counted', async () => {
    const name = objects.semName();
    const key = objects.semKey();
    using sem = NamedSemaphore.create(name);
    using set = SemaphoreSet.create(key);
    const cases = [
      { args: ['sem', 'wait', name], signal: 'SIGINT', status: 130, queued: () => waitersOf(name, 1) },
      { args: ['sem', 'wait', name, '--json', '--timeout', '60000'], signal: 'SIGTERM', status: 143, queued: () => waitersOf(name, 2) },
      { args: ['sem', 'wait', formatKey(key)], signal: 'SIGHUP', status: 129, queued: () => queuedOn(key, 0, 1) },
    ] as const;
    // One at a time: each is known to wait before the next starts.
    const running = [];
    for (const c of cases) {
      const waiter = launch([...c.args]);
      await c.queued();
      running.push({ ...c, waiter });
    }
    for (const { waiter, signal } of running) waiter.child.kill(signal);
    for (const { waiter, status, args } of running) {
      // A wait that did not notice would be released by the post, and exit 0.
      const { result, unblocked } = await exitOnItsOwn(waiter.done, () => (args[2] === name ? sem.post() : set.opSync({ index: 0, delta: 1 })));
      assert.equal(unblocked, false, `${args.join(' ')} kept waiting after the signal`);
      assert.deepEqual([result.status, result.signal, result.stdout, result.stderr], [status, null, '', ''], args.join(' '));
    }
    assert.deepEqual([sem.value, sem.waiters], [0, 0]);
    assert.deepEqual([set.values(), set.stat().waitingForIncrease], [[0], [0]]);
    sem.unlink();
    set.remove();
  });

  it('System V: a set removed under a blocking wait ends it with EIDRM', async () => {
    const key = objects.semKey();
    const address = formatKey(key);
    SemaphoreSet.create(key).close();
    const waiter = launch(['sem', 'wait', address, '--json']);
    await queuedOn(key, 0, 1);
    assert.equal((await ok(['rm', address])).stdout, `removed ${address} (semaphore)\n`);
    const r = await waiter.done;
    assert.equal(r.status, 1);
    assert.deepEqual(JSON.parse(r.stderr).error, {
      code: 'EIDRM', errno: -43, syscall: 'semop', address,
      message: `semop ${address} failed: Identifier removed (EIDRM). The semaphore set was removed; open or create it again.`,
    });
  });
});

describe('ipckit sem stat and rm', () => {
  it('POSIX stat: value, waiters, mode and owner, as text and --json', async () => {
    const name = objects.semName();
    using sem = NamedSemaphore.create(name, { value: 7, mode: 0o640 });
    const [asJson, asText] = await all([() => ok(['sem', 'stat', name, '--json']), () => ok(['sem', 'stat', name])]);
    const info = json(asJson!.stdout);
    const changeTime = sem.stat().changeTime.toISOString();
    assert.deepEqual(info, { family: 'posix', name, value: 7, waiters: 0, mode: 0o640, ...me(), changeTime });
    assert.equal(asText!.stdout, [
      'family           posix', `name             ${name}`, 'value            7', 'waiters          0', 'mode             0640',
      `uid              ${me().uid}`, `gid              ${me().gid}`, `changeTime       ${changeTime}`, '',
    ].join('\n'));
    sem.unlink();
  });

  it('System V stat: every semaphore\'s value, waiters and last process, by key and by id:N, as text and --json', async () => {
    const key = objects.semKey();
    const address = formatKey(key);
    using set = SemaphoreSet.create(key, { count: 2 });
    const poster = await ok(['sem', 'post', address, '--index', '1', '--count', '4']);
    const [byKey, byId, asText] = await all([
      () => ok(['sem', 'stat', address, '--json']), () => ok(['sem', 'stat', `id:${set.id}`, '--json']), () => ok(['sem', 'stat', address]),
    ]);
    const info = json(byKey!.stdout);
    const { uid, gid } = me();
    assert.deepEqual(withoutTimes(info), {
      family: 'sysv', address, key, id: set.id, count: 2, mode: 0o600, uid, gid, cuid: uid, cgid: gid,
      values: [0, 4], waitingForIncrease: [0, 0], waitingForZero: [0, 0], lastPids: [0, poster.pid], limits: LIMITS,
    });
    assert.equal(typeof info.lastOpTime, 'string');
    assert.deepEqual({ ...json(byId!.stdout), address: undefined }, { ...info, address: undefined });
    assert.equal(json(byId!.stdout).address, `id ${set.id}`);
    const width = 'waitingForIncrease'.length;
    const line = (field: string, value: string): string => `${field.padEnd(width)} ${value}`;
    const text = asText!.stdout;
    assert.ok(text.startsWith(`${line('family', 'sysv')}\n${line('address', address)}\n${line('key', address)}\n${line('id', String(set.id))}\n`), text);
    for (const expected of [line('count', '2'), line('mode', '0600'), line('values', '0,4'), line('waitingForIncrease', '0,0'),
      line('lastPids', `0,${poster.pid}`)]) {
      assert.ok(text.includes(`\n${expected}\n`), `${JSON.stringify(expected)} not in ${text}`);
    }
    assert.ok(text.endsWith(`\n${line('kernel limits', Object.entries(LIMITS).map(([k, v]) => `${k}=${v}`).join(' '))}\n`), text);
    set.remove();
  });

  it('sem rm and rm remove both families; every verb then fails with ENOENT', async () => {
    const name = objects.semName();
    const key = objects.semKey();
    const address = formatKey(key);
    NamedSemaphore.create(name).close();
    SemaphoreSet.create(key).close();
    assert.equal((await ok(['sem', 'rm', name])).stdout, `removed ${name} (semaphore)\n`);
    assert.equal((await ok(['sem', 'rm', address, '--json'])).stdout, `{"removed":"${address}","kind":"sem"}\n`);
    assert.deepEqual([namedSemaphoreExists(name), sysvSemaphoreKeys().has(key)], [false, false]);
    const [stat, , , rm, , , , sysvRm, top] = await all([
      ...[['stat'], ['wait', '--nonblock'], ['post'], ['rm']].map(([verb, ...rest]) => () => fails(['sem', verb!, name, ...rest], 1, 'ENOENT')),
      ...[['stat'], ['wait', '--nonblock'], ['post'], ['rm']].map(([verb, ...rest]) => () => fails(['sem', verb!, address, ...rest], 1, 'ENOENT')),
      () => fails(['rm', name], 1, 'ENOENT'),
    ]);
    assert.equal(stat, `ENOENT: sem_open ${name} failed: No such file or directory (ENOENT). No such semaphore: create it first (NamedSemaphore.create or ipckit sem create).\n`);
    assert.equal(rm, `ENOENT: sem_unlink ${name} failed: No such file or directory (ENOENT). No such semaphore (already removed?).\n`);
    assert.equal(sysvRm, `ENOENT: semget ${address} failed: No such file or directory (ENOENT). No semaphore set has this key: create it first (SemaphoreSet.create or ipckit sem create).\n`);
    assert.equal(top, `ENOENT: Nothing to remove at ${name}: no message queue, shared memory segment, semaphore or FIFO has this address. Run "ipckit ls" to see what exists.\n`);

    NamedSemaphore.create(name).close();
    const set = SemaphoreSet.create(key);
    set.close();
    assert.equal((await ok(['rm', name])).stdout, `removed ${name} (semaphore)\n`);
    assert.equal((await ok(['rm', `id:${set.id}`, '--json'])).stdout, `{"removed":"id:${set.id}","kind":"sem"}\n`);
    assert.deepEqual([namedSemaphoreExists(name), sysvSemaphoreKeys().has(key)], [false, false]);
  });

  it('malformed addresses are usage errors: exit 2 with ERR_IPC_INVALID_ADDRESS', async () => {
    const [jobs, long] = await all([
      () => fails(['sem', 'stat', 'jobs', '--json'], 2, 'ERR_IPC_INVALID_ADDRESS'),
      // The 4 bytes of "sem." in front take the name past NAME_MAX.
      () => fails(['sem', 'create', `/${'s'.repeat(252)}`], 2, 'ERR_IPC_INVALID_ADDRESS'),
      () => fails(['sem', 'wait', '/a/b'], 2, 'ERR_IPC_INVALID_ADDRESS'),
      () => fails(['sem', 'post', '0'], 2, 'ERR_IPC_INVALID_ADDRESS'),
      () => fails(['sem', 'create', 'id:5'], 2, 'ERR_IPC_INVALID_ADDRESS'),
    ]);
    assert.equal(JSON.parse(jobs!).error.message, 'Cannot tell what "jobs" names: use /name for a POSIX semaphore, ' +
      '0x1234 or 4660 for a System V key, ftok:PATH:ID, or id:N for a System V identifier.');
    assert.match(long!, /at most 251 bytes may follow the "\/"/);
  });
});

describe('ipckit sem and semaphores another user created', () => {
  it('refuses them with ERR_IPC_UNTRUSTED unless --owner names that user (or any)', { skip: !canRunAs(65534) && 'needs root and setpriv' }, async () => {
    const name = objects.semName('squat');
    const key = objects.semKey();
    const address = formatKey(key);
    const made = spawnSync(asUser(65534)[0]!, [...asUser(65534).slice(1), process.execPath, '-e', `import(${JSON.stringify(INDEX)}).then((m) => {
      m.NamedSemaphore.create('${name}', { mode: 0o666, value: 1 }).close();
      m.SemaphoreSet.create(${key}, { mode: 0o666, value: 1 }).close();
    })`], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(made.status, 0, made.stderr);
    const untrusted = /belongs to uid 65534.*\{ owner: 65534 \}/;
    await all([name, address].flatMap((at) => [['wait', '--nonblock'], ['post'], ['stat']].map(([verb, ...rest]) => async () => {
      assert.match(await fails(['sem', verb!, at, ...rest], 1, 'ERR_IPC_UNTRUSTED'), untrusted);
    })));
    for (const at of [name, address]) {
      await ok(['sem', 'wait', at, '--nonblock', '--owner', '65534']);
      await ok(['sem', 'post', at, '--owner', 'any']);
      assert.equal(json((await ok(['sem', 'stat', at, '--owner', 'any', '--json'])).stdout).uid, 65534);
    }
    // Removing goes by the kernel's permission rules, not by the owner check.
    await ok(['sem', 'rm', name]);
    await ok(['rm', address]);
  });
});

describe('cli sem cleanup', () => {
  it('leaves no semaphore and no child process behind', async () => {
    await killAllPeers();
    assert.equal(runningChildren(), 0);
    assert.deepEqual(objects.leftovers(), []);
  });
});
