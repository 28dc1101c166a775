/**
 * `ipckit ls`: every IPC object of the machine with its owner, mode, depth
 * and the processes that use it, checked for the objects this file creates.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statfsSync, symlinkSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import {
  Channel, Fifo, NamedSemaphore, PosixMessageQueue, PosixSharedMemory, SemaphoreSet, SysvMessageQueue, formatKey, listIpcObjects,
} from '../src/index.js';
import { CLI, type LsObject, fails, launch, ls, lsRow, ok } from './helpers/cli.js';
import { waitUntil } from './helpers/assert.js';
import { MQUEUE_MAGIC, ObjectTracker, namedSemaphoreExists, posixQueueExists, sysvQueueKeys, sysvSemaphoreKeys } from './helpers/objects.js';
import { Peer, canRunAs, killAllPeers, runningChildren, trackChild } from './helpers/peer.js';

const objects = new ObjectTracker();

after(async () => {
  await killAllPeers();
  objects.cleanup();
});

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

  it('lists a POSIX queue held open by another process, with that process as holder', async (t) => {
    const name = objects.name();
    PosixMessageQueue.create(name, { maxMessages: 3, maxMessageSize: 50, mode: 0o640 }).close();
    const peer = new Peer('receive', { family: 'posix', address: name, count: 1, mode: 'async' });
    assert.equal((await peer.next()).event, 'ready');
    // `ipckit ls` opens each POSIX queue to read its attributes, so another `ipckit ls` running at the
    // same moment (ls() runs two side by side; other test files run their own) may be listed as one
    // more holder. Only the processes this test knows of are checked; the others are reported.
    const known = new Set([process.pid, peer.pid]);
    const holders = (o: LsObject | undefined): LsObject['processes'] | undefined => {
      const others = o?.processes.filter((p) => !known.has(p.pid)) ?? [];
      if (others.length > 0) t.diagnostic(`other holders of ${name} at that moment: ${others.map((p) => p.pid).join(', ')}`);
      return o?.processes.filter((p) => known.has(p.pid));
    };
    const ownRow = (row: string[] | undefined): string[] | undefined =>
      row && [...row.slice(0, 6), row[6]!.split(' ').filter((cell) => known.has(Number(cell.replace(/^open:/, '')))).join(' ')];
    const owner = userInfo().username;
    let inventory = await ls();
    const listed = inventory.objects.find((o) => o.address === name);
    assert.deepEqual({ ...listed, processes: holders(listed) }, {
      kind: 'posix-mq', address: name, uid: process.getuid!(), owner, mode: 0o640,
      messages: 0, bytes: mqueueMounted || privateMountWorks() ? 0 : null, maxBytes: 150,
      processes: [{ pid: peer.pid, role: 'holder', alive: true }],
    });
    assert.deepEqual(ownRow(lsRow(inventory.text, name)), ['posix-mq', name, owner, '0640', '0', mqueueMounted || privateMountWorks() ? '0' : '?', `open:${peer.pid}`]);

    // Once the holder has exited, the queue is listed only where /dev/mqueue is mounted.
    {
      using sender = PosixMessageQueue.open(name);
      sender.sendSync(Buffer.from('bye'));
    }
    assert.deepEqual(await peer.next(), { data: 'bye', priority: 0 });
    await peer.success();
    inventory = await ls();
    const entry = inventory.objects.find((o) => o.address === name);
    if (mqueueMounted || privateMountWorks()) {
      // Listed from /dev/mqueue, or (root without it) through a private mqueue mount.
      assert.deepEqual(holders(entry), []);
    } else {
      // Listed at all only while another process (another ls) has it open.
      if (entry !== undefined) assert.notDeepEqual(entry.processes, [], `${name} is listed with no process holding it`);
      assert.deepEqual(holders(entry) ?? [], []);
      // Other notes may come with it (processes of other users that could not be inspected, when not root).
      const mqueueNotes = inventory.notes.filter((note) => note.startsWith('/dev/mqueue'));
      assert.equal(mqueueNotes.length, 1);
      assert.match(mqueueNotes[0]!, /^\/dev\/mqueue is not mounted, so POSIX message queues that no process has open cannot be listed/);
      assert.ok(inventory.text.includes(`\nnote: ${mqueueNotes[0]}\n`));
    }
    PosixMessageQueue.unlink(name);
  });
});

/** Whether this process may give `unshare --mount` a private mqueue mount (root, with util-linux's unshare). */
function privateMountWorks(): boolean {
  return process.getuid!() === 0 && spawnSync('unshare', ['--mount', 'true']).status === 0;
}

