/**
 * An actor: a real other Node process that performs operations on request,
 * so a test can complete (or contend for) a waiting call from outside this
 * process. Requests and replies are JSON lines over the child's stdin and
 * stdout; the operations are the `REMOTE` handlers of waitables.ts, run by
 * actor-main.ts. Descriptors given at spawn time (pipe ends) appear in the
 * child as fd 3, 4, ...
 *
 * Every actor is tracked (peer.ts `trackChild`), so `killAllPeers()` ends
 * it and `runningChildren()` counts it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { type PeerExit, trackChild } from './peer.js';

const ACTOR_MAIN = fileURLToPath(new URL('./actor-main.js', import.meta.url));

/** What a failed request rejects with: the remote error's code and message. */
export class RemoteError extends Error {
  readonly code: string | null;

  constructor(code: string | null, message: string) {
    super(message);
    this.code = code;
  }
}

interface Request {
  started: (value: unknown) => void;
  done: (value: unknown) => void;
  failed: (error: RemoteError) => void;
}

/** A request in flight: `started` once the actor says it began (or finished), `done` when it finished. */
export interface Started<T = unknown> {
  started: unknown;
  done: Promise<T>;
}

export class Actor {
  readonly child: ChildProcess;
  readonly exited: Promise<PeerExit>;
  #stderr = '';
  #next = 1;
  readonly #requests = new Map<number, Request>();

  /** `fds`: descriptors of this process the child gets as 3, 4, ... */
  constructor(fds: number[] = []) {
    this.child = trackChild(spawn(process.execPath, [ACTOR_MAIN], { stdio: ['pipe', 'pipe', 'pipe', ...fds] }));
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { this.#stderr += chunk; });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.#reply(JSON.parse(line) as Record<string, unknown>));
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        const gone = new RemoteError(null, `actor ${this.pid} exited (${code ?? signal}); stderr: ${this.#stderr}`);
        for (const request of this.#requests.values()) request.failed(gone);
        this.#requests.clear();
        resolve({ code, signal });
      });
    });
    // A request to an actor that died fails through `close`, not through an EPIPE on stdin.
    this.child.stdin!.on('error', () => undefined);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Runs `op` in the actor and resolves with its result. */
  call<T = unknown>(op: string, params: Record<string, unknown> = {}): Promise<T> {
    return this.start<T>(op, params).then((s) => s.done);
  }

  /** Sends `op` and resolves once the actor reports it started (or finished). */
  start<T = unknown>(op: string, params: Record<string, unknown> = {}): Promise<Started<T>> {
    const id = this.#next++;
    return new Promise((resolveStarted, rejectStarted) => {
      let resolveDone!: (value: T) => void;
      let rejectDone!: (error: RemoteError) => void;
      const done = new Promise<T>((res, rej) => {
        resolveDone = res;
        rejectDone = rej;
      });
      // Nobody may ever look at `done` (a blocked actor that is killed): no unhandled rejection.
      done.catch(() => undefined);
      let reported = false;
      this.#requests.set(id, {
        started: (value) => {
          if (!reported) resolveStarted({ started: value, done });
          reported = true;
        },
        done: (value) => {
          if (!reported) resolveStarted({ started: value, done });
          reported = true;
          resolveDone(value as T);
        },
        failed: (error) => {
          if (!reported) rejectStarted(error);
          reported = true;
          rejectDone(error);
        },
      });
      this.child.stdin!.write(`${JSON.stringify({ id, op, params })}\n`);
    });
  }

  /** Waits until the actor's main thread sleeps in the kernel outside the event loop's own wait: inside a blocking call. */
  async untilBlocked(timeoutMs = 10_000): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const where = blockedIn(this.pid);
      if (where !== undefined) return where;
      if (performance.now() > deadline) throw new Error(`actor ${this.pid} did not block within ${timeoutMs} ms`);
      await sleep(2);
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<PeerExit> {
    this.child.kill(signal);
    return this.exited;
  }

  /** Ends the actor: closing stdin makes it exit; a stuck one is killed. */
  async stop(): Promise<void> {
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }

  #reply(message: Record<string, unknown>): void {
    const request = this.#requests.get(message.id as number);
    if (request === undefined) return;
    if (message.error !== undefined) {
      const { code, message: text } = message.error as { code: string | null; message: string };
      this.#requests.delete(message.id as number);
      request.failed(new RemoteError(code, `actor ${this.pid}: ${text}`));
    } else if (message.done === true) {
      this.#requests.delete(message.id as number);
      request.done(message.value);
    } else {
      request.started(message.value);
    }
  }
}

/**
 * Where the main thread of `pid` sleeps, if it sleeps in something other
 * than the event loop's epoll wait (a blocking system call of a *Sync
 * call); undefined while it runs or waits in its event loop.
 */
function blockedIn(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    const wchan = readFileSync(`/proc/${pid}/task/${pid}/wchan`, 'utf8').trim();
    if (state !== 'S' || wchan === '' || wchan === '0' || /epoll|ep_poll/.test(wchan)) return undefined;
    return wchan;
  } catch {
    return undefined;
  }
}

let shared: Actor | undefined;

/** The actor shared by every test of the file (for objects reached by name); started on first use. */
export function sharedActor(): Actor {
  if (shared === undefined || shared.child.exitCode !== null || shared.child.signalCode !== null) shared = new Actor();
  return shared;
}

/** Stops the shared actor, if it runs. */
export async function stopSharedActor(): Promise<void> {
  const actor = shared;
  shared = undefined;
  await actor?.stop();
}
