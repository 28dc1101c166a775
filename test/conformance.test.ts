/**
 * The conformance suite of ipckit's waiting operations: one set of checks,
 * written once and run against every waitable (the adapters of
 * test/helpers/waitables.ts), as iceoryx2's conformance tests run against
 * every implementation of a concept. Each adapter says how to make a fresh
 * object in the "a call would wait" state and how another process (an
 * actor) makes one call able to complete; the checks are:
 *
 *  1. no timeout waits until another process completes the call (async and sync);
 *  2. timeout 0 tries once;  3. timeout n rejects after at least n ms;
 *  4. the sync form's timeouts;  5. the try form;
 *  6. a pre-aborted signal does nothing;  7. an abort mid-wait loses nothing;
 *  8. close() rejects pending calls, is idempotent, and every later use fails;
 *  9. async iteration ends quietly on close;  10. first come, first served;
 * 11. unknown option keys are refused;  12. a peer killed mid-operation;
 * 13. an exactly-once soak with checksums.
 *
 * Sockets join through the adapters below (every kind's receive and send:
 * socketPair stream and seqpacket, a Unix datagram pair, TCP over
 * loopback), written here with their actor side.
 *
 * What does not apply to a waitable is skipped with the adapter's reason.
 * One more check covers pipe ends opened again by path (/dev/stdin,
 * /dev/fd/N), and the last test checks that nothing created here is left.
 *
 * CONFORMANCE_SEED fixes the soaks' random choices; CONFORMANCE_SOAK sets
 * their record count.
 */
import * as nodeTest from 'node:test';
import { type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn as spawnChild } from 'node:child_process';
import { constants as fsConstants, openSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Datagram, DatagramSocket, IpcError, MessageSocket, PipeReadEnd, PipeWriteEnd, type SocketMessage, bind, connect, listen, onSignal, pipe,
  socketPair,
} from '../src/index.js';
import { native } from '../src/native.js';
import { Actor, stopSharedActor } from './helpers/actor.js';
import { rejectsWith, stillPending, throwsWith } from './helpers/assert.js';
import { openFds } from './helpers/objects.js';
import { NATS_WAITABLES, natsLeftovers, stopNatsServer } from './helpers/nats-waitables.js';
import { killAllPeers, runningChildren } from './helpers/peer.js';
import { prng, readRecord, record } from './helpers/records.js';
import {
  type BatchCalls, CHECKS, CONFORMANCE_SIGNALS, batchFor, batchesOfOne, packOf, packedSends, unpacked, type Check, type ClosedCall, type Instance, type Options, REMOTE, type ReceiveSoak, type RemoteContext,
  type QueueParts, type SendSoak, type SoakReport, type Tag, WAITABLES, type Waitable, fifoLeftovers, objects, receivingCalls, unit, unitReceiver, unitTag,
} from './helpers/waitables.js';

/**
 * Set in the environment of an actor that runs the socket handlers (see
 * socketActor()): the actor imports this file for SOCKET_REMOTE, and the
 * file then registers no test (these do nothing).
 */
const SOCKET_ACTOR = 'IPCKIT_CONFORMANCE_SOCKET_ACTOR';
const inActor = process.env[SOCKET_ACTOR] !== undefined;
const { after, before, describe, it } = inActor
  ? { after: () => undefined, before: () => undefined, describe: () => undefined, it: () => undefined }
  : nodeTest;

const SOAK_COUNT = Number(process.env.CONFORMANCE_SOAK ?? 20_000);
const SEED = Number(process.env.CONFORMANCE_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** Every test gets this long before node:test fails it (a hang is a failure, not a stuck run). */
const TIMEOUT = { timeout: 60_000 };
/** Timeouts the checks use: long enough to be clearly a wait, short enough to keep the suite quick. */
const N_MS = 80;
/** How long a call that must not hang may take, when it is not the point. */
const BOUNDED = 20_000;

/** Fails if the actual wait was shorter than asked. performance.now() may read up to 1 ms less than the timer's clock. */
function atLeast(started: number, ms: number, what: string): void {
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= ms - 1, `${what} gave up after ${elapsed.toFixed(1)} ms, before its ${ms} ms`);
}

/** The tag a completed call yields: the supplied unit's (receivers) or its own (senders, locks). */
function expected(w: Waitable, call: Tag, supplied: Tag): Tag {
  return w.yields === 'unit' ? supplied : call;
}

/** Skips `check` with the adapter's reason; true if it applies. */
function applies(t: TestContext, w: Waitable, check: Check): boolean {
  const reason = w.notApplicable[check];
  if (reason === undefined) return true;
  t.skip(reason);
  return false;
}

/** The sync form of an instance whose waitable has one. */
function syncOf(instance: Instance): NonNullable<Instance['opSync']> {
  assert.ok(instance.opSync !== undefined, 'the adapter has a sync form (else "sync" is not applicable)');
  return instance.opSync.bind(instance);
}

/** Runs `fn` on a fresh instance of `w`, always cleaning up. */
async function withInstance(w: Waitable, fn: (instance: Instance) => Promise<void>): Promise<void> {
  const instance = await w.create();
  try {
    await fn(instance);
  } finally {
    await instance.cleanup();
  }
}

/** Makes one call able to complete and waits until it is. */
async function supply(instance: Instance, tag: Tag): Promise<void> {
  await (await instance.supply(tag)).done;
}

/** For senders: the other side got exactly these tags, in this order. */
async function checkDelivered(instance: Instance, tags: Tag[]): Promise<void> {
  if (instance.delivered !== undefined) assert.deepEqual(await instance.delivered(), tags, 'what reached the other side');
}

/** Calls an async method of a closed handle: it must return a promise (not throw) that rejects with ERR_IPC_CLOSED. */
async function rejectsClosed(name: string, call: () => unknown): Promise<void> {
  let result: unknown;
  try {
    result = call();
  } catch (err) {
    assert.fail(`${name} threw ${(err as IpcError).code ?? err} synchronously instead of returning a rejected promise`);
  }
  assert.ok(result instanceof Promise, `${name} returns a promise`);
  await rejectsWith(() => result, 'ERR_IPC_CLOSED');
}

/** Whether `err` is the end of a call that timed out or was aborted (expected in the soaks). */
function gaveUp(err: unknown): boolean {
  return err instanceof IpcError && (err.code === 'ERR_IPC_TIMEOUT' || err.code === 'ERR_IPC_ABORTED');
}

// ---------------------------------------------------------------------------
// Soak drivers: random mixes of the three forms, timeouts and aborts.

interface Mix {
  forms: Record<string, number>;
}

function count(mix: Mix, form: string): void {
  mix.forms[form] = (mix.forms[form] ?? 0) + 1;
}

