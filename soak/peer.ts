/**
 * A producer, consumer or lock worker process of the reliability suite:
 * `node dist/soak/peer.js '<json params>'`.
 *
 * It opens its endpoint, prints `ready` (a consumer that is a server:
 * `ready <address>`, the address its producers connect to), waits for a line on stdin, then
 * works: a producer sends numbered, checksummed messages until its deadline;
 * a consumer receives and records each one in the ledger until a stop
 * marker comes. Either prints one JSON line of figures at the end. `mode`
 * picks the calls: `sync`, `async`, `mixed` (alternating), or `batch`
 * (sendMany of 1 to 16 messages and receiveMany, sync and async
 * alternating: transports with batches only).
 *
 * Lock workers ({@link LockerParams}) work on a {@link LockLedger} until its
 * STOP word is set, alternating the async and the blocking call.
 */
import { readSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import { IpcError, Mutex, NamedSemaphore, Semaphore, SemaphoreSet } from '../src/index.js';
import { Ledger, LockLedger, MAX_SEQ } from './ledger.js';
import { MESSAGE_SIZE, RECEIVE_BATCH, STOP, transportNamed } from './transports.js';

export interface PeerParams {
  role: 'producer' | 'consumer';
  transport: string;
  /** What the endpoint opens: the prepared address, or for a producer of a connected transport its consumer's (transports.ts). */
  address: string;
  mode: 'sync' | 'async' | 'mixed' | 'batch';
  /** Index among the producers, or among the consumers. */
  index: number;
  producers: number;
  consumers: number;
  ledger: string;
  /** Producers: how long to send after the start line, ms. */
  runMs: number;
  /** Most messages a producer sends (default MAX_SEQ); the ledger must be made with the same. */
  maxSeq?: number;
}

/**
 * A lock worker: `mutex` loops lock, A += 1, pause, B += 1, unlock
 * (repairing B = A after a takeover from a dead holder); `undo-lock` does
 * the same under a System V semaphore taken and given back with SEM_UNDO
 * (the kernel gives a dead holder's unit back; the next holder finds the
 * HOLDER word still set); `poster` posts one semaphore unit at a time;
 * `waiter` takes them.
 */
export interface LockerParams {
  role: 'mutex' | 'undo-lock' | 'poster' | 'waiter';
  /** The LockLedger's segment name. */
  ledger: string;
  /** Posters and waiters: a named semaphore of this name instead of the Semaphore in the ledger's segment. */
  named?: string;
  /** undo-lock: the System V key of the set whose semaphore 0 is the lock. */
  key?: number;
}

/** A pause inside the mutex's critical section, and between a poster's units, ms. */
const HOLD_MS = 1;
const POST_GAP_MS = 0.5;
const pauseCell = new Int32Array(new SharedArrayBuffer(4));
const pause = (ms: number): void => void Atomics.wait(pauseCell, 0, 0, ms);

/** A message: producer, sequence, send time (ns, CLOCK_MONOTONIC), payload, CRC32 of all before it. */
export function encodeMessage(producer: number, seq: number, into = Buffer.alloc(MESSAGE_SIZE)): Buffer {
  into.writeUInt32LE(producer, 0);
  into.writeUInt32LE(seq, 4);
  into.writeBigUInt64LE(process.hrtime.bigint(), 8);
  for (let i = 16; i < MESSAGE_SIZE - 4; i++) into[i] = (producer * 31 + seq * 17 + i) & 0xff;
  into.writeUInt32LE(crc32(into.subarray(0, MESSAGE_SIZE - 4)), MESSAGE_SIZE - 4);
  return into;
}

/** A stop marker: one per consumer ends the run. */
export function stopMarker(): Buffer {
  return encodeMessage(STOP, 0);
}

async function main(params: PeerParams): Promise<void> {
  const transport = transportNamed(params.transport);
  const endpoint = await transport.open(params.address, params.role === 'producer' ? 'send' : 'receive', params.index);
  const ledger = Ledger.open(params.ledger, params.producers, params.consumers, params.maxSeq);
  const delay = monitorEventLoopDelay({ resolution: 10 });
  process.stdout.write(endpoint.listening === undefined ? 'ready\n' : `ready ${endpoint.listening}\n`);
  readSync(0, Buffer.alloc(16));
  delay.enable();
  const sync = (i: number): boolean => params.mode === 'sync' || ((params.mode === 'mixed' || params.mode === 'batch') && i % 2 === 0);
  const batched = params.mode === 'batch';
  if (batched && endpoint.sendMany === undefined) throw new Error(`${params.transport} has no batched calls`);
  let figures: Record<string, unknown>;
  if (params.role === 'producer') {
    const until = performance.now() + params.runMs;
    const message = Buffer.alloc(MESSAGE_SIZE);
    let seq = 0;
    const maxSeq = params.maxSeq ?? MAX_SEQ;
    for (let call = 0; seq < maxSeq && performance.now() < until; call++) {
      if (!batched) {
        encodeMessage(params.index, seq, message);
        if (sync(seq)) endpoint.sendSync(message);
        else await endpoint.send(message);
        ledger.setSent(params.index, ++seq);
        continue;
      }
      // 1 to 16 messages, each its own buffer (a batch writes from them as they lie); the count says how many went.
      const list = Array.from({ length: Math.min(maxSeq - seq, 1 + (call * 7) % RECEIVE_BATCH) }, (_, i) => encodeMessage(params.index, seq + i, Buffer.alloc(MESSAGE_SIZE)));
      seq += sync(call) ? endpoint.sendManySync!(list) : await endpoint.sendMany!(list);
      ledger.setSent(params.index, seq);
    }
    figures = { sent: seq, ...endpoint.stats?.() };
  } else {
    // A reservoir of latencies (µs): every message counts, memory stays bounded.
    const reservoir = new Float64Array(20_000);
    let seen = 0;
    /** Over a transport that redelivers, the first message may be the one the consumer this process replaces died holding (ledger.ts). */
    let first = transport.redelivers === true;
    /** Records one received message; true at the stop marker. */
    const take = (received: Uint8Array): boolean => {
      const m = Buffer.from(received);
      const mayRepeat = first;
      first = false;
      const producer = m.readUInt32LE(0);
      if (crc32(m.subarray(0, MESSAGE_SIZE - 4)) !== m.readUInt32LE(MESSAGE_SIZE - 4)) {
        ledger.add(params.index, 'corrupt');
        return false;
      }
      if (producer === STOP) return true;
      const latency = Number(process.hrtime.bigint() - m.readBigUInt64LE(8)) / 1000;
      if (seen < reservoir.length) reservoir[seen] = latency;
      else {
        const j = Math.floor(Math.random() * (seen + 1));
        if (j < reservoir.length) reservoir[j] = latency;
      }
      seen++;
      if (producer >= params.producers) {
        ledger.add(params.index, 'corrupt');
        return false;
      }
      ledger.record(params.index, producer, m.readUInt32LE(4), mayRepeat);
      return false;
    };
    for (let i = 0; ; i++) {
      if (!batched) {
        if (take(sync(i) ? endpoint.receiveSync() : await endpoint.receive())) break;
        continue;
      }
      // Nothing follows a stop marker but other consumers' markers (the parent sends them once every producer is done).
      const batch = sync(i) ? endpoint.receiveManySync!() : await endpoint.receiveMany!();
      if (batch.some(take)) break;
    }
    figures = { latenciesUs: Array.from(reservoir.subarray(0, Math.min(seen, reservoir.length))), ...endpoint.stats?.() };
  }
  delay.disable();
  endpoint.close();
  ledger.segment.close();
  process.stdout.write(`${JSON.stringify({ ...figures, loopDelayP99Ms: delay.percentile(99) / 1e6 })}\n`);
}

/** The lock a worker of `params.role` works on: made by whichever worker's openOrCreate comes first. */
function openLock(params: LockerParams, ledger: LockLedger): Mutex | Semaphore | NamedSemaphore | SemaphoreSet {
  if (params.role === 'mutex') return Mutex.openOrCreate(ledger.segment, 0);
  if (params.role === 'undo-lock') return SemaphoreSet.openOrCreate(params.key!, { value: 1 });
  return params.named === undefined ? Semaphore.openOrCreate(ledger.segment, 0) : NamedSemaphore.openOrCreate(params.named);
}

/** Semaphore 0 of the set taken and given back, with SEM_UNDO. */
const TAKE = { index: 0, delta: -1, undo: true };
const GIVE = { index: 0, delta: 1, undo: true };

/**
 * The critical section, the lock held: plain reads and writes, as any data
 * a lock protects. After a takeover from a dead holder (`tookOver`) it logs
 * the holder the HOLDER word names and repairs B = A (a holder that died
 * between its two increments left A one ahead), then `repaired()`;
 * otherwise A ≠ B means someone else is inside.
 */
function criticalSection(ledger: LockLedger, tookOver: boolean, repaired?: () => void): void {
  const w = ledger.words;
  const now = process.hrtime.bigint();
  Atomics.add(w, LockLedger.ACQUIRED, 1);
  if (tookOver) {
    ledger.logTakeover(now, w[LockLedger.HOLDER]!);
    if (w[LockLedger.A] !== w[LockLedger.B]) {
      w[LockLedger.B] = w[LockLedger.A]!;
      Atomics.add(w, LockLedger.REPAIRS, 1);
    }
    repaired?.();
  } else if (w[LockLedger.A] !== w[LockLedger.B]) {
    Atomics.add(w, LockLedger.VIOLATIONS, 1);
  }
  w[LockLedger.HOLDER] = process.pid;
  w[LockLedger.A] = w[LockLedger.A]! + 1;
  pause(HOLD_MS);
  w[LockLedger.B] = w[LockLedger.B]! + 1;
  Atomics.add(w, LockLedger.COMPLETED, 1);
  w[LockLedger.HOLDER] = 0;
}

async function lockWorker(params: LockerParams): Promise<void> {
  const ledger = LockLedger.open(params.ledger);
  const w = ledger.words;
  const stopped = (): boolean => Atomics.load(w, LockLedger.STOP) !== 0;
  const lock = openLock(params, ledger);
  if (lock.created) Atomics.add(w, LockLedger.CREATED, 1);
  process.stdout.write('ready\n');
  readSync(0, Buffer.alloc(16));
  if (lock instanceof SemaphoreSet) {
    for (let i = 0; !stopped(); i++) {
      if (i % 2 === 0) await lock.op(TAKE);
      else lock.opSync(TAKE);
      // We hold the unit. A HOLDER still set names a holder that died inside: the kernel gave its unit back, nobody else tells.
      criticalSection(ledger, w[LockLedger.HOLDER] !== 0);
      lock.opSync(GIVE);
    }
  } else if (lock instanceof Mutex) {
    for (let i = 0; !stopped(); i++) {
      let tookOver = false;
      try {
        if (i % 2 === 0) await lock.lock();
        else lock.lockSync();
      } catch (err) {
        if (!(err instanceof IpcError) || err.code !== 'ERR_IPC_OWNER_DIED') throw err;
        tookOver = true;
      }
      criticalSection(ledger, tookOver, () => lock.markConsistent());
      lock.unlock();
    }
  } else if (params.role === 'poster') {
    while (!stopped()) {
      lock.post();
      Atomics.add(w, LockLedger.POSTED, 1);
      pause(POST_GAP_MS);
    }
  } else {
    for (let i = 0; !stopped(); i++) {
      if (i % 2 === 0) await lock.wait();
      else lock.waitSync();
      Atomics.add(w, LockLedger.ACQUIRED, 1);
    }
  }
  ledger.segment.close();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const params = JSON.parse(process.argv[2]!) as PeerParams | LockerParams;
  if ('transport' in params) await main(params);
  else await lockWorker(params);
}
