// The System V results queue's key, derived from the jobs queue name so
// that both programs agree on it without configuration.
import { createHash } from 'node:crypto';

export function resultsKey(jobsName) {
  // 0x6a000000..0x6affffff: a range the example keeps to itself.
  return (0x6a000000 | createHash('sha256').update(jobsName).digest().readUInt32BE(0) & 0xffffff) >>> 0;
}
