/**
 * `ipckit tour`: every mechanism, between real processes, narrated. Each
 * chapter creates uniquely named objects and removes them at the end; the
 * second process of each exchange is the ipckit CLI itself, started as a
 * child process.
 * @internal
 * @module
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Channel } from '../../channel.js';
import { PosixMessageQueue, SysvMessageQueue } from '../../message-queue.js';
import { PosixSharedMemory, SysvSharedMemory } from '../../shared-memory.js';
import { Mutex } from '../../lock.js';
import { Fifo } from '../../fifo.js';
import { PIPE_BUF, PipeReadEnd, type PipeWriteEnd, pipe, spawn as spawnWithFds } from '../../pipe.js';
import { NamedSemaphore, SemaphoreSet } from '../../semaphore.js';
import { type SignalInfo, sendSignal } from '../../signal.js';
import { connect, listen } from '../../socket.js';
import { RACE_LAYOUT, createRaceSegment, race, startWorker } from '../race.js';
import { IpcError } from '../../errors.js';
import { formatKey } from '../../internal/address.js';
import { jsonText, type Leaf, onStopSignals, stdoutClosed, usageError } from '../program.js';

const CLI = fileURLToPath(new URL('../main.js', import.meta.url));

/** Prints the tour, as text or as JSON lines. */
class Narrator {
  readonly #json: boolean;
  readonly #started = performance.now();
  chapter = '';

  constructor(json: boolean) {
    this.#json = json;
  }

