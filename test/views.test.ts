/**
 * A Uint8Array whose `length` is not the number of bytes it spans: an own
 * `length` property, or a subclass's getter. JavaScript sizes frames,
 * headers and copies by `length`; the addon reads and writes the memory as
 * it really is. Every mechanism refuses such a view with
 * ERR_IPC_INVALID_ARGUMENT (a codec that returns one: ERR_IPC_CODEC) before
 * anything is written or taken, so nothing is lost and no peer sees a frame
 * whose header disagrees with its bytes.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { Channel, type Codec, IpcError, MessageBatch, PosixMessageQueue, PosixSharedMemory, SysvMessageQueue, bind, connect, pipe, serve, socketPair } from '../src/index.js';
import { rejectsWith, stillPending, throwsWith } from './helpers/assert.js';
import { ObjectTracker } from './helpers/objects.js';

const tracker = new ObjectTracker();
after(() => {
  tracker.cleanup();
  assert.deepEqual(tracker.leftovers(), []);
});

/** `bytes` bytes of `fill` whose own `length` property says `says`. */
function ownLength(bytes: number, says: number, fill = 0x61): Uint8Array {
  const view = new Uint8Array(bytes).fill(fill);
  Object.defineProperty(view, 'length', { value: says });
  return view;
}

/** A subclass whose `length` getter says `says` whatever it spans. */
function getterLength(bytes: number, says: number, fill = 0x61): Uint8Array {
  class Shorter extends Uint8Array {
    override get length(): number {
      return says;
    }
  }
  return new Shorter(bytes).fill(fill);
}

/**
 * A subclass whose `length` is honest for its first `honest` reads, then says `says`: a check that reads it once
 * passes, and any later read (for a header, an allocation, a bound) lies.
 */
function turncoat(bytes: Uint8Array, says: number, honest = 1): Uint8Array {
  let reads = 0;
  class Turncoat extends Uint8Array {
    override get length(): number {
      return reads++ < honest ? super.length : says;
    }
  }
  const view = new Turncoat(bytes.length);
  view.set(bytes);
  return view;
}

/** A view over a resizable ArrayBuffer (ES2024; Node 20 has it, the project's TypeScript lib does not name it). */
function resizable(bytes: number, fill: number): { view: Uint8Array; resize: (n: number) => void } {
  const Resizable = ArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void };
  const buffer = new Resizable(bytes, { maxByteLength: bytes });
  return { view: new Uint8Array(buffer).fill(fill), resize: (n) => buffer.resize(n) };
}

const LIE = /must be a Uint8Array whose length is the number of bytes it spans; got a view of (\d+) bytes whose length says (\d+)/;

/** Each way of lying, as [label, a view of `bytes` bytes that says `says`]. */
function liars(bytes: number, says: number): [string, Uint8Array][] {
  return [['own property', ownLength(bytes, says)], ['subclass getter', getterLength(bytes, says)]];
}

