/**
 * The child processes started through ipckit's `spawn`, so that a graceful
 * shutdown (`shutdownOn`) can forward the signal to them and wait for them.
 * @internal
 * @module
 */
import type { ChildProcess } from 'node:child_process';

const running = new Set<ChildProcess>();

/** Remembers `child` until it exits. */
export function trackSpawned(child: ChildProcess): ChildProcess {
  running.add(child);
  child.once('exit', () => running.delete(child));
  child.once('error', () => running.delete(child));
  return child;
}

/** The children started through ipckit that are still running. */
export function spawnedChildren(): ChildProcess[] {
  return [...running].filter((child) => child.exitCode === null && child.signalCode === null);
}
