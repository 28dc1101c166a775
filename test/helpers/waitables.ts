/**
 * The waitables of ipckit as seen by the conformance suite
 * (test/conformance.test.ts): one adapter per waiting operation, each
 * saying how to make a fresh instance, how to make one call able to
 * complete (from another process, or synchronously from this one), how to
 * run the async, sync and try forms, how to close and clean up, and which
 * checks do not apply and why.
 *
 * Calls and completions carry tags (integers): a receiver's call yields
 * the tag of the unit it received; a sender's or a lock's call yields its
 * own tag. Units are byte strings `tag N;` padded with dots to a fixed size,
 * so every received value is checked byte for byte.
 *
 * The other side of each waitable runs in an actor process (actor.ts); its
 * half of every adapter is in `REMOTE` below, next to the adapter.
 */
import assert from 'node:assert/strict';
import { spawn as spawnChild } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Channel, Fifo, IpcError, MessageBatch, Mutex, NamedSemaphore, PipeReadEnd, Poller, PipeWriteEnd, PosixMessageQueue, PosixSharedMemory, Semaphore, type SignalInfo,
  SemaphoreSet, SysvMessageQueue, listenForSignals, pipe, sendSignal, signalNumber, type CodecOption, type PipeMessage, type PipeOptions,
} from '../../src/index.js';
import { Actor, type Started, sharedActor } from './actor.js';
import { ObjectTracker } from './objects.js';
import { blockedIn } from './proc.js';
import { type Checked, RecordStream, prng, readRecord, readSignalValue, record, recordSize, signalValue } from './records.js';

// ---------------------------------------------------------------------------
// What the suite sees

export type Tag = number;
export type Options = Record<string, unknown>;

/** The checks of the suite, by number. */
export const CHECKS = {
  waits: 1, timeoutZero: 2, timeoutN: 3, sync: 4, try: 5, preAborted: 6, abortMidWait: 7,
  close: 8, iteration: 9, order: 10, unknownOption: 11, peerKilled: 12, soak: 13,
} as const;
export type Check = keyof typeof CHECKS;

/** A call of a method on a closed handle, and whether it returns a promise (which must reject) or throws. */
export interface ClosedCall {
  name: string;
  call: () => unknown;
  async: boolean;
}

/** What a try form returned. */
export interface TryResult {
  raw: unknown;
  tag: Tag | undefined;
}

/** One fresh object in the "a call would wait" state. */
export interface Instance {
  /** `op(options)`: resolves to the call's tag (see the module comment). */
  op(tag: Tag, options?: Options): Promise<Tag>;
  /** `opSync(options)`. Absent: no sync form (the adapter says why, as not applicable to the `sync` check). */
  opSync?(tag: Tag, options?: Options): Tag;
  /**
   * `tryOp()`: the raw result, and its tag when the call completed. Absent:
   * no try form (the adapter says why). `async`: the try form returns a
   * promise (it never waits for a completion, but asks a server).
   */
  tryOp?: { call(tag: Tag): TryResult | Promise<TryResult>; nothing: unknown; async?: boolean };
  /**
   * Makes one call able to complete, from another process; resolves once
   * it is (for a receiver: unit `tag` is there). With `delayMs`, resolves
   * once the other process has the request; `done` when it acted.
   */
  supply(tag: Tag, delayMs?: number): Promise<{ done: Promise<void> }>;
  /**
   * The same, from this process before any other call is made: synchronously
   * without running the event loop, or (a mechanism with a server between
   * the ends) resolving once the server has it.
   */
  supplyLocal?(tag: Tag): void | Promise<void>;
  /** Senders: the tags the other side got, in order (ends the instance's use: it drains). */
  delivered?(): Promise<Tag[]>;
  /** Closes the handle: pending calls reject with ERR_IPC_CLOSED (resolves once it is closed, for a handle whose close is async). */
  close(): void | Promise<void>;
  /** Every method (and descriptor getter) of the handle, called on the closed handle. */
  afterClose?(): ClosedCall[];
  /** The handle's async iteration, as tags. */
  iterate?(): AsyncIterable<Tag>;
  cleanup(): Promise<void>;
}

/** A peer process in the middle of its operation on the same object, killed with SIGKILL. */
export interface KillScenario {
  /** What the peer is doing when it dies. */
  doing: string;
  /** Whether this side's pending call starts after the peer is in place ('peer-first') or before. */
  order: 'peer-first' | 'call-first';
  /** Whether the peer sleeps inside a blocking call when it is killed (the suite waits until it does). */
  blocked: boolean;
  /** Starts the peer; `tag`: what it supplies before dying, when it supplies anything. */
  start(instance: Instance, tag: Tag): Promise<Actor>;
  /**
   * What this side's pending call does: completes after a supply ('supply'),
   * completes with what the peer supplied before dying ('peer'), or rejects
   * with `code` (then `recover` puts the object back in order).
   */
  outcome: 'supply' | 'peer' | { code: string; recover(instance: Instance): void };
}

/** The receiving side of a soak: a peer sends `count` records. */
export interface ReceiveSoak {
  direction: 'receive';
  /** Raw results of the three forms (`undefined`: nothing now). */
  async(options: Options): Promise<unknown>;
  /** Absent: no sync form. */
  sync?(options: Options): unknown;
  /** May return a promise (a try form that asks a server). */
  try?(): unknown;
  /** The records a raw result completes; `null` at the end of a stream. */
  records(raw: unknown): Checked[] | null;
  /** Whether the mechanism is a stream that ends (EOF) once the peer is done. */
  ends: boolean;
  /** Most records one call may take (a batch); 1 if absent. A call without a timeout is made only while enough are due for every call. */
  perCall?: number;
  /** Streams: bytes of an unfinished record held back. */
  leftover?(): number;
  /** Resolves once the peer has sent everything. */
  peerDone: Promise<unknown>;
  cleanup(): Promise<void>;
}

/** The sending side of a soak: this side sends `count` records, a peer checks them. */
export interface SendSoak {
  direction: 'send';
  async(seq: number, options: Options): Promise<void>;
  /** Absent: no sync form. */
  sync?(seq: number, options: Options): void;
  /** Whether the record went in (or a promise of it). */
  try?(seq: number): boolean | Promise<boolean>;
  /** A batched send of records `seqs` (consecutive): resolves with how many went in, from the first. */
  many?(seqs: number[], options: Options): Promise<number>;
  /** Ends the sending; resolves with what the peer received. */
  finish(): Promise<SoakReport>;
  cleanup(): Promise<void>;
}

export type Soak = ReceiveSoak | SendSoak;

export interface SoakReport {
  received: number;
  /** Out-of-order, duplicate, corrupt or extra records the peer saw (the first few). */
  bad: string[];
}

export interface Waitable {
  name: string;
  /** What a completed call yields: the supplied unit's tag ('unit', receivers) or its own ('call'). */
  yields: 'unit' | 'call';
  create(): Promise<Instance>;
  /** Checks that do not apply, and why. */
  notApplicable: Partial<Record<Check, string>>;
  peerKilled?: KillScenario;
  soak?(count: number, seed: number): Promise<Soak>;
  /** Records of the soak when not the suite's count (each call of this waitable is a network round trip). */
  soakCount?: number;
}

/** Every object the adapters create; the suite checks nothing is left. */
export const objects = new ObjectTracker();

// ---------------------------------------------------------------------------
// Units

/** Default unit size. */
const UNIT = 16;

/** Unit `tag`: `tag N;` padded with dots to `size` bytes. Negative tags are fillers. */
export function unit(tag: Tag, size = UNIT): Buffer {
  const out = Buffer.alloc(size, '.');
  out.write(`tag ${tag};`, 'latin1');
  return out;
}

/** The tag of a unit, checking it byte for byte. */
export function unitTag(bytes: Uint8Array, size = UNIT): Tag {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 24)).toString('latin1');
  const match = /^tag (-?\d+);/.exec(text);
  assert.ok(match, `not a unit: ${JSON.stringify(text)}`);
  const tag = Number(match[1]);
  assert.deepEqual(Buffer.from(bytes), unit(tag, size), `unit ${tag} arrived intact`);
  return tag;
}

/** The tags of consecutive units. */
function unitTags(bytes: Uint8Array, size = UNIT): Tag[] {
  assert.equal(bytes.length % size, 0, `${bytes.length} bytes are not whole ${size}-byte units`);
  const tags: Tag[] = [];
  for (let at = 0; at < bytes.length; at += size) tags.push(unitTag(bytes.subarray(at, at + size), size));
  return tags;
}

const done = Promise.resolve();
const now = (): Promise<{ done: Promise<void> }> => Promise.resolve({ done });

/** A supply through an actor request: resolves when the actor has it; `done` (recording what it returns) when it acted. */
async function remote(actor: Actor, op: string, params: Options, record?: (value: unknown) => void): Promise<{ done: Promise<void> }> {
  const request: Started = await actor.start(op, params);
  return { done: request.done.then((value) => record?.(value)) };
}

/** The calls of `afterClose()`, from `[name, call, returns a promise]` rows. */
function closedCalls(entries: [string, () => unknown, boolean][]): ClosedCall[] {
  return entries.map(([name, call, isAsync]) => ({ name, call, async: isAsync }));
}

// ---------------------------------------------------------------------------
// The actor's side

/** What the handlers of one actor process share. */
export class RemoteState {
  readonly #handles = new Map<string, { value: unknown; close: () => void }>();
  readonly #aborts = new Map<string, AbortController[]>();

  /** The handle for `address`, opened once. */
  handle<T>(address: string, open: () => T, close: (value: T) => void): T {
    let entry = this.#handles.get(address);
    if (entry === undefined) {
      const value = open();
      entry = { value, close: () => close(value) };
      this.#handles.set(address, entry);
    }
    return entry.value as T;
  }

  /** A signal that `forget(address)` aborts. */
  signal(address: string): AbortSignal {
    const abort = new AbortController();
    const list = this.#aborts.get(address) ?? [];
    list.push(abort);
    this.#aborts.set(address, list);
    return abort.signal;
  }

  /** Runs `task` in the background (a failure shows on the suite's side: nothing arrives); `forget(address)` aborts it. */
  background(address: string, task: (signal: AbortSignal) => Promise<void>): void {
    task(this.signal(address)).catch(() => undefined);
  }

