/**
 * The fuzzing section: every decoder of what another process controls —
 * bytes on a stream, a socket or in a queue, datagrams, request/reply
 * envelopes, names and addresses, signal names, the
 * words of a lock in shared memory, a channel's header and records, object
 * names the inventory reads back
 * from /proc — fed by fast-check with random inputs, mutated valid
 * encodings and crafted edge cases.
 *
 * Properties, per decoder: it returns the documented result or throws an
 * IpcError with one of the documented codes (anything else is a crash); no
 * call takes longer than its bound (the slowest is reported); round-trips
 * are the identity; stream decoders agree with a reference decoder and
 * refuse an oversized length prefix before reading on.
 *
 * The fuzzing runs in a child process, watched through a heartbeat in
 * shared memory: a call that never returns, or a native fault that kills
 * the process, is reported against the decoder that was running, with the
 * fast-check seed that regenerates the input, and the others go on in a new
 * child. Decoders take turns in slices until each has had GOAL inputs or
 * the budget is spent. Every kernel object the child creates is named by
 * the parent, or recorded in the heartbeat, and removed at the end.
 */
import { fork } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, ftruncateSync, openSync, readFileSync, readSync, readdirSync, writeSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { constants as osConstants } from 'node:os';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { decode as msgpackReference, encode as msgpackEncode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { printable } from '../src/cli/commands/ls.js';
import { type CommandContext, bytesForJson, intOption, modeOption } from '../src/cli/program.js';
import { IpcError } from '../src/errors.js';
import { POSIX_NAME_MAX, checkPosixName, formatKey, parseAddress, resolveSysvAddress } from '../src/internal/address.js';
import { type Codec, type Outgoing, decodeWith, encodeWith, resolveCodec } from '../src/internal/codec.js';
import { type ByteSource, FRAME_HEADER, MAX_FRAME, ReadAhead, frame } from '../src/internal/framing.js';
import { SUN_PATH_BYTES, parseSocketAddress } from '../src/internal/socket-address.js';
import { listIpcObjects } from '../src/inventory.js';
import { Channel, type ChannelView } from '../src/channel.js';
import { selectSync } from '../src/select.js';
import { LOCK_WORDS, Mutex, SEM_VALUE_MAX, Semaphore } from '../src/lock.js';
import { MQ_PRIO_MAX, PosixMessageQueue, SYSV_TYPE_MAX, SysvMessageQueue } from '../src/message-queue.js';
import { native } from '../src/native.js';
import { pipe } from '../src/pipe.js';
import { NamedSemaphore, SEMAEM, SEMVMX, SemaphoreSet } from '../src/semaphore.js';
import { PosixSharedMemory } from '../src/shared-memory.js';
import { listenForSignals, sendSignal, signalName, signalNumber } from '../src/signal.js';
import { MessageSocket, bind, socketPair } from '../src/socket.js';
import { type Section, type SectionResult, removeOnInterrupt, runStandalone } from './report.js';

/** Inputs per decoder after which it stops, when the budget allows that many. */
const GOAL = 1_000_000;
/** A heartbeat that stands still this long is a hung call: the child is killed. */
const HANG_MS = 20_000;
/** Longest slice a decoder gets before the next one's turn, ms. */
const MAX_SLICE_MS = 1000;
/** A new child is not worth starting with less time than this left, ms. */
const MIN_CHILD_MS = 2000;
/** Marks the child process (its value: the {@link ChildConfig} as JSON). */
const CHILD_ENV = 'IPCKIT_FUZZ_CHILD';
const SELF = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------------------
// Checking one call

/** A property that does not hold: fast-check shrinks the input that caused it. */
class Violation extends Error {}

/** Which IpcError codes a call may throw. */
type Codes = (code: string) => boolean;
const codes = (...list: string[]): Codes => (code) => list.includes(code);
/** System errors keep their errno name (ENOENT, EACCES, ...). */
const errnoOr = (...list: string[]): Codes => (code) => list.includes(code) || /^E[A-Z0-9]+$/.test(code);
const NO_ERROR: Codes = () => false;

type Outcome<R> = { ok: true; value: R } | { ok: false; error: IpcError };

/** What a non-IpcError throw was, with where it came from. */
function describeThrow(err: unknown): string {
  if (!(err instanceof Error)) return `threw a non-Error ${fc.stringify(err)}`;
  const frames = (err.stack ?? '').split('\n').slice(1, 5).map((line) => line.trim()).join(' < ');
  return `threw ${err.name}: ${err.message} [${frames}]`;
}

/** Times the calls of one decoder and checks what they throw. */
class Meter {
  slowestMs = 0;

  constructor(readonly boundMs: number) {}

  call<R>(fn: () => R, allowed: Codes): Outcome<R> {
    const t0 = performance.now();
    let value: R;
    try {
      value = fn();
    } catch (err) {
      return this.#judge(t0, err, allowed);
    }
    return this.#judge(t0, undefined, allowed, { ok: true, value });
  }

  /** The same for a call that settles later: its time is until it settles. */
  async callAsync<R>(fn: () => Promise<R>, allowed: Codes): Promise<Outcome<R>> {
    const t0 = performance.now();
    let value: R;
    try {
      value = await fn();
    } catch (err) {
      return this.#judge(t0, err, allowed);
    }
    return this.#judge(t0, undefined, allowed, { ok: true, value });
  }

  /** A call's result, or what it threw, checked against the codes allowed and the bound. */
  #judge<R>(t0: number, thrown: unknown, allowed: Codes, result?: Outcome<R>): Outcome<R> {
    const ms = performance.now() - t0;
    if (ms > this.slowestMs) this.slowestMs = ms;
    let outcome = result;
    if (outcome === undefined) {
      if (thrown instanceof Violation) throw thrown;
      if (!(thrown instanceof IpcError) || !allowed(thrown.code)) {
        throw new Violation(thrown instanceof IpcError ? `threw IpcError ${thrown.code} (not documented here): ${thrown.message}` : describeThrow(thrown));
      }
      outcome = { ok: false, error: thrown };
    }
    if (ms > this.boundMs) throw new Violation(`a call took ${ms.toFixed(0)} ms, more than its bound of ${this.boundMs} ms`);
    return outcome;
  }
}

function expect(condition: boolean, what: string): void {
  if (!condition) throw new Violation(what);
}

/** A value as a failure message shows it: invisible and line-breaking characters escaped. */
function shown(value: unknown, max = 300): string {
  const text = fc.stringify(value).replace(/[\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Whether `s` holds a lone UTF-16 surrogate (with /u, only unpaired ones are code points of category Cs). */
const hasLoneSurrogate = (s: string): boolean => /\p{Cs}/u.test(s);

const bytesOf = (view: ArrayBufferView): Buffer => Buffer.from(view.buffer, view.byteOffset, view.byteLength);

function kindOf(v: object): unknown {
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date) return 'date';
  if (ArrayBuffer.isView(v)) return 'bytes';
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === null || proto === Object.prototype ? 'object' : proto;
}

/**
 * Deep equality of decoded values, without recursion (decoders may return
 * deep values): own keys (`__proto__` included), bytes by content, dates by
 * time, numbers by value (NaN equals NaN; -0 equals 0, as neither JSON nor
 * MessagePack integers keep the sign of zero).
 */
function same(a: unknown, b: unknown): boolean {
  const pending: [unknown, unknown][] = [[a, b]];
  while (pending.length > 0) {
    const [x, y] = pending.pop()!;
    if (typeof x === 'number' && typeof y === 'number') {
      if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
      return false;
    }
    if (x === y) continue;
    if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null) return false;
    if (kindOf(x) !== kindOf(y)) return false;
    if (x instanceof Date) {
      const [tx, ty] = [x.getTime(), (y as Date).getTime()];
      if (tx !== ty && !(Number.isNaN(tx) && Number.isNaN(ty))) return false;
      continue;
    }
    if (ArrayBuffer.isView(x)) {
      if (!bytesOf(x).equals(bytesOf(y as ArrayBufferView))) return false;
      continue;
    }
    if (Array.isArray(x) && x.length !== (y as unknown[]).length) return false;
    const keys = Object.keys(x);
    if (keys.length !== Object.keys(y).length) return false;
    for (const key of keys) {
      const there = Object.getOwnPropertyDescriptor(y, key);
      if (there === undefined) return false;
      pending.push([Object.getOwnPropertyDescriptor(x, key)!.value, there.value]);
    }
  }
  return true;
}

// ---------------------------------------------------------------------------
// Inputs shared by several decoders

/** One UTF-16 unit of a hostile string: printable ASCII, any code point, lone surrogates, separators and controls. */
const hostileChar = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 0x10ffff }).map((c) => String.fromCodePoint(c)) },
  { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)) },
  { weight: 2, arbitrary: fc.constantFrom('\0', '\n', '\r', '\t', '\x1b', '\x7f', '\x85', '\x9b', '\u2028', '\u2029', '\ufeff', '\u202e', '/', '\\', '.', ' ', ':', 'é') },
);
const hostileText = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: hostileChar, maxLength });

const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

interface Edit {
  at: number;
  op: 'flip' | 'set' | 'insert' | 'delete' | 'cut';
  byte: number;
}

function applyEdits(bytes: Uint8Array, edits: Edit[]): Uint8Array {
  const out = [...bytes];
  for (const { at, op, byte } of edits) {
    const i = at % (out.length + 1);
    if (op === 'insert') out.splice(i, 0, byte);
    else if (op === 'cut') out.length = i;
    else if (i < out.length) {
      if (op === 'flip') out[i] = out[i]! ^ (1 << (byte & 7));
      else if (op === 'set') out[i] = byte;
      else out.splice(i, 1);
    }
  }
  return Uint8Array.from(out);
}

/** A valid encoding with a few bytes flipped, set, inserted, deleted, or cut off. */
function mutated(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  const edit = fc.record({ at: fc.nat(), op: fc.constantFrom<Edit['op']>('flip', 'set', 'insert', 'delete', 'cut'), byte: fc.integer({ min: 0, max: 255 }) });
  return fc.tuple(valid, fc.array(edit, { minLength: 1, maxLength: 4 })).map(([bytes, edits]) => applyEdits(bytes, edits));
}

/** Object keys, with the ones that have meaning to JavaScript. */
const objectKey = fc.oneof(hostileText(10), fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', '0', '1', ''));

/** JSON values, strings with any UTF-16 content. */
const { json: jsonValue } = fc.letrec<{ json: unknown }>((tie) => ({
  json: fc.oneof(
    { maxDepth: 4, depthIdentifier: 'json' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    hostileText(24),
    fc.array(tie('json'), { maxLength: 5, depthIdentifier: 'json' }),
    fc.dictionary(objectKey, tie('json'), { maxKeys: 5, depthIdentifier: 'json' }),
  ),
}));

/** Values MessagePack carries: JSON's, plus NaN and infinities, safe integers, bytes and dates. */
const { value: msgpackValue } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { maxDepth: 4, depthIdentifier: 'msgpack' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.double(),
    hostileText(24),
    fc.uint8Array({ maxLength: 32 }),
    fc.date(),
    fc.array(tie('value'), { maxLength: 5, depthIdentifier: 'msgpack' }),
    fc.dictionary(objectKey, tie('value'), { maxKeys: 5, depthIdentifier: 'msgpack' }),
  ),
}));

const jsonBytes = jsonValue.map((v) => utf8(JSON.stringify(v)));
const msgpackBytes = msgpackValue.map((v) => {
  try {
    return msgpackEncode(v);
  } catch {
    return new Uint8Array(0);
  }
});

/** Nesting depths: shallow, past the usual recursion limits, and far past them (rarely: such inputs are slow). */
const nesting = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 200 }) },
  { weight: 2, arbitrary: fc.integer({ min: 1000, max: 20_000 }) },
  { weight: 1, arbitrary: fc.constant(100_000) },
);

/** Arbitrary bytes as JSON text: random, mutated valid text, deep nesting, and numbers and strings at JSON's edges. */
const jsonInput = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: 256 }) },
  { weight: 6, arbitrary: mutated(jsonBytes) },
  { weight: 4, arbitrary: jsonBytes },
  { weight: 4, arbitrary: hostileText(64).map(utf8) },
  {
    weight: 1,
    arbitrary: fc.tuple(nesting, fc.constantFrom('[', '{"a":'), fc.boolean()).map(([depth, open, closed]) =>
      utf8(open.repeat(depth) + (closed ? `1${(open === '[' ? ']' : '}').repeat(depth)}` : ''))),
  },
  { weight: 2, arbitrary: fc.constantFrom('1e400', '-1e400', '"\\ud800"', '{"__proto__":{"polluted":1}}', '\ufeff{}', ' 0 ', 'nul', '[1,]', '9'.repeat(400), '"\\u0000"').map(utf8) },
);

/** MessagePack headers that announce more than the message holds, and timestamps out of range. */
const msgpackHeaders = fc.constantFrom(
  [0xdd, 0xff, 0xff, 0xff, 0xff], [0xdf, 0xff, 0xff, 0xff, 0xff], [0xc6, 0xff, 0xff, 0xff, 0xff], [0xdb, 0xff, 0xff, 0xff, 0xff],
  [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01], [0xc9, 0x00, 0x00, 0x00, 0x0c, 0xff], [0xd7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0xc7, 0x0c, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0], [0xd6, 0xff, 0, 0, 0, 0], [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], [0xc1], [0x81, 0x80, 0x01], [0x81, 0x91, 0x01, 0x02], [0x81, 0xa9, ...Buffer.from('__proto__'), 0x80],
);

/** Arbitrary bytes as MessagePack: random, mutated valid encodings, lying headers, deep nesting. */
const msgpackInput = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: 256 }) },
  { weight: 6, arbitrary: mutated(msgpackBytes) },
  { weight: 4, arbitrary: msgpackBytes },
  { weight: 4, arbitrary: fc.tuple(msgpackHeaders, fc.uint8Array({ maxLength: 16 })).map(([head, tail]) => Uint8Array.from([...head, ...tail])) },
  {
    weight: 1,
    arbitrary: fc.tuple(nesting, fc.constantFrom([0x91], [0x81, 0xa1, 0x61]), fc.boolean()).map(([depth, open, closed]) => {
      const out = new Uint8Array(depth * open.length + (closed ? 1 : 0));
      for (let i = 0; i < depth; i++) out.set(open, i * open.length);
      if (closed) out[out.length - 1] = 0xc0;
      return out;
    }),
  },
);

// ---------------------------------------------------------------------------
// Framing: the reference decoder, and a byte source that hands out chunks as told

type StreamEnd = 'end' | 'ERR_IPC_FRAMING' | 'ERR_IPC_MESSAGE_TOO_LARGE';

/** What a framed stream holds: its messages, how it ends, and where a refused prefix ends. */
function referenceFrames(bytes: Uint8Array, max: number): { frames: Buffer[]; end: StreamEnd; prefixEnd: number } {
  const buf = bytesOf(bytes);
  const frames: Buffer[] = [];
  for (let at = 0; ;) {
    if (at === buf.length) return { frames, end: 'end', prefixEnd: 0 };
    if (buf.length - at < FRAME_HEADER) return { frames, end: 'ERR_IPC_FRAMING', prefixEnd: 0 };
    const length = buf.readUInt32BE(at);
    if (length > max) return { frames, end: 'ERR_IPC_MESSAGE_TOO_LARGE', prefixEnd: at + FRAME_HEADER };
    if (buf.length - at - FRAME_HEADER < length) return { frames, end: 'ERR_IPC_FRAMING', prefixEnd: 0 };
    frames.push(buf.subarray(at + FRAME_HEADER, at + FRAME_HEADER + length));
    at += FRAME_HEADER + length;
  }
}

/** Hands out `bytes` in chunks of the sizes given (cycled), with "nothing yet" at the steps marked in `stalls`. */
class ScriptedSource implements ByteSource {
  #at = 0;
  #step = 0;
  /** Where the latest chunk began. */
  lastChunkAt = 0;

  constructor(readonly bytes: Uint8Array, readonly sizes: number[], readonly stalls: boolean[]) {}

  get handedOut(): number {
    return this.#at;
  }

