/**
 * Byte streams as messages: bytes read ahead of the consumer, and
 * length-prefixed framing (a 4-byte big-endian length, then the bytes).
 * Shared by every stream transport (pipes, FIFOs, stream sockets).
 * @internal
 * @module
 */
import { IpcError } from '../errors.js';
import { realByteLength, toBytes } from './validate.js';

/** Bytes in a frame's length prefix. */
export const FRAME_HEADER = 4;

/** Largest message a frame can carry (the prefix's signed range). */
export const MAX_FRAME = 2 ** 31 - 1;

/**
 * A non-blocking source of bytes: a chunk of at most `max` bytes, `null` at
 * the end of the data, or `undefined` when nothing is there yet.
 */
export interface ByteSource {
  readChunk(max: number): Buffer | null | undefined;
  /**
   * Reads into `target[offset..offset + length]`: a count, `null` at the
   * end, `undefined` when nothing is there yet. A source that has it gets
   * large messages read straight into their own buffer, not copied from chunks.
   */
  readChunkInto?(target: Buffer, offset: number, length: number): number | null | undefined;
}

/** Messages of at least this many bytes are read straight into their buffer when the source allows it (see {@link ReadAhead.message}). */
const DIRECT_READ = 64 * 1024;

/** `data`, refused (`ERR_IPC_MESSAGE_TOO_LARGE`) when it is too large for a frame's length prefix. */
export function checkFrame(data: Uint8Array, address: string): Uint8Array {
  const size = realByteLength(data);
  if (size > MAX_FRAME) {
    throw new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `A ${size}-byte message exceeds the framing limit of ${MAX_FRAME} bytes.`, { address });
  }
  return data;
}

/** `data` with its length prefix, ready to write. */
export function frame(input: Uint8Array | string, address: string): Buffer {
  const data = checkFrame(toBytes(input), address);
  // The header, the allocation and the copy all from the memory (see isBytes): no byte of `out` goes unwritten.
  const size = realByteLength(data);
  const out = Buffer.allocUnsafe(FRAME_HEADER + size);
  out.writeUInt32BE(size, 0);
  out.set(data, FRAME_HEADER);
  return out;
}

/**
 * The least a bounded read ({@link ReadAhead.message} with a room) asks for
 * while the next length is unknown: with no room left, a read of the header
 * alone would cost a system call for each empty message.
 */
export const MIN_BOUNDED_READ = 64;

/** Bytes already read from a stream and not yet handed out, with the framing over them. */
export class ReadAhead {
  readonly #address: string;
  #chunks: Buffer[] = [];
  /** Where the bytes not yet handed out start in the first chunk (the chunk is not re-sliced for every take). */
  #pos = 0;
  #bytes = 0;
  /** Set once a framed stream broke: messages cannot be found again. */
  #broken: IpcError | undefined;
  /** A large message being read straight into its buffer. */
  #partial: { target: Buffer; filled: number } | undefined;
  /** The limit of the last {@link message} call: set once the stream is read as messages. */
  #framedMax: number | undefined;

  readonly #limitName: string;

  /** `limitName`: the option that sets the largest message, for messages. */
  constructor(address: string, limitName = 'maxSize') {
    this.#address = address;
    this.#limitName = limitName;
  }

  /** Bytes waiting to be handed out. */
  get length(): number {
    return this.#bytes;
  }

