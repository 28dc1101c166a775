/**
 * The ledger of a soak run: a POSIX shared-memory segment every producer
 * and consumer writes as it goes, so that what a process did survives it
 * being killed. Per producer: how many messages it has sent, and one bit per
 * sequence number, set by the consumer that received it (a bit found set
 * already is a duplicate). Per consumer: received, duplicated, corrupt,
 * reordered and redelivered counts, the last sequence it saw of each
 * producer, and the last message it took of any producer.
 *
 * Redelivered: over a transport that is at-least-once across a consumer's
 * death (the channel: a message a killed consumer held as a view is
 * received again by the next one), the first message a replacement consumer
 * takes may be the very message its predecessor in the same consumer slot
 * took last. Such a repeat is counted here, not as a duplicate; any other
 * repeat is a duplicate.
 */
import { PosixSharedMemory } from '../src/index.js';

/** Most messages one producer sends in one run (unless the ledger is made with another `maxSeq`). */
export const MAX_SEQ = 2 ** 22;

export const CONSUMER_FIELDS = ['received', 'duplicated', 'corrupt', 'reordered', 'redelivered'] as const;
/** Words of a consumer's block besides its counters and its last sequence of each producer: the last message it took (producer, sequence). */
const TAKEN_WORDS = 2;
/** What a run of messages comes to: every message sent is received once, or counted as lost. */
export interface DeliveryCounts {
  sent: number;
  received: number;
  lost: number;
  duplicated: number;
  reordered: number;
  corrupt: number;
}

export type ConsumerField = (typeof CONSUMER_FIELDS)[number];

export class Ledger {
  readonly segment: PosixSharedMemory;
  readonly #words: Int32Array;
  readonly #producers: number;
  readonly #consumers: number;
  readonly #maxSeq: number;

  private constructor(segment: PosixSharedMemory, producers: number, consumers: number, maxSeq: number) {
    this.segment = segment;
    this.#producers = producers;
    this.#consumers = consumers;
    this.#maxSeq = maxSeq;
    this.#words = new Int32Array(segment.buffer);
  }

  /** Bytes of a ledger for `producers` producers sending at most `maxSeq` (a multiple of 32) messages each. */
  static bytes(producers: number, consumers: number, maxSeq = MAX_SEQ): number {
    return 4 * (producers + consumers * (CONSUMER_FIELDS.length + TAKEN_WORDS + producers) + producers * (maxSeq / 32));
  }

  /** A new ledger (every "last sequence" set to -1). Every process of the run must be given the same figures. */
  static create(name: string, producers: number, consumers: number, maxSeq = MAX_SEQ): Ledger {
    const segment = PosixSharedMemory.create(name, { size: Ledger.bytes(producers, consumers, maxSeq) });
    const ledger = new Ledger(segment, producers, consumers, maxSeq);
    for (let c = 0; c < consumers; c++) {
      for (let p = 0; p < producers; p++) ledger.#words[ledger.#lastAt(c, p)] = -1;
      ledger.#words[ledger.#takenAt(c)] = -1;
    }
    return ledger;
  }

  static open(name: string, producers: number, consumers: number, maxSeq = MAX_SEQ): Ledger {
    return new Ledger(PosixSharedMemory.open(name), producers, consumers, maxSeq);
  }

