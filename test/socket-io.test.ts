/**
 * Sockets between real processes: every address kind both ways, message
 * boundaries, programs nobody here wrote (Python's socket module), request
 * and reply, backpressure, hostile frames, descriptor passing, peer
 * credentials, socket files, and cleanup.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn as spawnChild, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  DatagramSocket, IpcError, MessageBatch, MessageSocket, PosixMessageQueue, PosixSharedMemory, SCM_MAX_FD, type SocketServer, bind, connect, connectSync, listen, pipe, socketPair, spawn,
} from '../src/index.js';
import { native } from '../src/native.js';
import { ObjectTracker, fdsBeyond, openFds } from './helpers/objects.js';
import { fdSnapshot } from './helpers/leaks.js';
import { asUser, canRunAs, killAllPeers, trackChild } from './helpers/peer.js';
import { rejectsWith, stillPending, throwsWith, waitUntil } from './helpers/assert.js';

const INDEX = fileURLToPath(new URL('../src/index.js', import.meta.url));
let dir: string;
let fdBaseline: Set<string>;
let counter = 0;

before(() => {
  dir = mkdtempSync('/tmp/ipckit-sock-');
  fdBaseline = fdSnapshot();
});

after(async () => {
  try {
    await killAllPeers();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A unique socket path in the test directory. */
function sockPath(label = 's'): string {
  return `${dir}/${label}${++counter}`;
}

/** A unique abstract name. */
function abstractName(label = 'a'): string {
  return `ipckit-test-${label}-${process.pid}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Runs a program; resolves with its first stdout line once printed, and the child. */
function startPeer(command: string, args: string[], options: { stdio?: unknown[]; uid?: number } = {}):
  { child: ChildProcess; line: () => Promise<string>; exited: Promise<number | null>; stderr: () => string } {
  const prefix = options.uid === undefined ? [] : asUser(options.uid);
  const [cmd, ...rest] = [...prefix, command, ...args];
  const child = trackChild(spawnChild(cmd!, rest, { stdio: (options.stdio ?? ['pipe', 'pipe', 'pipe']) as never }));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const lines: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  if (child.stdout) {
    createInterface({ input: child.stdout }).on('line', (l) => {
      const w = waiters.shift();
      if (w) w(l);
      else lines.push(l);
    });
  }
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    child,
    exited,
    stderr: () => stderr,
    line: () => {
      const l = lines.shift();
      if (l !== undefined) return Promise.resolve(l);
      return new Promise<string>((resolve, reject) => {
        waiters.push(resolve);
        void exited.then((code) => reject(new Error(`peer exited (${code}) before printing: ${stderr}`)));
      });
    },
  };
}

function python(script: string, ...args: string[]): ReturnType<typeof startPeer> {
  return startPeer('python3', ['-c', script, ...args]);
}

function nodePeer(script: string, options: { stdio?: unknown[]; uid?: number } = {}): ReturnType<typeof startPeer> {
  return startPeer(process.execPath, ['--input-type=module', '-e', `import * as ipc from ${JSON.stringify(INDEX)};\n${script}`], options);
}

/** A payload whose bytes depend on its size and index, so swaps and cuts show. */
function payload(size: number, seed = 0): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
}

const CONNECTED: { kind: string; address: () => string; sizes: number[]; options?: object }[] = [
  { kind: 'unix path', address: () => `unix:${sockPath()}`, sizes: [0, 1, 4, 65_536, 65_537, 8 * 1024 * 1024] },
  { kind: 'unix abstract', address: () => `unix:@${abstractName()}`, sizes: [0, 1, 70_000] },
  { kind: 'unix-seqpacket path', address: () => `unix-seqpacket:${sockPath()}`, sizes: [0, 1, 4, 65_536, 150_000], options: { sendBuffer: 1 << 20 } },
  { kind: 'unix-seqpacket abstract', address: () => `unix-seqpacket:@${abstractName()}`, sizes: [0, 3, 1000] },
  { kind: 'tcp IPv4', address: () => 'tcp://127.0.0.1:0', sizes: [0, 1, 65_537, 8 * 1024 * 1024] },
  { kind: 'tcp IPv6', address: () => 'tcp://[::1]:0', sizes: [0, 5, 100_000] },
];

describe('connected sockets between two processes', () => {
  for (const { kind, address, sizes, options } of CONNECTED) {
    it(`${kind}: messages of ${sizes.join(', ')} bytes keep their boundaries, both ways`, async () => {
      const server = listen(address());
      const echo = startPeer(process.execPath, ['--input-type=module', '-e', `import * as ipc from ${JSON.stringify(INDEX)};
        const sock = await ipc.connect(process.argv[1], ${JSON.stringify(options ?? {})});
        console.log('connected');
        for await (const { data } of sock) await sock.send(Buffer.concat([Buffer.from([data.length % 251]), data]));
        sock.close();`, server.address]);
      const conn = await server.accept({ timeout: 10_000 });
      assert.equal(await echo.line(), 'connected');
      try {
        for (const [i, size] of sizes.entries()) {
          const data = payload(size, i);
          await conn.send(data, { timeout: 10_000 });
          const { data: back, fds } = await conn.receive({ timeout: 10_000 });
          assert.equal(back.length, size + 1, `size ${size}`);
          assert.equal(back[0], size % 251);
          assert.ok(back.subarray(1).equals(data), `bytes of the ${size}-byte message`);
          assert.deepEqual(fds, []);
        }
        conn.close();
        assert.equal(await echo.exited, 0, echo.stderr());
      } finally {
        conn.close();
        server.close();
      }
    });
  }

  it('unix-dgram and udp: datagrams of 0 to 60000 bytes with the sender\'s address, both ways', async () => {
    for (const [mine, theirs] of [
      [`unix-dgram:${sockPath()}`, `unix-dgram:@${abstractName()}`],
      ['udp://127.0.0.1:0', 'udp://127.0.0.1:0'],
      ['udp://[::1]:0', 'udp://[::1]:0'],
    ] as const) {
      const a = bind(mine, { sendBuffer: 1 << 20, receiveBuffer: 1 << 20 });
      const peer = startPeer(process.execPath, ['--input-type=module', '-e', `import * as ipc from ${JSON.stringify(INDEX)};
        const s = ipc.bind(process.argv[1], { sendBuffer: 1 << 20 });
        console.log(s.localAddress);
        for (let i = 0; i < 4; i++) { const { data, from } = await s.receive(); await s.send(Buffer.concat([data, Buffer.from('!')]), { to: from }); }
        s.close();`, theirs]);
      try {
        const to = await peer.line();
        for (const size of [0, 1, 1000, 60_000]) {
          const data = payload(size, size);
          await a.send(data, { to, timeout: 10_000 });
          const got = await a.receive({ timeout: 10_000 });
          assert.equal(got.from, to);
          assert.ok(got.data.equals(Buffer.concat([data, Buffer.from('!')])), `${mine} ${size}`);
        }
        assert.equal(await peer.exited, 0, peer.stderr());
      } finally {
        a.close();
      }
    }
  });
});

describe('programs nobody here wrote', () => {
  it('Python connects to an exact-length abstract name (stream and seqpacket) and speaks the framing', async () => {
    for (const scheme of ['unix', 'unix-seqpacket']) {
      const name = abstractName('py');
      const server = listen(`${scheme}:@${name}`);
      const py = python(`
import socket, struct, sys
kind = socket.SOCK_STREAM if sys.argv[2] == 'unix' else socket.SOCK_SEQPACKET
s = socket.socket(socket.AF_UNIX, kind)
s.connect('\\0' + sys.argv[1])
body = b'from python'
if kind == socket.SOCK_STREAM:
    s.sendall(struct.pack('>I', len(body)) + body)
    head = s.recv(4, socket.MSG_WAITALL)
    n = struct.unpack('>I', head)[0]
    reply = s.recv(n, socket.MSG_WAITALL)
else:
    s.send(body)
    reply = s.recv(1000)
print(reply.decode())
`, name, scheme);
      try {
        const conn = await server.accept({ timeout: 10_000 });
        const { data } = await conn.receive({ timeout: 10_000 });
        assert.equal(data.toString(), 'from python');
        assert.equal(conn.peer?.pid, py.child.pid);
        await conn.send(Buffer.from('from ipckit'));
        assert.equal(await py.line(), 'from ipckit');
        assert.equal(await py.exited, 0, py.stderr());
        conn.close();
      } finally {
        server.close();
      }
    }
  });

  it('ipckit connects to a Python server on a path, over TCP, and trades datagrams with Python', async () => {
    const path = sockPath('py');
    const py = python(`
import socket, struct, sys, os
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); srv.bind(sys.argv[1]); srv.listen(1)
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM); tcp.bind(('127.0.0.1', 0)); tcp.listen(1)
dg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); dg.bind(sys.argv[1] + 'd')
print(tcp.getsockname()[1], flush=True)
for listener in (srv, tcp):
    c, _ = listener.accept()
    n = struct.unpack('>I', c.recv(4, socket.MSG_WAITALL))[0]
    body = c.recv(n, socket.MSG_WAITALL) if n else b''
    out = body[::-1]
    c.sendall(struct.pack('>I', len(out)) + out)
    c.close()
