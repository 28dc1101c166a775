/**
 * Signals: handlers that replace the default action and give it back, the
 * sender's identity, sigqueue values, real-time queueing against standard
 * merging, process groups, waiting, graceful shutdown, and Ctrl+C from a
 * real terminal.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn as spawnChild, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, read as fsRead, readSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { setImmediate as yieldLoop, setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  IpcError, PosixMessageQueue, SIGNAL_LISTENER_CAPACITY, ignore, listSignals, listenForSignals, onSignal, pipe, restoreDefault, sendSignal, shutdownOn,
  signalName, signalNumber, waitForSignal, waitForSignalSync, type SignalInfo,
} from '../src/index.js';
import { native } from '../src/native.js';
import { openFds, uniqueName } from './helpers/objects.js';
import { Peer, killAllPeers, runningChildren, trackChild, asUser, canRunAs } from './helpers/peer.js';
import { blockedIn, onDescriptor, processState } from './helpers/proc.js';
import { rejectsWith, stillPending, throwsWith, waitUntil } from './helpers/assert.js';

/** SIGUSR2's disposition before any test: Node 24's test runner gives its children a handler of its own. */
const USR2_BEFORE = native.signalDisposition(12);
const S = native.signalConstants;
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const PEER_MAIN = fileURLToPath(new URL('./helpers/peer-main.js', import.meta.url));
const INDEX = new URL('../src/index.js', import.meta.url).href;
const PROC_HELPERS = new URL('./helpers/proc.js', import.meta.url).href;
const PTY_RUN = fileURLToPath(new URL('../../test/helpers/pty-run.py', import.meta.url));
const ME = { pid: process.pid, uid: process.getuid!() };

/** Descriptors of this process that are pipes or eventfds. */
function watchedFds(): string[] {
  return openFds().filter((fd) => {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      return target.startsWith('pipe:') || target === 'anon_inode:[eventfd]';
    } catch {
      return false;
    }
  });
}

let baseline: number;
before(() => {
  // The signal eventfd is created once per process; count it in the baseline.
  listenForSignals('SIGRTMIN+10').close();
  baseline = watchedFds().length;
});
after(async () => {
  await killAllPeers();
});

/** A process that exited, and whose pid is therefore free. */
async function deadPid(): Promise<number> {
  const child = trackChild(spawnChild('true'));
  await new Promise((resolve) => child.once('close', resolve));
  return child.pid!;
}

/** Runs `ipckit <args>` to completion. */
function ipckit(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string; pid: number }> {
  const child = trackChild(spawnChild(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr, pid: child.pid! })));
}

