/**
 * `ipckit socket listen|send`, run as real processes against each other and
 * against socat, nc and Python's socket module: every socket kind, both
 * directions, --echo, --reply, --raw, descriptor passing, peer credentials,
 * stopping by signal, exit codes, and nothing left behind. Also the socket
 * chapter of `ipckit tour`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { listen } from '../src/index.js';
import {
  CLI, type CliResult, type Launched, all, describeRun, exitOnItsOwn, fails, ipckit, json, jsonLines, launch, launchIntoPipe, ok,
} from './helpers/cli.js';
import { waitUntil } from './helpers/assert.js';
import { uniqueName } from './helpers/objects.js';
import { asUser, canRunAs, killAllPeers, runningChildren, trackChild } from './helpers/peer.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-cli-sock-'));
let counter = 0;

/** A socket path in this file's own directory. */
function socketPath(label: string): string {
  counter++;
  return path.join(dir, `${label}-${counter}.sock`);
}

/** An abstract name no other test (or run) uses. */
function abstractName(): string {
  return `@${uniqueName('sock').slice(1)}`;
}

/** The socket files (and anything else) left in this file's directory. */
function leftInDir(): string[] {
  return readdirSync(dir);
}

/** Descriptors of a process, each as /proc says what it is. */
function fdsOf(pid: number | 'self'): string[] {
  const base = `/proc/${pid}/fd`;
  return readdirSync(base).flatMap((fd) => {
    try {
      return [readlinkSync(`${base}/${fd}`)];
    } catch {
      return []; // Closed meanwhile (the readdir's own descriptor).
    }
  });
}

const uid = process.getuid!();
const gid = process.getgid!();
let fdsAtStart: string[];

before(() => {
  fdsAtStart = fdsOf('self');
});

after(async () => {
  await killAllPeers();
  rmSync(dir, { recursive: true, force: true });
});

/** What a child prints on one stream, from its start; `until` waits for a pattern in it. */
class Printed {
  text = '';
  readonly #child: ChildProcess;
  readonly #waiters = new Set<() => void>();

  constructor(child: ChildProcess, stream: 'stdout' | 'stderr') {
    this.#child = child;
    child[stream]!.on('data', (chunk: Buffer) => {
      this.text += chunk.toString('utf8');
      for (const wake of this.#waiters) wake();
    });
    child.once('close', () => { for (const wake of this.#waiters) wake(); });
  }

  /** The first match of `pattern` in everything printed so far; fails if the child exits without it, or after 30 s. */
  until(pattern: RegExp): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`nothing matching ${pattern} after 30 s: ${JSON.stringify(this.text)}`)), 30_000);
      const check = (): void => {
        const match = pattern.exec(this.text);
        if (match) finish(undefined, match);
        else if (this.#child.exitCode !== null || this.#child.signalCode !== null) {
          finish(new Error(`exited (${this.#child.exitCode ?? this.#child.signalCode}) before printing ${pattern}: ${JSON.stringify(this.text)}`));
        }
      };
      const finish = (err: Error | undefined, match?: RegExpExecArray): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        if (err) reject(err);
        else resolve(match!);
      };
      this.#waiters.add(check);
      check();
    });
  }
}

interface Listening extends Launched {
  /** The address the listener printed (the real port for port 0). */
  address: string;
  pid: number;
  stdout: Printed;
  stderr: Printed;
}

/** Starts `ipckit socket listen <args>` and resolves once it has printed the address it listens on. */
async function listening(args: string[]): Promise<Listening> {
  const run = launch(['socket', 'listen', ...args]);
  const stdout = new Printed(run.child, 'stdout');
  const stderr = new Printed(run.child, 'stderr');
  const pattern = args.includes('--json') ? /^\{"listening":\{"address":"([^"]+)","pid":(\d+)\}\}\n/m : /^listening on (\S+) in pid (\d+)\n/m;
  const match = await stderr.until(pattern);
  assert.equal(Number(match[2]), run.child.pid);
  return { ...run, address: match[1]!, pid: run.child.pid!, stdout, stderr };
}

/**
 * Waits until a listener has printed `lines` lines. Messages of one connection
 * arrive in order; of several, in any order: a test that wants an order sends
 * the next message once the last one was printed.
 */
async function printedLines(server: Listening, lines: number): Promise<void> {
  await server.stdout.until(new RegExp(`^(?:.*\\n){${lines}}`));
}

/** The notice a listener prints first, as it prints it. */
function notice(address: string, pid: number, asJson: boolean): string {
  return asJson ? `${JSON.stringify({ listening: { address, pid } })}\n` : `listening on ${address} in pid ${pid}\n`;
}

interface ToolResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Starts another program (socat, nc, python3) with `input` on its stdin
 * (`keepStdin`: left open, for the test to end); `done` resolves when it has exited.
 */
function tool(command: string, args: string[], input?: string | Buffer, keepStdin = false):
  { child: ChildProcess; stdout: Printed; stderr: Printed; done: Promise<ToolResult> } {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  trackChild(child);
  const printedOut = new Printed(child, 'stdout');
  const printedErr = new Printed(child, 'stderr');
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  child.stdin!.on('error', () => undefined);
  if (input !== undefined) child.stdin!.end(input);
  else if (!keepStdin) child.stdin!.end();
  const done = new Promise<ToolResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
  return { child, stdout: printedOut, stderr: printedErr, done };
}