data, addr = dg.recvfrom(1000)
dg.sendto(data.upper(), addr)
os.unlink(sys.argv[1]); os.unlink(sys.argv[1] + 'd')
`, path);
    const port = Number(await py.line());
    for (const address of [`unix:${path}`, `tcp://127.0.0.1:${port}`]) {
      const sock = await connect(address, { timeout: 10_000 });
      await sock.send(Buffer.from('abc'));
      assert.equal((await sock.receive({ timeout: 10_000 })).data.toString(), 'cba');
      await rejectsWith(() => sock.receive({ timeout: 10_000 }), 'ERR_IPC_PEER_CLOSED');
      sock.close();
    }
    const mine = bind(`unix-dgram:${sockPath('me')}`);
    await mine.send(Buffer.from('shout'), { to: `unix-dgram:${path}d` });
    const reply = await mine.receive({ timeout: 10_000 });
    assert.equal(reply.data.toString(), 'SHOUT');
    assert.equal(reply.from, `unix-dgram:${path}d`);
    mine.close();
    assert.equal(await py.exited, 0, py.stderr());
  });
});

describe('request and reply', () => {
  it('matches replies to requests when the server answers out of order', async () => {
    const [client, server] = socketPair<unknown>({ codec: 'json' });
    const served = server.serve(async (data) => {
      const { n } = data as { n: number };
      await new Promise((r) => setTimeout(r, (10 - n) * 5));
      return { n, square: n * n };
    });
    const replies = await Promise.all(Array.from({ length: 10 }, (_, n) => client.request({ n }, { timeout: 10_000 })));
    assert.deepEqual(replies, Array.from({ length: 10 }, (_, n) => ({ n, square: n * n })));
    client.close();
    await served;
    server.close();
  });

  it('a failing handler reaches the requester as ERR_IPC_REMOTE with its code; a request times out alone', async () => {
    const [client, server] = socketPair<unknown>({ codec: 'json' });
    void server.serve((data) => {
      if (data === 'fail') throw new IpcError('ERR_IPC_LIMIT', 'too much');
      if (data === 'slow') return new Promise(() => undefined);
      return 'ok';
    });
    const err = await rejectsWith(() => client.request('fail'), 'ERR_IPC_REMOTE', /ERR_IPC_LIMIT: too much|with ERR_IPC_LIMIT: too much/);
    assert.ok(err.message.includes('too much'));
    await rejectsWith(() => client.request('slow', { timeout: 50 }), 'ERR_IPC_TIMEOUT');
    assert.equal(await client.request('ok', { timeout: 10_000 }), 'ok');
    await rejectsWith(() => client.receive(), 'ERR_IPC_INVALID_ARGUMENT');
    client.close();
    server.close();
  });

  it('a request never times out before its timeout, fractional or not, and an abort still ends it', async () => {
    const [client, server] = socketPair<unknown>({ codec: 'json' });
    try {
      void server.serve(() => new Promise(() => undefined));
      for (const timeout of [1.5, 2.999, 5.9]) {
        for (let i = 0; i < 10; i++) {
          // Start at a random point of the event loop's millisecond (Node's timers count from its start, and truncate 1.5 to 1).
          const until = performance.now() + Math.random();
          while (performance.now() < until) { /* busy */ }
          const started = performance.now();
          await rejectsWith(() => client.request('slow', { timeout }), 'ERR_IPC_TIMEOUT', new RegExp(`^request on .* timed out after ${timeout} ms`));
          const elapsed = performance.now() - started;
          assert.ok(elapsed >= timeout, `request({ timeout: ${timeout} }) gave up after ${elapsed.toFixed(3)} ms`);
        }
      }
      const ac = new AbortController();
      const aborted = client.request('slow', { timeout: 60_000, signal: ac.signal });
      ac.abort(new Error('enough'));
      const err = await rejectsWith(() => aborted, 'ERR_IPC_ABORTED', /^request on .* was aborted\.$/);
      assert.equal((err.cause as Error).message, 'enough');
      await rejectsWith(() => client.request('slow', { signal: ac.signal }), 'ERR_IPC_ABORTED');
    } finally {
      client.close();
      server.close();
    }
  });
});

