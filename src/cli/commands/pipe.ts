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
import {
  type CommandContext, type Group, type Leaf, intOption, modeOption, printJson, readStdin, removeVerb, stdoutClosed,
  usageError, writeOut,
} from '../program.js';

const { EAGAIN } = E;

function waitOptions(ctx: CommandContext): { timeout?: number; nonBlocking?: boolean } {
  const timeout = intOption(ctx, 'timeout', 0, 2 ** 31 - 1);
  if (ctx.values.nonblock === true && timeout !== undefined) throw usageError('Use either --nonblock or --timeout, not both.');
  return { ...(timeout === undefined ? {} : { timeout }), ...(ctx.values.nonblock === true ? { nonBlocking: true } : {}) };
}

const waitFlags = {
  nonblock: { type: 'boolean', description: 'do not wait for the other side or for data (EAGAIN / ENXIO instead)' },
  timeout: { type: 'string', value: 'MS', description: 'wait at most MS milliseconds for each step' },
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

/** Prints what arrives on `end` (lines with --count, chunks otherwise) until the end of the data. */
async function copyOut(end: PipeReadEnd, ctx: CommandContext, count: number | undefined, wait: { timeout?: number; nonBlocking?: boolean }): Promise<void> {
  let lines = 0;
  let pending = '';
  let received = false;
  const emitLine = (line: string): Promise<void> => writeOut(ctx.json ? `${JSON.stringify({ line })}\n` : `${line}\n`);
  for (;;) {
    if (stdoutClosed()) return;
    const chunk = wait.nonBlocking ? end.tryRead() : await end.read(wait.timeout === undefined ? {} : { timeout: wait.timeout });
    if (chunk === undefined) {
      // --nonblock: nothing more is there now.
      if (!received) throw systemError(EAGAIN, 'read', end.address, 'Nothing is in the FIFO and --nonblock was given.');
      break;
    }
    if (chunk === null) break;
    received = true;
    if (count === undefined) {
      await writeOut(ctx.json ? `${JSON.stringify({ data: chunk.toString('utf8') })}\n` : chunk);
      continue;
    }
    pending += chunk.toString('utf8');
    for (let newline = pending.indexOf('\n'); lines < count && newline >= 0; newline = pending.indexOf('\n')) {
      await emitLine(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
      lines++;
    }
    if (lines >= count) return;
  }
  // A last line without a newline.
  if (count !== undefined && pending !== '' && lines < count) await emitLine(pending);
}

const read: Leaf = {
  name: 'read',
  summary: 'print what arrives through a FIFO until the writers close (or --count lines)',
  args: '<path>',
  minArgs: 1,
  maxArgs: 1,
  details: 'Waits for a writer first (without tying up a thread), unless --nonblock.\n' +
    'With --json: one {"line": "..."} per line with --count, else one {"data": "..."} per chunk.',
  options: {
    count: { type: 'string', value: 'N', description: 'stop after N lines' },
    ...waitFlags,
  },
  async run(ctx) {
    const path = ctx.positionals[0]!;
    const count = intOption(ctx, 'count', 1, 2 ** 31 - 1);
    const wait = waitOptions(ctx);
    using end = await Fifo.openRead(path, wait);
    await copyOut(end, ctx, count, wait);
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
      await end.write(data, wait.timeout === undefined ? {} : { timeout: wait.timeout });
    }
    if (ctx.json) printJson({ written: data.length });
  },
};

export const fifoCommand: Group = {
  name: 'fifo',
  summary: 'named pipes (FIFOs): create, read, write, remove',
  children: [create, read, write, removeVerb('remove a FIFO', 'PATH: the FIFO to remove (refuses anything that is not a FIFO).', (path) => Fifo.unlink(path))],
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
    'status. With --json a summary follows the pipeline\'s own output.',
  options: {},
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
    const status = results[results.length - 1]!.status;
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
