/**
 * `ipckit socket listen|send <address>`: every socket kind from the shell.
 *
 * Messages are what the library's sockets carry: on `unix:` and `tcp://`
 * each is a 4-byte big-endian length then the bytes; a `unix-seqpacket:`
 * packet or a datagram is one message. With `--raw` messages are lines of
 * text instead, so that socat, nc, Python and shell scripts need no framing.
 * @internal
 * @module
 */
import { closeSync, readlinkSync } from 'node:fs';
import { IpcError } from '../../errors.js';
import { type SocketAddress, parseSocketAddress } from '../../internal/socket-address.js';
import {
  DEFAULT_MAX_MESSAGE_SIZE, type DatagramSocket, type MessageSocket, type SocketServer, bind, connect, listen,
} from '../../socket.js';
import { ConsumerOutput } from '../output.js';
import { bytesForJson, type CommandContext, type Group, intOption, jsonText, type Leaf, modeOption, onStopSignals, readStdin, usageError, writeOut } from '../program.js';

const ADDRESS_HELP = 'ADDRESS: unix:/path, unix-seqpacket:/path or unix-dgram:/path (@name instead of /path: the abstract\n' +
  'namespace, no file), tcp://host:port or udp://host:port (port 0: any free port; host an IP literal or localhost).';

const RAW_HELP = '--raw: messages are lines of text, not length-prefixed frames. On unix: and tcp:// each line is a message\n' +
  '(the newline is not part of it; what ends without one is the last message); a packet (unix-seqpacket:) or a\n' +
  'datagram is one message, and one trailing newline is dropped on receipt and added on sending.';

const MAX_TIMEOUT = 2 ** 31 - 1;
const NEWLINE = 0x0a;

/** Who is at the other end, as --json prints it: credentials on Unix connections, an address otherwise. */
interface PeerJson {
  address: string | null;
  pid: number | null;
  uid: number | null;
  gid: number | null;
}

function connectionPeer(sock: MessageSocket): PeerJson {
  const creds = sock.peer;
  return { address: sock.remoteAddress, pid: creds?.pid ?? null, uid: creds?.uid ?? null, gid: creds?.gid ?? null };
}

function addressPeer(address: string | null): PeerJson {
  return { address, pid: null, uid: null, gid: null };
}

/** A peer in words: `pid 123 (uid 0, gid 0)`, or its address. */
function describePeer(peer: PeerJson): string {
  if (peer.pid !== null) return `pid ${peer.pid} (uid ${peer.uid}, gid ${peer.gid})`;
  return peer.address ?? 'an unbound socket';
}

/**
 * Descriptors that came with a message, described (what /proc/self/fd says
 * they are: `pipe:[1234]`, a path, `socket:[99]`) and closed: the command
 * line has no use for them beyond saying what they were.
 */
function describeAndClose(fds: number[]): string[] {
  return fds.map((fd) => {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      target = `fd ${fd}`;
    }
    closeSync(fd);
    return target;
  });
}

/** Drops one trailing newline (a --raw packet or datagram). */
function chomp(data: Buffer): Buffer {
  return data.length > 0 && data[data.length - 1] === NEWLINE ? data.subarray(0, -1) : data;
}

function tooLong(max: number, where: string): IpcError {
  return new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `A line of more than ${max} bytes arrived on ${where} (--max-message ${max}); ` +
    'the connection was closed. Raise --max-message if the sender is trusted.', { address: where });
}

/**
 * Lines from the raw bytes of a stream socket: each up to a newline (not
 * included), then what is left at the end of the stream. A line is bounded
 * by `max` bytes before it is gathered.
 */
class LineReader {
  readonly #sock: MessageSocket;
  readonly #max: number;
  /** Bytes of the current line, read and searched already. */
  #parts: Buffer[] = [];
  #size = 0;
  /** Bytes read and not searched yet. */
  #rest: Buffer = Buffer.alloc(0);
  #ended = false;

  constructor(sock: MessageSocket, max: number) {
    this.#sock = sock;
    this.#max = max;
  }