  /**
   * Whether what was read ahead holds a whole message now (or an announced
   * length over `max`, which a read reports at once as an error).
   */
  complete(max: number): boolean {
    if (this.#broken !== undefined) return true;
    if (this.#partial !== undefined || this.#bytes < FRAME_HEADER) return false;
    const length = this.#peekLength();
    return length > max || this.#bytes >= FRAME_HEADER + length;
  }

  /**
   * Whether the next read completes from what is held: once the stream is
   * read as messages, only a whole message (or an error to report), since a
   * part of one makes a receive wait for the rest; before, any byte.
   */
  get ready(): boolean {
    return this.#framedMax === undefined ? this.#bytes > 0 : this.complete(this.#framedMax);
  }

  /** Whether part of a message has arrived (and the rest has not). */
  get inMessage(): boolean {
    return this.#bytes > 0 || this.#partial !== undefined;
  }

  /** Whether a large message is being read straight into its own buffer ({@link message} finishes it). */
  get direct(): boolean {
    return this.#partial !== undefined;
  }

  /** Whether the framed stream broke ({@link message} reports how, from then on). */
  get broken(): boolean {
    return this.#broken !== undefined;
  }

  /** Says the stream is read as messages of at most `max` bytes, as {@link message} does. */
  framed(max: number): void {
    this.#framedMax = max;
  }

  /** Moves everything held into `target` from `at` on (it has the room): how many bytes. */
  drainInto(target: Uint8Array, at: number): number {
    const n = this.#bytes;
    if (n > 0) this.#move(n, at === 0 ? target : target.subarray(at));
    return n;
  }

  /** The length the next message announces, or -1 while fewer than 4 bytes of it are held (or it is being read straight into its buffer). */
  nextLength(): number {
    return this.#partial !== undefined || this.#bytes < FRAME_HEADER ? -1 : this.#peekLength();
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
  }

  /** The next `n` (at most {@link length}) bytes: a view of what was read when they lie in one chunk, else a copy. */
  take(n: number): Buffer {
    const head = this.#chunks[0]!;
    const pos = this.#pos;
    if (head.length - pos > n) {
      this.#bytes -= n;
      this.#pos = pos + n;
      return head.subarray(pos, pos + n);
    }
    if (head.length - pos === n) {
      this.#bytes -= n;
      this.#chunks.shift();
      this.#pos = 0;
      return pos === 0 ? head : head.subarray(pos);
    }
    const out = Buffer.allocUnsafe(n);
    this.#move(n, out);
    return out;
  }

  /** Drops the next `n` (at most {@link length}) bytes. */
  skip(n: number): void {
    const head = this.#chunks[0]!;
    if (head.length - this.#pos > n) {
      this.#bytes -= n;
      this.#pos += n;
      return;
    }
    this.#move(n, undefined);
  }

  /** Moves past the next `n` bytes, copying them into `out` when given. */
  #move(n: number, out: Uint8Array | undefined): void {
    this.#bytes -= n;
    let done = 0;
    while (done < n) {
      const part = this.#chunks[0]!;
      const from = this.#pos;
      const used = Math.min(part.length - from, n - done);
      out?.set(part.subarray(from, from + used), done);
      done += used;
      if (from + used === part.length) {
        this.#chunks.shift();
        this.#pos = 0;
      } else {
        this.#pos = from + used;
      }
    }
  }

  /**
   * One framed message if it is complete now (reading from `source` as
   * needed); `null` at a clean end; `undefined` if more must arrive. A
   * prefix announcing more than `max` fails before anything is allocated,
   * and so does every later call: the stream cannot be resynchronised.
   * `limitName`: the option that set `max`, for the message (default: the constructor's).
   * `room`: the bytes a batch has left for this message. While the
   * message's length is unknown, a read then asks for its header and
   * `room` bytes (at least {@link MIN_BOUNDED_READ}), which may take the
   * start of the frames after it; once the length is known, no more than
   * the rest of its frame. A message announcing more than `room` (and at
   * most `max`) is not read past its header: `undefined`, and
   * {@link nextLength} says why.
   */
  message(source: ByteSource, max: number, readSize: number, limitName = this.#limitName, room = Infinity): Buffer | null | undefined {
    this.#framedMax = max;
    if (this.#broken) throw this.#broken;
    for (;;) {
      const partial = this.#partial;
      if (partial !== undefined) {
        const n = source.readChunkInto!(partial.target, partial.filled, partial.target.length - partial.filled);
        if (n === undefined) return undefined;
        if (n === null) {
          this.#broken = new IpcError('ERR_IPC_FRAMING', `The writer of ${this.#address} closed in the middle of a message ` +
            `(${FRAME_HEADER + partial.filled} bytes of it arrived).`, { address: this.#address });
          this.#partial = undefined;
          throw this.#broken;
        }
        partial.filled += n;
        if (partial.filled < partial.target.length) continue;
        this.#partial = undefined;
        return partial.target;
      }
      if (this.#bytes >= FRAME_HEADER) {
        const length = this.#peekLength();
        if (length > max) {
          this.#broken = new IpcError('ERR_IPC_MESSAGE_TOO_LARGE',
            `A message on ${this.#address} announces ${length} bytes, more than ${limitName} ${max}. Nothing was allocated; ` +
            `the stream cannot be resynchronised, so further messages on this end fail too. Raise ${limitName} if the writer is trusted.`,
            { address: this.#address });
          throw this.#broken;
        }
        if (length > room) return undefined;
        if (this.#bytes >= FRAME_HEADER + length) {
          this.skip(FRAME_HEADER);
          return length === 0 ? Buffer.alloc(0) : this.take(length);
        }
        // Once half of it has arrived (a peer cannot make ipckit reserve more than twice what it sent),
        // everything read ahead belongs to this message and starts its own buffer.
        if (length >= DIRECT_READ && source.readChunkInto !== undefined && (this.#bytes - FRAME_HEADER) * 2 >= length) {
          this.skip(FRAME_HEADER);
          const target = Buffer.allocUnsafe(length);
          const have = this.#bytes;
          if (have > 0) this.take(have).copy(target, 0);
          this.#partial = { target, filled: have };
          continue;
        }
      }
      const chunk = source.readChunk(room === Infinity ? readSize : this.#boundedRead(readSize, room));
      if (chunk === undefined) return undefined;
      if (chunk === null) {
        if (this.#bytes === 0) return null;
        this.#broken = new IpcError('ERR_IPC_FRAMING',
          `The writer of ${this.#address} closed in the middle of a message (${this.#bytes} bytes of it arrived).`, { address: this.#address });
        throw this.#broken;
      }
      this.push(chunk);
    }
  }

  /** A read of at most `readSize` for one message that should fit in `room` bytes: see {@link message}. */
  #boundedRead(readSize: number, room: number): number {
    const want = this.#bytes >= FRAME_HEADER ? FRAME_HEADER + this.#peekLength() : Math.max(FRAME_HEADER + room, MIN_BOUNDED_READ);
    return Math.max(1, Math.min(readSize, want - this.#bytes));
  }

  #peekLength(): number {
    const head = this.#chunks[0]!;
    if (head.length - this.#pos >= FRAME_HEADER) return head.readUInt32BE(this.#pos);
    return Buffer.concat([head.subarray(this.#pos), ...this.#chunks.slice(1)], FRAME_HEADER).readUInt32BE(0);
  }
}
