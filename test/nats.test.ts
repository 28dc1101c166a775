/**
 * The NATS JetStream mailbox against a real nats-server (started on a free
 * loopback port with storage of its own): the queue semantics (full, empty,
 * priorities, timeouts, aborts, close, iteration, codecs), and faults: the
 * server restarted mid-stream, a receiver killed between fetching and
 * handing over, a server that is not there.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { NatsMailbox } from '../src/index.js';
import { rejectsWith, stillPending } from './helpers/assert.js';
import { NatsServer, natsMissing } from './helpers/nats-server.js';
import { killAllPeers, trackChild } from './helpers/peer.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

const STUCK = fileURLToPath(new URL('./helpers/nats-stuck-receiver.js', import.meta.url));
const server = new NatsServer();
let counter = 0;
const unique = (): string => `t${process.pid}-${++counter}`;
const open = new Set<NatsMailbox<unknown>>();

/** A fresh mailbox, closed and removed after the file. */
async function fresh<T = any>(options: Record<string, unknown> = {}): Promise<NatsMailbox<T>> {
  const box = await NatsMailbox.create(server.address(unique()), options) as unknown as NatsMailbox<T>;
  open.add(box as NatsMailbox<unknown>);
  return box;
}

/**
 * Runs `fn` with a second handle of `box` whose connection goes through a
 * relay that can hold the server's answers; releases, closes and stops all
 * of it afterwards.
 */
async function throughRelay(box: NatsMailbox<any>, fn: (relayed: NatsMailbox, proxy: TcpProxy) => Promise<void>): Promise<void> {
  const proxy = await TcpProxy.start(server.port);
  const relayed = await NatsMailbox.open(`nats://127.0.0.1:${proxy.port}/${box.name}`);
  try {
    await fn(relayed, proxy);
  } finally {
    proxy.release();
    await relayed.close();
    await proxy.close();
  }
}

before(async () => {
  if (natsMissing === false) await server.start();
});

after(async () => {
  for (const box of open) {
    if (!box.closed) {
      await box.unlink().catch(() => undefined);
      await box.close();
    }
  }
  await killAllPeers();
  await server.dispose();
});

