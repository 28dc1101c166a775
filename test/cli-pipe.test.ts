/**
 * The command line and pipes: `ipckit pipe run`, a FIFO in `ipckit ls`, and
 * commands whose reader closes their stdout early.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { Fifo, PosixMessageQueue } from '../src/index.js';
import { CLI, exitOnItsOwn, fails, ipckit, json, ls, lsRow, ok, tourLeftovers } from './helpers/cli.js';
import { ObjectTracker, posixQueueExists } from './helpers/objects.js';
import { killAllPeers, runningChildren, trackChild } from './helpers/peer.js';
import { waitingOnLoop } from './helpers/proc.js';

const objects = new ObjectTracker();

after(async () => {
  await killAllPeers();
  objects.cleanup();
});

describe('ipckit pipe run', () => {
  it('connects commands like the shell\'s | and exits with the last status', async () => {
    assert.equal((await ok(['pipe', 'run', '--', 'printf', 'pear\\napple\\nfig\\n', ':::', 'sort', ':::', 'tr', 'a-z', 'A-Z'])).stdout, 'APPLE\nFIG\nPEAR\n');
    const failing = await ipckit(['pipe', 'run', '--', 'echo', 'x', ':::', 'sh', '-c', 'cat >/dev/null; exit 4']);
    assert.equal(failing.status, 4);
    const summary = await ipckit(['pipe', 'run', '--json', '--', 'sh', '-c', 'exit 3', ':::', 'cat']);
    assert.equal(summary.status, 0);
    const info = json(summary.stdout);
    assert.equal(info.status, 0);
    assert.deepEqual((info.commands as { command: string[]; status: number }[]).map((c) => [c.command, c.status]), [[['sh', '-c', 'exit 3'], 3], [['cat'], 0]]);
    assert.match(await fails(['pipe', 'run', '--', 'no-such-command-ipckit', ':::', 'cat'], 1, 'ENOENT'), /no such command on the PATH/);
    await fails(['pipe', 'run', '--', ':::', 'cat'], 2, 'ERR_IPC_USAGE');
    await fails(['pipe', 'run'], 2, 'ERR_IPC_USAGE');
    // --pipefail: the last non-zero status of any command, as bash's set -o pipefail.
    assert.equal((await ipckit(['pipe', 'run', '--', 'sh', '-c', 'exit 3', ':::', 'cat'])).status, 0);
    assert.equal((await ipckit(['pipe', 'run', '--pipefail', '--', 'sh', '-c', 'exit 3', ':::', 'cat'])).status, 3);
    assert.equal((await ipckit(['pipe', 'run', '--pipefail', '--', 'sh', '-c', 'exit 3', ':::', 'sh', '-c', 'cat; exit 5', ':::', 'cat'])).status, 5);
    assert.equal((await ipckit(['pipe', 'run', '--pipefail', '--', 'echo', 'ok', ':::', 'cat'])).status, 0);
  });
});

describe('ipckit ls and FIFOs', () => {
  it('ls shows a FIFO while a process has it open', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-ls-'));
    const fifo = path.join(dir, 'fifo');
    try {
      Fifo.create(fifo, { mode: 0o640 });
      const reader = Fifo.openRead(fifo, { nonBlocking: true });
      const end = await reader;
      const inventory = await ls();
      const row = inventory.objects.find((o) => o.kind === 'fifo' && o.address === fifo);
      assert.deepEqual([row?.mode, row?.processes], [0o640, [{ pid: process.pid, role: 'holder', alive: true }]]);
      assert.deepEqual(lsRow(inventory.text, fifo), ['fifo', fifo, userInfo().username, '0640', '-', '-', `open:${process.pid}`]);
      end.close();
      assert.equal((await ls()).objects.some((o) => o.address === fifo), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a reader that closes stdout early', () => {
  /**
   * Runs ipckit, reads `lines` lines of its stdout, then closes the pipe;
   * `closed` resolves once this end of the pipe is closed, `done` when ipckit has exited.
   */
  function readThenClose(args: string[], lines: number): {
    pid: number;
    closed: Promise<void>;
    done: Promise<{ pid: number; status: number | null; signal: string | null; stderr: string; got: string[] }>;
  } {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child);
    let stderr = '';
    let buffered = '';
    const got: string[] = [];
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while (got.length < lines && (newline = buffered.indexOf('\n')) >= 0) {
        got.push(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
      }
      if (got.length === lines) child.stdout!.destroy();
    });
    const closed = new Promise<void>((resolve) => child.stdout!.once('close', () => resolve()));
    const done = new Promise<{ pid: number; status: number | null; signal: string | null; stderr: string; got: string[] }>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (status, signal) => {
        resolve({ pid: child.pid!, status, signal, stderr, got });
      });
    });
    return { pid: child.pid!, closed, done };
  }

  it('tour: stops printing, still removes what it created, and does not crash', async () => {
    const r = await readThenClose(['tour', '--json'], 3).done;
    assert.equal(r.got.length, 3);
    assert.equal(r.signal, null);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(posixQueueExists(`/ipckit-tour-${r.pid}`), false);
    assert.deepEqual(tourLeftovers(r.pid), []);
  });

  it('mq recv --count: stops waiting once its reader closes the socket, and takes no message for nobody', async () => {
    const name = objects.name();
    using q = PosixMessageQueue.create(name, { maxMessages: 8, maxMessageSize: 64 });
    // Node's child stdio pipes are Unix sockets: the reader's close shows as a hang-up, as a pipe's does as an error.
    const run = readThenClose(['mq', 'recv', name, '--count', '8'], 1);
    await waitingOnLoop(run.pid, name);
    q.sendSync(Buffer.from('m0'));
    await run.closed;
    const { result: r, unblocked } = await exitOnItsOwn(run.done, () => q.sendSync(Buffer.from('unblock')));
    assert.equal(unblocked, false, `recv did not notice that its reader left: ${JSON.stringify(r)}`);
    assert.deepEqual(r.got, ['m0']);
    assert.deepEqual([r.status, r.stderr], [1,
      `EPIPE: stdout's reader left after 1 of 8 messages. Nothing more was taken: the messages not taken stay in ${name}.\n`]);
    q.sendSync(Buffer.from('m1'));
    assert.equal(q.attributes().messages, 1);
    assert.equal(q.tryReceive()?.data.toString(), 'm1');
    q.unlink();
  });
});

describe('cli pipe cleanup', () => {
  it('leaves no queue and no child process behind', async () => {
    await killAllPeers();
    assert.equal(runningChildren(), 0);
    assert.deepEqual(objects.leftovers(), []);
  });
});
