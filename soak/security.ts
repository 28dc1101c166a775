/**
 * The security matrix: every kind of named object against every hostile
 * set-up another local user can arrange before this process reaches the
 * name, attempted with every open that could reach it.
 *
 * Each cell is played between real processes: a squatter (uid 65534, a
 * long-lived actor) places the object, a fresh victim process (this user)
 * makes the attempts, each bounded by a timeout and the victim by a kill
 * timer, and reports what each call did and whether a descriptor or mapping
 * of the object survived it. Then the cell checks that nothing was used:
 * the squatter's bait message is still the only one, its memory is
 * unchanged, a System V segment was never attached, a FIFO's other end (a
 * watcher process blocked in open) was never met, lock words are as the
 * holder left them. Controls (the same object opened with `{ owner }`
 * naming its user) show the refusals came from the check, and that the
 * watchers do see an open.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Fifo, NamedSemaphore, PosixMessageQueue, PosixSharedMemory, SemaphoreSet, SysvMessageQueue, SysvSharedMemory } from '../src/index.js';
import { type Section, type SectionResult, runStandalone } from './report.js';

const INDEX = new URL('../src/index.js', import.meta.url).href;
/** The squatter: nobody. */
const OTHER = 65534;
/** Another unprivileged user: the waiter under hidepid, and an owner named who is not the squatter. */
const THIRD = 1000;
const PYTHON = '/usr/bin/python3';
const SIZE = 4096;
const BAIT = 'bait placed by the squatter';
const FILL = 0xa5;
/** A victim process that has not reported every attempt by then hung. */
const VICTIM_TIMEOUT_MS = 15_000;
/** A refusal must come at once: one that takes longer waited for something. */
const SLOW_MS = 1000;
/** How long a FIFO watcher is given to report an open it met. */
const SETTLE_MS = 150;
/** The bound of the calls that could wait. */
const WAIT = 300;

const UNTRUSTED = ['ERR_IPC_UNTRUSTED'];
const EEXIST = ['EEXIST'];
const NOT_A_FIFO = ['ERR_IPC_NOT_A_FIFO'];
/** A symbolic link in /dev/shm is opened as itself (O_PATH | O_NOFOLLOW) and refused by its type. */
const LINK = ['ERR_IPC_INVALID_ADDRESS'];
const NOT_A_SEGMENT = ['ERR_IPC_INVALID_ADDRESS', 'ERR_IPC_UNTRUSTED'];
/** glibc's shm_open reports a directory as EINVAL. */
const DIRECTORY = ['EINVAL', 'EISDIR', 'ERR_IPC_INVALID_ADDRESS', 'ERR_IPC_UNTRUSTED'];
const BAD_NAME = ['ERR_IPC_INVALID_ADDRESS'];
/** Not a regular file at a named semaphore's name: refused by its type (on an O_PATH descriptor), before any owner check. */
const NOT_A_SEMAPHORE = ['ERR_IPC_INVALID_ADDRESS', 'ERR_IPC_UNTRUSTED'];
const WRONG_SIZE = ['ERR_IPC_SIZE_MISMATCH'];

const SQUATTED = 'squatted by uid 65534, mode 0666';
const SYMLINK = 'symbolic link at the name';
const OTHER_TYPE = 'other file type at the name';
const WIDE = 'own object, mode wider than asked';
const HIDEPID = '/proc hidepid=2, holder another user';
const HANDED = 'System V: created by 65534, handed to us';

const KIND = {
  posixMq: 'POSIX message queue',
  sysvMq: 'System V message queue',
  posixShm: 'POSIX shared memory',
  sysvShm: 'System V shared memory',
  fifo: 'FIFO',
  lock: 'Mutex / Semaphore in a segment',
  namedSem: 'POSIX named semaphore',
  semSet: 'System V semaphore set',
};

/** A named semaphore's file: glibc keeps `/x` in /dev/shm/sem.x. */
const semFile = (name: string): string => `/dev/shm/sem.${name.slice(1)}`;
/** What the victim looks for among its descriptors and mappings. */
const semNeedle = (name: string): string => `sem.${name.slice(1)}`;

// ---------------------------------------------------------------------------
// The processes: scripts written into the run's directory, run as a user.

/** The squatter: places objects on request (JSON lines on stdin), keeps what must stay held. */
const ACTOR = `
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
const m = await import(process.argv[2]);
const kept = [];
// IPC_STAT, then IPC_SET with the owner uid (offset 4 of ipc_perm) set to 0: the creator hands the object over.
const GIVE = [
  'import ctypes, sys',
  'libc = ctypes.CDLL(None, use_errno=True)',
  'buf = ctypes.create_string_buffer(256)',
  'ident = int(sys.argv[2])',
  'kind = sys.argv[1]',
  'ctl = (lambda cmd: libc.semctl(ident, 0, cmd, buf)) if kind == "sem" else (lambda cmd: (libc.msgctl if kind == "msg" else libc.shmctl)(ident, cmd, buf))',
  'assert ctl(2) == 0, ctypes.get_errno()',
  'ctypes.memmove(ctypes.addressof(buf) + 4, (ctypes.c_uint32 * 1)(0), 4)',
  'assert ctl(1) == 0, ctypes.get_errno()',
].join('\\n');
const give = (what, id) => execFileSync(${JSON.stringify(PYTHON)}, ['-c', GIVE, what, String(id)], { timeout: 10000 });
const words = (shm) => Array.from(new Int32Array(shm.buffer, 0, 8));
function lockSegment(shm) {
  const mutex = m.Mutex.create(shm, 0);
  mutex.lockSync();
  m.Semaphore.create(shm, 16);
  kept.push(shm, mutex);
  return { tid: mutex.owner, words: words(shm) };
}
const ops = {
  posixMq({ name, mode }) {
    const q = m.PosixMessageQueue.create(name, { mode });
    q.trySend(Buffer.from(${JSON.stringify(BAIT)}));
    q.close();
  },
  sysvMq({ key, mode, hand }) {
    const q = m.SysvMessageQueue.create(key, { mode });
    q.trySend(1, Buffer.from(${JSON.stringify(BAIT)}));
    const id = q.id;
    q.close();
    if (hand) give('msg', id);
    return { id, pid: process.pid };
  },
  posixShm({ name, mode }) {
    const shm = m.PosixSharedMemory.create(name, { size: ${SIZE}, mode });
    new Uint8Array(shm.buffer).fill(${FILL});
    shm.close();
  },
  sysvShm({ key, mode, hand }) {
    const shm = m.SysvSharedMemory.create(key, { size: ${SIZE}, mode });
    new Uint8Array(shm.buffer).fill(${FILL});
    const id = shm.id;
    shm.close();
    if (hand) give('shm', id);
    return { id };
  },
  posixLocks({ name }) { return lockSegment(m.PosixSharedMemory.create(name, { size: ${SIZE}, mode: 0o666 })); },
  sysvLocks({ key }) {
    const shm = m.SysvSharedMemory.create(key, { size: ${SIZE}, mode: 0o666 });
    return { id: shm.id, ...lockSegment(shm) };
  },
  namedSem({ name, mode, value }) { m.NamedSemaphore.create(name, { mode, value }).close(); },
  sysvSem({ key, mode, hand }) {
    const set = m.SemaphoreSet.create(key, { count: 2, value: [1, 0], mode });
    const id = set.id;
    set.close();
    if (hand) give('sem', id);
    return { id };
  },
  fifo({ path, mode }) { m.Fifo.create(path, { mode }); },
  symlink({ target, path }) { symlinkSync(target, path); },
  file({ path, data, mode }) { writeFileSync(path, data, { flag: 'wx' }); chmodSync(path, mode); },
  directory({ path, mode }) { mkdirSync(path); chmodSync(path, mode); },
  async socket({ path }) {
    const server = createServer();
    kept.push(server);
    await new Promise((resolve, reject) => { server.once('error', reject); server.listen(path, resolve); });
  },
};
createInterface({ input: process.stdin }).on('line', async (line) => {
  const { id, op, args } = JSON.parse(line);
  let reply;
  try {
    reply = { id, ok: (await ops[op](args)) ?? {} };
  } catch (err) {
    reply = { id, error: String(err?.code ?? '') + ' ' + String(err?.message ?? err) };
  }
  process.stdout.write(JSON.stringify(reply) + '\\n');
});
process.stdout.write('ready\\n');
`;

/**
 * The victim: makes each attempt in turn and reports, per attempt, what it
 * did and which descriptors or mappings of the cell's objects it left.
 */
const VICTIM = `
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
const m = await import(process.argv[2]);
const { needles, attempts } = JSON.parse(process.argv[3]);
function reaching() {
  const found = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let target;
    try { target = readlinkSync('/proc/self/fd/' + fd); } catch { continue; }
    if (needles.some((n) => target.includes(n))) found.push('fd ' + target);
  }
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\\n')) {
    if (needles.some((n) => line.includes(n))) found.push('mapping ' + line.split(/\\s+/).slice(5).join(' '));
  }
  return found;
}
for (const { call, args } of attempts) {
  const [kind, method] = call.split('.');
  const r = {};
  const t0 = performance.now();
  try {
    let v = m[kind][method](...args);
    if (v instanceof Promise) v = await v;
    r.result = 'accepted';
    if (v !== null && typeof v === 'object' && 'created' in v) r.created = v.created;
    if (v !== null && typeof v?.close === 'function') {
      v.close();
      // A named semaphore gives its mapping back a microtask after close() (docs/reliability.md).
      await new Promise((resolve) => setImmediate(resolve));
    }
  } catch (err) {
    r.result = 'refused';
    r.code = String(err?.code ?? err);
    r.message = String(err?.message ?? err);
  }
  r.ms = Math.round(performance.now() - t0);
  r.reaching = reaching();
  process.stdout.write(JSON.stringify(r) + '\\n');
}
`;

/** A FIFO's other end: blocks in open(2) and says 'met' if the open completes. */
const WATCH = `
import { open } from 'node:fs';
const [path, flags] = process.argv.slice(2);
open(path, flags, (err) => { process.stdout.write(err ? 'error ' + err.code + '\\n' : 'met\\n'); process.exit(0); });
process.stdout.write('waiting\\n');
`;

/** Under hidepid: creates a segment, holds the mutex in it, and stays. */
const HOLDER = `
const m = await import(process.argv[2]);
const shm = m.PosixSharedMemory.create(process.argv[3], { size: ${SIZE}, mode: 0o666 });
const mutex = m.Mutex.create(shm, 0);
mutex.lockSync();
process.stdout.write('holding ' + mutex.owner + '\\n');
setTimeout(() => {}, 60000);
`;

