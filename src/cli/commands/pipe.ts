/**
 * `ipckit fifo create|read|write|rm <path>` and
 * `ipckit pipe run -- CMD1 ARGS ::: CMD2 ARGS ::: ...`.
 * @internal
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { E, IpcError, systemError } from '../../errors.js';
import { Fifo } from '../../fifo.js';
import { type PipeReadEnd, type PipeWriteEnd, pipe, spawn } from '../../pipe.js';
import type { OwnerOption } from '../../internal/trust.js';
import { ConsumerOutput, type LostAccount } from '../output.js';
import { bytesForJson, type CommandContext, type Group, intOption, jsonText, type Leaf, modeOption, OWNER_OPTION, ownerOption, printJson, readStdin, removeVerb, usageError } from '../program.js';

const { EAGAIN } = E;

/** The options of a FIFO open, from the command line. */
interface WaitFlags {
  timeout?: number;
  nonBlocking?: boolean;
  owner?: OwnerOption;
}

function waitOptions(ctx: CommandContext): WaitFlags {
  const timeout = intOption(ctx, 'timeout', 0, 2 ** 31 - 1);
  if (ctx.values.nonblock === true && timeout !== undefined) throw usageError('Use either --nonblock or --timeout, not both.');
  const owner = ownerOption(ctx);
  return {
    ...(timeout === undefined ? {} : { timeout }), ...(ctx.values.nonblock === true ? { nonBlocking: true } : {}),
    ...(owner === undefined ? {} : { owner }),
  };
}

const waitFlags = {
  nonblock: { type: 'boolean', description: 'do not wait for the other side or for data (EAGAIN / ENXIO instead)' },
  timeout: { type: 'string', value: 'MS', description: 'wait at most MS milliseconds for each step' },
  owner: OWNER_OPTION,
} as const;

const create: Leaf = {
  name: 'create',
  summary: 'create a FIFO (mkfifo) with an exact mode',
  args: '<path>',
  minArgs: 1,
  maxArgs: 1,
  options: { mode: { type: 'string', value: 'OCTAL', description: 'permission bits, e.g. 600 (default 600)' } },
  async run(ctx) {
    const path = ctx.positionals[0]!;
    Fifo.create(path, { mode: modeOption(ctx, 0o600) });
    if (ctx.json) printJson({ created: path });
    else process.stdout.write(`created ${path}\n`);
  },
};

/** A line as --json prints it: `{"line": text}`, or base64 with `"encoding"` when it is not UTF-8. */
function lineJson(bytes: Uint8Array): { line: string; encoding?: 'base64' } {
  const { data, encoding } = bytesForJson(bytes);
  return encoding === undefined ? { line: data } : { line: data, encoding };
}

function newlines(bytes: Uint8Array): number {
  let n = 0;
  for (let i = bytes.indexOf(0x0a); i >= 0; i = bytes.indexOf(0x0a, i + 1)) n++;
  return n;
}

function readWait(wait: WaitFlags): { timeout?: number } {
  return wait.timeout === undefined ? {} : { timeout: wait.timeout };
}

/** Most bytes {@link gather} collects before they are printed. */
const GATHER_MAX = 64 * 1024;

/**
 * `first` and whatever else is in the FIFO now, without waiting, read so
 * as never to take a byte past the `wanted`th newline: one print for a
 * burst, however small the reads it took.
 */
function gather(end: PipeReadEnd, first: Buffer, wanted: number): Buffer {
  const parts = [first];
  let size = first.length;
  for (let left = wanted - newlines(first); left > 0 && size < GATHER_MAX;) {
    const more = end.tryRead({ maxBytes: Math.min(left, GATHER_MAX - size) });
    if (more === undefined || more === null) break;
    parts.push(more);
    size += more.length;
    left -= newlines(more);
  }
  return parts.length === 1 ? first : Buffer.concat(parts, size);
}

/** What a FIFO reader says of bytes it read and could not print. */
function lostBytes(path: string, bytes: Uint8Array, where: string): LostAccount {
  return (reason) => ({
    message: `${bytes.length} bytes read from ${path} (${where}) could not be printed: ${reason}. ` +
      'They are lost (a FIFO cannot take bytes back).',
    details: { lost: bytesForJson(bytes) },
  });
}

/** Without --count: waits for a writer, then prints each chunk as it arrives, until the last writer closes. */
async function copyChunks(path: string, ctx: CommandContext, wait: WaitFlags): Promise<void> {
  let bytes = 0;
  using out = new ConsumerOutput(() => ({ message: `stdout's reader left after ${bytes} bytes. Nothing more was read from ${path}.` }));
  // The open reads the first byte a writer sent (that is how it sees a writer): not for a reader that left.
  using end = await out.take((signal) => Fifo.openRead(path, { ...wait, signal }));
  for (;;) {
    const chunk = await out.take((signal) => (wait.nonBlocking ? end.tryRead() : end.read({ ...readWait(wait), signal })));
    if (chunk === undefined) {
      // --nonblock: nothing more is there now.
      if (bytes === 0) throw systemError(EAGAIN, 'read', path, 'Nothing is in the FIFO and --nonblock was given.');
      return;
    }
    if (chunk === null) return;
    await out.print(ctx.json ? `${jsonText(bytesForJson(chunk))}\n` : chunk, lostBytes(path, chunk, `after byte ${bytes}`));
    bytes += chunk.length;
  }
}

