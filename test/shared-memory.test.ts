/**
 * Shared-memory segments, both families, between real processes.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { constants as bufferConstants } from 'node:buffer';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { IpcError, Mutex, PosixSharedMemory, SHM_MAX_SIZE, Semaphore, SysvSharedMemory } from '../src/index.js';
import { ObjectTracker, openFds } from './helpers/objects.js';
import { Peer, killAllPeers, trackChild } from './helpers/peer.js';
import { blockedIn } from './helpers/proc.js';
import { rejectsWith, throwsWith } from './helpers/assert.js';

const objects = new ObjectTracker();
after(async () => {
  await killAllPeers();
  objects.cleanup();
});

/** Descriptors of this process that point at `path`. */
function fdsTo(path: string): string[] {
  return openFds().filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  });
}

/** The permissions column of /proc/self/maps for mappings whose path contains `needle`. */
function mappingPerms(needle: string): string[] {
  return readFileSync('/proc/self/maps', 'utf8').split('\n')
    .filter((line) => line.includes(needle)).map((line) => line.split(/\s+/)[1]!);
}

describe('POSIX shared memory', () => {
  it('creates with exact size and mode, opens without resizing, and refuses a larger size', () => {
    const name = objects.shmName();
    const umask = process.umask(0o077);
    let shm: PosixSharedMemory;
    try {
      shm = PosixSharedMemory.create(name, { size: 10_000, mode: 0o640 });
    } finally {
      process.umask(umask);
    }
    assert.equal(shm.size, 10_000);
    assert.equal(shm.buffer.byteLength, 10_000);
    assert.ok(shm.buffer instanceof SharedArrayBuffer);
    assert.equal(shm.created, true);
    assert.deepEqual({ ...shm.stat(), changeTime: 0 }, { size: 10_000, mode: 0o640, uid: process.getuid!(), gid: process.getgid!(), changeTime: 0 });
    using again = PosixSharedMemory.openOrCreate(name, { size: 100 });
    assert.equal(again.created, false);
    assert.equal(again.size, 10_000);
    using exact = PosixSharedMemory.open(name, { size: 10_000 });
    assert.equal(exact.size, 10_000);
    throwsWith(() => PosixSharedMemory.open(name, { size: 10_001 }), 'ERR_IPC_SIZE_MISMATCH', /is 10000 bytes, smaller than the 10001 asked for/);
    throwsWith(() => PosixSharedMemory.openOrCreate(name, { size: 20_000 }), 'ERR_IPC_SIZE_MISMATCH');
    throwsWith(() => PosixSharedMemory.create(name, { size: 1 }), 'EEXIST', /already exists/);
    assert.equal(PosixSharedMemory.stat(name).size, 10_000);
    shm.close();
    PosixSharedMemory.unlink(name);
    throwsWith(() => PosixSharedMemory.open(name), 'ENOENT', /create it first/);
    throwsWith(() => PosixSharedMemory.unlink(name), 'ENOENT');
  });

  it('is the same memory in two processes: each sees the other\'s writes, with no copy', async () => {
    const name = objects.shmName();
    using shm = PosixSharedMemory.create(name, { size: 4096 });
    const peer = new Peer('shm-exchange', { family: 'posix', address: name, offset: 100, text: 'from the child', replyOffset: 200, replyLength: 16 });
    assert.deepEqual(await peer.next(), { event: 'written', size: 4096 });
    assert.equal(shm.read(100, 14).toString(), 'from the child');
    assert.equal(Buffer.from(shm.buffer, 100, 14).toString(), 'from the child');
    shm.write(Buffer.from('from the parent!'), 200);
    Atomics.store(new Int32Array(shm.buffer), 0, 1);
    assert.deepEqual(await peer.next(), { event: 'reply', text: 'from the parent!' });
    await peer.success();
    shm.unlink();
  });

  it('maps read-only with PROT_READ and refuses ipckit writes', () => {
    const name = objects.shmName();
    using shm = PosixSharedMemory.create(name, { size: 4096 });
    shm.write(Buffer.from('visible'));
    using ro = PosixSharedMemory.open(name, { readOnly: true });
    assert.equal(ro.readOnly, true);
    assert.deepEqual(mappingPerms(`/dev/shm${name}`).sort(), ['r--s', 'rw-s']);
    assert.equal(ro.read(0, 7).toString(), 'visible');
    throwsWith(() => ro.write(Buffer.from('x')), 'ERR_IPC_READ_ONLY', /mapped read-only/);
    throwsWith(() => Mutex.create(ro, 0), 'ERR_IPC_READ_ONLY');
    shm.unlink();
  });

  it('after close: every access throws ERR_IPC_CLOSED, old views read zeros, nothing faults', () => {
    const name = objects.shmName();
    const shm = PosixSharedMemory.create(name, { size: 8192 });
    const view = new Uint8Array(shm.buffer);
    view.fill(7);
    assert.deepEqual(fdsTo(`/dev/shm${name}`), [String(shm.fd)]);
    shm.close();
    shm.close();
    assert.equal(shm.closed, true);
    for (const access of [() => shm.buffer, () => shm.bytes, () => shm.fd, () => shm.read(), () => shm.write(Buffer.from('x')), () => shm.stat()]) {
      throwsWith(access, 'ERR_IPC_CLOSED', /the segment is closed/);
    }
    throwsWith(() => Mutex.create(shm, 0), 'ERR_IPC_CLOSED');
    // The old view is detached from the segment: it reads zeros, writes go nowhere shared.
    assert.equal(view[0], 0);
    view[1] = 9;
    assert.equal(view[1], 9);
    assert.deepEqual(fdsTo(`/dev/shm${name}`), []);
    assert.deepEqual(mappingPerms(`/dev/shm${name}`), []);
    using reopened = PosixSharedMemory.open(name);
    assert.equal(reopened.bytes[0], 7);
    assert.equal(reopened.bytes[1], 7);
    reopened.unlink();
  });

  it('rejects hostile names and sizes with the registry codes', () => {
    for (const bad of ['shm', '', '/', '/a/b', '/a\0b', `/${'x'.repeat(256)}`, '/..', 7]) {
      throwsWith(() => PosixSharedMemory.create(bad as string, { size: 1 }), 'ERR_IPC_INVALID_ADDRESS');
      throwsWith(() => PosixSharedMemory.open(bad as string), 'ERR_IPC_INVALID_ADDRESS');
    }
    const name = objects.shmName();
    for (const size of [0, -1, 1.5, NaN, SHM_MAX_SIZE + 1, '10' as unknown as number, undefined as unknown as number]) {
      throwsWith(() => PosixSharedMemory.create(name, { size }), 'ERR_IPC_INVALID_ARGUMENT', /size must be an integer from 1/);
    }
    throwsWith(() => PosixSharedMemory.create(name, { size: 10, mode: -1 }), 'ERR_IPC_INVALID_ARGUMENT', /mode/);
    using shm = PosixSharedMemory.create(name, { size: 16 });
    throwsWith(() => shm.write(Buffer.alloc(17)), 'ERR_IPC_INVALID_ARGUMENT', /length must be an integer from 0 to 16/);
    throwsWith(() => shm.write(Buffer.alloc(1), 16), 'ERR_IPC_INVALID_ARGUMENT');
    throwsWith(() => shm.read(-1, 1), 'ERR_IPC_INVALID_ARGUMENT', /offset/);
    throwsWith(() => shm.read(8, 9), 'ERR_IPC_INVALID_ARGUMENT');
    throwsWith(() => shm.write(42 as unknown as Buffer), 'ERR_IPC_INVALID_ARGUMENT', /a Uint8Array, Buffer or string/);
    // A string is written as its UTF-8 bytes.
    shm.write('naïve', 2);
    assert.deepEqual(shm.read(2, 6), Buffer.from('naïve'));
    throwsWith(() => shm.write('x'.repeat(17)), 'ERR_IPC_INVALID_ARGUMENT', /length must be an integer from 0 to 16/);
    assert.equal(shm.read(16).length, 0);
    shm.unlink();
  });

  it('refuses to follow a symbolic link planted in /dev/shm', (t) => {
    const name = objects.shmName();
    const link = `/dev/shm${name}`;
    try {
      execFileSync('ln', ['-s', '/etc/hostname', link]);
    } catch {
      t.diagnostic('cannot create a symlink in /dev/shm here');
      return;
    }
    try {
      throwsWith(() => PosixSharedMemory.open(name), 'ERR_IPC_INVALID_ADDRESS', /a symbolic link \(ipckit does not follow them\)/);
    } finally {
      execFileSync('rm', ['-f', link]);
    }
  });
});

