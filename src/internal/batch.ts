/**
 * What batched calls share: their limits, their argument checks, the
 * bookkeeping of a batched send, and the messages a batch took from the
 * kernel but could not hand over (its codec refused one), which the
 * handle's next receives hand over first, so that nothing taken is lost or
 * reordered.
 * @internal
 * @module
 */
import { E, IpcError } from '../errors.js';
import { type ReadAhead } from './framing.js';
import { checkMessageBatch } from './message-batch.js';
import { DONE, type Operation } from './operation.js';
import { copyView, invalidArgument, isBytes, notBytes, optionalInteger, realByteLength } from './validate.js';
import { native } from '../native.js';
import { type SyncWaitOptions, type WaitOptions } from './wait.js';

/**
 * Options of a batched receive ({@link PosixMessageQueue.receiveMany},
 * {@link SysvMessageQueue.receiveMany}, {@link PipeReadEnd.receiveMany}, ...).
 */
export interface ReceiveManyOptions extends WaitOptions {
  /** At most this many messages, 1 to 1024. Default 64. */
  max?: number;
}

/** Options of a batched `receiveManySync`. */
export interface ReceiveManySyncOptions extends SyncWaitOptions {
  /** At most this many messages, 1 to 1024. Default 64. */
  max?: number;
}

/** The most messages one batched receive returns. */
export const MAX_BATCH = 1024;
/** Messages a batched receive returns at most when `max` is not given. */
export const DEFAULT_BATCH = 64;
/** Slab size of a batched receive: many messages land in one go. */
export const BATCH_SLAB = 256 * 1024;

/** `max` of a batched receive: 1 to {@link MAX_BATCH}, default {@link DEFAULT_BATCH}. */
export function checkMax(max: unknown): number {
  return optionalInteger(max, 'max', 1, MAX_BATCH, DEFAULT_BATCH);
}

/** The messages of a batched send: an array (of anything the codec takes). */
export function checkBatch<M>(messages: unknown, name = 'messages'): readonly M[] {
  if (!Array.isArray(messages)) throw invalidArgument(name, messages, `an array of ${name}`);
  return messages as readonly M[];
}

/**
 * The items of a batched send, each encoded (`encode` throws to refuse
 * one), in a plain array. Array.from, not map: a hole in a sparse array is
 * an item (undefined, which `encode` refuses), not skipped.
 */
export function encodeBatch<M>(items: readonly M[], encode: (item: M) => Uint8Array, name = 'messages'): Uint8Array[] {
  return Array.from(checkBatch<M>(items, name), encode);
}

/**
 * Raw messages a batch received but did not hand over, oldest first: the
 * one its codec refused and those after it. Receives take from here first.
 */
export class Held<R> {
  readonly #items: R[] = [];

  get size(): number {
    return this.#items.length;
  }

  /** Keeps `items` (in order) for the next receives, after those held already (they were taken later). */
  keep(items: R[]): void {
    this.#items.push(...items);
  }

  /** Puts `items` back in front (in order): they were taken from here, before the ones still held. */
  putBack(items: R[]): void {
    this.#items.unshift(...items);
  }

  /** The oldest held message, taken out. */
  take(): R | undefined {
    return this.#items.shift();
  }

  /** Up to `max` held messages, taken out. */
  takeMany(max: number): R[] {
    return this.#items.splice(0, max);
  }