/** Runs `argv` in a real pseudo-terminal, typing each step's keys once its text has appeared. */
function inTerminal(argv: string[], steps: { waitFor: string; send: string }[]): { output: string; timedOut: boolean; stepsLeft: number; exitCode?: number; signal?: number } {
  const r = spawnSync('python3', [PTY_RUN, JSON.stringify({ argv, steps, timeoutMs: 20_000 })], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** This machine's user nobody may run the compiled tests: the cross-user cases can run. */
const canRunAsNobody = (): boolean => canRunAs(65534);
const AS_NOBODY = asUser(65534);

describe('signal names', () => {
  it('resolves names, short names, real-time offsets and numbers, and names them back', () => {
    assert.equal(S.SIGRTMIN, 34);
    assert.equal(S.SIGRTMAX, 64);
    assert.equal(signalNumber('SIGINT'), 2);
    assert.equal(signalNumber('usr2'), 12);
    assert.equal(signalNumber('TERM'), 15);
    assert.equal(signalNumber(9), 9);
    assert.equal(signalNumber('10'), 10);
    assert.equal(signalNumber('SIGRTMIN'), 34);
    assert.equal(signalNumber('SIGRTMIN+3'), 37);
    assert.equal(signalNumber('rtmax-2'), 62);
    assert.equal(signalName(2), 'SIGINT');
    assert.equal(signalName(34), 'SIGRTMIN');
    assert.equal(signalName(35), 'SIGRTMIN+1');
    // Every name signalName gives resolves back, SIG32 and SIG33 (glibc's own, unnamed) included.
    for (let n = 1; n <= S.SIGRTMAX; n++) assert.equal(signalNumber(signalName(n)), n, signalName(n));
    assert.deepEqual([signalName(32), signalNumber('SIG32'), signalNumber('sig33')], ['SIG32', 32, 33]);
    assert.equal(signalName(49), 'SIGRTMIN+15');
    assert.equal(signalName(50), 'SIGRTMAX-14');
    assert.equal(signalName(64), 'SIGRTMAX');
    for (const bad of ['SIGFOO', '', 'SIGRTMIN+31', 'SIGRTMAX+1', 'SIGRTMIN-1', 'SIGRTMAX-31', 0, 65, -2, 1.5, NaN, null, {}, '0']) {
      throwsWith(() => signalNumber(bad), 'ERR_IPC_INVALID_ARGUMENT', /a signal name such as "SIGUSR2" or "SIGRTMIN\+1", or a number from 1 to 64/);
    }
    for (const bad of [0, 65, -1, 40.5, NaN, Infinity]) {
      throwsWith(() => signalName(bad), 'ERR_IPC_INVALID_ARGUMENT', /a signal number from 1 to 64/);
    }
  });

  it('lists every signal with its default action and whether it can be handled', () => {
    const rows = listSignals();
    assert.equal(rows.length, 62);
    assert.deepEqual(rows.map((r) => r.number), [...Array.from({ length: 31 }, (_, i) => i + 1), ...Array.from({ length: 31 }, (_, i) => i + 34)]);
    const byName = new Map(rows.map((r) => [r.name, r]));
    assert.deepEqual(byName.get('SIGKILL'), {
      number: 9, name: 'SIGKILL', defaultAction: 'terminate', catchable: false,
      reason: 'the kernel never lets a process catch, block or ignore SIGKILL. It can only be sent',
    });
    assert.deepEqual(byName.get('SIGCHLD'), { number: 17, name: 'SIGCHLD', defaultAction: 'ignore', catchable: true, reason: null });
    assert.deepEqual(byName.get('SIGQUIT'), { number: 3, name: 'SIGQUIT', defaultAction: 'core', catchable: true, reason: null });
    assert.deepEqual(byName.get('SIGTSTP'), { number: 20, name: 'SIGTSTP', defaultAction: 'stop', catchable: true, reason: null });
    assert.deepEqual(byName.get('SIGCONT')?.defaultAction, 'continue');
    assert.deepEqual(byName.get('SIGRTMIN+5'), { number: 39, name: 'SIGRTMIN+5', defaultAction: 'terminate', catchable: true, reason: null });
    assert.deepEqual(rows.filter((r) => !r.catchable).map((r) => r.name),
      ['SIGILL', 'SIGBUS', 'SIGFPE', 'SIGKILL', 'SIGUSR1', 'SIGSEGV', 'SIGSTOP', 'SIGPROF', 'SIGRTMAX-1', 'SIGRTMAX']);
  });
});

describe('signal handlers', () => {
  for (const [then, disposition] of [['dispose', 0], ['restoreDefault', 0], ['ignore', 1]] as const) {
    it(`replaces the default action of SIGUSR2, then ${then}() leaves it ${disposition === 0 ? 'default' : 'ignored'}`, async () => {
      const peer = new Peer('signal-handler', { signal: 'SIGUSR2', count: 1, then });
      assert.deepEqual(await peer.next(), { event: 'ready' });
      sendSignal(peer.pid, 'SIGUSR2');
      assert.deepEqual(await peer.next(), {
        event: 'signal', signal: 'SIGUSR2', number: 12, ...ME, code: S.SI_USER, origin: 'kill', value: null,
      });
      assert.deepEqual(await peer.next(), { event: 'released', disposition });
      sendSignal(peer.pid, 'SIGUSR2');
      if (disposition === 0) {
        assert.deepEqual(await peer.exited, { code: null, signal: 'SIGUSR2' });
      } else {
        assert.equal(await stillPending(peer.exited, 200), true, 'an ignored SIGUSR2 ended the process');
        sendSignal(peer.pid, 'SIGTERM');
        assert.deepEqual(await peer.exited, { code: null, signal: 'SIGTERM' });
      }
    });
  }

  it('overrides SIGINT and SIGTERM, and gives them back to Node, whose own handler ends the process', async () => {
    // Node handles both itself (it restores the terminal, then dies by the signal): that action returns.
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const peer = new Peer('signal-handler', { signal, count: 2, then: 'dispose' });
      await peer.next();
      for (let i = 0; i < 2; i++) {
        sendSignal(peer.pid, signal);
        assert.equal((await peer.next()).signal, signal);
      }
      assert.deepEqual(await peer.next(), { event: 'released', disposition: 2 });
      sendSignal(peer.pid, signal);
      assert.deepEqual(await peer.exited, { code: null, signal });
    }
  });

  it('tells the handler who sent the signal: this process, the ipckit CLI, a shell, another user', async (t) => {
    const peer = new Peer('signal-handler', { signal: 'SIGUSR2', count: 3, then: 'dispose' });
    await peer.next();
    sendSignal(peer.pid, 'SIGUSR2');
    assert.deepEqual(await peer.next(), { event: 'signal', signal: 'SIGUSR2', number: 12, ...ME, code: 0, origin: 'kill', value: null });
    const cli = await ipckit(['signal', 'send', String(peer.pid), 'USR2']);
    assert.equal(cli.status, 0, cli.stderr);
    assert.deepEqual(await peer.next(), { event: 'signal', signal: 'SIGUSR2', number: 12, pid: cli.pid, uid: ME.uid, code: 0, origin: 'kill', value: null });
    const shell = trackChild(spawnChild('sh', ['-c', `kill -USR2 ${peer.pid}`]));
    await new Promise((resolve) => shell.once('close', resolve));
    assert.deepEqual(await peer.next(), { event: 'signal', signal: 'SIGUSR2', number: 12, pid: shell.pid, uid: ME.uid, code: 0, origin: 'kill', value: null });
    await peer.next(); // released
    peer.child.kill('SIGKILL');
    await peer.exited;

    if (!canRunAsNobody()) {
      t.diagnostic('not root, or user nobody cannot run the tests: the other-user case is skipped');
      return;
    }
    const target = new Peer('signal-handler', { signal: 'SIGUSR2', count: 1, then: 'dispose' }, { prefix: AS_NOBODY });
    await target.next();
    const sender = new Peer('signal-send', { target: target.pid, signal: 'SIGUSR2' }, { prefix: AS_NOBODY });
    assert.deepEqual(await sender.next(), { sent: true });
    assert.deepEqual(await target.next(), { event: 'signal', signal: 'SIGUSR2', number: 12, pid: sender.pid, uid: 65534, code: 0, origin: 'kill', value: null });
    await sender.success();
    target.child.kill('SIGKILL');
    await target.exited;
  });

  it('runs handlers on the event loop with process.on listeners of the same signal, in either order', async () => {
    for (const nodeFirst of [true, false]) {
      const seen: string[] = [];
      const nodeListener = (): void => { seen.push('node'); };
      let dispose: () => void;
      if (nodeFirst) {
        process.on('SIGUSR2', nodeListener);
        dispose = onSignal('SIGUSR2', (info) => seen.push(`ipckit ${info.pid}`));
      } else {
        dispose = onSignal('SIGUSR2', (info) => seen.push(`ipckit ${info.pid}`));
        process.on('SIGUSR2', nodeListener);
      }
      try {
        sendSignal(process.pid, 'SIGUSR2');
        await waitUntil('both handlers ran', () => seen.length === 2);
        assert.deepEqual(seen.sort(), [`ipckit ${process.pid}`, 'node']);
        dispose();
        sendSignal(process.pid, 'SIGUSR2');
        await waitUntil('the Node listener ran again', () => seen.length === 3);
        await sleep(50);
        assert.deepEqual(seen, [`ipckit ${process.pid}`, 'node', 'node']);
      } finally {
        dispose();
        process.removeListener('SIGUSR2', nodeListener);
      }
    }
    assert.equal(native.signalDisposition(12), USR2_BEFORE);
  });

  it('reports an exception thrown by a handler as uncaught, after the other handlers ran', async () => {
    const peer = new Peer('signal-throw', {});
    await peer.next();
    sendSignal(peer.pid, 'SIGUSR2');
    assert.deepEqual(await peer.next(), { event: 'second handler ran' });
    assert.deepEqual(await peer.exited, { code: 1, signal: null });
    assert.match(peer.stderr, /Error: boom from a signal handler/);
  });

  it('refuses signals that cannot or must not be handled, with the reason', () => {
    const cases: [string, RegExp][] = [
      ['SIGKILL', /the kernel never lets a process catch, block or ignore SIGKILL\. It can only be sent\.$/],
      ['SIGSTOP', /the kernel never lets a process catch, block or ignore SIGSTOP\. It can only be sent\.$/],
      ['SIGSEGV', /memory fault/],
      ['SIGBUS', /memory fault/],
      ['SIGFPE', /arithmetic fault/],
      ['SIGILL', /illegal instruction/],
      ['SIGUSR1', /inspector; use SIGUSR2 or a real-time signal/],
      ['SIGPROF', /profiler/],
      ['SIGRTMAX', /ipckit reserves it to interrupt blocking calls/],
      ['SIGRTMAX-1', /ipckit reserves it to change other threads' signal masks/],
    ];
    for (const [sig, reason] of cases) {
      throwsWith(() => onSignal(sig, () => undefined), 'ERR_IPC_UNCATCHABLE', new RegExp(`^onSignal ${sig}: .*${reason.source}`));
      throwsWith(() => listenForSignals(['SIGUSR2', sig]), 'ERR_IPC_UNCATCHABLE', reason);
      throwsWith(() => ignore(sig), 'ERR_IPC_UNCATCHABLE', reason);
      throwsWith(() => restoreDefault(sig), 'ERR_IPC_UNCATCHABLE', reason);
    }
    throwsWith(() => onSignal('SIGUSR2', 'handler' as never), 'ERR_IPC_INVALID_ARGUMENT', /handler/);
    throwsWith(() => listenForSignals([]), 'ERR_IPC_INVALID_ARGUMENT', /at least one signal/);
    throwsWith(() => listenForSignals('SIGUSR2', { spin: -1 }), 'ERR_IPC_INVALID_ARGUMENT', /spin/);
    throwsWith(() => listenForSignals('SIGUSR2', { spin: 10_001 }), 'ERR_IPC_INVALID_ARGUMENT', /spin/);
    // Nothing was installed by the refused calls.
    assert.equal(native.signalDisposition(12), USR2_BEFORE);
  });

  it('leaves other threads\' blocking reads running when it blocks the signal in them', async () => {
    // Taking a signal blocks it in every thread of the process, by signalling
    // each one; a read that signal interrupted used to fail with EINTR.
    const dir = mkdtempSync(join(tmpdir(), 'ipckit-signal-'));
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const fd = openSync(fifo, 'r+'); // opens at once; reads block until data comes
    try {
      // A libuv pool thread blocked in read(2), as under fs.read of a FIFO or a terminal.
      const read = new Promise<string>((resolve) => {
        fsRead(fd, Buffer.alloc(16), 0, 16, null, (err, n, buf) => resolve(err ? err.code! : buf.subarray(0, n).toString()));
      });
      await blockedIn(process.pid, 'read', { where: onDescriptor(process.pid, fifo) });
      const stop = onSignal('SIGRTMIN+6', () => undefined);
      try {
        assert.equal(await stillPending(read, 100), true, 'the pool thread\'s read ended when the signal was taken');
        writeFileSync(fd, 'pool');
        assert.equal(await read, 'pool');
      } finally {
        stop();
      }
      // The event loop's thread in readSync while a worker takes a signal.
      const worker = new Worker(`
        const { readFileSync, writeFileSync } = require('node:fs');
        const { workerData: { index, pid, fifo } } = require('node:worker_threads');
        const inRead = () => readFileSync('/proc/' + pid + '/task/' + pid + '/wchan', 'utf8').includes('pipe_read');
        (function look() {
          if (!inRead()) return setTimeout(look, 2);
          import(index).then(({ onSignal }) => {
            onSignal('SIGRTMIN+6', () => undefined)();
            writeFileSync(fifo, 'main');
          });
        })();`, { eval: true, workerData: { index: INDEX, pid: process.pid, fifo } });
      const buf = Buffer.alloc(16);
      const n = readSync(fd, buf);
      assert.equal(buf.subarray(0, n).toString(), 'main');
      await once(worker, 'exit');
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true });
    }
  });
});