describe('System V shared memory', () => {
  it('creates by key, opens by key, ftok and id, and reports attachments, creator and last pids', async () => {
    const key = objects.shmKey();
    using shm = SysvSharedMemory.create(key, { size: 5000, mode: 0o640 });
    let st = shm.stat();
    assert.equal(st.key, key);
    assert.equal(st.size, 5000);
    assert.equal(st.mode, 0o640);
    assert.equal(st.attachments, 1);
    assert.equal(st.creatorPid, process.pid);
    assert.equal(st.lastPid, process.pid);
    assert.equal(st.removed, false);
    assert.ok(st.lastAttachTime instanceof Date);
    const peer = new Peer('shm-attach', { family: 'sysv', address: key });
    assert.equal((await peer.next()).event, 'attached');
    st = shm.stat();
    assert.equal(st.attachments, 2);
    assert.equal(st.lastPid, peer.pid);
    peer.child.kill('SIGTERM');
    await peer.exited;
    assert.equal(shm.stat().attachments, 1);
    using byId = SysvSharedMemory.open({ id: shm.id });
    using byHex = SysvSharedMemory.open(`0x${key.toString(16)}`, { size: 5000 });
    assert.deepEqual([byId.key, byHex.id, byId.size], [key, shm.id, 5000]);
    throwsWith(() => SysvSharedMemory.open(key, { size: 5001 }), 'ERR_IPC_SIZE_MISMATCH');
    throwsWith(() => SysvSharedMemory.create(key, { size: 1 }), 'EEXIST');
    assert.equal(SysvSharedMemory.stat(key).attachments, 3);
    shm.remove();
  });

  it('IPC_RMID semantics: a removed segment lives until the last process detaches', () => {
    const key = objects.shmKey();
    const shm = SysvSharedMemory.create(key, { size: 100 });
    shm.write(Buffer.from('still here'));
    shm.remove();
    assert.equal(shm.stat().removed, true);
    assert.equal(shm.read(0, 10).toString(), 'still here');
    throwsWith(() => SysvSharedMemory.open(key), 'ENOENT');
    const id = shm.id;
    assert.ok(readFileSync('/proc/sysvipc/shm', 'utf8').split('\n').some((l) => l.trim().split(/\s+/)[1] === String(id)));
    shm.close();
    assert.equal(readFileSync('/proc/sysvipc/shm', 'utf8').split('\n').some((l) => l.trim().split(/\s+/)[1] === String(id)), false);
  });

  it('is a plain kernel object: ipcmk and Python segments open in ipckit, and ipcs lists ipckit\'s', (t) => {
    const key = objects.shmKey();
    using shm = SysvSharedMemory.create(key, { size: 256 });
    const ipcs = spawnSync('ipcs', ['-m'], { encoding: 'utf8' });
    if (ipcs.status === 0) assert.match(ipcs.stdout, new RegExp(`0x${key.toString(16).padStart(8, '0')}\\s+${shm.id}\\s`));
    else t.diagnostic('ipcs not found');
    const ipcmk = spawnSync('ipcmk', ['-M', '1000'], { encoding: 'utf8' });
    if (ipcmk.status === 0) {
      const id = Number(/([0-9]+)\s*$/.exec(ipcmk.stdout.trim())![1]);
      using theirs = SysvSharedMemory.open({ id });
      try {
        assert.equal(theirs.size, 1000);
        theirs.write(Buffer.from('ipckit was here'));
      } finally {
        theirs.remove();
      }
    } else {
      t.diagnostic('ipcmk not found');
    }
    shm.write(Buffer.from('from ipckit'));
    let out: string;
    try {
      out = execFileSync('python3', ['-c', `
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
sid = libc.shmget(int(sys.argv[1]), 0, 0)
addr = libc.shmat(sid, None, 0)
print(ctypes.string_at(addr, 11).decode())
ctypes.memmove(addr + 100, b'from python', 11)
libc.shmdt(ctypes.c_void_p(addr))`, String(key)], { encoding: 'utf8' });
    } catch (err) {
      t.diagnostic(`python3 with ctypes is not usable here: ${(err as Error).message}`);
      shm.remove();
      return;
    }
    assert.equal(out, 'from ipckit\n');
    assert.equal(shm.read(100, 11).toString(), 'from python');
    shm.remove();
  });

  it('maps read-only with SHM_RDONLY, and close() detaches', async () => {
    const key = objects.shmKey();
    using shm = SysvSharedMemory.create(key, { size: 4096 });
    const peer = new Peer('shm-attach', { family: 'sysv', address: key, readOnly: true });
    assert.deepEqual(await peer.next(), { event: 'attached', pid: peer.pid, readOnly: true });
    const perms = readFileSync(`/proc/${peer.pid}/maps`, 'utf8').split('\n').filter((l) => l.includes(`SYSV${key.toString(16).padStart(8, '0')}`)).map((l) => l.split(/\s+/)[1]);
    assert.deepEqual(perms, ['r--s']);
    await peer.kill('SIGKILL');
    const view = new Uint8Array(shm.buffer);
    shm.close();
    assert.equal(view[0], 0);
    throwsWith(() => shm.stat(), 'ERR_IPC_CLOSED');
    assert.equal(SysvSharedMemory.stat(key).attachments, 0);
    SysvSharedMemory.remove(key);
  });

  it('rejects bad keys and sizes', () => {
    for (const bad of [0, -5, 'key', { path: '/tmp', projectId: 0 }, { id: -1 }]) {
      throwsWith(() => SysvSharedMemory.create(bad as number, { size: 10 }), 'ERR_IPC_INVALID_ADDRESS');
    }
    throwsWith(() => SysvSharedMemory.create({ id: 3 }, { size: 10 }), 'ERR_IPC_INVALID_ADDRESS', /identifiers are assigned by the kernel/);
    const key = objects.shmKey();
    for (const size of [0, -1, 2.5]) throwsWith(() => SysvSharedMemory.create(key, { size }), 'ERR_IPC_INVALID_ARGUMENT');
    throwsWith(() => SysvSharedMemory.open(0x7ffffff0 + (key & 0xf)), 'ENOENT');
    throwsWith(() => SysvSharedMemory.open({ id: 0x7ffffff0 }), 'EINVAL');
  });
});

