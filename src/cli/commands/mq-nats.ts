/**
 * The verbs of `ipckit mq` for a NATS JetStream mailbox
 * (`nats://host:port/name`): what mq.ts runs when the address is one.
 * @internal
 * @module
 */
import { E, IpcError } from '../../errors.js';
import { NATS_PRIORITY_LEVELS, NatsMailbox, type NatsConnectionOptions, type NatsMailboxAttributes, parseNatsAddress } from '../../nats.js';
import { ConsumerOutput } from '../output.js';
import {
  bytesForJson, type CommandContext, intOption, jsonText, onStopSignals, printFields, printJson, printRemoved, readStdin, usageError, waitOption,
} from '../program.js';

/** Whether a command-line address names a NATS mailbox (`nats://…`). */
export function isNatsAddress(address: string): boolean {
  return /^nats:/i.test(address);
}

/** The options of `ipckit mq` that only NATS mailboxes take, by verb. */
export const NATS_ONLY_OPTIONS = ['connect-timeout', 'max-message-size', 'ack-wait', 'storage'] as const;

/** Refuses the NATS-only options for a queue on this machine (`what`: "a POSIX queue", "a System V queue"). */
export function refuseNatsOptions(ctx: CommandContext, address: string, what: string): void {
  for (const name of NATS_ONLY_OPTIONS) {
    if (ctx.values[name] !== undefined) throw usageError(`--${name} applies to NATS mailboxes (nats://host:port/name); ${address} is ${what}.`);
  }
}

/**
 * Refuses the options of the queues on this machine for a NATS address,
 * before any connection: a bad command line is a usage error whether or not
 * the server answers.
 */
function refuseLocalOptions(ctx: CommandContext, address: string): void {
  const why: Record<string, string> = {
    type: 'applies to System V queues; NATS mailboxes take --priority 0-9',
    'message-size': 'applies to POSIX queues; NATS mailboxes take --max-message-size',
    'max-bytes': 'applies to System V queues; NATS mailboxes take --max-messages and --max-message-size',
    mode: 'applies to queues on this machine; a NATS mailbox has no permission bits (the server\'s accounts decide who may use it)',
    owner: 'applies to queues on this machine; a NATS mailbox has no owner uid',
  };
  for (const [name, reason] of Object.entries(why)) {
    if (ctx.values[name] !== undefined) throw usageError(`--${name} ${reason} (${address} is a NATS mailbox).`);
  }
}

/** The address, checked, and the connection options of the command line. */
function natsTarget(ctx: CommandContext): { address: string; connection: NatsConnectionOptions } {
  const address = ctx.positionals[0]!;
  refuseLocalOptions(ctx, address);
  parseNatsAddress(address);
  const connectTimeout = intOption(ctx, 'connect-timeout', 1, 2 ** 31 - 1);
  return { address, connection: connectTimeout === undefined ? {} : { connectTimeout } };
}

/** What `mq create --json` and `mq stat` show of a mailbox. */
function describeMailbox(box: NatsMailbox, a: NatsMailboxAttributes): Record<string, unknown> {
  return {
    family: 'nats', address: box.address, maxMessages: a.maxMessages, maxMessageSize: a.maxMessageSize, messages: a.messages, bytes: a.bytes,
    byPriority: a.byPriority, ackWait: a.ackWait, storage: a.storage,
  };
}

/** `byPriority` as text: the levels that hold messages, highest first (the order recv takes them), as LEVEL:COUNT. */
function levelsText(byPriority: number[]): string {
  const held = byPriority.map((count, level) => `${level}:${count}`).filter((_, level) => byPriority[level]! > 0).reverse();
  return held.length === 0 ? '-' : held.join(' ');
}

function printMailbox(ctx: CommandContext, info: Record<string, unknown>): void {
  if (ctx.json) printJson(info);
  else printFields({ ...info, byPriority: levelsText(info.byPriority as number[]) });
}

/**
 * Ctrl-C (SIGINT), SIGTERM and SIGHUP while a NATS verb waits: `signal`
 * aborts the wait rather than the process dying wherever it is (a receive
 * between its pull and its acknowledgement would leave the message to be
 * delivered again only after ackWait). A second signal ends the process at
 * once. Dispose of it to give the signals their actions back.
 */
class StopSignals implements Disposable {
  readonly #controller = new AbortController();
  readonly #restore: () => void;
  /** The number of the signal that asked to stop, if one did. */
  stoppedBy: number | undefined;

  constructor() {
    this.#restore = onStopSignals((info) => {
      if (this.stoppedBy !== undefined) process.exit(128 + info.number);
      this.stoppedBy = info.number;
      this.#controller.abort();
    });
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** If a signal asked to stop: sets the exit status (128 + its number) and returns true. */
  stopped(): boolean {
    if (this.stoppedBy === undefined) return false;
    process.exitCode = 128 + this.stoppedBy;
    return true;
  }

  [Symbol.dispose](): void {
    // After a stop the command is on its way out: a copy of the signal still on its way must find this
    // handler (exit 128 + n), not the default action, which would end the process by the signal instead.
    if (this.stoppedBy === undefined) this.#restore();
  }
}