/** Runs an ES module script in a new Node process; its outcome, killed after `timeoutMs`. */
async function runScript(script: string, timeoutMs = 20_000): Promise<{ status: number | null; signal: string | null; stdout: string; stderr: string }> {
  const child = trackChild(spawnChild(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs }));
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const [status, signal] = await once(child, 'close') as [number | null, string | null];
  return { status, signal, stdout, stderr };
}

describe('signals in worker threads', () => {
  /** A worker that runs `body` with ipckit as `m` and `post` to answer. */
  const worker = (body: string): Worker => new Worker(`
    const { parentPort } = require('node:worker_threads');
    const post = (v) => parentPort.postMessage(v);
    import(${JSON.stringify(INDEX)}).then(async (m) => { ${body} }).catch((e) => post({ error: String(e) }));`, { eval: true });

  it('every thread with a handler sees every delivery, in kernel order', async () => {
    const listener = listenForSignals('SIGRTMIN+7');
    const w = worker(`
      const l = m.listenForSignals('SIGRTMIN+7');
      post('ready');
      const values = [];
      while (values.length < 100) values.push((await l.receive()).value);
      l.close();
      post(values);`);
    const answers: unknown[] = [];
    w.on('message', (m) => answers.push(m));
    try {
      await waitUntil('the worker listens', () => answers.length > 0);
      assert.equal(answers[0], 'ready');
      // Sent while both event loops are free to take them, by another process.
      const sender = await runScript(`import { sendSignal } from ${JSON.stringify(INDEX)};
        for (let i = 0; i < 100; i++) sendSignal(${process.pid}, 'SIGRTMIN+7', { value: i });`);
      assert.equal(sender.status, 0, sender.stderr);
      const values: number[] = [];
      while (values.length < 100) values.push((await listener.receive({ timeout: 10_000 })).value!);
      const expected = Array.from({ length: 100 }, (_, i) => i);
      assert.deepEqual(values, expected);
      await waitUntil('the worker has received them', () => answers.length > 1);
      assert.deepEqual(answers[1], expected);
      assert.equal(listener.dropped, 0);
    } finally {
      listener.close();
      await w.terminate();
    }
  });

  it('a worker that lets its handler go leaves the other threads\' handlers in place', async () => {
    // The process would die of SIGUSR2 if the worker's release had restored the default.
    const result = await runScript(`import { Worker } from 'node:worker_threads';
      import { once } from 'node:events';
      import { listenForSignals, sendSignal } from ${JSON.stringify(INDEX)};
      const listener = listenForSignals('SIGUSR2');
      const w = new Worker(\`import(${JSON.stringify(INDEX)}).then((m) => { m.onSignal('SIGUSR2', () => {})(); });\`, { eval: true, execArgv: [] });
      await once(w, 'exit');
      sendSignal(process.pid, 'SIGUSR2');
      console.log((await listener.receive({ timeout: 10000 })).signal);
      listener.close();`);
    assert.deepEqual([result.status, result.signal, result.stdout], [0, null, 'SIGUSR2\n'], result.stderr);
  });

  it('a worker\'s handlers end with it, and the signal\'s previous action returns', async () => {
    for (const end of ['terminate', 'exit']) {
      const result = await runScript(`import { Worker } from 'node:worker_threads';
        import { once } from 'node:events';
        await import(${JSON.stringify(INDEX)});
        const w = new Worker(\`import(${JSON.stringify(INDEX)}).then((m) => {
          m.onSignal('SIGTERM', () => {});
          require('node:worker_threads').parentPort.postMessage('handled');
          ${end === 'exit' ? "setTimeout(() => process.exit(0), 10);" : ''}
        });\`, { eval: true, execArgv: [] });
        await once(w, 'message');
        ${end === 'terminate' ? 'await w.terminate();' : "await once(w, 'exit');"}
        console.log('killing myself');
        process.kill(process.pid, 'SIGTERM');
        setTimeout(() => console.log('survived'), 5000);`);
      assert.deepEqual([result.status, result.signal, result.stdout], [null, 'SIGTERM', 'killing myself\n'], `${end}: ${result.stderr}`);
    }
  });

  it('ignore() while another thread handles the signal takes effect when that thread lets it go', async () => {
    const result = await runScript(`import { Worker } from 'node:worker_threads';
      import { once } from 'node:events';
      import { ignore, sendSignal } from ${JSON.stringify(INDEX)};
      import { native } from ${JSON.stringify(new URL('../src/native.js', import.meta.url).href)};
      const w = new Worker(\`
        const { parentPort } = require('node:worker_threads');
        import(${JSON.stringify(INDEX)}).then(async (m) => {
          const l = m.listenForSignals('SIGUSR2');
          parentPort.postMessage('ready');
          parentPort.postMessage((await l.receive()).signal);
          l.close();
        });\`, { eval: true, execArgv: [] });
      await once(w, 'message');
      ignore('SIGUSR2');
      console.log('handled', native.signalDisposition(12));
      sendSignal(process.pid, 'SIGUSR2');
      console.log('worker got', (await once(w, 'message'))[0]);
      await once(w, 'exit');
      console.log('ignored', native.signalDisposition(12));
      sendSignal(process.pid, 'SIGUSR2');
      setTimeout(() => console.log('survived'), 100);`);
    assert.deepEqual([result.status, result.signal, result.stdout], [0, null, 'handled 2\nworker got SIGUSR2\nignored 1\nsurvived\n'], result.stderr);
  });
});

