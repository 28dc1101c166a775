/**
 * `ipckit mq create|send|recv|stat|rm <address>`: both queue families from
 * the shell, and NATS JetStream mailboxes. The address picks the family:
 * `/name` is POSIX, `0x1234`, `4660`, `ftok:PATH:ID` and `id:N` are
 * System V, `nats://host:port/name` is NATS (mq-nats.ts).
 * @internal
 * @module
 */
import { fstatSync } from 'node:fs';
import { E, systemError } from '../../errors.js';
import { type ParsedAddress, parseAddress } from '../../internal/address.js';
import { PosixMessageQueue, SysvMessageQueue, MQ_PRIO_MAX, SYSV_TYPE_MAX, type MessageQueue } from '../../message-queue.js';
import { ConsumerOutput } from '../output.js';
import { bytesForJson, type CommandContext, type Group, intOption, jsonText, type Leaf, modeOption, type OptionSpec, OWNER_OPTION, ownerOption, printFields, printJson, printRemoved, readStdin, usageError, waitOption } from '../program.js';
import { isNatsAddress, natsCreate, natsRecv, natsRemove, natsSend, natsStat, refuseNatsOptions } from './mq-nats.js';

const ADDRESS_HELP = 'ADDRESS: /name for a POSIX queue; 0x1234, 4660, ftok:PATH:ID or id:N for a System V queue.\n' +
  'nats://HOST:PORT/NAME (nats://user:pass@HOST:PORT/NAME) for a mailbox on a NATS JetStream server (docs/nats.md).';
const CONNECT_TIMEOUT_OPTION: OptionSpec = {
  type: 'string', value: 'MS', description: 'NATS: try to reach the server for MS (default 5000), then fail with ERR_IPC_UNREACHABLE',
};
const { EAGAIN } = E;

function open(parsed: ParsedAddress, ctx: CommandContext): MessageQueue {
  const owner = ownerOption(ctx);
  return parsed.family === 'posix' ? PosixMessageQueue.open(parsed.name, { owner }) : SysvMessageQueue.open(parsed.address, { owner });
}

/**
 * The queue the first argument names. The family comes from the address,
 * so the other family's options are refused before any queue is looked up:
 * a bad command line is a usage error whether or not the queue exists.
 */
function queueAddress(ctx: CommandContext): ParsedAddress {
  const address = ctx.positionals[0]!;
  const parsed = localAddress(address, ctx);
  if (parsed.family === 'posix' && ctx.values.type !== undefined) {
    throw usageError(`--type applies to System V queues; ${address} is a POSIX queue (use --priority).`);
  }
  if (parsed.family === 'sysv' && ctx.values.priority !== undefined) {
    throw usageError(`--priority applies to POSIX queues; ${address} is a System V queue (use --type).`);
  }
  return parsed;
}

/** A POSIX or System V address, refusing the options only NATS mailboxes take. */
function localAddress(address: string, ctx: CommandContext): ParsedAddress {
  const parsed = parseAddress(address, 'message queue');
  refuseNatsOptions(ctx, address, parsed.family === 'posix' ? 'a POSIX queue' : 'a System V queue');
  return parsed;
}

function describeQueue(q: MessageQueue): Record<string, unknown> {
  if (q instanceof PosixMessageQueue) {
    const st = fstatSync(q.fd);
    return {
      family: 'posix', name: q.name, ...q.attributes(), mode: st.mode & 0o777, uid: st.uid, gid: st.gid,
      limits: PosixMessageQueue.limits(),
    };
  }
  const s = q.stat();
  return {
    family: 'sysv', address: q.address, ...s,
    lastSendTime: s.lastSendTime?.toISOString() ?? null,
    lastReceiveTime: s.lastReceiveTime?.toISOString() ?? null,
    changeTime: s.changeTime.toISOString(),
    limits: SysvMessageQueue.limits(),
  };
}