describe('backpressure', () => {
  it('a batched send that completes at once stops counting against highWaterMark at once', async () => {
    const [a, b] = socketPair({ highWaterMark: 1000 });
    try {
      const batch = new MessageBatch({ bytes: 1024 });
      batch.push(Buffer.alloc(900, 1));
      const sent = a.sendBatch(batch);
      assert.equal(a.pendingBytes, 0, 'the batch went at once: nothing of it waits');
      // Two more sends in the same turn: the first goes at once, the second waits for the end of the turn (200
      // bytes pending, within highWaterMark; the batch's 900 counted too refused it).
      const more = [a.send(Buffer.alloc(200, 2)), a.send(Buffer.alloc(200, 3))];
      assert.equal(a.pendingBytes, 200);
      assert.equal(await sent, 1);
      await Promise.all(more);
      assert.equal(a.pendingBytes, 0);
      const got = await b.receiveMany({ max: 3 });
      while (got.length < 3) got.push(...await b.receiveMany({ max: 3 - got.length }));
      assert.deepEqual(got.map((m) => [m.data.length, m.data[0]]), [[900, 1], [200, 2], [200, 3]]);
    } finally {
      a.close();
      b.close();
    }
  });

  it('a stalled reader makes send wait, memory stays bounded, and highWaterMark refuses more', async () => {
    const [a, b] = socketPair({ highWaterMark: 1 << 20 });
    const chunk = Buffer.alloc(64 * 1024, 1);
    // Fill the kernel buffers: a send that cannot complete now waits.
    let sent = 0;
    while (a.trySend(chunk)) sent++;
    assert.ok(sent > 0);
    const waiting: Promise<void>[] = [];
    for (let i = 0; i < 16; i++) waiting.push(a.send(chunk));
    assert.ok(await stillPending(waiting[0]!));
    assert.ok(a.pendingBytes <= 1 << 20, `pending ${a.pendingBytes}`);
    await rejectsWith(() => a.send(chunk), 'ERR_IPC_LIMIT', /highWaterMark/);
    // The reader resumes: every waiting send completes, in order.
    let received = 0;
    while (received < sent + 16) {
      const { data } = await b.receive({ timeout: 10_000 });
      assert.equal(data.length, chunk.length);
      received++;
    }
    await Promise.all(waiting);
    assert.equal(a.pendingBytes, 0);
    a.close();
    b.close();
  });
});

describe('queued sends', () => {
  it('go out in order, whole, with their descriptors; an aborted one that never started is never sent', async () => {
    const [a, b] = socketPair();
    const filler = Buffer.alloc(32 * 1024, 0xee);
    let filled = 0;
    while (a.trySend(filler)) filled++;
    const { readEnd, writeEnd } = pipe();
    const expected: { size: number; fds: number }[] = [];
    const sends: Promise<void>[] = [];
    const controller = new AbortController();
    let aborted: Promise<void> | undefined;
    for (let i = 0; i < 300; i++) {
      const size = (i * 37) % 3000;
      if (i === 100) {
        sends.push(a.send(payload(size, i), { timeout: 60_000 }));
      } else if (i === 150) {
        sends.push(a.sendFds([readEnd, writeEnd], payload(size, i)));
        expected.push({ size, fds: 2 });
        continue;
      } else if (i === 200) {
        aborted = a.send(payload(size, i), { signal: controller.signal });
        continue;
      } else {
        sends.push(a.send(payload(size, i)));
      }
      expected.push({ size, fds: 0 });
    }
    controller.abort();
    await rejectsWith(() => aborted!, 'ERR_IPC_ABORTED');
    for (let i = 0; i < filled; i++) assert.equal((await b.receive({ timeout: 10_000 })).data.length, filler.length);
    let index = 0;
    for (let i = 0; i < 300; i++) {
      if (i === 200) continue;
      const size = (i * 37) % 3000;
      const got = await b.receive({ timeout: 10_000 });
      assert.ok(got.data.equals(payload(size, i)), `message ${i}`);
      assert.equal(got.fds.length, expected[index++]!.fds, `descriptors of message ${i}`);
      for (const fd of got.fds) native.close(fd);
    }
    await Promise.all(sends);
    assert.equal(b.tryReceive(), undefined);
    for (const h of [a, b, readEnd, writeEnd]) h.close();
  });
});

describe('sends made in one turn of the code', () => {
  it('keep their order whatever form each takes; the first goes at once, the others together at the end of the turn', async () => {
    const [a, b] = socketPair();
    const sent = [a.send(Buffer.from('1')), a.send(Buffer.from('2'))];
    // The first is in the kernel already; the second waits for the end of the turn.
    assert.equal(b.tryReceive()?.data.toString(), '1');
    assert.equal(b.tryReceive(), undefined);
    a.sendSync(Buffer.from('3'));
    sent.push(a.send(Buffer.from('4')), a.send(Buffer.from('5'), { timeout: 10_000 }), a.send(Buffer.from('6')));
    assert.equal(a.trySend(Buffer.from('7')), true);
    sent.push(a.write(Buffer.from([0, 0, 0, 1, 0x38])));
    await Promise.all(sent);
    const got: string[] = [];
    for (let i = 0; i < 7; i++) got.push((await b.receive({ timeout: 10_000 })).data.toString());
    assert.deepEqual(got, ['2', '3', '4', '5', '6', '7', '8']);
    a.close();
    b.close();
  });

  it('end() and close() come after the sends made before them', async () => {
    const [a, b] = socketPair();
    const sent = [a.send(Buffer.from('one')), a.send(Buffer.from('two'))];
    a.end();
    await Promise.all(sent);
    const [c, d] = socketPair();
    const more = [c.send(Buffer.from('three')), c.send(Buffer.from('four'))];
    c.close();
    await Promise.all(more);
    for (const [reader, words] of [[b, ['one', 'two']], [d, ['three', 'four']]] as const) {
      for (const word of words) assert.equal((await reader.receive({ timeout: 10_000 })).data.toString(), word);
      await rejectsWith(() => reader.receive({ timeout: 10_000 }), 'ERR_IPC_PEER_CLOSED');
    }
    // A large send still waiting for room when end() is called: the end follows it, the peer reads it whole.
    const big = payload(4 * 1024 * 1024, 9);
    const sending = a.send(big).catch((err: unknown) => err);
    const [e, f] = socketPair();
    const large = e.send(big);
    e.end();
    assert.ok((await f.receive({ timeout: 10_000 })).data.equals(big));
    await large;
    await rejectsWith(() => f.receive({ timeout: 10_000 }), 'ERR_IPC_PEER_CLOSED');
    await sending;
    for (const h of [a, b, d, e, f]) h.close();
  });
});

describe('failures that must not corrupt a connection', () => {
  it('a stream send cut short by its timeout closes the connection: the peer never reads a spliced message', async () => {
    const [a, b] = socketPair();
    const big = payload(4 * 1024 * 1024, 3);
    const err = await rejectsWith(() => a.send(big, { timeout: 50 }), 'ERR_IPC_TIMEOUT', /Part of the message had been written/);
    assert.ok(err.message.includes('connection was closed'));
    assert.equal(a.closed, true);
    await rejectsWith(() => a.send(Buffer.from('next')), 'ERR_IPC_TIMEOUT');
    await rejectsWith(() => b.receive({ timeout: 10_000 }), 'ERR_IPC_FRAMING');
    b.close();
  });

  it('the same for a *Sync send, and for an abort', async () => {
    const [a, b] = socketPair();
    throwsWith(() => a.sendSync(payload(4 * 1024 * 1024), { timeout: 50 }), 'ERR_IPC_TIMEOUT', /Part of the message/);
    assert.equal(a.closed, true);
    b.close();
    const [c, d] = socketPair();
    const controller = new AbortController();
    const sending = c.send(payload(4 * 1024 * 1024), { signal: controller.signal });
    await waitUntil('part of it is written', () => c.pendingBytes === 0);
    controller.abort();
    const aborted = await rejectsWith(() => sending, 'ERR_IPC_ABORTED', /Part of the message/);
    assert.equal(aborted.message.split('Part of the message').length, 2, 'said once');
    assert.equal(c.closed, true);
    d.close();
  });

  it('an empty seqpacket message is a message even when the peer has closed behind it', async () => {
    const [a, b] = socketPair({ type: 'seqpacket' });
    await a.send(Buffer.from('x'));
    await a.send(Buffer.alloc(0));
    await a.send(Buffer.from('y'));
    a.close();
    const got: string[] = [];
    for await (const { data } of b) got.push(`[${data.toString()}]`);
    assert.deepEqual(got, ['[x]', '[]', '[y]']);
    b.close();
  });

  it('a reply the codec cannot encode reaches the requester as ERR_IPC_REMOTE, never as silence', async () => {
    const [a, b] = socketPair<unknown>({ codec: 'json' });
    void b.serve(() => undefined);
    await rejectsWith(() => a.request('x', { timeout: 10_000 }), 'ERR_IPC_REMOTE', /ERR_IPC_CODEC/);
    a.close();
    b.close();
  });

  it('a message that fails to decode takes its descriptors with it', async () => {
    const server = listen<unknown>(`unix:@${abstractName('codec')}`, { codec: 'json' });
    const a = await connect(server.address);
    const json = await server.accept({ timeout: 10_000 });
    const before = openFds().length;
    await a.sendFds([0, 1, 2], Buffer.from('not json'));
    await rejectsWith(() => json.receive({ timeout: 10_000 }), 'ERR_IPC_CODEC');
    assert.equal(openFds().length, before);
    for (const h of [a, json, server]) h.close();
  });
});

