/**
 * `ipckit ls` and `ipckit rm` for Unix sockets: sockets bound to a path or an
 * abstract name, with their state and holders, made by ipckit, by a Python
 * program and by children killed with SIGKILL; stale socket files; files
 * removed and bound again. Every name is unique to this run, so other test
 * files listing or binding at the same time change nothing asserted here.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { type DatagramSocket, type SocketServer, bind, connect, listen } from '../src/index.js';
import { CLI, type LsObject, fails, json, ls, lsRow, ok } from './helpers/cli.js';
import { uniqueName } from './helpers/objects.js';
import { canRunAs, killAllPeers, runningChildren, trackChild } from './helpers/peer.js';

const INDEX_URL = new URL('../src/index.js', import.meta.url).href;
/** Every socket file of this run is made under here (0700, as mkdtemp makes it). */
const dir = mkdtempSync(`${tmpdir()}/ipckit-test-sock-`);
const dirs = [dir];
const open: (SocketServer | DatagramSocket)[] = [];

after(async () => {
  for (const socket of open) socket.close();
  await killAllPeers();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A unique path for a socket file under `dir`. */
function socketPath(label: string, under = dir): string {
  return `${under}${uniqueName(label)}`;
}

/** A unique abstract address (`unix:@...`, or another scheme). */
function abstractAddress(label: string, scheme = 'unix'): string {
  return `${scheme}:@${uniqueName(label).slice(1)}`;
}

function track<T extends SocketServer | DatagramSocket>(socket: T): T {
  open.push(socket);
  return socket;
}

/** The inode of the socket open as `fd` in this process, as /proc/net/unix shows it. */
function inodeOf(fd: number): number {
  return statSync(`/proc/self/fd/${fd}`).ino;
}

const me = (): LsObject['processes'] => [{ pid: process.pid, role: 'holder', alive: true }];
const owner = userInfo().username;
const uid = process.getuid!();
const NO_DEPTH = { messages: null, bytes: null, maxBytes: null };

function find(objects: LsObject[], address: string, inode?: number): LsObject | undefined {
  return objects.find((o) => o.address === address && (inode === undefined || o.inode === inode));
}

/**
 * Starts a child that binds sockets and prints "ready"; resolves once it has.
 * It exits when its stdin closes (or when killed).
 */
async function holder(command: string, args: string[], env: Record<string, string> = {}): Promise<ChildProcess> {
  const child = trackChild(spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string | undefined>((resolve) => {
    lines.once('line', resolve);
    child.once('close', () => resolve(undefined));
  });
  assert.equal(first, 'ready', `${command} did not start: ${stderr}`);
  return child;
}

/** A Node child that listens at `address` with ipckit, until killed. */
function ipckitServer(address: string): Promise<ChildProcess> {
  const script = `const { listen } = await import(${JSON.stringify(INDEX_URL)});
    listen(process.env.ADDRESS); console.log('ready'); setInterval(() => {}, 1e6);`;
  return holder(process.execPath, ['--input-type=module', '-e', script], { ADDRESS: address });
}

function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('close', () => resolve());
    child.kill('SIGKILL');
  });
}