  readChunk(max: number): Buffer | null | undefined {
    const step = this.#step++;
    if (step < this.stalls.length && this.stalls[step]) return undefined;
    if (this.#at >= this.bytes.length) return null;
    const wanted = this.sizes.length === 0 ? max : this.sizes[step % this.sizes.length]!;
    const size = Math.min(max, wanted, this.bytes.length - this.#at);
    if (size < 1) throw new Violation(`readChunk was asked for at most ${max} bytes`);
    this.lastChunkAt = this.#at;
    // A copy: the reader may keep the chunk.
    const chunk = Buffer.from(this.bytes.subarray(this.#at, this.#at + size));
    this.#at += size;
    return chunk;
  }
}

const FRAMING_CODES = codes('ERR_IPC_FRAMING', 'ERR_IPC_MESSAGE_TOO_LARGE');

/** Calls `next` until the stream ends (null) or fails; `undefined` means "call again". */
function readAll(next: () => Buffer | null | undefined, meter: Meter, limit: number): { frames: Buffer[]; end: StreamEnd; error?: IpcError } {
  const frames: Buffer[] = [];
  for (let i = 0; i < limit; i++) {
    const r = meter.call(next, FRAMING_CODES);
    if (!r.ok) return { frames, end: r.error.code as StreamEnd, error: r.error };
    if (r.value === null) return { frames, end: 'end' };
    if (r.value !== undefined) frames.push(Buffer.from(r.value));
  }
  throw new Violation(`the stream did not end after ${limit} calls`);
}

/** The frames read agree with the reference decoder, and a failed stream stays failed. */
function checkStream(got: ReturnType<typeof readAll>, bytes: Uint8Array, max: number, meter: Meter, next: () => Buffer | null | undefined): void {
  const want = referenceFrames(bytes, max);
  expect(got.end === want.end, `the stream ended with ${got.end}; the reference decoder ends it with ${want.end}`);
  expect(got.frames.length === want.frames.length, `${got.frames.length} messages read; the stream holds ${want.frames.length}`);
  got.frames.forEach((f, i) => expect(f.equals(want.frames[i]!), `message ${i} differs from the bytes sent`));
  if (got.error !== undefined) {
    const again = meter.call(next, FRAMING_CODES);
    expect(!again.ok && again.error.code === got.error.code, `after ${got.error.code}, the next read did not fail the same way`);
  }
}

/** A framed stream: frames whose prefix tells the truth or lies (near the limits), sometimes cut short; or random bytes. */
const frameRecord = fc.record({
  body: fc.uint8Array({ maxLength: 48 }),
  lie: fc.option(fc.oneof(fc.nat(96), fc.constantFrom(0x7fffffff, 0x80000000, 0xffffffff, 1 << 20, 1 << 16, MAX_FRAME)), { freq: 3 }),
});
const framedStream = fc.oneof(
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }) },
  {
    weight: 3,
    arbitrary: fc.tuple(fc.array(frameRecord, { maxLength: 6 }), fc.nat(5)).map(([records, cut]) => {
      const parts = records.map(({ body, lie }) => {
        const head = Buffer.alloc(FRAME_HEADER);
        head.writeUInt32BE(lie ?? body.length);
        return Buffer.concat([head, body]);
      });
      const all = Buffer.concat(parts);
      return new Uint8Array(all.subarray(0, Math.max(0, all.length - cut)));
    }),
  },
);
const maxSize = fc.oneof(fc.nat(96), fc.constantFrom(0, 48, MAX_FRAME));

// ---------------------------------------------------------------------------
// Kernel objects the child creates: named by the parent, or recorded in the heartbeat

/** The heartbeat: 32-bit words the child writes and the parent watches. */
const HB = { calls: 0, target: 1, seed: 2, run: 3, shrinking: 4, sysvKey: 5, pendingCount: 6, pendingLength: 7, semKey: 8 } as const;
const HB_WORDS = 9;
/**
 * The POSIX objects the child is about to create, so that the parent can
 * remove them if the child dies: per object, its kind (one byte), its
 * name's bytes and a NUL (names never hold one).
 */
const PENDING_AT = HB_WORDS * 4;
/** Objects one input of the inventory decoder names at most. */
const INVENTORY_BATCH = 32;
const PENDING_MAX = INVENTORY_BATCH * (POSIX_NAME_MAX + 3);
const HB_BYTES = PENDING_AT + PENDING_MAX;
const PENDING_SHM = 1;
const PENDING_MQ = 2;

interface ObjectNames {
  heartbeat: string;
  lockSegment: string;
  /** Prefix of the channel segments (one per size in CHANNEL_SEGMENT_SIZES: the name plus its index). */
  channel: string;
  queue: string;
  /** The named semaphore whose sem_t the peer writes (its file: /dev/shm/sem.<name>). */
  semaphore: string;
  /** Prefix of the objects the inventory decoder names. */
  inventory: string;
}

interface ChildConfig {
  names: ObjectNames;
  deadline: number;
  /** Indexes into {@link TARGETS}, with how many inputs each still needs. */
  targets: number[];
  goals: number[];
}

/** The child's heartbeat and objects (set only in the child). */
let heartbeat: Int32Array | undefined;
let childNames: ObjectNames | undefined;
const cleanups: (() => void)[] = [];

function hb(): Int32Array {
  if (heartbeat === undefined) throw new Error('kernel objects exist only in the fuzzing child');
  return heartbeat;
}

function names(): ObjectNames {
  if (childNames === undefined) throw new Error('kernel objects exist only in the fuzzing child');
  return childNames;
}

/** Makes a kernel object on first use, and closes and removes it when the child ends. */
function lazy<T>(make: () => { value: T; remove: () => void }): () => T {
  let made: { value: T } | undefined;
  return () => {
    if (made === undefined) {
      const { value, remove } = make();
      made = { value };
      cleanups.push(remove);
    }
    return made.value;
  };
}

/** Writes the names of the POSIX objects about to be created into the heartbeat; none clears it. */
function recordPending(objects: { kind: number; name: string }[]): void {
  const words = hb();
  Atomics.store(words, HB.pendingCount, 0);
  const area = Buffer.from(words.buffer, PENDING_AT, PENDING_MAX);
  let at = 0;
  for (const { kind, name } of objects) {
    area[at++] = kind;
    at += area.write(name, at, 'utf8');
    area[at++] = 0;
  }
  Atomics.store(words, HB.pendingLength, at);
  Atomics.store(words, HB.pendingCount, objects.length);
}

/** The objects {@link recordPending} wrote. */
function pendingObjects(words: Int32Array): { kind: number; name: string }[] {
  if (Atomics.load(words, HB.pendingCount) === 0) return [];
  const area = Buffer.from(words.buffer, PENDING_AT, Atomics.load(words, HB.pendingLength));
  const out: { kind: number; name: string }[] = [];
  for (let at = 0; at < area.length;) {
    const end = area.indexOf(0, at + 1);
    out.push({ kind: area[at]!, name: area.toString('utf8', at + 1, end) });
    at = end + 1;
  }
  return out;
}

function removeQuietly(remove: () => void): void {
  try {
    remove();
  } catch (err) {
    // Already gone is what we want.
    if (!(err instanceof IpcError) || !['ENOENT', 'EINVAL', 'EIDRM'].includes(err.code)) throw err;
  }
}

const lockSegment = lazy(() => {
  const segment = PosixSharedMemory.create(names().lockSegment, { size: 64 });
  return { value: segment, remove: () => { segment.close(); removeQuietly(() => PosixSharedMemory.unlink(segment.name)); } };
});

const MQ_DEPTH = 8;
const MQ_MESSAGE_SIZE = 512;
const SYSV_MESSAGE_SIZE = 256;

type CodecName = 'raw' | 'json' | 'msgpack';
const CODEC_NAMES: CodecName[] = ['raw', 'json', 'msgpack'];

const posixQueues = lazy(() => {
  const name = names().queue;
  const raw = PosixMessageQueue.create(name, { maxMessages: MQ_DEPTH, maxMessageSize: MQ_MESSAGE_SIZE });
  const readers = {
    raw,
    json: PosixMessageQueue.open<unknown>(name, { codec: 'json', access: 'read' }),
    msgpack: PosixMessageQueue.open<unknown>(name, { codec: 'msgpack', access: 'read' }),
  };
  return {
    value: readers,
    remove: () => {
      for (const q of Object.values(readers)) q.close();
      removeQuietly(() => PosixMessageQueue.unlink(name));
    },
  };
});

/** Creates a System V object under a random key nobody uses, and records the key in heartbeat word `word` for the parent's sweep. */
function withFreshKey<T>(word: number, create: (key: number) => T): T {
  for (let attempt = 0; ; attempt++) {
    const key = randomInt(1, 2 ** 32 - 1);
    try {
      const made = create(key);
      Atomics.store(hb(), word, key | 0);
      return made;
    } catch (err) {
      if (!(err instanceof IpcError) || err.code !== 'EEXIST' || attempt > 20) throw err;
    }
  }
}

const sysvQueues = lazy(() => {
  const raw = withFreshKey(HB.sysvKey, (key) => SysvMessageQueue.create(key, { mode: 0o600 }));
  const key = raw.key;
  const readers = {
    raw,
    json: SysvMessageQueue.open<unknown>(key, { codec: 'json' }),
    msgpack: SysvMessageQueue.open<unknown>(key, { codec: 'msgpack' }),
  };
  return {
    value: readers,
    remove: () => {
      readers.json.close();
      readers.msgpack.close();
      removeQuietly(() => readers.raw.remove());
      Atomics.store(hb(), HB.sysvKey, 0);
    },
  };
});

/** A real-time signal ipckit does not reserve, and a listener that holds its deliveries. */
const PEER_SIGNAL = (native.signalConstants.SIGRTMIN as number) + 3;
const peerSignals = lazy(() => {
  const listener = listenForSignals(PEER_SIGNAL);
  return { value: listener, remove: () => listener.close() };
});

/** Whether `value` holds a Date that is not a time (a MessagePack timestamp beyond a Date's range decodes to one). */
function holdsInvalidDate(value: unknown, depth = 0): boolean {
  if (value instanceof Date) return Number.isNaN(value.getTime());
  if (depth > 100 || value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return false;
  const items = value instanceof Map ? [...value.keys(), ...value.values()] : Object.values(value);
  return items.some((item) => holdsInvalidDate(item, depth + 1));
}

/**
 * What a codec's own library makes of `bytes`; `undefined` for a decode
 * failure. ipckit's msgpack codec refuses, besides, a timestamp a Date
 * cannot hold (the library makes it an Invalid Date).
 */
function referenceDecode(codec: 'json' | 'msgpack', bytes: Uint8Array): { value: unknown } | undefined {
  try {
    const value = codec === 'json' ? JSON.parse(bytesOf(bytes).toString('utf8')) : msgpackReference(bytes);
    return codec === 'msgpack' && holdsInvalidDate(value) ? undefined : { value };
  } catch {
    return undefined;
  }
}

/** A received message's payload agrees with what was sent, decoded by the reference. */
function checkPayload(codec: CodecName, got: Outcome<{ data: unknown } | undefined>, sent: Uint8Array, where: string): void {
  if (codec === 'raw') {
    expect(got.ok && got.value !== undefined && bytesOf(got.value.data as Buffer).equals(bytesOf(sent)), `${where}: the bytes received differ from the bytes sent`);
    return;
  }
  const want = referenceDecode(codec, sent);
  if (!got.ok) {
    expect(want === undefined, `${where}: ERR_IPC_CODEC for a message the ${codec} library decodes`);
    return;
  }
  expect(got.value !== undefined, `${where}: a queued message was not received`);
  expect(want !== undefined && same(got.value!.data, want.value), `${where}: decoded ${shown(got.value!.data, 80)}; the ${codec} library decodes ${shown(want?.value, 80)}`);
}

/** A payload for a queue: random, valid or mutated JSON and MessagePack, cut to the queue's message size. */
const queuePayload = (max: number): fc.Arbitrary<Uint8Array> =>
  fc.oneof(fc.uint8Array({ maxLength: max }), jsonBytes, msgpackBytes, mutated(jsonBytes), mutated(msgpackBytes)).map((b) => b.subarray(0, max));

// ---------------------------------------------------------------------------
// Locks: words the child writes, some naming this process or its parent

const { STATE, STATUS, TID_MASK, WAITERS, MUTEX_MAGIC, SEMAPHORE_MAGIC, OWNER_DIED } = LOCK_WORDS;

/** A lock word: a number, the magic of the lock's own kind, or one that names a live thread (this one, the parent) or its start time. */
type Word = number | 'magic' | 'self' | 'self+waiters' | 'self-start' | 'parent' | 'parent+waiters' | 'parent-start';

/** Low 32 bits of a thread's start time (field 22 of its stat), as lock.ts records owners. */
function startTime(statPath: string): number {
  const stat = readFileSync(statPath, 'utf8');
  return Number(BigInt(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!) & 0xffffffffn) | 0;
}

let liveThreads: { tid: number; start: number; parent: number; parentStart: number } | undefined;

function wordValue(word: Word, kind: LockKind): number {
  if (typeof word === 'number') return word;
  if (word === 'magic') return kind === 'Mutex' ? MUTEX_MAGIC : SEMAPHORE_MAGIC;
  liveThreads ??= {
    tid: native.gettid(), start: startTime('/proc/thread-self/stat'),
    parent: process.ppid, parentStart: startTime(`/proc/${process.ppid}/stat`),
  };
  const t = liveThreads;
  const values: Record<Exclude<Word, number | 'magic'>, number> = {
    self: t.tid, 'self+waiters': t.tid | WAITERS, 'self-start': t.start,
    parent: t.parent, 'parent+waiters': t.parent | WAITERS, 'parent-start': t.parentStart,
  };
  return values[word];
}

const word: fc.Arbitrary<Word> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom<Word>(0, 1, 2, 3, -1, 'magic', MUTEX_MAGIC, SEMAPHORE_MAGIC, WAITERS, TID_MASK, 0x7fffffff, -0x80000000, SEM_VALUE_MAX - 1,
      'self', 'self+waiters', 'self-start', 'parent', 'parent+waiters', 'parent-start'),
  },
  { weight: 1, arbitrary: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) },
);
const words = fc.tuple(word, word, word, word);
/** Initial words, most with the magic that lets open() succeed. */
const initialWords = fc.tuple(word, word, fc.oneof({ weight: 3, arbitrary: fc.constant<Word>('magic') }, { weight: 1, arbitrary: word }), word);

const LOCK_CODES = codes('ERR_IPC_INVALID_ARGUMENT', 'ERR_IPC_CORRUPTED', 'ERR_IPC_OWNER_DIED', 'ERR_IPC_NOT_RECOVERABLE', 'ERR_IPC_NOT_OWNER',
  'ERR_IPC_DEADLOCK', 'ERR_IPC_LIMIT', 'ERR_IPC_TIMEOUT');

type LockKind = 'Mutex' | 'Semaphore';
const MUTEX_OPS = ['tryLock', 'unlock', 'markConsistent', 'lockSync0', 'lockSync2'] as const;
const SEMAPHORE_OPS = ['tryWait', 'post', 'value', 'waitSync0', 'waitSync2'] as const;

interface LockInput {
  kind: LockKind;
  how: 'open' | 'openOrCreate' | 'create';
  offset: unknown;
  options: unknown;
  value: unknown;
  init: Word[];
  ops: { op: number; n: unknown; overwrite: Word[] | null }[];
}

const lockInput: fc.Arbitrary<LockInput> = fc.record({
  kind: fc.constantFrom<LockKind>('Mutex', 'Semaphore'),
  how: fc.constantFrom<LockInput['how']>('open', 'open', 'openOrCreate', 'create'),
  offset: fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: 12 }).map((i) => i * 4) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>(-4, 1, 2, 49, 52, 64, 2 ** 32, NaN, Infinity, 1.5, '0', null, undefined) },
  ),
  options: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom<unknown>({ spin: 0 }, { spin: 5 }, { spin: -1 }, { spni: 1 }, null, 'x') }),
  value: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom<unknown>(undefined, SEM_VALUE_MAX, -1, 1.5)),
  init: initialWords,
  ops: fc.array(fc.record({
    op: fc.nat(4),
    n: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.constantFrom<unknown>(0, -1, SEM_VALUE_MAX, 1.5, '1')),
    overwrite: fc.option(words, { freq: 4 }),
  }), { maxLength: 6 }),
});

function checkLock(input: LockInput, meter: Meter): void {
  const segment = lockSegment();
  const all = new Int32Array(segment.buffer, 0, 16);
  all.fill(0);
  const validOffset = typeof input.offset === 'number' && Number.isInteger(input.offset) && input.offset >= 0 && input.offset <= 48 && input.offset % 4 === 0;
  const base = validOffset ? (input.offset as number) / 4 : 0;
  const w = all.subarray(base, base + 4);
  input.init.forEach((v, i) => { w[i] = wordValue(v, input.kind); });
  const before = Array.from(all);
  const factory = input.kind === 'Mutex' ? Mutex : Semaphore;
  const options = input.kind === 'Semaphore' && input.how !== 'open' && input.options === undefined ? { value: input.value } : input.options;
  const opened = meter.call(() => (factory[input.how] as (s: PosixSharedMemory, o: number, opts?: unknown) => Mutex | Semaphore)(segment, input.offset as number, options), LOCK_CODES);
  if (!opened.ok || input.how === 'open') {
    expect(isDeepStrictEqual(Array.from(all), before), `${input.kind}.${input.how} ${opened.ok ? 'opened' : `refused with ${opened.error.code}`}, but changed the words`);
  }
  if (!opened.ok) return;
  const tid = wordValue('self', input.kind);
  const owner = (): number => w[STATE]! & TID_MASK;
  for (const { op, n, overwrite } of input.ops) {
    if (overwrite !== null) overwrite.forEach((v, i) => { w[i] = wordValue(v, input.kind); });
    const was = Array.from(w);
    const unchanged = (): boolean => isDeepStrictEqual(Array.from(w), was);
    if (opened.value instanceof Mutex) {
      const mutex = opened.value;
      const name = MUTEX_OPS[op]!;
      const r = meter.call(() => {
        if (name === 'tryLock') return mutex.tryLock();
        if (name === 'unlock') return mutex.unlock();
        if (name === 'markConsistent') return mutex.markConsistent();
        return mutex.lockSync({ timeout: name === 'lockSync0' ? 0 : 2 });
      }, LOCK_CODES);
      const heldBefore = (was[STATE]! & TID_MASK) === tid;
      const code = r.ok ? 'ok' : r.error.code;
      if ((name === 'tryLock' && r.ok && r.value === true) || (name.startsWith('lockSync') && r.ok)) expect(owner() === tid, `${name} succeeded without taking the lock`);
      if (name === 'tryLock' && r.ok && r.value === false) expect(owner() !== tid || heldBefore, 'tryLock returned false but took the lock');
      if (code === 'ERR_IPC_OWNER_DIED') expect(owner() === tid && w[STATUS] === OWNER_DIED, 'ERR_IPC_OWNER_DIED, but this thread does not hold the lock marked owner-died');
      if (code === 'ERR_IPC_CORRUPTED' || code === 'ERR_IPC_NOT_RECOVERABLE') expect(owner() !== tid || heldBefore, `${code} but the lock stayed taken by this thread`);
      if (code === 'ERR_IPC_DEADLOCK') expect(heldBefore, 'ERR_IPC_DEADLOCK while another thread held the lock');
      if (name === 'unlock' && r.ok) expect(w[STATE] === 0, 'unlock left the state word set');
      if (code === 'ERR_IPC_NOT_OWNER') expect(unchanged(), `${name} refused (not owner) but changed the words`);
    } else {
      const semaphore = opened.value;
      const name = SEMAPHORE_OPS[op]!;
      const r = meter.call(() => {
        if (name === 'tryWait') return semaphore.tryWait();
        if (name === 'post') return semaphore.post(n as number);
        if (name === 'value') return semaphore.value;
        return semaphore.waitSync({ timeout: name === 'waitSync0' ? 0 : 2 });
      }, LOCK_CODES);
      const count = was[0]!;
      const took = (name === 'tryWait' && r.ok && r.value === true) || (name.startsWith('waitSync') && r.ok);
      if (took) expect(count > 0 && w[0] === count - 1, `${name} succeeded on count ${count}, leaving ${w[0]}`);
      if (name === 'tryWait' && r.ok && r.value === false) expect(count === 0 && unchanged(), `tryWait returned false on count ${count}`);
      if (name === 'post' && r.ok) expect(w[0] === count + (n as number), `post(${String(n)}) on count ${count} left ${w[0]}`);
      if (name === 'value' && r.ok) expect(r.value === count, `value read ${String(r.value)}; the count word holds ${count}`);
      if (!r.ok && r.error.code === 'ERR_IPC_CORRUPTED') expect(count < 0 && w[0] === count, `ERR_IPC_CORRUPTED for count ${count}`);
      if (!r.ok) expect(w[0] === count, `${name} failed with ${r.error.code}, but changed the count`);
    }
  }
}

// ---------------------------------------------------------------------------
// The channel: a segment whose header and ring another process wrote

/**
 * The channel's words, as the layout comment of src/channel.ts (its
 * protocol) places them: what a peer process writes. Header words are
 * 32-bit words from the segment's start; the ring starts at CH_DATA, a
 * record being [length][kind] and its payload padded to 8 bytes.
 */
const CH = {
  MAGIC: 0, VERSION: 1, CAPACITY: 2, MAX_MESSAGE: 3, MODES: 4, TAIL: 16, PRODUCER_TID: 17, PRODUCER_START: 18,
  HEAD: 32, CONSUMER_TID: 33, CONSUMER_START: 34, CONSUMER_SLEEPING: 49, CONSUMER_BELLS: 50, PRODUCER_SLEEPING: 65, PRODUCER_BELLS: 66,
  SENT: 80, RECEIVED: 96,
  /** The first slot of each side's doorbell table ([TID][START][TOKEN_HI][TOKEN_LO]), and the last slot's token. */
  CONSUMER_BELL_0: 128, CONSUMER_BELL_31: 128 + 31 * 4 + 2, PRODUCER_BELL_0: 256, PRODUCER_BELL_31: 256 + 31 * 4 + 2,
} as const;
const CH_MAGIC = 0x4c4e4843;
const CH_VERSION = 2;
const CH_DATA = 1536;
const CH_MESSAGE = 1;
const CH_PADDING = 2;
const align8 = (n: number): number => (n + 7) & ~7;
/**
 * Sizes of the channel segments: too small for a header and the smallest
 * ring, exactly the smallest, a few rings, and one that holds a 512-byte
 * ring but not the 1024 bytes a capacity word may claim.
 */
