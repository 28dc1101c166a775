/**
 * Addresses of IPC objects: POSIX names (`/jobs`), System V keys (`0x1234`,
 * `4660`, `{ path, projectId }`) and System V identifiers (`{ id }`).
 * @internal
 * @module
 */
import { IpcError, systemError } from '../errors.js';
import { native } from '../native.js';
import { describe, isWellFormed } from './validate.js';

/** Longest POSIX IPC name after the leading slash, in bytes (NAME_MAX). */
export const POSIX_NAME_MAX = 255;

/**
 * A System V address: a key as a number (`0x1234`) or a string (`'0x1234'`,
 * `'4660'`), an ftok pair `{ path, projectId }`, or an existing object's
 * identifier `{ id }` (what `ipcs` and `ipckit ls` print).
 */
export type SysvAddress = number | string | {
  /** An existing file: ftok derives the key from its inode and device. */
  path: string;
  /** 1 to 255; ftok keeps its low 8 bits. */
  projectId: number;
} | {
  /** The identifier the kernel assigned (`msqid`, `shmid`, `semid`). */
  id: number;
};

/** A resolved System V address: either a key or an identifier. */
export type SysvTarget = { key: number; id?: undefined; label: string } | { id: number; key?: undefined; label: string };

function invalidAddress(message: string, address?: string): IpcError {
  return new IpcError('ERR_IPC_INVALID_ADDRESS', message, address === undefined ? {} : { address });
}

/** Validates a POSIX IPC name such as `/jobs`. */
export function checkPosixName(name: unknown, kind: string, max = POSIX_NAME_MAX): string {
  const example = `e.g. "/jobs"`;
  if (typeof name !== 'string') {
    throw invalidAddress(`A POSIX ${kind} name must be a string starting with "/" (${example}); got ${typeof name}.`);
  }
  const shown = JSON.stringify(name.length > 60 ? `${name.slice(0, 60)}…` : name);
  if (!name.startsWith('/')) {
    throw invalidAddress(`Invalid POSIX ${kind} name ${shown}: it must start with "/" (${example}).`, name);
  }
  const rest = name.slice(1);
  if (rest.length === 0 || rest === '.' || rest === '..') {
    throw invalidAddress(`Invalid POSIX ${kind} name ${shown}: it needs at least one character after "/" and cannot be "." or "..".`, name);
  }
  if (rest.includes('/')) {
    throw invalidAddress(`Invalid POSIX ${kind} name ${shown}: only the leading character may be "/".`, name);
  }
  if (rest.includes('\0')) {
    throw invalidAddress(`Invalid POSIX ${kind} name ${shown}: it contains a NUL character.`, name);
  }
  if (!isWellFormed(rest)) {
    throw invalidAddress(`Invalid POSIX ${kind} name ${shown}: it contains a lone UTF-16 surrogate, which has no UTF-8 form ` +
      '(it would become U+FFFD, and two different names would open one object).', name);
  }
  if (Buffer.byteLength(rest) > max) {
    throw invalidAddress(`Invalid POSIX ${kind} name ${shown}: at most ${max} bytes may follow the "/".`, name);
  }
  return name;
}

/** A System V key as `ipcs` prints it: `formatKey(0x1234)` is `'0x00001234'`. */
export function formatKey(key: number): string {
  return `0x${key.toString(16).padStart(8, '0')}`;
}

const KEY_HELP = 'a System V key is a number from 1 to 0xffffffff (0x1234, "0x1234" or "4660"), ' +
  '{ path, projectId } for ftok, or { id } for an existing object';

function checkKey(key: number, shown: string): number {
  if (!Number.isInteger(key) || key < 1 || key > 0xffffffff) {
    const why = key === 0 ? ' (0 is IPC_PRIVATE, which no other process can open by key)' : '';
    throw invalidAddress(`Invalid System V key ${shown}${why}: ${KEY_HELP}.`, shown);
  }
  return key;
}

/** Resolves a {@link SysvAddress}; an ftok pair is turned into its key here. */
export function resolveSysvAddress(address: unknown): SysvTarget {
  if (typeof address === 'number') {
    const key = checkKey(address, String(address));
    return { key, label: formatKey(key) };
  }
  if (typeof address === 'string') {
    const text = address.trim();
    const key = /^0x[0-9a-f]{1,8}$/i.test(text) ? parseInt(text.slice(2), 16)
      : /^[0-9]{1,10}$/.test(text) ? parseInt(text, 10) : NaN;
    if (Number.isNaN(key)) throw invalidAddress(`Invalid System V key ${JSON.stringify(address)}: ${KEY_HELP}.`, address);
    return { key: checkKey(key, JSON.stringify(address)), label: formatKey(key) };
  }
  if (address !== null && typeof address === 'object') {
    const record = address as Record<string, unknown>;
    if ('id' in record) {
      const id = record.id;
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0x7fffffff) {
        throw invalidAddress(`Invalid System V identifier ${describe(id)}: it must be an integer from 0 to 2147483647.`);
      }
      return { id, label: `id ${id}` };
    }
    const { path, projectId } = record;
    if (typeof path !== 'string' || path.length === 0 || path.includes('\0') || !isWellFormed(path)) {
      throw invalidAddress(`Invalid ftok path ${describe(path)}: it must name an existing file (no NUL, no lone UTF-16 surrogate).`);
    }
    if (typeof projectId !== 'number' || !Number.isInteger(projectId) || projectId < 1 || projectId > 255) {
      throw invalidAddress(`Invalid ftok projectId ${describe(projectId)}: it must be an integer from 1 to 255 (ftok keeps only its low 8 bits).`, path);
    }
    const key = native.ftok(path, projectId);
    if (key < 0) {
      throw systemError(key, 'ftok', `${path}:${projectId}`, 'ftok derives the key from the file\'s inode: the path must exist and stay the same file.');
    }
    return { key, label: `${formatKey(key)} (ftok ${path}:${projectId})` };
  }
  throw invalidAddress(`Invalid System V address ${describe(address)}: ${KEY_HELP}.`);
}

/** What a command-line address names. */
export type ParsedAddress =
  | { family: 'posix'; name: string }
  | { family: 'sysv'; address: SysvAddress };

/**
 * Parses a command-line address: `/name` (POSIX), `0x1234` or `4660`
 * (System V key), `ftok:PATH:ID`, or `id:N` (System V identifier).
 */
export function parseAddress(text: string, kind: string): ParsedAddress {
  if (text.startsWith('/')) return { family: 'posix', name: checkPosixName(text, kind) };
  // Any character in the path, line breaks included: the last ":ID" ends it.
  const ftok = /^ftok:([^]+):([0-9]+)$/.exec(text);
  if (ftok) return { family: 'sysv', address: { path: ftok[1]!, projectId: Number(ftok[2]) } };
  const id = /^id:([0-9]+)$/.exec(text);
  if (id) return { family: 'sysv', address: { id: Number(id[1]) } };
  if (/^(0x[0-9a-f]+|[0-9]+)$/i.test(text)) return { family: 'sysv', address: text };
  throw invalidAddress(`Cannot tell what ${JSON.stringify(text)} names: use /name for a POSIX ${kind}, ` +
    '0x1234 or 4660 for a System V key, ftok:PATH:ID, or id:N for a System V identifier.', text);
}
