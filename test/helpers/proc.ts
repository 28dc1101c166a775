/** Probes of another process's real state, read from /proc, instead of guessing how long it takes to get there. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Waits until process `pid` (its main thread) sleeps in a kernel function
 * matching `wchan`: `/pipe_read/`, `/futex/`, `/msgrcv/`, `/wait_for_partner/`.
 */
export async function asleepIn(pid: number, wchan: RegExp, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      last = readFileSync(`/proc/${pid}/wchan`, 'utf8');
      if (wchan.test(last)) return;
    } catch { /* Not started yet, or gone: the deadline decides. */ }
    if (performance.now() > deadline) assert.fail(`process ${pid} never slept in ${wchan} (last seen in ${last || 'nothing'})`);
    await sleep(2);
  }
}
