/**
 * The mailbox of the message queues, past one machine: a NATS JetStream
 * stream with work-queue retention, addressed `nats://host:port/name`.
 *
 * Layout on the server (what another NATS client sees):
 * - a stream named `name`, work-queue retention, `discard: new` (a full
 *   mailbox refuses new messages), file storage by default, a duplicate
 *   window for message ids;
 * - one subject per priority level, `ipckit.name.0` … `ipckit.name.9`, and
 *   one durable pull consumer per level, `p0` … `p9` (work-queue streams
 *   need consumers that do not overlap);
 * - two core-NATS doorbells, `ipckit-bell.name.sent` and
 *   `ipckit-bell.name.taken`, rung after each send and each take, so that
 *   waiting receivers and senders look again at once rather than at their
 *   next one-second check.
 *
 * A receive asks the stream which levels hold messages and takes one from
 * the highest with a no-wait pull, and acknowledges it as it hands it over;
 * a receiver that dies before that leaves it to be delivered again after
 * `ackWait`. A send carries a message id, so a retry after a lost reply is
 * not stored twice.
 * @module
 */
import { randomUUID } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import type { NatsConnection, Msg, Subscription } from '@nats-io/transport-node';
import type { JetStreamClient, JetStreamManager, StreamInfo } from '@nats-io/jetstream';
import { IpcError } from './errors.js';
import { type Codec, type CodecOption, type Outgoing, decodeWith, encodeWith, resolveCodec } from './internal/codec.js';
import { checkInteger, checkOptions, invalidArgument, optionalInteger } from './internal/validate.js';
import { abortError, checkSignal, checkTimeout, closedError, timeoutError } from './internal/wait.js';

/** Priority levels of a NATS mailbox: 0 (lowest) to 9. */
export const NATS_PRIORITY_LEVELS = 10;
/** Default `maxMessages` of a new mailbox. */
export const NATS_DEFAULT_MAX_MESSAGES = 10_000;
/** Default `maxMessageSize` of a new mailbox, in bytes. */
export const NATS_DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024;
/** How long a waiting call goes without a doorbell before it looks again, in ms. */
const LOOK_EVERY = 1000;
/**
 * Bytes of headers each send adds (Nats-Msg-Id, Nats-Expected-Stream with a
 * name of up to 64 bytes), which JetStream counts against a stream's
 * max_msg_size: the stream is made that much larger than maxMessageSize.
 */
const HEADER_ALLOWANCE = 256;
/** errno of ENOENT and EEXIST, negative as Node reports them. */
const ERRNO = { ENOENT: -osConstants.errno.ENOENT, EEXIST: -osConstants.errno.EEXIST };

function missing(address: string, detail: string, cause?: unknown): IpcError {
  return new IpcError('ENOENT', `${address} ${detail}`, { address, errno: ERRNO.ENOENT, ...(cause === undefined ? {} : { cause }) });
}

/** Default connect and per-request timeout, in ms. */
const DEFAULT_CONNECT_TIMEOUT = 5000;
const REQUEST_TIMEOUT = 5000;
/** The least time a request to the server is given, even when the caller's timeout is nearly over, in ms. */
const ANSWER_MS = 500;

/** How to reach the server; user and password may also come in the address (`nats://user:pass@host:4222/name`). */
export interface NatsConnectionOptions {
  /** ms to reach the server before failing with `ERR_IPC_UNREACHABLE`. Default 5000. */
  connectTimeout?: number;
  /** User name, if the server asks for one. */
  user?: string;
  /** Password, if the server asks for one. */
  pass?: string;
  /** Token, if the server asks for one. */
  token?: string;
  /** TLS settings, as the NATS client takes them (`{ caFile, certFile, keyFile }`, or `{}` for the system's CAs). */
  tls?: Record<string, unknown>;
}

/** Options of {@link NatsMailbox.open}. */
export interface NatsMailboxOpenOptions<T = Buffer> extends NatsConnectionOptions {
  /** `'json'`, `'msgpack'` or `{ encode, decode }`; without one, messages are bytes. */
  codec?: CodecOption<T> | undefined;
}

/** Options of {@link NatsMailbox.create} and {@link NatsMailbox.openOrCreate}. */
export interface NatsMailboxCreateOptions<T = Buffer> extends NatsMailboxOpenOptions<T> {
  /** Messages the mailbox holds before senders wait. Default 10,000. */
  maxMessages?: number;
  /** Largest message in bytes (after the codec). Default 65,536; the server's `max_payload` (1 MiB by default) bounds it. */
  maxMessageSize?: number;
  /** ms a taken message may go unacknowledged before it is delivered again (a receiver that died). Default 30,000. */
  ackWait?: number;
  /** `'file'` (default: survives a server restart) or `'memory'`. */
  storage?: 'file' | 'memory';
}

/** Options of a send. */
export interface NatsSendOptions {
  /** 0 (default) to 9: a receive takes the highest level first. */
  priority?: number;
  /** ms to wait for room; undefined waits for ever, 0 tries once. */
  timeout?: number;
  /** Aborting it rejects the call with `ERR_IPC_ABORTED`; nothing was sent or taken. */
  signal?: AbortSignal;
}

/** Options of a receive. */
export interface NatsReceiveOptions {
  /** ms to wait for a message; undefined waits for ever, 0 tries once. */
  timeout?: number;
  /** Aborting it rejects the call with `ERR_IPC_ABORTED`; nothing was sent or taken. */
  signal?: AbortSignal;
}

/** A message taken from a NATS mailbox. */
export interface NatsMessage<T = Buffer> {
  /** The message, decoded by the codec (a `Buffer` without one). */
  data: T;
  /** Its priority level, 0 to 9. */
  priority: number;
  /** How many times the server delivered it before (a receiver died holding it): 0 normally. */
  redelivered: number;
}

