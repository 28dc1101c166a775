/**
 * Named pipes: creation, opens that wait for the other side without
 * parking a thread, unrelated processes, and shell interoperability.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn as spawnChild } from 'node:child_process';
import {
  chownSync, constants as fsConstants, existsSync, mkdtempSync, openSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Fifo, type IpcError, PipeReadEnd, PipeWriteEnd } from '../src/index.js';
import { Peer, closed, killAllPeers, trackChild } from './helpers/peer.js';
import { rejectsWith, stillPending, threadPoolIsFree, throwsWith, waitUntil } from './helpers/assert.js';
import { blockedIn, inotifyWatching, watchedByThisLoop } from './helpers/proc.js';
import { fifoSwap } from './helpers/fifo-swap.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-fifo-'));
let counter = 0;
const fifoPath = (): string => path.join(dir, `f${++counter}`);

/** An async FIFO open waits on the event loop for an inotify watch of its path to report. */
const INOTIFY = 'anon_inode:inotify';

after(async () => {
  await killAllPeers();
  rmSync(dir, { recursive: true, force: true });
});

describe('Fifo', () => {
  it('creates with an exact mode, refuses an existing path, and unlinks only FIFOs', () => {
    const p = fifoPath();
    const umask = process.umask(0o077);
    try {
      Fifo.create(p, { mode: 0o644 });
    } finally {
      process.umask(umask);
    }
    const st = statSync(p);
    assert.ok(st.isFIFO());
    assert.equal(st.mode & 0o777, 0o644);
    throwsWith(() => Fifo.create(p), 'EEXIST', /already exists/);
    const file = path.join(dir, 'regular');
    writeFileSync(file, 'not a fifo');
    throwsWith(() => Fifo.create(file), 'EEXIST');
    throwsWith(() => Fifo.unlink(file), 'ERR_IPC_NOT_A_FIFO', /is not a FIFO/);
    assert.equal(existsSync(file), true);
    Fifo.unlink(p);
    assert.equal(existsSync(p), false);
    throwsWith(() => Fifo.unlink(p), 'ENOENT', /create it first/);
    for (const bad of ['', 'a\0b', 42]) throwsWith(() => Fifo.create(bad as string), 'ERR_IPC_INVALID_ADDRESS');
  });

  it('refuses symbolic links and paths that are not FIFOs, without opening them', async () => {
    const p = fifoPath();
    Fifo.create(p);
    const link = path.join(dir, 'link');
    symlinkSync(p, link);
    await rejectsWith(() => Fifo.openRead(link), 'ERR_IPC_NOT_A_FIFO', /symbolic link/);
    await rejectsWith(() => Fifo.openWrite(link), 'ERR_IPC_NOT_A_FIFO');
    throwsWith(() => Fifo.openReadSync(link, { timeout: 0 }), 'ERR_IPC_NOT_A_FIFO');
    throwsWith(() => Fifo.unlink(link), 'ERR_IPC_NOT_A_FIFO');
    throwsWith(() => Fifo.create(link), 'EEXIST');
    await rejectsWith(() => Fifo.openRead(dir), 'ERR_IPC_NOT_A_FIFO', /a directory/);
    await rejectsWith(() => Fifo.openWrite('/dev/null'), 'ERR_IPC_NOT_A_FIFO');
    await rejectsWith(() => Fifo.openRead(path.join(dir, 'missing')), 'ENOENT');
    rmSync(link);
    Fifo.unlink(p);
  });

  it('meets only the FIFO it checked: a directory swapped for a link to another user\'s FIFO is refused before any open',
    { skip: process.getuid!() !== 0 && 'needs root to give the decoy FIFO another owner' }, async () => {
      const base = mkdtempSync(path.join(dir, 'swap-'));
      const swap = fifoSwap(base);
      chownSync(swap.decoy, 65534, 65534);
      try {
        // The other user's game: the FIFO's directory and a link to theirs, exchanged as fast as it goes.
        await swap.start();
        const seen = { opened: 0, refused: 0 };
        for (let i = 0; i < 2000; i++) {
          try {
            Fifo.openReadSync(swap.fifo, { nonBlocking: true }).close();
            seen.opened++;
          } catch (err) {
            // Refused as another user's, before it was opened: never "replaced while it was being opened".
            assert.equal((err as IpcError).code, 'ERR_IPC_UNTRUSTED', (err as Error).message);
            seen.refused++;
          }
        }
        assert.ok(seen.opened > 0 && seen.refused > 0, JSON.stringify(seen));
        // Nothing opened the other user's FIFO: its writer still waits.
        await swap.decoyUntouched();
      } finally {
        swap.stop();
        await killAllPeers();
        rmSync(base, { recursive: true, force: true });
      }
    });

  it('openWrite waits for a reader (an ipckit reader in another process), without blocking the event loop', async () => {
    const p = fifoPath();
    Fifo.create(p);
    const opening = Fifo.openWrite(p, { timeout: 10_000 });
    let ticks = 0;
    const interval = setInterval(() => ticks++, 5);
    // The open waits on the event loop, which meanwhile runs timers (waitUntil's own included).
    await watchedByThisLoop(INOTIFY);
    await waitUntil('five timer ticks ran while openWrite waited', () => ticks >= 5);
    clearInterval(interval);
    assert.equal(await stillPending(opening, 0), true);
    const reader = new Peer('fifo-read', { path: p, mode: 'async' });
    const end = await opening;
    assert.ok(end instanceof PipeWriteEnd);
    assert.equal(end.address, p);
    assert.equal(end.nonBlocking, false);
    await end.write(Buffer.from('across the FIFO'));
    end.close();
    await reader.next();
    await reader.next();
    assert.deepEqual(await reader.next(), { event: 'done', data: 'across the FIFO' });
    await reader.success();
    Fifo.unlink(p);
  });

  it('openRead waits for a writer, and the two sides need not be related', async () => {
    const p = fifoPath();
    Fifo.create(p);
    const opening = Fifo.openRead(p, { timeout: 10_000 });
    assert.equal(await stillPending(opening, 150), true);
    const writer = new Peer('fifo-write', { path: p, mode: 'sync', text: 'hello reader' });
    const end = await opening;
    assert.ok(end instanceof PipeReadEnd);
    const chunks: Buffer[] = [];
    for await (const chunk of end) chunks.push(chunk);
    assert.equal(Buffer.concat(chunks).toString(), 'hello reader');
    await writer.success();
    end.close();
    // Two peers, neither of them this process, started separately.
    const reader = new Peer('fifo-read', { path: p, mode: 'sync' });
    await reader.next();
    await blockedIn(reader.pid, 'openat', { main: true, what: `the reader ${reader.pid} is blocked opening ${p}` });
    const other = new Peer('fifo-write', { path: p, mode: 'async', text: 'peer to peer' });
    assert.deepEqual(await reader.next(), { event: 'opened' });
    assert.deepEqual(await reader.next(), { event: 'done', data: 'peer to peer' });
    await Promise.all([reader.success(), other.success()]);
    Fifo.unlink(p);
  });

  it('times out and aborts opens with no peer; nonBlocking fails (writer) or opens at once (reader)', async () => {
    const p = fifoPath();
    Fifo.create(p);
    await rejectsWith(() => Fifo.openWrite(p, { timeout: 60 }), 'ERR_IPC_TIMEOUT', /openWrite on .* timed out after 60 ms/);
    await rejectsWith(() => Fifo.openRead(p, { timeout: 60 }), 'ERR_IPC_TIMEOUT');
    await rejectsWith(() => Fifo.openWrite(p, { timeout: 0 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => Fifo.openReadSync(p, { timeout: 60 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => Fifo.openWriteSync(p, { timeout: 60 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => Fifo.openWriteSync(p, { timeout: 0 }), 'ERR_IPC_TIMEOUT');
    const ac = new AbortController();
    const aborted = Fifo.openWrite(p, { signal: ac.signal });
    await watchedByThisLoop(INOTIFY);
    ac.abort(new Error('changed my mind'));
    const err = await rejectsWith(() => aborted, 'ERR_IPC_ABORTED');
    assert.equal((err.cause as Error).message, 'changed my mind');
    await rejectsWith(() => Fifo.openRead(p, { signal: AbortSignal.abort() }), 'ERR_IPC_ABORTED');
    await rejectsWith(() => Fifo.openWrite(p, { nonBlocking: true }), 'ENXIO', /No process has the FIFO open for reading/);
    throwsWith(() => Fifo.openWriteSync(p, { nonBlocking: true }), 'ENXIO');
    const reader = await Fifo.openRead(p, { nonBlocking: true });
    assert.equal(reader.nonBlocking, true);
    assert.equal(reader.tryRead(), undefined, 'no writer yet is not the end of the data');
    // With a reader there, a non-blocking writer opens at once.
    const writer = await Fifo.openWrite(p, { nonBlocking: true });
    writer.tryWrite(Buffer.from('now'));
    writer.close();
    assert.equal(reader.tryRead()!.toString(), 'now');
    assert.equal(reader.tryRead(), null);
    reader.close();
    // Nothing an aborted or timed-out open made is left open.
    assert.deepEqual(fifoFds(p), []);
    Fifo.unlink(p);
  });

  it('keeps the libuv thread pool usable while 8 opens wait for their peers', async () => {
    const paths = Array.from({ length: 8 }, () => fifoPath());
    for (const p of paths) Fifo.create(p);
    const ac = new AbortController();
    const opens = paths.map((p, i) => (i % 2 === 0 ? Fifo.openRead(p, { signal: ac.signal }) : Fifo.openWrite(p, { signal: ac.signal })));
    await watchedByThisLoop(INOTIFY);
    await inotifyWatching(8);
    await threadPoolIsFree();
    ac.abort();
    for (const open of opens) await rejectsWith(() => open, 'ERR_IPC_ABORTED');
    for (const p of paths) Fifo.unlink(p);
  });

  it('200 opens waiting at once share one inotify instance (a user has 128)', async () => {
    const paths = Array.from({ length: 200 }, () => fifoPath());
    for (const p of paths) Fifo.create(p);
    const ac = new AbortController();
    const opens = paths.map((p) => Fifo.openRead(p, { signal: ac.signal }));
    await inotifyWatching(200);
    const instances = readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:inotify';
      } catch {
        return false;
      }
    });
    assert.equal(instances.length, 1);
    ac.abort();
    for (const open of opens) await rejectsWith(() => open, 'ERR_IPC_ABORTED');
    for (const p of paths) Fifo.unlink(p);
  });

  it('wraps a FIFO write end whose reader has left: the write fails with EPIPE, the wrapping does not', async () => {
    const p = fifoPath();
    Fifo.create(p);
    const reader = Fifo.openReadSync(p, { nonBlocking: true });
    const fd = openSync(p, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    reader.close();
    const wrapped = PipeWriteEnd.fromFd(fd);
    await rejectsWith(() => wrapped.write(Buffer.from('x')), 'EPIPE', /No process has the read end open/);
    throwsWith(() => wrapped.writeSync(Buffer.from('x')), 'EPIPE');
    wrapped.close();
    Fifo.unlink(p);
  });

  it('a waiting writer never lets another program\'s blocked writer through before a real reader comes', async () => {
    const p = fifoPath();
    Fifo.create(p);
    // Another producer, blocked in its open for a reader; once open, it writes.
    const producer = trackChild(spawnChild('sh', ['-c', `exec 3>'${p}'; echo from-shell >&3`], { stdio: 'ignore' }));
    const produced = new Promise<[number | null, string | null]>((resolve) => producer.once('exit', (code, signal) => resolve([code, signal])));
    await blockedIn(producer.pid!, 'openat', { what: 'the shell waits for a reader' });
    const mine = Fifo.openWrite(p, { timeout: 10_000 });
    await inotifyWatching(1);
    // It looks for a reader every 20 ms: give it several looks, then check nothing let the shell through.
    await new Promise((resolve) => setTimeout(resolve, 150));
    await blockedIn(producer.pid!, 'openat', { what: 'the shell still waits for a reader', timeoutMs: 100 });
    // A blocking reader that keeps its end open until both lines came: the shell may write and
    // close before ipckit's next look, and a cat would take that EOF as the end and leave.
    const reader = trackChild(spawnChild('python3', ['-c', [
      'import os, sys, time',
      'fd = os.open(sys.argv[1], os.O_RDONLY)',
      "got = b''",
      "while got.count(b'\\n') < 2:",
      '    chunk = os.read(fd, 100)',
      '    got += chunk',
      '    if not chunk: time.sleep(0.005)',
      'sys.stdout.write(got.decode())'].join('\n'), p], { stdio: ['ignore', 'pipe', 'inherit'] }));
    let out = '';
    reader.stdout!.setEncoding('utf8').on('data', (chunk: string) => { out += chunk; });
    const writer = await mine;
    await writer.write(Buffer.from('from-ipckit\n'));
    writer.close();
    assert.deepEqual(await produced, [0, null]);
    await closed(reader);
    assert.deepEqual(out.split('\n').filter(Boolean).sort(), ['from-ipckit', 'from-shell']);
    Fifo.unlink(p);
  });

  it('interoperates with shell tools both ways: echo > fifo, and cat fifo', async () => {
    const p = fifoPath();
    execFileSync('mkfifo', [p]);
    const reading = Fifo.openRead(p, { timeout: 10_000 });
    const echo = trackChild(spawnChild('sh', ['-c', `echo from the shell > '${p}'`], { stdio: 'ignore' }));
    const end = await reading;
    let text = '';
    for await (const chunk of end) text += chunk.toString();
    assert.equal(text, 'from the shell\n');
    end.close();
    assert.deepEqual(await closed(echo), { code: 0, signal: null });
    // A cat that starts after ipckit is already waiting to write: it opens in blocking mode.
    const writing = Fifo.openWrite(p, { timeout: 10_000 });
    await watchedByThisLoop(INOTIFY);
    const cat = trackChild(spawnChild('cat', [p], { stdio: ['ignore', 'pipe', 'inherit'] }));
    let printed = '';
    cat.stdout!.setEncoding('utf8').on('data', (chunk: string) => { printed += chunk; });
    const writer = await writing;
    await writer.write(Buffer.from('to the shell\n'));
    writer.close();
    const code = await new Promise((resolve) => cat.once('close', resolve));
    assert.equal(code, 0);
    assert.equal(printed, 'to the shell\n');
    Fifo.unlink(p);
  });

  it('ipckit fifo read/write from the command line meet at a FIFO', async () => {
    const p = fifoPath();
    const cli = new URL('../src/cli/main.js', import.meta.url).pathname;
    execFileSync(process.execPath, [cli, 'fifo', 'create', p, '--mode', '600']);
    const reader = trackChild(spawnChild(process.execPath, [cli, 'fifo', 'read', p, '--count', '2', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    reader.stdout!.setEncoding('utf8').on('data', (chunk: string) => { out += chunk; });
    execFileSync(process.execPath, [cli, 'fifo', 'write', p, '-'], { input: 'alpha\nbeta\ngamma\n' });
    await new Promise((resolve) => reader.once('close', resolve));
    assert.equal(out, '{"line":"alpha"}\n{"line":"beta"}\n');
    execFileSync(process.execPath, [cli, 'fifo', 'rm', p]);
    assert.equal(existsSync(p), false);
  });
});

/** Descriptors of this process open on `p`. */
function fifoFds(p: string): string[] {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === p;
    } catch {
      return false;
    }
  });
}

describe('fifo cleanup', () => {
  it('leaves no FIFO and no descriptor on one', async () => {
    await killAllPeers();
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('f')), []);
  });
});
