/**
 * What the batched calls of the message queues share: their limits, their
 * argument checks, and the messages a batch took from the kernel but could
 * not hand over (its codec refused one), which the handle's next receives
 * hand over first, so that nothing taken is lost or reordered.
 * @internal
 * @module
 */
import { IpcError } from '../errors.js';
import { invalidArgument, optionalInteger } from './validate.js';

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
export function checkBatch<M>(messages: unknown): readonly M[] {
  if (!Array.isArray(messages)) throw invalidArgument('messages', messages, 'an array of messages');
  return messages as readonly M[];
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
 * If the first is refused, its error is thrown at once.
 */
export function decodeBatch<R, M>(raw: R[], decode: (r: R) => M, held: Held<R>, fromHeld = false): M[] {
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
      keep(raw.slice(i));
      break;
    }
  }
  return out;
}