/** What {@link NatsMailbox.attributes} reports. */
export interface NatsMailboxAttributes {
  /** Messages waiting. */
  messages: number;
  /** Bytes they take on the server. */
  bytes: number;
  /** Messages waiting at each priority level, by level. */
  byPriority: number[];
  /** Messages it holds before senders wait. */
  maxMessages: number;
  /** Largest message in bytes. */
  maxMessageSize: number;
  /** ms before an unacknowledged message is delivered again. */
  ackWait: number;
  /** Where the server keeps the messages: `'file'` survives a server restart. */
  storage: 'file' | 'memory';
}

interface Parsed {
  address: string;
  server: string;
  name: string;
  user?: string;
  pass?: string;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const CONNECTION_KEYS = ['connectTimeout', 'user', 'pass', 'token', 'tls'] as const;
const OPEN_KEYS = [...CONNECTION_KEYS, 'codec'] as const;
const CREATE_KEYS = [...OPEN_KEYS, 'maxMessages', 'maxMessageSize', 'ackWait', 'storage'] as const;

/** `nats://[user:pass@]host[:port]/name`, checked. */
export function parseNatsAddress(address: unknown): Parsed {
  if (typeof address !== 'string') throw invalidArgument('address', address, 'a string such as nats://127.0.0.1:4222/jobs');
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new IpcError('ERR_IPC_INVALID_ADDRESS', `${JSON.stringify(address)} is no address: write nats://host:port/name.`, { address });
  }
  const name = url.pathname.slice(1);
  if (url.protocol !== 'nats:' || url.hostname === '' || !NAME.test(name) || url.search !== '' || url.hash !== '') {
    throw new IpcError('ERR_IPC_INVALID_ADDRESS', `${JSON.stringify(address)}: a NATS mailbox is nats://host:port/name, the name 1 to 64 ` +
      'letters, digits, "-" or "_".', { address });
  }
  const shown = `nats://${url.host}/${name}`;
  return {
    address: shown,
    server: `${url.hostname}:${url.port === '' ? 4222 : url.port}`,
    name,
    ...(url.username === '' ? {} : { user: decodeURIComponent(url.username) }),
    ...(url.password === '' ? {} : { pass: decodeURIComponent(url.password) }),
  };
}

/** A JetStream API error's code, or undefined. */
function apiCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; api_error?: { err_code?: unknown } } | null;
  const code = e?.api_error?.err_code ?? e?.code;
  return typeof code === 'number' ? code : typeof code === 'string' && /^\d+$/.test(code) ? Number(code) : undefined;
}

const STREAM_NOT_FOUND = 10059;
const CONSUMER_NOT_FOUND = 10014;
const MAX_MESSAGES_EXCEEDED = 10077;
const MAX_BYTES_EXCEEDED = 10047;
const MESSAGE_TOO_LARGE = 10054;

/** The subjects of a mailbox's stream, one per level: nothing else is stored (a stray `ipckit.name.10` finds no stream). */
function levelSubjects(name: string): string[] {
  return Array.from({ length: NATS_PRIORITY_LEVELS }, (_, level) => `ipckit.${name}.${level}`);
}

/** The filter that asks the stream for its count per subject. */
function subjectsOf(name: string): string {
  return `ipckit.${name}.*`;
}

/** The smallest gap between two looks a doorbell may cause, ms: a flood of rings costs the server at most this many requests. */
const BELL_GAP_MS = 5;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Connects, or fails with ERR_IPC_UNREACHABLE naming the address once `timeout` has passed. */
async function connectTo(parsed: Parsed, options: Partial<NatsConnectionOptions>): Promise<NatsConnection> {
  const timeout = optionalInteger(options.connectTimeout, 'connectTimeout', 1, 2 ** 31 - 1, DEFAULT_CONNECT_TIMEOUT);
  for (const key of ['user', 'pass', 'token'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'string') throw invalidArgument(key, options[key], 'a string');
  }
  if (options.tls !== undefined && (typeof options.tls !== 'object' || options.tls === null || Array.isArray(options.tls))) {
    throw invalidArgument('tls', options.tls, 'an object of TLS settings ({ caFile, certFile, keyFile, ... }), as the NATS client takes them');
  }
  const { connect } = await import('@nats-io/transport-node');
  const deadline = Date.now() + timeout;
  let last: unknown;
  // The client gives up at once on a refused connection: try again until the timeout, as a server being restarted needs.
  for (let delay = 50; ;) {
    try {
      return await connect({
        servers: parsed.server,
        name: 'ipckit',
        timeout: Math.max(1, deadline - Date.now()),
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        ...(options.user ?? parsed.user) !== undefined ? { user: options.user ?? parsed.user } : {},
        ...(options.pass ?? parsed.pass) !== undefined ? { pass: options.pass ?? parsed.pass } : {},
        ...options.token !== undefined ? { token: options.token } : {},
        ...options.tls !== undefined ? { tls: options.tls } : {},
      });
    } catch (err) {
      last = err;
      const message = (err as Error)?.message ?? '';
      if (/auth|permission/i.test(message)) {
        throw new IpcError('EACCES', `${parsed.address}: the server refused the credentials (${message}).`, { address: parsed.address, cause: err });
      }
      // Settings that no retry mends: TLS that one side wants and the other does not, or TLS files that cannot be read.
      if (/tls|certificate|ENOENT|EACCES/i.test(message)) {
        throw new IpcError('ERR_IPC_UNREACHABLE', `${parsed.address}: the connection to ${parsed.server} failed for its TLS settings ` +
          `(${message}). Check the tls option against the server's configuration.`, { address: parsed.address, cause: err });
      }
    }
    const left = deadline - Date.now();
    if (left <= 0) break;
    await sleep(Math.min(delay, left));
    delay = Math.min(delay * 2, 500);
  }
  throw new IpcError('ERR_IPC_UNREACHABLE', `${parsed.address}: no NATS server answered at ${parsed.server} within ${timeout} ms ` +
    `(${(last as Error)?.message ?? last}). Start one (nats-server -js), or check the address.`, { address: parsed.address, cause: last });
}