describe('a segment another process truncates', () => {
  /** A POSIX segment of three pages, with `truncate -s <to>` (another program) run on it. */
  function truncated(to: number): { shm: PosixSharedMemory; name: string; before: PosixSharedMemory } {
    const name = objects.shmName('trunc');
    const shm = PosixSharedMemory.create(name, { size: 3 * 4096 });
    shm.write(Buffer.from('first page'), 0);
    shm.write(Buffer.from('third page'), 8192);
    const before = PosixSharedMemory.open(name);
    execFileSync('truncate', ['-s', String(to), `/dev/shm${name}`]);
    return { shm, name, before };
  }

  it('read, readInto and write fail with ERR_IPC_SIZE_MISMATCH instead of a SIGBUS that kills the process', () => {
    const { shm, name, before } = truncated(100);
    const gone = /^read on .*: another process truncated the segment below the 12288 bytes this mapping has\. .*Close the segment and open it again/;
    throwsWith(() => shm.read(8192, 10), 'ERR_IPC_SIZE_MISMATCH', gone);
    // The mapping is flagged: every later call says so, even within what is left.
    throwsWith(() => shm.read(0, 10), 'ERR_IPC_SIZE_MISMATCH', /truncated/);
    throwsWith(() => shm.write(Buffer.from('x'), 0), 'ERR_IPC_SIZE_MISMATCH', /^write on/);
    // Another mapping of the same segment is flagged by its own first fault.
    assert.equal(before.read(0, 10).toString(), 'first page');
    throwsWith(() => before.readInto(Buffer.alloc(4), 4096), 'ERR_IPC_SIZE_MISMATCH', /^readInto on/);
    // Raw access through the buffer does not fault either: private zeros past the end.
    const raw = new Uint8Array(shm.buffer);
    assert.equal(raw[8192], 0);
    raw[8192] = 7;
    assert.deepEqual(PosixSharedMemory.stat(name).size, 100);
    // Reopened, it is the 100-byte segment it now is.
    shm.close();
    before.close();
    using again = PosixSharedMemory.open(name);
    assert.equal(again.size, 100);
    assert.equal(again.read(0, 10).toString(), 'first page');
    again.unlink();
  });

  it('a lock whose words were cut off fails with ERR_IPC_SIZE_MISMATCH; one whose words remain still unlocks', async () => {
    const name = objects.shmName('trunc-lock');
    const shm = PosixSharedMemory.create(name, { size: 3 * 4096 });
    const kept = Mutex.create(shm, 0);
    const cut = Mutex.create(shm, 8192);
    const sem = Semaphore.create(shm, 8192 + 64, { value: 1 });
    kept.lockSync();
    execFileSync('truncate', ['-s', '4096', `/dev/shm${name}`]);
    throwsWith(() => cut.lockSync(), 'ERR_IPC_SIZE_MISMATCH', /^lock on .*truncated/);
    throwsWith(() => cut.tryLock(), 'ERR_IPC_SIZE_MISMATCH');
    await rejectsWith(() => cut.lock({ timeout: 1000 }), 'ERR_IPC_SIZE_MISMATCH');
    throwsWith(() => sem.waitSync({ timeout: 1000 }), 'ERR_IPC_SIZE_MISMATCH');
    // The page holding `kept` is still the segment's: unlocking releases it for every process.
    kept.unlock();
    using other = PosixSharedMemory.open(name);
    assert.equal(Mutex.open(other, 0).locked, false);
    shm.close();
    other.unlink();
  });

  it('on a mapping already flagged truncated, a lock or semaphore whose page remains takes nothing from the shared words', async () => {
    const name = objects.shmName('trunc-flagged');
    const shm = PosixSharedMemory.create(name, { size: 2 * 4096 });
    const mutex = Mutex.create(shm, 0);
    const sem = Semaphore.create(shm, 64, { value: 5 });
    using other = PosixSharedMemory.open(name);
    execFileSync('truncate', ['-s', '4096', `/dev/shm${name}`]);
    // This mapping touches the page that is gone: the fault is caught, and the mapping flagged.
    void new Uint8Array(shm.buffer)[5000];
    throwsWith(() => mutex.lockSync(), 'ERR_IPC_SIZE_MISMATCH', /^lockSync on .*truncated/);
    throwsWith(() => mutex.tryLock(), 'ERR_IPC_SIZE_MISMATCH');
    await rejectsWith(() => mutex.lock(), 'ERR_IPC_SIZE_MISMATCH', /^lock on .*truncated/);
    throwsWith(() => sem.tryWait(), 'ERR_IPC_SIZE_MISMATCH', /^tryWait on .*truncated/);
    throwsWith(() => sem.waitSync(), 'ERR_IPC_SIZE_MISMATCH', /^waitSync on .*truncated/);
    await rejectsWith(() => sem.wait(), 'ERR_IPC_SIZE_MISMATCH');
    // Seen through a mapping that is not flagged: the lock is free and the count whole.
    assert.deepEqual([Mutex.open(other, 0).locked, Semaphore.open(other, 64).value], [false, 5]);
    shm.close();
    other.unlink();
  });

  it('a SIGBUS that is not a truncated segment still takes its default action', () => {
    const script = `import(${JSON.stringify(new URL('../src/index.js', import.meta.url).href)}).then((m) => {
      const shm = m.PosixSharedMemory.create('${objects.shmName('bus')}', { size: 4096 });
      shm.unlink();
      process.kill(process.pid, 'SIGBUS');
      setTimeout(() => console.log('survived'), 1000);
    })`;
    const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    assert.deepEqual([result.status, result.signal, result.stdout], [null, 'SIGBUS', '']);
  });
});