async function toolOk(command: string, args: string[], input?: string | Buffer): Promise<ToolResult> {
  const r = await tool(command, args, input).done;
  assert.equal(r.status, 0, `${command} ${args.join(' ')}: ${JSON.stringify(r)}`);
  return r;
}

/** Whether `command` runs here. */
function installed(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore' }).error === undefined;
}

const HAVE_SOCAT = installed('socat', ['-V']);
/** OpenBSD netcat: -N (shut down the sending side at the end of input) and -U (Unix sockets). */
const HAVE_NC = installed('nc', ['-h']) && /OpenBSD netcat/.test(spawnSync('nc', ['-h'], { encoding: 'utf8' }).stderr ?? '');

/** host and port of a tcp:// or udp:// address. */
function hostPort(address: string): [string, string] {
  const m = /^(?:tcp|udp):\/\/(.+):(\d+)$/.exec(address);
  assert.ok(m, address);
  return [m[1]!, m[2]!];
}

/** A message line of `listen --json`. */
function message(data: string, peer: Record<string, unknown>, connection: number | null, fds: string[] = []): Record<string, unknown> {
  return { data, peer, connection, fds };
}

function unixPeer(pid: number, address: string | null = null): Record<string, unknown> {
  return { address, pid, uid, gid };
}

function addressPeer(address: string | null): Record<string, unknown> {
  return { address, pid: null, uid: null, gid: null };
}

/** Python: a framed client. Sends each argument as a message (4-byte big-endian length, then the bytes) and prints each reply. */
const PY_FRAMED_CLIENT = `
import socket, struct, sys
family, target, replies = sys.argv[1], sys.argv[2], int(sys.argv[3])
if family == 'unix':
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(target)
else:
    host, port = target.rsplit(':', 1)
    s = socket.create_connection((host, int(port)))
def exact(n):
    b = b''
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise SystemExit('closed early')
        b += chunk
    return b
for text in sys.argv[4:]:
    data = text.encode()
    s.sendall(struct.pack('>I', len(data)) + data)
for _ in range(replies):
    (n,) = struct.unpack('>I', exact(4))
    print(exact(n).decode())
s.close()
`;