/** A peer sends `total` records; this side receives them with a random mix of calls and checks each arrives once, in order, intact. */
async function driveReceive(s: ReceiveSoak, total: number, seed: number): Promise<Mix> {
  const rnd = prng(seed);
  const mix: Mix = { forms: {} };
  const problems: string[] = [];
  let next = 0;
  let ended = false;
  let peerFinished = false;
  void s.peerDone.then(() => { peerFinished = true; }, () => undefined);

  /** Takes a raw result (`undefined`: nothing); whether anything came. */
  const take = (raw: unknown): boolean => {
    const records = s.records(raw);
    if (records === null) {
      ended = true;
      return true;
    }
    for (const r of records) {
      if ((!r.ok || r.seq !== next) && problems.length < 5) problems.push(`record ${r.seq} (checksum ${r.ok ? 'ok' : 'bad'}) where ${next} was due`);
      next = r.seq + 1;
    }
    return raw !== undefined;
  };
  const settled = async (p: Promise<unknown>): Promise<unknown> => {
    try {
      return await p;
    } catch (err) {
      if (gaveUp(err)) return undefined;
      throw err;
    }
  };
  const settledSync = (fn: () => unknown): unknown => {
    try {
      return fn();
    } catch (err) {
      if (gaveUp(err)) return undefined;
      throw err;
    }
  };
  // A call without a timeout is made only while enough records are due that it cannot wait forever
  // (a batch may take several: each call counts for as many as it may take).
  const mayWaitForever = (calls: number): boolean => s.ends || total - next > calls * (s.perCall ?? 1);
  const ms = (max: number): number => Math.floor(rnd() * (max + 1));

  while (!ended && (s.ends || next < total)) {
    const dice = rnd();
    let got: boolean;
    if (dice < 0.2) {
      count(mix, 'async');
      got = take(await settled(s.async(mayWaitForever(1) ? {} : { timeout: 2_000 })));
    } else if (dice < 0.35) {
      count(mix, 'async timeout');
      got = take(await settled(s.async({ timeout: ms(3) })));
    } else if (dice < 0.45) {
      count(mix, 'async aborted mid-wait');
      const ac = new AbortController();
      const call = s.async({ signal: ac.signal, ...(mayWaitForever(1) ? {} : { timeout: 2_000 }) });
      setTimeout(() => ac.abort(), ms(2));
      got = take(await settled(call));
    } else if (dice < 0.5) {
      count(mix, 'async pre-aborted');
      const ac = new AbortController();
      ac.abort();
      await rejectsWith(() => s.async({ signal: ac.signal }), 'ERR_IPC_ABORTED');
      continue;
    } else if (dice < 0.65 && s.sync !== undefined) {
      count(mix, 'sync timeout');
      const sync = s.sync;
      got = take(settledSync(() => sync({ timeout: ms(3) })));
    } else if (dice < 0.8 && s.try !== undefined) {
      count(mix, 'try');
      got = take(await s.try());
    } else {
      // Three calls at once: served in the order they were made.
      count(mix, 'batch of 3 async');
      const calls = [0, 1, 2].map((i) => {
        const options: Options = rnd() < 0.5 ? { timeout: ms(5) } : mayWaitForever(3) ? {} : { timeout: 2_000 };
        if (i === 1 && rnd() < 0.3) {
          const ac = new AbortController();
          setTimeout(() => ac.abort(), ms(2));
          options.signal = ac.signal;
        }
        return settled(s.async(options));
      });
      got = false;
      for (const raw of await Promise.all(calls)) got = take(raw) || got;
    }
    if (!got && peerFinished && !ended) {
      // Everything was sent, yet nothing came: the rest must come within a second, or it was lost.
      count(mix, 'async confirm');
      if (!take(await settled(s.async({ timeout: 1_000 })))) break;
    }
  }
  await s.peerDone;
  if (s.ends) {
    assert.equal(ended, true, 'the stream ended');
    assert.equal(s.leftover?.() ?? 0, 0, 'no unfinished record at the end of the data');
  } else if (s.try !== undefined) {
    assert.equal(await s.try(), undefined, 'nothing arrives beyond the last record');
  } else {
    await rejectsWith(() => s.async({ timeout: 0 }), 'ERR_IPC_TIMEOUT');
  }
  assert.deepEqual({ received: next, problems }, { received: total, problems: [] }, `seed ${seed}`);
  return mix;
}

/** This side sends `total` records with a random mix of calls; a peer checks each arrives once, in order, intact. */
async function driveSend(s: SendSoak, total: number, seed: number): Promise<Mix> {
  const rnd = prng(seed);
  const mix: Mix = { forms: {} };
  const ms = (max: number): number => Math.floor(rnd() * (max + 1));
  /** Runs one send of `seq`; whether it went in (a timeout or an abort means it did not). */
  const attempt = async (fn: () => Promise<void> | void): Promise<boolean> => {
    try {
      await fn();
      return true;
    } catch (err) {
      if (gaveUp(err)) return false;
      throw err;
    }
  };
  let seq = 0;
  while (seq < total) {
    const dice = rnd();
    if (dice < 0.2) {
      count(mix, 'async');
      await s.async(seq, {});
      seq++;
    } else if (dice < 0.35) {
      count(mix, 'async timeout');
      if (await attempt(() => s.async(seq, { timeout: ms(3) }))) seq++;
    } else if (dice < 0.45) {
      count(mix, 'async aborted mid-wait');
      const ac = new AbortController();
      const call = s.async(seq, { signal: ac.signal });
      setTimeout(() => ac.abort(), ms(2));
      if (await attempt(() => call)) seq++;
    } else if (dice < 0.5) {
      count(mix, 'async pre-aborted');
      const ac = new AbortController();
      ac.abort();
      await rejectsWith(() => s.async(seq, { signal: ac.signal }), 'ERR_IPC_ABORTED');
    } else if (dice < 0.65 && s.sync !== undefined) {
      count(mix, 'sync timeout');
      const sync = s.sync;
      if (await attempt(() => sync(seq, { timeout: ms(3) }))) seq++;
    } else if (dice < 0.8 && s.try !== undefined) {
      count(mix, 'try');
      if (await s.try(seq)) seq++;
    } else if (s.many !== undefined && rnd() < 0.5) {
      // One batched call of 1 to 8 records: with a timeout or an abort, the first n went in, and n says which.
      const size = Math.min(total - seq, 1 + Math.floor(rnd() * 8));
      const seqs = Array.from({ length: size }, (_, i) => seq + i);
      const how = rnd();
      count(mix, how < 0.4 ? 'sendMany' : how < 0.7 ? 'sendMany timeout' : 'sendMany aborted mid-wait');
      const options: Options = how < 0.4 ? {} : how < 0.7 ? { timeout: ms(3) } : {};
      if (how >= 0.7) {
        const ac = new AbortController();
        setTimeout(() => ac.abort(), ms(2));
        options.signal = ac.signal;
      }
      let sent = 0;
      try {
        sent = await s.many(seqs, options);
      } catch (err) {
        if (!gaveUp(err)) throw err;
      }
      assert.ok(sent >= 0 && sent <= size && (how >= 0.4 || sent === size), `sendMany of ${size} reported ${sent}`);
      seq += sent;
    } else {
      // Calls made together go in in the order they were made.
      count(mix, 'batch of 3 async');
      const n = Math.min(3, total - seq);
      await Promise.all(Array.from({ length: n }, (_, i) => s.async(seq + i, {})));
      seq += n;
    }
  }
  assert.deepEqual(await s.finish(), { received: total, bad: [] }, `seed ${seed}`);
  return mix;
}

// ---------------------------------------------------------------------------
// Sockets: the adapters of every socket kind, written here beside the suite.
//
// Their other side runs in an Actor (test/helpers/actor.ts), which runs the
// REMOTE handlers of waitables.ts: an actor spawned by socketActor() also
// imports this file first (NODE_OPTIONS=--import), which adds the socket
// handlers of SOCKET_REMOTE below to REMOTE and registers no test.