  heading(title: string): void {
    this.chapter = title;
    if (stdoutClosed()) return;
    if (this.#json) this.#emit({ event: 'chapter', title });
    else process.stdout.write(`\n=== ${title} ===\n`);
  }

  explain(text: string): void {
    if (stdoutClosed()) return;
    if (this.#json) this.#emit({ event: 'explain', text });
    else process.stdout.write(`${text.replace(/^/gm, '  ')}\n`);
  }

  /** Something a process did or saw; `who` is its label and pid. */
  say(who: string, pid: number, text: string): void {
    if (stdoutClosed()) return;
    if (this.#json) this.#emit({ event: 'step', process: who, pid, text });
    else process.stdout.write(`  [${`${who} ${pid}`.padEnd(12)}] ${text}\n`);
  }

  #emit(value: Record<string, unknown>): void {
    const ms = Math.round(performance.now() - this.#started);
    process.stdout.write(`${jsonText({ chapter: this.chapter, ms, ...value })}\n`);
  }
}

interface ChildResult {
  pid: number;
  code: number | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

/** What a child printed so far. */
interface ChildOutput {
  pid: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `ipckit <args>` as a child process and collects what it printed;
 * rejects if it does not exit with `expectedCode` (null: ended by a signal). `onOutput` sees the
 * output so far each time the child prints something. `prefix` runs it
 * through another command that ends by executing it (`ip netns exec NAME`).
 */
function runCli(args: string[], onSpawn?: (pid: number) => void, expectedCode: number | null = 0,
  onOutput?: (output: ChildOutput) => void, prefix: string[] = []): Promise<ChildResult> {
  return new Promise<ChildResult>((resolve, reject) => {
    const started = performance.now();
    const [command, ...rest] = [...prefix, process.execPath, CLI, ...args];
    const child = spawn(command!, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const printed = (): void => onOutput?.({ pid: child.pid!, stdout, stderr });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; printed(); });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; printed(); });
    child.on('error', reject);
    child.on('spawn', () => onSpawn?.(child.pid!));
    child.on('close', (code) => resolve({
      pid: child.pid!, code, stdout, stderr, elapsedMs: Math.round(performance.now() - started),
    }));
  }).then((result) => {
    if (result.code !== expectedCode) {
      throw new IpcError('ERR_IPC_PEER_FAILED',
        `The tour's child "ipckit ${args.join(' ')}" exited ${result.code}, expected ${expectedCode}: ${result.stderr.trim()}`);
    }
    return result;
  });
}

/**
 * Starts `promise` now and awaits it later: until then a rejection is held,
 * not reported as unhandled, so the chapter's cleanup still runs.
 */
function later<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `removeAll` if the tour is stopped (SIGINT, SIGTERM or SIGHUP) while a
 * chapter's objects exist (they outlive the tour), then exits as the signal
 * would: 128 + its number. Returns the function that stops watching.
 */
function removeOnStop(removeAll: () => void | Promise<void>): () => void {
  return onStopSignals((info) => {
    void Promise.resolve().then(removeAll).finally(() => process.exit(128 + info.number));
  });
}

/** Stops a chapter's CLI children (SIGTERM, see {@link startCli}) and kills its node children that still run. */
function stopAll(stoppers: (() => void)[], children: Set<ChildProcess>): void {
  for (const stop of stoppers.splice(0)) stop();
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** Runs `remove`, which may find its object removed already (ENOENT). */
function unlessGone(remove: () => void): void {
  try {
    remove();
  } catch (err) {
    if (!(err instanceof IpcError) || err.code !== 'ENOENT') throw err;
  }
}

function show(text: string): string {
  return JSON.stringify(text);
}

async function messageQueueChapter(n: Narrator): Promise<void> {
  const me = process.pid;
  n.heading('Message queues: a mailbox kept by the kernel');
  n.explain('A process creates a queue at a name or key; other processes send messages to it and receive\n' +
    'messages from it. The kernel buffers every message between send and receive. A receive on an empty\n' +
    'queue blocks or returns empty; a send to a full queue blocks or fails. The second process in each\n' +
    'step below is a real child process: the ipckit command line.');

  const name = `/ipckit-tour-${me}`;
  const q = PosixMessageQueue.create(name, { maxMessages: 4, maxMessageSize: 256, mode: 0o600 });
  try {
    n.explain('\nPOSIX queue: every message has a priority, and the highest is received first.');
    n.say('tour', me, `created ${name}: 4 messages of at most 256 bytes, mode 0600`);
    for (const [text, priority] of [['routine report', 1], ['lunch is ready', 0], ['server room on fire', 9]] as const) {
      await q.send(Buffer.from(text), { priority });
      n.say('tour', me, `sent ${show(text)} with priority ${priority}`);
    }
    const drained = await runCli(['mq', 'recv', name, '--count', '3', '--json'],
      (pid) => n.say('child', pid, `$ ipckit mq recv ${name} --count 3 --json`));
    for (const line of drained.stdout.trim().split('\n')) {
      const m = JSON.parse(line) as { data: string; priority: number };
      n.say('child', drained.pid, `received ${show(m.data)} (priority ${m.priority})`);
    }
    n.explain('The kernel handed them out by priority, not in the order they were sent.');

    n.explain('\nBlocking receive: the child waits on the empty queue until the parent sends.');
    const waiting = later(runCli(['mq', 'recv', name, '--timeout', '10000'],
      (pid) => n.say('child', pid, `$ ipckit mq recv ${name} --timeout 10000   (the queue is empty: it blocks)`)));
    await sleep(400);
    await q.send(Buffer.from('wake up'));
    n.say('tour', me, 'sent "wake up" after 400 ms');
    const woke = await waiting;
    n.say('child', woke.pid, `received ${show(woke.stdout.trim())} and exited ${woke.code} after ${woke.elapsedMs} ms`);

    n.explain('\nNon-blocking receive: on an empty queue it returns at once with EAGAIN.');
    const empty = await runCli(['mq', 'recv', name, '--nonblock'],
      (pid) => n.say('child', pid, `$ ipckit mq recv ${name} --nonblock`), 1);
    n.say('child', empty.pid, `exited ${empty.code}: ${empty.stderr.trim().split('. ')[0]}`);

    n.explain('\nA full queue: trySend() refuses, a timed send times out, and a blocked send goes through\n' +
      'as soon as a reader makes room.');
    let filled = 0;
    while (q.trySend(Buffer.from(`job ${filled + 1}`))) filled++;
    n.say('tour', me, `trySend() succeeded ${filled} times, then returned false: the queue is full`);
    try {
      await q.send(Buffer.from('one more'), { timeout: 200 });
    } catch (err) {
      if (!(err instanceof IpcError)) throw err;
      n.say('tour', me, `send(…, { timeout: 200 }) failed with ${err.code}`);
    }
    const blockedSend = later(q.send(Buffer.from('one more')));
    n.say('tour', me, 'send("one more") is now waiting for room (the event loop stays free)');
    const reader = await runCli(['mq', 'recv', name, '--count', String(filled + 1)],
      (pid) => n.say('child', pid, `$ ipckit mq recv ${name} --count ${filled + 1}`));
    await blockedSend;
    n.say('child', reader.pid, `received ${reader.stdout.trim().split('\n').map(show).join(', ')}`);
    n.say('tour', me, 'the waiting send completed when the child made room');
  } finally {
    q.close();
    PosixMessageQueue.unlink(name);
    n.say('tour', me, `unlinked ${name}`);
  }

  n.explain('\nSystem V queue: every message has a type, and a receiver chooses by type\n' +
    '(0: the first message; n: the first of type n; -n: the first of the lowest type up to n).');
  const s = atRandomTourKey((key) => SysvMessageQueue.create(key, { mode: 0o600 }));
  const key = formatKey(s.key);
  try {
    n.say('tour', me, `created System V queue ${key} (id ${s.id})`);
    const sent = [[3, 'alert: fan failed'], [2, 'job: resize photo'], [1, 'log: disk at 80%'], [2, 'job: send mail']] as const;
    for (const [type, text] of sent) {
      s.sendSync(type, Buffer.from(text));
      n.say('tour', me, `sent type ${type}: ${show(text)}`);
    }
    for (const args of [['--type', '2', '--count', '2'], ['--type=-3'], []]) {
      const r = await runCli(['mq', 'recv', key, ...args, '--json'],
        (pid) => n.say('child', pid, `$ ipckit mq recv ${key} ${[...args, '--json'].join(' ')}`));
      for (const line of r.stdout.trim().split('\n')) {
        const m = JSON.parse(line) as { data: string; type: number };
        n.say('child', r.pid, `received type ${m.type}: ${show(m.data)}`);
      }
    }
    const st = s.stat();
    n.say('tour', me, `stat: ${st.messages} messages left; last receiver was pid ${st.lastReceivePid}, last sender pid ${st.lastSendPid}`);
  } finally {
    s.remove();
    n.say('tour', me, `removed ${key}`);
  }
}

/**
 * Creates a System V object at a random key in 0x7e000000..0x7effffff,
 * drawing again while the key is taken.
 */
function atRandomTourKey<T>(create: (key: number) => T): T {
  for (let attempt = 0; ; attempt++) {
    try {
      return create((0x7e000000 | Math.floor(Math.random() * 0x1000000)) >>> 0);
    } catch (err) {
      if (!(err instanceof IpcError) || err.code !== 'EEXIST' || attempt === 15) throw err;
    }
  }
}

async function sharedMemoryChapter(n: Narrator): Promise<void> {
  const me = process.pid;
  n.heading('Shared memory: the same memory in two processes, and the lock it needs');
  n.explain('Processes normally have separate memory. Asking the kernel for a shared segment (by name, or by\n' +
    'key with shmget) maps the same pages into each: a write by one is visible to the other at once,\n' +
    'with no copy. But two processes updating the same data at the same moment overwrite each other,\n' +
    'so shared data needs a lock.');

  const name = `/ipckit-tour-shm-${me}`;
  const shm = PosixSharedMemory.create(name, { size: 4096, mode: 0o600 });
  try {
    n.say('tour', me, `created POSIX segment ${name}: 4096 bytes, mapped as a SharedArrayBuffer`);
    const wrote = await runCli(['shm', 'write', name, 'written by the child'],
      (pid) => n.say('child', pid, `$ ipckit shm write ${name} "written by the child"`));
    const seen = Buffer.from(shm.buffer, 0, 20).toString();
    n.say('tour', me, `reads its own mapping: ${show(seen)} (child ${wrote.pid} wrote it; nothing was sent)`);
    shm.write(Buffer.from('answer from the parent\0'), 100);
    const read = await runCli(['shm', 'read', name, '--offset', '100'],
      (pid) => n.say('child', pid, `$ ipckit shm read ${name} --offset 100`));
    n.say('child', read.pid, `printed ${show(read.stdout)}`);
  } finally {
    shm.close();
    PosixSharedMemory.unlink(name);
  }

  n.explain('\nSystem V: the same key gives the same segment in every process.');
  const sysv = atRandomTourKey((key) => SysvSharedMemory.create(key, { size: 1024, mode: 0o600 }));
  const key = formatKey(sysv.key);
  try {
    n.say('tour', me, `created System V segment ${key} (id ${sysv.id}), 1024 bytes, and attached it`);
    const stat = await runCli(['shm', 'stat', key, '--json'], (pid) => n.say('child', pid, `$ ipckit shm stat ${key} --json`));
    const info = JSON.parse(stat.stdout) as { creatorPid: number; attachments: number; size: number };
    n.say('child', stat.pid, `sees size ${info.size}, creator pid ${info.creatorPid}, ${info.attachments} process attached (the tour)`);
  } finally {
    sysv.remove();
    sysv.close();
  }

  n.explain('\nThe race: two processes each add 1 to one shared counter 200000 times.');
  const segment = createRaceSegment();
  try {
    const unlocked = await race(segment, false, 2, 200_000);
    const lost = 400_000 - unlocked.counter;
    n.say('tour', me, lost > 0 ? `without a lock: counter = ${unlocked.counter}, not 400000: ${lost} updates were lost`
      : 'without a lock: counter = 400000: this time the two never collided (a race is likely, not certain); run "ipckit demo race" again');
    const locked = await race(segment, true, 2, 200_000);
    n.say('tour', me, `with the segment's Mutex: counter = ${locked.counter}: none lost`);

    n.explain('\nA lock holder killed with SIGKILL does not deadlock the others: the next locker takes the lock\n' +
      'over and is told, so it can repair the data first.');
    const mutex = Mutex.open(segment, RACE_LAYOUT.mutex * 4);
    const holder = startWorker(segment.name, 'hold', 0);
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.once('data', () => resolve());
      holder.once('close', (code) => reject(new IpcError('ERR_IPC_PEER_FAILED', `The lock holder exited ${code} before taking the lock.`)));
    });
    n.say('child', holder.pid!, `took the Mutex in ${segment.name} and holds it`);
    const waiting = later(mutex.lock({ timeout: 10_000 }));
    n.say('tour', me, 'waits for the Mutex (the event loop stays free)');
    await sleep(300);
    holder.kill('SIGKILL');
    n.say('tour', me, `killed the holder, pid ${holder.pid}, with SIGKILL`);
    try {
      await waiting;
      n.say('tour', me, 'got the lock normally (the holder let go before it died)');
    } catch (err) {
      if (!(err instanceof IpcError) || err.code !== 'ERR_IPC_OWNER_DIED') throw err;
      n.say('tour', me, `lock() failed with ${err.code}, holding the lock: repairs the counter, calls markConsistent(), unlocks`);
      mutex.markConsistent();
    }
    mutex.unlock();
    n.say('tour', me, `the Mutex works again: tryLock() = ${mutex.tryLock()}`);
    mutex.unlock();
  } finally {
    segment.close();
    segment.unlink();
    n.say('tour', me, 'removed both segments');
  }
}

/** Runs a shell command line as a child process, with its own stdio. */
function shell(line: string, fds: Record<number, PipeReadEnd | PipeWriteEnd>, stdio: ('ignore' | 'pipe' | 'inherit')[] = ['ignore', 'pipe', 'inherit']): ChildProcess {
  return spawnWithFds('sh', ['-c', line], { stdio, fds });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
}

async function pipeChapter(n: Narrator): Promise<void> {
  const me = process.pid;
  n.heading('Pipes and FIFOs: one-way byte streams');
  n.explain('A pipe has a read end and a write end: bytes written into one come out of the other, in order,\n' +
    'and the kernel holds them in between. A parent creates an unnamed pipe and hands the ends to its\n' +
    'children; a named pipe (FIFO) has a path, so unrelated processes can meet at it.');

  const { readEnd, writeEnd } = pipe();
  n.say('tour', me, `pipe(): read end fd ${readEnd.fd}, write end fd ${writeEnd.fd}, ${readEnd.capacity} bytes of buffer`);
  const writer = shell('printf "pear\\napple\\nfig\\n" >&3', { 3: writeEnd });
  n.say('child', writer.pid!, '$ sh -c \'printf "pear\\napple\\nfig\\n" >&3\'   (fd 3 is the write end)');
  const sorter = shell('sort', { 0: readEnd });
  n.say('child', sorter.pid!, '$ sort   (stdin is the read end)');
  writeEnd.close();
  readEnd.close();
  n.say('tour', me, 'closed its own copies of both ends, so sort sees the end when printf is done');
  let sorted = '';
  sorter.stdout!.setEncoding('utf8').on('data', (chunk: string) => { sorted += chunk; });
  await Promise.all([exited(writer), exited(sorter)]);
  n.say('child', sorter.pid!, `printed ${show(sorted)}`);

  const lonely = pipe();
  lonely.readEnd.close();
  try {
    await lonely.writeEnd.write(Buffer.from('anyone?'));
  } catch (err) {
    if (!(err instanceof IpcError)) throw err;
    n.say('tour', me, `wrote into a pipe whose read end is closed: ${err.code}, an error, not a killed process`);
  }
  lonely.writeEnd.close();
  n.explain(`Writes of at most PIPE_BUF (${PIPE_BUF}) bytes are atomic: several writers never interleave inside one.`);

  n.explain('\nA FIFO: two processes that share nothing but a path.');
  const path = `${tmpdir()}/ipckit-tour-fifo-${me}`;
  Fifo.create(path, { mode: 0o600 });
  try {
    n.say('tour', me, `created FIFO ${path}, mode 0600`);
    const reader = later(runCli(['fifo', 'read', path, '--count', '2'],
      (pid) => n.say('child', pid, `$ ipckit fifo read ${path} --count 2   (waits for a writer)`)));
    const end = await Fifo.openWrite(path, { timeout: 10_000 });
    n.say('tour', me, 'openWrite() resolved once a reader had the FIFO open (no thread was parked meanwhile)');
    await end.write(Buffer.from('first line\nsecond line\n'));
    end.close();
    const r = await reader;
    n.say('child', r.pid, `printed ${r.stdout.trim().split('\n').map(show).join(', ')}`);
  } finally {
    Fifo.unlink(path);
    n.say('tour', me, `removed ${path}`);
  }
}

/**
 * Starts `ipckit <args>` (through `prefix`, see {@link runCli}), and resolves
 * `ready` with its pid and output once its output contains `marker` (the
 * promise `done` settles when it exits). `stop()` sends it SIGTERM if it is
 * still running: for a step that failed while the child waits for it.
 */
function startCli(args: string[], marker: string, onSpawn: (pid: number) => void, expectedCode: number | null = 0, prefix: string[] = []):
  { ready: Promise<ChildOutput>; done: Promise<ChildResult>; stop(): void } {
  let resolveReady!: (output: ChildOutput) => void;
  const ready = new Promise<ChildOutput>((resolve) => { resolveReady = resolve; });
  let pid: number | undefined;
  const done = later(runCli(args, (p) => { pid = p; onSpawn(p); }, expectedCode, (output) => {
    if (output.stdout.includes(marker) || output.stderr.includes(marker)) resolveReady(output);
  }, prefix));
  let running = true;
  done.then(() => { running = false; }, () => { running = false; });
  const stop = (): void => {
    if (!running || pid === undefined) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch { /* It exited meanwhile. */ }
  };
  return {
    ready: Promise.race([ready, done.then(() => { throw new IpcError('ERR_IPC_PEER_FAILED', `"ipckit ${args.join(' ')}" exited before it was ready.`); })]),
    done,
    stop,
  };
}

/** The scheduler state of `pid` (R, S, T, ...), from /proc. */
function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.charAt(stat.lastIndexOf(')') + 2);
}