describe('ipckit ls: Unix sockets', () => {
  it('lists stream, datagram and seqpacket sockets bound to paths: owner, mode, state, holders, accepted and waiting connections', async () => {
    const [streamPath, dgramPath, seqPath] = [socketPath('stream'), socketPath('dgram'), socketPath('seq')];
    const server = track(listen(`unix:${streamPath}`, { mode: 0o640 }));
    const dgram = track(bind(`unix-dgram:${dgramPath}`));
    const seq = track(listen(`unix-seqpacket:${seqPath}`));
    const accepted = await connect(`unix:${streamPath}`);
    const conn = await server.accept();
    const waiting = await connect(`unix:${streamPath}`); // Never accepted.
    try {
      const inventory = await ls();
      assert.deepEqual(find(inventory.objects, `unix:${streamPath}`), {
        kind: 'unix', address: `unix:${streamPath}`, inode: inodeOf(server.fd), uid, owner, mode: 0o640, ...NO_DEPTH,
        state: 'listening', connections: 1, pending: 1, processes: me(),
      });
      assert.deepEqual(find(inventory.objects, `unix-dgram:${dgramPath}`), {
        kind: 'unix-dgram', address: `unix-dgram:${dgramPath}`, inode: inodeOf(dgram.fd), uid, owner, mode: 0o600, ...NO_DEPTH,
        state: 'bound', processes: me(),
      });
      assert.deepEqual(find(inventory.objects, `unix-seqpacket:${seqPath}`), {
        kind: 'unix-seqpacket', address: `unix-seqpacket:${seqPath}`, inode: inodeOf(seq.fd), uid, owner, mode: 0o600, ...NO_DEPTH,
        state: 'listening', connections: 0, pending: 0, processes: me(),
      });
      // The connections' own ends are unnamed: listed nowhere.
      assert.equal(inventory.objects.filter((o) => o.address.includes(streamPath)).length, 1);
      assert.deepEqual(lsRow(inventory.text, `unix:${streamPath}`),
        ['unix', `unix:${streamPath}`, owner, '0640', '-', '-', `listening conns:1 pending:1 open:${process.pid}`]);
      assert.deepEqual(lsRow(inventory.text, `unix-dgram:${dgramPath}`),
        ['unix-dgram', `unix-dgram:${dgramPath}`, owner, '0600', '-', '-', `bound open:${process.pid}`]);
      assert.deepEqual(lsRow(inventory.text, `unix-seqpacket:${seqPath}`),
        ['unix-seqpacket', `unix-seqpacket:${seqPath}`, owner, '0600', '-', '-', `listening open:${process.pid}`]);
    } finally {
      for (const s of [accepted, conn, waiting]) s.close();
      for (const s of [server, dgram, seq]) s.close();
    }
    // Closed servers remove their files, and leave the listing.
    assert.deepEqual([streamPath, dgramPath, seqPath].filter((p) => existsSync(p)), []);
    const inventory = await ls();
    assert.deepEqual(inventory.objects.filter((o) => [streamPath, dgramPath, seqPath].some((p) => o.address.endsWith(p))), []);
  });

  it('lists abstract names as unix:@name with mode 0777 (no permissions apply); rm explains they cannot be removed', async () => {
    const streamAddress = abstractAddress('abs');
    const dgramAddress = abstractAddress('absd', 'unix-dgram');
    const server = track(listen(streamAddress));
    const dgram = track(bind(dgramAddress));
    const inventory = await ls();
    assert.deepEqual(find(inventory.objects, streamAddress), {
      kind: 'unix', address: streamAddress, inode: inodeOf(server.fd), uid, owner, mode: 0o777, ...NO_DEPTH,
      state: 'listening', connections: 0, pending: 0, processes: me(),
    });
    assert.deepEqual(find(inventory.objects, dgramAddress), {
      kind: 'unix-dgram', address: dgramAddress, inode: inodeOf(dgram.fd), uid, owner, mode: 0o777, ...NO_DEPTH,
      state: 'bound', processes: me(),
    });
    assert.deepEqual(lsRow(inventory.text, streamAddress), ['unix', streamAddress, owner, '0777', '-', '-', `listening open:${process.pid}`]);

    const refused = await fails(['rm', streamAddress], 1, 'EADDRINUSE');
    assert.equal(refused, `EADDRINUSE: ${streamAddress} is an abstract name: it is no file, and vanishes when the socket bound to it closes; ` +
      `there is nothing to remove. Bound to it: a listening unix socket held by pid ${process.pid}. Stop that process to free the name.\n`);
    server.close();
    dgram.close();
    const gone = await fails(['rm', '--json', streamAddress], 1, 'ENOENT');
    assert.match(JSON.parse(gone).error.message, /is an abstract name: .* No socket is bound to it now\.$/);
    assert.equal(find((await ls()).objects, streamAddress), undefined);
  });

  it('lists the sockets of another program (Python) with its pid; a client bound to its own path is connected', async () => {
    const [listening, datagram, client, server] = [socketPath('py-l'), socketPath('py-d'), socketPath('py-c'), socketPath('py-s')];
    const ours = track(listen(`unix:${server}`));
    const python = await holder('python3', ['-c', [
      'import socket, sys',
      'l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); l.bind(sys.argv[1]); l.listen()',
      'd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); d.bind(sys.argv[2])',
      'c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.bind(sys.argv[3]); c.connect(sys.argv[4])',
      'print("ready", flush=True)',
      'sys.stdin.read()',
    ].join('\n'), listening, datagram, client, server]);
    const conn = await ours.accept();
    const theirs = [{ pid: python.pid!, role: 'holder', alive: true }];
    const fileMode = (p: string): number => lstatSync(p).mode & 0o777;
    const pick = (o: LsObject | undefined): unknown => o && { ...o, inode: typeof o.inode };
    let inventory = await ls();
    assert.deepEqual(pick(find(inventory.objects, `unix:${listening}`)), {
      kind: 'unix', address: `unix:${listening}`, inode: 'number', uid, owner, mode: fileMode(listening), ...NO_DEPTH,
      state: 'listening', connections: 0, pending: 0, processes: theirs,
    });
    assert.deepEqual(pick(find(inventory.objects, `unix-dgram:${datagram}`)), {
      kind: 'unix-dgram', address: `unix-dgram:${datagram}`, inode: 'number', uid, owner, mode: fileMode(datagram), ...NO_DEPTH,
      state: 'bound', processes: theirs,
    });
    assert.deepEqual(pick(find(inventory.objects, `unix:${client}`)), {
      kind: 'unix', address: `unix:${client}`, inode: 'number', uid, owner, mode: fileMode(client), ...NO_DEPTH,
      state: 'connected', processes: theirs,
    });
    assert.deepEqual(find(inventory.objects, `unix:${server}`)?.connections, 1);

    // Python exits without removing its files: all three are stale, whatever they were.
    const exited = new Promise((resolve) => python.once('close', resolve));
    python.stdin!.end();
    await exited;
    conn.close();
    inventory = await ls();
    for (const path of [listening, datagram, client]) {
      assert.deepEqual(find(inventory.objects, `unix:${path}`), {
        kind: 'unix', address: `unix:${path}`, uid, owner, mode: fileMode(path), ...NO_DEPTH, stale: true, processes: [],
      });
    }
    assert.equal(inventory.objects.filter((o) => o.address.endsWith(datagram)).length, 1);
    for (const path of [listening, datagram, client]) await ok(['rm', `unix:${path}`]);
    ours.close();
  });
});

