/**
 * The batched calls of sockets: MessageSocket sendMany / receiveMany on
 * streams (framed, gathered sendmsg) and seqpacket (sendmmsg), writev /
 * readv on streams, and DatagramSocket sendMany / receiveMany (sendmmsg,
 * recvmmsg). Exact counts when a batch ends part-way, descriptors that
 * stay with their message and are never leaked, failures after the first
 * message of a batch, and argument checks.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, fstatSync, openSync, readFileSync, statSync } from 'node:fs';
import { type Datagram, DatagramSocket, IpcError, type SocketMessage, bind, socketPair, spawn } from '../src/index.js';
import { native } from '../src/native.js';
import { errnoValue } from '../src/errors.js';
import { refusingCodec, rejectsWith, stillPending, throwsWith } from './helpers/assert.js';
import { openFds } from './helpers/objects.js';
import { killAllPeers, trackChild } from './helpers/peer.js';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { assertNothingLeft, fdSnapshot } from './helpers/leaks.js';

/** The descriptors open before any test: the file must leave no other behind. */
const fdBaseline = fdSnapshot();

after(() => killAllPeers());
const INDEX = fileURLToPath(new URL('../src/index.js', import.meta.url));
const texts = (messages: (SocketMessage | Datagram)[]): string[] => messages.map((m) => m.data.toString());
const words = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `w${from + i}`);
let unique = 0;
const E_RANGE = -errnoValue('ERANGE');
const abstract = (label: string): string => `unix-dgram:@ipckit-batch-${label}-${process.pid}-${unique++}`;

/**
 * Another process that reads `socket` too (its descriptor 3), running the
 * module code `lines`; `printed()` resolves with what it wrote to stdout,
 * once it has ended with status 0.
 */