function signalLines(stdout: string): SignalInfo[] {
  return stdout.trim().split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as SignalInfo);
}

async function signalChapter(n: Narrator): Promise<void> {
  const me = process.pid;
  n.heading('Signals: a notification, with the sender\'s name on it');
  n.explain('A signal interrupts a process to tell it something happened: Ctrl+C in its terminal (SIGINT),\n' +
    'a request to stop (SIGTERM), or anything two programs agree on (SIGUSR2, real-time signals).\n' +
    'Each has a default action, usually to end the process; a process can install its own handler\n' +
    'instead. The kernel tells the handler who sent the signal, and sigqueue() can attach a number.');

  const first = startCli(['signal', 'wait', 'SIGUSR2', 'SIGRTMIN+1', '--count', '2', '--json'], '"waiting"',
    (pid) => n.say('child', pid, '$ ipckit signal wait SIGUSR2 SIGRTMIN+1 --count 2 --json'));
  const { pid: waiter } = await first.ready;
  sendSignal(waiter, 'SIGUSR2');
  n.say('tour', me, `kill(${waiter}, SIGUSR2)`);
  sendSignal(waiter, 'SIGRTMIN+1', { value: 42 });
  n.say('tour', me, `sigqueue(${waiter}, SIGRTMIN+1, 42)`);
  const got = await first.done;
  for (const info of signalLines(got.stdout)) {
    n.say('child', got.pid, `got ${info.signal} from pid ${info.pid} (uid ${info.uid}) by ${info.origin}${info.value === null ? '' : `, value ${info.value}`}`);
  }

  n.explain('\nStandard signals merge, real-time signals queue. While a signal is pending (sent, not yet\n' +
    'taken), another of the same standard signal is lost; every real-time signal is kept, in order.\n' +
    'To show it, the tour stops the child with SIGSTOP, sends three of each, then resumes it.');
  const second = startCli(['signal', 'wait', 'SIGUSR2', 'SIGRTMIN+1', '--count', '6', '--timeout', '1000', '--json'], '"waiting"',
    (pid) => n.say('child', pid, '$ ipckit signal wait SIGUSR2 SIGRTMIN+1 --count 6 --timeout 1000 --json'), 1);
  const { pid: stopped } = await second.ready;
  sendSignal(stopped, 'SIGSTOP');
  try {
    for (let i = 0; i < 500 && processState(stopped) !== 'T'; i++) await sleep(2);
    n.say('tour', me, `SIGSTOP: pid ${stopped} is stopped (state ${processState(stopped)} in /proc/${stopped}/stat)`);
    for (const value of [1, 2, 3]) {
      sendSignal(stopped, 'SIGUSR2');
      sendSignal(stopped, 'SIGRTMIN+1', { value });
    }
    n.say('tour', me, 'sent SIGUSR2 and SIGRTMIN+1 (values 1, 2, 3) three times each, then SIGCONT');
  } finally {
    sendSignal(stopped, 'SIGCONT');
  }
  const merged = await second.done;
  const infos = signalLines(merged.stdout);
  n.say('child', merged.pid, `got ${infos.map((i) => (i.value === null ? i.signal : `${i.signal}=${i.value}`)).join(', ')}; then ` +
    `${merged.stderr.includes('ERR_IPC_TIMEOUT') ? 'ERR_IPC_TIMEOUT' : 'exit'} waiting for the rest (exit ${merged.code})`);
  const rt = infos.filter((i) => i.signal === 'SIGRTMIN+1').map((i) => i.value);
  n.explain(`${infos.filter((i) => i.signal === 'SIGUSR2').length} SIGUSR2 out of 3 arrived; ${rt.length} SIGRTMIN+1 out of 3 did, values ${rt.join(', ')}. ` +
    'Pending signals are taken lowest\nnumber first, so SIGUSR2 (12) came before SIGRTMIN+1 (35).');

  n.explain('\nCtrl+C: the terminal sends SIGINT. Here the tour plays the terminal and sends SIGINT to a\n' +
    'process whose handler cleans up before it exits with 128 + 2 = 130, instead of dying at once.');
  const demo = startCli(['demo', 'ctrl-c', '--cleanup', '200', '--json'], '"ready"',
    (pid) => n.say('child', pid, '$ ipckit demo ctrl-c --cleanup 200 --json'), 130);
  const { pid: worker } = await demo.ready;
  sendSignal(worker, 'SIGINT');
  n.say('tour', me, `kill(${worker}, SIGINT)`);
  const ended = await demo.done;
  for (const line of ended.stdout.trim().split('\n')) {
    const event = JSON.parse(line) as { event: string; pid?: number | null };
    if (event.event === 'signal') n.say('child', ended.pid, `its handler ran: SIGINT from pid ${event.pid}; cleaning up for 200 ms`);
    if (event.event === 'clean-exit') n.say('child', ended.pid, `cleaned up, exited ${ended.code}`);
  }
  n.explain('Pressed in a real terminal, Ctrl+C comes from the kernel: the handler then sees no sender pid.\n' +
    'Try it: ipckit demo ctrl-c');
}

