/**
 * Numbered records with a checksum, for exactly-once soaks: whoever sends
 * makes them with {@link record}, whoever receives checks them with
 * {@link readRecord} (whole messages) or a {@link RecordStream} (bytes cut
 * anywhere), and a small deterministic PRNG drives both sides' choices.
 */
import { createHash } from 'node:crypto';

/** Bytes before the body: the sequence number (u32) and the body length (u16). */
const HEAD = 6;
/** Bytes after the body: the first 8 bytes of sha256(head + body). */
const SUM = 8;

/** A small, fast, seedable PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checksum(head: Uint8Array, body: Uint8Array): Buffer {
  return createHash('sha256').update(head).update(body).digest().subarray(0, SUM);
}

/** Record `seq`: its body is 0..maxBody bytes that depend on `seq` only. */
export function record(seq: number, maxBody = 48): Buffer {
  const length = (seq * 7919) % (maxBody + 1);
  const out = Buffer.alloc(HEAD + length + SUM);
  out.writeUInt32BE(seq, 0);
  out.writeUInt16BE(length, 4);
  for (let i = 0; i < length; i++) out[HEAD + i] = (seq + i * 31) & 0xff;
  checksum(out.subarray(0, HEAD), out.subarray(HEAD, HEAD + length)).copy(out, HEAD + length);
  return out;
}

/** The largest record {@link record} makes with `maxBody`. */
export function recordSize(maxBody = 48): number {
  return HEAD + maxBody + SUM;
}

/** A checked record: its number, and whether its checksum (and length) held. */
export interface Checked {
  seq: number;
  ok: boolean;
}

/** Checks one whole record (a message). */
export function readRecord(bytes: Uint8Array): Checked {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (buf.length < HEAD + SUM) return { seq: -1, ok: false };
  const seq = buf.readUInt32BE(0);
  const length = buf.readUInt16BE(4);
  if (buf.length !== HEAD + length + SUM) return { seq, ok: false };
  const sum = checksum(buf.subarray(0, HEAD), buf.subarray(HEAD, HEAD + length));
  return { seq, ok: sum.equals(buf.subarray(HEAD + length)) };
}

/** Reassembles records from a byte stream cut at arbitrary places. */
export class RecordStream {
  #pending: Buffer = Buffer.alloc(0);

  /** Feeds bytes; returns the records they complete. */
  push(chunk: Uint8Array): Checked[] {
    this.#pending = this.#pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#pending, chunk]);
    const out: Checked[] = [];
    while (this.#pending.length >= HEAD) {
      const total = HEAD + this.#pending.readUInt16BE(4) + SUM;
      if (this.#pending.length < total) break;
      out.push(readRecord(this.#pending.subarray(0, total)));
      this.#pending = this.#pending.subarray(total);
    }
    return out;
  }

  /** Bytes of an unfinished record. */
  get leftover(): number {
    return this.#pending.length;
  }
}

/** A sigqueue value carrying `seq` and a 16-bit check of it (signals carry one integer, not bytes). */
export function signalValue(seq: number): number {
  return seq * 0x10000 + (createHash('sha256').update(String(seq)).digest().readUInt16BE(0));
}

/** Checks a value made by {@link signalValue}. */
export function readSignalValue(value: number | null): Checked {
  if (value === null || !Number.isSafeInteger(value) || value < 0) return { seq: -1, ok: false };
  const seq = Math.floor(value / 0x10000);
  return { seq, ok: signalValue(seq) === value };
}