describe('SIGCHLD', () => {
  it('spawnSync and execSync finish while ipckit handles SIGCHLD, and the handler names each child', async () => {
    // spawnSync waits in a loop of its own, which only learns of the child's exit through SIGCHLD.
    const result = await runScript(`import { execFileSync, spawn, spawnSync } from 'node:child_process';
      import { once } from 'node:events';
      import { onSignal } from ${JSON.stringify(INDEX)};
      const children = [];
      const stop = onSignal('SIGCHLD', ({ pid, origin }) => children.push([pid, origin]));
      const a = spawnSync('sh', ['-c', 'exit 3'], { timeout: 5000 });
      const b = execFileSync('sh', ['-c', 'echo hi'], { timeout: 5000, encoding: 'utf8' });
      const c = spawn('sh', ['-c', 'exit 4']);
      const [code] = await once(c, 'exit');
      // After spawnSync's loop let its SIGCHLD handler go (libuv then resets the action):
      const d = spawnSync('sh', ['-c', 'exit 5'], { timeout: 5000 });
      while (children.length < 4) await new Promise((r) => setTimeout(r, 5));
      stop();
      const e = spawnSync('sh', ['-c', 'exit 6'], { timeout: 5000 });
      console.log(JSON.stringify({ statuses: [a.status, b, code, d.status, e.status], c: c.pid, children }));`);
    assert.equal(result.status, 0, result.stderr);
    const out = JSON.parse(result.stdout) as { statuses: unknown[]; c: number; children: [number, string][] };
    assert.deepEqual(out.statuses, [3, 'hi\n', 4, 5, 6]);
    assert.equal(out.children.length, 4);
    assert.ok(out.children.every(([pid, origin]) => Number.isInteger(pid) && pid > 0 && origin === 'kernel'), JSON.stringify(out.children));
    assert.ok(out.children.some(([pid]) => pid === out.c), 'the async child is named');
  });
});

describe('sending signals', () => {
  it('carries sigqueue values exactly, over the whole safe-integer range', async () => {
    const values = [0, -1, 42, 2 ** 31, -(2 ** 40), 2 ** 53 - 1, -(2 ** 53) + 1];
    const peer = new Peer('signal-collect', { signals: ['SIGRTMIN+1'], until: 'SIGRTMIN+1', count: values.length, settleMs: 0 });
    await peer.next();
    for (const value of values) sendSignal(peer.pid, 'SIGRTMIN+1', { value });
    assert.deepEqual(await peer.next(), { event: 'done', counts: { 'SIGRTMIN+1': values.length }, echoedBytes: 0, values, senders: [process.pid] });
    await peer.success();
  });

  it('reports the sigqueue origin and value to the handler, for a standard signal too', async () => {
    using listener = listenForSignals(['SIGUSR2', 'SIGRTMIN+2']);
    sendSignal(process.pid, 'SIGUSR2', { value: 7 });
    assert.deepEqual(listener.receiveSync({ timeout: 5_000 }), {
      signal: 'SIGUSR2', number: 12, ...ME, code: S.SI_QUEUE, origin: 'sigqueue', value: 7,
    });
    sendSignal(process.pid, 'SIGRTMIN+2');
    assert.deepEqual(await listener.receive({ timeout: 5_000 }), {
      signal: 'SIGRTMIN+2', number: 36, ...ME, code: S.SI_USER, origin: 'kill', value: null,
    });
  });

  it('queues every real-time signal in order but merges a pending standard signal into one', async () => {
    const peer = new Peer('signal-collect', { signals: ['SIGUSR2', 'SIGRTMIN+2'], until: 'SIGRTMIN+2', count: 1000, settleMs: 200 });
    await peer.next();
    sendSignal(peer.pid, 'SIGSTOP');
    try {
      await waitUntil('the peer is stopped', () => processState(peer.pid) === 'T');
      for (let i = 0; i < 5; i++) sendSignal(peer.pid, 'SIGUSR2');
      for (let i = 0; i < 1000; i++) sendSignal(peer.pid, 'SIGRTMIN+2', { value: i });
    } finally {
      sendSignal(peer.pid, 'SIGCONT');
    }
    const done = await peer.next();
    assert.deepEqual(done, {
      event: 'done', counts: { SIGUSR2: 1, 'SIGRTMIN+2': 1000 }, echoedBytes: 0,
      values: Array.from({ length: 1000 }, (_, i) => i), senders: [process.pid],
    });
    await peer.success();
  });

  it('signals every process of a process group, and only those', async () => {
    // setsid makes the peer the leader of a new group (and session); its members inherit the group.
    const leader = new Peer('signal-group', { members: 2 }, { prefix: ['setsid'] });
    const group = leader.pid;
    try {
      const ready = [await leader.next(), await leader.next(), await leader.next()];
      assert.deepEqual(ready.map((r) => r.group), [group, group, group]);
      const pids = ready.map((r) => r.pid as number).sort();
      assert.ok(pids.includes(group));
      using mine = listenForSignals('SIGUSR2');
      sendSignal({ group }, 'SIGUSR2');
      const got = [await leader.next(), await leader.next(), await leader.next()];
      assert.deepEqual(got.map((g) => g.pid).sort(), pids);
      for (const g of got) assert.deepEqual({ from: g.from, signal: g.signal }, { from: process.pid, signal: 'SIGUSR2' });
      await leader.success();
      await sleep(50);
      assert.equal(mine.tryReceive(), undefined, 'the test process is not in the group, yet was signalled');
    } finally {
      try {
        sendSignal({ group }, 'SIGKILL');
      } catch (err) {
        if ((err as IpcError).code !== 'ESRCH') throw err;
      }
    }
  });

  it('sends SIGKILL and SIGSTOP, which no process can catch', async () => {
    const child = trackChild(spawnChild('sleep', ['30']));
    sendSignal(child.pid!, 'SIGSTOP');
    await waitUntil('the child is stopped', () => processState(child.pid!) === 'T');
    sendSignal(child.pid!, 9);
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.once('close', (c, s) => resolve([c, s])));
    assert.deepEqual([code, signal], [null, 'SIGKILL']);
  });

  it('fails with ESRCH for a process or group that does not exist', async () => {
    const pid = await deadPid();
    throwsWith(() => sendSignal(pid, 'SIGUSR2'), 'ESRCH', new RegExp(`^kill pid ${pid} failed: No such process \\(ESRCH\\)\\. The process has exited, or the pid is wrong\\.$`));
    throwsWith(() => sendSignal(pid, 'SIGRTMIN+1', { value: 1 }), 'ESRCH', new RegExp(`^sigqueue pid ${pid} failed`));
    throwsWith(() => sendSignal({ group: pid }, 'SIGUSR2'), 'ESRCH', new RegExp(`^kill process group ${pid} failed: No such process \\(ESRCH\\)\\. No process is left in that group`));
  });

  it('fails with EPERM for a process of another user, and nothing is delivered', async (t) => {
    using listener = listenForSignals('SIGUSR2');
    if (canRunAsNobody()) {
      const sender = new Peer('signal-send', { target: process.pid, signal: 'SIGUSR2' }, { prefix: AS_NOBODY });
      const result = await sender.next<{ sent: boolean; code: string; message: string }>();
      await sender.success();
      assert.deepEqual({ sent: result.sent, code: result.code }, { sent: false, code: 'EPERM' });
      assert.equal(result.message, `kill pid ${process.pid} failed: Operation not permitted (EPERM). Only the owner of a process (or root) may signal it.`);
    } else if (process.getuid!() !== 0) {
      throwsWith(() => sendSignal(1, 'SIGUSR2'), 'EPERM', /Only the owner of a process \(or root\) may signal it\./);
    } else {
      t.diagnostic('root without a usable user nobody: the EPERM case is skipped');
      return;
    }
    await sleep(50);
    assert.equal(listener.tryReceive(), undefined);
  });

  it('rejects bad targets, signals and values before any system call', () => {
    const bad: [unknown, unknown, unknown, RegExp][] = [
      [0, 'SIGUSR2', undefined, /target/],
      [-5, 'SIGUSR2', undefined, /target/],
      [1.5, 'SIGUSR2', undefined, /target/],
      ['123', 'SIGUSR2', undefined, /target/],
      [null, 'SIGUSR2', undefined, /target/],
      [{ group: 1 }, 'SIGUSR2', undefined, /target\.group/],
      [{ group: 0 }, 'SIGUSR2', undefined, /target\.group/],
      [{}, 'SIGUSR2', undefined, /target\.group/],
      [process.pid, 'SIGNOPE', undefined, /signal/],
      [process.pid, 0, undefined, /signal/],
      [process.pid, 'SIGUSR2', { value: 2 ** 53 }, /value/],
      [process.pid, 'SIGUSR2', { value: 0.5 }, /value/],
      [process.pid, 'SIGUSR2', { value: '1' }, /value/],
      [{ group: 5 }, 'SIGUSR2', { value: 1 }, /sigqueue cannot address a group/],
      [process.pid, 'SIGUSR2', 'value', /options/],
    ];
    for (const [target, sig, options, pattern] of bad) {
      throwsWith(() => sendSignal(target as never, sig as never, options as never), 'ERR_IPC_INVALID_ARGUMENT', pattern);
    }
  });
});