function otherReader(socket: DatagramSocket, lines: string[]): { printed(): Promise<string> } {
  const child = trackChild(spawn(process.execPath, ['--input-type=module', '-e', lines.join('\n')], { fds: { 3: socket }, stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { out += chunk; });
  // 'close': the process ended and its stdout was read to the end.
  const ended = new Promise<number | null>((resolve) => child.once('close', resolve));
  return {
    async printed() {
      assert.equal(await ended, 0);
      return out;
    },
  };
}

function closeAll(...sockets: { close(): void }[]): void {
  for (const s of sockets) s.close();
}

describe('MessageSocket batches', () => {
  for (const type of ['stream', 'seqpacket'] as const) {
    it(`${type}: many messages per call in order, with a codec; [] while none; the peer's close after the last`, async () => {
      const [a, b] = socketPair({ type, codec: 'json' });
      try {
        assert.equal(a.trySendMany([1, 'two', { three: 3 }]), 3);
        assert.equal(await a.sendMany([null, [4]]), 2);
        assert.equal(a.sendManySync([]), 0);
        assert.deepEqual(b.receiveManySync({ max: 2 }).map((m) => m.data), [1, 'two']);
        assert.deepEqual((await b.receiveMany()).map((m) => [m.data, m.fds]), [[{ three: 3 }, []], [null, []], [[4], []]]);
        assert.deepEqual(b.tryReceiveMany(), []);
        const waiting = b.receiveMany({ max: 3 });
        assert.ok(await stillPending(waiting, 30));
        a.sendManySync(['x', 'y']);
        assert.deepEqual((await waiting).map((m) => m.data), ['x', 'y']);
        a.sendManySync(['last']);
        a.close();
        assert.deepEqual(b.receiveManySync().map((m) => m.data), ['last']);
        throwsWith(() => b.receiveManySync(), 'ERR_IPC_PEER_CLOSED');
        await rejectsWith(() => b.receiveMany(), 'ERR_IPC_PEER_CLOSED');
      } finally {
        closeAll(a, b);
      }
    });

    it(`${type}: descriptors stay with their message in a batch; a batch's held ones are closed with the socket`, async () => {
      const [a, b] = socketPair({ type });
      const before = openFds().length;
      try {
        await a.send('plain');
        await a.sendFds([0, 1], 'two fds');
        await a.send('after');
        const got = b.receiveManySync({ max: 10 });
        assert.deepEqual(texts(got), ['plain', 'two fds', 'after']);
        assert.deepEqual(got.map((m) => m.fds.length), [0, 2, 0]);
        assert.deepEqual(got[1]!.fds.map((fd) => fstatSync(fd).ino), [fstatSync(0).ino, fstatSync(1).ino], 'copies of what was sent');
        for (const fd of got[1]!.fds) closeSync(fd);
        assert.equal(openFds().length, before);
      } finally {
        closeAll(a, b);
      }
    });
  }

  it('a message its codec refuses ends the batch; its descriptors are closed; the rest follow in order, with theirs', async () => {
    const codec = refusingCodec();
    const before = openFds().length;
    for (const type of ['stream', 'seqpacket'] as const) {
      const [a, b] = socketPair({ type, codec });
      try {
        a.sendManySync(['a', 'b']);
        await a.sendFds([0], 'bad-1');
        await a.sendFds([1], 'c');
        a.sendManySync(['d']);
        assert.deepEqual(b.receiveManySync().map((m) => m.data), ['a', 'b']);
        throwsWith(() => b.receiveManySync(), 'ERR_IPC_CODEC', /refused bad-1/);
        const rest: SocketMessage<string>[] = [];
        while (rest.length < 2) rest.push(...b.receiveManySync({ timeout: 1_000 }));
        assert.deepEqual(rest.map((m) => [m.data, m.fds.length]), [['c', 1], ['d', 0]]);
        for (const fd of rest[0]!.fds) closeSync(fd);
        assert.equal(openFds().length, before + 2, `${type}: the refused message's descriptor was closed`);
      } finally {
        closeAll(a, b);
      }
    }
    // Seqpacket reads each packet whole: a batch that met the refusal holds the next message with its descriptor,
    // and closing the socket closes it.
    const [a, b] = socketPair({ type: 'seqpacket', codec });
    try {
      await a.send('a');
      await a.sendFds([0], 'bad-2');
      await a.sendFds([1, 2], 'held');
      assert.deepEqual(b.receiveManySync().map((m) => m.data), ['a']);
      // The refused message's descriptor is closed at once; the held message keeps its two.
      assert.equal(openFds().length, before + 2 + 2);
      // The number it had is free: a file opened now takes it, and reporting the refusal must not close that.
      const probe = openSync('/dev/null', 'r');
      throwsWith(() => b.tryReceiveMany(), 'ERR_IPC_CODEC', /refused bad-2/);
      assert.equal(fstatSync(probe).ino, statSync('/dev/null').ino, 'nothing closed twice');
      closeSync(probe);
      assert.equal(openFds().length, before + 2 + 2);
      const [held] = b.receiveManySync();
      assert.deepEqual([held!.data, held!.fds.length], ['held', 2]);
      for (const fd of held!.fds) closeSync(fd);
      assert.equal(openFds().length, before + 2);
      await a.sendFds([0, 1], 'bad-3');
      await a.sendFds([2], 'kept');
      throwsWith(() => b.receiveManySync(), 'ERR_IPC_CODEC', /refused bad-3/);
      assert.equal(openFds().length, before + 2 + 1, 'the message after the refused one is held with its descriptor');
      b.close();
      assert.equal(openFds().length, before + 1, 'and closing the socket closes it');
    } finally {
      closeAll(a, b);
    }
    assert.equal(openFds().length, before);
  });

  it('seqpacket: sendMany waits while the peer\'s buffer is full; a timeout between messages resolves with exactly what went', async () => {
    const [a, b] = socketPair({ type: 'seqpacket' });
    try {
      const message = Buffer.alloc(2000, 7);
      const list = Array.from({ length: 1000 }, () => message);
      const fit = a.trySendMany(list);
      assert.ok(fit > 0 && fit < 1000, `some of a thousand 2000-byte packets fit, not ${fit}`);
      await rejectsWith(() => a.sendMany([message], { timeout: 20 }), 'ERR_IPC_TIMEOUT');
      throwsWith(() => a.sendManySync([message], { timeout: 0 }), 'ERR_IPC_TIMEOUT');
      let got = 0;
      while (got < fit) got += b.receiveManySync({ max: 1024, timeout: 1_000 }).length;
      assert.deepEqual(b.tryReceiveMany(), []);
      const timed = a.sendManySync(list, { timeout: 30 });
      assert.equal(timed, fit, 'the same room, the same count');
      const controller = new AbortController();
      let received = 0;
      while (received < timed) received += b.receiveManySync({ max: 1024, timeout: 1_000 }).length;
      const aborted = a.sendMany(list, { signal: controller.signal });
      await stillPending(aborted, 30);
      controller.abort();
      const n = await aborted;
      assert.equal(n, fit);
      let drained = 0;
      for (let batch = b.tryReceiveMany({ max: 1024 }); batch.length > 0; batch = b.tryReceiveMany({ max: 1024 })) drained += batch.length;
      assert.equal(drained, n);
    } finally {
      closeAll(a, b);
    }
  });

  it('stream: a timeout inside a message closes the connection and says how many went whole; the peer gets those, then the cut', async () => {
    const [a, b] = socketPair();
    try {
      const big = Buffer.alloc(8 * 1024 * 1024, 3);
      const err = await rejectsWith(() => a.sendMany(['small', big], { timeout: 50 }), 'ERR_IPC_TIMEOUT',
        /1 of 2 messages had been written whole, and \d+ bytes of the next .*so the connection was closed/);
      assert.equal(a.closed, true);
      assert.equal(err.address, a.address);
      assert.deepEqual(texts(b.receiveManySync({ timeout: 1_000 })), ['small']);
      throwsWith(() => b.receiveManySync({ timeout: 5_000 }), 'ERR_IPC_FRAMING');
    } finally {
      closeAll(a, b);
    }
  });

  it('stream: trySendMany commits to a message the kernel took part of; its rest follows before later sends', async () => {
    const [a, b] = socketPair();
    try {
      const big = Buffer.alloc(4 * 1024 * 1024, 5);
      assert.equal(a.trySendMany(['first', big, 'never tried']), 2);
      const after = a.send('after');
      const got: Buffer[] = [];
      while (got.length < 3) for (const m of await b.receiveMany({ timeout: 10_000 })) got.push(m.data);
      await after;
      assert.deepEqual(got.map((d) => d.length), [5, big.length, 5]);
      assert.ok(got[1]!.equals(big));
    } finally {
      closeAll(a, b);
    }
  });

  it('stream: writev gathers raw bytes, readv scatters them; a framed message left ahead is read first', async () => {
    const [a, b] = socketPair();
    try {
      a.writevSync(['ab', Buffer.from('cd'), new Uint8Array(0)]);
      await a.writev(['é']);
      assert.equal(a.tryWritev(['f']), 1);
      const x = Buffer.alloc(3);
      const y = Buffer.alloc(10);
      let n = 0;
      while (n < 7) n += b.readvSync([x.subarray(Math.min(n, 3)), y.subarray(Math.max(0, n - 3))], { timeout: 1_000 }) ?? 0;
      assert.equal(x.toString() + y.subarray(0, 4).toString(), 'abcdéf');
      assert.equal(b.tryReadv([x]), undefined);
      const waiting = b.readv([x]);
      assert.ok(await stillPending(waiting, 30));
      a.writeSync('zz');
      assert.equal(await waiting, 2);
      a.close();
      assert.equal(await b.readv([x]), null);
      assert.equal(b.readvSync([x]), null);
    } finally {
      closeAll(a, b);
    }
  });

  it('stream: counts batches of many empty messages right, and writev of many empty chunks writes nothing', () => {
    const [a, b] = socketPair();
    try {
      assert.equal(a.sendManySync([...Array.from({ length: 600 }, () => ''), 'tail']), 601);
      a.writevSync(Array.from({ length: 5000 }, () => Buffer.alloc(0)));
      const got: string[] = [];
      while (got.length < 601) got.push(...texts(b.receiveManySync({ max: 1024, timeout: 1_000 })));
      assert.equal(got.length, 601);
      assert.equal(got[600], 'tail');
      assert.deepEqual(b.tryReceiveMany(), []);
    } finally {
      closeAll(a, b);
    }
  });

  it('refuses bad batches and calls the socket type has not', async () => {
    const [a, b] = socketPair();
    const [p, q] = socketPair({ type: 'seqpacket' });
    try {
      throwsWith(() => a.sendManySync('ab' as never), 'ERR_IPC_INVALID_ARGUMENT', /messages must be an array of messages/);
      throwsWith(() => a.trySendMany(['ok', 3 as never]), 'ERR_IPC_INVALID_ARGUMENT', /data/);
      await rejectsWith(() => a.sendMany(['x'], { to: 'y' } as never), 'ERR_IPC_INVALID_ARGUMENT', /to/);
      throwsWith(() => b.receiveManySync({ max: 1025 }), 'ERR_IPC_INVALID_ARGUMENT', /max/);
      throwsWith(() => b.tryReceiveMany({ max: 0 }), 'ERR_IPC_INVALID_ARGUMENT', /max/);
      throwsWith(() => b.tryReadv([]), 'ERR_IPC_INVALID_ARGUMENT', /1 to 1024/);
      throwsWith(() => p.writevSync(['x']), 'ERR_IPC_INVALID_ARGUMENT', /stream socket/);
      throwsWith(() => q.tryReadv([Buffer.alloc(1)]), 'ERR_IPC_INVALID_ARGUMENT', /stream socket/);
      assert.deepEqual(b.tryReceiveMany(), []);
    } finally {
      closeAll(a, b, p, q);
    }
  });
});

describe('DatagramSocket batches', () => {
  it('UDP: sendMany (sendmmsg) to one destination, receiveMany (recvmmsg) with each sender', async () => {
    const r = bind('udp://127.0.0.1:0', { codec: 'json' });
    const s = bind('udp://127.0.0.1:0', { codec: 'json' });
    const t = bind('udp://127.0.0.1:0', { codec: 'json' });
    try {
      const to = r.localAddress!;
      assert.equal(s.trySendMany([1, 2], { to }), 2);
      assert.equal(await t.sendMany(['from t'], { to }), 1);
      assert.equal(s.sendManySync([{ three: 3 }], { to }), 1);
      const got: Datagram<unknown>[] = [];
      while (got.length < 4) got.push(...r.receiveManySync({ timeout: 1_000 }));
      assert.deepEqual(got.map((d) => [d.data, d.from, d.fds]), [
        [1, s.localAddress, []], [2, s.localAddress, []], ['from t', t.localAddress, []], [{ three: 3 }, s.localAddress, []]]);
      assert.deepEqual(r.tryReceiveMany(), []);
      await rejectsWith(() => r.receiveMany({ timeout: 20 }), 'ERR_IPC_TIMEOUT');
    } finally {
      closeAll(r, s, t);
    }
  });

  for (const maxMessageSize of [1000, undefined]) {
    const how = maxMessageSize === undefined ? 'one by one (maxMessageSize over 64 KiB)' : 'by recvmmsg';
    it(`Unix datagrams ${how}: descriptors per datagram; an oversize one ends the batch, its error next, the rest after`, async () => {
      const r = bind(abstract('r'), maxMessageSize === undefined ? {} : { maxMessageSize });
      const s = bind(abstract('s'));
      const before = openFds().length;
      try {
        const to = r.localAddress!;
        await s.send('one', { to });
        await s.send('with fds', { to, fds: [0, 1, 2] });
        await s.send(Buffer.alloc(maxMessageSize === undefined ? 10 : 1001), { to });
        await s.send('after', { to, fds: [0] });
        if (maxMessageSize !== undefined) {
          const first = r.receiveManySync({ max: 10 });
          assert.deepEqual(texts(first), ['one', 'with fds']);
          assert.deepEqual(first.map((d) => [d.from, d.fds.length]), [[s.localAddress, 0], [s.localAddress, 3]]);
          throwsWith(() => r.receiveManySync(), 'ERR_IPC_MESSAGE_TOO_LARGE', /1001-byte datagram .* discarded/);
          const last = r.tryReceiveMany();
          assert.deepEqual(last.map((d) => [d.data.toString(), d.fds.length]), [['after', 1]]);
          for (const d of [...first, ...last]) for (const fd of d.fds) closeSync(fd);
        } else {
          const all = r.receiveManySync({ max: 10 });
          assert.deepEqual(all.map((d) => d.fds.length), [0, 3, 0, 1]);
          for (const d of all) for (const fd of d.fds) closeSync(fd);
        }
        assert.equal(openFds().length, before);
      } finally {
        closeAll(r, s);
      }
    });
  }

  for (const maxMessageSize of [1000, undefined]) {
    const how = maxMessageSize === undefined ? 'one by one' : 'by recvmmsg';
    it(`Unix datagrams ${how}: each datagram names its own sender, however the senders interleave`, () => {
      const r = bind(abstract('r'), maxMessageSize === undefined ? {} : { maxMessageSize });
      // Two abstract names of the same length that differ in their last byte, and an unbound sender.
      const base = abstract('s');
      const a = bind(`${base}a`);
      const b = bind(`${base}b`);
      const c = bind(`${base}c`);
      const S = native.socketConstants;
      const unbound = DatagramSocket.fromFd(native.socketOpen(S.AF_UNIX, S.SOCK_DGRAM, true));
      try {
        const to = r.localAddress!;
        const order = [a, a, b, unbound, a, unbound, unbound, b, b, a];
        order.forEach((s, i) => assert.equal(s.trySend(`m${i}`, { to }), true));
        const expected = order.map((s, i) => [`m${i}`, s === unbound ? null : s.localAddress]);
        const many = r.receiveManySync({ max: 6 });
        const one = r.receiveSync();
        const rest = r.tryReceiveMany();
        assert.deepEqual([...many, one, ...rest].map((d) => [d.data.toString(), d.from]), expected);
        assert.equal(unbound.localAddress, null);
        // The address last decoded came from a receive area that the next batch writes over: [a, b], then [c, c]
        // puts c where b was before the first c is looked at.
        for (const [s, text] of [[a, 'x1'], [b, 'x2']] as const) assert.equal(s.trySend(text, { to }), true);
        assert.deepEqual(r.receiveManySync({ max: 2 }).map((d) => d.from), [a.localAddress, b.localAddress]);
        for (const text of ['x3', 'x4']) assert.equal(c.trySend(text, { to }), true);
        assert.deepEqual(r.receiveManySync({ max: 2 }).map((d) => d.from), [c.localAddress, c.localAddress]);
      } finally {
        closeAll(r, a, b, c, unbound);
      }
    });
  }

  it('Unix datagrams larger than a recvmmsg slot: a batch takes them whole, one the room left cannot hold comes next in the same batch', (t) => {
    // Eleven datagrams of about 96,000 bytes (1,050,000: past the 1 MiB a batch receives into at once) need a queue of eleven:
    // a receiver holds net.unix.max_dgram_qlen + 1.
    const qlen = Number(readFileSync('/proc/sys/net/unix/max_dgram_qlen', 'utf8'));
    if (qlen < 10) {
      t.skip(`net.unix.max_dgram_qlen ${qlen}: a receiver holds fewer than eleven datagrams`);
      return;
    }
    const size = 96_000;
    const r = bind(abstract('big'), { maxMessageSize: 200_000 });
    // A sender per datagram: each holds its datagram in its send buffer until it is received.
    const senders = Array.from({ length: 11 }, (_, i) => bind(abstract(`big-sender${i}`)));
    const before = openFds().length;
    try {
      const to = r.localAddress!;
      const sent = senders.map((s, i) => {
        // The first a little smaller: a batch that mistook its length would cut every one after it wrong.
        const data = Buffer.alloc(i === 0 ? size - 6_000 : size, i + 1);
        assert.equal(s.trySend(data, { to, ...(i === 5 ? { fds: [0] } : {}) }), true);
        return data;
      });
      const got = r.receiveManySync({ max: 20, timeout: 0 });
      assert.equal(got.length, 11, 'every datagram queued, in one batch');
      got.forEach((d, k) => {
        assert.equal(d.data.equals(sent[k]!), true, `datagram ${k} whole (${d.data.length} of ${sent[k]!.length} bytes)`);
        assert.equal(d.from, senders[k]!.localAddress);
        assert.equal(d.fds.length, k === 5 ? 1 : 0);
        for (const fd of d.fds) closeSync(fd);
      });
      assert.deepEqual(r.tryReceiveMany(), []);
      assert.equal(openFds().length, before);
    } finally {
      closeAll(r, ...senders);
    }
  });

  it('Unix datagrams one by one: one over maxMessageSize (over 64 KiB) ends the batch, is discarded with its descriptors, the rest follow', () => {
    const r = bind(abstract('over'), { maxMessageSize: 80_000 });
    const s = bind(abstract('over-sender'));
    const t = bind(abstract('over-sender2'));
    const before = openFds().length;
    try {
      const to = r.localAddress!;
      assert.equal(s.trySend('small', { to }), true);
      assert.equal(s.trySend(Buffer.alloc(80_000, 7), { to, fds: [0] }), true);
      assert.equal(t.trySend(Buffer.alloc(90_000), { to, fds: [0, 1] }), true);
      assert.equal(t.trySend('after', { to, fds: [2] }), true);
      const first = r.receiveManySync({ max: 10, timeout: 0 });
      assert.deepEqual(first.map((d) => [d.data.length, d.fds.length]), [[5, 0], [80_000, 1]]);
      assert.equal(first[1]!.data.equals(Buffer.alloc(80_000, 7)), true);
      throwsWith(() => r.receiveManySync({ timeout: 0 }), 'ERR_IPC_MESSAGE_TOO_LARGE', /90000-byte datagram .* discarded/);
      const last = r.tryReceiveMany();
      assert.deepEqual(last.map((d) => [d.data.toString(), d.fds.length, d.from]), [['after', 1, t.localAddress]]);
      for (const d of [...first, ...last]) for (const fd of d.fds) closeSync(fd);
      assert.equal(openFds().length, before);
    } finally {
      closeAll(r, s, t);
    }
  });

  it('Unix datagrams one by one, on a socket another process also reads in batches: each datagram arrives whole once, or is reported lost', async () => {
    const r = bind(abstract('shared-big'));
    const s = bind(abstract('shared-big-sender'));
    const to = r.localAddress!;
    // The other reader: batches until the stop datagram; it prints what it got whole, and the cuts it was told of.
    const reader = otherReader(r, [
      `import { DatagramSocket, IpcError } from ${JSON.stringify(INDEX)};`,
      'const sock = DatagramSocket.fromFd(3);',
      'let got = 0, cut = 0, bad = 0;',
      'for (let done = false; !done;) {',
      '  let batch;',
      '  try { batch = await sock.receiveMany({ max: 64 }); }',
      "  catch (err) { if (err instanceof IpcError && err.code === 'ERR_IPC_TRUNCATED') { cut++; continue; } throw err; }",
      '  for (const d of batch) {',
      "    if (d.data.length === 4 && d.data.toString() === 'stop') { done = true; continue; }",
      '    if (d.data.length !== 10 && d.data.length !== 96000 || d.data.some((b) => b !== d.data[0])) bad++; else got++;',
      '  }',
      '}',
      'process.stdout.write(JSON.stringify({ got, cut, bad }));',
      'sock.close();',
    ]);
    let mine = 0;
    let cut = 0;
    const take = (): void => {
      for (;;) {
        let batch: Datagram[];
        try {
          batch = r.tryReceiveMany({ max: 64 });
        } catch (err) {
          assert.ok(err instanceof IpcError && err.code === 'ERR_IPC_TRUNCATED', String(err));
          assert.match(err.message, /was cut and lost: another process or thread took the datagram/);
          cut++;
          continue;
        }
        if (batch.length === 0) return;
        for (const d of batch) {
          assert.ok((d.data.length === 10 || d.data.length === 96_000) && d.data.every((b) => b === d.data[0]), `a datagram of ${d.data.length} bytes whole`);
          mine++;
        }
      }
    };
    try {
      const total = 2_000;
      for (let i = 0; i < total; i++) {
        await s.send(Buffer.alloc(i % 2 === 0 ? 10 : 96_000, i % 251), { to });
        if (i % 16 === 0) take();
      }
      take();
      await s.send('stop', { to });
      const theirs = JSON.parse(await reader.printed()) as { got: number; cut: number; bad: number };
      assert.equal(theirs.bad, 0, 'no datagram arrived cut or mixed in the other reader');
      assert.equal(mine + theirs.got + cut + theirs.cut, total, `${mine} here, ${JSON.stringify(theirs)} there, ${cut} reported lost here`);
    } finally {
      closeAll(r, s);
    }
  });

  it('a lone reader never cuts a datagram that arrives while it waits: receive and receiveMany measure the next one first', async (t) => {
    // Datagrams past the 256 KiB a single receive holds at hand; a sender makes them at most twice net.core.wmem_max.
    const wmemMax = Number(readFileSync('/proc/sys/net/core/wmem_max', 'utf8'));
    const size = Math.min(300_000, 2 * wmemMax - 4096);
    if (size <= 256 * 1024) {
      t.skip(`net.core.wmem_max ${wmemMax}: no sender can make a datagram past 256 KiB`);
      return;
    }
    // The reader spins long, so that most datagrams come while it spins (between its measure and its receive).
    const r = bind(abstract('lone'), { spin: 10_000 });
    const count = 40;
    // A worker thread sends them one at a time, a millisecond apart, each of its own size and fill.
    const worker = new Worker([
      `const { bind } = await import(${JSON.stringify(INDEX)});`,
      'const { workerData: { to, name, size, count, wmemMax } } = await import("node:worker_threads");',
      'const s = bind(name, { sendBuffer: wmemMax });',
      'for (let i = 0; i < count; i++) {',
      '  const data = Buffer.alloc(i % 2 === 0 ? size - i : 10 + i, i);',
      // ENOBUFS: the kernel found no memory for so large a datagram right now; the next try may.
      '  for (;;) { try { s.sendSync(data, { to }); break; } catch (err) { if (err.errno !== "ENOBUFS" && err.errno !== -105) throw err; await new Promise((w) => setTimeout(w, 5)); } }',
      '  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);',
      '}',
      's.close();',
    ].join('\n'), { eval: true, workerData: { to: r.localAddress, name: abstract('lone-sender'), size, count, wmemMax } });
    const failed = new Promise((_, reject) => worker.once('error', reject));
    failed.catch(() => undefined);
    try {
      const got: Buffer[] = [];
      while (got.length < count) {
        const ms = { timeout: 10_000 };
        if (got.length % 3 === 0) got.push(await Promise.race([r.receive(ms), failed as never]).then((d) => d.data));
        else got.push(...(await Promise.race([r.receiveMany({ max: 8, ...ms }), failed as never])).map((d) => d.data));
      }
      got.forEach((data, i) => {
        const length = i % 2 === 0 ? size - i : 10 + i;
        assert.equal(data.length, length, `datagram ${i}`);
        assert.equal(data.every((b) => b === i), true, `datagram ${i} intact`);
      });
    } finally {
      await worker.terminate();
      r.close();
    }
  });

  it('Unix datagrams: sendMany waits for room in the receiver\'s queue; a timeout resolves with exactly what went', async () => {
    const r = bind(abstract('full'), { maxMessageSize: 64 });
    const s = bind(abstract('sender'));
    try {
      const to = r.localAddress!;
      const fit = s.trySendMany(words(5000), { to });
      assert.ok(fit > 0 && fit < 5000, `the receiver's queue takes some of 5000, not ${fit}`);
      await rejectsWith(() => s.sendMany(['x'], { to, timeout: 20 }), 'ERR_IPC_TIMEOUT');
      const waiting = s.sendMany(words(3, fit), { to });
      assert.ok(await stillPending(waiting, 30));
      const first = r.receiveManySync({ max: 5 });
      assert.deepEqual(texts(first), words(5));
      assert.equal(await waiting, 3);
      const all = [...texts(first)];
      for (let batch = r.tryReceiveMany({ max: 1024 }); batch.length > 0; batch = r.tryReceiveMany({ max: 1024 })) all.push(...texts(batch));
      assert.deepEqual(all, words(fit + 3));
      // Full again: a timeout part-way reports exactly what went.
      const again = s.trySendMany(words(5000), { to });
      r.receiveManySync({ max: 2 });
      assert.equal(await s.sendMany(words(10), { to, timeout: 30 }), 2);
      let total = 0;
      for (let batch = r.tryReceiveMany({ max: 1024 }); batch.length > 0; batch = r.tryReceiveMany({ max: 1024 })) total += batch.length;
      assert.equal(total, again - 2 + 2);
    } finally {
      closeAll(r, s);
    }
  });

  it('the native batch receives refuse arrays they cannot write into, before any system call', () => {
    const r = bind(abstract('native-args'));
    try {
      const scratch = Buffer.alloc(4096);
      const from = Buffer.alloc(128 * 4);
      const fds = new Int32Array(253 * 4);
      const detached = new Uint32Array(8);
      structuredClone(detached.buffer, { transfer: [detached.buffer] });
      const bad: [unknown, unknown, unknown][] = [
        [new Uint32Array(0), from, fds], [5, from, fds], [new Uint8Array(64), from, fds], [detached, from, fds],
        [new Uint32Array(9), 'from', fds], [new Uint32Array(9), from, new Uint32Array(253 * 4)], [new Uint32Array(9), from, null],
      ];
      for (const [io, f, out] of bad) {
        assert.equal(native.recvDatagrams(r.fd, scratch, io as Uint32Array, f as Uint8Array, out as Int32Array, 1 << 20, 0), E_RANGE);
        assert.equal(native.recvMmsg(r.fd, scratch, 1024, io as Uint32Array, f as Uint8Array, out as Int32Array, 0), E_RANGE);
      }
      assert.equal(native.recvDatagrams(r.fd, 'scratch' as never, new Uint32Array(9), from, fds, 1 << 20, 0), E_RANGE);
    } finally {
      r.close();
    }
  });

  it('refuses bad datagram batches', async () => {
    const s = bind('udp://127.0.0.1:0');
    try {
      throwsWith(() => s.trySendMany(['x'], {} as never), 'ERR_IPC_INVALID_ARGUMENT', /to/);
      throwsWith(() => s.sendManySync(['x'], { to: 'udp://127.0.0.1:9', fds: [0] } as never), 'ERR_IPC_INVALID_ARGUMENT', /fds/);
      throwsWith(() => s.sendManySync(['x'], { to: 'unix-dgram:@x' }), 'ERR_IPC_INVALID_ADDRESS');
      await rejectsWith(() => s.sendMany('x' as never, { to: 'udp://127.0.0.1:9' }), 'ERR_IPC_INVALID_ARGUMENT', /array/);
      throwsWith(() => s.tryReceiveMany({ max: 2000 }), 'ERR_IPC_INVALID_ARGUMENT', /max/);
    } finally {
      s.close();
    }
  });
});

describe('socket receives into a buffer of yours', () => {
  for (const type of ['stream', 'seqpacket'] as const) {
    it(`${type}: receiveInto copies each message into the target, with its descriptors; a longer one stays for a larger target`, async () => {
      const [a, b] = socketPair({ type, codec: 'json' });
      const target = Buffer.alloc(8);
      try {
        a.sendSync('short');
        a.sendSync('a longer message');
        await a.sendFds([0], 7);
        assert.deepEqual(b.receiveIntoSync(target), { length: 7, fds: [] });
        assert.equal(target.subarray(0, 7).toString(), '"short"');
        throwsWith(() => b.tryReceiveInto(target), 'ERR_IPC_MESSAGE_TOO_LARGE', /is 18 bytes, more than the 8 of the target; it stays/);
        const big = Buffer.alloc(64);
        assert.equal((await b.receiveInto(big)).length, 18);
        assert.equal(big.subarray(0, 18).toString(), '"a longer message"');
        const withFd = b.receiveIntoSync(target);
        assert.equal(withFd.length, 1);
        assert.equal(withFd.fds.length, 1);
        closeSync(withFd.fds[0]!);
        assert.equal(b.tryReceiveInto(target), undefined);
        const waiting = b.receiveInto(target);
        assert.ok(await stillPending(waiting, 30));
        a.sendSync(null);
        assert.deepEqual(await waiting, { length: 4, fds: [] });
        throwsWith(() => b.receiveIntoSync('x' as never), 'ERR_IPC_INVALID_ARGUMENT', /target/);
        a.close();
        throwsWith(() => b.receiveIntoSync(target), 'ERR_IPC_PEER_CLOSED');
      } finally {
        closeAll(a, b);
      }
    });
  }

  it('datagrams: receiveInto with the sender; a longer one stays queued for a larger target; one over maxMessageSize is discarded', async () => {
    const r = bind(abstract('into'), { maxMessageSize: 100 });
    const s = bind(abstract('into-sender'));
    try {
      const to = r.localAddress!;
      s.sendSync('hello', { to });
      s.sendSync(Buffer.alloc(50, 1), { to });
      s.sendSync(Buffer.alloc(101, 2), { to });
      s.sendSync('after', { to, fds: [0] });
      const target = Buffer.alloc(10);
      assert.deepEqual(r.receiveIntoSync(target), { length: 5, from: s.localAddress, fds: [] });
      assert.equal(target.subarray(0, 5).toString(), 'hello');
      throwsWith(() => r.tryReceiveInto(target), 'ERR_IPC_MESSAGE_TOO_LARGE', /is 50 bytes, more than the 10 of the target; it stays/);
      const big = Buffer.alloc(200);
      assert.equal((await r.receiveInto(big)).length, 50);
      throwsWith(() => r.receiveIntoSync(big), 'ERR_IPC_MESSAGE_TOO_LARGE', /101-byte datagram .* discarded/);
      const last = r.receiveIntoSync(target);
      assert.deepEqual([last.length, last.from, last.fds.length], [5, s.localAddress, 1]);
      closeSync(last.fds[0]!);
      assert.equal(r.tryReceiveInto(target), undefined);
    } finally {
      closeAll(r, s);
    }
  });

  it('datagrams: receiveInto on a socket another process also reads reports no datagram lost nor cut', async () => {
    const r = bind(abstract('shared'), { maxMessageSize: 1000 });
    const s = bind(abstract('shared-sender'));
    const to = r.localAddress!;
    // The other reader: batches until the stop datagram, then it reports what it got.
    const reader = otherReader(r, [
      `import { DatagramSocket } from ${JSON.stringify(INDEX)};`,
      'const sock = DatagramSocket.fromFd(3, { maxMessageSize: 1000 });',
      'let got = 0;',
      'for (;;) {',
      '  const batch = await sock.receiveMany({ max: 1 });',
      "  if (batch.some((d) => d.data.length === 4 && d.data.toString() === 'stop')) break;",
      '  got += batch.length;',
      '}',
      'process.stdout.write(String(got));',
      'sock.close();',
    ]);
    const target = Buffer.alloc(100);
    const small = Buffer.alloc(10, 1);
    const large = Buffer.alloc(500, 2);
    let mine = 0;
    let tooLarge = 0;
    const take = (): void => {
      for (;;) {
        try {
          if (r.tryReceiveInto(target) === undefined) return;
          mine++;
        } catch (err) {
          assert.ok(err instanceof IpcError && err.code === 'ERR_IPC_MESSAGE_TOO_LARGE', String(err));
          assert.match(err.message, /500 bytes, more than the 100 of the target; it stays/);
          tooLarge++;
          // It stays: a large enough target takes it.
          assert.equal(r.receiveIntoSync(Buffer.alloc(1000), { timeout: 2_000 }).length, 500);
          mine++;
        }
      }
    };
    try {
      const total = 20_000;
      for (let i = 0; i < total; i++) {
        await s.send(i % 2 === 0 ? small : large, { to });
        if (i % 8 === 0) take();
      }
      take();
      await s.send('stop', { to });
      const printed = await reader.printed();
      assert.equal(mine + Number(printed), total, `${mine} here, ${printed} in the other reader (${tooLarge} too large for the small target)`);
    } finally {
      closeAll(r, s);
    }
  });
});


describe('socket batch cleanup', () => {
  it('leaves no descriptor and no child process behind', () => assertNothingLeft(fdBaseline));
});