describe('memory and descriptors a peer cannot make ipckit hold', () => {
  it('a small stream message owns its memory: keeping it keeps no 256 KiB slab', async () => {
    const [a, b] = socketPair();
    await a.send(Buffer.from('tiny'));
    await a.send(payload(40_000));
    const small = (await b.receive({ timeout: 10_000 })).data;
    const large = (await b.receive({ timeout: 10_000 })).data;
    // Its own bytes, or a slice of Node's pool of small Buffers (8 KiB before Node 24, 64 KiB since): never the 256 KiB slab.
    assert.ok(small.buffer.byteLength <= Math.max(Buffer.poolSize, 8 * 1024), `a 4-byte message is backed by ${small.buffer.byteLength} bytes`);
    assert.ok(large.equals(payload(40_000)));
    a.close();
    b.close();
  });

  it('a small seqpacket message behind a long queue gets a buffer of its own size', async () => {
    const name = abstractName('seqq');
    const server = listen(`unix-seqpacket:@${name}`);
    const py = python(`
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
s.connect('\\0' + sys.argv[1]); s.setblocking(False)
n = 0
try:
    while n < 3000: s.send(b'x' * 200); n += 1
except BlockingIOError: pass
print(n, flush=True)
sys.stdin.read()
`, name);
    const conn = await server.accept({ timeout: 10_000 });
    const sent = Number(await py.line());
    assert.ok(native.queuedBytes(conn.fd) > 256 * 1024 || sent * 200 <= 256 * 1024, 'the queue holds more than the scratch buffer (or the kernel allowed less)');
    const { data } = await conn.receive({ timeout: 10_000 });
    assert.equal(data.length, 200);
    assert.ok(data.buffer.byteLength <= Math.max(Buffer.poolSize, 8 * 1024), `a 200-byte message is backed by ${data.buffer.byteLength} bytes`);
    py.child.stdin?.end();
    await py.exited;
    conn.close();
    server.close();
  });

  it('a peer credentials\' pid descriptor is opened only when asked for', () => {
    const before = openFds().length;
    const pairs = Array.from({ length: 20 }, () => socketPair());
    assert.equal(openFds().length, before + 40);
    const pidfd = pairs[0]![0].peer!.pidfd!;
    assert.equal(readlinkSync(`/proc/self/fd/${pidfd}`), 'anon_inode:[pidfd]');
    assert.equal(pairs[0]![0].peer!.pidfd, pidfd, 'the same one each time');
    for (const [x, y] of pairs) {
      x.close();
      y.close();
    }
    assert.equal(openFds().length, before);
  });

  it('with SO_PASSCRED set on the receiving socket, 253 descriptors still arrive', async () => {
    const [a, b] = socketPair({ type: 'seqpacket' });
    const SO_PASSCRED = 16;
    assert.equal(native.setSockOpt(b.fd, native.socketConstants.SOL_SOCKET, SO_PASSCRED, 1), 0);
    await a.sendFds(Array.from({ length: SCM_MAX_FD }, () => a.fd));
    const { fds } = await b.receive({ timeout: 10_000 });
    assert.equal(fds.length, SCM_MAX_FD);
    for (const fd of fds) native.close(fd);
    a.close();
    b.close();
  });

  it('a handler that throws a value which cannot be described still gets the requester an answer', async () => {
    const [a, b] = socketPair<unknown>({ codec: 'json' });
    const hostile = new Proxy({}, { get: () => { throw new Error('no'); } });
    let n = 0;
    void b.serve(() => {
      throw n++ === 0 ? Object.create(null) : hostile;
    });
    await rejectsWith(() => a.request('x', { timeout: 10_000 }), 'ERR_IPC_REMOTE');
    await rejectsWith(() => a.request('y', { timeout: 10_000 }), 'ERR_IPC_REMOTE', /cannot be described/);
    a.close();
    b.close();
  });

  it('descriptors read ahead by a connection dropped without close() are closed when it is collected', async () => {
    const child = startPeer(process.execPath, ['--expose-gc', '--input-type=module', '-e', `import * as ipc from ${JSON.stringify(INDEX)};
      import { readdirSync } from 'node:fs';
      const count = () => readdirSync('/proc/self/fd').length;
      // Warm up: the thread's readiness registry takes its descriptors once.
      const [w1, w2] = ipc.socketPair();
      await Promise.all([w1.send(Buffer.from('w')), w2.receive()]);
      w1.close(); w2.close();
      const server = ipc.listen('unix:@' + process.argv[1]);
      const a = await ipc.connect(server.address);
      const before = count();
      await a.sendFds([0, 1, 2], Buffer.from('one'));
      await a.sendFds([0, 1, 2], Buffer.from('two'));
      // Received and dropped: the first message's descriptors are handed out (and closed here),
      // the second one's were read ahead with it, and belong to the dropped connection.
      const { fds } = await (async () => (await server.accept()).receive())();
      for (const fd of fds) (await import('node:fs')).closeSync(fd);
      for (let i = 0; i < 10; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); }
      console.log(count() - before);
      a.close(); server.close();`, abstractName('gc')]);
    const extra = Number(await child.line());
    assert.equal(extra, 0, `${extra} descriptors still open after collection`);
    await child.exited;
  });
});