describe('a Uint8Array whose length is not the bytes it spans', () => {
  it('a pipe refuses it to every write and read, and what the pipe holds stays whole', async () => {
    const { readEnd, writeEnd } = pipe();
    try {
      writeEnd.writeMessageSync('before');
      for (const [, view] of [...liars(8, 4), ...liars(4, 8)]) {
        throwsWith(() => writeEnd.writeMessageSync(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        await rejectsWith(() => writeEnd.writeMessage(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        throwsWith(() => writeEnd.writeSync(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        throwsWith(() => writeEnd.tryWrite(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        throwsWith(() => writeEnd.writevSync([Buffer.from('x'), view]), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        throwsWith(() => writeEnd.sendManySync([view]), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        throwsWith(() => new MessageBatch({ bytes: 64, messages: 4 }).push(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
      }
      for (const [, view] of liars(4, 64)) {
        throwsWith(() => readEnd.readIntoSync(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        await rejectsWith(() => readEnd.readInto(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        throwsWith(() => readEnd.readvSync([Buffer.alloc(1), view]), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        assert.deepEqual([...view.subarray(0, 4)], [0x61, 0x61, 0x61, 0x61]);
      }
      writeEnd.writeMessageSync('after');
      assert.equal(readEnd.readMessageSync({ timeout: 5000 })?.toString(), 'before');
      assert.equal(readEnd.readMessageSync({ timeout: 5000 })?.toString(), 'after');
      assert.equal(readEnd.tryRead(), undefined);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('the error names both figures', () => {
    const { readEnd, writeEnd } = pipe();
    try {
      const err = throwsWith(() => writeEnd.writeMessageSync(ownLength(8, 4)), 'ERR_IPC_INVALID_ARGUMENT', LIE);
      assert.deepEqual(LIE.exec(err.message)?.slice(1), ['8', '4']);
      assert.match(err.message, /new Uint8Array\(view\.buffer, view\.byteOffset, view\.byteLength\)/);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('a stream socket keeps the message a lying target was refused for, for the next receive', async () => {
    for (const type of ['stream', 'seqpacket'] as const) {
      const [a, b] = socketPair({ type });
      try {
        for (const [, view] of liars(8, 4)) {
          throwsWith(() => a.sendSync(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
          await rejectsWith(() => a.send(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
          throwsWith(() => a.sendManySync([Buffer.from('x'), view]), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        }
        a.sendSync('sixteen bytes!!!');
        for (const [, view] of liars(4, 64)) {
          throwsWith(() => b.receiveIntoSync(view, { timeout: 5000 }), 'ERR_IPC_INVALID_ARGUMENT', LIE);
          await rejectsWith(() => b.receiveInto(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
          throwsWith(() => b.tryReceiveInto(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        }
        const target = Buffer.alloc(64);
        assert.equal(b.receiveIntoSync(target, { timeout: 5000 }).length, 16, type);
        assert.equal(target.subarray(0, 16).toString(), 'sixteen bytes!!!', type);
        assert.equal(b.tryReceive(), undefined, type);
      } finally {
        a.close();
        b.close();
      }
    }
  });

  it('a datagram socket refuses it to send and receiveInto, and the datagram stays', async () => {
    const label = (s: string): string => `unix-dgram:@ipckit-views-${s}-${process.pid}`;
    const r = bind(label('r'));
    const s = bind(label('s'));
    try {
      for (const [, view] of liars(8, 4)) {
        throwsWith(() => s.sendSync(view, { to: r.address }), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        throwsWith(() => s.sendManySync([view], { to: r.address }), 'ERR_IPC_INVALID_ARGUMENT', LIE);
      }
      s.sendSync('a datagram', { to: r.address });
      for (const [, view] of liars(4, 64)) {
        throwsWith(() => r.receiveIntoSync(view, { timeout: 5000 }), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        await rejectsWith(() => r.receiveInto(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
      }
      const target = Buffer.alloc(64);
      assert.equal(r.receiveIntoSync(target, { timeout: 5000 }).length, 10);
      assert.equal(target.subarray(0, 10).toString(), 'a datagram');
    } finally {
      r.close();
      s.close();
    }
  });

  it('a channel refuses it to send and receiveInto, and the record stays', async () => {
    const ch = Channel.create(tracker.shmName('views'), { capacity: 4096 });
    try {
      for (const [, view] of liars(8, 4)) {
        throwsWith(() => ch.sendSync(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        throwsWith(() => ch.sendManySync([view]), 'ERR_IPC_INVALID_ARGUMENT', LIE);
      }
      ch.sendSync(Buffer.from('a record'));
      for (const [, view] of liars(4, 64)) {
        throwsWith(() => ch.receiveIntoSync(view, { timeout: 5000 }), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        await rejectsWith(() => ch.receiveInto(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        throwsWith(() => ch.tryReceiveInto(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
      }
      const target = Buffer.alloc(64);
      assert.equal(ch.receiveIntoSync(target, { timeout: 5000 }), 8);
      assert.equal(target.subarray(0, 8).toString(), 'a record');
    } finally {
      ch.close();
      Channel.unlink(ch.address);
    }
  });

  it('shared memory refuses it to write and readInto, and the segment keeps its bytes', () => {
    const name = tracker.shmName('views');
    const shm = PosixSharedMemory.create(name, { size: 64 });
    try {
      shm.write('segment bytes');
      for (const [, view] of liars(8, 4)) throwsWith(() => shm.write(view, 0), 'ERR_IPC_INVALID_ARGUMENT', LIE);
      for (const [, view] of liars(4, 64)) {
        throwsWith(() => shm.readInto(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        assert.deepEqual([...view.subarray(0, 4)], [0x61, 0x61, 0x61, 0x61]);
      }
      assert.equal(shm.read(0, 13).toString(), 'segment bytes');
    } finally {
      shm.close();
      PosixSharedMemory.unlink(name);
    }
  });

  it('one whose length is honest only to its first reads: refused, or sent as its bytes; no peer gets other bytes', async () => {
    const abc = Buffer.from('abc');
    /** Runs a send of a turncoat: true if it went, false if refused (ERR_IPC_INVALID_ARGUMENT); anything else fails. */
    const went = async (send: () => unknown): Promise<boolean> => {
      try {
        await send();
        return true;
      } catch (err) {
        assert.ok(err instanceof IpcError && err.code === 'ERR_IPC_INVALID_ARGUMENT' && LIE.test(err.message), String(err));
        return false;
      }
    };
    for (let honest = 1; honest <= 6; honest++) {
      for (const says of [1, 60_000]) {
        const label = `honest ${honest}, says ${says}`;
        const { readEnd, writeEnd } = pipe();
        const [a, b] = socketPair();
        const ch = Channel.create(tracker.shmName('turncoat'), { capacity: 4096 });
        try {
          // A frame's header, its allocation and its copy all agree with the 3 bytes, or nothing is written.
          const piped = await went(() => writeEnd.sendSync(turncoat(abc, says, honest)));
          writeEnd.sendSync(Buffer.from('next'));
          if (piped) assert.equal(readEnd.receiveSync({ timeout: 5000 })!.data.toString(), 'abc', `pipe, ${label}`);
          assert.equal(readEnd.receiveSync({ timeout: 5000 })!.data.toString(), 'next', `pipe, ${label}`);
          const sent = [await went(() => a.sendSync(turncoat(abc, says, honest))), await went(() => a.send(turncoat(abc, says, honest)))];
          a.sendSync('next');
          for (const s of sent) if (s) assert.equal(b.receiveSync({ timeout: 5000 }).data.toString(), 'abc', `socket, ${label}`);
          assert.equal(b.receiveSync({ timeout: 5000 }).data.toString(), 'next', `socket, ${label}`);
          if (await went(() => ch.sendSync(turncoat(abc, says, honest)))) {
            assert.equal(ch.receiveSync({ timeout: 5000 }).data.toString(), 'abc', `channel, ${label}`);
          }
          assert.equal(ch.tryReceive(), undefined);
          const batch = new MessageBatch({ bytes: 64, messages: 4 });
          if (await went(() => batch.push(turncoat(abc, says, honest)))) {
            assert.deepEqual([batch.count, [...batch.lengths.subarray(0, 1)], Buffer.from(batch.at(0)).toString()], [1, [3], 'abc'], label);
          }
          // A receive target that says more than its 4 bytes: the 10-byte message does not fit, and stays.
          a.sendSync('HELLO12345');
          assert.throws(() => b.receiveIntoSync(turncoat(new Uint8Array(4), 64, honest), { timeout: 5000 }),
            (err: unknown) => err instanceof IpcError && (err.code === 'ERR_IPC_MESSAGE_TOO_LARGE' || (err.code === 'ERR_IPC_INVALID_ARGUMENT' && LIE.test(err.message))));
          assert.equal(b.receiveSync({ timeout: 5000 }).data.toString(), 'HELLO12345', label);
        } finally {
          readEnd.close();
          writeEnd.close();
          a.close();
          b.close();
          ch.close();
          Channel.unlink(ch.address);
        }
      }
    }
  });

  it('shared memory asks the engine which buffer a target views: a buffer property of its own cannot hide a read-only mapping', () => {
    const name = tracker.shmName('views-ro');
    const rw = PosixSharedMemory.create(name, { size: 4096 });
    const ro = PosixSharedMemory.open(name, { readOnly: true });
    try {
      const target = new Uint8Array(ro.buffer, 0, 16);
      Object.defineProperty(target, 'buffer', { value: new ArrayBuffer(16) });
      throwsWith(() => rw.readInto(target), 'ERR_IPC_READ_ONLY', /mapped read-only/);
      class Disguised extends Uint8Array {
        override get buffer(): ArrayBuffer {
          return new ArrayBuffer(16);
        }
      }
      throwsWith(() => rw.readInto(new Disguised(ro.buffer as unknown as ArrayBuffer, 0, 16)), 'ERR_IPC_READ_ONLY', /mapped read-only/);
    } finally {
      ro.close();
      rw.close();
      PosixSharedMemory.unlink(name);
    }
  });

  it('a revoked Proxy is refused with ERR_IPC_INVALID_ARGUMENT, its description included', () => {
    const { proxy, revoke } = Proxy.revocable(new Uint8Array(3), {});
    revoke();
    const [a, b] = socketPair();
    try {
      throwsWith(() => a.sendSync(proxy), 'ERR_IPC_INVALID_ARGUMENT', /got a revoked proxy/);
      throwsWith(() => new MessageBatch({ bytes: 8, messages: 1 }).push(proxy), 'ERR_IPC_INVALID_ARGUMENT', /got a revoked proxy/);
      throwsWith(() => b.tryReceiveInto(proxy), 'ERR_IPC_INVALID_ARGUMENT', /got a revoked proxy/);
    } finally {
      a.close();
      b.close();
    }
  });

  it('a stream socket send whose buffer shrinks while it waits fails; queued, alone, and the next message goes whole', async () => {
    const [a, b] = socketPair({ highWaterMark: 64 << 20 });
    try {
      const filler = a.send(Buffer.alloc(4 << 20, 0x46));
      const { view, resize } = resizable(1000, 0x41);
      const shrunk = a.send(view);
      shrunk.catch(() => {});
      const next = a.send(Buffer.from('hello'));
      resize(10);
      assert.equal((await b.receive({ timeout: 10_000 })).data.length, 4 << 20);
      assert.equal((await b.receive({ timeout: 10_000 })).data.toString(), 'hello');
      await filler;
      await next;
      await rejectsWith(() => shrunk, 'ERR_IPC_INVALID_ARGUMENT', /changed while the call waited/);
      assert.equal(b.tryReceive(), undefined);
    } finally {
      a.close();
      b.close();
    }
  });

  it('a stream socket send whose buffer shrinks after part of its frame went closes the connection, as a send cut short', async () => {
    const [a, b] = socketPair({ highWaterMark: 64 << 20 });
    try {
      const { view, resize } = resizable(4 << 20, 0x42);
      const sending = a.send(view);
      sending.catch(() => {});
      // The socket takes part of 4 MiB, and the send waits for room (a partial frame is out).
      assert.ok(await stillPending(sending, 20));
      resize(10);
      const reading = b.receive({ timeout: 10_000 });
      reading.catch(() => {});
      await rejectsWith(() => sending, 'ERR_IPC_INVALID_ARGUMENT', /Part of the message had been written .*so the connection was closed/);
      assert.equal(a.closed, true);
      await rejectsWith(() => reading, 'ERR_IPC_FRAMING');
    } finally {
      a.close();
      b.close();
    }
  });

  it('a typed array of another kind given Uint8Array\'s prototype is no Uint8Array: refused before anything is taken', () => {
    const disguised = (): Uint8Array[] => {
      const int8 = new Int8Array([104, 105]);
      const float64 = new Float64Array(2);
      Object.defineProperty(float64, 'length', { value: 16 });
      const view = new DataView(new ArrayBuffer(2));
      for (const v of [int8, float64, view]) Object.setPrototypeOf(v, Uint8Array.prototype);
      return [int8, float64, view] as unknown as Uint8Array[];
    };
    const NOT = /must be a Uint8Array/;
    const { readEnd, writeEnd } = pipe();
    const [a, b] = socketPair();
    try {
      for (const v of disguised()) {
        throwsWith(() => writeEnd.writeSync(v), 'ERR_IPC_INVALID_ARGUMENT', NOT);
        throwsWith(() => a.sendSync(v), 'ERR_IPC_INVALID_ARGUMENT', NOT);
        throwsWith(() => new MessageBatch({ bytes: 64, messages: 4 }).push(v), 'ERR_IPC_INVALID_ARGUMENT', NOT);
      }
      a.sendSync('HELLO');
      for (const v of disguised()) throwsWith(() => b.receiveIntoSync(v, { timeout: 5000 }), 'ERR_IPC_INVALID_ARGUMENT', NOT);
      assert.equal(b.receiveSync({ timeout: 5000 }).data.toString(), 'HELLO');
    } finally {
      readEnd.close();
      writeEnd.close();
      a.close();
      b.close();
    }
  });

  it('a scattered read sizes its targets by their memory: the bytes read ahead are not lost', () => {
    const { readEnd, writeEnd } = pipe();
    try {
      writeEnd.sendSync('A');
      writeEnd.sendSync('BBBBBBBBBB');
      // The first receive reads ahead the second frame (4 + 10 bytes).
      assert.equal(readEnd.receiveSync({ timeout: 5000 })!.data.toString(), 'A');
      const target = turncoat(new Uint8Array(4), 100, 1);
      let got: number | null = 0;
      try {
        got = readEnd.readvSync([target], { timeout: 5000 });
      } catch (err) {
        assert.ok(err instanceof IpcError && err.code === 'ERR_IPC_INVALID_ARGUMENT', String(err));
      }
      writeEnd.close();
      const rest: Buffer[] = [];
      for (let c; (c = readEnd.readSync({ timeout: 5000 })) !== null;) rest.push(c);
      const read = got === null ? 0 : got;
      assert.deepEqual(Buffer.concat([Buffer.from(target.buffer, target.byteOffset, read), ...rest]),
        Buffer.concat([Buffer.from([0, 0, 0, 10]), Buffer.alloc(10, 0x42)]));
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('queues check their limits against the memory: a message over them is refused, never left to wait', () => {
    const key = tracker.key();
    const q = SysvMessageQueue.create(key, { maxBytes: 100 });
    const name = tracker.name();
    const p = PosixMessageQueue.create(name, { maxMessages: 2, maxMessageSize: 16 });
    try {
      const refused = (fn: () => unknown): void => {
        assert.throws(fn, (err: unknown) => err instanceof IpcError &&
          (err.code === 'ERR_IPC_MESSAGE_TOO_LARGE' || (err.code === 'ERR_IPC_INVALID_ARGUMENT' && LIE.test(err.message))));
      };
      for (let honest = 1; honest <= 4; honest++) {
        refused(() => q.sendSync(1, turncoat(Buffer.alloc(200), 10, honest), { timeout: 60_000 }));
        refused(() => p.sendSync(turncoat(Buffer.alloc(32), 8, honest)));
      }
      p.sendSync('hello');
      for (let honest = 1; honest <= 4; honest++) throwsWith(() => p.receiveIntoSync(turncoat(new Uint8Array(4), 64, honest)), 'ERR_IPC_INVALID_ARGUMENT');
      assert.equal(p.receiveSync().data.toString(), 'hello');
    } finally {
      q.remove();
      p.close();
      PosixMessageQueue.unlink(name);
    }
  });

  it('a message send (datagram, seqpacket, POSIX queue) whose buffer is detached while it waits fails; the peer gets no empty message', async () => {
    const detach = (view: Uint8Array): void => {
      structuredClone(view.buffer, { transfer: [view.buffer as ArrayBuffer] });
    };
    const r = bind(`unix-dgram:@ipckit-views-detach-r-${process.pid}`);
    const s = bind(`unix-dgram:@ipckit-views-detach-s-${process.pid}`);
    const [a, b] = socketPair({ type: 'seqpacket' });
    const name = tracker.name();
    const q = PosixMessageQueue.create(name, { maxMessages: 1, maxMessageSize: 16 });
    try {
      const to = r.localAddress!;
      let queued = 0;
      while (s.trySend(`q${queued}`, { to })) queued++;
      let full = 0;
      while (a.trySend(Buffer.alloc(10_000))) full++;
      q.sendSync('fill');
      const views = [new Uint8Array(8).fill(0x5a), new Uint8Array(8).fill(0x5a), new Uint8Array(8).fill(0x5a)];
      const pending = [s.send(views[0]!, { to }), a.send(views[1]!), q.send(views[2]!)];
      for (const p of pending) p.catch(() => {});
      for (const p of pending) assert.ok(await stillPending(p, 20));
      for (const v of views) detach(v);
      for (let i = 0; i < queued; i++) assert.equal((await r.receive({ timeout: 5000 })).data.toString(), `q${i}`);
      for (let i = 0; i < full; i++) assert.equal((await b.receive({ timeout: 5000 })).data.length, 10_000);
      assert.equal(q.receiveSync().data.toString(), 'fill');
      for (const p of pending) await rejectsWith(() => p, 'ERR_IPC_INVALID_ARGUMENT', /changed while the call waited/);
      s.sendSync('after', { to });
      a.sendSync('after');
      q.sendSync('after');
      assert.equal((await r.receive({ timeout: 5000 })).data.toString(), 'after');
      assert.equal((await b.receive({ timeout: 5000 })).data.toString(), 'after');
      assert.equal(q.receiveSync().data.toString(), 'after');
    } finally {
      r.close();
      s.close();
      a.close();
      b.close();
      q.close();
      PosixMessageQueue.unlink(name);
    }
  });

  it('a sendMany whose message buffer is detached while it waits fails on every mechanism; no empty message goes', async () => {
    const detach = (view: Uint8Array): void => {
      structuredClone(view.buffer, { transfer: [view.buffer as ArrayBuffer] });
    };
    const messages = (): Uint8Array[] => [new Uint8Array(4).fill(0x41), new Uint8Array(4).fill(0x42)];
    const CHANGED = /changed while the call waited/;
    // Each case: a full object, a waiting sendMany, the detach, the object drained; nothing of the call arrives.
    const name = tracker.name();
    const q = PosixMessageQueue.create(name, { maxMessages: 1, maxMessageSize: 16 });
    const [sa, sb] = socketPair({ type: 'seqpacket' });
    const r = bind(`unix-dgram:@ipckit-views-many-r-${process.pid}`);
    const d = bind(`unix-dgram:@ipckit-views-many-s-${process.pid}`);
    const [ta, tb] = socketPair({ highWaterMark: 64 << 20 });
    const { readEnd, writeEnd } = pipe();
    try {
      q.sendSync('fill');
      const toQueue = messages();
      const queued = q.sendMany(toQueue);
      queued.catch(() => {});
      let full = 0;
      while (sa.trySend(Buffer.alloc(10_000))) full++;
      const toPacket = messages();
      const packets = sa.sendMany(toPacket);
      packets.catch(() => {});
      const to = r.localAddress!;
      let datagrams = 0;
      while (d.trySend(`q${datagrams}`, { to })) datagrams++;
      const toDatagram = messages();
      const sent = d.sendMany(toDatagram, { to });
      sent.catch(() => {});
      const filler = ta.send(Buffer.alloc(8 << 20));
      const toStream = messages();
      const framed = ta.sendMany(toStream);
      framed.catch(() => {});
      let pipeFull = 0;
      while (writeEnd.tryWrite(Buffer.alloc(65_536)) > 0) pipeFull++;
      const toPipe = messages();
      const piped = writeEnd.sendMany(toPipe);
      piped.catch(() => {});
      for (const p of [queued, packets, sent, framed, piped]) assert.ok(await stillPending(p, 20));
      for (const list of [toQueue, toPacket, toDatagram, toStream, toPipe]) detach(list[1]!);
      assert.equal(q.receiveSync().data.toString(), 'fill');
      for (let i = 0; i < full; i++) assert.equal((await sb.receive({ timeout: 5000 })).data.length, 10_000);
      for (let i = 0; i < datagrams; i++) assert.equal((await r.receive({ timeout: 5000 })).data.toString(), `q${i}`);
      assert.equal((await tb.receive({ timeout: 10_000 })).data.length, 8 << 20);
      await filler;
      for (let got = 0; got < pipeFull * 65_536;) got += readEnd.readSync({ maxBytes: 65_536, timeout: 5000 })!.length;
      for (const p of [queued, packets, sent, framed, piped]) await rejectsWith(() => p, 'ERR_IPC_INVALID_ARGUMENT', CHANGED);
      assert.equal(q.tryReceive(), undefined);
      assert.equal(sb.tryReceive(), undefined);
      assert.equal(r.tryReceive(), undefined);
      assert.equal(tb.tryReceive(), undefined);
      assert.equal(readEnd.tryReceive(), undefined);
    } finally {
      q.close();
      PosixMessageQueue.unlink(name);
      for (const sock of [sa, sb, r, d, ta, tb]) sock.close();
      readEnd.close();
      writeEnd.close();
    }
  });

  it('a server\'s raw replies (framing: bytes) are written as their memory, whatever their length says', async () => {
    const path = `${tmpdir()}/ipckit-views-${process.pid}.sock`;
    for (const says of [2, 100]) {
      const server = await serve(`unix:${path}`, () => turncoat(Buffer.from('0123456789'), says, 1), { strategy: 'event', framing: 'bytes' });
      try {
        const client = await connect(server.address);
        try {
          await client.write(Buffer.from('x'));
          const got: Buffer[] = [];
          while (Buffer.concat(got).length < 10) got.push((await client.read({ timeout: 10_000 }))!);
          assert.equal(Buffer.concat(got).toString(), '0123456789', `says ${says}`);
        } finally {
          client.close();
        }
      } finally {
        await server.close();
      }
    }
  });

  it('message queues refuse it to send; a codec that returns one fails with ERR_IPC_CODEC and sends nothing', () => {
    const name = tracker.name();
    const p = PosixMessageQueue.create(name, { maxMessages: 2, maxMessageSize: 16 });
    const key = tracker.key();
    const q = SysvMessageQueue.create(key);
    const lying: Codec<string> = { encode: () => ownLength(8, 4), decode: (bytes) => bytes.toString() };
    const pc = PosixMessageQueue.open(name, { codec: lying });
    try {
      for (const [, view] of liars(8, 4)) {
        throwsWith(() => p.sendSync(view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        throwsWith(() => q.sendSync(1, view), 'ERR_IPC_INVALID_ARGUMENT', LIE);
        throwsWith(() => p.sendManySync([view]), 'ERR_IPC_INVALID_ARGUMENT', LIE);
      }
      throwsWith(() => pc.sendSync('anything'), 'ERR_IPC_CODEC', /What the codec's encode\(\) for .* returned must be a Uint8Array whose length is/);
      assert.equal(p.tryReceive(), undefined);
      assert.equal(q.tryReceive(), undefined);
    } finally {
      pc.close();
      p.close();
      PosixMessageQueue.unlink(name);
      q.remove();
    }
  });
});