/** The address a `socket listen --json` child announced on stderr. */
function listeningAddress(stderr: string): string {
  for (const line of stderr.split('\n')) {
    if (line.startsWith('{"listening"')) return (JSON.parse(line) as { listening: { address: string } }).listening.address;
  }
  throw new IpcError('ERR_IPC_PEER_FAILED', `The listener announced no address: ${stderr.trim()}`);
}

/** Rejects when `child` fails, and never resolves: raced against a wait that only the child can end. */
function failureOf(child: Promise<unknown>): Promise<never> {
  return child.then(() => new Promise<never>(() => undefined));
}

/** One --json line of `ipckit socket listen`. */
interface ListenedMessage {
  data: string;
  peer: { address: string | null; pid: number | null; uid: number | null; gid: number | null };
}

async function socketChapter(n: Narrator): Promise<void> {
  const me = process.pid;
  n.heading('Sockets: two-way connections, on one machine and across machines');
  n.explain('A socket is one end of a two-way connection between processes. A server binds an address and\n' +
    'listens; clients connect, and each connection carries bytes both ways. A Unix socket has a path (or\n' +
    'an abstract name) and reaches the processes of this machine; a TCP socket has an IP address and a\n' +
    'port and reaches any machine. ipckit frames messages on both: a 4-byte length, then the bytes.');

  const path = `${tmpdir()}/ipckit-tour-sock-${me}`;
  const address = `unix:${path}`;
  const server = listen(address, { mode: 0o600 });
  try {
    n.say('tour', me, `listening on ${address} (a socket file, mode 0600)`);
    const asking = later(runCli(['socket', 'send', address, 'who are you?', '--reply', '--json'],
      (pid) => n.say('child', pid, `$ ipckit socket send ${address} "who are you?" --reply --json`)));
    const conn = await Promise.race([server.accept({ timeout: 10_000 }), failureOf(asking)]);
    try {
      const peer = conn.peer!;
      n.say('tour', me, `accepted a connection; the kernel says the other end is pid ${peer.pid} (uid ${peer.uid}, gid ${peer.gid})`);
      const { data } = await conn.receive({ timeout: 10_000 });
      n.say('tour', me, `received ${show(data.toString())}`);
      const answer = `the tour, pid ${me}; and you are pid ${peer.pid}`;
      await conn.send(Buffer.from(answer));
      n.say('tour', me, `replied ${show(answer)}`);
    } finally {
      conn.close();
    }
    const asked = await asking;
    const exchange = JSON.parse(asked.stdout) as { peer: ListenedMessage['peer']; reply: { data: string } };
    n.say('child', asked.pid, `printed the reply ${show(exchange.reply.data)}; the kernel says the server is pid ` +
      `${exchange.peer.pid} (uid ${exchange.peer.uid}, gid ${exchange.peer.gid})`);
    n.explain('Neither side said who it was: the kernel recorded each process\'s pid, uid and gid when the\n' +
      'connection was made (SO_PEERCRED), and no process can claim another\'s. A server can refuse users by\n' +
      'uid before it reads a byte (ipckit socket listen --allow-uid).');

    n.explain('\nA Unix socket also carries open descriptors (SCM_RIGHTS): the receiver gets a descriptor of its own\n' +
      'for the same open pipe, file or socket. Here sh makes a pipe; printf writes into it, and ipckit, whose\n' +
      'stdin is the read end, sends that read end to the tour with --fd 0.');
    const script = 'printf \'written by printf into the pipe sh made\\n\' | exec "$0" "$1" socket send "$2" "here is my stdin" --fd 0';
    const sh = spawn('sh', ['-c', script, process.execPath, CLI, address], { stdio: ['ignore', 'ignore', 'pipe'] });
    let shErrors = '';
    sh.stderr.setEncoding('utf8').on('data', (chunk: string) => { shErrors += chunk; });
    const shDone = later(exited(sh).then((status) => {
      if (status !== 0) throw new IpcError('ERR_IPC_PEER_FAILED', `The descriptor-passing pipeline exited ${status}: ${shErrors.trim()}`);
    }));
    n.say('child', sh.pid!, `$ printf 'written by printf into the pipe sh made\\n' | ipckit socket send ${address} "here is my stdin" --fd 0`);
    const passer = await Promise.race([server.accept({ timeout: 10_000 }), failureOf(shDone)]);
    try {
      const m = await passer.receive({ timeout: 10_000 });
      const fd = m.fds[0];
      if (fd === undefined) throw new IpcError('ERR_IPC_PEER_FAILED', `The message came without a descriptor. ${shErrors.trim()}`);
      const end = PipeReadEnd.fromFd(fd);
      try {
        n.say('tour', me, `received ${show(m.data.toString())} from pid ${passer.peer!.pid} (the pipeline's ipckit), with descriptor ${fd}: ` +
          `${readlinkSync(`/proc/self/fd/${fd}`)}`);
        const chunks: Buffer[] = [];
        for await (const chunk of end) chunks.push(chunk);
        n.say('tour', me, `read ${show(Buffer.concat(chunks).toString())} from it: a pipe the tour never opened`);
      } finally {
        end.close();
      }
    } finally {
      passer.close();
    }
    await shDone;
  } finally {
    server.close();
    n.say('tour', me, `closed the server; its socket file ${path} is removed`);
  }

  n.explain('\nTCP: the same messages, addressed by IP address and port. The child asks for port 0, and the\n' +
    'kernel picks a free one, which the child prints.');
  const echo = startCli(['socket', 'listen', 'tcp://127.0.0.1:0', '--echo', '--count', '2', '--json'], '"listening"',
    (pid) => n.say('child', pid, '$ ipckit socket listen tcp://127.0.0.1:0 --echo --count 2 --json'));
  try {
    const echoing = await echo.ready;
    const tcp = listeningAddress(echoing.stderr);
    n.say('child', echoing.pid, `listening on ${tcp}`);
    using sock = await connect(tcp, { timeout: 10_000 });
    n.say('tour', me, `connected from ${sock.localAddress} to ${sock.remoteAddress}; peer credentials: ` +
      `${sock.peer === null ? 'none (TCP knows only addresses)' : `pid ${sock.peer.pid}`}`);
    for (const text of ['ping', 'ping again']) {
      const started = performance.now();
      await sock.send(Buffer.from(text));
      const { data } = await sock.receive({ timeout: 10_000 });
      n.say('tour', me, `sent ${show(text)}, and ${show(data.toString())} came back after ${(performance.now() - started).toFixed(2)} ms`);
    }
  } catch (err) {
    echo.stop();
    throw err;
  }
  const echoed = await echo.done;
  n.say('child', echoed.pid, `echoed 2 messages and exited ${echoed.code}`);
  n.explain('Over TCP the kernel knows only addresses, not who is at the other end: a server that must know\n' +
    'asks (a token, a TLS certificate).');

  await acrossMachines(n);
}