describe('ipckit socket listen and send over Unix stream sockets', () => {
  it('prints each message with the sender\'s credentials, and send sees the server\'s; the socket file is removed at the end', async () => {
    const file = socketPath('json');
    const server = await listening([`unix:${file}`, '--count', '3', '--json']);
    assert.equal(server.address, `unix:${file}`);
    // Text, stdin that is not UTF-8 (base64 in --json), and an empty message.
    const first = await ok(['socket', 'send', server.address, 'hello', '--json']);
    assert.deepEqual(json(first.stdout), { sent: true, bytes: 5, peer: unixPeer(server.pid, server.address) });
    await printedLines(server, 1);
    const second = await ok(['socket', 'send', server.address, '-'], Buffer.from([0xff, 0x00, 0x41]));
    assert.equal(second.stdout, '');
    await printedLines(server, 2);
    const third = await ok(['socket', 'send', server.address, '']);
    const r = await server.done;
    assert.equal(r.status, 0, describeRun(['socket', 'listen'], r));
    assert.equal(r.stderr, notice(server.address, server.pid, true));
    assert.deepEqual(jsonLines(r.stdout), [
      message('hello', unixPeer(first.pid), 1),
      { data: Buffer.from([0xff, 0x00, 0x41]).toString('base64'), encoding: 'base64', peer: unixPeer(second.pid), connection: 2, fds: [] },
      message('', unixPeer(third.pid), 3),
    ]);
    assert.equal(existsSync(file), false);
  });

  it('prints one line per message as text; --mode sets the socket file\'s permission bits', async () => {
    const file = socketPath('text');
    const server = await listening([`unix:${file}`, '--count', '2', '--mode', '640']);
    assert.equal(statSync(file).mode & 0o777, 0o640);
    await ok(['socket', 'send', server.address, 'two words']);
    await printedLines(server, 1);
    await ok(['socket', 'send', server.address, '-'], 'from stdin\n');
    const r = await server.done;
    assert.deepEqual([r.status, r.stdout, r.stderr], [0, 'two words\nfrom stdin\n\n', notice(server.address, server.pid, false)]);
    assert.equal(existsSync(file), false);
  });

  it('--echo answers send --reply, in text and JSON, and a Python client speaking the framing', async () => {
    const file = socketPath('echo');
    const server = await listening([`unix:${file}`, '--echo']);
    const [text, asJson] = await all([
      () => ok(['socket', 'send', server.address, 'echo me', '--reply']),
      () => ok(['socket', 'send', server.address, 'and me', '--reply', '--json', '--timeout', '10000']),
    ]);
    assert.equal(text!.stdout, 'echo me\n');
    const peer = unixPeer(server.pid, server.address);
    assert.deepEqual(json(asJson!.stdout), { sent: true, bytes: 6, peer, reply: { data: 'and me', peer, fds: [] } });
    const py = await toolOk('python3', ['-c', PY_FRAMED_CLIENT, 'unix', file, '2', 'first', 'second']);
    assert.equal(py.stdout, 'first\nsecond\n');
    server.child.kill('SIGTERM');
    const r = await server.done;
    // Stopped by SIGTERM: a clean end (exit 0), and the socket file is gone.
    assert.deepEqual([r.status, r.signal, r.stdout, r.stderr], [0, null, '', notice(server.address, server.pid, false)]);
    assert.equal(existsSync(file), false);
  });

  it('send --reply prints what a Python server answers; listen prints what a Python client sends', async () => {
    const file = socketPath('py');
    const pyServer = tool('python3', ['-c', `
import os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
print('ready', flush=True)
c, _ = s.accept()
(n,) = struct.unpack('>I', c.recv(4, socket.MSG_WAITALL))
data = c.recv(n, socket.MSG_WAITALL)
answer = ('python got ' + data.decode()).encode()
c.sendall(struct.pack('>I', len(answer)) + answer)
c.close(); s.close(); os.unlink(sys.argv[1])
`, file]);
    await pyServer.stdout.until(/^ready\n/);
    const r = await ok(['socket', 'send', `unix:${file}`, 'a question', '--reply']);
    assert.equal(r.stdout, 'python got a question\n');
    assert.equal((await pyServer.done).status, 0);

    const server = await listening([`unix:${file}`, '--count', '2']);
    await toolOk('python3', ['-c', PY_FRAMED_CLIENT, 'unix', file, '0', 'from python', 'twice']);
    const got = await server.done;
    assert.deepEqual([got.status, got.stdout], [0, 'from python\ntwice\n']);
  });

  it('serves connections side by side and closes each one when its peer leaves', async () => {
    const server = await listening([`unix:${socketPath('many')}`, '--json']);
    const baseline = fdsOf(server.pid).length;
    const senders = await all(['a', 'b', 'c', 'd'].map((text) => () => ok(['socket', 'send', server.address, text])));
    // A sender is done once its message is in the socket's buffer, maybe before the listener has
    // accepted its connection: wait for the four lines before counting descriptors or stopping it.
    await printedLines(server, 4);
    // Each connection's descriptor (and its peer's pidfd) goes once its peer has closed.
    await waitUntil(`the listener is back to its ${baseline} descriptors: ${fdsOf(server.pid).join(' ')}`, () => fdsOf(server.pid).length === baseline);
    server.child.kill('SIGINT');
    const r = await server.done;
    assert.equal(r.status, 0, r.stderr);
    const lines = jsonLines(r.stdout);
    assert.deepEqual(lines.map((l) => l.data).sort(), ['a', 'b', 'c', 'd']);
    assert.deepEqual(lines.map((l) => (l.peer as { pid: number }).pid).sort(), senders.map((s) => s!.pid).sort());
    assert.deepEqual(lines.map((l) => l.connection).sort(), [1, 2, 3, 4]);
  });

  it('a connection that sends too much or a cut frame is dropped and named; the listener goes on', async () => {
    const file = socketPath('bad');
    const server = await listening([`unix:${file}`, '--max-message', '8', '--count', '1', '--json']);
    const big = await ok(['socket', 'send', server.address, 'more than eight bytes']);
    await server.stderr.until(/"code":"ERR_IPC_MESSAGE_TOO_LARGE"/);
    // A length that promises 5 bytes, then 2 and the end.
    await toolOk('python3', ['-c', `
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'\\x00\\x00\\x00\\x05ab'); s.close()
`, file]);
    await server.stderr.until(/"code":"ERR_IPC_FRAMING"/);
    const good = await ok(['socket', 'send', server.address, 'fits']);
    const r = await server.done;
    assert.equal(r.status, 0);
    assert.deepEqual(jsonLines(r.stdout), [message('fits', unixPeer(good.pid), 3)]);
    const [announced, ...dropped] = jsonLines(r.stderr);
    assert.deepEqual(announced, { listening: { address: server.address, pid: server.pid } });
    assert.deepEqual(dropped.map((d) => {
      const { connection, code } = d.dropped as { connection: number; code: string };
      return [connection, code];
    }), [[1, 'ERR_IPC_MESSAGE_TOO_LARGE'], [2, 'ERR_IPC_FRAMING']]);
    assert.deepEqual((dropped[0]!.dropped as { peer: unknown }).peer, unixPeer(big.pid));
  });
});

