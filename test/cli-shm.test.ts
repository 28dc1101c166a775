/**
 * `ipckit shm` (create, write, read, stat, rm) for both families, the
 * segments in `ipckit ls`, and `rm --kind` where a queue and a segment share
 * a key; run as real child processes.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { userInfo } from 'node:os';
import { PosixSharedMemory, SysvMessageQueue, SysvSharedMemory, formatKey } from '../src/index.js';
import { fails, json, ls, lsRow, ok } from './helpers/cli.js';
import { ObjectTracker, sysvSegmentKeys } from './helpers/objects.js';
import { Peer, killAllPeers, runningChildren } from './helpers/peer.js';

const objects = new ObjectTracker();

after(async () => {
  await killAllPeers();
  objects.cleanup();
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
    assert.equal((await ok(['shm', 'rm', address, '--json'])).stdout, `{"removed":"${address}","kind":"shm"}\n`);
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

describe('cli shm cleanup', () => {
  it('leaves no segment and no child process behind', async () => {
    await killAllPeers();
    assert.equal(runningChildren(), 0);
    assert.deepEqual(objects.leftovers(), []);
  });
});
