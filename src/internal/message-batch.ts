/**
 * A packed batch of messages: many messages in one buffer of yours, back
 * to back, with their lengths beside them. The batched calls that take one
 * (`sendBatch`, `receiveBatch`) move a whole batch with one native call
 * and no JavaScript object per message: no array element to read, no
 * `Buffer` view or `{ data }` object to make, no codec. A batch is reused
 * from call to call, so nothing is allocated per message either.
 * @module
 */
import { IpcError } from '../errors.js';
import { native } from '../native.js';
import { type Held } from './batch.js';
import { type ReadAhead } from './framing.js';
import { checkOptions, invalidArgument, optionalInteger, realByteLength, toBytes } from './validate.js';

/** Options of a {@link MessageBatch}: how much it holds. */
export interface MessageBatchOptions {
  /** Room for message bytes, 1 byte to 1 GiB. */
  bytes: number;
  /** Room for this many messages, 1 to 1,048,576. Default 1024. */
  messages?: number;
}

/** The largest `bytes` of a batch. */
const MAX_BYTES = 2 ** 30;
/** The largest `messages` of a batch. */
const MAX_MESSAGES = 2 ** 20;
const OPTION_KEYS = ['bytes', 'messages'] as const;

/**
 * Many messages in one buffer: `data` holds their bytes back to back,
 * `lengths[i]` is the length of message `i`, and {@link count} says how
 * many there are. Fill one with {@link push} (or let a `receiveBatch` fill
 * it), read it with {@link at} or by iterating, and {@link clear} it to
 * start again. The views {@link at} returns share `data`: they change when
 * the batch is refilled, so copy what must outlive it. `data` and
 * `lengths` are there to read (and to hand to other code) without a copy;
 * change the messages through `push` and `clear`.
 *
 * ```ts
 * import { MessageBatch, pipe } from 'ipckit';
 *
 * const { readEnd, writeEnd } = pipe();
 * const batch = new MessageBatch({ bytes: 1 << 20, messages: 4096 });
 * for (const word of ['one', 'two', 'three']) if (!batch.push(word)) break;
 * await writeEnd.sendBatch(batch);
 * const n = await readEnd.receiveBatch(batch); // clears it, then fills it
 * console.log(n, [...batch].map(String));     // 3 [ 'one', 'two', 'three' ]
 * readEnd.close();
 * writeEnd.close();
 * ```
 */
export class MessageBatch implements Iterable<Buffer> {
  /** The messages' bytes, back to back (its length is the batch's room for bytes). */
  readonly data: Buffer;
  /** Each message's length, in order (its length is the batch's room for messages). */
  readonly lengths: Uint32Array;
  /** Where each message starts: offsets[0..#known] are known (push only appends, so they stay so). */
  readonly #offsets: Float64Array;
  #known = 0;
  #count = 0;
  #size = 0;
  /** Whether a pending async call has the batch (it fills or reads it when the call's turn comes). */
  #busy = false;

  constructor(options: MessageBatchOptions) {
    checkOptions(options, OPTION_KEYS, 'MessageBatch');
    const o = options as Partial<MessageBatchOptions> | undefined;
    if (o?.bytes === undefined) throw invalidArgument('bytes', undefined, `the room for message bytes, 1 to ${MAX_BYTES}`);
    const bytes = optionalInteger(o.bytes, 'bytes', 1, MAX_BYTES, 0);
    const messages = optionalInteger(o.messages, 'messages', 1, MAX_MESSAGES, 1024);
    this.data = Buffer.alloc(bytes);
    this.lengths = new Uint32Array(messages);
    this.#offsets = new Float64Array(messages + 1);
    // `data` and `lengths` stay these: the native calls rely on their types and sizes.
    Object.freeze(this);
  }

  /** @internal Whether `value` is a batch this class made (not merely one with its prototype). */
  static isBatch(value: unknown): value is MessageBatch {
    return typeof value === 'object' && value !== null && #count in value;
  }

  /** How many messages the batch holds. */
  get count(): number {
    return this.#count;
  }

  /** How many bytes its messages take in {@link data}. */
  get size(): number {
    return this.#size;
  }

