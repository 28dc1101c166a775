/**
 * `ipckit tour`: every mechanism, between real processes, narrated. Each
 * chapter creates uniquely named objects and removes them at the end; the
 * second process of each exchange is the ipckit CLI itself, started as a
 * child process.
 * @internal
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { PosixMessageQueue, SysvMessageQueue } from '../../message-queue.js';
import { PosixSharedMemory, SysvSharedMemory } from '../../shared-memory.js';
import { Mutex } from '../../lock.js';
import { Fifo } from '../../fifo.js';
import { PIPE_BUF, type PipeReadEnd, type PipeWriteEnd, pipe, spawn as spawnWithFds } from '../../pipe.js';
import { type SignalInfo, sendSignal } from '../../signal.js';
import { RACE_LAYOUT, createRaceSegment, race, startWorker } from '../race.js';
import { IpcError } from '../../errors.js';
import { formatKey } from '../../internal/address.js';
import { type Leaf, stdoutClosed, usageError } from '../program.js';

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
    process.stdout.write(`${JSON.stringify({ chapter: this.chapter, ms, ...value })}\n`);
  }
}

interface ChildResult {
  pid: number;
  code: number | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

/**
 * Runs `ipckit <args>` as a child process and collects what it printed;
 * rejects if it does not exit with `expectedCode`. `onOutput` sees the
 * output so far each time the child prints something.
 */
function runCli(args: string[], onSpawn?: (pid: number) => void, expectedCode = 0,
  onOutput?: (output: { pid: number; stdout: string; stderr: string }) => void): Promise<ChildResult> {
  return new Promise<ChildResult>((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
 * Starts `ipckit <args>`, and resolves `ready` with its pid once its output
 * contains `marker` (the promise `done` settles when it exits).
 */
function startCli(args: string[], marker: string, onSpawn: (pid: number) => void, expectedCode = 0): { ready: Promise<number>; done: Promise<ChildResult> } {
  let resolveReady!: (pid: number) => void;
  const ready = new Promise<number>((resolve) => { resolveReady = resolve; });
  const done = later(runCli(args, onSpawn, expectedCode, ({ pid, stdout, stderr }) => {
    if (stdout.includes(marker) || stderr.includes(marker)) resolveReady(pid);
  }));
  return { ready: Promise.race([ready, done.then(() => { throw new IpcError('ERR_IPC_PEER_FAILED', `"ipckit ${args.join(' ')}" exited before it was ready.`); })]), done };
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
  const waiter = await first.ready;
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
  const stopped = await second.ready;
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
  const worker = await demo.ready;
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

const CHAPTERS: Record<string, (n: Narrator) => Promise<void>> = {
  mq: messageQueueChapter,
  shm: sharedMemoryChapter,
  pipe: pipeChapter,
  signal: signalChapter,
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
