/**
 * Entry point of a test peer process: `node peer-main.js <scenario> <json>`.
 * Reports through JSON lines on stdout.
 */
import { spawn as spawnNode } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  Fifo, IpcError, Mutex, NamedSemaphore, PipeReadEnd, PipeWriteEnd, PosixMessageQueue, PosixSharedMemory, Semaphore, type SharedMemory,
  SemaphoreSet, SysvMessageQueue, SysvSharedMemory, ignore, listenForSignals, onSignal, restoreDefault, sendSignal, shutdownOn,
  signalNumber, spawn,
} from '../../src/index.js';
import { native } from '../../src/native.js';
import { engineScenarios } from './engine-peer.js';

type Mode = 'sync' | 'async' | 'iterate';

interface QueueParams {
  family: 'posix' | 'sysv';
  address: string | number;
  /** POSIX: wrap (fromFd) a descriptor of the queue opened with O_NONBLOCK, as another program might hand one over. */
  nonBlockingFd?: boolean;
}

function emit(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function open(p: QueueParams): PosixMessageQueue | SysvMessageQueue {
  if (p.nonBlockingFd === true) {
    const C = native.constants;
    const fd = native.mqOpen(p.address as string, C.O_RDWR | C.O_NONBLOCK | C.O_CLOEXEC, 0, 0, 0);
    if (fd < 0) throw new Error(`mq_open ${String(p.address)}: ${fd}`);
    return PosixMessageQueue.fromFd(fd);
  }
  return p.family === 'posix' ? PosixMessageQueue.open(p.address as string) : SysvMessageQueue.open(p.address);
}

/** Blocks forever in the given way, so the parent can kill the process there. */
async function hang(q: PosixMessageQueue | SysvMessageQueue, how: 'sync' | 'async'): Promise<never> {
  emit({ event: 'hanging' });
  if (how === 'sync') {
    if (q instanceof PosixMessageQueue) q.receiveSync();
    else q.receiveSync({ type: 999_999 });
  } else if (q instanceof PosixMessageQueue) {
    await q.receive();
  } else {
    await q.receive({ type: 999_999 });
  }
  throw new Error('hang() returned');
}

function digest(seq: number, payload: Buffer): string {
  return createHash('sha256').update(String(seq)).update(payload).digest('hex').slice(0, 16);
}

function openSegment(p: QueueParams & { readOnly?: boolean }): SharedMemory {
  return p.family === 'posix'
    ? PosixSharedMemory.open(p.address as string, { readOnly: p.readOnly === true })
    : SysvSharedMemory.open(p.address, { readOnly: p.readOnly === true });
}

const PEER_MAIN = fileURLToPath(import.meta.url);

/** A kernel semaphore: a named one (`/name`) or semaphore 0 of a set (a key). */
interface KernelSemParams {
  address: string | number;
  /** Take with SEM_UNDO (sets only). */
  undo?: boolean;
}

/** take/give on a kernel semaphore, sync or async. */
function kernelSemaphore(p: KernelSemParams): { take(mode: 'sync' | 'async'): void | Promise<void>; give(): void; close(): void } {
  if (typeof p.address === 'string') {
    const sem = NamedSemaphore.open(p.address);
    return { take: (mode) => (mode === 'sync' ? sem.waitSync() : sem.wait()), give: () => sem.post(), close: () => sem.close() };
  }
  const set = SemaphoreSet.open(p.address);
  const undo = p.undo === true;
  return {
    take: (mode) => (mode === 'sync' ? set.opSync({ index: 0, delta: -1, undo }) : set.op({ index: 0, delta: -1, undo })),
    give: () => set.opSync({ index: 0, delta: 1, undo }),
    close: () => set.close(),
  };
}


/** This process's process group, from /proc. */
function processGroup(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

const hangForever = (): Promise<never> => new Promise(() => setInterval(() => undefined, 1 << 30));

const scenarios: Record<string, (params: any) => Promise<void>> = {
  /** Writes `count` records of `size` bytes, every byte `id`, to inherited fd `fd`, each with one write. */
  async 'pipe-records'(p: { fd: number; id: number; count: number; size: number }) {
    const end = PipeWriteEnd.fromFd(p.fd);
    const record = Buffer.alloc(p.size, p.id);
    for (let i = 0; i < p.count; i++) end.writeSync(record);
    end.close();
    emit({ event: 'done', id: p.id });
  },

  /** Reads `size`-byte records from inherited fd `fd` until the end, reporting the first byte of each. */
  async 'pipe-read-records'(p: { fd: number; size: number }) {
    const end = PipeReadEnd.fromFd(p.fd);
    emit({ event: 'ready' });
    const ids: number[] = [];
    for (let chunk = await end.read({ maxBytes: p.size }); chunk !== null; chunk = await end.read({ maxBytes: p.size })) {
      if (chunk.length !== p.size || chunk.some((b) => b !== chunk![0])) throw new Error(`torn record of ${chunk.length} bytes`);
      ids.push(chunk[0]!);
    }
    end.close();
    emit({ event: 'done', ids });
  },

  /** Opens a FIFO for reading (async or sync), prints everything until the end. */
  async 'fifo-read'(p: { path: string; mode: 'sync' | 'async'; timeout?: number }) {
    emit({ event: 'opening', pid: process.pid });
    const end = p.mode === 'sync' ? Fifo.openReadSync(p.path, { timeout: p.timeout }) : await Fifo.openRead(p.path, { timeout: p.timeout });
    emit({ event: 'opened' });
    const chunks: Buffer[] = [];
    for await (const chunk of end) chunks.push(chunk);
    end.close();
    emit({ event: 'done', data: Buffer.concat(chunks).toString() });
  },

  /** Opens a FIFO for writing (async or sync) and writes `text`. */
  async 'fifo-write'(p: { path: string; mode: 'sync' | 'async'; text: string; timeout?: number }) {
    emit({ event: 'opening', pid: process.pid });
    const end = p.mode === 'sync' ? Fifo.openWriteSync(p.path, { timeout: p.timeout }) : await Fifo.openWrite(p.path, { timeout: p.timeout });
    emit({ event: 'opened' });
    await end.write(Buffer.from(p.text));
    end.close();
    emit({ event: 'done' });
  },

  /** Writes text into a segment, then waits until the parent writes `reply` at `replyOffset`, and reports it. */
  async 'shm-exchange'(p: QueueParams & { offset: number; text: string; replyOffset: number; replyLength: number }) {
    const segment = openSegment(p);
    segment.write(Buffer.from(p.text), p.offset);
    const words = new Int32Array(segment.buffer);
    emit({ event: 'written', size: segment.size });
    // The parent raises word 0 once its reply is in place.
    while (Atomics.load(words, 0) === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    emit({ event: 'reply', text: segment.read(p.replyOffset, p.replyLength).toString() });
    segment.close();
  },

  /** Attaches (and stays attached) so the parent can watch the attach count; closes on SIGTERM. */
  async 'shm-attach'(p: QueueParams & { readOnly?: boolean }) {
    const segment = openSegment(p);
    emit({ event: 'attached', pid: process.pid, readOnly: segment.readOnly });
    process.on('SIGTERM', () => {
      segment.close();
      process.exit(0);
    });
    await hangForever();
  },

  /** Takes the mutex at `offset` and holds it until killed (or, with `releaseAfter`, for that many ms). */
  async 'mutex-hold'(p: QueueParams & { offset: number; releaseAfter?: number; releaseOn?: 'SIGUSR2'; spin?: number; stampAt?: number }) {
    const segment = openSegment(p);
    const mutex = Mutex.open(segment, p.offset, p.spin === undefined ? undefined : { spin: p.spin });
    if (p.stampAt !== undefined) {
      // The lock path runs once on a lock of its own first, so that the call the stamp announces spends its time
      // spinning on the word, not compiling: a test that releases the lock once the peer has run a while after the
      // stamp must find it looking at the word by then.
      const own = PosixSharedMemory.create(`/ipckit-test-warm-${process.pid}`, { size: 4096 });
      own.unlink();
      const warm = Mutex.create(own, 0, p.spin === undefined ? undefined : { spin: p.spin });
      warm.lockSync();
      warm.unlock();
      own.close();
      emit({ event: 'ready' });
      new Float64Array(segment.buffer, p.stampAt, 1)[0] = Date.now();
    }
    // Listening before saying it holds: a signal sent as soon as the line is read finds the listener.
    const released = p.releaseOn === undefined ? undefined : new Promise((resolve) => process.once(p.releaseOn!, resolve));
    mutex.lockSync();
    emit({ event: 'holding', pid: process.pid });
    if (released !== undefined) {
      const alive = setInterval(() => undefined, 1 << 30); // A signal listener does not keep the process alive.
      await released;
      clearInterval(alive);
    } else if (p.releaseAfter === undefined) await hangForever();
    else await new Promise((resolve) => setTimeout(resolve, p.releaseAfter));
    mutex.unlock();
    emit({ event: 'released' });
    segment.close();
  },

  /**
   * Sleeps on word `index` of the lock at `offset` with a bare FUTEX_WAIT (no
   * timeout) for as long as it holds `expected`, and reports being woken:
   * a sleeper that only a wake-up made for it ends.
   */
  async 'futex-sleep'(p: QueueParams & { offset: number; index: number; expected: number }) {
    const segment = openSegment(p);
    const words = new Int32Array(segment.buffer, p.offset, 4);
    emit({ event: 'ready' });
    const r = native.futexWait(words, p.index, p.expected, -1, 0);
    emit({ event: 'woken', r, value: Atomics.load(words, p.index) });
    segment.close();
  },

  /** Locks the mutex (sync or async) and reports how it went, then unlocks if it holds it. */
  async 'mutex-lock'(p: QueueParams & { offset: number; mode: 'sync' | 'async'; timeout?: number; acknowledge?: boolean; spin?: number; stampAt?: number }) {
    const segment = openSegment(p);
    const mutex = Mutex.open(segment, p.offset, p.spin === undefined ? undefined : { spin: p.spin });
    emit({ event: 'ready' });
    // The wall-clock time the lock call starts, for a test watching the words meanwhile.
    if (p.stampAt !== undefined) new Float64Array(segment.buffer, p.stampAt, 1)[0] = Date.now();
    try {
      if (p.mode === 'sync') mutex.lockSync({ timeout: p.timeout });
      else await mutex.lock({ timeout: p.timeout });
      emit({ event: 'acquired' });
    } catch (err) {
      emit({ event: 'failed', code: (err as IpcError).code });
      if ((err as IpcError).code === 'ERR_IPC_OWNER_DIED' && p.acknowledge) mutex.markConsistent();
    }
    if (mutex.held) mutex.unlock();
    segment.close();
  },

  /** Waits on the semaphore at `offset` `count` times, reporting each. */
  async 'sem-wait'(p: QueueParams & { offset: number; count: number; mode: 'sync' | 'async'; spin?: number; stampAt?: number }) {
    const segment = openSegment(p);
    const sem = Semaphore.open(segment, p.offset, p.spin === undefined ? undefined : { spin: p.spin });
    emit({ event: 'ready' });
    if (p.stampAt !== undefined) new Float64Array(segment.buffer, p.stampAt, 1)[0] = Date.now();
    for (let i = 0; i < p.count; i++) {
      if (p.mode === 'sync') sem.waitSync({ timeout: 10_000 });
      else await sem.wait({ timeout: 10_000 });
      emit({ event: 'took', n: i + 1 });
    }
    segment.close();
  },

  /** Takes one unit of a kernel semaphore and holds it until killed. */
  async 'ksem-hold'(p: KernelSemParams) {
    const sem = kernelSemaphore(p);
    await sem.take('sync');
    emit({ event: 'holding', pid: process.pid });
    await hangForever();
  },

  /**
   * Mutual exclusion under a kernel semaphore: `iterations` times, takes it,
   * increments the counter at word 0 of segment `segment` by a read, a
   * pause and a write (two holders at once would lose increments), and
   * gives it back. Words 1 and 2 count the holders inside and the most
   * ever seen inside at once.
   */
  async 'ksem-count'(p: KernelSemParams & { segment: string; iterations: number; mode: 'sync' | 'async' | 'mixed' }) {
    const sem = kernelSemaphore(p);
    const shm = PosixSharedMemory.open(p.segment);
    const words = new Int32Array(shm.buffer, 0, 4);
    emit({ event: 'ready' });
    for (let i = 0; i < p.iterations; i++) {
      const mode = p.mode === 'mixed' ? (i % 2 === 0 ? 'sync' : 'async') : p.mode;
      await sem.take(mode);
      const inside = Atomics.add(words, 1, 1) + 1;
      for (let seen = Atomics.load(words, 2); inside > seen; seen = Atomics.load(words, 2)) Atomics.compareExchange(words, 2, seen, inside);
      const value = Atomics.load(words, 0);
      // Give another holder (if the semaphore let one in) time to read the same value.
      if (i % 8 === 0) await new Promise((resolve) => setImmediate(resolve));
      Atomics.store(words, 0, value + 1);
      Atomics.sub(words, 1, 1);
      sem.give();
    }
    sem.close();
    shm.close();
    emit({ event: 'done' });
  },

  /** openOrCreate of a kernel semaphore with value 1 at a start signal, then one try: who created it, who got the unit. */
  async 'ksem-open-or-create'(p: { address: string | number; startAt: number }) {
    while (Date.now() < p.startAt) { /* Start together with the others. */ }
    if (typeof p.address === 'string') {
      const sem = NamedSemaphore.openOrCreate(p.address, { value: 1 });
      emit({ created: sem.created, took: sem.tryWait() });
      sem.close();
    } else {
      const set = SemaphoreSet.openOrCreate(p.address, { count: 1, value: 1 });
      emit({ created: set.created, took: set.tryOp({ index: 0, delta: -1 }) });
      set.close();
    }
  },

  /** Receives `count` messages and prints each; optionally hangs afterwards. */
  async receive(p: QueueParams & { count: number; mode: Mode; type?: number; timeout?: number; then?: 'sync' | 'async'; hangOn?: string | number }) {
    const q = open(p);
    emit({ event: 'ready', pid: process.pid });
    let received = 0;
    const print = (m: { data: Buffer; priority?: number; type?: number }): void => {
      emit({ data: m.data.toString('utf8'), ...(m.priority === undefined ? {} : { priority: m.priority }), ...(m.type === undefined ? {} : { type: m.type }) });
    };
    if (p.mode === 'iterate') {
      const iterable = q instanceof PosixMessageQueue ? q.messages() : q.messages({ ...(p.type === undefined ? {} : { type: p.type }) });
      for await (const m of iterable) {
        print(m);
        if (++received === p.count) break;
      }
    }
    // No options at all when none are given: the plain call, as most programs make it, is the one tested.
    const options = p.type === undefined && p.timeout === undefined
      ? undefined
      : { ...(p.type === undefined ? {} : { type: p.type }), ...(p.timeout === undefined ? {} : { timeout: p.timeout }) };
    for (; received < p.count; received++) {
      if (q instanceof PosixMessageQueue) print(p.mode === 'sync' ? q.receiveSync(options) : await q.receive(options));
      else print(p.mode === 'sync' ? q.receiveSync(options) : await q.receive(options));
    }
    if (p.then !== undefined) await hang(p.hangOn === undefined ? q : open({ family: p.family, address: p.hangOn }), p.then);
    q.close();
  },

  /** Sends the given messages. */
  async send(p: QueueParams & { mode: Mode; messages: { data: string; priority?: number; type?: number }[] }) {
    const q = open(p);
    emit({ event: 'ready', pid: process.pid });
    for (const m of p.messages) {
      const data = Buffer.from(m.data);
      if (q instanceof PosixMessageQueue) {
        if (p.mode === 'sync') q.sendSync(data, { priority: m.priority ?? 0 });
        else await q.send(data, { priority: m.priority ?? 0 });
      } else if (p.mode === 'sync') {
        q.sendSync(m.type ?? 1, data);
      } else {
        await q.send(m.type ?? 1, data);
      }
    }
    emit({ event: 'sent', count: p.messages.length });
    q.close();
  },

  /** Sends `count` numbered messages of `size` bytes, each with a checksum. */
  async 'soak-send'(p: QueueParams & { count: number; size: number; mode: Mode }) {
    const q = open(p);
    for (let seq = 0; seq < p.count; seq++) {
      const payload = Buffer.alloc(p.size, seq % 251);
      payload.writeUInt32LE(seq, 0);
      const body = Buffer.concat([Buffer.from(digest(seq, payload)), payload]);
      if (q instanceof PosixMessageQueue) {
        if (p.mode === 'sync') q.sendSync(body);
        else await q.send(body);
      } else if (p.mode === 'sync') {
        q.sendSync(1, body);
      } else {
        await q.send(1, body);
      }
    }
    emit({ event: 'sent', count: p.count });
    q.close();
  },

  /** Receives `count` soak messages and checks order and checksums. */
  async 'soak-receive'(p: QueueParams & { count: number; mode: Mode }) {
    const q = open(p);
    emit({ event: 'ready' });
    let bad = 0;
    let firstBad: string | undefined;
    for (let expected = 0; expected < p.count; expected++) {
      const m = q instanceof PosixMessageQueue
        ? (p.mode === 'sync' ? q.receiveSync({ timeout: 20_000 }) : await q.receive({ timeout: 20_000 }))
        : (p.mode === 'sync' ? q.receiveSync({ timeout: 20_000 }) : await q.receive({ timeout: 20_000 }));
      const sum = m.data.subarray(0, 16).toString();
      const payload = m.data.subarray(16);
      const seq = payload.readUInt32LE(0);
      if (seq !== expected || sum !== digest(seq, payload)) {
        bad++;
        firstBad ??= `expected #${expected}, got #${seq} (checksum ${sum === digest(seq, payload) ? 'ok' : 'bad'})`;
      }
    }
    emit({ event: 'done', received: p.count, bad, firstBad: firstBad ?? null, leftover: q instanceof PosixMessageQueue ? q.attributes().messages : q.stat().messages });
    q.close();
  },

  /** Starts a receive that cannot complete, then closes the handle; the process must then exit by itself. */
  async 'close-pending'(p: QueueParams) {
    const q = open(p);
    const pending = q instanceof PosixMessageQueue ? q.receive() : q.receive({ type: 424242 });
    setTimeout(() => q.close(), 50);
    try {
      await pending;
      emit({ event: 'resolved' });
    } catch (err) {
      emit({ event: 'rejected', code: (err as IpcError).code });
    }
  },

  /**
   * Handles `signal`, reporting each delivery; after `count` of them releases
   * it with `then` (reporting the disposition left) and waits to be signalled again.
   */
  async 'signal-handler'(p: { signal: string; count: number; then: 'dispose' | 'restoreDefault' | 'ignore' }) {
    let seen = 0;
    const dispose = onSignal(p.signal, (info) => {
      emit({ event: 'signal', ...info });
      if (++seen !== p.count) return;
      if (p.then === 'dispose') dispose();
      else if (p.then === 'restoreDefault') restoreDefault(p.signal);
      else ignore(p.signal);
      emit({ event: 'released', disposition: native.signalDisposition(signalNumber(p.signal)) });
    });
    emit({ event: 'ready' });
    await hangForever();
  },

  /**
   * Listens for `signals` until `count` deliveries of `until` arrived, then
   * for `settleMs` more; reports every delivery's signal and value in order.
   * With `echo`, meanwhile copies what arrives on fd 3 to fd 4 until EOF.
   */
  async 'signal-collect'(p: { signals: string[]; until: string; count: number; settleMs: number; echo?: boolean }) {
    const listener = listenForSignals(p.signals);
    const echoed = p.echo ? (async () => {
      const input = PipeReadEnd.fromFd(3);
      const output = PipeWriteEnd.fromFd(4);
      let bytes = 0;
      for (let chunk = await input.read(); chunk !== null; chunk = await input.read()) {
        await output.write(chunk);
        bytes += chunk.length;
      }
      output.close();
      input.close();
      return bytes;
    })() : Promise.resolve(0);
    emit({ event: 'ready' });
    const got: { signal: string; value: number | null; pid: number | null }[] = [];
    const wanted = signalNumber(p.until);
    let count = 0;
    while (count < p.count) {
      const info = await listener.receive({ timeout: 20_000 });
      got.push({ signal: info.signal, value: info.value, pid: info.pid });
      if (info.number === wanted) count++;
    }
    await new Promise((resolve) => setTimeout(resolve, p.settleMs));
    for (let info = listener.tryReceive(); info !== undefined; info = listener.tryReceive()) {
      got.push({ signal: info.signal, value: info.value, pid: info.pid });
    }
    listener.close();
    const counts: Record<string, number> = {};
    for (const g of got) counts[g.signal] = (counts[g.signal] ?? 0) + 1;
    emit({
      event: 'done', counts, echoedBytes: await echoed,
      values: got.filter((g) => g.signal === listener.signals[p.signals.indexOf(p.until)]).map((g) => g.value),
      senders: [...new Set(got.map((g) => g.pid))],
    });
  },

  /** A process-group leader (with `members` children in its group): each reports the SIGUSR2 it gets. */
  async 'signal-group'(p: { members: number }) {
    const listener = listenForSignals('SIGUSR2');
    for (let i = 0; i < p.members; i++) {
      spawn(process.execPath, [PEER_MAIN, 'signal-group', JSON.stringify({ members: 0 })], { stdio: ['ignore', 'inherit', 'inherit'] });
    }
    emit({ event: 'ready', pid: process.pid, group: processGroup() });
    const info = await listener.receive({ timeout: 20_000 });
    listener.close();
    emit({ event: 'signal', pid: process.pid, from: info.pid, signal: info.signal });
  },

  /**
   * Starts `children` through ipckit's spawn, then shuts down gracefully on
   * SIGTERM or SIGINT. Stubborn children ignore SIGTERM.
   */
  async 'signal-shutdown'(p: { children: number; stubborn: boolean; cleanupMs: number; timeout: number; grandchild?: boolean }) {
    const pids: number[] = [];
    for (let i = 0; i < p.children; i++) {
      const child = spawn(process.execPath, [PEER_MAIN, 'signal-worker', JSON.stringify({ stubborn: p.stubborn, grandchild: p.grandchild })],
        { stdio: ['ignore', 'inherit', 'inherit'] });
      pids.push(child.pid!);
    }
    shutdownOn(['SIGTERM', 'SIGINT'], {
      timeout: p.timeout,
      cleanup: async (info) => {
        emit({ event: 'cleanup', signal: info.signal, from: info.pid });
        await new Promise((resolve) => setTimeout(resolve, p.cleanupMs));
        emit({ event: 'cleaned' });
      },
    });
    emit({ event: 'ready', role: 'parent', children: pids });
    await hangForever();
  },

  /**
   * A child of signal-shutdown: dies by SIGTERM, or (stubborn) only reports
   * it. With `grandchild`, it first starts one more like itself with Node's
   * own spawn, which ipckit does not know of.
   */
  async 'signal-worker'(p: { stubborn: boolean; grandchild?: boolean; role?: string }) {
    if (p.stubborn) onSignal('SIGTERM', () => emit({ event: 'ignored', pid: process.pid }));
    if (p.grandchild) {
      spawnNode(process.execPath, [PEER_MAIN, 'signal-worker', JSON.stringify({ stubborn: p.stubborn, role: 'grandchild' })],
        { stdio: ['ignore', 'inherit', 'inherit'] });
    }
    emit({ event: 'ready', role: p.role ?? 'worker', pid: process.pid });
    await hangForever();
  },

  /** Two handlers for SIGUSR2; the first throws. */
  async 'signal-throw'() {
    onSignal('SIGUSR2', () => {
      throw new Error('boom from a signal handler');
    });
    onSignal('SIGUSR2', () => emit({ event: 'second handler ran' }));
    emit({ event: 'ready' });
    await hangForever();
  },

  /** Sends `signal` to `target` and reports the outcome. */
  async 'signal-send'(p: { target: number; signal: string }) {
    try {
      sendSignal(p.target, p.signal);
      emit({ sent: true });
    } catch (err) {
      emit({ sent: false, code: (err as IpcError).code, message: (err as Error).message });
    }
  },

  /** Tries to create a POSIX queue and reports the error code. */
  async 'create-posix'(p: { name: string; maxMessages: number; maxMessageSize: number }) {
    try {
      PosixMessageQueue.create(p.name, { maxMessages: p.maxMessages, maxMessageSize: p.maxMessageSize }).close();
      PosixMessageQueue.unlink(p.name);
      emit({ created: true });
    } catch (err) {
      const e = err as IpcError;
      emit({ created: false, code: e.code, errno: e.errno ?? null, message: e.message });
    }
  },
};

const [scenario, json] = process.argv.slice(2);
const run = scenarios[scenario!] ?? engineScenarios[scenario!];
if (run === undefined) {
  process.stderr.write(`unknown scenario ${scenario}\n`);
  process.exit(2);
}
try {
  await run(JSON.parse(json ?? '{}'));
  // A child started with fork() would otherwise stay alive for its IPC channel.
  if (process.connected) process.disconnect();
} catch (err) {
  emit({ event: 'error', code: (err as IpcError).code ?? null, message: (err as Error).message });
  process.exitCode = 1;
}