describe('segments larger than 4 GiB', () => {
  it('read, readInto and write reach every offset; bytes says to take views', (t) => {
    // System V pages are only allocated when touched: this costs a few pages, not 4 GiB.
    const size = 2 ** 32 + 8192;
    const key = objects.shmKey();
    let shm: SysvSharedMemory;
    try {
      shm = SysvSharedMemory.create(key, { size });
    } catch (err) {
      if (err instanceof IpcError && ['ERR_IPC_LIMIT', 'ENOMEM', 'EINVAL', 'ENOSPC'].includes(err.code)) {
        t.skip(`this machine refuses a ${size}-byte segment: ${err.message}`);
        return;
      }
      throw err;
    }
    try {
      assert.equal(shm.size, size);
      const high = 2 ** 32 + 100;
      shm.write(Buffer.from('beyond 4 GiB'), high);
      assert.equal(shm.read(high, 12).toString(), 'beyond 4 GiB');
      // Across the 4 GiB boundary.
      shm.write(Buffer.from('0123456789'), 2 ** 32 - 5);
      assert.equal(shm.readInto(Buffer.alloc(10), 2 ** 32 - 5).toString(), '0123456789');
      assert.equal(new Uint8Array(shm.buffer, 2 ** 32 - 5, 10)[5], '5'.charCodeAt(0));
      if (bufferConstants.MAX_LENGTH < size) {
        throwsWith(() => shm.bytes, 'ERR_IPC_INVALID_ARGUMENT', /exceed the largest Uint8Array .*new Uint8Array\(segment\.buffer, offset, length\)/);
        throwsWith(() => shm.read(0), 'ERR_IPC_INVALID_ARGUMENT', /a Buffer holds at most 4294967296 bytes; read in parts/);
      } else {
        // Node 22+ makes typed arrays past 4 GiB: the whole segment is one view (a read of it all would copy 4 GiB).
        assert.equal(shm.bytes.length, size);
      }
      throwsWith(() => shm.write(Buffer.alloc(2), size - 1), 'ERR_IPC_INVALID_ARGUMENT', /length/);
      const mutex = Mutex.create(shm, 2 ** 32 + 64);
      mutex.lockSync();
      assert.equal(mutex.held, true);
      mutex.unlock();
    } finally {
      shm.close();
      SysvSharedMemory.remove(key);
    }
  });
});

