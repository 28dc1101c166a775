/**
 * `ipckit demo blocking`: a slow client stalls the blocking server and none
 * of the four fixes; the figures as JSON and as a table; every server,
 * child process and socket file gone at the end, also when interrupted.
 * Times are never compared with thresholds: whether a reply came before the
 * slow client left is read from the order of events the demo reports.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { all, describeRun, fails, json, launch, ok } from './helpers/cli.js';
import { killAllPeers, runningChildren } from './helpers/peer.js';
import type { HoldRun } from '../src/cli/commands/demo.js';

after(async () => {
  await killAllPeers();
});

const STRATEGIES = ['blocking', 'fork', 'prefork', 'poll', 'event'];

/** The socket files a demo run as `pid` made (or left). */
function socketFiles(pid: number): string[] {
  return readdirSync(tmpdir()).filter((f) => f.startsWith(`ipckit-demo-blocking-${pid}-`));
}

/** The server child processes started by `pid` that are still running (their command line names their parent). */
function serverChildren(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue; // It exited meanwhile.
    }
    if (cmdline.includes('server-child.js') && cmdline.includes(`"parent":${pid},`)) found.push(Number(entry));
  }
  return found;
}


describe('ipckit demo blocking', () => {
  // The slow client holds on for 3 s at most: far longer than any fix needs to answer, even on a loaded machine.
  it('the blocking server answers only once the slow client has left; the event server while it holds on', { timeout: 60_000 }, async () => {
    const jsonArgs = ['demo', 'blocking', '--clients', '3', '--hold', '3000', '--json'];
    const textArgs = ['demo', 'blocking', '--clients', '2', '--hold', '3000'];
    const [asJson, asText] = await all([() => ok(jsonArgs), () => ok(textArgs)]);

    const out = json(asJson!.stdout) as { clients: number; holdMs: number; strategies: Record<string, HoldRun> };
    const report = describeRun(jsonArgs, asJson!);
    assert.deepEqual(Object.keys(out), ['clients', 'holdMs', 'strategies'], report);
    assert.deepEqual([out.clients, out.holdMs], [3, 3000], report);
    assert.deepEqual(Object.keys(out.strategies), STRATEGIES, report);
    for (const strategy of STRATEGIES) {
      const run = out.strategies[strategy]!;
      assert.deepEqual(Object.keys(run), ['processes', 'waitMs', 'medianWaitMs', 'maxWaitMs', 'repliedWhileSlowHeld', 'waitedForSlowClient', 'slowHeldMs'], report);
      assert.equal(run.waitMs.length, 3, report);
      for (const ms of [...run.waitMs, run.medianWaitMs, run.maxWaitMs, run.slowHeldMs]) assert.ok(Number.isFinite(ms) && ms >= 0, report);
      assert.equal(run.maxWaitMs, Math.max(...run.waitMs), report);
      assert.equal(run.medianWaitMs, [...run.waitMs].sort((a, b) => a - b)[1], report);
      assert.ok(Number.isInteger(run.repliedWhileSlowHeld) && run.repliedWhileSlowHeld >= 0 && run.repliedWhileSlowHeld <= 3, report);
      assert.equal(run.waitedForSlowClient, run.repliedWhileSlowHeld === 0, report);
    }
    // Who served: the blocking server's one child; a process per connection; the pool of two (round robin
    // over three connections reaches both); the demo process itself.
    assert.deepEqual(STRATEGIES.map((s) => out.strategies[s]!.processes), [1, 3, 2, 1, 1], report);
    // The order that must hold: no reply from the blocking server before the slow client left, every
    // reply from the event server before it.
    assert.deepEqual([out.strategies.blocking!.waitedForSlowClient, out.strategies.blocking!.repliedWhileSlowHeld], [true, 0], report);
    assert.deepEqual([out.strategies.event!.waitedForSlowClient, out.strategies.event!.repliedWhileSlowHeld], [false, 3], report);

    const lines = asText!.stdout.split('\n');
    const textReport = describeRun(textArgs, asText!);
    assert.deepEqual(lines.slice(0, 6), [
      'A server that reads its clients with blocking calls serves one at a time: while it waits in read()',
      'for one client, every other client waits too. Below, one server per strategy. A slow client connects',
      'first and sends nothing; then 2 clients each send one request. The slow client leaves after 3000 ms,',
      'or as soon as the 2 have their replies.',
      '',
      '  strategy  processes  replied while the slow client held on   median wait  longest wait',
    ], textReport);
    const rows = lines.slice(6, 11).map((line) => /^ {2}(\w+) +(\d+) {2}(\d) of 2 +(\d+\.\d) ms +(\d+\.\d) ms$/.exec(line));
    assert.deepEqual(rows.map((row) => row?.[1]), STRATEGIES, textReport);
    assert.deepEqual(rows.map((row) => row![2]), ['1', '2', '2', '1', '1'], textReport);
    assert.equal(rows[0]![3], '0', textReport);
    assert.equal(rows[4]![3], '2', textReport);
    assert.deepEqual(lines.slice(11, 13), ['', 'blocking: its one serving process sat in read() on the slow client\'s connection; the others waited in the'], textReport);
    assert.deepEqual(lines.filter((line) => /^\w+: +/.test(line)).map((line) => line.split(':')[0]), STRATEGIES, textReport);
    assert.deepEqual(lines.slice(-3), ['', 'The servers run the same handler (docs/server.md); ipckit serve starts any of them from the shell.', ''], textReport);

    for (const r of [asJson!, asText!]) {
      assert.deepEqual(socketFiles(r.pid), [], 'every socket file is removed');
      assert.deepEqual(serverChildren(r.pid), [], 'no server child outlives the demo');
    }
  });

  it('closes the server it is running, its child and its socket file when SIGTERM interrupts it', { timeout: 30_000 }, async () => {
    const { child, done } = launch(['demo', 'blocking', '--hold', '20000']);
    const pid = child.pid!;
    // The blocking server is up and its child is serving the slow client (or about to).
    const file = `${tmpdir()}/ipckit-demo-blocking-${pid}-blocking.sock`;
    let children: number[] = [];
    for (let i = 0; i < 1000 && (!existsSync(file) || children.length === 0); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      children = serverChildren(pid);
    }
    assert.ok(existsSync(file), `${file} never appeared`);
    assert.equal(children.length, 1, `the blocking server has one child: ${children.join(', ')}`);
    child.kill('SIGTERM');
    const r = await done;
    assert.equal(r.status, 143, describeRun(['demo', 'blocking'], r));
    assert.equal(r.stderr, '');
    assert.deepEqual(socketFiles(pid), []);
    assert.deepEqual(serverChildren(pid), []);
    assert.equal(existsSync(`/proc/${children[0]}`), false, 'the child was reaped');
  });

  it('refuses bad counts with a usage error', async () => {
    await all([
      () => fails(['demo', 'blocking', '--clients', '0'], 2, 'ERR_IPC_USAGE'),
      () => fails(['demo', 'blocking', '--hold', 'soon'], 2, 'ERR_IPC_USAGE'),
      () => fails(['demo', 'blocking', 'extra'], 2, 'ERR_IPC_USAGE'),
    ]);
  });
});

describe('cli demo cleanup', () => {
  it('leaves no child process behind', async () => {
    await killAllPeers();
    assert.equal(runningChildren(), 0);
  });
});