/**
 * With --count: prints `count` lines, however many writers come and go, and
 * reads no byte past the last newline wanted: the rest stays in the FIFO.
 * Text goes out as it arrives; with --json, line by line.
 */
async function copyLines(path: string, ctx: CommandContext, count: number, wait: WaitFlags): Promise<void> {
  let lines = 0;
  /** Bytes read and not yet printed (--json: the line being read). */
  let pending: Buffer = Buffer.alloc(0);
  const ofCount = (): string => `${lines} of ${count} line${count === 1 ? '' : 's'}`;
  using out = new ConsumerOutput(() => (pending.length === 0
    ? { message: `stdout's reader left after ${ofCount()}. Nothing more was read from ${path}.` }
    : {
      message: `stdout's reader left after ${ofCount()}; the ${pending.length} bytes of line ${lines + 1} read so far are lost ` +
        `(a FIFO cannot take bytes back). Nothing more was read from ${path}.`,
      details: { lost: bytesForJson(pending) },
    }));
  out.ensureReader();
  // Opened without waiting for a writer (nor reading a byte to see one): the data is what is waited for.
  // The write end of its own keeps the data going when a writer closes (no end of the data while
  // it is open), and lets the next writer's open find a reader at every moment.
  using end = await Fifo.openRead(path, { nonBlocking: true, owner: wait.owner });
  const ownWriter = await Fifo.openWrite(path, { nonBlocking: true, owner: wait.owner });
  try {
    while (lines < count) {
      let chunk: Buffer | null | undefined;
      try {
        // At most one byte per newline still wanted: no read can reach past the last line.
        const maxBytes = count - lines - newlines(pending);
        chunk = await out.take((signal) => (wait.nonBlocking ? end.tryRead({ maxBytes }) : end.read({ maxBytes, ...readWait(wait), signal })));
        if (chunk === undefined) {
          throw systemError(EAGAIN, 'read', path, lines === 0 && pending.length === 0
            ? 'Nothing is in the FIFO and --nonblock was given.'
            : `Only ${ofCount()} were in the FIFO and --nonblock was given.`);
        }
      } catch (err) {
        // The read failed (a timeout, --nonblock) after part of a line: print that part, marked, rather than drop it.
        if (pending.length > 0 && !out.failedWith(err)) {
          await out.print(`${jsonText({ ...lineJson(pending), complete: false })}\n`, lostBytes(path, pending, `line ${lines + 1} of ${count}`));
        }
        throw err;
      }
      // No end of the data while this reader holds a write end.
      if (chunk === null) return;
      chunk = gather(end, chunk, count - lines - newlines(pending));
      if (!ctx.json) {
        await out.print(chunk, lostBytes(path, chunk, `from line ${lines + 1} of ${count}`));
        lines += newlines(chunk);
        continue;
      }
      pending = Buffer.concat([pending, chunk]);
      for (let newline = pending.indexOf(0x0a); newline >= 0; newline = pending.indexOf(0x0a)) {
        await out.print(`${jsonText(lineJson(pending.subarray(0, newline)))}\n`, lostBytes(path, pending, `from line ${lines + 1} of ${count}`));
        pending = pending.subarray(newline + 1);
        lines++;
      }
    }
  } finally {
    ownWriter.close();
  }
}

const read: Leaf = {
  name: 'read',
  summary: 'print what arrives through a FIFO until the writers close (or --count lines)',
  args: '<path>',
  minArgs: 1,
  maxArgs: 1,
  details: 'Waits for a writer first (without tying up a thread), unless --nonblock.\n' +
    'Without --count, prints what arrives until the last writer closes. With --count N, prints N lines however\n' +
    'many writers come and go (it holds a write end itself, so a writer that closes does not end the data, and\n' +
    'the next writer finds a reader), and reads no byte past the Nth newline: the rest stays in the FIFO.\n' +
    'With --json: one {"line": "..."} per line with --count, else one {"data": "..."} per chunk ("encoding":\n' +
    '"base64" is added when the bytes are not UTF-8 text).\n' +
    'Once stdout\'s reader is gone, nothing more is read: exit 1 with EPIPE. Bytes read and then not printed\n' +
    '(the reader left during the write) are named on stderr as lost, and the exit status is 1.',
  options: {
    count: { type: 'string', value: 'N', description: 'stop after N lines' },
    ...waitFlags,
  },
  async run(ctx) {
    const path = ctx.positionals[0]!;
    const count = intOption(ctx, 'count', 1, 2 ** 31 - 1);
    const wait = waitOptions(ctx);
    if (count === undefined) await copyChunks(path, ctx, wait);
    else await copyLines(path, ctx, count, wait);
  },
};