  /** Words of one consumer's block: counters, the last message taken, the last sequence of each producer. */
  get #block(): number {
    return CONSUMER_FIELDS.length + TAKEN_WORDS + this.#producers;
  }

  #counterAt(c: number, field: ConsumerField): number {
    return this.#producers + c * this.#block + CONSUMER_FIELDS.indexOf(field);
  }

  /** The last message consumer `c` took: producer, then sequence. */
  #takenAt(c: number): number {
    return this.#producers + c * this.#block + CONSUMER_FIELDS.length;
  }

  #lastAt(c: number, p: number): number {
    return this.#producers + c * this.#block + CONSUMER_FIELDS.length + TAKEN_WORDS + p;
  }

  #bitsAt(p: number): number {
    return this.#producers + this.#consumers * this.#block + p * (this.#maxSeq / 32);
  }

  /** Producer `p` has sent `n` messages. */
  setSent(p: number, n: number): void {
    Atomics.store(this.#words, p, n);
  }

  sent(p: number): number {
    return Atomics.load(this.#words, p);
  }

  /**
   * Consumer `c` took (p, seq): counts it, a duplicate, or a reordering.
   * `mayRepeat`: this is the first message a consumer process takes, over a
   * transport that redelivers: a repeat of the last message this consumer
   * slot took (its predecessor died holding it) counts as redelivered.
   */
  record(c: number, p: number, seq: number, mayRepeat = false): void {
    const w = this.#words;
    const taken = this.#takenAt(c);
    const repeat = mayRepeat && Atomics.load(w, taken) === p && Atomics.load(w, taken + 1) === seq;
    // Noted before the bit: a consumer killed once the bit is set has always noted the message as its last.
    Atomics.store(w, taken, -1);
    Atomics.store(w, taken + 1, seq);
    Atomics.store(w, taken, p);
    const bit = 1 << (seq & 31);
    const before = Atomics.or(w, this.#bitsAt(p) + (seq >>> 5), bit);
    Atomics.add(w, this.#counterAt(c, (before & bit) === 0 ? 'received' : repeat ? 'redelivered' : 'duplicated'), 1);
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
  /**
   * Messages sent and lost by producers 0 to `producers` - 1. A producer
   * killed between a send and its count has one more message out than it
   * counted: the ledger bits tell.
   */
  tally(producers: number): { sent: number; lost: number } {
    let sent = 0;
    let lost = 0;
    for (let p = 0; p < producers; p++) {
      const end = Math.max(this.sent(p), this.recordedEnd(p));
      sent += end;
      lost += this.missing(p, end);
    }
    return { sent, lost };
  }

  /** `field` summed over every consumer. */
  total(field: ConsumerField): number {
    let n = 0;
    for (let c = 0; c < this.#consumers; c++) n += this.count(c, field);
    return n;
  }

  recordedEnd(p: number): number {
    const w = this.#words;
    const base = this.#bitsAt(p);
    for (let word = this.#maxSeq / 32 - 1; word >= 0; word--) {
      const v = w[base + word]!;
      if (v !== 0) return word * 32 + (31 - Math.clz32(v)) + 1;
    }
    return 0;
  }
}

/** Takeovers a {@link LockLedger} keeps the time and dead holder of (later ones are only counted). */
export const TAKEOVER_LOG = 4096;

/**
 * The ledger of a lock run: a POSIX segment that holds the lock under test
 * (its 16 bytes at offset 0), the data the lock protects, and what the
 * workers did, so that it survives any of them being killed. The segment
 * starts zeroed: the workers' `openOrCreate` makes the lock.
 */
export class LockLedger {
  // Int32 words after the lock's four.
  /** Two counters a mutex holder increments one after the other: equal whenever nobody is inside. */
  static readonly A = 4;
  static readonly B = 5;
  /** The pid inside the critical section, 0 outside it: a taker reads whom it took over from. */
  static readonly HOLDER = 6;
  /** Set by the parent: workers finish the iteration they are in and exit. */
  static readonly STOP = 7;
  /** Lock acquisitions (mutex) or units taken (semaphore): the progress the watchdog follows. */
  static readonly ACQUIRED = 8;
  /** Critical sections that ran to the end. */
  static readonly COMPLETED = 9;
  /** Takeovers that found A ≠ B and set B = A. */
  static readonly REPAIRS = 10;
  /** Acquisitions without a takeover that found A ≠ B: two processes inside at once. */
  static readonly VIOLATIONS = 11;
  static readonly TAKEOVERS = 12;
  /** Semaphore units posted. */
  static readonly POSTED = 13;
  /** Handles whose openOrCreate initialised the lock (exactly one, however many started together). */
  static readonly CREATED = 14;

  readonly segment: PosixSharedMemory;
  readonly words: Int32Array;
  readonly #times: BigInt64Array;
  readonly #holders: Int32Array;

  private constructor(segment: PosixSharedMemory) {
    this.segment = segment;
    this.words = new Int32Array(segment.buffer, 0, 16);
    this.#times = new BigInt64Array(segment.buffer, 64, TAKEOVER_LOG);
    this.#holders = new Int32Array(segment.buffer, 64 + 8 * TAKEOVER_LOG, TAKEOVER_LOG);
  }

  static create(name: string): LockLedger {
    return new LockLedger(PosixSharedMemory.create(name, { size: 64 + 12 * TAKEOVER_LOG }));
  }

  static open(name: string): LockLedger {
    return new LockLedger(PosixSharedMemory.open(name));
  }

  /**
   * A takeover at `time` (ns, CLOCK_MONOTONIC) from `holder`, the HOLDER
   * word the taker found: 0 if the dead process held the lock just outside
   * it. A taker killed before it logs leaves time 0.
   */
  logTakeover(time: bigint, holder: number): void {
    const i = Atomics.add(this.words, LockLedger.TAKEOVERS, 1);
    if (i >= TAKEOVER_LOG) return;
    Atomics.store(this.#holders, i, holder);
    Atomics.store(this.#times, i, time);
  }

  /** The takeovers logged so far. */
  takeovers(): { time: bigint; holder: number }[] {
    const n = Math.min(TAKEOVER_LOG, Atomics.load(this.words, LockLedger.TAKEOVERS));
    return Array.from({ length: n }, (_, i) => ({ time: Atomics.load(this.#times, i), holder: Atomics.load(this.#holders, i) }));
  }
}
