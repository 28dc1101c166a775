/**
 * A small command-line framework: nested command groups, `--help` at every
 * level, `--json` on every leaf, and the exit-code contract
 * (0 ok, 1 operation failed, 2 usage).
 * @internal
 * @module
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { OwnerOption } from '../internal/trust.js';
import { IpcError, systemError } from '../errors.js';
import { formatKey } from '../internal/address.js';
import { type SignalInfo, onSignal } from '../signal.js';

/** A command-line option of a leaf command. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Shown in help after the option, e.g. `MS`. */
  value?: string;
  description: string;
}

/** What a leaf command receives. */
export interface CommandContext {
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
  json: boolean;
  /** The command path, e.g. `ipckit mq send`. */
  path: string;
}

export interface Leaf {
  name: string;
  summary: string;
  /** Positional part of the usage line, e.g. `<address> <message|->`. */
  args: string;
  minArgs: number;
  maxArgs: number;
  options: Record<string, OptionSpec>;
  /** Longer help text shown under the usage line. */
  details?: string;
  run(ctx: CommandContext): Promise<void>;
}

export interface Group {
  name: string;
  summary: string;
  children: Command[];
  details?: string;
}

export type Command = Leaf | Group;

function isGroup(command: Command): command is Group {
  return 'children' in command;
}

/** An error in the command line itself (exit status 2). */
export function usageError(message: string): IpcError {
  return new IpcError('ERR_IPC_USAGE', message);
}

/** Codes that mean the input was malformed: exit status 2 rather than 1. */
const USAGE_CODES = new Set(['ERR_IPC_USAGE', 'ERR_IPC_INVALID_ADDRESS', 'ERR_IPC_INVALID_ARGUMENT']);

/** Fields a failure adds to its --json form (`lost`: what a consumer took and could not print). */
const failureDetails = new WeakMap<IpcError, Record<string, unknown>>();

/** Attaches `details` to the --json form of `err`; returns `err`. */
export function withDetails(err: IpcError, details: Record<string, unknown>): IpcError {
  failureDetails.set(err, details);
  return err;
}

/**
 * Prints a failure on stderr: `CODE: message`, or with --json one line
 * `{"error": {"code", "message", "errno"?, "syscall"?, "address"?, ...}}`.
 * Returns the exit status: 2 for malformed input, 1 otherwise.
 */
function reportFailure(err: unknown, json: boolean): number {
  const failure = err instanceof IpcError ? err : new IpcError('ERR_IPC_INTERNAL', (err as Error)?.stack ?? String(err));
  if (json) {
    const { code, message, errno, syscall, address } = failure;
    process.stderr.write(`${jsonText({
      error: { code, message, errno, syscall, address, ...failureDetails.get(failure) },
    })}\n`);
  } else {
    process.stderr.write(`${failure.code}: ${failure.message}\n`);
  }
  return USAGE_CODES.has(failure.code) ? 2 : 1;
}

