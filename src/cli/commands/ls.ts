/**
 * `ipckit ls` and `ipckit rm`: every IPC object on this machine, and
 * removing one by address.
 * @internal
 * @module
 */
import { existsSync, lstatSync } from 'node:fs';
import { E, IpcError } from '../../errors.js';
import { Fifo } from '../../fifo.js';
import { type ParsedAddress, parseAddress } from '../../internal/address.js';
import { PosixMessageQueue, SysvMessageQueue } from '../../message-queue.js';
import { PosixSharedMemory, SysvSharedMemory } from '../../shared-memory.js';
import { type IpcObjectInfo, type IpcProcessRef, isNamedSemaphore, isSocketFile, listIpcObjects, readChannelHeader, removeStaleSocket } from '../../inventory.js';
import { SemaphoreSet } from '../../semaphore.js';
import { type Leaf, REMOVABLE_KINDS, type RemovableKind, printJson, printRemoved, usageError } from '../program.js';
import { removeChannel } from './channel.js';
import { removeQueue } from './mq.js';
import { isNatsAddress, natsRemove } from './mq-nats.js';
import { removeSemaphore } from './sem.js';
import { removeSegment } from './shm.js';

/**
 * The PROCESSES cell of `ipckit ls`, and of `ipckit watch`, which passes
 * `command` to show each live process's command after its pid.
 */
export function processesCell<P extends IpcProcessRef>(o: Omit<IpcObjectInfo, 'processes'> & { processes: P[] }, command?: (p: P) => string | null): string {
  const label = {
    holder: 'open', creator: 'created', 'last-send': 'sent', 'last-receive': 'recv', 'last-attach': 'last', 'last-op': 'op',
    producer: 'producer', consumer: 'consumer',
  } as const;
  const refs = o.processes.map((p) => {
    const name = p.alive ? command?.(p) : undefined;
    return `${label[p.role]}:${p.pid}${!p.alive ? '(dead)' : name ? `(${printable(name)})` : ''}`;
  });
  if (o.attachments !== undefined) refs.unshift(`attached:${o.attachments}`);
  // A semaphore's state first: a named one's value and waiters, a set's size.
  if (o.semaphores !== undefined) refs.unshift(`sems:${o.semaphores}`);
  if (o.kind === 'posix-sem') refs.unshift(`value:${o.value ?? '?'} waiters:${o.waiters ?? '?'}`);
  // A socket's state first, and for a listener the connections waiting and accepted.
  if (o.pending) refs.unshift(`pending:${o.pending}`);
  if (o.connections) refs.unshift(`conns:${o.connections}`);
  if (o.state !== undefined) refs.unshift(o.state);
  return refs.length === 0 ? '-' : refs.join(' ');
}

