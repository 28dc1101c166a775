/**
 * Objects another user placed first (squatting): every kind of named object
 * is refused with ERR_IPC_UNTRUSTED unless its owner is the one expected,
 * and `openOrCreate` with a mode refuses one that grants more.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  Fifo, NamedSemaphore, PosixMessageQueue, PosixSharedMemory, SemaphoreSet, SysvMessageQueue, SysvSharedMemory,
} from '../src/index.js';
import { ObjectTracker } from './helpers/objects.js';
import { asUser, canRunAs } from './helpers/peer.js';
import { rejectsWith, throwsWith } from './helpers/assert.js';

const run = promisify(execFile);
const objects = new ObjectTracker();
const INDEX = new URL('../src/index.js', import.meta.url).href;
const NOBODY = 65534;
const skip = !canRunAs(NOBODY) && 'needs root and setpriv to act as another user';
let dir = '';

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'ipckit-untrusted-'));
  chmodSync(dir, 0o1777); // Like /tmp: anyone may create, only the owner removes.
});

after(() => {
  objects.cleanup();
  rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(objects.leftovers(), []);
});

/** Runs `body` (with ipckit as `m`) as the user nobody. */
async function asNobody(body: string): Promise<void> {
  const script = `import(${JSON.stringify(INDEX)}).then(async (m) => { ${body} })`;
  await run(asUser(NOBODY)[0]!, [...asUser(NOBODY).slice(1), process.execPath, '-e', script], { timeout: 20_000 });
}

const UNTRUSTED_OWNER = /already exists and belongs to uid 65534, not uid 0\. .*squatting.*\{ owner: 65534 \}/;
const TOO_WIDE = /already exists with mode 0666, which grants more than the 0600 asked for/;