describe('waiting for signals', () => {
  it('waitForSignal resolves with the first of several signals, and the others keep their action', async () => {
    const waiting = waitForSignal(['SIGUSR2', 'SIGRTMIN+3'], { timeout: 5_000 });
    sendSignal(process.pid, 'SIGRTMIN+3', { value: -9 });
    assert.deepEqual(await waiting, { signal: 'SIGRTMIN+3', number: 37, ...ME, code: S.SI_QUEUE, origin: 'sigqueue', value: -9 });
    assert.equal(native.signalDisposition(37), 0);
    assert.equal(native.signalDisposition(12), USR2_BEFORE);
  });

  it('waitForSignal times out, aborts, and refuses an aborted signal, leaving the default action back', async () => {
    const started = performance.now();
    await rejectsWith(() => waitForSignal('SIGUSR2', { timeout: 50 }), 'ERR_IPC_TIMEOUT', /SIGUSR2/);
    assert.ok(performance.now() - started >= 45);
    const controller = new AbortController();
    const waiting = waitForSignal('SIGUSR2', { signal: controller.signal });
    assert.equal(await stillPending(waiting, 50), true);
    controller.abort();
    await rejectsWith(() => waiting, 'ERR_IPC_ABORTED');
    await rejectsWith(() => waitForSignal('SIGUSR2', { signal: AbortSignal.abort() }), 'ERR_IPC_ABORTED');
    await rejectsWith(() => waitForSignal('SIGUSR2', { timeout: -1 }), 'ERR_IPC_INVALID_ARGUMENT', /timeout/);
    assert.equal(native.signalDisposition(12), USR2_BEFORE);
  });

  it('waitForSignalSync blocks until another process signals, and times out', () => {
    // Another process sends SIGUSR2 once it sees this thread asleep in poll(2), inside waitForSignalSync:
    // a signal from it is one that came while this thread was blocked.
    const sender = trackChild(spawnChild(process.execPath, ['--input-type=module', '-e', `
      const { blockedIn } = await import(${JSON.stringify(PROC_HELPERS)});
      await blockedIn(${process.pid}, 'poll', { main: true, what: 'the test process waits in waitForSignalSync' });
      process.kill(${process.pid}, 'SIGUSR2');`], { stdio: ['ignore', 'ignore', 'inherit'] }));
    const info = waitForSignalSync('SIGUSR2', { timeout: 20_000 });
    assert.deepEqual(info, { signal: 'SIGUSR2', number: 12, pid: sender.pid, uid: ME.uid, code: 0, origin: 'kill', value: null });
    throwsWith(() => waitForSignalSync('SIGUSR2', { timeout: 30 }), 'ERR_IPC_TIMEOUT', /SIGUSR2/);
  });

  it('a receiveSync whose listener a handler closes while it waits ends with ERR_IPC_CLOSED', () => {
    const listener = listenForSignals('SIGRTMIN+14');
    const stop = onSignal('SIGRTMIN+15', () => listener.close());
    try {
      // Another process sends SIGRTMIN+15 once this thread sleeps in poll(2), inside receiveSync.
      trackChild(spawnChild(process.execPath, ['--input-type=module', '-e', `
        const { blockedIn } = await import(${JSON.stringify(PROC_HELPERS)});
        await blockedIn(${process.pid}, 'poll', { main: true, what: 'the test process waits in receiveSync' });
        process.kill(${process.pid}, ${signalNumber('SIGRTMIN+15')});`], { stdio: ['ignore', 'ignore', 'inherit'] }));
      throwsWith(() => listener.receiveSync({ timeout: 20_000 }), 'ERR_IPC_CLOSED', /receiveSync on SIGRTMIN\+14: the handle is closed/);
      assert.equal(listener.closed, true);
    } finally {
      stop();
      listener.close();
    }
  });

  it('a receiveSync without options sleeps through another listener\'s signal and ends with its own, or with ERR_IPC_CLOSED', () => {
    const mine = listenForSignals('SIGRTMIN+17');
    const other = listenForSignals('SIGRTMIN+18');
    const stop = onSignal('SIGRTMIN+19', () => mine.close());
    try {
      // Another process sends other's signal once this thread sleeps in poll(2), then this one's once it sleeps again.
      const send = (sigs: string[]): void => {
        trackChild(spawnChild(process.execPath, ['--input-type=module', '-e', `
          const { blockedIn } = await import(${JSON.stringify(PROC_HELPERS)});
          for (const sig of ${JSON.stringify(sigs.map((s) => signalNumber(s)))}) {
            await blockedIn(${process.pid}, 'poll', { main: true, what: 'the test process waits in receiveSync' });
            process.kill(${process.pid}, sig);
            await new Promise((resolve) => setTimeout(resolve, 50));
          }`], { stdio: ['ignore', 'ignore', 'inherit'] }));
      };
      send(['SIGRTMIN+18', 'SIGRTMIN+17']);
      assert.equal(mine.receiveSync().signal, signalName(signalNumber('SIGRTMIN+17')));
      assert.equal(other.tryReceive()?.signal, signalName(signalNumber('SIGRTMIN+18')));
      send(['SIGRTMIN+19']);
      throwsWith(() => mine.receiveSync(), 'ERR_IPC_CLOSED', /receiveSync on SIGRTMAX-13: the handle is closed/);
    } finally {
      stop();
      mine.close();
      other.close();
    }
  });

  it('a receiveSync without options goes on waiting when a handler it ran starts a receive() of the same listener', async () => {
    const mine = listenForSignals('SIGRTMIN+20');
    let started: Promise<SignalInfo> | undefined;
    const ran = join(tmpdir(), `ipckit-test-handler-ran-${process.pid}-${randomBytes(4).toString('hex')}`);
    const stop = onSignal('SIGRTMIN+21', () => {
      started = mine.receive();
      writeFileSync(ran, '');
    });
    try {
      // Another process: the handler's signal once this thread sleeps in receiveSync; once the handler has run
      // and the thread sleeps again, two of the listener's (sent earlier, they would come first: lower number).
      trackChild(spawnChild(process.execPath, ['--input-type=module', '-e', `
        const { existsSync } = await import('node:fs');
        const { blockedIn } = await import(${JSON.stringify(PROC_HELPERS)});
        await blockedIn(${process.pid}, 'poll', { main: true, what: 'the test process waits in receiveSync' });
        process.kill(${process.pid}, ${signalNumber('SIGRTMIN+21')});
        while (!existsSync(${JSON.stringify(ran)})) await new Promise((resolve) => setTimeout(resolve, 5));
        await blockedIn(${process.pid}, 'poll', { main: true, what: 'the test process waits in receiveSync again' });
        process.kill(${process.pid}, ${signalNumber('SIGRTMIN+20')});
        process.kill(${process.pid}, ${signalNumber('SIGRTMIN+20')});`], { stdio: ['ignore', 'ignore', 'inherit'] }));
      // The call that waited first takes the first; the receive() the handler started, the second.
      assert.equal(mine.receiveSync().signal, signalName(signalNumber('SIGRTMIN+20')));
      assert.ok(started instanceof Promise, 'the handler ran inside receiveSync');
      assert.equal((await started).signal, signalName(signalNumber('SIGRTMIN+20')));
    } finally {
      stop();
      mine.close();
      rmSync(ran, { force: true });
    }
  });

  it('a receiveSync whose listener a pending handler closes ends with ERR_IPC_CLOSED at once, with or without options or a spin', () => {
    // The bounded ones first: without the fix, they fail after their timeout, where the others would sleep on.
    for (const [spin, options] of [[0, { timeout: 20_000 }], [200, { timeout: 20_000 }], [0, undefined], [200, undefined], [0, {}]] as const) {
      const listener = listenForSignals('SIGRTMIN+22', { spin });
      const stop = onSignal('SIGRTMIN+23', () => listener.close());
      try {
        // Pending, not yet handed out: the receive's own drain runs the handler, before it would sleep.
        sendSignal(process.pid, 'SIGRTMIN+23');
        const began = performance.now();
        throwsWith(() => listener.receiveSync(options), 'ERR_IPC_CLOSED', /receiveSync on SIGRTMAX-8: the handle is closed/);
        // It did not sleep out its timeout (a closed listener's wait is woken by nothing but another signal).
        assert.ok(performance.now() - began < 19_000, `ended after ${performance.now() - began} ms`);
      } finally {
        stop();
        listener.close();
      }
    }
  });

  it('a flood of pending signals is handed out over several turns of the event loop, every one in order', async () => {
    const seen: number[] = [];
    const stop = onSignal('SIGRTMIN+16', (info) => seen.push(info.value!));
    try {
      for (let i = 0; i < 3000; i++) sendSignal(process.pid, 'SIGRTMIN+16', { value: i });
      // What each turn of the event loop had handed out, seen from its check phase: more than one turn.
      const turns: number[] = [];
      const deadline = performance.now() + 20_000;
      while (seen.length < 3000 && performance.now() < deadline) {
        turns.push(await new Promise<number>((resolve) => setImmediate(() => resolve(seen.length))));
      }
      assert.ok(turns.some((n) => n > 0 && n < 3000), `handed out by turn: ${turns.join(', ')}`);
      assert.deepEqual(seen, Array.from({ length: 3000 }, (_, i) => i));
    } finally {
      stop();
    }
  });

  it('a listener keeps every delivery, in kernel order, until it is closed', async () => {
    const listener = listenForSignals(['SIGUSR2', 'SIGRTMIN+4'], { spin: 0 });
    assert.deepEqual(listener.signals, ['SIGUSR2', 'SIGRTMIN+4']);
    assert.equal(native.signalDisposition(12), 2);
    sendSignal(process.pid, 'SIGUSR2');
    for (let i = 0; i < 5; i++) sendSignal(process.pid, 'SIGRTMIN+4', { value: i });
    const got: [string, number | null][] = [];
    for await (const info of listener) {
      got.push([info.signal, info.value]);
      if (got.length === 6) break;
    }
    // Leaving the loop does not close the listener.
    assert.equal(listener.closed, false);
    assert.deepEqual(got, [['SIGUSR2', null], ...[0, 1, 2, 3, 4].map((v) => ['SIGRTMIN+4', v])]);
    assert.equal(listener.queued, 0);
    assert.equal(listener.dropped, 0);
    assert.equal(SIGNAL_LISTENER_CAPACITY, 65_536);

    const pending = listener.receive();
    assert.equal(await stillPending(pending, 30), true);
    listener.close();
    await rejectsWith(() => pending, 'ERR_IPC_CLOSED');
    assert.equal(listener.closed, true);
    listener.close();
    throwsWith(() => listener.tryReceive(), 'ERR_IPC_CLOSED');
    throwsWith(() => listener.receiveSync(), 'ERR_IPC_CLOSED');
    await rejectsWith(() => listener.receive(), 'ERR_IPC_CLOSED');
    assert.equal(native.signalDisposition(12), USR2_BEFORE);
    assert.equal(native.signalDisposition(38), 0);
  });

  it('a spinning receive takes its signal from the kernel itself, leaving the rest there, and every handler still sees every delivery in order', () => {
    const listener = listenForSignals('SIGRTMIN+10', { spin: 200 });
    const other = listenForSignals('SIGRTMIN+11', { spin: 0 });
    const seen: (number | null)[] = [];
    const stop = onSignal('SIGRTMIN+10', (info) => seen.push(info.value));
    try {
      for (let i = 0; i < 5; i++) {
        sendSignal(process.pid, 'SIGRTMIN+11', { value: 100 + i });
        sendSignal(process.pid, 'SIGRTMIN+10', { value: i });
      }
      // The kernel hands out the lower-numbered signal first: each receive takes one of its own, nothing more.
      const got: (number | null)[] = [];
      for (let i = 0; i < 5; i++) got.push(listener.receiveSync({ timeout: 10_000 }).value);
      assert.deepEqual(got, [0, 1, 2, 3, 4]);
      assert.deepEqual(seen, [0, 1, 2, 3, 4]);
      assert.equal(other.queued, 0);
      const others: (number | null)[] = [];
      for (let i = 0; i < 5; i++) others.push(other.tryReceive()?.value ?? null);
      assert.deepEqual(others, [100, 101, 102, 103, 104]);
      assert.equal(other.tryReceive(), undefined);
      assert.equal(listener.tryReceive(), undefined);
    } finally {
      stop();
      listener.close();
      other.close();
    }
  });

  it('a receive started inside a handler, its signal already pending, gets it once the handler returns', async () => {
    // Inside a handler the drain under way hands signals out: a receive there must leave them to it, not take one
    // from the kernel that nothing would then deliver.
    const listener = listenForSignals('SIGRTMIN+12');
    const results: Promise<number | null>[] = [];
    const stop = onSignal('SIGUSR2', () => {
      sendSignal(process.pid, 'SIGRTMIN+12', { value: 7 });
      results.push(listener.receive({ timeout: 10_000 }).then((info) => info.value));
    });
    try {
      sendSignal(process.pid, 'SIGUSR2');
      await waitUntil('the SIGUSR2 handler ran', () => results.length === 1);
      assert.equal(await results[0], 7);
      assert.equal(listener.queued, 0);
    } finally {
      stop();
      listener.close();
    }
  });

  it('a blocking receive inside a handler fails with ERR_IPC_DEADLOCK (it could only wait), and the signal comes after', async () => {
    const listener = listenForSignals('SIGRTMIN+13');
    const errors: unknown[] = [];
    const stop = onSignal('SIGUSR2', () => {
      sendSignal(process.pid, 'SIGRTMIN+13', { value: 9 });
      try {
        listener.receiveSync({ timeout: 5000 });
      } catch (err) {
        errors.push(err);
      }
    });
    try {
      sendSignal(process.pid, 'SIGUSR2');
      await waitUntil('the SIGUSR2 handler ran', () => errors.length === 1);
      assert.ok(errors[0] instanceof IpcError);
      assert.equal(errors[0].code, 'ERR_IPC_DEADLOCK');
      assert.match(errors[0].message, /SIGRTMIN\+13 inside a signal handler would wait forever.*Use receive\(\)/);
      assert.equal((await listener.receive({ timeout: 10_000 })).value, 9);
    } finally {
      stop();
      listener.close();
    }
  });

  it('async iteration ends when the listener is closed', async () => {
    const listener = listenForSignals('SIGRTMIN+5');
    const seen: (number | null)[] = [];
    const loop = (async () => {
      for await (const info of listener.received()) {
        seen.push(info.value);
        if (seen.length === 3) listener.close();
      }
    })();
    for (let i = 1; i <= 3; i++) sendSignal(process.pid, 'SIGRTMIN+5', { value: i * 10 });
    await loop;
    assert.deepEqual(seen, [10, 20, 30]);
  });

  it('a pending receive keeps the process alive; a bare listener does not', async () => {
    // Each child script exits 0 only if it got the signal (the parent sends it).
    const script = (body: string): string => `import(${JSON.stringify(new URL('../src/index.js', import.meta.url).href)}).then(async (k) => { ${body} })`;
    const child = trackChild(spawnChild(process.execPath, ['-e', script(
      "const l = k.listenForSignals('SIGUSR2'); console.log('ready'); const i = await l.receive(); console.log(i.signal); l.close();",
    )], { stdio: ['ignore', 'pipe', 'inherit'] }));
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => { out += s; });
    await waitUntil('the child is ready', () => out === 'ready\n');
    sendSignal(child.pid!, 'SIGUSR2');
    const code = await new Promise((resolve) => child.once('close', resolve));
    assert.deepEqual([code, out], [0, 'ready\nSIGUSR2\n']);
    const bare = spawnSync(process.execPath, ['-e', script("k.onSignal('SIGUSR2', () => {}); k.listenForSignals('SIGRTMIN+1'); console.log('exits');")], { encoding: 'utf8', timeout: 10_000 });
    assert.deepEqual([bare.status, bare.stdout], [0, 'exits\n']);
  });
});