/**
 * The pending calls of one kind (receives, or sends) on one handle, first
 * come, first served, as the kernel's queues serve their waiters: only the
 * call at the head asks the server; the others wait for their turn, so a
 * later call never overtakes an earlier one.
 */
class Line {
  readonly #queue: (() => void)[] = [];

  /** Whether a call is in the line. */
  get busy(): boolean {
    return this.#queue.length > 0;
  }

  /** Joins the line: `turn` resolves when this call is at its head (or at a wake-up); `leave()` hands the turn on. */
  join(): { turn: Promise<void>; readonly first: boolean; leave(): void } {
    let wake!: () => void;
    const turn = new Promise<void>((resolve) => { wake = resolve; });
    const queue = this.#queue;
    const entry = (): void => wake();
    queue.push(entry);
    if (queue.length === 1) wake();
    return {
      turn,
      get first() {
        return queue[0] === entry;
      },
      leave() {
        const at = queue.indexOf(entry);
        if (at < 0) return;
        queue.splice(at, 1);
        if (at === 0) queue[0]?.();
      },
    };
  }

  /** Wakes every call in the line (close: each then finds the handle closed). */
  wakeAll(): void {
    for (const wake of [...this.#queue]) wake();
  }
}

/**
 * A mailbox on a NATS JetStream server, with the shape of the kernel's
 * queues: {@link send}/{@link trySend}, {@link receive}/{@link tryReceive},
 * priorities, codecs, async iteration. Every call is asynchronous (the
 * server is across the network): there are no `*Sync` forms, and the
 * `try*` forms return promises that never wait for room or a message.
 *
 * Delivery is at least once: a message is acknowledged as it is handed to
 * the caller, and one whose receiver dies before that is delivered again
 * after `ackWait`.
 */
export class NatsMailbox<T = Buffer> implements AsyncIterable<NatsMessage<T>> {
  /** `nats://host:port/name` (credentials left out). */
  readonly address: string;
  /** The mailbox's name: also its stream's name on the server. */
  readonly name: string;
  /** Whether this call created the mailbox (openOrCreate). */
  readonly created: boolean;
  /** Messages the mailbox holds before senders wait (the stream's max_msgs). */
  readonly maxMessages: number;
  /** Largest message in bytes, after the codec (the stream's max_msg_size). */
  readonly maxMessageSize: number;
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #codec: Codec<T>;
  readonly #bells: Subscription[] = [];
  readonly #waiters = { sent: new Set<() => void>(), taken: new Set<() => void>() };
  readonly #receivers = new Line();
  readonly #senders = new Line();
  /** Where the server answers this handle's pulls (one at a time: the receive line), and the pull waiting for its answer. */
  readonly #inbox = `_INBOX.ipckit.${randomUUID().replaceAll('-', '')}`;
  #answer: ((m: Msg) => void) | undefined;
  /** Requests under way (publishes, pulls): close() lets them finish before it lets go of the connection. */
  readonly #inFlight = new Set<Promise<unknown>>();
  #closed = false;

  private constructor(parsed: Parsed, nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, info: StreamInfo,
    codec: Codec<T>, created: boolean) {
    this.address = parsed.address;
    this.name = parsed.name;
    this.created = created;
    this.maxMessages = info.config.max_msgs;
    this.maxMessageSize = info.config.max_msg_size - HEADER_ALLOWANCE;
    this.#nc = nc;
    this.#js = js;
    this.#jsm = jsm;
    this.#codec = codec;
    for (const kind of ['sent', 'taken'] as const) {
      const waiters = this.#waiters[kind];
      this.#bells.push(nc.subscribe(`ipckit-bell.${parsed.name}.${kind}`, {
        callback: () => {
          for (const wake of [...waiters]) wake();
        },
      }));
    }
    this.#bells.push(nc.subscribe(this.#inbox, { callback: (_err, m) => this.#pulled(m) }));
  }

  /** Creates the mailbox; `EEXIST` if a stream of that name is there. */
  static create<T = any>(address: string, options: NatsMailboxCreateOptions<T> & { codec: 'json' | 'msgpack' }): Promise<NatsMailbox<T>>;
  static create<T>(address: string, options: NatsMailboxCreateOptions<T> & { codec: Codec<T> }): Promise<NatsMailbox<T>>;
  static create<T = Buffer>(address: string, options?: NatsMailboxCreateOptions<T>): Promise<NatsMailbox<T>>;
  static create<T>(address: string, options?: NatsMailboxCreateOptions<T>): Promise<NatsMailbox<T>> {
    return NatsMailbox.#open<T>(address, options, CREATE_KEYS, 'create');
  }

  /** Opens an existing mailbox; `ENOENT` if there is none, `ERR_IPC_INVALID_ADDRESS` if the stream of that name is no ipckit mailbox. */
  static open<T = any>(address: string, options: NatsMailboxOpenOptions<T> & { codec: 'json' | 'msgpack' }): Promise<NatsMailbox<T>>;
  static open<T>(address: string, options: NatsMailboxOpenOptions<T> & { codec: Codec<T> }): Promise<NatsMailbox<T>>;
  static open<T = Buffer>(address: string, options?: NatsMailboxOpenOptions<T>): Promise<NatsMailbox<T>>;
  static open<T>(address: string, options?: NatsMailboxOpenOptions<T>): Promise<NatsMailbox<T>> {
    return NatsMailbox.#open<T>(address, options, OPEN_KEYS, 'open');
  }

  /** Opens the mailbox, creating it with `options` if there is none; an existing one keeps its own settings. */
  static openOrCreate<T = any>(address: string, options: NatsMailboxCreateOptions<T> & { codec: 'json' | 'msgpack' }): Promise<NatsMailbox<T>>;
  static openOrCreate<T>(address: string, options: NatsMailboxCreateOptions<T> & { codec: Codec<T> }): Promise<NatsMailbox<T>>;
  static openOrCreate<T = Buffer>(address: string, options?: NatsMailboxCreateOptions<T>): Promise<NatsMailbox<T>>;
  static openOrCreate<T>(address: string, options?: NatsMailboxCreateOptions<T>): Promise<NatsMailbox<T>> {
    return NatsMailbox.#open<T>(address, options, CREATE_KEYS, 'openOrCreate');
  }

  /** Removes the mailbox and the messages in it; `ENOENT` if there is none. */
  static async unlink(address: string, options?: NatsConnectionOptions): Promise<void> {
    const box = await NatsMailbox.open(address, checkOptions(options, CONNECTION_KEYS));
    try {
      await box.unlink();
    } finally {
      await box.close();
    }
  }

  static async #open<T>(address: string, options: NatsMailboxCreateOptions<T> | undefined, keys: readonly string[],
    how: 'create' | 'open' | 'openOrCreate'): Promise<NatsMailbox<T>> {
    const parsed = parseNatsAddress(address);
    const opts = checkOptions(options as Record<string, unknown> | undefined, keys as never) as NatsMailboxCreateOptions<T>;
    const codec = resolveCodec<T>(opts.codec);
    const limits = {
      maxMessages: optionalInteger(opts.maxMessages, 'maxMessages', 1, 2 ** 31 - 1, NATS_DEFAULT_MAX_MESSAGES),
      maxMessageSize: optionalInteger(opts.maxMessageSize, 'maxMessageSize', 1, 64 * 1024 * 1024, NATS_DEFAULT_MAX_MESSAGE_SIZE),
      ackWait: optionalInteger(opts.ackWait, 'ackWait', 1000, 2 ** 31 - 1, 30_000),
    };
    const storageName = opts.storage ?? 'file';
    if (storageName !== 'file' && storageName !== 'memory') throw invalidArgument('storage', opts.storage, "'file' or 'memory'");
    const nc = await connectTo(parsed, opts);
    try {
      const { jetstream, jetstreamManager, RetentionPolicy, DiscardPolicy, StorageType } = await import('@nats-io/jetstream');
      let jsm: JetStreamManager;
      try {
        jsm = await jetstreamManager(nc, { timeout: REQUEST_TIMEOUT });
      } catch (err) {
        throw new IpcError('ERR_IPC_UNREACHABLE', `${parsed.address}: the server has no JetStream (start it with nats-server -js): ` +
          `${(err as Error)?.message ?? err}`, { address: parsed.address, cause: err });
      }
      const exists = (): IpcError => new IpcError('EEXIST', `${parsed.address} exists already: open it, or remove it first.`,
        { address: parsed.address, errno: ERRNO.EEXIST });
      let info = await streamInfo(jsm, parsed);
      let created = false;
      if (info !== undefined && how === 'create') throw exists();
      if (info === undefined && how === 'open') throw missing(parsed.address, 'does not exist: create it first (NatsMailbox.create or ipckit mq create).');
      if (info === undefined) {
        // The server accepts an identical stream twice: a token of this call tells whose stream it is.
        const description = `ipckit mailbox ${randomUUID()}`;
        try {
          info = await jsm.streams.add({
            name: parsed.name,
            description,
            subjects: levelSubjects(parsed.name),
            retention: RetentionPolicy.Workqueue,
            discard: DiscardPolicy.New,
            storage: storageName === 'file' ? StorageType.File : StorageType.Memory,
            max_msgs: limits.maxMessages,
            max_msg_size: limits.maxMessageSize + HEADER_ALLOWANCE,
            duplicate_window: 120_000 * 1e6,
            num_replicas: 1,
          });
          created = info.config.description === description;
        } catch (err) {
          // Someone created it meanwhile, with other settings: for openOrCreate that one is the mailbox.
          const again = await streamInfo(jsm, parsed);
          if (again === undefined) throw mapApiError(err, parsed.address, 'create');
          info = again;
          // The answer was lost, not the stream: made by this call if it carries this call's token.
          created = again.config.description === description;
        }
        if (!created && how === 'create') throw exists();
      }
      checkMailbox(info, parsed);
      try {
        await ensureConsumers(jsm, parsed, created ? limits.ackWait : undefined);
      } catch (err) {
        // A mailbox this call made is not left half made (a later open would accept it).
        if (created) await jsm.streams.delete(parsed.name).catch(() => undefined);
        throw err instanceof IpcError ? err : mapApiError(err, parsed.address, how);
      }
      return new NatsMailbox<T>(parsed, nc, jetstream(nc, { timeout: REQUEST_TIMEOUT }), jsm, info, codec, created);
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends a message; while the mailbox is full, waits (looking again when
   * a receiver takes one, and at least every second) until there is room,
   * the timeout (`ERR_IPC_TIMEOUT`) or the abort (`ERR_IPC_ABORTED`).
   * Pending sends of one handle go in the order they were made. A retry
   * after a lost reply is not stored twice (message-id deduplication), and
   * `ERR_IPC_TIMEOUT` means the message was not stored: when the server's
   * answer is late, the send asks once more with the same id to find out.
   */
  async send(data: Outgoing<T>, options?: NatsSendOptions): Promise<void> {
    const opts = checkOptions(options, ['priority', 'timeout', 'signal']);
    const level = checkPriority(opts.priority);
    const timeout = checkTimeout(opts.timeout);
    const signal = checkSignal(opts.signal);
    const bytes = this.#encode(data);
    const deadline = performance.now() + timeout;
    const place = await this.#turn(this.#senders, 'send', deadline, timeout, signal);
    try {
      const id = randomUUID();
      // The last publish went unanswered: it may be stored, so giving up (abort, close) first asks again with the same id.
      let unknown: unknown;
      // close() waits for this send to end (it wakes it first): one whose outcome is unknown asks again before the connection goes.
      let holdClose!: () => void;
      void this.#track(new Promise<void>((resolve) => { holdClose = resolve; }));
      try {
        for (let delay = 10; ;) {
          if (this.#closed || signal?.aborted) {
            const end = this.#closed ? closedError('send', this.address) : abortError('send', this.address, signal!);
            if (unknown === undefined) throw end;
            if (await this.#settle(level, bytes, id, 'send', timeout, unknown)) return;
            throw end;
          }
          // Listening before asking: a receiver that takes one between the "full" answer and the wait still wakes it.
          const bell = this.#bell('taken');
          try {
            let stored: boolean | undefined;
            try {
              // The server's answer gets a moment even when the caller's time is nearly up (timeout 0 still asks once).
              stored = await this.#publish(level, bytes, id, Math.min(REQUEST_TIMEOUT, Math.max(ANSWER_MS, deadline - performance.now())));
              unknown = undefined;
            } catch (err) {
              if (!isTransient(err)) throw this.#failure(err, 'send', timeout);
              unknown = err;
              // No answer by the deadline: whether it went in is not known yet.
              if (performance.now() >= deadline) {
                if (await this.#settle(level, bytes, id, 'send', timeout, err)) return;
                throw timeoutError('send', this.address, timeout);
              }
            }
            if (stored === true) return;
            const left = deadline - performance.now();
            if (left <= 0) throw timeoutError('send', this.address, timeout);
            await this.#wait(bell.rang, Math.min(left, delay), signal);
            delay = Math.min(delay * 2, LOOK_EVERY);
          } finally {
            bell.cancel();
          }
        }
      } finally {
        holdClose();
      }
    } finally {
      place.leave();
    }
  }

  /**
   * Sends if there is room now: true, or false when the mailbox is full or
   * a send of this handle is waiting (it goes first).
   */
  async trySend(data: Outgoing<T>, options?: { priority?: number }): Promise<boolean> {
    const level = checkPriority(checkOptions(options, ['priority']).priority);
    const bytes = this.#encode(data);
    this.#check('trySend');
    if (this.#senders.busy) return false;
    const place = this.#senders.join();
    const id = randomUUID();
    try {
      return await this.#publish(level, bytes, id, REQUEST_TIMEOUT);
    } catch (err) {
      if (!isTransient(err)) throw this.#failure(err, 'trySend', REQUEST_TIMEOUT);
      return await this.#settle(level, bytes, id, 'trySend', REQUEST_TIMEOUT, err);
    } finally {
      place.leave();
    }
  }

  /**
   * The answer to a send was late past its deadline: the same message id
   * once more tells whether it went in (the server keeps one copy per id).
   * True if it is stored; false if the mailbox is full (so it was not);
   * `ERR_IPC_UNREACHABLE` saying the outcome is unknown if the server still
   * does not answer.
   */
  async #settle(level: number, bytes: Uint8Array, id: string, what: string, timeout: number, first: unknown): Promise<boolean> {
    try {
      return await this.#publish(level, bytes, id, REQUEST_TIMEOUT);
    } catch (err) {
      if (!isTransient(err)) throw this.#failure(err, what, timeout);
      throw new IpcError('ERR_IPC_UNREACHABLE', `${what} on ${this.address}: a first answer did not come (${(first as Error)?.message ?? first}), ` +
        `and asking again with the same message id got none within ${REQUEST_TIMEOUT} ms (${(err as Error)?.message ?? err}); ` +
        'the message may or may not be stored. Look with attributes() once the server is back before sending it again.',
      { address: this.address, cause: err });
    }
  }

  /**
   * Takes the oldest message of the highest priority level that has one;
   * while the mailbox is empty, waits (looking again when a sender rings,
   * and at least every second) until a message, the timeout or the abort.
   * Pending receives of one handle are served in the order they were made.
   */
  async receive(options?: NatsReceiveOptions): Promise<NatsMessage<T>> {
    const opts = checkOptions(options, ['timeout', 'signal']);
    const timeout = checkTimeout(opts.timeout);
    const signal = checkSignal(opts.signal);
    const deadline = performance.now() + timeout;
    const place = await this.#turn(this.#receivers, 'receive', deadline, timeout, signal);
    try {
      // Whether this look was made because a doorbell rang, and the last one that was found nothing (a false ring).
      let rung = false;
      let falseRing = false;
      for (;;) {
        this.#check('receive');
        if (signal?.aborted) throw abortError('receive', this.address, signal);
        const bell = this.#bell('sent');
        try {
          let got: NatsMessage<T> | undefined;
          const looked = performance.now();
          try {
            got = await this.#takeOne(deadline - performance.now(), signal);
          } catch (err) {
            if (!isTransient(err) || performance.now() >= deadline) throw this.#failure(err, 'receive', timeout);
          }
          if (got !== undefined) return got;
          falseRing = rung;
          const left = deadline - performance.now();
          if (left <= 0) throw timeoutError('receive', this.address, timeout);
          await this.#wait(bell.rang, Math.min(left, LOOK_EVERY), signal);
          rung = bell.rung;
          // A ring right after a ring that brought nothing (a flood) waits for the gap: at most one look per BELL_GAP_MS.
          const gap = BELL_GAP_MS - (performance.now() - looked);
          if (rung && falseRing && gap > 0 && !signal?.aborted && !this.#closed) {
            await this.#wait(new Promise(() => undefined), Math.min(gap, deadline - performance.now()), signal);
          }
        } finally {
          bell.cancel();
        }
      }
    } finally {
      place.leave();
    }
  }

  /** A message if one is there now, else undefined (also while a receive of this handle is waiting: it goes first). */
  async tryReceive(): Promise<NatsMessage<T> | undefined> {
    this.#check('tryReceive');
    if (this.#receivers.busy) return undefined;
    const place = this.#receivers.join();
    try {
      return await this.#takeOne();
    } catch (err) {
      throw this.#failure(err, 'tryReceive', REQUEST_TIMEOUT);
    } finally {
      place.leave();
    }
  }

  /** Joins `line` and waits for this call's turn, the timeout, the abort or close. */
  async #turn(line: Line, what: string, deadline: number, timeout: number, signal: AbortSignal | undefined): Promise<{ leave(): void }> {
    this.#check(what);
    if (signal?.aborted) throw abortError(what, this.address, signal);
    const place = line.join();
    try {
      while (!place.first) {
        const left = deadline - performance.now();
        if (left <= 0) throw timeoutError(what, this.address, timeout);
        await this.#wait(place.turn, Math.min(left, LOOK_EVERY), signal);
        this.#check(what);
        if (signal?.aborted) throw abortError(what, this.address, signal);
      }
      return place;
    } catch (err) {
      place.leave();
      throw err;
    }
  }

  /** Messages as they come, until {@link close}; a failure ends the loop with its error. */
  async *messages(options?: { signal?: AbortSignal }): AsyncGenerator<NatsMessage<T>, void, undefined> {
    const signal = checkSignal(checkOptions(options, ['signal']).signal);
    while (!this.#closed) {
      try {
        yield await this.receive(signal === undefined ? undefined : { signal });
      } catch (err) {
        if (err instanceof IpcError && err.code === 'ERR_IPC_CLOSED') return;
        throw err;
      }
    }
  }

  /** The same as {@link messages}. */
  [Symbol.asyncIterator](): AsyncGenerator<NatsMessage<T>, void, undefined> {
    return this.messages();
  }

  /** Depth, bytes, depth per level and limits, as the server reports them now. */
  async attributes(): Promise<NatsMailboxAttributes> {
    this.#check('attributes');
    let info: StreamInfo | undefined;
    try {
      info = await streamInfo(this.#jsm, this);
    } catch (err) {
      throw this.#failure(err, 'attributes', REQUEST_TIMEOUT);
    }
    if (info === undefined) throw missing(this.address, 'was removed.');
    checkMailbox(info, this);
    const consumer = await this.#jsm.consumers.info(this.name, 'p0').catch(() => undefined);
    return {
      messages: info.state.messages,
      bytes: info.state.bytes,
      byPriority: levelsOf(info, this.name),
      maxMessages: info.config.max_msgs,
      maxMessageSize: info.config.max_msg_size - HEADER_ALLOWANCE,
      ackWait: Math.round((consumer?.config.ack_wait ?? 30_000 * 1e6) / 1e6),
      storage: info.config.storage === 'memory' ? 'memory' : 'file',
    };
  }

  /** Removes the mailbox from the server, with its messages. Pending calls of every handle then fail. */
  async unlink(): Promise<void> {
    this.#check('unlink');
    try {
      await this.#jsm.streams.delete(this.name);
    } catch (err) {
      throw mapApiError(err, this.address, 'unlink');
    }
  }

  /** Lets go of the connection; pending calls fail with `ERR_IPC_CLOSED` (an async iteration just ends). The mailbox stays. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiters of Object.values(this.#waiters)) for (const wake of [...waiters]) wake();
    this.#receivers.wakeAll();
    this.#senders.wakeAll();
    // A publish or pull under way gets its answer (each is bounded by its timeout): a message is neither stored
    // unbeknown to its sender nor left taken and unacknowledged until ackWait.
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
    for (const bell of this.#bells) bell.unsubscribe();
    await this.#nc.close().catch(() => undefined);
  }

  /** {@link close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #check(what: string): void {
    if (this.#closed) throw closedError(what, this.address);
  }

  #encode(data: Outgoing<T>): Uint8Array {
    const bytes = encodeWith(this.#codec, data as T, this.address);
    if (bytes.length > this.maxMessageSize) {
      throw new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `A ${bytes.length}-byte message exceeds maxMessageSize ${this.maxMessageSize} of ${this.address}.`,
        { address: this.address });
    }
    return bytes;
  }

  /** One publish: true if stored (or a duplicate of one stored), false if the mailbox is full. */
  async #publish(level: number, bytes: Uint8Array, id: string, timeout: number): Promise<boolean> {
    try {
      await this.#track(this.#js.publish(`ipckit.${this.name}.${level}`, bytes, { msgID: id, timeout, expect: { streamName: this.name } }));
    } catch (err) {
      const code = apiCode(err);
      if (code === MAX_MESSAGES_EXCEEDED || code === MAX_BYTES_EXCEEDED) return false;
      // Nothing takes the subject, or nothing answers (a plain subscriber may listen on it): the mailbox may have been
      // removed or replaced (else the server is only restarting its JetStream, or stalled).
      if (isTransient(err)) {
        const info = await streamInfo(this.#jsm, this, ANSWER_MS).catch(() => null);
        if (info === undefined) throw missing(this.address, 'was removed.', err);
        if (info !== null) checkMailbox(info, this);
      }
      throw err;
    }
    this.#nc.publish(`ipckit-bell.${this.name}.sent`);
    return true;
  }

  /** Takes one message with a no-wait pull from the highest level that has one; undefined if none. */
  async #takeOne(left = REQUEST_TIMEOUT, signal?: AbortSignal): Promise<NatsMessage<T> | undefined> {
    const timeout = Math.min(REQUEST_TIMEOUT, Math.max(ANSWER_MS, left));
    const info = await streamInfo(this.#jsm, this, timeout, signal);
    if (info === undefined) throw missing(this.address, 'was removed.');
    checkMailbox(info, this);
    const levels = levelsOf(info, this.name);
    for (let level = NATS_PRIORITY_LEVELS - 1; level >= 0; level--) {
      if (levels[level] === 0) continue;
      // Closed meanwhile: no pull (its message would wait for an answer nobody reads).
      this.#check('receive');
      let reply: Msg;
      try {
        reply = await this.#pull(level, timeout);
        // A status 503 (not a stored message, which has an ack subject): nothing answers for the level.
        if (reply.headers?.code === 503 && reply.reply?.startsWith('$JS.ACK.') !== true) {
          throw Object.assign(new Error('no responders (503)'), { code: 'NO_RESPONDERS' });
        }
      } catch (err) {
        // No consumer answers for the level (another client deleted it): made again, then asked again.
        const gone = await this.#jsm.consumers.info(this.name, `p${level}`).then(() => false, (e: unknown) => {
          if (apiCode(e) === STREAM_NOT_FOUND) throw missing(this.address, 'was removed.', e);
          return apiCode(e) === CONSUMER_NOT_FOUND;
        });
        if (!gone) throw err;
        await ensureConsumers(this.#jsm, this, undefined);
        reply = await this.#pull(level, timeout);
      }
      // A status (404 no messages, 408 request expired) instead of a message: another receiver was faster.
      if (reply.reply === undefined || !reply.reply.startsWith('$JS.ACK.')) continue;
      return await this.#handOver(reply, timeout);
    }
    return undefined;
  }

  /**
   * A pulled message, decoded and acknowledged as it is handed over (its
   * level is its subject's). The receive resolves once the server has
   * confirmed the acknowledgement: the message is then out of the mailbox,
   * and its room free for a sender.
   */
  async #handOver(reply: Msg, timeout: number): Promise<NatsMessage<T>> {
    const level = Number(reply.subject.slice(`ipckit.${this.name}.`.length));
    const redelivered = deliveryCount(reply.reply!) - 1;
    let data: T;
    try {
      data = decodeWith(this.#codec, Buffer.from(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength), this.address);
    } catch (err) {
      await this.#ack(reply, timeout);
      throw err;
    }
    // Handed over now: acknowledged now (a receiver that died before this leaves it to be delivered again).
    await this.#ack(reply, timeout);
    return { data, priority: Number.isInteger(level) ? level : 0, redelivered };
  }

  /**
   * One no-wait pull from level `level`, answered on this handle's inbox:
   * a message or a status. Throws a timeout (transient) if no answer comes
   * in `timeout` ms; an answer that comes later is given back (see {@link #pulled}).
   */
  #pull(level: number, timeout: number): Promise<Msg> {
    let timer: NodeJS.Timeout | undefined;
    const answer = new Promise<Msg>((resolve, reject) => {
      const take = (m: Msg): void => {
        clearTimeout(timer);
        resolve(m);
      };
      this.#answer = take;
      timer = setTimeout(() => {
        if (this.#answer === take) this.#answer = undefined;
        reject(Object.assign(new Error(`no answer to a pull within ${timeout} ms (timeout)`), { code: 'TIMEOUT' }));
      }, timeout);
    });
    this.#nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${this.name}.p${level}`, JSON.stringify({ batch: 1, no_wait: true }), { reply: this.#inbox });
    return this.#track(answer);
  }

  /**
   * An answer on the pull inbox: to the pull waiting for one, or, if none
   * waits (it gave up), a message given back at once (`-NAK`) rather than
   * left taken until ackWait, and a ring so that waiting receivers look.
   */
  #pulled(m: Msg): void {
    const answer = this.#answer;
    if (answer !== undefined) {
      this.#answer = undefined;
      answer(m);
    } else if (m.reply?.startsWith('$JS.ACK.') === true) {
      m.respond('-NAK');
      this.#nc.publish(`ipckit-bell.${this.name}.sent`);
    }
  }

  /** Tracks a request under way until it settles (close() waits for it). */
  #track<R>(request: Promise<R>): Promise<R> {
    this.#inFlight.add(request);
    const untrack = (): void => void this.#inFlight.delete(request);
    request.then(untrack, untrack);
    return request;
  }

  /**
   * Acknowledges `message` and waits (at most `timeout`) for the server to
   * confirm it, then rings the "taken" doorbell: a sender it wakes finds the
   * room free. Without a confirmation the message stays handed over; the
   * server may deliver it again after ackWait (at least once).
   */
  async #ack(message: Msg, timeout: number): Promise<void> {
    try {
      await this.#track(this.#nc.request(message.reply!, '+ACK', { timeout }));
    } catch {
      // Not confirmed in time: at least once covers it.
    }
    this.#nc.publish(`ipckit-bell.${this.name}.taken`);
  }

  /** A promise that resolves at the next ring of a doorbell, and a way to stop listening. */
  #bell(kind: 'sent' | 'taken'): { rang: Promise<void>; readonly rung: boolean; cancel(): void } {
    const waiters = this.#waiters[kind];
    let wake!: () => void;
    let rung = false;
    const rang = new Promise<void>((resolve) => {
      wake = () => {
        rung = true;
        waiters.delete(wake);
        resolve();
      };
    });
    waiters.add(wake);
    return {
      rang,
      get rung() {
        return rung;
      },
      cancel: () => waiters.delete(wake),
    };
  }

  /** Waits for `event`, `ms`, or the abort, whichever comes first. */
  async #wait(event: Promise<void>, ms: number, signal: AbortSignal | undefined): Promise<void> {
    // An abort event that already fired will not fire again.
    if (signal?.aborted) return;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        event,
        new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); }),
        new Promise<void>((resolve) => {
          if (signal === undefined) return;
          onAbort = resolve;
          signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    }
  }

  #failure(err: unknown, what: string, timeout: number): IpcError {
    if (err instanceof IpcError) return err;
    if (this.#closed) return closedError(what, this.address);
    if (apiCode(err) === STREAM_NOT_FOUND) return missing(this.address, 'was removed.', err);
    if (isTransient(err)) {
      return new IpcError('ERR_IPC_UNREACHABLE', `${what} on ${this.address}: the server did not answer within ${timeout} ms ` +
        `(${(err as Error)?.message ?? err}).`, { address: this.address, cause: err });
    }
    return mapApiError(err, this.address, what);
  }
}

