/**
 * The examples, run the way their READMEs say: each process started on its
 * own, as a user would in two terminals.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, lstatSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ObjectTracker, posixQueueExists, sysvQueueKeys, sysvSemaphoreKeys, uniqueName } from './helpers/objects.js';
import { asUser, canRunAs, killAllPeers, runningChildren, trackChild } from './helpers/peer.js';

/** The repository root (this file runs from dist/test/), where `import 'ipckit'` resolves to the package itself. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const objects = new ObjectTracker();

after(async () => {
  await killAllPeers();
  objects.cleanup();
});

interface Program {
  child: ChildProcess;
  /** Resolves with the first stdout line matching `pattern`; rejects after `ms` or if the program exits first. */
  waitForLine(pattern: RegExp, ms?: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string[]; stderr: string }>;
}

/** Starts `node <script> ...args` from the repository root, as the README does. */
function startExample(script: string, args: string[]): Program {
  const child = spawn(process.execPath, [script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  const stdout: string[] = [];
  let stderr = '';
  const watchers: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    stdout.push(line);
    for (const w of watchers.filter((w) => w.pattern.test(line))) {
      watchers.splice(watchers.indexOf(w), 1);
      w.resolve(line);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string[]; stderr: string }>((resolve) => {
    child.on('close', (code, signal) => {
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    child,
    exited,
    waitForLine(pattern, ms = 10_000) {
      const seen = stdout.find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${script} printed no line matching ${pattern} in ${ms} ms; ` +
          `stdout: ${JSON.stringify(stdout)}; stderr: ${stderr}`)), ms);
        const done = (line: string): void => {
          clearTimeout(timer);
          resolve(line);
        };
        watchers.push({ pattern, resolve: done });
        void exited.then((e) => {
          clearTimeout(timer);
          reject(new Error(`${script} exited (${e.code ?? e.signal}) before printing a line matching ${pattern}; ` +
            `stdout: ${JSON.stringify(e.stdout)}; stderr: ${e.stderr}`));
        });
      });
    },
  };
}

describe('examples/message-queue', () => {
  // The dispatcher waits up to 30 s for each result; a hang fails here instead.
  it('worker and dispatcher exchange jobs by priority and results by type, then remove both queues', { timeout: 20_000 }, async () => {
    const shared = await import(new URL('../../examples/message-queue/shared.js', import.meta.url).href) as { resultsKey(name: string): number };
    const name = objects.name('example');
    const key = shared.resultsKey(name);
    objects.sysv.add(key);
    assert.equal(posixQueueExists(name), false);
    assert.equal(sysvQueueKeys().has(key), false, `the results key ${key.toString(16)} is already in use`);

    // Terminal 1.
    const worker = startExample('examples/message-queue/worker.js', [name]);
    const workerPid = worker.child.pid!;
    assert.equal(await worker.waitForLine(/waiting for jobs/), `worker ${workerPid}: waiting for jobs on ${name}`);
    // Terminal 2.
    const dispatcher = startExample('examples/message-queue/dispatcher.js', [name]);
    const [w, d] = await Promise.all([worker.exited, dispatcher.exited]);
    const report = `worker: ${JSON.stringify(w)}\ndispatcher: ${JSON.stringify(d)}`;
    assert.deepEqual([w.code, d.code], [0, 0], report);
    assert.equal(w.stderr, '', report);
    assert.equal(d.stderr, '', report);

    const result = (id: number, output: string): string => `dispatcher: result of job ${id} from worker ${workerPid}: ${output}`;
    assert.deepEqual(d.stdout, [
      'dispatcher: queued job 1 (count) at priority 1',
      'dispatcher: queued job 2 (shout) at priority 9',
      'dispatcher: queued job 3 (count) at priority 1',
      'dispatcher: queued job 4 (shout) at priority 5',
      // Shouts (type 2) first, then counts (type 1), whatever order the worker finished them in.
      result(2, '"SERVER ROOM IS ON FIRE"'),
      result(4, '"COFFEE IS READY"'),
      result(1, '4'),
      result(3, '6'),
      'dispatcher: done, queues removed',
    ], report);

    // The worker takes job 1 at once if it is already waiting when it arrives, or, if all four
    // are queued first, by priority from the start.
    const handled = w.stdout.flatMap((line) => /^worker \d+: job (\d+) /.exec(line)?.[1] ?? []).map(Number);
    assert.ok([[1, 2, 4, 3], [2, 4, 1, 3]].some((order) => order.join() === handled.join()), `worker order ${handled.join()}\n${report}`);
    const line = (id: number, kind: string, priority: number, output: string): string =>
      `worker ${workerPid}: job ${id} (${kind}, priority ${priority}) -> ${output}`;
    const lines: Record<number, string> = {
      1: line(1, 'count', 1, '4'), 2: line(2, 'shout', 9, '"SERVER ROOM IS ON FIRE"'),
      3: line(3, 'count', 1, '6'), 4: line(4, 'shout', 5, '"COFFEE IS READY"'),
    };
    assert.deepEqual(w.stdout, [
      `worker ${workerPid}: waiting for jobs on ${name}`, ...handled.map((id) => lines[id]!), `worker ${workerPid}: stopping`,
    ], report);

    assert.equal(posixQueueExists(name), false, `${name} was not removed`);
    assert.equal(sysvQueueKeys().has(key), false, `the results queue ${key.toString(16)} was not removed`);
  });
});

describe('examples/shared-memory', () => {
  it('the watcher reads every update the board publishes, in order, and the segment is removed', { timeout: 20_000 }, async () => {
    const name = objects.shmName('example');
    // Terminal 1.
    const watcher = startExample('examples/shared-memory/watch.js', [name]);
    const watcherPid = watcher.child.pid!;
    assert.equal(await watcher.waitForLine(/waiting for/), `watch ${watcherPid}: waiting for ${name}`);
    // Terminal 2.
    const board = startExample('examples/shared-memory/board.js', [name, '6']);
    const [w, b] = await Promise.all([watcher.exited, board.exited]);
    const report = `watch: ${JSON.stringify(w)}\nboard: ${JSON.stringify(b)}`;
    assert.deepEqual([w.code, b.code, w.stderr, b.stderr], [0, 0, '', ''], report);
    assert.deepEqual(b.stdout, [
      `board ${board.child.pid}: publishing 6 updates in ${name}`,
      `board ${board.child.pid}: every update was read; removing ${name}`,
    ], report);
    const updates = w.stdout.slice(1).map((line) => /^watch \d+: update (\d+): (status \d+: (green|amber|red) at .*|done)$/.exec(line));
    assert.equal(updates.length, 6, report);
    assert.deepEqual(updates.map((m) => Number(m?.[1])), [1, 2, 3, 4, 5, 6], report);
    assert.equal(updates[5]![2], 'done');
    assert.equal(existsSync(`/dev/shm${name}`), false, `${name} was not removed`);
  });
});

describe('examples/channel', () => {
  it('the consumer receives every reading the producer sends, in order, and removes the channel', { timeout: 20_000 }, async () => {
    const name = objects.shmName('example');
    // Terminal 1.
    const consumer = startExample('examples/channel/consumer.js', [name]);
    const cp = consumer.child.pid!;
    assert.equal(await consumer.waitForLine(/waiting for/), `consumer ${cp}: waiting for readings on ${name}`);
    // Terminal 2.
    const producer = startExample('examples/channel/producer.js', [name, '4']);
    const pp = producer.child.pid!;
    const [c, p] = await Promise.all([consumer.exited, producer.exited]);
    const report = `consumer: ${JSON.stringify(c)}\nproducer: ${JSON.stringify(p)}`;
    assert.deepEqual([c.code, p.code, c.stderr, p.stderr], [0, 0, '', ''], report);
    assert.deepEqual(p.stdout, [`producer ${pp}: sending 4 readings on ${name}`, `producer ${pp}: done`], report);
    assert.deepEqual(c.stdout, [
      `consumer ${cp}: waiting for readings on ${name}`,
      `consumer ${cp}: reading 1: intake = 20.5`,
      `consumer ${cp}: reading 2: exhaust = 21`,
      `consumer ${cp}: reading 3: boiler = 21.5`,
      `consumer ${cp}: reading 4: intake = 22`,
      `consumer ${cp}: the producer is done (5 messages sent, 5 received); removing ${name}`,
    ], report);
    assert.equal(existsSync(`/dev/shm${name}`), false, `${name} was not removed`);
  });
});

describe('examples/channel: packed batches', () => {
  it('a producer sends binary records in MessageBatches; the consumer receives them into one batch, in order, and totals them', { timeout: 30_000 }, async () => {
    const name = objects.shmName('ex-batches');
    const consumer = startExample('examples/channel/batch-consumer.js', [name, '100000']);
    const c = await consumer.exited;
    const report = JSON.stringify(c);
    assert.deepEqual([c.code, c.stderr], [0, ''], report);
    assert.match(c.stdout[0]!, new RegExp(`^consumer ${consumer.child.pid}: 100000 records from producer \\d+, in order \\(100001 messages sent, 100001 received\\)$`), report);
    assert.deepEqual(c.stdout.slice(1), [`consumer ${consumer.child.pid}: total 14999850000`], report);
    assert.equal(existsSync(`/dev/shm${name}`), false, 'the consumer removed the channel');
  });
});

describe('examples/channel, stopped', () => {
  it('the consumer waits on the channel and on SIGTERM with one Poller: SIGTERM stops it, and it removes the channel', { timeout: 20_000 }, async () => {
    const name = objects.shmName('example');
    const consumer = startExample('examples/channel/consumer.js', [name]);
    const cp = consumer.child.pid!;
    await consumer.waitForLine(/waiting for/);
    consumer.child.kill('SIGTERM');
    const c = await consumer.exited;
    assert.deepEqual([c.code, c.stderr, c.stdout], [0, '', [`consumer ${cp}: waiting for readings on ${name}`, `consumer ${cp}: stopped by SIGTERM`]]);
    assert.equal(existsSync(`/dev/shm${name}`), false, `${name} was not removed`);
  });
});

describe('examples/semaphore', () => {
  it('workers share two printers and a log lock; a killed worker\'s lock comes back (undo), its printer does not', { timeout: 30_000 }, async () => {
    const shared = await import(new URL('../../examples/semaphore/shared.js', import.meta.url).href) as { setKey(name: string): number };
    const name = objects.semName('example');
    const key = shared.setKey(name);
    objects.sysvSem.add(key);
    assert.equal(existsSync(`/dev/shm/sem.${name.slice(1)}`), false);
    assert.equal(sysvSemaphoreKeys().has(key), false, `the room's key ${key.toString(16)} is already in use`);

    // Terminal 1.
    const room = startExample('examples/semaphore/room.js', [name, '4']);
    const roomPid = room.child.pid!;
    assert.equal(await room.waitForLine(/waiting for/), `room ${roomPid}: 2 printers free, waiting for 4 jobs`);
    // Terminal 2: dies holding the lock and a printer.
    const crasher = startExample('examples/semaphore/worker.js', [name, '1', '--crash']);
    const crashed = await crasher.exited;
    assert.equal(crashed.signal, 'SIGKILL', JSON.stringify(crashed));
    assert.deepEqual(crashed.stdout, [`worker ${crasher.child.pid}: crashing with the log lock and a printer`]);
    // Terminals 3 and 4.
    const workers = [startExample('examples/semaphore/worker.js', [name, '2']), startExample('examples/semaphore/worker.js', [name, '2'])];
    const [r, ...w] = await Promise.all([room.exited, ...workers.map((worker) => worker.exited)]);
    const report = JSON.stringify({ room: r, workers: w });
    assert.deepEqual([r.code, ...w.map((x) => x.code)], [0, 0, 0], report);
    assert.deepEqual(r.stdout, [
      `room ${roomPid}: 2 printers free, waiting for 4 jobs`,
      `room ${roomPid}: 4 jobs finished`,
      `room ${roomPid}: log lock free, printers free: 1 of 2`,
      `room ${roomPid}: semaphores removed`,
    ], report);
    workers.forEach((worker, i) => assert.deepEqual(w[i]!.stdout, [
      `worker ${worker.child.pid}: printing job 1`, `worker ${worker.child.pid}: printing job 2`, `worker ${worker.child.pid}: done`,
    ], report));
    assert.equal(existsSync(`/dev/shm/sem.${name.slice(1)}`), false, `${name} was not removed`);
    assert.equal(sysvSemaphoreKeys().has(key), false, 'the room\'s set was not removed');
  });
});

describe('examples/pipe', () => {
  it('three children write framed records into one pipe; the parent totals them', { timeout: 20_000 }, async () => {
    const parent = startExample('examples/pipe/parent.js', ['3']);
    const p = await parent.exited;
    const report = JSON.stringify(p);
    assert.deepEqual([p.code, p.stderr], [0, ''], report);
    assert.match(p.stdout[0]!, new RegExp(`^parent ${parent.child.pid}: started \\d+, \\d+, \\d+, each writing into fd 3$`), report);
    assert.deepEqual(p.stdout.slice(1), [1, 2, 3].map((w) => `parent ${parent.child.pid}: worker ${w} sent a total of ${5050 * w}`), report);
  });
});

describe('examples/pipe: packed batches', () => {
  it('a child sends binary records in MessageBatches; the parent receives them into one batch, in order, and totals them', { timeout: 30_000 }, async () => {
    const parent = startExample('examples/pipe/batch-parent.js', ['100000']);
    const p = await parent.exited;
    const report = JSON.stringify(p);
    assert.deepEqual([p.code, p.stderr], [0, ''], report);
    assert.match(p.stdout[0]!, new RegExp(`^parent ${parent.child.pid}: 100000 records from child \\d+, in order$`), report);
    assert.deepEqual(p.stdout.slice(1), [`parent ${parent.child.pid}: total 14999850000`], report);
  });
});

describe('examples/fifo', () => {
  it('a reader and a writer started separately meet at the FIFO; the reader removes it', { timeout: 20_000 }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-example-'));
    const fifo = path.join(dir, 'fifo');
    try {
      // Terminal 1.
      const reader = startExample('examples/fifo/reader.js', [fifo]);
      await reader.waitForLine(/waiting for a writer/);
      // Terminal 2.
      const writer = startExample('examples/fifo/writer.js', [fifo]);
      const [r, w] = await Promise.all([reader.exited, writer.exited]);
      const report = `reader: ${JSON.stringify(r)}\nwriter: ${JSON.stringify(w)}`;
      assert.deepEqual([r.code, w.code, r.stderr, w.stderr], [0, 0, '', ''], report);
      const rp = reader.child.pid;
      assert.deepEqual(r.stdout, [
        `reader ${rp}: waiting for a writer on ${fifo}`,
        `reader ${rp}: hello through a named pipe`,
        `reader ${rp}: the kernel keeps the order`,
        `reader ${rp}: goodbye`,
        `reader ${rp}: the writers are done; removing ${fifo}`,
      ], report);
      assert.deepEqual(w.stdout, [`writer ${writer.child.pid}: a reader is there`, `writer ${writer.child.pid}: done`], report);
      assert.equal(existsSync(fifo), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('examples/signal', () => {
  it('a worker answers jobs sent as signals to the sender\'s pid, and shuts down cleanly on SIGTERM', { timeout: 20_000 }, async () => {
    // Terminal 1.
    const worker = startExample('examples/signal/worker.js', []);
    const wp = worker.child.pid;
    await worker.waitForLine(/ready/);
    // Terminal 2.
    const control = startExample('examples/signal/control.js', [String(wp)]);
    const [w, c] = await Promise.all([worker.exited, control.exited]);
    const report = `worker: ${JSON.stringify(w)}\ncontrol: ${JSON.stringify(c)}`;
    assert.deepEqual([w.code, c.code, w.stderr, c.stderr], [143, 0, '', ''], report);
    const cp = control.child.pid;
    const uid = process.getuid!();
    assert.deepEqual(w.stdout, [
      `worker ${wp}: ready. In another terminal: node examples/signal/control.js ${wp}`,
      `worker ${wp}: job 3 from pid ${cp} (uid ${uid}): 3 squared is 9`,
      `worker ${wp}: job 4 from pid ${cp} (uid ${uid}): 4 squared is 16`,
      `worker ${wp}: job 12 from pid ${cp} (uid ${uid}): 12 squared is 144`,
      `worker ${wp}: status asked by pid ${cp}: 3 jobs done`,
      `worker ${wp}: SIGTERM from pid ${cp}; 3 jobs done, shutting down`,
    ], report);
    assert.deepEqual(c.stdout, [
      `control ${cp}: job 3 -> 9`, `control ${cp}: job 4 -> 16`, `control ${cp}: job 12 -> 144`,
      `control ${cp}: the worker has done 3 jobs`, `control ${cp}: sent SIGTERM`, `control ${cp}: worker ${wp} has exited`,
    ], report);
  });
});

describe('examples/socket', () => {
  it('the client learns who the server is, passes an open file with a request, and gets a remote failure; SIGTERM removes the socket file', { timeout: 20_000 }, async () => {
    const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'ipckit-example-')));
    const socketFile = path.join(dir, 'service.sock');
    const address = `unix:${socketFile}`;
    const counted = path.join(dir, 'words.txt');
    writeFileSync(counted, 'one two three\nfour five\n');
    try {
      // Terminal 1.
      const server = startExample('examples/socket/server.js', [address]);
      const sp = server.child.pid!;
      await server.waitForLine(/listening/);
      assert.equal(lstatSync(socketFile).mode & 0o777, 0o600);
      // Terminal 2.
      const client = startExample('examples/socket/client.js', [address, counted]);
      const cp = client.child.pid!;
      const c = await client.exited;
      await server.waitForLine(/hung up/);
      server.child.kill('SIGTERM');
      const s = await server.exited;
      const report = `server: ${JSON.stringify(s)}\nclient: ${JSON.stringify(c)}`;
      assert.deepEqual([s.code, c.code, s.stderr, c.stderr], [143, 0, '', ''], report);
      const uid = process.getuid!();
      const gid = process.getgid!();
      assert.deepEqual(c.stdout, [
        `client ${cp}: connected to ${address}, served by pid ${sp} (uid ${uid})`,
        `client ${cp}: the server sees me as pid ${cp}, uid ${uid}, gid ${gid}`,
        `client ${cp}: ${counted}: 2 lines, 5 words, 24 bytes, counted by pid ${sp}`,
        `client ${cp}: "shout" failed: ERR_IPC_REMOTE (the handler's code was UNKNOWN_OP)`,
        `client ${cp}: done`,
      ], report);
      assert.deepEqual(s.stdout, [
        `server ${sp}: listening on ${address} (uid ${uid} only). In another terminal: node examples/socket/client.js ${address}`,
        `server ${sp}: connection from pid ${cp} (uid ${uid}, gid ${gid})`,
        `server ${sp}: pid ${cp} asked who it is`,
        `server ${sp}: pid ${cp} passed a descriptor of ${counted}`,
        `server ${sp}: pid ${cp} hung up`,
        `server ${sp}: SIGTERM from pid ${process.pid}; closing ${address}`,
      ], report);
      assert.equal(existsSync(socketFile), false, 'the server removes its socket file when it closes');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a client of another user is closed before it is served (allowUids), on an abstract name', { timeout: 20_000 }, async (t) => {
    if (!canRunAs(65534)) {
      t.skip('needs root, setpriv and a checkout the nobody user can read');
      return;
    }
    const address = `unix:@${uniqueName('example-socket').slice(1)}`;
    const server = startExample('examples/socket/server.js', [address]);
    await server.waitForLine(/listening/);
    // Terminal 2, as the nobody user.
    const [setpriv, ...prefix] = asUser(65534);
    const client = trackChild(spawn(setpriv!, [...prefix, process.execPath, 'examples/socket/client.js', address, '/dev/null'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stderr = '';
    client.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    client.stdout!.resume();
    const c = await new Promise<{ code: number | null; stderr: string }>((resolve) => client.on('close', (code) => resolve({ code, stderr })));
    const refused = await server.waitForLine(/refused/);
    server.child.kill('SIGTERM');
    const s = await server.exited;
    const report = `server: ${JSON.stringify(s)}\nclient: ${JSON.stringify(c)}`;
    assert.equal(c.code, 1, report);
    assert.match(c.stderr, /^client \d+: ERR_IPC_PEER_CLOSED: /, report);
    assert.match(refused, /^server \d+: refused pid \d+: uid 65534 \/ gid 65534 is not allowed$/, report);
    assert.equal(s.code, 143, report);
    assert.equal(s.stdout.filter((line) => line.includes('connection from')).length, 0, report);
  });
});

describe('examples/server', () => {
  const words = [['pear', 'fig'], ['plum', 'lime'], ['kiwi', 'date']];

  type Exit = Awaited<Program['exited']>;

  /** Runs server.js with `strategy` and client.js against it, then stops the server with SIGTERM. */
  async function serveOnce(strategy: string): Promise<{ serverPid: number; clientPid: number; listening: string; s: Exit; c: Exit; address: string }> {
    const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'ipckit-example-')));
    const socketFile = path.join(dir, 'server.sock');
    const address = `unix:${socketFile}`;
    try {
      // Terminal 1.
      const server = startExample('examples/server/server.js', [strategy, address]);
      const listening = await server.waitForLine(/listening/);
      assert.equal(lstatSync(socketFile).mode & 0o777, 0o600);
      // Terminal 2.
      const client = startExample('examples/server/client.js', [address]);
      const c = await client.exited;
      server.child.kill('SIGTERM');
      const s = await server.exited;
      assert.equal(existsSync(socketFile), false, 'the server removes its socket file when it closes');
      return { serverPid: server.child.pid!, clientPid: client.child.pid!, listening, s, c, address };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** The client's lines for replies served by `by(connection)` as that process's connection `id(connection)`. */
  const replies = (clientPid: number, by: (i: number) => string, id: (i: number) => number): string[] =>
    words.flatMap((pair, i) => pair.map((word) =>
      `client ${clientPid}: connection ${i + 1}: "${word}" -> "${word.toUpperCase()}", served by ${by(i)} (its connection ${id(i)})`));

  it('event: the server process serves all three connections itself; SIGTERM removes the socket file', { timeout: 20_000 }, async () => {
    const r = await serveOnce('event');
    const report = `server: ${JSON.stringify(r.s)}\nclient: ${JSON.stringify(r.c)}`;
    assert.deepEqual([r.s.code, r.c.code, r.s.stderr, r.c.stderr], [143, 0, '', ''], report);
    assert.deepEqual(r.s.stdout, [
      `server ${r.serverPid}: listening on ${r.address} with strategy event: this process serves the connections that are ready. ` +
        `In another terminal: node examples/server/client.js ${r.address}`,
      `server ${r.serverPid}: SIGTERM from pid ${process.pid}; closed ${r.address}, 0 child processes stopped`,
    ], report);
    assert.deepEqual(r.c.stdout, [...replies(r.clientPid, () => 'the server itself', (i) => i + 1), `client ${r.clientPid}: done`], report);
  });

  it('prefork: two children take the connections in turn, and stop with the server', { timeout: 20_000 }, async () => {
    const r = await serveOnce('prefork');
    const report = `server: ${JSON.stringify(r.s)}\nclient: ${JSON.stringify(r.c)}`;
    assert.deepEqual([r.s.code, r.c.code, r.s.stderr, r.c.stderr], [143, 0, '', ''], report);
    const pool = /^server \d+: listening on .* with strategy prefork: children (\d+) and (\d+) take connections in turn\. /.exec(r.listening);
    assert.ok(pool, report);
    const [first, second] = [Number(pool[1]), Number(pool[2])];
    assert.notEqual(first, r.serverPid);
    assert.notEqual(second, r.serverPid);
    assert.deepEqual(r.s.stdout, [
      `server ${r.serverPid}: listening on ${r.address} with strategy prefork: children ${first} and ${second} take connections in turn. ` +
        `In another terminal: node examples/server/client.js ${r.address}`,
      `server ${r.serverPid}: SIGTERM from pid ${process.pid}; closed ${r.address}, 2 child processes stopped`,
    ], report);
    // Round robin in the order accepted: the first child has connections 1 and 3, the second connection 2.
    assert.deepEqual(r.c.stdout, [
      ...replies(r.clientPid, (i) => `pid ${i === 1 ? second : first}`, (i) => (i === 2 ? 2 : 1)), `client ${r.clientPid}: done`,
    ], report);
    // The server waited for its children before it exited: both are gone (reaped, not zombies).
    assert.deepEqual([first, second].filter((pid) => existsSync(`/proc/${pid}`)), [], report);
  });
});

describe('examples cleanup', () => {
  it('leaves no queue and no process behind', async () => {
    await killAllPeers();
    assert.equal(runningChildren(), 0);
    assert.deepEqual(objects.leftovers(), []);
  });
});
