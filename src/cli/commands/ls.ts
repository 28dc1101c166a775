/**
 * `ipckit ls` and `ipckit rm`: every IPC object on this machine, and
 * removing one by address.
 * @internal
 * @module
 */
import { E, IpcError } from '../../errors.js';
import { parseAddress } from '../../internal/address.js';
import { PosixMessageQueue, SysvMessageQueue } from '../../message-queue.js';
import { PosixSharedMemory, SysvSharedMemory } from '../../shared-memory.js';
import { type IpcObjectInfo, listIpcObjects } from '../../inventory.js';
import { type Leaf, printJson, usageError } from '../program.js';
import { removeQueue } from './mq.js';
import { removeSegment } from './shm.js';

function processes(o: IpcObjectInfo): string {
  const label = { holder: 'open', creator: 'created', 'last-send': 'sent', 'last-receive': 'recv', 'last-attach': 'last' } as const;
  const refs = o.processes.map((p) => `${label[p.role]}:${p.pid}${p.alive ? '' : '(dead)'}`);
  if (o.attachments !== undefined) refs.unshift(`attached:${o.attachments}`);
  return refs.length === 0 ? '-' : refs.join(' ');
}

/**
 * A name as the terminal should show it: control characters (a newline that
 * would forge a row, an escape sequence) and other non-printable ones as
 * escapes, and backslashes doubled so that escapes stay unambiguous.
 */
export function printable(text: string): string {
  return text.replace(/[\\\x00-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => {
    if (c === '\\') return '\\\\';
    const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\x1b': '\\e' };
    return named[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

export const lsCommand: Leaf = {
  name: 'ls',
  summary: 'list every IPC object on this machine (owner, mode, depth, processes)',
  args: '',
  minArgs: 0,
  maxArgs: 0,
  details: 'PROCESSES shows who holds a POSIX object open or mapped, who created and last used a System V\n' +
    'one (and how many processes are attached to a System V segment), and marks pids that no longer\n' +
    'exist with (dead). For shared memory, BYTES is the size. FIFOs are listed while some process has\n' +
    'them open. --json prints { "objects": [...], "notes": [...] }.',
  options: {},
  async run(ctx) {
    const inventory = listIpcObjects();
    if (ctx.json) {
      printJson(inventory);
      return;
    }
    const rows = [['KIND', 'ADDRESS', 'OWNER', 'MODE', 'MESSAGES', 'BYTES', 'PROCESSES']];
    for (const o of inventory.objects) {
      // Shared memory and FIFOs have no message count; a segment's BYTES column is its size.
      const messages = o.size !== undefined || o.kind === 'fifo' ? '-' : o.messages === null ? '?' : String(o.messages);
      const bytes = o.size ?? o.bytes;
      const shownBytes = bytes === null ? (o.kind === 'fifo' ? '-' : '?') : String(bytes);
      const address = `${printable(o.address)}${o.deleted ? ' (deleted)' : ''}`;
      rows.push([o.kind, address, printable(o.owner), `0${o.mode.toString(8)}`, messages, shownBytes, processes(o)]);
    }
    process.stdout.write(inventory.objects.length === 0 ? 'No IPC objects found.\n' : `${table(rows)}\n`);
    for (const note of inventory.notes) process.stdout.write(`note: ${note}\n`);
  },
};

const KINDS = { mq: 'message queue', shm: 'shared memory segment' } as const;
type Kind = keyof typeof KINDS;

/** The kinds of object that exist at a command-line address. */
function kindsAt(address: string): Kind[] {
  const parsed = parseAddress(address, 'IPC object');
  const kinds: Kind[] = [];
  for (const kind of Object.keys(KINDS) as Kind[]) {
    try {
      if (kind === 'mq') {
        if (parsed.family === 'posix') PosixMessageQueue.open(parsed.name).close();
        else SysvMessageQueue.open(parsed.address).close();
      } else if (parsed.family === 'posix') {
        PosixSharedMemory.stat(parsed.name);
      } else {
        SysvSharedMemory.stat(parsed.address);
      }
      kinds.push(kind);
    } catch (err) {
      // Exists but not ours to open: still a candidate.
      if (err instanceof IpcError && err.code === 'EACCES') kinds.push(kind);
    }
  }
  return kinds;
}

export const rmCommand: Leaf = {
  name: 'rm',
  summary: 'remove one IPC object by address',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: 'ADDRESS as "ipckit ls" prints it: /name, 0x1234, ftok:PATH:ID or id:N.\n' +
    '--kind mq|shm picks the kind when an address names several (a queue and a segment may share a name or key).',
  options: {
    kind: { type: 'string', value: 'KIND', description: 'mq or shm (default: whichever exists)' },
  },
  async run(ctx) {
    const address = ctx.positionals[0]!;
    const wanted = ctx.values.kind;
    if (wanted !== undefined && !(String(wanted) in KINDS)) throw usageError(`--kind must be mq or shm; got "${String(wanted)}".`);
    const found = wanted === undefined ? kindsAt(address) : [wanted as Kind];
    if (found.length === 0) {
      throw new IpcError('ENOENT', `Nothing to remove at ${address}: no message queue or shared memory segment has this address. Run "ipckit ls" to see what exists.`,
        { errno: E.ENOENT, address });
    }
    if (found.length > 1) throw usageError(`${address} names both a message queue and a shared memory segment: add --kind mq or --kind shm.`);
    const kind = found[0]!;
    if (kind === 'mq') removeQueue(address);
    else removeSegment(address);
    if (ctx.json) printJson({ removed: address, kind });
    else process.stdout.write(`removed ${address} (${KINDS[kind]})\n`);
  },
};