const create: Leaf = {
  name: 'create',
  summary: 'create a queue (fails if it exists)',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: `${ADDRESS_HELP}\nPOSIX queues take --max-messages and --message-size; System V queues take --max-bytes; NATS mailboxes\n` +
    'take --max-messages, --max-message-size, --ack-wait and --storage (a stream with work-queue retention).',
  options: {
    'max-messages': { type: 'string', value: 'N', description: 'POSIX: capacity in messages (default fs.mqueue.msg_default); NATS: default 10000' },
    'message-size': { type: 'string', value: 'BYTES', description: 'POSIX: largest message (default fs.mqueue.msgsize_default)' },
    'max-bytes': { type: 'string', value: 'BYTES', description: 'System V: capacity in bytes (default kernel.msgmnb)' },
    mode: { type: 'string', value: 'OCTAL', description: 'permission bits, e.g. 600 (default 600)' },
    'max-message-size': { type: 'string', value: 'N', description: 'NATS: largest message in bytes (default 65536; the server\'s max_payload bounds it)' },
    'ack-wait': { type: 'string', value: 'MS', description: 'NATS: a message taken and not acknowledged is delivered again after MS (default 30000)' },
    storage: { type: 'string', value: 'file|memory', description: 'NATS: file (default, survives a server restart) or memory' },
    'connect-timeout': CONNECT_TIMEOUT_OPTION,
  },
  async run(ctx) {
    if (isNatsAddress(ctx.positionals[0]!)) return natsCreate(ctx);
    const parsed = localAddress(ctx.positionals[0]!, ctx);
    const mode = modeOption(ctx, 0o600);
    let q: MessageQueue;
    if (parsed.family === 'posix') {
      if (ctx.values['max-bytes'] !== undefined) throw usageError('--max-bytes applies to System V queues; use --max-messages and --message-size.');
      const maxMessages = intOption(ctx, 'max-messages', 1, 2 ** 31 - 1);
      const maxMessageSize = intOption(ctx, 'message-size', 1, 2 ** 31 - 1);
      q = PosixMessageQueue.create(parsed.name, {
        mode, ...(maxMessages === undefined ? {} : { maxMessages }), ...(maxMessageSize === undefined ? {} : { maxMessageSize }),
      });
    } else {
      if (ctx.values['max-messages'] !== undefined || ctx.values['message-size'] !== undefined) {
        throw usageError('--max-messages and --message-size apply to POSIX queues; System V queues take --max-bytes.');
      }
      const maxBytes = intOption(ctx, 'max-bytes', 1, 2 ** 31 - 1);
      q = SysvMessageQueue.create(parsed.address, { mode, ...(maxBytes === undefined ? {} : { maxBytes }) });
    }
    try {
      const info = describeQueue(q);
      if (ctx.json) printJson(info);
      else process.stdout.write(`created ${q instanceof PosixMessageQueue ? q.name : `${q.address} (id ${q.id})`}\n`);
    } finally {
      q.close();
    }
  },
};

const send: Leaf = {
  name: 'send',
  summary: 'send one message (the argument, or stdin with -)',
  args: '<address> <message|->',
  minArgs: 2,
  maxArgs: 2,
  details: `${ADDRESS_HELP}\nWaits while the queue is full, unless --nonblock (exit 1 with EAGAIN) or --timeout (exit 1 with ERR_IPC_TIMEOUT).\n` +
    'NATS: Ctrl-C (SIGINT), SIGTERM or SIGHUP withdraws a waiting send: nothing is sent (unless the server had\n' +
    'already stored it: exit 0), and the exit status is 128 + the signal\'s number.',
  options: {
    priority: { type: 'string', value: 'P', description: `POSIX: priority 0..${MQ_PRIO_MAX - 1}; NATS: 0..9 (default 0)` },
    type: { type: 'string', value: 'T', description: 'System V: message type >= 1 (default 1)' },
    nonblock: { type: 'boolean', description: 'fail with EAGAIN instead of waiting' },
    timeout: { type: 'string', value: 'MS', description: 'wait at most MS milliseconds' },
    owner: OWNER_OPTION,
    'connect-timeout': CONNECT_TIMEOUT_OPTION,
  },
  async run(ctx) {
    if (isNatsAddress(ctx.positionals[0]!)) return natsSend(ctx);
    const message = ctx.positionals[1]!;
    const parsed = queueAddress(ctx);
    const wait = waitOption(ctx);
    const priority = intOption(ctx, 'priority', 0, MQ_PRIO_MAX - 1, 0)!;
    const type = intOption(ctx, 'type', 1, SYSV_TYPE_MAX, 1)!;
    using q = open(parsed, ctx);
    const data = message === '-' ? await readStdin() : Buffer.from(message, 'utf8');
    let sent: boolean;
    if (q instanceof PosixMessageQueue) {
      sent = ctx.values.nonblock ? q.trySend(data, { priority }) : (await q.send(data, { priority, ...wait }), true);
      if (!sent) throw systemError(EAGAIN, 'mq_send', q.name, 'The queue is full and --nonblock was given.');
    } else {
      sent = ctx.values.nonblock ? q.trySend(type, data) : (await q.send(type, data, wait), true);
      if (!sent) throw systemError(EAGAIN, 'msgsnd', q.address, 'The queue is full and --nonblock was given.');
    }
    if (ctx.json) printJson({ sent: true, bytes: data.length });
  },
};

/** One message from `q`, waiting as the options say; `signal` cancels the wait. */
async function receiveOne(q: MessageQueue, ctx: CommandContext, type: number, wait: { timeout?: number }, signal: AbortSignal | undefined):
  Promise<{ data: Buffer; meta: { priority: number } | { type: number } }> {
  if (q instanceof PosixMessageQueue) {
    const m = ctx.values.nonblock ? q.tryReceive() : await q.receive({ ...wait, signal });
    if (m === undefined) throw systemError(EAGAIN, 'mq_receive', q.name, 'The queue is empty and --nonblock was given.');
    return { data: m.data, meta: { priority: m.priority } };
  }
  const m = ctx.values.nonblock ? q.tryReceive({ type }) : await q.receive({ type, ...wait, signal });
  if (m === undefined) throw systemError(EAGAIN, 'msgrcv', q.address, 'No matching message is queued and --nonblock was given.');
  return { data: m.data, meta: { type: m.type } };
}