describe('ipckit ls without /dev/mqueue mounted', () => {
  it('lists, as root, a queue nobody holds open through a private mqueue mount; as another user, says what it cannot see', async (t) => {
    if (!privateMountWorks()) return t.skip('needs root and unshare (a mount namespace of its own)');
    const name = objects.name('nomount');
    PosixMessageQueue.create(name, { mode: 0o640 }).close();
    // /dev/mqueue unmounted in a mount namespace of the listing's own: the machine's stays as it is.
    const listing = (asUser: string): string => execFileSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c',
      `umount /dev/mqueue 2>/dev/null; ! grep -q ' mqueue ' /proc/self/mounts || exit 9; exec ${asUser} "$0" "$1" ls --json`,
      process.execPath, CLI], { encoding: 'utf8' });
    const asRoot = JSON.parse(listing('')) as { objects: LsObject[]; notes: string[] };
    const entry = asRoot.objects.find((o) => o.address === name);
    assert.deepEqual(entry && { ...entry }, {
      kind: 'posix-mq', address: name, uid: 0, owner: 'root', mode: 0o640, messages: 0, bytes: 0, maxBytes: entry?.maxBytes, processes: [],
    });
    assert.deepEqual(asRoot.notes.filter((n) => n.startsWith('/dev/mqueue')), []);
    if (spawnSync('setpriv', ['--version']).status === 0 && canRunAs(65534)) {
      const asNobody = JSON.parse(listing('setpriv --reuid=65534 --regid=65534 --clear-groups --')) as { objects: LsObject[]; notes: string[] };
      assert.equal(asNobody.objects.some((o) => o.address === name), false);
      assert.match(asNobody.notes.find((n) => n.startsWith('/dev/mqueue')) ?? '', /^\/dev\/mqueue is not mounted, so POSIX message queues that no process has open cannot be listed/);
    }
    PosixMessageQueue.unlink(name);
  });
});

describe('ipckit ls while other processes open and close a queue', () => {
  it('a queue is listed even when the holder seen first closes it before it is described: every holder\'s descriptor is tried', async (t) => {
    if (mqueueMounted) return t.skip('with /dev/mqueue mounted, a queue is described by its file, not by a holder\'s descriptor');
    const name = objects.name('flap');
    // Not held here: the holders are two children, the one that opens and closes it again and again first (a lower pid,
    // so a listing scans it first), as another lister reading the queue's attributes would.
    PosixMessageQueue.create(name).close();
    const index = JSON.stringify(new URL('../src/index.js', import.meta.url).href);
    const child = (script: string): ReturnType<typeof spawn> => trackChild(spawn(process.execPath, ['--input-type=module', '-e',
      `const { PosixMessageQueue } = await import(${index}); ${script}`], { stdio: ['pipe', 'pipe', 'inherit'] }));
    const started = (c: ReturnType<typeof spawn>): Promise<void> => new Promise((resolve) => c.stdout!.once('data', () => resolve()));
    const flapper = child(`process.stdout.write('go'); for (;;) { const q = PosixMessageQueue.open(${JSON.stringify(name)}); q.close(); }`);
    await started(flapper);
    const holder = child(`const q = PosixMessageQueue.open(${JSON.stringify(name)}); process.stdout.write('held'); setInterval(() => q.attributes(), 1000);`);
    await started(holder);
    try {
      assert.ok(flapper.pid! < holder.pid!, 'the flapping holder is scanned first');
      for (let i = 0; i < 100; i++) {
        const entry = listIpcObjects().objects.find((o) => o.address === name);
        assert.ok(entry !== undefined, `listing ${i} lists the queue`);
        assert.equal(entry.kind, 'posix-mq');
        assert.ok(entry.processes.some((p) => p.pid === holder.pid), 'the holder is named');
      }
    } finally {
      flapper.kill('SIGKILL');
      holder.kill('SIGKILL');
      PosixMessageQueue.unlink(name);
    }
  });
});