export async function natsCreate(ctx: CommandContext): Promise<void> {
  const { address, connection } = natsTarget(ctx);
  const maxMessages = intOption(ctx, 'max-messages', 1, 2 ** 31 - 1);
  const maxMessageSize = intOption(ctx, 'max-message-size', 1, 64 * 1024 * 1024);
  const ackWait = intOption(ctx, 'ack-wait', 1000, 2 ** 31 - 1);
  const storage = ctx.values.storage;
  if (storage !== undefined && storage !== 'file' && storage !== 'memory') throw usageError(`--storage must be file or memory; got "${String(storage)}".`);
  await using box = await NatsMailbox.create(address, {
    ...connection,
    ...(maxMessages === undefined ? {} : { maxMessages }),
    ...(maxMessageSize === undefined ? {} : { maxMessageSize }),
    ...(ackWait === undefined ? {} : { ackWait }),
    ...(storage === undefined ? {} : { storage }),
  });
  if (ctx.json) printJson(describeMailbox(box, await box.attributes()));
  else process.stdout.write(`created ${box.address}\n`);
}

export async function natsSend(ctx: CommandContext): Promise<void> {
  const message = ctx.positionals[1]!;
  const { address, connection } = natsTarget(ctx);
  const wait = waitOption(ctx);
  const priority = intOption(ctx, 'priority', 0, NATS_PRIORITY_LEVELS - 1, 0)!;
  await using box = await NatsMailbox.open(address, connection);
  const data = message === '-' ? await readStdin() : Buffer.from(message, 'utf8');
  if (ctx.values.nonblock) {
    if (!await box.trySend(data, { priority })) {
      throw new IpcError('EAGAIN', `send on ${box.address}: the mailbox is full and --nonblock was given.`, { errno: E.EAGAIN, address: box.address });
    }
  } else {
    using stop = new StopSignals();
    try {
      await box.send(data, { priority, ...wait, signal: stop.signal });
    } catch (err) {
      if (stop.stopped()) return;
      throw err;
    }
  }
  if (ctx.json) printJson({ sent: true, bytes: data.length });
}

export async function natsRecv(ctx: CommandContext): Promise<void> {
  const { address, connection } = natsTarget(ctx);
  const wait = waitOption(ctx);
  const count = intOption(ctx, 'count', 1, 2 ** 31 - 1, 1)!;
  await using box = await NatsMailbox.open(address, connection);
  const where = box.address;
  const ofCount = (n: number): string => `${n} of ${count} message${count === 1 ? '' : 's'}`;
  let printed = 0;
  using out = new ConsumerOutput(() => ({
    message: `stdout's reader left after ${ofCount(printed)}. Nothing more was taken: the messages not taken stay in ${where}.`,
  }));
  using stop = new StopSignals();
  while (printed < count) {
    // A stop signal that came while the last message was taken and printed: that one is out, no other is taken.
    if (stop.stopped()) return;
    let m;
    try {
      m = await out.take(async (gone) => {
        if (ctx.values.nonblock) {
          const got = await box.tryReceive();
          if (got === undefined) {
            throw new IpcError('EAGAIN', `receive on ${where}: the mailbox is empty and --nonblock was given.`, { errno: E.EAGAIN, address: where });
          }
          return got;
        }
        return box.receive({ ...wait, signal: gone === undefined ? stop.signal : AbortSignal.any([gone, stop.signal]) });
      });
    } catch (err) {
      if (!out.failedWith(err) && stop.stopped()) return;
      throw err;
    }
    const meta = { priority: m.priority, redelivered: m.redelivered };
    const line = ctx.json ? `${jsonText({ ...bytesForJson(m.data), ...meta })}\n` : Buffer.concat([m.data, Buffer.from('\n')]);
    await out.print(line, (reason) => ({
      message: `Message ${printed + 1} of ${count} (priority ${m.priority}, ${m.data.length} bytes) was taken from ${where} but could not be ` +
        `printed: ${reason}. That message is lost (it was acknowledged as it was taken); the messages not taken stay in ${where}.`,
      details: { lost: { ...bytesForJson(m.data), ...meta } },
    }));
    printed++;
  }
}

export async function natsStat(ctx: CommandContext): Promise<void> {
  const { address, connection } = natsTarget(ctx);
  await using box = await NatsMailbox.open(address, connection);
  printMailbox(ctx, describeMailbox(box, await box.attributes()));
}

/** Removes the mailbox at a NATS address (the stream, with its messages) and prints `removed ADDRESS (message queue)`. */
export async function natsRemove(ctx: CommandContext): Promise<void> {
  const { address, connection } = natsTarget(ctx);
  await NatsMailbox.unlink(address, connection);
  printRemoved(ctx, parseNatsAddress(address).address, 'mq');
}
