/**
 * Kernel limits read from /proc, so errors can name the setting and its
 * current value.
 * @internal
 * @module
 */
import { readFileSync } from 'node:fs';
import { E, type IpcError, limitError, systemError } from '../errors.js';

/** A number from a /proc file, or undefined if it cannot be read. */
export function readProcNumber(file: string): number | undefined {
  try {
    const value = Number(readFileSync(file, 'utf8').trim());
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** `name (now N)` for a sysctl file, for error messages. */
export function describeSetting(file: string): string {
  const value = readProcNumber(file);
  return value === undefined ? file : `${file} (now ${value})`;
}

/** A soft resource limit from /proc/self/limits, e.g. "Max msgqueue size". */
export function readResourceLimit(label: string): number | undefined {
  try {
    for (const line of readFileSync('/proc/self/limits', 'utf8').split('\n')) {
      if (line.startsWith(label)) {
        const soft = line.slice(label.length).trim().split(/\s+/)[0];
        return soft === 'unlimited' ? Infinity : Number(soft);
      }
    }
  } catch {
    /* Not Linux procfs: the caller words its message without the value. */
  }
  return undefined;
}

const CAP_SYS_RESOURCE = 24n;

/** Whether this process holds CAP_SYS_RESOURCE, which lifts the per-user IPC limits. */
export function hasSysResource(): boolean {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    return hex !== undefined && ((BigInt(`0x${hex}`) >> CAP_SYS_RESOURCE) & 1n) === 1n;
  } catch {
    return false;
  }
}

/** The error of a call that needed a new descriptor: `ERR_IPC_LIMIT` naming the limits for EMFILE/ENFILE, else the errno. */
export function descriptorError(errno: number, syscall: string, address: string | undefined): IpcError {
  return errno === E.EMFILE || errno === E.ENFILE
    ? limitError(errno, syscall, address, 'no descriptor is free (ulimit -n, or fs.file-max for the system).')
    : systemError(errno, syscall, address);
}