/** Under hidepid: a waiter of another user, while the holder lives ('alive') and after it was killed ('dead'). */
const WAITER = `
import { existsSync } from 'node:fs';
const m = await import(process.argv[2]);
const [name, owner, phase] = process.argv.slice(3);
const mutex = m.Mutex.open(m.PosixSharedMemory.open(name, { owner: Number(owner) }), 0);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
async function attempt(call, fn) {
  const t0 = performance.now();
  try {
    const v = await fn();
    out({ call, result: v === false ? 'refused' : 'accepted', code: v === false ? 'false' : undefined, ms: Math.round(performance.now() - t0) });
  } catch (err) {
    out({ call, result: 'refused', code: String(err?.code ?? err), ms: Math.round(performance.now() - t0) });
  }
}
if (phase === 'alive') {
  out({ holder: mutex.owner, visible: existsSync('/proc/' + mutex.owner) });
  await attempt('lockSync', () => mutex.lockSync({ timeout: ${WAIT} }));
  await attempt('lock', () => mutex.lock({ timeout: ${WAIT} }));
  await attempt('tryLock', () => mutex.tryLock());
  await attempt('withLock', () => mutex.withLock(() => 'ran', { timeout: ${WAIT} }));
  out({ holderAfter: mutex.owner });
} else {
  await attempt('lockSync', () => mutex.lockSync({ timeout: 5000 }));
}
`;

const SCRIPTS = { actor: ACTOR, victim: VICTIM, watch: WATCH, holder: HOLDER, waiter: WAITER };

/** The argv prefix that runs a command as user `uid`. */
function asUser(uid: number): string[] {
  return ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--'];
}

/** Whether this process can run Node as user `uid` with ipckit readable (root, setpriv, a reachable checkout). */
function canActAs(uid: number): boolean {
  if (process.getuid!() !== 0) return false;
  const probe = `require('fs').accessSync(${JSON.stringify(fileURLToPath(INDEX))})`;
  return spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', process.execPath, '-e', probe], { timeout: 10_000 }).status === 0;
}

/** Quotes one word for sh. */
function q(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A child process in its own process group, read line by line; stopping it kills the group. */
class Proc {
  readonly child: ChildProcess;
  /** Every line it printed. */
  readonly seen: string[] = [];
  exit: string | undefined;
  stderr = '';
  readonly #unread: string[] = [];
  #wake: (() => void) | undefined;
  readonly #closed: Promise<void>;

  constructor(argv: string[]) {
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.seen.push(line);
      this.#unread.push(line);
      this.#wake?.();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      if (this.stderr.length < 4000) this.stderr += chunk;
    });
    this.#closed = new Promise((resolve) => {
      const ended = (how: string): void => {
        this.exit ??= how;
        this.#wake?.();
        resolve();
      };
      this.child.on('close', (code, signal) => ended(signal ?? `exit ${code}`));
      this.child.on('error', (err) => ended(`spawn failed: ${err.message}`));
    });
  }

  /** The next line not yet read; `undefined` once it exited with nothing more, or after `timeoutMs`. */
  async next(timeoutMs: number): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.#unread.shift();
      if (line !== undefined) return line;
      if (this.exit !== undefined || Date.now() >= deadline) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** Kills the whole group (a shell's background children too) and waits for it. */
  async stop(): Promise<void> {
    if (this.exit === undefined && this.child.pid !== undefined) {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch { /* Already gone. */ }
    }
    await this.#closed;
  }
}

/** What the victim reported for one attempt. */
interface Result {
  result: 'accepted' | 'refused' | 'hung' | 'crashed' | 'not run';
  code?: string;
  message?: string;
  created?: boolean;
  ms?: number;
  reaching?: string[];
}

/** One call: `Class.method(...args)`, refused with one of `expect`, or (a control) accepted. */
interface Attempt {
  call: string;
  args: unknown[];
  expect: readonly string[] | 'accept';
}

const hostile = (call: string, args: unknown[], expect: readonly string[] = UNTRUSTED): Attempt => ({ call, args, expect });
const control = (call: string, args: unknown[]): Attempt => ({ call, args, expect: 'accept' });

/**
 * Everything one run creates: names, keys, paths and processes, all removed
 * or ended by `cleanup()` whatever happened.
 */
class Scene {
  readonly dir = mkdtempSync(join(tmpdir(), 'ipckit-security-'));
  readonly #tag = `ipckit-sec-${process.pid}-${randomBytes(3).toString('hex')}`;
  #count = 0;
  readonly #mqs = new Set<string>();
  readonly #shms = new Set<string>();
  readonly #sems = new Set<string>();
  readonly #msgKeys = new Set<number>();
  readonly #shmKeys = new Set<number>();
  readonly #semKeys = new Set<number>();
  readonly #procs = new Set<Proc>();

  constructor() {
    chmodSync(this.dir, 0o1777); // Like /tmp: anyone may create, only the owner removes.
    for (const [name, text] of Object.entries(SCRIPTS)) writeFileSync(this.script(name as keyof typeof SCRIPTS), text, { mode: 0o644 });
  }

  script(name: keyof typeof SCRIPTS): string {
    return join(this.dir, `${name}.mjs`);
  }

  /** A fresh bare name; the three-digit counter keeps one from being a prefix of another. */
  name(): string {
    return `${this.#tag}-${String(++this.#count).padStart(3, '0')}`;
  }

  mq(): string {
    const name = `/${this.name()}`;
    this.#mqs.add(name);
    return name;
  }

  shm(): string {
    const name = `/${this.name()}`;
    this.#shms.add(name);
    return name;
  }

  /** A named semaphore's name (its file is /dev/shm/sem.<name>). */
  sem(): string {
    const name = `/${this.name()}`;
    this.#sems.add(name);
    return name;
  }

  path(): string {
    return join(this.dir, this.name());
  }

