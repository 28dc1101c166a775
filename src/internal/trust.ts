/**
 * Whether an existing object may be trusted: the defence against squatting.
 *
 * Names of POSIX queues and segments, System V keys and FIFO paths are
 * shared by every user of the machine. Another user can create the object
 * first, with a mode that lets them in, and wait: a program that opens it
 * then sends its messages to them, or maps memory they write. So opening an
 * existing object checks that it belongs to the expected user (by default
 * the calling process's effective uid) and, when the caller asks for a mode
 * (`openOrCreate` with `mode`), that the object grants nobody more than that.
 * @internal
 * @module
 */
import { IpcError } from '../errors.js';
import { invalidArgument } from './validate.js';

/** The uid that must own an existing object, or `'any'` to accept every owner. */
export type OwnerOption = number | 'any';

/** The option `owner` of the opens: the process's effective uid when absent. */
export function checkOwner(value: unknown): OwnerOption {
  if (value === undefined) return process.geteuid!();
  if (value === 'any') return value;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xfffffffe) {
    throw invalidArgument('owner', value, "a uid (an integer from 0 to 4294967294) or 'any'");
  }
  return value;
}

/** What is known of an existing object. */
export interface Ownership {
  /** The owner's uid. */
  uid: number;
  /** System V only: the creator's uid, which may change the owner and mode at any time. */
  cuid?: number;
  /** Permission bits. */
  mode: number;
}

const octal = (mode: number): string => `0${mode.toString(8).padStart(3, '0')}`;

/**
 * Refuses an existing object with `ERR_IPC_UNTRUSTED` unless `owner` owns
 * (and, for System V, created) it and, when `mode` is given, it grants no
 * permission outside `mode`.
 */
export function verifyOwnership(found: Ownership, owner: OwnerOption, mode: number | undefined, address: string, kind: string): void {
  if (owner !== 'any') {
    const stranger = found.uid !== owner ? found.uid : found.cuid !== undefined && found.cuid !== owner ? found.cuid : undefined;
    if (stranger !== undefined) {
      const role = stranger === found.uid ? 'belongs to' : 'was created by';
      throw new IpcError('ERR_IPC_UNTRUSTED',
        `The ${kind} ${address} already exists and ${role} uid ${stranger}, not uid ${owner}. Another user may have created it first ` +
        'to read or alter what you exchange through it (squatting); it was not used. If that user is meant to own it, pass ' +
        `{ owner: ${stranger} } (or { owner: 'any' }); otherwise have it removed, or use another name.`,
        { address });
    }
  }
  if (mode !== undefined && (found.mode & ~mode & 0o777) !== 0) {
    throw new IpcError('ERR_IPC_UNTRUSTED',
      `The ${kind} ${address} already exists with mode ${octal(found.mode & 0o777)}, which grants more than the ${octal(mode)} asked for: ` +
      'others may be able to use it. It was not used. Ask for the mode it has, or remove it and create it again.',
      { address });
  }
}