describe('servers under pressure', () => {
  it('serve() handles at most `concurrency` requests at once; a flood waits in the kernel', async () => {
    const [a, b] = socketPair<unknown>({ codec: 'json' });
    let running = 0;
    let most = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    void b.serve(async (n) => {
      running++;
      most = Math.max(most, running);
      await gate;
      running--;
      return n;
    }, { concurrency: 4 });
    const replies = Array.from({ length: 50 }, (_, i) => a.request(i, { timeout: 10_000 }));
    await waitUntil('four handlers run', () => running === 4);
    assert.ok(await stillPending(replies[0]!, 50));
    assert.equal(most, 4);
    release();
    assert.deepEqual(await Promise.all(replies), Array.from({ length: 50 }, (_, i) => i));
    assert.equal(most, 4);
    a.close();
    b.close();
  });

  it('a server out of descriptors keeps its event form going and serves again once some are free', async (t) => {
    if (spawnSync('prlimit', ['--version']).status !== 0) {
      t.skip('needs prlimit (util-linux)');
      return;
    }
    const child = startPeer('prlimit', ['--nofile=80', process.execPath, '--input-type=module', '-e', `import * as ipc from ${JSON.stringify(INDEX)};
      const server = ipc.listen('unix:@' + process.argv[1]);
      const conns = [], clients = [];
      let errors = 0;
      server.on('error', (e) => { if (e.code === 'ERR_IPC_LIMIT') errors++; });
      server.on('connection', (c) => conns.push(c));
      for (let i = 0; i < 100 && errors === 0; i++) {
        try { clients.push(await ipc.connect(server.address, { timeout: 500 })); } catch { break; }
        await new Promise((r) => setTimeout(r, 5));
      }
      for (const c of [...conns.splice(0), ...clients.splice(0)]) c.close();
      const late = await ipc.connect(server.address, { timeout: 2000 });
      const deadline = Date.now() + 5000;
      while (conns.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      console.log(errors > 0 ? 'hit the limit' : 'never hit the limit', conns.length > 0 ? 'and served again' : 'and stopped serving');
      late.close(); server.close();`, abstractName('emfile')]);
    assert.equal(await child.line(), 'hit the limit and served again');
    assert.equal(await child.exited, 0, child.stderr());
  });
});