  /** Aborts what runs for `address` and closes its handles (`address#part` ones first). */
  forget(address: string): void {
    for (const abort of this.#aborts.get(address) ?? []) abort.abort();
    this.#aborts.delete(address);
    const keys = [...this.#handles.keys()].filter((key) => key.startsWith(`${address}#`));
    for (const key of [...keys, address]) {
      const entry = this.#handles.get(key);
      this.#handles.delete(key);
      entry?.close();
    }
  }
}

export interface RemoteContext {
  /** Reports that the request started (the suite's `supply` resolves on it). */
  started(value?: unknown): void;
  state: RemoteState;
}

type Remote = (params: any, ctx: RemoteContext) => unknown;

/** Reports the start, then waits `delayMs`. */
async function delayed(ctx: RemoteContext, delayMs: number | undefined): Promise<void> {
  ctx.started();
  if (delayMs) await sleep(delayMs);
}

/** Never resolves; keeps the process alive until it is killed. */
const hang = (): Promise<never> => new Promise(() => setInterval(() => undefined, 1 << 30));

/** How long a remote wait may take before it fails instead of hanging. */
const REMOTE_TIMEOUT = 20_000;

/** Reads records from a stream end until its end, checking order and checksums. */
async function readRecords(end: PipeReadEnd, framed: boolean): Promise<SoakReport> {
  const stream = new RecordStream();
  const report: SoakReport = { received: 0, bad: [] };
  const take = (checked: Checked): void => {
    if (!checked.ok || checked.seq !== report.received) {
      if (report.bad.length < 5) report.bad.push(`record ${checked.seq} (ok ${checked.ok}) where ${report.received} was due`);
    }
    report.received = checked.seq + 1;
  };
  for (;;) {
    const chunk = framed ? await end.readMessage({ timeout: REMOTE_TIMEOUT }) : await end.read({ timeout: REMOTE_TIMEOUT });
    if (chunk === null) break;
    if (framed) take(readRecord(chunk));
    else stream.push(chunk).forEach(take);
  }
  if (stream.leftover !== 0) report.bad.push(`${stream.leftover} bytes of an unfinished record at the end`);
  end.close();
  return report;
}

/** Writes records 0..count-1 to a stream end, cut into random pieces (or framed), then closes it. */
async function writeRecords(end: PipeWriteEnd, count: number, seed: number, framed: boolean): Promise<{ sent: number }> {
  const rnd = prng(seed);
  if (framed) {
    for (let seq = 0; seq < count; seq++) {
      if (rnd() < 0.5) end.writeMessageSync(record(seq), { timeout: REMOTE_TIMEOUT });
      else await end.writeMessage(record(seq), { timeout: REMOTE_TIMEOUT });
    }
  } else {
    let pending: Buffer[] = [];
    let bytes = 0;
    const flush = async (): Promise<void> => {
      const data = Buffer.concat(pending);
      pending = [];
      bytes = 0;
      for (let at = 0; at < data.length;) {
        const n = Math.min(data.length - at, 1 + Math.floor(rnd() * 6000));
        if (rnd() < 0.5) end.writeSync(data.subarray(at, at + n), { timeout: REMOTE_TIMEOUT });
        else await end.write(data.subarray(at, at + n), { timeout: REMOTE_TIMEOUT });
        at += n;
      }
    };
    for (let seq = 0; seq < count; seq++) {
      const r = record(seq);
      pending.push(r);
      bytes += r.length;
      if (bytes > 4096) await flush();
    }
    await flush();
  }
  end.close();
  return { sent: count };
}

/**
 * Sends records 0..count-1 as framed messages in batches of 1 to 16, with a
 * mix of sendMany, sendManySync and trySendMany (whose count says where the
 * next batch starts). A pipe writer closes its end after.
 */
async function sendRecordBatches(end: Pick<BatchCalls, 'sendMany' | 'sendManySync' | 'trySendMany'>, count: number, seed: number):
  Promise<{ sent: number }> {
  const rnd = prng(seed ^ 0x2545f491);
  for (let seq = 0; seq < count;) {
    const list = Array.from({ length: Math.min(count - seq, 1 + Math.floor(rnd() * 16)) }, (_, i) => record(seq + i));
    const dice = rnd();
    if (dice < 0.3) seq += end.sendManySync(list, { timeout: REMOTE_TIMEOUT });
    else if (dice < 0.6) seq += end.trySendMany(list);
    else seq += await end.sendMany(list, { timeout: REMOTE_TIMEOUT });
  }
  return { sent: count };
}

// ---------------------------------------------------------------------------
// Message queues

function posixQueue(ctx: RemoteContext, name: string): PosixMessageQueue {
  return ctx.state.handle(name, () => PosixMessageQueue.open(name), (q) => q.close());
}

function sysvQueue(ctx: RemoteContext, key: number): SysvMessageQueue {
  return ctx.state.handle(String(key), () => SysvMessageQueue.open(key), (q) => q.close());
}

/** The parts of a queue adapter both families share (and of the socket adapters of the conformance suite). */
export interface QueueParts {
  /** Sends unit bytes (async form), type 1 for System V. */
  send(data: Buffer, options?: Options): Promise<void>;
  sendSync(data: Buffer, options?: Options): void;
  trySend(data: Buffer): boolean;
  receive(options?: Options): Promise<Buffer>;
  receiveSync(options?: Options): Buffer;
  tryReceive(): Buffer | undefined;
  iterate(): AsyncIterable<Buffer>;
  close(): void;
  afterClose(): ClosedCall[];
}

/** The batched calls of an adapter over unit bytes, each received message's metadata checked. */
export interface BatchCalls {
  sendMany(list: Buffer[], options?: Options): Promise<number>;
  sendManySync(list: Buffer[], options?: Options): number;
  trySendMany(list: Buffer[]): number;
  receiveMany(options?: Options): Promise<Buffer[]>;
  receiveManySync(options?: Options): Buffer[];
  tryReceiveMany(options?: Options): Buffer[];
}

/** The packed-batch sends of a handle (sendBatch and its forms). */
export interface PackedSender {
  sendBatch(batch: MessageBatch, options?: Options): Promise<number>;
  sendBatchSync(batch: MessageBatch, options?: Options): number;
  trySendBatch(batch: MessageBatch): number;
}

/** A MessageBatch holding copies of `list`, with room for exactly them. */
export function packOf(list: readonly Uint8Array[]): MessageBatch {
  const batch = new MessageBatch({ bytes: Math.max(1, list.reduce((sum, m) => sum + m.length, 0)), messages: Math.max(1, list.length) });
  for (const m of list) assert.equal(batch.push(m), true);
  return batch;
}

/** The messages of a received batch, copied out (each receive gets a batch of its own, but copies keep them safe). */
export function unpacked(batch: MessageBatch): Buffer[] {
  return [...batch].map((m) => Buffer.from(m));
}

/** A fresh batch for a receive of at most `max` messages (default 64) and `bytes` bytes. */
export function batchFor(max = 64, bytes = 1 << 20): MessageBatch {
  return new MessageBatch({ bytes, messages: max });
}

/** The send half of {@link BatchCalls}, made of packed sends: each list goes as one MessageBatch. */
export function packedSends(end: PackedSender): Pick<BatchCalls, 'sendMany' | 'sendManySync' | 'trySendMany'> {
  return {
    sendMany: (list, o) => end.sendBatch(packOf(list), o),
    sendManySync: (list, o) => end.sendBatchSync(packOf(list), o),
    trySendMany: (list) => end.trySendBatch(packOf(list)),
  };
}

/** The batched calls of a queue over unit bytes (type 1 for System V). */
interface BatchParts extends BatchCalls {
  afterClose(): ClosedCall[];
}

/**
 * The op/opSync/tryOp of a send adapter whose every call is a batch of one
 * unit (`unitOf(tag)`), checked to count 1; `wrote` sees each tag that went.
 */
export function batchesOfOne(sender: Pick<BatchCalls, 'sendMany' | 'sendManySync' | 'trySendMany'>, unitOf: (tag: Tag) => Buffer,
  wrote: (tag: Tag) => Tag = (tag) => tag): Pick<Instance, 'op' | 'opSync' | 'tryOp'> {
  const one = (n: number): void => assert.equal(n, 1, 'the batch of one went');
  return {
    op: (tag, o) => sender.sendMany([unitOf(tag)], o).then((n) => {
      one(n);
      return wrote(tag);
    }),
    opSync: (tag, o) => {
      one(sender.sendManySync([unitOf(tag)], o));
      return wrote(tag);
    },
    tryOp: {
      call: (tag) => {
        const raw = sender.trySendMany([unitOf(tag)]);
        return { raw, tag: raw === 1 ? wrote(tag) : undefined };
      },
      nothing: 0,
    },
  };
}

interface QueueFamily {
  label: string;
  /**
   * Makes a queue; `full`: small enough that 4 units fill it. Returns the
   * handle (and its batched calls), a second handle, and its address for
   * the actor.
   */
  make(full: boolean): { parts: QueueParts; batch: BatchParts; packed: BatchParts; other: QueueParts; address: string | number; remove(): void };
  remote: string;
}

function batchParts(q: PosixMessageQueue | SysvMessageQueue): BatchParts {
  const metadata = q instanceof PosixMessageQueue ? { priority: 0 } : { type: 1 };
  const data = (messages: { data: Buffer }[]): Buffer[] => messages.map((m) => {
    assert.deepEqual(m, { data: m.data, ...metadata });
    return m.data;
  });
  const calls = q instanceof PosixMessageQueue
    ? { sendMany: (l: Buffer[], o?: Options) => q.sendMany(l, o), sendManySync: (l: Buffer[], o?: Options) => q.sendManySync(l, o),
      trySendMany: (l: Buffer[]) => q.trySendMany(l) }
    : { sendMany: (l: Buffer[], o?: Options) => q.sendMany(1, l, o), sendManySync: (l: Buffer[], o?: Options) => q.sendManySync(1, l, o),
      trySendMany: (l: Buffer[]) => q.trySendMany(1, l) };
  const receiver = q as unknown as {
    receiveMany(o?: Options): Promise<{ data: Buffer }[]>; receiveManySync(o?: Options): { data: Buffer }[]; tryReceiveMany(o?: Options): { data: Buffer }[];
  };
  return {
    ...calls,
    receiveMany: (o) => receiver.receiveMany(o).then(data),
    receiveManySync: (o) => data(receiver.receiveManySync(o)),
    tryReceiveMany: (o) => data(receiver.tryReceiveMany(o)),
    afterClose: () => closedCalls([
      ['sendMany', () => calls.sendMany([unit(0)]), true], ['sendManySync', () => calls.sendManySync([unit(0)]), false],
      ['trySendMany', () => calls.trySendMany([unit(0)]), false], ['receiveMany', () => receiver.receiveMany(), true],
      ['receiveManySync', () => receiver.receiveManySync(), false], ['tryReceiveMany', () => receiver.tryReceiveMany(), false],
    ]),
  };
}

/**
 * {@link batchParts} over packed batches: each list is sent as one
 * MessageBatch, and each receive goes into a fresh batch whose priorities
 * (types) are checked to be what every unit is sent with.
 */
function packedParts(q: PosixMessageQueue | SysvMessageQueue): BatchParts {
  const posix = q instanceof PosixMessageQueue;
  const sender: PackedSender = posix ? q : {
    sendBatch: (b, o) => q.sendBatch(1, b, o), sendBatchSync: (b, o) => q.sendBatchSync(1, b, o), trySendBatch: (b) => q.trySendBatch(1, b),
  };
  const receiver = q as unknown as {
    receiveBatch(b: MessageBatch, o?: Options): Promise<number>; receiveBatchSync(b: MessageBatch, o?: Options): number;
    tryReceiveBatch(b: MessageBatch, o?: Options): number;
  };
  // A fresh batch of `max` slots (64 KiB: more than either family's largest message), and its metadata slots, all 7 until written.
  const into = (o: Options | undefined): { batch: MessageBatch; slots: Uint32Array | Float64Array; options: Options } => {
    const { max, ...rest } = o ?? {};
    const batch = batchFor((max as number | undefined) ?? 64, 64 * 1024);
    const slots = (posix ? new Uint32Array(batch.lengths.length) : new Float64Array(batch.lengths.length)).fill(7);
    return { batch, slots, options: { ...rest, [posix ? 'priorities' : 'types']: slots } };
  };
  const data = (n: number, { batch, slots }: { batch: MessageBatch; slots: Uint32Array | Float64Array }): Buffer[] => {
    assert.equal(n, batch.count, 'the count is what the batch holds');
    assert.deepEqual([...slots.subarray(0, n)], new Array<number>(n).fill(posix ? 0 : 1), 'each message\'s priority (type) came');
    return unpacked(batch);
  };
  const calls = packedSends(sender);
  return {
    ...calls,
    receiveMany: (o) => {
      const r = into(o);
      return receiver.receiveBatch(r.batch, r.options).then((n) => data(n, r));
    },
    receiveManySync: (o) => {
      const r = into(o);
      return data(receiver.receiveBatchSync(r.batch, r.options), r);
    },
    tryReceiveMany: (o) => {
      const r = into(o);
      return data(receiver.tryReceiveBatch(r.batch, r.options), r);
    },
    afterClose: () => closedCalls([
      ['sendBatch', () => calls.sendMany([unit(0)]), true], ['sendBatchSync', () => calls.sendManySync([unit(0)]), false],
      ['trySendBatch', () => calls.trySendMany([unit(0)]), false], ['receiveBatch', () => receiver.receiveBatch(batchFor(4, 64 * 1024)), true],
      ['receiveBatchSync', () => receiver.receiveBatchSync(batchFor(4, 64 * 1024)), false],
      ['tryReceiveBatch', () => receiver.tryReceiveBatch(batchFor(4, 64 * 1024)), false],
    ]),
  };
}

/** The one unit a batched receive got (one was there). */
function oneUnit(list: Buffer[]): Tag {
  assert.equal(list.length, 1, 'one unit was there, and one came');
  return unitTag(list[0]!);
}

/** The op/opSync/tryOp of an Instance over an adapter that receives unit bytes. */
export function unitReceives(r: { receive(o?: Options): Promise<Buffer>; receiveSync(o?: Options): Buffer; tryReceive(): Buffer | undefined }):
  Pick<Instance, 'op' | 'opSync' | 'tryOp'> {
  return {
    op: (_tag, o) => r.receive(o).then((d) => unitTag(d)),
    opSync: (_tag, o) => unitTag(r.receiveSync(o)),
    tryOp: {
      call: () => {
        const raw = r.tryReceive();
        return { raw, tag: raw === undefined ? undefined : unitTag(raw) };
      },
      nothing: undefined,
    },
  };
}

/**
 * The receiving half of an Instance over a receiver of units (its calls, a
 * local supply through `sender`, close, iteration): what the queue and
 * socket receive adapters share; they add how another process supplies.
 */
export function unitReceiver(r: QueueParts, sender: { trySend(d: Buffer): boolean }):
  Pick<Instance, 'op' | 'opSync' | 'tryOp' | 'supplyLocal' | 'close' | 'afterClose' | 'iterate'> {
  return {
    ...unitReceives(r),
    supplyLocal: (tag) => assert.equal(sender.trySend(unit(tag)), true),
    close: () => r.close(),
    afterClose: () => r.afterClose(),
    async *iterate() {
      for await (const d of r.iterate()) yield unitTag(d);
    },
  };
}

/** What every receiver has: the blocking triple and async iteration of messages `M`. */
export interface Receiver<M> extends AsyncIterable<M> {
  receive(o?: object): Promise<M>;
  receiveSync(o?: object): M;
  tryReceive(): M | undefined;
}

/** A receiver's calls, each message turned into its bytes by `data` (which checks its metadata). */
export function receivingCalls<M>(receiver: Receiver<M>, data: (m: M) => Buffer): {
  receive(o?: object): Promise<Buffer>; receiveSync(o?: object): Buffer; tryReceive(): Buffer | undefined; iterate(): AsyncIterable<Buffer>;
} {
  return {
    receive: (o) => receiver.receive(o).then(data),
    receiveSync: (o) => data(receiver.receiveSync(o)),
    tryReceive: () => {
      const m = receiver.tryReceive();
      return m === undefined ? undefined : data(m);
    },
    async *iterate() {
      for await (const m of receiver) yield data(m);
    },
  };
}

/**
 * The parts of either family of queue, from how it sends (`send`: type 1 for
 * System V), the metadata every received message must carry, and the calls
 * only it has.
 */
function queueParts<M extends { data: Buffer }>(q: PosixMessageQueue | SysvMessageQueue, family: {
  send(d: Buffer, o?: object): Promise<void>;
  sendSync(d: Buffer, o?: object): void;
  trySend(d: Buffer): boolean;
  metadata: Omit<M, 'data'>;
  own: [string, () => unknown][];
}): QueueParts {
  const data = (m: M): Buffer => {
    assert.deepEqual(m, { data: m.data, ...family.metadata });
    return m.data;
  };
  const queue = q as unknown as {
    receive(o?: object): Promise<M>; receiveSync(o?: object): M; tryReceive(): M | undefined; [Symbol.asyncIterator](): AsyncIterator<M>;
  };
  return {
    send: (d, o) => family.send(d, o),
    sendSync: (d, o) => family.sendSync(d, o),
    trySend: (d) => family.trySend(d),
    ...receivingCalls(queue as unknown as Receiver<M>, data),
    close: () => q.close(),
    afterClose: () => closedCalls([
      ['send', () => family.send(unit(0)), true], ['sendSync', () => family.sendSync(unit(0)), false],
      ['trySend', () => family.trySend(unit(0)), false], ['receive', () => queue.receive(), true],
      ['receiveSync', () => queue.receiveSync(), false], ['tryReceive', () => queue.tryReceive(), false],
      ...family.own.map(([name, call]): [string, () => unknown, boolean] => [name, call, false]),
    ]),
  };
}

function posixParts(q: PosixMessageQueue): QueueParts {
  return queueParts<{ data: Buffer; priority: number }>(q, {
    send: (d, o) => q.send(d, o), sendSync: (d, o) => q.sendSync(d, o), trySend: (d) => q.trySend(d),
    metadata: { priority: 0 }, own: [['attributes', () => q.attributes()], ['fd', () => q.fd]],
  });
}

function sysvParts(q: SysvMessageQueue): QueueParts {
  return queueParts<{ data: Buffer; type: number }>(q, {
    send: (d, o) => q.send(1, d, o), sendSync: (d, o) => q.sendSync(1, d, o), trySend: (d) => q.trySend(1, d),
    metadata: { type: 1 }, own: [['stat', () => q.stat()]],
  });
}

const POSIX: QueueFamily = {
  label: 'PosixMessageQueue',
  remote: 'posix',
  make(full) {
    const name = objects.name('cf-mq');
    const q = PosixMessageQueue.create(name, full ? { maxMessages: 4, maxMessageSize: 64 } : { maxMessages: 10, maxMessageSize: 128 });
    const other = PosixMessageQueue.open(name);
    return {
      parts: posixParts(q), batch: batchParts(q), packed: packedParts(q), other: posixParts(other), address: name,
      remove: () => {
        other.close();
        PosixMessageQueue.unlink(name);
      },
    };
  },
};

const SYSV: QueueFamily = {
  label: 'SysvMessageQueue',
  remote: 'sysv',
  make(full) {
    const key = objects.key();
    // Four 16-byte units fill 64 bytes.
    const q = SysvMessageQueue.create(key, full ? { maxBytes: 4 * UNIT } : {});
    const other = SysvMessageQueue.open(key);
    return {
      parts: sysvParts(q), batch: batchParts(q), packed: packedParts(q), other: sysvParts(other), address: key,
      remove: () => {
        other.close();
        SysvMessageQueue.remove(key);
      },
    };
  },
};

/** The name of a queue's call: its single form, its batched (receiveMany) or packed (receiveBatch) one. */
function queueCall(family: QueueFamily, single: string, batched: boolean | 'packed'): string {
  return `${family.label}.${single}${batched === 'packed' ? 'Batch' : batched ? 'Many' : ''}`;
}

/** A family's made queue, with `batch` the calls a `batched` adapter runs: receiveMany and sendMany, or packed batches. */
function madeQueue(family: QueueFamily, full: boolean, batched: boolean | 'packed'): ReturnType<QueueFamily['make']> {
  const made = family.make(full);
  return batched === 'packed' ? { ...made, batch: made.packed } : made;
}

/** A queue's receive, or (`batched`) its receiveMany or (`'packed'`) receiveBatch, whose calls then each take the one unit there. */
function queueReceive(family: QueueFamily, batched: boolean | 'packed' = false): Waitable {
  const r = family.remote;
  return {
    name: queueCall(family, 'receive', batched),
    yields: 'unit',
    notApplicable: batched ? { iteration: 'async iteration is receive()\'s: the receive adapter checks it' } : {},
    async create() {
      const { parts: q, batch, other, address, remove } = madeQueue(family, false, batched);
      const actor = sharedActor();
      const many: Partial<Instance> = batched ? {
        op: (_tag, o) => batch.receiveMany({ max: 4, ...o }).then(oneUnit),
        opSync: (_tag, o) => oneUnit(batch.receiveManySync({ max: 4, ...o })),
        tryOp: {
          call: () => {
            const list = batch.tryReceiveMany({ max: 4 });
            return list.length === 0 ? { raw: undefined, tag: undefined } : { raw: list, tag: oneUnit(list) };
          },
          nothing: undefined,
        },
        afterClose: () => [...q.afterClose(), ...batch.afterClose()],
      } : {};
      return withAddress<Instance>({
        ...unitReceiver(q, other),
        ...many,
        supply: (tag, delayMs) => remote(actor, `${r}.send`, { address, tag, delayMs }),
        async cleanup() {
          q.close();
          await actor.call('forget', { address: String(address) });
          remove();
        },
      }, address);
    },
    peerKilled: {
      doing: 'blocked in receiveSync on the same queue',
      order: 'peer-first',
      blocked: true,
      outcome: 'supply',
      async start(instance) {
        const peer = new Actor();
        await peer.start(`${r}.blockReceive`, { address: addressOf(instance) });
        return peer;
      },
    },
    async soak(count, seed) {
      const { parts: q, batch, address, remove } = madeQueue(family, false, batched);
      const peer = new Actor();
      const peerDone = peer.call(`${r}.soakSend`, { address, count, seed });
      const some = (list: Buffer[]): Buffer[] | undefined => (list.length === 0 ? undefined : list);
      const forms = batched
        ? { async: (o: Options) => batch.receiveMany({ max: 8, ...o }), sync: (o: Options) => batch.receiveManySync({ max: 8, ...o }),
          try: () => some(batch.tryReceiveMany({ max: 8 })) }
        : { async: (o: Options) => q.receive(o), sync: (o: Options) => q.receiveSync(o), try: () => q.tryReceive() };
      return {
        direction: 'receive', ends: false, peerDone, ...forms, perCall: batched ? 8 : 1,
        records: (raw) => (raw === undefined ? [] : batched ? (raw as Buffer[]).map(readRecord) : [readRecord(raw as Buffer)]),
        async cleanup() {
          q.close();
          await peer.stop();
          remove();
        },
      };
    },
  };
}

/**
 * A Poller's wait, over a POSIX queue another process sends to: a call is
 * a wait for the queue to be readable followed by the non-blocking receive
 * that readiness invites, so each completion yields the unit it took.
 */
const pollerWait: Waitable = {
  name: 'Poller.wait (over a PosixMessageQueue)',
  yields: 'unit',
  notApplicable: {
    order: 'readiness is reported to every pending wait, as epoll_wait reports it to every thread waiting on one set: one ready ' +
      'object completes all of them, so there is no queue of callers to serve in turn (whoever then receives first gets the message)',
  },
  async create() {
    const name = objects.name('cf-poll');
    const queue = PosixMessageQueue.create(name, { maxMessages: 10, maxMessageSize: 128 });
    const other = PosixMessageQueue.open(name);
    const poller = new Poller();
    poller.add(queue);
    const actor = sharedActor();
    const take = (): Tag => unitTag(queue.tryReceive()!.data);
    return withAddress<Instance>({
      op: (_tag, o) => poller.wait(o).then((events) => {
        assert.deepEqual(events.map((e) => [e.object, e.readable]), [[queue, true]]);
        return take();
      }),
      opSync: (_tag, o) => {
        assert.equal(poller.waitSync(o).length, 1);
        return take();
      },
      tryOp: {
        call: () => {
          const events = poller.tryWait();
          return events.length === 0 ? { raw: undefined, tag: undefined } : { raw: events, tag: take() };
        },
        nothing: undefined,
      },
      supply: (tag, delayMs) => remote(actor, 'posix.send', { address: name, tag, delayMs }),
      supplyLocal: (tag) => assert.equal(other.trySend(unit(tag)), true),
      close: () => poller.close(),
      afterClose: () => closedCalls([
        ['add', () => poller.add(queue), false], ['modify', () => poller.modify(queue), false], ['remove', () => poller.remove(queue), false],
        ['wait', () => poller.wait(), true], ['waitSync', () => poller.waitSync({ timeout: 0 }), false], ['tryWait', () => poller.tryWait(), false],
      ]),
      async *iterate() {
        for await (const event of poller) {
          assert.equal(event.object, queue);
          yield take();
        }
      },
      async cleanup() {
        poller.close();
        queue.close();
        other.close();
        await actor.call('forget', { address: name });
        PosixMessageQueue.unlink(name);
      },
    }, name);
  },
  // The peer takes the queue's message, not the readiness: the same scenario as the queue's own receive.
  peerKilled: queueReceive(POSIX).peerKilled!,
  async soak(count, seed) {
    const name = objects.name('cf-poll');
    const queue = PosixMessageQueue.create(name, { maxMessages: 10, maxMessageSize: 128 });
    const poller = new Poller();
    poller.add(queue);
    const peer = new Actor();
    const peerDone = peer.call('posix.soakSend', { address: name, count, seed });
    // Readiness, then the receive it invites (which may find nothing: another wait of the mix took it).
    const received = (): Buffer | undefined => queue.tryReceive()?.data;
    return {
      direction: 'receive', ends: false, peerDone,
      async: (o) => poller.wait(o).then(received),
      sync: (o) => {
        poller.waitSync(o);
        return received();
      },
      try: () => (poller.tryWait().length === 0 ? undefined : received()),
      records: (raw) => (raw === undefined ? [] : [readRecord(raw as Buffer)]),
      async cleanup() {
        poller.close();
        queue.close();
        await peer.stop();
        PosixMessageQueue.unlink(name);
      },
    };
  },
};

// ---------------------------------------------------------------------------
// The shared-memory channel: one producer and one consumer, so every other
// side (this process's local supply, the actor's) holds its role for one
// operation only, on a handle it opens for it and closes after.

/**
 * A fresh channel. `full`: four 16-byte units (24-byte records) after a
 * 32-byte filler fill its 128 bytes, and taking any one record makes room
 * for exactly one unit.
 */
function makeChannel(full: boolean, shared: boolean): { channel: Channel; name: string; remove(): void } {
  const name = objects.shmName('cf-ch');
  const channel = Channel.create(name, { capacity: full ? 128 : 1024, ...(shared ? { producers: 'multi', consumers: 'multi' } as const : {}) });
  return { channel, name, remove: () => Channel.unlink(name) };
}

/** Runs `fn` on a handle of its own, closed after (its role with it). */
function onOwnHandle<R>(name: string, fn: (channel: Channel) => R): R {
  const channel = Channel.open(name);
  try {
    return fn(channel);
  } finally {
    channel.close();
  }
}

async function onOwnHandleAsync<R>(name: string, fn: (channel: Channel) => Promise<R>): Promise<R> {
  const channel = Channel.open(name);
  try {
    return await fn(channel);
  } finally {
    channel.close();
  }
}

const channelCalls = (ch: Channel): ClosedCall[] => closedCalls([
  ['send', () => ch.send(unit(0)), true], ['sendSync', () => ch.sendSync(unit(0)), false], ['trySend', () => ch.trySend(unit(0)), false],
  ['receive', () => ch.receive(), true], ['receiveSync', () => ch.receiveSync(), false], ['tryReceive', () => ch.tryReceive(), false],
  ['sendMany', () => ch.sendMany([unit(0)]), true], ['sendManySync', () => ch.sendManySync([unit(0)]), false],
  ['trySendMany', () => ch.trySendMany([unit(0)]), false], ['receiveMany', () => ch.receiveMany(), true],
  ['receiveManySync', () => ch.receiveManySync(), false], ['tryReceiveMany', () => ch.tryReceiveMany(), false],
  ['loan', () => ch.loan(1), true], ['loanSync', () => ch.loanSync(1), false], ['tryLoan', () => ch.tryLoan(1), false],
  ['stats', () => ch.stats(), false],
]);

/** The data of a channel batch's messages (each `{ data }` and nothing else). */
function channelData(list: { data: Buffer }[]): Buffer[] {
  return list.map((m) => {
    assert.deepEqual(Object.keys(m), ['data']);
    return m.data;
  });
}

/** A channel's receive (`batched`: receiveMany); `shared`: both sides created 'multi' (their handles take turns). */
/** The name of a channel's call: its single, batched (…Many) or packed (…Batch) form. */
function channelCall(single: string, shared: boolean, batched: boolean | 'packed'): string {
  return `Channel.${single}${batched === 'packed' ? 'Batch' : batched ? 'Many' : ''}${shared ? ' (shared sides)' : ''}`;
}

/** A channel's receiveMany of `o`, or (packed) its receiveBatch into a fresh batch of `max` slots: the messages' bytes. */
function channelTakes(channel: Channel, packedForm: boolean): {
  async(o: Options): Promise<Buffer[]>; sync(o: Options): Buffer[]; try(o: Options): Buffer[];
} {
  if (!packedForm) {
    return {
      async: (o) => channel.receiveMany(o).then(channelData), sync: (o) => channelData(channel.receiveManySync(o)),
      try: (o) => channelData(channel.tryReceiveMany(o)),
    };
  }
  const split = (o: Options): [MessageBatch, Options] => {
    const { max, ...rest } = o;
    return [batchFor((max as number | undefined) ?? 64, 64 * 1024), rest];
  };
  return {
    async: (o) => {
      const [b, rest] = split(o);
      return channel.receiveBatch(b, rest).then((n) => {
        assert.equal(n, b.count);
        return unpacked(b);
      });
    },
    sync: (o) => {
      const [b, rest] = split(o);
      assert.equal(channel.receiveBatchSync(b, rest), b.count);
      return unpacked(b);
    },
    try: (o) => {
      const [b] = split(o);
      assert.equal(channel.tryReceiveBatch(b), b.count);
      return unpacked(b);
    },
  };
}

function channelReceive(shared: boolean, batched: boolean | 'packed' = false): Waitable {
  return {
  name: channelCall('receive', shared, batched),
  yields: 'unit',
  notApplicable: batched ? { iteration: 'async iteration is receive()\'s: the receive adapter checks it' } : {},
  async create() {
    const { channel, name, remove } = makeChannel(false, shared);
    const actor = sharedActor();
    const takes = channelTakes(channel, batched === 'packed');
    const many: Partial<Instance> = batched ? {
      op: (_tag, o) => takes.async({ max: 4, ...o }).then(oneUnit),
      opSync: (_tag, o) => oneUnit(takes.sync({ max: 4, ...o })),
      tryOp: {
        call: () => {
          const list = takes.try({ max: 4 });
          return list.length === 0 ? { raw: undefined, tag: undefined } : { raw: list, tag: oneUnit(list) };
        },
        nothing: undefined,
      },
    } : {};
    return withAddress<Instance>({
      ...unitReceives({
        receive: (o) => channel.receive(o).then((m) => m.data),
        receiveSync: (o) => channel.receiveSync(o).data,
        tryReceive: () => channel.tryReceive()?.data,
      }),
      ...many,
      supply: (tag, delayMs) => remote(actor, 'channel.send', { name, tag, delayMs }),
      supplyLocal: (tag) => assert.equal(onOwnHandle(name, (ch) => ch.trySend(unit(tag))), true),
      close: () => channel.close(),
      afterClose: () => channelCalls(channel),
      async *iterate() {
        for await (const m of channel) yield unitTag(m.data);
      },
      async cleanup() {
        channel.close();
        remove();
      },
    }, name);
  },
  peerKilled: {
    doing: shared ? 'holding the producers\' turn (a loan it never commits)' : 'holding the producer role (a loan it never commits)',
    order: 'peer-first',
    blocked: false,
    // A single consumer learns its producer died; on a shared side the next producer takes the dead one's turn over and sends.
    outcome: shared ? 'supply' : { code: 'ERR_IPC_PEER_DEAD', recover: () => undefined },
    async start(instance) {
      const peer = new Actor();
      await peer.start('channel.holdProducer', { name: addressOf(instance) });
      return peer;
    },
  },
  async soak(count, seed) {
    const { channel, name, remove } = makeChannel(false, shared);
    const peer = new Actor();
    const peerDone = peer.call('channel.soakSend', { name, count, seed, batched });
    const takes = channelTakes(channel, batched === 'packed');
    const some = (list: Buffer[]): Buffer[] | undefined => (list.length === 0 ? undefined : list);
    const forms = batched
      ? { async: (o: Options) => takes.async({ max: 8, ...o }), sync: (o: Options) => takes.sync({ max: 8, ...o }),
        try: () => some(takes.try({ max: 8 })) }
      : { async: (o: Options) => channel.receive(o).then((m) => m.data), sync: (o: Options) => channel.receiveSync(o).data,
        try: () => channel.tryReceive()?.data };
    return {
      direction: 'receive', ends: false, peerDone, ...forms, perCall: batched ? 8 : 1,
      records: (raw) => (raw === undefined ? [] : batched ? (raw as Buffer[]).map(readRecord) : [readRecord(raw as Buffer)]),
      async cleanup() {
        channel.close();
        await peer.stop();
        remove();
      },
    };
  },
  };
}

/** A channel's send (`batched`: sendMany of one unit), on a full ring; `shared`: both sides created 'multi'. */
function channelSend(shared: boolean, batched: boolean | 'packed' = false): Waitable {
  const one = (n: number): void => assert.equal(n, 1, 'the batch of one went');
  return {
  name: channelCall('send', shared, batched),
  yields: 'call',
  notApplicable: { iteration: 'a sender is not a receiver: there is nothing to iterate' },
  async create() {
    const { channel, name, remove } = makeChannel(true, shared);
    const filler = Buffer.alloc(24, '.');
    assert.equal(channel.trySend(filler), true);
    for (let i = 1; i <= 4; i++) assert.equal(channel.trySend(unit(-i)), true, 'filling the channel');
    assert.equal(channel.trySend(unit(-5)), false, 'the channel is full');
    const actor = sharedActor();
    // Units the other side took out of the channel, in order (the filler is not one).
    const taken: Tag[] = [];
    const take = (data: Buffer): void => {
      if (data.length === 24) return;
      taken.push(unitTag(data));
    };
    const calls: Pick<Instance, 'op' | 'opSync' | 'tryOp'> = batched
      ? batchesOfOne(batched === 'packed' ? packedSends(channel) : channel as never, (tag) => unit(tag)) : {
      op: (tag, o) => channel.send(unit(tag), o).then(() => tag),
      opSync: (tag, o) => {
        channel.sendSync(unit(tag), o);
        return tag;
      },
      tryOp: {
        call: (tag) => {
          const raw = channel.trySend(unit(tag));
          return { raw, tag: raw ? tag : undefined };
        },
        nothing: false,
      },
    };
    return withAddress<Instance>({
      ...calls,
      // A completion makes room for one unit: the other side takes one record (the filler first).
      supply: (_tag, delayMs) => remote(actor, 'channel.receive', { name, delayMs }, (got) => {
        for (const t of got as Tag[]) taken.push(t);
      }),
      supplyLocal: () => onOwnHandle(name, (ch) => {
        const first = ch.tryReceive();
        assert.ok(first !== undefined, 'the full channel had a message to take');
        take(first.data);
      }),
      async delivered() {
        onOwnHandle(name, (ch) => {
          for (let m = ch.tryReceive(); m !== undefined; m = ch.tryReceive()) take(m.data);
        });
        return taken.filter((t) => t >= 0);
      },
      close: () => channel.close(),
      afterClose: () => channelCalls(channel),
      async cleanup() {
        channel.close();
        remove();
      },
    }, name);
  },
  peerKilled: {
    doing: shared ? 'holding the consumers\' turn (a view of the first record, never released)'
      : 'holding the consumer role (a view of the first record, never released)',
    order: 'peer-first',
    blocked: false,
    outcome: shared ? 'supply' : { code: 'ERR_IPC_PEER_DEAD', recover: () => undefined },
    async start(instance) {
      const peer = new Actor();
      await peer.start('channel.holdConsumer', { name: addressOf(instance) });
      return peer;
    },
  },
  async soak(count) {
    const { channel, name, remove } = makeChannel(false, shared);
    const peer = new Actor();
    const report = peer.call<SoakReport>('channel.soakReceive', { name, count });
    return {
      direction: 'send',
      ...(batched
        ? ((sender: Pick<BatchCalls, 'sendMany' | 'sendManySync' | 'trySendMany'>) => ({
          async: (seq: number, o: Options) => sender.sendMany([record(seq)], o).then(one), sync: (seq: number, o: Options) => one(sender.sendManySync([record(seq)], o)),
          try: (seq: number) => sender.trySendMany([record(seq)]) === 1, many: (seqs: number[], o: Options) => sender.sendMany(seqs.map((seq) => record(seq)), o),
        }))(batched === 'packed' ? packedSends(channel) : channel as never)
        : { async: (seq: number, o: Options) => channel.send(record(seq), o), sync: (seq: number, o: Options) => channel.sendSync(record(seq), o),
          try: (seq: number) => channel.trySend(record(seq)) }),
      async finish() {
        const got = await report;
        const extra = onOwnHandle(name, (ch) => ch.tryReceive());
        if (extra !== undefined) got.bad.push(`an extra record ${readRecord(extra.data).seq} after the last`);
        return got;
      },
      async cleanup() {
        channel.close();
        await peer.stop();
        remove();
      },
    };
  },
  };
}

/** A queue's send, or (`batched`) its sendMany or (`'packed'`) sendBatch, whose calls then each send a batch of one unit. */
function queueSend(family: QueueFamily, batched: boolean | 'packed' = false): Waitable {
  const r = family.remote;
  const one = (n: number): void => assert.equal(n, 1, 'the batch of one went in');
  return {
    name: queueCall(family, 'send', batched),
    yields: 'call',
    notApplicable: { iteration: 'a sender is not a receiver: there is nothing to iterate' },
    async create() {
      const { parts: q, batch, other, address, remove } = madeQueue(family, true, batched);
      for (let i = 1; i <= 4; i++) assert.equal(q.trySend(unit(-i)), true, 'filling the queue');
      assert.equal(q.trySend(unit(-5)), false, 'the queue is full');
      const actor = sharedActor();
      // Units the other side took out of the queue, in order.
      const taken: Tag[] = [];
      const many: Partial<Instance> = batched ? {
        ...batchesOfOne(batch, (tag) => unit(tag)),
        afterClose: () => [...q.afterClose(), ...batch.afterClose()],
      } : {};
      return withAddress<Instance>({
        op: (tag, o) => q.send(unit(tag), o).then(() => tag),
        opSync: (tag, o) => {
          q.sendSync(unit(tag), o);
          return tag;
        },
        tryOp: {
          call: (tag) => {
            const raw = q.trySend(unit(tag));
            return { raw, tag: raw ? tag : undefined };
          },
          nothing: false,
        },
        supply: (_tag, delayMs) => remote(actor, `${r}.receive`, { address, delayMs }, (t) => taken.push(t as Tag)),
        supplyLocal: () => {
          const d = other.tryReceive();
          assert.ok(d !== undefined, 'the full queue had a message to take');
          taken.push(unitTag(d));
        },
        async delivered() {
          for (let d = other.tryReceive(); d !== undefined; d = other.tryReceive()) taken.push(unitTag(d));
          return taken.filter((t) => t >= 0);
        },
        close: () => q.close(),
        afterClose: () => q.afterClose(),
        ...many,
        async cleanup() {
          q.close();
          await actor.call('forget', { address: String(address) });
          remove();
        },
      }, address);
    },
    peerKilled: {
      doing: 'blocked in sendSync on the same full queue',
      order: 'peer-first',
      blocked: true,
      outcome: 'supply',
      async start(instance) {
        const peer = new Actor();
        await peer.start(`${r}.blockSend`, { address: addressOf(instance), tag: 999 });
        return peer;
      },
    },
    async soak(count) {
      const { parts: q, batch, other, address, remove } = madeQueue(family, false, batched);
      const peer = new Actor();
      const report = peer.call<SoakReport>(`${r}.soakReceive`, { address, count });
      const forms = batched
        ? { async: (seq: number, o: Options) => batch.sendMany([record(seq)], o).then(one), sync: (seq: number, o: Options) => one(batch.sendManySync([record(seq)], o)),
          try: (seq: number) => batch.trySendMany([record(seq)]) === 1, many: (seqs: number[], o: Options) => batch.sendMany(seqs.map((seq) => record(seq)), o) }
        : { async: (seq: number, o: Options) => q.send(record(seq), o), sync: (seq: number, o: Options) => q.sendSync(record(seq), o),
          try: (seq: number) => q.trySend(record(seq)) };
      return {
        direction: 'send', ...forms,
        async finish() {
          const got = await report;
          const extra = other.tryReceive();
          if (extra !== undefined) got.bad.push(`an extra record ${readRecord(extra).seq} after the last`);
          return got;
        },
        async cleanup() {
          q.close();
          await peer.stop();
          remove();
        },
      };
    },
  };
}

/** Adapters keep the address of their instance here, for kill scenarios that start their own peer. */
const addresses = new WeakMap<Instance, unknown>();
function addressOf(instance: Instance): unknown {
  assert.ok(addresses.has(instance), 'the instance has an address');
  return addresses.get(instance);
}
function withAddress<I extends Instance>(instance: I, address: unknown): I {
  addresses.set(instance, address);
  return instance;
}

/** The actor's side of one queue family. */
function queueRemote(prefix: string, open: (ctx: RemoteContext, address: any) => PosixMessageQueue | SysvMessageQueue): Record<string, Remote> {
  const send = (q: PosixMessageQueue | SysvMessageQueue, data: Buffer, options?: Options): Promise<void> =>
    (q instanceof PosixMessageQueue ? q.send(data, options) : q.send(1, data, options));
  const sendSync = (q: PosixMessageQueue | SysvMessageQueue, data: Buffer): void =>
    (q instanceof PosixMessageQueue ? q.sendSync(data) : q.sendSync(1, data));
  return {
    async [`${prefix}.send`]({ address, tag, delayMs }, ctx) {
      await delayed(ctx, delayMs);
      await send(open(ctx, address), unit(tag), { timeout: REMOTE_TIMEOUT });
    },
    async [`${prefix}.receive`]({ address, delayMs }, ctx) {
      await delayed(ctx, delayMs);
      const m = await open(ctx, address).receive({ timeout: REMOTE_TIMEOUT });
      return unitTag(m.data);
    },
    [`${prefix}.blockReceive`]({ address }, ctx) {
      const q = open(ctx, address);
      ctx.started();
      q.receiveSync();
    },
    [`${prefix}.blockSend`]({ address, tag }, ctx) {
      const q = open(ctx, address);
      ctx.started();
      sendSync(q, unit(tag));
    },
    async [`${prefix}.soakSend`]({ address, count }, ctx) {
      const q = open(ctx, address);
      for (let seq = 0; seq < count; seq++) {
        const data = record(seq);
        const sent = q instanceof PosixMessageQueue ? q.trySend(data) : q.trySend(1, data);
        if (!sent) await send(q, data, { timeout: REMOTE_TIMEOUT });
      }
      return { sent: count };
    },
    async [`${prefix}.soakReceive`]({ address, count }, ctx) {
      const q = open(ctx, address);
      const report: SoakReport = { received: 0, bad: [] };
      for (let i = 0; i < count; i++) {
        const { data } = await q.receive({ timeout: REMOTE_TIMEOUT });
        const checked = readRecord(data);
        if ((!checked.ok || checked.seq !== report.received) && report.bad.length < 5) {
          report.bad.push(`record ${checked.seq} (ok ${checked.ok}) where ${report.received} was due`);
        }
        report.received = checked.seq + 1;
      }
      return report;
    },
  };
}

// ---------------------------------------------------------------------------
// Pipes

/** The actor's end of a pipe: its fd 3. */
function inherited<T>(ctx: RemoteContext, wrap: (fd: number) => T): T {
  return ctx.state.handle('fd3', () => wrap(3), (end) => (end as { close(): void }).close());
}

/** An anonymous pipe whose other end an actor inherits as its fd 3 (spawned on first use). */
function pipeWithActor<T = Buffer>(options: PipeOptions<T>, actorEnd: 'read' | 'write') {
  const { readEnd, writeEnd } = pipe<T>(options as PipeOptions<T> & { codec: CodecOption<T> });
  let actor: Actor | undefined;
  return {
    readEnd, writeEnd,
    actor: (): Actor => (actor ??= new Actor([actorEnd === 'read' ? readEnd.fd : writeEnd.fd])),
    async cleanup() {
      readEnd.close();
      writeEnd.close();
      await actor?.stop();
    },
  };
}

function readEndClosedCalls(end: PipeReadEnd): ClosedCall[] {
  return closedCalls([
    ['read', () => end.read(), true], ['readSync', () => end.readSync(), false], ['tryRead', () => end.tryRead(), false],
    ['readInto', () => end.readInto(Buffer.alloc(8)), true], ['readIntoSync', () => end.readIntoSync(Buffer.alloc(8)), false],
    ['readMessage', () => end.readMessage(), true], ['readMessageSync', () => end.readMessageSync(), false],
    ['fd', () => end.fd, false], ['capacity', () => end.capacity, false], ['nonBlocking', () => end.nonBlocking, false],
  ]);
}

/** The messages of a pipe's batched receive, each `{ data }` and nothing else. */
function batchData(list: PipeMessage[] | null): Buffer[] | null {
  return list === null ? null : list.map((m) => {
    assert.deepEqual(Object.keys(m), ['data']);
    return m.data;
  });
}

/** The one unit a pipe's batched receive got (one was there, and no end of data while a write end is open). */
function oneBuffer(list: Buffer[] | null): Tag {
  assert.ok(list !== null, 'no end of data while a write end is open');
  return oneUnit(list);
}

/**
 * The read side of a pipe: `read` of one unit, or `readMessage` of one
 * framed unit, or (`batched`) `receiveMany` of framed units, or
 * (`batched` 'packed') `receiveBatch` of them into a MessageBatch.
 */
function pipeRead(framed: boolean, batched: boolean | 'packed' = false): Waitable {
  const packed = batched === 'packed';
  const name = packed ? 'PipeReadEnd.receiveBatch' : batched ? 'PipeReadEnd.receiveMany' : framed ? 'PipeReadEnd.readMessage' : 'PipeReadEnd.read';
  // One receive's messages: receiveMany's, or those receiveBatch put in a batch of its own (null: the end).
  const many = (readEnd: PipeReadEnd, max: number, o?: Options): Promise<Buffer[] | null> => {
    if (!packed) return readEnd.receiveMany({ max, ...o }).then(batchData);
    const batch = batchFor(max);
    return readEnd.receiveBatch(batch, o).then((n) => (n === null ? null : unpacked(batch)));
  };
  const manySync = (readEnd: PipeReadEnd, max: number, o?: Options): Buffer[] | null => {
    if (!packed) return batchData(readEnd.receiveManySync({ max, ...o }));
    const batch = batchFor(max);
    return readEnd.receiveBatchSync(batch, o) === null ? null : unpacked(batch);
  };
  const manyTry = (readEnd: PipeReadEnd, max: number): Buffer[] | null => {
    if (!packed) return batchData(readEnd.tryReceiveMany({ max }));
    const batch = batchFor(max);
    return readEnd.tryReceiveBatch(batch) === null ? null : unpacked(batch);
  };
  const r = framed ? 'pipe.writeMessage' : 'pipe.write';
  const one = (raw: Buffer | null): Tag => {
    assert.ok(raw !== null, 'no end of data while a write end is open');
    return unitTag(raw);
  };
  return {
    name,
    yields: 'unit',
    notApplicable: batched ? { iteration: 'async iteration is receive()\'s: the typed receive adapter checks it' } : framed ? {
      try: 'PipeReadEnd has no tryReadMessage: readMessage({ timeout: 0 }) is its only non-waiting form (checked in 2)',
      iteration: 'PipeReadEnd iterates raw chunks, not framed messages: see PipeReadEnd.read',
    } : {},
    async create() {
      const p = pipeWithActor({}, 'write');
      const { readEnd, writeEnd } = p;
      const instance: Instance = {
        op: batched ? (_tag, o) => many(readEnd, 4, o).then(oneBuffer) : framed
          ? (_tag, o) => readEnd.readMessage(o).then(one)
          : (_tag, o) => readEnd.read({ maxBytes: UNIT, ...o }).then(one),
        opSync: batched ? (_tag, o) => oneBuffer(manySync(readEnd, 4, o))
          : framed ? (_tag, o) => one(readEnd.readMessageSync(o)) : (_tag, o) => one(readEnd.readSync({ maxBytes: UNIT, ...o })),
        supply: (tag, delayMs) => remote(p.actor(), r, { tag, delayMs }),
        supplyLocal: framed
          ? (tag) => writeEnd.writeMessageSync(unit(tag), { timeout: 0 })
          : (tag) => writeEnd.writeSync(unit(tag), { timeout: 0 }),
        close: () => readEnd.close(),
        afterClose: () => [...readEndClosedCalls(readEnd), ...(packed ? closedCalls([
          ['receiveBatch', () => readEnd.receiveBatch(batchFor()), true], ['receiveBatchSync', () => readEnd.receiveBatchSync(batchFor()), false],
          ['tryReceiveBatch', () => readEnd.tryReceiveBatch(batchFor()), false],
        ]) : []), ...(batched ? closedCalls([
          ['receiveMany', () => readEnd.receiveMany(), true], ['receiveManySync', () => readEnd.receiveManySync(), false],
          ['tryReceiveMany', () => readEnd.tryReceiveMany(), false], ['readv', () => readEnd.readv([Buffer.alloc(1)]), true],
          ['readvSync', () => readEnd.readvSync([Buffer.alloc(1)]), false], ['tryReadv', () => readEnd.tryReadv([Buffer.alloc(1)]), false],
        ]) : [])],
        cleanup: () => p.cleanup(),
      };
      if (batched) {
        instance.tryOp = {
          call: () => {
            const list = manyTry(readEnd, 4);
            return list !== null && list.length === 0 ? { raw: undefined, tag: undefined } : { raw: list, tag: oneBuffer(list) };
          },
          nothing: undefined,
        };
      } else if (!framed) {
        instance.tryOp = {
          call: () => {
            const raw = readEnd.tryRead({ maxBytes: UNIT });
            return { raw, tag: raw === undefined ? undefined : one(raw) };
          },
          nothing: undefined,
        };
        instance.iterate = async function* () {
          for await (const chunk of readEnd) yield* unitTags(chunk);
        };
      }
      return withAddress(instance, readEnd);
    },
    peerKilled: {
      doing: `blocked in ${framed ? 'readMessageSync' : 'readSync'} on a copy of the same read end`,
      order: 'peer-first',
      blocked: true,
      outcome: 'supply',
      async start(instance) {
        const peer = new Actor([(addressOf(instance) as PipeReadEnd).fd]);
        await peer.start('pipe.blockRead', { framed });
        return peer;
      },
    },
    async soak(count, seed) {
      const { readEnd, writeEnd } = pipe();
      const peer = new Actor([writeEnd.fd]);
      // The peer holds the only write end: its exit is the end of the data.
      writeEnd.close();
      const peerDone = peer.call('pipe.soakWrite', { count, seed, framed, batched });
      const stream = new RecordStream();
      const records = (raw: unknown): Checked[] | null => {
        if (raw === null) return null;
        if (raw === undefined) return [];
        return framed ? [readRecord(raw as Buffer)] : stream.push(raw as Buffer);
      };
      const size = readSizes(seed);
      if (batched) {
        const some = (list: Buffer[] | null): Buffer[] | null | undefined => (list !== null && list.length === 0 ? undefined : list);
        return {
          direction: 'receive', ends: true, peerDone, perCall: 8,
          records: (raw) => (raw === null ? null : raw === undefined ? [] : (raw as Buffer[]).map(readRecord)),
          async: (o) => many(readEnd, 8, o),
          sync: (o) => manySync(readEnd, 8, o),
          try: () => some(manyTry(readEnd, 8)),
          async cleanup() {
            readEnd.close();
            await peer.stop();
          },
        };
      }
      return {
        direction: 'receive', ends: true, peerDone, records,
        leftover: () => stream.leftover,
        async: framed ? (o) => readEnd.readMessage(o) : (o) => readEnd.read({ maxBytes: size(), ...o }),
        sync: framed ? (o) => readEnd.readMessageSync(o) : (o) => readEnd.readSync({ maxBytes: size(), ...o }),
        ...(framed ? {} : { try: () => readEnd.tryRead({ maxBytes: size() }) }),
        async cleanup() {
          readEnd.close();
          await peer.stop();
        },
      };
    },
  };
}

/** Random read sizes from 1 byte to two records, so reads cut records anywhere. */
function readSizes(seed: number): () => number {
  const rnd = prng(seed ^ 0x5bd1e995);
  return () => 1 + Math.floor(rnd() * 2 * recordSize());
}

/** A peer with a copy of the write end, blocked in `op` (writing `size` bytes) on the same full pipe, killed mid-write. */
function pipeWriterKilled(doing: string, op: string, size: number): KillScenario {
  return {
    doing,
    order: 'peer-first',
    blocked: true,
    outcome: 'supply',
    async start(instance) {
      const peer = new Actor([(addressOf(instance) as PipeWriteEnd).fd]);
      await peer.start(op, { tag: 999, size });
      return peer;
    },
  };
}

/** Bytes of a write unit: a whole page, so a 4096-byte pipe holds exactly one. */
const PAGE_UNIT = 4096;

const pipeWrite: Waitable = {
  name: 'PipeWriteEnd.write',
  yields: 'call',
  notApplicable: { iteration: 'a write end is not a receiver: there is nothing to iterate' },
  async create() {
    // One page of capacity: one unit fills the pipe, reading one frees room for exactly one.
    const p = pipeWithActor({ capacity: PAGE_UNIT }, 'read');
    const { readEnd, writeEnd } = p;
    assert.equal(writeEnd.capacity, PAGE_UNIT);
    assert.equal(writeEnd.tryWrite(unit(-1, PAGE_UNIT)), PAGE_UNIT, 'filling the pipe');
    assert.equal(writeEnd.tryWrite(unit(-2, PAGE_UNIT)), 0, 'the pipe is full');
    const taken: Tag[] = [];
    const instance: Instance = {
      op: (tag, o) => writeEnd.write(unit(tag, PAGE_UNIT), o).then(() => tag),
      opSync: (tag, o) => {
        writeEnd.writeSync(unit(tag, PAGE_UNIT), o);
        return tag;
      },
      tryOp: {
        call: (tag) => {
          const raw = writeEnd.tryWrite(unit(tag, PAGE_UNIT));
          assert.ok(raw === 0 || raw === PAGE_UNIT, `a ${PAGE_UNIT}-byte write is all or nothing; wrote ${raw}`);
          return { raw, tag: raw === 0 ? undefined : tag };
        },
        nothing: 0,
      },
      supply: (_tag, delayMs) => remote(p.actor(), 'pipe.readUnit', { size: PAGE_UNIT, delayMs }, (t) => taken.push(t as Tag)),
      supplyLocal: () => {
        const chunk = readEnd.readSync({ maxBytes: PAGE_UNIT, timeout: 0 });
        assert.ok(chunk !== null);
        taken.push(unitTag(chunk, PAGE_UNIT));
      },
      async delivered() {
        for (let chunk = readEnd.tryRead({ maxBytes: PAGE_UNIT }); chunk; chunk = readEnd.tryRead({ maxBytes: PAGE_UNIT })) {
          taken.push(...unitTags(chunk, PAGE_UNIT));
        }
        return taken.filter((t) => t >= 0);
      },
      close: () => writeEnd.close(),
      afterClose: () => closedCalls([
        ['write', () => writeEnd.write(unit(0)), true], ['writeSync', () => writeEnd.writeSync(unit(0)), false],
        ['tryWrite', () => writeEnd.tryWrite(unit(0)), false], ['writeMessage', () => writeEnd.writeMessage(unit(0)), true],
        ['writeMessageSync', () => writeEnd.writeMessageSync(unit(0)), false], ['fd', () => writeEnd.fd, false],
        ['capacity', () => writeEnd.capacity, false], ['nonBlocking', () => writeEnd.nonBlocking, false],
      ]),
      cleanup: () => p.cleanup(),
    };
    return withAddress(instance, writeEnd);
  },
  peerKilled: pipeWriterKilled('blocked in writeSync of a whole unit on a copy of the same full pipe', 'pipe.blockWrite', PAGE_UNIT),
  async soak() {
    const { writeEnd, report, stop } = pipeToSoakReader(false);
    return writeSoak(writeEnd, report, stop);
  },
};

/** A pipe whose read end an actor holds alone, reading records (`framed`: as messages) until the end of the data. */
function pipeToSoakReader(framed: boolean): { writeEnd: PipeWriteEnd; report: Promise<SoakReport>; stop(): Promise<void> } {
  const { readEnd, writeEnd } = pipe();
  const peer = new Actor([readEnd.fd]);
  readEnd.close();
  return { writeEnd, report: peer.call<SoakReport>('pipe.soakRead', { framed }), stop: () => peer.stop() };
}

/** A send soak over a write end (a pipe's or a FIFO's): records of at most PIPE_BUF bytes, so every write is all or nothing. */
function writeSoak(writeEnd: PipeWriteEnd, report: Promise<SoakReport>, stop: () => Promise<void>): SendSoak {
  return {
    direction: 'send',
    async: (seq, o) => writeEnd.write(record(seq), o),
    sync: (seq, o) => writeEnd.writeSync(record(seq), o),
    try: (seq) => {
      const data = record(seq);
      const n = writeEnd.tryWrite(data);
      assert.ok(n === 0 || n === data.length, `a ${data.length}-byte write is all or nothing; wrote ${n}`);
      return n === data.length;
    },
    async finish() {
      writeEnd.close();
      return report;
    },
    async cleanup() {
      writeEnd.close();
      await stop();
    },
  };
}

/** Bytes of a framed write unit: with its 4-byte prefix, a whole page (a 4096-byte pipe holds one frame). */
const FRAMED_UNIT = PAGE_UNIT - 4;

/**
 * PipeWriteEnd.sendMany (`packed`: sendBatch of a MessageBatch): each call
 * a batch of one framed unit that fills the pipe's one page.
 */
const pipeSendBatched = (packed: boolean): Waitable => ({
  name: packed ? 'PipeWriteEnd.sendBatch' : 'PipeWriteEnd.sendMany',
  yields: 'call',
  notApplicable: { iteration: 'a write end is not a receiver: there is nothing to iterate' },
  async create() {
    const p = pipeWithActor({ capacity: PAGE_UNIT }, 'read');
    const { readEnd, writeEnd } = p;
    assert.equal(writeEnd.trySendMany([unit(-1, FRAMED_UNIT)]), 1, 'filling the pipe');
    assert.equal(writeEnd.trySendMany([unit(-2, FRAMED_UNIT)]), 0, 'the pipe is full');
    const taken: Tag[] = [];
    const instance: Instance = {
      ...batchesOfOne(packed ? packedSends(writeEnd) : writeEnd as never, (tag) => unit(tag, FRAMED_UNIT)),
      supply: (_tag, delayMs) => remote(p.actor(), 'pipe.readFramedUnit', { size: FRAMED_UNIT, delayMs }, (t) => taken.push(t as Tag)),
      supplyLocal: () => {
        const message = readEnd.readMessageSync({ timeout: 0 });
        assert.ok(message !== null);
        taken.push(unitTag(message, FRAMED_UNIT));
      },
      async delivered() {
        for (let m = readEnd.tryReadMessage(); m; m = readEnd.tryReadMessage()) taken.push(unitTag(m, FRAMED_UNIT));
        return taken.filter((t) => t >= 0);
      },
      close: () => writeEnd.close(),
      afterClose: () => closedCalls([
        ...(packed ? [['sendBatch', () => writeEnd.sendBatch(packOf([unit(0)])), true], ['sendBatchSync', () => writeEnd.sendBatchSync(packOf([unit(0)])), false],
          ['trySendBatch', () => writeEnd.trySendBatch(packOf([unit(0)])), false]] as [string, () => unknown, boolean][] : []),
        ['sendMany', () => writeEnd.sendMany([unit(0)]), true], ['sendManySync', () => writeEnd.sendManySync([unit(0)]), false],
        ['trySendMany', () => writeEnd.trySendMany([unit(0)]), false], ['writev', () => writeEnd.writev([unit(0)]), true],
        ['writevSync', () => writeEnd.writevSync([unit(0)]), false], ['tryWritev', () => writeEnd.tryWritev([unit(0)]), false],
      ]),
      cleanup: () => p.cleanup(),
    };
    return withAddress(instance, writeEnd);
  },
  peerKilled: pipeWriterKilled('blocked in writeSync of a whole page on a copy of the same full pipe', 'pipe.blockWriteMessage', FRAMED_UNIT),
  async soak() {
    const { writeEnd, report, stop } = pipeToSoakReader(true);
    const one = (n: number): void => assert.equal(n, 1, 'the batch of one went');
    const calls = packed ? packedSends(writeEnd) : writeEnd as unknown as ReturnType<typeof packedSends>;
    return {
      direction: 'send',
      async: (seq, o) => calls.sendMany([record(seq)], o).then(one),
      sync: (seq, o) => one(calls.sendManySync([record(seq)], o)),
      try: (seq) => calls.trySendMany([record(seq)]) === 1,
      many: (seqs, o) => calls.sendMany(seqs.map((seq) => record(seq)), o),
      async finish() {
        writeEnd.close();
        return report;
      },
      async cleanup() {
        writeEnd.close();
        await stop();
      },
    };
  },
});

// ---------------------------------------------------------------------------
// Typed messages on pipes: send and receive with a codec

/** The codec the typed pipe adapters use: MessagePack carries a unit's bytes as they are. */
const TYPED = { codec: 'msgpack' } as const;

/** The actor's end of a typed pipe: its fd 3, wrapped with the same codec. */
function typedReadEnd(ctx: RemoteContext): PipeReadEnd<Uint8Array> {
  return inherited(ctx, (fd) => PipeReadEnd.fromFd<Uint8Array>(fd, TYPED));
}

function typedWriteEnd(ctx: RemoteContext): PipeWriteEnd<Uint8Array> {
  return inherited(ctx, (fd) => PipeWriteEnd.fromFd<Uint8Array>(fd, TYPED));
}

/** Reads typed records until the end of the data, checking order and checksums. */
async function receiveRecords(end: PipeReadEnd<Uint8Array>): Promise<SoakReport> {
  const report: SoakReport = { received: 0, bad: [] };
  for (let m = await end.receive({ timeout: REMOTE_TIMEOUT }); m !== null; m = await end.receive({ timeout: REMOTE_TIMEOUT })) {
    const checked = readRecord(m.data);
    if ((!checked.ok || checked.seq !== report.received) && report.bad.length < 5) {
      report.bad.push(`record ${checked.seq} (ok ${checked.ok}) where ${report.received} was due`);
    }
    report.received = checked.seq + 1;
  }
  end.close();
  return report;
}

/** PipeReadEnd.receive with a codec: one unit per message. */
const pipeReceive: Waitable = {
  name: 'PipeReadEnd.receive (codec)',
  yields: 'unit',
  notApplicable: {},
  async create() {
    const p = pipeWithActor(TYPED, 'write');
    const { readEnd, writeEnd } = p;
    const one = (m: { data: Uint8Array } | null): Tag => {
      assert.ok(m !== null, 'no end of data while a write end is open');
      return unitTag(m.data);
    };
    const instance: Instance = {
      op: (_tag, o) => readEnd.receive(o).then(one),
      opSync: (_tag, o) => one(readEnd.receiveSync(o)),
      tryOp: {
        call: () => {
          const raw = readEnd.tryReceive();
          return { raw, tag: raw === undefined ? undefined : one(raw) };
        },
        nothing: undefined,
      },
      supply: (tag, delayMs) => remote(p.actor(), 'pipe.send', { tag, delayMs }),
      supplyLocal: (tag) => writeEnd.sendSync(unit(tag), { timeout: 0 }),
      close: () => readEnd.close(),
      afterClose: () => [
        ...readEndClosedCalls(readEnd),
        ...closedCalls([
          ['receive', () => readEnd.receive(), true], ['receiveSync', () => readEnd.receiveSync(), false],
          ['tryReceive', () => readEnd.tryReceive(), false],
        ]),
      ],
      async *iterate() {
        for await (const data of readEnd) yield unitTag(data);
      },
      cleanup: () => p.cleanup(),
    };
    return withAddress(instance, readEnd);
  },
  peerKilled: {
    doing: 'blocked in receiveSync on a copy of the same read end',
    order: 'peer-first',
    blocked: true,
    outcome: 'supply',
    async start(instance) {
      const peer = new Actor([(addressOf(instance) as PipeReadEnd).fd]);
      await peer.start('pipe.blockReceive', {});
      return peer;
    },
  },
  async soak(count, seed) {
    const { readEnd, writeEnd } = pipe(TYPED);
    const peer = new Actor([writeEnd.fd]);
    // The peer holds the only write end: its exit is the end of the data.
    writeEnd.close();
    const peerDone = peer.call('pipe.soakSend', { count, seed });
    return {
      direction: 'receive', ends: true, peerDone,
      records: (raw) => (raw === null ? null : raw === undefined ? [] : [readRecord((raw as { data: Uint8Array }).data)]),
      leftover: () => 0,
      async: (o) => readEnd.receive(o),
      sync: (o) => readEnd.receiveSync(o),
      try: () => readEnd.tryReceive(),
      async cleanup() {
        readEnd.close();
        await peer.stop();
      },
    };
  },
};

/** Bytes of a typed send unit: MessagePack adds 3 bytes to it, the frame 4, so one message fills a page. */
const TYPED_UNIT = PAGE_UNIT - 3 - 4;

/** PipeWriteEnd.send with a codec, on a pipe of one page: one message fills it, taking one frees room for one. */
const pipeSend: Waitable = {
  name: 'PipeWriteEnd.send (codec)',
  yields: 'call',
  notApplicable: { iteration: 'a write end is not a receiver: there is nothing to iterate' },
  async create() {
    const p = pipeWithActor({ capacity: PAGE_UNIT, ...TYPED }, 'read');
    const { readEnd, writeEnd } = p;
    assert.equal(writeEnd.trySend(unit(-1, TYPED_UNIT)), true, 'filling the pipe');
    assert.equal(writeEnd.trySend(unit(-2, TYPED_UNIT)), false, 'the pipe is full');
    const taken: Tag[] = [];
    const take = (m: { data: Uint8Array } | null | undefined): boolean => {
      if (m === undefined || m === null) return false;
      taken.push(unitTag(m.data, TYPED_UNIT));
      return true;
    };
    const instance: Instance = {
      op: (tag, o) => writeEnd.send(unit(tag, TYPED_UNIT), o).then(() => tag),
      opSync: (tag, o) => {
        writeEnd.sendSync(unit(tag, TYPED_UNIT), o);
        return tag;
      },
      tryOp: {
        call: (tag) => {
          const raw = writeEnd.trySend(unit(tag, TYPED_UNIT));
          return { raw, tag: raw ? tag : undefined };
        },
        nothing: false,
      },
      supply: (_tag, delayMs) => remote(p.actor(), 'pipe.receiveUnit', { size: TYPED_UNIT, delayMs }, (t) => taken.push(t as Tag)),
      supplyLocal: () => {
        assert.ok(take(readEnd.receiveSync({ timeout: 0 })), 'the full pipe had a message to take');
      },
      async delivered() {
        while (take(readEnd.tryReceive())) { /* drained */ }
        return taken.filter((t) => t >= 0);
      },
      close: () => writeEnd.close(),
      afterClose: () => closedCalls([
        ['send', () => writeEnd.send(unit(0)), true], ['sendSync', () => writeEnd.sendSync(unit(0)), false],
        ['trySend', () => writeEnd.trySend(unit(0)), false], ['write', () => writeEnd.write(unit(0)), true],
        ['writeMessage', () => writeEnd.writeMessage(unit(0)), true], ['fd', () => writeEnd.fd, false],
        ['capacity', () => writeEnd.capacity, false], ['nonBlocking', () => writeEnd.nonBlocking, false],
      ]),
      cleanup: () => p.cleanup(),
    };
    return withAddress(instance, writeEnd);
  },
  peerKilled: {
    doing: 'blocked in sendSync of a whole message on a copy of the same full pipe',
    order: 'peer-first',
    blocked: true,
    outcome: 'supply',
    async start(instance) {
      const peer = new Actor([(addressOf(instance) as PipeWriteEnd).fd]);
      await peer.start('pipe.blockSend', { tag: 999, size: TYPED_UNIT });
      return peer;
    },
  },
  async soak() {
    const { readEnd, writeEnd } = pipe(TYPED);
    const peer = new Actor([readEnd.fd]);
    readEnd.close();
    const report = peer.call<SoakReport>('pipe.soakReceive', {});
    return {
      direction: 'send',
      async: (seq, o) => writeEnd.send(record(seq), o),
      sync: (seq, o) => writeEnd.sendSync(record(seq), o),
      try: (seq) => writeEnd.trySend(record(seq)),
      async finish() {
        writeEnd.close();
        return report;
      },
      async cleanup() {
        writeEnd.close();
        await peer.stop();
      },
    };
  },
};

// ---------------------------------------------------------------------------
// FIFOs

let fifoDir: string | undefined;

/** A fresh FIFO path in this file's own directory. */
function fifoPath(): string {
  fifoDir ??= mkdtempSync(path.join(tmpdir(), 'ipckit-conformance-'));
  return path.join(fifoDir, `f-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
}

/** What is left in the FIFO directory (then removes it). */
export function fifoLeftovers(): string[] {
  if (fifoDir === undefined) return [];
  const left = readdirSync(fifoDir);
  rmSync(fifoDir, { recursive: true, force: true });
  fifoDir = undefined;
  return left;
}

/** Reads an end until the end of the data; its bytes. */
async function readAll(end: PipeReadEnd): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for (let c = await end.read({ timeout: REMOTE_TIMEOUT }); c !== null; c = await end.read({ timeout: REMOTE_TIMEOUT })) chunks.push(c);
  } finally {
    end.close();
  }
  return Buffer.concat(chunks);
}

function readAllSync(end: PipeReadEnd): Buffer {
  const chunks: Buffer[] = [];
  try {
    for (let c = end.readSync({ timeout: REMOTE_TIMEOUT }); c !== null; c = end.readSync({ timeout: REMOTE_TIMEOUT })) chunks.push(c);
  } finally {
    end.close();
  }
  return Buffer.concat(chunks);
}

const FIFO_NOT_APPLICABLE = {
  try: 'Fifo has no tryOpenRead/tryOpenWrite: an open with { timeout: 0 } is its non-waiting form (checked in 2)',
  close: 'a pending open has no handle to close: it is cancelled through its AbortSignal (checked in 6 and 7); the ends it opens are pipe ends, checked there',
  iteration: 'an open is not a receiver: its read end iterates as PipeReadEnd.read does',
  order: 'opens do not queue behind each other: like open(2), one writer satisfies every waiting reader at once (and one reader every writer)',
};

/** Fifo.openRead: the call opens, reads until the writer closes, and yields the unit it read. */
const fifoOpenRead: Waitable = {
  name: 'Fifo.openRead',
  yields: 'unit',
  notApplicable: FIFO_NOT_APPLICABLE,
  async create() {
    const p = fifoPath();
    Fifo.create(p);
    const actor = sharedActor();
    return withAddress<Instance>({
      op: (_tag, o) => Fifo.openRead(p, o).then(readAll).then((d) => unitTag(d)),
      opSync: (_tag, o) => unitTag(readAllSync(Fifo.openReadSync(p, o))),
      supply: (tag, delayMs) => remote(actor, 'fifo.write', { path: p, tag, delayMs }),
      close: () => undefined,
      async cleanup() {
        await actor.call('forget', { address: p });
        Fifo.unlink(p);
      },
    }, p);
  },
  peerKilled: {
    doing: 'holding the write end open after writing, until it is killed',
    order: 'call-first',
    blocked: false,
    outcome: 'peer',
    async start(instance, tag) {
      const peer = new Actor();
      await peer.start('fifo.holdWriter', { path: addressOf(instance), tag });
      return peer;
    },
  },
  async soak(count, seed) {
    const p = fifoPath();
    Fifo.create(p);
    const peer = new Actor();
    const peerDone = peer.call('fifo.soakWrite', { path: p, count, seed });
    const end = await Fifo.openRead(p, { timeout: REMOTE_TIMEOUT });
    const stream = new RecordStream();
    const size = readSizes(seed);
    return {
      direction: 'receive', ends: true, peerDone,
      leftover: () => stream.leftover,
      async: (o) => end.read({ maxBytes: size(), ...o }),
      sync: (o) => end.readSync({ maxBytes: size(), ...o }),
      try: () => end.tryRead({ maxBytes: size() }),
      records: (raw) => (raw === null ? null : raw === undefined ? [] : stream.push(raw as Buffer)),
      async cleanup() {
        end.close();
        await peer.stop();
        Fifo.unlink(p);
      },
    };
  },
};

/**
 * Fifo.openWrite: the call opens, writes its own unit, closes, and
 * completes once the reader it met has read the unit and left. (A reader
 * stays until it sees the end of the data; without that last step a later
 * call could still find it there, and one supply would serve two calls.)
 */
const fifoOpenWrite: Waitable = {
  name: 'Fifo.openWrite',
  yields: 'call',
  notApplicable: FIFO_NOT_APPLICABLE,
  async create() {
    const p = fifoPath();
    Fifo.create(p);
    const actor = sharedActor();
    // The actor's readers, each resolving once it has read and closed; what they read.
    const readers: Promise<void>[] = [];
    const got: Tag[] = [];
    const readersGone = async (): Promise<void> => {
      await Promise.all(readers);
    };
    const writeUnit = async (end: PipeWriteEnd, tag: Tag): Promise<Tag> => {
      try {
        await end.write(unit(tag), { timeout: REMOTE_TIMEOUT });
      } finally {
        end.close();
      }
      await readersGone();
      return tag;
    };
    return withAddress<Instance>({
      op: (tag, o) => Fifo.openWrite(p, o).then((end) => writeUnit(end, tag)),
      opSync: (tag, o) => {
        const end = Fifo.openWriteSync(p, o);
        try {
          end.writeSync(unit(tag), { timeout: REMOTE_TIMEOUT });
        } finally {
          end.close();
        }
        return tag;
      },
      async supply(_tag, delayMs) {
        // A reader from an earlier supply (met by a sync call) leaves first.
        await readersGone();
        const request = await actor.start<Tag[]>('fifo.read', { path: p, delayMs });
        const gone = request.done.then((tags) => {
          got.push(...tags);
        });
        readers.push(gone);
        // Without a delay the reader's open is under way now; with one, it is done once it has read.
        return { done: delayMs ? gone : done };
      },
      async delivered() {
        await readersGone();
        return got;
      },
      close: () => undefined,
      async cleanup() {
        await actor.call('forget', { address: p });
        Fifo.unlink(p);
      },
    }, p);
  },
  peerKilled: {
    doing: 'blocked in openWriteSync of the same FIFO (a competing writer)',
    order: 'peer-first',
    blocked: true,
    outcome: 'supply',
    async start(instance) {
      const peer = new Actor();
      await peer.start('fifo.blockOpenWrite', { path: addressOf(instance) });
      return peer;
    },
  },
  async soak() {
    const p = fifoPath();
    Fifo.create(p);
    const peer = new Actor();
    const report = peer.call<SoakReport>('fifo.soakRead', { path: p });
    const end = await Fifo.openWrite(p, { timeout: REMOTE_TIMEOUT });
    return writeSoak(end, report, async () => {
      await peer.stop();
      Fifo.unlink(p);
    });
  },
};

// ---------------------------------------------------------------------------
// Signals

/** Real-time signals the suite uses, one per instance in turn, so a late signal never reaches the next test. */
export const CONFORMANCE_SIGNALS = Array.from({ length: 8 }, (_, i) => `SIGRTMIN+${i + 1}`);
let nextSignal = 0;

const signalListener: Waitable = {
  name: 'SignalListener.receive',
  yields: 'unit',
  notApplicable: {},
  async create() {
    const sig = CONFORMANCE_SIGNALS[nextSignal++ % CONFORMANCE_SIGNALS.length]!;
    const listener = listenForSignals(sig);
    const actor = sharedActor();
    // Who sent each tag: the kernel reports the sender's pid.
    const senders = new Map<Tag, number>();
    const tagOf = (info: SignalInfo): Tag => {
      const tag = info.value!;
      assert.deepEqual(info, {
        signal: sig, number: signalNumber(sig), pid: senders.get(tag) ?? -1, uid: process.getuid!(),
        code: -1, origin: 'sigqueue', value: tag,
      });
      return tag;
    };
    const instance: Instance & { expectFrom(tag: Tag, pid: number): void } = {
      op: (_tag, o) => listener.receive(o).then(tagOf),
      opSync: (_tag, o) => tagOf(listener.receiveSync(o)),
      tryOp: {
        call: () => {
          const raw = listener.tryReceive();
          return { raw, tag: raw === undefined ? undefined : tagOf(raw) };
        },
        nothing: undefined,
      },
      supply: (tag, delayMs) => {
        senders.set(tag, actor.pid);
        return remote(actor, 'signal.send', { pid: process.pid, signal: sig, tag, delayMs });
      },
      supplyLocal: (tag) => {
        senders.set(tag, process.pid);
        sendSignal(process.pid, sig, { value: tag });
      },
      expectFrom: (tag, pid) => senders.set(tag, pid),
      close: () => listener.close(),
      afterClose: () => closedCalls([
        ['receive', () => listener.receive(), true], ['receiveSync', () => listener.receiveSync(), false],
        ['tryReceive', () => listener.tryReceive(), false],
      ]),
      async *iterate() {
        for await (const info of listener) yield tagOf(info);
      },
      async cleanup() {
        listener.close();
      },
    };
    return withAddress(instance, sig);
  },
  peerKilled: {
    doing: 'killed right after queueing a signal to this process',
    order: 'call-first',
    blocked: false,
    outcome: 'peer',
    async start(instance, tag) {
      const peer = new Actor();
      (instance as Instance & { expectFrom(tag: Tag, pid: number): void }).expectFrom(tag, peer.pid);
      await peer.start('signal.sendAndHang', { pid: process.pid, signal: addressOf(instance), tag });
      return peer;
    },
  },
  async soak(count) {
    const sig = CONFORMANCE_SIGNALS[nextSignal++ % CONFORMANCE_SIGNALS.length]!;
    const listener = listenForSignals(sig);
    const peer = new Actor();
    const peerDone = peer.call('signal.soakSend', { pid: process.pid, signal: sig, count });
    const records = (raw: unknown): Checked[] => {
      if (raw === undefined) return [];
      const info = raw as SignalInfo;
      const checked = readSignalValue(info.value);
      return [{ seq: checked.seq, ok: checked.ok && info.pid === peer.pid && info.signal === sig }];
    };
    return {
      direction: 'receive', ends: false, peerDone, records,
      async: (o) => listener.receive(o),
      sync: (o) => listener.receiveSync(o),
      try: () => listener.tryReceive(),
      async cleanup() {
        listener.close();
        await peer.stop();
      },
    };
  },
};

// ---------------------------------------------------------------------------
// Locks in shared memory

/** A fresh segment with a mutex at 0 and a semaphore at 16. */
function lockSegment(): { shm: PosixSharedMemory; name: string } {
  const name = objects.shmName('cf-lock');
  return { shm: PosixSharedMemory.create(name, { size: 64 }), name };
}

/** The actor's mutex (at 0) of segment `name`; forgetting the segment lets go of it. */
function remoteMutex(ctx: RemoteContext, name: string): Mutex {
  const shm = ctx.state.handle(name, () => PosixSharedMemory.open(name), (s) => s.close());
  return ctx.state.handle(`${name}#mutex`, () => Mutex.open(shm, 0), (m) => {
    if (m.held) m.unlock();
  });
}

/** The actor's semaphore (at 16) of segment `name`. */
function remoteSemaphore(ctx: RemoteContext, name: string): Semaphore {
  const shm = ctx.state.handle(name, () => PosixSharedMemory.open(name), (s) => s.close());
  return ctx.state.handle(`${name}#semaphore`, () => Semaphore.open(shm, 16), () => undefined);
}

const mutexLock: Waitable = {
  name: 'Mutex.lock',
  yields: 'call',
  notApplicable: {
    iteration: 'a mutex is not a receiver: there is nothing to iterate',
    soak: 'a mutex carries no data, so exactly-once delivery does not apply (mutual exclusion is soaked in lock.test.ts)',
  },
  async create() {
    const { shm, name } = lockSegment();
    const mutex = Mutex.create(shm, 0);
    const actor = sharedActor();
    // Another process holds the lock: every call of this thread has to wait.
    await actor.call('mutex.lock', { name });
    let actorHolds = true;
    const instance: Instance = {
      op: (tag, o) => mutex.lock(o).then(() => tag),
      opSync: (tag, o) => {
        mutex.lockSync(o);
        return tag;
      },
      tryOp: { call: (tag) => {
        const raw = mutex.tryLock();
        return { raw, tag: raw ? tag : undefined };
      }, nothing: false },
      // One call can complete once its holder lets go: the actor, or this thread.
      supply: (_tag, delayMs) => {
        if (actorHolds) {
          actorHolds = false;
          return remote(actor, 'mutex.unlock', { name, delayMs });
        }
        if (!shm.closed && mutex.held) mutex.unlock();
        return now();
      },
      supplyLocal: () => mutex.unlock(),
      close: () => shm.close(),
      afterClose: () => closedCalls([
        ['lock', () => mutex.lock(), true], ['lock({ timeout })', () => mutex.lock({ timeout: 10 }), true],
        ['lockSync', () => mutex.lockSync(), false], ['tryLock', () => mutex.tryLock(), false],
        ['unlock', () => mutex.unlock(), false], ['markConsistent', () => mutex.markConsistent(), false],
        ['withLock', () => mutex.withLock(() => undefined), true], ['locked', () => mutex.locked, false],
        ['owner', () => mutex.owner, false], ['held', () => mutex.held, false],
      ]),
      async cleanup() {
        if (!shm.closed && mutex.held) mutex.unlock();
        shm.close();
        await actor.call('forget', { address: name });
        PosixSharedMemory.unlink(name);
      },
    };
    return withAddress(instance, { name, mutex, release: async () => {
      if (actorHolds) await (await instance.supply(0)).done;
    } });
  },
  peerKilled: {
    doing: 'holding the mutex',
    order: 'peer-first',
    blocked: false,
    outcome: {
      code: 'ERR_IPC_OWNER_DIED',
      recover(instance) {
        const { mutex } = addressOf(instance) as { mutex: Mutex };
        assert.equal(mutex.held, true, 'the caller told ERR_IPC_OWNER_DIED holds the mutex');
        mutex.markConsistent();
        mutex.unlock();
      },
    },
    async start(instance) {
      const { name, release } = addressOf(instance) as { name: string; release(): Promise<void> };
      // The shared actor lets go, and the peer takes the mutex.
      await release();
      const peer = new Actor();
      await peer.start('mutex.hold', { name });
      return peer;
    },
  },
};

const semaphoreWait: Waitable = {
  name: 'Semaphore.wait',
  yields: 'call',
  notApplicable: { iteration: 'a semaphore is not a receiver: there is nothing to iterate' },
  async create() {
    const { shm, name } = lockSegment();
    const sem = Semaphore.create(shm, 16, { value: 0 });
    const actor = sharedActor();
    const instance: Instance = {
      ...semaphoreCalls(sem),
      supply: (_tag, delayMs) => remote(actor, 'sem.post', { address: name, delayMs }),
      supplyLocal: () => sem.post(),
      close: () => shm.close(),
      afterClose: () => closedCalls([
        ['wait', () => sem.wait(), true], ['waitSync', () => sem.waitSync(), false],
        ['tryWait', () => sem.tryWait(), false], ['post', () => sem.post(), false], ['value', () => sem.value, false],
      ]),
      async cleanup() {
        shm.close();
        await actor.call('forget', { address: name });
        PosixSharedMemory.unlink(name);
      },
    };
    return withAddress(instance, name);
  },
  peerKilled: {
    doing: 'blocked in waitSync on the same semaphore',
    order: 'peer-first',
    blocked: true,
    outcome: 'supply',
    async start(instance) {
      const peer = new Actor();
      await peer.start('sem.blockWait', { address: addressOf(instance) });
      return peer;
    },
  },
  async soak(count, seed) {
    const { shm, name } = lockSegment();
    const sem = Semaphore.create(shm, 16, { value: 0 });
    const peer = new Actor();
    return semaphoreSoak(sem, peer.call('sem.soakPost', { address: name, count, seed }), async () => {
      shm.close();
      await peer.stop();
      PosixSharedMemory.unlink(name);
    });
  },
};

/** The calls of a semaphore adapter: a completed wait yields the call's own tag. */
function semaphoreCalls(sem: Pick<KernelSemaphore, 'wait' | 'waitSync' | 'tryWait'>): Pick<Instance, 'op' | 'opSync' | 'tryOp'> {
  return {
    op: (tag, o) => sem.wait(o).then(() => tag),
    opSync: (tag, o) => {
      sem.waitSync(o);
      return tag;
    },
    tryOp: { call: (tag) => {
      const raw = sem.tryWait();
      return { raw, tag: raw ? tag : undefined };
    }, nothing: false },
  };
}

/** The soak of a semaphore adapter: the peer posts; a post carries no data, so the n-th successful wait is record n. */
function semaphoreSoak(sem: Pick<KernelSemaphore, 'wait' | 'waitSync' | 'tryWait'>, peerDone: Promise<unknown>,
  cleanup: () => Promise<void>): ReceiveSoak {
  let taken = 0;
  return {
    direction: 'receive', ends: false, peerDone, cleanup,
    async: (o) => sem.wait(o).then(() => true),
    sync: (o) => {
      sem.waitSync(o);
      return true;
    },
    try: () => (sem.tryWait() ? true : undefined),
    records: (raw) => (raw === undefined ? [] : [{ seq: taken++, ok: raw === true }]),
  };
}


/** The actor's handle on named semaphore `name`. */
function remoteNamedSemaphore(ctx: RemoteContext, name: string): NamedSemaphore {
  return ctx.state.handle(name, () => NamedSemaphore.open(name), (sem) => sem.close());
}

/** The actor's handle on the semaphore set of `key`. */
function remoteSemaphoreSet(ctx: RemoteContext, key: number): SemaphoreSet {
  return ctx.state.handle(`semset:${key}`, () => SemaphoreSet.open(key), (set) => set.close());
}

/** Takes one unit of semaphore 0 of a set, or of a named semaphore: the calls the two kernel-semaphore adapters share. */
interface KernelSemaphore {
  wait(o?: Options): Promise<void>;
  waitSync(o?: Options): void;
  tryWait(): boolean;
  post(): void;
  close(): void;
}

/**
 * The adapter of a kernel semaphore (`kind` 'named': NamedSemaphore.wait;
 * 'set': SemaphoreSet.op taking 1 from semaphore 0). The actor posts.
 */
function kernelSemaphoreWait(kind: 'named' | 'set'): Waitable {
  const make = (): { sem: KernelSemaphore; address: string | number; forget: string; remove(): void; closedCalls: ClosedCall[] } => {
    if (kind === 'named') {
      const name = objects.semName('cf-nsem');
      const sem = NamedSemaphore.create(name);
      return {
        sem, address: name, forget: name, remove: () => NamedSemaphore.unlink(name),
        closedCalls: closedCalls([
          ['wait', () => sem.wait(), true], ['waitSync', () => sem.waitSync(), false], ['tryWait', () => sem.tryWait(), false],
          ['post', () => sem.post(), false], ['value', () => sem.value, false], ['waiters', () => sem.waiters, false],
          ['stat', () => sem.stat(), false],
        ]),
      };
    }
    const key = objects.semKey();
    const set = SemaphoreSet.create(key, { count: 2 });
    const take = { index: 0, delta: -1 };
    return {
      sem: {
        wait: (o) => set.op(take, o),
        waitSync: (o) => set.opSync(take, o),
        tryWait: () => set.tryOp(take),
        post: () => set.opSync({ index: 0, delta: 1 }),
        close: () => set.close(),
      },
      address: key, forget: `semset:${key}`, remove: () => SemaphoreSet.remove(key),
      closedCalls: closedCalls([
        ['op', () => set.op(take), true], ['opSync', () => set.opSync(take), false], ['tryOp', () => set.tryOp(take), false],
        ['post op', () => set.op({ index: 0, delta: 1 }), true], ['getValue', () => set.getValue(0), false],
        ['values', () => set.values(), false], ['setValue', () => set.setValue(0, 1), false], ['setAll', () => set.setAll([0, 0]), false],
        ['stat', () => set.stat(), false],
      ]),
    };
  };
  const post = kind === 'named' ? 'nsem.post' : 'semset.post';
  return {
    name: kind === 'named' ? 'NamedSemaphore.wait' : 'SemaphoreSet.op',
    yields: 'call',
    notApplicable: { iteration: 'a semaphore is not a receiver: there is nothing to iterate' },
    async create() {
      const made = make();
      const { sem, address } = made;
      const actor = sharedActor();
      const instance: Instance = {
        ...semaphoreCalls(sem),
        supply: (_tag, delayMs) => remote(actor, post, { address, delayMs }),
        supplyLocal: () => sem.post(),
        close: () => sem.close(),
        afterClose: () => made.closedCalls,
        async cleanup() {
          sem.close();
          await actor.call('forget', { address: made.forget });
          made.remove();
        },
      };
      return withAddress(instance, address);
    },
    peerKilled: {
      doing: 'blocked waiting on the same semaphore',
      order: 'peer-first',
      blocked: true,
      outcome: 'supply',
      async start(instance) {
        const peer = new Actor();
        await peer.start(kind === 'named' ? 'nsem.blockWait' : 'semset.blockWait', { address: addressOf(instance) });
        return peer;
      },
    },
    async soak(count, seed) {
      const { sem, address, remove } = make();
      const peer = new Actor();
      return semaphoreSoak(sem, peer.call(kind === 'named' ? 'nsem.soakPost' : 'semset.soakPost', { address, count, seed }), async () => {
        sem.close();
        await peer.stop();
        remove();
      });
    },
  };
}

// ---------------------------------------------------------------------------

/** Every waitable of ipckit, in the order the suite runs them. */
export const WAITABLES: Waitable[] = [
  queueReceive(POSIX), queueSend(POSIX), queueReceive(SYSV), queueSend(SYSV),
  queueReceive(POSIX, true), queueSend(POSIX, true), queueReceive(SYSV, true), queueSend(SYSV, true),
  queueReceive(POSIX, 'packed'), queueSend(POSIX, 'packed'), queueReceive(SYSV, 'packed'), queueSend(SYSV, 'packed'),
  pipeRead(false), pipeRead(true), pipeWrite, pipeReceive, pipeSend, pipeRead(true, true), pipeSendBatched(false),
  pipeRead(true, 'packed'), pipeSendBatched(true),
  fifoOpenRead, fifoOpenWrite,
  signalListener,
  mutexLock, semaphoreWait, kernelSemaphoreWait('named'), kernelSemaphoreWait('set'),
  pollerWait,
  channelReceive(false), channelSend(false), channelReceive(true), channelSend(true),
  channelReceive(false, true), channelSend(false, true), channelReceive(true, true), channelSend(true, true),
  channelReceive(false, 'packed'), channelSend(false, 'packed'), channelReceive(true, 'packed'), channelSend(true, 'packed'),
];

/** Posts `count` units in random batches of 1 to 3, now and then letting the waiter drain, so both empty and busy moments occur. */
async function soakPosts(count: number, seed: number, post: (n: number) => void): Promise<{ posted: number }> {
  const rnd = prng(seed);
  for (let posted = 0; posted < count;) {
    const n = Math.min(count - posted, 1 + Math.floor(rnd() * 3));
    post(n);
    posted += n;
    if (rnd() < 0.2) await new Promise((resolve) => setImmediate(resolve));
  }
  return { posted: count };
}

/** The actor's side of a semaphore adapter: posts (one, or soak batches) and a wait it is killed in. */
function semaphoreRemote<A>(prefix: string, open: (ctx: RemoteContext, address: A) => { post(n: number): void; waitSync(): void }): Record<string, Remote> {
  return {
    async [`${prefix}.post`]({ address, delayMs }, ctx) {
      await delayed(ctx, delayMs);
      open(ctx, address).post(1);
    },
    [`${prefix}.blockWait`]({ address }, ctx) {
      const sem = open(ctx, address);
      ctx.started();
      sem.waitSync();
    },
    async [`${prefix}.soakPost`]({ address, count, seed }, ctx) {
      const sem = open(ctx, address);
      return soakPosts(count, seed, (n) => sem.post(n));
    },
  };
}

/** The actor's half of every adapter. */
export const REMOTE: Record<string, Remote> = {
  forget({ address }, ctx) {
    ctx.state.forget(address);
  },

  async 'channel.send'({ name, tag, delayMs }, ctx) {
    await delayed(ctx, delayMs);
    await onOwnHandleAsync(name, (ch: Channel) => ch.send(unit(tag), { timeout: REMOTE_TIMEOUT }));
  },
  async 'channel.receive'({ name, delayMs }, ctx) {
    await delayed(ctx, delayMs);
    // One record: a unit's tag, or none for the filler.
    return onOwnHandleAsync(name, async (ch: Channel) => {
      const data = (await ch.receive({ timeout: REMOTE_TIMEOUT })).data;
      return data.length === 24 ? [] : [unitTag(data)];
    });
  },
  async 'channel.holdProducer'({ name }, ctx) {
    Channel.open(name).tryLoan(0);
    ctx.started();
    await hang();
  },
  async 'channel.holdConsumer'({ name }, ctx) {
    // Takes the role and a view of the first record, which keeps its space until a next receive that never comes.
    Channel.open(name).tryReceive({ view: true });
    ctx.started();
    await hang();
  },
  async 'channel.soakSend'({ name, count, seed, batched }) {
    return onOwnHandleAsync(name, async (ch: Channel) => {
      if (!batched) {
        for (let seq = 0; seq < count; seq++) if (!ch.trySend(record(seq))) await ch.send(record(seq), { timeout: REMOTE_TIMEOUT });
        return { sent: count };
      }
      return sendRecordBatches(batched === 'packed' ? packedSends(ch) : ch as never, count, seed);
    });
  },
  async 'channel.soakReceive'({ name, count }) {
    return onOwnHandleAsync(name, async (ch: Channel) => {
      const report: SoakReport = { received: 0, bad: [] };
      for (let i = 0; i < count; i++) {
        const checked = readRecord((await ch.receive({ timeout: REMOTE_TIMEOUT })).data);
        if ((!checked.ok || checked.seq !== report.received) && report.bad.length < 5) {
          report.bad.push(`record ${checked.seq} (ok ${checked.ok}) where ${report.received} was due`);
        }
        report.received = checked.seq + 1;
      }
      return report;
    });
  },

  ...queueRemote('posix', (ctx, address: string) => posixQueue(ctx, address)),
  ...queueRemote('sysv', (ctx, address: number) => sysvQueue(ctx, address)),

  async 'pipe.write'({ tag, delayMs }, ctx) {
    await delayed(ctx, delayMs);
    await inherited(ctx, (fd) => PipeWriteEnd.fromFd(fd)).write(unit(tag), { timeout: REMOTE_TIMEOUT });
  },
  async 'pipe.writeMessage'({ tag, delayMs }, ctx) {
    await delayed(ctx, delayMs);
    await inherited(ctx, (fd) => PipeWriteEnd.fromFd(fd)).writeMessage(unit(tag), { timeout: REMOTE_TIMEOUT });
  },
  async 'pipe.readUnit'({ size, delayMs }, ctx) {
    await delayed(ctx, delayMs);
    const chunk = await inherited(ctx, (fd) => PipeReadEnd.fromFd(fd)).read({ maxBytes: size, timeout: REMOTE_TIMEOUT });
    assert.ok(chunk !== null && chunk.length === size, `read a whole ${size}-byte unit`);
    return unitTag(chunk, size);
  },
  'pipe.blockRead'({ framed }, ctx) {
    const end = inherited(ctx, (fd) => PipeReadEnd.fromFd(fd));
    ctx.started();
    if (framed) end.readMessageSync();
    else end.readSync();
  },
  'pipe.blockWriteMessage'({ tag, size }, ctx) {
    const end = inherited(ctx, (fd) => PipeWriteEnd.fromFd(fd));
    ctx.started();
    end.writeMessageSync(unit(tag, size));
  },
  'pipe.blockWrite'({ tag, size }, ctx) {
    const end = inherited(ctx, (fd) => PipeWriteEnd.fromFd(fd));
    ctx.started();
    end.writeSync(unit(tag, size));
  },
  'pipe.soakWrite'({ count, seed, framed, batched }, ctx) {
    const end = inherited(ctx, (fd) => PipeWriteEnd.fromFd(fd));
    if (!batched) return writeRecords(end, count, seed, framed);
    return sendRecordBatches(batched === 'packed' ? packedSends(end) : end as never, count, seed).finally(() => end.close());
  },
  async 'pipe.readFramedUnit'({ size, delayMs }, ctx) {
    await delayed(ctx, delayMs);
    const message = await inherited(ctx, (fd) => PipeReadEnd.fromFd(fd)).readMessage({ timeout: REMOTE_TIMEOUT });
    assert.ok(message !== null && message.length === size, `read a whole ${size}-byte message`);
    return unitTag(message, size);
  },
  'pipe.soakRead'({ framed }, ctx) {
    return readRecords(inherited(ctx, (fd) => PipeReadEnd.fromFd(fd)), framed);
  },
  async 'pipe.send'({ tag, delayMs }, ctx) {
    await delayed(ctx, delayMs);
    await typedWriteEnd(ctx).send(unit(tag), { timeout: REMOTE_TIMEOUT });
  },
  async 'pipe.receiveUnit'({ size, delayMs }, ctx) {
    await delayed(ctx, delayMs);
    const m = await typedReadEnd(ctx).receive({ timeout: REMOTE_TIMEOUT });
    assert.ok(m !== null, 'a message, not the end');
    return unitTag(m.data, size);
  },
  'pipe.blockReceive'(_params, ctx) {
    const end = typedReadEnd(ctx);
    ctx.started();
    end.receiveSync();
  },
  'pipe.blockSend'({ tag, size }, ctx) {
    const end = typedWriteEnd(ctx);
    ctx.started();
    end.sendSync(unit(tag, size));
  },
  /** Sends records 0..count-1 with a mix of the three forms, then closes its end. */
  async 'pipe.soakSend'({ count, seed }, ctx) {
    const end = typedWriteEnd(ctx);
    const rnd = prng(seed);
    for (let seq = 0; seq < count; seq++) {
      const dice = rnd();
      if (dice < 0.3) end.sendSync(record(seq), { timeout: REMOTE_TIMEOUT });
      else if (dice < 0.6 && end.trySend(record(seq))) continue;
      else await end.send(record(seq), { timeout: REMOTE_TIMEOUT });
    }
    ctx.state.forget('fd3');
    return { sent: count };
  },
  'pipe.soakReceive'(_params, ctx) {
    return receiveRecords(typedReadEnd(ctx));
  },

  async 'fifo.write'({ path: p, tag, delayMs }, ctx) {
    await delayed(ctx, delayMs);
    // A writer blocked in its open, as a C program's: the kernel counts it as a
    // writer at once (an ipckit writer waiting on the event loop holds no end
    // until a reader comes). Resolves once that open is under way.
    const child = spawnChild('sh', ['-c', 'exec 3>"$1"; printf %s "$2" >&3', 'sh', p, unit(tag).toString('latin1')], { stdio: 'ignore' });
    ctx.state.background(p, (signal) => new Promise<void>((resolve) => {
      const stop = (): void => { child.kill('SIGKILL'); };
      signal.addEventListener('abort', stop, { once: true });
      child.once('exit', () => {
        signal.removeEventListener('abort', stop);
        resolve();
      });
    }));
    // A reader already waiting lets it through at once: then it is past its open (or done).
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await Promise.race([exited, blockedIn(child.pid!, 'openat', { what: 'the writer waits in its open' }).catch(() => exited)]);
  },
  /** Reports once the open is under way (with a delay: at once); resolves with what it read once it has read to the end and closed. */
  async 'fifo.read'({ path: p, delayMs }, ctx) {
    if (delayMs) await delayed(ctx, delayMs);
    const opening = Fifo.openRead(p, { signal: ctx.state.signal(p), timeout: REMOTE_TIMEOUT });
    ctx.started();
    return unitTags(await readAll(await opening));
  },
  'fifo.holdWriter'({ path: p, tag }, ctx) {
    const end = Fifo.openWriteSync(p, { timeout: REMOTE_TIMEOUT });
    end.writeSync(unit(tag));
    ctx.started();
    return hang();
  },
  'fifo.blockOpenWrite'({ path: p }, ctx) {
    ctx.started();
    Fifo.openWriteSync(p);
    return hang();
  },
  async 'fifo.soakWrite'({ path: p, count, seed }) {
    return writeRecords(await Fifo.openWrite(p, { timeout: REMOTE_TIMEOUT }), count, seed, false);
  },
  async 'fifo.soakRead'({ path: p }) {
    return readRecords(await Fifo.openRead(p, { timeout: REMOTE_TIMEOUT }), false);
  },

  async 'signal.send'({ pid, signal, tag, delayMs }, ctx) {
    await delayed(ctx, delayMs);
    sendSignal(pid, signal, { value: tag });
  },
  'signal.sendAndHang'({ pid, signal, tag }, ctx) {
    sendSignal(pid, signal, { value: tag });
    ctx.started();
    return hang();
  },
  async 'signal.soakSend'({ pid, signal, count }) {
    for (let seq = 0; seq < count; seq++) {
      for (;;) {
        try {
          sendSignal(pid, signal, { value: signalValue(seq) });
          break;
        } catch (err) {
          // The receiver's queue of pending real-time signals is full: let it catch up.
          if (!(err instanceof IpcError) || err.code !== 'EAGAIN') throw err;
          await sleep(1);
        }
      }
    }
    return { sent: count };
  },

  async 'mutex.lock'({ name }, ctx) {
    await remoteMutex(ctx, name).lock({ timeout: REMOTE_TIMEOUT });
  },
  async 'mutex.unlock'({ name, delayMs }, ctx) {
    await delayed(ctx, delayMs);
    remoteMutex(ctx, name).unlock();
  },
  async 'mutex.hold'({ name }, ctx) {
    await remoteMutex(ctx, name).lock({ timeout: REMOTE_TIMEOUT });
    ctx.started();
    return hang();
  },

  ...semaphoreRemote('sem', (ctx, name: string) => remoteSemaphore(ctx, name)),
  ...semaphoreRemote('nsem', (ctx, name: string) => remoteNamedSemaphore(ctx, name)),
  ...semaphoreRemote('semset', (ctx, key: number) => {
    const set = remoteSemaphoreSet(ctx, key);
    return { post: (n) => set.opSync({ index: 0, delta: n }), waitSync: () => set.opSync({ index: 0, delta: -1 }) };
  }),

};
