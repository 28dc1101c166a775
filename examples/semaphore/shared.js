// What both programs agree on without configuration: the System V key of
// the room's semaphore set, derived from the printers' semaphore name.
import { createHash } from 'node:crypto';

export function setKey(printersName) {
  // 0x6b000000..0x6bffffff: a range the example keeps to itself.
  return (0x6b000000 | createHash('sha256').update(printersName).digest().readUInt32BE(0) & 0xffffff) >>> 0;
}

/** Semaphores of the set: 0 is the lock on the shared log (taken with undo), 1 counts finished jobs. */
export const LOG_LOCK = 0;
export const FINISHED = 1;
