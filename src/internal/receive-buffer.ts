/**
 * Where received messages land. Messages up to a quarter of a slab are
 * received straight into a 64 KiB slab and handed out as views of it, so a
 * receive allocates nothing and copies nothing; a message keeps its slab
 * alive, as Node's own Buffer pool does. Larger messages are received into a
 * scratch buffer and copied out.
 * @internal
 * @module
 */

const SLAB_SIZE = 64 * 1024;

export class ReceiveBuffer {
  /** The buffer to receive into, at {@link offset}. */
  buffer: Buffer;
  offset = 0;
  readonly #reserve: number;
  readonly #pooled: boolean;

  /** `reserve`: the bytes a receive may write (the largest message plus any header). */
  constructor(reserve: number) {
    this.#reserve = reserve;
    this.#pooled = reserve <= SLAB_SIZE / 4;
    // Zeroed: a view's .buffer exposes the whole slab, which must not hold stale process memory.
    this.buffer = this.#pooled ? Buffer.alloc(SLAB_SIZE) : Buffer.allocUnsafe(reserve);
  }

  /** Makes sure `reserve` bytes are free at `offset`. */
  ensure(): void {
    if (this.#pooled && this.buffer.length - this.offset < this.#reserve) {
      this.buffer = Buffer.alloc(SLAB_SIZE);
      this.offset = 0;
    }
  }

  /** Hands out `length` received bytes at `start` and moves past them. */
  take(start: number, length: number): Buffer {
    if (!this.#pooled) {
      const copy = Buffer.allocUnsafe(length);
      this.buffer.copy(copy, 0, start, start + length);
      return copy;
    }
    this.offset = (start + length + 7) & ~7;
    return this.buffer.subarray(start, start + length);
  }
}