describe('NatsMailbox', { skip: natsMissing }, () => {
  it('create, open and openOrCreate: EEXIST, ENOENT, created, and the limits asked for', async () => {
    const name = unique();
    const address = server.address(name);
    await rejectsWith(() => NatsMailbox.open(address), 'ENOENT');
    const box = await NatsMailbox.openOrCreate(address, { maxMessages: 5, maxMessageSize: 100, ackWait: 2000, storage: 'memory' });
    open.add(box as NatsMailbox<unknown>);
    assert.equal(box.created, true);
    assert.equal(box.address, address);
    await rejectsWith(() => NatsMailbox.create(address), 'EEXIST');
    const again = await NatsMailbox.openOrCreate(address, { maxMessages: 99 });
    assert.equal(again.created, false);
    assert.equal(again.maxMessages, 5, 'an existing mailbox keeps its own settings');
    await again.close();
    assert.deepEqual(await box.attributes(), {
      messages: 0, bytes: 0, byPriority: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], maxMessages: 5, maxMessageSize: 100, ackWait: 2000, storage: 'memory',
    });
    await rejectsWith(() => box.send(Buffer.alloc(101)), 'ERR_IPC_MESSAGE_TOO_LARGE');
  });

  it('refuses bad addresses and options before connecting', async () => {
    for (const bad of ['nats://127.0.0.1:4222/', 'nats://127.0.0.1:4222/a.b', 'tcp://127.0.0.1:4222/x', 'nats://h/x?y=1', 'nats:///x']) {
      await rejectsWith(() => NatsMailbox.open(bad), 'ERR_IPC_INVALID_ADDRESS');
    }
    await rejectsWith(() => NatsMailbox.create(server.address(unique()), { maxMesages: 3 } as never), 'ERR_IPC_INVALID_ARGUMENT', /maxMessages/);
    await rejectsWith(() => NatsMailbox.create(server.address(unique()), { storage: 'disk' } as never), 'ERR_IPC_INVALID_ARGUMENT');
    const box = await fresh();
    await rejectsWith(() => box.send('x', { priority: 10 }), 'ERR_IPC_INVALID_ARGUMENT');
    await rejectsWith(() => box.send('x', { priority: -1 }), 'ERR_IPC_INVALID_ARGUMENT');
  });

  it('a stream of that name that is no ipckit mailbox is refused, and left alone', async () => {
    const { connect } = await import('@nats-io/transport-node');
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: `127.0.0.1:${server.port}` });
    const name = unique();
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name, subjects: [`orders.${name}`] });
      await rejectsWith(() => NatsMailbox.open(server.address(name)), 'ERR_IPC_INVALID_ADDRESS', /no ipckit mailbox/);
      await rejectsWith(() => NatsMailbox.openOrCreate(server.address(name)), 'ERR_IPC_INVALID_ADDRESS');
      assert.equal((await jsm.streams.info(name)).config.subjects?.[0], `orders.${name}`);
      await jsm.streams.delete(name);
    } finally {
      await nc.close();
    }
  });

  it('hands out the highest priority first, in sending order within a level; strings go as UTF-8', async () => {
    const box = await fresh();
    for (const [text, priority] of [['low', 0], ['mid-1', 5], ['top', 9], ['mid-2', 5], ['default', undefined]] as const) {
      await box.send(text, priority === undefined ? {} : { priority });
    }
    assert.deepEqual((await box.attributes()).byPriority, [2, 0, 0, 0, 0, 2, 0, 0, 0, 1]);
    const got: string[] = [];
    for (let m = await box.tryReceive(); m !== undefined; m = await box.tryReceive()) got.push(`${m.priority}:${m.data.toString()}`);
    assert.deepEqual(got, ['9:top', '5:mid-1', '5:mid-2', '0:low', '0:default']);
    assert.equal((await box.attributes()).messages, 0);
  });

  it('full: trySend is false, send times out, and a waiting send goes through once a receiver takes one', async () => {
    const box = await fresh({ maxMessages: 2 });
    assert.equal(await box.trySend('a'), true);
    assert.equal(await box.trySend('b'), true);
    assert.equal(await box.trySend('c'), false);
    await rejectsWith(() => box.send('c', { timeout: 200 }), 'ERR_IPC_TIMEOUT');
    const ac = new AbortController();
    const aborted = box.send('c', { signal: ac.signal });
    ac.abort();
    await rejectsWith(() => aborted, 'ERR_IPC_ABORTED');
    const waiting = box.send('c', { timeout: 20_000 });
    assert.equal(await stillPending(waiting), true);
    const other = await NatsMailbox.open(box.address);
    assert.equal((await other.receive({ timeout: 5000 })).data.toString(), 'a');
    await waiting;
    assert.equal((await box.attributes()).messages, 2);
    await other.close();
  });

  it('empty: tryReceive is undefined, receive times out or is aborted, and a waiting one gets what another process sends', async () => {
    const box = await fresh();
    assert.equal(await box.tryReceive(), undefined);
    await rejectsWith(() => box.receive({ timeout: 200 }), 'ERR_IPC_TIMEOUT');
    const ac = new AbortController();
    const aborted = box.receive({ signal: ac.signal });
    ac.abort();
    await rejectsWith(() => aborted, 'ERR_IPC_ABORTED');
    const waiting = box.receive({ timeout: 20_000 });
    assert.equal(await stillPending(waiting), true);
    const sender = trackChild(spawn(process.execPath, ['--input-type=module', '-e',
      `import { NatsMailbox } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
       const b = await NatsMailbox.open(${JSON.stringify(box.address)}); await b.send('from ' + process.pid, { priority: 3 }); await b.close();`],
    { stdio: 'inherit' }));
    const [code] = await once(sender, 'exit') as [number];
    assert.equal(code, 0);
    const got = await waiting;
    assert.equal(got.data.toString(), `from ${sender.pid}`);
    assert.equal(got.priority, 3);
    assert.equal(got.redelivered, 0);
  });

  it('codecs: json and msgpack values, your own codec, and a message that does not decode is consumed with ERR_IPC_CODEC', async () => {
    const json = await fresh({ codec: 'json' });
    await json.send({ id: 1, tags: ['a'] });
    assert.deepEqual((await json.receive({ timeout: 5000 })).data, { id: 1, tags: ['a'] });
    const packed = await fresh({ codec: 'msgpack' });
    const at = new Date(1_700_000_000_000);
    await packed.send({ at, pixels: new Uint8Array([1, 2]) });
    assert.deepEqual((await packed.receive({ timeout: 5000 })).data, { at, pixels: new Uint8Array([1, 2]) });
    const raw = await NatsMailbox.open(json.address);
    await raw.send('{not json');
    await raw.send('"fine"');
    await raw.close();
    await rejectsWith(() => json.receive({ timeout: 5000 }), 'ERR_IPC_CODEC');
    assert.equal((await json.receive({ timeout: 5000 })).data, 'fine');
    const upper = await fresh({ codec: { decode: (b: Buffer) => b.toString().toLowerCase(), encode: (s: string) => Buffer.from(s.toUpperCase()) } });
    await upper.send('MiXeD');
    assert.equal((await upper.receive({ timeout: 5000 })).data, 'mixed');
  });

  it('close: a pending receive fails with ERR_IPC_CLOSED, an iteration ends quietly, later calls fail, the mailbox stays', async () => {
    const box = await fresh();
    const address = box.address;
    await box.send('one');
    const seen: string[] = [];
    const iterating = (async () => {
      for await (const m of box) seen.push(m.data.toString());
    })();
    // The loop takes 'one' first: a receive of another handle started before that could take it instead.
    while (seen.length === 0) await new Promise((resolve) => setImmediate(resolve));
    const other = await NatsMailbox.open(address);
    const pending = other.receive();
    assert.equal(await stillPending(pending), true);
    await other.close();
    await rejectsWith(() => pending, 'ERR_IPC_CLOSED');
    await rejectsWith(() => other.send('x'), 'ERR_IPC_CLOSED');
    await box.close();
    await iterating;
    assert.deepEqual(seen, ['one']);
    const again = await NatsMailbox.open(address);
    open.add(again as NatsMailbox<unknown>);
    assert.equal((await again.attributes()).messages, 0);
    const stale = await NatsMailbox.open(address);
    await again.unlink();
    await rejectsWith(() => NatsMailbox.open(address), 'ENOENT');
    // A handle on a removed mailbox fails at once, rather than wait for room for ever.
    await rejectsWith(() => stale.send('x'), 'ENOENT');
    await rejectsWith(() => stale.receive(), 'ENOENT');
    await stale.close();
    await again.close();
  });

  it('a sender\'s retry with the same message id is stored once (the duplicate window)', async () => {
    const box = await fresh();
    const { connect } = await import('@nats-io/transport-node');
    const { jetstream } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: `127.0.0.1:${server.port}` });
    try {
      const js = jetstream(nc);
      const first = await js.publish(`ipckit.${box.name}.0`, 'once', { msgID: 'retry-1' });
      const retry = await js.publish(`ipckit.${box.name}.0`, 'once', { msgID: 'retry-1' });
      assert.equal(first.duplicate, false);
      assert.equal(retry.duplicate, true);
    } finally {
      await nc.close();
    }
    assert.equal((await box.attributes()).messages, 1);
  });

  it('a send whose answer is lost past its timeout asks again with the same id: it resolves, and the message is stored once', async () => {
    const box = await fresh();
    await throughRelay(box, async (relayed, proxy) => {
      proxy.hold();
      const sent = relayed.send('once', { timeout: 0 });
      sent.catch(() => undefined);
      // The first publish got no answer within its time; the send asks again (the same message, the same id).
      const subject = `ipckit.${box.name}.0`;
      const settled = sent.then(() => undefined, () => undefined);
      while (proxy.sent(subject) < 2 && await stillPending(settled, 10)) { /* probing the relay */ }
      assert.equal(proxy.sent(subject), 2, 'the send published twice');
      proxy.release();
      await sent;
      assert.equal((await box.attributes()).messages, 1, 'stored once');
      assert.equal((await box.receive({ timeout: 0 })).data.toString(), 'once');
    });
  });

  it('a receiver killed after fetching, before handing over, loses nothing: the message is delivered again after ackWait', async () => {
    const box = await fresh({ ackWait: 1000 });
    await box.send('precious');
    const stuck = trackChild(spawn(process.execPath, [STUCK, box.address], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const [line] = await once(createInterface({ input: stuck.stdout! }), 'line') as [string];
    assert.equal(line, 'fetched 8');
    stuck.kill('SIGKILL');
    await once(stuck, 'exit');
    const got = await box.receive({ timeout: 20_000 });
    assert.equal(got.data.toString(), 'precious');
    assert.equal(got.redelivered, 1);
    assert.equal(await box.tryReceive(), undefined);
  });

  it('the server killed and restarted mid-stream (file storage): nothing lost, a pending receive goes on', async () => {
    const box = await fresh({ storage: 'file' });
    for (let i = 0; i < 5; i++) await box.send(`m${i}`);
    const first = await box.receive({ timeout: 5000 });
    assert.equal(first.data.toString(), 'm0');
    // The server has the acknowledgement of m0 (it holds 4) before it dies.
    for (let i = 0; (await box.attributes()).messages !== 4; i++) assert.ok(i < 500, 'the server took the acknowledgement of m0');
    await server.kill('SIGKILL');
    const pending = box.receive({ timeout: 30_000 });
    await server.start();
    const got = [(await pending).data.toString()];
    // A crash may forget that m0 was taken (the server records removals lazily): at least once, it comes out again first.
    if (got[0] === 'm0') got.shift();
    while (got.length < 4) got.push((await box.receive({ timeout: 10_000 })).data.toString());
    await box.send('after');
    got.push((await box.receive({ timeout: 10_000 })).data.toString());
    assert.deepEqual(got, ['m1', 'm2', 'm3', 'm4', 'after']);
    assert.equal(await box.tryReceive(), undefined);
  });

  it('no server: ERR_IPC_UNREACHABLE naming the address once the connect timeout has passed, no hang', async () => {
    // A port held by something that accepts and never speaks NATS (a port merely closed could be taken by another test's server).
    const accepted = new Set<net.Socket>();
    const silent = net.createServer((socket) => accepted.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const started = performance.now();
      const err = await rejectsWith(() => NatsMailbox.open(`nats://127.0.0.1:${port}/nobody`, { connectTimeout: 300 }), 'ERR_IPC_UNREACHABLE');
      assert.ok(performance.now() - started >= 299, 'failed before the timeout');
      assert.match(err.message, new RegExp(`^nats://127\\.0\\.0\\.1:${port}/nobody: no NATS server answered`));
    } finally {
      silent.close();
      for (const socket of accepted) socket.destroy();
    }
  });
});