const CHANNEL_SEGMENT_SIZES = [CH_DATA + 32, CH_DATA + 64, CH_DATA + 256, CH_DATA + 1024, CH_DATA + 1000];

const channelSegments = lazy(() => {
  const made: PosixSharedMemory[] = [];
  const remove = (): void => {
    for (const segment of made) {
      segment.close();
      removeQuietly(() => PosixSharedMemory.unlink(segment.name));
    }
  };
  try {
    CHANNEL_SEGMENT_SIZES.forEach((size, i) => made.push(PosixSharedMemory.create(`${names().channel}${i}`, { size })));
  } catch (err) {
    remove();
    throw err;
  }
  return { value: made, remove };
});

/** A word written over the channel: a number, or one relative to what is there (so that near misses are common). */
type ChannelWord = number | 'magic' | 'capacity' | 'capacity+8' | 'capacity-8' | 'half' | 'max' | 'max+1' | 'tail+8' | 'tail-8' | 'head+8'
  | 'head-8' | 'tail+capacity' | 'self' | 'self-start' | 'parent' | 'parent-start';
/** Where: a header word, a field of the k-th record laid out (0 length, 1 kind), or any word of the ring. */
type ChannelAt = { header: number } | { record: number; field: 0 | 1 } | { ring: number };
interface ChannelWrite {
  at: ChannelAt;
  value: ChannelWord;
}

const CHANNEL_OPS = ['tryReceive', 'tryReceiveView', 'tryReceiveInto', 'trySend', 'receiveSync0', 'receiveSync2', 'sendSync2', 'loanCommit', 'viewData',
  'select', 'stats'] as const;

interface ChannelInput {
  segment: number;
  /** log2 of the capacity word (6..10). */
  capacityLog: number;
  /** The maxMessageSize word, as a share of the largest the capacity allows (0..1). */
  maxShare: number;
  /** Where HEAD starts: 8 × this, modulo 2^32 (near the wrap, too). */
  head: number;
  /** Payload lengths of the records laid out from HEAD (as many as fit; each at most maxMessageSize). */
  records: number[];
  /** Written before the channel is opened. */
  before: ChannelWrite[];
  ops: { op: number; size: number; write: ChannelWrite | null }[];
}

const channelWord: fc.Arbitrary<ChannelWord> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom<ChannelWord>(0, 1, 2, 3, 7, 8, 9, 64, -1, -8, 0x7fffffff, -0x80000000, 'magic', 'capacity', 'capacity+8', 'capacity-8',
      'half', 'max', 'max+1', 'tail+8', 'tail-8', 'head+8', 'head-8', 'tail+capacity', 'self', 'self-start', 'parent', 'parent-start'),
  },
  { weight: 1, arbitrary: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) },
);

const channelAt: fc.Arbitrary<ChannelAt> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(CH.MAGIC, CH.VERSION, CH.CAPACITY, CH.MAX_MESSAGE, CH.MODES, CH.TAIL, CH.PRODUCER_TID, CH.PRODUCER_START, CH.HEAD,
      CH.CONSUMER_TID, CH.CONSUMER_START, CH.CONSUMER_SLEEPING, CH.PRODUCER_SLEEPING, CH.SENT, CH.RECEIVED,
      CH.CONSUMER_BELLS, CH.PRODUCER_BELLS, CH.CONSUMER_BELL_0, CH.CONSUMER_BELL_0 + 1, CH.CONSUMER_BELL_31, CH.PRODUCER_BELL_0,
      CH.PRODUCER_BELL_31).map((header) => ({ header })),
  },
  { weight: 1, arbitrary: fc.nat(CH_DATA / 4 - 1).map((header) => ({ header })) },
  { weight: 4, arbitrary: fc.record({ record: fc.nat(8), field: fc.constantFrom<0 | 1>(0, 1) }) },
  { weight: 1, arbitrary: fc.nat(255).map((ring) => ({ ring })) },
);

const channelWrite: fc.Arbitrary<ChannelWrite> = fc.record({ at: channelAt, value: channelWord });

const channelInput: fc.Arbitrary<ChannelInput> = fc.record({
  segment: fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 8, arbitrary: fc.integer({ min: 1, max: CHANNEL_SEGMENT_SIZES.length - 1 }) }),
  capacityLog: fc.integer({ min: 6, max: 10 }),
  maxShare: fc.oneof(fc.constantFrom(0, 1), fc.double({ min: 0, max: 1, noNaN: true })),
  head: fc.oneof(fc.constant(0), fc.nat(64), fc.integer({ min: 2 ** 29 - 64, max: 2 ** 29 - 1 })),
  records: fc.array(fc.oneof(fc.nat(24), fc.nat(520)), { maxLength: 12 }),
  // Mostly untouched, so that the model of a clean channel is checked often.
  before: fc.oneof({ weight: 1, arbitrary: fc.constant<ChannelWrite[]>([]) }, { weight: 2, arbitrary: fc.array(channelWrite, { minLength: 1, maxLength: 4 }) }),
  ops: fc.array(fc.record({
    op: fc.nat(CHANNEL_OPS.length - 1),
    size: fc.oneof(fc.nat(24), fc.nat(600)),
    write: fc.option(channelWrite, { freq: 5 }),
  }), { maxLength: 10 }),
});

const CHANNEL_RECEIVE_CODES = codes('ERR_IPC_CORRUPTED', 'ERR_IPC_BUSY', 'ERR_IPC_PEER_DEAD', 'ERR_IPC_TIMEOUT');
const CHANNEL_SEND_CODES = codes('ERR_IPC_CORRUPTED', 'ERR_IPC_BUSY', 'ERR_IPC_PEER_DEAD', 'ERR_IPC_TIMEOUT', 'ERR_IPC_MESSAGE_TOO_LARGE', 'ERR_IPC_INVALID_ARGUMENT');

/** The payload byte `i` of a message of `length` bytes, numbered `n` in its input. */
const channelByte = (n: number, length: number, i: number): number => (n * 31 + length + i) & 0xff;

function channelPayload(n: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = channelByte(n, length, i);
  return out;
}

/**
 * One channel segment written as a peer would (header, then records laid
 * out from HEAD as a producer publishes them, padding records included),
 * then words overwritten; then opened and driven through receives, sends,
 * loans and views, with more words overwritten between calls. Every call
 * returns or throws an IpcError with a documented code, within its bound.
 * Open succeeds exactly when the header words are valid. A receive or send
 * refused as corrupted leaves HEAD or TAIL as it was; a message received
 * is never longer than the maxMessageSize the handle checked. A channel no
 * word of which was overwritten behaves as the model: the messages come
 * back in order, byte for byte, and a send fits exactly when the ring has
 * the room (padding included).
 */
function checkChannel(input: ChannelInput, meter: Meter): void {
  const segment = channelSegments()[input.segment]!;
  const w = new Int32Array(segment.buffer, 0, segment.size >> 2);
  w.fill(0);
  const capacity = 2 ** input.capacityLog;
  const largest = capacity / 2 - 8;
  const maxMessage = Math.floor(input.maxShare * largest);
  const fits = CH_DATA + capacity <= segment.size;
  const mask = capacity - 1;
  // Lay the records out as the producer does: a padding record where one would straddle the ring's end.
  const head = (input.head * 8) >>> 0;
  let tail = head;
  const recordAt: number[] = [];
  const model: Buffer[] = [];
  if (fits) {
    for (const asked of input.records) {
      const length = Math.min(asked, maxMessage);
      const size = align8(8 + length);
      const offset = tail & mask;
      const pad = capacity - offset < size ? capacity - offset : 0;
      if (((tail - head) >>> 0) + pad + size > capacity) break;
      if (pad > 0) {
        w[(CH_DATA + offset) >> 2] = pad;
        w[((CH_DATA + offset) >> 2) + 1] = CH_PADDING;
        tail = (tail + pad) >>> 0;
      }
      const at = (CH_DATA + (tail & mask)) >> 2;
      recordAt.push(at);
      w[at] = length;
      w[at + 1] = CH_MESSAGE;
      const payload = channelPayload(model.length, length);
      new Uint8Array(segment.buffer, CH_DATA + (tail & mask) + 8, length).set(payload);
      model.push(payload);
      tail = (tail + size) >>> 0;
    }
  }
  w[CH.VERSION] = CH_VERSION;
  w[CH.CAPACITY] = capacity;
  w[CH.MAX_MESSAGE] = maxMessage;
  w[CH.TAIL] = tail | 0;
  w[CH.HEAD] = head | 0;
  w[CH.MAGIC] = CH_MAGIC;
  const apply = (write: ChannelWrite, opened: boolean): void => {
    const at = 'header' in write.at ? write.at.header
      : 'record' in write.at ? (recordAt[write.at.record] ?? ((CH_DATA >> 2) + write.at.record * 2)) + write.at.field
        : (CH_DATA >> 2) + write.at.ring;
    if (at >= w.length) return;
    const cap = w[CH.CAPACITY]!;
    const relative: Record<string, number> = {
      magic: CH_MAGIC, capacity: cap, 'capacity+8': cap + 8, 'capacity-8': cap - 8, half: cap >> 1, max: w[CH.MAX_MESSAGE]!,
      'max+1': w[CH.MAX_MESSAGE]! + 1, 'tail+8': w[CH.TAIL]! + 8, 'tail-8': w[CH.TAIL]! - 8, 'head+8': w[CH.HEAD]! + 8,
      'head-8': w[CH.HEAD]! - 8, 'tail+capacity': w[CH.TAIL]! + cap,
    };
    let value = typeof write.value === 'number' ? write.value : relative[write.value] ?? wordValue(write.value as Word, 'Mutex');
    // A magic of 0 makes open() wait 2 s for a creator still writing the header (by design): not at open time.
    if (at === CH.MAGIC && value === 0 && !opened) value = 1;
    w[at] = value | 0;
  };
  for (const write of input.before) apply(write, false);
  let clean = input.before.length === 0;
  const size = segment.size;
  const cap = w[CH.CAPACITY]!;
  const max = w[CH.MAX_MESSAGE]!;
  const headerValid = w[CH.MAGIC] === CH_MAGIC && w[CH.VERSION] === CH_VERSION && cap >= 64 && cap <= 2 ** 30 && (cap & (cap - 1)) === 0
    && CH_DATA + cap <= size && max >= 0 && max <= cap / 2 - 8 && (w[CH.MODES]! & ~3) === 0
    // A shared side needs its mutex (lock.ts's magic word, the third of the four at byte 448 or 464).
    && ((w[CH.MODES]! & 1) === 0 || w[112 + 2] === MUTEX_MAGIC) && ((w[CH.MODES]! & 2) === 0 || w[116 + 2] === MUTEX_MAGIC);
  const opened = meter.call(() => Channel.open(segment.name), codes('ERR_IPC_CORRUPTED'));
  expect(opened.ok === headerValid, opened.ok ? 'opened a channel whose header words are invalid'
    : `refused a valid header (capacity ${cap}, maxMessageSize ${max}, segment ${size} bytes): ${opened.error.message}`);
  if (!opened.ok) return;
  const ch = opened.value;
  expect(ch.capacity === cap && ch.maxMessageSize === max, `opened with capacity ${ch.capacity} and maxMessageSize ${ch.maxMessageSize}; the words hold ${cap} and ${max}`);
  let view: ChannelView | undefined;
  let sent = model.length;
  try {
    for (const { op, size: asked, write } of input.ops) {
      if (write !== null) {
        apply(write, true);
        clean = false;
      }
      const name = CHANNEL_OPS[op]!;
      const headBefore = w[CH.HEAD]! >>> 0;
      const tailBefore = w[CH.TAIL]! >>> 0;
      // A receive first gives back the space of a view still held: HEAD may move then, whatever follows.
      const viewHeld = view?.valid === true;
      if (name === 'tryReceive' || name === 'tryReceiveView' || name === 'tryReceiveInto' || name === 'receiveSync0' || name === 'receiveSync2') {
        const asView = name === 'tryReceiveView';
        const r = meter.call((): Uint8Array | undefined => {
          if (asView) {
            view = ch.tryReceive({ view: true });
            return view === undefined ? undefined : Buffer.from(view.data);
          }
          if (name === 'tryReceiveInto') {
            // maxMessageSize bytes: every message fits.
            const target = Buffer.alloc(max);
            const n = ch.tryReceiveInto(target);
            return n === undefined ? undefined : target.subarray(0, n);
          }
          if (name === 'tryReceive') return ch.tryReceive()?.data;
          return ch.receiveSync({ timeout: name === 'receiveSync0' ? 0 : 2 }).data;
        }, CHANNEL_RECEIVE_CODES);
        if (r.ok && r.value !== undefined) expect(r.value.length <= max, `received ${r.value.length} bytes; maxMessageSize is ${max}`);
        if (!r.ok && r.error.code === 'ERR_IPC_CORRUPTED' && !viewHeld) expect((w[CH.HEAD]! >>> 0) === headBefore, 'a receive refused as corrupted moved HEAD');
        if (clean) {
          const want = model.shift();
          if (want === undefined) {
            const empty = r.ok ? r.value === undefined : r.error.code === 'ERR_IPC_TIMEOUT';
            expect(empty, empty ? '' : `an empty channel gave ${r.ok ? `${r.value?.length} bytes` : r.error.code}`);
          } else {
            expect(r.ok && r.value !== undefined && Buffer.compare(r.value, want) === 0,
              `received ${r.ok ? (r.value === undefined ? 'nothing' : `${shown(Buffer.from(r.value).toString('hex'), 60)}`) : r.error.code}; the next message is ${shown(want.toString('hex'), 60)}`);
          }
        }
      } else if (name === 'trySend' || name === 'sendSync2' || name === 'loanCommit') {
        const payload = channelPayload(sent, asked);
        const record = align8(8 + asked);
        const offset = tailBefore & (cap - 1);
        const pad = cap - offset < record ? cap - offset : 0;
        const room = cap - ((tailBefore - headBefore) >>> 0) >= pad + record;
        const r = meter.call((): boolean => {
          if (name === 'trySend') return ch.trySend(payload);
          if (name === 'sendSync2') {
            ch.sendSync(payload, { timeout: 2 });
            return true;
          }
          const slot = ch.tryLoan(asked);
          if (slot === undefined) return false;
          slot.set(payload);
          ch.commit(slot);
          return true;
        }, CHANNEL_SEND_CODES);
        // The limit is the one the handle checked at open, whatever the words hold now.
        const tooLarge = !r.ok && (r.error.code === 'ERR_IPC_MESSAGE_TOO_LARGE' || r.error.code === 'ERR_IPC_INVALID_ARGUMENT');
        expect(tooLarge === asked > max, `${name} of ${asked} bytes ${r.ok ? 'was accepted' : `refused with ${r.error.code}`}; maxMessageSize is ${max}`);
        if (!r.ok && r.error.code === 'ERR_IPC_CORRUPTED') expect((w[CH.TAIL]! >>> 0) === tailBefore, `${name} refused as corrupted moved TAIL`);
        if (clean && asked <= max) {
          const sentOk = r.ok && r.value;
          expect(sentOk === room, `${name} of ${asked} bytes ${sentOk ? 'went' : `was refused (${r.ok ? 'full' : r.error.code})`} with ${room ? '' : 'no '}room in the ring`);
          if (sentOk) {
            const moved = (w[CH.TAIL]! - tailBefore) >>> 0;
            expect(moved === pad + record, `${name} of ${asked} bytes moved TAIL by ${moved}, not ${pad + record}`);
            model.push(payload);
            sent++;
          }
        }
      } else if (name === 'viewData') {
        if (view === undefined) continue;
        const v = view;
        meter.call(() => v.data, codes('ERR_IPC_STALE_VIEW'));
      } else if (name === 'select') {
        // Readiness reads the ring (and arms a doorbell) without taking anything.
        const r = meter.call(() => selectSync([ch], { events: 'both', timeout: 0 }), codes('ERR_IPC_TIMEOUT', 'ERR_IPC_BUSY', 'ERR_IPC_LIMIT'));
        expect((w[CH.HEAD]! >>> 0) === headBefore && (w[CH.TAIL]! >>> 0) === tailBefore, 'a select moved HEAD or TAIL');
        if (clean) {
          const readable = r.ok && r.value[0]!.readable;
          expect(readable === model.length > 0, `select said ${readable ? '' : 'not '}readable with ${model.length} message(s) waiting`);
        }
      } else {
        meter.call(() => ch.stats(), NO_ERROR);
      }
    }
  } finally {
    meter.call(() => ch.close(), NO_ERROR);
  }
}

// ---------------------------------------------------------------------------
// Kernel semaphores: a named semaphore's sem_t as a peer writes it, and the operation lists of a set

/** glibc's sem_t, as a peer sees the file (little endian): the value, the waiter count, the futex flags, padding. */
const SEM_BYTES = 32;
const SEM_VALUE_AT = 0;
const SEM_WAITERS_AT = 4;
/** What sem_init(pshared = 1) leaves in the flags word (glibc keeps the flag its futex calls flip: 128 means shared). */
const SEM_SHARED_FLAGS = 128;

/** The named semaphore's file, and a descriptor through which the peer reads and writes it (pread/pwrite: no mapping to fault). */
const namedSemaphoreFile = lazy(() => {
  const name = names().semaphore;
  NamedSemaphore.create(name).close();
  const path = `/dev/shm/sem.${name.slice(1)}`;
  const fd = openSync(path, 'r+');
  return { value: { name, fd }, remove: () => { closeSync(fd); removeQuietly(() => NamedSemaphore.unlink(name)); } };
});

function semBytes(fd: number): Buffer {
  const bytes = Buffer.alloc(SEM_BYTES);
  return bytes.subarray(0, readSync(fd, bytes, 0, SEM_BYTES, 0));
}

/** A 32-bit word a peer writes: the edges of the value and waiter fields, the flags glibc uses, anything. */
const semWord = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(0, 1, 2, 3, SEM_SHARED_FLAGS, SEM_VALUE_MAX - 1, SEM_VALUE_MAX, 2 ** 31, 2 ** 32 - 2, 2 ** 32 - 1, 0x7fffff80, 1 << 16),
  },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 32 - 1 }) },
);

interface SemWrite {
  /** Byte offset of the word: 0 the value, 4 the waiter count, 8 the futex flags, 12–28 padding. */
  at: number;
  word: number;
}

const semWrite: fc.Arbitrary<SemWrite> = fc.record({ at: fc.constantFrom(0, 0, 0, 4, 4, 4, 8, 8, 12, 16, 20, 24, 28), word: semWord });

