/**
 * Runs the programs of the documentation (see test/docs.test.ts) and checks
 * how they ended and that they cleaned up after themselves.
 *
 * Run as root (with util-linux's unshare, nsenter and mount), every run (a
 * program, or the members of a group together) gets a fresh IPC namespace
 * and a private mount namespace with empty tmpfs mounts on /dev/shm and
 * /tmp, into which the folders the run needs are bound back. The kernel then
 * behaves as on a freshly booted machine with its default limits — a block
 * sees nobody else's objects and nobody sees its — and whatever is left in
 * those namespaces when the run ends is exactly what the run leaked: System V
 * queues, segments and semaphore sets, POSIX queues (listed through an
 * mqueue mount of that namespace), POSIX segments and semaphores, and files
 * (FIFOs, sockets) in /tmp. Nothing machine-wide is looked at, so other
 * tests running at the same time neither disturb the check nor are disturbed.
 * New entries in the run's folder and processes left in a member's process
 * group are leaks too. Without root the namespaces (and so that part of the
 * check) are skipped.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readdirSync, realpathSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Snippet } from './snippets.js';

/** The file a block is written to, without its extension. */
export function baseName(s: Snippet): string {
  return s.file !== undefined ? s.file.slice(0, -'.js'.length) : `line-${s.line}`;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Whether runs get namespaces of their own (see the top of this file): root, with unshare and nsenter. */
export const ISOLATED = process.getuid?.() === 0 && ['unshare', 'nsenter', 'mount'].every((tool) => {
  try {
    execFileSync(tool, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
});

/**
 * A process holding a fresh IPC namespace and a private mount namespace with empty tmpfs
 * mounts on /dev/shm and /tmp, into which the directories the runs need (this checkout,
 * the scratch projects, the node binary) are bound back from the runner's namespace.
 */
interface Namespaces {
  /** The holder's pid: nsenter's target. */
  pid: number;
  holder: ChildProcess;
  /** The top-level entries of /tmp made by the binding, not by a block. */
  bound: Set<string>;
}

// Each directory is bound first to a spot on the fresh /dev/shm, then moved onto the fresh /tmp
// (a bind from the runner's mount namespace, once /tmp is covered, is refused by the kernel).
const HOLDER = `set -e
mount -t tmpfs -o mode=1777 ipckit-docs-shm /dev/shm
i=0
for dir in "$@"; do i=$((i + 1)); mkdir /dev/shm/$i; mount --rbind "$dir" /dev/shm/$i; done
mount -t tmpfs -o mode=1777 ipckit-docs-tmp /tmp
i=0
for dir in "$@"; do i=$((i + 1)); mkdir -p "$dir"; mount --move /dev/shm/$i "$dir"; rmdir /dev/shm/$i; done
echo $$
exec sleep 1000000`;

async function enterNamespaces(bind: string[]): Promise<Namespaces> {
  const under = (dir: string, parent: string): boolean => dir === parent || dir.startsWith(parent + '/');
  const wanted = [...bind, path.dirname(process.execPath)].map((dir) => realpathSync(dir)).filter((dir) => under(dir, '/tmp') && dir !== '/tmp');
  const needed = [...new Set(wanted)].filter((dir, _i, all) => !all.some((other) => other !== dir && under(dir, other)));
  const holder = spawn('unshare', ['--ipc', '--mount', '--propagation', 'private', '--fork', '--kill-child', '--', 'sh', '-c', HOLDER, 'holder', ...needed],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  holder.stderr!.setEncoding('utf8').on('data', (chunk: string) => { err += chunk; });
  const pid = await new Promise<number>((resolve, reject) => {
    holder.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    holder.on('close', () => reject(new Error(`the namespaces for the run could not be made: ${err.trim()}`)));
  });
  return { pid, holder, bound: new Set(needed.map((dir) => dir.split('/')[2]!)) };
}

/** What is left in the namespaces: one line per IPC object or file. */
function leftovers(ns: Namespaces): string[] {
  const script = `ls -A /tmp
echo '#'
ls -A /dev/shm
echo '#'
tail -n +2 /proc/sysvipc/msg
echo '#'
tail -n +2 /proc/sysvipc/shm
echo '#'
tail -n +2 /proc/sysvipc/sem
echo '#'
mq=$(mktemp -d /dev/shm/.ipckit-docs-mqueue.XXXXXX)
mount -t mqueue ipckit-docs-mqueue "$mq"
ls -A "$mq"
umount "$mq"
rmdir "$mq"`;
  const out = execFileSync('nsenter', ['-t', String(ns.pid), '--ipc', '--mount', '--', 'sh', '-c', script], { encoding: 'utf8' });
  const [tmp, shm, msg, seg, sem, mq] = out.split('#\n').map((part) => part.split('\n').filter((line) => line.trim() !== ''));
  const sysv = (what: string, rows: string[] | undefined): string[] =>
    (rows ?? []).map((row) => row.trim().split(/\s+/)).map(([key, id]) => `a System V ${what} (key 0x${(Number(key) >>> 0).toString(16).padStart(8, '0')}, id ${id})`);
  return [
    ...(tmp ?? []).filter((name) => !ns.bound.has(name)).map((name) => `/tmp/${name}`),
    ...(shm ?? []).map((name) => (name.startsWith('sem.') ? `the POSIX semaphore /${name.slice(4)}` : `the POSIX segment /${name}`)),
    ...sysv('message queue', msg), ...sysv('segment', seg), ...sysv('semaphore set', sem),
    ...(mq ?? []).map((name) => `the POSIX message queue /${name}`),
  ];
}

/**
 * Starts one program (in its own process group; in `ns` if given); `spoke` resolves at its
 * first line of output or its exit, whichever comes first.
 */
function start(file: string, cwd: string, ns: Namespaces | undefined): { child: ChildProcess; spoke: Promise<void>; exited: Promise<Exit> } {
  const env = { ...process.env };
  delete env['NODE_TEST_CONTEXT'];
  if (ns) delete env['TMPDIR'];
  const [command, args] = ns
    ? ['nsenter', ['-t', String(ns.pid), '--ipc', '--mount', `--wd=${cwd}`, '--', process.execPath, file]]
    : [process.execPath, [file]];
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  let speak: () => void = () => {};
  const spoke = new Promise<void>((resolve) => { speak = resolve; });
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (stdout.includes('\n')) speak();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  const exited = new Promise<Exit>((resolve) => {
    child.on('close', (code, signal) => {
      speak();
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, spoke, exited };
}

/** Whether any process is still in the process group `pgid` after a grace period for the ones exiting. */
async function groupAlive(pgid: number): Promise<boolean> {
  for (let waited = 0; ; waited += 50) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return false;
    }
    if (waited >= 2000) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    /* Nobody left. */
  }
}

export interface RunOptions {
  /** How long the run may take. */
  runMs: number;
  /** Folders under /tmp the run needs (its own, the package it imports), bound into its namespaces. */
  bind: string[];
}

/**
 * Runs the members of a run (each written to `dir` as its baseName, compiled to .js if
 * `extension` is .ts) in page order, and checks how each ended and that nothing of theirs is left.
 */
export async function runTogether(members: Snippet[], dir: string, extension: string, { runMs: RUN_MS, bind }: RunOptions): Promise<void> {
  const started: { snippet: Snippet; child: ChildProcess; exited: Promise<Exit> }[] = [];
  const before = new Set(readdirSync(dir));
  const ns = ISOLATED ? await enterNamespaces([dir, ...bind]) : undefined;
  let timer: NodeJS.Timeout | undefined;
  const overtime = new Promise<'overtime'>((resolve) => { timer = setTimeout(() => resolve('overtime'), RUN_MS); });
  try {
    for (const snippet of members) {
      const program = start(baseName(snippet) + (extension === '.ts' ? '.js' : extension), dir, ns);
      started.push({ snippet, ...program });
      if (await Promise.race([program.spoke, overtime]) === 'overtime') break;
    }
    const all = Promise.all(started.map((s) => s.exited));
    if (await Promise.race([all, overtime]) === 'overtime') {
      for (const s of started) killGroup(s.child.pid!);
      const ends = await all;
      const waiting = started.length < members.length
        ? `\nnever started (waiting for a line of output from ${started.at(-1)!.snippet.page}:${started.at(-1)!.snippet.line}, ` +
          'as a group member says it is ready): ' + members.slice(started.length).map((s) => `${s.page}:${s.line}`).join(', ')
        : '';
      assert.fail(`still running after ${RUN_MS} ms:${waiting}\n` + ends.map((e, i) => describeExit(started[i]!.snippet, e)).join('\n'));
    }
    const ends = await all;
    ends.forEach((e, i) => {
      const { snippet } = started[i]!;
      assert.equal(e.code, 0, describeExit(snippet, e));
      if (snippet.output !== undefined) assert.equal(e.stdout, snippet.output, `the output of ${snippet.page}:${snippet.line}`);
    });
    const left: string[] = [];
    for (const s of started) {
      if (await groupAlive(s.child.pid!)) left.push(`a process started by ${s.snippet.page}:${s.snippet.line} (process group ${s.child.pid})`);
    }
    for (const name of readdirSync(dir)) if (!before.has(name)) left.push(`${path.join(dir, name)} (in the page's folder)`);
    if (ns) left.push(...leftovers(ns));
    assert.deepEqual(left, [], `${members.map((s) => `${s.page}:${s.line}`).join(' + ')} left these behind`);
  } finally {
    clearTimeout(timer);
    for (const s of started) killGroup(s.child.pid!);
    for (const name of readdirSync(dir)) if (!before.has(name)) rmSync(path.join(dir, name), { recursive: true, force: true });
    if (ns) {
      const gone = new Promise((resolve) => ns.holder.on('close', resolve));
      ns.holder.kill('SIGKILL');
      await gone;
    }
  }
}

function describeExit(s: Snippet, e: Exit): string {
  return `${s.page}:${s.line} ended with ${e.code ?? e.signal}\n--- stdout\n${e.stdout}--- stderr\n${e.stderr}`;
}

