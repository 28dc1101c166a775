/**
 * A message channel in shared memory: a bounded ring of variable-size
 * messages in a POSIX segment, between producers and consumers in
 * any processes. Once mapped, a message moves with one copy in and one
 * copy out (none with loans and views) and no system call; a system call
 * is made only to wake a side that flagged that it sleeps.
 *
 * @module
 */
import { availableParallelism } from 'node:os';
import { E, IpcError, systemError } from './errors.js';
import { LOCK_WORDS, Mutex, THREAD_IDENTITY } from './lock.js';
import { native } from './native.js';
import { PosixSharedMemory } from './shared-memory.js';
import { type Codec, type CodecOption, type Outgoing, decodeWith, encodeWith, resolveCodec } from './internal/codec.js';
import {
  Held, ITERATION_BATCH, type Packed, type ReceiveManyOptions, type ReceiveManySyncOptions, batchChanged, batchSend, batchedIteration, checkMax,
  decodeBatch, encodeBatch, packed,
} from './internal/batch.js';
import { type MessageBatch, batchTooSmall, checkBatchIntact, idleBatch, pushIfRoom, withBatch } from './internal/message-batch.js';
import { Handle, OwnedFd, createOrOpen } from './internal/handle.js';
import { descriptorError } from './internal/limits.js';
import { DONE, type LaneOwner, NotifyLane, type Operation, receiveUntilClosed, run, runSync, tryRun } from './internal/operation.js';
import { type Interest, LookTimer, READABLE, type PollTarget, type ReadinessSubscriber, type Watch, pollTarget, watchDescriptor } from './internal/readiness.js';
import { type OwnerOption } from './internal/trust.js';
import { checkBoolean, checkBytes, checkInteger, checkMode, checkOptions, copyView, invalidArgument, optionalInteger, realByteLength, viewFrom } from './internal/validate.js';
import { type SpinOptions, type SyncWaitOptions, type WaitOptions, checkSignal, checkSpin, timeoutError } from './internal/wait.js';

// The layout of a channel segment, the only definition of it.
//
// Bytes 0..511 are the header, as 32-bit words; each side's hot words sit on
// a cache line of their own, so the two sides never write the same line:
//   [MAGIC]        CHANNEL_MAGIC once the header is complete (written last)
//   [VERSION]      LAYOUT_VERSION
//   [CAPACITY]     bytes of the ring, a power of two
//   [MAX_MESSAGE]  the largest payload, at most CAPACITY / 2 - RECORD_HEADER
//   [MODES]        MULTI_PRODUCERS | MULTI_CONSUMERS: sides shared by many
//   bytes 448 and 464: the robust mutexes (lock.ts's protocol) that the
//                  producers, and the consumers, of a shared side take in turn
//   line 1 (producer): [TAIL] the end of the published records (a byte
//                  position counted modulo 2^32), [PRODUCER_TID] and
//                  [PRODUCER_START] the thread holding the producer role
//                  (0: none), its start time (0 while being recorded)
//   line 2 (consumer): [HEAD] the start of the unread records, [CONSUMER_TID],
//                  [CONSUMER_START]
//   line 3: [CONSUMER_SLEEPING] 1 while the consumer sleeps (or is about to),
//                  [CONSUMER_BELLS] the consumers' doorbells to ring (bit i:
//                  slot i of their table), set by a waiting consumer
//   line 4: [PRODUCER_SLEEPING], [PRODUCER_BELLS]: the same for the producer
//                  (words 48 and 64, reserved, were futex words of an
//                  earlier draft: zero)
//   lines 5 and 6: statistics of each side (message and byte counts as two
//                  words, low then high, and how often it slept)
//   bytes 512 and 1024: the doorbell tables of the consumers and of the
//                  producers, 32 slots of four words: [TID] [START] the
//                  thread that listed it, [TOKEN_HI] [TOKEN_LO] the bell's
//                  address (native/doorbell.cc; 0: none)
// The ring starts at DATA_OFFSET. A record is [length][kind] (8 bytes) and the
// payload, padded to 8 bytes. A record never straddles the end of the ring: a
// padding record (kind PADDING, length = the bytes to the end) fills it.
//
// The producer writes a record past TAIL, then stores TAIL beyond it: a
// record is visible only once complete, so a producer killed mid-write
// leaves nothing torn behind. The consumer reads records before TAIL, then
// stores HEAD beyond them. Each side keeps its own position and a cached
// copy of the other's, and reads the other's word only when the cache says
// empty (or full). Sleeping: a side sets its SLEEPING word, reads the other
// side's position, looks once more, and sleeps on that position word with
// FUTEX_WAIT (which returns at once if it moved meanwhile); the other side,
// after moving its position, makes the FUTEX_WAKE system call only if
// SLEEPING is set. A sleeper also looks again after every slice, so even a
// wake-up that a process writing over SLEEPING suppressed is not lost. Every
// access is a sequentially consistent Atomics operation, so either the
// sleeper sees the new position or the waker sees the flag.
//
// Waiting through a descriptor (async calls, select, a Poller) uses a
// doorbell instead of the futex: the waiter lists a bell in its side's
// table once, then, before each wait, empties it, sets its bit in the
// side's BELLS word and looks again; the other side, after moving its
// position, takes the whole BELLS word (Atomics.exchange) and rings each
// bell whose bit was set: one sendto per waiting bell, none when nobody waits.
const W = {
  MAGIC: 0, VERSION: 1, CAPACITY: 2, MAX_MESSAGE: 3, MODES: 4,
  TAIL: 16, PRODUCER_TID: 17, PRODUCER_START: 18,
  HEAD: 32, CONSUMER_TID: 33, CONSUMER_START: 34,
  CONSUMER_SLEEPING: 49, CONSUMER_BELLS: 50,
  PRODUCER_SLEEPING: 65, PRODUCER_BELLS: 66,
  SENT: 80, SENT_BYTES: 82, PRODUCER_WAITS: 84,
  RECEIVED: 96, RECEIVED_BYTES: 98, CONSUMER_WAITS: 100,
} as const;
const CHANNEL_MAGIC = 0x4c4e4843; // 'CHNL'
const LAYOUT_VERSION = 2;
const MULTI_PRODUCERS = 1;
const MULTI_CONSUMERS = 2;
/** Where the mutex of each shared side lives in the header. */
const SIDE_LOCK: Record<'producer' | 'consumer', number> = { producer: 448, consumer: 464 };
/** Where each side's doorbell table starts (a word index), its slots, and the words of a slot. */
const BELL_TABLE: Record<'producer' | 'consumer', number> = { consumer: 128, producer: 256 };
const BELL_SLOTS = 32;
const BELL_SLOT_WORDS = 4;
const SLOT = { TID: 0, START: 1, TOKEN: 2 } as const;
const BELL_MASK: Record<'producer' | 'consumer', number> = { consumer: W.CONSUMER_BELLS, producer: W.PRODUCER_BELLS };
const DATA_OFFSET = 1536;
const RECORD_HEADER = 8;
const KIND_MESSAGE = 1;
const KIND_PADDING = 2;

/** Smallest ring, in bytes. */
export const CHANNEL_MIN_CAPACITY = 64;
/** Largest ring, in bytes: 1 GiB. */
export const CHANNEL_MAX_CAPACITY = 2 ** 30;
/** Default ring size: 1 MiB. */
export const DEFAULT_CHANNEL_CAPACITY = 2 ** 20;
/** Default largest message: 64 KiB (and at most half the ring). */
export const DEFAULT_CHANNEL_MESSAGE = 64 * 1024;

/** How long a sleeping side sleeps before it looks again (at its peer's liveness, at a wake-up another process may have lost). */
const WATCH_SLICE_MS = 20;

/** Whether this thread may run on more than one CPU (affinity included). */
const MULTI_CPU = availableParallelism() > 1;

/** How long open() waits for a creator that has not finished the header. */
const HEADER_WAIT_MS = 2000;

const align8 = (n: number): number => (n + 7) & ~7;

/** A view of a message in the ring (it holds a shared side's turn until released); a view of a held copy holds nothing. */
const isView = (r: unknown): boolean => r instanceof ChannelView && r.inRing;

/** Below this many bytes a copy in JavaScript beats a call into the addon. */
const NATIVE_COPY = 512;

/**
 * Copies bytes to or from the ring. V8 copies into or out of a
 * SharedArrayBuffer byte by byte (relaxed atomics), several times slower
 * than memcpy, which the addon's copy is.
 */
function copyInto(dst: Uint8Array, dstOffset: number, src: Uint8Array, srcOffset: number, length: number): void {
  // Nothing to copy (a view of a detached buffer, empty, cannot even be sliced).
  if (length === 0) return;
  if (length >= NATIVE_COPY) native.copyBytes(dst, dstOffset, src, srcOffset, length);
  else copyView(dst, viewFrom(src, srcOffset, srcOffset + length), dstOffset);
}

/** A ring position (TAIL or HEAD): a byte count modulo 2^32, unsigned (the word is read signed). */
const position = (words: Int32Array, at: number): number => Atomics.load(words, at) >>> 0;

/** Options of {@link Channel.create} and {@link Channel.openOrCreate}. */
export interface ChannelCreateOptions<T = Buffer> extends SpinOptions {
  /** Bytes of the ring, rounded up to a power of two (64 B to 1 GiB). Default 1 MiB. */
  capacity?: number;
  /** Largest message in bytes; at most half the ring less 8. Default 64 KiB (or half the ring less 8, if smaller). */
  maxMessageSize?: number;
  /**
   * `'single'` (default): one producer at a time, which never waits for
   * another. `'multi'`: any number of producers, which take turns through a
   * robust mutex in the header (a producer killed mid-send leaves nothing
   * torn, and the next one takes over).
   */
  producers?: 'single' | 'multi';
  /** The same for the consumers. */
  consumers?: 'single' | 'multi';
  /** Permission bits of the segment. Default 0o600. */
  mode?: number;
  /** The uid an existing segment must belong to (openOrCreate), or 'any'. Default: this process's. */
  owner?: OwnerOption;
  /** Typed messages over the bytes ({@link CodecOption}); each handle picks its own. Default: raw bytes. */
  codec?: CodecOption<T> | undefined;
}

/** Options of {@link Channel.open}. */
export interface ChannelOpenOptions<T = Buffer> extends SpinOptions {
  /** The uid the segment must belong to, or 'any'. Default: this process's; otherwise `ERR_IPC_UNTRUSTED`. */
  owner?: OwnerOption;
  /** Typed messages over the bytes ({@link CodecOption}). Default: raw bytes. */
  codec?: CodecOption<T> | undefined;
}

/** A received message. */
export interface ChannelMessage<T = Buffer> {
  /** The payload: a `Buffer` copied out of the ring, or the codec's decoded value. */
  data: T;
}

/** Counters of a channel, shared by every process using it. */
export interface ChannelStats {
  /** Messages sent since the channel was created. */
  sent: number;
  /** Payload bytes sent since the channel was created. */
  sentBytes: number;
  /** Messages received since the channel was created. */
  received: number;
  /** Payload bytes received since the channel was created. */
  receivedBytes: number;
  /** Messages in the ring now. */
  depth: number;
  /** Ring bytes the messages in it take now (with headers and padding). */
  depthBytes: number;
  /** Times the producer slept on a full ring (a long sync wait counts once per 20 ms slice, an async call that waits once). */
  producerWaits: number;
  /** Times the consumer slept on an empty ring, counted the same way. */
  consumerWaits: number;
  /** Bytes of the ring, a power of two. */
  capacity: number;
  /** Largest message in bytes. */
  maxMessageSize: number;
  /** Whether many producers may share the channel, taking turns. */
  producers: 'single' | 'multi';
  /** Whether many consumers may share the channel, taking turns. */
  consumers: 'single' | 'multi';
  /** The thread id holding the producer role (a process's main thread id is its pid), 0 for none (and for a shared side). */
  producerTid: number;
  /** The thread id holding the consumer role, 0 for none (and for a shared side). */
  consumerTid: number;
}

/** A 64-bit counter kept as two words: low, then high. */
function addCounter(words: Int32Array, at: number, n: number): void {
  const before = Atomics.add(words, at, n) >>> 0;
  if (before + n > 0xffffffff) Atomics.add(words, at + 1, 1);
}

