/**
 * `ipckit channel create|send|recv|stat|rm <name>`: shared-memory channels
 * from the shell. A channel lives in a POSIX segment, so its name is `/name`.
 * @internal
 * @module
 */
import { Channel, CHANNEL_MAX_CAPACITY, CHANNEL_MIN_CAPACITY } from '../../channel.js';
import { E, IpcError, systemError } from '../../errors.js';
import { checkPosixName } from '../../internal/address.js';
import { readChannelHeader } from '../../inventory.js';
import { PosixSharedMemory } from '../../shared-memory.js';
import { ConsumerOutput } from '../output.js';
import { bytesForJson, type CommandContext, type Group, intOption, jsonText, type Leaf, modeOption, OWNER_OPTION, ownerOption, printJson, readStdin, removeVerb, usageError, waitOption } from '../program.js';

const NAME_HELP = 'NAME: /name, the POSIX shared memory segment that holds the channel.';
const ROLE_HELP = 'A channel created with one producer and one consumer (the default): while another live process holds the role\n' +
  'this command needs (a send waiting on a full ring, a recv waiting for messages), it fails with ERR_IPC_BUSY (exit 1).\n' +
  'A side created with --producers multi or --consumers multi is shared: its processes take turns.';

function channelName(ctx: CommandContext): string {
  return checkPosixName(ctx.positionals[0], 'channel');
}

function open(name: string, ctx: CommandContext): Channel {
  try {
    return Channel.open(name, { owner: ownerOption(ctx) });
  } catch (err) {
    // The segment's own advice would be to create a segment; a channel is created otherwise.
    if (err instanceof IpcError && err.code === 'ENOENT') {
      throw systemError(E.ENOENT, 'shm_open', name, 'No such channel: create it first (Channel.create or ipckit channel create).');
    }
    throw err;
  }
}

/** A channel's counters, who holds its roles (and whether they live), and its segment's size, mode and owner. */
function describeChannel(ch: Channel): Record<string, unknown> {
  const stats = ch.stats();
  const header = readChannelHeader(ch.address);
  const st = PosixSharedMemory.stat(ch.address);
  return {
    name: ch.address, ...stats,
    // Whether the thread holding each role lives: null when no thread holds it.
    producerAlive: header?.producer?.alive ?? null,
    consumerAlive: header?.consumer?.alive ?? null,
    size: st.size, mode: st.mode, uid: st.uid, gid: st.gid,
  };
}

const create: Leaf = {
  name: 'create',
  summary: 'create a channel (fails if the name exists)',
  args: '<name>',
  minArgs: 1,
  maxArgs: 1,
  details: `${NAME_HELP}\nThe capacity is rounded up to a power of two; the largest message is at most half of it less 8 bytes.`,
  options: {
    capacity: { type: 'string', value: 'BYTES', description: `bytes of the ring, ${CHANNEL_MIN_CAPACITY} to ${CHANNEL_MAX_CAPACITY} (default 1 MiB)` },
    'max-message-size': { type: 'string', value: 'BYTES', description: 'largest message (default 64 KiB, or capacity/2 - 8 if smaller)' },
    mode: { type: 'string', value: 'OCTAL', description: 'permission bits, e.g. 600 (default 600)' },
    producers: { type: 'string', value: 'single|multi', description: 'one producer at a time (default), or many taking turns' },
    consumers: { type: 'string', value: 'single|multi', description: 'one consumer at a time (default), or many taking turns' },
  },
  async run(ctx) {
    const name = channelName(ctx);
    const side = (option: 'producers' | 'consumers'): 'single' | 'multi' => {
      const value = ctx.values[option] ?? 'single';
      if (value !== 'single' && value !== 'multi') throw usageError(`--${option} must be single or multi; got "${String(value)}".`);
      return value;
    };
    const producers = side('producers');
    const consumers = side('consumers');
    const capacity = intOption(ctx, 'capacity', CHANNEL_MIN_CAPACITY, CHANNEL_MAX_CAPACITY);
    const maxMessageSize = intOption(ctx, 'max-message-size', 0, CHANNEL_MAX_CAPACITY);
    const mode = modeOption(ctx, 0o600);
    using ch = Channel.create(name, {
      mode, producers, consumers, ...(capacity === undefined ? {} : { capacity }), ...(maxMessageSize === undefined ? {} : { maxMessageSize }),
    });
    if (ctx.json) printJson(describeChannel(ch));
    else process.stdout.write(`created ${name} (capacity ${ch.capacity} bytes, messages up to ${ch.maxMessageSize} bytes)\n`);
  },
};

const send: Leaf = {
  name: 'send',
  summary: 'send one message (the argument, or stdin with -)',
  args: '<name> <message|->',
  minArgs: 2,
  maxArgs: 2,
  details: `${NAME_HELP}\nWaits while the ring is full, unless --nonblock (exit 1 with EAGAIN) or --timeout (exit 1 with ERR_IPC_TIMEOUT).\n` +
    `If the consumer dies while send waits for room, exit 1 with ERR_IPC_PEER_DEAD.\n${ROLE_HELP}`,
  options: {
    nonblock: { type: 'boolean', description: 'fail with EAGAIN instead of waiting' },
    timeout: { type: 'string', value: 'MS', description: 'wait at most MS milliseconds' },
    owner: OWNER_OPTION,
  },
  async run(ctx) {
    const name = channelName(ctx);
    const message = ctx.positionals[1]!;
    const wait = waitOption(ctx);
    using ch = open(name, ctx);
    const data = message === '-' ? await readStdin() : Buffer.from(message, 'utf8');
    const sent = ctx.values.nonblock ? ch.trySend(data) : (await ch.send(data, wait), true);
    if (!sent) throw new IpcError('EAGAIN', `The channel ${name} is full and --nonblock was given.`, { errno: E.EAGAIN, address: name });
    if (ctx.json) printJson({ sent: true, bytes: data.length });
  },
};

