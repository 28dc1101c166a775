/**
 * The batched calls of pipes and FIFOs: sendMany / receiveMany (framed
 * messages, many per native call), writev / readv (gathered bytes), in
 * their three forms. Exact counts when a timeout, an abort or close() ends
 * a batch part-way; atomic messages under concurrent writers; a message
 * cut inside closes the end as `send` does; codecs, stream errors and
 * argument checks; and a reader that is not ipckit.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { type PipeMessage, PipeReadEnd, pipe } from '../src/index.js';
import { refusingCodec, rejectsWith, stillPending, throwsWith } from './helpers/assert.js';
import { checkTaggedWriters, pythonFrameReader, startTaggedWriters } from './helpers/frame-peers.js';
import { killAllPeers } from './helpers/peer.js';
import { assertNothingLeft, fdSnapshot } from './helpers/leaks.js';

/** The descriptors open before any test: the file must leave no other behind. */
const fdBaseline = fdSnapshot();

after(() => killAllPeers());

const texts = (messages: PipeMessage[] | null): string[] => (messages ?? []).map((m) => m.data.toString());
const words = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `w${from + i}`);

/** Every message until the end of the data, with receiveManySync. */
function drain(end: PipeReadEnd): string[] {
  const out: string[] = [];
  for (;;) {
    const batch = end.receiveManySync({ max: 1024, timeout: 5_000 });
    if (batch === null) return out;
    out.push(...texts(batch));
  }
}

