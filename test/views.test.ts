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
import { Channel, type Codec, MessageBatch, PosixMessageQueue, PosixSharedMemory, SysvMessageQueue, bind, pipe, socketPair } from '../src/index.js';
import { rejectsWith, throwsWith } from './helpers/assert.js';
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
