/**
 * What tests read in a channel's header (the protocol is src/channel.ts's):
 * the doorbell words and tables, to see that a side waits for its bell.
 */
import { PosixSharedMemory } from '../../src/index.js';

export const CONSUMER_BELLS = 50;
export const PRODUCER_BELLS = 66;
const TABLES = [['consumer', 128, CONSUMER_BELLS], ['producer', 256, PRODUCER_BELLS]] as const;
const SLOTS = 32;
const SLOT_WORDS = 4;

/** Runs `look` over the header words of channel `name` (mapped for the call only). */
export function withHeader<R>(name: string, look: (words: Int32Array) => R): R {
  const shm = PosixSharedMemory.open(name);
  try {
    return look(new Int32Array(shm.buffer, 0, 384));
  } finally {
    shm.close();
  }
}

/** The doorbell slots listed: [side, slot, tid] for each one a thread (live or dead) holds. */
export function bellSlots(name: string): [string, number, number][] {
  return withHeader(name, (words) => {
    const listed: [string, number, number][] = [];
    for (const [side, table] of TABLES) {
      for (let slot = 0; slot < SLOTS; slot++) {
        const tid = Atomics.load(words, table + slot * SLOT_WORDS);
        if (tid !== 0) listed.push([side, slot, tid]);
      }
    }
    return listed;
  });
}

/** Whether thread `tid` (a process's main thread: its pid) waits for a ring of one of its doorbells on channel `name`. */
export function waitsForBell(name: string, tid: number): boolean {
  return withHeader(name, (words) => TABLES.some(([, table, mask]) => {
    const armed = Atomics.load(words, mask);
    for (let slot = 0; slot < SLOTS; slot++) {
      if ((armed & (1 << slot)) !== 0 && Atomics.load(words, table + slot * SLOT_WORDS) === tid) return true;
    }
    return false;
  }));
}
