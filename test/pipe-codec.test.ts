/**
 * Typed messages over pipes and FIFOs: send/receive with json, msgpack and
 * custom codecs, the framing they share with writeMessage/readMessage and
 * with C or Python peers, the end of the data, cut and oversized frames,
 * decode failures, timeouts, aborts, close, and worker threads.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Fifo, PIPE_BUF, PipeReadEnd, PipeWriteEnd, Poller, pipe, select, selectSync, spawn } from '../src/index.js';
import { pipeFds } from './helpers/objects.js';
import { killAllPeers, trackChild } from './helpers/peer.js';
import { rejectsWith, stillPending, throwsWith, waitUntil } from './helpers/assert.js';
import { blockedIn } from './helpers/proc.js';

const INDEX = fileURLToPath(new URL('../src/index.js', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-pipe-codec-'));
let counter = 0;
const fifoPath = (): string => path.join(dir, `f${process.pid}-${++counter}`);

/** Descriptors of this process that are pipes or FIFOs of this file. */
const ownFds = (): string[] => pipeFds(dir);

let baseline: number;
before(() => {
  baseline = ownFds().length;
});
after(async () => {
  await killAllPeers();
  rmSync(dir, { recursive: true, force: true });
});

/** A frame as a C or Python peer writes it: a 4-byte big-endian length, then the bytes. */
function rawFrame(payload: Buffer, announced = payload.length): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(announced);
  return Buffer.concat([head, payload]);
}

/** Exit code and stderr of a child, once it has exited. */
function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stderr })));
}

/** The first stdout line of a child. */
function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', () => reject(new Error('the child exited before it printed a line')));
  });
}