describe('a listener dropped without close()', () => {
  it('is collected with its handlers, so the signal is no longer caught; one with a receive pending is kept for it', async () => {
    const result = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = trackChild(spawnChild(process.execPath, ['--expose-gc', '--input-type=module', '-e', `
        import { listenForSignals, sendSignal } from ${JSON.stringify(INDEX)};
        import { native } from ${JSON.stringify(new URL('../src/native.js', import.meta.url).href)};
        const collect = async () => { for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); } };
        const refs = [];
        (() => { for (let i = 0; i < 100; i++) refs.push(new WeakRef(listenForSignals('SIGUSR2'))); })();
        console.log('caught', native.signalDisposition(12));
        // Its only reference is the pending receive: the signal still reaches it.
        const pending = listenForSignals('SIGUSR2').receive({ timeout: 10000 });
        await collect();
        sendSignal(process.pid, 'SIGUSR2', { value: 7 });
        console.log('received', (await pending).value);
        await collect();
        console.log('left', refs.filter((r) => r.deref() !== undefined).length, 'disposition', native.signalDisposition(12));
      `], { stdio: ['ignore', 'pipe', 'pipe'] }));
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
      child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      child.once('close', (status) => resolve({ status, stdout, stderr }));
    });
    assert.deepEqual([result.status, result.stdout], [0, 'caught 2\nreceived 7\nleft 0 disposition 0\n'], result.stderr);
  });
});

