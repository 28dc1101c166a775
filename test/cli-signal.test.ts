/**
 * `ipckit signal` (send, wait, list), run as real child processes: senders,
 * sigqueue values, process groups, and the exit codes of its failures.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type Launched, all, exitOnItsOwn, fails, json, jsonLines, launch, launchIntoPipe, ok } from './helpers/cli.js';
import { waitUntil } from './helpers/assert.js';
import { ObjectTracker } from './helpers/objects.js';
import { killAllPeers, runningChildren, trackChild } from './helpers/peer.js';

const objects = new ObjectTracker();

after(async () => {
  await killAllPeers();
  objects.cleanup();
});

describe('ipckit signal', () => {
  /** Starts `ipckit signal wait <args>` and resolves once it has printed that it is waiting. */
  async function waiting(args: string[]): Promise<Launched> {
    const run = launch(['signal', 'wait', ...args]);
    let stderr = '';
    run.child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    // "waiting for ... in pid N", or with --json {"waiting": {..., "pid": N}}.
    await waitUntil('ipckit signal wait is ready',
      () => stderr.includes(` in pid ${run.child.pid}\n`) || stderr.includes(`"pid":${run.child.pid}}}\n`) || run.child.exitCode !== null);
    return run;
  }

  it('wait prints each signal with its sender, value and origin; send delivers with kill or sigqueue', async () => {
    const run = await waiting(['SIGUSR2', 'rtmin+1', '--count', '3', '--json']);
    let lines = 0;
    run.child.stdout!.on('data', (chunk: Buffer) => { lines += chunk.toString().split('\n').length - 1; });
    // Pending signals are taken lowest number first: send each only once the previous one was printed.
    const sender = await ok(['signal', 'send', String(run.child.pid), 'SIGRTMIN+1', '--value', '-42']);
    await waitUntil('the first signal is printed', () => lines === 1);
    process.kill(run.child.pid!, 'SIGUSR2');
    await waitUntil('the second signal is printed', () => lines === 2);
    const asJson = await ok(['signal', 'send', String(run.child.pid), '35', '--json']);
    assert.deepEqual(json(asJson.stdout), { signal: 'SIGRTMIN+1', number: 35, target: run.child.pid, value: null });
    const r = await run.done;
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, `{"waiting":{"signals":["SIGUSR2","SIGRTMIN+1"],"pid":${r.pid}}}\n`);
    const uid = process.getuid!();
    assert.deepEqual(jsonLines(r.stdout), [
      { signal: 'SIGRTMIN+1', number: 35, pid: sender.pid, uid, code: -1, origin: 'sigqueue', value: -42 },
      { signal: 'SIGUSR2', number: 12, pid: process.pid, uid, code: 0, origin: 'kill', value: null },
      { signal: 'SIGRTMIN+1', number: 35, pid: asJson.pid, uid, code: 0, origin: 'kill', value: null },
    ]);
  });

  it('wait describes a signal in one line of text', async () => {
    const run = await waiting(['USR2']);
    const sender = await ok(['signal', 'send', String(run.child.pid), 'USR2', '--value', '3']);
    assert.equal(sender.stdout, '');
    const r = await run.done;
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `SIGUSR2 (12) from pid ${sender.pid} (uid ${process.getuid!()}) by sigqueue, value 3\n`);
  });

  it('wait --timeout exits 1 with ERR_IPC_TIMEOUT', async () => {
    const r = await (await waiting(['SIGUSR2', '--timeout', '50'])).done;
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^waiting for SIGUSR2 in pid \d+\nERR_IPC_TIMEOUT: /);
  });

  it('wait --json: the timeout is one JSON object on stderr, after the waiting notice', async () => {
    const r = await (await waiting(['SIGUSR2', '--timeout', '50', '--json'])).done;
    assert.deepEqual([r.status, r.stdout], [1, '']);
    const [notice, error, ...rest] = r.stderr.split('\n');
    assert.deepEqual(JSON.parse(notice!), { waiting: { signals: ['SIGUSR2'], pid: r.pid } });
    assert.deepEqual(JSON.parse(error!), { error: {
      code: 'ERR_IPC_TIMEOUT', message: 'receive on SIGUSR2 timed out after 50 ms. Wait longer, or use the try* call to poll.', address: 'SIGUSR2',
    } });
    assert.deepEqual(rest, ['']);
  });

  it('wait takes no signal once stdout\'s reader is gone, and stops waiting when it goes', async () => {
    const gone = launchIntoPipe(['signal', 'wait', 'SIGUSR2', '--count', '2'], { readerGone: true });
    // It takes nothing: it does not even wait for a signal.
    const { result: before, unblocked: sentBefore } = await exitOnItsOwn(gone.done, () => process.kill(gone.pid, 'SIGUSR2'));
    assert.equal(sentBefore, false, `signal wait did not notice that its reader was gone: ${JSON.stringify(before)}`);
    assert.deepEqual([before.status, before.stderr], [1,
      `waiting for SIGUSR2 in pid ${gone.pid}\nEPIPE: stdout's reader left after 0 of 2 signals. No more signals were taken.\n`]);

    const run = launchIntoPipe(['signal', 'wait', 'SIGUSR2', '--count', '3', '--json']);
    await waitUntil('signal wait is ready', () => run.stderr().includes('"waiting"'));
    process.kill(run.pid, 'SIGUSR2');
    assert.deepEqual(JSON.parse(await run.readLine()), { signal: 'SIGUSR2', number: 12, pid: process.pid, uid: process.getuid!(), code: 0, origin: 'kill', value: null });
    run.readEnd.close();
    const { result, unblocked } = await exitOnItsOwn(run.done, () => process.kill(run.pid, 'SIGUSR2'));
    assert.equal(unblocked, false, `signal wait did not notice that its reader left: ${JSON.stringify(result)}`);
    const [notice, error, ...rest] = result.stderr.split('\n');
    assert.deepEqual(JSON.parse(notice!), { waiting: { signals: ['SIGUSR2'], pid: run.pid } });
    assert.deepEqual(JSON.parse(error!), { error: { code: 'EPIPE', errno: -32, message: 'stdout\'s reader left after 1 of 3 signals. No more signals were taken.' } });
    assert.deepEqual([result.status, rest], [1, ['']]);
  });

  it('send -PGID signals a process group', async () => {
    // setsid makes sleep the leader of its own group.
    const leader = trackChild(spawn('setsid', ['sleep', '30'], { stdio: 'ignore' }));
    const ended = new Promise<[number | null, string | null]>((resolve) => leader.once('close', (code, signal) => resolve([code, signal])));
    await waitUntil('sleep leads its group', () => {
      try {
        const stat = readFileSync(`/proc/${leader.pid}/stat`, 'utf8');
        return stat.includes('(sleep)') && Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === leader.pid;
      } catch {
        return false;
      }
    });
    const r = await ok(['signal', 'send', `-${leader.pid}`, 'TERM', '--json']);
    assert.deepEqual(json(r.stdout), { signal: 'SIGTERM', number: 15, target: { group: leader.pid }, value: null });
    assert.deepEqual(await ended, [null, 'SIGTERM']);
  });

  it('list prints every signal, its default action and whether it can be handled', async () => {
    const rows = JSON.parse((await ok(['signal', 'list', '--json'])).stdout) as Record<string, unknown>[];
    assert.equal(rows.length, 62);
    assert.deepEqual(rows[0], { number: 1, name: 'SIGHUP', defaultAction: 'terminate', catchable: true });
    assert.deepEqual(rows.find((row) => row.name === 'SIGSTOP'), { number: 19, name: 'SIGSTOP', defaultAction: 'stop', catchable: false });
    const text = (await ok(['signal', 'list'])).stdout.split('\n');
    assert.equal(text[0], 'NUM  NAME         DEFAULT    CATCHABLE');
    assert.equal(text[2], '  2  SIGINT       terminate  yes');
    assert.equal(text[10], ' 10  SIGUSR1      terminate  no: Node.js uses it to start the inspector; use SIGUSR2 or a real-time signal');
    assert.equal(text.length, 64);
  });

  it('fails clearly: no such process exits 1, bad targets and signals exit 2, uncatchable signals exit 1', async () => {
    const gone = spawn('true');
    await new Promise((resolve) => gone.once('close', resolve));
    const [esrch, group, minusOne, word, noSignal, unknown, value, kill, rt] = await all([
      () => fails(['signal', 'send', String(gone.pid), 'TERM'], 1, 'ESRCH'),
      () => fails(['signal', 'send', `-${gone.pid}`, 'TERM'], 1, 'ESRCH'),
      () => fails(['signal', 'send', '-1', 'TERM'], 2, 'ERR_IPC_USAGE'),
      () => fails(['signal', 'send', 'init', 'TERM'], 2, 'ERR_IPC_USAGE'),
      () => fails(['signal', 'send', '123'], 2, 'ERR_IPC_USAGE'),
      () => fails(['signal', 'send', '123', 'SIGFOO'], 2, 'ERR_IPC_INVALID_ARGUMENT'),
      () => fails(['signal', 'send', '123', 'USR2', '--value', '1.5'], 2, 'ERR_IPC_USAGE'),
      () => fails(['signal', 'wait', 'KILL'], 1, 'ERR_IPC_UNCATCHABLE'),
      () => fails(['signal', 'wait', 'SIGRTMAX'], 1, 'ERR_IPC_UNCATCHABLE'),
    ]);
    assert.equal(esrch, `ESRCH: kill pid ${gone.pid} failed: No such process (ESRCH). The process has exited, or the pid is wrong.\n`);
    assert.match(group!, new RegExp(`^ESRCH: kill process group ${gone.pid} failed`));
    assert.match(minusOne!, /-1 is not a process group: kill\(-1\) would signal every process of this user/);
    assert.match(word!, /The target must be a pid \(1234\) or a process group as a negative number \(-1234\); got "init"\./);
    assert.match(noSignal!, /ipckit signal send takes <pid\|-pgid> <signal>; got 1 argument\./);
    assert.match(unknown!, /a signal name such as "SIGUSR2"/);
    assert.match(value!, /--value must be an integer/);
    assert.match(kill!, /never lets a process catch, block or ignore SIGKILL/);
    assert.match(rt!, /ipckit reserves it/);
  });
});

describe('cli signal cleanup', () => {
  it('leaves no child process behind', async () => {
    await killAllPeers();
    assert.equal(runningChildren(), 0);
    assert.deepEqual(objects.leftovers(), []);
  });
});
