/**
 * Packed batches (MessageBatch): the class itself, and sendBatch /
 * receiveBatch on pipes and FIFOs in their three forms. Exact counts when a
 * timeout, an abort or the batch's room ends a call; messages read ahead by
 * other receives, held after a codec refusal, larger than the batch or
 * than maxMessageSize; atomic messages under writers in other processes;
 * and a reader that is not ipckit. The same on stream and seqpacket
 * sockets, where descriptors that came with a batch's messages are closed.
 */
import { after, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatagramSocket, Fifo, type IpcError, MessageBatch, bind, pipe, socketPair, spawn } from '../src/index.js';
import { refusingCodec, rejectsWith, stillPending, throwsWith } from './helpers/assert.js';
import { native } from '../src/native.js';
import { MIN_BOUNDED_READ } from '../src/internal/framing.js';
import { openFds } from './helpers/objects.js';
import { checkTaggedWriters, pythonFrameReader, startTaggedWriters } from './helpers/frame-peers.js';
import { closed, killAllPeers, trackChild } from './helpers/peer.js';
import { assertNothingLeft, fdSnapshot } from './helpers/leaks.js';

after(() => killAllPeers());
const INDEX = fileURLToPath(new URL('../src/index.js', import.meta.url));

/** The descriptors open before any test: the file must leave no other behind. */
const fdBaseline = fdSnapshot();

const texts = (batch: MessageBatch): string[] => [...batch].map((m) => m.toString());
const words = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `w${from + i}`);

/** A batch holding `messages`, with room for exactly them unless told otherwise. */
function batchOf(messages: readonly (string | Uint8Array)[], room?: { bytes?: number; messages?: number }): MessageBatch {
  const bytes = messages.reduce((sum, m) => sum + Buffer.byteLength(m), 0);
  const batch = new MessageBatch({ bytes: room?.bytes ?? Math.max(bytes, 1), messages: room?.messages ?? Math.max(messages.length, 1) });
  for (const m of messages) assert.equal(batch.push(m), true);
  return batch;
}

describe('MessageBatch', () => {
  it('holds messages back to back with their lengths; push says false once bytes or messages run out', () => {
    const batch = new MessageBatch({ bytes: 10, messages: 3 });
    assert.equal(batch.data.length, 10);
    assert.equal(batch.lengths.length, 3);
    assert.equal(batch.push('abc'), true);
    assert.equal(batch.push(''), true);
    assert.equal(batch.push(Buffer.from('é!')), true);
    assert.equal(batch.push('x'), false, 'no room for a fourth message');
    assert.equal(batch.count, 3);
    assert.equal(batch.size, 6);
    assert.deepEqual([...batch.lengths], [3, 0, 3]);
    assert.equal(batch.data.subarray(0, 6).toString(), 'abcé!');
    assert.deepEqual(texts(batch), ['abc', '', 'é!']);
    assert.equal(batch.at(2).toString(), 'é!');
    batch.clear();
    assert.equal(batch.count, 0);
    assert.equal(batch.size, 0);
    assert.deepEqual(texts(batch), []);
    assert.equal(batch.push('123456789'), true);
    assert.equal(batch.push('ab'), false, 'no room for two more bytes');
    assert.equal(batch.push('a'), true);
    assert.deepEqual(texts(batch), ['123456789', 'a']);
    assert.equal(new MessageBatch({ bytes: 1 }).lengths.length, 1024);
  });

  it('refuses bad options, indexes and messages with ERR_IPC_INVALID_ARGUMENT; a message larger than the batch with ERR_IPC_MESSAGE_TOO_LARGE', () => {
    throwsWith(() => new MessageBatch(undefined as never), 'ERR_IPC_INVALID_ARGUMENT', /bytes/);
    throwsWith(() => new MessageBatch({} as never), 'ERR_IPC_INVALID_ARGUMENT', /bytes/);
    throwsWith(() => new MessageBatch({ bytes: 0 }), 'ERR_IPC_INVALID_ARGUMENT', /bytes/);
    throwsWith(() => new MessageBatch({ bytes: 2 ** 30 + 1 }), 'ERR_IPC_INVALID_ARGUMENT', /bytes/);
    throwsWith(() => new MessageBatch({ bytes: 1.5 }), 'ERR_IPC_INVALID_ARGUMENT', /bytes/);
    throwsWith(() => new MessageBatch({ bytes: 8, messages: 0 }), 'ERR_IPC_INVALID_ARGUMENT', /messages/);
    throwsWith(() => new MessageBatch({ bytes: 8, messages: 2 ** 20 + 1 }), 'ERR_IPC_INVALID_ARGUMENT', /messages/);
    throwsWith(() => new MessageBatch({ bytes: 8, size: 2 } as never), 'ERR_IPC_INVALID_ARGUMENT', /no key "size"/);
    const batch = batchOf(['a', 'b']);
    throwsWith(() => batch.at(2), 'ERR_IPC_INVALID_ARGUMENT', /index/);
    throwsWith(() => batch.at(-1), 'ERR_IPC_INVALID_ARGUMENT', /index/);
    throwsWith(() => batch.at(0.5), 'ERR_IPC_INVALID_ARGUMENT', /index/);
    throwsWith(() => batch.push(42 as never), 'ERR_IPC_INVALID_ARGUMENT', /message/);
    throwsWith(() => batch.push('abc'), 'ERR_IPC_MESSAGE_TOO_LARGE', /3-byte message cannot go in a batch of 2 bytes/);
    assert.deepEqual(texts(batch), ['a', 'b']);
  });
});