const recv: Leaf = {
  name: 'recv',
  summary: 'receive messages and print each followed by a newline',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: `${ADDRESS_HELP}\nWaits while the queue is empty, unless --nonblock (exit 1 with EAGAIN) or --timeout (exit 1 with ERR_IPC_TIMEOUT).\n` +
    'With --json each message is one line: {"data": "...", "priority": n} or {"data": "...", "type": n}\n' +
    '(NATS: {"data": "...", "priority": n, "redelivered": n}, redelivered counting earlier deliveries to\n' +
    'receivers that died holding it; "encoding": "base64" is added when the bytes are not UTF-8 text).\n' +
    'Each message is printed before the next is taken. Once stdout\'s reader is gone (ipckit mq recv ... | head -1)\n' +
    'no message is taken: exit 1 with EPIPE, the rest stay queued. A message taken and then not printed\n' +
    '(the reader left during the write) is named on stderr as lost, and the exit status is 1.\n' +
    'NATS: Ctrl-C (SIGINT), SIGTERM or SIGHUP withdraws a waiting receive: nothing more is taken, and the\n' +
    'exit status is 128 + the signal\'s number.',
  options: {
    type: { type: 'string', value: 'T', description: 'System V: 0 any (default), n the first of type n, -n the lowest type <= n' },
    count: { type: 'string', value: 'N', description: 'receive N messages (default 1)' },
    nonblock: { type: 'boolean', description: 'fail with EAGAIN instead of waiting' },
    timeout: { type: 'string', value: 'MS', description: 'wait at most MS milliseconds for each message' },
    owner: OWNER_OPTION,
    'connect-timeout': CONNECT_TIMEOUT_OPTION,
  },
  async run(ctx) {
    if (isNatsAddress(ctx.positionals[0]!)) return natsRecv(ctx);
    const parsed = queueAddress(ctx);
    const wait = waitOption(ctx);
    const count = intOption(ctx, 'count', 1, 2 ** 31 - 1, 1)!;
    const type = intOption(ctx, 'type', -SYSV_TYPE_MAX, SYSV_TYPE_MAX, 0)!;
    using q = open(parsed, ctx);
    const where = q instanceof PosixMessageQueue ? q.name : q.address;
    const ofCount = (n: number): string => `${n} of ${count} message${count === 1 ? '' : 's'}`;
    let printed = 0;
    using out = new ConsumerOutput(() => ({
      message: `stdout's reader left after ${ofCount(printed)}. Nothing more was taken: the messages not taken stay in ${where}.`,
    }));
    while (printed < count) {
      const { data, meta } = await out.take((signal) => receiveOne(q, ctx, type, wait, signal));
      const line = ctx.json ? `${jsonText({ ...bytesForJson(data), ...meta })}\n` : Buffer.concat([data, Buffer.from('\n')]);
      await out.print(line, (reason) => ({
        message: `Message ${printed + 1} of ${count} (${'priority' in meta ? `priority ${meta.priority}` : `type ${meta.type}`}, ` +
          `${data.length} bytes) was taken from ${where} but could not be printed: ${reason}. That message is lost ` +
          `(a queue cannot take one back); the messages not taken stay in ${where}.`,
        details: { lost: { ...bytesForJson(data), ...meta } },
      }));
      printed++;
    }
  },
};

const stat: Leaf = {
  name: 'stat',
  summary: 'show a queue\'s attributes, depth and the kernel limits',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: `${ADDRESS_HELP}\nNATS: the depth, bytes and depth per priority level as the server reports them (byPriority: the\n` +
    'levels that hold messages, highest first, as LEVEL:COUNT; with --json an array by level), and the limits.',
  options: { owner: OWNER_OPTION, 'connect-timeout': CONNECT_TIMEOUT_OPTION },
  async run(ctx) {
    if (isNatsAddress(ctx.positionals[0]!)) return natsStat(ctx);
    using q = open(localAddress(ctx.positionals[0]!, ctx), ctx);
    const info = describeQueue(q);
    if (ctx.json) printJson(info);
    else printFields(info);
  },
};

const rm: Leaf = {
  name: 'rm',
  summary: 'remove a queue (POSIX: unlink the name; System V: IPC_RMID; NATS: delete the stream)',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: ADDRESS_HELP,
  options: { 'connect-timeout': CONNECT_TIMEOUT_OPTION },
  async run(ctx) {
    const address = ctx.positionals[0]!;
    if (isNatsAddress(address)) return natsRemove(ctx);
    localAddress(address, ctx);
    removeQueue(address);
    printRemoved(ctx, address, 'mq');
  },
};

/** Removes the queue at a command-line address. */
export function removeQueue(address: string): void {
  const parsed = parseAddress(address, 'message queue');
  if (parsed.family === 'posix') PosixMessageQueue.unlink(parsed.name);
  else SysvMessageQueue.remove(parsed.address);
}

export const mqCommand: Group = {
  name: 'mq',
  summary: 'message queues: POSIX (/name, with priorities), System V (keys, with types) and NATS (nats://host:port/name)',
  details: ADDRESS_HELP,
  children: [create, send, recv, stat, rm],
};
