/**
 * Validation at the TypeScript boundary. Every check names the option and
 * says what would be accepted.
 * @internal
 * @module
 */
import { IpcError } from '../errors.js';

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

export function invalidArgument(name: string, value: unknown, expected: string): IpcError {
  return new IpcError('ERR_IPC_INVALID_ARGUMENT', `${name} must be ${expected}; got ${describe(value)}.`);
}

/** An integer in [min, max]. */
export function checkInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidArgument(name, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

/** An optional integer in [min, max], or `fallback` when absent. */
export function optionalInteger(value: unknown, name: string, min: number, max: number, fallback: number): number {
  return value === undefined ? fallback : checkInteger(value, name, min, max);
}

/** A file mode: an integer from 0 to 0o777. */
export function checkMode(value: unknown, fallback = 0o600): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0o777) {
    throw invalidArgument('mode', value, 'a permission mode from 0 to 0o777, e.g. 0o600');
  }
  return value;
}

/** An options argument: undefined or a plain object. */
export function checkOptions<T extends object>(value: T | undefined, name = 'options'): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object') throw invalidArgument(name, value, 'an object');
  return value;
}

/** Message bytes: a Uint8Array (Buffer included). */
export function checkBytes(value: unknown, name = 'data'): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw invalidArgument(name, value, 'a Uint8Array or Buffer (or configure a codec for other values)');
  }
  return value;
}