describe('ipckit ls with hostile names', () => {
  it('escapes control characters, so a name can neither forge a row nor reach the terminal raw', async () => {
    // Held open by this process, so ls finds it with /dev/mqueue mounted or not.
    const unique = objects.name('esc');
    const name = `${unique}\n0x00001234 forged\x1b[31m`;
    objects.posix.add(name);
    using q = PosixMessageQueue.create(name);
    try {
      const inventory = await ls();
      assert.ok(inventory.objects.some((o) => o.address === name), 'the JSON keeps the real name');
      assert.ok(!inventory.text.includes('\x1b'), 'an escape character reached the output');
      const shown = name.replace('\n', '\\n').replace('\x1b', '\\e');
      assert.equal(lsRow(inventory.text, shown)?.[0], 'posix-mq');
      // One line has this queue, all of its name on it (other runs' queues may have names like it: only this one counts).
      const lines = inventory.text.split('\n').filter((line) => line.includes(unique));
      assert.equal(lines.length, 1);
      assert.ok(lines[0]!.includes('\\n0x00001234 forged\\e[31m'), lines[0]);
    } finally {
      q.unlink();
    }
  });

  it('--json escapes the C1 controls too (CSI is U+009B), which JSON.stringify leaves raw and some terminals obey', async () => {
    const name = `${objects.name('c1')}\u009b2J\u0085\u2028`;
    objects.posix.add(name);
    const q = PosixMessageQueue.create(name);
    try {
      const { stdout } = await ok(['ls', '--json']);
      assert.equal(/[\u007f-\u009f\u2028\u2029]/.test(stdout), false, 'a C1 control reached the output raw');
      assert.ok(stdout.includes('\\u009b2J\\u0085\\u2028'), 'escaped as \\u009b');
      const listed = (JSON.parse(stdout) as { objects: LsObject[] }).objects.map((o) => o.address);
      assert.ok(listed.includes(name), 'the JSON still carries the exact name');
    } finally {
      q.unlink();
      q.close();
    }
  });

  it('reports a removed queue still held open with deleted: true, its address unchanged; the text marks it (deleted)', async () => {
    const name = objects.name('gone');
    using q = PosixMessageQueue.create(name);
    q.unlink();
    const inventory = await ls();
    // --json: one entry, at the name a program would use, flagged; no address carries the kernel's " (deleted)".
    const entries = inventory.objects.filter((o) => o.address.startsWith(name));
    assert.deepEqual(entries.map((o) => [o.kind, o.address, o.deleted]), [['posix-mq', name, true]]);
    assert.deepEqual(entries[0]!.processes.map((p) => p.pid), [process.pid]);
    // The table says so after the address.
    assert.equal(lsRow(inventory.text, `${name} (deleted)`)?.[0], 'posix-mq');
    assert.equal(lsRow(inventory.text, name), undefined);
  });

  it('a live queue whose name ends in " (deleted)" is live, listed once, under its whole name', async () => {
    // Another user could otherwise pass a queue of theirs off as a removed /jobs.
    const name = `${objects.name('fake')} (deleted)`;
    objects.posix.add(name);
    using q = PosixMessageQueue.create(name);
    const inventory = await ls();
    const entries = inventory.objects.filter((o) => o.address.startsWith(name.slice(0, -' (deleted)'.length)));
    assert.deepEqual(entries.map((o) => [o.kind, o.address, o.deleted]), [['posix-mq', name, undefined]]);
    q.unlink();
  });
});

