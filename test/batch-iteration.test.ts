/**
 * Async iteration over batches: pipes, connections and a channel's single
 * consumer take what is there per step and hand it out one message at a
 * time; a loop that stops early leaves the messages it did not reach to
 * the next receive of the handle, in order, with their descriptors. A
 * shared channel side, queues and datagram sockets stay one message per
 * step (several readers share them).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, fstatSync } from 'node:fs';
import { Channel, IpcError, pipe, socketPair } from '../src/index.js';
import { refusingCodec } from './helpers/assert.js';
import { ObjectTracker } from './helpers/objects.js';
import { assertNothingLeft, fdSnapshot } from './helpers/leaks.js';

/** The descriptors open before any test: the file must leave no other behind. */
const fdBaseline = fdSnapshot();

const objects = new ObjectTracker();
after(() => objects.cleanup());

describe('async iteration in batches', () => {
  it('pipe: a loop that breaks leaves the rest of its batch to the next receive; a refusal ends a loop, the next goes on', async () => {
    const { readEnd, writeEnd } = pipe({ codec: refusingCodec() });
    try {
      writeEnd.sendManySync(['a', 'b', 'c', 'd', 'bad', 'e']);
      const seen: string[] = [];
      for await (const value of readEnd) {
        seen.push(value);
        if (seen.length === 2) break;
      }
      assert.deepEqual(seen, ['a', 'b']);
      assert.equal(readEnd.receiveSync()?.data, 'c');
      const more: string[] = [];
      await assert.rejects(async () => {
        for await (const value of readEnd) more.push(value);
      }, (err: unknown) => err instanceof IpcError && err.code === 'ERR_IPC_CODEC' && /refused bad/.test(err.message));
      assert.deepEqual(more, ['d']);
      writeEnd.close();
      const rest: string[] = [];
      for await (const value of readEnd) rest.push(value);
      assert.deepEqual(rest, ['e']);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('connection: the messages a loop did not reach keep their descriptors for the next receive; the peer\'s close ends a loop quietly', async () => {
    const [a, b] = socketPair({ type: 'seqpacket' });
    try {
      await a.send('one');
      await a.sendFds([0], 'two');
      await a.sendFds([1, 2], 'three');
      // Each packet is read whole: the loop's first step takes all three.
      for await (const m of b) {
        assert.equal(m.data.toString(), 'one');
        break;
      }
      const two = b.receiveSync();
      assert.deepEqual([two.data.toString(), two.fds.length], ['two', 1]);
      const three = b.receiveSync();
      assert.deepEqual([three.data.toString(), three.fds.length], ['three', 2]);
      // Each is a live copy of what was sent.
      assert.deepEqual([...two.fds, ...three.fds].map((fd) => fstatSync(fd).ino), [0, 1, 2].map((fd) => fstatSync(fd).ino));
      for (const fd of [...two.fds, ...three.fds]) closeSync(fd);
      a.sendSync('last');
      a.close();
      const rest: string[] = [];
      for await (const m of b.messages()) rest.push(m.data.toString());
      assert.deepEqual(rest, ['last']);
    } finally {
      a.close();
      b.close();
    }
  });

  it('channel: a single consumer\'s loop goes in batches and leaves the rest to the handle; a shared side\'s loop takes one per step', async () => {
    const single = objects.shmName('iter-single');
    const p = Channel.create(single, { capacity: 4096, codec: 'json' });
    const c = Channel.open(single, { codec: 'json' });
    const shared = objects.shmName('iter-shared');
    const sp = Channel.create(shared, { capacity: 4096, consumers: 'multi' });
    const c1 = Channel.open(shared);
    const c2 = Channel.open(shared);
    try {
      p.sendManySync([1, 2, 3, 4]);
      for await (const m of c) {
        assert.equal(m.data, 1);
        break;
      }
      assert.equal(p.stats().depth, 0, 'the batch left the ring');
      assert.deepEqual(c.tryReceiveMany().map((m) => m.data), [2, 3, 4]);
      sp.sendManySync(['x', 'y']);
      for await (const m of c1) {
        assert.equal(m.data.toString(), 'x');
        break;
      }
      assert.equal(c2.tryReceive()?.data.toString(), 'y', 'the other consumer finds the next one in the ring');
    } finally {
      for (const ch of [p, c, sp, c1, c2]) ch.close();
      Channel.unlink(single);
      Channel.unlink(shared);
    }
  });
});

describe('batch iteration cleanup', () => {
  it('leaves no descriptor and no child process behind', () => assertNothingLeft(fdBaseline));
});