describe('hostile peers', () => {
  /** A connection whose other end is a raw socket this test writes bytes into. */
  async function rawPeer(options: object = {}): Promise<{ conn: MessageSocket; raw: MessageSocket; server: SocketServer }> {
    const server = listen<Buffer>(`unix:${sockPath('h')}`, options);
    const raw = await connect(server.address);
    const conn = await server.accept({ timeout: 10_000 });
    return { conn, raw, server };
  }

  it('a length of 2^32-1 closes that connection with ERR_IPC_MESSAGE_TOO_LARGE; other clients go on', async () => {
    const { conn, raw, server } = await rawPeer();
    const other = await connect(server.address);
    const otherConn = await server.accept({ timeout: 10_000 });
    await raw.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    await rejectsWith(() => conn.receive({ timeout: 10_000 }), 'ERR_IPC_MESSAGE_TOO_LARGE', /4294967295 bytes/);
    assert.equal(conn.closed, true);
    await rejectsWith(() => conn.receive(), 'ERR_IPC_MESSAGE_TOO_LARGE');
    // The peer sees the connection go.
    assert.equal(await raw.read({ timeout: 10_000 }), null);
    await other.send(Buffer.from('still here'));
    assert.equal((await otherConn.receive({ timeout: 10_000 })).data.toString(), 'still here');
    for (const s of [raw, other, otherConn, server]) s.close();
  });

  it('a zero length is an empty message; a truncated header then the end is ERR_IPC_FRAMING, once', async () => {
    const { conn, raw, server } = await rawPeer();
    await raw.write(Buffer.from([0, 0, 0, 0, 0, 0]));
    raw.close();
    assert.equal((await conn.receive({ timeout: 10_000 })).data.length, 0);
    await rejectsWith(() => conn.receive({ timeout: 10_000 }), 'ERR_IPC_FRAMING');
    await rejectsWith(() => conn.receive(), 'ERR_IPC_FRAMING');
    server.close();
  });

  it('a peer that trickles a frame byte by byte is cut off after frameTimeout', async () => {
    const { conn, raw, server } = await rawPeer({ frameTimeout: 300 });
    const pending = conn.receive();
    const frame = Buffer.from([0, 0, 0, 100]);
    let stop = false;
    const trickle = (async () => {
      for (let i = 0; !stop && i < 100; i++) {
        await raw.write(frame.subarray(Math.min(i, 3), Math.min(i, 3) + 1)).catch(() => { stop = true; });
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const started = performance.now();
    await rejectsWith(() => pending, 'ERR_IPC_TIMEOUT', /frameTimeout/);
    stop = true;
    await trickle;
    assert.ok(performance.now() - started < 5_000);
    raw.close();
    server.close();
  });

  it('a peer killed in the middle of a frame: no partial message, one error, the server goes on', async () => {
    const server = listen(`unix:${sockPath('k')}`);
    const py = python(`
import socket, struct, sys, os, signal
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])
s.sendall(struct.pack('>I', 3) + b'one')
s.sendall(struct.pack('>I', 1000000) + b'x' * 5000)
print('sent', flush=True)
os.kill(os.getpid(), signal.SIGKILL)
`, server.address.slice('unix:'.length));
    const conn = await server.accept({ timeout: 10_000 });
    await py.line();
    await py.exited;
    assert.equal((await conn.receive({ timeout: 10_000 })).data.toString(), 'one');
    await rejectsWith(() => conn.receive({ timeout: 10_000 }), 'ERR_IPC_FRAMING');
    const next = await connect(server.address);
    const nextConn = await server.accept({ timeout: 10_000 });
    await next.send(Buffer.from('ok'));
    assert.equal((await nextConn.receive({ timeout: 10_000 })).data.toString(), 'ok');
    for (const s of [next, nextConn, server]) s.close();
  });

  it('an idle connection is closed after idleTimeout', async () => {
    const [a, b] = socketPair({ idleTimeout: 100 });
    await rejectsWith(() => a.receive({ timeout: 10_000 }), 'ERR_IPC_TIMEOUT', /idleTimeout/);
    assert.equal((await b.read({ timeout: 10_000 })), null);
    b.close();
  });

  it('a Unix datagram send to a receiver whose queue is full waits without spinning; an undecodable datagram closes its descriptors', async () => {
    const full = bind(`unix-dgram:@${abstractName('full')}`, { codec: 'json' });
    const sender = bind(`unix-dgram:@${abstractName('sender')}`);
    // Fill the receiver's queue (net.unix.max_dgram_qlen datagrams).
    while (sender.trySend(Buffer.from('"x"'), { to: full.localAddress! })) { /* filling */ }
    const cpu = process.cpuUsage();
    await rejectsWith(() => sender.send(Buffer.from('"y"'), { to: full.localAddress!, timeout: 500 }), 'ERR_IPC_TIMEOUT');
    throwsWith(() => sender.sendSync(Buffer.from('"y"'), { to: full.localAddress!, timeout: 300 }), 'ERR_IPC_TIMEOUT');
    const used = process.cpuUsage(cpu);
    assert.ok((used.user + used.system) / 1000 < 200, `${(used.user + used.system) / 1000} ms of CPU in 800 ms of waiting`);
    // Room again: a waiting send goes through.
    const waiting = sender.send(Buffer.from('"z"'), { to: full.localAddress! });
    while (full.tryReceive() !== undefined) { /* draining */ }
    await waiting;
    while (full.tryReceive() !== undefined) { /* draining */ }
    const before = openFds().length;
    await sender.send(Buffer.from('not json'), { to: full.localAddress!, fds: [0, 1, 2] });
    await rejectsWith(() => full.receive({ timeout: 10_000 }), 'ERR_IPC_CODEC');
    assert.equal(openFds().length, before);
    full.close();
    sender.close();
  });

  it('a datagram larger than maxMessageSize is reported and discarded, never cut', async () => {
    const a = bind(`unix-dgram:${sockPath('d')}`, { maxMessageSize: 100 });
    const b = bind(`unix-dgram:@${abstractName()}`);
    await b.send(payload(101), { to: a.localAddress! });
    await b.send(payload(100), { to: a.localAddress! });
    await rejectsWith(() => a.receive({ timeout: 10_000 }), 'ERR_IPC_MESSAGE_TOO_LARGE', /101-byte datagram/);
    assert.ok((await a.receive({ timeout: 10_000 })).data.equals(payload(100)));
    a.close();
    b.close();
  });
});

describe('descriptor passing', () => {
  it('a pipe end passed to an unrelated process is written by it; received descriptors are close-on-exec', async () => {
    const path = sockPath('fd');
    const server = listen(`unix:${path}`);
    const child = startPeer(process.execPath, ['--input-type=module', '-e', `import * as ipc from ${JSON.stringify(INDEX)};
      const sock = await ipc.connect(process.argv[1]);
      const { data, fds } = await sock.receive();
      const end = ipc.PipeWriteEnd.fromFd(fds[0]);
      await end.write(Buffer.from('written by ' + data.toString()));
      end.close();
      sock.close();`, `unix:${path}`]);
    const conn = await server.accept({ timeout: 10_000 });
    const { readEnd, writeEnd } = pipe();
    await conn.sendFds([writeEnd], Buffer.from('the child'));
    writeEnd.close();
    const chunk = await readEnd.read({ timeout: 10_000 });
    assert.equal(chunk?.toString(), 'written by the child');
    assert.equal(await readEnd.read({ timeout: 10_000 }), null);
    assert.equal(await child.exited, 0, child.stderr());
    readEnd.close();
    conn.close();
    server.close();
  });

  it('a POSIX queue and a shared-memory segment passed to an unrelated process are wrapped back and used there', async () => {
    const tracker = new ObjectTracker();
    const queue = PosixMessageQueue.create(tracker.name('sockq'), { maxMessages: 4, maxMessageSize: 64 });
    const segment = PosixSharedMemory.create(tracker.shmName('socks'), { size: 4096 });
    const [mine, theirs] = socketPair();
    const child = spawn(process.execPath, ['--input-type=module', '-e', `import * as ipc from ${JSON.stringify(INDEX)};
      const s = ipc.MessageSocket.fromFd(3);
      const { fds } = await s.receive();
      const q = ipc.PosixMessageQueue.fromFd(fds[0]);
      const m = ipc.PosixSharedMemory.fromFd(fds[1]);
      new Uint8Array(m.buffer).set(Buffer.from('segment ' + m.name), 0);
      await q.send(Buffer.from('queue ' + q.name));
      q.close(); m.close(); s.close();`], { fds: { 3: theirs }, stdio: ['ignore', 'inherit', 'inherit'] });
    theirs.close();
    try {
      await mine.sendFds([queue, segment]);
      const { data } = await queue.receive({ timeout: 10_000 });
      assert.equal(data.toString(), `queue ${queue.name}`);
      assert.equal(Buffer.from(segment.buffer, 0, 8 + segment.name.length).toString(), `segment ${segment.name}`);
      assert.equal(await new Promise((r) => child.on('close', r)), 0);
    } finally {
      mine.close();
      queue.close();
      segment.close();
      tracker.cleanup();
    }
    assert.deepEqual(tracker.leftovers(), []);
  });

  it(`${SCM_MAX_FD} descriptors pass in one message, more are refused; 100,000 round trips leak nothing`, async () => {
    const [a, b] = socketPair({ type: 'seqpacket' });
    const many = Array.from({ length: SCM_MAX_FD }, () => a.fd);
    await a.sendFds(many);
    const got = await b.receive({ timeout: 10_000 });
    assert.equal(got.fds.length, SCM_MAX_FD);
    for (const fd of got.fds) {
      assert.equal(native.getFdFlags(fd) & native.constants.FD_CLOEXEC, native.constants.FD_CLOEXEC);
      native.close(fd);
    }
    await rejectsWith(() => a.sendFds([...many, a.fd]), 'ERR_IPC_LIMIT', /at most 253/);
    const before = openFds().length;
    const { readEnd, writeEnd } = pipe();
    for (let i = 0; i < 100_000; i++) {
      a.sendFdsSync([readEnd, writeEnd]);
      const { fds } = b.receiveSync({ timeout: 10_000 });
      for (const fd of fds) native.close(fd);
    }
    readEnd.close();
    writeEnd.close();
    assert.equal(openFds().length, before);
    a.close();
    b.close();
  });

  it('descriptors on a framed stream arrive with the message they were sent with', async () => {
    const [a, b] = socketPair();
    const { readEnd, writeEnd } = pipe();
    await a.send(Buffer.from('first'));
    await a.sendFds([readEnd], Buffer.from('second'));
    await a.send(Buffer.from('third'));
    await a.sendFds([writeEnd, writeEnd], payload(200_000));
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await b.receive({ timeout: 10_000 }));
    assert.deepEqual(got.map((m) => m.fds.length), [0, 1, 0, 2]);
    assert.equal(got[1]!.data.toString(), 'second');
    assert.ok(got[3]!.data.equals(payload(200_000)));
    for (const m of got) for (const fd of m.fds) native.close(fd);
    for (const h of [a, b, readEnd, writeEnd]) h.close();
  });

  it('descriptors cannot go over TCP', async () => {
    const server = listen('tcp://127.0.0.1:0');
    const sock = await connect(server.address);
    await rejectsWith(() => sock.sendFds([0]), 'ERR_IPC_INVALID_ARGUMENT', /Unix sockets/);
    sock.close();
    server.close();
  });
});

describe('peer credentials', () => {
  it('a connection knows its peer\'s pid, uid and gid, and a pid descriptor of it', async () => {
    const server = listen(`unix:${sockPath('c')}`);
    const child = nodePeer(`const s = await ipc.connect(${JSON.stringify(server.address)}); console.log('up'); await s.receive().catch(() => {}); s.close();`);
    const conn = await server.accept({ timeout: 10_000 });
    assert.deepEqual({ pid: conn.peer?.pid, uid: conn.peer?.uid, gid: conn.peer?.gid },
      { pid: child.child.pid, uid: process.getuid!(), gid: process.getgid!() });
    if (conn.peer?.pidfd !== undefined) assert.equal(readlinkSync(`/proc/self/fd/${conn.peer.pidfd}`), 'anon_inode:[pidfd]');
    assert.deepEqual(Object.keys(conn.peer ?? {}), ['pid', 'uid', 'gid', 'pidfd']);
    conn.close();
    await child.exited;
    server.close();
  });

  it('allowUids refuses another uid before anything is read', async (t) => {
    if (!canRunAs(65534)) {
      t.skip('needs root, setpriv and a checkout the nobody user can read');
      return;
    }
    // An abstract name has no file permissions: the allow-list is all that keeps others out.
    const path = `@${abstractName('allow')}`;
    const server = listen(`unix:${path}`, { allowUids: [process.getuid!()] });
    const refused: unknown[] = [];
    server.on('refused', (peer) => refused.push(peer));
    const stranger = startPeer(process.execPath, ['--input-type=module', '-e', `import * as ipc from ${JSON.stringify(INDEX)};
      const s = await ipc.connect(process.argv[1]);
      await s.send(Buffer.from('let me in')).catch(() => {});
      try { await s.receive({ timeout: 10000 }); console.log('answered'); } catch (e) { console.log(e.code); }
      s.close();`, `unix:${path}`], { uid: 65534 });
    const accepted = server.accept({ timeout: 10_000 });
    assert.equal(await stranger.line(), 'ERR_IPC_PEER_CLOSED');
    const friend = await connect(`unix:${path}`);
    const conn = await accepted;
    assert.equal(conn.peer?.uid, process.getuid!());
    assert.equal(server.refused, 1);
    assert.equal((refused[0] as { uid: number }).uid, 65534);
    for (const s of [friend, conn, server]) s.close();
  });
});

describe('socket files', () => {
  it('are made with mode 0600 by default, or exactly the mode asked for, and closing removes them', () => {
    const path = sockPath('m');
    const server = listen(`unix:${path}`);
    assert.equal(lstatSync(path).mode & 0o777, 0o600);
    server.close();
    assert.equal(existsSync(path), false);
    const open = listen(`unix:${path}`, { mode: 0o666 });
    assert.equal(lstatSync(path).mode & 0o777, 0o666);
    open.close();
    const dgram = bind(`unix-dgram:${path}`, { mode: 0o640 });
    assert.equal(lstatSync(path).mode & 0o777, 0o640);
    dgram.close();
    assert.equal(existsSync(path), false);
  });

  it('a stale file left by a killed server is replaced; a live one never is', async () => {
    const path = sockPath('stale');
    const dead = python(`
import socket, sys, os, signal
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(1)
print('bound', flush=True)
os.kill(os.getpid(), signal.SIGKILL)
`, path);
    await dead.line();
    await dead.exited;
    assert.equal(lstatSync(path).isSocket(), true);
    await rejectsWith(() => connect(`unix:${path}`), 'ECONNREFUSED');
    const server = listen(`unix:${path}`);
    const rival = throwsWith(() => listen(`unix:${path}`), 'EADDRINUSE', /live socket/);
    assert.equal(rival.syscall, 'bind');
    const client = await connect(`unix:${path}`);
    client.close();
    server.close();
    // A file something else put there is not a socket: left alone.
    writeFileSync(path, 'data');
    throwsWith(() => listen(`unix:${path}`), 'EADDRINUSE', /not a socket/);
    rmSync(path);
  });

  it('a socket bound but not yet listening is live: its file is never taken for stale', async () => {
    const path = sockPath('early');
    const py = python(`
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1])
print('bound', flush=True)
sys.stdin.read()
`, path);
    await py.line();
    throwsWith(() => listen(`unix:${path}`), 'EADDRINUSE', /live socket/);
    throwsWith(() => bind(`unix-dgram:${path}`), 'EADDRINUSE', /live socket/);
    assert.equal(lstatSync(path).isSocket(), true);
    py.child.stdin?.end();
    assert.equal(await py.exited, 0);
    rmSync(path);
  });

  it('close removes the file this server made, and only that one', () => {
    const path = sockPath('own');
    const first = listen(`unix:${path}`);
    rmSync(path);
    const second = listen(`unix:${path}`);
    first.close();
    assert.equal(existsSync(path), true);
    second.close();
    assert.equal(existsSync(path), false);
  });
});

describe('pairs, children and the engine', () => {
  it('one end of a socket pair handed to a child works there through MessageSocket.fromFd', async () => {
    const [mine, theirs] = socketPair<unknown>({ codec: 'json' });
    const child = spawn(process.execPath, ['--input-type=module', '-e', `import * as ipc from ${JSON.stringify(INDEX)};
      const s = ipc.MessageSocket.fromFd(3, { codec: 'json' });
      for await (const { data } of s) await s.send({ echoed: data, pid: process.pid });
      s.close();`], { fds: { 3: theirs }, stdio: ['ignore', 'inherit', 'inherit'] });
    theirs.close();
    await mine.send({ hello: 1 });
    const { data } = await mine.receive({ timeout: 10_000 });
    assert.deepEqual(data, { echoed: { hello: 1 }, pid: child.pid });
    assert.equal(mine.peer?.pid, process.pid, 'a pair\'s credentials are its creator\'s');
    mine.close();
    await new Promise((r) => child.on('close', r));
  });

  it('the blocking triple: tryReceive, receiveSync with a timeout, aborts, close rejects what waits', async () => {
    const [a, b] = socketPair({ type: 'seqpacket' });
    assert.equal(b.tryReceive(), undefined);
    throwsWith(() => b.receiveSync({ timeout: 20 }), 'ERR_IPC_TIMEOUT');
    const controller = new AbortController();
    const aborted = b.receive({ signal: controller.signal });
    controller.abort();
    await rejectsWith(() => aborted, 'ERR_IPC_ABORTED');
    const pending = b.receive();
    b.close();
    await rejectsWith(() => pending, 'ERR_IPC_CLOSED');
    throwsWith(() => a.sendSync(Buffer.from('x')), 'ERR_IPC_PEER_CLOSED', /EPIPE/);
    throwsWith(() => a.trySendFds([0], Buffer.from('x')), 'ERR_IPC_PEER_CLOSED');
    a.close();
  });

  it('a zero-length seqpacket message is a message; the peer closing is ERR_IPC_PEER_CLOSED', async () => {
    const [a, b] = socketPair({ type: 'seqpacket' });
    await a.send(Buffer.alloc(0));
    assert.equal((await b.receive({ timeout: 10_000 })).data.length, 0);
    a.close();
    await rejectsWith(() => b.receive({ timeout: 10_000 }), 'ERR_IPC_PEER_CLOSED');
    b.close();
  });

  it('connect never blocks the event loop: a full Unix backlog waits, times out, and aborts', async () => {
    const path = sockPath('backlog');
    const server = listen(`unix:${path}`, { backlog: 1 });
    const made: MessageSocket[] = [];
    // Fill the backlog (the kernel admits backlog + 1).
    for (let i = 0; i < 8; i++) {
      const s = await connect(`unix:${path}`, { timeout: 50 }).catch((e: IpcError) => e);
      if (s instanceof IpcError) {
        assert.equal(s.code, 'ERR_IPC_TIMEOUT');
        break;
      }
      made.push(s);
    }
    assert.ok(made.length >= 1 && made.length < 8, `${made.length} connected`);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    throwsWith(() => connectSync(`unix:${path}`, { timeout: 30 }), 'ERR_IPC_TIMEOUT');
    // Waiting for room in the backlog does not spin the event loop: it retries after a growing pause.
    const cpu = process.cpuUsage();
    await rejectsWith(() => connect(`unix:${path}`, { timeout: 500 }), 'ERR_IPC_TIMEOUT');
    const used = process.cpuUsage(cpu);
    assert.ok((used.user + used.system) / 1000 < 150, `${(used.user + used.system) / 1000} ms of CPU in a 500 ms wait`);
    const waiting = connect(`unix:${path}`, { timeout: 10_000 });
    await waitUntil('the loop turns while connect waits', () => ticks >= 3);
    clearInterval(timer);
    (await server.accept({ timeout: 10_000 })).close();
    const late = await waiting;
    const controller = new AbortController();
    const aborted = connect(`unix:${path}`, { signal: controller.signal });
    controller.abort();
    await rejectsWith(() => aborted, 'ERR_IPC_ABORTED');
    for (const s of [...made, late, server]) s.close();
    throwsWith(() => connectSync(`unix:${path}`), 'ENOENT');
    const tcp = listen('tcp://127.0.0.1:0');
    const sync = connectSync(tcp.address, { timeout: 10_000 });
    assert.equal(sync.remoteAddress, tcp.address);
    assert.equal(native.getFlags(sync.fd) & native.constants.O_NONBLOCK, 0, 'a connection is blocking, as a child expects');
    sync.close();
    tcp.close();
  });

  it('the event form: connection and refused events; raw bytes through a Node Duplex', async () => {
    const server = listen(`unix:@${abstractName('ev')}`);
    const echoed = new Promise<void>((resolve, reject) => {
      server.on('error', reject);
      server.on('connection', (conn) => {
        const stream = conn.toStream();
        stream.on('error', reject);
        // A Duplex over the raw bytes: what comes in goes back upper-cased, then the end.
        stream.on('data', (chunk: Buffer) => stream.write(Buffer.from(chunk.toString().toUpperCase())));
        stream.on('end', () => stream.end(resolve));
      });
    });
    const client = await connect(server.address);
    assert.equal(client.tryWrite(Buffer.from('raw bytes, ')), 11);
    await client.write(Buffer.from('no framing'));
    client.end();
    const got: Buffer[] = [];
    for (let chunk = await client.read({ timeout: 10_000 }); chunk !== null; chunk = await client.read({ timeout: 10_000 })) got.push(chunk);
    assert.equal(Buffer.concat(got).toString(), 'RAW BYTES, NO FRAMING');
    await echoed;
    client.close();
    server.close();
  });

  it('a worker thread receives on a socket and is terminated mid-receive: nothing crashes, nothing leaks', async () => {
    const { Worker } = await import('node:worker_threads');
    const before = openFds().length;
    const server = listen(`unix:@${abstractName('worker')}`);
    const worker = new Worker(`
      const { workerData, parentPort } = require('node:worker_threads');
      import(workerData.index).then(async (ipc) => {
        const s = await ipc.connect(workerData.address);
        const { data } = await s.receive();
        parentPort.postMessage(data.toString());
        await s.receive();
      });`, { eval: true, workerData: { index: INDEX, address: server.address } });
    const conn = await server.accept({ timeout: 10_000 });
    const first = new Promise((resolve) => worker.once('message', resolve));
    await conn.send(Buffer.from('to the worker'));
    assert.equal(await first, 'to the worker');
    await worker.terminate();
    // The worker's end was closed when it ended: the connection sees the peer go.
    await rejectsWith(() => conn.receive({ timeout: 10_000 }), 'ERR_IPC_PEER_CLOSED');
    conn.close();
    server.close();
    await waitUntil('descriptors are back', () => openFds().length <= before);
  });

  it('workers terminated while their sockets are busy: the process goes on', async () => {
    const { Worker } = await import('node:worker_threads');
    const server = listen(`unix:@${abstractName('busy')}`);
    for (let i = 0; i < 20; i++) {
      const worker = new Worker(`
        const { workerData, parentPort } = require('node:worker_threads');
        import(workerData.index).then(async (ipc) => {
          const s = await ipc.connect(workerData.address);
          parentPort.postMessage('ready');
          for (;;) { await s.receive(); await s.send(Buffer.from('ack')); }
        });`, { eval: true, workerData: { index: INDEX, address: server.address } });
      const conn = await server.accept({ timeout: 10_000 });
      await new Promise((resolve) => worker.once('message', resolve));
      let stop = false;
      const traffic = (async () => {
        try {
          while (!stop) {
            await conn.send(Buffer.alloc(100));
            await conn.receive({ timeout: 1000 });
          }
        } catch { /* the worker went away */ }
      })();
      await new Promise((resolve) => setTimeout(resolve, 5 + (i % 10)));
      await worker.terminate();
      stop = true;
      await traffic;
      conn.close();
    }
    server.close();
  });

  it('workers terminated while they make and close sockets in a loop: the process goes on', async () => {
    // In a process of its own: a worker stopped between a system call that made a descriptor and the
    // handle that owns it leaves that descriptor open (see the closing notes of issue 10).
    const child = startPeer(process.execPath, ['--input-type=module', '-e', `import * as ipc from ${JSON.stringify(INDEX)};
      import { Worker } from 'node:worker_threads';
      const server = ipc.listen('unix:@' + process.argv[1]);
      server.on('connection', (conn) => conn.close());
      for (let i = 0; i < 15; i++) {
        const worker = new Worker(\`
          const { workerData, parentPort } = require('node:worker_threads');
          import(workerData.index).then(async (ipc) => {
            parentPort.postMessage('ready');
            for (;;) {
              const s = await ipc.connect(workerData.address);
              void s.localAddress;
              const [a, b] = ipc.socketPair();
              a.close(); b.close(); s.close();
            }
          });\`, { eval: true, execArgv: [], workerData: { index: ${JSON.stringify(INDEX)}, address: server.address } });
        await new Promise((resolve) => worker.once('message', resolve));
        await new Promise((resolve) => setTimeout(resolve, 5 + (i % 7) * 3));
        await worker.terminate();
      }
      server.close();
      console.log('survived');`, abstractName('churn')]);
    assert.equal(await child.line(), 'survived');
    assert.equal(await child.exited, 0, child.stderr());
  });

  it('bad input: unknown options, wrong address kinds, refused and absent peers', async () => {
    throwsWith(() => listen(`unix:${sockPath()}`, { backlg: 4 } as never), 'ERR_IPC_INVALID_ARGUMENT', /backlog/);
    throwsWith(() => listen('udp://127.0.0.1:0'), 'ERR_IPC_INVALID_ADDRESS', /bind\(\)/);
    throwsWith(() => bind('tcp://127.0.0.1:0'), 'ERR_IPC_INVALID_ADDRESS');
    throwsWith(() => listen('tcp://127.0.0.1:0', { allowUids: [0] }), 'ERR_IPC_INVALID_ARGUMENT', /Unix/);
    await rejectsWith(() => connect(`unix:${sockPath('absent')}`), 'ENOENT');
    await rejectsWith(() => connect('unix-dgram:/x'), 'ERR_IPC_INVALID_ADDRESS');
    const d = bind('udp://127.0.0.1:0');
    await rejectsWith(() => d.send(Buffer.from('x'), { to: 'unix-dgram:/x' }), 'ERR_IPC_INVALID_ADDRESS');
    await rejectsWith(() => d.send(Buffer.from('x'), {} as never), 'ERR_IPC_INVALID_ARGUMENT', /to/);
    d.close();
    const s = listen('tcp://127.0.0.1:0');
    const port = s.port;
    s.close();
    await rejectsWith(() => connect(`tcp://127.0.0.1:${port}`, { timeout: 10_000 }), 'ECONNREFUSED');
  });

  it('leaves no descriptor and no socket file behind', async () => {
    const extra = (): string[] => fdsBeyond(fdBaseline);
    await waitUntil('descriptors are closed', () => extra().length === 0).catch(() => assert.deepEqual(extra(), []));
    assert.equal(typeof DatagramSocket, 'function');
  });
});