const NAMED_OPS = ['tryWait', 'post', 'value', 'waiters', 'waitSync0', 'waitSync2', 'wait2', 'waitPosted', 'open', 'openOrCreate', 'truncate'] as const;

interface NamedInput {
  /** The value sem_init writes, then the peer's first writes. */
  value: number;
  writes: SemWrite[];
  ops: { op: (typeof NAMED_OPS)[number]; n: unknown; writes: SemWrite[]; during: boolean }[];
}

const namedInput: fc.Arbitrary<NamedInput> = fc.record({
  value: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom(SEM_VALUE_MAX, SEM_VALUE_MAX - 1)),
  writes: fc.array(semWrite, { maxLength: 4 }),
  ops: fc.array(fc.record({
    op: fc.oneof(
      { weight: 30, arbitrary: fc.constantFrom(...NAMED_OPS.filter((o) => o !== 'truncate')) },
      { weight: 1, arbitrary: fc.constant('truncate' as const) },
    ),
    n: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 3 }) }, { weight: 1, arbitrary: fc.constantFrom<unknown>(0, -1, SEM_VALUE_MAX, 2 ** 31, 1.5, '1', undefined) }),
    writes: fc.array(semWrite, { maxLength: 2 }),
    during: fc.boolean(),
  }), { maxLength: 8 }),
});

const NAMED_CODES = codes('ERR_IPC_TIMEOUT', 'EOVERFLOW', 'ERR_IPC_INVALID_ARGUMENT', 'ERR_IPC_SIZE_MISMATCH');

function writeSem(fd: number, writes: SemWrite[]): void {
  const word = Buffer.alloc(4);
  for (const { at, word: value } of writes) {
    word.writeUInt32LE(value, 0);
    writeSync(fd, word, 0, 4, at);
  }
}

/**
 * Random bytes in a named semaphore's file (value, waiter count, futex
 * flags, padding), written by the peer before and between ipckit's calls
 * and while an async wait sleeps, then tryWait, post(n), value, waiters,
 * waitSync and wait with small timeouts, open and openOrCreate, and rarely
 * the file truncated under the handles. Every call returns or throws an
 * IpcError of NAMED_CODES within its bound; with no peer write during the
 * call, each does exactly what glibc's protocol says to the value word and
 * leaves the waiter count as it was; no call ever writes the flags or the
 * padding; after the truncation every call fails with ERR_IPC_SIZE_MISMATCH.
 */
async function checkNamedSemaphore(input: NamedInput, meter: Meter): Promise<void> {
  const { name, fd } = namedSemaphoreFile();
  // The file as sem_init leaves it, then the peer's writes (a truncation by the previous input undone).
  ftruncateSync(fd, SEM_BYTES);
  const init = Buffer.alloc(SEM_BYTES);
  init.writeUInt32LE(input.value, SEM_VALUE_AT);
  init.writeInt32LE(SEM_SHARED_FLAGS, 8);
  writeSync(fd, init, 0, SEM_BYTES, 0);
  writeSem(fd, input.writes);
  const handle = meter.call(() => NamedSemaphore.open(name), NO_ERROR);
  const poster = meter.call(() => NamedSemaphore.open(name), NO_ERROR);
  if (!handle.ok || !poster.ok) return;
  const sem = handle.value;
  let truncated = false;
  try {
    for (const { op, n, writes, during } of input.ops) {
      // post(n): n defaults to 1.
      const units = n === undefined ? 1 : n;
      const validUnits = typeof units === 'number' && Number.isInteger(units) && units >= 1 && units <= SEM_VALUE_MAX;
      if (!truncated) writeSem(fd, writes);
      const before = truncated ? undefined : semBytes(fd);
      const value = before?.readUInt32LE(SEM_VALUE_AT) ?? 0;
      const waiters = before?.readUInt32LE(SEM_WAITERS_AT) ?? 0;
      const t0 = performance.now();
      let r: Outcome<unknown>;
      /** The value word after the call, as the protocol says: undefined when a peer wrote during it. */
      let want: number | undefined = value;
      if (op === 'truncate') {
        ftruncateSync(fd, 0);
        truncated = true;
        continue;
      } else if (op === 'tryWait') {
        r = meter.call(() => sem.tryWait(), NAMED_CODES);
        if (r.ok) expect(r.value === value > 0, `tryWait returned ${String(r.value)} on value ${value}`);
        if (r.ok && r.value === true) want = value - 1;
      } else if (op === 'post') {
        r = meter.call(() => sem.post(n as number), NAMED_CODES);
        if (!truncated) {
          const fits = validUnits && value <= SEM_VALUE_MAX - units;
          expect(r.ok === fits, `post(${shown(n)}) on value ${value} ${r.ok ? 'succeeded' : `failed with ${r.error.code}`}`);
          if (!r.ok) expect(r.error.code === (validUnits ? 'EOVERFLOW' : 'ERR_IPC_INVALID_ARGUMENT'), `post(${shown(n)}) on value ${value} failed with ${r.error.code}`);
          if (fits) want = value + units;
        }
      } else if (op === 'value' || op === 'waiters') {
        r = meter.call(() => (op === 'value' ? sem.value : sem.waiters), NAMED_CODES);
        // Each half of the word is read exactly; a truncated file fails the getter (ERR_IPC_SIZE_MISMATCH, checked below).
        if (!truncated) {
          expect(r.ok && r.value === (op === 'value' ? value : waiters), `${op} read ${r.ok ? String(r.value) : r.error.code}; the file holds ${op === 'value' ? value : waiters}`);
        }
      } else if (op === 'waitSync0' || op === 'waitSync2') {
        const timeout = op === 'waitSync0' ? 0 : 2;
        r = meter.call(() => sem.waitSync({ timeout }), NAMED_CODES);
        if (!truncated) expect(r.ok === value > 0 && (r.ok || r.error.code === 'ERR_IPC_TIMEOUT'), `waitSync({ timeout: ${timeout} }) on value ${value}: ${r.ok ? 'took one' : r.error.code}`);
        if (r.ok) want = value - 1;
      } else if (op === 'wait2' || op === 'waitPosted') {
        // waitPosted: the other handle posts once the wait sleeps; a peer may write the words meanwhile (the wake-up may be lost then).
        const posted = op === 'waitPosted';
        const timeout = posted ? 100 : 2;
        const waiting = meter.callAsync(() => sem.wait({ timeout }), NAMED_CODES);
        let postedOne = false;
        if (posted) {
          await nextTurn();
          if (during && !truncated) {
            writeSem(fd, writes);
            want = undefined;
          }
          const p = meter.call(() => poster.value.post(), NAMED_CODES);
          postedOne = p.ok;
          if (!p.ok && !truncated && want !== undefined) expect(p.error.code === 'EOVERFLOW', `the other handle's post failed with ${p.error.code}`);
        }
        r = await waiting;
        if (!truncated && want !== undefined) {
          expect(r.ok || r.error.code === 'ERR_IPC_TIMEOUT', `wait({ timeout: ${timeout} }) failed with ${r.ok ? '' : r.error.code}`);
          want = value + (postedOne ? 1 : 0) - (r.ok ? 1 : 0);
          if (!posted) expect(r.ok === value > 0, `wait({ timeout: 2 }) on value ${value}: ${r.ok ? 'took one' : 'timed out'}`);
        }
        if (!truncated && want === undefined) expect(r.ok || r.error.code === 'ERR_IPC_TIMEOUT', `wait with the words rewritten failed with ${r.ok ? '' : r.error.code}`);
      } else {
        // open or openOrCreate: any content of a 32-byte file opens; an existing semaphore keeps its value.
        const again = meter.call(() => (op === 'open' ? NamedSemaphore.open(name) : NamedSemaphore.openOrCreate(name, { value: 1 })), codes('ERR_IPC_SIZE_MISMATCH'));
        if (again.ok) {
          expect(!again.value.created, `${op} created a new semaphore over an existing one`);
          again.value.close();
        }
        expect(again.ok !== truncated, `${op} ${again.ok ? 'opened a truncated file' : `refused a 32-byte file: ${again.error.code}`}`);
        r = again;
      }
      const ms = performance.now() - t0;
      if (truncated) {
        // A post with a bad count is refused for the count before it touches the mapping.
        const badCount = op === 'post' && !validUnits && !r.ok && r.error.code === 'ERR_IPC_INVALID_ARGUMENT';
        expect(badCount || (!r.ok && r.error.code === 'ERR_IPC_SIZE_MISMATCH'), `${op} on a truncated file: ${r.ok ? `returned ${shown(r.value)}` : r.error.code}`);
        continue;
      }
      const after = semBytes(fd);
      // Only the value and waiter words are ipckit's to change; the waiter count is back once no wait is inside.
      if (!(op === 'waitPosted' && during)) {
        expect(after.subarray(8).equals(before!.subarray(8)), `${op} changed the flags or padding: ${before!.subarray(8).toString('hex')} → ${after.subarray(8).toString('hex')}`);
      }
      if (want !== undefined) {
        expect(after.readUInt32LE(SEM_VALUE_AT) === want, `${op}${op === 'post' ? `(${shown(n)})` : ''} on value ${value} left ${after.readUInt32LE(SEM_VALUE_AT)}, not ${want}`);
        expect(after.readUInt32LE(SEM_WAITERS_AT) === waiters, `${op} left the waiter count at ${after.readUInt32LE(SEM_WAITERS_AT)}, not ${waiters}`);
      }
      const bound = op === 'waitPosted' ? 100 : op === 'waitSync2' || op === 'wait2' ? 2 : 0;
      expect(ms < bound + 1000, `${op} took ${ms.toFixed(0)} ms (timeout ${bound})`);
    }
  } finally {
    sem.close();
    poster.value.close();
  }
}

/** The set the operation fuzzer works on, and its size. */
const SET_COUNT = 4;
const semaphoreSet = lazy(() => {
  const set = withFreshKey(HB.semKey, (key) => SemaphoreSet.create(key, { count: SET_COUNT, mode: 0o600 }));
  return { value: set, remove: () => { removeQuietly(() => set.remove()); Atomics.store(hb(), HB.semKey, 0); } };
});

const validIndex = fc.integer({ min: 0, max: SET_COUNT - 1 });
const validDelta = fc.oneof({ weight: 6, arbitrary: fc.integer({ min: -3, max: 3 }) }, { weight: 1, arbitrary: fc.integer({ min: -SEMVMX, max: SEMVMX }) },
  { weight: 1, arbitrary: fc.constantFrom(-SEMVMX, SEMVMX, 16384, -16384) });
const badIndex = fc.constantFrom<unknown>(-1, SET_COUNT, 65535, 65536, 2 ** 32, 1.5, NaN, '0', null);
const badDelta = fc.constantFrom<unknown>(-SEMVMX - 1, SEMVMX + 1, -65536, 1.5, NaN, Infinity, '1', null);
const badFlag = fc.constantFrom<unknown>(0, 1, 'true', null);
const opRecord = (index: fc.Arbitrary<unknown>, delta: fc.Arbitrary<unknown>, flag: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
  fc.record({ index, delta, undo: flag, noWait: flag }, { requiredKeys: ['index', 'delta'] });

/** An operation as a caller might write it: mostly valid; sometimes a bad index, delta or flag, an unknown key, or no object at all. */
const setOp = fc.oneof(
  { weight: 30, arbitrary: opRecord(validIndex, validDelta, fc.boolean()) },
  { weight: 1, arbitrary: opRecord(badIndex, validDelta, fc.boolean()) },
  { weight: 1, arbitrary: opRecord(validIndex, badDelta, fc.boolean()) },
  { weight: 1, arbitrary: opRecord(validIndex, validDelta, badFlag) },
  { weight: 1, arbitrary: fc.record({ index: validIndex, delta: validDelta, flags: fc.nat(4096) }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(null, undefined, 5, 'op', [0, -1], {}) },
);

type SetCallKind = 'tryOp' | 'opSync' | 'op';

interface SetCall {
  how: SetCallKind;
  /** A list of operations, one operation, or a list longer than SEMOPM. */
  ops: unknown;
  options: unknown;
}

interface SetInput {
  values: number[];
  calls: SetCall[];
}

/** One more operation than SEMOPM allows (`kernel.sem`, read when the input is made). */
const tooMany = fc.constant(null).map(() => Array.from({ length: (SemaphoreSet.limits().semopm ?? 500) + 1 }, () => ({ index: 0, delta: 1 })));

const setInput: fc.Arbitrary<SetInput> = fc.record({
  values: fc.array(fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom(SEMVMX, SEMVMX - 1, 16384), fc.integer({ min: 0, max: SEMVMX })),
    { minLength: SET_COUNT, maxLength: SET_COUNT }),
  calls: fc.array(fc.record({
    how: fc.constantFrom<SetCallKind>('tryOp', 'opSync', 'opSync', 'op'),
    // fc.array never leaves holes: a hole is taken as a wait for zero on semaphore 0 (docs/reliability.md).
    ops: fc.oneof({ weight: 10, arbitrary: fc.array(setOp, { maxLength: 8 }) }, { weight: 2, arbitrary: setOp }, { weight: 1, arbitrary: tooMany }),
    // Always a finite timeout, or options that are refused before anything waits.
    options: fc.oneof({ weight: 10, arbitrary: fc.record({ timeout: fc.constantFrom(0, 0, 1, 2) }) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>({ timeout: -1 }, { timeout: NaN }, { timeout: '1' }, { tiemout: 1 }, { spin: 1 }, { signal: 'x' }, null, 5) }),
  }), { minLength: 1, maxLength: 8 }),
});

const SET_CODES = codes('ERR_IPC_INVALID_ARGUMENT', 'ERR_IPC_LIMIT', 'ERR_IPC_TIMEOUT', 'EAGAIN', 'ERANGE');

/** Whether `ops` passes the documented checks: what a call must refuse with ERR_IPC_INVALID_ARGUMENT or ERR_IPC_LIMIT otherwise. */
function checkedOps(ops: unknown, semopm: number): { ok: { index: number; delta: number; undo: boolean; noWait: boolean }[] } | { code: string } {
  const list: unknown[] = Array.isArray(ops) ? ops : [ops];
  if (list.length === 0) return { code: 'ERR_IPC_INVALID_ARGUMENT' };
  if (list.length > semopm) return { code: 'ERR_IPC_LIMIT' };
  const out = [];
  const int = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
  const flag = (v: unknown): v is boolean | undefined => v === undefined || typeof v === 'boolean';
  for (const raw of list) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { code: 'ERR_IPC_INVALID_ARGUMENT' };
    const op = raw as Record<string, unknown>;
    if (Object.keys(op).some((k) => !['index', 'delta', 'undo', 'noWait'].includes(k))) return { code: 'ERR_IPC_INVALID_ARGUMENT' };
    if (!int(op.index, 0, SET_COUNT - 1) || !int(op.delta, -SEMVMX, SEMVMX) || !flag(op.undo) || !flag(op.noWait)) return { code: 'ERR_IPC_INVALID_ARGUMENT' };
    out.push({ index: op.index, delta: op.delta, undo: op.undo === true, noWait: op.noWait === true });
  }
  return { ok: out };
}

/**
 * semop(2) as the kernel does it: the operations in order, on a copy; the
 * first that cannot proceed decides (a take beyond the value, a wait for
 * zero on a non-zero value: the call would block, or fails with EAGAIN if
 * that operation has IPC_NOWAIT); a value past SEMVMX or an undo
 * adjustment past SEMAEM is ERANGE; otherwise all are applied at once.
 */
function semop(values: number[], adjust: number[], ops: { index: number; delta: number; undo: boolean; noWait: boolean }[]):
  { applied: { values: number[]; adjust: number[] } } | { blocked: { noWait: boolean } } | { error: 'ERANGE' } {
  const v = [...values];
  const a = [...adjust];
  for (const op of ops) {
    const current = v[op.index]!;
    const next = current + op.delta;
    if ((op.delta === 0 && current !== 0) || next < 0) return { blocked: { noWait: op.noWait } };
    if (next > SEMVMX) return { error: 'ERANGE' };
    if (op.undo) {
      const undo = a[op.index]! - op.delta;
      if (undo < -SEMAEM - 1 || undo > SEMAEM) return { error: 'ERANGE' };
      a[op.index] = undo;
    }
    v[op.index] = next;
  }
  return { applied: { values: v, adjust: a } };
}

/**
 * Operation lists and options into tryOp, opSync and op on a set of four:
 * refused (ERR_IPC_INVALID_ARGUMENT, ERR_IPC_LIMIT) exactly when the list
 * breaks a documented rule; otherwise the outcome semop(2) gives (applied,
 * would wait: false, ERR_IPC_TIMEOUT, or EAGAIN for an operation marked
 * noWait; ERANGE), the values changed exactly so when applied and not at
 * all otherwise, and no process left waiting on the set.
 */
async function checkSemaphoreSet(input: SetInput, meter: Meter): Promise<void> {
  const set = semaphoreSet();
  // SETALL also clears every undo adjustment of the set.
  set.setAll(input.values);
  let values = [...input.values];
  let adjust = new Array<number>(SET_COUNT).fill(0);
  const semopm = SemaphoreSet.limits().semopm ?? 500;
  for (const { how, ops, options } of input.calls) {
    const checked = checkedOps(ops, semopm);
    const timeout = (options as { timeout?: unknown } | null)?.timeout;
    const optionsValid = how === 'tryOp' || (typeof options === 'object' && options !== null && Object.keys(options).length === 1
      && typeof timeout === 'number' && timeout >= 0);
    const what = `${how}(${shown(ops, 200)}${how === 'tryOp' ? '' : `, ${shown(options)}`}) on ${values.join()}`;
    let r: Outcome<unknown>;
    if (how === 'tryOp') r = meter.call(() => set.tryOp(ops as SemaphoreOperationInput), SET_CODES);
    else if (how === 'opSync') r = meter.call(() => set.opSync(ops as SemaphoreOperationInput, options as { timeout: number }), SET_CODES);
    else r = await meter.callAsync(() => set.op(ops as SemaphoreOperationInput, options as { timeout: number }), SET_CODES);
    const now = set.values();
    if (!optionsValid || 'code' in checked) {
      // Options are checked before the operations.
      const want = optionsValid ? (checked as { code: string }).code : 'ERR_IPC_INVALID_ARGUMENT';
      expect(!r.ok && r.error.code === want, `${what}: ${r.ok ? 'accepted' : r.error.code}, expected ${want}`);
    } else {
      const model = semop(values, adjust, checked.ok);
      let expected: string;
      if ('applied' in model) expected = how === 'tryOp' ? 'true' : 'ok';
      else if ('error' in model) expected = model.error;
      else if (how === 'tryOp') expected = 'false';
      // The operation that stops the call decides, whatever the timeout (0 included): noWait fails it, any other waits.
      else expected = model.blocked.noWait ? 'EAGAIN' : 'ERR_IPC_TIMEOUT';
      const got = r.ok ? (how === 'tryOp' ? String(r.value) : 'ok') : r.error.code;
      // EAGAIN comes from the kernel at once, but a timeout of 1–2 ms can still run out first (the async call's job has
      // not reached semop yet, or the thread was preempted): then ERR_IPC_TIMEOUT, with nothing applied either way.
      const raced = expected === 'EAGAIN' && got === 'ERR_IPC_TIMEOUT';
      expect(got === expected || raced, `${what}: ${got}, expected ${expected}`);
      if ('applied' in model && r.ok && r.value !== false) ({ values, adjust } = model.applied);
    }
    expect(now.join() === values.join(), `${what}: the values are ${now.join()}, expected ${values.join()}`);
    const st = set.stat();
    expect(st.waitingForIncrease.every((n) => n === 0) && st.waitingForZero.every((n) => n === 0),
      `${what}: processes still wait on the set (for increase ${st.waitingForIncrease.join()}, for zero ${st.waitingForZero.join()})`);
  }
}