describe('storm', () => {
  it('takes 10,000 signals while streaming a pipe: every real-time one in order, the pipe intact', async (t) => {
    const toPeer = pipe();
    const fromPeer = pipe();
    const peer = new Peer('signal-collect', { signals: ['SIGUSR2', 'SIGRTMIN+6'], until: 'SIGRTMIN+6', count: 5000, settleMs: 300, echo: true },
      { fds: { 3: toPeer.readEnd.fd, 4: fromPeer.writeEnd.fd } });
    toPeer.readEnd.close();
    fromPeer.writeEnd.close();
    try {
      assert.deepEqual(await peer.next(), { event: 'ready' });
      const payload = randomBytes(1 << 20);
      const writing = (async () => {
        for (let at = 0; at < payload.length; at += 4096) await toPeer.writeEnd.write(payload.subarray(at, at + 4096));
        toPeer.writeEnd.close();
      })();
      const hash = createHash('sha256');
      let received = 0;
      const reading = (async () => {
        for (let chunk = await fromPeer.readEnd.read(); chunk !== null; chunk = await fromPeer.readEnd.read()) {
          hash.update(chunk);
          received += chunk.length;
        }
      })();
      let retries = 0;
      for (let i = 0; i < 5000; i++) {
        sendSignal(peer.pid, 'SIGUSR2');
        for (;;) {
          try {
            sendSignal(peer.pid, 'SIGRTMIN+6', { value: i });
            break;
          } catch (err) {
            // The receiver's queue of pending real-time signals (RLIMIT_SIGPENDING) is full: let it drain.
            if ((err as IpcError).code !== 'EAGAIN') throw err;
            retries++;
            await sleep(1);
          }
        }
        if (i % 100 === 99) await yieldLoop();
      }
      await Promise.all([writing, reading]);
      const done = await peer.next<{ counts: Record<string, number>; values: number[]; senders: number[]; echoedBytes: number }>(30_000);
      assert.equal(done.counts['SIGRTMIN+6'], 5000);
      assert.deepEqual(done.values, Array.from({ length: 5000 }, (_, i) => i));
      assert.ok(done.counts.SIGUSR2! >= 1 && done.counts.SIGUSR2! <= 5000, `SIGUSR2 ${done.counts.SIGUSR2}`);
      assert.deepEqual(done.senders, [process.pid]);
      assert.equal(done.echoedBytes, payload.length);
      assert.equal(received, payload.length);
      assert.equal(hash.digest('hex'), createHash('sha256').update(payload).digest('hex'));
      if (retries > 0) t.diagnostic(`sigqueue met a full queue ${retries} times`);
      await peer.success();
    } finally {
      toPeer.writeEnd.close();
      fromPeer.readEnd.close();
    }
  });
});