const recv: Leaf = {
  name: 'recv',
  summary: 'receive messages and print each followed by a newline',
  args: '<name>',
  minArgs: 1,
  maxArgs: 1,
  details: `${NAME_HELP}\nWaits while the ring is empty, unless --nonblock (exit 1 with EAGAIN) or --timeout (exit 1 with ERR_IPC_TIMEOUT).\n` +
    'If the producer dies while recv waits, exit 1 with ERR_IPC_PEER_DEAD (what it sent before is received first).\n' +
    '--follow receives until the command is stopped; --timeout then bounds the wait for each message.\n' +
    'With --json each message is one line: {"data": "..."} ("encoding": "base64" is added when the bytes are\n' +
    'not UTF-8 text).\n' +
    'Each message is printed before the next is taken. Once stdout\'s reader is gone (ipckit channel recv ... | head -1)\n' +
    'no message is taken: exit 1 with EPIPE, the rest stay in the channel. A message taken and then not printed\n' +
    `(the reader left during the write) is named on stderr as lost, and the exit status is 1.\n${ROLE_HELP}`,
  options: {
    count: { type: 'string', value: 'N', description: 'receive N messages (default 1)' },
    follow: { type: 'boolean', description: 'receive messages until stopped' },
    nonblock: { type: 'boolean', description: 'fail with EAGAIN instead of waiting' },
    timeout: { type: 'string', value: 'MS', description: 'wait at most MS milliseconds for each message' },
    owner: OWNER_OPTION,
  },
  async run(ctx) {
    const name = channelName(ctx);
    const follow = ctx.values.follow === true;
    if (follow && ctx.values.count !== undefined) throw usageError('Use either --count or --follow, not both.');
    const count = follow ? Infinity : intOption(ctx, 'count', 1, 2 ** 31 - 1, 1)!;
    const wait = waitOption(ctx);
    using ch = open(name, ctx);
    const messages = (n: number): string => `${n} message${n === 1 ? '' : 's'}`;
    const ofCount = (n: number): string => (follow ? messages(n) : `${n} of ${messages(count)}`);
    let printed = 0;
    using out = new ConsumerOutput(() => ({
      message: `stdout's reader left after ${ofCount(printed)}. Nothing more was taken: the messages not taken stay in ${name}.`,
    }));
    while (printed < count) {
      const data = await out.take(async (signal) => {
        const m = ctx.values.nonblock ? ch.tryReceive() : await ch.receive({ ...wait, signal });
        if (m === undefined) throw new IpcError('EAGAIN', `The channel ${name} is empty and --nonblock was given.`, { errno: E.EAGAIN, address: name });
        return m.data;
      });
      const line = ctx.json ? `${jsonText(bytesForJson(data))}\n` : Buffer.concat([data, Buffer.from('\n')]);
      await out.print(line, (reason) => ({
        message: `Message ${follow ? printed + 1 : `${printed + 1} of ${count}`} (${data.length} bytes) was taken from ${name} ` +
          `but could not be printed: ${reason}. That message is lost (a channel cannot take one back); the messages not taken stay in ${name}.`,
        details: { lost: bytesForJson(data) },
      }));
      printed++;
    }
  },
};

const stat: Leaf = {
  name: 'stat',
  summary: 'show a channel\'s depth, counters, roles and limits',
  args: '<name>',
  minArgs: 1,
  maxArgs: 1,
  details: `${NAME_HELP}\nThe counters are the channel's own, shared by every process using it. producerTid and consumerTid are the\n` +
    'threads holding the roles (a process\'s main thread id is its pid; 0: nobody), and producerAlive and\n' +
    'consumerAlive whether those threads still live.',
  options: { owner: OWNER_OPTION },
  async run(ctx) {
    using ch = open(channelName(ctx), ctx);
    const info = describeChannel(ch);
    if (ctx.json) {
      printJson(info);
      return;
    }
    for (const [key, value] of Object.entries(info)) {
      const shown = key === 'mode' ? `0${(value as number).toString(8)}` : value === null ? '-' : String(value);
      process.stdout.write(`${key.padEnd(16)} ${shown}\n`);
    }
  },
};

const rm = removeVerb('channel', 'remove a channel (unlink its name; processes that have it open keep using it)', NAME_HELP, removeChannel);

/** Removes the channel at a command-line name. */
export function removeChannel(address: string): void {
  Channel.unlink(checkPosixName(address, 'channel'));
}

export const channelCommand: Group = {
  name: 'channel',
  summary: 'channels: a ring of messages in shared memory between producers and consumers',
  details: NAME_HELP,
  children: [create, send, recv, stat, rm],
};
