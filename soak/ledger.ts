/**
 * The ledger of a soak run: a POSIX shared-memory segment every producer
 * and consumer writes as it goes, so that what a process did survives it
 * being killed. Per producer: how many messages it has sent, and one bit per
 * sequence number, set by the consumer that received it (a bit found set
 * already is a duplicate). Per consumer: received, duplicated, corrupt and
 * reordered counts, and the last sequence it saw of each producer.
 */
import { PosixSharedMemory } from '../src/index.js';

/** Most messages one producer sends in one run. */
export const MAX_SEQ = 2 ** 22;

export const CONSUMER_FIELDS = ['received', 'duplicated', 'corrupt', 'reordered'] as const;
type ConsumerField = (typeof CONSUMER_FIELDS)[number];

export class Ledger {
  readonly segment: PosixSharedMemory;
  readonly #words: Int32Array;
  readonly #producers: number;
  readonly #consumers: number;

  private constructor(segment: PosixSharedMemory, producers: number, consumers: number) {
    this.segment = segment;
    this.#producers = producers;
    this.#consumers = consumers;
    this.#words = new Int32Array(segment.buffer);
  }

  static bytes(producers: number, consumers: number): number {
    return 4 * (producers + consumers * (CONSUMER_FIELDS.length + producers) + producers * (MAX_SEQ / 32));
  }

  /** A new ledger (every "last sequence" set to -1). */
  static create(name: string, producers: number, consumers: number): Ledger {
    const ledger = new Ledger(PosixSharedMemory.create(name, { size: Ledger.bytes(producers, consumers) }), producers, consumers);
    for (let c = 0; c < consumers; c++) for (let p = 0; p < producers; p++) ledger.#words[ledger.#lastAt(c, p)] = -1;
    return ledger;
  }

  static open(name: string, producers: number, consumers: number): Ledger {
    return new Ledger(PosixSharedMemory.open(name), producers, consumers);
  }

  #counterAt(c: number, field: ConsumerField): number {
    return this.#producers + c * (CONSUMER_FIELDS.length + this.#producers) + CONSUMER_FIELDS.indexOf(field);
  }

  #lastAt(c: number, p: number): number {
    return this.#producers + c * (CONSUMER_FIELDS.length + this.#producers) + CONSUMER_FIELDS.length + p;
  }

  #bitsAt(p: number): number {
    return this.#producers + this.#consumers * (CONSUMER_FIELDS.length + this.#producers) + p * (MAX_SEQ / 32);
  }

  /** Producer `p` has sent `n` messages. */
  setSent(p: number, n: number): void {
    Atomics.store(this.#words, p, n);
  }

  sent(p: number): number {
    return Atomics.load(this.#words, p);
  }

  /** Consumer `c` took (p, seq): counts it, a duplicate, or a reordering. */
  record(c: number, p: number, seq: number): void {
    const w = this.#words;
    const bit = 1 << (seq & 31);
    const before = Atomics.or(w, this.#bitsAt(p) + (seq >>> 5), bit);
    Atomics.add(w, this.#counterAt(c, (before & bit) !== 0 ? 'duplicated' : 'received'), 1);
    const last = this.#lastAt(c, p);
    if (seq < w[last]!) Atomics.add(w, this.#counterAt(c, 'reordered'), 1);
    w[last] = seq;
  }

  count(c: number, field: ConsumerField): number {
    return Atomics.load(this.#words, this.#counterAt(c, field));
  }

  add(c: number, field: ConsumerField, n = 1): void {
    Atomics.add(this.#words, this.#counterAt(c, field), n);
  }

  /** Sequence numbers below `upTo` of producer `p` that no consumer recorded. */
  missing(p: number, upTo: number): number {
    const w = this.#words;
    const base = this.#bitsAt(p);
    let missing = 0;
    for (let seq = 0; seq < upTo; seq++) if ((w[base + (seq >>> 5)]! & (1 << (seq & 31))) === 0) missing++;
    return missing;
  }

  /** The highest sequence number recorded for producer `p`, plus one (0 if none). */
  recordedEnd(p: number): number {
    const w = this.#words;
    const base = this.#bitsAt(p);
    for (let word = MAX_SEQ / 32 - 1; word >= 0; word--) {
      const v = w[base + word]!;
      if (v !== 0) return word * 32 + (31 - Math.clz32(v)) + 1;
    }
    return 0;
  }
}