describe('graceful shutdown', () => {
  it('runs the cleanup once, forwards SIGTERM to its children, and exits 143', async () => {
    const peer = new Peer('signal-shutdown', { children: 2, stubborn: false, cleanupMs: 100, timeout: 5_000 });
    const ready = [await peer.next(), await peer.next(), await peer.next()];
    const parent = ready.find((r) => r.role === 'parent')!;
    const workers = ready.filter((r) => r.role === 'worker').map((r) => r.pid as number).sort();
    assert.deepEqual([...(parent.children as number[])].sort(), workers);
    sendSignal(peer.pid, 'SIGTERM');
    assert.deepEqual(await peer.next(), { event: 'cleanup', signal: 'SIGTERM', from: process.pid });
    assert.deepEqual(await peer.next(), { event: 'cleaned' });
    assert.deepEqual(await peer.exited, { code: 143, signal: null });
    // The peer waited for (and reaped) its children before exiting.
    for (const pid of workers) assert.equal(processState(pid), null);
  });

  it('a second signal forces the exit, SIGKILLing children that ignored the first', async () => {
    const peer = new Peer('signal-shutdown', { children: 1, stubborn: true, cleanupMs: 0, timeout: 20_000 });
    const ready = [await peer.next(), await peer.next()];
    const worker = ready.find((r) => r.role === 'worker')!.pid as number;
    sendSignal(peer.pid, 'SIGTERM');
    const events = [await peer.next(), await peer.next(), await peer.next()];
    assert.deepEqual(events.map((e) => e.event).sort(), ['cleaned', 'cleanup', 'ignored']);
    assert.equal(await stillPending(peer.exited, 100), true);
    sendSignal(peer.pid, 'SIGINT');
    assert.deepEqual(await peer.exited, { code: 130, signal: null });
    await waitUntil('the worker is dead', () => [null, 'Z'].includes(processState(worker)));
  });

  it('the timeout forces the exit when children do not end', async () => {
    const peer = new Peer('signal-shutdown', { children: 1, stubborn: true, cleanupMs: 0, timeout: 300 });
    const ready = [await peer.next(), await peer.next()];
    const worker = ready.find((r) => r.role === 'worker')!.pid as number;
    const started = performance.now();
    sendSignal(peer.pid, 'SIGTERM');
    assert.deepEqual(await peer.exited, { code: 143, signal: null });
    assert.ok(performance.now() - started >= 280, `exited after ${performance.now() - started} ms, before the timeout`);
    await waitUntil('the worker is dead', () => [null, 'Z'].includes(processState(worker)));
  });

  for (const stubborn of [false, true]) {
    it(`forwards the signal to grandchildren too, and waits for them${stubborn ? '; the timeout SIGKILLs them' : ''}`, async () => {
      // Each child starts a grandchild with Node's own spawn; a signal to a process group would reach both.
      const peer = new Peer('signal-shutdown', { children: 1, grandchild: true, stubborn, cleanupMs: 0, timeout: stubborn ? 300 : 10_000 });
      const ready = [await peer.next(), await peer.next(), await peer.next()];
      const grandchild = ready.find((r) => r.role === 'grandchild')!.pid as number;
      try {
        sendSignal(peer.pid, 'SIGTERM');
        // A grandchild left running holds the peer's output open: bounded, so that fails instead of hanging.
        assert.deepEqual(await Promise.race([peer.exited, sleep(20_000).then(() => 'still open')]), { code: 143, signal: null });
        if (stubborn) {
          await waitUntil('the grandchild is dead', () => [null, 'Z'].includes(processState(grandchild)));
        } else {
          // The peer waited for it: gone, or a zombie until init reaps it.
          assert.ok([null, 'Z'].includes(processState(grandchild)), `the grandchild is ${processState(grandchild)}`);
        }
      } finally {
        try {
          process.kill(grandchild, 'SIGKILL');
        } catch {
          // Gone, as it should be.
        }
      }
    });
  }

  it('the documented pattern: cleanup closes the queue, the for-await loop ends quietly, the exit is 143', async () => {
    const name = uniqueName('shutdown');
    const child = trackChild(spawnChild(process.execPath, ['--input-type=module', '-e', `
      import { PosixMessageQueue, shutdownOn } from ${JSON.stringify(INDEX)};
      const queue = PosixMessageQueue.openOrCreate('${name}');
      shutdownOn(['SIGINT', 'SIGTERM'], { cleanup: () => { queue.close(); PosixMessageQueue.unlink('${name}'); } });
      console.log('ready');
      for await (const { data } of queue) console.log(data.toString());
      console.log('loop ended');`], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
    try {
      await waitUntil('the consumer is ready', () => out === 'ready\n');
      const queue = PosixMessageQueue.open(name);
      await queue.send(Buffer.from('job 1'));
      queue.close();
      await waitUntil('the consumer took the job', () => out === 'ready\njob 1\n');
      sendSignal(child.pid!, 'SIGTERM');
      assert.deepEqual(await once(child, 'close'), [143, null]);
      assert.deepEqual([out, err], ['ready\njob 1\nloop ended\n', '']);
      throwsWith(() => PosixMessageQueue.open(name), 'ENOENT');
    } finally {
      try {
        PosixMessageQueue.unlink(name);
      } catch {
        // Unlinked by the cleanup, as it should be.
      }
    }
  });

  it('refuses bad options before installing anything', () => {
    const before = native.signalDisposition(15);
    throwsWith(() => shutdownOn(['SIGTERM', 'SIGKILL']), 'ERR_IPC_UNCATCHABLE', /^shutdownOn SIGKILL/);
    throwsWith(() => shutdownOn(['SIGTERM'], { timeout: -1 }), 'ERR_IPC_INVALID_ARGUMENT', /timeout/);
    throwsWith(() => shutdownOn(['SIGTERM'], { cleanup: 5 as never }), 'ERR_IPC_INVALID_ARGUMENT', /cleanup/);
    throwsWith(() => shutdownOn([]), 'ERR_IPC_INVALID_ARGUMENT', /at least one signal/);
    assert.equal(native.signalDisposition(15), before);
  });
});

describe('Ctrl+C in a real terminal', () => {
  it('one Ctrl+C runs the handler (no sender pid: the terminal sent it) and the demo exits cleanly with 130', () => {
    const r = inTerminal([process.execPath, CLI, 'demo', 'ctrl-c', '--cleanup', '200', '--json'], [{ waitFor: '"ready"', send: '\u0003' }]);
    assert.deepEqual([r.timedOut, r.stepsLeft, r.exitCode], [false, 0, 130], r.output);
    // The terminal echoes ^C before the handler's line.
    const events = r.output.split(/\r?\n/).filter((l) => l.includes('{')).map((l) => JSON.parse(l.slice(l.indexOf('{'))) as Record<string, unknown>);
    assert.deepEqual(events.map((e) => e.event), ['ready', 'signal', 'clean-exit']);
    assert.deepEqual({ ...events[1], process: 0 }, {
      event: 'signal', process: 0, signal: 'SIGINT', number: 2, pid: null, uid: null, code: S.SI_KERNEL, origin: 'kernel', value: null, count: 1,
    });
  });

  it('a second Ctrl+C during the cleanup forces the exit', () => {
    const r = inTerminal([process.execPath, CLI, 'demo', 'ctrl-c', '--cleanup', '10000', '--json'],
      [{ waitFor: '"ready"', send: '\u0003' }, { waitFor: '"signal"', send: '\u0003' }]);
    assert.deepEqual([r.timedOut, r.stepsLeft, r.exitCode], [false, 0, 130], r.output);
    assert.match(r.output, /"event":"forced".*"count":2/);
    assert.doesNotMatch(r.output, /clean-exit/);
  });

  it('once the handler is removed, Ctrl+C ends the process by SIGINT again', () => {
    const r = inTerminal([process.execPath, PEER_MAIN, 'signal-handler', JSON.stringify({ signal: 'SIGINT', count: 1, then: 'dispose' })],
      [{ waitFor: '"ready"', send: '\u0003' }, { waitFor: '"released"', send: '\u0003' }]);
    assert.deepEqual([r.timedOut, r.stepsLeft, r.signal], [false, 0, 2], r.output);
    assert.match(r.output, /"signal":"SIGINT","number":2,"pid":null,"uid":null,"code":128,"origin":"kernel"/);
  });
});

describe('signal cleanup', () => {
  it('leaves no child process, handler or descriptor behind', async () => {
    await killAllPeers();
    // The stdio pipes of the last children close on the event loop after they exit.
    await waitUntil('the descriptors of the tests are closed', () => watchedFds().length === baseline);
    assert.equal(runningChildren(), 0);
    for (const n of [12, 34, 35, 36, 37, 38, 39, 40]) assert.equal(native.signalDisposition(n), n === 12 ? USR2_BEFORE : 0, signalName(n));
    assert.equal(watchedFds().length, baseline);
    assert.ok(existsSync(PTY_RUN));
  });
});