/** An actor that can run the socket handlers; `fds` become its fd 3, 4, ... */
function socketActor(fds: number[]): Actor {
  const saved = { options: process.env.NODE_OPTIONS, flag: process.env[SOCKET_ACTOR] };
  process.env.NODE_OPTIONS = `${saved.options ?? ''} --import=${import.meta.url}`.trim();
  process.env[SOCKET_ACTOR] = '1';
  try {
    return new Actor(fds);
  } finally {
    for (const [key, value] of [['NODE_OPTIONS', saved.options], [SOCKET_ACTOR, saved.flag]] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

/** How long a remote wait may take before it fails instead of hanging. */
const REMOTE_TIMEOUT = 20_000;

type SocketKindName = 'stream' | 'seqpacket' | 'dgram' | 'tcp';

/** A message socket or a datagram socket (sending to `to`), behind one face; receives check the metadata. */
interface Side extends QueueParts {
  readonly fd: number;
  /** The batched calls over unit bytes, receives checked as single ones are. */
  batch: BatchCalls;
  /** The same through packed batches (sendBatch / receiveBatch), for a MessageSocket. */
  packed?: BatchCalls;
}

function messageSide(s: MessageSocket): Side {
  const data = (m: SocketMessage): Buffer => {
    assert.deepEqual(m, { data: m.data, fds: [] });
    return m.data;
  };
  const streamOnly: [string, () => unknown, boolean][] = s.kind === 'unix' || s.kind === 'tcp'
    ? [['read', () => s.read(), true], ['readSync', () => s.readSync(), false], ['tryRead', () => s.tryRead(), false],
      ['write', () => s.write(unit(0)), true], ['writeSync', () => s.writeSync(unit(0)), false]]
    : [];
  const unixOnly: [string, () => unknown, boolean][] = s.kind === 'tcp'
    ? []
    : [['sendFds', () => s.sendFds([0]), true], ['sendFdsSync', () => s.sendFdsSync([0]), false]];
  const streamBatches: [string, () => unknown, boolean][] = s.kind === 'unix' || s.kind === 'tcp'
    ? [['writev', () => s.writev([unit(0)]), true], ['writevSync', () => s.writevSync([unit(0)]), false],
      ['tryWritev', () => s.tryWritev([unit(0)]), false], ['readv', () => s.readv([unit(0)]), true],
      ['readvSync', () => s.readvSync([unit(0)]), false], ['tryReadv', () => s.tryReadv([unit(0)]), false]]
    : [];
  return {
    get fd() {
      return s.fd;
    },
    send: (d, o) => s.send(d, o),
    sendSync: (d, o) => s.sendSync(d, o),
    trySend: (d) => s.trySend(d),
    ...receivingCalls(s, data),
    batch: {
      sendMany: (l, o) => s.sendMany(l, o),
      sendManySync: (l, o) => s.sendManySync(l, o),
      trySendMany: (l) => s.trySendMany(l),
      receiveMany: (o) => s.receiveMany(o).then((list) => list.map(data)),
      receiveManySync: (o) => s.receiveManySync(o).map(data),
      tryReceiveMany: (o) => s.tryReceiveMany(o).map(data),
    },
    packed: {
      ...packedSends(s),
      receiveMany: (o) => {
        const { max, ...rest } = o ?? {};
        const batch = batchFor(max as number | undefined);
        return s.receiveBatch(batch, rest).then(() => unpacked(batch));
      },
      receiveManySync: (o) => {
        const { max, ...rest } = o ?? {};
        const batch = batchFor(max as number | undefined);
        s.receiveBatchSync(batch, rest);
        return unpacked(batch);
      },
      tryReceiveMany: (o) => {
        const batch = batchFor(o?.max as number | undefined);
        s.tryReceiveBatch(batch);
        return unpacked(batch);
      },
    },
    close: () => s.close(),
    afterClose: () => closedCalls([
      ['send', () => s.send(unit(0)), true], ['sendSync', () => s.sendSync(unit(0)), false], ['trySend', () => s.trySend(unit(0)), false],
      ['sendBatch', () => s.sendBatch(packOf([unit(0)])), true], ['sendBatchSync', () => s.sendBatchSync(packOf([unit(0)])), false],
      ['trySendBatch', () => s.trySendBatch(packOf([unit(0)])), false], ['receiveBatch', () => s.receiveBatch(batchFor()), true],
      ['receiveBatchSync', () => s.receiveBatchSync(batchFor()), false], ['tryReceiveBatch', () => s.tryReceiveBatch(batchFor()), false],
      ['receive', () => s.receive(), true], ['receiveSync', () => s.receiveSync(), false], ['tryReceive', () => s.tryReceive(), false],
      ['sendMany', () => s.sendMany([unit(0)]), true], ['sendManySync', () => s.sendManySync([unit(0)]), false],
      ['trySendMany', () => s.trySendMany([unit(0)]), false], ['receiveMany', () => s.receiveMany(), true],
      ['receiveManySync', () => s.receiveManySync(), false], ['tryReceiveMany', () => s.tryReceiveMany(), false],
      ['request', () => s.request(unit(0)), true], ['serve', () => s.serve(() => unit(0)), true], ['end', () => s.end(), false],
      ['fd', () => s.fd, false], ['localAddress', () => s.localAddress, false], ...streamOnly, ...unixOnly, ...streamBatches,
    ]),
  };
}

/** A datagram socket that sends to `to` and must receive from `from`. */
function datagramSide(s: DatagramSocket, to: string, from: string): Side {
  const data = (d: Datagram): Buffer => {
    assert.deepEqual(d, { data: d.data, from, fds: [] });
    return d.data;
  };
  return {
    get fd() {
      return s.fd;
    },
    send: (d, o) => s.send(d, { to, ...o }),
    sendSync: (d, o) => s.sendSync(d, { to, ...o }),
    trySend: (d) => s.trySend(d, { to }),
    ...receivingCalls(s, data),
    batch: {
      sendMany: (l, o) => s.sendMany(l, { to, ...o }),
      sendManySync: (l, o) => s.sendManySync(l, { to, ...o }),
      trySendMany: (l) => s.trySendMany(l, { to }),
      receiveMany: (o) => s.receiveMany(o).then((list) => list.map(data)),
      receiveManySync: (o) => s.receiveManySync(o).map(data),
      tryReceiveMany: (o) => s.tryReceiveMany(o).map(data),
    },
    close: () => s.close(),
    afterClose: () => closedCalls([
      ['send', () => s.send(unit(0), { to }), true], ['sendSync', () => s.sendSync(unit(0), { to }), false],
      ['trySend', () => s.trySend(unit(0), { to }), false], ['receive', () => s.receive(), true],
      ['receiveSync', () => s.receiveSync(), false], ['tryReceive', () => s.tryReceive(), false],
      ['sendMany', () => s.sendMany([unit(0)], { to }), true], ['sendManySync', () => s.sendManySync([unit(0)], { to }), false],
      ['trySendMany', () => s.trySendMany([unit(0)], { to }), false], ['receiveMany', () => s.receiveMany(), true],
      ['receiveManySync', () => s.receiveManySync(), false], ['tryReceiveMany', () => s.tryReceiveMany(), false],
      ['fd', () => s.fd, false], ['localAddress', () => s.localAddress, false],
    ]),
  };
}

function closedCalls(entries: [string, () => unknown, boolean][]): ClosedCall[] {
  return entries.map(([name, call, isAsync]) => ({ name, call, async: isAsync }));
}

/** Two connected ends: `mine` is tested, `theirs` goes to an actor (and is kept here, for what this process does synchronously). */
interface Ends {
  mine: Side;
  theirs: Side;
  /** What an actor with a copy of `theirs` needs: a message socket, or a datagram socket that talks to `to` (mine's address). */
  remote: Remote;
  /** The same for an actor with a copy of `mine`. */
  mineRemote: Remote;
  /** The raw end the actor gets, for reads that must not read ahead (MessageSocket) and for the buffer sizes. */
  theirsSocket: MessageSocket | DatagramSocket;
  mineSocket: MessageSocket | DatagramSocket;
  close(): void;
}

/** How an actor uses the socket it got: a message socket, or a datagram socket that sends to and receives from `to`. */
type Remote = { datagram: false } | { datagram: true; to: string };

let socketNames = 0;
const abstractName = (): string => `ipckit-conformance-${process.pid}-${++socketNames}-${Math.random().toString(36).slice(2, 8)}`;

/** A fresh pair of connected ends of `kind`; for TCP, `theirsOptions` are the connecting end's (the actor's). */
async function makeEnds(kind: SocketKindName, theirsOptions: { receiveBuffer?: number } = {}): Promise<Ends> {
  let mine: MessageSocket | DatagramSocket;
  let theirs: MessageSocket | DatagramSocket;
  let remote: Remote = { datagram: false };
  let mineRemote: Remote = remote;
  if (kind === 'stream' || kind === 'seqpacket') {
    [mine, theirs] = socketPair({ type: kind });
  } else if (kind === 'tcp') {
    const server = listen('tcp://127.0.0.1:0');
    try {
      theirs = await connect(server.address, { timeout: REMOTE_TIMEOUT, ...theirsOptions });
      mine = await server.accept({ timeout: REMOTE_TIMEOUT });
    } finally {
      server.close();
    }
  } else {
    const name = abstractName();
    mine = bind(`unix-dgram:@${name}-mine`);
    theirs = bind(`unix-dgram:@${name}-theirs`);
    remote = { datagram: true, to: mine.address };
    mineRemote = { datagram: true, to: theirs.address };
  }
  const sides = remote.datagram
    ? { mine: datagramSide(mine as DatagramSocket, theirs.address, theirs.address), theirs: datagramSide(theirs as DatagramSocket, mine.address, mine.address) }
    : { mine: messageSide(mine as MessageSocket), theirs: messageSide(theirs as MessageSocket) };
  return {
    ...sides, remote, mineRemote, mineSocket: mine, theirsSocket: theirs,
    close() {
      mine.close();
      theirs.close();
    },
  };
}

/** The actor's end of the socket it got as fd 3. */
function remoteSocket(ctx: RemoteContext, datagram: boolean): MessageSocket | DatagramSocket {
  return ctx.state.handle('fd3', () => (datagram ? DatagramSocket.fromFd(3) : MessageSocket.fromFd(3)), (s) => s.close());
}

/** `size` bytes exactly from a stream socket, with raw reads that never read past them. */
async function readExactly(s: MessageSocket, size: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let got = 0; got < size;) {
    const chunk = await s.read({ maxBytes: size - got, timeout: REMOTE_TIMEOUT });
    assert.ok(chunk !== null, 'the stream ended inside a unit');
    parts.push(chunk);
    got += chunk.length;
  }
  return Buffer.concat(parts);
}

function readExactlySync(s: MessageSocket, size: number): Buffer {
  const parts: Buffer[] = [];
  for (let got = 0; got < size;) {
    const chunk = s.readSync({ maxBytes: size - got, timeout: REMOTE_TIMEOUT });
    assert.ok(chunk !== null, 'the stream ended inside a unit');
    parts.push(chunk);
    got += chunk.length;
  }
  return Buffer.concat(parts);
}

/**
 * One framed unit off a stream socket, reading exactly its bytes: two
 * processes read the same stream in turn (this one and the actor), so
 * neither may read ahead into the next unit.
 */
async function frameOf(s: MessageSocket): Promise<Buffer> {
  return readExactly(s, (await readExactly(s, 4)).readUInt32BE(0));
}

function frameOfSync(s: MessageSocket): Buffer {
  return readExactlySync(s, readExactlySync(s, 4).readUInt32BE(0));
}

/** The socket's send buffer in bytes (SO_SNDBUF, as the kernel counts it). */
function sendBuffer(fd: number): number {
  const S = native.socketConstants;
  const n = native.getSockOpt(fd, S.SOL_SOCKET, S.SO_SNDBUF);
  assert.ok(n > 0, `SO_SNDBUF of fd ${fd}: ${n}`);
  return n;
}

/** Waits (without blocking the loop) until `fd` has something to read, at most `ms`: TCP over loopback may deliver a moment after the send returned. */
async function readable(fd: number, ms = 200): Promise<void> {
  const deadline = performance.now() + ms;
  while ((native.pollFd(fd, native.constants.POLLIN, 0) & native.constants.POLLIN) === 0 && performance.now() < deadline) await sleep(1);
}

/** A connection's end (ERR_IPC_PEER_CLOSED) as the end of a stream for the soak driver. */
function endAsNull<T>(p: Promise<T>): Promise<T | null> {
  return p.catch((err: unknown) => {
    if (err instanceof IpcError && err.code === 'ERR_IPC_PEER_CLOSED') return null;
    throw err;
  });
}

function endAsNullSync<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch (err) {
    if (err instanceof IpcError && err.code === 'ERR_IPC_PEER_CLOSED') return null;
    throw err;
  }
}

const SOCKET_LABELS: Record<SocketKindName, string> = {
  stream: 'socketPair (stream)', seqpacket: 'socketPair (seqpacket)', dgram: 'unix-dgram pair', tcp: 'TCP loopback',
};

/** The one unit a batched receive got (one was there). */
function oneUnit(list: Buffer[]): Tag {
  assert.equal(list.length, 1, 'one unit was there, and one came');
  return unitTag(list[0]!);
}

/**
 * A socket's receive (`batched`: receiveMany; 'packed': receiveBatch): units
 * sent by the actor's end (or this process's copy of it).
 */
function socketReceive(kind: SocketKindName, batched: boolean | 'packed' = false): Waitable {
  const pick = (side: Side): BatchCalls => (batched === 'packed' ? side.packed! : side.batch);
  return {
    name: `${SOCKET_LABELS[kind]}: ${batched === 'packed' ? 'receiveBatch' : batched ? 'receiveMany' : 'receive'}`,
    yields: 'unit',
    notApplicable: batched ? { iteration: 'async iteration is receive()\'s: the receive adapter checks it' } : {},
    async create() {
      const ends = await makeEnds(kind);
      const { mine, theirs, remote } = ends;
      let actor: Actor | undefined;
      const fd = mine.fd;
      const arrived = kind === 'tcp' ? () => readable(fd) : () => Promise.resolve();
      const many: Partial<Instance> = batched ? {
        op: (_tag, o) => pick(mine).receiveMany({ max: 4, ...o }).then(oneUnit),
        opSync: (_tag, o) => oneUnit(pick(mine).receiveManySync({ max: 4, ...o })),
        tryOp: {
          call: () => {
            const list = pick(mine).tryReceiveMany({ max: 4 });
            return list.length === 0 ? { raw: undefined, tag: undefined } : { raw: list, tag: oneUnit(list) };
          },
          nothing: undefined,
        },
      } : {};
      return withAddress<Instance>({
        ...unitReceiver(mine, theirs),
        ...many,
        async supply(tag, delayMs) {
          actor ??= socketActor([theirs.fd]);
          const request = await actor.start('socket.send', { ...remote, tag, delayMs });
          return { done: request.done.then(arrived) };
        },
        async cleanup() {
          ends.close();
          await actor?.stop();
        },
      }, { fd, remote: ends.mineRemote });
    },
    peerKilled: {
      doing: 'blocked in receiveSync on a copy of the same socket',
      order: 'peer-first',
      blocked: true,
      outcome: 'supply',
      async start(instance) {
        const { fd, remote } = addressOf(instance) as { fd: number; remote: Remote };
        const peer = socketActor([fd]);
        await peer.start('socket.blockReceive', remote);
        return peer;
      },
    },
    async soak(count, seed) {
      const ends = await makeEnds(kind);
      const peer = socketActor([ends.theirs.fd]);
      // The actor holds the only other end (a datagram socket: a copy): its close is the end of the connection.
      if (!ends.remote.datagram) ends.theirs.close();
      const peerDone = peer.call('socket.soakSend', { ...ends.remote, count, seed, batched });
      const { mine } = ends;
      const some = (list: Buffer[] | null): Buffer[] | null | undefined => (list !== null && list.length === 0 ? undefined : list);
      const forms = batched
        ? { async: (o: Options) => endAsNull(pick(mine).receiveMany({ max: 8, ...o })), sync: (o: Options) => endAsNullSync(() => pick(mine).receiveManySync({ max: 8, ...o })),
          try: () => some(endAsNullSync(() => pick(mine).tryReceiveMany({ max: 8 }))) }
        : { async: (o: Options) => endAsNull(mine.receive(o)), sync: (o: Options) => endAsNullSync(() => mine.receiveSync(o)),
          try: () => endAsNullSync(() => mine.tryReceive()) };
      return {
        direction: 'receive',
        ends: !ends.remote.datagram,
        peerDone,
        ...forms,
        perCall: batched ? 8 : 1,
        records: (raw) => (raw === null ? null : raw === undefined ? [] : batched ? (raw as Buffer[]).map(readRecord) : [readRecord(raw as Buffer)]),
        leftover: () => 0,
        async cleanup() {
          ends.close();
          await peer.stop();
        },
      };
    },
  };
}

/**
 * The unit a send of `kind` is made of, and how full a socket is: a Unix
 * stream or seqpacket socket counts its send buffer in bytes, and is
 * writable again (POLLOUT) only once three quarters of it are free, so one
 * unit fills it whole; taking that unit empties it, and one more unit fills
 * it again. A seqpacket unit is one packet of SO_SNDBUF − 32 bytes. A stream
 * unit must also be taken in one go: the kernel frees a stream's bytes piece
 * by piece (skbs of at most SO_SNDBUF / 2 − 64 bytes, and smaller still
 * past ~36 KiB), and a writer woken while a quarter of the previous unit
 * was still unread would put in only part of the next one, whose rest then
 * waits for a take nobody asked for. So the stream's send buffer is made
 * 64 KiB and its unit exactly two pieces (SO_SNDBUF − 128 bytes with the
 * prefix): after the first is read, half the buffer is still charged, and
 * the writer wakes only when the unit is gone ({@link streamUnit} checks
 * this on the running kernel). A Unix datagram socket sends to a receiver
 * that queues at most net.unix.max_dgram_qlen + 1 datagrams: any unit will
 * do.
 */
function unitSize(kind: SocketKindName, fd: number): number {
  if (kind === 'stream') return streamUnit(fd);
  if (kind === 'seqpacket') return sendBuffer(fd) - 32;
  return 16;
}

/**
 * Makes the stream end `fd` a 64 KiB send buffer and returns the unit's
 * payload size, after checking on a socket pair of the same buffer that one
 * unit fills it and that its writer is not woken before the whole unit has
 * been read.
 */
function streamUnit(fd: number): number {
  const S = native.socketConstants;
  assert.equal(native.setSockOpt(fd, S.SOL_SOCKET, S.SO_SNDBUF, 32768), 0);
  const size = sendBuffer(fd) - 132;
  const [a, b] = socketPair();
  try {
    assert.equal(native.setSockOpt(a.fd, S.SOL_SOCKET, S.SO_SNDBUF, 32768), 0);
    assert.equal(a.trySend(Buffer.alloc(size)), true, 'a unit goes into an empty socket');
    assert.equal(a.trySend(Buffer.alloc(size)), false, 'one unit fills the socket');
    for (let read = 0; read < 4 + size;) {
      assert.equal(native.pollFd(a.fd, native.constants.POLLOUT, 0) & native.constants.POLLOUT, 0,
        `the writer is woken only once the whole unit is read (woken after ${read} of ${4 + size} bytes)`);
      read += b.readSync({ maxBytes: Math.min(4096, 4 + size - read) })!.length;
    }
    assert.notEqual(native.pollFd(a.fd, native.constants.POLLOUT, 0) & native.constants.POLLOUT, 0, 'the unit read, the writer is woken');
  } finally {
    a.close();
    b.close();
  }
  return size;
}

/** Why TCP's send cannot run the checks that count completions per call, or make sync calls on a full socket. */
const TCP_CAPACITY = 'TCP has no capacity in whole messages: one read of the peer makes room for as much as the kernel\'s ' +
  'autotuned buffers and window decide (a completion here is "the peer read all there was", which serves every waiting call), and ' +
  'the kernel takes part of a message when its buffer fills inside one, so the filling ends with a trySend the kernel took in part, ' +
  'whose rest stays committed on the write lane: a sync call then fails with ERR_IPC_DEADLOCK until the peer reads; and a peer ' +
  'blocked on a copy of the "full" socket is not blocked for long: as ACKs come and the window opens, its send goes through before ' +
  'it can be killed mid-wait, on a loaded machine within milliseconds, and so does a pending call before close() can reject it, ' +
  'or a timed one before its timeout (checks 6, 11 and 13 run; a Unix stream runs the same code through every check)';

/**
 * A socket's send (`batched`: sendMany of one unit), on a full socket: each
 * completion is the actor (or this process) taking one unit; TCP: the
 * actor reading all there is.
 */
function socketSend(kind: SocketKindName, batched: boolean | 'packed' = false): Waitable {
  const tcp = kind === 'tcp';
  const one = (n: number): void => assert.equal(n, 1, 'the batch of one went');
  const pick = (side: Side): BatchCalls => (batched === 'packed' ? side.packed! : side.batch);
  return {
    name: `${SOCKET_LABELS[kind]}: ${batched === 'packed' ? 'sendBatch' : batched ? 'sendMany' : 'send'}`,
    yields: 'call',
    notApplicable: {
      iteration: 'a sender is not a receiver: there is nothing to iterate',
      ...(tcp ? {
        waits: TCP_CAPACITY, timeoutZero: TCP_CAPACITY, timeoutN: TCP_CAPACITY, sync: TCP_CAPACITY, try: TCP_CAPACITY,
        abortMidWait: TCP_CAPACITY, order: TCP_CAPACITY, close: TCP_CAPACITY, peerKilled: TCP_CAPACITY,
      } : {}),
    },
    async create() {
      // TCP: a small receive buffer on the actor's end keeps the window, and so the filling, small.
      const ends = await makeEnds(kind, { receiveBuffer: 2048 });
      const { mine, theirs, remote } = ends;
      const size = unitSize(kind, mine.fd);
      // Units that went in (TCP: the total the actor must read to empty the socket).
      let written = 0;
      for (let i = 1; mine.trySend(unit(-i, size)); i++) {
        written++;
        if (kind === 'stream' || kind === 'seqpacket') {
          assert.equal(native.queuedBytes(theirs.fd), kind === 'stream' ? 4 + size : size, 'one unit went in whole, in one attempt');
          assert.equal(mine.trySend(unit(-2, size)), false, 'one unit fills the socket');
          break;
        }
      }
      assert.ok(written > 0, 'filling the socket');
      const actor = socketActor([theirs.fd]);
      const taken: Tag[] = [];
      const wrote = <T>(value: T): T => {
        written++;
        return value;
      };
      const takeLocal = (): Buffer | undefined => {
        if (kind === 'stream') return native.queuedBytes(theirs.fd) === 0 ? undefined : frameOfSync(ends.theirsSocket as MessageSocket);
        return theirs.tryReceive();
      };
      const calls: Partial<Instance> = batched ? batchesOfOne(pick(mine), (tag) => unit(tag, size), wrote) : {
        op: (tag, o) => mine.send(unit(tag, size), o).then(() => wrote(tag)),
        opSync: (tag, o) => {
          mine.sendSync(unit(tag, size), o);
          return wrote(tag);
        },
        tryOp: {
          call: (tag) => {
            const raw = mine.trySend(unit(tag, size));
            return { raw, tag: raw ? wrote(tag) : undefined };
          },
          nothing: false,
        },
      };
      return withAddress<Instance>({
        op: calls.op!,
        opSync: calls.opSync!,
        tryOp: calls.tryOp!,
        supply: (_tag, delayMs) => (tcp
          ? remote_(actor, 'socket.drain', { upTo: written, delayMs }, (tags) => taken.push(...(tags as Tag[])))
          : remote_(actor, 'socket.take', { ...remote, exact: kind === 'stream', size, delayMs }, (tag) => taken.push(tag as Tag))),
        ...(tcp ? {} : {
          supplyLocal: () => {
            const d = takeLocal();
            assert.ok(d !== undefined, 'the full socket had a unit to take');
            taken.push(unitTag(d, size));
          },
        }),
        async delivered() {
          if (tcp) taken.push(...await actor.call<Tag[]>('socket.drain', { upTo: written }));
          else for (let d = takeLocal(); d !== undefined; d = takeLocal()) taken.push(unitTag(d, size));
          return taken.filter((t) => t >= 0);
        },
        close: () => mine.close(),
        afterClose: () => mine.afterClose(),
        async cleanup() {
          ends.close();
          await actor.stop();
        },
      }, { fd: mine.fd, remote: ends.mineRemote, size });
    },
    peerKilled: {
      doing: kind === 'dgram'
        ? 'in sendSync on a copy of the same socket, to the same full receiver'
        : 'blocked in sendSync on a copy of the same full socket',
      order: 'peer-first',
      // The kernel reports an unconnected datagram socket writable whatever its receiver holds: the sender's wait is
      // not a sleep on the receiver, so the suite does not wait to see it asleep.
      blocked: kind !== 'dgram',
      outcome: 'supply',
      async start(instance) {
        const { fd, remote, size } = addressOf(instance) as { fd: number; remote: Remote; size: number };
        const peer = socketActor([fd]);
        await peer.start('socket.blockSend', { ...remote, tag: 999, size });
        return peer;
      },
    },
    async soak(count) {
      const ends = await makeEnds(kind);
      const { mine } = ends;
      const peer = socketActor([ends.theirs.fd]);
      // The actor holds the only other end of a connection; of a datagram socket, this process keeps a copy to look for extras.
      if (!ends.remote.datagram) ends.theirs.close();
      // Resolves once the actor has read `count` records; `done` once it has also seen the end (for datagrams, at once).
      const report = peer.start<SoakReport>('socket.soakReceive', { ...ends.remote, count });
      const forms = batched
        ? { async: (seq: number, o: Options) => pick(mine).sendMany([record(seq)], o).then(one), sync: (seq: number, o: Options) => one(pick(mine).sendManySync([record(seq)], o)),
          try: (seq: number) => pick(mine).trySendMany([record(seq)]) === 1, many: (seqs: number[], o: Options) => pick(mine).sendMany(seqs.map((seq) => record(seq)), o) }
        : { async: (seq: number, o: Options) => mine.send(record(seq), o), sync: (seq: number, o: Options) => mine.sendSync(record(seq), o),
          try: (seq: number) => mine.trySend(record(seq)) };
      return {
        direction: 'send',
        ...forms,
        async finish() {
          const request = await report;
          if (!ends.remote.datagram) mine.close();
          const got = await request.done;
          if (ends.remote.datagram) {
            const extra = ends.theirs.tryReceive();
            if (extra !== undefined) got.bad.push(`an extra record ${readRecord(extra).seq} after the last`);
          }
          return got;
        },
        async cleanup() {
          ends.close();
          await peer.stop();
        },
      };
    },
  };
}

/** A supply through an actor request: resolves when the actor has it; `done` (recording what it returns) when it acted. */
async function remote_(actor: Actor, op: string, params: Options, record?: (value: unknown) => void): Promise<{ done: Promise<void> }> {
  const request = await actor.start(op, params);
  return { done: request.done.then((value) => record?.(value)) };
}

const SOCKET_KINDS: SocketKindName[] = ['stream', 'seqpacket', 'dgram', 'tcp'];

/** Every socket kind's receive and send. */
const SOCKET_WAITABLES: Waitable[] = [
  ...SOCKET_KINDS.flatMap((kind) => [socketReceive(kind), socketSend(kind)]),
  ...SOCKET_KINDS.flatMap((kind) => [socketReceive(kind, true), socketSend(kind, true)]),
  // Packed batches on the connections whose capacity is whole messages (TCP's is not, and its batches are a Unix stream's code).
  ...(['stream', 'seqpacket'] as const).flatMap((kind) => [socketReceive(kind, 'packed'), socketSend(kind, 'packed')]),
];

/** Adapters keep what their kill scenarios need here. */
const addresses = new WeakMap<Instance, unknown>();
function addressOf(instance: Instance): unknown {
  assert.ok(addresses.has(instance), 'the instance has an address');
  return addresses.get(instance);
}
function withAddress<I extends Instance>(instance: I, address: unknown): I {
  addresses.set(instance, address);
  return instance;
}

// The actor's side.

type RemoteParams = {
  datagram: boolean; to?: string; tag?: number; size?: number; delayMs?: number; exact?: boolean; upTo?: number; count?: number; seed?: number;
  batched?: boolean | 'packed';
};

/** The actor's socket as a Side: a datagram socket talks to `to` only. */
function remoteSide(ctx: RemoteContext, p: RemoteParams): { side: Side; socket: MessageSocket | DatagramSocket } {
  const socket = remoteSocket(ctx, p.datagram);
  return { socket, side: p.datagram ? datagramSide(socket as DatagramSocket, p.to!, p.to!) : messageSide(socket as MessageSocket) };
}

const SOCKET_REMOTE: Record<string, (params: any, ctx: RemoteContext) => unknown> = {
  async 'socket.send'(p: RemoteParams, ctx) {
    const { side } = remoteSide(ctx, p);
    ctx.started();
    if (p.delayMs) await sleep(p.delayMs);
    await side.send(unit(p.tag!), { timeout: REMOTE_TIMEOUT });
  },
  /** Takes one unit of `size` bytes (a stream: exactly its bytes); resolves with its tag. */
  async 'socket.take'(p: RemoteParams, ctx) {
    const { side, socket } = remoteSide(ctx, p);
    ctx.started();
    if (p.delayMs) await sleep(p.delayMs);
    return unitTag(p.exact ? await frameOf(socket as MessageSocket) : await side.receive({ timeout: REMOTE_TIMEOUT }), p.size);
  },
  /** Receives until `upTo` units in all were received (by this actor); resolves with the tags this call received. */
  async 'socket.drain'(p: RemoteParams, ctx) {
    const { side } = remoteSide(ctx, p);
    const total = ctx.state.handle('drained', () => ({ n: 0 }), () => undefined);
    ctx.started();
    if (p.delayMs) await sleep(p.delayMs);
    const tags: Tag[] = [];
    for (; total.n < p.upTo!; total.n++) {
      const d = await side.receive({ timeout: REMOTE_TIMEOUT });
      tags.push(unitTag(d, d.length));
    }
    return tags;
  },
  'socket.blockReceive'(p: RemoteParams, ctx) {
    const { side } = remoteSide(ctx, p);
    ctx.started();
    side.receiveSync();
  },
  'socket.blockSend'(p: RemoteParams, ctx) {
    const { side } = remoteSide(ctx, p);
    ctx.started();
    side.sendSync(unit(p.tag!, p.size));
  },
  /** Sends records 0..count-1 with a mix of calls (`batched`: of batches of 1 to 16), then closes its end (the end of a connection). */
  async 'socket.soakSend'(p: RemoteParams, ctx) {
    const { side } = remoteSide(ctx, p);
    const rnd = prng(p.seed!);
    if (p.batched) {
      const calls = p.batched === 'packed' ? side.packed! : side.batch;
      for (let seq = 0; seq < p.count!;) {
        const list = Array.from({ length: Math.min(p.count! - seq, 1 + Math.floor(rnd() * 16)) }, (_, i) => record(seq + i));
        const dice = rnd();
        if (dice < 0.3) seq += calls.sendManySync(list, { timeout: REMOTE_TIMEOUT });
        else if (dice < 0.6) seq += calls.trySendMany(list);
        else seq += await calls.sendMany(list, { timeout: REMOTE_TIMEOUT });
      }
      ctx.state.forget('fd3');
      return { sent: p.count };
    }
    for (let seq = 0; seq < p.count!; seq++) {
      const data = record(seq);
      const dice = rnd();
      if (dice < 0.3) side.sendSync(data, { timeout: REMOTE_TIMEOUT });
      else if (dice < 0.6 && side.trySend(data)) continue;
      else await side.send(data, { timeout: REMOTE_TIMEOUT });
    }
    ctx.state.forget('fd3');
    return { sent: p.count };
  },
  /**
   * Receives `count` records, checking order and checksums, and reports it
   * started; over a connection, then waits for its end: anything more is an extra.
   */
  async 'socket.soakReceive'(p: RemoteParams, ctx) {
    const { side } = remoteSide(ctx, p);
    const report: SoakReport = { received: 0, bad: [] };
    for (let i = 0; i < p.count!; i++) {
      const checked = readRecord(await side.receive({ timeout: REMOTE_TIMEOUT }));
      if ((!checked.ok || checked.seq !== report.received) && report.bad.length < 5) {
        report.bad.push(`record ${checked.seq} (ok ${checked.ok}) where ${report.received} was due`);
      }
      report.received = checked.seq + 1;
    }
    ctx.started();
    if (!p.datagram) {
      const extra = await endAsNull(side.receive({ timeout: REMOTE_TIMEOUT }));
      if (extra !== null) report.bad.push(`an extra record ${readRecord(extra).seq} after the last`);
    }
    return report;
  },
};

if (inActor) Object.assign(REMOTE, SOCKET_REMOTE);

// ---------------------------------------------------------------------------

let baseline: string[] = [];
const guards: (() => void)[] = [];

before(async () => {
  // A real-time signal nobody handles would end this process: keep the
  // suite's signals handled for its whole run, so a late one is harmless.
  for (const sig of CONFORMANCE_SIGNALS) guards.push(onSignal(sig, () => undefined));
  // Descriptors that live as long as the process (the readiness registry,
  // libuv's child watcher) exist before the baseline is taken.
  const ends = pipe();
  ends.readEnd.close();
  ends.writeEnd.close();
  await new Promise((resolve) => spawnChild(process.execPath, ['-e', '']).on('close', resolve));
  baseline = openFds();
});

after(async () => {
  await killAllPeers();
  await stopSharedActor();
  await stopNatsServer();
  objects.cleanup();
  for (const dispose of guards.splice(0)) dispose();
});

for (const [index, w] of [...WAITABLES, ...SOCKET_WAITABLES, ...NATS_WAITABLES].entries()) {
  describe(`conformance: ${w.name}`, () => {
    it(`${CHECKS.waits}. without a timeout, the call waits until another process completes it (async and sync)`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'waits')) return;
      await withInstance(w, async (instance) => {
        const pending = instance.op(1);
        await supply(instance, 11);
        assert.equal(await pending, expected(w, 1, 11));
        await checkDelivered(instance, [1]);
      });
      if (w.notApplicable.sync !== undefined) {
        t.diagnostic(`the sync half does not apply: ${w.notApplicable.sync}`);
        return;
      }
      await withInstance(w, async (instance) => {
        // The other process acts 100 ms from now, while this thread is blocked.
        const later = await instance.supply(12, 100);
        assert.equal(syncOf(instance)(2), expected(w, 2, 12));
        await later.done;
        await checkDelivered(instance, [2]);
      });
    });

    it(`${CHECKS.timeoutZero}. timeout 0 tries once: ERR_IPC_TIMEOUT when it would wait, the result when it can`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'timeoutZero')) return;
      await withInstance(w, async (instance) => {
        await rejectsWith(() => instance.op(1, { timeout: 0 }), 'ERR_IPC_TIMEOUT', / timed out after 0 ms/);
        await supply(instance, 11);
        assert.equal(await instance.op(2, { timeout: 0 }), expected(w, 2, 11));
        await rejectsWith(() => instance.op(3, { timeout: 0 }), 'ERR_IPC_TIMEOUT');
        await checkDelivered(instance, [2]);
      });
    });

    it(`${CHECKS.timeoutN}. timeout n rejects with ERR_IPC_TIMEOUT after at least n ms, and leaves nothing behind`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'timeoutN')) return;
      await withInstance(w, async (instance) => {
        const started = performance.now();
        await rejectsWith(() => instance.op(1, { timeout: N_MS }), 'ERR_IPC_TIMEOUT', new RegExp(` timed out after ${N_MS} ms`));
        atLeast(started, N_MS, 'op({ timeout })');
        await supply(instance, 11);
        assert.equal(await instance.op(2, { timeout: BOUNDED }), expected(w, 2, 11));
        await checkDelivered(instance, [2]);
      });
    });

    it(`${CHECKS.sync}. the sync form: timeout n and timeout 0 throw ERR_IPC_TIMEOUT when it would wait; it returns when it can`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'sync')) return;
      await withInstance(w, async (instance) => {
        const started = performance.now();
        const opSync = syncOf(instance);
        throwsWith(() => opSync(1, { timeout: N_MS }), 'ERR_IPC_TIMEOUT', new RegExp(` timed out after ${N_MS} ms`));
        atLeast(started, N_MS, 'opSync({ timeout })');
        throwsWith(() => opSync(2, { timeout: 0 }), 'ERR_IPC_TIMEOUT', / timed out after 0 ms/);
        await supply(instance, 11);
        assert.equal(opSync(3, { timeout: 0 }), expected(w, 3, 11));
        await supply(instance, 12);
        assert.equal(opSync(4, { timeout: BOUNDED }), expected(w, 4, 12));
        await checkDelivered(instance, [3, 4]);
      });
    });

    it(`${CHECKS.try}. the try form returns its "nothing" when it would wait, the result when it can`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'try')) return;
      await withInstance(w, async (instance) => {
        const form = instance.tryOp;
        assert.ok(form !== undefined, 'the adapter has a try form');
        assert.deepEqual(await form.call(1), { raw: form.nothing, tag: undefined });
        await supply(instance, 11);
        const got = await form.call(2);
        assert.notEqual(got.raw, form.nothing);
        assert.equal(got.tag, expected(w, 2, 11));
        // Taken exactly once.
        assert.deepEqual(await form.call(3), { raw: form.nothing, tag: undefined });
        await checkDelivered(instance, [2]);
      });
    });

    it(`${CHECKS.preAborted}. a pre-aborted signal rejects with ERR_IPC_ABORTED and consumes nothing`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'preAborted')) return;
      await withInstance(w, async (instance) => {
        await supply(instance, 11);
        const reason = new Error('stopped before the call');
        const ac = new AbortController();
        ac.abort(reason);
        const err = await rejectsWith(() => instance.op(1, { signal: ac.signal }), 'ERR_IPC_ABORTED', / was aborted/);
        assert.equal(err.cause, reason, 'the abort reason is the cause');
        await rejectsWith(() => instance.op(2, { signal: ac.signal, timeout: 0 }), 'ERR_IPC_ABORTED');
        // What was there is still there for the next call.
        assert.equal(await instance.op(3, { timeout: 0 }), expected(w, 3, 11));
        await checkDelivered(instance, [3]);
      });
    });

    it(`${CHECKS.abortMidWait}. an abort mid-wait rejects with ERR_IPC_ABORTED and loses nothing that arrives afterwards`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'abortMidWait')) return;
      await withInstance(w, async (instance) => {
        const ac = new AbortController();
        const aborted = instance.op(1, { signal: ac.signal });
        setTimeout(() => ac.abort(), 30);
        await rejectsWith(() => aborted, 'ERR_IPC_ABORTED');
        await supply(instance, 11);
        assert.equal(await instance.op(2, { timeout: BOUNDED }), expected(w, 2, 11));

        // An aborted call at the head of the queue hands its turn to the next one.
        const ac2 = new AbortController();
        const head = instance.op(3, { signal: ac2.signal });
        const next = instance.op(4);
        ac2.abort();
        await rejectsWith(() => head, 'ERR_IPC_ABORTED');
        await supply(instance, 12);
        assert.equal(await next, expected(w, 4, 12));
        await checkDelivered(instance, [2, 4]);
      });
    });

    it(`${CHECKS.close}. close() rejects pending calls with ERR_IPC_CLOSED, is idempotent, and every later use fails with ERR_IPC_CLOSED`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'close')) return;
      await withInstance(w, async (instance) => {
        const pending = [instance.op(1), instance.op(2, { timeout: BOUNDED })];
        for (const p of pending) p.catch(() => undefined);
        await instance.close();
        for (const p of pending) await rejectsWith(() => p, 'ERR_IPC_CLOSED', /closed/);
        await instance.close();
        await rejectsClosed('op()', () => instance.op(3));
        if (instance.opSync !== undefined) throwsWith(() => instance.opSync!(4, { timeout: 0 }), 'ERR_IPC_CLOSED');
        const form = instance.tryOp;
        if (form?.async === true) await rejectsClosed('tryOp()', () => form.call(5));
        else if (form !== undefined) throwsWith(() => form.call(5), 'ERR_IPC_CLOSED');
        const calls = instance.afterClose?.() ?? [];
        assert.ok(calls.length > 0, 'the adapter lists the methods of the handle');
        for (const { name, call, async } of calls) {
          if (async) await rejectsClosed(name, call);
          else throwsWith(call, 'ERR_IPC_CLOSED');
        }
      });
    });

    it(`${CHECKS.iteration}. async iteration ends quietly when the handle is closed`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'iteration')) return;
      await withInstance(w, async (instance) => {
        assert.ok(instance.iterate !== undefined, 'the adapter iterates');
        const got: Tag[] = [];
        let first!: () => void;
        const gotOne = new Promise<void>((resolve) => { first = resolve; });
        const loop = (async () => {
          for await (const tag of instance.iterate!()) {
            got.push(tag);
            first();
          }
        })();
        await supply(instance, 11);
        await gotOne;
        await instance.close();
        await loop;
        assert.deepEqual(got, [11]);
        for await (const tag of instance.iterate()) assert.fail(`a closed handle yielded ${tag}`);
      });
    });

    it(`${CHECKS.order}. pending calls are served first come, first served, and a later call never overtakes them`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'order')) return;
      await withInstance(w, async (instance) => {
        const settledOrder: Tag[] = [];
        const track = (tag: Tag): Promise<Tag> => {
          const p = instance.op(tag, { timeout: BOUNDED });
          p.then(() => settledOrder.push(tag), () => settledOrder.push(-tag));
          return p;
        };
        // Three pending calls, completions arriving one by one.
        const calls = [track(1), track(2), track(3)];
        for (let i = 0; i < calls.length; i++) {
          await supply(instance, 11 + i);
          assert.equal(await calls[i], expected(w, i + 1, 11 + i));
          // The other side acted once: exactly one call was served.
          for (const later of calls.slice(i + 1)) assert.equal(await stillPending(later, 50), true, 'one completion serves one call');
        }
        assert.deepEqual(settledOrder, [1, 2, 3]);

        // A completion is available (made synchronously, so the waiting
        // call has not been told yet): new calls must not take it first.
        assert.ok(instance.supplyLocal !== undefined, 'the adapter supplies synchronously');
        const a = track(4);
        const b = track(5);
        await supply(instance, 21);
        assert.equal(await a, expected(w, 4, 21));
        await instance.supplyLocal(22);
        if (instance.tryOp !== undefined) assert.equal((await instance.tryOp.call(6)).raw, instance.tryOp.nothing, 'tryOp() did not overtake');
        const c = track(8);
        assert.equal(await b, expected(w, 5, 22));
        await supply(instance, 23);
        assert.equal(await c, expected(w, 8, 23));
        assert.deepEqual(settledOrder, [1, 2, 3, 4, 5, 8]);
        await checkDelivered(instance, [1, 2, 3, 4, 5, 8]);
      });
    });

    it(`${CHECKS.order}. a sync call made while async calls are pending does not overtake them`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'order') || !applies(t, w, 'sync')) return;
      await withInstance(w, async (instance) => {
        // One call completed first (a lock is then held by this thread, as in the check above).
        const warm = instance.op(0, { timeout: BOUNDED });
        await supply(instance, 10);
        assert.equal(await warm, expected(w, 0, 10));
        const first = instance.op(1, { timeout: BOUNDED });
        first.catch(() => undefined);
        // Both a completion and a waiting call: the completion is the waiting call's.
        await instance.supplyLocal!(11);
        throwsWith(() => syncOf(instance)(2, { timeout: 0 }), 'ERR_IPC_TIMEOUT', / timed out after 0 ms/);
        assert.equal(await first, expected(w, 1, 11));
        await checkDelivered(instance, [0, 1]);
      });
    });

    it(`${CHECKS.unknownOption}. unknown option keys are refused with ERR_IPC_INVALID_ARGUMENT naming "timeout"`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'unknownOption')) return;
      await withInstance(w, async (instance) => {
        await supply(instance, 11);
        await rejectsWith(() => instance.op(1, { timeOut: 5 }), 'ERR_IPC_INVALID_ARGUMENT', /"timeOut"; did you mean "timeout"\?/);
        if (instance.opSync !== undefined) throwsWith(() => instance.opSync!(2, { timeOut: 5 }), 'ERR_IPC_INVALID_ARGUMENT', /"timeOut"; did you mean "timeout"\?/);
        await rejectsWith(() => instance.op(3, { signal: 'no' }), 'ERR_IPC_INVALID_ARGUMENT', /signal must be an AbortSignal/);
        await rejectsWith(() => instance.op(4, { timeout: -1 }), 'ERR_IPC_INVALID_ARGUMENT', /timeout must be/);
        // A refused call consumed nothing.
        assert.equal(await instance.op(5, { timeout: 0 }), expected(w, 5, 11));
        await checkDelivered(instance, [5]);
      });
    });

    const kill = w.peerKilled;
    it(`${CHECKS.peerKilled}. a peer killed with SIGKILL mid-operation${kill ? ` (${kill.doing})` : ''} leaves this side working`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'peerKilled')) return;
      assert.ok(kill !== undefined, 'the adapter has a kill scenario');
      await withInstance(w, async (instance) => {
        let pending: Promise<Tag> | undefined;
        if (kill.order === 'call-first') pending = instance.op(1, { timeout: BOUNDED });
        const peer = await kill.start(instance, 1);
        if (kill.blocked) t.diagnostic(`the peer sleeps in ${await peer.untilBlocked()}`);
        pending ??= instance.op(1, { timeout: BOUNDED });
        pending.catch(() => undefined);
        assert.deepEqual(await peer.kill('SIGKILL'), { code: null, signal: 'SIGKILL' });
        const outcome = kill.outcome;
        if (outcome === 'supply') {
          await supply(instance, 11);
          assert.equal(await pending, expected(w, 1, 11));
        } else if (outcome === 'peer') {
          assert.equal(await pending, expected(w, 1, 1));
        } else {
          await rejectsWith(() => pending!, outcome.code);
          outcome.recover(instance);
        }
        // This side keeps working.
        await supply(instance, 21);
        assert.equal(await instance.op(2, { timeout: BOUNDED }), expected(w, 2, 21));
        await checkDelivered(instance, typeof outcome === 'string' ? [1, 2] : [2]);
      });
    });

    const soakCount = w.soakCount ?? SOAK_COUNT;
    it(`${CHECKS.soak}. exactly once, in order, intact: ${soakCount} records with checksums through a random mix of calls`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'soak')) return;
      assert.ok(w.soak !== undefined, 'the adapter has a soak');
      const seed = SEED + index;
      const started = performance.now();
      const s = await w.soak(soakCount, seed);
      try {
        const mix = s.direction === 'receive' ? await driveReceive(s, soakCount, seed) : await driveSend(s, soakCount, seed);
        t.diagnostic(`seed ${seed}, ${(performance.now() - started).toFixed(0)} ms, calls: ${JSON.stringify(mix.forms)}`);
      } finally {
        await s.cleanup();
      }
    });
  });
}