/** What follows an address in the table: a POSIX object or socket whose name is gone, a stale socket file. */
export function addressNote(o: IpcObjectInfo): string {
  return o.deleted ? ' (deleted)' : o.stale ? ' (stale)' : '';
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

/** Rows as columns two spaces apart, each padded to its widest cell (the last one is not padded). */
export function table(rows: string[][]): string {
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
    'them open.\n' +
    'A POSIX segment that holds a channel is listed as a channel: MESSAGES and BYTES are its depth (messages\n' +
    'sent and not received, and the ring bytes they take), and PROCESSES names the threads holding its roles\n' +
    '(producer:TID, consumer:TID; a process\'s main thread id is its pid) before the processes mapping it.\n' +
    'A POSIX named semaphore (/name: the file /dev/shm/sem.name) shows its value and waiters (value:N\n' +
    'waiters:N, read from the file), then the processes mapping it. A System V semaphore set shows how many\n' +
    'semaphores it has (sems:N) and the processes the kernel names as the last to change one of them (op:PID).\n' +
    'Unix sockets bound to a path or an abstract name (unix:/path, unix:@name; unix-dgram:, unix-seqpacket:)\n' +
    'are listed with their state (listening, bound, connected), a listener\'s accepted connections (conns:N)\n' +
    'and those waiting to be accepted (pending:N), and the processes holding them. A socket file no socket\n' +
    'is bound to any more is marked (stale): "ipckit rm" removes it. Stale files are looked for in the\n' +
    'directories of bound sockets and, three levels deep, in /tmp, /run, /dev/shm and $XDG_RUNTIME_DIR.\n' +
    'A socket whose file was removed or replaced is marked (deleted).\n' +
    '--json prints { "objects": [...], "notes": [...] }.',
  options: {},
  async run(ctx) {
    const inventory = listIpcObjects();
    if (ctx.json) {
      printJson(inventory);
      return;
    }
    const rows = [['KIND', 'ADDRESS', 'OWNER', 'MODE', 'MESSAGES', 'BYTES', 'PROCESSES']];
    for (const o of inventory.objects) {
      // Shared memory, semaphores, FIFOs and sockets have no message count; a segment's BYTES column is its size.
      const noDepth = o.kind === 'fifo' || o.kind.startsWith('unix') || o.kind.endsWith('-sem');
      const messages = o.size !== undefined || noDepth ? '-' : o.messages === null ? '?' : String(o.messages);
      const bytes = o.size ?? o.bytes;
      const shownBytes = bytes === null ? (noDepth ? '-' : '?') : String(bytes);
      const address = `${printable(o.address)}${addressNote(o)}`;
      rows.push([o.kind, address, printable(o.owner), `0${o.mode.toString(8)}`, messages, shownBytes, processesCell(o)]);
    }
    process.stdout.write(inventory.objects.length === 0 ? 'No IPC objects found.\n' : `${table(rows)}\n`);
    for (const note of inventory.notes) process.stdout.write(`note: ${note}\n`);
  },
};

const KINDS = REMOVABLE_KINDS;
type Kind = RemovableKind;

/** A Unix socket address: `unix:/path`, `unix-dgram:/path`, `unix-seqpacket:@name`... */
const SOCKET_ADDRESS = /^unix(-dgram|-seqpacket)?:/;

/** Whether `path` is a FIFO (a symbolic link to one is not: Fifo.unlink refuses those). */
function fifoAt(path: string): boolean {
  try {
    return lstatSync(path).isFIFO();
  } catch {
    return false;
  }
}

/**
 * The kinds of object that exist at a command-line address. `ipckit ls`
 * lists FIFOs by their absolute path, so an address starting with "/" may
 * also be a FIFO; one with more slashes than the leading one can only be.
 */
function kindsAt(address: string): Kind[] {
  if (SOCKET_ADDRESS.test(address)) return ['socket'];
  const kinds: Kind[] = address.startsWith('/') && fifoAt(address) ? ['fifo'] : [];
  if (address.startsWith('/') && isSocketFile(address)) kinds.push('socket');
  let parsed: ParsedAddress;
  try {
    parsed = parseAddress(address, 'IPC object');
  } catch (err) {
    if (!address.startsWith('/') || !(err instanceof IpcError) || err.code !== 'ERR_IPC_INVALID_ADDRESS') throw err;
    // A path: a FIFO, or something rm does not remove.
    if (kinds.length === 0 && existsSync(address)) {
      throw new IpcError('ERR_IPC_NOT_A_FIFO', `${address} is not an IPC object: ipckit rm removes message queues, shared memory segments, semaphores, FIFOs and stale socket files.`,
        { address });
    }
    return kinds;
  }
  for (const kind of ['mq', 'shm', 'sem'] as const) {
    try {
      if (kind === 'mq') {
        if (parsed.family === 'posix') PosixMessageQueue.open(parsed.name).close();
        else SysvMessageQueue.open(parsed.address).close();
      } else if (kind === 'sem') {
        // /name is the file /dev/shm/sem.name, which no segment or queue named /name shares.
        if (parsed.family === 'posix') {
          if (!isNamedSemaphore(parsed.name)) continue;
        } else {
          SemaphoreSet.open(parsed.address, { owner: 'any' }).close();
        }
      } else if (parsed.family === 'posix') {
        PosixSharedMemory.stat(parsed.name);
        // A segment that holds a channel is named as one (one this user cannot read stays a segment).
        if (readChannelHeader(parsed.name) !== undefined) {
          kinds.push('channel');
          continue;
        }
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

function removeAt(kind: Kind, address: string): void {
  if (kind === 'mq') removeQueue(address);
  else if (kind === 'shm') removeSegment(address);
  else if (kind === 'channel') removeChannel(address);
  else if (kind === 'sem') removeSemaphore(address);
  else if (kind === 'fifo') Fifo.unlink(address);
  else removeStaleSocket(SOCKET_ADDRESS.test(address) ? address : `unix:${address}`);
}

export const rmCommand: Leaf = {
  name: 'rm',
  summary: 'remove one IPC object by address',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: 'ADDRESS as "ipckit ls" prints it: /name, 0x1234, ftok:PATH:ID or id:N, the path of a FIFO, or a\n' +
    'socket file as unix:/path (or its plain absolute path).\n' +
    'A socket file is removed only when it is stale (no socket is bound to it any more: its server exited\n' +
    'without removing it); the kernel is asked just before. A live one is refused (EADDRINUSE, exit 1), and\n' +
    'so is an abstract name (unix:@name): it is no file, and vanishes when its socket closes.\n' +
    '--kind mq|shm|channel|sem|fifo|socket picks the kind when an address names several (a queue, a segment\n' +
    'or channel, a named semaphore, a FIFO and a socket file at /name may share it; a queue, a segment and\n' +
    'a semaphore set a System V key). A channel is a POSIX segment: --kind shm and --kind channel both\n' +
    'remove its name. A named semaphore /name is the file /dev/shm/sem.name.\n' +
    'A NATS mailbox, nats://HOST:PORT/NAME, is removed from its server as "ipckit mq rm" does (the stream\n' +
    'and its messages); --connect-timeout MS bounds the wait for the server (default 5000).',
  options: {
    kind: { type: 'string', value: 'KIND', description: 'mq, shm, channel, sem, fifo or socket (default: whichever exists)' },
    'connect-timeout': { type: 'string', value: 'MS', description: 'NATS: how long to try to reach the server (default 5000)' },
  },
  async run(ctx) {
    const address = ctx.positionals[0]!;
    const wanted = ctx.values.kind;
    if (wanted !== undefined && !Object.hasOwn(KINDS, String(wanted))) throw usageError(`--kind must be mq, shm, channel, sem, fifo or socket; got "${String(wanted)}".`);
    if (isNatsAddress(address)) {
      if (wanted !== undefined && wanted !== 'mq') throw usageError(`${address} is a NATS mailbox: --kind ${String(wanted)} does not apply (leave --kind out, or use --kind mq).`);
      return natsRemove(ctx);
    }
    if (ctx.values['connect-timeout'] !== undefined) throw usageError(`--connect-timeout applies to NATS mailboxes (nats://host:port/name); ${address} is none.`);
    if (wanted !== undefined && wanted !== 'socket' && SOCKET_ADDRESS.test(address)) {
      throw usageError(`${address} is a socket address: --kind ${String(wanted)} does not apply (leave --kind out, or use --kind socket).`);
    }
    const found = wanted === undefined ? kindsAt(address) : [wanted as Kind];
    if (found.length === 0) {
      throw new IpcError('ENOENT', `Nothing to remove at ${address}: no message queue, shared memory segment, semaphore or FIFO has this address. ` +
        'Run "ipckit ls" to see what exists.', { errno: E.ENOENT, address });
    }
    if (found.length > 1) {
      const named = found.map((k) => `a ${KINDS[k]}`);
      const what = named.length === 2 ? `both ${named[0]} and ${named[1]}` : `${named.slice(0, -1).join(', ')} and ${named.at(-1)}`;
      throw usageError(`${address} names ${what}: add ${found.map((k) => `--kind ${k}`).join(' or ')}.`);
    }
    const kind = found[0]!;
    removeAt(kind, address);
    printRemoved(ctx, address, kind);
  },
};
