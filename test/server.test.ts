/**
 * Servers: every strategy serves several concurrent clients with one
 * handler module; replies, connection.write/end, asynchronous handlers in
 * order, failures closing one connection only; the blocking server blocked
 * in read while the next client waits; fork and prefork children reaped,
 * stopped on close, on SIGTERM of the server and when it is killed; poll and
 * event servers surviving a client killed mid-request; hostile input.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn as spawnChild } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { getEventListeners, once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { type MessageSocket, SERVER_STRATEGIES, type Server, type ServerStrategy, connect, serve, socketPair } from '../src/index.js';
import { rejectsWith, waitUntil } from './helpers/assert.js';
import { CLI } from './helpers/cli.js';
import { openFds } from './helpers/objects.js';
import { killAllPeers, trackChild } from './helpers/peer.js';
import { blockedIn } from './helpers/proc.js';

const HANDLER = fileURLToPath(new URL('./helpers/server-handler.js', import.meta.url));
const STUBBORN = fileURLToPath(new URL('./helpers/stubborn-handler.js', import.meta.url));
const DYING = fileURLToPath(new URL('./helpers/dying-handler.js', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-server-test-'));
let counter = 0;
const address = (): string => `unix:${dir}/s${++counter}.sock`;
const servers = new Set<Server>();

after(async () => {
  await Promise.all([...servers].map((s) => s.close()));
  await killAllPeers();
  const left = existsSync(dir) ? readdirSync(dir) : [];
  rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(left, [], 'socket files left behind');
});


async function started(strategy: ServerStrategy, options: Record<string, unknown> = {}): Promise<Server> {
  const server = await serve(address(), HANDLER, { strategy, ...options });
  servers.add(server);
  return server;
}

/** `text` as one length-prefixed message. */
function frameOf(text: string): Buffer {
  const out = Buffer.alloc(4 + Buffer.byteLength(text));
  out.writeUInt32BE(out.length - 4, 0);
  out.write(text, 4);
  return out;
}

/**
 * Writes `request` on a raw connection until the server stops reading it
 * (no drain within 3 s): how many went out. Fails if that takes 256 MiB.
 */
async function writeUntilStalled(client: net.Socket, request: Buffer): Promise<number> {
  let sent = 0;
  for (;;) {
    while (client.write(request)) sent++;
    sent++;
    const drained = await Promise.race([once(client, 'drain').then(() => true), sleep(3000).then(() => false)]);
    if (!drained) return sent;
    assert.ok(sent * request.length < 256 * 1024 * 1024, 'the server kept reading without bound');
  }
}

async function ask(client: MessageSocket, text: string): Promise<string> {
  await client.send(Buffer.from(text));
  return (await client.receive({ timeout: 20_000 })).data.toString();
}

