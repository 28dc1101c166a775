/**
 * Real peer processes for tests: a Node child running one of the scenarios
 * in peer-main.ts, talking back through JSON lines on stdout. Every peer is
 * killed at the end of the test file if it is still running.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const PEER_MAIN = fileURLToPath(new URL('./peer-main.js', import.meta.url));

/**
 * Whether a peer can run as user `uid` here (prefix it with {@link asUser}):
 * this process is root, setpriv(1) exists, and that user can reach the
 * compiled tests (a checkout under a 0700 directory cannot).
 */
export function canRunAs(uid: number): boolean {
  if (process.getuid!() !== 0 || spawnSync('setpriv', ['--version']).status !== 0) return false;
  return spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(PEER_MAIN)})`], { uid, gid: uid }).status === 0;
}

/** The argv prefix that runs a peer as user `uid`. */
export function asUser(uid: number): string[] {
  return ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--'];
}
const live = new Set<Peer>();
const children = new Set<ChildProcess>();

const closings = new WeakMap<ChildProcess, Promise<PeerExit>>();

/**
 * Tracks a child process a test started, so `killAllPeers()` ends it if the
 * test does not, and so {@link closed} can tell when it closed, however
 * long ago.
 */
export function trackChild(child: ChildProcess): ChildProcess {
  children.add(child);
  closings.set(child, new Promise((resolve) => child.on('close', (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  })));
  return child;
}

/**
 * How a tracked child ended, once it has exited and its output is closed.
 * A listener added only now would wait for ever if the child closed while
 * the test awaited something else.
 */
export function closed(child: ChildProcess): Promise<PeerExit> {
  const closing = closings.get(child);
  if (!closing) throw new Error(`child ${child.pid} is not tracked: pass it to trackChild() when it is spawned`);
  return closing;
}

/** How many peers and tracked children are still running. */
export function runningChildren(): number {
  return live.size + children.size;
}

export interface PeerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class Peer {
  readonly child: ChildProcess;
  readonly exited: Promise<PeerExit>;
  stderr = '';
  readonly #lines: unknown[] = [];
  readonly #waiters: ((line: unknown) => void)[] = [];

  /** `fds`: extra descriptors for the child, by number (3 and up). */
  constructor(scenario: string, params: unknown, options: { prefix?: string[]; fds?: Record<number, number> } = {}) {
    const [command, ...args] = [...(options.prefix ?? []), process.execPath, PEER_MAIN, scenario, JSON.stringify(params)];
    const stdio: (string | number)[] = ['ignore', 'pipe', 'pipe'];
    for (const [n, fd] of Object.entries(options.fds ?? {})) {
      while (stdio.length <= Number(n)) stdio.push('ignore');
      stdio[Number(n)] = fd;
    }
    this.child = spawn(command!, args, { stdio: stdio as ('ignore' | 'pipe')[] });
    live.add(this);
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const value = JSON.parse(line) as unknown;
      const waiter = this.#waiters.shift();
      if (waiter) waiter(value);
      else this.#lines.push(value);
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { this.stderr += chunk; });
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        live.delete(this);
        resolve({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The next JSON line the peer printed; fails after `timeoutMs`. */
  next<T = Record<string, unknown>>(timeoutMs = 10_000): Promise<T> {
    const ready = this.#lines.shift();
    if (ready !== undefined) return Promise.resolve(ready as T);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`peer ${this.pid} printed nothing in ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.#waiters.push((line) => {
        clearTimeout(timer);
        resolve(line as T);
      });
    });
  }

  /** Waits for the peer to exit and fails if it did not exit 0. */
  async success(): Promise<void> {
    const exit = await this.exited;
    if (exit.code !== 0) throw new Error(`peer ${this.pid} exited ${exit.code ?? exit.signal}: ${this.stderr}`);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<PeerExit> {
    this.child.kill(signal);
    return this.exited;
  }
}

/** Kills every peer and tracked child still running (for `after` hooks). */
export async function killAllPeers(): Promise<void> {
  await Promise.all([
    ...[...live].map((peer) => peer.kill()),
    ...[...children].map((child) => new Promise((resolve) => {
      child.once('close', resolve);
      child.kill('SIGKILL');
    })),
  ]);
}
