/**
 * Where received messages land. Messages up to a quarter of a slab are
 * received straight into a 64 KiB slab and handed out as views of it, so a
 * receive allocates nothing and copies nothing; a message keeps its slab
 * alive, as Node's own Buffer pool does. Larger messages are received into
 * a scratch buffer and copied out.
 *
 * Slabs are marked untransferable, as Node marks its pool: transferring one
 * message's `.buffer` to a worker would otherwise detach every other
 * message received into the same slab.
 * @internal
 * @module
 */
import { markAsUntransferable } from 'node:worker_threads';

const SLAB_SIZE = 64 * 1024;

/** A region a receive may write into: `buffer[offset..offset + reserve]`. */
export interface ReceiveArea {
  buffer: Buffer;
  offset: number;
}

function slab(size: number): Buffer {
  // Zeroed: a view's .buffer exposes the whole slab, which must not hold stale process memory.
  const buffer = Buffer.alloc(size);
  markAsUntransferable(buffer.buffer);
  return buffer;
}

export class ReceiveBuffer {
  /** The buffer to receive into, at {@link offset}. */
  buffer: Buffer;
  offset = 0;
  readonly #reserve: number;
  readonly #pooled: boolean;
  readonly #slabSize: number;

  /**
   * `reserve`: the bytes a receive may write (the largest message plus any
   * header). `slabSize`: larger slabs for batched receives, which land many
   * messages in one go. `poolLimit`: the largest `reserve` received into
   * slabs (else into a scratch buffer, one message at a time).
   */
  constructor(reserve: number, slabSize = SLAB_SIZE, poolLimit = slabSize / 4) {
    this.#reserve = reserve;
    this.#slabSize = slabSize;
    this.#pooled = reserve <= poolLimit;
    this.buffer = this.#pooled ? slab(slabSize) : Buffer.allocUnsafe(reserve);
  }

  /** Makes sure `reserve` bytes are free at `offset`. */
  ensure(): void {
    if (this.#pooled && this.buffer.length - this.offset < this.#reserve) {
      this.buffer = slab(this.#slabSize);
      this.offset = 0;
    }
  }

  /**
   * Makes sure a batch of `count` messages has room at `offset`, up to a
   * quarter of a slab: a batch that met the end of a slab at once would
   * come back short, and a fresh slab for every batch would cost more than
   * the batch saves.
   */
  ensureFor(count: number): void {
    const room = Math.max(this.#reserve, Math.min(count * this.#reserve, this.#slabSize / 4));
    if (this.#pooled && this.buffer.length - this.offset < room) {
      this.buffer = slab(this.#slabSize);
      this.offset = 0;
    }
  }

  /** Hands out `length` received bytes at `start` and moves past them. */
  take(start: number, length: number): Buffer {
    if (!this.#pooled) return Buffer.from(this.buffer.subarray(start, start + length));
    this.offset = (start + length + 7) & ~7;
    return this.buffer.subarray(start, start + length);
  }

  /**
   * A region of its own for a receive that completes later (on a waiter
   * thread): nothing else writes there, whatever happens meanwhile.
   */
  reserveArea(): ReceiveArea {
    if (!this.#pooled) return { buffer: Buffer.allocUnsafe(this.#reserve), offset: 0 };
    this.ensure();
    const area = { buffer: this.buffer, offset: this.offset };
    this.offset = (this.offset + this.#reserve + 7) & ~7;
    return area;
  }

  /** The message a reserved area received: a view, or the area's own buffer cut to size. */
  fromArea(area: ReceiveArea, start: number, length: number): Buffer {
    if (this.#pooled) return area.buffer.subarray(start, start + length);
    // The area is this message's alone: keep it unless most of it would be wasted.
    return length > area.buffer.length / 2 ? area.buffer.subarray(start, start + length)
      : Buffer.from(area.buffer.subarray(start, start + length));
  }
}