/** Runs `ip <args>`; resolves to its stdout, or rejects with what it printed on stderr. */
function ip(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, (err, stdout, stderr) => {
      if (err) reject(new IpcError('ERR_IPC_PEER_FAILED', `ip ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** Why network namespaces cannot be made here, or undefined if they may be. */
function namespacesUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root (run "sudo ipckit tour socket" to see it).';
  const probe = spawnSync('ip', ['-V']);
  if (probe.error !== undefined) return 'the ip command (iproute2) is not installed.';
  return undefined;
}

/**
 * Two network namespaces, each a network stack of its own as a separate
 * machine has, joined by a veth pair (a virtual cable); a TCP message from
 * one to the other, addressed by IP. The namespaces are deleted whatever
 * happens, also on SIGINT, SIGTERM or SIGHUP: unlike the other chapters'
 * objects they outlive the tour machine-wide.
 */
async function acrossMachines(n: Narrator): Promise<void> {
  const me = process.pid;
  n.explain('\nAcross machines: a TCP connection is the same when the other end is another computer. To show it\n' +
    'without one, the tour makes two network namespaces (each has its own interfaces, addresses, routes and\n' +
    'ports, as a separate machine does) and joins them with a veth pair, a virtual cable.');
  const why = namespacesUnavailable();
  if (why !== undefined) {
    n.explain(`This machine cannot show it: ${why}`);
    return;
  }
  const [a, b] = [`ipckit-tour-${me}-a`, `ipckit-tour-${me}-b`];
  const made: string[] = [];
  let listener: ReturnType<typeof startCli> | undefined;
  const removeAll = async (): Promise<void> => {
    await Promise.allSettled(made.splice(0).map((ns) => ip(['netns', 'delete', ns])));
    // A child left waiting in a namespace would keep it alive, nameless, after its name is gone.
    listener?.stop();
  };
  const restoreSignals = removeOnStop(removeAll);
  try {
    try {
      for (const ns of [a, b]) {
        await ip(['netns', 'add', ns]);
        made.push(ns);
      }
    } catch (err) {
      n.explain(`This machine cannot show it: ${(err as Error).message}`);
      return;
    }
    await ip(['link', 'add', 'veth-a', 'netns', a, 'type', 'veth', 'peer', 'name', 'veth-b', 'netns', b]);
    for (const [ns, dev, addr] of [[a, 'veth-a', '10.77.0.1/24'], [b, 'veth-b', '10.77.0.2/24']] as const) {
      await ip(['-n', ns, 'addr', 'add', addr, 'dev', dev]);
      await ip(['-n', ns, 'link', 'set', dev, 'up']);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    n.say('tour', me, `created namespaces ${a} and ${b}, and a veth pair: veth-a (10.77.0.1) in the first, veth-b (10.77.0.2) in the second`);

    const listenArgs = ['socket', 'listen', 'tcp://10.77.0.2:0', '--count', '1', '--json'];
    listener = startCli(listenArgs, '"listening"',
      (pid) => n.say('child', pid, `$ ip netns exec ${b} ipckit ${listenArgs.join(' ')}`), 0, ['ip', 'netns', 'exec', b]);
    const ready = await listener.ready;
    const target = listeningAddress(ready.stderr);
    n.say('child', ready.pid, `listening on ${target}, in ${b}`);
    const text = `hello from ${a}`;
    const sendArgs = ['socket', 'send', target, text, '--timeout', '10000'];
    const sent = await runCli(sendArgs, (pid) => n.say('child', pid, `$ ip netns exec ${a} ipckit socket send ${target} "${text}" --timeout 10000`),
      0, undefined, ['ip', 'netns', 'exec', a]);
    n.say('child', sent.pid, `sent ${show(text)} and exited ${sent.code}`);
    const got = await listener.done;
    const m = JSON.parse(got.stdout) as ListenedMessage;
    n.say('child', got.pid, `received ${show(m.data)} from ${m.peer.address}: the other namespace's address, across the cable`);
    n.explain('Between real machines only the cable differs: the programs, the addresses and the socket calls are\n' +
      'the same. (The tour\'s own namespace has neither address: it could not reach them.)');
  } finally {
    const names = [...made];
    await removeAll();
    restoreSignals();
    if (names.length > 0) n.say('tour', me, `deleted ${names.join(' and ')} (and with them the veth pair)`);
  }
}

/** The pids of the processes whose parent is `pid`, from /proc. */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // It exited meanwhile.
    }
    // After "pid (comm) state ": the parent's pid.
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) found.push(Number(entry));
  }
  return found;
}

async function serverChapter(n: Narrator): Promise<void> {
  const me = process.pid;
  // Long enough that the event server answers first even on a loaded machine; the blocking one cannot before the hang-up.
  const holdMs = 2000;
  n.heading('Servers: many clients at once, and the blocking server that cannot serve them');
  n.explain('Some calls block: accept, a read from a socket with nothing in it, a write to a full one. While a\n' +
    'process is blocked in one, it handles nothing that arrives on any other socket, so a server that\n' +
    'reads its clients with blocking calls serves one client at a time. The fixes: a process per\n' +
    'connection (fork) or a pool of them (prefork), non-blocking sockets visited in turn (poll), or the\n' +
    'kernel telling the server which connections are ready (event). ipckit serve runs one handler any of\n' +
    'these ways. The tour starts two as child processes, holds a connection open to each without sending,\n' +
    'and asks a question on a second connection.');
  for (const strategy of ['blocking', 'event'] as const) {
    const path = `${tmpdir()}/ipckit-tour-serve-${me}-${strategy}`;
    const address = `unix:${path}`;
    const args = ['serve', address, '--strategy', strategy, '--echo', '--json'];
    n.explain(`\nStrategy ${strategy}.`);
    const server = startCli(args, '"listening"', (pid) => n.say('child', pid, `$ ipckit ${args.join(' ')}`));
    let children: number[] = [];
    try {
      const { pid } = await server.ready;
      children = childrenOf(pid);
      n.say('child', pid, `listening on ${address}; ${children.length === 0 ? 'it serves every connection itself'
        : `its child ${children.join(', ')} accepts and serves the connections, one at a time`}`);
      const idle = await connect(address, { timeout: 10_000 });
      try {
        n.say('tour', me, 'connection 1: connected, and sends nothing (a slow client)');
        using asker = await connect(address, { timeout: 10_000 });
        const question = 'anyone there?';
        const sent = performance.now();
        await asker.send(Buffer.from(question));
        n.say('tour', me, `connection 2: sent ${show(question)}, waits up to ${holdMs} ms for the echo while connection 1 stays open`);
        const reply = later(asker.receive({ timeout: 10_000 }));
        let timer: NodeJS.Timeout | undefined;
        const first = await Promise.race([reply.then(() => 'reply' as const),
          new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), holdMs); })]);
        clearTimeout(timer);
        if (first === 'late') {
          n.say('tour', me, `connection 2: no reply after ${holdMs} ms; the tour hangs up connection 1`);
          idle.close();
          const hungUp = performance.now();
          const { data } = await reply;
          n.say('tour', me, `connection 2: ${show(data.toString())} came back ${(performance.now() - hungUp).toFixed(1)} ms after the hang-up, ` +
            `${(performance.now() - sent).toFixed(0)} ms after it was sent`);
        } else {
          const { data } = await reply;
          n.say('tour', me, `connection 2: ${show(data.toString())} came back after ${(performance.now() - sent).toFixed(1)} ms, while connection 1 was still open`);
        }
      } finally {
        idle.close();
      }
      n.say('tour', me, `kill(${pid}, SIGTERM)`);
    } finally {
      server.stop();
    }
    const stopped = await server.done;
    const left = children.filter((child) => existsSync(`/proc/${child}`));
    n.say('child', stopped.pid, `exited ${stopped.code}: ${children.length === 0 ? 'it had no child' : left.length === 0
      ? `its child ${children.join(', ')} was stopped and reaped (no zombie left)` : `its child ${left.join(', ')} is still there`}; ` +
      `socket file ${existsSync(path) ? 'still there' : 'removed'}`);
  }
  n.explain('\nThe blocking server\'s child accepted connection 1 and sat in read() on it: connection 2 waited in the\n' +
    'listen backlog. The event server watches every connection with epoll and serves whichever is ready.\n' +
    'The children of a server also stop if it is killed outright (PR_SET_PDEATHSIG). All five strategies,\n' +
    'measured side by side: ipckit demo blocking.');
}

/** The library's entry point, for the small node programs of the channel chapter. */
const LIBRARY = new URL('../../index.js', import.meta.url).href;

/**
 * Starts `node -e <script>` as an ES module; `args` are its
 * process.argv[1...], and with `ipc` it has Node's IPC channel. Its stdin is a pipe from
 * the tour: the scripts exit when it ends, so none outlives the tour.
 */
function nodeChild(script: string, args: string[], ipc = false): ChildProcess {
  return spawn(process.execPath, ['--input-type=module', '-e', script, ...args], { stdio: ['pipe', 'pipe', 'pipe', ...(ipc ? ['ipc' as const] : [])] });
}