/** The stream's info with per-subject counts; undefined if there is no such stream. */
async function streamInfo(jsm: JetStreamManager, box: { name: string; address: string }, timeout = REQUEST_TIMEOUT,
  signal?: AbortSignal): Promise<StreamInfo | undefined> {
  try {
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      // Only reads: a receive that is aborted need not wait for the answer.
      return await Promise.race([
        jsm.streams.info(box.name, { subjects_filter: subjectsOf(box.name) }),
        new Promise<never>((_, reject) => { timer = setTimeout(() => reject(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })), timeout); }),
        new Promise<never>((_, reject) => {
          if (signal === undefined) return;
          onAbort = () => reject(abortError('receive', box.address, signal));
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);   // every receive asks: no timer may outlive its answer
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    }
  } catch (err) {
    if (apiCode(err) === STREAM_NOT_FOUND) return undefined;
    throw err;
  }
}

/**
 * Refuses a stream of that name that is not an ipckit mailbox (another
 * application's, or one edited since): its retention, discard policy,
 * subjects and limits must be the ones a mailbox is made with.
 */
function checkMailbox(info: StreamInfo, box: { name: string; address: string }): void {
  const c = info.config;
  const subjects = [...(c.subjects ?? [])].sort();
  const wanted = levelSubjects(box.name).sort();
  const problem = c.retention !== 'workqueue' ? `retention ${c.retention}`
    : c.discard !== 'new' ? `discard ${c.discard}`
      : subjects.length !== wanted.length || subjects.some((subject, i) => subject !== wanted[i]) ? `subjects ${subjects.join(', ')}`
        : !(c.max_msgs > 0) ? `max_msgs ${c.max_msgs}`
          : !(c.max_msg_size > HEADER_ALLOWANCE) ? `max_msg_size ${c.max_msg_size}`
            // Settings that drop or misreport messages a mailbox holds.
            : (c.max_age ?? 0) !== 0 ? `max_age ${c.max_age}`
              : (c.max_msgs_per_subject ?? -1) > 0 ? `max_msgs_per_subject ${c.max_msgs_per_subject}`
                : c.no_ack === true ? 'no_ack'
                  : c.sealed === true ? 'sealed'
                    : c.mirror !== undefined || (c.sources?.length ?? 0) > 0 ? 'a mirror or sources' : undefined;
  if (problem !== undefined) {
    throw new IpcError('ERR_IPC_INVALID_ADDRESS', `${box.address}: the stream ${box.name} on that server is no ipckit mailbox ` +
      `(${problem}); pick another name, or remove that stream.`, { address: box.address });
  }
}

