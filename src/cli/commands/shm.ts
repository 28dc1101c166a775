/**
 * `ipckit shm create|read|write|stat|rm <address>`: shared-memory segments
 * from the shell. `/name` is POSIX; `0x1234`, `4660`, `ftok:PATH:ID` and
 * `id:N` are System V.
 * @internal
 * @module
 */
import { parseAddress } from '../../internal/address.js';
import { PosixSharedMemory, SharedMemory, SysvSharedMemory } from '../../shared-memory.js';
import {
  OWNER_OPTION, type CommandContext, type Group, type Leaf, intOption, modeOption, ownerOption, printFields, printJson, readStdin, removeVerb, usageError, writeOut,
} from '../program.js';

const ADDRESS_HELP = 'ADDRESS: /name for a POSIX segment; 0x1234, 4660, ftok:PATH:ID or id:N for a System V segment.';

function open(address: string, readOnly: boolean, ctx: CommandContext): SharedMemory {
  const parsed = parseAddress(address, 'shared memory segment');
  const owner = ownerOption(ctx);
  return parsed.family === 'posix'
    ? PosixSharedMemory.open(parsed.name, { readOnly, owner })
    : SysvSharedMemory.open(parsed.address, { readOnly, owner });
}

/** stat of the segment at a command-line address, without attaching it. */
function describe(address: string): Record<string, unknown> {
  const parsed = parseAddress(address, 'shared memory segment');
  if (parsed.family === 'posix') {
    const s = PosixSharedMemory.stat(parsed.name);
    return { family: 'posix', name: parsed.name, ...s, changeTime: s.changeTime.toISOString() };
  }
  const s = SysvSharedMemory.stat(parsed.address);
  return {
    family: 'sysv', ...s,
    lastAttachTime: s.lastAttachTime?.toISOString() ?? null,
    lastDetachTime: s.lastDetachTime?.toISOString() ?? null,
    changeTime: s.changeTime.toISOString(),
  };
}

/** Hex dump lines: offset, 16 bytes, printable characters. */
function hexDump(bytes: Uint8Array, base: number): string {
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = bytes.subarray(i, i + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const text = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${(base + i).toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${text}`);
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

const create: Leaf = {
  name: 'create',
  summary: 'create a segment of --size bytes (fails if it exists)',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: ADDRESS_HELP,
  options: {
    size: { type: 'string', value: 'BYTES', description: 'size in bytes (required)' },
    mode: { type: 'string', value: 'OCTAL', description: 'permission bits, e.g. 600 (default 600)' },
  },
  async run(ctx) {
    const size = intOption(ctx, 'size', 1, Number.MAX_SAFE_INTEGER);
    if (size === undefined) throw usageError('shm create needs --size BYTES.');
    const mode = modeOption(ctx, 0o600);
    const address = ctx.positionals[0]!;
    const parsed = parseAddress(address, 'shared memory segment');
    const segment = parsed.family === 'posix'
      ? PosixSharedMemory.create(parsed.name, { size, mode })
      : SysvSharedMemory.create(parsed.address, { size, mode });
    segment.close();
    if (ctx.json) printJson(describe(address));
    else process.stdout.write(`created ${segment.address} (${size} bytes)\n`);
  },
};

const write: Leaf = {
  name: 'write',
  summary: 'write text (or stdin with -) into a segment at --offset',
  args: '<address> <text|->',
  minArgs: 2,
  maxArgs: 2,
  details: ADDRESS_HELP,
  options: {
    offset: { type: 'string', value: 'O', description: 'byte offset (default 0)' },
    owner: OWNER_OPTION,
  },
  async run(ctx) {
    const [address, text] = ctx.positionals as [string, string];
    const offset = intOption(ctx, 'offset', 0, Number.MAX_SAFE_INTEGER, 0)!;
    using segment = open(address, false, ctx);
    const data = text === '-' ? await readStdin() : Buffer.from(text, 'utf8');
    segment.write(data, offset);
    if (ctx.json) printJson({ written: data.length, offset });
  },
};

const read: Leaf = {
  name: 'read',
  summary: 'print bytes of a segment (up to the first zero byte unless --length)',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: `${ADDRESS_HELP}\nWithout --length, reads from --offset up to the first zero byte (text written by "shm write").`,
  options: {
    offset: { type: 'string', value: 'O', description: 'byte offset (default 0)' },
    length: { type: 'string', value: 'L', description: 'bytes to read' },
    hex: { type: 'boolean', description: 'print a hex dump' },
    owner: OWNER_OPTION,
  },
  async run(ctx) {
    const offset = intOption(ctx, 'offset', 0, Number.MAX_SAFE_INTEGER, 0)!;
    const length = intOption(ctx, 'length', 0, Number.MAX_SAFE_INTEGER);
    using segment = open(ctx.positionals[0]!, true, ctx);
    let bytes: Buffer;
    if (length === undefined) {
      const rest = segment.read(offset);
      const end = rest.indexOf(0);
      bytes = end < 0 ? rest : rest.subarray(0, end);
    } else {
      bytes = segment.read(offset, length);
    }
    if (ctx.json) printJson({ offset, length: bytes.length, data: bytes.toString('base64'), encoding: 'base64' });
    else await writeOut(ctx.values.hex ? hexDump(bytes, offset) : bytes);
  },
};

const stat: Leaf = {
  name: 'stat',
  summary: 'show size, owner and mode (System V: attachments, creator and last pids, times)',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: ADDRESS_HELP,
  options: {},
  async run(ctx) {
    const info = describe(ctx.positionals[0]!);
    if (ctx.json) printJson(info);
    else printFields(info);
  },
};

const rm = removeVerb('shm', 'remove a segment (POSIX: unlink the name; System V: IPC_RMID, it dies at the last detach)', ADDRESS_HELP, removeSegment);

/** Removes the segment at a command-line address. */
export function removeSegment(address: string): void {
  const parsed = parseAddress(address, 'shared memory segment');
  if (parsed.family === 'posix') PosixSharedMemory.unlink(parsed.name);
  else SysvSharedMemory.remove(parsed.address);
}

export const shmCommand: Group = {
  name: 'shm',
  summary: 'shared memory: POSIX (/name) and System V (keys) segments',
  details: ADDRESS_HELP,
  children: [create, write, read, stat, rm],
};