describe('something else at the name', () => {
  it('refuses a FIFO planted in /dev/shm at once, instead of blocking in open(2)', () => {
    const name = objects.shmName('fifo');
    execFileSync('mkfifo', ['-m', '0666', `/dev/shm${name}`]);
    try {
      throwsWith(() => PosixSharedMemory.stat(name), 'ERR_IPC_INVALID_ADDRESS', /not a shared-memory segment but a FIFO/);
      throwsWith(() => PosixSharedMemory.open(name, { readOnly: true }), 'ERR_IPC_INVALID_ADDRESS', /a FIFO/);
      throwsWith(() => PosixSharedMemory.open(name), 'ERR_IPC_INVALID_ADDRESS', /a FIFO/);
      throwsWith(() => PosixSharedMemory.openOrCreate(name, { size: 64 }), 'ERR_IPC_INVALID_ADDRESS', /a FIFO/);
    } finally {
      rmSync(`/dev/shm${name}`);
    }
  });

  for (const waits of ['reader', 'writer']) {
    it(`never opens what it refuses: a ${waits} waiting at the other end of the FIFO is not met`, async () => {
      const name = objects.shmName(`fifo-${waits}`);
      const path = `/dev/shm${name}`;
      execFileSync('mkfifo', ['-m', '0666', path]);
      // Any open of ours the other way would let it through.
      const script = waits === 'reader' ? 'exec 3< "$0"; echo met' : 'exec 3> "$0"; echo met';
      const child = trackChild(spawn('sh', ['-c', script, path], { stdio: ['ignore', 'pipe', 'ignore'] }));
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
      try {
        await blockedIn(child.pid!, 'openat', { what: `the shell waits in its open of the FIFO as a ${waits}` });
        for (const readOnly of [false, true]) {
          throwsWith(() => PosixSharedMemory.open(name, { readOnly }), 'ERR_IPC_INVALID_ADDRESS', /a FIFO/);
          throwsWith(() => PosixSharedMemory.open(name, { readOnly, owner: 'any' }), 'ERR_IPC_INVALID_ADDRESS', /a FIFO/);
        }
        throwsWith(() => PosixSharedMemory.openOrCreate(name, { size: 64, mode: 0o600 }), 'ERR_IPC_INVALID_ADDRESS', /a FIFO/);
        throwsWith(() => PosixSharedMemory.stat(name), 'ERR_IPC_INVALID_ADDRESS', /a FIFO/);
        // Still waiting in open(2): nothing of ours reached it.
        await blockedIn(child.pid!, 'openat', { what: 'the shell still waits', timeoutMs: 1000 });
        assert.equal(out, '');
      } finally {
        child.kill('SIGKILL');
        await new Promise((resolve) => child.once('close', resolve));
        rmSync(path);
      }
    });
  }

  it('names what is there instead: a directory, a symbolic link', () => {
    const name = objects.shmName('dir');
    mkdirSync(`/dev/shm${name}`);
    try {
      throwsWith(() => PosixSharedMemory.open(name), 'ERR_IPC_INVALID_ADDRESS', /not a shared-memory segment but a directory/);
      throwsWith(() => PosixSharedMemory.openOrCreate(name, { size: 64 }), 'ERR_IPC_INVALID_ADDRESS', /a directory/);
    } finally {
      rmSync(`/dev/shm${name}`, { recursive: true });
    }
    const link = objects.shmName('link');
    symlinkSync('/etc/hostname', `/dev/shm${link}`);
    try {
      throwsWith(() => PosixSharedMemory.open(link), 'ERR_IPC_INVALID_ADDRESS', /but a symbolic link \(ipckit does not follow them\)/);
      throwsWith(() => PosixSharedMemory.stat(link), 'ERR_IPC_INVALID_ADDRESS', /a symbolic link/);
      throwsWith(() => PosixSharedMemory.openOrCreate(link, { size: 64 }), 'ERR_IPC_INVALID_ADDRESS', /a symbolic link/);
    } finally {
      rmSync(`/dev/shm${link}`);
    }
  });
});

describe('read-only mappings', () => {
  it('refuses to copy into a view of a read-only segment (a store there is a fatal memory fault)', () => {
    const name = objects.shmName();
    using rw = PosixSharedMemory.create(name, { size: 64 });
    using ro = PosixSharedMemory.open(name, { readOnly: true });
    rw.write(Buffer.from('source'));
    throwsWith(() => rw.readInto(new Uint8Array(ro.buffer, 0, 8)), 'ERR_IPC_READ_ONLY', /mapped read-only/);
    const copy = rw.readInto(new Uint8Array(6));
    assert.equal(Buffer.from(copy).toString(), 'source');
    rw.unlink();
  });
});

describe('shared memory cleanup', () => {
  it('leaves no segment behind', async () => {
    await killAllPeers();
    assert.deepEqual(objects.leftovers(), []);
    assert.ok(!(readFileSync('/proc/self/maps', 'utf8').includes('/dev/shm/ipckit-test')));
    assert.ok(IpcError);
  });
});
