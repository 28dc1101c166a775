/**
 * The NATS mailbox across "machines": three network namespaces, each with
 * its own interfaces and addresses, stand for three hosts. The server runs
 * in one; a sender and a receiver, each in another, reach it over a veth
 * link of their own by its address on that link. Needs root, iproute2 and
 * nats-server; skips otherwise.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { natsMissing } from './helpers/nats-server.js';
import { killAllPeers, trackChild } from './helpers/peer.js';
import { ip, ipSteps, namespacesLeft, netnsMissing } from './helpers/netns.js';

const INDEX = fileURLToPath(new URL('../src/index.js', import.meta.url));
const tag = `${process.pid % 100000}${Math.random().toString(36).slice(2, 5)}`;
const SERVER_NS = `ipk-ns-${tag}`;
const SENDER_NS = `ipk-na-${tag}`;
const RECEIVER_NS = `ipk-nb-${tag}`;
// The server's address on the sender's link and on the receiver's.
const SERVER_IP = { sender: '10.79.1.1', receiver: '10.79.2.1' };
const store = mkdtempSync(path.join(tmpdir(), 'ipckit-nats-netns-'));

let why: string | false = natsMissing;
let server: ChildProcess | undefined;

before(async () => {
  if (why !== false) return;
  why = netnsMissing() ?? false;
  if (why !== false) return;
  // Interface names have at most 15 bytes.
  const [sa, ss, rb, rs] = ['a', 's', 'b', 't'].map((x) => `ik${x}${tag}`.slice(0, 15)) as [string, string, string, string];
  const steps: string[][] = [
    ['netns', 'add', SERVER_NS], ['netns', 'add', SENDER_NS], ['netns', 'add', RECEIVER_NS],
    ['link', 'add', sa, 'netns', SENDER_NS, 'type', 'veth', 'peer', 'name', ss, 'netns', SERVER_NS],
    ['link', 'add', rb, 'netns', RECEIVER_NS, 'type', 'veth', 'peer', 'name', rs, 'netns', SERVER_NS],
    ['-n', SENDER_NS, 'addr', 'add', '10.79.1.2/24', 'dev', sa], ['-n', SERVER_NS, 'addr', 'add', `${SERVER_IP.sender}/24`, 'dev', ss],
    ['-n', RECEIVER_NS, 'addr', 'add', '10.79.2.2/24', 'dev', rb], ['-n', SERVER_NS, 'addr', 'add', `${SERVER_IP.receiver}/24`, 'dev', rs],
    ['-n', SENDER_NS, 'link', 'set', sa, 'up'], ['-n', SERVER_NS, 'link', 'set', ss, 'up'],
    ['-n', RECEIVER_NS, 'link', 'set', rb, 'up'], ['-n', SERVER_NS, 'link', 'set', rs, 'up'],
    ['-n', SERVER_NS, 'link', 'set', 'lo', 'up'], ['-n', SENDER_NS, 'link', 'set', 'lo', 'up'], ['-n', RECEIVER_NS, 'link', 'set', 'lo', 'up'],
  ];
  why = ipSteps(steps) ?? false;
  if (why !== false) return;
  const child = trackChild(spawn('ip', ['netns', 'exec', SERVER_NS, 'nats-server', '-js', '-a', '0.0.0.0', '-p', '4222', '-sd', store],
    { stdio: ['ignore', 'ignore', 'pipe'] }));
  server = child;
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (/Server is ready/.test(log)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`nats-server exited (${code}): ${log}`)));
  });
});

after(async () => {
  server?.kill('SIGTERM');
  await killAllPeers();
  // Deleting a namespace deletes its ends of the veth pairs, and so the pairs.
  for (const ns of [SERVER_NS, SENDER_NS, RECEIVER_NS]) ip('netns', 'del', ns);
  rmSync(store, { recursive: true, force: true });
  assert.ok(!namespacesLeft(tag), 'namespaces removed');
});

/** A Node process inside namespace `ns` running `script` (with `ipc` imported): its stdout lines and exit code. */
async function runIn(ns: string, script: string): Promise<{ code: number | null; lines: string[]; stderr: string }> {
  const child = trackChild(spawn('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e',
    `import * as ipc from ${JSON.stringify(INDEX)};\n${script}`], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { code, lines, stderr };
}

describe('the NATS mailbox between network namespaces', () => {
  it('a sender and a receiver on two "hosts" exchange messages by priority through a server on a third', async (t) => {
    if (why !== false) {
      t.skip(why);
      return;
    }
    const sent = await runIn(SENDER_NS, `
      const box = await ipc.NatsMailbox.openOrCreate('nats://${SERVER_IP.sender}:4222/across', { codec: 'json' });
      await box.send({ n: 1 }, { priority: 1 });
      await box.send({ n: 2 }, { priority: 9 });
      await box.send({ n: 3 }, { priority: 1 });
      console.log('sent');
      await box.close();`);
    assert.equal(sent.code, 0, sent.stderr);
    assert.deepEqual(sent.lines, ['sent']);
    // The receiver's namespace has no route to the sender's: only the server joins them.
    const unreachable = await runIn(RECEIVER_NS, `
      try { await ipc.NatsMailbox.open('nats://${SERVER_IP.sender}:4222/across', { connectTimeout: 300 }); }
      catch (err) { console.log(err.code); }`);
    assert.deepEqual(unreachable.lines, ['ERR_IPC_UNREACHABLE']);
    const received = await runIn(RECEIVER_NS, `
      const box = await ipc.NatsMailbox.open('nats://${SERVER_IP.receiver}:4222/across', { codec: 'json' });
      for (let i = 0; i < 3; i++) { const m = await box.receive({ timeout: 10000 }); console.log(m.priority, m.data.n); }
      await box.unlink();
      await box.close();`);
    assert.equal(received.code, 0, received.stderr);
    assert.deepEqual(received.lines, ['9 2', '1 1', '1 3']);
  });
});