/** The first line of a {@link nodeChild} script that uses channels. */
const IMPORT_CHANNEL = `import { Channel } from ${JSON.stringify(LIBRARY)};`;

/** The first line of a {@link nodeChild} script that uses semaphore sets. */
const IMPORT_SEMAPHORE_SET = `import { SemaphoreSet } from ${JSON.stringify(LIBRARY)};`;

/** Resolves when `child` prints `line`; rejects if it exits first, with what it printed on stderr. */
function printed(child: ChildProcess, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.split('\n').includes(line)) resolve();
    });
    child.once('error', reject);
    child.once('close', (code, signal) => reject(new IpcError('ERR_IPC_PEER_FAILED',
      `The tour's node child ${child.pid} ended (${signal ?? `exit ${code}`}) before it printed "${line}": ${stderr.trim()}`)));
  });
}

/**
 * Looks at `ready()` every 5 ms until it is true; fails if `child` settles
 * first (the process that was to make it true is gone) or after 10 s.
 */
async function until(what: string, ready: () => boolean, child: Promise<unknown>): Promise<void> {
  let ended: unknown;
  let failure: unknown;
  child.then((result) => { ended = result ?? true; }, (err: unknown) => { failure = err ?? true; });
  for (const deadline = performance.now() + 10_000; !ready(); await sleep(5)) {
    if (failure !== undefined) throw failure;
    if (ended !== undefined) throw new IpcError('ERR_IPC_PEER_FAILED', `The child exited before ${what}.`);
    if (performance.now() > deadline) throw new IpcError('ERR_IPC_TIMEOUT', `The tour waited 10 s for ${what}.`);
  }
}

/** One --json line of `ipckit channel stat`. */
interface ChannelStat {
  depth: number;
  depthBytes: number;
  capacity: number;
  sent: number;
  received: number;
  producerTid: number;
  consumerTid: number;
  producerAlive: boolean | null;
  consumerAlive: boolean | null;
}

function holder(tid: number, alive: boolean | null): string {
  return tid === 0 ? 'nobody' : `pid ${tid}${alive === true ? '' : ' (dead)'}`;
}