type SemaphoreOperationInput = Parameters<SemaphoreSet['tryOp']>[0];

// ---------------------------------------------------------------------------
// The decoders

interface Target<T> {
  name: string;
  /** Longest one call may take, ms; slower is a failure (a hang, if it never returns). */
  boundMs: number;
  arbitrary: fc.Arbitrary<T>;
  /** Checks one input; throws (a Violation) when a property does not hold. An async check resolves once the input is done. */
  check(input: T, meter: Meter): void | Promise<void>;
  /** Whether `check` is async (it waits for the event loop: replies, a peer's pump). */
  async?: boolean;
  /** How many inputs one value counts as (a batch of names decoded by one call); 1 if absent. */
  weight?(input: T): number;
}

const target = <T>(t: Target<T>): Target<unknown> => t as Target<unknown>;

const codecs = { json: resolveCodec<unknown>('json'), msgpack: resolveCodec<unknown>('msgpack') };
const CODEC_ERROR = codes('ERR_IPC_CODEC');

/** Decodes arbitrary bytes; what decodes must survive forwarding: encode(decode(b)) is a fixed point. */
function checkDecode(codec: Codec<unknown>, bytes: Uint8Array, meter: Meter): void {
  const first = meter.call(() => decodeWith(codec, bytesOf(bytes), 'fuzz'), CODEC_ERROR);
  if (!first.ok) return;
  // Re-encoding may refuse (a value deeper than the encoder goes), with ERR_IPC_CODEC.
  const again = meter.call(() => encodeWith(codec, first.value, 'fuzz'), CODEC_ERROR);
  if (!again.ok) return;
  const second = meter.call(() => decodeWith(codec, bytesOf(again.value), 'fuzz'), NO_ERROR);
  const third = meter.call(() => encodeWith(codec, second.ok ? second.value : undefined, 'fuzz'), NO_ERROR);
  expect(third.ok && bytesOf(third.value).equals(bytesOf(again.value)), 'a decoded value does not re-encode to the same bytes after forwarding');
}

/** Encodes a value: refusing it is allowed (ERR_IPC_CODEC); what is sent must decode to the same value. */
function checkRoundTrip(codec: Codec<unknown>, value: unknown, meter: Meter): void {
  const bytes = meter.call(() => encodeWith(codec, value, 'fuzz'), CODEC_ERROR);
  if (!bytes.ok) return;
  const back = meter.call(() => decodeWith(codec, bytesOf(bytes.value), 'fuzz'), CODEC_ERROR);
  expect(back.ok, `the value was encoded, but its bytes cannot be decoded: ${back.ok ? '' : back.error.message}`);
  expect(back.ok && same(back.value, value), `the value was encoded, but decodes as ${back.ok ? shown(back.value, 120) : ''}`);
}

/** The reference for a System V address: its key or identifier, `ftok`, or invalid. */
function sysvExpectation(address: unknown): { key: number } | { id: number } | 'ftok' | 'invalid' {
  const validKey = (k: number): { key: number } | 'invalid' => (Number.isInteger(k) && k >= 1 && k <= 0xffffffff ? { key: k } : 'invalid');
  if (typeof address === 'number') return validKey(address);
  if (typeof address === 'string') {
    const text = address.trim();
    if (/^0x[0-9a-f]{1,8}$/i.test(text)) return validKey(parseInt(text.slice(2), 16));
    if (/^[0-9]{1,10}$/.test(text)) return validKey(parseInt(text, 10));
    return 'invalid';
  }
  if (address === null || typeof address !== 'object') return 'invalid';
  const record = address as Record<string, unknown>;
  if ('id' in record) {
    const id = record.id;
    return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 0x7fffffff ? { id } : 'invalid';
  }
  const { path, projectId } = record;
  const pathOk = typeof path === 'string' && path.length > 0 && !path.includes('\0') && !hasLoneSurrogate(path);
  const idOk = typeof projectId === 'number' && Number.isInteger(projectId) && projectId >= 1 && projectId <= 255;
  return pathOk && idOk ? 'ftok' : 'invalid';
}

const anything = fc.anything({ withNullPrototype: true, withBigInt: true, withBoxedValues: true, withMap: true, withSet: true, withDate: true, withTypedArray: true, withSparseArray: true });
const existingPaths = fc.constantFrom('/', '/tmp', '/dev/null', '/proc/self/exe', '.', process.execPath);

/** What a printable() escape stands for. */
function unprintable(text: string): string {
  return text.replace(/\\(\\|n|r|t|e|u[0-9a-f]{4})/g, (_, e: string) =>
    e === '\\' ? '\\' : e === 'n' ? '\n' : e === 'r' ? '\r' : e === 't' ? '\t' : e === 'e' ? '\x1b' : String.fromCharCode(parseInt(e.slice(1), 16)));
}

/** An integer option by the exact rule the CLI documents: decimal or 0x hex, optional minus, within [min, max] and exact. */
function referenceInteger(text: string, min: number, max: number): number | undefined {
  const m = /^(-?)(?:0x([0-9a-f]+)|([0-9]+))$/i.exec(text);
  if (m === null) return undefined;
  const magnitude = m[2] !== undefined ? BigInt(`0x${m[2]}`) : BigInt(m[3]!);
  const value = m[1] === '-' ? -magnitude : magnitude;
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < -BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(min) || value > BigInt(max)) return undefined;
  return Number(value);
}

const context = (values: Record<string, unknown>): CommandContext =>
  ({ positionals: [], values: values as CommandContext['values'], json: false, path: 'ipckit fuzz' });

const SIGRTMAX = native.signalConstants.SIGRTMAX as number;
const signalNames = [...Object.keys(osConstants.signals), 'SIGRTMIN', 'SIGRTMAX'];

type SignalInput = { any: unknown } | { number: number };

/** POSIX names that create() accepts: `prefix` plus `suffix` without slashes, NULs or lone surrogates, within NAME_MAX. */
function objectName(prefix: string, suffix: string): string {
  let name = prefix + suffix.replace(/[/\0]|\p{Cs}/gu, '_');
  while (Buffer.byteLength(name) - 1 > POSIX_NAME_MAX) name = name.slice(0, -1).replace(/\p{Cs}$/u, '');
  return name;
}

// ---------------------------------------------------------------------------
// Sockets: what a peer sends (bytes, datagrams, envelopes) and addresses

/** A prefix for the abstract names of one input's sockets (gone with their process, whatever happens). */
let socketInputs = 0;
const socketName = (): string => `${names().heartbeat.slice(1)}-s${socketInputs++}`;

/** One message, `undefined` if none is complete, or `null` once the peer has closed (as the stream reference has it). */
function messageOrEnd(read: () => { data: Buffer } | undefined): Buffer | null | undefined {
  try {
    return read()?.data;
  } catch (err) {
    if (err instanceof IpcError && err.code === 'ERR_IPC_PEER_CLOSED') return null;
    throw err;
  }
}

type DatagramKind = 'unix-dgram' | 'udp' | 'unix-seqpacket';
/** Datagrams per input: an idle Unix datagram socket queues 11 (net.unix.max_dgram_qlen 10, the default). */
const DATAGRAM_BATCH = 10;
const TOO_LARGE = codes('ERR_IPC_MESSAGE_TOO_LARGE');

type Received = { data: Buffer; fds: number[]; from?: string | null };

/** One datagram received as sent: refused as too large when it is, otherwise the same bytes, from the sender, without descriptors. */
function checkDatagram(got: Outcome<Received | undefined>, sent: Uint8Array, max: number, from: string | undefined, where: string): void {
  if (sent.length > max) {
    expect(!got.ok && got.error.code === 'ERR_IPC_MESSAGE_TOO_LARGE',
      `${where}: a ${sent.length}-byte datagram, over maxMessageSize ${max}, was ${got.ok ? 'received' : `refused with ${got.error.code}`}`);
    return;
  }
  expect(got.ok && got.value !== undefined, `${where}: a ${sent.length}-byte datagram within maxMessageSize ${max} was ${got.ok ? 'not there' : `refused with ${got.error.code}`}`);
  const m = (got as { value: Received }).value;
  expect(bytesOf(m.data).equals(bytesOf(sent)), `${where}: received ${m.data.length} bytes that differ from the ${sent.length} sent`);
  expect(m.fds.length === 0, `${where}: descriptors ${shown(m.fds)} came with a datagram that had none`);
  if (from !== undefined) expect(m.from === from, `${where}: from ${shown(m.from)}, not the sender ${from}`);
}

/**
 * Datagrams a peer sends, received against maxMessageSize: each within the
 * limit arrives whole, each over it is consumed and refused (the next one
 * then comes), and nothing more arrives. Unix datagrams and packets keep
 * their order; UDP over loopback is compared as a multiset.
 */
function checkDatagrams(kind: DatagramKind, max: number, datagrams: Uint8Array[], meter: Meter): void {
  if (kind === 'unix-seqpacket') {
    const [reader, writer] = socketPair({ type: 'seqpacket', maxMessageSize: max });
    try {
      for (const d of datagrams) expect(writer.trySend(d), 'an empty seqpacket socket refused a packet');
      // The writer stays open: an empty packet is a message, not the end.
      datagrams.forEach((d, i) => checkDatagram(meter.call(() => reader.tryReceive(), TOO_LARGE), d, max, undefined, `packet ${i}`));
      const extra = meter.call(() => reader.tryReceive(), NO_ERROR);
      expect(extra.ok && extra.value === undefined, 'more packets were received than sent');
    } finally {
      writer.close();
      reader.close();
    }
    return;
  }
  const name = socketName();
  const [at, from] = kind === 'udp' ? ['udp://127.0.0.1:0', 'udp://127.0.0.1:0'] : [`unix-dgram:@${name}-r`, `unix-dgram:@${name}-s`];
  const reader = bind(at, { maxMessageSize: max });
  try {
    const writer = bind(from);
    try {
      const to = reader.localAddress!;
      for (const d of datagrams) expect(writer.trySend(d, { to }), 'a datagram to a receiver with room was refused');
      // Loopback UDP may reach the queue a moment after the send returns.
      const got = datagrams.map(() => meter.call(() => reader.receiveSync({ timeout: 1000 }), TOO_LARGE));
      if (kind === 'unix-dgram') {
        datagrams.forEach((d, i) => checkDatagram(got[i]!, d, max, writer.localAddress!, `datagram ${i}`));
      } else {
        const key = (b: Uint8Array): string => bytesOf(b).toString('hex');
        const want = datagrams.filter((d) => d.length <= max).map(key).sort();
        const refused = got.filter((g) => !g.ok).length;
        expect(refused === datagrams.length - want.length, `${refused} datagrams refused as too large, not ${datagrams.length - want.length}`);
        for (const g of got) if (g.ok) checkDatagram(g, g.value.data, max, writer.localAddress!, 'a datagram');
        expect(isDeepStrictEqual(got.flatMap((g) => (g.ok ? [key(g.value.data)] : [])).sort(), want), 'the datagrams received are not those sent within the limit');
      }
      const extra = meter.call(() => reader.tryReceive(), NO_ERROR);
      expect(extra.ok && extra.value === undefined, 'more datagrams were received than sent');
    } finally {
      writer.close();
    }
  } finally {
    reader.close();
  }
}

// The request/reply envelope (docs/socket.md): kind (1 request, 2 reply, 3 failure), a 4-byte id, the body.
const REQUEST = 1;
const REPLY = 2;
const FAILURE = 3;

function envelope(kind: number, id: number, body: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = kind;
  out.writeUInt32BE(id >>> 0, 1);
  out.set(body, 5);
  return out;
}

interface EnvelopeInput {
  codec: 'raw' | 'json';
  /** 'request': this side has requests 1..requests pending; 'serve': it serves a handler. */
  mode: 'request' | 'serve';
  requests: number;
  /** What the peer sends, in order; `fd`: with a descriptor (SCM_RIGHTS). */
  envelopes: { bytes: Uint8Array; fd: boolean }[];
}

/** Failure bodies: the documented JSON, its variants, and garbage. */
const failureBody = fc.oneof(
  fc.record({ code: fc.oneof(fc.string({ maxLength: 12 }), fc.constant(null), fc.integer()), message: fc.oneof(fc.string({ maxLength: 24 }), fc.integer()) })
    .map((v) => utf8(JSON.stringify(v))),
  fc.constantFrom('{}', 'null', '[]', '"x"', '{"code":', '').map(utf8),
  fc.uint8Array({ maxLength: 16 }),
);

/** Envelopes near the valid ones (ids of the pending requests and their neighbours), and bytes that are none. */
const peerEnvelope = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(
      fc.oneof({ weight: 6, arbitrary: fc.constantFrom(REQUEST, REPLY, FAILURE) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
      fc.oneof(fc.integer({ min: 0, max: 6 }), fc.constantFrom(0xffffffff, 0x80000000, 0x100)),
      fc.oneof(fc.uint8Array({ maxLength: 24 }), jsonBytes, mutated(jsonBytes), failureBody),
    ).map(([kind, id, body]) => new Uint8Array(envelope(kind, id, body))),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 6 }) },
  { weight: 1, arbitrary: mutated(fc.tuple(fc.constantFrom(REQUEST, REPLY, FAILURE), fc.integer({ min: 0, max: 6 }), jsonBytes).map(([k, id, b]) => new Uint8Array(envelope(k, id, b)))) },
);

const envelopeInput: fc.Arbitrary<EnvelopeInput> = fc.record({
  codec: fc.constantFrom<EnvelopeInput['codec']>('raw', 'json'),
  mode: fc.constantFrom<EnvelopeInput['mode']>('request', 'serve'),
  requests: fc.integer({ min: 0, max: 4 }),
  envelopes: fc.array(fc.record({ bytes: peerEnvelope, fd: fc.boolean() }), { maxLength: 8 }),
});

/** A descriptor the peer attaches to envelopes (/dev/null, opened once with the thread's readiness set, before any count). */
let devNull: number | undefined;

function warmUp(): number {
  if (devNull === undefined) {
    const [a, b] = socketPair();
    a.close();
    b.close();
    devNull = openSync('/dev/null', 'r');
  }
  return devNull;
}

/** Open descriptors of this process. */
const descriptorCount = (): number => readdirSync('/proc/self/fd').length;

/** What a decoded body is under `codec`, by the codec's own library; undefined if it does not decode. */
function bodyValue(codec: EnvelopeInput['codec'], body: Buffer): { value: unknown } | undefined {
  return codec === 'raw' ? { value: body } : referenceDecode('json', body);
}