describe('ipckit ls with channels', () => {
  it('lists a channel with its capacity, depth and the threads holding its roles, alive or dead; a plain segment and a symbolic link stay segments', async (t) => {
    const name = objects.shmName('channel');
    const plain = objects.shmName('plain');
    const link = objects.shmName('link');
    using ch = Channel.create(name, { capacity: 1000, mode: 0o640 });
    // This process is the producer; a consumer takes one message and dies holding its role.
    for (const m of ['one', 'two', 'three!!!!']) ch.sendSync(Buffer.from(m));
    const index = new URL('../src/index.js', import.meta.url).href;
    const consumer = trackChild(spawn(process.execPath, ['--input-type=module', '-e',
      `const { Channel } = await import(${JSON.stringify(index)}); Channel.open(${JSON.stringify(name)}).tryReceive(); process.kill(process.pid, 'SIGKILL');`],
    { stdio: 'ignore' }));
    assert.equal(await new Promise((resolve) => consumer.on('close', (_code, signal) => resolve(signal))), 'SIGKILL');
    // A segment as large as a channel whose first word is something else, and a link to the channel's file.
    using segment = PosixSharedMemory.create(plain, { size: 4096 });
    segment.write(Buffer.from('CHNX'), 0);
    symlinkSync(`/dev/shm${name}`, `/dev/shm${link}`);
    try {
      const inventory = await ls();
      // Another ls may hold the file open for an instant while it reads the header: only the known holder is checked.
      const known = (o: LsObject | undefined): LsObject | undefined => {
        const others = o?.processes.filter((p) => p.role === 'holder' && p.pid !== process.pid) ?? [];
        if (others.length > 0) t.diagnostic(`other holders at that moment: ${others.map((p) => p.pid).join(', ')}`);
        return o && { ...o, processes: o.processes.filter((p) => p.role !== 'holder' || p.pid === process.pid) };
      };
      const owner = userInfo().username;
      // Two messages of 8 + 3 and 8 + 9 bytes, each padded to 8: 16 + 24 ring bytes.
      assert.deepEqual(known(inventory.objects.find((o) => o.address === name)), {
        kind: 'channel', address: name, uid: process.getuid!(), owner, mode: 0o640, messages: 2, bytes: 40, maxBytes: 1024,
        processes: [
          { pid: process.pid, role: 'producer', alive: true }, { pid: consumer.pid!, role: 'consumer', alive: false },
          { pid: process.pid, role: 'holder', alive: true },
        ],
      });
      const row = lsRow(inventory.text, name);
      assert.deepEqual(row && [...row.slice(0, 6), row[6]!.split(' ').filter((cell) => !/^open:/.test(cell) || cell === `open:${process.pid}`).join(' ')],
        ['channel', name, owner, '0640', '2', '40', `producer:${process.pid} consumer:${consumer.pid}(dead) open:${process.pid}`]);
      assert.deepEqual(inventory.objects.filter((o) => o.address === plain || o.address === link).map((o) => [o.address, o.kind, o.size]),
        [[link, 'posix-shm', 1536 + 1024], [plain, 'posix-shm', 4096]].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)));
    } finally {
      rmSync(`/dev/shm${link}`);
    }
    ch.unlink();
    segment.unlink();
  });
});