describe('ipckit ls and rm: stale socket files', () => {
  it('a server killed with SIGKILL leaves a stale file: listed (stale), removed by rm; while it lived, rm refused', async () => {
    const path = socketPath('killed');
    const address = `unix:${path}`;
    const child = await ipckitServer(address);
    let inventory = await ls();
    assert.deepEqual(find(inventory.objects, address)?.processes, [{ pid: child.pid!, role: 'holder', alive: true }]);
    assert.deepEqual(lsRow(inventory.text, address), ['unix', address, owner, '0600', '-', '-', `listening open:${child.pid}`]);

    const refused = await fails(['rm', address], 1, 'EADDRINUSE');
    assert.equal(refused, `EADDRINUSE: ${address} is live: a listening unix socket held by pid ${child.pid} is bound to it; it was left alone. ` +
      'ipckit rm removes only stale socket files; a server removes its own when it closes.\n');
    // The plain path too, and with --json the error is JSON with the same code.
    const asJson = JSON.parse(await fails(['rm', '--json', path], 1, 'EADDRINUSE')) as { error: Record<string, unknown> };
    assert.deepEqual({ ...asJson.error, message: undefined }, { code: 'EADDRINUSE', message: undefined, errno: -98, address });
    assert.ok(lstatSync(path).isSocket());

    await killed(child);
    assert.ok(lstatSync(path).isSocket(), 'SIGKILL leaves the file');
    inventory = await ls();
    assert.deepEqual(find(inventory.objects, address), {
      kind: 'unix', address, uid, owner, mode: 0o600, ...NO_DEPTH, stale: true, processes: [],
    });
    assert.deepEqual(lsRow(inventory.text, `${address} (stale)`), ['unix', `${address} (stale)`, owner, '0600', '-', '-', '-']);

    const removed = await ok(['rm', address]);
    assert.equal(removed.stdout, `removed ${address} (stale socket file)\n`);
    assert.equal(existsSync(path), false);
    await fails(['rm', address], 1, 'ENOENT');
  });

  it('rm takes the plain path of a stale file, and refuses a live datagram socket', async () => {
    const path = socketPath('plain');
    const child = await ipckitServer(`unix:${path}`);
    await killed(child);
    assert.deepEqual(json((await ok(['rm', '--json', path])).stdout), { removed: path, kind: 'socket' });
    assert.equal(existsSync(path), false);

    const dgramPath = socketPath('live-dgram');
    const dgram = track(bind(`unix-dgram:${dgramPath}`));
    const refused = await fails(['rm', `unix-dgram:${dgramPath}`], 1, 'EADDRINUSE');
    assert.match(refused, new RegExp(`is live: a bound unix-dgram socket held by pid ${process.pid} is bound to it`));
    dgram.close();
    assert.equal(existsSync(dgramPath), false);
  });

  it('a file removed and bound again belongs to the new socket; the old one is listed (deleted)', async () => {
    const path = socketPath('rebound');
    const address = `unix:${path}`;
    const first = track(listen(address));
    unlinkSync(path);
    const second = track(listen(address));
    const inventory = await ls();
    assert.deepEqual(find(inventory.objects, address, inodeOf(first.fd)), {
      kind: 'unix', address, inode: inodeOf(first.fd), uid, owner, mode: 0o600, ...NO_DEPTH,
      state: 'listening', connections: 0, pending: 0, deleted: true, processes: me(),
    });
    assert.deepEqual(find(inventory.objects, address, inodeOf(second.fd)), {
      kind: 'unix', address, inode: inodeOf(second.fd), uid, owner, mode: 0o600, ...NO_DEPTH,
      state: 'listening', connections: 0, pending: 0, processes: me(),
    });
    assert.deepEqual(lsRow(inventory.text, `${address} (deleted)`), ['unix', `${address} (deleted)`, owner, '0600', '-', '-', `listening open:${process.pid}`]);
    await fails(['rm', address], 1, 'EADDRINUSE');
    first.close();
    assert.ok(existsSync(path), 'closing the first server left the second one\'s file alone');
    second.close();
    assert.equal(existsSync(path), false);
  });

  it('a stale file over the path of a live socket is stale: /proc/net/unix still names the path, the kernel says nobody is bound', async () => {
    const path = socketPath('shadow');
    const address = `unix:${path}`;
    const live = track(listen(address));
    unlinkSync(path);
    await killed(await ipckitServer(address));
    const inventory = await ls();
    assert.deepEqual(find(inventory.objects, address, inodeOf(live.fd))?.deleted, true);
    assert.deepEqual(inventory.objects.filter((o) => o.address === address && o.inode === undefined), [{
      kind: 'unix', address, uid, owner, mode: 0o600, ...NO_DEPTH, stale: true, processes: [],
    }]);
    assert.equal((await ok(['rm', address])).stdout, `removed ${address} (stale socket file)\n`);
    assert.equal(existsSync(path), false);
    live.close();
  });

  it('rm refuses what is not a socket file, and --kind other than socket with a socket address', async () => {
    const file = socketPath('regular');
    writeFileSync(file, 'data');
    const stderr = await fails(['rm', `unix:${file}`], 2, 'ERR_IPC_INVALID_ADDRESS');
    assert.equal(stderr, `ERR_IPC_INVALID_ADDRESS: ${file} is a regular file, not a socket file; it was left alone.\n`);
    assert.ok(existsSync(file));
    unlinkSync(file);
    await fails(['rm', '--kind', 'fifo', `unix:${file}`], 2, 'ERR_IPC_USAGE');
  });
});