/**
 * Makes the consumers of the levels that lack one: all of them for a new
 * mailbox (with `ackWait`), and any that another client deleted (with the
 * ackWait of the others).
 */
async function ensureConsumers(jsm: JetStreamManager, box: { name: string }, ackWait: number | undefined): Promise<void> {
  const { AckPolicy } = await import('@nats-io/jetstream');
  const have = new Map<string, number>();
  for await (const consumer of jsm.consumers.list(box.name)) have.set(consumer.name, consumer.config.ack_wait ?? 0);
  const waitNs = ackWait !== undefined ? ackWait * 1e6 : [...have.values()].find((ns) => ns > 0) ?? 30_000 * 1e6;
  for (let level = 0; level < NATS_PRIORITY_LEVELS; level++) {
    if (have.has(`p${level}`)) continue;
    await jsm.consumers.add(box.name, {
      durable_name: `p${level}`,
      filter_subject: `ipckit.${box.name}.${level}`,
      ack_policy: AckPolicy.Explicit,
      ack_wait: waitNs,
      max_ack_pending: -1,
    });
  }
}

/** Messages waiting per level. */
function levelsOf(info: StreamInfo, name: string): number[] {
  const levels = new Array<number>(NATS_PRIORITY_LEVELS).fill(0);
  for (const [subject, count] of Object.entries(info.state.subjects ?? {})) {
    const level = Number(subject.slice(`ipckit.${name}.`.length));
    if (Number.isInteger(level) && level >= 0 && level < NATS_PRIORITY_LEVELS) levels[level] = count;
  }
  return levels;
}

