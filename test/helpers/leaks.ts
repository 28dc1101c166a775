/**
 * The last test of a file that opens descriptors or starts children: it
 * checks that none of them is left (`npm test` exits a file once its tests
 * have ended, so a leak would otherwise go unnoticed).
 */
import assert from 'node:assert/strict';
import { waitUntil } from './assert.js';
import { fdIdentities, fdsBeyond } from './objects.js';
import { runningChildren } from './peer.js';

/** The descriptors open now, with what they link to: take it when the file starts, before any test. */
export function fdSnapshot(): Set<string> {
  return new Set(fdIdentities());
}

/** Waits a moment for closes and exits under way, then fails naming any descriptor beyond `baseline` or any child still running. */
export async function assertNothingLeft(baseline: Set<string>): Promise<void> {
  await waitUntil('descriptors are closed', () => fdsBeyond(baseline).length === 0).catch(() => assert.deepEqual(fdsBeyond(baseline), []));
  await waitUntil('child processes have ended', () => runningChildren() === 0).catch(() => assert.equal(runningChildren(), 0));
}