function readCounter(words: Int32Array, at: number): number {
  return (Atomics.load(words, at + 1) >>> 0) * 2 ** 32 + (Atomics.load(words, at) >>> 0);
}

/**
 * A view of a message in the ring itself ({@link Channel.receive} with
 * `view: true`): no copy. It is valid until the next receive on the same
 * handle (or `release()`, or close): its space then goes back to the
 * producer, which may overwrite it. `data` checks that: a stale view throws
 * `ERR_IPC_STALE_VIEW` instead of showing bytes that may be another
 * message's. (Keep the view, not the array `data` returned, to keep that check.)
 */
export class ChannelView {
  readonly #owner: Channel<unknown>;
  readonly #generation: number;
  readonly #bytes: Uint8Array;

  /** @internal Whether the bytes are in the ring (false: a copy a batch held, which holds no space). */
  readonly inRing: boolean;

  /** @internal */
  constructor(owner: Channel<unknown>, generation: number, bytes: Uint8Array, inRing = true) {
    this.#owner = owner;
    this.#generation = generation;
    this.#bytes = bytes;
    this.inRing = inRing;
  }

  /** Whether the bytes are still this message's. */
  get valid(): boolean {
    return this.#owner.viewGeneration === this.#generation;
  }

  /** The message's bytes, in the shared segment. */
  get data(): Uint8Array {
    if (!this.valid) {
      throw new IpcError('ERR_IPC_STALE_VIEW', `A view of a message on ${this.#owner.address} was used after the next receive ` +
        '(or release, or close) gave its space back to the producer. Copy what you keep (Buffer.from(view.data)) before receiving again.',
        { address: this.#owner.address });
    }
    return this.#bytes;
  }

  /** Gives the message's space back now, instead of at the next receive. */
  release(): void {
    if (this.valid) this.#owner.releaseView();
  }
}

/** The two roles of a channel. */
type Role = 'producer' | 'consumer';

const ROLE_WORDS: Record<Role, { tid: number; start: number }> = {
  producer: { tid: W.PRODUCER_TID, start: W.PRODUCER_START },
  consumer: { tid: W.CONSUMER_TID, start: W.CONSUMER_START },
};

/** What a handle holds in the header: given back on close, or when the handle is collected. */
interface HeldState {
  words: Int32Array | undefined;
  roles: Set<Role>;
  bells: Set<Bell>;
  /** A shared side's mutex this handle holds: during a call, and across calls for a loan (until its commit) or a view (until released). */
  turns: Partial<Record<Role, Mutex>>;
  /** HEAD to store when the current view is released (undefined: no view). */
  viewEnd: number | undefined;
  /** Whether the handle still counts as a user of the process's ringing socket. */
  ringer: boolean;
}

/**
 * Gives back what a handle holds in the header: its turns, doorbells and
 * roles. A handle collected with a view still out (nobody can read it any
 * more) gives the view's space back, as its release would; one collected
 * with a loan publishes nothing. Every turn given back rings the side's
 * waiters, who saw it as not ready while it was taken.
 */
function giveBack(state: HeldState): void {
  const words = state.words;
  if (words !== undefined && state.viewEnd !== undefined) consumeTo(words, state.viewEnd);
  state.viewEnd = undefined;
  for (const role of ['producer', 'consumer'] as const) {
    const lock = state.turns[role];
    if (lock === undefined) continue;
    delete state.turns[role];
    try {
      lock.unlock();
    } catch { /* The mutex was taken over meanwhile: nothing of this handle's to give back. */ }
    if (words !== undefined && Atomics.load(words, BELL_MASK[role]) !== 0) ringBells(words, role);
  }
  for (const bell of state.bells) closeBell(bell);
  state.bells.clear();
  if (words !== undefined) for (const role of state.roles) giveRoleBack(words, role);
  state.roles.clear();
}

/** One user less of the process's ringing socket (the last one closes it). */
function releaseRinger(state: HeldState): void {
  if (!state.ringer) return;
  state.ringer = false;
  native.bellRinger(-1);
}

/** What a handle dropped without close() gives back when it is collected: a module-level closure, it must not hold the handle. */
function releaseCollected(state: HeldState): () => void {
  return () => {
    // close() gave everything back itself (and unmapped the header).
    if (state.words === undefined) return;
    giveBack(state);
    releaseRinger(state);
  };
}

/** Stores HEAD at `end` (the consumer's move), and wakes or rings a producer that waits for room. */
function consumeTo(words: Int32Array, end: number): void {
  Atomics.store(words, W.HEAD, end);
  if (Atomics.load(words, W.PRODUCER_SLEEPING) !== 0) native.futexWake(words, W.HEAD, 1);
  if (Atomics.load(words, W.PRODUCER_BELLS) !== 0) ringBells(words, 'producer');
}

/** Gives `role` back, if this thread still holds it. */
function giveRoleBack(words: Int32Array, role: Role): void {
  const at = ROLE_WORDS[role];
  // The start first: once the tid is 0, another thread may claim the role and record its own start.
  if (Atomics.load(words, at.tid) !== THREAD_IDENTITY.tid) return;
  Atomics.store(words, at.start, 0);
  Atomics.compareExchange(words, at.tid, THREAD_IDENTITY.tid, 0);
}

/**
 * A doorbell of a handle (native/doorbell.cc): a datagram socket that
 * becomes readable when the other side rings it, listed in the table of
 * each side it waits as (a consumer's bell is rung by producers after they
 * publish, a producer's by consumers after they make room).
 */
interface Bell {
  readonly words: Int32Array;
  readonly fd: number;
  readonly owned: OwnedFd;
  /** Its address: the token bellOpen drew, high word then low word. */
  readonly token: readonly [number, number];
  /** Its slot in the table of each side it is listed for (none while unlisted). */
  readonly slots: Partial<Record<Role, number>>;
  /** The event loop's watch of it, for the handle's own async waits. */
  watch: Watch | undefined;
  closed: boolean;
}

/**
 * Takes a [tid][start] pair of header words (a role, a doorbell slot) for
 * this thread if `free(tid, start)` says nobody live holds it; false if
 * somebody does. The start word is cleared first, by compare-and-swap: a
 * thread that read the new holder's tid beside the old holder's start
 * would think the new holder dead too and take the pair from it. A start
 * of 0 ("being recorded") makes others judge the holder by its tid alone.
 */
function claimPair(words: Int32Array, tidAt: number, startAt: number, free: (tid: number, start: number) => boolean): boolean {
  const me = THREAD_IDENTITY.tid;
  for (;;) {
    // The start before the tid: a new holder clears the start before it writes its tid, so a pair read in this
    // order whose start still holds (the compare-and-swap below) belongs together.
    const start = Atomics.load(words, startAt);
    const holder = Atomics.load(words, tidAt);
    if (!free(holder, start >>> 0)) return false;
    if (Atomics.compareExchange(words, startAt, start, 0) !== start) continue;
    if (Atomics.compareExchange(words, tidAt, holder, me) !== holder) continue;
    Atomics.store(words, startAt, THREAD_IDENTITY.start);
    return true;
  }
}

const slotWord = (role: Role, slot: number): number => BELL_TABLE[role] + slot * BELL_SLOT_WORDS;

/**
 * Whether a slot holding (tid, start) may be taken: nobody's, a dead
 * thread's, or one a dead thread of this thread's id left (another start).
 */
function slotFree(tid: number, start: number): boolean {
  if (tid === 0) return true;
  if (tid === THREAD_IDENTITY.tid) return start !== 0 && start !== THREAD_IDENTITY.start >>> 0;
  return !native.threadAlive(tid, start);
}

/** Lists `bell` in `role`'s table: a free slot, or one whose thread died; its token written once the slot is this thread's. */
function listBell(bell: Bell, role: Role, address: string): void {
  const words = bell.words;
  for (let slot = 0; slot < BELL_SLOTS; slot++) {
    const at = slotWord(role, slot);
    if (!claimPair(words, at + SLOT.TID, at + SLOT.START, slotFree)) continue;
    Atomics.store(words, at + SLOT.TOKEN, bell.token[0]);
    Atomics.store(words, at + SLOT.TOKEN + 1, bell.token[1]);
    bell.slots[role] = slot;
    return;
  }
  throw new IpcError('ERR_IPC_LIMIT', `${address}: the ${BELL_SLOTS} doorbells of its ${role}s are taken: live threads have that many ` +
    'select calls, Poller registrations and waiting async calls on that side at once. Watch it from fewer places at once ' +
    '(one Poller registration per handle is enough), or close what is done.', { address });
}

/**
 * Takes `bell` out of `role`'s table, if its slot is still its own (a
 * process that overwrote the table may have handed it to another thread):
 * the token first, so that a ringer never rings a half-cleared slot.
 */
function unlistBell(bell: Bell, role: Role): void {
  const slot = bell.slots[role];
  if (slot === undefined) return;
  delete bell.slots[role];
  const words = bell.words;
  const at = slotWord(role, slot);
  const ours = Atomics.load(words, at + SLOT.TID) === THREAD_IDENTITY.tid && Atomics.load(words, at + SLOT.TOKEN) === bell.token[0] &&
    Atomics.load(words, at + SLOT.TOKEN + 1) === bell.token[1];
  if (!ours) return;
  Atomics.and(words, BELL_MASK[role], ~(1 << slot));
  Atomics.store(words, at + SLOT.TOKEN, 0);
  Atomics.store(words, at + SLOT.TOKEN + 1, 0);
  Atomics.store(words, at + SLOT.START, 0);
  Atomics.compareExchange(words, at + SLOT.TID, THREAD_IDENTITY.tid, 0);
}

/** A new doorbell, listed for `roles`. */
function openBell(words: Int32Array, roles: readonly Role[], address: string): Bell {
  // bellOpen writes the token it drew into the two words given: a scratch pair of this handle's own.
  const scratch = new Int32Array(2);
  const fd = native.bellOpen(scratch, 0);
  if (fd < 0) throw descriptorError(fd, 'socket', address);
  const bell: Bell = { words, fd, owned: new OwnedFd(fd, true), token: [scratch[0]!, scratch[1]!], slots: {}, watch: undefined, closed: false };
  try {
    for (const role of roles) listBell(bell, role, address);
    return bell;
  } catch (err) {
    closeBell(bell);
    throw err;
  }
}

/** Asks the other side to ring `bell` after its next move (as `role`). */
function armBell(bell: Bell, role: Role): void {
  const slot = bell.slots[role];
  if (!bell.closed && slot !== undefined) Atomics.or(bell.words, BELL_MASK[role], 1 << slot);
}

/** Empties a bell: what rang it has been seen. */
function drainBell(bell: Bell): void {
  if (!bell.closed) native.bellDrain(bell.fd);
}

function closeBell(bell: Bell): void {
  if (bell.closed) return;
  for (const role of ['producer', 'consumer'] as const) unlistBell(bell, role);
  bell.closed = true;
  // Out of the event loop's epoll set before the number can be reused.
  bell.watch?.release();
  bell.watch = undefined;
  bell.owned.close();
}

/**
 * Rings the bells of `role`'s waiters that asked for it. Best effort: a
 * bell that cannot be rung (its socket is gone: its thread died) is left;
 * a waiter also looks again on its own every so often.
 */
function ringBells(words: Int32Array, role: Role): void {
  let mask = Atomics.exchange(words, BELL_MASK[role], 0);
  while (mask !== 0) {
    const low = mask & -mask;
    native.bellRing(words, slotWord(role, 31 - Math.clz32(low)) + SLOT.TOKEN);
    mask ^= low;
  }
}

/** What a {@link BellLane} needs of its channel. */
interface BellLaneHooks {
  role: Role;
  /** The handle's bell for this side's async waits, listed in the side's table (opened on first use, kept until close). */
  bell(): Bell;
  /** A call starts to wait (counted in the statistics). */
  waited(): void;
  /** The error to fail waiting calls with when the peer died, else undefined. */
  peerGone(): IpcError | undefined;
  /** A ring came `ms` after the calls started to wait (the adaptive spin learns from it). */
  rang(ms: number): void;
}

/**
 * The async calls of one side of a handle: attempted again, in order, when
 * the handle's doorbell rings, on the event loop (no waiter thread, no
 * thread switch). While calls wait, the side also looks by itself after 20
 * ms, then after twice as long each time up to a second: a dead peer fails
 * them with ERR_IPC_PEER_DEAD, and a ring another process suppressed (by
 * writing over the BELLS word) costs a delay, never a hang.
 */
class BellLane extends NotifyLane implements ReadinessSubscriber {
  readonly #hooks: BellLaneHooks;
  #bell: Bell | undefined;
  #looks: LookTimer | undefined;
  #since = 0;

  constructor(owner: LaneOwner, spin: number, hooks: BellLaneHooks) {
    const self: { lane?: BellLane } = {};
    super(owner, spin, () => self.lane!.#start(), () => self.lane!.#stop());
    self.lane = this;
    this.#hooks = hooks;
  }

  override enqueue<T>(what: string, op: Operation<T>, timeout: number, signal: AbortSignal | undefined, left = timeout): Promise<T> {
    this.#hooks.waited();
    return super.enqueue(what, op, timeout, signal, left);
  }

  #start(): void {
    const bell = this.#hooks.bell();
    try {
      if (bell.watch === undefined) bell.watch = watchDescriptor(bell.fd);
      bell.watch.subscribe(this, READABLE);
    } catch (err) {
      // The lane is not armed (no #stop will come): the slot goes back now.
      unlistBell(bell, this.#hooks.role);
      throw err;
    }
    this.#bell = bell;
    this.#since = performance.now();
    this.#look();
    this.#looks = new LookTimer(() => {
      this.#look();
      const gone = this.busy ? this.#hooks.peerGone() : undefined;
      if (gone !== undefined) this.rejectAll(gone);
    });
  }

  #stop(): void {
    this.#looks?.stop();
    this.#looks = undefined;
    const bell = this.#bell;
    this.#bell = undefined;
    if (bell === undefined || bell.closed) return;
    bell.watch?.unsubscribe(this);
    // The slot goes back while nothing waits (a side lists 32 at most); the socket stays, for the next wait.
    unlistBell(bell, this.#hooks.role);
  }

  /** Empties the bell, asks for the next ring, then attempts the calls (in that order: a move after the attempt rings). */
  #look(): void {
    const bell = this.#bell;
    if (bell === undefined || bell.closed) return;
    drainBell(bell);
    armBell(bell, this.#hooks.role);
    this.wake();
  }

  onReady(): void {
    this.#hooks.rang(performance.now() - this.#since);
    this.#looks?.soon();
    this.#look();
    this.#since = performance.now();
  }
}

/**
 * A bounded message channel in shared memory between producers and
 * consumers in any processes (or threads). `send` waits while the ring is
 * full and `receive` while it is empty, with the blocking triple
 * (`send`/`sendSync`/`trySend`, `receive`/`receiveSync`/`tryReceive`),
 * async iteration and codecs.
 *
 * By default a side has one holder: the first handle that sends takes the
 * producer role, the first that receives the consumer role (one handle may
 * hold both); another live thread trying a held role gets `ERR_IPC_BUSY`. A
 * role whose holder died is taken over. A side waiting for a peer that died
 * (a producer on a full ring, a consumer on an empty one) fails with
 * `ERR_IPC_PEER_DEAD`. A side created `'multi'` is shared by any number of
 * handles, which take turns through a robust mutex in the header (a peer's
 * death is then not reported: the side has no single peer).
 *
 * @example
 * ```ts
 * import { Channel } from 'ipckit';
 *
 * // Two handles in one process here; usually the producer and the consumer
 * // are two processes that open the same name.
 * const producer = Channel.create('/ipckit-example-channel', { capacity: 1 << 16 });
 * const consumer = Channel.open('/ipckit-example-channel');
 * try {
 *   await producer.send('hello');
 *   const { data } = await consumer.receive({ timeout: 1000 });
 *   console.log(data.toString()); // hello
 * } finally {
 *   consumer.close();
 *   producer.close();
 *   Channel.unlink('/ipckit-example-channel');
 * }
 * ```
 */
export class Channel<T = Buffer> extends Handle implements AsyncIterable<ChannelMessage<T>> {
  readonly #segment: PosixSharedMemory;
  readonly #words: Int32Array;
  readonly #bytes: Uint8Array;
  /** The whole segment as words: record headers live in the ring. */
  readonly #ringWords: Int32Array;
  /** Bytes of the ring, a power of two. */
  readonly capacity: number;
  /** MULTI_PRODUCERS | MULTI_CONSUMERS, as the creator set them. */
  readonly #modes: number;
  /** The mutexes of the shared sides, opened when first needed. */
  readonly #sideLocks: { producer?: Mutex; consumer?: Mutex } = {};
  /** Aborted by close(): ends the waits for a turn. */
  readonly #closing = new AbortController();
  /** Waits for a turn in progress (close() keeps the segment mapped until they settle). */
  readonly #acquiring = new Set<Promise<void>>();
  /** Largest message in bytes, fixed at creation. */
  readonly maxMessageSize: number;
  readonly #mask: number;
  readonly #codec: Codec<T>;
  readonly #sendLane: BellLane;
  readonly #receiveLane: BellLane;
  readonly #state: HeldState;
  /** The bell of each side's async waits (opened on first use). */
  readonly #laneBells: Partial<Record<Role, Bell>> = {};
  /** The producer's position and its cached copy of HEAD. */
  #tail = 0;
  #headCache = 0;
  /** The consumer's position and its cached copy of TAIL. */
  #head = 0;
  #tailCache = 0;
  /** A loan not committed yet: where its record starts (after any padding) and its room. */
  #loan: { position: number; room: number; view: Uint8Array } | undefined;
  /**
   * How long each side spins now, µs: halved after a spin that did not
   * pay (the peer was not running), down to an eighth of the spin option;
   * doubled (up to the option) after one that did or after a sleep shorter
   * than a spin: an adaptive spin.
   */
  readonly #spinBudget: Record<Role, number> = { producer: Infinity, consumer: Infinity };
  /** The spin option in effect (0 with one CPU). */
  readonly #spin: number;
  /** @internal Bumped whenever a view's space goes back to the producer. */
  viewGeneration = 0;
  /** Messages a batch took from the ring but did not hand over (the codec refused one): receives take these first. */
  readonly #held = new Held<Buffer>();