function median(samples: Float64Array): number {
  const sorted = Float64Array.from(samples).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Round trips timed in the channel chapter, after as many untimed ones to warm up. */
const ROUND_TRIPS = 10_000;
const WARM_UP = 1_000;
const ROUND_TRIP_BYTES = 64;

/** The echo of the channel chapter: receives on one channel and sends the same bytes back on the other. */
const CHANNEL_ECHO = `${IMPORT_CHANNEL}
const [ping, pong, count] = process.argv.slice(1);
process.stdin.resume().on('end', () => process.exit(0));
const from = Channel.open(ping);
const to = Channel.open(pong);
process.stdout.write('ready\\n');
for (let i = Number(count); i > 0; i--) {
  const { data } = await from.receive();
  await to.send(data);
}
from.close();
to.close();
process.exit(0);`;

/** The same echo over child_process IPC: the message event, and process.send back. */
const IPC_ECHO = `process.stdin.resume().on('end', () => process.exit(0));
process.on('message', (m) => process.send(m));
process.stdout.write('ready\\n');`;

/**
 * Times `count` calls of `once()` into `times`, from index `at` (a negative
 * index: an untimed call, to warm up).
 */
async function timeRoundTrips(once: () => Promise<void>, times: Float64Array, at: number, count: number): Promise<void> {
  for (let i = at; i < at + count; i++) {
    const started = performance.now();
    await once();
    if (i >= 0) times[i] = performance.now() - started;
  }
}

async function channelChapter(n: Narrator): Promise<void> {
  const me = process.pid;
  n.heading('Channels: messages through shared memory, with no system call per message');
  n.explain('A channel is a ring of messages in a shared-memory segment, between a producer and a consumer.\n' +
    'Both processes map the segment: the producer copies a message into the ring and the consumer copies it\n' +
    'out, with no system call. The kernel is asked only to wake a side that sleeps: the consumer on an\n' +
    'empty ring, the producer on a full one. For messages between processes on one machine it is the\n' +
    'fastest way ipckit has (created with shared sides, for several senders or receivers too); for\n' +
    'priorities use a message queue, to reach another machine or to pass descriptors a socket.');

  const name = `/ipckit-tour-chan-${me}`;
  const [ping, pong] = [`${name}-ping`, `${name}-pong`];
  const children = new Set<ChildProcess>();
  const stoppers: (() => void)[] = [];
  // Segments outlive their processes: removed whatever happens, also on SIGINT, SIGTERM or SIGHUP.
  const removeAll = (): void => {
    stopAll(stoppers, children);
    for (const each of [name, ping, pong]) unlessGone(() => Channel.unlink(each));
  };
  const restoreSignals = removeOnStop(removeAll);
  let observer: Channel | undefined;
  try {
    // The tour's own handle takes no role: the tour reads the shared counters through it.
    const ch = observer = Channel.create(name, { capacity: 256, mode: 0o600 });
    n.say('tour', me, `created ${name}: a ring of ${ch.capacity} bytes, messages of at most ${ch.maxMessageSize} bytes, mode 0600`);

    n.explain('\nA consumer in one process, a producer in another: each command is a process of its own.');
    let consumerPid = 0;
    const text = 'resize photo-17.jpg';
    const consumer = startCli(['channel', 'recv', name, '--follow'], text, (pid) => {
      consumerPid = pid;
      n.say('child', pid, `$ ipckit channel recv ${name} --follow`);
    }, null);
    stoppers.push(consumer.stop);
    later(consumer.ready);
    await until('the consumer waited', () => consumerPid !== 0 && ch.stats().consumerTid === consumerPid && ch.stats().consumerWaits > 0, consumer.done);
    n.say('child', consumerPid, 'took the consumer role; the ring is empty, so it sleeps (no CPU) until a message comes');
    const stat = async (): Promise<void> => {
      const r = await runCli(['channel', 'stat', name, '--json'], (pid) => n.say('child', pid, `$ ipckit channel stat ${name} --json`));
      const s = JSON.parse(r.stdout) as ChannelStat;
      n.say('child', r.pid, `depth ${s.depth} messages (${s.depthBytes} of ${s.capacity} bytes); sent ${s.sent}, received ${s.received}; ` +
        `producer: ${holder(s.producerTid, s.producerAlive)}, consumer: ${holder(s.consumerTid, s.consumerAlive)}`);
    };
    await stat();
    const sent = await runCli(['channel', 'send', name, text], (pid) => n.say('child', pid, `$ ipckit channel send ${name} "${text}"`));
    n.say('child', sent.pid, `took the producer role, sent ${show(text)}, and exited ${sent.code}, giving the role back`);
    const got = await consumer.ready;
    n.say('child', got.pid, `woke and printed ${show(got.stdout.trim())}`);
    consumer.stop();
    n.say('tour', me, `kill(${consumerPid}, SIGTERM)`);
    await consumer.done;
    n.say('child', consumerPid, `ended by SIGTERM; the channel still names pid ${ch.stats().consumerTid} as its consumer, a dead one`);

    n.explain('\nBackpressure: the ring has a fixed size. A sender that finds it full waits, asleep, until the\n' +
      'consumer makes room: a fast producer cannot bury a slow consumer under messages.');
    {
      using taker = Channel.open(name);
      taker.tryReceive();
      n.say('tour', me, 'took the dead consumer\'s role over (tryReceive() found nothing), and now reads nothing: a slow consumer');
      {
        using filler = Channel.open(name);
        let filled = 0;
        while (filler.trySend(Buffer.from(`job ${filled + 1}`))) filled++;
        n.say('tour', me, `with another handle, trySend() succeeded ${filled} times, then returned false: the ring is full ` +
          '(a message takes an 8-byte header and its bytes, padded to 8: 16 bytes here)');
      }
      n.say('tour', me, 'closed that handle, which gives the producer role back');
      let senderPid = 0;
      const sender = startCli(['channel', 'send', name, 'one more', '--json'], '"sent"', (pid) => {
        senderPid = pid;
        n.say('child', pid, `$ ipckit channel send ${name} "one more" --json`);
      });
      stoppers.push(sender.stop);
      later(sender.ready);
      await until('the sender waited', () => senderPid !== 0 && ch.stats().producerTid === senderPid && ch.stats().producerWaits > 0, sender.done);
      n.say('child', senderPid, 'took the producer role; the ring is full, so it sleeps until there is room');
      await stat();
      const first = await taker.receive({ timeout: 10_000 });
      const madeRoom = performance.now();
      n.say('tour', me, `received ${show(first.data.toString())}: room for one message`);
      const woke = await sender.done;
      n.say('child', woke.pid, `woke, sent "one more", and exited ${woke.code} ${(performance.now() - madeRoom).toFixed(1)} ms later`);
      const rest: string[] = [];
      for (let m = taker.tryReceive(); m !== undefined; m = taker.tryReceive()) rest.push(m.data.toString());
      n.say('tour', me, `received the other ${rest.length}: ${rest.map(show).join(', ')}`);
    }
    n.say('tour', me, 'closed that handle, which gives the consumer role back');

    n.explain('\nA consumer waiting on an empty ring learns that its producer died, instead of waiting forever.\n' +
      'A small node program takes the producer role, sends one message and stays; a consumer receives it and\n' +
      'waits for more; then the tour kills the producer with SIGKILL, which no process can catch.');
    const producer = nodeChild(`${IMPORT_CHANNEL}
process.stdin.resume().on('end', () => process.exit(0));
const ch = Channel.open(process.argv[1]);
await ch.send(Buffer.from('last words'));
process.stdout.write('sent\\n');`, [name]);
    children.add(producer);
    const producerExited = later(exited(producer));
    n.say('child', producer.pid!, `$ node -e '…Channel.open(${show(name)}).send("last words")…'   (and it stays)`);
    await printed(producer, 'sent');
    n.say('child', producer.pid!, 'sent "last words" and holds the producer role');
    const waitsBefore = ch.stats().consumerWaits;
    let readerPid = 0;
    const reader = startCli(['channel', 'recv', name, '--follow'], 'last words', (pid) => {
      readerPid = pid;
      n.say('child', pid, `$ ipckit channel recv ${name} --follow`);
    }, 1);
    stoppers.push(reader.stop);
    await later(reader.ready);
    await until('the consumer waited', () => ch.stats().consumerTid === readerPid && ch.stats().consumerWaits > waitsBefore, reader.done);
    n.say('child', readerPid, 'printed "last words"; the ring is empty, so it sleeps');
    producer.kill('SIGKILL');
    const killed = performance.now();
    n.say('tour', me, `kill(${producer.pid}, SIGKILL)`);
    const died = await reader.done;
    n.say('child', died.pid, `exited ${died.code} ${(performance.now() - killed).toFixed(0)} ms later: ${died.stderr.trim().split('\n')[0]}`);
    await producerExited;

    const blocks = 10;
    n.explain(`\nHow fast: ${ROUND_TRIPS} round trips of ${ROUND_TRIP_BYTES} bytes between the tour and a child process, measured now on\n` +
      'this machine: over two channels (one each way), and over child_process IPC (process.send, the link\n' +
      `Node itself keeps to a child). After ${WARM_UP} untimed round trips each, the two take turns in blocks of ` +
      `${ROUND_TRIPS / blocks},\nso both see the machine as it is; both sides await every call.`);
    {
      using out = Channel.create(ping, { capacity: 4096, mode: 0o600 });
      using back = Channel.create(pong, { capacity: 4096, mode: 0o600 });
      n.say('tour', me, `created ${ping} and ${pong}, 4096 bytes each`);
      const echo = nodeChild(CHANNEL_ECHO, [ping, pong, String(WARM_UP + ROUND_TRIPS)]);
      children.add(echo);
      const echoExited = later(exited(echo));
      n.say('child', echo.pid!, `$ node -e '…receive on ${ping}, send it back on ${pong}…'`);
      const ipc = nodeChild(IPC_ECHO, [], true);
      children.add(ipc);
      const ipcExited = later(exited(ipc));
      n.say('child', ipc.pid!, '$ node -e \'process.on("message", (m) => process.send(m))\'');
      await Promise.all([printed(echo, 'ready'), printed(ipc, 'ready')]);

      const payload = Buffer.alloc(ROUND_TRIP_BYTES, 0x61);
      const overChannels = async (): Promise<void> => {
        await out.send(payload, { timeout: 10_000 });
        await back.receive({ timeout: 10_000 });
      };
      let answered: (() => void) | undefined;
      let lost: ((err: Error) => void) | undefined;
      ipc.on('message', () => answered?.());
      void ipcExited.then(() => lost?.(new IpcError('ERR_IPC_PEER_FAILED', `The IPC echo ${ipc.pid} exited.`)), () => undefined);
      const message = 'a'.repeat(ROUND_TRIP_BYTES);
      const overIpc = (): Promise<void> => new Promise<void>((resolve, reject) => {
        answered = resolve;
        lost = reject;
        ipc.send(message);
      });
      const [channelTimes, ipcTimes] = [new Float64Array(ROUND_TRIPS), new Float64Array(ROUND_TRIPS)];
      await timeRoundTrips(overChannels, channelTimes, -WARM_UP, WARM_UP);
      await timeRoundTrips(overIpc, ipcTimes, -WARM_UP, WARM_UP);
      const block = ROUND_TRIPS / blocks;
      for (let at = 0; at < ROUND_TRIPS; at += block) {
        await timeRoundTrips(overChannels, channelTimes, at, block);
        await timeRoundTrips(overIpc, ipcTimes, at, block);
      }
      ipc.stdin!.end();
      await Promise.all([echoExited, ipcExited]);
      const [onChannels, onIpc] = [median(channelTimes) * 1000, median(ipcTimes) * 1000];
      n.say('tour', me, `over the channels: median round trip ${onChannels.toFixed(1)} µs`);
      n.say('tour', me, `over child_process IPC: median round trip ${onIpc.toFixed(1)} µs`);
      n.explain(onIpc >= onChannels ? `Here and now the channel's round trip was ${(onIpc / onChannels).toFixed(1)}× shorter.`
        : `Here and now the channel's round trip was ${(onChannels / onIpc).toFixed(1)}× longer.`);
      n.explain('A channel message goes through memory both processes map; a child_process message is written into\n' +
        'a socket by one process and read by the other, a system call on each side. A waiting side spins a\n' +
        'little before it sleeps, which pays when the other process runs on another CPU at the same time. On\n' +
        'a busy machine each message may have to wake a sleeper instead (tens of microseconds); with one CPU\n' +
        '(taskset -c 0) an awaited receive also wakes through the event loop (a doorbell the other side\n' +
        'rings, which is also how select and a Poller watch a channel), and the sync calls (sendSync,\n' +
        'receiveSync) are the faster choice. Many small messages go fastest in a MessageBatch\n' +
        '(sendBatch, receiveBatch): one call copies them all into or out of the ring.\n' +
        'Every variant, beside C and Node\'s own: ipckit bench channel.');
    }
    for (const each of [ping, pong]) Channel.unlink(each);
    n.say('tour', me, `removed ${ping} and ${pong}`);

    const rm = await runCli(['channel', 'rm', name], (pid) => n.say('child', pid, `$ ipckit channel rm ${name}`));
    n.say('child', rm.pid, `exited ${rm.code}: /dev/shm/${name.slice(1)} is ${existsSync(`/dev/shm/${name.slice(1)}`) ? 'still there' : 'gone'}`);
  } finally {
    observer?.close();
    removeAll();
    restoreSignals();
  }
}

/** A node child of the semaphore chapter: takes semaphore argv[2] of the set at key argv[1], with undo if argv[3] says so, and stays. */
const HOLD_SEMAPHORE = `${IMPORT_SEMAPHORE_SET}
process.stdin.resume().on('end', () => process.exit(0));
const [key, index, undo] = process.argv.slice(1);
SemaphoreSet.open(Number(key)).opSync({ index: Number(index), delta: -1, undo: undo === 'undo' });
process.stdout.write('taken\\n');`;

/** One --json line of `ipckit sem stat` for a set. */
interface SetStat {
  values: number[];
  lastPids: number[];
}

async function semaphoreChapter(n: Narrator): Promise<void> {
  const me = process.pid;
  n.heading('Semaphores: counters the kernel keeps, and a holder that dies');
  n.explain('A semaphore is a counter that processes take from (wait) and give to (post); a wait on zero sleeps\n' +
    'until another process posts. With the value 1 it is a lock: one process at a time. The kernel has two\n' +
    'kinds: POSIX named semaphores (sem_open: one counter with a name) and System V sets (semget: counters\n' +
    'under a key, changed by atomic operations, semop). Both are what C and Python programs use too.');

  const name = `/ipckit-tour-sem-${me}`;
  const children = new Set<ChildProcess>();
  const stoppers: (() => void)[] = [];
  let set: SemaphoreSet | undefined;
  // Semaphores outlive their processes: removed whatever happens, also on SIGINT, SIGTERM or SIGHUP.
  const removeAll = (): void => {
    stopAll(stoppers, children);
    unlessGone(() => NamedSemaphore.unlink(name));
    const made = set;
    set = undefined;
    made?.remove();
  };
  const restoreSignals = removeOnStop(removeAll);
  try {
    n.explain('\nTwo processes, one lock: a POSIX named semaphore with the value 1.');
    {
      using sem = NamedSemaphore.create(name, { value: 1, mode: 0o600 });
      n.say('tour', me, `created ${name} with the value 1, mode 0600 (the file /dev/shm/sem.${name.slice(1)})`);
      await sem.wait({ timeout: 10_000 });
      n.say('tour', me, `wait(): took it; the value is ${sem.value}`);
      let waiterPid = 0;
      const waiter = startCli(['sem', 'wait', name, '--timeout', '10000', '--json'], '"taken"', (pid) => {
        waiterPid = pid;
        n.say('child', pid, `$ ipckit sem wait ${name} --timeout 10000 --json`);
      });
      stoppers.push(waiter.stop);
      later(waiter.ready);
      await until('the waiter slept', () => sem.waiters > 0, waiter.done);
      n.say('child', waiterPid, `found the value 0: it sleeps, and ${name} counts ${sem.waiters} waiter`);
      sem.post();
      const posted = performance.now();
      n.say('tour', me, 'post(): gave it back');
      const took = await waiter.done;
      n.say('child', took.pid, `woke, printed ${took.stdout.trim()} and exited ${took.code}, ${(performance.now() - posted).toFixed(0)} ms after the post`);
      n.say('tour', me, `the value is ${sem.value}: the child exited holding it, and nothing gave it back`);
      n.explain('A named semaphore has no owner: the kernel does not know who took it, so a process that exits, or is\n' +
        'killed, between its wait and its post leaves it taken for good. Any process may post it.');
      const post = await runCli(['sem', 'post', name], (pid) => n.say('child', pid, `$ ipckit sem post ${name}`));
      n.say('child', post.pid, `exited ${post.code}; the value is ${sem.value} again`);
    }
    NamedSemaphore.unlink(name);
    n.say('tour', me, `unlinked ${name}`);

    n.explain('\nSystem V: SEM_UNDO. The kernel records an operation marked undo and reverses it when its process\n' +
      'exits, however it exits, even by SIGKILL, which no process can catch. A set of two semaphores, two\n' +
      'locks with the value 1; a node program takes each and stays: the first with undo, the second without.');
    const made = set = atRandomTourKey((key) => SemaphoreSet.create(key, { count: 2, value: 1, mode: 0o600 }));
    const key = formatKey(made.key);
    n.say('tour', me, `created System V semaphore set ${key} (id ${made.id}): 2 semaphores, both 1`);
    const holders: ChildProcess[] = [];
    for (const [index, undo] of [[0, true], [1, false]] as const) {
      const holder = nodeChild(HOLD_SEMAPHORE, [String(made.key), String(index), undo ? 'undo' : 'keep']);
      children.add(holder);
      holders.push(holder);
      n.say('child', holder.pid!, `$ node -e '…SemaphoreSet.open(${key}).opSync({ index: ${index}, delta: -1${undo ? ', undo: true' : ''} })…'   (and it stays)`);
      await printed(holder, 'taken');
      n.say('child', holder.pid!, `took semaphore ${index} ${undo ? 'with undo' : 'without undo'}, and holds it`);
    }
    const stat = async (): Promise<SetStat> => {
      const r = await runCli(['sem', 'stat', key, '--json'], (pid) => n.say('child', pid, `$ ipckit sem stat ${key} --json`));
      const s = JSON.parse(r.stdout) as SetStat;
      const pids = s.lastPids.map((pid) => `pid ${pid}${existsSync(`/proc/${pid}`) ? '' : ' (dead)'}`);
      n.say('child', r.pid, `values ${s.values.join(', ')}; the last to change them: ${pids.join(', ')}`);
      return s;
    };
    await stat();
    const waiting = later(made.op({ index: 0, delta: -1, undo: true }, { timeout: 10_000 }));
    await until('the tour\'s wait slept', () => made.stat().waitingForIncrease[0]! > 0, waiting);
    n.say('tour', me, 'waits to take semaphore 0, with undo (the event loop stays free); the kernel counts 1 process waiting');
    const deaths = holders.map((holder) => later(exited(holder)));
    for (const holder of holders) holder.kill('SIGKILL');
    const killed = performance.now();
    n.say('tour', me, `kill(${holders[0]!.pid}, SIGKILL) and kill(${holders[1]!.pid}, SIGKILL)`);
    await waiting;
    n.say('tour', me, `took semaphore 0, ${(performance.now() - killed).toFixed(0)} ms after the kills: the kernel gave it back when pid ${holders[0]!.pid} died`);
    await Promise.all(deaths);
    try {
      await made.op({ index: 1, delta: -1 }, { timeout: 500 });
      n.say('tour', me, 'took semaphore 1 (its holder gave it back before it died)');
    } catch (err) {
      if (!(err instanceof IpcError) || err.code !== 'ERR_IPC_TIMEOUT') throw err;
      n.say('tour', me, `a wait of 500 ms for semaphore 1 failed with ${err.code}: pid ${holders[1]!.pid} died holding it, and nothing gives it back`);
    }
    made.opSync({ index: 0, delta: 1, undo: true });
    n.say('tour', me, 'gave semaphore 0 back (a post with undo, which cancels the record its take made)');
    await stat();
    const post = await runCli(['sem', 'post', key, '--index', '1'], (pid) => n.say('child', pid, `$ ipckit sem post ${key} --index 1`));
    n.say('child', post.pid, `exited ${post.code}: semaphore 1 is ${made.getValue(1)} again, given back by hand`);
    n.explain('The third answer is the Mutex inside a shared segment (the shared-memory chapter). Undo gives the unit\n' +
      'back silently, whatever state the dead holder left the shared data in; the Mutex passes to the next\n' +
      'locker and tells it (ERR_IPC_OWNER_DIED), so that it can repair the data before it goes on.');
  } finally {
    const removedSet = set === undefined ? undefined : formatKey(set.key);
    removeAll();
    restoreSignals();
    if (removedSet !== undefined) n.say('tour', me, `removed ${removedSet}`);
  }
}

const CHAPTERS: Record<string, (n: Narrator) => Promise<void>> = {
  mq: messageQueueChapter,
  shm: sharedMemoryChapter,
  sem: semaphoreChapter,
  pipe: pipeChapter,
  signal: signalChapter,
  socket: socketChapter,
  server: serverChapter,
  channel: channelChapter,
};

export const tourCommand: Leaf = {
  name: 'tour',
  summary: 'run every mechanism between real processes and narrate it',
  args: '[chapter...]',
  minArgs: 0,
  maxArgs: Object.keys(CHAPTERS).length,
  details: `Chapters: ${Object.keys(CHAPTERS).join(', ')} (all by default). --json prints one JSON object per event.`,
  options: {},
  async run(ctx) {
    const chosen = ctx.positionals.length > 0 ? ctx.positionals : Object.keys(CHAPTERS);
    for (const chapter of chosen) {
      if (!(chapter in CHAPTERS)) throw usageError(`Unknown tour chapter "${chapter}"; chapters: ${Object.keys(CHAPTERS).join(', ')}.`);
    }
    const narrator = new Narrator(ctx.json);
    for (const chapter of chosen) await CHAPTERS[chapter]!(narrator);
    if (!ctx.json && !stdoutClosed()) process.stdout.write('\nTour complete: every object it created has been removed.\n');
  },
};