const write: Leaf = {
  name: 'write',
  summary: 'write a line (or stdin with -) into a FIFO, once a reader has it open',
  args: '<path> <text|->',
  minArgs: 2,
  maxArgs: 2,
  details: 'The text is written with a trailing newline; stdin (-) is copied as it is.\n' +
    'Waits for a reader unless --nonblock (then ENXIO if there is none).',
  options: { ...waitFlags },
  async run(ctx) {
    const [path, text] = ctx.positionals as [string, string];
    const wait = waitOptions(ctx);
    const data = text === '-' ? await readStdin() : Buffer.from(`${text}\n`, 'utf8');
    using end = await Fifo.openWrite(path, wait);
    if (wait.nonBlocking) {
      const written = end.tryWrite(data);
      if (written < data.length) throw systemError(EAGAIN, 'write', path, `The FIFO is full (${written} of ${data.length} bytes written) and --nonblock was given.`);
    } else {
      await end.write(data, readWait(wait));
    }
    if (ctx.json) printJson({ written: data.length });
  },
};

export const fifoCommand: Group = {
  name: 'fifo',
  summary: 'named pipes (FIFOs): create, read, write, remove',
  children: [create, read, write, removeVerb('fifo', 'remove a FIFO', 'PATH: the FIFO to remove (refuses anything that is not a FIFO).', (path) => Fifo.unlink(path))],
};

/** Splits `A a ::: B b` into commands. */
function splitCommands(words: string[]): string[][] {
  const commands: string[][] = [[]];
  for (const word of words) {
    if (word === ':::') commands.push([]);
    else commands[commands.length - 1]!.push(word);
  }
  if (commands.some((c) => c.length === 0)) throw usageError('Every command of the pipeline needs a name: write CMD1 ARGS ::: CMD2 ARGS.');
  return commands;
}

/** A child's exit status as a shell reports it: its code, or 128 + the signal that ended it. */
function exitStatus(child: ChildProcess): Promise<{ status: number; error?: Error }> {
  return new Promise((resolve) => {
    child.once('error', (error) => resolve({ status: 127, error }));
    child.once('close', (code, signal) => resolve({ status: code ?? 128 + (signal ? osConstants.signals[signal] : 0) }));
  });
}

const run: Leaf = {
  name: 'run',
  summary: 'run commands connected by ipckit pipes, like the shell\'s |',
  args: '-- CMD1 ARGS ::: CMD2 ARGS ::: ...',
  minArgs: 1,
  maxArgs: 1024,
  details: 'No shell is involved: ipckit makes one pipe between each pair of commands, hands the ends to the\n' +
    'children (stdout of one, stdin of the next), closes its own copies, and exits with the last command\'s\n' +
    'status (with --pipefail: the last non-zero status of any command, 0 if all succeeded, as bash\'s\n' +
    'set -o pipefail). With --json a summary follows the pipeline\'s own output.',
  options: {
    pipefail: { type: 'boolean', description: 'exit with the last non-zero status of any command, not the last command\'s' },
  },
  async run(ctx) {
    const commands = splitCommands(ctx.positionals);
    const children: { command: string[]; child: ChildProcess; done: Promise<{ status: number; error?: Error }> }[] = [];
    let input: PipeReadEnd | undefined;
    for (let i = 0; i < commands.length; i++) {
      const [command, ...args] = commands[i]!;
      const last = i === commands.length - 1;
      const link = last ? undefined : pipe();
      const fds: Record<number, PipeReadEnd | PipeWriteEnd> = {};
      if (input !== undefined) fds[0] = input;
      if (link !== undefined) fds[1] = link.writeEnd;
      const child = spawn(command!, args, { stdio: ['inherit', 'inherit', 'inherit'], fds });
      children.push({ command: commands[i]!, child, done: exitStatus(child) });
      // The children have their copies; ours would keep the readers from seeing the end.
      input?.close();
      link?.writeEnd.close();
      input = link?.readEnd;
    }
    const results = await Promise.all(children.map((c) => c.done));
    const failed = results.find((r) => r.error !== undefined);
    if (failed?.error) {
      const err = failed.error as NodeJS.ErrnoException;
      throw new IpcError(err.code === 'ENOENT' ? 'ENOENT' : 'ERR_IPC_PEER_FAILED', `${err.message}: no such command on the PATH.`);
    }
    const statuses = results.map((r) => r.status);
    const status = ctx.values.pipefail ? statuses.filter((s) => s !== 0).pop() ?? 0 : statuses[statuses.length - 1]!;
    if (ctx.json) {
      printJson({ status, commands: children.map((c, i) => ({ command: c.command, pid: c.child.pid ?? null, status: results[i]!.status })) });
    }
    process.exitCode = status;
  },
};

export const pipeCommand: Group = {
  name: 'pipe',
  summary: 'anonymous pipes: run a pipeline of commands connected by ipckit pipes',
  children: [run],
};