/** Whether pid is a live process (not a zombie). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Whether pid exists at all (a zombie does). */
function exists(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

describe('serve: every strategy, one handler', () => {
  for (const strategy of SERVER_STRATEGIES) {
    it(`${strategy}: serves concurrent clients with the same handler module`, async () => {
      const server = await started(strategy);
      const clients = await Promise.all([1, 2, 3].map(() => connect(server.address)));
      if (strategy === 'blocking') {
        // One at a time: each client is served, then leaves, and the next one's turn comes.
        for (const [i, client] of clients.entries()) {
          assert.equal(await ask(client, `c${i}`), `echo:c${i}`);
          client.close();
        }
      } else {
        await Promise.all(clients.map((c, i) => c.send(Buffer.from(`c${i}`))));
        const replies = await Promise.all(clients.map(async (c) => (await c.receive({ timeout: 20_000 })).data.toString()));
        assert.deepEqual(replies, ['echo:c0', 'echo:c1', 'echo:c2']);
        const pids = await Promise.all(clients.map((c) => ask(c, 'pid')));
        if (strategy === 'event' || strategy === 'poll') assert.deepEqual(pids, [String(process.pid), String(process.pid), String(process.pid)]);
        if (strategy === 'fork') assert.equal(new Set(pids).size, 3, 'a process per connection');
        if (strategy === 'fork' || strategy === 'prefork') for (const pid of pids) assert.ok(server.childPids.includes(Number(pid)), `${pid} is a child`);
        // Several messages of one client, in order, and the handler's other replies.
        assert.equal(await ask(clients[0]!, 'twice'), 'first');
        assert.equal((await clients[0]!.receive({ timeout: 20_000 })).data.toString(), 'second');
        await clients[1]!.send(Buffer.from('later:30'));
        await clients[1]!.send(Buffer.from('after'));
        assert.equal((await clients[1]!.receive({ timeout: 20_000 })).data.toString(), 'later 30');
        assert.equal((await clients[1]!.receive({ timeout: 20_000 })).data.toString(), 'echo:after');
        assert.deepEqual(JSON.parse(await ask(clients[2]!, 'peer')), { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
        assert.equal(await ask(clients[2]!, 'bye'), 'bye');
        await rejectsWith(() => clients[2]!.receive({ timeout: 20_000 }), 'ERR_IPC_PEER_CLOSED');
        for (const c of clients) c.close();
      }
      await server.close();
      assert.equal(existsSync(server.address.slice('unix:'.length)), false, 'the socket file is removed');
      for (const pid of server.childPids) assert.equal(running(pid), false);
    });
  }

  it('a handler that throws closes its connection only', async () => {
    const server = await started('event');
    const warnings: string[] = [];
    server.on('handlerError', (err: Error, id: number) => warnings.push(`${id}:${err.message}`));
    const [a, b] = await Promise.all([connect(server.address), connect(server.address)]);
    await a.send(Buffer.from('fail'));
    await rejectsWith(() => a.receive({ timeout: 20_000 }), 'ERR_IPC_PEER_CLOSED');
    assert.equal(await ask(b, 'still'), 'echo:still');
    assert.deepEqual(warnings, ['1:asked to fail']);
    assert.equal(server.stats().handlerErrors, 1);
    a.close();
    b.close();
    await server.close();
  });

  it('a function handler, a json codec and bytes framing in process', async () => {
    const server = await serve<{ n: number; doubled?: number }>(address(), (data) => ({ n: data.n, doubled: data.n * 2 }), { strategy: 'poll', codec: 'json', interval: 1 });
    servers.add(server);
    const client = await connect<{ n: number; doubled?: number }>(server.address, { codec: 'json' });
    await client.send({ n: 21 });
    assert.deepEqual((await client.receive({ timeout: 20_000 })).data, { n: 21, doubled: 42 });
    client.close();
    await server.close();
    const raw = await serve(address(), (chunk: Buffer) => Buffer.from(chunk.toString().toUpperCase()), { framing: 'bytes' });
    servers.add(raw);
    const stream = await connect(raw.address);
    await stream.write(Buffer.from('abc'));
    assert.equal((await stream.read({ timeout: 20_000 }))!.toString(), 'ABC');
    stream.close();
    await raw.close();
  });

  it('with a codec every reply goes through it (strings too), in this process and in children', async () => {
    const inProcess = await serve<{ name: string } | string>(address(), (data, connection) => {
      connection.write({ name: 'first' });
      return (data as { name: string }).name;
    }, { codec: 'json' });
    servers.add(inProcess);
    const client = await connect<{ name: string } | string>(inProcess.address, { codec: 'json' });
    await client.send({ name: 'ada' });
    assert.deepEqual((await client.receive({ timeout: 20_000 })).data, { name: 'first' });
    assert.equal((await client.receive({ timeout: 20_000 })).data, 'ada');
    client.close();
    await inProcess.close();
    for (const strategy of ['fork', 'prefork'] as const) {
      const server = await started(strategy, { codec: 'json' });
      const typed = await connect<unknown>(server.address, { codec: 'json' });
      await typed.send([1, 'two']);
      assert.deepEqual((await typed.receive({ timeout: 20_000 })).data, { got: [1, 'two'] });
      typed.close();
      await server.close();
    }
  });

  for (const strategy of ['blocking', 'fork', 'prefork'] as const) {
    it(`${strategy}: a handler failure in a child process is reported on its stderr`, async () => {
      const where = address();
      const cli = trackChild(spawnChild(process.execPath, [CLI, 'serve', where, '--strategy', strategy, '--handler', HANDLER, '--json'],
        { stdio: ['ignore', 'pipe', 'pipe'] }));
      let stderr = '';
      cli.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
      const lines = createInterface({ input: cli.stdout! })[Symbol.asyncIterator]();
      await lines.next();
      const client = await connect(where);
      await client.send(Buffer.from('fail'));
      await rejectsWith(() => client.receive({ timeout: 20_000 }), 'ERR_IPC_PEER_CLOSED');
      client.close();
      await waitUntil('the failure is on stderr', () => /IpcHandlerWarning: A handler failed on connection 1 of .*asked to fail/s.test(stderr));
      const exited = new Promise((resolve) => cli.once('exit', resolve));
      cli.kill('SIGTERM');
      await exited;
    });
  }

  it('bad arguments are clear errors before anything listens', async () => {
    const a = address();
    await rejectsWith(() => serve(a, HANDLER, { strategy: 'threads' as never }), 'ERR_IPC_INVALID_ARGUMENT', /strategy/);
    await rejectsWith(() => serve(a, HANDLER, { stratgy: 'fork' } as never), 'ERR_IPC_INVALID_ARGUMENT', /did you mean "strategy"/);
    await rejectsWith(() => serve(a, () => null, { strategy: 'fork' }), 'ERR_IPC_INVALID_ARGUMENT', /module/);
    await rejectsWith(() => serve(a, HANDLER, { strategy: 'event', interval: 5 }), 'ERR_IPC_INVALID_ARGUMENT', /interval/);
    await rejectsWith(() => serve(a, HANDLER, { strategy: 'prefork', workers: 0 }), 'ERR_IPC_INVALID_ARGUMENT', /workers/);
    await rejectsWith(() => serve(a, HANDLER, { framing: 'bytes', codec: 'json' }), 'ERR_IPC_INVALID_ARGUMENT', /codec/);
    await rejectsWith(() => serve(a, path.join(dir, 'missing.js')), 'ERR_IPC_INVALID_ARGUMENT', /could not be loaded/);
    await rejectsWith(() => serve(a, CLI.replace(/main\.js$/, 'output.js')), 'ERR_IPC_INVALID_ARGUMENT', /exports no function/);
    await rejectsWith(() => serve(`unix-dgram:${dir}/d.sock`, HANDLER), 'ERR_IPC_INVALID_ADDRESS', /stream socket/);
    assert.equal(existsSync(a.slice('unix:'.length)), false);
  });
});

describe("serve: framing 'requests', for MessageSocket.request()", () => {
  for (const strategy of SERVER_STRATEGIES) {
    it(`${strategy}: each reply finds its request, a failing handler answers with ERR_IPC_REMOTE and the connection goes on`, async () => {
      const server = await started(strategy, { framing: 'requests' });
      const client = await connect(server.address);
      try {
        // Several in flight: each reply is matched by its id (answered in order on one connection).
        const replies = await Promise.all(['a', 'later:30', 'b'].map((text) => client.request(text, { timeout: 20_000 })));
        assert.deepEqual(replies.map((r) => r.toString()), ['echo:a', 'later 30', 'echo:b']);
        const failed = await rejectsWith(() => client.request('fail', { timeout: 20_000 }), 'ERR_IPC_REMOTE', /asked to fail/);
        assert.deepEqual(failed.cause, { code: null, message: 'asked to fail' });
        // Nothing returned is an empty reply, not silence; write() is refused, and the request answered with why.
        assert.equal((await client.request('nothing', { timeout: 20_000 })).length, 0);
        const wrote = await rejectsWith(() => client.request('twice', { timeout: 20_000 }), 'ERR_IPC_REMOTE', /ERR_IPC_INVALID_ARGUMENT/);
        assert.equal((wrote.cause as { code: unknown }).code, 'ERR_IPC_INVALID_ARGUMENT');
        assert.equal((await client.request('pid', { timeout: 20_000 })).toString().length > 0, true);
      } finally {
        client.close();
      }
      await server.close();
    });
  }

  it('with a codec, requests and replies are values; a message that is no request closes that connection only', async () => {
    for (const strategy of ['event', 'prefork'] as const) {
      const server = await started(strategy, { framing: 'requests', codec: 'json' });
      const client = await connect(server.address, { codec: 'json' });
      const [one, two] = await Promise.all([client.request({ n: 1 }, { timeout: 20_000 }), client.request([2], { timeout: 20_000 })]);
      assert.deepEqual([one, two], [{ got: { n: 1 } }, { got: [2] }]);
      const plain = await connect(server.address);
      await plain.send('no envelope');
      await rejectsWith(() => plain.receive({ timeout: 20_000 }), 'ERR_IPC_PEER_CLOSED');
      plain.close();
      assert.deepEqual(await client.request('still served', { timeout: 20_000 }), { got: 'still served' });
      client.close();
      await server.close();
    }
  });

  it("ipckit serve --framing requests --echo answers request()", async () => {
    const addr = address();
    const child = trackChild(spawnChild(process.execPath, [CLI, 'serve', addr, '--framing', 'requests', '--echo'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const [line] = await once(createInterface({ input: child.stdout! }), 'line') as [string];
    assert.match(line, /^listening on /);
    const client = await connect(addr);
    assert.equal((await client.request('ping', { timeout: 20_000 })).toString(), 'ping');
    client.close();
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit') as [number | null];
    assert.equal(code, 0);
  });
});

describe('serve: the blocking server', () => {
  it('is blocked in read on one client while the next one waits, and serves it once the first leaves', async () => {
    const server = await started('blocking');
    const first = await connect(server.address);
    assert.equal(await ask(first, 'one'), 'echo:one');
    const second = await connect(server.address);
    await second.send(Buffer.from('two'));
    const [child] = server.childPids;
    // The server process sleeps in read(2) on the first client's connection: nothing else runs there.
    await blockedIn(child!, 'read', { main: true });
    assert.equal(second.tryReceive(), undefined);
    first.close();
    assert.equal((await second.receive({ timeout: 20_000 })).data.toString(), 'echo:two');
    second.close();
    await server.close();
    assert.equal(running(child!), false);
  });
});

describe('serve: children are reaped and stopped', () => {
  for (const strategy of ['fork', 'prefork'] as const) {
    it(`${strategy}: no zombie after clients vanish, none left after close()`, async () => {
      const server = await started(strategy, strategy === 'prefork' ? { workers: 2 } : {});
      const clients = await Promise.all([1, 2, 3].map(() => connect(server.address)));
      const pids = await Promise.all(clients.map((c) => ask(c, 'pid')));
      for (const c of clients) c.close();
      if (strategy === 'fork') {
        await waitUntil('every connection\'s child has exited and was reaped', () => pids.every((pid) => !exists(Number(pid))));
        assert.equal(server.stats().children, 0);
      } else {
        // The pool stays, and served the clients in turn.
        assert.equal(server.stats().children, 2);
        assert.deepEqual(new Set(pids), new Set(server.childPids.map(String)));
      }
      const children = server.childPids;
      await server.close();
      for (const pid of [...children, ...pids.map(Number)]) assert.equal(exists(pid), false, `pid ${pid} is gone, not a zombie`);
    });
  }

  it('fork: maxChildren makes further clients wait in the backlog', async () => {
    const server = await started('fork', { maxChildren: 1 });
    const first = await connect(server.address);
    assert.equal(await ask(first, 'a'), 'echo:a');
    const second = await connect(server.address);
    await second.send(Buffer.from('b'));
    await waitUntil('the server has seen the second client', () => server.stats().children === 1);
    assert.equal(second.tryReceive(), undefined);
    assert.equal(server.stats().accepted, 1);
    first.close();
    assert.equal((await second.receive({ timeout: 20_000 })).data.toString(), 'echo:b');
    second.close();
    await server.close();
  });

  for (const [how, signal] of [['stopped with SIGTERM', 'SIGTERM'], ['killed with SIGKILL', 'SIGKILL']] as const) {
    for (const strategy of ['fork', 'prefork', 'blocking'] as const) {
      it(`${strategy}: a server ${how} leaves no child behind${signal === 'SIGKILL' ? ' (children that ignore SIGTERM too)' : ''}`, async () => {
        const where = address();
        const serving = signal === 'SIGKILL' ? ['--handler', STUBBORN] : ['--echo'];
        const cli = trackChild(spawnChild(process.execPath, [CLI, 'serve', where, '--strategy', strategy, ...serving, '--json'],
          { stdio: ['ignore', 'pipe', 'pipe'] }));
        const lines = createInterface({ input: cli.stdout! })[Symbol.asyncIterator]();
        const ready = JSON.parse((await lines.next()).value as string) as { listening: string; pid: number; strategy: string };
        assert.deepEqual(ready, { listening: where, pid: cli.pid, strategy });
        const clients = await Promise.all([1, 2].map(() => connect(where)));
        assert.equal(await ask(clients[0]!, 'x'), signal === 'SIGKILL' ? 'echo:x' : 'x');
        const descendants = childrenOf(cli.pid!);
        assert.ok(descendants.length >= 1, 'the server has children');
        const exited = new Promise<[number | null, string | null]>((resolve) => cli.once('exit', (code, sig) => resolve([code, sig])));
        cli.kill(signal);
        const [code, sig] = await exited;
        if (signal === 'SIGTERM') {
          assert.deepEqual([code, sig], [0, null]);
          const stopped = JSON.parse((await lines.next()).value as string) as { stopped: { strategy: string } };
          assert.equal(stopped.stopped.strategy, strategy);
          assert.equal(existsSync(where.slice('unix:'.length)), false);
        } else {
          assert.deepEqual([code, sig], [null, 'SIGKILL']);
          rmSync(where.slice('unix:'.length), { force: true });
        }
        // Children stop with their parent (SIGTERM on close, PR_SET_PDEATHSIG when it was killed).
        await waitUntil(`the children ${descendants.join(', ')} are gone`, () => descendants.every((pid) => !running(pid)));
        for (const c of clients) {
          await rejectsWith(() => c.receive({ timeout: 20_000 }), 'ERR_IPC_PEER_CLOSED');
          c.close();
        }
      });
    }
  }
});

describe('serve: long-lived children that die', () => {
  it('blocking: a child killed is started again, and the server serves on', async () => {
    const server = await started('blocking');
    const [first] = server.childPids;
    process.kill(first!, 'SIGKILL');
    await waitUntil('a new child serves', () => server.childPids.length === 1 && server.childPids[0] !== first);
    const client = await connect(server.address);
    assert.equal(await ask(client, 'again'), 'echo:again');
    client.close();
    await server.close();
  });

  for (const strategy of ['blocking', 'prefork'] as const) {
    it(`${strategy}: children that keep dying at once stop the server with a warning, without an 'error' listener`, async () => {
      const warnings: string[] = [];
      const onWarning = (w: Error): void => { warnings.push(`${w.name}: ${w.message}`); };
      process.on('warning', onWarning);
      try {
        const server = await serve(address(), DYING, { strategy });
        servers.add(server);
        await waitUntil('the server gave up', () => server.closed, 30_000);
        await server.close();
        await waitUntil('the warning is out', () => warnings.length > 0);
        assert.match(warnings[0]!, new RegExp(`^IpcServerWarning: The server on .* stopped: The ${strategy} children of .* keep exiting at once \\(the last with code 3\\)`));
        assert.deepEqual(server.childPids, []);
      } finally {
        process.off('warning', onWarning);
      }
    });
  }

  it('prefork: a child out of descriptors loses the connections it cannot take, not the ones it holds', async () => {
    const where = address();
    const cli = trackChild(spawnChild('sh', ['-c', `ulimit -n 48 && exec "$0" "$@"`, process.execPath, CLI, 'serve', where,
      '--strategy', 'prefork', '--workers', '1', '--handler', HANDLER, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stderr = '';
    cli.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    const lines = createInterface({ input: cli.stdout! })[Symbol.asyncIterator]();
    await lines.next();
    const held = await connect(where);
    assert.equal(await ask(held, 'first'), 'echo:first');
    // More connections than the child has descriptors: some are lost, none of the others.
    const flood = await Promise.all(Array.from({ length: 60 }, () => connect(where)));
    await Promise.all(flood.map((c) => c.send(Buffer.from('f')).catch(() => undefined)));
    const answered = await Promise.all(flood.map((c) => c.receive({ timeout: 5000 }).then(() => true, () => false)));
    assert.ok(answered.includes(false), 'the child ran out of descriptors');
    assert.equal(await ask(held, 'still'), 'echo:still');
    for (const c of flood) c.close();
    await waitUntil('the loss is reported', () => /IpcServerWarning: a connection handed to this child was closed/.test(stderr));
    const later = await connect(where);
    assert.equal(await ask(later, 'later'), 'echo:later');
    later.close();
    held.close();
    const exited = new Promise((resolve) => cli.once('exit', (code) => resolve(code)));
    cli.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});

/** The pids whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry));
    } catch {
      /* Gone meanwhile. */
    }
  }
  return out;
}

describe('serve: hostile and crashing clients', () => {
  for (const strategy of ['poll', 'event', 'prefork'] as const) {
    it(`${strategy}: a client killed in the middle of a request does not disturb the others`, async () => {
      const server = await started(strategy);
      const other = await connect(server.address);
      const script = `const s = require('net').connect(${JSON.stringify(server.address.slice(5))}, () => ` +
        's.write(Buffer.from([0, 0, 0, 100, 1, 2, 3]), () => process.stdout.write("sent\\n")));';
      const client = trackChild(spawnChild(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] }));
      await createInterface({ input: client.stdout! })[Symbol.asyncIterator]().next();
      client.kill('SIGKILL');
      await new Promise((resolve) => client.once('exit', resolve));
      assert.equal(await ask(other, 'fine'), 'echo:fine');
      if (strategy !== 'prefork') {
        await waitUntil('the dead client\'s connection is closed', () => server.stats().open === 1);
        assert.equal(server.stats().accepted, 2);
      }
      other.close();
      await server.close();
    });
  }

  it('event: messages cut anywhere and merged in any way arrive whole, in order', async () => {
    const server = await started('event');
    const client = net.connect(server.address.slice('unix:'.length));
    await once(client, 'connect');
    const texts = Array.from({ length: 40 }, (_, i) => `m${i}-${'x'.repeat(i * 37 % 300)}`);
    const stream = Buffer.concat(texts.map(frameOf));
    const replies: Buffer[] = [];
    client.on('data', (chunk: Buffer) => replies.push(chunk));
    // Pieces of 1 to 97 bytes, each its own write (and often its own read on the server).
    for (let at = 0, step = 1; at < stream.length; at += step, step = step * 7 % 97 + 1) {
      client.write(stream.subarray(at, at + step));
      if (step % 3 === 0) await sleep(1);
    }
    const expected = Buffer.concat(texts.map((t) => frameOf(`echo:${t}`)));
    await waitUntil('every reply arrived', () => Buffer.concat(replies).length >= expected.length);
    assert.deepEqual(Buffer.concat(replies), expected);
    client.destroy();
    await server.close();
  });

  for (const strategy of ['event', 'poll'] as const) {
    it(`${strategy}: a client that leaves while its handler call never settles is closed, not kept`, async () => {
      const server = await started(strategy, strategy === 'poll' ? { interval: 1 } : {});
      const clients = await Promise.all([1, 2, 3].map(() => connect(server.address)));
      await Promise.all(clients.map((c) => c.send(Buffer.from('hang'))));
      await waitUntil('the calls are made', () => server.stats().messages === 3);
      for (const c of clients) c.close();
      await waitUntil('their connections are closed', () => server.stats().open === 0);
      await server.close();
    });
  }

  it('connection.write(null) fails like a handler error, with ERR_IPC_INVALID_ARGUMENT', async () => {
    const server = await started('event');
    const codes: string[] = [];
    server.on('handlerError', (err: { code?: string }) => codes.push(err.code ?? String(err)));
    const client = await connect(server.address);
    await client.send(Buffer.from('write-null'));
    await rejectsWith(() => client.receive({ timeout: 20_000 }), 'ERR_IPC_PEER_CLOSED');
    assert.deepEqual(codes, ['ERR_IPC_INVALID_ARGUMENT']);
    client.close();
    await server.close();
  });

  it('fork: end() stops the handling, as under the other strategies', async () => {
    const server = await started('fork');
    const client = await connect(server.address);
    await client.write(Buffer.concat(['bye', 'pid', 'pid'].map(frameOf)));
    assert.equal((await client.receive({ timeout: 20_000 })).data.toString(), 'bye');
    await rejectsWith(() => client.receive({ timeout: 20_000 }), 'ERR_IPC_PEER_CLOSED');
    client.close();
    await server.close();
  });

  it('an AbortSignal shared by many servers keeps no listener of a closed one', async () => {
    const stop = new AbortController();
    for (let i = 0; i < 3; i++) await (await serve(address(), HANDLER, { signal: stop.signal })).close();
    assert.equal(getEventListeners(stop.signal, 'abort').length, 0);
    const server = await serve(address(), HANDLER, { signal: stop.signal });
    stop.abort();
    await waitUntil('the abort closed the server', () => server.closed);
    await server.close();
  });

  for (const strategy of ['event', 'poll', 'fork', 'blocking'] as const) {
    it(`${strategy}: a message begun and not finished within frameTimeout closes its connection; others are served`, async () => {
      const server = await started(strategy, { frameTimeout: 150 });
      const stuck = await connect(server.address);
      await stuck.write(Buffer.from([0, 0, 0, 10, 1, 2]));
      await rejectsWith(() => stuck.receive({ timeout: 20_000 }), 'ERR_IPC_PEER_CLOSED');
      stuck.close();
      const fine = await connect(server.address);
      assert.equal(await ask(fine, 'ok'), 'echo:ok');
      if (strategy === 'event' || strategy === 'poll') assert.equal(server.stats().timedOut, 1);
      fine.close();
      await server.close();
    });
  }

  it('event: idleTimeout closes a silent connection, not one that keeps sending', async () => {
    const server = await started('event', { idleTimeout: 1000 });
    const silent = await connect(server.address);
    const chatty = await connect(server.address);
    const closed = silent.receive({ timeout: 20_000 }).then(() => 'message', (err: { code?: string }) => err.code);
    // Chatty sends every 50 ms for longer than the idle timeout, and stays open.
    for (let i = 0; i < 30; i++) {
      assert.equal(await ask(chatty, `m${i}`), `echo:m${i}`);
      await sleep(50);
    }
    assert.equal(await closed, 'ERR_IPC_PEER_CLOSED');
    assert.equal(server.stats().timedOut, 1);
    silent.close();
    chatty.close();
    await server.close();
  });

  it('event: a length prefix over maxMessageSize closes that connection before allocating', async () => {
    const server = await started('event', { maxMessageSize: 1024 });
    const bad = await connect(server.address);
    await bad.write(Buffer.from([0x7f, 0xff, 0xff, 0xff]));
    await rejectsWith(() => bad.receive({ timeout: 20_000 }), 'ERR_IPC_PEER_CLOSED');
    const good = await connect(server.address);
    assert.equal(await ask(good, 'ok'), 'echo:ok');
    await waitUntil('only the good connection is open', () => server.stats().open === 1);
    bad.close();
    good.close();
    await server.close();
  });

  it('event: descriptors a client sends along are closed, not kept', async () => {
    const server = await started('event');
    const client = await connect(server.address);
    assert.equal(await ask(client, 'warm'), 'echo:warm');
    const before = openFds().length;
    const [x, y] = socketPair();
    await client.sendFds([x, y, x], Buffer.from('with fds'));
    assert.equal((await client.receive({ timeout: 20_000 })).data.toString(), 'echo:with fds');
    x.close();
    y.close();
    assert.equal(openFds().length, before);
    client.close();
    await server.close();
  });

  it('event: requests queued behind a handler call that never settles stop the reading, not grow the memory', async () => {
    const server = await started('event');
    const client = net.connect(server.address.slice('unix:'.length));
    await once(client, 'connect');
    client.write(frameOf('hang'));
    await writeUntilStalled(client, frameOf('b'.repeat(64 * 1024)));
    assert.equal(server.stats().open, 1);
    client.destroy();
    await server.close();
  });

  it('event: a client that sends without reading is stopped by backpressure, then served in full', async () => {
    const server = await started('event');
    const client = net.connect(server.address.slice('unix:'.length));
    await once(client, 'connect');
    client.pause();
    const sent = await writeUntilStalled(client, frameOf('b'.repeat(64 * 1024)));
    // Its replies are not lost: reading them lets the server go on, until every request is answered.
    const expected = sent * (4 + 5 + 64 * 1024);
    let received = 0;
    client.on('data', (chunk: Buffer) => { received += chunk.length; });
    client.resume();
    await waitUntil(`${expected} bytes of replies arrived`, () => received === expected, 60_000);
    client.destroy();
    await server.close();
  });
});