/** Each promise's outcome, or a Violation if one has not settled within `ms`. */
async function settledWithin<T>(promises: Promise<T>[], ms: number, what: string): Promise<PromiseSettledResult<T>[]> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Violation(`${what} did not settle within ${ms} ms`)), ms); });
  try {
    return await Promise.race([Promise.allSettled(promises), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Messages the peer's end has received, until `enough()` or `ms` pass, then whatever more comes in two turns of the loop. */
async function collect(end: MessageSocket, enough: (got: Buffer[]) => boolean, ms: number): Promise<Buffer[]> {
  const got: Buffer[] = [];
  const take = (): boolean => {
    for (let m = messageOrEnd(() => end.tryReceive()); m !== undefined; m = messageOrEnd(() => end.tryReceive())) {
      if (m === null) return false;
      got.push(m);
    }
    return true;
  };
  const deadline = performance.now() + ms;
  while (take() && !enough(got) && performance.now() < deadline) await sleep(1);
  for (let turn = 0; turn < 2; turn++) {
    await nextTurn();
    take();
  }
  return got;
}

/** What the handler of 'serve' inputs does with a request, by the size of its decoded data. */
function handlerOutcome(data: unknown): 'echo' | 'echo-async' | 'throw' | 'reject' | 'nothing' {
  const size = Buffer.isBuffer(data) ? data.length : (JSON.stringify(data) ?? '').length;
  return (['echo', 'echo-async', 'throw', 'reject', 'nothing'] as const)[size % 5]!;
}

function fuzzHandler(data: unknown, request: { fds: number[] }): Outgoing<unknown> | Promise<Outgoing<unknown>> {
  for (const fd of request.fds) closeSync(fd);
  const how = handlerOutcome(data);
  if (how === 'throw') throw Object.assign(new Error('refused by the handler'), { code: 'E_FUZZ' });
  if (how === 'reject') return Promise.reject(new Error('rejected by the handler'));
  if (how === 'echo-async') return Promise.resolve(data as Outgoing<unknown>);
  // 'nothing': undefined, which neither codec can encode.
  return (how === 'echo' ? data : undefined) as Outgoing<unknown>;
}

/** A reply or failure the peer must receive: kind, id, and what the body decodes to (a failure's code, and message when it is fixed). */
interface ExpectedReply {
  kind: number;
  id: number;
  value?: unknown;
  code?: string | null;
  message?: string;
}

const envelopeCodecs = { raw: resolveCodec<unknown>(undefined), json: codecs.json };
/** How an encoder refuses a value: the codec's failure, or (raw bytes) a value that is not bytes. */
const ENCODE_ERRORS = codes('ERR_IPC_CODEC', 'ERR_IPC_INVALID_ARGUMENT');

/** What the model of docs/socket.md says an input does. */
interface EnvelopeModel {
  /** Requests this side makes (ids 1..requests). */
  requests: number;
  /** Per request id: its value, or the code it rejects with. */
  outcome: Map<number, { value: unknown } | { code: string }>;
  replies: ExpectedReply[];
  /** Whether an envelope that is none closes the connection. */
  framing: boolean;
}

function envelopeModel(input: EnvelopeInput, meter: Meter): EnvelopeModel {
  const requests = input.mode === 'request' ? input.requests : 0;
  const pending = new Set<number>(Array.from({ length: requests }, (_, i) => i + 1));
  const model: EnvelopeModel = { requests, outcome: new Map(), replies: [], framing: false };
  // A socket reads while it serves or a request of its own waits.
  let reading = input.mode === 'serve' || requests > 0;
  for (const { bytes } of input.envelopes) {
    if (!reading) break;
    const b = bytesOf(bytes);
    if (b.length < 5 || b[0]! < REQUEST || b[0]! > FAILURE) {
      for (const id of pending) model.outcome.set(id, { code: 'ERR_IPC_FRAMING' });
      pending.clear();
      model.framing = true;
      break;
    }
    const id = b.readUInt32BE(1);
    const decoded = bodyValue(input.codec, b.subarray(5));
    if (b[0] === REQUEST) {
      if (input.mode === 'request') {
        model.replies.push({ kind: FAILURE, id, code: 'ERR_IPC_REMOTE', message: 'nothing serves requests on this socket' });
        continue;
      }
      const how = decoded === undefined ? 'undecodable' : handlerOutcome(decoded.value);
      if (how === 'undecodable') model.replies.push({ kind: FAILURE, id, code: 'ERR_IPC_CODEC' });
      else if (how === 'throw') model.replies.push({ kind: FAILURE, id, code: 'E_FUZZ', message: 'refused by the handler' });
      else if (how === 'reject') model.replies.push({ kind: FAILURE, id, code: null, message: 'rejected by the handler' });
      else {
        // A reply the codec cannot encode ('nothing' is undefined) reaches the requester as a failure with the encoder's code.
        const value = how === 'nothing' ? undefined : decoded!.value;
        const encoded = meter.call(() => encodeWith(envelopeCodecs[input.codec], value, 'fuzz'), ENCODE_ERRORS);
        model.replies.push(encoded.ok ? { kind: REPLY, id, value } : { kind: FAILURE, id, code: encoded.error.code });
      }
    } else if (pending.delete(id)) {
      model.outcome.set(id, b[0] === FAILURE ? { code: 'ERR_IPC_REMOTE' } : decoded ?? { code: 'ERR_IPC_CODEC' });
      if (pending.size === 0 && input.mode === 'request') reading = false;
    }
  }
  // The peer shuts its side last: what still waits ends there.
  for (const id of pending) model.outcome.set(id, { code: 'ERR_IPC_PEER_CLOSED' });
  return model;
}

/** Whether `got` (an envelope the peer received) is the reply `want`. */
function isReply(got: Buffer, want: ExpectedReply, codec: EnvelopeInput['codec']): boolean {
  if (got.length < 5 || got[0] !== want.kind || got.readUInt32BE(1) !== want.id) return false;
  const body = got.subarray(5);
  if (want.kind === REPLY) {
    const value = bodyValue(codec, body);
    return value !== undefined && same(value.value, want.value);
  }
  const failure = referenceDecode('json', body)?.value as { code?: unknown; message?: unknown } | undefined;
  return failure !== undefined && failure.code === want.code && typeof failure.message === 'string' &&
    (want.message === undefined || failure.message === want.message);
}

/**
 * Arbitrary envelopes from the peer, against a socket that has requests
 * pending or serves a handler. A model of docs/socket.md says, envelope by
 * envelope, what each does: resolve a pending request (a reply; a failure,
 * ERR_IPC_REMOTE; a reply the codec cannot decode, ERR_IPC_CODEC), be
 * dropped (no such request), be answered (a request: the handler's reply;
 * a failure when the handler throws, the request does not decode or the
 * reply does not encode, or nothing serves), or close the connection with
 * ERR_IPC_FRAMING (not an envelope), after which nothing is read. A socket with no request left and
 * no handler reads no further. The peer then shuts its side: what still
 * waits ends with ERR_IPC_PEER_CLOSED. Every request settles as the model
 * says, the peer receives exactly the replies and failures it should (after
 * a framing error, at most those), every descriptor that came with an
 * envelope is closed by the end of the input, and nothing throws outside a
 * promise (that would end the fuzzing process).
 */
async function checkEnvelopes(input: EnvelopeInput, meter: Meter): Promise<void> {
  const fd = warmUp();
  const fdsBefore = descriptorCount();
  const model = envelopeModel(input, meter);
  const pair = native.socketPair(native.socketConstants.SOCK_STREAM as number);
  if (typeof pair === 'number') throw new Error(`socketpair failed (${pair})`);
  const mine = MessageSocket.fromFd<unknown>(pair[0], input.codec === 'json' ? { codec: 'json' } : {});
  // The peer speaks raw envelopes.
  const peer = MessageSocket.fromFd(pair[1]);
  try {
    const asked = Array.from({ length: model.requests }, (_, i) => mine.request(input.codec === 'json' ? { n: i } : Buffer.from([i])));
    const served = input.mode === 'serve' ? [mine.serve(fuzzHandler)] : [];
    // Looked at once the peer is done; handled from now on, as they may settle before.
    for (const p of [...asked, ...served]) p.catch(() => undefined);
    for (const { bytes, fd: attach } of input.envelopes) {
      if (attach) peer.sendFdsSync([fd], bytes, { timeout: 1000 });
      else peer.sendSync(bytes, { timeout: 1000 });
    }
    // What the peer receives: this side's requests, then the replies and failures. After a framing error
    // nothing more is sent: what has not come yet never will.
    const expected = model.requests + model.replies.length;
    const got: Buffer[] = [];
    const enough = (more: Buffer[]): boolean => model.framing || got.length + more.length >= expected;
    // The peer shuts its side at once: replies made after that still reach it.
    peer.end();
    const settled = await meter.callAsync(() => settledWithin([...asked, ...served], 3000, 'a request or serve()'), NO_ERROR);
    if (!settled.ok) return;
    settled.value.slice(0, model.requests).forEach((r, i) => {
      const want = model.outcome.get(i + 1)!;
      const got = r.status === 'fulfilled' ? `the value ${shown(r.value, 80)}` : `${(r.reason as IpcError)?.code ?? String(r.reason)}`;
      if ('value' in want) expect(r.status === 'fulfilled' && same(r.value, want.value), `request ${i + 1} ended with ${got}, not the value ${shown(want.value, 80)}`);
      else expect(r.status === 'rejected' && r.reason instanceof IpcError && r.reason.code === want.code, `request ${i + 1} ended with ${got}, not ${want.code}`);
    });
    if (input.mode === 'serve') {
      const r = settled.value.at(-1)!;
      const want = model.framing ? 'ERR_IPC_FRAMING' : 'resolved';
      const got = r.status === 'fulfilled' ? 'resolved' : (r.reason as IpcError)?.code ?? String(r.reason);
      expect(got === want, `serve() ${got === 'resolved' ? 'resolved' : `rejected with ${got}`}; the peer's envelopes make it ${want}`);
    }
    expect(mine.closed === model.framing, `the connection is ${mine.closed ? 'closed' : 'open'} after the peer's envelopes`);
    got.push(...await collect(peer, enough, 1000));
    got.slice(0, model.requests).forEach((m, i) => {
      const data = input.codec === 'json' ? { n: i } : Buffer.from([i]);
      expect(m.length >= 5 && m[0] === REQUEST && m.readUInt32BE(1) === i + 1 && same(bodyValue(input.codec, m.subarray(5))?.value, data),
        `the peer received ${shown(m)} where request ${i + 1} was due`);
    });
    const left = [...model.replies];
    for (const m of got.slice(model.requests)) {
      const at = left.findIndex((want) => isReply(m, want, input.codec));
      expect(at >= 0, `the peer received ${shown(m)}, which answers nothing it sent (expected ${shown(left)})`);
      left.splice(at, 1);
    }
    // After a framing error the connection is gone: replies still on their way are not sent.
    if (!model.framing) expect(left.length === 0, `the peer never received ${shown(left)}`);
  } finally {
    peer.close();
    mine.close();
  }
  expect(descriptorCount() === fdsBefore, `${descriptorCount() - fdsBefore} descriptor(s) more after the input than before it`);
}

const SOCKET_SCHEMES = { 'unix:': 'stream', 'unix-dgram:': 'dgram', 'unix-seqpacket:': 'seqpacket' } as const;
type UnixScheme = keyof typeof SOCKET_SCHEMES;
/** Bytes a socket path or an abstract name may have (sun_path less its terminating or leading NUL). */
const SUN_BYTES = SUN_PATH_BYTES - 1;

/** A socket address to parse, and what it must give: `valid` ones are built from valid parts, `invalid` ones break one rule. */
interface AddressInput {
  text: unknown;
  built?: 'valid' | 'invalid';
}

/** Text without a NUL or a lone surrogate, cut to at most `bytes` UTF-8 bytes. */
function fitted(text: string, bytes: number): string {
  let out = text.replace(/\0|\p{Cs}/gu, '_');
  while (Buffer.byteLength(out) > bytes) out = out.slice(0, -1).replace(/\p{Cs}$/u, '');
  return out;
}

const unixScheme = fc.constantFrom<UnixScheme>('unix:', 'unix-dgram:', 'unix-seqpacket:');
const port = fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.constantFrom(0, 1, 65535));
const inetHost = fc.oneof(
  fc.ipV4(),
  fc.ipV6().map((h) => `[${h}]`),
  fc.tuple(fc.ipV6(), fc.stringMatching(/^[A-Za-z0-9_.-]{1,15}$/)).map(([h, zone]) => `[${h}%${zone}]`),
  fc.constant('localhost'),
);

const socketAddressInput: fc.Arbitrary<AddressInput> = fc.oneof(
  // Valid, built from valid parts.
  fc.tuple(unixScheme, hostileText(120)).map(([scheme, name]) => ({ text: `${scheme}@${fitted(name, SUN_BYTES) || 'a'}`, built: 'valid' as const })),
  fc.tuple(unixScheme, hostileText(120)).map(([scheme, path]) => ({ text: `${scheme}/${fitted(path, SUN_BYTES - 1)}`, built: 'valid' as const })),
  fc.tuple(fc.constantFrom('tcp', 'udp'), inetHost, port).map(([p, host, n]) => ({ text: `${p}://${host}:${n}`, built: 'valid' as const })),
  // Invalid: one rule broken.
  fc.tuple(unixScheme, fc.constantFrom('/', '@'), fc.constantFrom('x', 'é', '😀'), fc.integer({ min: 1, max: 40 })).map(([scheme, lead, char, extra]) => ({
    text: `${scheme}${lead}${char.repeat(Math.ceil((SUN_BYTES + extra) / Buffer.byteLength(char)))}`, built: 'invalid' as const,
  })),
  fc.tuple(fc.constantFrom('tcp', 'udp'), inetHost, fc.oneof(fc.integer({ min: 65536, max: 10 ** 6 }), fc.constantFrom('', '-1', '+80', ' 80', '80 ', '0x50', '1e3', '٣'))).map(([p, host, n]) => ({
    text: `${p}://${host}:${n}`, built: 'invalid' as const,
  })),
  // IPv6 without brackets.
  fc.tuple(fc.constantFrom('tcp', 'udp'), fc.ipV6(), port).map(([p, host, n]) => ({ text: `${p}://${host}:${n}`, built: 'invalid' as const })),
  fc.constantFrom('unix:', 'unix:@', 'unix-dgram:', 'unix-seqpacket:@', 'unix:/a\0b', 'tcp://', 'tcp://:80', 'tcp://[::1]', 'tcp://[::1]80', 'udp://[::1:80',
    'tcp://example.com:80', 'TCP://127.0.0.1:80', 'unix-stream:/x', 'unix/x', 'tcp://127.0.0.1:', 'tcp://[fe80::1%]:1', 'tcp://[fe80::1%a b]:1')
    .map((text) => ({ text, built: 'invalid' as const })),
  // Anything.
  fc.tuple(fc.constantFrom('', 'unix:', 'unix-dgram:', 'unix-seqpacket:', 'unix:@', 'tcp://', 'udp://', 'tcp://[', 'udp://127.0.0.1:'), hostileText(40))
    .map(([head, tail]) => ({ text: head + tail })),
  anything.map((text) => ({ text })),
);

/**
 * parseSocketAddress over arbitrary input: it returns one of the documented
 * shapes, whose parts are what the text says, or throws
 * ERR_IPC_INVALID_ADDRESS.
 * Addresses built from valid parts are accepted, those that break one rule
 * refused, and the canonical text of what is accepted parses to the same.
 * Like the other address decoders' messages, its messages never repeat a
 * control character of the input raw.
 */
function checkSocketAddress(input: AddressInput, meter: Meter): void {
  const r = meter.call(() => parseSocketAddress(input.text), codes('ERR_IPC_INVALID_ADDRESS'));
  if (input.built !== undefined) expect(r.ok === (input.built === 'valid'), `${r.ok ? 'accepted' : `refused (${r.error.message})`} an address built ${input.built}`);
  if (!r.ok) {
    expect(!/[\x00-\x1f]/.test(r.error.message), 'the message shows a control character of the address raw');
    return;
  }
  const a = r.value;
  expect(typeof input.text === 'string', `accepted a ${typeof input.text}`);
  const text = input.text as string;
  expect(!hasLoneSurrogate(text), 'accepted a text with a lone surrogate');
  if (a.family === 'unix') {
    const scheme = (Object.keys(SOCKET_SCHEMES) as UnixScheme[]).find((s) => text.startsWith(s));
    expect(scheme !== undefined && SOCKET_SCHEMES[scheme] === a.type, `type ${a.type} for ${shown(text)}`);
    const rest = text.slice(scheme!.length);
    expect(a.text === text, `the canonical text of a Unix address is ${shown(a.text)}, not the text given`);
    if (a.abstract) {
      expect(rest.startsWith('@') && a.name.equals(Buffer.from(rest.slice(1))), `the abstract name ${shown(a.name)} is not the text after "@"`);
      expect(a.name.length >= 1 && a.name.length <= SUN_BYTES, `an abstract name of ${a.name.length} bytes`);
    } else {
      expect(a.path === rest && !rest.startsWith('@') && rest.length > 0 && !rest.includes('\0') && Buffer.byteLength(rest) <= SUN_BYTES,
        `the path ${shown(a.path)} of ${Buffer.byteLength(a.path)} bytes, from ${shown(text)}`);
    }
  } else {
    expect(text.startsWith(`${a.protocol}://`) && a.type === (a.protocol === 'tcp' ? 'stream' : 'dgram'), `${a.protocol}/${a.type} for ${shown(text)}`);
    const m = /:([0-9]{1,5})$/.exec(text);
    expect(m !== null && Number(m[1]) === a.port && a.port >= 0 && a.port <= 65535, `port ${a.port} for ${shown(text)}`);
    const host = text.slice(`${a.protocol}://`.length, text.length - m![0].length);
    if (a.version === 4) {
      expect(isIPv4(a.host) && a.zone === undefined && (host === a.host || host === `[${a.host}]` || (a.host === '127.0.0.1' && /^\[?localhost\]?$/.test(host))),
        `IPv4 host ${a.host} from ${shown(host)}`);
    } else {
      expect(isIPv6(a.host) && host === `[${a.host}${a.zone === undefined ? '' : `%${a.zone}`}]` && (a.zone === undefined || /^[A-Za-z0-9_.-]{1,15}$/.test(a.zone)),
        `IPv6 host ${a.host} zone ${shown(a.zone)} from ${shown(host)}`);
    }
  }
  const again = meter.call(() => parseSocketAddress(a.text), NO_ERROR);
  expect(again.ok && isDeepStrictEqual(again.value, a), `the canonical text ${shown(a.text)} parses to ${again.ok ? shown(again.value) : 'an error'}`);
}

const TARGETS: Target<unknown>[] = [
  target({
    name: 'framing: ReadAhead.message (arbitrary stream)',
    boundMs: 1000,
    arbitrary: fc.record({
      bytes: framedStream,
      max: maxSize,
      readSize: fc.integer({ min: 1, max: 64 }),
      sizes: fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 4 }),
      stalls: fc.array(fc.boolean(), { maxLength: 8 }),
    }),
    check: ({ bytes, max, readSize, sizes, stalls }, meter) => {
      const source = new ScriptedSource(bytes, sizes, stalls);
      const ahead = new ReadAhead('fuzz');
      const next = (): Buffer | null | undefined => ahead.message(source, max, readSize);
      const got = readAll(next, meter, bytes.length + stalls.length + 16);
      const want = referenceFrames(bytes, max);
      if (got.end === 'ERR_IPC_MESSAGE_TOO_LARGE' && want.end === got.end) {
        // Refused before reading on: nothing past the chunk that completed the prefix was read.
        expect(source.lastChunkAt < want.prefixEnd && want.prefixEnd <= source.handedOut,
          `a prefix announcing more than ${max} bytes was refused only after reading up to byte ${source.handedOut} (prefix ends at ${want.prefixEnd})`);
      }
      const readBefore = source.handedOut;
      checkStream(got, bytes, max, meter, next);
      expect(source.handedOut === readBefore, 'a failed stream read more bytes');
    },
  }),
  target({
    name: 'framing: frame → ReadAhead round-trip',
    boundMs: 1000,
    arbitrary: fc.record({
      messages: fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
      slack: fc.oneof(fc.constant(0), fc.nat(100)),
      readSize: fc.integer({ min: 1, max: 512 }),
      sizes: fc.array(fc.integer({ min: 1, max: 512 }), { maxLength: 4 }),
    }),
    check: ({ messages, slack, readSize, sizes }, meter) => {
      const framed = messages.map((m) => meter.call(() => frame(m, 'fuzz'), NO_ERROR));
      const stream = Buffer.concat(framed.map((f) => (f.ok ? f.value : Buffer.alloc(0))));
      const max = Math.max(0, ...messages.map((m) => m.length)) + slack;
      const ahead = new ReadAhead('fuzz');
      const source = new ScriptedSource(stream, sizes, []);
      const got = readAll(() => ahead.message(source, max, readSize), meter, stream.length + 16);
      expect(got.end === 'end', `the stream of ${messages.length} framed messages ended with ${got.end}`);
      expect(got.frames.length === messages.length && got.frames.every((f, i) => f.equals(bytesOf(messages[i]!))),
        `read back ${got.frames.length} messages, not the ${messages.length} framed`);
    },
  }),
  target({
    name: 'pipe: tryReadMessage (peer bytes on a real pipe)',
    boundMs: 2000,
    arbitrary: fc.record({ bytes: framedStream, max: maxSize, pieces: fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 4 }) }),
    check: ({ bytes, max, pieces }, meter) => {
      const { readEnd, writeEnd } = pipe();
      try {
        for (let at = 0, i = 0; at < bytes.length; i++) {
          const size = pieces.length === 0 ? bytes.length : pieces[i % pieces.length]!;
          const n = writeEnd.tryWrite(bytes.subarray(at, at + size));
          expect(n > 0, 'the peer could not write into an empty pipe');
          at += n;
        }
        writeEnd.close();
        const next = (): Buffer | null | undefined => readEnd.tryReadMessage({ maxSize: max });
        checkStream(readAll(next, meter, bytes.length + 16), bytes, max, meter, next);
      } finally {
        writeEnd.close();
        readEnd.close();
      }
    },
  }),
  target({
    name: 'socket: MessageSocket.tryReceive (peer bytes on a real stream socket pair)',
    boundMs: 2000,
    arbitrary: fc.record({ bytes: framedStream, max: maxSize, pieces: fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 4 }) }),
    check: ({ bytes, max, pieces }, meter) => {
      const [reader, writer] = socketPair({ maxMessageSize: max });
      try {
        for (let at = 0, i = 0; at < bytes.length; i++) {
          const piece = bytes.subarray(at, at + (pieces.length === 0 ? bytes.length : pieces[i % pieces.length]!));
          writer.writeSync(piece, { timeout: 0 });
          at += piece.length;
        }
        writer.close();
        const next = (): Buffer | null | undefined => messageOrEnd(() => {
          const m = reader.tryReceive();
          if (m !== undefined) expect(m.fds.length === 0, `a message came with descriptors ${shown(m.fds)} nobody sent`);
          return m;
        });
        const got = readAll(next, meter, bytes.length + 16);
        checkStream(got, bytes, max, meter, next);
        // A refused prefix or a cut message closes the connection; the clean end leaves it to its owner.
        expect(reader.closed === (got.error !== undefined), `after ${got.end} the connection is ${reader.closed ? 'closed' : 'open'}`);
      } finally {
        writer.close();
        reader.close();
      }
    },
  }),
  target({
    name: 'socket: datagram receive vs maxMessageSize (unix-dgram, udp, seqpacket)',
    boundMs: 2000,
    arbitrary: fc.record({
      kind: fc.constantFrom<DatagramKind>('unix-dgram', 'udp', 'unix-seqpacket'),
      max: maxSize,
      datagrams: fc.array(fc.oneof(fc.uint8Array({ maxLength: 160 }), fc.constant(new Uint8Array(0)), jsonBytes), { maxLength: DATAGRAM_BATCH }),
    }),
    check: ({ kind, max, datagrams }, meter) => checkDatagrams(kind, max, datagrams, meter),
  }),
  target({
    name: 'socket: request/reply envelopes from the peer',
    boundMs: 5000,
    async: true,
    arbitrary: envelopeInput,
    check: checkEnvelopes,
  }),
  target({
    name: 'socket: parseSocketAddress',
    boundMs: 1000,
    arbitrary: socketAddressInput,
    check: checkSocketAddress,
  }),
  target({
    name: 'codec json: decode arbitrary bytes',
    boundMs: 1000,
    arbitrary: jsonInput,
    check: (bytes, meter) => checkDecode(codecs.json, bytes, meter),
  }),
  target({
    name: 'codec json: encode → decode round-trip',
    boundMs: 1000,
    arbitrary: jsonValue,
    check: (value, meter) => checkRoundTrip(codecs.json, value, meter),
  }),
  target({
    name: 'codec msgpack: decode arbitrary bytes',
    boundMs: 1000,
    arbitrary: msgpackInput,
    check: (bytes, meter) => checkDecode(codecs.msgpack, bytes, meter),
  }),
  target({
    name: 'codec msgpack: encode → decode round-trip',
    boundMs: 1000,
    arbitrary: msgpackValue,
    check: (value, meter) => checkRoundTrip(codecs.msgpack, value, meter),
  }),
  target({
    name: 'address: checkPosixName',
    boundMs: 1000,
    arbitrary: fc.oneof(
      { weight: 4, arbitrary: hostileText(300).map((s) => `/${s}`) },
      { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom('a', 'é', '😀', '/', '\0', '.', '\ud800'), maxLength: 260 }).map((s) => `/${s}`) },
      { weight: 1, arbitrary: hostileText(20) },
      { weight: 1, arbitrary: anything },
      { weight: 1, arbitrary: fc.constantFrom('/', '/.', '/..', '//', '/a/', `/${'a'.repeat(255)}`, `/${'a'.repeat(256)}`, `/${'é'.repeat(127)}a`, `/${'é'.repeat(128)}`) },
    ),
    check: (name, meter) => {
      const rest = typeof name === 'string' ? name.slice(1) : '';
      const valid = typeof name === 'string' && name.startsWith('/') && rest !== '' && rest !== '.' && rest !== '..' && !rest.includes('/') &&
        !rest.includes('\0') && !hasLoneSurrogate(rest) && Buffer.byteLength(rest) <= POSIX_NAME_MAX;
      const r = meter.call(() => checkPosixName(name, 'fuzz object'), codes('ERR_IPC_INVALID_ADDRESS'));
      expect(r.ok === valid, `${r.ok ? 'accepted' : 'refused'} a name that is ${valid ? 'valid' : 'invalid'}`);
      if (r.ok) expect(r.value === name, 'returned another name');
      else expect(!/[\x00-\x1f]/.test(r.error.message), 'the message shows a control character of the name raw');
    },
  }),
  target({
    name: 'address: resolveSysvAddress',
    boundMs: 1000,
    arbitrary: fc.oneof(
      fc.oneof(fc.integer({ min: -1, max: 2 ** 32 + 1 }), fc.double(), fc.constantFrom(0, 1, 0xffffffff, 2 ** 32, -0)),
      fc.tuple(fc.nat({ max: 2 ** 40 }), fc.constantFrom('0x', '0X', ''), fc.constantFrom('', ' ', '\t', '\n', '\u00a0', '\ufeff', 'x'))
        .map(([k, radix, pad]) => `${pad}${radix}${radix === '' ? k.toString(10) : k.toString(16)}${pad}`),
      fc.integer({ min: 1, max: 0xffffffff }).map((k) => formatKey(k)),
      hostileText(16),
      fc.record({ id: fc.oneof(fc.integer(), fc.double(), anything) }),
      fc.record({ path: fc.oneof(existingPaths, hostileText(40), anything), projectId: fc.oneof(fc.integer({ min: -1, max: 300 }), anything) }),
      anything,
    ),
    check: (address, meter) => {
      const want = sysvExpectation(address);
      const r = meter.call(() => resolveSysvAddress(address), errnoOr('ERR_IPC_INVALID_ADDRESS'));
      if (want === 'invalid') {
        expect(!r.ok && r.error.code === 'ERR_IPC_INVALID_ADDRESS', `accepted an invalid address as ${r.ok ? shown(r.value) : r.error.code}`);
      } else if (want === 'ftok') {
        if (r.ok) expect(r.value.key !== undefined && Number.isInteger(r.value.key) && r.value.key >= 1 && r.value.key <= 0xffffffff, `ftok gave ${shown(r.value)}`);
        else expect(r.error.code !== 'ERR_IPC_INVALID_ADDRESS', 'refused a valid ftok pair as an invalid address');
      } else {
        expect(r.ok && isDeepStrictEqual({ key: r.value.key, id: r.value.id }, { key: undefined, id: undefined, ...want }),
          `resolved to ${r.ok ? shown(r.value) : r.error.code}; expected ${shown(want)}`);
        if (r.ok && 'key' in want) {
          const back = meter.call(() => resolveSysvAddress(formatKey(want.key)), NO_ERROR);
          expect(back.ok && back.value.key === want.key, `formatKey(${want.key}) does not resolve back`);
        }
      }
    },
  }),
  target({
    name: 'cli: parseAddress',
    boundMs: 1000,
    arbitrary: fc.oneof(
      hostileText(40),
      hostileText(40).map((s) => `/${s}`),
      fc.tuple(hostileText(30).filter((p) => p.length > 0), fc.nat()).map(([path, id]) => ({ path, id })),
      fc.nat().map((n) => `id:${n}`),
      fc.integer({ min: 1, max: 0xffffffff }).map((k) => formatKey(k)),
      fc.stringMatching(/^(ftok:|id:|0x)?[0-9a-fA-F:]{0,24}$/),
    ),
    check: (input, meter) => {
      const text = typeof input === 'string' ? input : `ftok:${input.path}:${input.id}`;
      const r = meter.call(() => parseAddress(text, 'fuzz object'), codes('ERR_IPC_INVALID_ADDRESS'));
      if (typeof input !== 'string') {
        // A round-trip: any ftok:PATH:ID with a non-empty path names that pair.
        expect(r.ok && r.value.family === 'sysv' && isDeepStrictEqual(r.value.address, { path: input.path, projectId: input.id }),
          `ftok:PATH:ID came back as ${r.ok ? shown(r.value) : r.error.code}`);
        return;
      }
      if (!r.ok) {
        expect(!/[\x00-\x1f]/.test(r.error.message), 'the message shows a control character of the address raw');
        return;
      }
      const parsed = r.value;
      if (parsed.family === 'posix') {
        expect(parsed.name === text, 'a POSIX name came back changed');
      } else if (typeof parsed.address === 'string') {
        expect(parsed.address === text && /^(0x[0-9a-f]+|[0-9]+)$/i.test(text), 'a key came back changed');
      } else if (typeof parsed.address !== 'object') {
        expect(false, 'a key came back as a number');
      } else if ('path' in parsed.address) {
        const prefix = `ftok:${parsed.address.path}:`;
        expect(text.startsWith(prefix) && /^[0-9]+$/.test(text.slice(prefix.length)) && Number(text.slice(prefix.length)) === parsed.address.projectId,
          'an ftok pair is not what the text says');
      } else {
        expect(/^id:[0-9]+$/.test(text) && Number(text.slice(3)) === parsed.address.id, 'an identifier is not what the text says');
      }
    },
  }),
  target({
    name: 'cli: intOption / modeOption',
    boundMs: 1000,
    arbitrary: fc.record({
      raw: fc.oneof(
        hostileText(12),
        fc.stringMatching(/^-?(0[xXo])?[0-9a-fA-F]{0,20}$/),
        fc.integer().map(String),
        fc.tuple(fc.boolean(), fc.maxSafeInteger()).map(([hex, n]) => (hex ? `${n < 0 ? '-' : ''}0x${Math.abs(n).toString(16)}` : String(n))),
        fc.integer({ min: 0, max: 0o777 }).chain((m) => fc.constantFrom(m.toString(8), `0${m.toString(8)}`, `0o${m.toString(8)}`)),
        fc.constant<unknown>(true),
      ),
      min: fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.constantFrom(0, 1, -Number.MAX_SAFE_INTEGER)),
      span: fc.oneof(fc.nat(2000), fc.constant(Number.MAX_SAFE_INTEGER)),
    }),
    check: ({ raw, min, span }, meter) => {
      const max = Math.min(Number.MAX_SAFE_INTEGER, min + span);
      const usage = codes('ERR_IPC_USAGE');
      const n = meter.call(() => intOption(context({ n: raw }), 'n', min, max), usage);
      const wantN = referenceInteger(String(raw), min, max);
      expect(n.ok ? n.value === wantN : wantN === undefined, `intOption(${shown(raw)}, ${min}..${max}) gave ${n.ok ? n.value : n.error.code}, not ${wantN}`);
      const mode = meter.call(() => modeOption(context({ mode: raw }), 0o600), usage);
      const m = /^(0o)?([0-7]{1,4})$/.exec(String(raw));
      const wantMode = m !== null && parseInt(m[2]!, 8) <= 0o777 ? parseInt(m[2]!, 8) : undefined;
      expect(mode.ok ? mode.value === wantMode : wantMode === undefined, `modeOption(${shown(raw)}) gave ${mode.ok ? mode.value : mode.error.code}, not ${wantMode}`);
      expect(meter.call(() => modeOption(context({}), 0o640), NO_ERROR).ok, 'an absent --mode did not give the fallback');
    },
  }),
  target({
    name: 'cli: printable (names shown by ls)',
    boundMs: 1000,
    arbitrary: fc.oneof(hostileText(64), fc.string({ unit: 'binary-ascii', maxLength: 64 })),
    check: (text, meter) => {
      const r = meter.call(() => printable(text), NO_ERROR);
      if (!r.ok) return;
      expect(!/[\x00-\x1f\x7f-\x9f\u2028\u2029]/.test(r.value), 'a control character reaches the terminal');
      expect(unprintable(r.value) === text, 'the escapes are ambiguous: they do not read back as the name');
    },
  }),
  target({
    name: 'cli: bytesForJson (peer bytes in --json)',
    boundMs: 1000,
    arbitrary: fc.oneof(fc.uint8Array({ maxLength: 256 }), hostileText(64).map(utf8), mutated(hostileText(32).map(utf8))),
    check: (bytes, meter) => {
      const r = meter.call(() => bytesForJson(bytes), NO_ERROR);
      if (!r.ok) return;
      const { data, encoding } = JSON.parse(JSON.stringify(r.value)) as { data: string; encoding?: 'base64' };
      expect(Buffer.from(data, encoding ?? 'utf8').equals(bytesOf(bytes)), `the JSON form ${encoding ?? 'utf8'} does not decode to the bytes`);
    },
  }),
  target({
    name: 'signal: signalNumber / signalName',
    boundMs: 1000,
    arbitrary: fc.oneof(
      fc.integer({ min: 1, max: SIGRTMAX }).map((n): SignalInput => ({ number: n })),
      fc.oneof(
        fc.mixedCase(fc.constantFrom(...signalNames)),
        fc.mixedCase(fc.constantFrom(...signalNames.map((s) => s.slice(3)))),
        fc.tuple(fc.mixedCase(fc.constantFrom('SIGRTMIN', 'SIGRTMAX', 'RTMIN', 'rtmax')), fc.constantFrom('+', '-', ''),
          fc.oneof(fc.nat(40).map(String), fc.constantFrom('007', '0', '99999999999999999999', '1e1', ' 1'))).map((p) => p.join('')),
        fc.oneof(fc.integer({ min: -2, max: 100 }), fc.double()),
        fc.nat(100).map((n) => `00${n}`),
        hostileText(16),
        anything,
      ).map((any): SignalInput => ({ any })),
    ),
    check: (input, meter) => {
      const invalid = codes('ERR_IPC_INVALID_ARGUMENT');
      if ('number' in input) {
        // Every signal number has a name, and that name resolves to it again.
        const name = meter.call(() => signalName(input.number), NO_ERROR);
        const back = name.ok ? meter.call(() => signalNumber(name.value), invalid) : undefined;
        expect(back !== undefined && back.ok && back.value === input.number,
          `signalName(${input.number}) is ${name.ok ? JSON.stringify(name.value) : '?'}, which signalNumber ${back?.ok ? `resolves to ${back.value}` : 'refuses'}`);
        return;
      }
      const sig = input.any;
      const r = meter.call(() => signalNumber(sig), invalid);
      if (typeof sig === 'number') expect(r.ok === (Number.isInteger(sig) && sig >= 1 && sig <= SIGRTMAX), `signalNumber(${sig}) ${r.ok ? 'accepted' : 'refused'}`);
      if (!r.ok) return;
      expect(Number.isInteger(r.value) && r.value >= 1 && r.value <= SIGRTMAX, `signalNumber gave ${r.value}`);
      const again = meter.call(() => signalNumber(sig), invalid);
      expect(again.ok && again.value === r.value, 'a second call resolved the same name differently');
      if (typeof sig === 'string' && /^[\x20-\x7e]*$/.test(sig)) {
        const other = meter.call(() => signalNumber(sig === sig.toUpperCase() ? sig.toLowerCase() : sig.toUpperCase()), invalid);
        expect(other.ok && other.value === r.value, 'the name resolves differently in another case');
      }
      const name = meter.call(() => signalName(r.value), NO_ERROR);
      const back = name.ok ? meter.call(() => signalNumber(name.value), invalid) : undefined;
      expect(back !== undefined && back.ok && back.value === r.value, `signal ${r.value} is named ${name.ok ? JSON.stringify(name.value) : '?'}, which does not resolve back`);
    },
  }),
  target({
    name: 'signal: siginfo of kill / sigqueue (value, sender)',
    boundMs: 2000,
    arbitrary: fc.array(fc.option(fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.constantFrom(2 ** 53 - 1, -(2 ** 53) + 1, 0, -1, 2 ** 31, -(2 ** 31) - 1, 2 ** 32))),
      { minLength: 1, maxLength: 8 }),
    check: (values, meter) => {
      const listener = peerSignals();
      for (const value of values) meter.call(() => sendSignal(process.pid, PEER_SIGNAL, value === null ? undefined : { value }), NO_ERROR);
      // Real-time signals queue, in the order sent.
      values.forEach((value, i) => {
        const r = meter.call(() => listener.receiveSync({ timeout: 1000 }), NO_ERROR);
        if (!r.ok) return;
        const info = r.value;
        const want = { signal: signalName(PEER_SIGNAL), number: PEER_SIGNAL, pid: process.pid, uid: process.getuid!(), origin: value === null ? 'kill' : 'sigqueue', value };
        const got = { signal: info.signal, number: info.number, pid: info.pid, uid: info.uid, origin: info.origin, value: info.value };
        expect(isDeepStrictEqual(got, want), `delivery ${i}: ${shown(got)}, sent ${shown(want)}`);
      });
      const extra = meter.call(() => listener.tryReceive(), NO_ERROR);
      expect(extra.ok && extra.value === undefined, 'more signals were received than sent');
    },
  }),
  target({
    name: 'lock: Mutex / Semaphore over arbitrary words',
    boundMs: 1000,
    arbitrary: lockInput,
    check: checkLock,
  }),
  target({
    name: 'channel: open + receive/send over arbitrary header and record words',
    boundMs: 1000,
    arbitrary: channelInput,
    check: checkChannel,
  }),
  target({
    name: 'semaphore: NamedSemaphore calls over arbitrary sem_t bytes (value, waiters, flags, padding)',
    boundMs: 2000,
    async: true,
    arbitrary: namedInput,
    check: checkNamedSemaphore,
  }),
  target({
    name: 'semaphore: SemaphoreSet tryOp/opSync/op over arbitrary operation lists and options',
    boundMs: 2000,
    async: true,
    arbitrary: setInput,
    check: checkSemaphoreSet,
  }),
  target({
    name: 'posix mq: tryReceive (+codec) of peer messages',
    boundMs: 2000,
    arbitrary: fc.record({
      codec: fc.constantFrom(...CODEC_NAMES),
      messages: fc.array(fc.record({
        bytes: queuePayload(MQ_MESSAGE_SIZE),
        priority: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: MQ_PRIO_MAX - 1 }), fc.constant(MQ_PRIO_MAX - 1)),
      }), { maxLength: MQ_DEPTH }),
    }),
    check: ({ codec, messages }, meter) => {
      const queues = posixQueues();
      try {
        for (const m of messages) expect(queues.raw.trySend(m.bytes, { priority: m.priority }), 'a queue with room refused a message');
        // Highest priority first; oldest first within a priority.
        const order = messages.map((m, i) => ({ ...m, i })).sort((a, b) => b.priority - a.priority || a.i - b.i);
        const reader = queues[codec] as PosixMessageQueue<unknown>;
        order.forEach((m, i) => {
          const got = meter.call(() => reader.tryReceive(), codec === 'raw' ? NO_ERROR : CODEC_ERROR);
          if (got.ok && got.value !== undefined) expect(got.value.priority === m.priority, `message ${i} came with priority ${got.value.priority}, not ${m.priority}`);
          checkPayload(codec, got, m.bytes, `message ${i}`);
        });
        const extra = meter.call(() => reader.tryReceive(), NO_ERROR);
        expect(extra.ok && extra.value === undefined, 'more messages were received than sent');
      } finally {
        while (queues.raw.tryReceive() !== undefined) { /* Emptied for the next input. */ }
      }
    },
  }),
  target({
    name: 'sysv mq: tryReceive (+codec, type selectors) of peer messages',
    boundMs: 2000,
    arbitrary: (() => {
      const type = fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constantFrom(SYSV_TYPE_MAX, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 - 2), fc.integer({ min: 1, max: SYSV_TYPE_MAX }));
      return fc.record({
        codec: fc.constantFrom(...CODEC_NAMES),
        messages: fc.array(fc.record({ type, bytes: queuePayload(SYSV_MESSAGE_SIZE) }), { maxLength: MQ_DEPTH }),
        selectors: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: -5, max: 5 }), type, type.map((t) => -t)), { maxLength: 10 }),
      });
    })(),
    check: ({ codec, messages, selectors }, meter) => {
      const queues = sysvQueues();
      const queued = [...messages];
      try {
        for (const m of messages) expect(queues.raw.trySend(m.type, m.bytes), 'a queue with room refused a message');
        const reader = queues[codec] as SysvMessageQueue<unknown>;
        selectors.forEach((selector, i) => {
          // msgrcv(2): 0 takes the first; n the first of type n; -n the first of the lowest type up to n.
          const lowest = Math.min(...queued.filter((m) => m.type <= -selector).map((m) => m.type));
          const at = selector === 0 ? (queued.length > 0 ? 0 : -1)
            : queued.findIndex((m) => m.type === (selector > 0 ? selector : lowest));
          const got = meter.call(() => reader.tryReceive({ type: selector }), codec === 'raw' ? NO_ERROR : CODEC_ERROR);
          if (at < 0) {
            expect(got.ok && got.value === undefined, `receive ${i} (type ${selector}) took a message that does not match`);
            return;
          }
          const [m] = queued.splice(at, 1);
          if (got.ok && got.value !== undefined) expect(got.value.type === m!.type, `receive ${i} (type ${selector}) gave type ${got.value.type}, not ${m!.type}`);
          checkPayload(codec, got, m!.bytes, `receive ${i} (type ${selector})`);
        });
      } finally {
        let left = 0;
        while (queues.raw.tryReceive() !== undefined) left++;
        expect(left === queued.length, `${left} messages were left in the queue, not ${queued.length}`);
      }
    },
  }),
  target({
    name: 'inventory: listIpcObjects of peer-named objects',
    boundMs: 10_000,
    // One listing decodes every name in /dev/shm and /dev/mqueue: an input is a batch of names, each counted.
    weight: (batch) => batch.length,
    arbitrary: fc.array(fc.record({
      kind: fc.constantFrom<'posix-shm' | 'posix-mq'>('posix-shm', 'posix-mq'),
      suffix: fc.oneof(
        hostileText(24),
        fc.tuple(hostileText(8), fc.constantFrom(' (deleted)', '\n', ' ', '\t', ' (deleted)\n', ' (deleted) ', '\\012', '\x1b[2J', '\u2028')).map(([a, b]) => a + b),
      ),
    }), { minLength: 1, maxLength: INVENTORY_BATCH }),
    check: (batch, meter) => {
      const prefix = names().inventory;
      // The index keeps the names of a batch apart; what follows it is the peer's.
      const objects = batch.map(({ kind, suffix }, i) => ({ kind: kind === 'posix-shm' ? PENDING_SHM : PENDING_MQ, name: objectName(`${prefix}${i}-`, suffix) }));
      recordPending(objects);
      const opened: (PosixSharedMemory | PosixMessageQueue)[] = [];
      try {
        for (const { kind, name } of objects) {
          opened.push(kind === PENDING_SHM ? PosixSharedMemory.create(name, { size: 16 }) : PosixMessageQueue.create(name, { maxMessages: 1, maxMessageSize: 16 }));
        }
        const inventory = meter.call(() => listIpcObjects(), NO_ERROR);
        if (!inventory.ok) return;
        const ours = inventory.value.objects.filter((o) => (o.kind === 'posix-shm' || o.kind === 'posix-mq') && o.address.startsWith(prefix));
        for (const { kind, name } of objects) {
          const kindName = kind === PENDING_SHM ? 'posix-shm' : 'posix-mq';
          const listed = ours.filter((o) => o.address === name);
          expect(listed.length === 1 && listed[0]!.kind === kindName,
            `an open ${kindName} named ${shown(name.slice(prefix.length))} is listed ${listed.length} time(s) among ${shown(ours.map((o) => ({ kind: o.kind, address: o.address.slice(prefix.length), deleted: o.deleted })))}`);
          expect(listed[0]!.deleted !== true && listed[0]!.processes.some((p) => p.pid === process.pid && p.role === 'holder'),
            `an open ${kindName} is listed ${listed[0]!.deleted ? 'as deleted' : 'without this process as its holder'}`);
        }
        expect(ours.length === objects.length, `${ours.length} objects listed under the batch's prefix, not ${objects.length}: ${shown(ours.map((o) => o.address.slice(prefix.length)))}`);
      } finally {
        for (const object of opened) object.close();
        for (const { kind, name } of objects) removeQuietly(() => (kind === PENDING_SHM ? PosixSharedMemory.unlink(name) : PosixMessageQueue.unlink(name)));
        recordPending([]);
      }
    },
  }),
];