describe('pipe batches: sendMany / receiveMany', () => {
  it('trySendMany and tryReceiveMany move many messages per call, in order; [] while empty, null at the end', () => {
    const { readEnd, writeEnd } = pipe({ codec: 'json' });
    try {
      assert.equal(writeEnd.trySendMany([1, 'two', { three: 3 }, null]), 4);
      assert.equal(writeEnd.trySendMany([]), 0);
      assert.deepEqual(readEnd.tryReceiveMany({ max: 3 })?.map((m) => m.data), [1, 'two', { three: 3 }]);
      assert.deepEqual(readEnd.tryReceiveMany()?.map((m) => m.data), [null]);
      assert.deepEqual(readEnd.tryReceiveMany(), []);
      writeEnd.close();
      assert.equal(readEnd.tryReceiveMany(), null);
      assert.equal(readEnd.receiveManySync(), null);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('sendManySync waits for room; a timeout between messages resolves with exactly how many went', () => {
    const { readEnd, writeEnd } = pipe({ capacity: 4096 });
    try {
      const message = 'm'.repeat(1000);
      const fit = writeEnd.trySendMany(Array.from({ length: 10 }, () => message));
      assert.ok(fit > 0 && fit < 10, `a 4 KiB pipe takes some of ten 1004-byte frames, not ${fit}`);
      // Full: nothing goes, and the usual timeout error.
      throwsWith(() => writeEnd.sendManySync([message], { timeout: 20 }), 'ERR_IPC_TIMEOUT', / timed out after 20 ms/);
      throwsWith(() => writeEnd.sendManySync([message], { timeout: 0 }), 'ERR_IPC_TIMEOUT', / timed out after 0 ms/);
      assert.equal(readEnd.receiveManySync({ max: 1024 })?.length, fit);
      // Room for `fit` again: a batch of ten ends at the timeout with exactly that many in.
      assert.equal(writeEnd.sendManySync(words(10).map((w) => w.padEnd(1000, '.')), { timeout: 30 }), fit);
      const got = texts(readEnd.tryReceiveMany({ max: 1024 }));
      assert.deepEqual(got, words(fit).map((w) => w.padEnd(1000, '.')));
      assert.deepEqual(readEnd.tryReceiveMany(), []);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('sendMany waits while full and goes on as the reader makes room; timeout, abort and close part-way resolve with the count', async () => {
    const { readEnd, writeEnd } = pipe({ capacity: 4096 });
    try {
      const batch = Array.from({ length: 40 }, (_, i) => `${i}`.padEnd(500, '-'));
      const all = writeEnd.sendMany(batch);
      assert.ok(await stillPending(all, 50), 'a 4 KiB pipe cannot take 20 KB');
      const got: string[] = [];
      while (got.length < 40) got.push(...texts(await readEnd.receiveMany({ max: 1024, timeout: 5_000 })));
      assert.equal(await all, 40);
      assert.deepEqual(got, batch);

      // A timeout part-way: the count is what the reader finds, no more, no less.
      const timed = await writeEnd.sendMany(batch, { timeout: 40 });
      assert.ok(timed > 0 && timed < 40);
      assert.deepEqual(texts(readEnd.tryReceiveMany({ max: 1024 })), batch.slice(0, timed));

      const controller = new AbortController();
      const aborted = writeEnd.sendMany(batch, { signal: controller.signal });
      await stillPending(aborted, 30);
      controller.abort();
      const n = await aborted;
      assert.ok(n > 0 && n < 40);
      assert.deepEqual(texts(readEnd.tryReceiveMany({ max: 1024 })), batch.slice(0, n));

      // Nothing goes when the pipe stays full: it rejects as send does.
      const fill = writeEnd.trySendMany(batch);
      // (A pipe page takes small writes as long as they fit it: the one refused is as large as the others.)
      await rejectsWith(() => writeEnd.sendMany(batch.slice(0, 1), { timeout: 20 }), 'ERR_IPC_TIMEOUT');
      assert.equal(readEnd.tryReceiveMany({ max: 1024 })?.length, fill);

      const closing = writeEnd.sendMany(batch);
      await stillPending(closing, 20);
      writeEnd.close();
      const c = await closing;
      assert.ok(c > 0 && c < 40);
      assert.deepEqual(drain(readEnd), batch.slice(0, c));
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('a timeout inside a message larger than PIPE_BUF closes the end, says how many went whole; the reader gets those, then a cut message', async () => {
    const { readEnd, writeEnd } = pipe({ capacity: 4096 });
    try {
      const big = Buffer.alloc(10_000, 7);
      const err = await rejectsWith(() => writeEnd.sendMany(['small', big], { timeout: 30 }), 'ERR_IPC_TIMEOUT',
        /1 of 2 messages had been written whole, and \d+ bytes of the next .*so this end was closed/);
      assert.equal(writeEnd.closed, true);
      throwsWith(() => writeEnd.trySendMany(['more']), 'ERR_IPC_TIMEOUT', /so this end was closed/);
      assert.equal(err.address, writeEnd.address);
      assert.deepEqual(texts(readEnd.receiveManySync({ timeout: 1_000 })), ['small']);
      throwsWith(() => readEnd.receiveManySync({ timeout: 1_000 }), 'ERR_IPC_FRAMING', /closed in the middle of a message/);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('trySendMany commits to a large message the kernel took part of: it counts, and its rest follows before later writes', async () => {
    const { readEnd, writeEnd } = pipe({ capacity: 4096 });
    try {
      const big = Buffer.alloc(10_000, 9);
      assert.equal(writeEnd.trySendMany(['a', big, 'never tried']), 2);
      const after = writeEnd.send('after');
      const got: Buffer[] = [];
      while (got.length < 3) for (const m of (await readEnd.receiveMany({ timeout: 5_000 })) ?? []) got.push(m.data);
      await after;
      assert.deepEqual(got.map((b) => b.length), [1, 10_000, 5]);
      assert.ok(got[1]!.equals(big));
      assert.equal(got[2]!.toString(), 'after');
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('receiveMany waits for the first message, then takes every whole one there, up to max; never an empty batch', async () => {
    const { readEnd, writeEnd } = pipe();
    try {
      const waiting = readEnd.receiveMany({ max: 2 });
      assert.ok(await stillPending(waiting, 30));
      writeEnd.sendManySync(words(3));
      assert.deepEqual(texts(await waiting), ['w0', 'w1']);
      assert.deepEqual(texts(await readEnd.receiveMany({ max: 10 })), ['w2']);
      await rejectsWith(() => readEnd.receiveMany({ timeout: 20 }), 'ERR_IPC_TIMEOUT');
      throwsWith(() => readEnd.receiveManySync({ timeout: 0 }), 'ERR_IPC_TIMEOUT');
      // Half a message is no message.
      writeEnd.writeSync(Buffer.from([0, 0, 0, 4, 0x61]));
      assert.deepEqual(readEnd.tryReceiveMany(), []);
      writeEnd.writeSync('bcd');
      assert.deepEqual(texts(readEnd.tryReceiveMany()), ['abcd']);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('a stream error after the first message ends the batch; the next call reports it', () => {
    const { readEnd, writeEnd } = pipe({ maxMessageSize: 100 });
    try {
      writeEnd.sendManySync(['ok-1', 'ok-2']);
      writeEnd.writeSync(Buffer.from([0, 0, 1, 0]));   // announces 256 bytes, over maxMessageSize
      assert.deepEqual(texts(readEnd.receiveManySync()), ['ok-1', 'ok-2']);
      throwsWith(() => readEnd.receiveManySync(), 'ERR_IPC_MESSAGE_TOO_LARGE', /announces 256 bytes, more than maxMessageSize 100/);
      throwsWith(() => readEnd.tryReceiveMany(), 'ERR_IPC_MESSAGE_TOO_LARGE');
    } finally {
      readEnd.close();
      writeEnd.close();
    }
    const cut = pipe();
    try {
      cut.writeEnd.sendManySync(['whole']);
      cut.writeEnd.writeSync(Buffer.from([0, 0, 0, 9, 0x61]));
      cut.writeEnd.close();
      assert.deepEqual(texts(cut.readEnd.receiveManySync()), ['whole']);
      throwsWith(() => cut.readEnd.receiveManySync(), 'ERR_IPC_FRAMING', /closed in the middle of a message/);
    } finally {
      cut.readEnd.close();
      cut.writeEnd.close();
    }
  });

  it('a message its codec refuses ends the batch: the ones before come, its error next, the rest after it, in order', async () => {
    const codec = refusingCodec();
    const { readEnd, writeEnd } = pipe({ codec });
    try {
      writeEnd.sendManySync(['a', 'b', 'bad-1', 'c', 'bad-2', 'd']);
      assert.deepEqual(readEnd.receiveManySync()?.map((m) => m.data), ['a', 'b']);
      throwsWith(() => readEnd.receiveManySync(), 'ERR_IPC_CODEC', /refused bad-1/);
      assert.deepEqual((await readEnd.receiveMany())?.map((m) => m.data), ['c']);
      throwsWith(() => readEnd.tryReceive(), 'ERR_IPC_CODEC', /refused bad-2/);
      assert.equal(readEnd.tryReceive()?.data, 'd');
      assert.deepEqual(readEnd.tryReceiveMany(), []);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('refuses bad batches before writing anything', async () => {
    const { readEnd, writeEnd } = pipe();
    const typed = pipe({ codec: 'json' });
    try {
      throwsWith(() => writeEnd.sendManySync('abc' as never), 'ERR_IPC_INVALID_ARGUMENT', /messages must be an array of messages/);
      throwsWith(() => writeEnd.sendManySync(['ok', 42 as never]), 'ERR_IPC_INVALID_ARGUMENT', /data/);
      // eslint-disable-next-line no-sparse-arrays
      throwsWith(() => writeEnd.trySendMany(['ok', , 'after'] as never), 'ERR_IPC_INVALID_ARGUMENT');
      throwsWith(() => typed.writeEnd.trySendMany([1, 2n as never]), 'ERR_IPC_CODEC');
      await rejectsWith(() => writeEnd.sendMany(['a'], { priority: 1 } as never), 'ERR_IPC_INVALID_ARGUMENT', /priority/);
      throwsWith(() => readEnd.receiveManySync({ max: 0 }), 'ERR_IPC_INVALID_ARGUMENT', /max/);
      throwsWith(() => readEnd.tryReceiveMany({ max: 1025 }), 'ERR_IPC_INVALID_ARGUMENT', /max/);
      throwsWith(() => readEnd.tryReceiveMany({ count: 2 } as never), 'ERR_IPC_INVALID_ARGUMENT', /count/);
      assert.deepEqual(readEnd.tryReceiveMany(), []);
      assert.equal(readEnd.tryRead(), undefined);
    } finally {
      for (const end of [readEnd, writeEnd, typed.readEnd, typed.writeEnd]) end.close();
    }
  });

  it('keeps each message of at most PIPE_BUF - 4 bytes whole under writers in other processes, each writer\'s in order', async () => {
    const { readEnd, writeEnd } = pipe({ capacity: 4096 });
    const writers = startTaggedWriters(writeEnd, 'for (let i = 0; i < all.length; i += 37) end.sendManySync(all.slice(i, i + 37));');
    const got: string[] = [];
    for (;;) {
      const batch = await readEnd.receiveMany({ max: 1024, timeout: 20_000 });
      if (batch === null) break;
      got.push(...texts(batch));
    }
    await checkTaggedWriters(writers, got);
    readEnd.close();
  });

  it('a reader that is not ipckit reads what sendMany framed: 4-byte big-endian lengths, then the bytes', async () => {
    const { readEnd, writeEnd } = pipe();
    const printed = pythonFrameReader(readEnd);
    assert.equal(await writeEnd.sendMany(['one', '', 'three', 'é'.repeat(3000)]), 4);
    writeEnd.close();
    assert.equal(await printed, `one||three|${'é'.repeat(3000)}\n`);
  });
});

describe('pipe batches against their edge cases', () => {
  it('counts batches of many empty messages right (more than one gathered write holds), and empty chunks write nothing', () => {
    const { readEnd, writeEnd } = pipe({ capacity: 1 << 20 });
    try {
      const empties = Array.from({ length: 600 }, () => Buffer.alloc(0));
      assert.equal(writeEnd.sendManySync([...empties, 'tail']), 601);
      assert.equal(writeEnd.trySendMany(Array.from({ length: 3000 }, () => '')), 3000);
      const got: string[] = [];
      for (let batch = readEnd.tryReceiveMany({ max: 1024 }); batch && batch.length > 0; batch = readEnd.tryReceiveMany({ max: 1024 })) got.push(...texts(batch));
      assert.equal(got.length, 3601);
      assert.equal(got[600], 'tail');
      assert.ok(got.every((m, i) => (i === 600 ? m === 'tail' : m === '')));
      writeEnd.writevSync(Array.from({ length: 5000 }, () => Buffer.alloc(0)));
      writeEnd.writevSync([...Array.from({ length: 3000 }, () => ''), 'x']);
      assert.equal(readEnd.tryRead()?.toString(), 'x');
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('a writev of at most PIPE_BUF bytes in all goes whole or not at all, however many chunks carry them', () => {
    const { readEnd, writeEnd } = pipe({ capacity: 4096 });
    try {
      // One page, 2500 bytes used: 1596 left, less than the 2000 asked.
      assert.equal(writeEnd.tryWrite(Buffer.alloc(2500)), 2500);
      const ones = Array.from({ length: 2000 }, () => 'x');
      assert.equal(writeEnd.tryWritev(ones), 0);
      assert.equal(readEnd.tryRead({ maxBytes: 4096 })?.length, 2500);
      assert.equal(writeEnd.tryWritev(ones), 2000);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('a message buffer transferred while its batch waits inside it closes the end with ERR_IPC_INVALID_ARGUMENT', async () => {
    const { readEnd, writeEnd } = pipe({ capacity: 4096 });
    try {
      const big = new Uint8Array(10_000).fill(1);
      const sending = writeEnd.sendMany([Buffer.from('first'), big]);
      assert.ok(await stillPending(sending, 20), 'part of the large message went; the rest waits for room');
      structuredClone(big.buffer, { transfer: [big.buffer] });
      assert.equal(big.length, 0);
      const drained = readEnd.read({ maxBytes: 65536 });
      await rejectsWith(() => sending, 'ERR_IPC_INVALID_ARGUMENT', /A message of a batch .* changed while the call waited .* 1 of 2 messages had been written whole.*so this end was closed/);
      await drained;
      assert.equal(writeEnd.closed, true);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('readMessage takes the messages a batch held after a codec refusal first', () => {
    const codec = {
      encode: (value: string) => Buffer.from(value),
      decode: (bytes: Uint8Array) => {
        const text = Buffer.from(bytes).toString();
        if (text === 'bad') throw new Error('refused');
        return text;
      },
    };
    const { readEnd, writeEnd } = pipe({ codec });
    try {
      writeEnd.sendManySync(['a', 'bad', 'b']);
      writeEnd.writeMessageSync('c');
      assert.deepEqual(readEnd.receiveManySync()?.map((m) => m.data), ['a']);
      assert.equal(readEnd.readMessageSync()?.toString(), 'bad');
      assert.equal(readEnd.readMessageSync()?.toString(), 'b');
      assert.equal(readEnd.readMessageSync()?.toString(), 'c');
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });
});

describe('pipe batches: writev / readv', () => {
  it('writev gathers chunks (bytes and strings) into one stream; readv scatters it over buffers in order', async () => {
    const { readEnd, writeEnd } = pipe();
    try {
      writeEnd.writevSync(['ab', Buffer.from('cd'), new Uint8Array(0), 'é']);
      await writeEnd.writev([Buffer.from('fg')]);
      assert.equal(writeEnd.tryWritev(['h']), 1);
      const a = Buffer.alloc(3);
      const b = Buffer.alloc(0);
      const c = Buffer.alloc(10);
      assert.equal(readEnd.readvSync([a, b, c]), 9);
      assert.equal(a.toString(), 'abc');
      assert.equal(c.subarray(0, 6).toString(), 'dé' + 'fgh');
      assert.equal(readEnd.tryReadv([a]), undefined);
      const waiting = readEnd.readv([a, c]);
      assert.ok(await stillPending(waiting, 30));
      writeEnd.writeSync('xyzw');
      assert.equal(await waiting, 4);
      assert.equal(a.toString() + c.subarray(0, 1).toString(), 'xyzw');
      writeEnd.close();
      assert.equal(await readEnd.readv([a]), null);
      assert.equal(readEnd.readvSync([a]), null);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('readv takes bytes a framed read left behind first', () => {
    const { readEnd, writeEnd } = pipe();
    try {
      writeEnd.writeMessageSync('msg');
      writeEnd.writeSync('tail');
      assert.equal(readEnd.readMessageSync()?.toString(), 'msg');
      const into = [Buffer.alloc(2), Buffer.alloc(2)];
      assert.equal(readEnd.readvSync(into), 4);
      assert.equal(Buffer.concat(into).toString(), 'tail');
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('a writev timeout part-way says how many bytes went; tryWritev returns what fit', async () => {
    const { readEnd, writeEnd } = pipe({ capacity: 4096 });
    try {
      const chunks = [Buffer.alloc(3000, 1), Buffer.alloc(3000, 2)];
      assert.equal(writeEnd.tryWritev(chunks), 4096);
      assert.equal(writeEnd.tryWritev(chunks), 0);
      const into = Buffer.alloc(8192);
      assert.equal(readEnd.readvSync([into]), 4096);
      await rejectsWith(() => writeEnd.writev([Buffer.alloc(10_000)], { timeout: 20 }), 'ERR_IPC_TIMEOUT', /4096 of 10000 bytes had been written/);
      throwsWith(() => writeEnd.writevSync([Buffer.alloc(10)], { timeout: 0 }), 'ERR_IPC_TIMEOUT', /timed out after 0 ms/);
      assert.equal(readEnd.tryReadv([into]), 4096);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('refuses bad chunk and target lists', () => {
    const { readEnd, writeEnd } = pipe();
    try {
      throwsWith(() => writeEnd.writevSync('ab' as never), 'ERR_IPC_INVALID_ARGUMENT', /chunks must be an array of chunks/);
      throwsWith(() => writeEnd.tryWritev(['a', 7 as never]), 'ERR_IPC_INVALID_ARGUMENT', /chunks/);
      throwsWith(() => readEnd.tryReadv([]), 'ERR_IPC_INVALID_ARGUMENT', /an array of 1 to 1024 Uint8Arrays/);
      throwsWith(() => readEnd.tryReadv([Buffer.alloc(0)]), 'ERR_IPC_INVALID_ARGUMENT', /room for at least one byte/);
      throwsWith(() => readEnd.tryReadv(Array.from({ length: 1025 }, () => Buffer.alloc(1))), 'ERR_IPC_INVALID_ARGUMENT', /1 to 1024/);
      throwsWith(() => readEnd.tryReadv(['text' as never]), 'ERR_IPC_INVALID_ARGUMENT', /targets/);
      throwsWith(() => readEnd.readvSync([Buffer.alloc(1)], { maxBytes: 1 } as never), 'ERR_IPC_INVALID_ARGUMENT', /maxBytes/);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });
});

describe('pipe batches and the spin', () => {
  it('a gathered write spins for room while the reader makes some, within its timeout and a slice of the event loop', async () => {
    // A worker reads 4 KiB every 5 ms: 1 MiB would take more than a second. With the longest spin (10 ms), a
    // writevSync still ends by its timeout, and an async writev's attempt gives the event loop back within its
    // slice, then ends on its abort. Every byte that went is read, once.
    for (const form of ['sync', 'async'] as const) {
      const { readEnd, writeEnd } = pipe({ spin: 10_000 });
      const worker = new Worker(`
        const { workerData: d, parentPort } = require('node:worker_threads');
        const { readSync } = require('node:fs');
        const chunk = Buffer.alloc(4096);
        const pause = new Int32Array(new SharedArrayBuffer(4));
        let total = 0;
        parentPort.postMessage('ready');
        for (let n; (n = readSync(d.fd, chunk, 0, chunk.length, null)) > 0;) {
          total += n;
          Atomics.wait(pause, 0, 0, 5);
        }
        parentPort.postMessage(total);`, { eval: true, workerData: { fd: readEnd.fd } });
      try {
        let filled = 0;
        for (let n; (n = writeEnd.tryWrite(Buffer.alloc(65536, 1))) > 0;) filled += n;
        const big = Buffer.alloc(1 << 20, 2);
        assert.equal((await once(worker, 'message'))[0], 'ready');
        const began = performance.now();
        if (form === 'sync') {
          throwsWith(() => writeEnd.writevSync([big], { timeout: 30 }), 'ERR_IPC_TIMEOUT');
          const took = performance.now() - began;
          assert.ok(took >= 29 && took < 400, `sync: the call took ${took.toFixed(1)} ms with a timeout of 30`);
        } else {
          const pending = writeEnd.writev([big], { signal: AbortSignal.timeout(60) });
          const held = performance.now() - began;
          assert.ok(held < 300, `async: the first attempt held the event loop ${held.toFixed(1)} ms`);
          await rejectsWith(() => pending, 'ERR_IPC_ABORTED');
          const took = performance.now() - began;
          assert.ok(took >= 59 && took < 600, `async: the abort after 60 ms ended the call after ${took.toFixed(1)} ms`);
        }
        writeEnd.close();
        const [total] = await once(worker, 'message') as [number];
        assert.ok(total > filled && total < filled + big.length, `${form}: ${total - filled} of ${big.length} bytes of the write went`);
      } finally {
        writeEnd.close();
        await worker.terminate();
        readEnd.close();
      }
    }
  });
});

describe('pipe batch cleanup', () => {
  it('leaves no descriptor and no child process behind', () => assertNothingLeft(fdBaseline));
});
