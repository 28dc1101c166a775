/**
 * Validation at the TypeScript boundary. Every check names the option and
 * says what would be accepted.
 * @internal
 * @module
 */
import { IpcError } from '../errors.js';

/** A short, safe description of any value, for messages (never throws). */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'symbol') return value.toString();
  if (value === null || typeof value !== 'object') return String(value);
  try {
    return Array.isArray(value) ? 'an array' : 'an object';
  } catch {
    // Array.isArray throws on a revoked Proxy.
    return 'a revoked proxy';
  }
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

/** Edit distance between two short strings (for "did you mean"). */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length]!;
}

/** The valid key closest to `key`, if one is close enough to be a likely misspelling. */
function closest(key: string, valid: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of valid) {
    const d = candidate.toLowerCase() === key.toLowerCase() ? 0 : distance(key, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/**
 * An options argument: undefined or a plain object whose keys are all in
 * `keys`. A misspelled key would silently change behaviour (`timeOut`
 * waiting forever), so an unknown key is an error naming the closest one.
 */
export function checkOptions<T extends object>(value: T | undefined, keys: readonly (keyof T & string)[], name = 'options',
  more: readonly string[] = NONE): Partial<T> {
  if (value === undefined) return EMPTY as Partial<T>;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalidArgument(name, value, 'an object');
  for (const key in value) {
    if (!Object.hasOwn(value, key) || (keys as readonly string[]).includes(key) || more.includes(key)) continue;
    const valid = [...keys, ...more];
    const guess = closest(key, valid);
    const known = valid.length === 0 ? 'it takes no options' : `valid keys: ${valid.join(', ')}`;
    throw new IpcError('ERR_IPC_INVALID_ARGUMENT',
      `${name} has no key "${key}"${guess === undefined ? '' : `; did you mean "${guess}"?`} (${known}).`);
  }
  return value;
}

const NONE: readonly string[] = [];
const EMPTY = Object.freeze({});

/** An optional boolean, or `fallback` when absent. */
export function checkBoolean(value: unknown, name: string, fallback = false): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidArgument(name, value, 'true or false');
  return value;
}

/** Bytes to send or write: a Uint8Array (or Buffer) as it is, a string as its UTF-8 encoding. */
export function toBytes(value: unknown, name = 'data'): Uint8Array {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (!isBytes(value)) throw notBytes(name, value, 'a Uint8Array, Buffer or string (or configure a codec for other values)');
  return value;
}

/** Message bytes, or a target to receive into: a Uint8Array (Buffer included). */
export function checkBytes(value: unknown, name = 'data'): Uint8Array {
  if (!isBytes(value)) throw notBytes(name, value, 'a Uint8Array or Buffer (or configure a codec for other values)');
  return value;
}

const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;
const intrinsic = <R>(name: string): (this: ArrayBufferView) => R =>
  Object.getOwnPropertyDescriptor(typedArrayPrototype, name)!.get! as (this: ArrayBufferView) => R;
const viewByteLength = intrinsic<number>('byteLength');
const viewByteOffset = intrinsic<number>('byteOffset');
const viewBuffer = intrinsic<ArrayBufferLike>('buffer');
const viewTag = Object.getOwnPropertyDescriptor(typedArrayPrototype, Symbol.toStringTag)!.get! as (this: unknown) => string | undefined;

/**
 * Whether the engine holds `value` for a Uint8Array (a Buffer included): its
 * own record of the array's type, which no prototype or property of the
 * caller's can change (an Int8Array or a DataView given Uint8Array's
 * prototype passes `instanceof`, and is not one). A Proxy is no typed array.
 */
export function isUint8Array(value: unknown): value is Uint8Array {
  return viewTag.call(value) === 'Uint8Array';
}

/**
 * Whether `value` is a Uint8Array (a Buffer included) whose `length` is the
 * number of bytes it spans. The addon reads and writes a view's memory as
 * it really is, while JavaScript sizes frames, headers and copies by
 * `length`: a view whose `length` says otherwise (a property of its own, or
 * a subclass's getter) would send a frame whose header disagrees with its
 * bytes, or lose a message it was too small for. `isView` also refuses a
 * Proxy around a Uint8Array, which passes `instanceof` but is no view the
 * addon can read.
 *
 * One read of `length` can answer honestly and the next otherwise (a
 * getter of the caller's): so wherever a size decides an allocation, a
 * header, a record or a bound that a copy must meet, the library takes it
 * from {@link realByteLength}, never from `length`.
 */
export function isBytes(value: unknown): value is Uint8Array {
  return isUint8Array(value) && value.length === viewByteLength.call(value);
}

const typedArraySet = (typedArrayPrototype as { set: (this: Uint8Array, source: ArrayLike<number>, offset?: number) => void }).set;

/** Copies `source` into `target` at `offset` with the built-in `set`: no `set` property of the caller's target is asked. */
export function copyView(target: Uint8Array, source: Uint8Array, offset = 0): void {
  typedArraySet.call(target, source, offset);
}

/** `view`'s bytes from `start` to `end`, as a plain Uint8Array: no `subarray` or `constructor` of the caller's is asked. */
export function viewFrom(view: Uint8Array, start: number, end = viewByteLength.call(view)): Uint8Array {
  return new Uint8Array(viewBuffer.call(view), viewByteOffset.call(view) + start, end - start);
}

/** The ArrayBuffer (or SharedArrayBuffer) under `view`, as the engine knows it: no `buffer` property of the caller's is asked. */
export function realBuffer(view: ArrayBufferView): ArrayBufferLike {
  return viewBuffer.call(view);
}

/** The error for a value {@link isBytes} refused, which says which of its conditions failed. */
export function notBytes(name: string, value: unknown, expected: string, code: 'ERR_IPC_INVALID_ARGUMENT' | 'ERR_IPC_CODEC' = 'ERR_IPC_INVALID_ARGUMENT'):
  IpcError {
  if (!isUint8Array(value)) {
    return code === 'ERR_IPC_CODEC' ? new IpcError(code, `${name} must be ${expected}; got ${describe(value)}.`) : invalidArgument(name, value, expected);
  }
  let says: unknown;
  try {
    says = value.length;
  } catch {
    says = 'nothing (its getter threw)';
  }
  return new IpcError(code, `${name} must be a Uint8Array whose length is the number of bytes it spans; got a view of ` +
    `${viewByteLength.call(value)} bytes whose length says ${typeof says === 'string' ? says : describe(says)} (a length property of its own, or a subclass's). ` +
    'Pass a plain view of the same bytes, e.g. new Uint8Array(view.buffer, view.byteOffset, view.byteLength).');
}

/**
 * The bytes `view` really spans, as the addon sees them: its own `length`
 * or `byteLength` property, which any code may define, is not asked.
 */
export function realByteLength(view: ArrayBufferView): number {
  return viewByteLength.call(view);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether `s` has a UTF-8 form: no lone UTF-16 surrogate, which the kernel would receive as U+FFFD. */
export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}
