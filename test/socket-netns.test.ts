/**
 * Sockets across machines: two network namespaces joined by a veth pair
 * stand for two hosts, each with its own interfaces and addresses. A TCP
 * and a UDP exchange run between a process in each, addressed by the other
 * namespace's IP address. Needs root and iproute2 (`ip`); skips otherwise.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { killAllPeers, trackChild } from './helpers/peer.js';
import { ip, ipSteps, namespacesLeft, netnsMissing } from './helpers/netns.js';

const INDEX = fileURLToPath(new URL('../src/index.js', import.meta.url));
const tag = `${process.pid % 100000}${Math.random().toString(36).slice(2, 5)}`;
const NS = [`ipk-a-${tag}`, `ipk-b-${tag}`];
// Interface names have at most 15 bytes.
const VETH = [`ika${tag}`.slice(0, 15), `ikb${tag}`.slice(0, 15)];
const IP = ['10.78.0.1', '10.78.0.2'];

let why: string | undefined;

before(() => {
  why = netnsMissing();
  if (why !== undefined) return;
  const steps: string[][] = [
    ['netns', 'add', NS[0]!], ['netns', 'add', NS[1]!],
    ['link', 'add', VETH[0]!, 'netns', NS[0]!, 'type', 'veth', 'peer', 'name', VETH[1]!, 'netns', NS[1]!],
    ['-n', NS[0]!, 'addr', 'add', `${IP[0]}/24`, 'dev', VETH[0]!], ['-n', NS[1]!, 'addr', 'add', `${IP[1]}/24`, 'dev', VETH[1]!],
    ['-n', NS[0]!, 'link', 'set', VETH[0]!, 'up'], ['-n', NS[1]!, 'link', 'set', VETH[1]!, 'up'],
    ['-n', NS[0]!, 'link', 'set', 'lo', 'up'], ['-n', NS[1]!, 'link', 'set', 'lo', 'up'],
  ];
  why = ipSteps(steps);
});

after(async () => {
  await killAllPeers();
  // Deleting a namespace deletes its end of the veth pair, and so the pair.
  for (const ns of NS) ip('netns', 'del', ns);
  assert.ok(!namespacesLeft(tag), 'namespaces removed');
});

/** A Node process inside namespace `ns` running `script` (with `ipc` imported); resolves lines it prints. */
function inNamespace(ns: string, script: string): { line: () => Promise<string>; exited: Promise<number | null>; stderr: () => string } {
  const child = trackChild(spawn('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e',
    `import * as ipc from ${JSON.stringify(INDEX)};\n${script}`], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const w = waiters.shift();
    if (w) w(l);
    else lines.push(l);
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    exited,
    stderr: () => stderr,
    line: () => (lines.length > 0 ? Promise.resolve(lines.shift()!) : new Promise((resolve, reject) => {
      waiters.push(resolve);
      void exited.then((code) => reject(new Error(`exited (${code}) before printing: ${stderr}`)));
    })),
  };
}

describe('sockets between two network namespaces (two hosts joined by a veth pair)', () => {
  it('TCP: a client in one namespace reaches a server in the other by its IP address', async (t) => {
    if (why !== undefined) {
      t.skip(why);
      return;
    }
    const server = inNamespace(NS[1]!, `
      const server = ipc.listen('tcp://${IP[1]}:0');
      console.log(server.address);
      const conn = await server.accept();
      const { data } = await conn.receive();
      await conn.send(Buffer.from(data.toString() + ' / answered from ' + conn.localAddress));
      console.log(conn.remoteAddress);
      conn.close(); server.close();`);
    const address = await server.line();
    assert.match(address, new RegExp(`^tcp://${IP[1]!.replaceAll('.', '\\.')}:\\d+$`));
    const client = inNamespace(NS[0]!, `
      const sock = await ipc.connect(${JSON.stringify(address)}, { timeout: 10000 });
      await sock.send(Buffer.from('hello from ' + sock.localAddress));
      console.log((await sock.receive({ timeout: 10000 })).data.toString());
      sock.close();`);
    const reply = await client.line();
    assert.match(reply, new RegExp(`^hello from tcp://${IP[0]!.replaceAll('.', '\\.')}:\\d+ / answered from ${address.replaceAll('.', '\\.')}$`));
    assert.match(await server.line(), new RegExp(`^tcp://${IP[0]!.replaceAll('.', '\\.')}:\\d+$`));
    assert.equal(await client.exited, 0, client.stderr());
    assert.equal(await server.exited, 0, server.stderr());
  });

  it('UDP: datagrams go both ways, each with the other host\'s address', async (t) => {
    if (why !== undefined) {
      t.skip(why);
      return;
    }
    const server = inNamespace(NS[1]!, `
      const s = ipc.bind('udp://${IP[1]}:0');
      console.log(s.localAddress);
      const { data, from } = await s.receive();
      await s.send(Buffer.from(data.toString().toUpperCase()), { to: from });
      console.log(from);
      s.close();`);
    const address = await server.line();
    const client = inNamespace(NS[0]!, `
      const s = ipc.bind('udp://${IP[0]}:0');
      // A datagram sent before the server's first receive waits in its buffer; one more each second covers a lost one.
      const timer = setInterval(() => s.send(Buffer.from('ping'), { to: ${JSON.stringify(address)} }), 1000);
      await s.send(Buffer.from('ping'), { to: ${JSON.stringify(address)} });
      const { data, from } = await s.receive({ timeout: 10000 });
      clearInterval(timer);
      console.log(data.toString(), from);
      s.close();`);
    assert.equal(await client.line(), `PING ${address}`);
    assert.match(await server.line(), new RegExp(`^udp://${IP[0]!.replaceAll('.', '\\.')}:\\d+$`));
    assert.equal(await client.exited, 0, client.stderr());
    assert.equal(await server.exited, 0, server.stderr());
  });
});
