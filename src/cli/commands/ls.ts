/**
 * `ipckit ls` and `ipckit rm`: every IPC object on this machine, and
 * removing one by address.
 * @internal
 * @module
 */
import { IpcError } from '../../errors.js';
import { type IpcObjectInfo, listIpcObjects } from '../../inventory.js';
import { type Leaf, printJson, usageError } from '../program.js';
import { removeQueue } from './mq.js';

function processes(o: IpcObjectInfo): string {
  if (o.processes.length === 0) return '-';
  const label = { holder: 'open', 'last-send': 'sent', 'last-receive': 'recv' } as const;
  return o.processes.map((p) => `${label[p.role]}:${p.pid}${p.alive ? '' : '(dead)'}`).join(' ');
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
  details: 'PROCESSES shows who holds a POSIX object open and who last used a System V one, and\n' +
    'marks pids that no longer exist with (dead). --json prints { "objects": [...], "notes": [...] }.',
  options: {},
  async run(ctx) {
    const inventory = listIpcObjects();
    if (ctx.json) {
      printJson(inventory);
      return;
    }
    const rows = [['KIND', 'ADDRESS', 'OWNER', 'MODE', 'MESSAGES', 'BYTES', 'PROCESSES']];
    for (const o of inventory.objects) {
      rows.push([o.kind, o.address, o.owner, `0${o.mode.toString(8)}`, o.messages === null ? '?' : String(o.messages),
        o.bytes === null ? '?' : String(o.bytes), processes(o)]);
    }
    process.stdout.write(inventory.objects.length === 0 ? 'No IPC objects found.\n' : `${table(rows)}\n`);
    for (const note of inventory.notes) process.stdout.write(`note: ${note}\n`);
  },
};

export const rmCommand: Leaf = {
  name: 'rm',
  summary: 'remove one IPC object by address',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: 'ADDRESS as "ipckit ls" prints it: /name, 0x1234, ftok:PATH:ID or id:N.\n--kind picks the kind when an address could name several.',
  options: {
    kind: { type: 'string', value: 'KIND', description: 'mq (the only kind so far, and the default)' },
  },
  async run(ctx) {
    const kind = ctx.values.kind ?? 'mq';
    if (kind !== 'mq') throw usageError(`--kind must be "mq"; got "${String(kind)}".`);
    const address = ctx.positionals[0]!;
    try {
      removeQueue(address);
    } catch (err) {
      if (err instanceof IpcError && err.code === 'ENOENT') {
        throw new IpcError('ENOENT', `Nothing to remove at ${address}: no such message queue. Run "ipckit ls" to see what exists.`,
          { errno: err.errno, address });
      }
      throw err;
    }
    if (ctx.json) printJson({ removed: address, kind });
    else process.stdout.write(`removed ${address}\n`);
  },
};
