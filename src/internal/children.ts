/**
 * The child processes started through ipckit's `spawn`, so that a graceful
 * shutdown (`shutdownOn`) can forward the signal to them and wait for them.
 * @internal
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

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

/** A process, told apart from a later one with the same pid by its start time. */
export interface ProcessRef {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks after boot. */
  start: string;
}

/** [ppid, start time, state] of `pid` from /proc, or null once it is gone (or hidden). */
function statOf(pid: number): [number, string, string] | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: fields count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [Number(fields[1]), fields[19]!, fields[0]!];
}

/** Whether `ref` still runs: same pid, same start time, not a zombie. */
export function stillRunning(ref: ProcessRef): boolean {
  const stat = statOf(ref.pid);
  return stat !== null && stat[1] === ref.start && stat[2] !== 'Z';
}

/**
 * Every running descendant of `roots` (children, their children, …), the
 * roots excluded, as /proc shows them now. A process that left the tree
 * (re-parented to init when its parent died) is not found.
 */
export function descendantsOf(roots: number[]): ProcessRef[] {
  const children = new Map<number, ProcessRef[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = statOf(Number(entry));
    if (stat === null || stat[2] === 'Z') continue;
    const list = children.get(stat[0]) ?? [];
    list.push({ pid: Number(entry), start: stat[1] });
    children.set(stat[0], list);
  }
  const found: ProcessRef[] = [];
  const seen = new Set<number>(roots);
  const queue = [...roots];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      if (seen.has(child.pid)) continue;
      seen.add(child.pid);
      found.push(child);
      queue.push(child.pid);
    }
  }
  return found;
}

/** Sends `signal` to `ref` if it is still the process it was; false if it is gone. */
export function signalProcess(ref: ProcessRef, signal: number | NodeJS.Signals): boolean {
  if (!stillRunning(ref)) return false;
  try {
    process.kill(ref.pid, signal);
    return true;
  } catch {
    return false;
  }
}