describe('ipckit ls and rm with semaphores', () => {
  it('lists a POSIX named semaphore with its value and waiters, read from its file, and the processes mapping it', async (t) => {
    const name = objects.semName();
    using sem = NamedSemaphore.create(name, { mode: 0o640 });
    const waiter = launch(['sem', 'wait', name, '--json']);
    const pid = waiter.child.pid!;
    await waitUntil(`${name} counts a waiter`, () => sem.waiters === 1);
    const owner = userInfo().username;
    // Both map the file: this process (sem) and the waiter. No other process has any business with it.
    const holders = (o: LsObject | undefined): number[] | undefined => o?.processes.map((p) => {
      assert.deepEqual([p.role, p.alive], ['holder', true]);
      return p.pid;
    }).sort((a, b) => a - b);
    let inventory = await ls();
    let listed = inventory.objects.find((o) => o.address === name && o.kind === 'posix-sem');
    assert.deepEqual({ ...listed, processes: holders(listed) }, {
      kind: 'posix-sem', address: name, uid: process.getuid!(), owner, mode: 0o640, messages: null, bytes: null, maxBytes: null,
      value: 0, waiters: 1, processes: [process.pid, pid].sort((a, b) => a - b),
    });
    const row = lsRow(inventory.text, name);
    assert.deepEqual(row?.slice(0, 6), ['posix-sem', name, owner, '0640', '-', '-']);
    assert.ok(row![6]!.startsWith('value:0 waiters:1 open:'), row![6]);
    assert.deepEqual(row![6]!.split(' ').slice(2).sort(), [`open:${process.pid}`, `open:${pid}`].sort());

    sem.post(3);
    const woke = await waiter.done;
    assert.deepEqual([woke.status, woke.stdout], [0, '{"taken":1}\n']);
    inventory = await ls();
    listed = inventory.objects.find((o) => o.address === name);
    assert.deepEqual([listed?.kind, listed?.value, listed?.waiters, holders(listed)], ['posix-sem', 2, 0, [process.pid]]);
    assert.deepEqual(lsRow(inventory.text, name), ['posix-sem', name, owner, '0640', '-', '-', `value:2 waiters:0 open:${process.pid}`]);
    t.diagnostic(`listed as ${JSON.stringify(listed)}`);
    sem.unlink();
  });

  it('lists a System V set with its size and the last process to change each semaphore, alive or not', async () => {
    const key = objects.semKey();
    const address = formatKey(key);
    const creator = await ok(['sem', 'create', address, '--count', '3', '--value', '1', '--mode', '640']);
    const poster = await ok(['sem', 'post', address, '--index', '1']);
    using set = SemaphoreSet.open(key);
    set.opSync({ index: 2, delta: 1 });
    const inventory = await ls();
    const owner = userInfo().username;
    assert.deepEqual(inventory.objects.find((o) => o.address === address), {
      kind: 'sysv-sem', address, id: set.id, key, uid: process.getuid!(), owner, mode: 0o640, messages: null, bytes: null, maxBytes: null,
      semaphores: 3, processes: [
        { pid: creator.pid, role: 'last-op', alive: false }, { pid: poster.pid, role: 'last-op', alive: false },
        { pid: process.pid, role: 'last-op', alive: true },
      ],
    });
    assert.deepEqual(lsRow(inventory.text, address),
      ['sysv-sem', address, owner, '0640', '-', '-', `sems:3 op:${creator.pid}(dead) op:${poster.pid}(dead) op:${process.pid}`]);
    set.remove();
  });

  it('is not fooled by other files named sem.* in /dev/shm: a FIFO, a directory, links, a wrong size; rm and sem leave them alone', async () => {
    const name = objects.semName('real');
    const base = objects.semName('hostile').slice(1);
    const file = (what: string): string => `/dev/shm/sem.${base}-${what}`;
    using sem = NamedSemaphore.create(name, { value: 5 });
    Fifo.create(file('fifo'));
    mkdirSync(file('dir'));
    writeFileSync(file('big'), Buffer.alloc(33));
    writeFileSync(file('short'), Buffer.alloc(8));
    symlinkSync(`/dev/shm/sem.${name.slice(1)}`, file('link'));
    symlinkSync(file('fifo'), file('fifolink'));
    try {
      // A FIFO opened for reading would block a reader that waits for a writer; ls must finish.
      const inventory = await ls();
      const mine = inventory.objects.filter((o) => o.address.includes(base) || o.address === name).map((o) => [o.kind, o.address, o.size ?? o.value]);
      assert.deepEqual(mine, [
        // Files no sem_open made are segments, by their own names (shm_open('/sem.x') names /dev/shm/sem.x).
        ['posix-shm', `/sem.${base}-big`, 33], ['posix-shm', `/sem.${base}-link`, 32], ['posix-shm', `/sem.${base}-short`, 8],
        ['posix-sem', name, 5],
      ]);
      const [big, fifo, link] = await Promise.all([
        fails(['rm', `/${base}-big`], 1, 'ENOENT'),
        fails(['sem', 'stat', `/${base}-fifo`], 2, 'ERR_IPC_INVALID_ADDRESS'),
        fails(['sem', 'post', `/${base}-link`], 2, 'ERR_IPC_INVALID_ADDRESS'),
        fails(['sem', 'wait', `/${base}-fifolink`, '--timeout', '0'], 2, 'ERR_IPC_INVALID_ADDRESS'),
        fails(['sem', 'wait', `/${base}-dir`], 2, 'ERR_IPC_INVALID_ADDRESS'),
      ]);
      assert.match(big, /^ENOENT: Nothing to remove at /);
      assert.match(fifo, /is not a POSIX named semaphore but a FIFO, placed there by someone else\. Nothing was mapped\./);
      assert.match(link, /is not a POSIX named semaphore but a symbolic link \(ipckit does not follow them\)/);
      assert.match(await fails(['sem', 'stat', `/${base}-big`], 1, 'ERR_IPC_SIZE_MISMATCH'), /has 33 bytes, not the 32 of a named semaphore/);
      assert.equal(sem.value, 5);
    } finally {
      for (const what of ['fifo', 'dir', 'big', 'short', 'link', 'fifolink']) rmSync(file(what), { recursive: true, force: true });
    }
    sem.unlink();
  });

  it('rm /name tells a semaphore from a segment and a queue of the same name; --kind sem removes only the semaphore', async () => {
    const name = objects.semName('shared');
    objects.posixShm.add(name);
    objects.posix.add(name);
    NamedSemaphore.create(name).close();
    PosixSharedMemory.create(name, { size: 64 }).close();
    PosixMessageQueue.create(name).close();
    assert.equal(await fails(['rm', name], 2, 'ERR_IPC_USAGE'),
      `ERR_IPC_USAGE: ${name} names a message queue, a shared memory segment and a semaphore: add --kind mq or --kind shm or --kind sem.\n`);
    assert.equal((await ok(['rm', name, '--kind', 'sem', '--json'])).stdout, `{"removed":"${name}","kind":"sem"}\n`);
    assert.equal(namedSemaphoreExists(name), false);
    assert.equal((await ok(['rm', name, '--kind', 'mq'])).stdout, `removed ${name} (message queue)\n`);
    assert.equal(posixQueueExists(name), false);
    // Only the segment is left: rm finds it alone.
    assert.equal((await ok(['rm', name])).stdout, `removed ${name} (shared memory segment)\n`);
    await fails(['rm', name], 1, 'ENOENT');
  });

  it('rm KEY tells a semaphore set from a queue with the same key', async () => {
    const key = objects.semKey();
    objects.sysv.add(key);
    const address = formatKey(key);
    SemaphoreSet.create(key).close();
    SysvMessageQueue.create(key).close();
    assert.equal(await fails(['rm', address], 2, 'ERR_IPC_USAGE'),
      `ERR_IPC_USAGE: ${address} names both a message queue and a semaphore: add --kind mq or --kind sem.\n`);
    assert.equal((await ok(['rm', address, '--kind', 'sem'])).stdout, `removed ${address} (semaphore)\n`);
    assert.deepEqual([sysvSemaphoreKeys().has(key), sysvQueueKeys().has(key)], [false, true]);
    assert.equal((await ok(['rm', address])).stdout, `removed ${address} (message queue)\n`);
    assert.equal(sysvQueueKeys().has(key), false);
  });
});

describe('cli ls cleanup', () => {
  it('leaves no queue and no child process behind', async () => {
    await killAllPeers();
    assert.equal(runningChildren(), 0);
    assert.deepEqual(objects.leftovers(), []);
  });
});