/** A Node child running `code` (an ES module that may import ipckit as `ipckit`), with extra descriptors. */
function nodeChild(code: string, fds: Record<number, { readonly fd: number } | number>, args: string[] = []): ChildProcess {
  const source = `const ipckit = await import(${JSON.stringify(INDEX)});\n${code}`;
  return trackChild(spawn(process.execPath, ['--input-type=module', '-e', source, ...args], { fds, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** Python reading and writing frames the way a C program would: struct.pack('>I', len) + payload. */
const PY_FRAMES = `
import json, os, struct, sys

def read_exact(fd, n):
    buf = b''
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            if buf:
                sys.exit('a frame was cut short')
            return None
        buf += chunk
    return buf

def send(fd, value):
    out = json.dumps(value, separators=(',', ':')).encode()
    data = struct.pack('>I', len(out)) + out
    while data:
        data = data[os.write(fd, data):]
`;

function python(script: string, fds: Record<number, { readonly fd: number } | number>, args: string[] = []): ChildProcess {
  return trackChild(spawn('python3', ['-c', `${PY_FRAMES}\n${script}`, ...args], { fds, stdio: ['ignore', 'pipe', 'pipe'] }));
}

describe('pipe({ codec })', () => {
  it('sends and receives json values: async, sync and try; { data } each, null at the end', async () => {
    const { readEnd, writeEnd } = pipe({ codec: 'json' });
    await writeEnd.send({ id: 1, tags: ['a', 'b'] });
    writeEnd.sendSync(null);
    assert.equal(writeEnd.trySend('a string is a JSON value'), true);
    writeEnd.sendSync(0);
    assert.deepEqual(await readEnd.receive(), { data: { id: 1, tags: ['a', 'b'] } });
    assert.deepEqual(readEnd.receiveSync(), { data: null }, 'a JSON null is a message, not the end');
    assert.deepEqual(readEnd.tryReceive(), { data: 'a string is a JSON value' });
    assert.deepEqual(readEnd.tryReceive(), { data: 0 });
    assert.equal(readEnd.tryReceive(), undefined);
    const waiting = readEnd.receive();
    assert.equal(await stillPending(waiting), true);
    writeEnd.sendSync([1.5, true]);
    assert.deepEqual(await waiting, { data: [1.5, true] });
    writeEnd.close();
    assert.equal(await readEnd.receive(), null);
    assert.equal(readEnd.receiveSync(), null);
    assert.equal(readEnd.tryReceive(), null);
    readEnd.close();
  });

  it('msgpack keeps bytes and dates; a custom codec carries what it encodes', async () => {
    const packed = pipe({ codec: 'msgpack' });
    const value = { at: new Date(Date.UTC(2024, 1, 29, 12, 0, 0, 5)), bytes: new Uint8Array([0, 255, 7]), n: -3, big: 2 ** 40, nested: [{ ok: true }] };
    packed.writeEnd.sendSync(value);
    assert.deepEqual(packed.readEnd.receiveSync(), { data: value });
    packed.writeEnd.close();
    packed.readEnd.close();

    const codec = {
      encode: (point: { x: number; y: number }) => Buffer.from(`${point.x},${point.y}`),
      decode: (bytes: Buffer) => {
        const [x, y] = bytes.toString().split(',').map(Number);
        return { x: x!, y: y! };
      },
    };
    const custom = pipe({ codec });
    await custom.writeEnd.send({ x: 3, y: -4 });
    // The frame holds exactly what encode() returned.
    assert.deepEqual(custom.readEnd.readMessageSync(), Buffer.from('3,-4'));
    custom.writeEnd.sendSync({ x: 1, y: 2 });
    assert.deepEqual(await custom.readEnd.receive(), { data: { x: 1, y: 2 } });
    custom.writeEnd.close();
    custom.readEnd.close();
  });

  it('without a codec, messages are bytes: strings go as UTF-8, receive yields Buffers, iteration stays raw chunks', async () => {
    const { readEnd, writeEnd } = pipe();
    writeEnd.sendSync('héllo');
    writeEnd.sendSync(new Uint8Array([1, 2, 3]));
    assert.equal(writeEnd.trySend(Buffer.alloc(0)), true);
    const first = readEnd.receiveSync();
    assert.ok(first !== null && Buffer.isBuffer(first.data));
    assert.deepEqual(first.data, Buffer.from('héllo', 'utf8'));
    assert.deepEqual(await readEnd.receive(), { data: Buffer.from([1, 2, 3]) });
    assert.deepEqual(readEnd.tryReceive(), { data: Buffer.alloc(0) });
    await rejectsWith(() => writeEnd.send(42 as never), 'ERR_IPC_INVALID_ARGUMENT', /a Uint8Array, Buffer or string/);
    writeEnd.sendSync('ab');
    writeEnd.close();
    const chunks: Buffer[] = [];
    for await (const chunk of readEnd) chunks.push(chunk);
    assert.deepEqual(Buffer.concat(chunks), rawFrame(Buffer.from('ab')), 'iteration without a codec yields the bytes as they are');
    readEnd.close();
  });

  it('iterates decoded values with a codec, and { data } messages with messages(); both end at the end of the data', async () => {
    const a = pipe({ codec: 'json' });
    for (const v of [1, null, { k: 'v' }, 'last']) a.writeEnd.sendSync(v);
    a.writeEnd.close();
    const values: unknown[] = [];
    for await (const v of a.readEnd) values.push(v);
    assert.deepEqual(values, [1, null, { k: 'v' }, 'last']);
    a.readEnd.close();

    const b = pipe();
    b.writeEnd.writeMessageSync('one');
    b.writeEnd.sendSync('two');
    b.writeEnd.close();
    const messages: string[] = [];
    for await (const { data } of b.readEnd.messages()) messages.push(data.toString());
    assert.deepEqual(messages, ['one', 'two']);
    b.readEnd.close();
    throwsWith(() => b.readEnd.messages({ sginal: undefined } as never), 'ERR_IPC_INVALID_ARGUMENT', /did you mean "signal"/);

    // An abort ends the loop with ERR_IPC_ABORTED; what was not received stays for the next receive.
    const c = pipe({ codec: 'json' });
    const ac = new AbortController();
    c.writeEnd.sendSync('first');
    const seen: unknown[] = [];
    await rejectsWith(async () => {
      for await (const { data } of c.readEnd.messages({ signal: ac.signal })) {
        seen.push(data);
        ac.abort();
      }
    }, 'ERR_IPC_ABORTED');
    assert.deepEqual(seen, ['first']);
    c.writeEnd.sendSync('second');
    assert.deepEqual(c.readEnd.receiveSync(), { data: 'second' });
    c.readEnd.close();
    c.writeEnd.close();
  });

  it('shares the framing of writeMessage/readMessage: either side may be the other', async () => {
    const { readEnd, writeEnd } = pipe({ codec: 'json' });
    await writeEnd.send({ a: [1, 2] });
    assert.deepEqual(await readEnd.readMessage(), Buffer.from('{"a":[1,2]}'));
    await writeEnd.writeMessage('{"b":true}');
    assert.deepEqual(await readEnd.receive(), { data: { b: true } });
    writeEnd.writeSync(rawFrame(Buffer.from('[3]')));
    assert.deepEqual(readEnd.receiveSync(), { data: [3] });
    readEnd.close();
    writeEnd.close();
  });

  it('a Python peer reads and writes the frames: 4-byte big-endian length, then the JSON bytes', async () => {
    const toPeer = pipe({ codec: 'json' });
    const fromPeer = pipe({ codec: 'json' });
    const peer = python(`
while True:
    head = read_exact(3, 4)
    if head is None:
        break
    (n,) = struct.unpack('>I', head)
    value = json.loads(read_exact(3, n))
    send(4, {'echo': value, 'length': n})
`, { 3: toPeer.readEnd, 4: fromPeer.writeEnd });
    const done = exited(peer);
    toPeer.readEnd.close();
    fromPeer.writeEnd.close();
    const sent = [{ id: 1, text: 'héllo wörld' }, [], 'x'.repeat(70_000), null];
    for (const value of sent) await toPeer.writeEnd.send(value);
    toPeer.writeEnd.close();
    const replies: unknown[] = [];
    for await (const reply of fromPeer.readEnd) replies.push(reply);
    assert.deepEqual(replies, sent.map((value) => ({ echo: value, length: Buffer.byteLength(JSON.stringify(value)) })));
    assert.deepEqual(await done, { code: 0, signal: null, stderr: '' });
    fromPeer.readEnd.close();
  });

  it('a Node child sends msgpack values through an inherited end (PipeWriteEnd.fromFd with a codec)', async () => {
    const { readEnd, writeEnd } = pipe({ codec: 'msgpack' });
    const child = nodeChild(`
      const out = ipckit.PipeWriteEnd.fromFd(3, { codec: 'msgpack' });
      for (let i = 0; i < 3; i++) out.sendSync({ i, at: new Date(i * 1000), raw: new Uint8Array([i]) });
      await out.send('done');
      out.close();
    `, { 3: writeEnd });
    const done = exited(child);
    writeEnd.close();
    const got: unknown[] = [];
    for await (const v of readEnd) got.push(v);
    assert.deepEqual(got, [0, 1, 2].map((i) => ({ i, at: new Date(i * 1000), raw: new Uint8Array([i]) })).concat(['done'] as never[]));
    assert.deepEqual(await done, { code: 0, signal: null, stderr: '' });
    readEnd.close();
  });

  it(`frames of at most PIPE_BUF bytes stay whole with several writers sending at once`, async () => {
    const { readEnd, writeEnd } = pipe();
    const size = PIPE_BUF - 4;
    const children = [1, 2, 3].map((id) => nodeChild(`
      const out = ipckit.PipeWriteEnd.fromFd(3);
      for (let i = 0; i < 100; i++) out.sendSync(new Uint8Array(${size}).fill(${id}));
      out.close();
    `, { 3: writeEnd }));
    const done = Promise.all(children.map(exited));
    writeEnd.close();
    const counts = new Map<number, number>();
    for await (const { data } of readEnd.messages()) {
      assert.equal(data.length, size);
      assert.ok(data.every((b) => b === data[0]), 'a message interleaved with another writer\'s');
      counts.set(data[0]!, (counts.get(data[0]!) ?? 0) + 1);
    }
    assert.deepEqual([...counts].sort(), [[1, 100], [2, 100], [3, 100]]);
    for (const exit of await done) assert.deepEqual(exit, { code: 0, signal: null, stderr: '' });
    readEnd.close();
  });
});

describe('pipe codec failures', () => {
  it('a message the codec cannot decode is ERR_IPC_CODEC; it is consumed and the next one is read', async () => {
    const { readEnd, writeEnd } = pipe({ codec: 'json' });
    writeEnd.writeMessageSync('{not json');
    writeEnd.sendSync({ after: 1 });
    const err = await rejectsWith(() => readEnd.receive(), 'ERR_IPC_CODEC',
      /^A 9-byte message from pipe:\[\d+\] could not be decoded: .*The message was consumed; check that every sender uses the same codec\.$/);
    assert.ok(err.cause instanceof SyntaxError);
    assert.deepEqual(readEnd.receiveSync(), { data: { after: 1 } });
    writeEnd.writeMessageSync(Buffer.from([0xc1]));
    writeEnd.sendSync([2]);
    throwsWith(() => readEnd.tryReceive(), 'ERR_IPC_CODEC');
    assert.deepEqual(readEnd.tryReceive(), { data: [2] });
    readEnd.close();
    writeEnd.close();

    const packed = pipe({ codec: 'msgpack' });
    packed.writeEnd.writeMessageSync(Buffer.from([0xc1]));
    packed.writeEnd.sendSync('next');
    throwsWith(() => packed.readEnd.receiveSync(), 'ERR_IPC_CODEC', /A 1-byte message/);
    assert.deepEqual(packed.readEnd.receiveSync(), { data: 'next' });
    // Iteration stops at the message it cannot decode; a new loop goes on after it.
    packed.writeEnd.writeMessageSync(Buffer.from([0xc1]));
    packed.writeEnd.sendSync('after the bad one');
    packed.writeEnd.close();
    await rejectsWith(async () => {
      for await (const v of packed.readEnd) assert.fail(`got ${String(v)}`);
    }, 'ERR_IPC_CODEC');
    const rest: unknown[] = [];
    for await (const v of packed.readEnd) rest.push(v);
    assert.deepEqual(rest, ['after the bad one']);
    packed.readEnd.close();
  });

  it('a value the codec cannot encode is ERR_IPC_CODEC and nothing is written', async () => {
    const { readEnd, writeEnd } = pipe({ codec: 'json' });
    await rejectsWith(() => writeEnd.send(undefined), 'ERR_IPC_CODEC', /undefined has no JSON form/);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    throwsWith(() => writeEnd.sendSync(circular), 'ERR_IPC_CODEC', /circular/);
    throwsWith(() => writeEnd.trySend(10n), 'ERR_IPC_CODEC', /BigInt/);
    assert.equal(readEnd.tryRead(), undefined, 'nothing reached the pipe');
    const bad = pipe({ codec: { encode: () => 'not bytes' as never, decode: (b: Buffer) => b } });
    throwsWith(() => bad.writeEnd.sendSync(Buffer.alloc(1)), 'ERR_IPC_CODEC', /returned string, not a Uint8Array/);
    const throwing = pipe({ codec: { encode: (b: Buffer) => b, decode: () => { throw new RangeError('no'); } } });
    throwing.writeEnd.sendSync(Buffer.from('x'));
    const err = throwsWith(() => throwing.readEnd.receiveSync(), 'ERR_IPC_CODEC', /could not be decoded: no/);
    assert.ok(err.cause instanceof RangeError);
    for (const p of [bad, throwing, { readEnd, writeEnd }]) {
      p.readEnd.close();
      p.writeEnd.close();
    }
  });

  it('a writer that closes or dies in the middle of a frame gives ERR_IPC_FRAMING, then and later', async () => {
    const { readEnd, writeEnd } = pipe({ codec: 'json' });
    const peer = python(`
os.write(4, struct.pack('>I', 100) + b'{"cut')
`, { 4: writeEnd });
    writeEnd.close();
    assert.deepEqual(await exited(peer), { code: 0, signal: null, stderr: '' });
    await rejectsWith(() => readEnd.receive(), 'ERR_IPC_FRAMING', /closed in the middle of a message \(9 bytes of it arrived\)/);
    throwsWith(() => readEnd.receiveSync(), 'ERR_IPC_FRAMING');
    throwsWith(() => readEnd.tryReceive(), 'ERR_IPC_FRAMING');
    readEnd.close();

    // Killed with SIGKILL while it holds its end, half a message written; the receive was already waiting.
    const second = pipe({ codec: 'json' });
    const child = nodeChild(`
      const { writeSync } = await import('node:fs');
      writeSync(3, Buffer.from([0, 0, 0, 50, 0x7b]));
      console.log('half written');
      setInterval(() => undefined, 1 << 30);
    `, { 3: second.writeEnd });
    const gone = exited(child);
    second.writeEnd.close();
    const receiving = second.readEnd.receive();
    assert.equal(await firstLine(child), 'half written');
    assert.equal(await stillPending(receiving, 50), true);
    child.kill('SIGKILL');
    assert.equal((await gone).signal, 'SIGKILL');
    await rejectsWith(() => receiving, 'ERR_IPC_FRAMING', /\(5 bytes of it arrived\)/);
    second.readEnd.close();
  });

  it('bounds announced lengths by maxMessageSize before allocating: a hostile 4 GiB prefix is refused, and for good', async () => {
    const { readEnd, writeEnd } = pipe({ codec: 'json' });
    assert.equal(readEnd.maxMessageSize, 1024 * 1024);
    const peer = python(`os.write(4, b'\\xff\\xff\\xff\\xff' + b'{}' * 1000)`, { 4: writeEnd });
    writeEnd.close();
    assert.deepEqual(await exited(peer), { code: 0, signal: null, stderr: '' });
    await rejectsWith(() => readEnd.receive(), 'ERR_IPC_MESSAGE_TOO_LARGE',
      /announces 4294967295 bytes, more than maxMessageSize 1048576\. Nothing was allocated; the stream cannot be resynchronised/);
    throwsWith(() => readEnd.receiveSync(), 'ERR_IPC_MESSAGE_TOO_LARGE');
    await rejectsWith(() => readEnd.readMessage(), 'ERR_IPC_MESSAGE_TOO_LARGE');
    readEnd.close();

    const small = pipe({ maxMessageSize: 8 });
    assert.equal(small.readEnd.maxMessageSize, 8);
    small.writeEnd.sendSync(Buffer.alloc(8, 1));
    assert.deepEqual(small.readEnd.receiveSync(), { data: Buffer.alloc(8, 1) });
    small.writeEnd.sendSync(Buffer.alloc(9));
    throwsWith(() => small.readEnd.receiveSync(), 'ERR_IPC_MESSAGE_TOO_LARGE', /announces 9 bytes, more than maxMessageSize 8/);
    small.readEnd.close();
    small.writeEnd.close();
    // maxMessageSize is also readMessage's default bound; maxSize overrides it per call.
    const third = pipe({ maxMessageSize: 8 });
    third.writeEnd.writeMessageSync(Buffer.alloc(9));
    third.writeEnd.writeMessageSync(Buffer.alloc(9));
    assert.deepEqual(third.readEnd.readMessageSync({ maxSize: 9 }), Buffer.alloc(9));
    throwsWith(() => third.readEnd.readMessageSync(), 'ERR_IPC_MESSAGE_TOO_LARGE', /more than maxMessageSize 8/);
    third.readEnd.close();
    third.writeEnd.close();
  });

  it('refuses unknown option keys and bad values, naming the option', async () => {
    throwsWith(() => pipe({ codec: 'json', maxMesageSize: 1 } as never), 'ERR_IPC_INVALID_ARGUMENT', /no key "maxMesageSize"; did you mean "maxMessageSize"/);
    throwsWith(() => pipe({ codec: 'yaml' } as never), 'ERR_IPC_INVALID_ARGUMENT', /codec must be "json", "msgpack", or an object/);
    throwsWith(() => pipe({ maxMessageSize: -1 }), 'ERR_IPC_INVALID_ARGUMENT', /maxMessageSize must be an integer from 0 to 2147483647/);
    throwsWith(() => PipeWriteEnd.fromFd(1, { maxMessageSize: 5 } as never), 'ERR_IPC_INVALID_ARGUMENT', /no key "maxMessageSize"/);
    throwsWith(() => PipeReadEnd.fromFd(0, { codec: 'xml' } as never), 'ERR_IPC_INVALID_ARGUMENT', /codec must be/);
    const p = fifoPath();
    Fifo.create(p);
    await rejectsWith(() => Fifo.openWrite(p, { codec: 'json', maxMessageSize: 5 } as never), 'ERR_IPC_INVALID_ARGUMENT', /no key "maxMessageSize"/);
    throwsWith(() => Fifo.openReadSync(p, { codex: 'json' } as never), 'ERR_IPC_INVALID_ARGUMENT', /did you mean "codec"/);
    await rejectsWith(() => Fifo.openRead(p, { codec: 'yaml' } as never), 'ERR_IPC_INVALID_ARGUMENT', /codec must be/);
    Fifo.unlink(p);
    const { readEnd, writeEnd } = pipe({ codec: 'json' });
    await rejectsWith(() => readEnd.receive({ maxSize: 1 } as never), 'ERR_IPC_INVALID_ARGUMENT', /no key "maxSize"/);
    throwsWith(() => readEnd.receiveSync({ signal: AbortSignal.abort() } as never), 'ERR_IPC_INVALID_ARGUMENT', /no key "signal"/);
    await rejectsWith(() => writeEnd.send(1, { priority: 1 } as never), 'ERR_IPC_INVALID_ARGUMENT', /no key "priority"/);
    readEnd.close();
    writeEnd.close();
  });
});

describe('pipe codec waits', () => {
  it('receive times out and aborts without losing anything, even with half a message there', async () => {
    const { readEnd, writeEnd } = pipe({ codec: 'json' });
    await rejectsWith(() => readEnd.receive({ timeout: 30 }), 'ERR_IPC_TIMEOUT', /receive on pipe:\[\d+\] timed out after 30 ms/);
    await rejectsWith(() => readEnd.receive({ timeout: 0 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => readEnd.receiveSync({ timeout: 30 }), 'ERR_IPC_TIMEOUT', /receiveSync/);
    // Half a message arrives: the waits run out, and the half stays for the receive that gets the rest.
    const frame = rawFrame(Buffer.from('{"whole":"message"}'));
    writeEnd.writeSync(frame.subarray(0, 7));
    await rejectsWith(() => readEnd.receive({ timeout: 30 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => readEnd.receiveSync({ timeout: 20 }), 'ERR_IPC_TIMEOUT');
    assert.equal(readEnd.tryReceive(), undefined);
    const ac = new AbortController();
    const aborted = readEnd.receive({ signal: ac.signal });
    assert.equal(await stillPending(aborted), true);
    ac.abort(new Error('enough'));
    const err = await rejectsWith(() => aborted, 'ERR_IPC_ABORTED', /receive on pipe:\[\d+\] was aborted/);
    assert.equal((err.cause as Error).message, 'enough');
    await rejectsWith(() => readEnd.receive({ signal: AbortSignal.abort() }), 'ERR_IPC_ABORTED');
    const next = readEnd.receive({ timeout: 10_000 });
    writeEnd.writeSync(frame.subarray(7));
    assert.deepEqual(await next, { data: { whole: 'message' } });
    readEnd.close();
    writeEnd.close();
  });

  it('select and a Poller report a read end ready for a whole message read ahead, not for a part of one', async () => {
    const { readEnd, writeEnd } = pipe({ codec: 'json' });
    const frame = rawFrame(Buffer.from('{"whole":"message"}'));
    const poller = new Poller().add(readEnd);
    try {
      // A hostile writer stops after 5 bytes: the receive takes them off the pipe and waits for the rest.
      writeEnd.writeSync(frame.subarray(0, 5));
      assert.deepEqual((await poller.wait({ timeout: 1000 })).map((r) => r.object), [readEnd]);
      assert.equal(readEnd.tryReceive(), undefined);
      // A part of a message is nothing to receive: the waits run out (they used to report it at once, for ever).
      await rejectsWith(() => poller.wait({ timeout: 50 }), 'ERR_IPC_TIMEOUT');
      await rejectsWith(() => select([readEnd], { timeout: 50 }), 'ERR_IPC_TIMEOUT');
      throwsWith(() => selectSync([readEnd], { timeout: 20 }), 'ERR_IPC_TIMEOUT');
      // Two messages: the receive reads both ahead; the second is whole in user space, which the pipe no longer shows.
      writeEnd.writeSync(Buffer.concat([frame.subarray(5), rawFrame(Buffer.from('2'))]));
      assert.deepEqual((await poller.wait({ timeout: 1000 })).map((r) => r.object), [readEnd]);
      assert.deepEqual(readEnd.tryReceive(), { data: { whole: 'message' } });
      assert.deepEqual((await poller.wait({ timeout: 1000 })).map((r) => r.object), [readEnd]);
      assert.deepEqual((await select([readEnd], { timeout: 1000 })).map((r) => r.object), [readEnd]);
      assert.deepEqual(readEnd.tryReceive(), { data: 2 });
    } finally {
      poller.close();
    }
    readEnd.close();
    writeEnd.close();
  });

  it('send waits for room; a timeout or abort before the first byte sends nothing and keeps the end', async () => {
    const { readEnd, writeEnd } = pipe({ codec: 'json', capacity: PIPE_BUF });
    const filler = 'f'.repeat(PIPE_BUF - 6);
    assert.equal(writeEnd.trySend(filler), true, 'one frame of PIPE_BUF bytes fills the pipe');
    assert.equal(writeEnd.trySend(1), false);
    await rejectsWith(() => writeEnd.send(1, { timeout: 30 }), 'ERR_IPC_TIMEOUT', /send on pipe:\[\d+\] timed out after 30 ms\. Wait longer/);
    throwsWith(() => writeEnd.sendSync(1, { timeout: 30 }), 'ERR_IPC_TIMEOUT', /sendSync/);
    const ac = new AbortController();
    const aborted = writeEnd.send(2, { signal: ac.signal });
    assert.equal(await stillPending(aborted), true);
    ac.abort();
    await rejectsWith(() => aborted, 'ERR_IPC_ABORTED');
    assert.equal(writeEnd.closed, false);
    const waiting = writeEnd.send({ after: 'room' });
    assert.equal(await stillPending(waiting), true);
    assert.deepEqual(await readEnd.receive(), { data: filler });
    await waiting;
    assert.deepEqual(await readEnd.receive(), { data: { after: 'room' } });
    assert.equal(readEnd.tryReceive(), undefined, 'nothing of the calls that gave up reached the pipe');
    readEnd.close();
    writeEnd.close();
  });

  it('a send cut short after part of the message went in closes the end; the reader meets ERR_IPC_FRAMING', async () => {
    const big = 'x'.repeat(10_000);
    const a = pipe({ codec: 'json', capacity: PIPE_BUF });
    await rejectsWith(() => a.writeEnd.send(big, { timeout: 40 }), 'ERR_IPC_TIMEOUT',
      /timed out after 40 ms\. .*Part of the message had been written \(4096 of 10006 bytes\), so this end was closed/);
    assert.equal(a.writeEnd.closed, true);
    await rejectsWith(() => a.writeEnd.send(1), 'ERR_IPC_TIMEOUT', /so this end was closed/);
    throwsWith(() => a.writeEnd.fd, 'ERR_IPC_TIMEOUT');
    await rejectsWith(() => a.readEnd.receive(), 'ERR_IPC_FRAMING', /\(4096 bytes of it arrived\)/);
    a.readEnd.close();

    const b = pipe({ codec: 'json', capacity: PIPE_BUF });
    throwsWith(() => b.writeEnd.sendSync(big, { timeout: 40 }), 'ERR_IPC_TIMEOUT', /\(4096 of 10006 bytes\), so this end was closed/);
    assert.equal(b.writeEnd.closed, true);
    throwsWith(() => b.readEnd.receiveSync(), 'ERR_IPC_FRAMING');
    b.readEnd.close();

    // Closed by its owner in the middle of a send: the send says the reader meets a cut message.
    const c = pipe({ capacity: PIPE_BUF });
    const sending = c.writeEnd.writeMessage(Buffer.alloc(10_000));
    const queued = c.writeEnd.send('behind it');
    assert.equal(await stillPending(sending), true);
    c.writeEnd.close();
    await rejectsWith(() => sending, 'ERR_IPC_CLOSED', /Part of the message had been written \(4096 of 10004 bytes\): the reader meets a message cut short/);
    await rejectsWith(() => queued, 'ERR_IPC_CLOSED', /the handle is closed/);
    throwsWith(() => c.readEnd.receiveSync(), 'ERR_IPC_FRAMING');
    c.readEnd.close();
  });

  it('trySend of a message larger than the room left commits it: the rest follows, before later sends', async () => {
    const { readEnd, writeEnd } = pipe({ codec: 'json', capacity: PIPE_BUF });
    const big = 'y'.repeat(20_000);
    assert.equal(writeEnd.trySend(big), true, 'part went in: committed');
    assert.equal(writeEnd.trySend('small'), false, 'the rest of the big one goes first');
    const later = writeEnd.send('later');
    assert.deepEqual(await readEnd.receive(), { data: big });
    await later;
    assert.deepEqual(await readEnd.receive(), { data: 'later' });
    readEnd.close();
    writeEnd.close();

    // Closed before the rest went: the message is cut, and the reader says so.
    const cut = pipe({ codec: 'json', capacity: PIPE_BUF });
    assert.equal(cut.writeEnd.trySend(big), true);
    cut.writeEnd.close();
    await rejectsWith(() => cut.readEnd.receive(), 'ERR_IPC_FRAMING', /\(4096 bytes of it arrived\)/);
    cut.readEnd.close();
  });

  it('close() rejects a pending receive, ends iteration quietly, and every later call fails with ERR_IPC_CLOSED', async () => {
    const { readEnd, writeEnd } = pipe({ codec: 'json' });
    const pending = readEnd.receive();
    writeEnd.writeSync(rawFrame(Buffer.from('{"never":"complete"}')).subarray(0, 10));
    assert.equal(await stillPending(pending), true);
    readEnd.close();
    readEnd.close();
    await rejectsWith(() => pending, 'ERR_IPC_CLOSED', /the pending call on pipe:\[\d+\]: the handle is closed/);
    throwsWith(() => readEnd.receiveSync(), 'ERR_IPC_CLOSED');
    throwsWith(() => readEnd.tryReceive(), 'ERR_IPC_CLOSED');
    await rejectsWith(() => readEnd.receive(), 'ERR_IPC_CLOSED');
    writeEnd.close();
    await rejectsWith(() => writeEnd.send(1), 'ERR_IPC_CLOSED');
    throwsWith(() => writeEnd.sendSync(1), 'ERR_IPC_CLOSED');
    throwsWith(() => writeEnd.trySend(1), 'ERR_IPC_CLOSED');

    const other = pipe({ codec: 'json' });
    const got: unknown[] = [];
    const loop = (async () => {
      for await (const v of other.readEnd) {
        got.push(v);
        if (got.length === 1) other.readEnd.close();
      }
    })();
    other.writeEnd.sendSync('first');
    other.writeEnd.sendSync('never read');
    await loop;
    assert.deepEqual(got, ['first']);
    other.writeEnd.close();
  });

  it('a waiting send fails with EPIPE when the reader goes', async () => {
    const { readEnd, writeEnd } = pipe({ codec: 'json', capacity: PIPE_BUF });
    assert.equal(writeEnd.trySend('z'.repeat(PIPE_BUF - 6)), true);
    const waiting = writeEnd.send('more');
    assert.equal(await stillPending(waiting), true);
    readEnd.close();
    await rejectsWith(() => waiting, 'EPIPE', /No process has the read end open/);
    throwsWith(() => writeEnd.sendSync('x'), 'EPIPE');
    writeEnd.close();
  });
});

describe('FIFO codecs', () => {
  it('opens typed ends: a Python writer and reader meet ipckit at a FIFO', async () => {
    const p = fifoPath();
    Fifo.create(p);
    const writer = python(`
fd = os.open(sys.argv[1], os.O_WRONLY)
for value in [{'n': 1}, 'two', [3]]:
    send(fd, value)
`, {}, [p]);
    const wrote = exited(writer);
    const reader = await Fifo.openRead(p, { codec: 'json', timeout: 10_000 });
    const got: unknown[] = [];
    for await (const v of reader) got.push(v);
    assert.deepEqual(got, [{ n: 1 }, 'two', [3]]);
    reader.close();
    assert.deepEqual(await wrote, { code: 0, signal: null, stderr: '' });

    const echo = python(`
fd = os.open(sys.argv[1], os.O_RDONLY)
values = []
while True:
    head = read_exact(fd, 4)
    if head is None:
        break
    values.append(json.loads(read_exact(fd, struct.unpack('>I', head)[0])))
print(json.dumps(values))
`, {}, [p]);
    const read = exited(echo);
    let out = '';
    echo.stdout!.setEncoding('utf8').on('data', (chunk: string) => { out += chunk; });
    const end = await Fifo.openWrite(p, { codec: 'json', timeout: 10_000 });
    await end.send({ from: 'ipckit' });
    end.sendSync([1, 2]);
    assert.equal(end.trySend('x'), true);
    end.close();
    assert.deepEqual(await read, { code: 0, signal: null, stderr: '' });
    assert.deepEqual(JSON.parse(out), [{ from: 'ipckit' }, [1, 2], 'x']);
    Fifo.unlink(p);
  });

  it('the sync opens and maxMessageSize: a Node child opens the other end with openWriteSync', async () => {
    const p = fifoPath();
    Fifo.create(p);
    const child = nodeChild(`
      const end = ipckit.Fifo.openWriteSync(process.argv[1], { codec: 'msgpack', timeout: 10000 });
      end.sendSync({ small: true });
      end.sendSync(new Uint8Array(100));
      end.close();
    `, {}, [p]);
    const done = exited(child);
    const end = Fifo.openReadSync(p, { codec: 'msgpack', maxMessageSize: 64, timeout: 10_000 });
    assert.equal(end.maxMessageSize, 64);
    assert.deepEqual(end.receiveSync({ timeout: 10_000 }), { data: { small: true } });
    await rejectsWith(() => end.receive({ timeout: 10_000 }), 'ERR_IPC_MESSAGE_TOO_LARGE', /announces 102 bytes, more than maxMessageSize 64/);
    end.close();
    assert.deepEqual(await done, { code: 0, signal: null, stderr: '' });
    Fifo.unlink(p);
  });

  it('a writer that dies in the middle of a frame on a FIFO: ERR_IPC_FRAMING', async () => {
    const p = fifoPath();
    Fifo.create(p);
    const writer = python(`
fd = os.open(sys.argv[1], os.O_WRONLY)
send(fd, 'whole')
os.write(fd, struct.pack('>I', 1000) + b'"partial')
os._exit(0)
`, {}, [p]);
    const done = exited(writer);
    const end = await Fifo.openRead(p, { codec: 'json', timeout: 10_000 });
    assert.deepEqual(await end.receive({ timeout: 10_000 }), { data: 'whole' });
    await rejectsWith(() => end.receive({ timeout: 10_000 }), 'ERR_IPC_FRAMING', /The writer of .* closed in the middle of a message \(12 bytes of it arrived\)/);
    end.close();
    await done;
    Fifo.unlink(p);
  });
});

describe('pipe codecs in worker threads', () => {
  /** A worker running `body` (with `ipckit` and `workerData` in scope), resolving with what it posts. */
  function worker(body: string, data: unknown): { worker: Worker; messages: unknown[]; next(): Promise<unknown> } {
    const w = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      import(${JSON.stringify(INDEX)}).then(async (ipckit) => { ${body} })
        .catch((err) => parentPort.postMessage({ error: String(err && err.code) + ' ' + String(err && err.message) }));
    `, { eval: true, workerData: data });
    const messages: unknown[] = [];
    const waiters: ((m: unknown) => void)[] = [];
    w.on('message', (m: unknown) => {
      const waiter = waiters.shift();
      if (waiter) waiter(m);
      else messages.push(m);
    });
    return {
      worker: w,
      messages,
      next: () => (messages.length > 0 ? Promise.resolve(messages.shift()) : new Promise((resolve) => waiters.push(resolve))),
    };
  }

  it('a worker receives typed messages from the main thread through a FIFO, in receiveSync', async () => {
    const p = fifoPath();
    Fifo.create(p);
    const w = worker(`
      const end = ipckit.Fifo.openReadSync(workerData.path, { codec: 'json', timeout: 10000 });
      const got = [];
      for (let m = end.receiveSync({ timeout: 10000 }); m !== null; m = end.receiveSync({ timeout: 10000 })) got.push(m.data);
      end.close();
      parentPort.postMessage(got);
    `, { path: p });
    const end = await Fifo.openWrite(p, { codec: 'json', timeout: 10_000 });
    for (const v of [{ a: 1 }, null, 'three']) await end.send(v);
    end.close();
    assert.deepEqual(await w.next(), [{ a: 1 }, null, 'three']);
    await w.worker.terminate();
    Fifo.unlink(p);
  });

  it('a worker blocked in receiveSync ends promptly on terminate(), leaving no descriptor', async () => {
    const before = ownFds().length;
    const w = worker(`
      const { native } = await import(${JSON.stringify(fileURLToPath(new URL('../src/native.js', import.meta.url)))});
      const { readEnd, writeEnd } = ipckit.pipe({ codec: 'json' });
      writeEnd.sendSync('only one');
      parentPort.postMessage({ tid: native.gettid(), first: readEnd.receiveSync() });
      readEnd.receiveSync();
    `, undefined);
    const { tid, first } = await w.next() as { tid: number; first: unknown };
    assert.deepEqual(first, { data: 'only one' });
    await blockedIn(process.pid, 'poll', { where: (t) => t.tid === tid, what: `the worker ${tid} sleeps in receiveSync` });
    const started = performance.now();
    assert.equal(await w.worker.terminate(), 1);
    assert.ok(performance.now() - started < 2000, 'terminate() took effect within a slice');
    await waitUntil('the worker\'s pipe descriptors are closed', () => ownFds().length === before);
  });
});

describe('pipe codec cleanup', () => {
  it('leaves no FIFO, no child and no pipe descriptor behind', async () => {
    await killAllPeers();
    assert.deepEqual(readdirSync(dir), []);
    await waitUntil(`this process holds its ${baseline} pipe descriptors of before the tests`, () => ownFds().length === baseline);
  });
});