  /**
   * Appends a copy of `message` (bytes, or a string as UTF-8): `true`, or
   * `false` when the batch has no room left for it (in bytes or messages).
   * A message larger than the whole batch is an error, not a `false`: it
   * would never fit.
   */
  push(message: Uint8Array | string): boolean {
    const bytes = toBytes(message, 'message');
    // Its length from its memory (see isBytes): the length recorded is the bytes copied.
    const size = realByteLength(bytes);
    if (size > this.data.length) {
      throw new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `A ${size}-byte message cannot go in a batch of ${this.data.length} ` +
        'bytes. Make the batch larger (its `bytes` option), or send the message on its own.');
    }
    if (this.#count === this.lengths.length || size > this.data.length - this.#size) return false;
    this.data.set(bytes, this.#size);
    this.lengths[this.#count++] = size;
    this.#size += size;
    return true;
  }

  /** Message `index` (0 to {@link count} - 1), as a view of {@link data}. */
  at(index: number): Buffer {
    if (!Number.isInteger(index) || index < 0 || index >= this.#count) {
      throw invalidArgument('index', index, `a message index from 0 to ${this.#count - 1}`);
    }
    const offsets = this.#offsets;
    for (let k = this.#known; k < index; k++) offsets[k + 1] = offsets[k]! + this.lengths[k]!;
    if (index > this.#known) this.#known = index;
    const start = offsets[index]!;
    return this.data.subarray(start, start + this.lengths[index]!);
  }

  /** Empties the batch (its memory stays, for the next fill). */
  clear(): void {
    this.place(0, 0);
  }

  /** The messages in order, each a view of {@link data} (as {@link at} gives it). */
  *[Symbol.iterator](): Iterator<Buffer> {
    for (let i = 0; i < this.#count; i++) yield this.at(i);
  }

  /** @internal Whether a pending async call has the batch. */
  get busy(): boolean {
    return this.#busy;
  }

  /** @internal Marks the batch as had (true) or given back (false) by a pending async call. */
  setBusy(busy: boolean): void {
    this.#busy = busy;
  }

  /**
   * @internal Says the batch holds `count` messages in `size` bytes, as a
   * receive filled `data` and `lengths`.
   */
  place(count: number, size: number): void {
    this.#known = 0;
    this.#count = count;
    this.#size = size;
  }
}

/** `batch`, refused with ERR_IPC_INVALID_ARGUMENT unless it is a {@link MessageBatch}. */
export function checkMessageBatch(batch: unknown): MessageBatch {
  if (!MessageBatch.isBatch(batch)) throw invalidArgument('batch', batch, 'a MessageBatch');
  return batch;
}

/**
 * `batch`, refused with ERR_IPC_INVALID_ARGUMENT unless it is a
 * {@link MessageBatch} no pending async call has: a receive fills it when
 * its turn comes, so two calls on one batch would overwrite each other's
 * messages before their callers saw them.
 */
export function idleBatch(batch: unknown): MessageBatch {
  const b = checkMessageBatch(batch);
  if (b.busy) {
    throw new IpcError('ERR_IPC_INVALID_ARGUMENT', 'This MessageBatch is in a pending call already: a batch is in one call at a time. ' +
      'Await that call first, or use another batch.');
  }
  return b;
}

/**
 * Runs the async `call` with `batch` had until it settles (see
 * {@link idleBatch}). `call` gets `release`, which gives the batch back:
 * it hands it to {@link run} as its `after` (no `.finally()` chain on
 * every call), and must see that it runs once the call has settled, on
 * every path. Only its first run counts: a late second one cannot free
 * the batch from a newer call.
 */
export function withBatch<R>(batch: unknown, call: (batch: MessageBatch, release: () => void) => Promise<R>): Promise<R> {
  let b: MessageBatch;
  try {
    b = idleBatch(batch);
  } catch (err) {
    return Promise.reject(err);
  }
  b.setBusy(true);
  let held = true;
  return call(b, () => {
    if (!held) return;
    held = false;
    b.setBusy(false);
  });
}

/**
 * The error of a receive whose batch lost its memory (its buffer or its
 * lengths transferred or detached) before or while the call waited.
 */
export function batchGone(address: string): IpcError {
  return new IpcError('ERR_IPC_INVALID_ARGUMENT', `The MessageBatch of a receive on ${address} lost its memory (its buffer or ` +
    'its lengths were transferred or detached); any message taken was kept for the next receive. Leave a batch alone while a call has it.',
  { address });
}

/**
 * Refuses, with {@link batchGone}, a batch whose memory went, before a
 * receive writes into it: one with no slot or fewer than `size` bytes of
 * room (what the receive needs for one message) would otherwise look like
 * a batch with no room, and its receive would wait for ever.
 */
export function checkBatchIntact(batch: MessageBatch, size: number, address: string): void {
  if (batch.data.length < size || batch.lengths.length === 0) throw batchGone(address);
}

/** A message longer than the whole of `batch`: it stays where it is, and this error says so. */
export function batchTooSmall(address: string, length: number, batch: MessageBatch): IpcError {
  return new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `The next message on ${address} is ${length} bytes, more than the ` +
    `${batch.data.length} bytes a batch holds; it stays. Take it with receive(), or use a batch of at least ${length} bytes.`, { address });
}

/** Appends `bytes` to `batch` if they fit (however large): whether they went. */
export function pushIfRoom(batch: MessageBatch, bytes: Uint8Array): boolean {
  return bytes.length <= batch.data.length - batch.size && batch.push(bytes);
}

/**
 * Messages a receiver holds into `batch`, oldest first, as far as they fit
 * (`bytesOf` gives a message's bytes; `placed` runs for each one that went,
 * to close its descriptors, note its sender), up to a held failure:
 * whether all went. A held failure, or a message larger than the whole
 * batch (it stays held), is thrown when it comes first.
 */
export function batchFromHeld<M>(held: Held<M | IpcError>, batch: MessageBatch, address: string, bytesOf: (message: M) => Uint8Array,
  placed: (message: M) => void): boolean {
  while (held.size > 0) {
    const m = held.take()!;
    if (!(m instanceof IpcError) && pushIfRoom(batch, bytesOf(m))) {
      placed(m);
      continue;
    }
    held.putBack([m]);
    if (batch.count > 0) return false;
    throw m instanceof IpcError ? held.take() : batchTooSmall(address, bytesOf(m).length, batch);
  }
  return true;
}

/**
 * One read of a stream into a batch's buffer, for {@link unframeIntoBatch}:
 * at most `want` bytes into `data` at `at`, waiting up to `spin` µs for the
 * first. The bytes read (> 0), or 0 when no more come now (nothing there
 * yet, or the end: the reader notes which); throws on a failure.
 */
export type BatchRead = (data: Buffer, at: number, want: number, spin: number) => number;

/** What {@link unframeIntoBatch} did, besides filling the batch. */
export interface Unframed {
  /** Bytes of the stream taken: the frames of the messages placed, length prefixes included. */
  consumed: number;
  /** A failure of a read after messages were placed: they are the call's result, the failure is for the next call. */
  failure: unknown;
  /** Whether a frame the batch cannot place this way is next: one over `max`, or larger than the room left. */
  slow: boolean;
}

/** What native unframe reports: [end of the messages placed, end of the frames taken, the next frame's length or -1]. */
const unframed = new Float64Array(3);
/**
 * The most one read of a packed receive asks for: a batch with more room
 * for bytes than for messages would otherwise read far past its last
 * message, and copy the rest out and back in on every call.
 */
const BATCH_READ = 64 * 1024;

/**
 * The fast path of a stream's packed receive: whole frames into `batch`,
 * after the messages it holds. What `ahead` holds comes first; then reads
 * land in the batch's own buffer and are unframed there in place (native
 * unframe: each message's bytes moved down over the length prefixes), as
 * long as the reads fill what they asked for, slots remain, and the next
 * frame fits. What follows the last message placed goes back to `ahead`.
 * Only the first read waits (`spin` µs), and only with no message placed
 * and none whole in `ahead`. A failure with no message placed is thrown;
 * after messages, it is returned in {@link Unframed.failure}. `ahead` must
 * be neither direct nor broken, and hold no more than the batch's room.
 */
export function unframeIntoBatch(batch: MessageBatch, ahead: ReadAhead, max: number, spin: number, read: BatchRead): Unframed {
  const data = batch.data;
  const out = unframed;
  let count = batch.count;
  let placed = batch.size;
  let consumed = 0;
  let failure: unknown;
  const wait = count > 0 || ahead.complete(max) ? 0 : spin;
  let end = placed + ahead.drainInto(data, placed);
  let reading = true;
  for (;;) {
    // data[0..placed) holds the messages placed, data[placed..end) what follows them, not yet whole.
    const from = placed;
    count += native.unframe(data, placed, end, batch.lengths, count, max, out);
    const rest = out[1]!;
    consumed += rest - from;
    placed = out[0]!;
    if (rest > placed) data.copyWithin(placed, rest, end);
    end = placed + (end - rest);
    // Read only while the batch has room for more messages and the next one's frame: a read that
    // filled what it asked for may have left more behind.
    const next = out[2]!;
    if (!reading || end >= data.length || count === batch.lengths.length || next > max || Math.max(next, 0) + 4 > data.length - placed) break;
    const want = Math.min(data.length - end, BATCH_READ);
    let n: number;
    try {
      n = read(data, end, want, count > 0 ? 0 : wait);
    } catch (err) {
      if (count === 0) {
        ahead.push(Buffer.from(data.subarray(placed, end)));
        throw err;
      }
      failure = err;
      break;
    }
    if (n <= 0) break;
    end += n;
    reading = n === want;
  }
  batch.place(count, placed);
  if (end > placed) ahead.push(Buffer.from(data.subarray(placed, end)));
  ahead.framed(max);
  const next = out[2]!;
  return { consumed, failure, slow: next > max || Math.max(next, 0) + 4 > data.length - placed };
}