describe('ipckit socket over seqpacket, abstract names, TCP and datagrams', () => {
  it('passes descriptors with --fd; the listener names what arrived and closes it', async () => {
    const file = socketPath('seq');
    const server = await listening([`unix-seqpacket:${file}`, '--count', '2', '--json']);
    const payload = path.join(dir, 'passed.txt');
    writeFileSync(payload, 'contents\n');
    const fd = openSync(payload, 'r');
    let sender: number;
    try {
      // The file is the sender's stdin: --fd 0 hands it over.
      const child = spawn(process.execPath, [CLI, 'socket', 'send', server.address, 'with a file', '--fd', '0'], { stdio: [fd, 'pipe', 'pipe'] });
      trackChild(child);
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
      const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.deepEqual([status, stderr], [0, '']);
      sender = child.pid!;
      // The listener names the file by its path: it must still be there when the message is printed.
      await printedLines(server, 1);
    } finally {
      closeSync(fd);
      rmSync(payload);
    }
    const plain = await ok(['socket', 'send', server.address, 'without']);
    const r = await server.done;
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(jsonLines(r.stdout), [message('with a file', unixPeer(sender), 1, [payload]), message('without', unixPeer(plain.pid), 2)]);
    assert.equal(existsSync(file), false);
  });

  it('listens on an abstract name (no file) and echoes seqpacket replies', async () => {
    const name = abstractName();
    const server = await listening([`unix-seqpacket:${name}`, '--echo', '--count', '1']);
    assert.equal(server.address, `unix-seqpacket:${name}`);
    assert.equal((await ok(['socket', 'send', server.address, 'packet', '--reply'])).stdout, 'packet\n');
    assert.equal((await server.done).status, 0);
  });

  it('TCP on port 0: prints the real port, echoes to send --reply and to Python', async () => {
    const server = await listening(['tcp://127.0.0.1:0', '--echo', '--count', '3']);
    const [, port] = hostPort(server.address);
    assert.notEqual(port, '0');
    assert.equal((await ok(['socket', 'send', server.address, 'over tcp', '--reply'])).stdout, 'over tcp\n');
    const asJson = json((await ok(['socket', 'send', `tcp://localhost:${port}`, 'hi', '--reply', '--json'])).stdout);
    // TCP carries no credentials: only addresses.
    assert.deepEqual(asJson, { sent: true, bytes: 2, peer: addressPeer(server.address), reply: { data: 'hi', peer: addressPeer(server.address), fds: [] } });
    const py = await toolOk('python3', ['-c', PY_FRAMED_CLIENT, 'tcp', `127.0.0.1:${port}`, '1', 'from python']);
    assert.equal(py.stdout, 'from python\n');
    const r = await server.done;
    assert.deepEqual([r.status, r.stdout], [0, '']);
  });

  it('TCP --json names the sender by address', async () => {
    const server = await listening(['tcp://127.0.0.1:0', '--count', '1', '--json']);
    await ok(['socket', 'send', server.address, 'who am I']);
    const [line] = jsonLines((await server.done).stdout);
    assert.equal(line!.data, 'who am I');
    assert.match((line!.peer as { address: string }).address, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual({ ...(line!.peer as object), address: null }, addressPeer(null));
  });

  it('UDP: binds port 0, echoes to send --reply and to Python; prints the sender\'s address', async () => {
    const echo = await listening(['udp://127.0.0.1:0', '--echo', '--count', '2']);
    const [host, port] = hostPort(echo.address);
    assert.equal((await ok(['socket', 'send', echo.address, 'datagram', '--reply', '--timeout', '10000'])).stdout, 'datagram\n');
    const py = await toolOk('python3', ['-c', `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(10)
s.sendto(b'from python', (sys.argv[1], int(sys.argv[2])))
print(s.recvfrom(100)[0].decode())
`, host, port]);
    assert.equal(py.stdout, 'from python\n');
    assert.equal((await echo.done).status, 0);

    const printer = await listening(['udp://127.0.0.1:0', '--count', '1', '--json']);
    const sent = json((await ok(['socket', 'send', printer.address, 'hello udp', '--json'])).stdout);
    assert.deepEqual(sent, { sent: true, bytes: 9, peer: addressPeer(printer.address) });
    const [line] = jsonLines((await printer.done).stdout);
    assert.equal(line!.data, 'hello udp');
    assert.match((line!.peer as { address: string }).address, /^udp:\/\/127\.0\.0\.1:\d+$/);
  });

  it('Unix datagrams: a path and an abstract name; bound and unbound senders; descriptors', async () => {
    const file = socketPath('dgram');
    const server = await listening([`unix-dgram:${file}`, '--count', '2', '--json']);
    assert.equal(server.address, `unix-dgram:${file}`);
    await ok(['socket', 'send', server.address, 'bound sender', '--fd', '1']);
    // Python sends from an unbound socket: there is no address to name.
    await toolOk('python3', ['-c', `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b'unbound sender', sys.argv[1])
`, file]);
    const r = await server.done;
    assert.equal(r.status, 0, r.stderr);
    const [first, second] = jsonLines(r.stdout);
    assert.equal(first!.data, 'bound sender');
    assert.match((first!.peer as { address: string }).address, /^unix-dgram:@ipckit-send-\d+-[a-z0-9]+$/);
    assert.equal((first!.fds as string[]).length, 1);
    assert.deepEqual(second, message('unbound sender', addressPeer(null), null));
    assert.equal(existsSync(file), false);

    // An echo that cannot go back (an unbound sender, a sender gone) drops that datagram; the listener goes on.
    const name = abstractName();
    const echo = await listening([`unix-dgram:${name}`, '--echo', '--count', '1', '--json']);
    // The listener is stopped while the sender comes and goes, so that its echo finds the sender gone
    // (echoing before the sender closed would reach it).
    process.kill(echo.pid, 'SIGSTOP');
    await toolOk('python3', ['-c', `
import socket, sys
target = '\\0' + sys.argv[1]
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'unbound', target)
gone = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); gone.bind('\\0' + sys.argv[1] + '-gone'); gone.sendto(b'gone', target); gone.close()
`, name.slice(1)]).finally(() => process.kill(echo.pid, 'SIGCONT'));
    await echo.stderr.until(/"code":"ECONNREFUSED"/);
    assert.equal((await ok(['socket', 'send', echo.address, 'round trip', '--reply'])).stdout, 'round trip\n');
    const r2 = await echo.done;
    assert.equal(r2.status, 0);
    assert.deepEqual(jsonLines(r2.stderr).slice(1).map((l) => {
      const { connection, peer, code } = l.dropped as { connection: null; peer: { address: string | null }; code: string };
      return [connection, peer.address, code];
    }), [[null, null, 'ERR_IPC_INVALID_ADDRESS'], [null, `unix-dgram:${name}-gone`, 'ECONNREFUSED']]);
  });
});

describe('ipckit socket --raw: lines of text for socat, nc and scripts', () => {
  it('listen --raw prints what socat sends, line by line, the last one without a newline too', async (t) => {
    if (!HAVE_SOCAT) return t.skip('socat not installed');
    const file = socketPath('raw');
    const server = await listening([`unix:${file}`, '--raw', '--count', '3', '--json']);
    await toolOk('socat', ['-', `UNIX-CONNECT:${file}`], 'one\ntwo\nthree');
    const r = await server.done;
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(jsonLines(r.stdout).map((l) => l.data), ['one', 'two', 'three']);
  });

  it('listen --raw --echo answers nc over TCP, line by line', async (t) => {
    if (!HAVE_NC) return t.skip('OpenBSD nc not installed');
    const server = await listening(['tcp://127.0.0.1:0', '--raw', '--echo']);
    const r = await toolOk('nc', ['-N', ...hostPort(server.address)], 'abc\ndef\n');
    assert.equal(r.stdout, 'abc\ndef\n');
    server.child.kill('SIGTERM');
    assert.equal((await server.done).status, 0);
  });

  it('send --raw talks to socat and nc servers; --reply reads one line', async (t) => {
    if (!HAVE_SOCAT || !HAVE_NC) return t.skip(`${HAVE_SOCAT ? 'OpenBSD nc' : 'socat'} not installed`);
    const shoutFile = socketPath('socat');
    const upper = tool('socat', ['-d', '-d', `UNIX-LISTEN:${shoutFile}`, 'SYSTEM:tr a-z A-Z']);
    await upper.stderr.until(/listening on/);
    assert.equal((await ok(['socket', 'send', `unix:${shoutFile}`, 'shout this', '--raw', '--reply'])).stdout, 'SHOUT THIS\n');
    assert.equal((await upper.done).status, 0);

    const ncFile = socketPath('nc');
    const nc = tool('nc', ['-lvU', ncFile]);
    await nc.stderr.until(/Listening on/);
    await ok(['socket', 'send', `unix:${ncFile}`, 'to nc', '--raw']);
    const got = await nc.done;
    assert.deepEqual([got.status, got.stdout], [0, 'to nc\n']);
    rmSync(ncFile, { force: true }); // nc leaves its socket file.
  });

  it('send --raw and listen --raw speak lines to each other and to Python; datagrams drop and add one newline', async () => {
    const server = await listening(['tcp://127.0.0.1:0', '--raw', '--echo']);
    const [host, port] = hostPort(server.address);
    assert.equal((await ok(['socket', 'send', server.address, 'line', '--raw', '--reply'])).stdout, 'line\n');
    const py = await toolOk('python3', ['-c', `
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(b'first\\nsecond\\n'); s.shutdown(socket.SHUT_WR)
data = b''
while True:
    chunk = s.recv(100)
    if not chunk: break
    data += chunk
print(repr(data))
`, host, port]);
    assert.equal(py.stdout, "b'first\\nsecond\\n'\n");
    server.child.kill('SIGTERM');
    assert.equal((await server.done).status, 0);

    const udp = await listening(['udp://127.0.0.1:0', '--raw', '--count', '2', '--json']);
    await ok(['socket', 'send', udp.address, 'no framing', '--raw']);
    await toolOk('python3', ['-c', `
import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'python line\\n', (sys.argv[1], int(sys.argv[2])))
`, ...hostPort(udp.address)]);
    assert.deepEqual(jsonLines((await udp.done).stdout).map((l) => l.data), ['no framing', 'python line']);
  });
});

describe('ipckit socket failures and exit codes', () => {
  it('a malformed address exits 2 with ERR_IPC_INVALID_ADDRESS, for both verbs, as text and JSON', async () => {
    const bad = ['/tmp/no-scheme.sock', 'unix:', 'tcp://127.0.0.1', 'tcp://127.0.0.1:65536', 'udp://::1:53', 'tcp://example.com:80', `unix:/${'p'.repeat(107)}`];
    await all(bad.flatMap((address) => [
      () => fails(['socket', 'send', address, 'x'], 2, 'ERR_IPC_INVALID_ADDRESS'),
      () => fails(['socket', 'listen', address, '--json'], 2, 'ERR_IPC_INVALID_ADDRESS'),
    ]));
    const stderr = await fails(['socket', 'send', 'tcp://127.0.0.1:99999', 'x', '--json'], 2, 'ERR_IPC_INVALID_ADDRESS');
    assert.deepEqual(JSON.parse(stderr), { error: {
      code: 'ERR_IPC_INVALID_ADDRESS', message: 'Invalid socket address "tcp://127.0.0.1:99999": the port must be an integer from 0 to 65535; got "99999".',
      address: 'tcp://127.0.0.1:99999',
    } });
  });

  it('options that do not fit the address, or the command, exit 2 with ERR_IPC_USAGE', async () => {
    const cases: [string[], RegExp][] = [
      [['socket', 'send', 'tcp://127.0.0.1:1', 'x', '--fd', '0'], /--fd passes descriptors over Unix sockets only/],
      [['socket', 'send', 'unix:/x.sock', 'x', '--fd', '0', '--raw'], /drop --raw, or use unix-seqpacket:/],
      [['socket', 'send', 'unix:/x.sock', 'x', '--fd', 'stdin'], /--fd takes descriptor numbers/],
      [['socket', 'send', 'unix:/x.sock', 'x', '--timeout', '-1'], /--timeout must be an integer from 0/],
      [['socket', 'send', 'unix:/x.sock'], /takes <address> <text\|->; got 1 argument/],
      [['socket', 'listen', 'tcp://127.0.0.1:0', '--mode', '600'], /--mode applies to a Unix socket file/],
      [['socket', 'listen', 'unix:@abstract', '--mode', '600'], /--mode applies to a Unix socket file/],
      [['socket', 'listen', 'unix:/x.sock', '--mode', '999'], /--mode must be octal/],
      [['socket', 'listen', 'tcp://127.0.0.1:0', '--allow-uid', '0'], /--allow-uid applies to Unix connections/],
      [['socket', 'listen', 'unix-dgram:@x', '--allow-uid', '0'], /--allow-uid applies to Unix connections/],
      [['socket', 'listen', 'unix:/x.sock', '--allow-uid', 'root'], /--allow-uid takes uids separated by commas/],
      [['socket', 'listen', 'unix:/x.sock', '--count', '0'], /--count must be an integer from 1/],
      [['socket', 'listen', 'unix:/x.sock', '--bogus'], /Unknown option '--bogus'/],
      [['socket', 'connect'], /Unknown command "connect" for ipckit socket/],
    ];
    await all(cases.map(([args, message]) => async () => {
      assert.match(await fails(args, 2, 'ERR_IPC_USAGE'), message);
    }));
  });

  it('nothing listening: ENOENT for a missing file, ECONNREFUSED for a closed port, an abstract name or a stale file (exit 1)', async () => {
    const closed = listen('tcp://127.0.0.1:0');
    const closedAddress = closed.localAddress!;
    closed.close();
    // A socket file whose server is gone without removing it.
    const stale = socketPath('stale');
    spawnSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', stale]);
    assert.equal(existsSync(stale), true);
    const [missing, refused, abstract, staleFile, dgram] = await all([
      () => fails(['socket', 'send', `unix:${path.join(dir, 'nobody.sock')}`, 'x'], 1, 'ENOENT'),
      () => fails(['socket', 'send', closedAddress, 'x', '--reply', '--json'], 1, 'ECONNREFUSED'),
      () => fails(['socket', 'send', `unix:${abstractName()}`, 'x'], 1, 'ECONNREFUSED'),
      () => fails(['socket', 'send', `unix:${stale}`, 'x'], 1, 'ECONNREFUSED'),
      () => fails(['socket', 'send', `unix-dgram:${path.join(dir, 'nobody.sock')}`, 'x'], 1, 'ENOENT'),
    ]);
    assert.match(missing!, /No socket file at that path: start the server first/);
    assert.deepEqual({ ...JSON.parse(refused!).error, message: undefined }, {
      code: 'ECONNREFUSED', message: undefined, errno: -111, syscall: 'connect', address: closedAddress,
    });
    assert.match(abstract!, /^ECONNREFUSED: connect unix:@/);
    assert.match(staleFile!, /Nothing listens at that address/);
    assert.match(dgram!, /^ENOENT: send unix-dgram:/);
    rmSync(stale);
  });

  it('no reply in time is ERR_IPC_TIMEOUT; a server that closes without one is ERR_IPC_PEER_CLOSED (exit 1)', async () => {
    // A server that takes the connection and the message, and answers nothing until the test ends it (closes its stdin).
    const file = socketPath('silent');
    const silent = tool('python3', ['-c', `
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
print('ready', flush=True)
c, _ = s.accept()
print(c.recv(100)[4:].decode(), flush=True)
sys.stdin.read()
`, file], undefined, true);
    await silent.stdout.until(/^ready\n/);
    const udp = await listening(['udp://127.0.0.1:0']);
    const [slow, slowUdp] = await all([
      () => fails(['socket', 'send', `unix:${file}`, 'anyone?', '--reply', '--timeout', '100'], 1, 'ERR_IPC_TIMEOUT'),
      () => fails(['socket', 'send', udp.address, 'anyone?', '--reply', '--timeout', '100'], 1, 'ERR_IPC_TIMEOUT'),
    ]);
    assert.equal(slow, `ERR_IPC_TIMEOUT: No reply came from unix:${file} within 100 ms (--timeout).\n`);
    assert.equal(slowUdp, `ERR_IPC_TIMEOUT: No reply came from ${udp.address} within 100 ms (--timeout).\n`);
    silent.child.stdin!.end();
    assert.deepEqual((await silent.done).stdout, 'ready\nanyone?\n');
    rmSync(file);
    await udp.stdout.until(/^anyone\?\n/); // The sender timed out; the datagram may still be unread.
    udp.child.kill('SIGTERM');
    assert.deepEqual((await udp.done).stdout, 'anyone?\n');

    // A listener without --echo reads the message, sees the sender's end, and closes: no reply is coming.
    const once = await listening([`unix:${socketPath('once')}`]);
    assert.equal(await fails(['socket', 'send', once.address, 'bye', '--reply'], 1, 'ERR_IPC_PEER_CLOSED'),
      `ERR_IPC_PEER_CLOSED: ${once.address} closed the connection without a reply.\n`);
    once.child.kill('SIGTERM');
    assert.equal((await once.done).stdout, 'bye\n');
  });

  it('listen on an address in use fails with EADDRINUSE (exit 1) and leaves the other\'s socket alone', async () => {
    const file = socketPath('busy');
    const first = await listening([`unix:${file}`, '--count', '1']);
    assert.match(await fails(['socket', 'listen', `unix:${file}`], 1, 'EADDRINUSE'), /A live socket is bound there/);
    const tcp = await listening(['tcp://127.0.0.1:0']);
    await fails(['socket', 'listen', tcp.address, '--json'], 1, 'EADDRINUSE');
    const plain = path.join(dir, 'plain-file');
    writeFileSync(plain, '');
    assert.match(await fails(['socket', 'listen', `unix:${plain}`], 1, 'EADDRINUSE'), /exists and is not a socket/);
    rmSync(plain);
    await ok(['socket', 'send', first.address, 'still there']);
    assert.equal((await first.done).stdout, 'still there\n');
    tcp.child.kill('SIGTERM');
    assert.equal((await tcp.done).status, 0);
  });
});

describe('ipckit socket listen: stopping, refusing, and what it leaves', () => {
  it('SIGINT, SIGTERM and SIGHUP close the server, remove its socket file, and exit 0', async () => {
    await all((['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => async () => {
      const file = socketPath(sig);
      const server = await listening([`unix:${file}`, '--json']);
      assert.equal(existsSync(file), true);
      server.child.kill(sig);
      const r = await server.done;
      assert.deepEqual([r.status, r.signal, r.stdout], [0, null, ''], `${sig}: ${r.stderr}`);
      assert.equal(existsSync(file), false, sig);
    }));
  });

  it('--allow-uid closes other users\' connections unread and names them', async (t) => {
    const other = 65534;
    if (!canRunAs(other)) return t.skip('needs root, setpriv, and a checkout another user can read');
    const server = await listening([`unix:${abstractName()}`, '--allow-uid', String(uid), '--count', '1', '--json']);
    const stranger = spawn(asUser(other)[0]!, [...asUser(other).slice(1), process.execPath, CLI, 'socket', 'send', server.address, 'let me in', '--reply'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(stranger);
    let strangerErr = '';
    stranger.stderr!.setEncoding('utf8').on('data', (chunk: string) => { strangerErr += chunk; });
    const strangerStatus = await new Promise<number | null>((resolve) => stranger.on('close', resolve));
    assert.equal(strangerStatus, 1, strangerErr);
    assert.match(strangerErr, /^ERR_IPC_PEER_CLOSED: /);
    const friend = await ok(['socket', 'send', server.address, 'a friend']);
    const r = await server.done;
    assert.deepEqual(jsonLines(r.stdout), [message('a friend', unixPeer(friend.pid), 1)]);
    const refused = jsonLines(r.stderr)[1]!.refused as Record<string, unknown>;
    assert.deepEqual(refused, { pid: stranger.pid, uid: other, gid: other, reason: `uid ${other} / gid ${other} is not allowed` });
  });

  it('stops once stdout\'s reader is gone: exit 1 with EPIPE, its socket file removed', async () => {
    const file = socketPath('gone');
    const run = launchIntoPipe(['socket', 'listen', `unix:${file}`]);
    await waitUntil('the listener prints its address', () => run.stderr().includes('listening on'), 30_000);
    await ok(['socket', 'send', `unix:${file}`, 'the only line']);
    assert.equal(await run.readLine(), 'the only line');
    run.readEnd.close();
    const { result, unblocked } = await exitOnItsOwn(run.done, () => { void ipckit(['socket', 'send', `unix:${file}`, 'unblock']); });
    assert.equal(unblocked, false, 'the listener did not notice that its reader left');
    assert.equal(result.status, 1);
    assert.equal(result.stderr.split('\n')[1], 'EPIPE: stdout\'s reader left after 1 message. The listener was closed; nothing more was received.');
    assert.equal(existsSync(file), false);
  });
});

describe('ipckit tour socket', () => {
  /** Whether the tour can build network namespaces here (root and ip(8)). */
  const namespaces = uid === 0 && installed('ip', ['-V']);

  function checkTour(r: CliResult): void {
    const out = r.stdout;
    assert.ok(out.startsWith('\n=== Sockets: two-way connections, on one machine and across machines ===\n'), out.slice(0, 200));
    const file = `${tmpdir()}/ipckit-tour-sock-${r.pid}`;
    // The Unix exchange: each side sees the other's pid, from the kernel.
    const asker = /\[child (\d+) *\] \$ ipckit socket send unix:\S+ "who are you\?" --reply --json\n/.exec(out);
    assert.ok(asker, out);
    assert.ok(out.includes(`] accepted a connection; the kernel says the other end is pid ${asker[1]} (uid ${uid}, gid ${gid})\n`), out);
    assert.ok(out.includes(`] printed the reply "the tour, pid ${r.pid}; and you are pid ${asker[1]}"; the kernel says the server is pid ${r.pid} (uid ${uid}, gid ${gid})\n`), out);
    // The descriptor: a pipe made by sh, read by the tour.
    assert.match(out, /\] received "here is my stdin" from pid \d+ \(the pipeline's ipckit\), with descriptor \d+: pipe:\[\d+\]\n/);
    assert.ok(out.includes('] read "written by printf into the pipe sh made\\n" from it: a pipe the tour never opened\n'), out);
    assert.ok(out.includes(`] closed the server; its socket file ${file} is removed\n`));
    assert.equal(existsSync(file), false);
    // TCP: an echo on a port the kernel chose, without credentials.
    assert.match(out, /\] listening on tcp:\/\/127\.0\.0\.1:\d+\n/);
    assert.match(out, /\] connected from tcp:\/\/127\.0\.0\.1:\d+ to tcp:\/\/127\.0\.0\.1:\d+; peer credentials: none \(TCP knows only addresses\)\n/);
    assert.match(out, /\] sent "ping again", and "ping again" came back after [0-9.]+ ms\n/);
    assert.match(out, /\] echoed 2 messages and exited 0\n/);
    // Across machines, or why not; no namespace is left either way.
    if (namespaces) {
      assert.match(out, new RegExp(`\\] received "hello from ipckit-tour-${r.pid}-a" from tcp://10\\.77\\.0\\.1:\\d+: the other namespace's address, across the cable\\n`));
      assert.ok(out.includes(`] deleted ipckit-tour-${r.pid}-a and ipckit-tour-${r.pid}-b (and with them the veth pair)\n`), out);
      assert.deepEqual(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(`ipckit-tour-${r.pid}-`)), []);
    } else {
      assert.match(out, /  This machine cannot show it: /);
    }
  }

  it('narrates Unix and TCP exchanges between real processes, a passed descriptor, and two namespaces (or why not)', async () => {
    const [text, asJson] = await all([() => ok(['tour', 'socket']), () => ok(['tour', 'socket', '--json'])]);
    checkTour(text!);
    assert.ok(text!.stdout.endsWith('\nTour complete: every object it created has been removed.\n'));
    const events = jsonLines(asJson!.stdout);
    assert.ok(events.every((e) => e.chapter === 'Sockets: two-way connections, on one machine and across machines'));
    const steps = events.filter((e) => e.event === 'step');
    assert.ok(steps.filter((e) => e.process === 'tour').every((e) => e.pid === asJson!.pid));
    assert.ok(steps.some((e) => e.text === `printed the reply "the tour, pid ${asJson!.pid}; and you are pid ${e.pid}"; ` +
      `the kernel says the server is pid ${asJson!.pid} (uid ${uid}, gid ${gid})`));
    assert.equal(existsSync(`${tmpdir()}/ipckit-tour-sock-${asJson!.pid}`), false);
  });

  it('as another user, says why it cannot show two namespaces', async (t) => {
    const other = 65534;
    if (!canRunAs(other)) return t.skip('needs root, setpriv, and a checkout another user can read');
    const r = await toolOk(asUser(other)[0]!, [...asUser(other).slice(1), process.execPath, CLI, 'tour', 'socket']);
    assert.ok(r.stdout.includes('  This machine cannot show it: creating network namespaces needs root (run "sudo ipckit tour socket" to see it).\n'), r.stdout);
    assert.equal(r.stderr, '');
  });
});

describe('cli socket cleanup', () => {
  it('leaves no socket file, descriptor or process behind', async () => {
    await killAllPeers();
    assert.equal(runningChildren(), 0);
    assert.deepEqual(leftInDir(), []);
    const now = fdsOf('self');
    assert.deepEqual(now.filter((fd) => !fdsAtStart.includes(fd) && fd.startsWith('socket:')), []);
  });
});
