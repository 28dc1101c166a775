/**
 * Running the `ipckit` command line as real child processes, for the
 * cli-*.test.ts files: exit status, exact output, and what `ipckit ls` and
 * `ipckit tour` show and leave behind.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { type IpcObjectInfo, type PipeReadEnd, formatKey, pipe, spawn as spawnWithFds } from '../../src/index.js';
import { native } from '../../src/native.js';
import { posixQueueExists, sysvQueues, sysvSegments, sysvSemaphoreSets } from './objects.js';
import { trackChild } from './peer.js';

/** The compiled command line. */
export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
  pid: number;
  elapsedMs: number;
}

export interface Launched {
  child: ChildProcess;
  done: Promise<CliResult>;
}

/**
 * Starts `ipckit <args>` with `input` on its stdin; `done` resolves when it
 * has exited. A command still running after 60 s is killed, with the
 * processes it started (it leads its own process group): a safety net for a
 * hang, long enough for the tour (several seconds alone) on a machine loaded
 * by other test files.
 */
export function launch(args: string[], input: string | Buffer = ''): Launched {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  trackChild(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 60_000);
  child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr!.on('data', (chunk: Buffer) => err.push(chunk));
  child.stdin!.on('error', () => undefined); // The command may exit without reading stdin.
  child.stdin!.end(input);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({
        status, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr: Buffer.concat(err).toString('utf8'),
        pid: child.pid!, elapsedMs: performance.now() - started,
      });
    });
  });
  return { child, done };
}

/** How a command whose stdout is a test's pipe ended. */
export interface PipedResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  pid: number;
}

export interface PipedRun {
  pid: number;
  /** The read end of ipckit's stdout: the test is its reader, and leaves with `readEnd.close()`. */
  readEnd: PipeReadEnd;
  /** Reads stdout up to the next newline; resolves to the line without it. */
  readLine(): Promise<string>;
  /** What it has printed on stderr so far. */
  stderr(): string;
  done: Promise<PipedResult>;
}

/**
 * Starts `ipckit <args>` with its stdout the write end of a real pipe, as in
 * `ipckit … | head -1`; the test holds the only read end. `readerGone`: the
 * read end is closed before ipckit starts. `capacity`: the pipe's buffer
 * size in bytes (a write larger than it cannot complete while nobody reads).
 * Like {@link launch}, a command still running after 60 s is killed.
 */
export function launchIntoPipe(args: string[], { capacity, readerGone = false }: { capacity?: number; readerGone?: boolean } = {}): PipedRun {
  const { readEnd, writeEnd } = pipe(capacity === undefined ? {} : { capacity });
  if (readerGone) readEnd.close();
  let child: ChildProcess;
  try {
    child = spawnWithFds(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], fds: { 1: writeEnd }, detached: true });
  } finally {
    // The child has its copy; with this one open, the reader would never be the only end that matters.
    writeEnd.close();
  }
  trackChild(child);
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 60_000);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  const done = new Promise<PipedResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stderr, pid: child.pid! });
    });
  });
  let buffered = Buffer.alloc(0);
  const readLine = async (): Promise<string> => {
    for (;;) {
      const newline = buffered.indexOf(0x0a);
      if (newline >= 0) {
        const line = buffered.subarray(0, newline).toString('utf8');
        buffered = buffered.subarray(newline + 1);
        return line;
      }
      const chunk = await readEnd.read({ timeout: 30_000 });
      if (chunk === null) assert.fail(`ipckit ${args.join(' ')} closed its stdout before a whole line: ${JSON.stringify(buffered.toString())}`);
      buffered = Buffer.concat([buffered, chunk]);
    }
  };
  return { pid: child.pid!, readEnd, readLine, stderr: () => stderr, done };
}

/**
 * Waits for a command to exit on its own. One still running after `ms`
 * (a build that never notices what the test did) is given `unblock()`
 * (a message, a signal: whatever ends its wait), so that the test fails on
 * its result instead of hanging; `unblocked` says so.
 */
export async function exitOnItsOwn<R>(done: Promise<R>, unblock: () => void, ms = 10_000): Promise<{ result: R; unblocked: boolean }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), ms); });
  try {
    const first = await Promise.race([done, late]);
    if (first !== 'late') return { result: first as R, unblocked: false };
    unblock();
    return { result: await done, unblocked: true };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `ipckit <args>` to completion. */
export function ipckit(args: string[], input?: string | Buffer): Promise<CliResult> {
  return launch(args, input).done;
}

export function describeRun(args: string[], r: CliResult): string {
  return `ipckit ${args.join(' ')} -> status ${r.status ?? r.signal}; stdout ${JSON.stringify(r.stdout)}; stderr ${JSON.stringify(r.stderr)}`;
}

/** Runs `ipckit <args>`, asserts exit 0 and nothing on stderr. */
export async function ok(args: string[], input?: string | Buffer): Promise<CliResult> {
  const r = await ipckit(args, input);
  assert.equal(r.status, 0, describeRun(args, r));
  assert.equal(r.stderr, '', describeRun(args, r));
  return r;
}

/** Whether a command line asks for --json (before any "--"). */
function asksForJson(args: string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).includes('--json');
}

/**
 * The failure a command printed on stderr: `CODE: message`, or with --json
 * exactly one line `{"error": {"code", "message", ...}}`.
 */