// ---------------------------------------------------------------------------
// The child: the decoders in turns, one report per slice

/** What the child tells the parent. */
type ChildMessage =
  | { kind: 'slice'; target: number; inputs: number; failures: number; slowestMs: number; example?: string }
  | { kind: 'done' }
  | { kind: 'error'; message: string };

function describeFailure(details: { errorInstance: unknown; counterexample: unknown; seed: number; counterexamplePath: string | null }): string {
  const err = details.errorInstance;
  const what = err instanceof Violation ? err.message : describeThrow(err);
  // The counterexample is the tuple of the property's arguments: here, one input.
  const input = Array.isArray(details.counterexample) ? (details.counterexample as unknown[])[0] : details.counterexample;
  return `${what}; shrunk input ${shown(input, 400)} (seed ${details.seed}, path ${details.counterexamplePath})`;
}

/**
 * Fuzzes decoder `index` for up to `ms` and `goal` inputs. The first failing
 * input is shrunk and described (unless `known`: one example per decoder is
 * enough); failing inputs are counted either way.
 */
/**
 * The decoders to fuzz: all, or (run alone) those whose name contains the
 * text after `--decoders`, so that a long run can go on with the slow ones.
 */
function chosenTargets(): number[] {
  const all = TARGETS.map((_, i) => i);
  const at = process.argv.indexOf('--decoders');
  if (import.meta.url !== `file://${process.argv[1]}` || at < 0) return all;
  const text = process.argv[at + 1] ?? '';
  const chosen = all.filter((i) => TARGETS[i]!.name.includes(text));
  if (chosen.length === 0) throw new Error(`--decoders: no decoder name contains "${text}"`);
  return chosen;
}