describe('pipe packed batches: sendBatch / receiveBatch', () => {
  it('trySendBatch and tryReceiveBatch move many messages per call, in order; 0 while empty, null at the end', () => {
    const { readEnd, writeEnd } = pipe();
    try {
      assert.equal(writeEnd.trySendBatch(batchOf(['one', '', 'three', 'é'.repeat(100)])), 4);
      assert.equal(writeEnd.trySendBatch(new MessageBatch({ bytes: 1 })), 0);
      const got = new MessageBatch({ bytes: 4096, messages: 16 });
      assert.equal(readEnd.tryReceiveBatch(got), 4);
      assert.deepEqual(texts(got), ['one', '', 'three', 'é'.repeat(100)]);
      assert.equal(readEnd.tryReceiveBatch(got), 0);
      assert.equal(got.count, 0, 'a try that found nothing leaves the batch empty');
      writeEnd.close();
      assert.equal(readEnd.tryReceiveBatch(got), null);
      assert.equal(readEnd.receiveBatchSync(got), null);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('a receive takes what fits the batch\'s room in messages and in bytes; the rest stays for the next call, in order', () => {
    const { readEnd, writeEnd } = pipe();
    try {
      assert.equal(writeEnd.sendBatchSync(batchOf(words(100))), 100);
      const few = new MessageBatch({ bytes: 4096, messages: 7 });
      assert.equal(readEnd.receiveBatchSync(few), 7);
      assert.deepEqual(texts(few), words(7));
      const narrow = new MessageBatch({ bytes: 10, messages: 100 });
      assert.equal(readEnd.receiveBatchSync(narrow), 4, 'w7, w8, w9 and w10 take 9 bytes; w11 does not fit');
      assert.deepEqual(texts(narrow), words(4, 7));
      const rest = new MessageBatch({ bytes: 4096 });
      assert.equal(readEnd.receiveBatchSync(rest), 89);
      assert.deepEqual(texts(rest), words(89, 11));
      // Straight from the pipe (nothing read ahead), a small batch takes every message that fits too, not only what one read of its room brings.
      assert.equal(writeEnd.sendBatchSync(batchOf(words(10))), 10);
      const tight = new MessageBatch({ bytes: 12, messages: 100 });
      assert.equal(readEnd.receiveBatchSync(tight), 6, 'six 2-byte messages fill 12 bytes, though their frames take 36');
      assert.deepEqual(texts(tight), words(6));
      assert.equal(readEnd.receiveBatchSync(rest), 4);
      assert.deepEqual(texts(rest), words(4, 6));
      assert.equal(readEnd.tryReceiveBatch(rest), 0);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('a batch with room for less than a frame (fewer bytes than a length prefix) still takes the messages that fit', async () => {
    for (const bytes of [1, 2, 3, 4, 5]) {
      const { readEnd, writeEnd } = pipe();
      try {
        const messages = ['', 'a', 'hi', 'abc', 'abcd'].filter((m) => m.length <= bytes);
        writeEnd.sendManySync([...messages, ...messages]);
        const batch = new MessageBatch({ bytes });
        const got: string[] = [];
        while (got.length < messages.length) {
          assert.ok(readEnd.receiveBatchSync(batch, { timeout: 5_000 })! > 0);
          got.push(...texts(batch));
        }
        while (got.length < 2 * messages.length) {
          assert.ok((await readEnd.receiveBatch(batch, { timeout: 5_000 }))! > 0);
          got.push(...texts(batch));
        }
        assert.deepEqual(got, [...messages, ...messages], `a ${bytes}-byte batch`);
        assert.equal(readEnd.tryReceiveBatch(batch), 0);
      } finally {
        readEnd.close();
        writeEnd.close();
      }
    }
  });

  it('mixes with receive, receiveMany and read: what they read ahead comes first, and what a batch reads ahead goes to them', () => {
    const { readEnd, writeEnd } = pipe();
    try {
      writeEnd.sendManySync(words(20));
      assert.equal(readEnd.receiveSync()?.data.toString(), 'w0');
      const batch = new MessageBatch({ bytes: 4096, messages: 5 });
      assert.equal(readEnd.receiveBatchSync(batch), 5);
      assert.deepEqual(texts(batch), words(5, 1));
      assert.deepEqual(readEnd.receiveManySync({ max: 3 })?.map((m) => m.data.toString()), words(3, 6));
      assert.equal(readEnd.receiveBatchSync(batch), 5);
      assert.deepEqual(texts(batch), words(5, 9));
      assert.equal(readEnd.readMessageSync()?.toString(), 'w14');
      assert.equal(readEnd.receiveBatchSync(batch), 5);
      assert.deepEqual(texts(batch), words(5, 15));
      // Half a message read ahead by the batch: a receive finishes it.
      writeEnd.writeSync(Buffer.from([0, 0, 0, 5, 0x68, 0x65]));
      assert.equal(readEnd.tryReceiveBatch(batch), 0);
      writeEnd.writeSync(Buffer.from('llo'));
      assert.equal(readEnd.receiveSync({ timeout: 5_000 })?.data.toString(), 'hello');
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('a message larger than the batch stays, with ERR_IPC_MESSAGE_TOO_LARGE: receive takes it, and the batch goes on after it', () => {
    const { readEnd, writeEnd } = pipe();
    try {
      writeEnd.sendManySync(['small', 'x'.repeat(50), 'after', 'y'.repeat(8)]);
      const batch = new MessageBatch({ bytes: 10 });
      assert.equal(readEnd.receiveBatchSync(batch), 1);
      assert.deepEqual(texts(batch), ['small']);
      throwsWith(() => readEnd.receiveBatchSync(batch), 'ERR_IPC_MESSAGE_TOO_LARGE', /next message .* is 50 bytes, more than the 10 bytes a batch holds; it stays/);
      throwsWith(() => readEnd.tryReceiveBatch(batch), 'ERR_IPC_MESSAGE_TOO_LARGE', /50 bytes/);
      assert.equal(readEnd.receiveSync()?.data.toString(), 'x'.repeat(50));
      assert.equal(readEnd.receiveBatchSync(batch), 1);
      assert.deepEqual(texts(batch), ['after']);
      // 8 bytes fit a 10-byte batch though the frame (12 bytes) does not.
      assert.equal(readEnd.receiveBatchSync(batch), 1);
      assert.deepEqual(texts(batch), ['y'.repeat(8)]);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('a stream error after whole messages ends the batch; the next call reports it (over maxMessageSize, writers gone inside a message)', () => {
    const { readEnd, writeEnd } = pipe({ maxMessageSize: 100 });
    try {
      writeEnd.sendManySync(['ok-1', 'ok-2']);
      writeEnd.writeSync(Buffer.from([0, 0, 1, 0]));   // announces 256 bytes, over maxMessageSize
      const batch = new MessageBatch({ bytes: 4096 });
      assert.equal(readEnd.receiveBatchSync(batch), 2);
      assert.deepEqual(texts(batch), ['ok-1', 'ok-2']);
      throwsWith(() => readEnd.receiveBatchSync(batch), 'ERR_IPC_MESSAGE_TOO_LARGE', /announces 256 bytes, more than maxMessageSize 100/);
      throwsWith(() => readEnd.tryReceiveBatch(batch), 'ERR_IPC_MESSAGE_TOO_LARGE');
    } finally {
      readEnd.close();
      writeEnd.close();
    }
    const cut = pipe();
    try {
      cut.writeEnd.sendManySync(['whole']);
      cut.writeEnd.writeSync(Buffer.from([0, 0, 0, 9, 0x61]));
      cut.writeEnd.close();
      const batch = new MessageBatch({ bytes: 4096 });
      assert.equal(cut.readEnd.receiveBatchSync(batch), 1);
      assert.deepEqual(texts(batch), ['whole']);
      throwsWith(() => cut.readEnd.receiveBatchSync(batch), 'ERR_IPC_FRAMING', /closed in the middle of a message/);
    } finally {
      cut.readEnd.close();
      cut.writeEnd.close();
    }
  });

  it('messages held after a codec refusal come first, as raw bytes, then those still in the pipe', () => {
    const { readEnd, writeEnd } = pipe({ codec: refusingCodec() });
    try {
      writeEnd.sendManySync(['a', 'bad-1', 'b', 'c']);
      assert.deepEqual(readEnd.receiveManySync()?.map((m) => m.data), ['a']);
      writeEnd.sendManySync(['d']);
      const batch = new MessageBatch({ bytes: 4096 });
      assert.equal(readEnd.receiveBatchSync(batch), 4, 'the held ones, then the stream\'s');
      assert.deepEqual(texts(batch), ['bad-1', 'b', 'c', 'd']);
      writeEnd.sendManySync(['bad-2', 'e', 'f']);
      throwsWith(() => readEnd.receiveManySync(), 'ERR_IPC_CODEC', /refused bad-2/);
      const one = new MessageBatch({ bytes: 4096, messages: 1 });
      assert.equal(readEnd.receiveBatchSync(one), 1);
      assert.deepEqual(texts(one), ['e']);
      assert.equal(readEnd.receiveBatchSync(batch), 1);
      assert.deepEqual(texts(batch), ['f']);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('sendBatchSync waits for room; a timeout between messages returns exactly how many went; trySendBatch what fits', () => {
    const { readEnd, writeEnd } = pipe({ capacity: 4096 });
    try {
      const batch = batchOf(words(10).map((w) => w.padEnd(1000, '.')));
      const fit = writeEnd.trySendBatch(batch);
      assert.ok(fit > 0 && fit < 10, `a 4 KiB pipe takes some of ten 1004-byte frames, not ${fit}`);
      throwsWith(() => writeEnd.sendBatchSync(batch, { timeout: 20 }), 'ERR_IPC_TIMEOUT', / timed out after 20 ms/);
      const got = new MessageBatch({ bytes: 65536 });
      assert.equal(readEnd.receiveBatchSync(got), fit);
      assert.equal(writeEnd.sendBatchSync(batch, { timeout: 30 }), fit);
      assert.equal(readEnd.receiveBatchSync(got), fit);
      assert.deepEqual(texts(got), words(fit).map((w) => w.padEnd(1000, '.')));
      assert.equal(readEnd.tryReceiveBatch(got), 0);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('async: receiveBatch waits for the first message; sendBatch waits for room; timeout and abort part-way resolve with the count', async () => {
    const { readEnd, writeEnd } = pipe({ capacity: 4096 });
    try {
      const got = new MessageBatch({ bytes: 65536 });
      const waiting = readEnd.receiveBatch(got);
      assert.ok(await stillPending(waiting, 30));
      const all = batchOf(Array.from({ length: 40 }, (_, i) => `${i}`.padEnd(500, '-')));
      const sending = writeEnd.sendBatch(all);
      const seen: string[] = [];
      assert.ok((await waiting)! > 0);
      seen.push(...texts(got));
      while (seen.length < 40) {
        assert.ok((await readEnd.receiveBatch(got, { timeout: 5_000 }))! > 0);
        seen.push(...texts(got));
      }
      assert.equal(await sending, 40);
      assert.deepEqual(seen, texts(all));
      // Part-way: a timeout, then an abort, each after some went.
      const timed = await writeEnd.sendBatch(all, { timeout: 30 });
      assert.ok(timed > 0 && timed < 40);
      assert.equal(await readEnd.receiveBatch(got), timed);
      const controller = new AbortController();
      const aborted = writeEnd.sendBatch(all, { signal: controller.signal });
      assert.ok(await stillPending(aborted, 30));
      controller.abort();
      const count = await aborted;
      assert.ok(count > 0 && count < 40);
      assert.equal(await readEnd.receiveBatch(got), count);
      assert.deepEqual(texts(got), texts(all).slice(0, count));
      await rejectsWith(() => readEnd.receiveBatch(got, { timeout: 10 }), 'ERR_IPC_TIMEOUT');
      const stop = new AbortController();
      const pending = readEnd.receiveBatch(got, { signal: stop.signal });
      stop.abort();
      await rejectsWith(() => pending, 'ERR_IPC_ABORTED');
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('a batch whose lengths are changed while its send waits inside a message closes the end with ERR_IPC_INVALID_ARGUMENT', async () => {
    const { readEnd, writeEnd } = pipe({ capacity: 4096 });
    try {
      const batch = batchOf(['first', 'z'.repeat(10_000)]);
      const sending = writeEnd.sendBatch(batch);
      assert.ok(await stillPending(sending, 20), 'part of the large message went; the rest waits for room');
      batch.lengths[1] = 2 ** 31;
      const drained = readEnd.read({ maxBytes: 65536 });
      await rejectsWith(() => sending, 'ERR_IPC_INVALID_ARGUMENT', /changed while the call waited .* 1 of 2 messages had been written whole.*so this end was closed/);
      await drained;
      assert.equal(writeEnd.closed, true);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('a batch whose lengths grow, or whose lengths array is detached, while its send waits inside a message closes the end', async () => {
    for (const change of ['grow', 'detach'] as const) {
      const { readEnd, writeEnd } = pipe({ capacity: 4096 });
      try {
        const batch = new MessageBatch({ bytes: 20_000 });
        batch.push('first');
        batch.push('z'.repeat(10_000));
        const sending = writeEnd.sendBatch(batch);
        assert.ok(await stillPending(sending, 20), 'part of the large message went; the rest waits for room');
        if (change === 'grow') batch.lengths[1] = 15_000;
        else structuredClone(batch.lengths.buffer, { transfer: [batch.lengths.buffer as ArrayBuffer] });
        const drained = readEnd.read({ maxBytes: 65536 });
        await rejectsWith(() => sending, 'ERR_IPC_INVALID_ARGUMENT', /changed while the call waited .* 1 of 2 messages had been written whole.*so this end was closed/);
        await drained;
        assert.equal(writeEnd.closed, true, change);
      } finally {
        readEnd.close();
        writeEnd.close();
      }
    }
  });

  it('a call that settles at once holds its batch until its caller can run; one that fails at once gives it back (pipe, socket)', async () => {
    const { readEnd, writeEnd } = pipe();
    const [a, b] = socketPair();
    try {
      const batch = new MessageBatch({ bytes: 4096 });
      writeEnd.sendManySync(['n1', 'n2']);
      const settled = readEnd.receiveBatch(batch);
      // Received already: a second call in the same turn would overwrite it before the first caller saw it.
      throwsWith(() => readEnd.tryReceiveBatch(batch), 'ERR_IPC_INVALID_ARGUMENT', /in a pending call already/);
      await rejectsWith(() => b.receiveBatch(batch), 'ERR_IPC_INVALID_ARGUMENT', /in a pending call already/);
      assert.equal(await settled, 2);
      assert.deepEqual(texts(batch), ['n1', 'n2']);
      const sent = a.sendBatch(batch);
      throwsWith(() => a.sendBatchSync(batch), 'ERR_IPC_INVALID_ARGUMENT', /in a pending call already/);
      assert.equal(await sent, 2);
      assert.deepEqual(b.tryReceiveMany().map((m) => String(m.data)), ['n1', 'n2']);
      // Calls that fail before they wait (closed ends, a closed socket's batched send) give the batch back.
      writeEnd.close();
      a.close();
      await rejectsWith(() => writeEnd.sendBatch(batch), 'ERR_IPC_CLOSED');
      await rejectsWith(() => a.sendBatch(batch), 'ERR_IPC_CLOSED');
      readEnd.close();
      await rejectsWith(() => readEnd.receiveBatch(batch), 'ERR_IPC_CLOSED');
      assert.equal(batch.busy, false);
      assert.equal(readEnd.closed && writeEnd.closed, true);
      throwsWith(() => b.tryReceiveBatch(batch), 'ERR_IPC_PEER_CLOSED');
    } finally {
      for (const end of [readEnd, writeEnd, a, b]) end.close();
    }
  });

  it('a batch is in one pending call at a time; its fields cannot be replaced; lengths changed by hand are refused before a send', async () => {
    const { readEnd, writeEnd } = pipe();
    try {
      const batch = new MessageBatch({ bytes: 4096 });
      const first = readEnd.receiveBatch(batch);
      await rejectsWith(() => readEnd.receiveBatch(batch), 'ERR_IPC_INVALID_ARGUMENT', /in a pending call already/);
      await rejectsWith(() => writeEnd.sendBatch(batch), 'ERR_IPC_INVALID_ARGUMENT', /in a pending call already/);
      throwsWith(() => readEnd.tryReceiveBatch(batch), 'ERR_IPC_INVALID_ARGUMENT', /in a pending call already/);
      throwsWith(() => writeEnd.sendBatchSync(batch), 'ERR_IPC_INVALID_ARGUMENT', /in a pending call already/);
      writeEnd.sendManySync(['m1', 'm2']);
      assert.equal(await first, 2);
      assert.deepEqual(texts(batch), ['m1', 'm2']);
      // Given back once the call settled.
      writeEnd.sendManySync(['m3']);
      assert.equal(await readEnd.receiveBatch(batch), 1);
      assert.throws(() => { (batch as { lengths: Uint32Array }).lengths = new Uint8Array(8) as never; }, TypeError);
      assert.throws(() => { (batch as { data: Buffer }).data = Buffer.alloc(1); }, TypeError);
      const edited = batchOf(['a', 'b']);
      edited.lengths[1] = 1000;
      throwsWith(() => writeEnd.sendBatchSync(edited), 'ERR_IPC_INVALID_ARGUMENT', /add up to 1001 bytes, not the 2 it holds/);
      throwsWith(() => writeEnd.trySendBatch(edited), 'ERR_IPC_INVALID_ARGUMENT', /add up to/);
      assert.equal(readEnd.tryReceiveBatch(batch), 0);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('refuses what is not a MessageBatch, and unknown options, before reading or writing anything', async () => {
    const { readEnd, writeEnd } = pipe();
    try {
      throwsWith(() => writeEnd.sendBatchSync(['a'] as never), 'ERR_IPC_INVALID_ARGUMENT', /batch must be a MessageBatch/);
      throwsWith(() => writeEnd.trySendBatch(undefined as never), 'ERR_IPC_INVALID_ARGUMENT', /MessageBatch/);
      await rejectsWith(() => writeEnd.sendBatch(batchOf(['a']), { to: 'x' } as never), 'ERR_IPC_INVALID_ARGUMENT', /no key "to"/);
      throwsWith(() => readEnd.receiveBatchSync({ data: Buffer.alloc(4) } as never), 'ERR_IPC_INVALID_ARGUMENT', /MessageBatch/);
      throwsWith(() => readEnd.tryReceiveBatch(null as never), 'ERR_IPC_INVALID_ARGUMENT', /MessageBatch/);
      await rejectsWith(() => readEnd.receiveBatch(new MessageBatch({ bytes: 8 }), { max: 2 } as never), 'ERR_IPC_INVALID_ARGUMENT', /no key "max"/);
      assert.equal(readEnd.tryRead(), undefined);
    } finally {
      readEnd.close();
      writeEnd.close();
    }
  });

  it('keeps each message of at most PIPE_BUF - 4 bytes whole under batch writers in other processes, each writer\'s in order', async () => {
    const { readEnd, writeEnd } = pipe({ capacity: 4096 });
    const writers = startTaggedWriters(writeEnd, [
      'const batch = new MessageBatch({ bytes: 37 * 150, messages: 37 });',
      'for (let i = 0; i < all.length;) {',
      '  batch.clear();',
      '  for (; i < all.length && batch.push(all[i]); i++);',
      '  end.sendBatchSync(batch);',
      '}',
    ].join('\n'));
    const got: string[] = [];
    const batch = new MessageBatch({ bytes: 1 << 16 });
    while ((await readEnd.receiveBatch(batch, { timeout: 20_000 })) !== null) got.push(...texts(batch));
    await checkTaggedWriters(writers, got);
    readEnd.close();
  });

  it('a reader that is not ipckit reads what sendBatch framed; receiveBatch reads what a program that is not ipckit framed', async () => {
    const { readEnd, writeEnd } = pipe();
    const printed = pythonFrameReader(readEnd);
    assert.equal(await writeEnd.sendBatch(batchOf(['one', '', 'three', 'é'.repeat(3000)])), 4);
    writeEnd.close();
    assert.equal(await printed, `one||three|${'é'.repeat(3000)}\n`);

    const back = pipe();
    const writer = trackChild(spawn('python3', ['-c', [
      'import os, struct',
      'f = os.fdopen(3, "wb")',
      'for i in range(500):',
      '    m = ("m%d" % i).encode() * (i % 7)',
      '    f.write(struct.pack(">I", len(m)) + m)',
      'f.close()'].join('\n')], { fds: { 3: back.writeEnd }, stdio: ['ignore', 'ignore', 'inherit'] }));
    back.writeEnd.close();
    const got: string[] = [];
    const batch = new MessageBatch({ bytes: 700, messages: 50 });
    while ((await back.readEnd.receiveBatch(batch, { timeout: 20_000 })) !== null) got.push(...texts(batch));
    assert.deepEqual(await closed(writer), { code: 0, signal: null });
    assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => `m${i}`.repeat(i % 7)));
    back.readEnd.close();
  });

  it('FIFOs have them too', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-batch-'));
    const file = path.join(dir, 'fifo');
    try {
      Fifo.create(file);
      const [readEnd, writeEnd] = await Promise.all([Fifo.openRead(file), Fifo.openWrite(file)]);
      try {
        assert.equal(await writeEnd.sendBatch(batchOf(words(30))), 30);
        const batch = new MessageBatch({ bytes: 4096 });
        assert.equal(await readEnd.receiveBatch(batch), 30);
        assert.deepEqual(texts(batch), words(30));
      } finally {
        readEnd.close();
        writeEnd.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('socket packed batches: sendBatch / receiveBatch', () => {
  for (const type of ['stream', 'seqpacket'] as const) {
    it(`${type}: many messages per call in order, 0 while none; what fits the batch's room; the peer's close after the last`, async () => {
      const [a, b] = socketPair({ type });
      try {
        assert.equal(a.trySendBatch(batchOf(['one', '', 'three'])), 3);
        assert.equal(await a.sendBatch(batchOf(words(50))), 50);
        assert.equal(a.sendBatchSync(new MessageBatch({ bytes: 1 })), 0);
        const few = new MessageBatch({ bytes: 4096, messages: 4 });
        assert.equal(b.receiveBatchSync(few), 4);
        assert.deepEqual(texts(few), ['one', '', 'three', 'w0']);
        const narrow = new MessageBatch({ bytes: 9, messages: 100 });
        assert.equal(await b.receiveBatch(narrow), 4, 'w1, w2, w3 and w4 take 8 bytes; w10 does not fit in one more');
        assert.deepEqual(texts(narrow), words(4, 1));
        const rest = new MessageBatch({ bytes: 4096 });
        assert.equal(b.receiveBatchSync(rest, { timeout: 5_000 }), 45);
        assert.deepEqual(texts(rest), words(45, 5));
        assert.equal(b.tryReceiveBatch(rest), 0);
        assert.equal(rest.count, 0);
        const waiting = b.receiveBatch(rest);
        assert.ok(await stillPending(waiting, 30));
        a.sendBatchSync(batchOf(['x', 'y']));
        assert.equal(await waiting, 2);
        assert.deepEqual(texts(rest), ['x', 'y']);
        // Received ahead by receive(), then by a batch for receive().
        a.sendManySync(words(6));
        assert.equal(b.receiveSync().data.toString(), 'w0');
        const two = new MessageBatch({ bytes: 4096, messages: 2 });
        assert.equal(b.receiveBatchSync(two), 2);
        assert.deepEqual(texts(two), ['w1', 'w2']);
        assert.deepEqual(b.receiveManySync({ max: 10 }).map((m) => m.data.toString()), ['w3', 'w4', 'w5']);
        a.sendBatchSync(batchOf(['last']));
        a.close();
        assert.equal(b.receiveBatchSync(rest), 1);
        assert.deepEqual(texts(rest), ['last']);
        throwsWith(() => b.receiveBatchSync(rest), 'ERR_IPC_PEER_CLOSED');
        await rejectsWith(() => b.receiveBatch(rest), 'ERR_IPC_PEER_CLOSED');
      } finally {
        a.close();
        b.close();
      }
    });

    it(`${type}: descriptors that came with a batch's messages are closed; a message larger than the batch stays, with them`, async () => {
      const [a, b] = socketPair({ type });
      const before = openFds().length;
      try {
        await a.send('plain');
        await a.sendFds([0, 1], 'two fds');
        await a.sendFds([2], 'x'.repeat(100));
        await a.send('after');
        const batch = new MessageBatch({ bytes: 64 });
        assert.equal(b.receiveBatchSync(batch), 2);
        assert.deepEqual(texts(batch), ['plain', 'two fds']);
        throwsWith(() => b.receiveBatchSync(batch), 'ERR_IPC_MESSAGE_TOO_LARGE', /is 100 bytes, more than the 64 bytes a batch holds; it stays/);
        const big = b.receiveSync();
        assert.equal(big.data.toString(), 'x'.repeat(100));
        assert.equal(big.fds.length, 1, 'the message that stayed keeps its descriptor');
        for (const fd of big.fds) closeSync(fd);
        assert.equal(b.receiveBatchSync(batch), 1);
        assert.deepEqual(texts(batch), ['after']);
        assert.equal(openFds().length, before, 'the batch closed the two descriptors of its message');
      } finally {
        a.close();
        b.close();
      }
    });

    it(`${type}: a timeout part-way says exactly how many went; the receiver gets exactly those`, async () => {
      const [a, b] = socketPair({ type });
      try {
        const message = 'm'.repeat(2000);
        const batch = batchOf(Array.from({ length: 2000 }, () => message));
        let sent: number;
        if (type === 'seqpacket') {
          sent = a.sendBatchSync(batch, { timeout: 50 });
        } else {
          // A stream's timeout lands inside a message: the connection closes, and the error says how many went whole.
          const error = throwsWith(() => a.sendBatchSync(batch, { timeout: 50 }), 'ERR_IPC_TIMEOUT', /(\d+) of 2000 messages had been written whole.*connection was closed/);
          sent = Number(/(\d+) of 2000/.exec(error.message)![1]);
        }
        assert.ok(sent > 0 && sent < 2000, `the peer's buffer takes some of 2000 2-KB messages, not ${sent}`);
        let got = 0;
        const into = new MessageBatch({ bytes: 1 << 20 });
        while (got < sent) {
          got += b.receiveBatchSync(into, { timeout: 5_000 });
          assert.ok([...into].every((m) => m.toString() === message));
        }
        assert.equal(got, sent);
        if (type === 'seqpacket') assert.equal(b.tryReceiveBatch(into), 0);
        else throwsWith(() => b.receiveBatchSync(into, { timeout: 5_000 }), 'ERR_IPC_FRAMING', /closed in the middle of a message/);
      } finally {
        a.close();
        b.close();
      }
    });
  }

  it('stream: small messages (copied together into one piece per write) stopped by a timeout: exactly those counted arrive, in order', () => {
    for (let round = 0; round < 3; round++) {
      const [a, b] = socketPair({ type: 'stream' });
      try {
        const sentList = Array.from({ length: 20_000 }, (_, i) => `${round}:${i}:`.padEnd(100 + (i % 7), '.'));
        // The timeout lands between two messages (a count), or inside one (the connection is closed).
        let sent: number;
        let cut = false;
        try {
          sent = a.sendBatchSync(batchOf(sentList), { timeout: 20 });
        } catch (err) {
          assert.equal((err as IpcError).code, 'ERR_IPC_TIMEOUT', String(err));
          const whole = /(\d+) of 20000 messages had been written whole/.exec((err as IpcError).message);
          assert.ok(whole !== null, String(err));
          sent = Number(whole[1]);
          cut = true;
        }
        assert.ok(sent > 0 && sent < 20_000, `the peer's buffer takes some of 20,000 100-byte messages, not ${sent}`);
        const got: string[] = [];
        const into = new MessageBatch({ bytes: 1 << 16 });
        while (got.length < sent) {
          b.receiveBatchSync(into, { timeout: 5_000 });
          got.push(...texts(into));
        }
        assert.deepEqual(got, sentList.slice(0, sent));
        if (cut) throwsWith(() => b.receiveBatchSync(into, { timeout: 5_000 }), 'ERR_IPC_FRAMING', /closed in the middle of a message/);
        else assert.equal(b.tryReceiveBatch(into), 0);
      } finally {
        a.close();
        b.close();
      }
    }
  });

  it('stream: a batch with room for less than a frame still takes the messages that fit', async () => {
    for (const bytes of [1, 2, 3, 4, 5]) {
      const [a, b] = socketPair({ type: 'stream' });
      try {
        const messages = ['', 'a', 'hi', 'abc', 'abcd'].filter((m) => m.length <= bytes);
        a.sendManySync([...messages, ...messages]);
        const batch = new MessageBatch({ bytes });
        const got: string[] = [];
        while (got.length < messages.length) {
          assert.ok(b.receiveBatchSync(batch, { timeout: 5_000 }) > 0);
          got.push(...texts(batch));
        }
        while (got.length < 2 * messages.length) {
          assert.ok((await b.receiveBatch(batch, { timeout: 5_000 })) > 0);
          got.push(...texts(batch));
        }
        assert.deepEqual(got, [...messages, ...messages], `a ${bytes}-byte batch`);
        assert.equal(b.tryReceiveBatch(batch), 0);
      } finally {
        a.close();
        b.close();
      }
    }
  });

  it('stream: whole messages a batch had no room for do not start frameTimeout; part of one does', async () => {
    const [a, b] = socketPair({ type: 'stream', frameTimeout: 50 });
    try {
      a.sendManySync(words(10));
      const two = new MessageBatch({ bytes: 4096, messages: 2 });
      assert.equal(b.receiveBatchSync(two), 2);
      // Eight whole messages wait in what was received ahead: no frame is late, however long they wait.
      await new Promise((resolve) => setTimeout(resolve, 150));
      const rest = new MessageBatch({ bytes: 4096 });
      assert.equal(b.receiveBatchSync(rest), 8);
      assert.deepEqual(texts(rest), words(8, 2));
      a.writeSync(Buffer.from([0, 0, 0, 9, 0x61]));
      assert.equal(b.tryReceiveBatch(rest), 0);
      await rejectsWith(() => b.receiveBatch(rest, { timeout: 5_000 }), 'ERR_IPC_TIMEOUT', /took more than 50 ms to arrive whole \(frameTimeout\)/);
    } finally {
      a.close();
      b.close();
    }
  });

  it('stream: a batch with room for few messages reads no further ahead than it needs (its read-ahead does not grow call by call)', () => {
    const [a, b] = socketPair({ type: 'stream' });
    try {
      const sent = 8_000;
      a.sendBatchSync(batchOf(Array.from({ length: sent }, (_, i) => `m${i}`.padEnd(8, '.'))), { timeout: 5_000 });
      const queued = native.queuedBytes(b.fd);
      assert.equal(queued, sent * 12);
      const batch = new MessageBatch({ bytes: 4 << 20, messages: 100 });
      assert.equal(b.receiveBatchSync(batch), 100);
      const after = native.queuedBytes(b.fd);
      assert.ok(after >= queued - 64 * 1024, `one call read ${queued - after} bytes for 100 messages of 12`);
      for (let i = 1; i < 50; i++) {
        assert.equal(b.receiveBatchSync(batch), 100);
        assert.equal(batch.at(99).toString(), `m${i * 100 + 99}`.padEnd(8, '.'));
      }
      assert.equal(native.queuedBytes(b.fd), after, 'what one read brought served 49 more calls: none read further ahead');
    } finally {
      a.close();
      b.close();
    }
  });

  it('pipe and stream: a batch whose last message fits only without its length prefix reads no further than the next header', () => {
    // 8 messages of 256 bytes fill a batch of 2,048 bytes: one read of its room brings 7 frames and part of the 8th,
    // whose rest is read message by message; those reads must not take the frames that only later batches have room
    // for (to copy them again): only the start of the 9th (MIN_BOUNDED_READ bytes), to learn that it does not fit.
    const message = (i: number): string => `${i}`.padEnd(256, '.');
    const ends = [pipe(), socketPair({ type: 'stream' })].map((p) => (Array.isArray(p) ? { w: p[0], r: p[1], fd: p[1].fd } : { w: p.writeEnd, r: p.readEnd, fd: p.readEnd.fd }));
    try {
      for (const { w, r, fd } of ends) {
        assert.equal(w.sendBatchSync(batchOf(Array.from({ length: 40 }, (_, i) => message(i)))), 40);
        const queued = native.queuedBytes(fd);
        assert.equal(queued, 40 * 260);
        const batch = new MessageBatch({ bytes: 8 * 256, messages: 64 });
        for (let k = 0; k < 5; k++) {
          assert.equal(r.receiveBatchSync(batch), 8);
          assert.deepEqual(texts(batch), Array.from({ length: 8 }, (_, i) => message(8 * k + i)));
          assert.equal(native.queuedBytes(fd), Math.max(0, queued - (k + 1) * 8 * 260 - MIN_BOUNDED_READ), `batch ${k} read ahead too far`);
        }
      }
    } finally {
      for (const { w, r } of ends) {
        w.close();
        r.close();
      }
    }
  });

  it('stream: a message the batch has no room for starts no frameTimeout while the application holds its batch', async () => {
    // A writer is inside a 1 MiB message (blocked: the socket is full) when a batch takes the 8 messages before it.
    // The batch reads that message's header, and no further; frameTimeout (50 ms) is for a message in flight, not for
    // a reader busy with its batch, which here takes 200 ms before it receives again.
    const [a, b] = socketPair({ type: 'stream', frameTimeout: 50, maxMessageSize: 2 << 20 });
    try {
      a.sendManySync(Array.from({ length: 8 }, (_, i) => `${i}`.padEnd(256, '.')));
      const big = a.send(Buffer.alloc(1 << 20, 0x42));
      const batch = new MessageBatch({ bytes: 8 * 256 });
      assert.equal(b.receiveBatchSync(batch), 8);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const m = await b.receive({ timeout: 5_000 });
      assert.equal(m.data.length, 1 << 20);
      assert.equal(m.data[0], 0x42);
      await big;
    } finally {
      a.close();
      b.close();
    }
  });

  it('stream: over maxMessageSize after whole messages: those come, then the error, and the connection is closed', () => {
    const [a, b] = socketPair({ type: 'stream', maxMessageSize: 100 });
    try {
      a.sendManySync(['ok-1', 'ok-2']);
      a.writeSync(Buffer.from([0, 0, 1, 0]));
      const batch = new MessageBatch({ bytes: 4096 });
      assert.equal(b.receiveBatchSync(batch), 2);
      assert.deepEqual(texts(batch), ['ok-1', 'ok-2']);
      throwsWith(() => b.receiveBatchSync(batch), 'ERR_IPC_MESSAGE_TOO_LARGE', /announces 256 bytes, more than maxMessageSize 100/);
      assert.equal(b.closed, true);
    } finally {
      a.close();
      b.close();
    }
  });

  it('stream: a peer that is not ipckit writes frames; receiveBatch takes them, however they are cut', async () => {
    const [a, b] = socketPair({ type: 'stream' });
    const writer = trackChild(spawn('python3', ['-c', [
      'import os, socket, struct',
      's = socket.socket(fileno=3)',
      'data = b"".join(struct.pack(">I", len(m)) + m for m in ((b"m%d" % i) * (i % 7) for i in range(2000)))',
      'for i in range(0, len(data), 1000): s.sendall(data[i:i + 1000])',
      's.close()'].join('\n')], { fds: { 3: a }, stdio: ['ignore', 'ignore', 'inherit'] }));
    a.close();
    const got: string[] = [];
    const batch = new MessageBatch({ bytes: 700, messages: 50 });
    try {
      while (got.length < 2000) {
        await b.receiveBatch(batch, { timeout: 20_000 });
        got.push(...texts(batch));
      }
      assert.deepEqual(got, Array.from({ length: 2000 }, (_, i) => `m${i}`.repeat(i % 7)));
      await rejectsWith(() => b.receiveBatch(batch, { timeout: 20_000 }), 'ERR_IPC_PEER_CLOSED');
      assert.deepEqual(await closed(writer), { code: 0, signal: null });
    } finally {
      b.close();
    }
  });

  it('seqpacket: empty messages among the others, however many; the end is the peer\'s close after the last', () => {
    const [a, b] = socketPair({ type: 'seqpacket' });
    try {
      const sent = ['', '', 'x', '', 'yz', '', ''];
      assert.equal(a.sendBatchSync(batchOf(sent)), sent.length);
      const batch = new MessageBatch({ bytes: 64 });
      assert.equal(b.receiveBatchSync(batch), sent.length);
      assert.deepEqual(texts(batch), sent);
      assert.deepEqual(Array.from(batch.lengths.subarray(0, batch.count)), [0, 0, 1, 0, 2, 0, 0]);
      assert.equal(b.tryReceiveBatch(batch), 0);
      a.sendBatchSync(batchOf(['', 'last']));
      a.close();
      assert.equal(b.receiveBatchSync(batch), 2);
      assert.deepEqual(texts(batch), ['', 'last']);
      throwsWith(() => b.receiveBatchSync(batch), 'ERR_IPC_PEER_CLOSED');
    } finally {
      a.close();
      b.close();
    }
  });

  it('seqpacket: a message over maxMessageSize after others: they come, then the error, then what followed it', async () => {
    const [a, b] = socketPair({ type: 'seqpacket', maxMessageSize: 8 });
    const before = openFds().length;
    try {
      a.sendSync('first');
      await a.sendFds([0], 'x'.repeat(20));
      a.sendSync('after');
      const batch = new MessageBatch({ bytes: 1024 });
      assert.equal(b.receiveBatchSync(batch), 1);
      assert.deepEqual(texts(batch), ['first']);
      throwsWith(() => b.receiveBatchSync(batch), 'ERR_IPC_MESSAGE_TOO_LARGE', /A 20-byte message arrived on .*more than maxMessageSize 8; it was discarded/);
      assert.equal(await b.receiveBatch(batch), 1);
      assert.deepEqual(texts(batch), ['after']);
      assert.equal(openFds().length, before, 'the descriptor of the discarded message was closed');
      // First in a call: thrown at once.
      a.sendSync('y'.repeat(9));
      throwsWith(() => b.tryReceiveBatch(batch), 'ERR_IPC_MESSAGE_TOO_LARGE', /A 9-byte message/);
      assert.equal(b.tryReceiveBatch(batch), 0);
    } finally {
      a.close();
      b.close();
    }
  });

  it('seqpacket: a peer that closes with messages of ours unread: the messages it sent come first (receive, receiveBatch), then the end', () => {
    for (const form of ['receiveSync', 'receiveBatchSync', 'receiveManySync'] as const) {
      const [a, b] = socketPair({ type: 'seqpacket' });
      try {
        b.sendSync('never read'); // Unread when a closes: the kernel notes ECONNRESET on b.
        a.sendManySync(['r1', '', 'r3']);
        a.close();
        const got: string[] = [];
        const batch = new MessageBatch({ bytes: 64 });
        for (;;) {
          try {
            if (form === 'receiveSync') got.push(b.receiveSync().data.toString());
            else if (form === 'receiveManySync') got.push(...b.receiveManySync({ max: 10 }).map((m) => m.data.toString()));
            else {
              b.receiveBatchSync(batch);
              got.push(...texts(batch));
            }
          } catch (err) {
            assert.equal((err as { code?: string }).code, 'ERR_IPC_PEER_CLOSED', `${form}: ${String(err)}`);
            break;
          }
        }
        assert.deepEqual(got, ['r1', '', 'r3'], form);
      } finally {
        a.close();
        b.close();
      }
    }
  });

  it('stream and seqpacket: a pidfd the kernel adds to each message (SO_PASSPIDFD, set by another holder of the socket) is closed', async (t) => {
    const SO_PASSPIDFD = 76;
    for (const type of ['stream', 'seqpacket'] as const) {
      const [a, b] = socketPair({ type });
      try {
        if (native.setSockOpt(b.fd, native.socketConstants.SOL_SOCKET, SO_PASSPIDFD, 1) < 0) return t.skip('SO_PASSPIDFD needs Linux 6.5');
        const before = openFds().length;
        a.sendManySync(words(6));
        await a.sendFds([0], 'with one');
        assert.equal(b.receiveSync().data.toString(), 'w0');
        assert.deepEqual(b.receiveManySync({ max: 2 }).map((m) => m.data.toString()), ['w1', 'w2']);
        const batch = new MessageBatch({ bytes: 64, messages: 3 });
        assert.equal(b.receiveBatchSync(batch), 3);
        assert.deepEqual(texts(batch), ['w3', 'w4', 'w5']);
        const last = b.receiveSync();
        assert.deepEqual([last.data.toString(), last.fds.length], ['with one', 1], 'the descriptor sent is kept, the pidfd is not');
        closeSync(last.fds[0]!);
        assert.equal(openFds().length, before, `${type}: no pidfd left open`);
      } finally {
        a.close();
        b.close();
      }
    }
  });

  for (const kind of ['pipe', 'stream', 'seqpacket'] as const) {
    it(`${kind}: a batch transferred while its receive waits fails it with ERR_IPC_INVALID_ARGUMENT; the message stays for the next`, async () => {
      const [a, b] = kind === 'pipe' ? (({ writeEnd, readEnd }) => [writeEnd, readEnd] as const)(pipe()) : socketPair({ type: kind });
      try {
        for (const part of ['lengths', 'data'] as const) {
          const into = new MessageBatch({ bytes: 4096 });
          const waiting = b.receiveBatch(into);
          assert.ok(await stillPending(waiting, 20));
          structuredClone(into[part].buffer, { transfer: [into[part].buffer as ArrayBuffer] });
          a.sendSync(`after ${part}`);
          await rejectsWith(() => waiting, 'ERR_IPC_INVALID_ARGUMENT', /lost its memory/);
          const other = new MessageBatch({ bytes: 4096 });
          assert.equal(b.receiveBatchSync(other, { timeout: 5_000 }), 1);
          assert.deepEqual(texts(other), [`after ${part}`]);
        }
      } finally {
        a.close();
        b.close();
      }
    });
  }

  it('refuses what is not a MessageBatch before sending or receiving anything; batches are not for request mode', async () => {
    const [a, b] = socketPair({ type: 'stream' });
    try {
      throwsWith(() => a.sendBatchSync([Buffer.from('a')] as never), 'ERR_IPC_INVALID_ARGUMENT', /batch must be a MessageBatch/);
      await rejectsWith(() => a.sendBatch(batchOf(['a']), { max: 1 } as never), 'ERR_IPC_INVALID_ARGUMENT', /no key "max"/);
      throwsWith(() => b.tryReceiveBatch('x' as never), 'ERR_IPC_INVALID_ARGUMENT', /MessageBatch/);
      await rejectsWith(() => b.receiveBatch({} as never), 'ERR_IPC_INVALID_ARGUMENT', /MessageBatch/);
      assert.equal(b.tryReceive(), undefined);
    } finally {
      a.close();
      b.close();
    }
  });
});

describe('datagram socket packed batches: sendBatch / receiveBatch', () => {
  let unique = 0;
  let shimDir: string | undefined;
  let shimBuilt: string | undefined | null = null;
  after(() => {
    if (shimDir !== undefined) rmSync(shimDir, { recursive: true, force: true });
  });
  /** test/helpers/steal-fionread.c built as a shared object, once; undefined when no C compiler works here. */
  const stealShim = (): string | undefined => {
    if (shimBuilt !== null) return shimBuilt;
    shimDir = mkdtempSync(path.join(tmpdir(), 'ipckit-steal-'));
    const source = new URL('../../test/helpers/steal-fionread.c', import.meta.url).pathname;
    const built = path.join(shimDir, 'steal.so');
    shimBuilt = undefined;
    for (const cc of [['cc'], ['g++', '-x', 'c']]) {
      if (spawnSync(cc[0]!, [...cc.slice(1), '-O2', '-shared', '-fPIC', '-o', built, source, '-ldl']).status === 0) {
        shimBuilt = built;
        break;
      }
    }
    return shimBuilt;
  };
  /** Two Unix datagram sockets connected to each other (socketpair). */
  const connectedDatagrams = (): [DatagramSocket, DatagramSocket] => {
    const fds = native.socketPair(native.socketConstants.SOCK_DGRAM);
    assert.ok(Array.isArray(fds), `socketpair: ${String(fds)}`);
    return [DatagramSocket.fromFd(fds[0]), DatagramSocket.fromFd(fds[1])];
  };
  const unixAddress = (label: string): string => `unix-dgram:@ipckit-mb-${label}-${process.pid}-${unique++}`;
  const pairOf = (kind: 'unix-dgram' | 'udp', options?: { maxMessageSize?: number }): [DatagramSocket, DatagramSocket] => kind === 'udp'
    ? [bind('udp://127.0.0.1:0', options), bind('udp://127.0.0.1:0')]
    : [bind(unixAddress('r'), options), bind(unixAddress('s'))];

  for (const kind of ['unix-dgram', 'udp'] as const) {
    it(`${kind}: one datagram per message, empty ones too, each with its sender; what fits the batch's room; 0 while none`, async () => {
      const [r, s] = pairOf(kind);
      const other = kind === 'udp' ? bind('udp://127.0.0.1:0') : bind(unixAddress('o'));
      try {
        const to = r.localAddress!;
        assert.equal(s.sendBatchSync(batchOf(['one', '', 'three']), { to }), 3);
        other.sendSync(Buffer.from('four'), { to });
        assert.equal(s.trySendBatch(batchOf(['five', 'six']), { to }), 2);
        const senders: (string | null)[] = ['stale'];
        const into = new MessageBatch({ bytes: 1024, messages: 4 });
        assert.equal(r.receiveBatchSync(into, { senders }), 4);
        assert.deepEqual(texts(into), ['one', '', 'three', 'four']);
        assert.deepEqual([...into.lengths], [3, 0, 5, 4]);
        assert.deepEqual(senders, [s.localAddress, s.localAddress, s.localAddress, other.localAddress]);
        // Room for 9 bytes: 'five' and 'six' fit, in a batch cleared first; no senders asked for.
        const small = new MessageBatch({ bytes: 9, messages: 8 });
        assert.equal(r.receiveBatchSync(small), 2);
        assert.deepEqual(texts(small), ['five', 'six']);
        assert.equal(r.tryReceiveBatch(small, { senders }), 0);
        assert.equal(small.count, 0);
        assert.deepEqual(senders, []);
        // Async: waits for the first, then takes what is queued.
        const waiting = r.receiveBatch(into, { senders });
        assert.ok(await stillPending(waiting, 20));
        assert.equal(await s.sendBatch(batchOf(['seven', 'eight']), { to }), 2);
        assert.equal(await waiting, 2);
        assert.deepEqual(texts(into), ['seven', 'eight']);
        assert.deepEqual(senders, [s.localAddress, s.localAddress]);
        await rejectsWith(() => r.receiveBatch(into, { timeout: 10 }), 'ERR_IPC_TIMEOUT');
        assert.equal(into.count, 0);
      } finally {
        for (const sock of [r, s, other]) sock.close();
      }
    });

    it(`${kind}: one larger than the batch stays, for receive; one over maxMessageSize after others ends the batch, is discarded, the rest follow`, () => {
      const [r, s] = pairOf(kind, { maxMessageSize: 16 });
      try {
        const to = r.localAddress!;
        const into = new MessageBatch({ bytes: 12, messages: 8 });
        s.sendSync(Buffer.from('thirteen byte'), { to });
        throwsWith(() => r.receiveBatchSync(into), 'ERR_IPC_MESSAGE_TOO_LARGE', /13 bytes, more than the 12 bytes a batch holds; it stays/);
        assert.equal(r.receiveSync().data.toString(), 'thirteen byte');
        s.sendManySync(['a', 'b', 'x'.repeat(17), 'c'], { to });
        assert.equal(r.receiveBatchSync(into), 2);
        assert.deepEqual(texts(into), ['a', 'b']);
        throwsWith(() => r.receiveBatchSync(into), 'ERR_IPC_MESSAGE_TOO_LARGE', new RegExp(`A 17-byte datagram from ${s.localAddress!.replace(/[.]/g, '\\.')} arrived .* more than maxMessageSize 16; it was discarded`));
        assert.equal(into.count, 0);
        assert.equal(r.receiveBatchSync(into), 1);
        assert.deepEqual(texts(into), ['c']);
      } finally {
        r.close();
        s.close();
      }
    });

    it(`${kind}: with room for more than maxMessageSize, each datagram goes straight in; one over it is discarded whole; short room measures again`, async () => {
      const [r, s] = pairOf(kind, { maxMessageSize: 16 });
      try {
        const to = r.localAddress!;
        // 40 bytes: room for more than 16 until 32 are placed; then each is measured, and one that does not fit stays.
        const into = new MessageBatch({ bytes: 40, messages: 8 });
        const senders: (string | null)[] = [];
        s.sendManySync(['x'.repeat(16), '', 'y'.repeat(16), 'z'.repeat(5), 'w'.repeat(4)], { to });
        assert.equal(r.receiveBatchSync(into, { senders }), 4);
        assert.deepEqual([...into.lengths.subarray(0, into.count)], [16, 0, 16, 5]);
        assert.deepEqual(texts(into), ['x'.repeat(16), '', 'y'.repeat(16), 'z'.repeat(5)]);
        assert.deepEqual(senders, [s.localAddress, s.localAddress, s.localAddress, s.localAddress]);
        assert.equal(r.receiveSync().data.toString(), 'w'.repeat(4), 'the one that did not fit stayed, whole');
        // One over the limit, into ample room: seen at its real length, discarded, and the batch ends before it.
        const ample = new MessageBatch({ bytes: 1024, messages: 8 });
        s.sendManySync(['a', 'b'.repeat(17), 'c'], { to });
        assert.equal(r.receiveBatchSync(ample), 1);
        assert.deepEqual(texts(ample), ['a']);
        throwsWith(() => r.receiveBatchSync(ample), 'ERR_IPC_MESSAGE_TOO_LARGE', /A 17-byte datagram from .* more than maxMessageSize 16; it was discarded/);
        assert.equal(r.receiveBatchSync(ample), 1);
        assert.deepEqual(texts(ample), ['c']);
        // The first waits (async), and takes what came with it.
        const waiting = r.receiveBatch(ample, { senders });
        assert.ok(await stillPending(waiting, 20));
        s.sendManySync(['late', 'later'], { to });
        assert.equal(await waiting, 2);
        assert.deepEqual(texts(ample), ['late', 'later']);
        assert.deepEqual(senders, [s.localAddress, s.localAddress]);
        assert.equal(r.tryReceiveBatch(ample), 0);
      } finally {
        r.close();
        s.close();
      }
    });
  }

  it('udp: more datagrams than one native call names the senders of, from two senders interleaved, all in one batch and in order', () => {
    const r = bind('udp://127.0.0.1:0');
    const a = bind('udp://127.0.0.1:0');
    const b = bind('udp://127.0.0.1:0');
    try {
      const to = r.localAddress!;
      for (let i = 0; i < 150; i++) (i % 3 === 2 ? b : a).sendSync(Buffer.from(`d${i}`), { to });
      const senders: (string | null)[] = [];
      const into = new MessageBatch({ bytes: 1 << 16, messages: 200 });
      assert.equal(r.receiveBatchSync(into, { senders }), 150);
      assert.deepEqual(texts(into), Array.from({ length: 150 }, (_, i) => `d${i}`));
      assert.deepEqual(senders, Array.from({ length: 150 }, (_, i) => (i % 3 === 2 ? b : a).localAddress));
    } finally {
      for (const sock of [r, a, b]) sock.close();
    }
  });

  it('unix-dgram: descriptors that came with a batch\'s datagrams are closed; datagrams held after a codec refusal come first, raw', () => {
    const r = bind(unixAddress('fds'), { codec: refusingCodec() });
    const s = bind(unixAddress('fds-s'));
    const before = openFds().length;
    try {
      const to = r.localAddress!;
      const file = openSync('/dev/null', 'r');
      s.sendSync(Buffer.from('with fds'), { to, fds: [file, file] });
      closeSync(file);
      s.sendManySync(['bad one', 'held', 'queued'], { to });
      const into = new MessageBatch({ bytes: 1024, messages: 8 });
      const senders: (string | null)[] = [];
      // receiveMany decodes 'with fds', stops at the refusal, and holds what it took after it.
      const first = r.receiveManySync({ max: 3 });
      assert.deepEqual(first.map((m) => m.data), ['with fds']);
      for (const fd of first[0]!.fds) closeSync(fd);
      throwsWith(() => r.receiveSync(), 'ERR_IPC_CODEC', /refused bad one/);
      assert.equal(r.receiveBatchSync(into, { senders }), 2);
      assert.deepEqual(texts(into), ['held', 'queued']);
      assert.deepEqual(senders, [s.localAddress, s.localAddress]);
      s.sendSync(Buffer.from('more fds'), { to, fds: [0, 1, 2] });
      assert.equal(r.receiveBatchSync(into), 1);
      assert.deepEqual(texts(into), ['more fds']);
      assert.equal(openFds().length, before);
    } finally {
      r.close();
      s.close();
    }
  });

  it('unix-dgram: sendBatch waits for room in the receiver\'s queue; a timeout part-way says exactly how many went; the receiver gets exactly those', async () => {
    const r = bind(unixAddress('full'), { maxMessageSize: 64 });
    const s = bind(unixAddress('full-s'));
    try {
      const to = r.localAddress!;
      const fit = s.trySendBatch(batchOf(words(3000)), { to });
      assert.ok(fit > 0 && fit < 3000, `the receiver's queue takes some of 3000, not ${fit}`);
      assert.equal(s.trySendBatch(batchOf(['x']), { to }), 0);
      const waiting = s.sendBatch(batchOf(words(3, fit)), { to });
      assert.ok(await stillPending(waiting, 30));
      const into = new MessageBatch({ bytes: 1 << 16, messages: 5 });
      assert.equal(r.receiveBatchSync(into), 5);
      assert.equal(await waiting, 3);
      const all = texts(into);
      const rest = new MessageBatch({ bytes: 1 << 16, messages: 4096 });
      for (let n = r.tryReceiveBatch(rest); n > 0; n = r.tryReceiveBatch(rest)) all.push(...texts(rest));
      assert.deepEqual(all, words(fit + 3));
      const again = s.trySendBatch(batchOf(words(3000)), { to });
      assert.equal(r.receiveBatchSync(new MessageBatch({ bytes: 1024, messages: 2 })), 2);
      assert.equal(s.sendBatchSync(batchOf(words(10, 5000)), { to, timeout: 30 }), 2);
      let total = 0;
      for (let n = r.tryReceiveBatch(rest); n > 0; n = r.tryReceiveBatch(rest)) {
        total += n;
        if (total === again) assert.deepEqual(texts(rest).slice(-2), words(2, 5000));
      }
      assert.equal(total, again);
    } finally {
      r.close();
      s.close();
    }
  });

  it('unix-dgram: a datagram another reader takes between its measure and its receive cuts none that fits: each is measured again', (t) => {
    const shim = stealShim();
    if (shim === undefined) {
      t.skip('no C compiler here to build the LD_PRELOAD stand-in for another reader');
      return;
    }
    const script = [
      `import { bind, MessageBatch } from ${JSON.stringify(INDEX)};`,
      `const r = bind('unix-dgram:@ipckit-mb-steal-' + process.pid, { maxMessageSize: 1000 });`,
      `const s = bind('unix-dgram:@ipckit-mb-steal-s-' + process.pid);`,
      `for (const [n, c] of [[100, 'a'], [30, 'b'], [120, 'c'], [5, 'd']]) s.sendSync(Buffer.alloc(n, c), { to: r.localAddress });`,
      `const batch = new MessageBatch({ bytes: 130, messages: 8 });`,
      `const seen = [];`,
      // The other reader takes 'a' (100 bytes) just after the first call measured it.
      `process.env.IPCKIT_STEAL_NEXT = '1';`,
      `for (let i = 0; i < 2; i++) {`,
      `  try { r.tryReceiveBatch(batch); seen.push([...batch].map((m) => m.length + String.fromCharCode(m[0]))); } catch (e) { seen.push(e.code); }`,
      `}`,
      `seen.push(process.env.IPCKIT_STEAL_NEXT ?? 'taken');`,
      `console.log(JSON.stringify(seen));`,
      `r.close(); s.close();`,
    ].join('\n');
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, LD_PRELOAD: shim }, encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 0, run.stderr);
    // 'c' (120 bytes) has no room after 'b' and waits for the next call, whole.
    assert.deepEqual(JSON.parse(run.stdout), [['30b'], ['120c', '5d'], 'taken']);
  });

  it('unix-dgram: receiveBatch reports a peer that dropped what was sent to it (ECONNRESET), as receive and receiveMany do', () => {
    for (const form of ['receive', 'receiveMany', 'receiveBatch'] as const) {
      const [a, b] = connectedDatagrams();
      try {
        const send = (from: DatagramSocket, text: string): void => assert.equal(native.sendMsg(from.fd, Buffer.from(text), 0, text.length, null, null, 0), text.length);
        send(b, 'm1');
        send(a, 'unread by b');
        // b disconnects: what a sent it is dropped, and a's next receive says so.
        assert.equal(native.connect(b.fd, Buffer.from([0, 0])), 0);
        const take = (): string[] => {
          if (form === 'receive') return [a.receiveSync().data.toString()];
          if (form === 'receiveMany') return a.receiveManySync().map((d) => d.data.toString());
          const into = new MessageBatch({ bytes: 64, messages: 4 });
          a.receiveBatchSync(into);
          return texts(into);
        };
        throwsWith(take, 'ECONNRESET');
        assert.deepEqual(take(), ['m1']);
      } finally {
        a.close();
        b.close();
      }
    }
  });

  it('refuses senders that cannot grow before taking any datagram; a batch changed while its send waits fails with ERR_IPC_INVALID_ARGUMENT', async () => {
    const r = bind(unixAddress('sealed'), { maxMessageSize: 64 });
    const s = bind(unixAddress('sealed-s'));
    try {
      const to = r.localAddress!;
      s.sendManySync(['one', 'two'], { to });
      const into = new MessageBatch({ bytes: 1024, messages: 8 });
      const fixedLength: (string | null)[] = [];
      Object.defineProperty(fixedLength, 'length', { writable: false });
      for (const senders of [Object.freeze([]), Object.seal([]), Object.preventExtensions([]), fixedLength, { length: 0 }]) {
        throwsWith(() => r.receiveBatchSync(into, { senders: senders as (string | null)[] }), 'ERR_IPC_INVALID_ARGUMENT', /senders must be an array that can grow/);
        await rejectsWith(() => r.receiveBatch(into, { senders: senders as (string | null)[] }), 'ERR_IPC_INVALID_ARGUMENT', /senders/);
      }
      assert.equal(r.receiveBatchSync(into), 2);
      assert.deepEqual(texts(into), ['one', 'two']);
      // The receiver's queue full, a sendBatch waits; its batch's buffer is transferred meanwhile.
      const fit = s.trySendBatch(batchOf(words(3000)), { to });
      assert.ok(fit > 0 && fit < 3000);
      const batch = batchOf(['x', 'y']);
      const waiting = s.sendBatch(batch, { to });
      assert.ok(await stillPending(waiting, 20));
      structuredClone(batch.data.buffer, { transfer: [batch.data.buffer as ArrayBuffer] });
      for (let n = r.tryReceiveBatch(into); n > 0; n = r.tryReceiveBatch(into));
      await rejectsWith(() => waiting, 'ERR_IPC_INVALID_ARGUMENT', /changed while the call waited/);
    } finally {
      r.close();
      s.close();
    }
  });

  it('refuses a bad batch, senders that are not an array, unknown options and a missing destination, before any system call', async () => {
    const r = bind('udp://127.0.0.1:0');
    try {
      const to = r.localAddress!;
      const batch = new MessageBatch({ bytes: 16 });
      throwsWith(() => r.receiveBatchSync(batch, { senders: 'x' as never }), 'ERR_IPC_INVALID_ARGUMENT', /senders/);
      throwsWith(() => r.tryReceiveBatch(batch, { from: [] } as never), 'ERR_IPC_INVALID_ARGUMENT', /from/);
      await rejectsWith(() => r.receiveBatch({} as never), 'ERR_IPC_INVALID_ARGUMENT', /MessageBatch/);
      throwsWith(() => r.sendBatchSync(batch, {} as never), 'ERR_IPC_INVALID_ARGUMENT', /to/);
      throwsWith(() => r.trySendBatch([Buffer.from('x')] as never, { to }), 'ERR_IPC_INVALID_ARGUMENT', /MessageBatch/);
      await rejectsWith(() => r.sendBatch(batch, { to: 'unix-dgram:@x' }), 'ERR_IPC_INVALID_ADDRESS');
      assert.equal(r.tryReceiveBatch(batch), 0);
    } finally {
      r.close();
    }
  });
});

describe('message batch cleanup', () => {
  it('leaves no descriptor and no child process behind', () => assertNothingLeft(fdBaseline));
});