export function failure(args: string[], r: CliResult | { stderr: string }): { code: string; message: string; [field: string]: unknown } {
  const shown = `ipckit ${args.join(' ')}: stderr ${JSON.stringify(r.stderr)}`;
  assert.ok(r.stderr.endsWith('\n') && !r.stderr.slice(0, -1).includes('\n'), `not one line: ${shown}`);
  if (asksForJson(args)) {
    const parsed = JSON.parse(r.stderr) as { error: { code: string; message: string } };
    assert.deepEqual(Object.keys(parsed), ['error'], shown);
    assert.equal(typeof parsed.error.code, 'string', shown);
    assert.equal(typeof parsed.error.message, 'string', shown);
    return parsed.error;
  }
  const match = /^([A-Z][A-Z0-9_]*): (.*)\n$/s.exec(r.stderr);
  assert.ok(match, shown);
  return { code: match[1]!, message: match[2]! };
}

/**
 * Runs `ipckit <args>`, asserts `status`, no stdout, and the failure `code`
 * on stderr (as text, or as JSON with --json); resolves to stderr.
 */
export async function fails(args: string[], status: 1 | 2, code: string, input?: string | Buffer): Promise<string> {
  const r = await ipckit(args, input);
  assert.equal(r.status, status, describeRun(args, r));
  assert.equal(r.stdout, '', describeRun(args, r));
  assert.equal(failure(args, r).code, code, describeRun(args, r));
  return r.stderr;
}

/** Runs independent checks a few at a time (each one spawns a process). */
export async function all<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs.length, Math.max(2, availableParallelism() * 2)) }, worker));
  return results;
}

/** Parses JSON-lines output; every line must be JSON and the output must end with a newline. */
export function jsonLines(stdout: string): Record<string, unknown>[] {
  assert.ok(stdout.endsWith('\n'), `output does not end with a newline: ${JSON.stringify(stdout)}`);
  return stdout.slice(0, -1).split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

export function json(stdout: string): Record<string, unknown> {
  const lines = jsonLines(stdout);
  assert.equal(lines.length, 1, `expected one JSON line: ${stdout}`);
  return lines[0]!;
}

export type LsObject = IpcObjectInfo;

/** `ipckit ls --json` and `ipckit ls`, run side by side. */
export async function ls(): Promise<{ objects: LsObject[]; notes: string[]; text: string }> {
  // One after the other: a child this process is starting holds copies of its descriptors between fork
  // and exec, and a listing made meanwhile would rightly name that child as a holder too.
  const asJson = await ok(['ls', '--json']);
  const asText = await ok(['ls']);
  const inventory = json(asJson.stdout) as unknown as { objects: LsObject[]; notes: string[] };
  return { ...inventory, text: asText.stdout };
}

/** The row of `ipckit ls` text output for `address`, split into its columns. */
export function lsRow(text: string, address: string): string[] | undefined {
  const lines = text.split('\n');
  assert.deepEqual(lines[0]!.split(/\s+/), ['KIND', 'ADDRESS', 'OWNER', 'MODE', 'MESSAGES', 'BYTES', 'PROCESSES']);
  return lines.map((line) => line.split(/ {2,}/)).find((cells) => cells[1] === address);
}

/** Whether `key` is in the tour's key range, 0x7e000000..0x7effffff. */
const tourKey = (key: number): boolean => key >>> 24 === 0x7e;

/** The last process to change each semaphore of set `id` (GETPID); none if the set is gone. */
function lastPidsOfSet(id: number, count: number): number[] {
  const info = new Float64Array(4 * count);
  return native.semInfo(id, info) < 0 ? [] : Array.from({ length: count }, (_, i) => info[4 * i + 3]!);
}

/**
 * What a tour run as `pid` left behind. Only that tour's own objects count,
 * as other tours may run meanwhile: its POSIX queue, segments, named
 * semaphore and FIFO (their names carry its pid), the System V queue it sent
 * its messages to, the System V segment it created, and a System V
 * semaphore set it was the last to change (all in the tour's key range;
 * the kernel records no semaphore set's creator).
 */
export function tourLeftovers(pid: number): string[] {
  const left: string[] = [];
  if (posixQueueExists(`/ipckit-tour-${pid}`)) left.push(`/ipckit-tour-${pid}`);
  left.push(...readdirSync('/dev/shm').filter((f) => /^(sem\.)?ipckit-(tour|race)-/.test(f) && f.split('-').includes(String(pid))).map((f) => `/dev/shm/${f}`));
  if (existsSync(`${tmpdir()}/ipckit-tour-fifo-${pid}`)) left.push(`${tmpdir()}/ipckit-tour-fifo-${pid}`);
  left.push(...sysvQueues().filter((q) => tourKey(q.key) && q.lspid === pid).map((q) => `queue ${formatKey(q.key)}`));
  left.push(...sysvSegments().filter((s) => tourKey(s.key) && s.cpid === pid).map((s) => `segment ${formatKey(s.key)}`));
  left.push(...sysvSemaphoreSets().filter((s) => tourKey(s.key) && lastPidsOfSet(s.id, s.nsems).includes(pid)).map((s) => `semaphore set ${formatKey(s.key)}`));
  return left;
}