describe('objects another user created first', { skip }, () => {
  it('a POSIX queue is refused by open and openOrCreate, and accepted when its owner is named', async () => {
    const name = objects.name('squat');
    await asNobody(`m.PosixMessageQueue.create('${name}', { mode: 0o666 }).close();`);
    throwsWith(() => PosixMessageQueue.open(name), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    throwsWith(() => PosixMessageQueue.openOrCreate(name, { mode: 0o600 }), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    throwsWith(() => PosixMessageQueue.openOrCreate(name), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    throwsWith(() => PosixMessageQueue.openOrCreate(name, { owner: NOBODY, mode: 0o600 }), 'ERR_IPC_UNTRUSTED', TOO_WIDE);
    const named = PosixMessageQueue.open(name, { owner: NOBODY });
    named.close();
    const any = PosixMessageQueue.openOrCreate(name, { owner: 'any', mode: 0o666 });
    assert.equal(any.created, false);
    any.close();
  });

  it('a System V queue is refused likewise, by key and by identifier', async () => {
    const key = objects.key();
    await asNobody(`m.SysvMessageQueue.create(${key}, { mode: 0o666 }).close();`);
    throwsWith(() => SysvMessageQueue.open(key), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    throwsWith(() => SysvMessageQueue.openOrCreate(key, { mode: 0o600 }), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    const q = SysvMessageQueue.open(key, { owner: NOBODY });
    throwsWith(() => SysvMessageQueue.open({ id: q.id }), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    throwsWith(() => SysvMessageQueue.openOrCreate(key, { owner: NOBODY, mode: 0o600 }), 'ERR_IPC_UNTRUSTED', TOO_WIDE);
    q.close();
  });

  it('a System V queue its creator handed to this user is still refused: the creator keeps control', async () => {
    const key = objects.key();
    // As creator, nobody may set the owner to anyone (IPC_SET), and change the mode back later.
    await asNobody(`const q = m.SysvMessageQueue.create(${key}, { mode: 0o666 });
      const { execFileSync } = await import('node:child_process');
      execFileSync('python3', ['-c', ${JSON.stringify(GIVE_TO_ROOT)}, String(q.id)]);
      q.close();`);
    const handed = SysvMessageQueue.open(key, { owner: 'any' });
    assert.deepEqual([handed.stat().uid, handed.stat().cuid], [0, NOBODY]);
    handed.close();
    throwsWith(() => SysvMessageQueue.open(key), 'ERR_IPC_UNTRUSTED', /already exists and was created by uid 65534, not uid 0\./);
  });

  it('a POSIX segment is refused before it is mapped', async () => {
    const name = objects.shmName('squat');
    await asNobody(`m.PosixSharedMemory.create('${name}', { size: 4096, mode: 0o666 }).close();`);
    throwsWith(() => PosixSharedMemory.open(name), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    throwsWith(() => PosixSharedMemory.open(name, { readOnly: true }), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    throwsWith(() => PosixSharedMemory.openOrCreate(name, { size: 4096, mode: 0o600 }), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    throwsWith(() => PosixSharedMemory.openOrCreate(name, { size: 4096, owner: NOBODY, mode: 0o600 }), 'ERR_IPC_UNTRUSTED', TOO_WIDE);
    const shm = PosixSharedMemory.openOrCreate(name, { size: 4096, owner: NOBODY });
    assert.equal(shm.created, false);
    shm.close();
  });

  it('a System V segment is refused before it is attached', async () => {
    const key = objects.shmKey();
    await asNobody(`m.SysvSharedMemory.create(${key}, { size: 4096, mode: 0o666 }).close();`);
    throwsWith(() => SysvSharedMemory.open(key), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    throwsWith(() => SysvSharedMemory.openOrCreate(key, { size: 4096, mode: 0o600 }), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    const shm = SysvSharedMemory.open(key, { owner: NOBODY });
    assert.equal(shm.stat().attachments, 1);
    throwsWith(() => SysvSharedMemory.open({ id: shm.id }), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    shm.close();
  });

  it('a named semaphore is refused before it is mapped, and accepted when its owner is named', async () => {
    const name = objects.semName('squat');
    await asNobody(`m.NamedSemaphore.create('${name}', { mode: 0o666, value: 1 }).close();`);
    throwsWith(() => NamedSemaphore.open(name), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    throwsWith(() => NamedSemaphore.openOrCreate(name), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    throwsWith(() => NamedSemaphore.openOrCreate(name, { value: 5, mode: 0o600 }), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    throwsWith(() => NamedSemaphore.openOrCreate(name, { owner: NOBODY, mode: 0o600 }), 'ERR_IPC_UNTRUSTED', TOO_WIDE);
    const sem = NamedSemaphore.openOrCreate(name, { owner: NOBODY, value: 5 });
    assert.deepEqual([sem.created, sem.value], [false, 1]);
    sem.close();
  });

  it('a semaphore set is refused likewise, by key and by identifier', async () => {
    const key = objects.semKey();
    await asNobody(`m.SemaphoreSet.create(${key}, { count: 2, mode: 0o666 }).close();`);
    throwsWith(() => SemaphoreSet.open(key), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    throwsWith(() => SemaphoreSet.openOrCreate(key, { count: 2, mode: 0o600 }), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    const set = SemaphoreSet.open(key, { owner: NOBODY });
    throwsWith(() => SemaphoreSet.open({ id: set.id }), 'ERR_IPC_UNTRUSTED', UNTRUSTED_OWNER);
    throwsWith(() => SemaphoreSet.openOrCreate(key, { owner: NOBODY, mode: 0o600 }), 'ERR_IPC_UNTRUSTED', TOO_WIDE);
    assert.equal(set.count, 2);
    set.close();
  });

  it('a FIFO is refused before its other end is met', async () => {
    const fifo = path.join(dir, 'squatted');
    await asNobody(`m.Fifo.create(${JSON.stringify(fifo)}, { mode: 0o666 });`);
    const owned = UNTRUSTED_OWNER;
    // Without a reader, a write open that got past the check would fail with ENXIO instead.
    await rejectsWith(() => Fifo.openWrite(fifo, { nonBlocking: true }), 'ERR_IPC_UNTRUSTED', owned);
    throwsWith(() => Fifo.openWriteSync(fifo, { nonBlocking: true }), 'ERR_IPC_UNTRUSTED', owned);
    await rejectsWith(() => Fifo.openRead(fifo, { timeout: 0 }), 'ERR_IPC_UNTRUSTED', owned);
    throwsWith(() => Fifo.openWriteSync(fifo, { nonBlocking: true, owner: NOBODY }), 'ENXIO');
    const reader = Fifo.openReadSync(fifo, { nonBlocking: true, owner: 'any' });
    reader.close();
    Fifo.unlink(fifo);
  });
});

describe('objects of this user', () => {
  it('openOrCreate with a mode refuses an existing object that grants more; without a mode, the owner is enough', () => {
    const name = objects.name('wide');
    PosixMessageQueue.create(name, { mode: 0o644 }).close();
    throwsWith(() => PosixMessageQueue.openOrCreate(name, { mode: 0o600 }), 'ERR_IPC_UNTRUSTED',
      /already exists with mode 0644, which grants more than the 0600 asked for/);
    const narrower = PosixMessageQueue.openOrCreate(name, { mode: 0o664 });
    assert.equal(narrower.created, false);
    narrower.close();
    PosixMessageQueue.openOrCreate(name).close();
  });

  it('refuses a bad owner option before any system call', () => {
    for (const owner of [-1, 1.5, '0', 2 ** 32, null]) {
      throwsWith(() => PosixMessageQueue.open('/never-created-here', { owner: owner as never }), 'ERR_IPC_INVALID_ARGUMENT', /owner/);
    }
  });
});

/** Sets the owner uid of the System V queue argv[1] to 0 (IPC_STAT, then IPC_SET with uid at offset 4 of ipc_perm). */
const GIVE_TO_ROOT = [
  'import ctypes, sys',
  'libc = ctypes.CDLL(None, use_errno=True)',
  'buf = ctypes.create_string_buffer(256)',
  'qid = int(sys.argv[1])',
  'assert libc.msgctl(qid, 2, buf) == 0, ctypes.get_errno()',
  'ctypes.memmove(ctypes.addressof(buf) + 4, (ctypes.c_uint32 * 1)(0), 4)',
  'assert libc.msgctl(qid, 1, buf) == 0, ctypes.get_errno()',
].join('\n');