const COMMON_OPTIONS: Record<string, OptionSpec> = {
  json: { type: 'boolean', description: 'print machine-readable JSON' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

function optionLine(name: string, spec: OptionSpec): string {
  const flag = `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.value ? ` ${spec.value}` : ''}`;
  return `  ${flag.padEnd(28)} ${spec.description}`;
}

function groupHelp(group: Group, path: string): string {
  const width = Math.max(...group.children.map((c) => c.name.length)) + 2;
  const lines = [
    `Usage: ${path} <command> [options]`,
    '',
    group.summary,
    ...(group.details ? ['', group.details] : []),
    '',
    'Commands:',
    ...group.children.map((c) => `  ${c.name.padEnd(width)} ${c.summary}`),
    '',
    `Run "${path} <command> --help" for a command's options.`,
  ];
  return lines.join('\n');
}

function leafHelp(leaf: Leaf, path: string): string {
  const options = { ...leaf.options, ...COMMON_OPTIONS };
  return [
    `Usage: ${path}${leaf.args ? ` ${leaf.args}` : ''} [options]`,
    '',
    leaf.summary,
    ...(leaf.details ? ['', leaf.details] : []),
    '',
    'Options:',
    ...Object.entries(options).map(([name, spec]) => optionLine(name, spec)),
  ].join('\n');
}

const NEGATIVE_NUMBER = /^-[0-9]+$/;
/** Hides a negative number from parseArgs, which would take it for a short option. */
const NEGATIVE_MARK = '\u0000';

function unmark(arg: string): string {
  return arg.startsWith(NEGATIVE_MARK) ? arg.slice(NEGATIVE_MARK.length) : arg;
}

let outputClosed = false;

/** Failed writes that their writer reports itself (a consumer naming what it lost). */
const reportedByWriter = new WeakSet<Error>();

/**
 * Whether the reader of stdout went away (EPIPE, as in `ipckit … | head -1`).
 * Commands that only show something (the tour, `shm read`) stop printing
 * once it has, and still exit 0: nothing was lost. Commands that consume
 * what they print use `ConsumerOutput` (output.ts) instead.
 */
export function stdoutClosed(): boolean {
  return outputClosed;
}

/**
 * Runs the command line `argv` against `root`; resolves to the exit status.
 * Errors are printed on stderr, as `CODE: message` or, when the command line
 * asks for --json, as one JSON object (see {@link reportFailure}).
 */
/** The version in the package's package.json. */
function packageVersion(): string {
  const file = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

export async function runCommandLine(root: Group, argv: string[], rootPath: string): Promise<number> {
  // Until the options are parsed (a usage error may come first), --json anywhere before "--" counts.
  const end = argv.indexOf('--');
  let json = (end < 0 ? argv : argv.slice(0, end)).includes('--json');
  let writeFailed = false;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    outputClosed = true;
    // A closed pipe is the reader's choice, not a failure; anything else (a full disk) is,
    // reported once (a file's stream reports each failed write).
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED' || reportedByWriter.has(err) || writeFailed) return;
    writeFailed = true;
    const failure = typeof err.errno === 'number' ? systemError(err.errno, 'write', 'stdout')
      : new IpcError('ERR_IPC_INTERNAL', `Writing to stdout failed: ${err.message}`);
    process.exitCode = reportFailure(failure, json);
  });
  let path = rootPath;
  let command: Command = root;
  let rest = argv;
  try {
    if (rest[0] === '--version' || rest[0] === '-V') {
      if (rest.length > 1 && !(rest.length === 2 && rest[1] === '--json')) throw usageError(`${path} ${rest[0]} takes no arguments (but --json).`);
      const version = packageVersion();
      process.stdout.write(json ? `${jsonText({ version })}\n` : `${rootPath} ${version}\n`);
      return 0;
    }
    while (isGroup(command)) {
      const [first, ...others] = rest;
      if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
        process.stdout.write(`${groupHelp(command, path)}\n`);
        return first === undefined ? 2 : 0;
      }
      const child: Command | undefined = command.children.find((c) => c.name === first);
      if (child === undefined) {
        throw usageError(`Unknown command "${first}" for ${path}. Run "${path} --help" to see the commands.`);
      }
      command = child;
      path = `${path} ${first}`;
      rest = others;
    }
    const leaf: Leaf = command;
    let parsed;
    try {
      parsed = parseArgs({
        // A negative number (a process group: -1234) is an argument, not an option.
        args: rest.map((arg) => (NEGATIVE_NUMBER.test(arg) ? `${NEGATIVE_MARK}${arg}` : arg)),
        options: Object.fromEntries(Object.entries({ ...leaf.options, ...COMMON_OPTIONS })
          .map(([name, spec]) => [name, spec.short ? { type: spec.type, short: spec.short } : { type: spec.type }])),
        allowPositionals: true,
        strict: true,
      });
    } catch (err) {
      throw usageError(`${(err as Error).message.replace(/\.?$/, '.')} Run "${path} --help" for the options.`);
    }
    json = parsed.values.json === true;
    if (parsed.values.help) {
      process.stdout.write(`${leafHelp(leaf, path)}\n`);
      return 0;
    }
    const positionals = parsed.positionals.map(unmark);
    const values = Object.fromEntries(Object.entries(parsed.values)
      .map(([name, value]) => [name, typeof value === 'string' ? unmark(value) : value]));
    const count = positionals.length;
    if (count < leaf.minArgs || count > leaf.maxArgs) {
      throw usageError(`${path} takes ${leaf.args || 'no arguments'}; got ${count} argument${count === 1 ? '' : 's'}. Run "${path} --help".`);
    }
    await leaf.run({
      positionals,
      values: values as Record<string, string | boolean | undefined>,
      json,
      path,
    });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    return reportFailure(err, json);
  }
}

/** An integer option, or `fallback` when absent; a usage error otherwise. */
export function intOption(ctx: CommandContext, name: string, min: number, max: number, fallback?: number): number | undefined {
  const raw = ctx.values[name];
  return raw === undefined ? fallback : parseInteger(String(raw), name, min, max);
}

/** `text` (decimal or 0x hex) as an integer of option `--name`, from `min` to `max`; a usage error otherwise. */
export function parseInteger(text: string, name: string, min: number, max: number): number {
  const value = /^-?0x[0-9a-f]+$/i.test(text) ? Number.parseInt(text, 16)
    : /^-?[0-9]+$/.test(text) ? Number.parseInt(text, 10) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw usageError(`--${name} must be an integer from ${min} to ${max}; got "${text}".`);
  }
  return value;
}

/** The wait of a command that takes `--nonblock` and `--timeout MS` (one or the other), as `{ timeout }` options. */
export function waitOption(ctx: CommandContext): { timeout?: number } {
  const timeout = intOption(ctx, 'timeout', 0, 2 ** 31 - 1);
  if (ctx.values.nonblock === true && timeout !== undefined) throw usageError('Use either --nonblock or --timeout, not both.');
  return timeout === undefined ? {} : { timeout };
}

/** `--owner`, for the commands that open an object that exists already. */
export const OWNER_OPTION: OptionSpec = {
  type: 'string', value: 'UID|any', description: 'accept an object this user owns (default: only your own; any: every owner)',
};

