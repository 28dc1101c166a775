/** Probes of another process's real state, read from /proc, instead of guessing how long it takes to get there. */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
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

/**
 * Waits until `count` of ipckit's waiter threads (named `ipckit-waiter`) in
 * process `pid` (this one by default) sleep in a kernel function matching
 * `wchan`.
 */
export async function threadsAsleepIn(wchan: RegExp, count = 1, pid = process.pid, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    let asleep = 0;
    try {
      for (const task of readdirSync(`/proc/${pid}/task`)) {
        try {
          if (readFileSync(`/proc/${pid}/task/${task}/comm`, 'utf8').trim() === 'ipckit-waiter' &&
            wchan.test(readFileSync(`/proc/${pid}/task/${task}/wchan`, 'utf8'))) asleep++;
        } catch { /* The thread ended meanwhile. */ }
      }
    } catch { /* The process is gone: the deadline decides. */ }
    if (asleep >= count) return;
    if (performance.now() > deadline) assert.fail(`${count} threads of ${pid} never slept in ${wchan} (${asleep} did)`);
    await sleep(2);
  }
}