  /** A System V key (from this pid and a random part) that no queue, segment or semaphore set uses now. */
  key(kind: SysvKind): number {
    const mine = { msg: this.#msgKeys, shm: this.#shmKeys, sem: this.#semKeys };
    const used = new Set([...sysvKeys('msg'), ...sysvKeys('shm'), ...sysvKeys('sem'), ...this.#msgKeys, ...this.#shmKeys, ...this.#semKeys]);
    for (;;) {
      const key = (0x50000000 | ((process.pid & 0xfff) << 16) | randomBytes(2).readUInt16LE()) >>> 0;
      if (used.has(key)) continue;
      mine[kind].add(key);
      return key;
    }
  }

  /** Starts `argv`, as user `uid` when given. */
  start(argv: string[], uid?: number): Proc {
    const proc = new Proc(uid === undefined ? argv : [...asUser(uid), ...argv]);
    this.#procs.add(proc);
    return proc;
  }

  /** Ends every process, removes every object; returns what could not be removed. */
  async cleanup(): Promise<string[]> {
    await Promise.all([...this.#procs].map((p) => p.stop()));
    const left: string[] = [];
    const quietly = (what: string, fn: () => void): void => {
      try {
        fn();
      } catch (err) {
        if ((err as { code?: string }).code !== 'ENOENT') left.push(`${what}: ${String(err)}`);
      }
    };
    for (const name of this.#mqs) quietly(name, () => PosixMessageQueue.unlink(name));
    for (const name of this.#shms) rmSync(`/dev/shm${name}`, { recursive: true, force: true });
    for (const name of this.#sems) rmSync(semFile(name), { recursive: true, force: true });
    for (const key of this.#msgKeys) quietly(`queue key ${key}`, () => SysvMessageQueue.remove(key));
    for (const key of this.#shmKeys) quietly(`segment key ${key}`, () => SysvSharedMemory.remove(key));
    for (const key of this.#semKeys) quietly(`semaphore set key ${key}`, () => SemaphoreSet.remove(key));
    rmSync(this.dir, { recursive: true, force: true });
    for (const name of this.#mqs) {
      try {
        PosixMessageQueue.open(name, { owner: 'any' }).close();
        left.push(`POSIX queue ${name}`);
      } catch { /* Gone, as it should be. */ }
    }
    for (const name of this.#shms) if (exists(`/dev/shm${name}`)) left.push(`/dev/shm${name}`);
    for (const name of this.#sems) if (exists(semFile(name))) left.push(semFile(name));
    const msgs = sysvKeys('msg');
    const shms = sysvKeys('shm');
    const sems = sysvKeys('sem');
    for (const key of this.#msgKeys) if (msgs.has(key)) left.push(`System V queue key 0x${key.toString(16)}`);
    for (const key of this.#shmKeys) if (shms.has(key)) left.push(`System V segment key 0x${key.toString(16)}`);
    for (const key of this.#semKeys) if (sems.has(key)) left.push(`System V semaphore set key 0x${key.toString(16)}`);
    if (exists(this.dir)) left.push(this.dir);
    return left;
  }
}

type SysvKind = 'msg' | 'shm' | 'sem';

/** Keys of the System V queues, segments or semaphore sets that exist now. */
function sysvKeys(kind: SysvKind): Set<number> {
  const rows = readFileSync(`/proc/sysvipc/${kind}`, 'utf8').trim().split('\n').slice(1);
  return new Set(rows.map((row) => Number(row.trim().split(/\s+/)[0]) >>> 0));
}

/** Whether anything (a dangling symbolic link included) is at `path`. */
function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A long-lived process of one user that places objects on request. */
class Actor {
  #seq = 0;

  private constructor(readonly proc: Proc, readonly uid: number | undefined) {}

  static async start(scene: Scene, uid?: number): Promise<Actor> {
    const proc = scene.start([process.execPath, scene.script('actor'), INDEX], uid);
    const hello = await proc.next(10_000);
    if (hello !== 'ready') throw new Error(`the actor of uid ${uid ?? process.getuid!()} did not start: ${proc.exit ?? ''} ${proc.stderr}`);
    return new Actor(proc, uid);
  }

  get pid(): number {
    return this.proc.child.pid!;
  }

  async call<T = Record<string, never>>(op: string, args: Record<string, unknown>): Promise<T> {
    const id = ++this.#seq;
    this.proc.send(JSON.stringify({ id, op, args }));
    const line = await this.proc.next(10_000);
    if (line === undefined) throw new Error(`the actor did not answer ${op}: ${this.proc.exit ?? 'no reply'} ${this.proc.stderr}`);
    const reply = JSON.parse(line) as { ok?: T; error?: string };
    if (reply.error !== undefined) throw new Error(`the actor could not ${op} ${JSON.stringify(args)}: ${reply.error}`);
    return reply.ok!;
  }
}

/**
 * Runs `attempts` in a fresh victim process of this user. `needles` name the
 * cell's objects, to find descriptors or mappings of them left behind. A
 * victim that stops reporting is killed: the attempt it was on hung (or
 * crashed, if it died), the rest did not run.
 */
async function victim(scene: Scene, needles: string[], attempts: Attempt[]): Promise<Result[]> {
  const spec = JSON.stringify({ needles, attempts: attempts.map(({ call, args }) => ({ call, args })) });
  const proc = scene.start([process.execPath, scene.script('victim'), INDEX, spec]);
  const deadline = Date.now() + VICTIM_TIMEOUT_MS;
  const results: Result[] = [];
  while (results.length < attempts.length) {
    const line = await proc.next(deadline - Date.now());
    if (line === undefined) break;
    results.push(JSON.parse(line) as Result);
  }
  if (results.length < attempts.length) {
    const died = proc.exit;
    results.push(died === undefined
      ? { result: 'hung', message: `no answer in ${VICTIM_TIMEOUT_MS} ms` }
      : { result: 'crashed', message: `${died}: ${proc.stderr.trim().split('\n').slice(-3).join(' ')}` });
    while (results.length < attempts.length) results.push({ result: 'not run' });
  }
  await proc.stop();
  return results;
}

/** A process of user `uid` blocked in opening the FIFO at `path` (`r` meets writers, `w` meets readers). */
async function watchFifo(scene: Scene, uid: number | undefined, path: string, flags: 'r' | 'w'): Promise<Proc> {
  const proc = scene.start([process.execPath, scene.script('watch'), path, flags], uid);
  if ((await proc.next(10_000)) !== 'waiting') throw new Error(`the watcher of ${path} did not start: ${proc.exit ?? ''} ${proc.stderr}`);
  // Blocked once one of its threads sleeps in the FIFO open (where the kernel shows no wchan, a pause must do).
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const wchans = readdirSync(`/proc/${proc.child.pid}/task`).map((t) => {
      try {
        return readFileSync(`/proc/${proc.child.pid}/task/${t}/wchan`, 'utf8');
      } catch {
        return '';
      }
    });
    if (wchans.includes('wait_for_partner')) return proc;
    if (wchans.every((w) => w === '0' || w === '')) {
      await delay(200);
      return proc;
    }
    if (proc.seen.length > 1) throw new Error(`the watcher of ${path} was met before any attempt: ${proc.seen.join(' ')}`);
    await delay(10);
  }
  throw new Error(`the watcher of ${path} never blocked in open(2)`);
}

/** Whether the watcher's open completed (it met an end), after giving it time to say so. */
async function met(watcher: Proc): Promise<boolean> {
  await delay(SETTLE_MS);
  return watcher.seen.includes('met');
}

/** One row of the matrix, and the invariants it found broken. */
class Cell {
  attempted = 0;
  refused = 0;
  readonly failures: string[] = [];
  readonly notes: string[] = [];
  readonly #codes = new Map<string, number>();

  constructor(readonly kind: string, readonly setup: string) {}

  /**
   * Counts the hostile attempts and fails any that was accepted, hung,
   * crashed, refused with another code, refused only after waiting, or
   * left a descriptor or mapping of the object behind.
   */
  judge(attempts: Attempt[], results: Result[]): void {
    attempts.forEach((attempt, i) => {
      const r = results[i]!;
      const what = `${attempt.call}(${attempt.args.map((a) => JSON.stringify(a)).join(', ')})`;
      if (attempt.expect === 'accept') {
        if (r.result !== 'accepted') this.fail(`control ${what} was not accepted: ${r.result} ${r.code ?? ''} ${r.message ?? ''}`);
        else if (r.created === true) this.fail(`control ${what} created a new object instead of opening the one there`);
        if ((r.reaching ?? []).length > 0) this.fail(`control ${what} left ${r.reaching!.join(', ')}`);
        return;
      }
      if (r.result === 'not run') return;
      this.attempted++;
      if (r.result !== 'refused') {
        this.fail(`${what} ${r.result === 'accepted' ? 'was ACCEPTED' : r.result}${r.message ? `: ${r.message}` : ''}`);
        return;
      }
      if (!attempt.expect.includes(r.code!)) {
        this.fail(`${what} was refused with ${r.code}, expected ${attempt.expect.join(' or ')}: ${r.message}`);
      } else {
        this.refused++;
        this.#codes.set(r.code!, (this.#codes.get(r.code!) ?? 0) + 1);
      }
      if ((r.ms ?? 0) > SLOW_MS) this.fail(`${what} took ${r.ms} ms to refuse (it waited)`);
      if ((r.reaching ?? []).length > 0) this.fail(`${what} left ${r.reaching!.join(', ')}`);
    });
  }

  /** Counts the controls accepted (they prove the refusals came from the set-up). */
  controls(attempts: Attempt[], results: Result[], what: string): void {
    this.judge(attempts, results);
    const accepted = results.filter((r) => r.result === 'accepted').length;
    this.notes.push(`${what}: ${accepted}/${attempts.length} accepted`);
  }

  /** An invariant of "nothing was used": a note when it holds, a failure when not. */
  check(holds: boolean, ok: string, broken: string): void {
    if (!holds) this.fail(broken);
    else if (ok !== '') this.notes.push(ok);
  }

  fail(what: string): void {
    this.failures.push(what);
  }

  row(): (string | number)[] {
    const codes = [...this.#codes].map(([code, n]) => `${code} ×${n}`).join(', ');
    const parts = [codes === '' ? '' : `refused: ${codes}`, ...this.notes].filter((p) => p !== '');
    const outcome = this.failures.length > 0 ? `FAILED: ${this.failures.join('; ')}. ${parts.join('; ')}` : parts.join('; ');
    return [this.kind, this.setup, this.attempted, this.refused, outcome.replace(/\|/g, '/')];
  }
}

/** A row that was not played, and why. */
function unplayed(kind: string, setup: string, why: string): Cell {
  const cell = new Cell(kind, setup);
  cell.notes.push(why);
  return cell;
}

/** What the cells share. */
interface Matrix {
  scene: Scene;
  /** The squatter (uid 65534), when this process may act as another user. */
  squatter: Actor | undefined;
  /** Who places links and other files: the squatter, or this user when there is none. */
  placer: Actor;
}

// ---------------------------------------------------------------------------
// (1) Squatted: another user created the object first, mode 0666.

async function squattedPosixMq({ scene, squatter }: Matrix): Promise<Cell> {
  const cell = new Cell(KIND.posixMq, SQUATTED);
  const name = scene.mq();
  await squatter!.call('posixMq', { name, mode: 0o666 });
  const C = 'PosixMessageQueue';
  const attempts = [
    hostile(`${C}.open`, [name]),
    hostile(`${C}.open`, [name, { access: 'write' }]),
    hostile(`${C}.open`, [name, { access: 'read' }]),
    hostile(`${C}.openOrCreate`, [name]),
    hostile(`${C}.openOrCreate`, [name, { mode: 0o600 }]),
    hostile(`${C}.openOrCreate`, [name, { mode: 0o666 }]),
    hostile(`${C}.open`, [name, { owner: THIRD }]),
    hostile(`${C}.openOrCreate`, [name, { owner: OTHER, mode: 0o600 }]),
    hostile(`${C}.create`, [name], EEXIST),
  ];
  cell.judge(attempts, await victim(scene, [name], attempts));
  const controls = [control(`${C}.open`, [name, { owner: OTHER }]), control(`${C}.openOrCreate`, [name, { owner: 'any', mode: 0o666 }])];
  cell.controls(controls, await victim(scene, [name], controls), `owner ${OTHER} / 'any'`);
  checkPosixBait(cell, name);
  return cell;
}

/** Nothing sent or received: the squatter's one message is still the only one. */
function checkPosixBait(cell: Cell, name: string): void {
  const q = PosixMessageQueue.open(name, { owner: 'any' });
  try {
    const depth = q.attributes().messages;
    const first = q.tryReceive();
    cell.check(depth === 1 && first?.data.toString() === BAIT, 'nothing sent or received (the bait alone, intact)',
      `the queue holds ${depth} message(s), first ${JSON.stringify(first?.data.toString())}: something was sent or received`);
  } finally {
    q.close();
  }
}

async function squattedSysvMq({ scene, squatter }: Matrix, hand: boolean): Promise<Cell> {
  const cell = new Cell(KIND.sysvMq, hand ? HANDED : SQUATTED);
  const key = scene.key('msg');
  const { id, pid } = await squatter!.call<{ id: number; pid: number }>('sysvMq', { key, mode: 0o666, hand });
  await attemptSysv(scene, cell, 'SysvMessageQueue', key, id, hand);
  const q = SysvMessageQueue.open(key, { owner: 'any' });
  try {
    const st = q.stat();
    if (hand) {
      cell.check(st.uid === 0 && st.cuid === OTHER, 'set-up: uid 0, cuid 65534', `set-up: uid ${st.uid}, cuid ${st.cuid}, not 0 and ${OTHER}`);
    }
    cell.check(st.messages === 1 && st.lastReceivePid === 0 && st.lastSendPid === pid,
      'nothing sent or received (1 message, last sender the squatter, no receiver)',
      `after the attempts: ${st.messages} message(s), last sender ${st.lastSendPid} (squatter ${pid}), last receiver ${st.lastReceivePid}`);
  } finally {
    q.close();
  }
  return cell;
}

/**
 * The opens of a System V queue or semaphore set (class `C`) that uid 65534
 * made (`hand`: and handed over to this user), by key and by identifier,
 * with and without a mode, naming the wrong owner (`more` besides); then
 * the controls that name its owner.
 */
async function attemptSysv(scene: Scene, cell: Cell, C: string, key: number, id: number, hand: boolean, more: Attempt[] = []): Promise<void> {
  const attempts = [
    hostile(`${C}.open`, [key]),
    hostile(`${C}.open`, [{ id }]),
    hostile(`${C}.openOrCreate`, [key]),
    ...more,
    hostile(`${C}.openOrCreate`, [key, { mode: 0o600 }]),
    hostile(`${C}.openOrCreate`, [key, { mode: 0o666 }]),
    hostile(`${C}.openOrCreate`, [{ id }]),
    hostile(`${C}.open`, [key, { owner: THIRD }]),
    ...(hand
      ? [hostile(`${C}.open`, [key, { owner: OTHER }])]
      : [hostile(`${C}.openOrCreate`, [key, { owner: OTHER, mode: 0o600 }]), hostile(`${C}.create`, [key], EEXIST)]),
  ];
  cell.judge(attempts, await victim(scene, [], attempts));
  const controls = hand
    ? [control(`${C}.open`, [key, { owner: 'any' }])]
    : [control(`${C}.open`, [key, { owner: OTHER }]), control(`${C}.open`, [{ id }, { owner: 'any' }])];
  cell.controls(controls, await victim(scene, [], controls), hand ? "owner 'any'" : `owner ${OTHER} / 'any'`);
}

async function squattedPosixShm({ scene, squatter }: Matrix): Promise<Cell> {
  const cell = new Cell(KIND.posixShm, SQUATTED);
  const name = scene.shm();
  await squatter!.call('posixShm', { name, mode: 0o666 });
  const C = 'PosixSharedMemory';
  const attempts = [
    hostile(`${C}.open`, [name]),
    hostile(`${C}.open`, [name, { readOnly: true }]),
    hostile(`${C}.open`, [name, { size: SIZE }]),
    hostile(`${C}.openOrCreate`, [name, { size: SIZE }]),
    hostile(`${C}.openOrCreate`, [name, { size: SIZE, mode: 0o600 }]),
    hostile(`${C}.openOrCreate`, [name, { size: SIZE, mode: 0o666 }]),
    hostile(`${C}.open`, [name, { owner: THIRD }]),
    hostile(`${C}.openOrCreate`, [name, { size: SIZE, owner: OTHER, mode: 0o600 }]),
    hostile(`${C}.create`, [name, { size: SIZE }], EEXIST),
  ];
  cell.judge(attempts, await victim(scene, [name.slice(1)], attempts));
  const controls = [control(`${C}.open`, [name, { owner: OTHER, readOnly: true }]), control(`${C}.openOrCreate`, [name, { size: SIZE, owner: 'any' }])];
  cell.controls(controls, await victim(scene, [name.slice(1)], controls), `owner ${OTHER} / 'any'`);
  checkFilled(cell, `/dev/shm${name}`);
  return cell;
}

/** Nothing written or resized: the segment file still holds the squatter's fill. */
function checkFilled(cell: Cell, path: string): void {
  const bytes = readFileSync(path);
  cell.check(bytes.length === SIZE && bytes.every((b) => b === FILL), 'nothing written (size and contents as placed)',
    `${path} changed: ${bytes.length} bytes, not all 0x${FILL.toString(16)}`);
}

async function squattedSysvShm({ scene, squatter }: Matrix, hand: boolean): Promise<Cell> {
  const cell = new Cell(KIND.sysvShm, hand ? HANDED : SQUATTED);
  const key = scene.key('shm');
  const { id } = await squatter!.call<{ id: number }>('sysvShm', { key, mode: 0o666, hand });
  const needle = `SYSV${key.toString(16).padStart(8, '0')}`;
  const before = SysvSharedMemory.stat(key);
  const C = 'SysvSharedMemory';
  const attempts = [
    hostile(`${C}.open`, [key]),
    hostile(`${C}.open`, [{ id }]),
    hostile(`${C}.open`, [key, { readOnly: true }]),
    hostile(`${C}.openOrCreate`, [key, { size: SIZE }]),
    hostile(`${C}.openOrCreate`, [key, { size: SIZE, mode: 0o600 }]),
    hostile(`${C}.openOrCreate`, [key, { size: SIZE, mode: 0o666 }]),
    hostile(`${C}.open`, [key, { owner: THIRD }]),
    ...(hand
      ? [hostile(`${C}.open`, [key, { owner: OTHER }])]
      : [hostile(`${C}.openOrCreate`, [key, { size: SIZE, owner: OTHER, mode: 0o600 }]), hostile(`${C}.create`, [key, { size: SIZE }], EEXIST)]),
  ];
  cell.judge(attempts, await victim(scene, [needle], attempts));
  // Checked before the controls, which do attach.
  const after = SysvSharedMemory.stat(key);
  if (hand) {
    cell.check(after.uid === 0 && after.cuid === OTHER, 'set-up: uid 0, cuid 65534', `set-up: uid ${after.uid}, cuid ${after.cuid}, not 0 and ${OTHER}`);
  }
  cell.check(after.attachments === 0 && after.lastPid === before.lastPid && after.lastAttachTime?.getTime() === before.lastAttachTime?.getTime(),
    'never attached (attach time and last pid unchanged)',
    `attached during the attempts: ${after.attachments} attachment(s), last pid ${after.lastPid} (was ${before.lastPid})`);
  const controls = hand
    ? [control(`${C}.open`, [key, { owner: 'any', readOnly: true }])]
    : [control(`${C}.open`, [key, { owner: OTHER, readOnly: true }]), control(`${C}.open`, [{ id }, { owner: 'any', readOnly: true }])];
  cell.controls(controls, await victim(scene, [needle], controls), hand ? "owner 'any'" : `owner ${OTHER} / 'any'`);
  const shm = SysvSharedMemory.open(key, { owner: 'any', readOnly: true });
  try {
    const bytes = new Uint8Array(shm.buffer);
    cell.check(bytes.every((b) => b === FILL), 'nothing written', `the segment's contents changed`);
  } finally {
    shm.close();
  }
  return cell;
}

async function squattedNamedSemaphore({ scene, squatter }: Matrix): Promise<Cell> {
  const cell = new Cell(KIND.namedSem, SQUATTED);
  const name = scene.sem();
  await squatter!.call('namedSem', { name, mode: 0o666, value: 1 });
  const before = readFileSync(semFile(name));
  const C = 'NamedSemaphore';
  const attempts = [
    hostile(`${C}.open`, [name]),
    hostile(`${C}.open`, [name, { spin: 0 }]),
    hostile(`${C}.openOrCreate`, [name]),
    hostile(`${C}.openOrCreate`, [name, { value: 5 }]),
    hostile(`${C}.openOrCreate`, [name, { mode: 0o600 }]),
    hostile(`${C}.openOrCreate`, [name, { mode: 0o666 }]),
    hostile(`${C}.open`, [name, { owner: THIRD }]),
    hostile(`${C}.openOrCreate`, [name, { owner: OTHER, mode: 0o600 }]),
    hostile(`${C}.create`, [name], EEXIST),
  ];
  cell.judge(attempts, await victim(scene, [semNeedle(name)], attempts));
  const controls = [control(`${C}.open`, [name, { owner: OTHER }]), control(`${C}.openOrCreate`, [name, { owner: 'any', mode: 0o666 }])];
  cell.controls(controls, await victim(scene, [semNeedle(name)], controls), `owner ${OTHER} / 'any'`);
  checkSemaphoreFile(cell, semFile(name), before);
  return cell;
}

/** Nothing taken, posted or waited for: the sem_t bytes are as placed (the value, no waiter registered, the flags). */
function checkSemaphoreFile(cell: Cell, path: string, before: Buffer): void {
  const now = readFileSync(path);
  cell.check(now.equals(before), `nothing taken or posted (the file's ${before.length} bytes as placed: value ${before.readUInt32LE(0)}, no waiter)`,
    `${path} changed: ${before.toString('hex')} → ${now.toString('hex')}`);
}

async function squattedSemaphoreSet({ scene, squatter }: Matrix, hand: boolean): Promise<Cell> {
  const cell = new Cell(KIND.semSet, hand ? HANDED : SQUATTED);
  const key = scene.key('sem');
  const { id } = await squatter!.call<{ id: number }>('sysvSem', { key, mode: 0o666, hand });
  const statOf = (): ReturnType<SemaphoreSet['stat']> => {
    const set = SemaphoreSet.open(key, { owner: 'any' });
    try {
      return set.stat();
    } finally {
      set.close();
    }
  };
  const before = statOf();
  await attemptSysv(scene, cell, 'SemaphoreSet', key, id, hand, [hostile('SemaphoreSet.openOrCreate', [key, { count: 2, value: 0 }])]);
  const after = statOf();
  if (hand) {
    cell.check(after.uid === 0 && after.cuid === OTHER, 'set-up: uid 0, cuid 65534', `set-up: uid ${after.uid}, cuid ${after.cuid}, not 0 and ${OTHER}`);
  }
  cell.check(after.lastOpTime === null && after.values.join() === before.values.join() && after.lastPids.join() === before.lastPids.join(),
    `nothing operated (no semop ever: values ${after.values.join(', ')} as placed)`,
    `the set was used: values ${before.values.join()} → ${after.values.join()}, last op ${String(after.lastOpTime)}, last pids ${after.lastPids.join()}`);
  return cell;
}

/** Ends of a squatted FIFO: write opens against a blocked reader, read opens against a blocked writer. */
async function squattedFifo({ scene, squatter }: Matrix): Promise<Cell> {
  const cell = new Cell(KIND.fifo, SQUATTED);
  const [toWrite, toRead] = [scene.path(), scene.path()];
  await squatter!.call('fifo', { path: toWrite, mode: 0o666 });
  await squatter!.call('fifo', { path: toRead, mode: 0o666 });
  const reader = await watchFifo(scene, OTHER, toWrite, 'r');
  const writer = await watchFifo(scene, OTHER, toRead, 'w');
  const attempts = [
    hostile('Fifo.openWrite', [toWrite, { nonBlocking: true }]),
    hostile('Fifo.openWrite', [toWrite, { timeout: WAIT }]),
    hostile('Fifo.openWriteSync', [toWrite, { nonBlocking: true }]),
    hostile('Fifo.openWriteSync', [toWrite, { timeout: WAIT }]),
    hostile('Fifo.openWrite', [toWrite, { nonBlocking: true, owner: THIRD }]),
    hostile('Fifo.openRead', [toRead, { nonBlocking: true }]),
    hostile('Fifo.openRead', [toRead, { timeout: WAIT }]),
    hostile('Fifo.openReadSync', [toRead, { nonBlocking: true }]),
    hostile('Fifo.openReadSync', [toRead, { timeout: WAIT }]),
    hostile('Fifo.openRead', [toRead, { timeout: 0 }]),
    hostile('Fifo.create', [toRead, { mode: 0o600 }], EEXIST),
  ];
  cell.judge(attempts, await victim(scene, [toWrite, toRead], attempts));
  cell.check(!(await met(reader)) && !(await met(writer)), "no end met (the squatter's blocked reader and writer saw no open)",
    `the squatter's ${reader.seen.includes('met') ? 'reader' : 'writer'} met an end opened by a refused call`);
  const controls = [control('Fifo.openWriteSync', [toWrite, { nonBlocking: true, owner: OTHER }]), control('Fifo.openReadSync', [toRead, { nonBlocking: true, owner: 'any' }])];
  cell.controls(controls, await victim(scene, [toWrite, toRead], controls), `owner ${OTHER} / 'any'`);
  cell.check((await met(reader)) && (await met(writer)), 'the watchers saw the controls', 'the watchers did not see the accepted controls: the check above proves nothing');
  return cell;
}

/** The lock words of another user's segments stay as the holder left them: the segments are refused before any lock is reached. */
async function squattedLocks({ scene, squatter }: Matrix): Promise<Cell> {
  const cell = new Cell(KIND.lock, `${SQUATTED} (POSIX and System V)`);
  const name = scene.shm();
  const key = scene.key('shm');
  const posix = await squatter!.call<{ tid: number; words: number[] }>('posixLocks', { name });
  const sysv = await squatter!.call<{ id: number; words: number[] }>('sysvLocks', { key });
  const attempts = [
    hostile('PosixSharedMemory.open', [name]),
    hostile('PosixSharedMemory.openOrCreate', [name, { size: SIZE }]),
    hostile('PosixSharedMemory.openOrCreate', [name, { size: SIZE, mode: 0o666 }]),
    hostile('SysvSharedMemory.open', [key]),
    hostile('SysvSharedMemory.open', [{ id: sysv.id }]),
    hostile('SysvSharedMemory.openOrCreate', [key, { size: SIZE }]),
  ];
  cell.judge(attempts, await victim(scene, [name.slice(1), `SYSV${key.toString(16).padStart(8, '0')}`], attempts));
  const posixNow = Array.from(new Int32Array(readFileSync(`/dev/shm${name}`).buffer, 0, 8));
  const shm = SysvSharedMemory.open(key, { owner: 'any', readOnly: true });
  const sysvNow = Array.from(new Int32Array(shm.buffer, 0, 8));
  shm.close();
  cell.check(posixNow.join() === posix.words.join() && sysvNow.join() === sysv.words.join(),
    `never reached Mutex/Semaphore.open: lock words unchanged (mutex held by ${posix.tid}, semaphore 0)`,
    `lock words changed: POSIX ${posix.words.join()} → ${posixNow.join()}, System V ${sysv.words.join()} → ${sysvNow.join()}`);
  return cell;
}

// ---------------------------------------------------------------------------
// (2) A symbolic link at the name.

/** A link to this user's own FIFO: followed, it would pass the owner check and meet the watcher. */
async function linkedFifo({ scene, placer }: Matrix): Promise<Cell> {
  const cell = new Cell(KIND.fifo, SYMLINK);
  const [targetW, targetR, linkW, linkR, linkNone, absent] = [scene.path(), scene.path(), scene.path(), scene.path(), scene.path(), scene.path()];
  Fifo.create(targetW);
  Fifo.create(targetR);
  const reader = await watchFifo(scene, undefined, targetW, 'r');
  const writer = await watchFifo(scene, undefined, targetR, 'w');
  await placer.call('symlink', { target: targetW, path: linkW });
  await placer.call('symlink', { target: targetR, path: linkR });
  await placer.call('symlink', { target: absent, path: linkNone });
  const attempts = [
    hostile('Fifo.openWrite', [linkW, { nonBlocking: true }], NOT_A_FIFO),
    hostile('Fifo.openWrite', [linkW, { timeout: WAIT }], NOT_A_FIFO),
    hostile('Fifo.openWriteSync', [linkW, { nonBlocking: true }], NOT_A_FIFO),
    hostile('Fifo.openWriteSync', [linkW, { timeout: WAIT, owner: 'any' }], NOT_A_FIFO),
    hostile('Fifo.openRead', [linkR, { nonBlocking: true }], NOT_A_FIFO),
    hostile('Fifo.openRead', [linkR, { timeout: WAIT, owner: 'any' }], NOT_A_FIFO),
    hostile('Fifo.openReadSync', [linkR, { nonBlocking: true }], NOT_A_FIFO),
    hostile('Fifo.openReadSync', [linkR, { timeout: WAIT }], NOT_A_FIFO),
    hostile('Fifo.openRead', [linkNone, { timeout: WAIT }], NOT_A_FIFO),
    hostile('Fifo.unlink', [linkW], NOT_A_FIFO),
    hostile('Fifo.create', [linkNone], EEXIST),
  ];
  cell.judge(attempts, await victim(scene, [targetW, targetR, absent], attempts));
  cell.check(!(await met(reader)) && !(await met(writer)), 'never followed: no end of the targets met',
    `an open through a link met the target's ${reader.seen.includes('met') ? 'reader' : 'writer'}`);
  const intact = [linkW, linkR, linkNone].every((p) => lstatSync(p).isSymbolicLink()) && [targetW, targetR].every((p) => lstatSync(p).isFIFO()) && !exists(absent);
  cell.check(intact, 'links and targets intact, nothing created at the dangling target', 'a link, a target or the dangling target changed');
  const controls = [control('Fifo.openWriteSync', [targetW, { nonBlocking: true }])];
  cell.controls(controls, await victim(scene, [targetW], controls), 'the target itself');
  cell.check(await met(reader), 'its watcher saw that', 'the watcher did not see the accepted control: the check above proves nothing');
  return cell;
}

/** A link in /dev/shm to a file of this user, and a dangling one where a file would be created. */
async function linkedPosixShm({ scene, placer }: Matrix): Promise<Cell> {
  const cell = new Cell(KIND.posixShm, SYMLINK);
  const [name, dangling] = [scene.shm(), scene.shm()];
  const [target, absent] = [scene.path(), scene.path()];
  writeFileSync(target, Buffer.alloc(SIZE, FILL), { mode: 0o600 });
  await placer.call('symlink', { target, path: `/dev/shm${name}` });
  await placer.call('symlink', { target: absent, path: `/dev/shm${dangling}` });
  const C = 'PosixSharedMemory';
  const attempts = [
    hostile(`${C}.open`, [name], LINK),
    hostile(`${C}.open`, [name, { readOnly: true }], LINK),
    hostile(`${C}.open`, [name, { owner: 'any' }], LINK),
    hostile(`${C}.openOrCreate`, [name, { size: SIZE }], LINK),
    hostile(`${C}.openOrCreate`, [name, { size: SIZE, mode: 0o600 }], LINK),
    hostile(`${C}.openOrCreate`, [name, { size: SIZE, owner: 'any' }], LINK),
    hostile(`${C}.stat`, [name], LINK),
    hostile(`${C}.create`, [name, { size: SIZE }], EEXIST),
    hostile(`${C}.openOrCreate`, [dangling, { size: SIZE }], LINK),
    hostile(`${C}.create`, [dangling, { size: SIZE }], EEXIST),
  ];
  cell.judge(attempts, await victim(scene, [name.slice(1), dangling.slice(1), target, absent], attempts));
  checkFilled(cell, target);
  cell.check(lstatSync(`/dev/shm${name}`).isSymbolicLink() && lstatSync(`/dev/shm${dangling}`).isSymbolicLink() && !exists(absent),
    'never followed: links in place, nothing created at the dangling target', 'a link was replaced or its target created');
  return cell;
}

/**
 * A link at a named semaphore's name to a 32-byte file of this user holding
 * a semaphore at 1 (followed, it would pass the owner and size checks), and
 * a dangling one where the file would be created.
 */
async function linkedNamedSemaphore({ scene, placer }: Matrix): Promise<Cell> {
  const cell = new Cell(KIND.namedSem, SYMLINK);
  const [name, dangling] = [scene.sem(), scene.sem()];
  const [target, absent] = [scene.path(), scene.path()];
  const bait = semaphoreBytes(1);
  writeFileSync(target, bait, { mode: 0o600 });
  await placer.call('symlink', { target, path: semFile(name) });
  await placer.call('symlink', { target: absent, path: semFile(dangling) });
  const C = 'NamedSemaphore';
  const attempts = [
    hostile(`${C}.open`, [name], LINK),
    hostile(`${C}.open`, [name, { owner: 'any' }], LINK),
    hostile(`${C}.openOrCreate`, [name], LINK),
    hostile(`${C}.openOrCreate`, [name, { value: 1, mode: 0o600 }], LINK),
    hostile(`${C}.openOrCreate`, [name, { owner: 'any' }], LINK),
    hostile(`${C}.create`, [name, { value: 1 }], EEXIST),
    hostile(`${C}.openOrCreate`, [dangling, { value: 1 }], LINK),
    hostile(`${C}.create`, [dangling], EEXIST),
  ];
  cell.judge(attempts, await victim(scene, [semNeedle(name), semNeedle(dangling), target, absent], attempts));
  checkSemaphoreFile(cell, target, bait);
  cell.check(lstatSync(semFile(name)).isSymbolicLink() && lstatSync(semFile(dangling)).isSymbolicLink() && !exists(absent),
    'never followed: links in place, nothing created at the dangling target', 'a link was replaced or its target created');
  return cell;
}

/**
 * The 32 bytes sem_init(pshared = 1) writes for `value`: the value word, no
 * waiter, and in the `private` word FUTEX_PRIVATE_FLAG (glibc keeps the
 * flag that its futex calls flip: 128 means shared).
 */
function semaphoreBytes(value: number): Buffer {
  const bytes = Buffer.alloc(32);
  bytes.writeUInt32LE(value, 0);
  bytes.writeInt32LE(128, 8);
  return bytes;
}

/**
 * What is not a semaphore at a named semaphore's name: FIFOs (each call
 * faces one with a blocked reader and one with a blocked writer: a call
 * that opened the FIFO before refusing it would complete theirs), a
 * directory, a socket, and regular files of other sizes than a sem_t's 32
 * bytes (this user's, so that only the size refuses them; one of the other
 * user's, with `owner: 'any'`).
 */
async function fileTypesNamedSemaphore({ scene, placer }: Matrix): Promise<Cell> {
  const cell = new Cell(KIND.namedSem, `${OTHER_TYPE} (FIFO, directory, socket, wrong size)`);
  const C = 'NamedSemaphore';
  const calls: [string, (name: string) => unknown[], readonly string[]][] = [
    [`${C}.open`, (n) => [n], NOT_A_SEMAPHORE],
    [`${C}.open`, (n) => [n, { owner: 'any' }], NOT_A_SEMAPHORE],
    [`${C}.openOrCreate`, (n) => [n], NOT_A_SEMAPHORE],
    [`${C}.openOrCreate`, (n) => [n, { value: 1, mode: 0o600 }], NOT_A_SEMAPHORE],
    [`${C}.create`, (n) => [n], EEXIST],
  ];
  const metBy: string[] = [];
  for (const [call, args, expect] of calls) {
    const [facingReader, facingWriter] = [scene.sem(), scene.sem()];
    await placer.call('fifo', { path: semFile(facingReader), mode: 0o666 });
    await placer.call('fifo', { path: semFile(facingWriter), mode: 0o666 });
    const reader = await watchFifo(scene, placer.uid, semFile(facingReader), 'r');
    const writer = await watchFifo(scene, placer.uid, semFile(facingWriter), 'w');
    const attempts = [hostile(call, args(facingReader), expect), hostile(call, args(facingWriter), expect)];
    cell.judge(attempts, await victim(scene, [semNeedle(facingReader), semNeedle(facingWriter)], attempts));
    const ends = [(await met(reader)) && 'reader', (await met(writer)) && 'writer'].filter(Boolean);
    if (ends.length > 0) metBy.push(`${call}(${JSON.stringify(args('/name')).slice(1, -1)}) completed the open of the FIFO owner's blocked ${ends.join(' and ')}`);
    cell.check([facingReader, facingWriter].every((n) => lstatSync(semFile(n)).isFIFO()), '', `${call} changed the FIFO at its name`);
    await Promise.all([reader.stop(), writer.stop()]);
  }
  cell.check(metBy.length === 0, 'no FIFO end met (each call faced a blocked reader and a blocked writer)',
    `refused only after opening the FIFO, which the other user sees: ${metBy.join('; ')}`);
  const [dir, socket] = [scene.sem(), scene.sem()];
  await placer.call('directory', { path: semFile(dir), mode: 0o777 });
  await placer.call('socket', { path: semFile(socket) });
  // Regular files of other sizes: this user's (only the size refuses them), and one of the placer's, opened with owner 'any'.
  const sized = [0, 16, 31, 33, 4096].map((size) => {
    const name = scene.sem();
    writeFileSync(semFile(name), Buffer.alloc(size, FILL), { mode: 0o600 });
    return { name, size };
  });
  const foreign = scene.sem();
  await placer.call('file', { path: semFile(foreign), data: BAIT, mode: 0o666 });
  const attempts = [
    hostile(`${C}.open`, [dir], NOT_A_SEMAPHORE),
    hostile(`${C}.openOrCreate`, [dir, { value: 1 }], NOT_A_SEMAPHORE),
    hostile(`${C}.create`, [dir], EEXIST),
    hostile(`${C}.open`, [socket, { owner: 'any' }], NOT_A_SEMAPHORE),
    hostile(`${C}.openOrCreate`, [socket], NOT_A_SEMAPHORE),
    ...sized.flatMap(({ name }) => [hostile(`${C}.open`, [name], WRONG_SIZE), hostile(`${C}.openOrCreate`, [name, { value: 1 }], WRONG_SIZE)]),
    hostile(`${C}.open`, [foreign, { owner: 'any' }], WRONG_SIZE),
    hostile(`${C}.open`, [foreign], placer.uid === undefined ? WRONG_SIZE : UNTRUSTED),
  ];
  const needles = [dir, socket, foreign, ...sized.map((f) => f.name)].map(semNeedle);
  cell.judge(attempts, await victim(scene, needles, attempts));
  const intact = sized.every(({ name, size }) => {
    const bytes = readFileSync(semFile(name));
    return bytes.length === size && bytes.every((b) => b === FILL);
  }) && readFileSync(semFile(foreign), 'utf8') === BAIT && readdirSync(semFile(dir)).length === 0 && lstatSync(semFile(socket)).isSocket();
  cell.check(intact, 'nothing mapped, resized or written (files of 0, 16, 31, 33 and 4096 bytes as placed); directory empty, socket in place',
    'a file, the directory or the socket at a name was changed');
  return cell;
}

/** POSIX queue names are not paths: nothing but a queue can be at one (checked in a private mqueue mount). */
async function mqueueHoldsOnlyQueues(m: Matrix): Promise<Cell[]> {
  const link = new Cell(KIND.posixMq, SYMLINK);
  const other = new Cell(KIND.posixMq, OTHER_TYPE);
  const C = 'PosixMessageQueue';
  const base = m.scene.name();
  const attempts = [
    hostile(`${C}.open`, [`/${base}/x`], BAD_NAME),
    hostile(`${C}.openOrCreate`, [`/${base}/x`], BAD_NAME),
    hostile(`${C}.openOrCreate`, ['/..'], BAD_NAME),
    hostile(`${C}.create`, [`/../dev/shm/${base}`], BAD_NAME),
  ];
  link.judge(attempts, await victim(m.scene, [base], attempts));
  if (process.getuid!() !== 0) {
    link.notes.push('mqueue mount not probed (needs root)');
    other.notes.push('n/a: a queue name is not a path');
    return [link, other];
  }
  const mnt = join(m.scene.dir, 'mqueue');
  mkdirSync(mnt);
  const probe = `mount -t mqueue none ${q(mnt)} || exit 10
ln -s /tmp ${q(`${mnt}/${base}`)} 2>/dev/null; echo "symlink $?"
mkfifo ${q(`${mnt}/${base}f`)} 2>/dev/null; echo "mkfifo $?"
rm -f ${q(`${mnt}/${base}`)} ${q(`${mnt}/${base}f`)}`;
  const out = await shell(m.scene, probe, 10_000);
  if (out.status === 10 || out.status === null) {
    link.notes.push(`mqueue mount not probed (${out.status === null ? 'timed out' : 'mount failed'})`);
    other.notes.push('n/a: a queue name is not a path');
    return [link, other];
  }
  const refused = (op: string): boolean => new RegExp(`^${op} [1-9]`, 'm').test(out.stdout);
  link.check(refused('symlink'), 'names with "/" refused; the mqueue filesystem refuses symbolic links', 'a symbolic link could be placed in the mqueue filesystem: this cell needs attempts');
  other.check(refused('mkfifo'), 'cannot be set up: the mqueue filesystem refuses FIFOs and other files', 'a FIFO could be placed in the mqueue filesystem: this cell needs attempts');
  return [link, other];
}

// ---------------------------------------------------------------------------
// (3) Another file type at the name.

/**
 * FIFOs and a directory where a segment should be. Each call is made against
 * two FIFOs of their owner, one with a reader and one with a writer blocked
 * in open(2): a call that opens the FIFO before refusing it completes theirs.
 */
async function fileTypesInDevShm({ scene, placer }: Matrix): Promise<Cell> {
  const cell = new Cell(KIND.posixShm, `${OTHER_TYPE} (FIFO, directory)`);
  const C = 'PosixSharedMemory';
  const fifoCalls: [string, (name: string) => unknown[], readonly string[]][] = [
    [`${C}.open`, (n) => [n], NOT_A_SEGMENT],
    [`${C}.open`, (n) => [n, { owner: 'any' }], NOT_A_SEGMENT],
    [`${C}.open`, (n) => [n, { readOnly: true }], NOT_A_SEGMENT],
    [`${C}.openOrCreate`, (n) => [n, { size: SIZE }], NOT_A_SEGMENT],
    [`${C}.openOrCreate`, (n) => [n, { size: SIZE, mode: 0o600 }], NOT_A_SEGMENT],
    [`${C}.stat`, (n) => [n], NOT_A_SEGMENT],
    [`${C}.create`, (n) => [n, { size: SIZE }], EEXIST],
  ];
  const metBy: string[] = [];
  for (const [call, args, expect] of fifoCalls) {
    const [facingReader, facingWriter] = [scene.shm(), scene.shm()];
    await placer.call('fifo', { path: `/dev/shm${facingReader}`, mode: 0o666 });
    await placer.call('fifo', { path: `/dev/shm${facingWriter}`, mode: 0o666 });
    const reader = await watchFifo(scene, placer.uid, `/dev/shm${facingReader}`, 'r');
    const writer = await watchFifo(scene, placer.uid, `/dev/shm${facingWriter}`, 'w');
    const attempts = [hostile(call, args(facingReader), expect), hostile(call, args(facingWriter), expect)];
    cell.judge(attempts, await victim(scene, [facingReader.slice(1), facingWriter.slice(1)], attempts));
    const ends = [(await met(reader)) && 'reader', (await met(writer)) && 'writer'].filter(Boolean);
    if (ends.length > 0) metBy.push(`${call}(${JSON.stringify(args('/name')).slice(1, -1)}) completed the open of the FIFO owner's blocked ${ends.join(' and ')}`);
    cell.check([facingReader, facingWriter].every((n) => lstatSync(`/dev/shm${n}`).isFIFO()), '', `${call} changed the FIFO at its name`);
    await Promise.all([reader.stop(), writer.stop()]);
  }
  cell.check(metBy.length === 0, 'no FIFO end met (each call faced a blocked reader and a blocked writer)',
    `refused only after opening the FIFO, which the other user sees: ${metBy.join('; ')}`);
  const dir = scene.shm();
  await placer.call('directory', { path: `/dev/shm${dir}`, mode: 0o777 });
  const attempts = [
    hostile(`${C}.open`, [dir], DIRECTORY),
    hostile(`${C}.openOrCreate`, [dir, { size: SIZE }], DIRECTORY),
    hostile(`${C}.stat`, [dir], DIRECTORY),
    hostile(`${C}.create`, [dir, { size: SIZE }], EEXIST),
  ];
  cell.judge(attempts, await victim(scene, [dir.slice(1)], attempts));
  cell.check(readdirSync(`/dev/shm${dir}`).length === 0, 'directory left empty', 'the directory was changed');
  return cell;
}

/** A regular file, a directory and a socket where a FIFO should be: refused at once, even with no timeout. */
async function fileTypesAtFifoPath({ scene, placer }: Matrix): Promise<Cell> {
  const cell = new Cell(KIND.fifo, `${OTHER_TYPE} (file, directory, socket)`);
  const [file, dir, socket] = [scene.path(), scene.path(), scene.path()];
  await placer.call('file', { path: file, data: BAIT, mode: 0o666 });
  await placer.call('directory', { path: dir, mode: 0o777 });
  await placer.call('socket', { path: socket });
  const attempts = [
    hostile('Fifo.openRead', [file, { nonBlocking: true }], NOT_A_FIFO),
    hostile('Fifo.openRead', [file, { timeout: WAIT, owner: 'any' }], NOT_A_FIFO),
    hostile('Fifo.openWrite', [file, { nonBlocking: true }], NOT_A_FIFO),
    hostile('Fifo.openReadSync', [file, { timeout: WAIT }], NOT_A_FIFO),
    hostile('Fifo.openWriteSync', [file, { timeout: WAIT }], NOT_A_FIFO),
    hostile('Fifo.unlink', [file], NOT_A_FIFO),
    hostile('Fifo.create', [file], EEXIST),
    hostile('Fifo.openRead', [dir, { timeout: WAIT }], NOT_A_FIFO),
    hostile('Fifo.openWriteSync', [dir, { nonBlocking: true }], NOT_A_FIFO),
    hostile('Fifo.unlink', [dir], NOT_A_FIFO),
    hostile('Fifo.openRead', [socket, { timeout: WAIT }], NOT_A_FIFO),
    hostile('Fifo.openWriteSync', [socket, { nonBlocking: true }], NOT_A_FIFO),
    // No timeout: bounded only by the victim's kill timer, so a wait here shows as a hang.
    hostile('Fifo.openRead', [file], NOT_A_FIFO),
    hostile('Fifo.openWrite', [dir], NOT_A_FIFO),
  ];
  cell.judge(attempts, await victim(scene, [file, dir, socket], attempts));
  cell.check(readFileSync(file, 'utf8') === BAIT && readdirSync(dir).length === 0 && lstatSync(socket).isSocket(),
    'nothing written or removed', 'the file, directory or socket was changed');
  return cell;
}

// ---------------------------------------------------------------------------
// (4) This user's own object, with a mode wider than openOrCreate asks for.

interface WideCase {
  kind: string;
  make(mode: number): Promise<{ address: number | string; needle: string }>;
  call: string;
  options: Record<string, unknown>;
  intact(address: number | string, cell: Cell): void;
}

async function widerMode({ scene }: Matrix, c: WideCase): Promise<Cell> {
  const cell = new Cell(c.kind, WIDE);
  const wide = await c.make(0o666);
  const crossed = await c.make(0o640);
  const narrow = await c.make(0o600);
  const o = c.options;
  const attempts = [
    hostile(c.call, [wide.address, { ...o, mode: 0o600 }]),
    hostile(c.call, [wide.address, { ...o, mode: 0o644 }]),
    hostile(c.call, [crossed.address, { ...o, mode: 0o604 }]),
    hostile(c.call, [crossed.address, { ...o, mode: 0o600 }]),
  ];
  const needles = [wide.needle, crossed.needle, narrow.needle];
  cell.judge(attempts, await victim(scene, needles, attempts));
  c.intact(wide.address, cell);
  const controls = [
    control(c.call, [narrow.address, { ...o, mode: 0o644 }]),
    control(c.call, [wide.address, { ...o, mode: 0o666 }]),
    control(c.call, [wide.address, o]),
  ];
  cell.controls(controls, await victim(scene, needles, controls), 'narrower or equal mode, or none');
  return cell;
}

function wideCases(scene: Scene): WideCase[] {
  const sysvNeedle = (key: number): string => `SYSV${key.toString(16).padStart(8, '0')}`;
  return [
    {
      kind: KIND.posixMq,
      call: 'PosixMessageQueue.openOrCreate',
      options: {},
      make: async (mode) => {
        const name = scene.mq();
        const q = PosixMessageQueue.create(name, { mode });
        q.trySend(Buffer.from(BAIT));
        q.close();
        return { address: name, needle: name };
      },
      intact: (name, cell) => checkPosixBait(cell, name as string),
    },
    {
      kind: KIND.sysvMq,
      call: 'SysvMessageQueue.openOrCreate',
      options: {},
      make: async (mode) => {
        const key = scene.key('msg');
        const q = SysvMessageQueue.create(key, { mode });
        q.trySend(1, Buffer.from(BAIT));
        q.close();
        return { address: key, needle: sysvNeedle(key) };
      },
      intact: (key, cell) => {
        const q = SysvMessageQueue.open(key as number);
        const st = q.stat();
        q.close();
        cell.check(st.messages === 1 && st.lastReceivePid === 0 && st.lastSendPid === process.pid, 'nothing sent or received',
          `${st.messages} message(s), last sender ${st.lastSendPid}, last receiver ${st.lastReceivePid}`);
      },
    },
    {
      kind: KIND.posixShm,
      call: 'PosixSharedMemory.openOrCreate',
      options: { size: SIZE },
      make: async (mode) => {
        const name = scene.shm();
        const shm = PosixSharedMemory.create(name, { size: SIZE, mode });
        new Uint8Array(shm.buffer).fill(FILL);
        shm.close();
        return { address: name, needle: name.slice(1) };
      },
      intact: (name, cell) => checkFilled(cell, `/dev/shm${name as string}`),
    },
    {
      kind: KIND.sysvShm,
      call: 'SysvSharedMemory.openOrCreate',
      options: { size: SIZE },
      make: async (mode) => {
        const key = scene.key('shm');
        SysvSharedMemory.create(key, { size: SIZE, mode }).close();
        return { address: key, needle: sysvNeedle(key) };
      },
      intact: (key, cell) => {
        const st = SysvSharedMemory.stat(key as number);
        cell.check(st.attachments === 0 && st.lastPid === process.pid, 'never attached by the refused calls',
          `attached: ${st.attachments} attachment(s), last pid ${st.lastPid} (creator ${process.pid})`);
      },
    },
    {
      kind: KIND.namedSem,
      call: 'NamedSemaphore.openOrCreate',
      options: {},
      make: async (mode) => {
        const name = scene.sem();
        NamedSemaphore.create(name, { mode, value: 1 }).close();
        return { address: name, needle: semNeedle(name) };
      },
      intact: (name, cell) => checkSemaphoreFile(cell, semFile(name as string), semaphoreBytes(1)),
    },
    {
      kind: KIND.semSet,
      call: 'SemaphoreSet.openOrCreate',
      options: {},
      make: async (mode) => {
        const key = scene.key('sem');
        SemaphoreSet.create(key, { mode, value: 1 }).close();
        return { address: key, needle: `semaphore set 0x${key.toString(16)}` };
      },
      intact: (key, cell) => {
        const set = SemaphoreSet.open(key as number);
        const st = set.stat();
        set.close();
        cell.check(st.lastOpTime === null && st.values.join() === '1', 'nothing operated (no semop, value 1)',
          `the set was used: values ${st.values.join()}, last op ${String(st.lastOpTime)}`);
      },
    },
  ];
}

/** FIFOs have no openOrCreate: create() over an existing (wider) FIFO must fail and leave it as it was. */
async function widerFifo({ scene }: Matrix): Promise<Cell> {
  const cell = new Cell(KIND.fifo, WIDE);
  const path = scene.path();
  Fifo.create(path, { mode: 0o666 });
  const before = lstatSync(path);
  const attempts = [hostile('Fifo.create', [path, { mode: 0o600 }], EEXIST), hostile('Fifo.create', [path], EEXIST)];
  cell.judge(attempts, await victim(scene, [path], attempts));
  const after = lstatSync(path);
  cell.check(after.ino === before.ino && after.mode === before.mode, 'no openOrCreate; the FIFO kept its inode and mode 0666',
    `the FIFO changed: inode ${before.ino} → ${after.ino}, mode ${before.mode.toString(8)} → ${after.mode.toString(8)}`);
  return cell;
}

// ---------------------------------------------------------------------------
// (5) /proc mounted hidepid=2: a holder this user cannot see is alive.

async function hiddenHolder({ scene }: Matrix): Promise<Cell> {
  const cell = new Cell(KIND.lock, HIDEPID);
  const name = scene.shm();
  const holderOut = join(scene.dir, `${scene.name()}.holder`);
  const node = (uid: number, script: 'holder' | 'waiter', ...args: string[]): string =>
    [...asUser(uid), process.execPath, scene.script(script), INDEX, ...args].map(q).join(' ');
  const script = [
    'mount -t proc -o hidepid=2 proc /proc || exit 10',
    `${node(OTHER, 'holder', name)} > ${q(holderOut)} 2>&1 &`,
    'holder=$!',
    `until grep -q holding ${q(holderOut)}; do kill -0 $holder 2>/dev/null || exit 11; sleep 0.01; done`,
    node(THIRD, 'waiter', name, String(OTHER), 'alive'),
    'kill -9 $holder; wait $holder 2>/dev/null',
    node(THIRD, 'waiter', name, String(OTHER), 'dead'),
  ].join('\n');
  const out = await shell(scene, script, 30_000);
  if (out.status === 10) return unplayed(KIND.lock, HIDEPID, `skipped: cannot mount /proc with hidepid=2 here (${out.stderr.trim()})`);
  if (out.status !== 0) {
    cell.fail(`the hidepid scenario ${out.status === null ? 'hung (killed after 30 s)' : `exited ${out.status}`}: ${out.stderr.trim().slice(-400)}`);
    return cell;
  }
  const lines = out.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const [seen, ...rest] = lines;
  const after = rest.find((l) => 'holderAfter' in l);
  const waits = rest.filter((l) => 'call' in l);
  const dead = waits.pop();
  const holderTid = Number(/holding (\d+)/.exec(readFileSync(holderOut, 'utf8'))?.[1]);
  cell.check(seen?.visible === false && seen.holder === holderTid, `holder ${holderTid} hidden from the waiter (uid ${THIRD})`,
    `set-up: the waiter ${seen?.visible ? 'could see' : 'did not find'} holder ${holderTid} (${JSON.stringify(seen)})`);
  const expected: Record<string, string> = { lockSync: 'ERR_IPC_TIMEOUT', lock: 'ERR_IPC_TIMEOUT', tryLock: 'false', withLock: 'ERR_IPC_TIMEOUT' };
  const codes = new Map<string, number>();
  for (const w of waits) {
    cell.attempted++;
    if (w.result === 'refused' && w.code === expected[w.call as string]) {
      cell.refused++;
      codes.set(w.code as string, (codes.get(w.code as string) ?? 0) + 1);
    } else {
      cell.fail(`${w.call as string} while the hidden holder lived: ${w.result as string} ${(w.code as string | undefined) ?? ''} (expected ${expected[w.call as string]}; a take-over breaks mutual exclusion)`);
    }
  }
  if (waits.length !== 4) cell.fail(`the waiter reported ${waits.length} of 4 attempts: ${out.stderr.trim().slice(-300)}`);
  cell.notes.push(`refused: ${[...codes].map(([c, n]) => `${c === 'false' ? 'tryLock false' : c} ×${n}`).join(', ')}`);
  cell.check(after?.holderAfter === holderTid, 'holder unchanged', `the mutex changed hands while its holder lived: now ${String(after?.holderAfter)}`);
  cell.check(dead?.code === 'ERR_IPC_OWNER_DIED', 'control: after SIGKILL the waiter takes over with ERR_IPC_OWNER_DIED',
    `control: after the holder's SIGKILL the waiter got ${JSON.stringify(dead)}, not ERR_IPC_OWNER_DIED`);
  return cell;
}

/** Runs `script` with sh in a private mount namespace, as root, killing its whole group after `timeoutMs`. */
async function shell(scene: Scene, script: string, timeoutMs: number): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const proc = scene.start(['unshare', '-m', '--propagation', 'private', 'sh', '-c', script]);
  const lines: string[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = await proc.next(deadline - Date.now());
    if (line !== undefined) {
      lines.push(line);
      continue;
    }
    if (proc.exit === undefined) {
      await proc.stop();
      return { status: null, stdout: lines.join('\n'), stderr: proc.stderr };
    }
    break;
  }
  await proc.stop();
  const status = /^exit (\d+)$/.exec(proc.exit)?.[1];
  return { status: status === undefined ? -1 : Number(status), stdout: lines.join('\n'), stderr: proc.stderr };
}

// ---------------------------------------------------------------------------

/** Plays one cell; a set-up that could not be made is itself a failure of the cell. */
async function play(kind: string, setup: string, fn: () => Promise<Cell | Cell[]>): Promise<Cell[]> {
  try {
    const cells = await fn();
    return Array.isArray(cells) ? cells : [cells];
  } catch (err) {
    const cell = new Cell(kind, setup);
    cell.fail(`set-up or check failed: ${String((err as Error)?.message ?? err)}`);
    return [cell];
  }
}

export const section: Section = {
  name: 'security',
  async run(ctx): Promise<SectionResult> {
    const scene = new Scene();
    const cells: Cell[] = [];
    const failures: string[] = [];
    try {
      const asOthers = canActAs(OTHER) && canActAs(THIRD);
      const noOthers = 'skipped: needs root and setpriv to act as uid 65534 and 1000';
      const squatter = asOthers ? await Actor.start(scene, OTHER) : undefined;
      const m: Matrix = { scene, squatter, placer: squatter ?? await Actor.start(scene) };
      const canHand = asOthers && spawnSync(PYTHON, ['-c', 'import ctypes'], { timeout: 10_000 }).status === 0;
      const canHide = asOthers && spawnSync('unshare', ['-m', '--propagation', 'private', 'true'], { timeout: 10_000 }).status === 0;
      const sysvNoPath = 'n/a: a System V key is a number, not a path: nothing to link or replace';
      const noHolder = 'n/a: no holder to judge alive (hidepid matters to Mutex only)';
      const posixOneOwner = 'n/a: a POSIX object has one owner, no separate creator';
      const viaSegment = 'n/a: reached only through a segment (see the shared-memory rows)';
      const cases = wideCases(scene);
      const plan: [string, string, () => Promise<Cell | Cell[]>][] = [
        [KIND.posixMq, SQUATTED, () => (squatter ? squattedPosixMq(m) : Promise.resolve(unplayed(KIND.posixMq, SQUATTED, noOthers)))],
        [KIND.posixMq, SYMLINK, () => mqueueHoldsOnlyQueues(m)],
        [KIND.posixMq, WIDE, () => widerMode(m, cases[0]!)],
        [KIND.posixMq, HIDEPID, async () => unplayed(KIND.posixMq, HIDEPID, noHolder)],
        [KIND.posixMq, HANDED, async () => unplayed(KIND.posixMq, HANDED, posixOneOwner)],
        [KIND.sysvMq, SQUATTED, () => (squatter ? squattedSysvMq(m, false) : Promise.resolve(unplayed(KIND.sysvMq, SQUATTED, noOthers)))],
        [KIND.sysvMq, SYMLINK, async () => [unplayed(KIND.sysvMq, SYMLINK, sysvNoPath), unplayed(KIND.sysvMq, OTHER_TYPE, sysvNoPath)]],
        [KIND.sysvMq, WIDE, () => widerMode(m, cases[1]!)],
        [KIND.sysvMq, HIDEPID, async () => unplayed(KIND.sysvMq, HIDEPID, noHolder)],
        [KIND.sysvMq, HANDED, () => (canHand ? squattedSysvMq(m, true) : Promise.resolve(unplayed(KIND.sysvMq, HANDED, `${noOthers}, and ${PYTHON}`)))],
        [KIND.posixShm, SQUATTED, () => (squatter ? squattedPosixShm(m) : Promise.resolve(unplayed(KIND.posixShm, SQUATTED, noOthers)))],
        [KIND.posixShm, SYMLINK, () => linkedPosixShm(m)],
        [KIND.posixShm, OTHER_TYPE, () => fileTypesInDevShm(m)],
        [KIND.posixShm, WIDE, () => widerMode(m, cases[2]!)],
        [KIND.posixShm, HIDEPID, async () => unplayed(KIND.posixShm, HIDEPID, noHolder)],
        [KIND.posixShm, HANDED, async () => unplayed(KIND.posixShm, HANDED, posixOneOwner)],
        [KIND.sysvShm, SQUATTED, () => (squatter ? squattedSysvShm(m, false) : Promise.resolve(unplayed(KIND.sysvShm, SQUATTED, noOthers)))],
        [KIND.sysvShm, SYMLINK, async () => [unplayed(KIND.sysvShm, SYMLINK, sysvNoPath), unplayed(KIND.sysvShm, OTHER_TYPE, sysvNoPath)]],
        [KIND.sysvShm, WIDE, () => widerMode(m, cases[3]!)],
        [KIND.sysvShm, HIDEPID, async () => unplayed(KIND.sysvShm, HIDEPID, noHolder)],
        [KIND.sysvShm, HANDED, () => (canHand ? squattedSysvShm(m, true) : Promise.resolve(unplayed(KIND.sysvShm, HANDED, `${noOthers}, and ${PYTHON}`)))],
        [KIND.namedSem, SQUATTED, () => (squatter ? squattedNamedSemaphore(m) : Promise.resolve(unplayed(KIND.namedSem, SQUATTED, noOthers)))],
        [KIND.namedSem, SYMLINK, () => linkedNamedSemaphore(m)],
        [KIND.namedSem, OTHER_TYPE, () => fileTypesNamedSemaphore(m)],
        [KIND.namedSem, WIDE, () => widerMode(m, cases[4]!)],
        [KIND.namedSem, HIDEPID, async () => unplayed(KIND.namedSem, HIDEPID, noHolder)],
        [KIND.namedSem, HANDED, async () => unplayed(KIND.namedSem, HANDED, posixOneOwner)],
        [KIND.semSet, SQUATTED, () => (squatter ? squattedSemaphoreSet(m, false) : Promise.resolve(unplayed(KIND.semSet, SQUATTED, noOthers)))],
        [KIND.semSet, SYMLINK, async () => [unplayed(KIND.semSet, SYMLINK, sysvNoPath), unplayed(KIND.semSet, OTHER_TYPE, sysvNoPath)]],
        [KIND.semSet, WIDE, () => widerMode(m, cases[5]!)],
        [KIND.semSet, HIDEPID, async () => unplayed(KIND.semSet, HIDEPID, noHolder)],
        [KIND.semSet, HANDED, () => (canHand ? squattedSemaphoreSet(m, true) : Promise.resolve(unplayed(KIND.semSet, HANDED, `${noOthers}, and ${PYTHON}`)))],
        [KIND.fifo, SQUATTED, () => (squatter ? squattedFifo(m) : Promise.resolve(unplayed(KIND.fifo, SQUATTED, noOthers)))],
        [KIND.fifo, SYMLINK, () => linkedFifo(m)],
        [KIND.fifo, OTHER_TYPE, () => fileTypesAtFifoPath(m)],
        [KIND.fifo, WIDE, () => widerFifo(m)],
        [KIND.fifo, HIDEPID, async () => unplayed(KIND.fifo, HIDEPID, noHolder)],
        [KIND.fifo, HANDED, async () => unplayed(KIND.fifo, HANDED, 'n/a: a FIFO has one owner, no separate creator')],
        [KIND.lock, SQUATTED, () => (squatter ? squattedLocks(m) : Promise.resolve(unplayed(KIND.lock, SQUATTED, noOthers)))],
        [KIND.lock, `${SYMLINK} / ${OTHER_TYPE} / ${WIDE}`, async () => unplayed(KIND.lock, `${SYMLINK} / ${OTHER_TYPE} / ${WIDE}`, viaSegment)],
        [KIND.lock, HIDEPID, () => (canHide ? hiddenHolder(m) : Promise.resolve(unplayed(KIND.lock, HIDEPID, `${noOthers}, and unshare`)))],
        [KIND.lock, HANDED, async () => unplayed(KIND.lock, HANDED, viaSegment)],
      ];
      for (const [kind, setup, fn] of plan) {
        const played = await play(kind, setup, fn);
        for (const cell of played) {
          if (cell.attempted > 0 || cell.failures.length > 0) ctx.log(`${cell.kind} / ${cell.setup}: ${cell.refused}/${cell.attempted} refused, ${cell.failures.length} failure(s)`);
          cells.push(cell);
        }
      }
    } finally {
      const left = await scene.cleanup();
      if (left.length > 0) failures.push(`left behind: ${left.join(', ')}`);
    }
    for (const cell of cells) failures.push(...cell.failures.map((f) => `${cell.kind} / ${cell.setup}: ${f}`));
    return {
      title: 'Security matrix',
      about: 'Every named object kind against every set-up another local user can arrange first (uid 65534 squats; a fresh victim process of this ' +
        'user makes the calls). attempted: hostile calls made; refused: those refused with the expected code, at once, leaving no descriptor or ' +
        'mapping of the object. Each cell then checks that nothing was used (bait message still alone, memory unchanged, no System V attach, a ' +
        "named semaphore's 32 bytes as placed, no semop on a set, no FIFO end met by a watcher blocked in open), and controls show the same object is accepted when its owner is named. n/a rows say why the " +
        'set-up cannot exist. One pass; the matrix does not scale with time.',
      columns: ['kind', 'setup', 'attempted', 'refused', 'outcome'],
      rows: cells.map((c) => c.row()),
      failures,
    };
  },
};

if (import.meta.url === `file://${process.argv[1]}`) await runStandalone(section);