/** The --owner value: a uid, 'any', or undefined (the library's default: this process's user). */
export function ownerOption(ctx: CommandContext): OwnerOption | undefined {
  return ctx.values.owner === 'any' ? 'any' : intOption(ctx, 'owner', 0, 0xfffffffe);
}

/** A permission mode option in octal (`600`, `0600`, `0o600`), or `fallback`. */
export function modeOption(ctx: CommandContext, fallback: number): number {
  const raw = ctx.values.mode;
  if (raw === undefined) return fallback;
  const text = String(raw);
  if (!/^(0o)?[0-7]{1,4}$/.test(text) || Number.parseInt(text.replace(/^0o/, ''), 8) > 0o777) {
    throw usageError(`--mode must be octal permission bits such as 600 or 0640; got "${text}".`);
  }
  return Number.parseInt(text.replace(/^0o/, ''), 8);
}

/**
 * Prints what a `stat` verb describes, one field a line: modes in octal, keys
 * as ipcs prints them, and `limits` (if any) as one last line.
 */
export function printFields(info: Record<string, unknown>): void {
  const fields = Object.entries(info).filter(([key]) => key !== 'limits');
  const width = Math.max(16, ...fields.map(([key]) => key.length));
  for (const [key, value] of fields) {
    const shown = key === 'mode' ? `0${(value as number).toString(8)}` : key === 'key' ? formatKey(value as number) : String(value);
    process.stdout.write(`${key.padEnd(width)} ${shown}\n`);
  }
  const limits = info.limits as Record<string, unknown> | undefined;
  if (limits !== undefined) process.stdout.write(`${'kernel limits'.padEnd(width)} ${Object.entries(limits).map(([k, v]) => `${k}=${v ?? '?'}`).join(' ')}\n`);
}

/**
 * Runs `handler` instead of the default action when the command is asked to
 * stop: SIGINT (Ctrl-C), SIGTERM, or SIGHUP (its terminal went away).
 * Returns the function that gives the signals their actions back.
 */
export function onStopSignals(handler: (info: SignalInfo) => void): () => void {
  const removers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => onSignal(sig, handler));
  return () => {
    for (const remove of removers) remove();
  };
}

/**
 * JSON text that is also safe on a terminal: besides what JSON.stringify
 * escapes, DEL and the C1 controls (U+007F-U+009F), which some terminals
 * obey as escape sequences, and U+2028/U+2029. Names come from other users:
 * a queue named with ESC [ ... must not drive the reader's terminal.
 */
export function jsonText(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Writes one JSON value as a line. */
export function printJson(value: unknown): void {
  process.stdout.write(`${jsonText(value)}\n`);
}

/**
 * Writes to stdout and waits until the write is done (the bytes are in the
 * kernel's hands); resolves to the error if it failed. `report: 'caller'`:
 * the caller reports a failure itself, else it is reported as the command's
 * failure (exit 1), unless the reader merely left (EPIPE).
 */
export function writeOut(data: string | Uint8Array, { report = 'command' }: { report?: 'caller' | 'command' } = {}):
  Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    process.stdout.write(data, (err) => {
      if (err) {
        outputClosed = true;
        // Before the stream's 'error' event, which comes on a later tick.
        if (report === 'caller') reportedByWriter.add(err);
      }
      resolve(err ?? undefined);
    });
  });
}

/** Bytes as JSON-friendly text: UTF-8 when it round-trips, base64 otherwise. */
export function bytesForJson(bytes: Uint8Array): { data: string; encoding?: 'base64' } {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = buffer.toString('utf8');
  return Buffer.from(text, 'utf8').equals(buffer) ? { data: text } : { data: buffer.toString('base64'), encoding: 'base64' };
}

/** Reads all of stdin. */
export async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** What `ipckit rm` and each noun's `rm` remove, by `--kind`, with how they are named in output. */
export const REMOVABLE_KINDS = {
  mq: 'message queue', shm: 'shared memory segment', channel: 'channel', sem: 'semaphore', fifo: 'FIFO', socket: 'stale socket file',
} as const;
export type RemovableKind = keyof typeof REMOVABLE_KINDS;

/** What every rm prints: `removed ADDRESS (kind)`, or with --json `{ "removed", "kind" }`. */
export function printRemoved(ctx: CommandContext, address: string, kind: RemovableKind): void {
  if (ctx.json) printJson({ removed: address, kind });
  else process.stdout.write(`removed ${address} (${REMOVABLE_KINDS[kind]})\n`);
}

/** The `rm <address>` verb of a mechanism: `remove` destroys the object of `kind` at a command-line address. */
export function removeVerb(kind: RemovableKind, summary: string, addressHelp: string, remove: (address: string) => void): Leaf {
  return {
    name: 'rm',
    summary,
    args: '<address>',
    minArgs: 1,
    maxArgs: 1,
    details: addressHelp,
    options: {},
    async run(ctx) {
      const address = ctx.positionals[0]!;
      remove(address);
      printRemoved(ctx, address, kind);
    },
  };
}