  private constructor(segment: PosixSharedMemory, layout: Layout, codec: Codec<T>, spin: number) {
    super();
    this.#segment = segment;
    const words = new Int32Array(segment.buffer, 0, DATA_OFFSET / 4);
    this.#words = words;
    // The values checked, never the words again: another process may change them meanwhile.
    this.capacity = layout.capacity;
    this.maxMessageSize = layout.maxMessageSize;
    this.#modes = layout.modes;
    this.#bytes = new Uint8Array(segment.buffer, DATA_OFFSET, this.capacity);
    this.#ringWords = new Int32Array(segment.buffer, 0, (DATA_OFFSET + this.capacity) / 4);
    this.#mask = this.capacity - 1;
    this.#codec = codec;
    // Spinning only pays when the peer runs at the same time: with one CPU (taskset -c 0), sleep at once.
    this.#spin = MULTI_CPU ? spin : 0;
    // The socket that rings the other side's bells, made now: ringing must not need a descriptor later.
    const ringer = native.bellRinger(1);
    if (ringer < 0) throw descriptorError(ringer, 'socket', segment.name);
    this.#sendLane = new BellLane(this, this.#spin, this.#laneHooks('producer'));
    this.#receiveLane = new BellLane(this, this.#spin, this.#laneHooks('consumer'));
    this.#state = { words, roles: new Set(), bells: new Set(), turns: {}, viewEnd: undefined, ringer: true };
    this.holdRelease(releaseCollected(this.#state));
  }

  /** The segment's name. */
  get address(): string {
    return this.#segment.name;
  }

  #laneHooks(role: Role): BellLaneHooks {
    const peer: Role = role === 'producer' ? 'consumer' : 'producer';
    return {
      role,
      bell: () => {
        const bell = this.#laneBells[role] ??= this.#openBell([]);
        if (bell.slots[role] === undefined) listBell(bell, role, this.address);
        return bell;
      },
      waited: () => Atomics.add(this.#words, role === 'producer' ? W.PRODUCER_WAITS : W.CONSUMER_WAITS, 1),
      peerGone: () => (this.#peerDead(peer) ? this.#peerDeadError(peer) : undefined),
      rang: (ms) => {
        // Rung sooner than a full spin would have lasted: spinning would have caught it; spin again (up to the option).
        if (this.#spin > 0 && ms * 1000 < this.#spin) this.#spinBudget[role] = Math.min(this.#spin, Math.max(1, this.#spinBudget[role] * 2));
      },
    };
  }

  /**
   * @internal For select and Poller: a doorbell for this one wait or
   * registration. Readable interest takes the consumer role (writable the
   * producer role), as a receive (a send) would. Readable: a message is
   * there; writable: a message of maxMessageSize would fit now.
   */
  [pollTarget](interest: Interest = 'readable'): PollTarget {
    this.check('poll');
    const roles: Role[] = [];
    if (interest !== 'writable') roles.push('consumer');
    if (interest !== 'readable') roles.push('producer');
    const held = new Set(this.#state.roles);
    let bell: Bell;
    try {
      for (const role of roles) this.#claim(role);
      bell = this.#openBell(roles);
    } catch (err) {
      // Nothing taken by a target that could not be made is kept (the consumer role of 'both' when the producer's is busy).
      for (const role of roles) {
        if (held.has(role) || !this.#state.roles.has(role)) continue;
        giveRoleBack(this.#words, role);
        this.#state.roles.delete(role);
      }
      throw err;
    }
    const { POLLIN, POLLOUT, POLLNVAL } = native.constants;
    const largest = align8(RECORD_HEADER + this.maxMessageSize);
    return {
      fd: bell.fd,
      // The bell is readable when it rings, whichever side rang it.
      readable: interest === 'writable' ? 0 : READABLE,
      writable: interest === 'readable' ? 0 : READABLE,
      check: () => {
        if (this.closed || bell.closed) return POLLNVAL;
        // Truncated by another process: the wait fails with ERR_IPC_SIZE_MISMATCH, as a receive would.
        this.#segment.check('poll');
        drainBell(bell);
        for (const role of roles) armBell(bell, role);
        return (interest !== 'writable' && this.#hasMessage() ? POLLIN : 0) | (interest !== 'readable' && this.#hasRoom(largest) ? POLLOUT : 0);
      },
      release: () => {
        this.#state.bells.delete(bell);
        closeBell(bell);
      },
    };
  }

  /**
   * Whether a receive of this handle would find a message now: one beyond
   * the view it holds, and on a shared side, a turn nobody else holds (the
   * one who does rings the side when it gives the turn back).
   */
  #hasMessage(): boolean {
    if (this.#held.size > 0) return true;
    const w = this.#words;
    if (this.#state.viewEnd !== undefined) return position(w, W.TAIL) !== this.#state.viewEnd;
    if (!this.#shared('consumer')) return position(w, W.TAIL) !== this.#head;
    return position(w, W.TAIL) !== position(w, W.HEAD) && !this.#turnTakenElsewhere('consumer');
  }

  /** Whether a send of this handle of a record of `size` bytes (and the padding before it, if needed) would go now. */
  #hasRoom(size: number): boolean {
    // A loan in the making refuses sends until its commit.
    if (this.#loan !== undefined) return false;
    if (this.#shared('producer') && this.#turnTakenElsewhere('producer')) return false;
    const w = this.#words;
    const tail = position(w, W.TAIL);
    return this.capacity - ((tail - position(w, W.HEAD)) >>> 0) >= this.#padBefore(tail, size) + size;
  }

  /** The padding record a record of `size` bytes written at `tail` needs first: the rest of the ring if it does not fit there, else 0. */
  #padBefore(tail: number, size: number): number {
    const rest = this.capacity - (tail & this.#mask);
    return rest < size ? rest : 0;
  }

  /** A doorbell of this handle, listed for `roles` (closed with the handle). */
  #openBell(roles: readonly Role[]): Bell {
    const bell = openBell(this.#words, roles, this.address);
    this.#state.bells.add(bell);
    return bell;
  }

  /** @internal Closed, or the segment truncated by another process (ERR_IPC_SIZE_MISMATCH). */
  override check(what: string): void {
    super.check(what);
    this.#segment.check(what);
  }

  /** Creates a channel; fails with `EEXIST` if the name is taken. */
  static create<T = any>(name: string, options: ChannelCreateOptions<T> & { codec: 'json' | 'msgpack' }): Channel<T>;
  static create<T>(name: string, options: ChannelCreateOptions<T> & { codec: Codec<T> }): Channel<T>;
  static create<T = Buffer>(name: string, options?: ChannelCreateOptions<T>): Channel<T>;
  static create<T>(name: string, options?: ChannelCreateOptions<T>): Channel<T> {
    const opts = checkOptions(options, ['capacity', 'maxMessageSize', 'producers', 'consumers', 'mode', 'owner', 'codec', 'spin']);
    const layout = layoutOf(opts);
    const handle = handleSettings<T>(opts);
    const segment = PosixSharedMemory.create(name, { size: DATA_OFFSET + layout.capacity, mode: checkMode(opts.mode) });
    initialise(segment, layout);
    return Channel.#wrap<T>(segment, handle);
  }

  /** Opens an existing channel (its size and limits are the creator's). */
  static open<T = any>(name: string, options: ChannelOpenOptions<T> & { codec: 'json' | 'msgpack' }): Channel<T>;
  static open<T>(name: string, options: ChannelOpenOptions<T> & { codec: Codec<T> }): Channel<T>;
  static open<T = Buffer>(name: string, options?: ChannelOpenOptions<T>): Channel<T>;
  static open<T>(name: string, options?: ChannelOpenOptions<T>): Channel<T> {
    const opts = checkOptions(options, ['owner', 'codec', 'spin']);
    const handle = handleSettings<T>(opts);
    return Channel.#wrap<T>(PosixSharedMemory.open(name, { owner: opts.owner }), handle);
  }

  /** Opens the channel, creating it with `options` if there is none (an existing one keeps its own size and limits). */
  static openOrCreate<T = any>(name: string, options: ChannelCreateOptions<T> & { codec: 'json' | 'msgpack' }): Channel<T>;
  static openOrCreate<T>(name: string, options: ChannelCreateOptions<T> & { codec: Codec<T> }): Channel<T>;
  static openOrCreate<T = Buffer>(name: string, options?: ChannelCreateOptions<T>): Channel<T>;
  static openOrCreate<T>(name: string, options?: ChannelCreateOptions<T>): Channel<T> {
    const opts = checkOptions(options, ['capacity', 'maxMessageSize', 'producers', 'consumers', 'mode', 'owner', 'codec', 'spin']);
    const layout = layoutOf(opts);
    const mode = checkMode(opts.mode);
    const handle = handleSettings<T>(opts);
    const segment = createOrOpen(() => {
      try {
        const created = PosixSharedMemory.create(name, { size: DATA_OFFSET + layout.capacity, mode });
        initialise(created, layout);
        return created;
      } catch (err) {
        if (err instanceof IpcError && err.code === 'EEXIST') return undefined;
        throw err;
      }
    }, () => {
      try {
        return PosixSharedMemory.open(name, { owner: opts.owner });
      } catch (err) {
        if (err instanceof IpcError && err.code === 'ENOENT') return undefined;
        throw err;
      }
    }, 'shm_open', name);
    return Channel.#wrap<T>(segment, handle);
  }

  /** Removes the channel's name; processes that have it open keep using it. */
  static unlink(name: string): void {
    PosixSharedMemory.unlink(name);
  }

  /** Removes this channel's name. */
  unlink(): void {
    Channel.unlink(this.address);
  }

  static #wrap<T>(segment: PosixSharedMemory, handle: { codec: Codec<T>; spin: number }): Channel<T> {
    try {
      return new Channel<T>(segment, checkHeader(segment), handle.codec, handle.spin);
    } catch (err) {
      segment.close();
      throw err;
    }
  }

  // ---- sending ------------------------------------------------------------

  /** Sends a message, waiting while the ring is full. */
  send(data: Outgoing<T>, options?: WaitOptions): Promise<void> {
    const call = (o?: WaitOptions): Promise<void> => run(this.#sendLane, 'send', o, [], () => this.#sendOp(this.#encode(data)));
    return this.#shared('producer') ? this.#turn('producer', 'send', options, call, () => false) : call(options);
  }

  /** Sends a message, blocking the calling thread while the ring is full. */
  sendSync(data: Outgoing<T>, options?: SyncWaitOptions): void {
    const call = (o?: SyncWaitOptions): void => runSync(this.#sendLane, 'sendSync', o, [], () => this.#sendOp(this.#encode(data)));
    if (this.#shared('producer')) this.#turnSync('producer', 'sendSync', options, call, () => false);
    else call(options);
  }

  /** Sends if there is room now; false if the ring is full (or, with many producers, another one is sending). */
  trySend(data: Outgoing<T>): boolean {
    if (this.#direct('producer')) {
      const bytes = this.#encode(data);
      return this.#write(bytes, realByteLength(bytes));
    }
    const call = (): boolean => tryRun(this.#sendLane, 'trySend', undefined, [], () => this.#sendOp(this.#encode(data))) !== undefined;
    return this.#shared('producer') ? this.#tryTurn('producer', 'trySend', call, () => false) ?? false : call();
  }

  /**
   * Sends `messages` in order, waiting while the ring is full; one call
   * writes as many as there is room for and publishes them together (one
   * store of the ring's tail, one wake-up of a sleeping consumer). Resolves
   * with how many went: all of them, or, when the timeout, an abort or
   * `close()` came after some had gone, that many. When none went it
   * rejects, as `send` does. Every message is encoded and checked against
   * `maxMessageSize` first: one refused sends none.
   */
  sendMany(messages: readonly Outgoing<T>[], options?: WaitOptions): Promise<number> {
    const call = (o?: WaitOptions): Promise<number> => run(this.#sendLane, 'sendMany', o, [], () => this.#sendManyOp(messages, false));
    return this.#shared('producer') ? this.#turn('producer', 'sendMany', options, call, () => false) : call(options);
  }

  /** The blocking form of {@link sendMany}: how many went. */
  sendManySync(messages: readonly Outgoing<T>[], options?: SyncWaitOptions): number {
    const call = (o?: SyncWaitOptions): number => runSync(this.#sendLane, 'sendManySync', o, [], () => this.#sendManyOp(messages, false));
    return this.#shared('producer') ? this.#turnSync('producer', 'sendManySync', options, call, () => false) : call(options);
  }

  /** Sends what fits now of `messages`, in order: how many went (0 if the ring is full, or another producer of a shared side is sending). */
  trySendMany(messages: readonly Outgoing<T>[]): number {
    const call = (): number => tryRun(this.#sendLane, 'trySendMany', undefined, [], () => this.#sendManyOp(messages, true)) ?? 0;
    return this.#shared('producer') ? this.#tryTurn('producer', 'trySendMany', call, () => false) ?? 0 : call();
  }

  /**
   * Sends the messages of `batch` (a {@link MessageBatch}), in order, as
   * {@link sendMany} sends an array: one native call copies as many as
   * there is room for into the ring, straight from the batch's buffer,
   * and they are published together. No JavaScript work per message; the
   * bytes are raw (the codec is not applied). Every length is checked
   * against `maxMessageSize` first. Resolves with how many went, as
   * `sendMany` does. Leave the batch alone until the call resolves.
   */
  sendBatch(batch: MessageBatch, options?: WaitOptions): Promise<number> {
    return withBatch(batch, (b, release) => {
      const call = (o?: WaitOptions, after?: () => void): Promise<number> =>
        run(this.#sendLane, 'sendBatch', o, [], () => this.#sendPackedOp(b, false), false, after);
      return this.#shared('producer') ? this.#turn('producer', 'sendBatch', options, call, () => false).finally(release) : call(options, release);
    });
  }

  /** The blocking form of {@link sendBatch}: how many went. */
  sendBatchSync(batch: MessageBatch, options?: SyncWaitOptions): number {
    const b = idleBatch(batch);
    const call = (o?: SyncWaitOptions): number => runSync(this.#sendLane, 'sendBatchSync', o, [], () => this.#sendPackedOp(b, false));
    return this.#shared('producer') ? this.#turnSync('producer', 'sendBatchSync', options, call, () => false) : call(options);
  }

  /** Sends what fits now of `batch`, in order: how many went (0 if the ring is full, or another producer of a shared side is sending). */
  trySendBatch(batch: MessageBatch): number {
    const b = idleBatch(batch);
    const call = (): number => tryRun(this.#sendLane, 'trySendBatch', undefined, [], () => this.#sendPackedOp(b, true)) ?? 0;
    return this.#shared('producer') ? this.#tryTurn('producer', 'trySendBatch', call, () => false) ?? 0 : call();
  }

  /**
   * Reserves room for a message of up to `size` bytes in the ring itself
   * and returns it: fill it, then {@link commit} it (with the length used).
   * Nothing is visible to the consumer before the commit. Waits while the
   * ring is full, like `send`.
   */
  loan(size: number, options?: WaitOptions): Promise<Uint8Array> {
    const call = (o?: WaitOptions): Promise<Uint8Array> => run(this.#sendLane, 'loan', o, [], () => this.#loanOp(size));
    // With many producers, the loan keeps the producers' mutex until its commit.
    return this.#shared('producer') ? this.#turn('producer', 'loan', options, call, () => true) : call(options);
  }

  /** The blocking form of {@link loan}. */
  loanSync(size: number, options?: SyncWaitOptions): Uint8Array {
    const call = (o?: SyncWaitOptions): Uint8Array => runSync(this.#sendLane, 'loanSync', o, [], () => this.#loanOp(size));
    return this.#shared('producer') ? this.#turnSync('producer', 'loanSync', options, call, () => true) : call(options);
  }

  /** The loan if there is room now, else undefined. */
  tryLoan(size: number): Uint8Array | undefined {
    const call = (): Uint8Array | undefined => tryRun(this.#sendLane, 'tryLoan', undefined, [], () => this.#loanOp(size));
    return this.#shared('producer') ? this.#tryTurn('producer', 'tryLoan', call, (r) => r !== undefined) : call();
  }

  /** Publishes the loaned message: its first `length` bytes (default all of it). */
  commit(slot: Uint8Array, length = slot?.length): void {
    this.check('commit');
    const loan = this.#loan;
    if (loan === undefined || slot !== loan.view) {
      throw invalidArgument('slot', slot?.constructor?.name, 'the array the last loan returned (each loan is committed once)');
    }
    checkInteger(length, 'length', 0, loan.room);
    this.#loan = undefined;
    this.#publish(loan.position, length);
    this.#releaseSide('producer');
  }

  // ---- receiving ----------------------------------------------------------

  /**
   * Receives a message, waiting while the ring is empty. With `view: true`,
   * resolves with a {@link ChannelView} of the message in the ring (no
   * copy, no codec), valid until the next receive.
   */
  receive(options: WaitOptions & { view: true }): Promise<ChannelView>;
  receive(options?: WaitOptions & { view?: false }): Promise<ChannelMessage<T>>;
  receive(options?: WaitOptions & { view?: boolean }): Promise<ChannelMessage<T> | ChannelView> {
    const call = (o?: WaitOptions & { view?: boolean }): Promise<ChannelMessage<T> | ChannelView> =>
      run(this.#receiveLane, 'receive', o, ['view'], (p) => this.#receiveOp(checkBoolean(p.view, 'view')));
    return this.#shared('consumer') ? this.#turn('consumer', 'receive', options, call, isView) : call(options);
  }

  /** Receives a message, blocking the calling thread while the ring is empty; `view` as in {@link receive}. */
  receiveSync(options: SyncWaitOptions & { view: true }): ChannelView;
  receiveSync(options?: SyncWaitOptions & { view?: false }): ChannelMessage<T>;
  receiveSync(options?: SyncWaitOptions & { view?: boolean }): ChannelMessage<T> | ChannelView {
    const call = (o?: SyncWaitOptions & { view?: boolean }): ChannelMessage<T> | ChannelView =>
      runSync(this.#receiveLane, 'receiveSync', o, ['view'], (p) => this.#receiveOp(checkBoolean(p.view, 'view')));
    return this.#shared('consumer') ? this.#turnSync('consumer', 'receiveSync', options, call, isView) : call(options);
  }

  /** A message if there is one now, else undefined. */
  tryReceive(options: { view: true }): ChannelView | undefined;
  tryReceive(options?: { view?: false }): ChannelMessage<T> | undefined;
  tryReceive(options?: { view?: boolean }): ChannelMessage<T> | ChannelView | undefined {
    if (options === undefined && this.#direct('consumer')) return this.#read(false);
    const call = (): ChannelMessage<T> | ChannelView | undefined =>
      tryRun(this.#receiveLane, 'tryReceive', options, ['view'], (o) => this.#receiveOp(checkBoolean(o.view, 'view')));
    return this.#shared('consumer') ? this.#tryTurn('consumer', 'tryReceive', call, isView) : call();
  }

  /**
   * Receives several messages at once: waits as {@link receive} does for
   * the first, then takes every message in the ring, up to `max` (1 to
   * 1024, default 64), and gives their space back together (one store of
   * the ring's head, one wake-up of a sleeping producer). Never an empty
   * array. A message the codec refuses ends the batch: the ones before it
   * are returned, the next receive fails with its `ERR_IPC_CODEC`, and the
   * ones after it follow.
   */
  receiveMany(options?: ReceiveManyOptions): Promise<ChannelMessage<T>[]> {
    const call = (o?: ReceiveManyOptions): Promise<ChannelMessage<T>[]> =>
      run(this.#receiveLane, 'receiveMany', o, ['max'], (p) => this.#receiveManyOp(p.max));
    return this.#shared('consumer') ? this.#turn('consumer', 'receiveMany', options, call, () => false) : call(options);
  }

  /** The blocking form of {@link receiveMany}. */
  receiveManySync(options?: ReceiveManySyncOptions): ChannelMessage<T>[] {
    const call = (o?: ReceiveManySyncOptions): ChannelMessage<T>[] =>
      runSync(this.#receiveLane, 'receiveManySync', o, ['max'], (p) => this.#receiveManyOp(p.max));
    return this.#shared('consumer') ? this.#turnSync('consumer', 'receiveManySync', options, call, () => false) : call(options);
  }

  /** The messages in the ring now, up to `max`: `[]` if none (or another consumer of a shared side is receiving). */
  tryReceiveMany(options?: { max?: number }): ChannelMessage<T>[] {
    const call = (): ChannelMessage<T>[] => tryRun(this.#receiveLane, 'tryReceiveMany', options, ['max'], (o) => this.#receiveManyOp(o.max)) ?? [];
    return this.#shared('consumer') ? this.#tryTurn('consumer', 'tryReceiveMany', call, () => false) ?? [] : call();
  }

  /**
   * Receives messages into `batch` (a {@link MessageBatch} of yours,
   * reused from call to call): clears it, waits as {@link receive} does
   * for the first message, then takes every message in the ring now that
   * fits, up to the batch's room in messages and bytes, and gives their
   * space back together. One native call copies them out of the ring into
   * the batch's buffer: no allocation and no JavaScript work per message;
   * the bytes are raw (the codec is not applied). Resolves with how many
   * the batch holds (at least one). A message larger than the whole batch
   * stays in the channel and fails the call with
   * `ERR_IPC_MESSAGE_TOO_LARGE` (a batch of `maxMessageSize` bytes always
   * has room for one).
   */
  receiveBatch(batch: MessageBatch, options?: WaitOptions): Promise<number> {
    return withBatch(batch, (b, release) => {
      const call = (o?: WaitOptions, after?: () => void): Promise<number> =>
        run(this.#receiveLane, 'receiveBatch', o, [], () => this.#receivePackedOp(b), false, after);
      return this.#shared('consumer') ? this.#turn('consumer', 'receiveBatch', options, call, () => false).finally(release) : call(options, release);
    });
  }

  /** The blocking form of {@link receiveBatch}. */
  receiveBatchSync(batch: MessageBatch, options?: SyncWaitOptions): number {
    const b = idleBatch(batch);
    const call = (o?: SyncWaitOptions): number => runSync(this.#receiveLane, 'receiveBatchSync', o, [], () => this.#receivePackedOp(b));
    return this.#shared('consumer') ? this.#turnSync('consumer', 'receiveBatchSync', options, call, () => false) : call(options);
  }

  /** {@link receiveBatch} of the messages in the ring now: 0 if none (or another consumer of a shared side is receiving; the batch is then empty). */
  tryReceiveBatch(batch: MessageBatch): number {
    const b = idleBatch(batch);
    const call = (): number | undefined => tryRun(this.#receiveLane, 'tryReceiveBatch', undefined, [], () => this.#receivePackedOp(b));
    const n = this.#shared('consumer') ? this.#tryTurn('consumer', 'tryReceiveBatch', call, () => false) : call();
    if (n !== undefined) return n;
    b.clear();
    return 0;
  }

  /**
   * Receives the next message into `target` (no allocation, no codec: for
   * high-volume consumers reusing one buffer), waiting while the ring is
   * empty; resolves to its length. A message longer than `target` stays in
   * the channel and fails the call with `ERR_IPC_MESSAGE_TOO_LARGE` (a
   * target of `maxMessageSize` bytes always fits).
   */
  receiveInto(target: Uint8Array, options?: WaitOptions): Promise<number> {
    const call = (o?: WaitOptions): Promise<number> => run(this.#receiveLane, 'receiveInto', o, [], () => this.#receiveIntoOp(target));
    return this.#shared('consumer') ? this.#turn('consumer', 'receiveInto', options, call, () => false) : call(options);
  }

  /** The blocking form of {@link receiveInto}. */
  receiveIntoSync(target: Uint8Array, options?: SyncWaitOptions): number {
    const call = (o?: SyncWaitOptions): number => runSync(this.#receiveLane, 'receiveIntoSync', o, [], () => this.#receiveIntoOp(target));
    return this.#shared('consumer') ? this.#turnSync('consumer', 'receiveIntoSync', options, call, () => false) : call(options);
  }

  /** The next message into `target` if there is one now (its length), else undefined. */
  tryReceiveInto(target: Uint8Array): number | undefined {
    if (this.#direct('consumer')) return this.#readInto(checkBytes(target, 'target'));
    const call = (): number | undefined => tryRun(this.#receiveLane, 'tryReceiveInto', undefined, [], () => this.#receiveIntoOp(target));
    return this.#shared('consumer') ? this.#tryTurn('consumer', 'tryReceiveInto', call, () => false) : call();
  }

  /**
   * Whether a try call of `role` may go straight to the ring, past the
   * engine (a third of a busy-polling send and receive's time; the sync
   * calls keep the engine: going around it made pinned round trips slower,
   * the wake-up order of the two processes changing): the common case of a single side whose role this handle holds
   * already, with no call of the handle waiting (it would go first) and no
   * loan in the making. (A truncated segment is still reported: the ring
   * calls check it.)
   */
  #direct(role: Role): boolean {
    if (this.closed || !this.#state.roles.has(role)) return false;
    return role === 'consumer' ? !this.#receiveLane.busy : !this.#sendLane.busy && this.#loan === undefined;
  }

  // ---- shared sides: one producer (or consumer) at a time, by a robust mutex ----

  #shared(role: Role): boolean {
    return (this.#modes & (role === 'producer' ? MULTI_PRODUCERS : MULTI_CONSUMERS)) !== 0;
  }

  #sideLock(role: Role): Mutex {
    return this.#sideLocks[role] ??= Mutex.open(this.#segment, SIDE_LOCK[role], { spin: 0 });
  }

  /**
   * Runs `take` (which takes the side's mutex). A holder that died mid-call
   * left nothing to repair (the positions move only once a record is whole):
   * the takeover is acknowledged at once. Then this handle continues from the
   * shared positions, which other handles of the side moved.
   */
  #tookSide(role: Role, lock: Mutex, take: () => boolean): boolean {
    let taken: boolean;
    try {
      taken = take();
    } catch (err) {
      if (!(err instanceof IpcError && err.code === 'ERR_IPC_OWNER_DIED')) throw err;
      lock.markConsistent();
      taken = true;
    }
    if (!taken) return false;
    this.#resume(role);
    return true;
  }

  /** Continues `role` from the shared positions (another handle, or a dead holder, moved them). */
  #resume(role: Role): void {
    const w = this.#words;
    if (role === 'producer') {
      this.#tail = position(w, W.TAIL);
      this.#headCache = position(w, W.HEAD);
    } else {
      this.#head = position(w, W.HEAD);
      this.#tailCache = position(w, W.TAIL);
    }
  }

  /** Gives the side's mutex back if this handle holds it across calls. */
  #releaseSide(role: Role): void {
    const lock = this.#state.turns[role];
    if (lock === undefined) return;
    delete this.#state.turns[role];
    lock.unlock();
    // Handles of the side that watch it (select, Poller) saw it as not ready while the turn was taken: they look again.
    if (Atomics.load(this.#words, BELL_MASK[role]) !== 0) ringBells(this.#words, role);
  }

  /** Whether another handle (or a live thread elsewhere) holds the turn of shared side `role` now. */
  #turnTakenElsewhere(role: Role): boolean {
    // A holder that died leaves the turn to whoever takes it next: ready, so that someone does.
    return this.#state.turns[role] === undefined && this.#sideLock(role).heldByLiveThread();
  }

  /** The side's mutex for one call: this handle's, if a loan or view still holds it, is given back first. */
  #enterSide(role: Role, what: string): Mutex {
    this.check(what);
    if (role === 'consumer') this.releaseView();
    else if (this.#loan !== undefined) throw invalidArgument(what, 'a pending loan', 'commit() of the loan first: a producer has one message in the making');
    return this.#sideLock(role);
  }

  /** Runs `call` holding the side's mutex, and gives it back unless `keep(result)` (a loan, a view: held until released). */
  #holding<R>(role: Role, call: () => R, keep: (r: R) => boolean): R {
    this.#state.turns[role] = this.#sideLock(role);
    let kept = false;
    try {
      const result = call();
      kept = keep(result);
      return result;
    } finally {
      if (!kept) this.#releaseSide(role);
    }
  }

  /** What is left of a timeout started at `started`, in whole ms (rounded up: a call never waits less than asked). */
  static #left(timeout: number | undefined, started: number): number | undefined {
    return timeout === undefined || timeout === Infinity ? timeout : Math.max(0, Math.ceil(timeout - (performance.now() - started)));
  }

  /**
   * A failure of a turn's parts as the caller's call: a timeout (of the wait
   * for the turn, or of the call after it) is the call's own timeout; the
   * turn held by this thread's own pending async call is, for a sync call,
   * a timeout when it was not to wait, else a deadlock.
   */
  #turnError(err: unknown, what: string, timeout: number | undefined): unknown {
    if (!(err instanceof IpcError)) return err;
    if (err.code === 'ERR_IPC_TIMEOUT' && timeout !== undefined) return timeoutError(what, this.address, timeout);
    if (err.code === 'ERR_IPC_DEADLOCK') {
      if (timeout === 0) return timeoutError(what, this.address, 0);
      return new IpcError('ERR_IPC_DEADLOCK', `${what} on ${this.address}: an async call of this thread waits holding this side's turn, ` +
        'and it can only finish once this thread returns to its event loop. Await it, or use the async form.', { address: this.address });
    }
    return err;
  }

  /** An async call of a shared side, holding its mutex. */
  async #turn<O extends WaitOptions, R>(role: Role, what: string, options: O | undefined, call: (o?: O) => Promise<R>,
    keep: (r: R) => boolean): Promise<R> {
    const lock = this.#enterSide(role, what);
    const started = performance.now();
    const timeout = options?.timeout;
    // close() aborts a wait for the turn, and waits for it to settle before it unmaps the segment (see released()).
    const asked = checkSignal(options?.signal);
    const signal = asked === undefined ? this.#closing.signal : AbortSignal.any([asked, this.#closing.signal]);
    const acquiring = lock.lock({ timeout, signal });
    this.#acquiring.add(acquiring);
    let lockError: unknown;
    try {
      await acquiring;
    } catch (err) {
      lockError = err;
    } finally {
      this.#acquiring.delete(acquiring);
    }
    let kept = false;
    let mine = false;
    try {
      this.#tookSide(role, lock, () => {
        if (lockError !== undefined) throw lockError;
        return true;
      });
      // From here the turn is this call's: close() gives it back if it comes first. (A call that did not get it
      // must not give back the turn another call of this handle holds.)
      this.#state.turns[role] = lock;
      mine = true;
      this.check(what);
      const result = await call(options === undefined ? undefined : { ...options, timeout: Channel.#left(timeout, started) });
      kept = keep(result);
      return result;
    } catch (err) {
      throw this.#turnError(this.closed ? this.closedError(what) : err, what, timeout);
    } finally {
      if (mine && !kept) this.#releaseSide(role);
    }
  }

  /** A sync call of a shared side, holding its mutex. */
  #turnSync<O extends SyncWaitOptions, R>(role: Role, what: string, options: O | undefined, call: (o?: O) => R, keep: (r: R) => boolean): R {
    const lock = this.#enterSide(role, what);
    const started = performance.now();
    const timeout = options?.timeout;
    try {
      this.#tookSide(role, lock, () => {
        lock.lockSync(options === undefined ? undefined : { timeout });
        return true;
      });
      return this.#holding(role, () => call(options === undefined ? undefined : { ...options, timeout: Channel.#left(timeout, started) }), keep);
    } catch (err) {
      throw this.#turnError(err, what, timeout);
    }
  }

  /** A try call of a shared side: undefined when another handle holds the side now. */
  #tryTurn<R>(role: Role, what: string, call: () => R, keep: (r: R) => boolean): R | undefined {
    const lock = this.#enterSide(role, what);
    if (!this.#tookSide(role, lock, () => lock.tryLock())) return undefined;
    return this.#holding(role, call, keep);
  }

  /** Receives until the channel is closed (then the loop ends quietly). */
  messages(options?: { signal?: AbortSignal }): AsyncGenerator<ChannelMessage<T>, void, undefined> {
    const signal = checkSignal(checkOptions(options, ['signal']).signal);
    // A shared consumer side goes one message per step: a batch would take messages another consumer is free to handle.
    if (this.#shared('consumer')) return receiveUntilClosed(() => this.closed, () => this.receive({ signal }));
    // A single consumer's loop goes in batches; what a batch took and the loop did not reach goes back to this handle.
    return batchedIteration(() => this.closed,
      () => run(this.#receiveLane, 'receive', { signal }, [], () => this.#rawManyOp(ITERATION_BATCH)).then((b) => b.raw),
      (bytes) => ({ data: decodeWith(this.#codec, bytes, this.address) }), (rest) => this.#held.putBack(rest));
  }

  /** `for await (const message of channel)`: {@link messages} without a signal. */
  [Symbol.asyncIterator](): AsyncGenerator<ChannelMessage<T>, void, undefined> {
    return this.messages();
  }

  /** @internal Gives the space of the current view back. */
  releaseView(): void {
    if (this.#state.viewEnd === undefined) return;
    this.#consumed(this.#state.viewEnd);
    this.#state.viewEnd = undefined;
    this.viewGeneration++;
    this.#releaseSide('consumer');
  }

  /** The channel's counters, read from its header (one word at a time: not one snapshot). */
  stats(): ChannelStats {
    this.check('stats');
    const w = this.#words;
    const sent = readCounter(w, W.SENT);
    const received = readCounter(w, W.RECEIVED);
    return {
      sent,
      sentBytes: readCounter(w, W.SENT_BYTES),
      received,
      receivedBytes: readCounter(w, W.RECEIVED_BYTES),
      depth: Math.max(0, sent - received),
      depthBytes: (position(w, W.TAIL) - position(w, W.HEAD)) >>> 0,
      producerWaits: Atomics.load(w, W.PRODUCER_WAITS) >>> 0,
      consumerWaits: Atomics.load(w, W.CONSUMER_WAITS) >>> 0,
      capacity: this.capacity,
      maxMessageSize: this.maxMessageSize,
      producers: this.#shared('producer') ? 'multi' : 'single',
      consumers: this.#shared('consumer') ? 'multi' : 'single',
      producerTid: Atomics.load(w, W.PRODUCER_TID),
      consumerTid: Atomics.load(w, W.CONSUMER_TID),
    };
  }

  protected override released(): void {
    // A view's space goes back; a loan never committed is dropped (nothing was published).
    this.releaseView();
    this.#loan = undefined;
    // A turn a call (or a loan, or a view) holds goes back to the other handles of the side.
    this.#releaseSide('producer');
    this.#releaseSide('consumer');
    const state = this.#state;
    giveBack(state);
    state.words = undefined;
    // A wait for a turn may be taking it right now: it is aborted, and the segment stays mapped until it has
    // settled (the call then gives back what it took, and rings the side: the ringing socket stays until then
    // too), or the mutex would stay taken by this thread for ever.
    this.#closing.abort();
    const pending = [...this.#acquiring];
    const segment = this.#segment;
    const unmap = (): void => {
      releaseRinger(state);
      segment.close();
    };
    if (pending.length === 0) unmap();
    else void Promise.allSettled(pending).then(() => setImmediate(unmap));
  }

  // ---- the protocol -------------------------------------------------------

  #encode(data: Outgoing<T>): Uint8Array {
    const bytes = encodeWith(this.#codec, data as T, this.address);
    const size = realByteLength(bytes);
    if (size > this.maxMessageSize) throw this.#tooLarge(size);
    return bytes;
  }

  #tooLarge(size: number): IpcError {
    return new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `A ${size}-byte message exceeds the maxMessageSize of ${this.address} ` +
      `(${this.maxMessageSize} bytes, set when it was created). Create the channel with a larger one, or split the message.`,
    { address: this.address });
  }

  /** Takes `role` for this handle, or fails with ERR_IPC_BUSY while another live thread (or handle) holds it. */
  #claim(role: Role): void {
    // A shared side has no single holder: its mutex, taken per call, stands for the role.
    if (this.#state.roles.has(role) || this.#shared(role)) return;
    const w = this.#words;
    const at = ROLE_WORDS[role];
    const me = THREAD_IDENTITY.tid;
    let busy: IpcError | undefined;
    const free = (holder: number, start: number): boolean => {
      if (holder === me && (start === THREAD_IDENTITY.start >>> 0 || start === 0)) {
        busy = new IpcError('ERR_IPC_BUSY', `Another handle of this thread is the ${role} of ${this.address}: a channel has one ${role}. ` +
          `Use that handle, or close it first.`, { address: this.address });
      } else if (holder !== 0 && holder !== me && native.threadAlive(holder, start)) {
        // A start of 0: its holder is still recording it; then the thread's existence is what counts.
        busy = new IpcError('ERR_IPC_BUSY', `Thread ${holder} is the ${role} of ${this.address}: a channel has one ${role}. ` +
          `Wait until it closes the channel, or use another channel.`, { address: this.address });
      } else {
        return true;
      }
      return false;
    };
    if (!claimPair(w, at.tid, at.start, free)) throw busy!;
    this.#state.roles.add(role);
    // The other side may sleep watching the previous holder (or none): wake it, so that it watches this one.
    if (Atomics.load(w, role === 'producer' ? W.CONSUMER_SLEEPING : W.PRODUCER_SLEEPING) !== 0) {
      native.futexWake(w, role === 'producer' ? W.TAIL : W.HEAD, 1);
    }
    // Taking a role over from a dead holder starts where the shared position is: what it published stays, what it had not is gone.
    this.#resume(role);
  }

  /** Whether the thread holding `role` has died (a role nobody holds has no one to die). */
  #peerDead(role: Role): boolean {
    const w = this.#words;
    const at = ROLE_WORDS[role];
    const holder = Atomics.load(w, at.tid);
    return holder !== 0 && !native.threadAlive(holder, Atomics.load(w, at.start) >>> 0);
  }

  #peerDeadError(role: Role): IpcError {
    return new IpcError('ERR_IPC_PEER_DEAD', `The ${role} of ${this.address} (thread ${Atomics.load(this.#words, ROLE_WORDS[role].tid)}) died: ` +
      `${role === 'producer' ? 'nothing more will be sent until another producer opens the channel' : 'nothing will make room until another consumer opens the channel'}.`,
    { address: this.address });
  }

  /** The ring position where a record of `size` bytes goes, if there is room now (a padding record first if needed). */
  #reserve(size: number): number | undefined {
    const w = this.#words;
    let tail = this.#tail;
    // Records start at multiples of 8: a TAIL another process moved elsewhere would put a header past the ring's end.
    if ((tail & 7) !== 0) throw this.#corrupted(`TAIL ${tail} is not a record's start`);
    const offset = tail & this.#mask;
    const pad = this.#padBefore(tail, size);
    const needed = pad + size;
    if (this.capacity - ((tail - this.#headCache) >>> 0) < needed) {
      this.#headCache = position(w, W.HEAD);
      const used = (tail - this.#headCache) >>> 0;
      if (used > this.capacity) throw this.#corrupted(`HEAD ${this.#headCache} is ahead of TAIL ${tail}`);
      if (this.capacity - used < needed) return undefined;
    }
    if (pad > 0) {
      // The padding record is published with the message that follows it.
      this.#writeHeader(offset, pad, KIND_PADDING);
      tail = (tail + pad) >>> 0;
      this.#tail = tail;
    }
    return tail;
  }

  /** A record's header (published later, with TAIL). */
  #writeHeader(offset: number, length: number, kind: number): void {
    const at = (DATA_OFFSET + offset) >> 2;
    this.#ringWords[at] = length;
    this.#ringWords[at + 1] = kind;
  }

  /** Publishes the record at `position` with a payload of `length` bytes already in place. */
  #publish(position: number, length: number): void {
    this.#place(position, length);
    this.#publishTail(1, length);
  }

  /** Completes the record at `position` (its header), and moves this producer's tail past it: not published yet. */
  #place(position: number, length: number): void {
    this.#writeHeader(position & this.#mask, length, KIND_MESSAGE);
    this.#tail = (position + align8(RECORD_HEADER + length)) >>> 0;
  }

  /** Publishes every record placed up to this producer's tail (`count` messages of `bytes` in all), waking a waiting consumer. */
  #publishTail(count: number, bytes: number): void {
    const w = this.#words;
    Atomics.store(w, W.TAIL, this.#tail);
    addCounter(w, W.SENT, count);
    addCounter(w, W.SENT_BYTES, bytes);
    if (Atomics.load(w, W.CONSUMER_SLEEPING) !== 0) native.futexWake(w, W.TAIL, 1);
    if (Atomics.load(w, W.CONSUMER_BELLS) !== 0) ringBells(w, 'consumer');
  }

  /**
   * Writes list[next[0]..] while there is room, moving next[0] past each,
   * and publishes them together: how many went. What was placed is
   * published even when a later message fails (its buffer changed since it
   * was encoded, of `lengths`), so that a count never includes a message
   * nobody can read.
   */
  #writeMany(list: readonly Uint8Array[], lengths: readonly number[], next: Uint32Array): number {
    let count = 0;
    let bytes = 0;
    try {
      while (next[0]! < list.length) {
        const data = list[next[0]!]!;
        const length = lengths[next[0]!]!;
        if (realByteLength(data) !== length) throw batchChanged(this.address);
        const position = this.#reserve(align8(RECORD_HEADER + length));
        if (position === undefined) break;
        copyInto(this.#bytes, (position & this.#mask) + RECORD_HEADER, data, 0, length);
        this.#place(position, length);
        next[0] = next[0]! + 1;
        count++;
        bytes += length;
      }
      return count;
    } finally {
      if (count > 0) this.#publishTail(count, bytes);
      this.#segment.check('send');
    }
  }

  #write(bytes: Uint8Array, length: number): boolean {
    try {
      // The length checked against maxMessageSize when it was encoded: a buffer grown, shrunk or detached since is refused.
      // (From the memory, as `length` was, see isBytes: the record's length is the bytes copied.)
      if (realByteLength(bytes) !== length) throw batchChanged(this.address, true);
      const position = this.#reserve(align8(RECORD_HEADER + length));
      if (position === undefined) return false;
      copyInto(this.#bytes, (position & this.#mask) + RECORD_HEADER, bytes, 0, length);
      this.#publish(position, length);
      return true;
    } finally {
      // A truncation flagged meanwhile: what was written went to private memory and reached nobody, and what was read is zeros.
      this.#segment.check('send');
    }
  }

  #sendOp(bytes: Uint8Array): Operation<typeof DONE> {
    this.#claim('producer');
    if (this.#loan !== undefined) throw invalidArgument('send', 'a pending loan', 'commit() of the loan first: a producer has one message in the making');
    const length = realByteLength(bytes);
    return this.#waiting('producer', () => (this.#write(bytes, length) ? DONE : undefined));
  }

  /** `messages` encoded and checked, then written from the first not yet sent; `partial` reports the count on an interruption after some. */
  #sendManyOp(messages: readonly Outgoing<T>[], tryForm: boolean): Operation<number> {
    const list = encodeBatch(messages, (data) => this.#encode(data));
    const lengths = list.map((m) => realByteLength(m));
    return this.#batchedSendOp('sendMany', list.length, tryForm, (next) => this.#writeMany(list, lengths, next));
  }

  /**
   * The operation of a batched send of `count` messages: `write(next)`
   * writes from message next[0] on while there is room, advancing it.
   * `partial` reports the count on an interruption after some.
   */
  #batchedSendOp(what: string, count: number, tryForm: boolean, write: (next: Uint32Array) => void): Operation<number> {
    this.#claim('producer');
    if (this.#loan !== undefined) throw invalidArgument(what, 'a pending loan', 'commit() of the loan first: a producer has one message in the making');
    // A ring has no error to report: outcome only tells all, some (a try) or none yet.
    const batch = batchSend(count, this.#sendLane, tryForm, () => this.#corrupted('no error is possible here'));
    const waiting = this.#waiting('producer', () => {
      if (batch.left()) write(batch.next);
      return batch.outcome(0);
    });
    return {
      step: (timeout, spin) => {
        try {
          return waiting.step(timeout, spin);
        } catch (err) {
          // A failure (the consumer died, a buffer or the batch changed) after some went: their count (all published); the next call meets it.
          if (err instanceof IpcError && batch.next[0]! > 0) return batch.next[0]!;
          throw err;
        }
      },
      partial: batch.partial,
    };
  }

  /** {@link sendBatch}'s writes: the batch's lengths checked, then copied into the ring from the first not yet sent (native ringPut). */
  #sendPackedOp(b: MessageBatch, tryForm: boolean): Operation<number> {
    const list = packed(b);
    for (let i = 0; i < list.count; i++) if (list.lengths[i]! > this.maxMessageSize) throw this.#tooLarge(list.lengths[i]!);
    // The byte offset in the batch of the first message not yet sent.
    const at = [0];
    return this.#batchedSendOp('sendBatch', list.count, tryForm, (next) => this.#writePacked(list, next, at));
  }

  /** Copies list[next[0]..] into the ring while there is room (native ringPut) and publishes them together. */
  #writePacked(list: Packed, next: Uint32Array, at: number[]): void {
    const io = this.#putIo;
    io[0] = this.#tail;
    io[1] = this.#headCache;
    io[2] = W.HEAD;
    io[3] = next[0]!;
    io[4] = list.count;
    io[5] = at[0]!;
    io[6] = this.maxMessageSize;
    let placed = 0;
    try {
      placed = native.ringPut(this.#bytes, this.#words, io, list.data, list.lengths);
      if (placed === E.EPROTO) {
        throw this.#corrupted((this.#tail & 7) !== 0 ? `TAIL ${this.#tail} is not a record's start` : `HEAD ${io[1]} is ahead of TAIL ${this.#tail}`);
      }
      if (placed < 0) throw batchChanged(this.address);
      this.#tail = io[0]!;
      this.#headCache = io[1]!;
      next[0] = io[3]!;
      at[0] = io[5]!;
    } finally {
      if (placed > 0) this.#publishTail(placed, io[7]!);
      this.#segment.check('send');
    }
  }

  /** A packed receive's [head, tail cache, TAIL's index, count, size, maxMessageSize, bytes, left, corrupted at] (native ringTake). */
  readonly #takeIo = new Float64Array(9);
  /** A packed send's [tail, head cache, HEAD's index, next, count, offset, maxMessageSize, bytes] (native ringPut). */
  readonly #putIo = new Float64Array(8);

  /** {@link receiveBatch}'s step: held messages first (alone), else what the ring has now, straight into the batch. */
  #receivePackedOp(batch: MessageBatch): Operation<number> {
    this.#claim('consumer');
    return this.#waiting('consumer', () => {
      batch.clear();
      if (this.#held.size > 0) {
        this.releaseView();
        while (this.#held.size > 0) {
          const held = this.#held.take()!;
          if (pushIfRoom(batch, held)) continue;
          this.#held.putBack([held]);
          if (batch.count === 0) throw batchTooSmall(this.address, held.length, batch);
          break;
        }
        return batch.count;
      }
      this.#readPacked(batch);
      return batch.count === 0 ? undefined : batch.count;
    });
  }

  /** The messages in the ring now into `batch`, as far as they fit (native ringTake), their space given back together. */
  #readPacked(batch: MessageBatch): void {
    // A batch whose memory went would look like an empty ring to the native call (no slot, no room): say so instead.
    checkBatchIntact(batch, 1, this.address);
    this.releaseView();
    const io = this.#takeIo;
    io[0] = this.#head;
    io[1] = this.#tailCache;
    io[2] = W.TAIL;
    io[3] = batch.count;
    io[4] = batch.size;
    io[5] = this.maxMessageSize;
    let taken: number;
    try {
      taken = native.ringTake(this.#bytes, this.#words, io, batch.data, batch.lengths);
    } finally {
      // A truncation flagged meanwhile: what was read is private zeros (and may look corrupted): that is the error.
      this.#segment.check('receive');
    }
    if (taken < 0) throw this.#corrupted('a batch\'s receive found no ring where the channel has one');
    this.#tailCache = io[1]!;
    batch.place(io[3]!, io[4]!);
    if (taken > 0) {
      const w = this.#words;
      addCounter(w, W.RECEIVED, taken);
      addCounter(w, W.RECEIVED_BYTES, io[6]!);
      this.#consumed(io[0]!);
      return;
    }
    if (io[7] === -2) {
      const at = io[8]! & this.#mask;
      throw this.#corrupted(`the record at ${at} has kind ${this.#ringWords[(DATA_OFFSET + at) / 4 + 1]} and length ${this.#ringWords[(DATA_OFFSET + at) / 4]! >>> 0}`);
    }
    if (io[7]! >= 0) throw batchTooSmall(this.address, io[7]!, batch);
  }

  #loanOp(size: unknown): Operation<Uint8Array> {
    checkInteger(size, 'size', 0, Number.MAX_SAFE_INTEGER);
    if ((size as number) > this.maxMessageSize) throw this.#tooLarge(size as number);
    this.#claim('producer');
    if (this.#loan !== undefined) throw invalidArgument('loan', 'a pending loan', 'commit() of the loan first: a producer has one message in the making');
    const room = size as number;
    const recordSize = align8(RECORD_HEADER + room);
    return this.#waiting('producer', () => {
      const position = this.#reserve(recordSize);
      if (position === undefined) return undefined;
      const start = (position & this.#mask) + RECORD_HEADER;
      const view = this.#bytes.subarray(start, start + room);
      this.#loan = { position, room, view };
      return view;
    });
  }

  /** The next message (its payload's ring offset and length, and where the next record starts), or undefined if none. */
  #next(): { offset: number; length: number; end: number } | undefined {
    const words = this.#ringWords;
    const w = this.#words;
    for (;;) {
      let head = this.#head;
      if (head === this.#tailCache) {
        this.#tailCache = position(w, W.TAIL);
        if (head === this.#tailCache) return undefined;
      }
      const available = (this.#tailCache - head) >>> 0;
      if (available > this.capacity || (available & 7) !== 0 || (head & 7) !== 0) {
        throw this.#corrupted(`TAIL ${this.#tailCache} and HEAD ${head} do not bound whole records of the ring`);
      }
      const offset = head & this.#mask;
      const at = (DATA_OFFSET + offset) >> 2;
      const length = words[at]! >>> 0;
      const kind = words[at + 1];
      if (kind === KIND_PADDING) {
        // The producer pads only the end of the ring that a record does not fit (less than half of it), and publishes
        // the padding with the message after it.
        if (length !== this.capacity - offset || length * 2 >= this.capacity || length + RECORD_HEADER > available) {
          throw this.#corrupted(`a padding record at ${offset} claims ${length} bytes`);
        }
        head = (head + length) >>> 0;
        this.#head = head;
        // Padding only precedes a message in the same publication: go on to it.
        continue;
      }
      const size = align8(RECORD_HEADER + length);
      if (kind !== KIND_MESSAGE || length > this.maxMessageSize || size > available || offset + size > this.capacity) {
        throw this.#corrupted(`the record at ${offset} has kind ${kind} and length ${length}`);
      }
      return { offset: offset + RECORD_HEADER, length, end: (head + size) >>> 0 };
    }
  }

  /** Moves HEAD to `end`, waking a producer that sleeps on a full ring. */
  #consumed(end: number): void {
    this.#head = end;
    consumeTo(this.#words, end);
  }

  #read(view: boolean): ChannelMessage<T> | ChannelView | undefined {
    const held = this.#held.take();
    if (held !== undefined) {
      this.releaseView();
      return view ? new ChannelView(this as Channel<unknown>, this.viewGeneration, held, false) : { data: decodeWith(this.#codec, held, this.address) };
    }
    const next = this.#take();
    if (next === undefined) return undefined;
    if (view) {
      this.#state.viewEnd = next.end;
      return new ChannelView(this as Channel<unknown>, this.viewGeneration, this.#bytes.subarray(next.offset, next.offset + next.length));
    }
    const copy = Buffer.allocUnsafe(next.length);
    copyInto(copy, 0, this.#bytes, next.offset, next.length);
    this.#consumed(next.end);
    return { data: decodeWith(this.#codec, copy, this.address) };
  }

  /** The next message copied into `target`: its length, or undefined if there is none. */
  #readInto(target: Uint8Array): number | undefined {
    // The room from the target's memory (see isBytes): a message that fits it is copied whole, one that does not stays.
    const room = realByteLength(target);
    const held = this.#held.take();
    if (held !== undefined) {
      if (held.length > room) {
        this.#held.putBack([held]);
        throw this.#targetTooSmall(held.length, room);
      }
      copyView(target, held);
      return held.length;
    }
    const next = this.#take(room);
    if (next === undefined) return undefined;
    copyInto(target, 0, this.#bytes, next.offset, next.length);
    this.#consumed(next.end);
    return next.length;
  }

  /**
   * The next message, counted as received (its space not given back yet),
   * or undefined if there is none. One longer than `room` (a receiveInto
   * target's) is refused before anything is counted, and stays.
   */
  #take(room = Infinity): { offset: number; length: number; end: number } | undefined {
    this.releaseView();
    let next;
    try {
      next = this.#next();
    } finally {
      // A truncation flagged meanwhile: what was read is private zeros (and may look corrupted): that is the error.
      this.#segment.check('receive');
    }
    if (next === undefined) return undefined;
    if (next.length > room) throw this.#targetTooSmall(next.length, room);
    const w = this.#words;
    addCounter(w, W.RECEIVED, 1);
    addCounter(w, W.RECEIVED_BYTES, next.length);
    return next;
  }

  /** A message longer than the receiveInto target: it stays, and this error says so. */
  #targetTooSmall(length: number, room: number): IpcError {
    return new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `The next message on ${this.address} is ${length} bytes, more than the ` +
      `${room} of the target; it stays in the channel. Receive it into a target of at least ${length} bytes ` +
      `(maxMessageSize, ${this.maxMessageSize}, always fits).`, { address: this.address });
  }

  /**
   * Held messages first (alone), else every message in the ring up to
   * `max`, copied out, their space given back together; decoded by
   * {@link decodeBatch} (a refused one and those after it are held).
   */
  #receiveManyOp(max: unknown): Operation<ChannelMessage<T>[]> {
    const take = this.#rawManyOp(checkMax(max));
    return {
      step: (timeout, spin) => {
        const batch = take.step(timeout, spin);
        if (batch === undefined) return undefined;
        return decodeBatch(batch.raw, (bytes) => ({ data: decodeWith(this.#codec, bytes, this.address) }), this.#held, batch.fromHeld);
      },
    };
  }

  /** The raw messages of a batch: held ones first (alone: `fromHeld`), else copies of those in the ring, up to `limit`. */
  #rawManyOp(limit: number): Operation<{ raw: Buffer[]; fromHeld: boolean }> {
    this.#claim('consumer');
    return this.#waiting('consumer', () => {
      const raw = this.#held.takeMany(limit);
      const fromHeld = raw.length > 0;
      if (fromHeld) this.releaseView();
      else this.#readMany(raw, limit);
      return raw.length === 0 ? undefined : { raw, fromHeld };
    });
  }

  /** Copies the messages in the ring into `out`, up to `limit`, and gives their space back in one move of HEAD. */
  #readMany(out: Buffer[], limit: number): void {
    this.releaseView();
    let bytes = 0;
    const first = out.length;
    try {
      while (out.length < limit) {
        const next = this.#next();
        if (next === undefined) break;
        const copy = Buffer.allocUnsafe(next.length);
        copyInto(copy, 0, this.#bytes, next.offset, next.length);
        out.push(copy);
        bytes += next.length;
        // Read on from there; the space goes back below, for the whole batch.
        this.#head = next.end;
      }
    } finally {
      this.#segment.check('receive');
    }
    const count = out.length - first;
    if (count === 0) return;
    const w = this.#words;
    addCounter(w, W.RECEIVED, count);
    addCounter(w, W.RECEIVED_BYTES, bytes);
    this.#consumed(this.#head);
  }

  #receiveOp(view: boolean): Operation<ChannelMessage<T> | ChannelView> {
    this.#claim('consumer');
    // A receive carries no state of its own: one operation of each kind serves every call.
    const index = view ? 1 : 0;
    return this.#receiveOps[index] ??= this.#waiting('consumer', () => this.#read(view));
  }

  #receiveIntoOp(target: unknown): Operation<number> {
    const into = checkBytes(target, 'target');
    this.#claim('consumer');
    return this.#waiting('consumer', () => this.#readInto(into));
  }

  readonly #receiveOps: [Operation<ChannelMessage<T> | ChannelView>?, Operation<ChannelMessage<T> | ChannelView>?] = [];

  /**
   * The operation of a call that waits for the other side: `attempt` first;
   * then a spin on the other side's position; then a sync call sleeps on
   * that position word with the sleeping flag set, in slices, looking again
   * after each (an async call is queued in its side's BellLane instead).
   */
  #waiting<R>(role: Role, attempt: () => R | undefined): Operation<R> {
    const w = this.#words;
    const peer: Role = role === 'producer' ? 'consumer' : 'producer';
    const sleepingWord = role === 'producer' ? W.PRODUCER_SLEEPING : W.CONSUMER_SLEEPING;
    const waitsWord = role === 'producer' ? W.PRODUCER_WAITS : W.CONSUMER_WAITS;
    // The word this side sleeps on: the other side's position.
    const otherPosition = role === 'producer' ? W.HEAD : W.TAIL;
    const gone = (): never => {
      throw this.#peerDeadError(peer);
    };
    return {
      step: (timeout, spin) => {
        let value = attempt();
        if (value !== undefined) return value;
        const budget = Math.min(spin, this.#spinBudget[role]);
        if (budget > 0) {
          const seen = Atomics.load(w, otherPosition);
          const until = performance.now() + budget / 1000;
          while (Atomics.load(w, otherPosition) === seen && performance.now() < until) { /* spin */ }
          value = attempt();
          // Spinning paid: spin up to twice as long next time. It did not (the peer was not running): half as long,
          // down to an eighth of the option, so that a later spin can find out that it pays again.
          this.#spinBudget[role] = value !== undefined ? Math.min(spin, budget * 2) : Math.max(spin >> 3, budget >> 1, 1);
          if (value !== undefined) return value;
        }
        if (timeout === 0) return undefined;
        Atomics.store(w, sleepingWord, 1);
        const seen = Atomics.load(w, otherPosition);
        value = attempt();
        if (value !== undefined) {
          Atomics.store(w, sleepingWord, 0);
          return value;
        }
        Atomics.add(w, waitsWord, 1);
        const slept = spin > 0 ? performance.now() : 0;
        const r = native.futexWait(w, otherPosition, seen, timeout < 0 ? WATCH_SLICE_MS : Math.min(timeout, WATCH_SLICE_MS), 0);
        Atomics.store(w, sleepingWord, 0);
        // Woken sooner than a full spin would have lasted: spinning would have caught it; spin again (up to the option).
        if (spin > 0 && (performance.now() - slept) * 1000 < spin) this.#spinBudget[role] = Math.min(spin, Math.max(1, this.#spinBudget[role] * 2));
        if (r < 0 && r !== E.EAGAIN) throw this.#futexError(r, role);
        value = attempt();
        // Only a slice that passed without a wake-up looks at the peer (reading /proc costs more than a round trip).
        if (value === undefined && r === E.EAGAIN && this.#peerDead(peer)) gone();
        return value;
      },
    };
  }

  /** A failed futex call: EFAULT means the word's page is past the segment's end (another process truncated it). */
  #futexError(r: number, role: Role): IpcError {
    return r === E.EFAULT ? this.#segment.truncatedError(role === 'producer' ? 'send' : 'receive') : systemError(r, 'futex', this.address);
  }

  #corrupted(what: string): IpcError {
    return new IpcError('ERR_IPC_CORRUPTED', `${this.address}: ${what}, which the channel's protocol never writes; another process ` +
      'overwrote the segment. Remove the channel and create it again.', { address: this.address });
  }
}

/** @internal Bytes of a channel's header (what {@link channelHeaderFacts} reads). */
export const CHANNEL_HEADER_BYTES = DATA_OFFSET;

/** A thread holding a role of a channel, and whether it still lives. */
export interface ChannelRoleHolder {
  tid: number;
  alive: boolean;
}

/** What a channel's header says, to a process that does not take part (ls, stat). */
export interface ChannelHeader {
  capacity: number;
  maxMessageSize: number;
  /** Messages sent and not yet received. */
  messages: number;
  /** Ring bytes between HEAD and TAIL (record headers and padding included). */
  bytes: number;
  /** Messages sent and received since the channel was created (the counters of {@link ChannelStats}). */
  sent: number;
  received: number;
  producer?: ChannelRoleHolder;
  consumer?: ChannelRoleHolder;
}

/**
 * @internal What the header bytes of a segment say, or undefined if it is no
 * channel. The words are read at one moment by a process that does not take
 * part: they describe a channel in motion, not a consistent snapshot.
 */
export function channelHeaderFacts(header: Uint8Array): ChannelHeader | undefined {
  if (header.length < CHANNEL_HEADER_BYTES) return undefined;
  const view = new DataView(header.buffer, header.byteOffset, CHANNEL_HEADER_BYTES);
  const word = (at: number): number => view.getUint32(at * 4, true);
  if (word(W.MAGIC) !== CHANNEL_MAGIC) return undefined;
  const counter = (at: number): number => word(at + 1) * 2 ** 32 + word(at);
  const holder = (role: Role): ChannelRoleHolder | undefined => {
    const tid = view.getInt32(ROLE_WORDS[role].tid * 4, true);
    // A start of 0: the holder is still recording it; then the thread's existence is what counts.
    return tid <= 0 ? undefined : { tid, alive: native.threadAlive(tid, word(ROLE_WORDS[role].start)) };
  };
  const producer = holder('producer');
  const consumer = holder('consumer');
  const sent = counter(W.SENT);
  const received = counter(W.RECEIVED);
  return {
    capacity: word(W.CAPACITY),
    maxMessageSize: word(W.MAX_MESSAGE),
    messages: Math.max(0, sent - received),
    bytes: (word(W.TAIL) - word(W.HEAD)) >>> 0,
    sent,
    received,
    ...(producer === undefined ? {} : { producer }),
    ...(consumer === undefined ? {} : { consumer }),
  };
}

interface Layout {
  capacity: number;
  maxMessageSize: number;
  modes: number;
}

function sideMode(value: unknown, name: string): 'single' | 'multi' {
  if (value === undefined || value === 'single') return 'single';
  if (value === 'multi') return 'multi';
  throw invalidArgument(name, value, "'single' or 'multi'");
}

function layoutOf(opts: { capacity?: unknown; maxMessageSize?: unknown; producers?: unknown; consumers?: unknown }): Layout {
  const asked = optionalInteger(opts.capacity, 'capacity', CHANNEL_MIN_CAPACITY, CHANNEL_MAX_CAPACITY, DEFAULT_CHANNEL_CAPACITY);
  const capacity = 2 ** Math.ceil(Math.log2(asked));
  const largest = capacity / 2 - RECORD_HEADER;
  const maxMessageSize = optionalInteger(opts.maxMessageSize, 'maxMessageSize', 0, largest, Math.min(DEFAULT_CHANNEL_MESSAGE, largest));
  const modes = (sideMode(opts.producers, 'producers') === 'multi' ? MULTI_PRODUCERS : 0) |
    (sideMode(opts.consumers, 'consumers') === 'multi' ? MULTI_CONSUMERS : 0);
  return { capacity, maxMessageSize, modes };
}

/** Writes a new channel's header (and the mutexes of its shared sides), its magic last. */
function initialise(segment: PosixSharedMemory, layout: Layout): void {
  const w = new Int32Array(segment.buffer, 0, DATA_OFFSET / 4);
  w[W.VERSION] = LAYOUT_VERSION;
  w[W.CAPACITY] = layout.capacity;
  w[W.MAX_MESSAGE] = layout.maxMessageSize;
  w[W.MODES] = layout.modes;
  if (layout.modes & MULTI_PRODUCERS) Mutex.create(segment, SIDE_LOCK.producer);
  if (layout.modes & MULTI_CONSUMERS) Mutex.create(segment, SIDE_LOCK.consumer);
  Atomics.store(w, W.MAGIC, CHANNEL_MAGIC);
}

/** A handle's own settings, checked before anything is created. */
function handleSettings<T>(opts: { codec?: unknown; spin?: unknown }): { codec: Codec<T>; spin: number } {
  return { codec: resolveCodec<T>(opts.codec), spin: checkSpin(opts.spin) };
}

/**
 * Checks what another process wrote in the header before anything is
 * trusted (waiting briefly for a creator still writing it), and returns
 * the values it checked.
 */
function checkHeader(segment: PosixSharedMemory): Layout {
  const name = segment.name;
  const bad = (why: string): IpcError => new IpcError('ERR_IPC_CORRUPTED', `${name} is not a usable channel: ${why}.`, { address: name });
  if (segment.size < DATA_OFFSET + CHANNEL_MIN_CAPACITY) throw bad(`its ${segment.size} bytes are too few for a header and a ring`);
  const w = new Int32Array(segment.buffer, 0, DATA_OFFSET / 4);
  const until = performance.now() + HEADER_WAIT_MS;
  while (Atomics.load(w, W.MAGIC) === 0 && performance.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  const magic = Atomics.load(w, W.MAGIC);
  if (magic !== CHANNEL_MAGIC) throw bad(magic === 0 ? 'its header was never completed' : `its magic word is 0x${(magic >>> 0).toString(16)}`);
  const version = Atomics.load(w, W.VERSION);
  if (version !== LAYOUT_VERSION) throw bad(`its layout version is ${version}; this ipckit reads version ${LAYOUT_VERSION}`);
  const capacity = Atomics.load(w, W.CAPACITY);
  if (capacity < CHANNEL_MIN_CAPACITY || capacity > CHANNEL_MAX_CAPACITY || (capacity & (capacity - 1)) !== 0 || DATA_OFFSET + capacity > segment.size) {
    throw bad(`its capacity word holds ${capacity}`);
  }
  const max = Atomics.load(w, W.MAX_MESSAGE);
  if (max < 0 || max > capacity / 2 - RECORD_HEADER) throw bad(`its maxMessageSize word holds ${max}`);
  const modes = Atomics.load(w, W.MODES);
  if ((modes & ~(MULTI_PRODUCERS | MULTI_CONSUMERS)) !== 0) throw bad(`its modes word holds ${modes}`);
  for (const [flag, role] of [[MULTI_PRODUCERS, 'producer'], [MULTI_CONSUMERS, 'consumer']] as const) {
    if ((modes & flag) !== 0 && Atomics.load(w, SIDE_LOCK[role] / 4 + LOCK_WORDS.MAGIC) !== LOCK_WORDS.MUTEX_MAGIC) {
      throw bad(`its ${role}s share a side, and the mutex of that side is missing`);
    }
  }
  return { capacity, maxMessageSize: max, modes };
}