/** A plain NATS client of the test server, as another application would be: its JetStream manager and client. */
async function rawClient(): Promise<{ jsm: import('@nats-io/jetstream').JetStreamManager; js: import('@nats-io/jetstream').JetStreamClient; close(): Promise<void> }> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstream, jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: `127.0.0.1:${server.port}` });
  return { jsm: await jetstreamManager(nc), js: jetstream(nc), close: () => nc.close() };
}

describe('NatsMailbox against other clients and faults', { skip: natsMissing }, () => {
  it('a consumer another client deleted is made again: on open, and when a receive finds it gone (no hang, no level hidden)', async () => {
    const box = await fresh();
    const raw = await rawClient();
    try {
      await raw.jsm.consumers.delete(box.name, 'p5');
      await box.send('low', { priority: 1 });
      await box.send('high', { priority: 5 });
      const first = await box.receive({ timeout: 10_000 });
      assert.deepEqual([first.data.toString(), first.priority], ['high', 5]);
      assert.deepEqual((await box.receive({ timeout: 10_000 })).data.toString(), 'low');
      await raw.jsm.consumers.delete(box.name, 'p3');
      const again = await NatsMailbox.open(box.address);
      await again.close();
      const names: string[] = [];
      for await (const c of raw.jsm.consumers.list(box.name)) names.push(c.name);
      assert.deepEqual(names.sort(), ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8', 'p9']);
    } finally {
      await raw.close();
    }
  });

  it('create is exclusive: of five at once, one makes the mailbox and four get EEXIST', async () => {
    const address = server.address(unique());
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => NatsMailbox.create(address, { storage: 'memory' })));
    const made = results.filter((r): r is PromiseFulfilledResult<NatsMailbox> => r.status === 'fulfilled').map((r) => r.value);
    for (const box of made) open.add(box as NatsMailbox<unknown>);
    assert.equal(made.length, 1, 'one creator');
    assert.deepEqual(results.filter((r) => r.status === 'rejected').map((r) => ((r as PromiseRejectedResult).reason as { code: string }).code),
      ['EEXIST', 'EEXIST', 'EEXIST', 'EEXIST']);
    const opened = await Promise.all(Array.from({ length: 3 }, () => NatsMailbox.openOrCreate(address)));
    assert.deepEqual(opened.map((b) => b.created), [false, false, false]);
    for (const b of opened) await b.close();
  });

  it('stores nothing but its ten levels: a publish to ipckit.NAME.10 finds no stream, and the mailbox stays empty', async () => {
    const box = await fresh({ maxMessages: 1 });
    const raw = await rawClient();
    try {
      await assert.rejects(raw.js.publish(`ipckit.${box.name}.10`, 'stray', { timeout: 2000 }));
      assert.equal((await box.attributes()).messages, 0);
      assert.equal(await box.trySend('fits'), true);
    } finally {
      await raw.close();
    }
  });

  it('refuses a stream of that name made by another tool, before and after open: ERR_IPC_INVALID_ADDRESS, no hang', async () => {
    const raw = await rawClient();
    const { RetentionPolicy } = await import('@nats-io/jetstream');
    const name = unique();
    try {
      await raw.jsm.streams.add({ name, subjects: [`ipckit.${name}.*`], retention: RetentionPolicy.Workqueue });
      await rejectsWith(() => NatsMailbox.open(server.address(name)), 'ERR_IPC_INVALID_ADDRESS', /is no ipckit mailbox \(discard old\)/);
      await raw.jsm.streams.delete(name);
      // Replaced under an open handle: its calls say so at once.
      const box = await NatsMailbox.create(server.address(name), { storage: 'memory' });
      open.add(box as NatsMailbox<unknown>);
      await raw.jsm.streams.delete(name);
      await raw.jsm.streams.add({ name, subjects: [`other.${name}`], retention: RetentionPolicy.Workqueue });
      await rejectsWith(() => box.trySend('x'), 'ERR_IPC_INVALID_ADDRESS', /is no ipckit mailbox/);
      await rejectsWith(() => box.receive({ timeout: 10_000 }), 'ERR_IPC_INVALID_ADDRESS');
      await rejectsWith(() => box.attributes(), 'ERR_IPC_INVALID_ADDRESS');
      await raw.jsm.streams.delete(name);
    } finally {
      await raw.close();
    }
  });

  it('a send aborted while its publish has no answer asks again with the same id: stored, so it resolves (and is stored once)', async () => {
    const box = await fresh();
    await throughRelay(box, async (relayed, proxy) => {
      proxy.hold();
      const ac = new AbortController();
      const sent = relayed.send('once', { signal: ac.signal });
      sent.catch(() => undefined);
      const settled = sent.then(() => undefined, () => undefined);
      const subject = `ipckit.${box.name}.0`;
      while (proxy.sent(subject) < 1 && await stillPending(settled, 10)) { /* probing the relay */ }
      ac.abort();
      // The publish gets no answer; then the send asks again with the same id before it gives up.
      while (proxy.sent(subject) < 2 && await stillPending(settled, 10)) { /* probing the relay */ }
      assert.equal(proxy.sent(subject), 2, 'asked again');
      proxy.release();
      await sent;
      assert.equal((await box.attributes()).messages, 1, 'stored once');
    });
  });

  it('a pull whose answer comes after the receive gave up gives the message back at once, not after ackWait', async () => {
    const box = await fresh();
    await box.send('late');
    await throughRelay(box, async (relayed, proxy) => {
      proxy.holdAfter(`$JS.API.CONSUMER.MSG.NEXT.${box.name}.p0`);
      await rejectsWith(() => relayed.receive({ timeout: 100 }), 'ERR_IPC_UNREACHABLE');
      proxy.release();
      // ackWait is 30 s: the message comes at once only because the late answer was given back.
      const got = await box.receive({ timeout: 10_000 });
      assert.deepEqual([got.data.toString(), got.redelivered], ['late', 1]);
    });
  });

  it('an abort is noticed at once: a receive aborted right after it starts rejects with ERR_IPC_ABORTED', async () => {
    const box = await fresh();
    const ac = new AbortController();
    const pending = box.receive({ signal: ac.signal });
    await Promise.resolve();
    ac.abort();
    assert.equal(await stillPending(pending.then(() => undefined, () => undefined), 500), false, 'settled well before the next one-second look');
    await rejectsWith(() => pending, 'ERR_IPC_ABORTED');
  });

  it('close() while a publish has no answer asks again with the same id before letting go: the send resolves, stored once', async () => {
    const box = await fresh();
    await throughRelay(box, async (relayed, proxy) => {
      proxy.hold();
      const sent = relayed.send('kept');
      const settled = sent.then(() => undefined, () => undefined);
      const subject = `ipckit.${box.name}.0`;
      while (proxy.sent(subject) < 1 && await stillPending(settled, 10)) { /* probing the relay */ }
      const closing = relayed.close();
      while (proxy.sent(subject) < 2 && await stillPending(settled, 10)) { /* probing the relay */ }
      assert.equal(proxy.sent(subject), 2, 'asked again before letting go of the connection');
      proxy.release();
      await sent;
      await closing;
      assert.equal((await box.attributes()).messages, 1, 'stored once');
    });
  });

  it('refuses streams whose settings drop messages: max_age, max_msgs_per_subject, no_ack', async () => {
    const raw = await rawClient();
    const { RetentionPolicy, DiscardPolicy } = await import('@nats-io/jetstream');
    try {
      for (const [setting, value, shown] of [['max_age', 1e9, /max_age/], ['max_msgs_per_subject', 1, /max_msgs_per_subject 1/], ['no_ack', true, /no_ack/]] as const) {
        const name = unique();
        await raw.jsm.streams.add({
          name, subjects: Array.from({ length: 10 }, (_, l) => `ipckit.${name}.${l}`), retention: RetentionPolicy.Workqueue,
          discard: DiscardPolicy.New, max_msgs: 10, max_msg_size: 1024, [setting]: value,
        });
        await rejectsWith(() => NatsMailbox.open(server.address(name)), 'ERR_IPC_INVALID_ADDRESS', shown);
        await raw.jsm.streams.delete(name);
      }
    } finally {
      await raw.close();
    }
  });

  it('a send to a removed mailbox says ENOENT even when a plain subscriber listens on its subjects', async () => {
    const box = await fresh();
    const { connect } = await import('@nats-io/transport-node');
    const spy = await connect({ servers: `127.0.0.1:${server.port}` });
    try {
      spy.subscribe(`ipckit.${box.name}.>`);
      await spy.flush();
      await NatsMailbox.unlink(box.address);
      await rejectsWith(() => box.send('x', { timeout: 100 }), 'ENOENT', /was removed/);
      await rejectsWith(() => box.trySend('x'), 'ENOENT', /was removed/);
    } finally {
      await spy.close();
    }
  });

  it('a mailbox whose name reads like a lost answer ("503", "timeout", "closed") still gets its final errors at once', async () => {
    // Errors name the mailbox: once taken for a server's "no answer", a codec error let the next message through,
    // and a removed mailbox read as unreachable after 5 s of asking again.
    const name = `${unique()}-503-timeout-closed-connection`;
    const box = await NatsMailbox.create<unknown>(server.address(name), { codec: 'json' });
    open.add(box);
    const raw = await NatsMailbox.open(box.address);
    try {
      await raw.send('{not json');
      await raw.send('"fine"');
      await rejectsWith(() => box.receive({ timeout: 5000 }), 'ERR_IPC_CODEC', /could not be decoded/);
      assert.equal((await box.receive({ timeout: 5000 })).data, 'fine');
      await NatsMailbox.unlink(box.address);
      const started = performance.now();
      await rejectsWith(() => raw.send('x', { timeout: 100 }), 'ENOENT', /was removed/);
      await rejectsWith(() => raw.trySend('x'), 'ENOENT', /was removed/);
      assert.ok(performance.now() - started < 4000, `the sends took ${(performance.now() - started).toFixed(0)} ms to say ENOENT`);
    } finally {
      await raw.close();
    }
  });

  it('a stored message whose headers carry a status line is handed over like any other', async () => {
    const box = await fresh();
    const { connect, headers } = await import('@nats-io/transport-node');
    const { jetstream } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: `127.0.0.1:${server.port}` });
    try {
      await jetstream(nc).publish(`ipckit.${box.name}.5`, 'status-like', { headers: headers(503, 'No Responders') });
    } finally {
      await nc.close();
    }
    const got = await box.receive({ timeout: 5000 });
    assert.deepEqual([got.data.toString(), got.priority, got.redelivered], ['status-like', 5, 0]);
  });

  it('a receive resolves once the server has the acknowledgement: the room is free at once', async () => {
    const box = await fresh({ maxMessages: 1 });
    for (let i = 0; i < 20; i++) {
      assert.equal(await box.trySend(`m${i}`), true, `round ${i}: room for m${i}`);
      assert.equal((await box.receive({ timeout: 5000 })).data.toString(), `m${i}`);
      assert.equal((await box.attributes()).messages, 0, `round ${i}: taken out`);
    }
  });

  it('connection options of the wrong type are refused at once', async () => {
    const address = server.address(unique());
    for (const [key, value] of [['user', 5], ['pass', ['x']], ['token', {}], ['tls', 'yes']] as const) {
      await rejectsWith(() => NatsMailbox.open(address, { [key]: value } as object), 'ERR_IPC_INVALID_ARGUMENT', new RegExp(`${key} must be`));
    }
  });
});
