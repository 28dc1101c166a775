/** Assertions shared by the test files. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { IpcError } from '../../src/index.js';

/** Asserts that `fn` throws (or rejects with) an IpcError with `code`, whose message matches `pattern`. */
export async function rejectsWith(fn: () => unknown, code: string, pattern?: RegExp): Promise<IpcError> {
  let error: unknown;
  try {
    await fn();
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof IpcError, `expected IpcError ${code}, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  if (pattern) assert.match(error.message, pattern);
  return error;
}

/** The synchronous twin of {@link rejectsWith}. */
export function throwsWith(fn: () => unknown, code: string, pattern?: RegExp): IpcError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof IpcError, `expected IpcError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return err;
  }
  assert.fail(`expected IpcError ${code}, nothing was thrown`);
}

/** Whether a promise is still pending after `ms`. */
export async function stillPending(promise: Promise<unknown>, ms = 100): Promise<boolean> {
  const marker = Symbol('pending');
  promise.catch(() => undefined);
  return (await Promise.race([promise, sleep(ms, marker)])) === marker;
}

/** Waits until `predicate()` holds, looking every few ms; fails naming `what` after `ms`. */
export async function waitUntil(what: string, predicate: () => boolean, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!predicate()) {
    if (performance.now() > deadline) assert.fail(`timed out after ${ms} ms waiting until ${what}`);
    await sleep(5);
  }
}

/**
 * Asserts that the libuv thread pool is free: an fs.readFile, which runs on
 * it, completes. One queued behind pool threads parked in blocking calls
 * would never complete, so the bound only has to end the test, not to
 * measure it: it is generous enough for a loaded machine.
 */
export async function threadPoolIsFree(ms = 5_000): Promise<void> {
  const stop = new AbortController();
  const read = new Promise<'read'>((resolve, reject) => readFile(new URL(import.meta.url), (err) => (err ? reject(err) : resolve('read'))));
  const timedOut = sleep(ms, 'timed out', { signal: stop.signal });
  try {
    assert.equal(await Promise.race([read, timedOut]), 'read', `fs.readFile did not complete in ${ms} ms: it waits for the thread pool`);
  } finally {
    stop.abort();
    timedOut.catch(() => undefined);
  }
}

/** A text codec that refuses (throws `refused <text>` for) every message starting with "bad": for tests of what a refusal does. */
export function refusingCodec(): { encode(value: string): Buffer; decode(bytes: Uint8Array): string } {
  return {
    encode: (value) => Buffer.from(value),
    decode: (bytes) => {
      const text = Buffer.from(bytes).toString();
      if (text.startsWith('bad')) throw new Error(`refused ${text}`);
      return text;
    },
  };
}