  /** The next line, or `null` once the peer closed and every line was returned. */
  async next(options: { timeout?: number } = {}): Promise<Buffer | null> {
    for (;;) {
      const newline = this.#rest.indexOf(NEWLINE);
      if (newline >= 0) {
        if (this.#size + newline > this.#max) throw tooLong(this.#max, this.#sock.address);
        const line = Buffer.concat([...this.#parts, this.#rest.subarray(0, newline)]);
        this.#rest = this.#rest.subarray(newline + 1);
        this.#parts = [];
        this.#size = 0;
        return line;
      }
      if (this.#rest.length > 0) {
        this.#parts.push(this.#rest);
        this.#size += this.#rest.length;
        this.#rest = Buffer.alloc(0);
        if (this.#size > this.#max) throw tooLong(this.#max, this.#sock.address);
      }
      if (this.#ended) {
        if (this.#size === 0) return null;
        const last = Buffer.concat(this.#parts);
        this.#parts = [];
        this.#size = 0;
        return last;
      }
      const chunk = await this.#sock.read(options);
      if (chunk === null) this.#ended = true;
      else this.#rest = chunk;
    }
  }
}

// ---- listen ----------------------------------------------------------------------

interface ListenSettings {
  address: SocketAddress;
  echo: boolean;
  raw: boolean;
  json: boolean;
  count: number | undefined;
  maxMessageSize: number;
  mode: number | undefined;
  allowUids: number[] | undefined;
}

/** A comma-separated list of uids (`--allow-uid 0,1000`). */
function uidList(text: string): number[] {
  const uids = text.split(',').map((part) => (/^[0-9]{1,10}$/.test(part) ? Number(part) : NaN));
  if (uids.some((uid) => !Number.isSafeInteger(uid) || uid > 0xfffffffe)) {
    throw usageError(`--allow-uid takes uids separated by commas, e.g. 0,1000; got "${text}".`);
  }
  return uids;
}

function listenSettings(ctx: CommandContext): ListenSettings {
  const address = parseSocketAddress(ctx.positionals[0]!);
  const isFile = address.family === 'unix' && !address.abstract;
  if (ctx.values.mode !== undefined && !isFile) {
    throw usageError(`--mode applies to a Unix socket file (unix:/path, unix-seqpacket:/path, unix-dgram:/path); ${address.text} has none.`);
  }
  const allowUid = ctx.values['allow-uid'];
  if (allowUid !== undefined && (address.family !== 'unix' || address.type === 'dgram')) {
    throw usageError(`--allow-uid applies to Unix connections (unix:, unix-seqpacket:), whose peers the kernel names; ${address.text} carries no credentials.`);
  }
  return {
    address,
    echo: ctx.values.echo === true,
    raw: ctx.values.raw === true,
    json: ctx.json,
    count: intOption(ctx, 'count', 1, 2 ** 31 - 1),
    maxMessageSize: intOption(ctx, 'max-message', 0, 2 ** 31 - 1, DEFAULT_MAX_MESSAGE_SIZE)!,
    mode: isFile ? modeOption(ctx, 0o600) : undefined,
    allowUids: allowUid === undefined ? undefined : uidList(String(allowUid)),
  };
}

/** One message as the listener got it. */
interface Incoming {
  /** What is printed (--raw: without its newline). */
  data: Buffer;
  peer: PeerJson;
  /** The connection's number (1, 2, ... in the order accepted); null for a datagram. */
  connection: number | null;
  /** What arrived with it (descriptors, described; they are closed). */
  fds: string[];
  /** Sends `data`'s original bytes back (--echo). */
  echo(): Promise<void>;
}

function notice(json: boolean, value: Record<string, unknown>, text: string): void {
  process.stderr.write(json ? `${jsonText(value)}\n` : `${text}\n`);
}

/**
 * A listener's life: the server (or datagram socket), its connections, and
 * the first failure. `stop()` ends it: everything is closed (a socket file
 * the server made is removed), and `run()` settles.
 */
class Listener {
  readonly #settings: ListenSettings;
  readonly #out: ConsumerOutput | undefined;
  readonly #sockets = new Set<{ close(): void }>();
  readonly #handlers = new Set<Promise<void>>();
  #stopped = false;
  #failure: unknown;
  #wake: () => void = () => undefined;
  readonly #ended = new Promise<void>((resolve) => { this.#wake = resolve; });
  /** Messages taken, and messages printed or echoed. */
  #taken = 0;
  #done = 0;
  #connections = 0;

  constructor(settings: ListenSettings, out: ConsumerOutput | undefined) {
    this.#settings = settings;
    this.#out = out;
  }

  get done(): number {
    return this.#done;
  }

  /** Resolves once the listener stops. */
  get ended(): Promise<void> {
    return this.#ended;
  }

  /** Ends the listener; `failure`, if it is the first, is what `run()` rejects with. */
  stop(failure?: unknown): void {
    if (failure !== undefined && this.#failure === undefined && !this.#stopped) this.#failure = failure;
    if (this.#stopped) return;
    this.#stopped = true;
    for (const sock of this.#sockets) sock.close();
    this.#wake();
  }

  async run(): Promise<void> {
    const s = this.#settings;
    // Asked to stop before it started: nothing to open.
    if (this.#stopped) return;
    if (s.address.type === 'dgram') {
      const sock = bind(s.address.text, { maxMessageSize: s.maxMessageSize, ...(s.mode === undefined ? {} : { mode: s.mode }) });
      this.#track(sock);
      this.#announce(sock.localAddress ?? s.address.text);
      this.#handle(this.#receiveDatagrams(sock));
    } else {
      const server = listen(s.address.text, {
        maxMessageSize: s.maxMessageSize,
        ...(s.mode === undefined ? {} : { mode: s.mode }),
        ...(s.allowUids === undefined ? {} : { allowUids: s.allowUids }),
      });
      this.#track(server);
      server.on('refused', (peer) => notice(s.json, { refused: peer },
        `refused a connection from pid ${peer.pid} (uid ${peer.uid}, gid ${peer.gid}): ${peer.reason}`));
      this.#announce(server.localAddress ?? s.address.text);
      this.#handle(this.#accept(server));
    }
    await this.#ended;
    // Everything is closed: each pending call ends at once.
    while (this.#handlers.size > 0) await Promise.allSettled([...this.#handlers]);
    if (this.#failure !== undefined) throw this.#failure;
  }

  #announce(address: string): void {
    notice(this.#settings.json, { listening: { address, pid: process.pid } }, `listening on ${address} in pid ${process.pid}`);
  }

  /** Closes `sock` with the listener (at once if it has stopped). */
  #track(sock: { close(): void }): void {
    if (this.#stopped) sock.close();
    else this.#sockets.add(sock);
  }

  /** Runs `work` until it ends; a failure of its own stops the listener. */
  #handle(work: Promise<void>): void {
    const handler = work.catch((err: unknown) => this.stop(err)).finally(() => this.#handlers.delete(handler));
    this.#handlers.add(handler);
  }

  async #accept(server: SocketServer): Promise<void> {
    for await (const conn of server) {
      this.#track(conn);
      this.#connections++;
      const number = this.#connections;
      this.#handle(this.#serve(conn, number).catch((err: unknown) => {
        // A connection's own failure (a bogus frame, a line too long, a peer gone mid-echo) ends that
        // connection, not the listener.
        if (this.#stopped || (err instanceof IpcError && err.code === 'ERR_IPC_CLOSED')) return;
        this.#dropped(number, connectionPeer(conn), err);
      }).finally(() => {
        conn.close();
        this.#sockets.delete(conn);
      }));
    }
  }

  /** Messages of one connection until its peer closes. */
  async #serve(conn: MessageSocket, connection: number): Promise<void> {
    const peer = connectionPeer(conn);
    const framed = conn.kind === 'unix' || conn.kind === 'tcp';
    if (this.#settings.raw && framed) {
      const lines = new LineReader(conn, this.#settings.maxMessageSize);
      for (let line = await lines.next(); line !== null && !this.#stopped; line = await lines.next()) {
        const echoed = Buffer.concat([line, Buffer.from('\n')]);
        await this.#deliver({ data: line, peer, connection, fds: [], echo: () => conn.write(echoed) });
      }
      return;
    }
    for await (const m of conn) {
      const fds = describeAndClose(m.fds);
      if (this.#stopped) return;
      await this.#deliver({ data: this.#settings.raw ? chomp(m.data) : m.data, peer, connection, fds, echo: () => conn.send(m.data) });
    }
  }

  async #receiveDatagrams(sock: DatagramSocket): Promise<void> {
    while (!this.#stopped) {
      let m;
      try {
        m = await sock.receive();
      } catch (err) {
        if (err instanceof IpcError && err.code === 'ERR_IPC_CLOSED') return;
        // A datagram too large for --max-message was consumed and discarded: the next one may be fine.
        if (!(err instanceof IpcError) || err.code !== 'ERR_IPC_MESSAGE_TOO_LARGE') throw err;
        this.#dropped(null, null, err);
        continue;
      }
      const { data, from } = m;
      const peer = addressPeer(from);
      const echo = (): Promise<void> => {
        if (from === null) {
          throw new IpcError('ERR_IPC_INVALID_ADDRESS', 'A datagram came from a socket bound to no address: there is nowhere to echo it.');
        }
        return sock.send(data, { to: from });
      };
      try {
        await this.#deliver({ data: this.#settings.raw ? chomp(data) : data, peer, connection: null, fds: describeAndClose(m.fds), echo });
      } catch (err) {
        // An echo that cannot go back (its sender is unbound, or gone) costs that datagram, not the listener.
        this.#dropped(null, peer, err);
      }
    }
  }

  /** Says on stderr that a connection (`connection` its number) or a datagram (null) was dropped, and why. */
  #dropped(connection: number | null, peer: PeerJson | null, err: unknown): void {
    const { code, message } = err instanceof IpcError ? err : new IpcError('ERR_IPC_INTERNAL', String(err));
    const what = connection === null ? 'a datagram' : `connection ${connection}`;
    notice(this.#settings.json, { dropped: { connection, peer, code, message } },
      `dropped ${what}${peer === null ? '' : ` from ${describePeer(peer)}`}: ${code}: ${message}`);
  }

  /**
   * Prints a message (or echoes it). With --count N, exactly N are handled:
   * a message that arrives while the Nth is printed goes with the
   * connections that are then closed.
   */
  async #deliver(m: Incoming): Promise<void> {
    const s = this.#settings;
    const n = ++this.#taken;
    if (this.#stopped || (s.count !== undefined && n > s.count)) return;
    if (s.echo) {
      try {
        await m.echo();
      } catch (err) {
        // Not handled: it does not count.
        this.#taken--;
        throw err;
      }
    } else {
      const line = s.json
        ? `${jsonText({ ...bytesForJson(m.data), peer: m.peer, connection: m.connection, fds: m.fds })}\n`
        : Buffer.concat([m.data, Buffer.from('\n')]);
      try {
        await this.#out!.print(line, (reason) => ({
          message: `Message ${n} (${m.data.length} bytes from ${describePeer(m.peer)}) was received but could not be printed: ${reason}. ` +
            'It is lost; the listener was closed and nothing more was received.',
          details: { lost: { ...bytesForJson(m.data), peer: m.peer, connection: m.connection } },
        }));
      } catch (err) {
        this.stop(err);
        return;
      }
    }
    this.#done++;
    if (s.count !== undefined && this.#done === s.count) this.stop();
  }
}

const listenVerb: Leaf = {
  name: 'listen',
  summary: 'listen on an address and print each message received (or echo it back)',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: `${ADDRESS_HELP}\n` +
    'unix:, unix-seqpacket: and tcp:// listen for connections (served side by side); unix-dgram: and udp:// bind\n' +
    'and receive datagrams. First it prints "listening on ADDRESS in pid N" on stderr, the address the kernel\n' +
    'bound (the real port when 0 was asked), or with --json {"listening": {"address", "pid"}}. Then it prints\n' +
    'each message followed by a newline, or with --json one\n' +
    '{"data", "peer": {"address", "pid", "uid", "gid"}, "connection", "fds"} per message ("encoding": "base64"\n' +
    'is added when the bytes are not UTF-8; pid, uid and gid are the kernel\'s record of a Unix peer, null\n' +
    'otherwise; fds describes descriptors that came with the message, which are closed).\n' +
    'With --echo each message is sent back to its sender instead of being printed.\n' +
    `${RAW_HELP}\n` +
    'A connection that sends something unreadable (a frame longer than --max-message, a cut frame) is closed\n' +
    'and named on stderr ({"dropped": {...}} with --json), as is a datagram too large or that cannot be echoed;\n' +
    'the listener goes on. It runs until --count messages were handled (printed or echoed), or until\n' +
    'SIGINT, SIGTERM or SIGHUP: then it closes everything, removes the socket file it made, and exits 0.\n' +
    'Once stdout\'s reader is gone it stops (exit 1, EPIPE); a message received and not printed is named as lost.',
  options: {
    echo: { type: 'boolean', description: 'send each message back instead of printing it' },
    raw: { type: 'boolean', description: 'messages are lines of text, not length-prefixed frames (for socat, nc, scripts)' },
    count: { type: 'string', value: 'N', description: 'stop after N messages' },
    'max-message': { type: 'string', value: 'BYTES', description: `largest message (or --raw line) accepted (default ${DEFAULT_MAX_MESSAGE_SIZE})` },
    'allow-uid': { type: 'string', value: 'UID[,UID]', description: 'Unix connections: accept only these users (others are closed unread)' },
    mode: { type: 'string', value: 'OCTAL', description: 'permission bits of the socket file, e.g. 660 (default 600)' },
  },
  async run(ctx) {
    const settings = listenSettings(ctx);
    let listener: Listener | undefined;
    const out = settings.echo ? undefined : new ConsumerOutput(() => {
      const done = listener?.done ?? 0;
      return { message: `stdout's reader left after ${done} message${done === 1 ? '' : 's'}. The listener was closed; nothing more was received.` };
    });
    try {
      out?.ensureReader();
      const running = new Listener(settings, out);
      listener = running;
      // Before the socket exists: a stop request at any moment closes it (and removes its file).
      const restoreSignals = onStopSignals(() => running.stop());
      // Watches for stdout's reader leaving while the listener runs; the first failure is the one reported.
      const watching = out?.take((signal) => new Promise<void>((resolve, reject) => {
        signal?.addEventListener('abort', () => reject(signal.reason));
        void running.ended.then(resolve);
      })).catch((err: unknown) => running.stop(err));
      try {
        await running.run();
      } finally {
        running.stop();
        await watching;
        restoreSignals();
      }
    } finally {
      out?.[Symbol.dispose]();
    }
  },
};

// ---- send ------------------------------------------------------------------------

/** `--fd 0,3`: descriptors of this process to pass with the message (Unix sockets). */
function fdList(ctx: CommandContext, address: SocketAddress): number[] | undefined {
  const text = ctx.values.fd;
  if (text === undefined) return undefined;
  if (address.family !== 'unix') throw usageError(`--fd passes descriptors over Unix sockets only; ${address.text} is not one.`);
  if (ctx.values.raw === true && address.type === 'stream') {
    throw usageError('--fd goes with a message, and --raw on a unix: stream sends bytes, not messages: drop --raw, or use unix-seqpacket:.');
  }
  const fds = String(text).split(',').map((part) => (/^[0-9]{1,10}$/.test(part) ? Number(part) : NaN));
  if (fds.some((fd) => !Number.isSafeInteger(fd) || fd > 2 ** 31 - 1)) {
    throw usageError(`--fd takes descriptor numbers separated by commas, e.g. 0 or 3,4; got "${String(text)}".`);
  }
  return fds;
}

/** The reply as --json prints it. */
function replyJson(data: Buffer, peer: PeerJson, fds: number[]): Record<string, unknown> {
  return { ...bytesForJson(data), peer, fds: describeAndClose(fds) };
}

interface Exchange {
  peer: PeerJson;
  reply?: { data: Buffer; json: Record<string, unknown> };
}

/** Sends over a connection (unix:, unix-seqpacket:, tcp://); then, if asked, waits for one reply. */
async function sendOnConnection(address: SocketAddress, data: Buffer, raw: boolean, fds: number[] | undefined,
  wantReply: boolean, wait: { timeout?: number }): Promise<Exchange> {
  using sock = await connect(address.text, wait);
  const peer = connectionPeer(sock);
  const framed = sock.kind === 'unix' || sock.kind === 'tcp';
  if (raw && framed) await sock.write(data, wait);
  else if (fds !== undefined) await sock.sendFds(fds, data, wait);
  else await sock.send(data, wait);
  // Nothing more comes from this side: a server that reads until the end (a filter, `tr`) can answer now.
  sock.end();
  if (!wantReply) return { peer };
  if (raw && framed) {
    const line = await awaitReply(new LineReader(sock, DEFAULT_MAX_MESSAGE_SIZE).next(wait), address.text, wait);
    if (line === null) throw noReply(address.text);
    return { peer, reply: { data: line, json: replyJson(line, peer, []) } };
  }
  const m = await awaitReply(sock.receive(wait), address.text, wait);
  const reply = raw ? chomp(m.data) : m.data;
  return { peer, reply: { data: reply, json: replyJson(reply, peer, m.fds) } };
}

function noReply(address: string): IpcError {
  return new IpcError('ERR_IPC_PEER_CLOSED', `${address} closed the connection without a reply.`, { address });
}

/** The reply `waiting` resolves to; its timeout and the peer's close, said of the exchange. */
async function awaitReply<T>(waiting: Promise<T>, address: string, wait: { timeout?: number }): Promise<T> {
  try {
    return await waiting;
  } catch (err) {
    if (!(err instanceof IpcError)) throw err;
    if (err.code === 'ERR_IPC_PEER_CLOSED') throw noReply(address);
    if (err.code === 'ERR_IPC_TIMEOUT') throw new IpcError('ERR_IPC_TIMEOUT', `No reply came from ${address} within ${wait.timeout} ms (--timeout).`, { address });
    throw err;
  }
}

/** Sends one datagram (unix-dgram:, udp://) from a socket of its own; then, if asked, waits for one reply. */
async function sendDatagram(address: SocketAddress, data: Buffer, raw: boolean, fds: number[] | undefined,
  wantReply: boolean, wait: { timeout?: number }): Promise<Exchange> {
  // A reply needs an address to come back to: an abstract name leaves no file behind; UDP takes a free port.
  const local = address.family === 'unix'
    ? `unix-dgram:@ipckit-send-${process.pid}-${Math.random().toString(36).slice(2, 10)}`
    : address.version === 6 ? 'udp://[::]:0' : 'udp://0.0.0.0:0';
  using sock = bind(local);
  await sock.send(data, { to: address.text, ...(fds === undefined ? {} : { fds }), ...wait });
  const peer = addressPeer(address.text);
  if (!wantReply) return { peer };
  const m = await awaitReply(sock.receive(wait), address.text, wait);
  const reply = raw ? chomp(m.data) : m.data;
  return { peer, reply: { data: reply, json: replyJson(reply, addressPeer(m.from), m.fds) } };
}

const sendVerb: Leaf = {
  name: 'send',
  summary: 'send one message (the argument, or stdin with -); with --reply, print the answer',
  args: '<address> <text|->',
  minArgs: 2,
  maxArgs: 2,
  details: `${ADDRESS_HELP}\n` +
    'Connects (or, for a datagram address, binds a socket of its own), sends the message, closes its sending\n' +
    'side, and with --reply waits for one message back and prints it followed by a newline. stdin (-) is sent\n' +
    'as it is, as one message.\n' +
    `${RAW_HELP}\nWith --raw the text argument is sent with a newline; a reply on unix: or tcp:// is one line.\n` +
    '--fd passes descriptors of this process with the message (Unix sockets; e.g. --fd 0 hands over stdin).\n' +
    'With --json: {"sent": true, "bytes", "peer": {"address", "pid", "uid", "gid"}} and, with --reply,\n' +
    '"reply": {"data", "peer", "fds"} ("encoding": "base64" when not UTF-8). A Unix server\'s pid, uid and gid\n' +
    'are the kernel\'s record. --timeout bounds each step: connecting, sending, and waiting for the reply.',
  options: {
    reply: { type: 'boolean', description: 'wait for one reply and print it' },
    timeout: { type: 'string', value: 'MS', description: 'wait at most MS milliseconds for each step' },
    raw: { type: 'boolean', description: 'send a line of text, not a length-prefixed frame (for socat, nc, scripts)' },
    fd: { type: 'string', value: 'FD[,FD]', description: 'pass these descriptors with the message (Unix sockets)' },
  },
  async run(ctx) {
    const [addressText, text] = ctx.positionals as [string, string];
    const address = parseSocketAddress(addressText);
    const timeout = intOption(ctx, 'timeout', 0, MAX_TIMEOUT);
    const wait = timeout === undefined ? {} : { timeout };
    const raw = ctx.values.raw === true;
    const fds = fdList(ctx, address);
    const wantReply = ctx.values.reply === true;
    const data = text === '-' ? await readStdin() : Buffer.from(raw ? `${text}\n` : text, 'utf8');
    const exchange = await (address.type === 'dgram' ? sendDatagram : sendOnConnection)(address, data, raw, fds, wantReply, wait);
    if (ctx.json) {
      await writeOut(`${jsonText({ sent: true, bytes: data.length, peer: exchange.peer, ...(exchange.reply ? { reply: exchange.reply.json } : {}) })}\n`);
    } else if (exchange.reply) {
      await writeOut(Buffer.concat([exchange.reply.data, Buffer.from('\n')]));
    }
  },
};

export const socketCommand: Group = {
  name: 'socket',
  summary: 'sockets: Unix (stream, seqpacket, datagram), TCP and UDP; listen, send, echo, raw lines',
  details: ADDRESS_HELP,
  children: [listenVerb, sendVerb],
};
