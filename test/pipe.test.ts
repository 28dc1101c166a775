/**
 * Anonymous pipes: ends, the blocking triple, EOF and EPIPE, atomic writes,
 * ends handed to children, framing and streams.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { IpcError, PIPE_BUF, PipeReadEnd, PipeWriteEnd, pipe, spawn } from '../src/index.js';
import { native } from '../src/native.js';
import { pipeFds } from './helpers/objects.js';
import { Peer, killAllPeers, trackChild } from './helpers/peer.js';
import { rejectsWith, stillPending, threadPoolIsFree, throwsWith, waitUntil } from './helpers/assert.js';

const PEER_MAIN = fileURLToPath(new URL('./helpers/peer-main.js', import.meta.url));


let baseline: number;
before(() => {
  baseline = pipeFds().length;
});
after(async () => {
  await killAllPeers();
});

/** The child's exit code, whether it has already exited or not. */
function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', resolve));
}

describe('pipe()', () => {
  it('makes a half-duplex pair: a read end that cannot write and a write end that cannot read', () => {
    const { readEnd, writeEnd } = pipe();
    assert.ok(readEnd instanceof PipeReadEnd);
    assert.ok(writeEnd instanceof PipeWriteEnd);
    for (const method of ['write', 'writeSync', 'tryWrite', 'writeMessage']) assert.equal(method in readEnd, false, method);
    for (const method of ['read', 'readSync', 'tryRead', 'readMessage']) assert.equal(method in writeEnd, false, method);
    assert.equal(readEnd.address, writeEnd.address);
    assert.match(readEnd.address, /^pipe:\[\d+\]$/);
    for (const end of [readEnd, writeEnd]) {
      assert.equal(native.getFdFlags(end.fd) & native.constants.FD_CLOEXEC, native.constants.FD_CLOEXEC);
      assert.equal(end.nonBlocking, false);
    }
    assert.equal(readEnd.capacity, 65536);
    readEnd.close();
    writeEnd.close();
  });

  it('reads what was written: async, sync and try; null at the end', async () => {
    const { readEnd, writeEnd } = pipe();
    await writeEnd.write(Buffer.from('async'));
    assert.equal((await readEnd.read())!.toString(), 'async');
    writeEnd.writeSync(Buffer.from('sync'));
    assert.equal(readEnd.readSync()!.toString(), 'sync');
    assert.equal(writeEnd.tryWrite(Buffer.from('try')), 3);
    assert.equal(readEnd.tryRead()!.toString(), 'try');
    assert.equal(readEnd.tryRead(), undefined);
    await rejectsWith(() => readEnd.read({ timeout: 30 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => readEnd.readSync({ timeout: 30 }), 'ERR_IPC_TIMEOUT');
    const waiting = readEnd.read();
    assert.equal(await stillPending(waiting), true);
    writeEnd.writeSync(Buffer.from('woke'));
    assert.equal((await waiting)!.toString(), 'woke');
    writeEnd.writeSync(Buffer.from('abcdef'));
    assert.equal(readEnd.readSync({ maxBytes: 4 })!.toString(), 'abcd');
    writeEnd.close();
    assert.equal(readEnd.readSync()!.toString(), 'ef');
    assert.equal(await readEnd.read(), null);
    assert.equal(readEnd.readSync(), null);
    assert.equal(readEnd.tryRead(), null);
    readEnd.close();
  });

  it('nonBlocking: O_NONBLOCK descriptors; a full pipe refuses tryWrite, times out, and is drained by a reader', async () => {
    const { readEnd, writeEnd } = pipe({ nonBlocking: true, capacity: 4096 });
    assert.equal(readEnd.nonBlocking, true);
    assert.equal(writeEnd.nonBlocking, true);
    assert.equal(writeEnd.capacity, 4096);
    const page = Buffer.alloc(4096, 1);
    assert.equal(writeEnd.tryWrite(page), 4096);
    assert.equal(writeEnd.tryWrite(Buffer.from('x')), 0);
    await rejectsWith(() => writeEnd.write(Buffer.from('x'), { timeout: 40 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => writeEnd.writeSync(Buffer.from('x'), { timeout: 40 }), 'ERR_IPC_TIMEOUT');
    // A large write goes through as the reader drains, and says how far it got if it gives up.
    const big = Buffer.alloc(20_000, 2);
    const writing = writeEnd.write(big);
    assert.equal(await stillPending(writing), true);
    const received: Buffer[] = [];
    let total = 0;
    while (total < 4096 + big.length) {
      const chunk = await readEnd.read();
      received.push(chunk!);
      total += chunk!.length;
    }
    await writing;
    assert.equal(total, 24_096);
    assert.ok(Buffer.concat(received).subarray(4096).every((b) => b === 2));
    const err = await rejectsWith(() => writeEnd.write(Buffer.alloc(10_000), { timeout: 30 }), 'ERR_IPC_TIMEOUT');
    assert.match(err.message, /4096 of 10000 bytes had been written/);
    readEnd.close();
    writeEnd.close();
  });

  it('fails with EPIPE, as an error, when no process reads', async () => {
    const { readEnd, writeEnd } = pipe();
    const child = spawn('sh', ['-c', 'exit 0'], { fds: { 3: readEnd }, stdio: 'ignore' });
    trackChild(child);
    readEnd.close();
    await exited(child);
    await rejectsWith(() => writeEnd.write(Buffer.from('nobody')), 'EPIPE', /No process has the read end open/);
    throwsWith(() => writeEnd.writeSync(Buffer.from('nobody')), 'EPIPE');
    throwsWith(() => writeEnd.tryWrite(Buffer.from('nobody')), 'EPIPE');
    writeEnd.close();
  });

  it('sees the end of the data only when every writer, children included, has closed', async () => {
    const { readEnd, writeEnd } = pipe();
    // The child keeps its write end open, writing nothing, until it reads "go".
    const child = spawn('sh', ['-c', 'read go; echo last >&3'], { fds: { 3: writeEnd }, stdio: ['pipe', 'ignore', 'ignore'] });
    trackChild(child);
    writeEnd.close();
    const first = readEnd.read();
    assert.equal(await stillPending(first, 100), true);
    child.stdin!.end('go\n');
    assert.equal((await first)!.toString(), 'last\n');
    assert.equal(await readEnd.read(), null);
    await exited(child);
    readEnd.close();
  });

  it(`keeps writes of up to PIPE_BUF (${PIPE_BUF}) bytes whole with several concurrent writers`, async () => {
    const { readEnd, writeEnd } = pipe();
    const writers = [1, 2, 3, 4].map((id) => new Peer('pipe-records', { fd: 3, id, count: 200, size: PIPE_BUF }, { fds: { 3: writeEnd.fd } }));
    writeEnd.close();
    const chunks: Buffer[] = [];
    for await (const chunk of readEnd) chunks.push(chunk);
    for (const w of writers) await w.success();
    const all = Buffer.concat(chunks);
    assert.equal(all.length, 4 * 200 * PIPE_BUF);
    const counts = new Map<number, number>();
    for (let off = 0; off < all.length; off += PIPE_BUF) {
      const record = all.subarray(off, off + PIPE_BUF);
      assert.ok(record.every((b) => b === record[0]), `record at ${off} interleaves writers`);
      counts.set(record[0]!, (counts.get(record[0]!) ?? 0) + 1);
    }
    assert.deepEqual([...counts.entries()].sort(), [[1, 200], [2, 200], [3, 200], [4, 200]]);
    readEnd.close();
  });

  it('hands one pipe to several children: fan-in from many writers', async () => {
    const { readEnd, writeEnd } = pipe();
    const children = [1, 2, 3].map((n) => trackChild(spawn('sh', ['-c', `echo writer ${n} >&3`], { fds: { 3: writeEnd }, stdio: 'ignore' })));
    writeEnd.close();
    let text = '';
    for await (const chunk of readEnd) text += chunk.toString();
    await Promise.all(children.map(exited));
    assert.deepEqual(text.trim().split('\n').sort(), ['writer 1', 'writer 2', 'writer 3']);
    readEnd.close();
  });

  it('hands one pipe to several children: fan-out, each record read by exactly one of them', async () => {
    const { readEnd, writeEnd } = pipe();
    const readers = [0, 1].map(() => new Peer('pipe-read-records', { fd: 3, size: PIPE_BUF }, { fds: { 3: readEnd.fd } }));
    readEnd.close();
    for (const r of readers) await r.next();
    for (let id = 1; id <= 60; id++) await writeEnd.write(Buffer.alloc(PIPE_BUF, id));
    writeEnd.close();
    const ids: number[] = [];
    for (const r of readers) {
      const done = await r.next<{ ids: number[] }>();
      ids.push(...done.ids);
      await r.success();
    }
    assert.deepEqual(ids.sort((a, b) => a - b), Array.from({ length: 60 }, (_, i) => i + 1));
  });

  it('the regular pipe after fork: a forked Node child writes into the end it inherited', async () => {
    const { readEnd, writeEnd } = pipe();
    const child = fork(PEER_MAIN, ['pipe-records', JSON.stringify({ fd: 4, id: 7, count: 3, size: 10 })],
      { stdio: ['ignore', 'ignore', 'inherit', 'ipc', writeEnd.fd] });
    trackChild(child);
    writeEnd.close();
    const chunks: Buffer[] = [];
    for await (const chunk of readEnd) chunks.push(chunk);
    assert.deepEqual(Buffer.concat(chunks), Buffer.alloc(30, 7));
    assert.equal(await exited(child), 0);
    readEnd.close();
    throwsWith(() => PipeReadEnd.fromFd(0), 'ERR_IPC_INVALID_ARGUMENT', /pipe or FIFO/);
  });

  it('frames messages with a bounded length prefix', async () => {
    const { readEnd, writeEnd } = pipe();
    await writeEnd.writeMessage(Buffer.from('one'));
    writeEnd.writeMessageSync(Buffer.alloc(0));
    // Bigger than the pipe: it goes through while the reader takes it.
    const big = writeEnd.writeMessage(Buffer.alloc(100_000, 5));
    assert.deepEqual(await readEnd.readMessage(), Buffer.from('one'));
    assert.deepEqual(readEnd.readMessageSync(), Buffer.alloc(0));
    assert.deepEqual(await readEnd.readMessage(), Buffer.alloc(100_000, 5));
    await big;
    // A hostile prefix: 2 GiB announced. Refused before anything is allocated, and for good.
    writeEnd.writeSync(Buffer.from([0x7f, 0xff, 0xff, 0xff, 1, 2, 3]));
    await rejectsWith(() => readEnd.readMessage({ maxSize: 1024 }), 'ERR_IPC_MESSAGE_TOO_LARGE', /announces 2147483647 bytes, more than maxSize 1024/);
    await rejectsWith(() => readEnd.readMessage(), 'ERR_IPC_MESSAGE_TOO_LARGE');
    readEnd.close();
    writeEnd.close();
    // A writer that dies in the middle of a message.
    const second = pipe();
    second.writeEnd.writeSync(Buffer.from([0, 0, 0, 100, 1, 2, 3]));
    second.writeEnd.close();
    await rejectsWith(() => second.readEnd.readMessage(), 'ERR_IPC_FRAMING', /closed in the middle of a message \(7 bytes of it arrived\)/);
    second.readEnd.close();
    const third = pipe();
    third.writeEnd.close();
    assert.equal(await third.readEnd.readMessage(), null);
    third.readEnd.close();
  });

  it('streams: Readable and Writable over the ends, with backpressure', async () => {
    const a = pipe();
    const b = pipe();
    const payload = Buffer.alloc(1 << 20);
    for (let i = 0; i < payload.length; i++) payload[i] = i % 251;
    const produce = pipeline(Readable.from([payload.subarray(0, 300_000), payload.subarray(300_000)]), a.writeEnd.toStream());
    const relay = pipeline(a.readEnd.toStream(), b.writeEnd.toStream());
    const chunks: Buffer[] = [];
    const consume = pipeline(b.readEnd.toStream(), new Writable({
      write(chunk: Buffer, _e, done) {
        chunks.push(chunk);
        done();
      },
    }));
    await Promise.all([produce, relay, consume]);
    assert.ok(Buffer.concat(chunks).equals(payload));
    for (const end of [a.readEnd, a.writeEnd, b.readEnd, b.writeEnd]) assert.equal(end.closed, true);
  });

  it('reports capacity beyond fs.pipe-max-size as ERR_IPC_LIMIT without CAP_SYS_RESOURCE', () => {
    let ends;
    try {
      ends = pipe({ capacity: 64 << 20 });
    } catch (err) {
      assert.ok(err instanceof IpcError);
      assert.equal(err.code, 'ERR_IPC_LIMIT');
      assert.match(err.message, /pipe-max-size \(now \d+\).*sysctl fs.pipe-max-size/);
      return;
    }
    assert.equal(ends.readEnd.capacity, 64 << 20);
    ends.readEnd.close();
    ends.writeEnd.close();
  });

  it('rejects bad input and use after close', async () => {
    throwsWith(() => pipe({ capacity: 0 }), 'ERR_IPC_INVALID_ARGUMENT', /capacity/);
    throwsWith(() => pipe({ nonBlocking: 'yes' as unknown as boolean }), 'ERR_IPC_INVALID_ARGUMENT');
    const { readEnd, writeEnd } = pipe();
    throwsWith(() => writeEnd.tryWrite(42 as unknown as Buffer), 'ERR_IPC_INVALID_ARGUMENT', /a Uint8Array, Buffer or string/);
    throwsWith(() => readEnd.tryRead({ maxBytes: 0 }), 'ERR_IPC_INVALID_ARGUMENT', /maxBytes/);
    const pending = readEnd.read();
    readEnd.close();
    readEnd.close();
    await rejectsWith(() => pending, 'ERR_IPC_CLOSED');
    throwsWith(() => readEnd.fd, 'ERR_IPC_CLOSED');
    throwsWith(() => readEnd.readSync(), 'ERR_IPC_CLOSED');
    await rejectsWith(() => readEnd.read(), 'ERR_IPC_CLOSED');
    writeEnd.close();
    await rejectsWith(() => writeEnd.write(Buffer.from('x')), 'ERR_IPC_CLOSED');
    throwsWith(() => spawn('true', [], { fds: { [-1]: 3 } }), 'ERR_IPC_INVALID_ARGUMENT');
  });

  it('keeps the thread pool free: async reads park no thread', async () => {
    const ends = Array.from({ length: 8 }, () => pipe());
    const waits = ends.map(({ readEnd }) => readEnd.read());
    await threadPoolIsFree();
    for (const { writeEnd } of ends) writeEnd.writeSync(Buffer.from('x'));
    assert.deepEqual((await Promise.all(waits)).map((b) => b!.toString()), Array(8).fill('x'));
    for (const { readEnd, writeEnd } of ends) {
      readEnd.close();
      writeEnd.close();
    }
  });
});

describe('spawn() arguments', () => {
  it('refuses descriptors that are neither a pipe end nor a number, instead of ignoring them', () => {
    for (const bad of [null, 'x', {}, -1, 1.5]) {
      throwsWith(() => spawn('true', [], { fds: { 3: bad as never } }), 'ERR_IPC_INVALID_ARGUMENT', /fds\[3\]/);
    }
    throwsWith(() => spawn('true', [], { fds: 3 as never }), 'ERR_IPC_INVALID_ARGUMENT', /fds must be an object/);
    throwsWith(() => spawn('true', [], null as never), 'ERR_IPC_INVALID_ARGUMENT', /options must be an object/);
  });
});

describe('pipe cleanup', () => {
  it('leaves no pipe descriptor behind', async () => {
    await killAllPeers();
    // The stdio pipes of the last children close on the event loop after they exit.
    await waitUntil(`this process holds its ${baseline} pipe descriptors of before the tests`, () => pipeFds().length === baseline);
    assert.equal(pipeFds().length, baseline);
  });
});