async function runSlice(index: number, known: boolean, goal: number, ms: number): Promise<Omit<Extract<ChildMessage, { kind: 'slice' }>, 'kind' | 'target'>> {
  const t = TARGETS[index]!;
  const words = hb();
  const seed = randomInt(2 ** 31 - 1);
  Atomics.store(words, HB.seed, seed);
  Atomics.store(words, HB.run, 0);
  Atomics.store(words, HB.shrinking, 0);
  Atomics.store(words, HB.target, index);
  const meter = new Meter(t.boundMs);
  let inputs = 0;
  let failures = 0;
  /** Counts an input; whether it is one being shrunk. */
  const begin = (input: unknown): boolean => {
    Atomics.add(words, HB.calls, 1);
    const shrinking = Atomics.load(words, HB.shrinking) === 1;
    if (!shrinking) {
      inputs += t.weight?.(input) ?? 1;
      Atomics.add(words, HB.run, 1);
    }
    return shrinking;
  };
  /** Counts a failing input; whether fast-check is to see it fail (and shrink it). */
  /** What the first failing input broke, for when fast-check reports none (it was interrupted in the middle of an input, or of shrinking). */
  let firstFailure: string | undefined;
  const failed = (shrinking: boolean, err: unknown, input: unknown): boolean => {
    if (shrinking) return true;
    failures++;
    firstFailure ??= `${err instanceof Violation ? err.message : describeThrow(err)}; input ${shown(input, 400)} (not shrunk)`;
    if (known) return false;
    Atomics.store(words, HB.shrinking, 1);
    return true;
  };
  // An input the time limit interrupted goes on: the next one starts only once it is done, so that inputs never overlap.
  let running: Promise<void> = Promise.resolve();
  const property = t.async === true
    ? fc.asyncProperty(t.arbitrary, (input) => {
      running = (async () => {
        const shrinking = begin(input);
        try {
          await t.check(input, meter);
        } catch (err) {
          if (failed(shrinking, err, input)) throw err;
        }
      })();
      return running;
    })
    : fc.property(t.arbitrary, (input) => {
      const shrinking = begin(input);
      try {
        void t.check(input, meter);
      } catch (err) {
        if (failed(shrinking, err, input)) throw err;
      }
    });
  const details = await fc.check(property, { seed, numRuns: goal, plugins: [fc.interruptAfterTimeLimit(ms)] });
  await running.catch(() => undefined);
  Atomics.store(words, HB.target, -1);
  const example = details.failed ? describeFailure(details) : firstFailure;
  return { inputs, failures, slowestMs: meter.slowestMs, ...(example === undefined ? {} : { example }) };
}

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => process.send!(message, undefined, {}, () => resolve()));
}

async function childMain(config: ChildConfig): Promise<void> {
  const beat = PosixSharedMemory.open(config.names.heartbeat);
  heartbeat = new Int32Array(beat.buffer, 0, HB_WORDS);
  childNames = config.names;
  try {
    const left = [...config.goals];
    const known = config.targets.map(() => false);
    for (;;) {
      const active = config.targets.map((_, i) => i).filter((i) => left[i]! > 0);
      const now = Date.now();
      // A parent that went away no longer reads the reports.
      if (active.length === 0 || now >= config.deadline || !process.connected) break;
      // Slices shrink as the deadline nears, so that every decoder keeps getting turns.
      const slice = Math.min(MAX_SLICE_MS, Math.max(20, (config.deadline - now) / (active.length * 3)));
      for (const i of active) {
        const ms = Math.min(slice, config.deadline - Date.now());
        if (ms <= 0 || !process.connected) break;
        const report = await runSlice(config.targets[i]!, known[i]!, left[i]!, ms);
        left[i] = Math.max(0, left[i]! - report.inputs);
        known[i] ||= report.example !== undefined;
        await send({ kind: 'slice', target: config.targets[i]!, ...report });
        await nextTurn();
      }
    }
  } finally {
    for (const remove of cleanups.reverse()) remove();
    beat.close();
  }
}

// ---------------------------------------------------------------------------
// The parent: starts the child, watches its heartbeat, removes what it left

interface Snapshot {
  target: number;
  seed: number;
  run: number;
  shrinking: boolean;
}

function snapshot(words: Int32Array): Snapshot {
  return {
    target: Atomics.load(words, HB.target), seed: Atomics.load(words, HB.seed),
    run: Atomics.load(words, HB.run), shrinking: Atomics.load(words, HB.shrinking) === 1,
  };
}

/** The input the child was on, generated again from the slice's seed (fast-check draws the same values in the same order). */
function replay(s: Snapshot): string {
  const t = TARGETS[s.target]!;
  if (s.shrinking) return `, while shrinking a failing input (seed ${s.seed})`;
  if (s.run < 1 || s.run > 200_000) return ` (seed ${s.seed}, run ${s.run})`;
  const inputs = fc.sample(t.arbitrary, { seed: s.seed, numRuns: s.run });
  return ` on input ${shown(inputs[s.run - 1], 400)} (seed ${s.seed}, run ${s.run})`;
}

interface ChildEnd {
  done: boolean;
  /** Where a hung child was when it was killed. */
  stuck?: Snapshot;
  error?: string;
  exit: string;
}

async function superviseChild(config: ChildConfig, words: Int32Array, onSlice: (m: Extract<ChildMessage, { kind: 'slice' }>) => void): Promise<ChildEnd> {
  const child = fork(SELF, [], { env: { ...process.env, [CHILD_ENV]: JSON.stringify(config) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const end: ChildEnd = { done: false, exit: '' };
  child.on('message', (m: ChildMessage) => {
    if (m.kind === 'slice') onSlice(m);
    else if (m.kind === 'done') end.done = true;
    else end.error = m.message;
  });
  let calls = Atomics.load(words, HB.calls);
  let moved = Date.now();
  const watch = setInterval(() => {
    const now = Date.now();
    const c = Atomics.load(words, HB.calls);
    if (c !== calls) {
      calls = c;
      moved = now;
    } else if (end.stuck === undefined && (now - moved > HANG_MS || now > config.deadline + HANG_MS)) {
      end.stuck = snapshot(words);
      child.kill('SIGKILL');
    }
  }, 250);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  clearInterval(watch);
  end.exit = signal ?? `exit code ${code}`;
  return end;
}

/** Removes whatever kernel objects a child left (all of them, if it was killed). */
function sweep(words: Int32Array, n: ObjectNames): void {
  removeQuietly(() => PosixSharedMemory.unlink(n.lockSegment));
  for (let i = 0; i < CHANNEL_SEGMENT_SIZES.length; i++) removeQuietly(() => PosixSharedMemory.unlink(`${n.channel}${i}`));
  removeQuietly(() => PosixMessageQueue.unlink(n.queue));
  removeQuietly(() => NamedSemaphore.unlink(n.semaphore));
  const key = Atomics.load(words, HB.sysvKey) >>> 0;
  if (key !== 0) removeQuietly(() => SysvMessageQueue.remove(key));
  Atomics.store(words, HB.sysvKey, 0);
  const semKey = Atomics.load(words, HB.semKey) >>> 0;
  if (semKey !== 0) removeQuietly(() => SemaphoreSet.remove(semKey));
  Atomics.store(words, HB.semKey, 0);
  for (const { kind, name } of pendingObjects(words)) {
    removeQuietly(() => (kind === PENDING_SHM ? PosixSharedMemory.unlink(name) : PosixMessageQueue.unlink(name)));
  }
  Atomics.store(words, HB.pendingCount, 0);
}

interface Tally {
  inputs: number;
  failures: number;
  slowestMs: number;
  example?: string;
}

export const section: Section = {
  name: 'fuzz',
  async run(ctx): Promise<SectionResult> {
    const deadline = Date.now() + ctx.budgetMs;
    const tag = `/ipckit-fuzz-${process.pid}-${randomBytes(4).toString('hex')}`;
    const objectNames: ObjectNames = {
      heartbeat: tag, lockSegment: `${tag}-lock`, channel: `${tag}-ch`, queue: `${tag}-mq`, semaphore: `${tag}-sem`, inventory: `${tag}-ls-`,
    };
    const tallies: Tally[] = TARGETS.map(() => ({ inputs: 0, failures: 0, slowestMs: 0 }));
    const failures: string[] = [];
    const beat = PosixSharedMemory.create(tag, { size: HB_BYTES });
    const words = new Int32Array(beat.buffer, 0, HB_WORDS);
    const removal = removeOnInterrupt(() => {
      sweep(words, objectNames);
      PosixSharedMemory.unlink(tag);
    });
    try {
      let pending = chosenTargets();
      for (let first = true; pending.length > 0 && (first || deadline - Date.now() > MIN_CHILD_MS); first = false) {
        words.fill(0);
        Atomics.store(words, HB.target, -1);
        ctx.log(`${pending.length} decoder(s), ${((deadline - Date.now()) / 1000).toFixed(0)} s left`);
        const end = await superviseChild(
          { names: objectNames, deadline, targets: pending, goals: pending.map((i) => GOAL - tallies[i]!.inputs) }, words,
          (m) => {
            const tally = tallies[m.target]!;
            tally.inputs += m.inputs;
            tally.failures += m.failures;
            tally.slowestMs = Math.max(tally.slowestMs, m.slowestMs);
            if (m.example !== undefined && tally.example === undefined) {
              tally.example = m.example;
              ctx.log(`${TARGETS[m.target]!.name}: ${m.example}`);
            }
          });
        const at = end.stuck ?? snapshot(words);
        sweep(words, objectNames);
        if (end.done && end.stuck === undefined && end.error === undefined && end.exit === 'exit code 0') break;
        const what = end.stuck !== undefined ? `a call did not return within ${HANG_MS / 1000} s`
          : `the fuzzing process ${end.error !== undefined ? `failed: ${end.error}` : `died (${end.exit})`}`;
        if (TARGETS[at.target] === undefined) {
          failures.push(`${what}, outside any decoder`);
          break;
        }
        const tally = tallies[at.target]!;
        // The inputs of the slice that never reported, the last one included.
        tally.inputs += at.run;
        tally.failures++;
        tally.example ??= `${what}${replay(at)}`;
        ctx.log(`${TARGETS[at.target]!.name}: ${tally.example}`);
        pending = pending.filter((i) => i !== at.target && tallies[i]!.inputs < GOAL);
      }
    } finally {
      removal();
      sweep(words, objectNames);
      beat.close();
      PosixSharedMemory.unlink(tag);
    }
    const decoderFailures = TARGETS.flatMap((t, i) => {
      const tally = tallies[i]!;
      return tally.failures > 0 ? [`${t.name}: ${tally.failures} failing input(s) of ${tally.inputs}; ${tally.example ?? ''}`] : [];
    });
    return {
      title: 'Fuzzing: decoders of what another process controls',
      about: `Each decoder was fed fast-check inputs (random, mutated valid encodings, crafted edge cases) in a child process watched for ` +
        `hangs (${HANG_MS / 1000} s) and crashes, in turns within the budget, up to ${GOAL} inputs each. A failure is a throw other than an ` +
        'IpcError with a documented code, a call over its bound, or a property that does not hold: round-trips are the identity ' +
        '(framing, codecs, key and ftok addresses, signal names, printable names, --json bytes); stream and queue decoders agree with ' +
        'a reference decoder (framed pipes, streams and stream sockets, POSIX priority order, System V type selection) and refuse an oversized length ' +
        'prefix before reading on, closing the connection; a datagram or packet within maxMessageSize arrives whole, from its sender, ' +
        'and one over it is refused and consumed; request/reply envelopes resolve, reject or are dropped as a model of docs/socket.md ' +
        'says, or close the connection with ERR_IPC_FRAMING, and leave no descriptor open; a socket address parses to the documented ' +
        'shape its text describes, or is refused with ERR_IPC_INVALID_ADDRESS; lock operations over arbitrary words keep the lock ' +
        'protocol; named semaphore calls over arbitrary sem_t bytes (written before, between and during them; the file truncated) do to ' +
        'the value word what glibc\'s protocol says, give the waiter count back and never write the flags or padding; semaphore-set ' +
        'calls are refused exactly when an operation or option breaks a documented rule, otherwise do what semop(2) does (a model), ' +
        'the values unchanged when nothing was applied and nobody left waiting on the set; the inventory lists each peer-named object once, by its exact name. Slowest call: the longest single decoder call.',
      columns: ['decoder', 'inputs', 'failures', 'slowest call (ms)'],
      rows: TARGETS.map((t, i) => [t.name, tallies[i]!.inputs, tallies[i]!.failures, Number(tallies[i]!.slowestMs.toFixed(2))]),
      failures: [...decoderFailures, ...failures],
    };
  },
};

const childConfig = process.env[CHILD_ENV];
if (childConfig !== undefined) {
  try {
    await childMain(JSON.parse(childConfig) as ChildConfig);
    await send({ kind: 'done' });
  } catch (err) {
    await send({ kind: 'error', message: describeThrow(err) });
    process.exitCode = 1;
  }
  process.disconnect();
} else if (import.meta.url === `file://${process.argv[1]}`) await runStandalone(section);