  /** Up to `max` held messages, each the one `choose` picks among those left (-1: none), taken out. */
  takeChosen(max: number, choose: (items: readonly R[]) => number): R[] {
    const out: R[] = [];
    while (out.length < max) {
      const at = choose(this.#items);
      if (at < 0) break;
      out.push(this.#items.splice(at, 1)[0]!);
    }
    return out;
  }
}

/**
 * Decodes a batch's raw messages in order. A message the codec refuses
 * ends the batch: the ones before it are returned; it and the ones after it
 * are kept in `held` (so the next receive reports its error, and the rest
 * follow): in front when the batch came from `held` itself, else behind.
 * If the first is refused, its error is thrown at once. `refused` says
 * what is kept of a refused message (default: the message, which decodes
 * to the same error again); a message whose refusal had effects (its
 * descriptors closed) keeps its error instead.
 */
export function decodeBatch<R, M>(raw: R[], decode: (r: R) => M, held: Held<R>, fromHeld = false,
  refused: (r: R, error: IpcError) => R = (r) => r): M[] {
  const keep = (items: R[]): void => (fromHeld ? held.putBack(items) : held.keep(items));
  const out: M[] = [];
  for (let i = 0; i < raw.length; i++) {
    try {
      out.push(decode(raw[i]!));
    } catch (err) {
      if (!(err instanceof IpcError)) throw err;
      if (i === 0) {
        keep(raw.slice(1));
        throw err;
      }
      keep([refused(raw[i]!, err), ...raw.slice(i + 1)]);
      break;
    }
  }
  return out;
}

/**
 * Where a batch's retries get their spin: the lane's budget (`spin`, µs),
 * and what the lane's current wake-up may still spin (`retrySpin`), which
 * the lane sets for each pass over its queued calls and the retries spend.
 */
export interface SpinSource {
  readonly spin: number;
  retrySpin: number;
}

/**
 * The bookkeeping of a batched send of `total` messages: `next[0]` is the
 * first not yet sent (the native call advances it; a gathered write keeps
 * its offset in the next one in `next[1]`). `outcome(r)` turns a
 * native result into the step's: the count once all are in (or at once,
 * for a try), `undefined` while some wait, and for a failure after some
 * went in their count (the next call meets the failure). `spin` is the
 * spin of a step: a call's first attempt spins as a single call does; its
 * retries (after a sleep, or a wake-up of its lane) spin too, as a
 * receiver is making room right now, but from an allowance of one budget
 * plus one per message that went in; a queued call's retries also
 * share the lane's budget for the wake-up that serves them
 * ({@link SpinSource.retrySpin}). A try never spins. What a step is
 * granted is the budget of each of its native call's waits: within the
 * call, a wait after a message went may spin that much again, for 1 ms
 * (or the grant, if longer) after its first message went at most, and
 * never past the step's timeout (`BatchSpin` in the addon's spin.h).
 */
export function batchSend<N extends Uint32Array | Float64Array = Uint32Array>(total: number, lane: SpinSource, tryForm: boolean,
  fail: (r: number) => IpcError, next: N = new Uint32Array(1) as N): {
  next: N; left(): boolean; spin(timeout: number, spin: number): number;
  outcome(r: number): number | undefined; partial(): number | undefined;
} {
  // µs the retries may still spin, and the messages already paid for.
  let allowance = lane.spin;
  let counted = 0;
  return {
    next,
    left: () => next[0]! < total,
    spin: (timeout, spin) => {
      // A try never spins; a call's first attempt (spin > 0) spins as a single call does.
      if (tryForm || spin > 0) return spin;
      let granted = Math.min(lane.spin, allowance);
      // A queued call (timeout 0): within what the wake-up serving it may still spin, shared by every call it
      // serves (none when a try or sync call serves the queue on its way).
      if (timeout === 0) {
        granted = Math.min(granted, lane.retrySpin);
        lane.retrySpin -= granted;
      }
      allowance -= granted;
      return granted;
    },
    outcome: (r) => {
      allowance += (next[0]! - counted) * lane.spin;
      counted = next[0]!;
      if (r < 0 && r !== E.EAGAIN) {
        if (next[0]! > 0) return next[0]!;
        throw fail(r);
      }
      return next[0] === total || tryForm ? next[0]! : undefined;
    },
    partial: () => (next[0]! > 0 ? next[0]! : undefined),
  };
}

/**
 * The error of a batch (or, `single`, a send) whose message buffer changed
 * while it waited (detached, transferred, shrunk or grown): the call writes
 * from it as it lies, without a copy.
 */
export function batchChanged(address: string, single = false): IpcError {
  const which = single ? 'The message of a send' : 'A message of a batch';
  return new IpcError('ERR_IPC_INVALID_ARGUMENT', `${which} on ${address} changed while the call waited (its buffer was ` +
    'transferred, detached, shrunk or grown). The call writes from your buffer as it lies: leave it alone until the call resolves.', { address });
}

/** The most buffers one scattered read fills (IOV_MAX on Linux). */
export const MAX_TARGETS = 1024;

/** The buffers of a scattered read: an array of 1 to {@link MAX_TARGETS} Uint8Arrays with room for a byte at least. */
export function checkTargets(targets: unknown): Uint8Array[] {
  const list = encodeBatch(targets as readonly unknown[], (target) => {
    if (!isBytes(target)) throw notBytes('targets', target, 'Uint8Arrays (or Buffers) to read into');
    return target;
  }, 'targets');
  if (list.length === 0 || list.length > MAX_TARGETS) throw invalidArgument('targets', targets, `an array of 1 to ${MAX_TARGETS} Uint8Arrays`);
  if (!list.some((target) => realByteLength(target) > 0)) throw invalidArgument('targets', targets, 'buffers with room for at least one byte');
  return list;
}

/** Moves what `ahead` holds into `targets` in order, as far as they hold: the bytes moved. */
export function spread(ahead: ReadAhead, targets: readonly Uint8Array[]): number {
  let moved = 0;
  for (const target of targets) {
    // The room from the memory, the copy by the built-in set (see isBytes): what is taken from `ahead` lands whole.
    const room = realByteLength(target);
    let filled = 0;
    while (filled < room && ahead.length > 0) {
      const chunk = ahead.take(Math.min(room - filled, ahead.length));
      copyView(target, chunk, filled);
      filled += chunk.length;
    }
    moved += filled;
    if (ahead.length === 0) break;
  }
  return moved;
}

/** A gathered write: the bytes written so far, of `total`, and what is left of an element it cut (a try commits to it). */
export interface GatherOperation<R> extends Operation<R> {
  written(): number;
  total: number;
  rest(): Operation<typeof DONE> | undefined;
}

/**
 * A {@link MessageBatch} as a batched send found it: its count and size
 * are fixed when the call starts, so a batch changed while the call waits
 * cannot make it loop (its lengths are checked against its buffer by the
 * native call, which refuses a batch whose lengths run past it).
 */
export interface Packed {
  readonly data: Buffer;
  readonly lengths: Uint32Array;
  readonly count: number;
  readonly size: number;
}

/** `batch` (a {@link MessageBatch}, else ERR_IPC_INVALID_ARGUMENT) as a send starting now finds it. */
export function packed(batch: unknown): Packed {
  const b = checkMessageBatch(batch);
  const { lengths, count, size } = b;
  let sum = 0;
  for (let i = 0; i < count; i++) sum += lengths[i]!;
  if (sum !== size) {
    throw new IpcError('ERR_IPC_INVALID_ARGUMENT', `The lengths of this MessageBatch add up to ${sum} bytes, not the ${size} it holds: ` +
      'they were changed. Change a batch\'s messages through push() and clear().');
  }
  return { data: b.data, lengths, count, size };
}

/** What a gathered write writes: an array of buffers, or a packed batch. */
export type GatherList = readonly Uint8Array[] | Packed;

function isPacked(list: GatherList): list is Packed {
  return !Array.isArray(list);
}

/** How many elements `list` has. */
export function gatherCount(list: GatherList): number {
  return isPacked(list) ? list.count : list.length;
}

/** The bytes `list` holds, with `header` more for each element (its frame's length prefix). */
export function gatherBytes(list: GatherList, header: number): number {
  return isPacked(list) ? list.size + header * list.count : list.reduce((sum, m) => sum + header + m.length, 0);
}

/** Element `i` of `list`: for a packed batch, a view of its buffer (valid until the batch changes). */
/**
 * What a list send's attempt reports, in place of a native result, when a
 * message of the list no longer spans the bytes it did when the call was
 * made (shrunk, grown, detached, transferred): below every -errno. The
 * call fails with {@link batchChanged} (after some went: it ends with their
 * count, as after any failure; inside a stream frame: the connection closes).
 */
export const LIST_CHANGED = -4097;

/** The sizes of an array list's messages, from their memory, when the call is made (a packed batch is checked as it goes). */
export function listSizes(list: GatherList): Float64Array | undefined {
  return isPacked(list) ? undefined : Float64Array.from(list, (m) => realByteLength(m));
}

/** {@link LIST_CHANGED} if a message of `list` from `from` on changed size since `sizes` were taken, else `attempt()`. */
export function unlessChanged(list: GatherList, sizes: Float64Array | undefined, from: number, attempt: () => number): number {
  if (sizes !== undefined) {
    const views = list as readonly Uint8Array[];
    for (let i = from; i < sizes.length; i++) if (realByteLength(views[i]!) !== sizes[i]) return LIST_CHANGED;
  }
  return attempt();
}

export function gatherView(list: GatherList, i: number): Uint8Array {
  if (!isPacked(list)) return list[i]!;
  let start = 0;
  for (let k = 0; k < i; k++) start += list.lengths[k]!;
  return list.data.subarray(start, start + list.lengths[i]!);
}

/** Element `i` of `list`: for a packed batch, a copy (its buffer may be refilled once the call returns). */
function gatherElement(list: GatherList, i: number): Uint8Array {
  return isPacked(list) ? Buffer.from(gatherView(list, i)) : list[i]!;
}

/**
 * The operation that writes `list` from `at` on by gathered writes
 * (`write`: one native writevFd call; `framed`: each element behind its
 * 4-byte length prefix), each step
 * as far as the descriptor takes it; `outcome` turns the native result
 * (after `at` moved) into the step's. `rest()` is what is left of an
 * element a try cut short, as an operation of its own (`fail` turns its
 * errors into the error to report).
 */
export function gatherOperation<R>(list: GatherList, at: Float64Array, framed: boolean,
  write: (list: GatherList, at: Float64Array, spin: number, timeout: number) => number,
  stepOf: (attempt: (spin: number, timeout: number) => R | undefined) => Operation<R>, outcome: (r: number) => R | undefined, tryForm: boolean,
  fail: (r: number) => IpcError): GatherOperation<R> {
  const header = framed ? 4 : 0;
  const count = gatherCount(list);
  const sizes = listSizes(list);
  let written = 0;
  const op = stepOf((spin, timeout) => {
    const r = at[0]! < count ? unlessChanged(list, sizes, at[0]!, () => write(list, at, spin, timeout)) : 0;
    if (r > 0) written += r;
    return outcome(r);
  }) as GatherOperation<R>;
  op.written = () => written;
  op.total = gatherBytes(list, header);
  op.rest = () => {
    if (!tryForm || at[1] === 0 || at[0]! >= count) return undefined;
    const element = gatherElement(list, at[0]!);
    const tail = new Float64Array([0, at[1]!, at[2] ?? 0]);
    return gatherOperation([element], tail, framed, write, stepOf as unknown as (attempt: (spin: number, timeout: number) => typeof DONE | undefined) => Operation<typeof DONE>, (r) => {
      if (r < 0 && r !== E.EAGAIN) throw fail(r);
      return tail[0] === 1 ? DONE : undefined;
    }, false, fail);
  };
  return op;
}

/*
 * Native batched sends read and advance a batch's position, which each
 * operation keeps in a small typed array of its own. One made in
 * JavaScript lives on V8's heap until native code first asks for its
 * memory, which then moves it out (a native allocation, freed by a later
 * collection): about 0.4 µs a call, a tenth of a 64-message sendBatch on a
 * Unix stream, a twentieth of ten 8 KiB messages on a POSIX queue. So the position passes through arrays made once, each the
 * length the native call expects (writevFd tells a framed position by its
 * third element). A native call runs to its end before the next starts
 * (each worker thread has its own module), so one of each is enough.
 */
const STAGE2 = new Float64Array(2);
const STAGE3 = new Float64Array(3);
const STAGE_NEXT = new Uint32Array(1);

/** Native writevFd of `list` (an array, or a packed batch) from `at` on (2 or 3 elements), moving `at` past what went. */
export function writevList(fd: number, list: GatherList, at: Float64Array, mode: number, spin: number, timeout: number): number {
  const three = at.length === 3;
  const io = three ? STAGE3 : STAGE2;
  io[0] = at[0]!;
  io[1] = at[1]!;
  if (three) io[2] = at[2]!;
  const r = isPacked(list) ? native.writevFd(fd, list.data, io, mode, spin, list.lengths, list.count, timeout)
    : native.writevFd(fd, list, io, mode, spin, undefined, undefined, timeout);
  at[0] = io[0]!;
  at[1] = io[1]!;
  if (three) at[2] = io[2]!;
  return r;
}

/**
 * The array to hand a native batched send (mqSendMany, msgSndMany,
 * sendMmsg) in place of the batch's `next`, holding its value; once the
 * call returns, {@link unstageNext} copies the value back.
 */
export function stagedNext(next: Uint32Array): Uint32Array {
  STAGE_NEXT[0] = next[0]!;
  return STAGE_NEXT;
}

/** Copies what a native call moved the staged position to back into the batch's `next`. */
export function unstageNext(next: Uint32Array): void {
  next[0] = STAGE_NEXT[0]!;
}

/** Native sendMmsg of `list` (an array, or a packed batch) from message `next[0]` on, moving it past what went. */
export function sendMmsgList(fd: number, list: GatherList, to: Uint8Array | null, next: Uint32Array, spin: number, timeout: number): number {
  const staged = stagedNext(next);
  const r = isPacked(list) ? native.sendMmsg(fd, list.data, to, staged, spin, list.lengths, list.count, timeout)
    : native.sendMmsg(fd, list, to, staged, spin, undefined, undefined, timeout);
  unstageNext(next);
  return r;
}

/** Messages one step of a batched async iteration takes at most. */
export const ITERATION_BATCH = 64;

/**
 * The async iteration of a receiver, over batches: `take` resolves to up to
 * {@link ITERATION_BATCH} raw messages at once (`null` at the end of the
 * data), and they are yielded one at a time, each decoded as it is
 * yielded. A loop that stops early (`break`, a throw, a message `decode`
 * refuses) puts the ones it did not yield back in front of what the handle
 * holds (`putBack`), so the next receive gets them: nothing taken is lost.
 * The loop ends quietly once the handle is `closed`, or when `take` or
 * `decode` fails with one of `endCodes` (the handle closed, the peer's end).
 */
export async function* batchedIteration<R, M>(closed: () => boolean, take: () => Promise<R[] | null>, decode: (raw: R) => M,
  putBack: (rest: R[]) => void, endCodes: readonly string[] = ['ERR_IPC_CLOSED']): AsyncGenerator<M, void, undefined> {
  const ends = (err: unknown): boolean => err instanceof IpcError && endCodes.includes(err.code);
  for (;;) {
    let batch: R[] | null;
    try {
      batch = await take();
    } catch (err) {
      if (ends(err)) return;
      throw err;
    }
    if (batch === null) return;
    let next = 0;
    try {
      // A handle closed meanwhile (by the loop's body, say) ends the loop, as a receive would fail.
      while (next < batch.length && !closed()) {
        let message: M;
        try {
          message = decode(batch[next++]!);
        } catch (err) {
          if (ends(err)) return;
          throw err;
        }
        yield message;
      }
    } finally {
      if (next < batch.length) putBack(batch.slice(next));
    }
  }
}