describe('conformance: a pipe end opened again by path', () => {
  // /dev/stdin, /dev/fd/N and bash's <(cmd) give a program a pipe it opens
  // by path: a second open file description of the same pipe. Its ends
  // must run the triple as the ends pipe() makes do.
  it('reads and writes through ends opened via /proc/self/fd, as through the original ends', TIMEOUT, async () => {
    const { readEnd, writeEnd } = pipe();
    const reader = PipeReadEnd.fromFd(openSync(`/proc/self/fd/${readEnd.fd}`, fsConstants.O_RDONLY));
    const writer = PipeWriteEnd.fromFd(openSync(`/proc/self/fd/${writeEnd.fd}`, fsConstants.O_WRONLY));
    try {
      assert.equal(reader.tryRead(), undefined);
      assert.equal(writer.tryWrite(unit(1)), unit(1).length);
      assert.deepEqual(reader.tryRead(), unit(1));
      writer.writeSync(unit(2), { timeout: 0 });
      assert.deepEqual(reader.readSync({ timeout: 0 }), unit(2));
      await writer.write(unit(3), { timeout: 0 });
      assert.deepEqual(await reader.read({ timeout: 0 }), unit(3));
    } finally {
      for (const end of [reader, writer, readEnd, writeEnd]) end.close();
    }
  });
});

describe('conformance: the suite itself', () => {
  it('leaves nothing behind: no queues, segments, FIFOs, processes or descriptors', TIMEOUT, async () => {
    await stopSharedActor();
    for (const dispose of guards.splice(0)) dispose();
    assert.deepEqual(objects.leftovers(), []);
    assert.deepEqual(await natsLeftovers(), [], 'mailboxes left on the NATS server');
    await stopNatsServer();
    assert.deepEqual(fifoLeftovers(), []);
    assert.equal(runningChildren(), 0, 'no actor or peer process is left');
    // libuv closes a child's stdio pipes just after its exit is reported.
    const describeFds = (fds: string[]): string[] => fds.map((fd) => {
      try {
        return `${fd} -> ${readlinkSync(`/proc/self/fd/${fd}`)}`;
      } catch {
        return `${fd} (gone)`;
      }
    });
    for (let i = 0; i < 50 && openFds().length > baseline.length; i++) await sleep(10);
    assert.deepEqual(describeFds(openFds()), describeFds(baseline));
  });
});
