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
import { type IpcObjectInfo, formatKey } from '../../src/index.js';
import { posixQueueExists, sysvQueues, sysvSegments } from './objects.js';
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

/** Runs `ipckit <args>`, asserts `status`, no stdout, and `CODE: ` opening stderr; resolves to stderr. */
export async function fails(args: string[], status: 1 | 2, code: string, input?: string | Buffer): Promise<string> {
  const r = await ipckit(args, input);
  assert.equal(r.status, status, describeRun(args, r));
  assert.equal(r.stdout, '', describeRun(args, r));
  assert.ok(r.stderr.startsWith(`${code}: `), describeRun(args, r));
  assert.ok(r.stderr.endsWith('\n'), describeRun(args, r));
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
  const [asJson, asText] = await all([() => ok(['ls', '--json']), () => ok(['ls'])]);
  const inventory = json(asJson!.stdout) as unknown as { objects: LsObject[]; notes: string[] };
  return { ...inventory, text: asText!.stdout };
}

/** The row of `ipckit ls` text output for `address`, split into its columns. */
export function lsRow(text: string, address: string): string[] | undefined {
  const lines = text.split('\n');
  assert.deepEqual(lines[0]!.split(/\s+/), ['KIND', 'ADDRESS', 'OWNER', 'MODE', 'MESSAGES', 'BYTES', 'PROCESSES']);
  return lines.map((line) => line.split(/ {2,}/)).find((cells) => cells[1] === address);
}

/** Whether `key` is in the tour's key range, 0x7e000000..0x7effffff. */
const tourKey = (key: number): boolean => key >>> 24 === 0x7e;

/**
 * What a tour run as `pid` left behind. Only that tour's own objects count,
 * as other tours may run meanwhile: its POSIX queue, segments and FIFO (their
 * names carry its pid), the System V queue it sent its messages to, and the
 * System V segment it created (both in the tour's key range).
 */
export function tourLeftovers(pid: number): string[] {
  const left: string[] = [];
  if (posixQueueExists(`/ipckit-tour-${pid}`)) left.push(`/ipckit-tour-${pid}`);
  left.push(...readdirSync('/dev/shm').filter((f) => /^ipckit-(tour|race)-/.test(f) && f.split('-').includes(String(pid))).map((f) => `/dev/shm/${f}`));
  if (existsSync(`${tmpdir()}/ipckit-tour-fifo-${pid}`)) left.push(`${tmpdir()}/ipckit-tour-fifo-${pid}`);
  left.push(...sysvQueues().filter((q) => tourKey(q.key) && q.lspid === pid).map((q) => `queue ${formatKey(q.key)}`));
  left.push(...sysvSegments().filter((s) => tourKey(s.key) && s.cpid === pid).map((s) => `segment ${formatKey(s.key)}`));
  return left;
}