describe('ipckit ls: hostile socket names and other users', () => {
  it('a path with a newline and a forged /proc/net/unix entry after it is one socket, listed under its whole name', async () => {
    // Short enough for sun_path with the forged entry inside.
    const base = mkdtempSync('/tmp/ik');
    dirs.push(base);
    const forgedPath = `${base}/f`;
    const path = `${base}/e\n0000000000000000: 00000002 00000000 00010000 0001 01 12345 ${forgedPath}`;
    mkdirSync(path.slice(0, path.lastIndexOf('/')), { recursive: true });
    const server = track(listen(`unix:${path}`));
    const inventory = await ls();
    assert.deepEqual(inventory.objects.filter((o) => o.address.includes(base)).map((o) => [o.address, o.inode, o.deleted]),
      [[`unix:${path}`, inodeOf(server.fd), undefined]]);
    assert.equal(inventory.text.split('\n').filter((line) => line.includes(base)).length, 1);
    assert.equal(lsRow(inventory.text, `unix:${path.replace('\n', '\\n')}`)?.[6], `listening open:${process.pid}`);
    server.close();
  });

  it('run by another user: holders it may not inspect are left out, said so in a note; owners it cannot know are ?', async (t) => {
    if (!canRunAs(65534)) {
      t.skip('needs root, and a checkout user 65534 can read');
      return;
    }
    const visible = mkdtempSync(`${tmpdir()}/ipckit-test-sock-open-`);
    dirs.push(visible);
    chmodSync(visible, 0o755);
    const [openPath, hiddenPath, abstract] = [socketPath('seen', visible), socketPath('hidden'), abstractAddress('other')];
    const servers = [track(listen(`unix:${openPath}`)), track(listen(`unix:${hiddenPath}`)), track(listen(abstract))];
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'ls', '--json'], { uid: 65534, gid: 65534 });
    const inventory = json(stdout) as unknown as { objects: LsObject[]; notes: string[] };
    const seen = (address: string): unknown => {
      const o = find(inventory.objects, address);
      return o && { uid: o.uid, owner: o.owner, mode: o.mode, state: o.state, deleted: o.deleted, processes: o.processes };
    };
    // Its file is seen, but the connect that asks whether it is bound needs write permission: the listed socket is trusted.
    assert.deepEqual(seen(`unix:${openPath}`), { uid, owner, mode: 0o600, state: 'listening', deleted: undefined, processes: [] });
    // In a directory user 65534 may not search: not deleted, only unknown.
    assert.deepEqual(seen(`unix:${hiddenPath}`), { uid: null, owner: '?', mode: 0o777, state: 'listening', deleted: undefined, processes: [] });
    assert.deepEqual(seen(abstract), { uid: null, owner: '?', mode: 0o777, state: 'listening', deleted: undefined, processes: [] });
    assert.ok(inventory.notes.some((note) => /^[0-9]+ process(es)? could not be inspected \(another user's\)/.test(note)), inventory.notes.join('\n'));
    for (const s of servers) s.close();
  });
});

describe('ipckit ls: many sockets', () => {
  it('lists a thousand sockets of one process in one listing, each with its holder', async (t) => {
    const many = mkdtempSync(`${tmpdir()}/ipckit-test-sock-many-`);
    dirs.push(many);
    const addresses: string[] = [];
    const servers: SocketServer[] = [];
    try {
      for (let i = 0; i < 500; i++) {
        addresses.push(`unix:${many}/s${i}`, abstractAddress(`many${i}`));
        servers.push(listen(addresses.at(-2)!), listen(addresses.at(-1)!));
      }
      const started = performance.now();
      const r = await ok(['ls', '--json']);
      t.diagnostic(`ipckit ls took ${Math.round(performance.now() - started)} ms with ${servers.length} more sockets`);
      const objects = (json(r.stdout) as unknown as { objects: LsObject[] }).objects;
      const listed = new Map(objects.map((o) => [o.address, o]));
      assert.deepEqual(addresses.filter((a) => listed.get(a)?.processes[0]?.pid !== process.pid), []);
    } finally {
      for (const s of servers) s.close();
    }
    assert.deepEqual(readdirSync(many), []);
  });
});

describe('socket inventory cleanup', () => {
  it('leaves no child process and no socket file of its own behind', async () => {
    for (const socket of open) socket.close();
    await killAllPeers();
    assert.equal(runningChildren(), 0);
    const left = (d: string): string[] => readdirSync(d, { recursive: true, encoding: 'utf8' })
      .filter((name) => lstatSync(`${d}/${name}`).isSocket()).map((name) => `${d}/${name}`);
    assert.deepEqual(dirs.flatMap(left), []);
  });
});