/**
 * The delivery count in an ack subject: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`
 * (9 tokens), or from server 2.10 on `$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.…` (12 or more).
 */
function deliveryCount(ackSubject: string): number {
  const parts = ackSubject.split('.');
  const delivered = Number(parts[parts.length === 9 ? 4 : 6]);
  return Number.isInteger(delivered) && delivered > 0 ? delivered : 1;
}

function checkPriority(priority: unknown): number {
  return priority === undefined ? 0 : checkInteger(priority, 'priority', 0, NATS_PRIORITY_LEVELS - 1);
}

/** A failure worth retrying within the caller's timeout: no answer (yet), or the connection being re-made. */
function isTransient(err: unknown): boolean {
  // ipckit's own errors (a mailbox removed or replaced, a message that does not decode, a handle closed) are final;
  // their messages name the mailbox, whose address may hold "503" or "closed" and must not read as a lost answer.
  if (err instanceof IpcError) return false;
  const e = err as { name?: unknown; code?: unknown; message?: unknown } | null;
  const text = `${String(e?.name ?? '')} ${String(e?.code ?? '')} ${String(e?.message ?? '')}`;
  return /timeout|disconnect|closed|connection|no responders|503|not enabled/i.test(text) && apiCode(err) === undefined;
}

function mapApiError(err: unknown, address: string, what: string): IpcError {
  const code = apiCode(err);
  if (code === STREAM_NOT_FOUND) return missing(address, `does not exist (${what}).`, err);
  if (code === MESSAGE_TOO_LARGE) return new IpcError('ERR_IPC_MESSAGE_TOO_LARGE', `${what} on ${address}: ${(err as Error).message}.`, { address, cause: err });
  const message = (err as Error)?.message ?? String(err);
  if (/max_payload|maximum payload/i.test(message)) {
    return new IpcError('ERR_IPC_LIMIT', `${what} on ${address}: ${message}. The server's max_payload bounds maxMessageSize.`, { address, cause: err });
  }
  return new IpcError('ERR_IPC_REMOTE', `${what} on ${address}: the server refused (${message}).`, { address, cause: err });
}
