/**
 * The conformance suite of ipckit's waiting operations: one set of checks,
 * written once and run against every waitable (the adapters of
 * test/helpers/waitables.ts), as iceoryx2's conformance tests run against
 * every implementation of a concept. Each adapter says how to make a fresh
 * object in the "a call would wait" state and how another process (an
 * actor) makes one call able to complete; the checks are:
 *
 *  1. no timeout waits until another process completes the call (async and sync);
 *  2. timeout 0 tries once;  3. timeout n rejects after at least n ms;
 *  4. the sync form's timeouts;  5. the try form;
 *  6. a pre-aborted signal does nothing;  7. an abort mid-wait loses nothing;
 *  8. close() rejects pending calls, is idempotent, and every later use fails;
 *  9. async iteration ends quietly on close;  10. first come, first served;
 * 11. unknown option keys are refused;  12. a peer killed mid-operation;
 * 13. an exactly-once soak with checksums.
 *
 * What does not apply to a waitable is skipped with the adapter's reason.
 * One more check covers pipe ends opened again by path (/dev/stdin,
 * /dev/fd/N), and the last test checks that nothing created here is left.
 *
 * CONFORMANCE_SEED fixes the soaks' random choices; CONFORMANCE_SOAK sets
 * their record count.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn as spawnChild } from 'node:child_process';
import { constants as fsConstants, openSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { IpcError, PipeReadEnd, PipeWriteEnd, onSignal, pipe } from '../src/index.js';
import { stopSharedActor } from './helpers/actor.js';
import { rejectsWith, stillPending, throwsWith } from './helpers/assert.js';
import { openFds } from './helpers/objects.js';
import { killAllPeers, runningChildren } from './helpers/peer.js';
import { prng } from './helpers/records.js';
import {
  CHECKS, CONFORMANCE_SIGNALS, type Check, type Instance, type Options, type ReceiveSoak, type SendSoak, type Tag,
  WAITABLES, type Waitable, fifoLeftovers, objects, unit,
} from './helpers/waitables.js';

const SOAK_COUNT = Number(process.env.CONFORMANCE_SOAK ?? 20_000);
const SEED = Number(process.env.CONFORMANCE_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** Every test gets this long before node:test fails it (a hang is a failure, not a stuck run). */
const TIMEOUT = { timeout: 60_000 };
/** Timeouts the checks use: long enough to be clearly a wait, short enough to keep the suite quick. */
const N_MS = 80;
/** How long a call that must not hang may take, when it is not the point. */
const BOUNDED = 20_000;

/** Fails if the actual wait was shorter than asked. performance.now() may read up to 1 ms less than the timer's clock. */
function atLeast(started: number, ms: number, what: string): void {
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= ms - 1, `${what} gave up after ${elapsed.toFixed(1)} ms, before its ${ms} ms`);
}

/** The tag a completed call yields: the supplied unit's (receivers) or its own (senders, locks). */
function expected(w: Waitable, call: Tag, supplied: Tag): Tag {
  return w.yields === 'unit' ? supplied : call;
}

/** Skips `check` with the adapter's reason; true if it applies. */
function applies(t: TestContext, w: Waitable, check: Check): boolean {
  const reason = w.notApplicable[check];
  if (reason === undefined) return true;
  t.skip(reason);
  return false;
}

/** Runs `fn` on a fresh instance of `w`, always cleaning up. */
async function withInstance(w: Waitable, fn: (instance: Instance) => Promise<void>): Promise<void> {
  const instance = await w.create();
  try {
    await fn(instance);
  } finally {
    await instance.cleanup();
  }
}

/** Makes one call able to complete and waits until it is. */
async function supply(instance: Instance, tag: Tag): Promise<void> {
  await (await instance.supply(tag)).done;
}

/** For senders: the other side got exactly these tags, in this order. */
async function checkDelivered(instance: Instance, tags: Tag[]): Promise<void> {
  if (instance.delivered !== undefined) assert.deepEqual(await instance.delivered(), tags, 'what reached the other side');
}

/** Calls an async method of a closed handle: it must return a promise (not throw) that rejects with ERR_IPC_CLOSED. */
async function rejectsClosed(name: string, call: () => unknown): Promise<void> {
  let result: unknown;
  try {
    result = call();
  } catch (err) {
    assert.fail(`${name} threw ${(err as IpcError).code ?? err} synchronously instead of returning a rejected promise`);
  }
  assert.ok(result instanceof Promise, `${name} returns a promise`);
  await rejectsWith(() => result, 'ERR_IPC_CLOSED');
}

/** Whether `err` is the end of a call that timed out or was aborted (expected in the soaks). */
function gaveUp(err: unknown): boolean {
  return err instanceof IpcError && (err.code === 'ERR_IPC_TIMEOUT' || err.code === 'ERR_IPC_ABORTED');
}

// ---------------------------------------------------------------------------
// Soak drivers: random mixes of the three forms, timeouts and aborts.

interface Mix {
  forms: Record<string, number>;
}

function count(mix: Mix, form: string): void {
  mix.forms[form] = (mix.forms[form] ?? 0) + 1;
}

/** A peer sends `total` records; this side receives them with a random mix of calls and checks each arrives once, in order, intact. */
async function driveReceive(s: ReceiveSoak, total: number, seed: number): Promise<Mix> {
  const rnd = prng(seed);
  const mix: Mix = { forms: {} };
  const problems: string[] = [];
  let next = 0;
  let ended = false;
  let peerFinished = false;
  void s.peerDone.then(() => { peerFinished = true; }, () => undefined);

  /** Takes a raw result (`undefined`: nothing); whether anything came. */
  const take = (raw: unknown): boolean => {
    const records = s.records(raw);
    if (records === null) {
      ended = true;
      return true;
    }
    for (const r of records) {
      if ((!r.ok || r.seq !== next) && problems.length < 5) problems.push(`record ${r.seq} (checksum ${r.ok ? 'ok' : 'bad'}) where ${next} was due`);
      next = r.seq + 1;
    }
    return raw !== undefined;
  };
  const settled = async (p: Promise<unknown>): Promise<unknown> => {
    try {
      return await p;
    } catch (err) {
      if (gaveUp(err)) return undefined;
      throw err;
    }
  };
  const settledSync = (fn: () => unknown): unknown => {
    try {
      return fn();
    } catch (err) {
      if (gaveUp(err)) return undefined;
      throw err;
    }
  };
  // A call without a timeout is made only while enough records are due that it cannot wait forever.
  const mayWaitForever = (calls: number): boolean => s.ends || total - next > calls;
  const ms = (max: number): number => Math.floor(rnd() * (max + 1));

  while (!ended && (s.ends || next < total)) {
    const dice = rnd();
    let got: boolean;
    if (dice < 0.2) {
      count(mix, 'async');
      got = take(await settled(s.async(mayWaitForever(1) ? {} : { timeout: 2_000 })));
    } else if (dice < 0.35) {
      count(mix, 'async timeout');
      got = take(await settled(s.async({ timeout: ms(3) })));
    } else if (dice < 0.45) {
      count(mix, 'async aborted mid-wait');
      const ac = new AbortController();
      const call = s.async({ signal: ac.signal, ...(mayWaitForever(1) ? {} : { timeout: 2_000 }) });
      setTimeout(() => ac.abort(), ms(2));
      got = take(await settled(call));
    } else if (dice < 0.5) {
      count(mix, 'async pre-aborted');
      const ac = new AbortController();
      ac.abort();
      await rejectsWith(() => s.async({ signal: ac.signal }), 'ERR_IPC_ABORTED');
      continue;
    } else if (dice < 0.65) {
      count(mix, 'sync timeout');
      got = take(settledSync(() => s.sync({ timeout: ms(3) })));
    } else if (dice < 0.8 && s.try !== undefined) {
      count(mix, 'try');
      got = take(s.try());
    } else {
      // Three calls at once: served in the order they were made.
      count(mix, 'batch of 3 async');
      const calls = [0, 1, 2].map((i) => {
        const options: Options = rnd() < 0.5 ? { timeout: ms(5) } : mayWaitForever(3) ? {} : { timeout: 2_000 };
        if (i === 1 && rnd() < 0.3) {
          const ac = new AbortController();
          setTimeout(() => ac.abort(), ms(2));
          options.signal = ac.signal;
        }
        return settled(s.async(options));
      });
      got = false;
      for (const raw of await Promise.all(calls)) got = take(raw) || got;
    }
    if (!got && peerFinished && !ended) {
      // Everything was sent, yet nothing came: the rest must come within a second, or it was lost.
      count(mix, 'async confirm');
      if (!take(await settled(s.async({ timeout: 1_000 })))) break;
    }
  }
  await s.peerDone;
  if (s.ends) {
    assert.equal(ended, true, 'the stream ended');
    assert.equal(s.leftover?.() ?? 0, 0, 'no unfinished record at the end of the data');
  } else if (s.try !== undefined) {
    assert.equal(s.try(), undefined, 'nothing arrives beyond the last record');
  } else {
    await rejectsWith(() => s.async({ timeout: 0 }), 'ERR_IPC_TIMEOUT');
  }
  assert.deepEqual({ received: next, problems }, { received: total, problems: [] }, `seed ${seed}`);
  return mix;
}

/** This side sends `total` records with a random mix of calls; a peer checks each arrives once, in order, intact. */
async function driveSend(s: SendSoak, total: number, seed: number): Promise<Mix> {
  const rnd = prng(seed);
  const mix: Mix = { forms: {} };
  const ms = (max: number): number => Math.floor(rnd() * (max + 1));
  /** Runs one send of `seq`; whether it went in (a timeout or an abort means it did not). */
  const attempt = async (fn: () => Promise<void> | void): Promise<boolean> => {
    try {
      await fn();
      return true;
    } catch (err) {
      if (gaveUp(err)) return false;
      throw err;
    }
  };
  let seq = 0;
  while (seq < total) {
    const dice = rnd();
    if (dice < 0.2) {
      count(mix, 'async');
      await s.async(seq, {});
      seq++;
    } else if (dice < 0.35) {
      count(mix, 'async timeout');
      if (await attempt(() => s.async(seq, { timeout: ms(3) }))) seq++;
    } else if (dice < 0.45) {
      count(mix, 'async aborted mid-wait');
      const ac = new AbortController();
      const call = s.async(seq, { signal: ac.signal });
      setTimeout(() => ac.abort(), ms(2));
      if (await attempt(() => call)) seq++;
    } else if (dice < 0.5) {
      count(mix, 'async pre-aborted');
      const ac = new AbortController();
      ac.abort();
      await rejectsWith(() => s.async(seq, { signal: ac.signal }), 'ERR_IPC_ABORTED');
    } else if (dice < 0.65) {
      count(mix, 'sync timeout');
      if (await attempt(() => s.sync(seq, { timeout: ms(3) }))) seq++;
    } else if (dice < 0.8 && s.try !== undefined) {
      count(mix, 'try');
      if (s.try(seq)) seq++;
    } else {
      // Calls made together go in in the order they were made.
      count(mix, 'batch of 3 async');
      const n = Math.min(3, total - seq);
      await Promise.all(Array.from({ length: n }, (_, i) => s.async(seq + i, {})));
      seq += n;
    }
  }
  assert.deepEqual(await s.finish(), { received: total, bad: [] }, `seed ${seed}`);
  return mix;
}

// ---------------------------------------------------------------------------

let baseline: string[] = [];
const guards: (() => void)[] = [];

before(async () => {
  // A real-time signal nobody handles would end this process: keep the
  // suite's signals handled for its whole run, so a late one is harmless.
  for (const sig of CONFORMANCE_SIGNALS) guards.push(onSignal(sig, () => undefined));
  // Descriptors that live as long as the process (the readiness registry,
  // libuv's child watcher) exist before the baseline is taken.
  const ends = pipe();
  ends.readEnd.close();
  ends.writeEnd.close();
  await new Promise((resolve) => spawnChild(process.execPath, ['-e', '']).on('close', resolve));
  baseline = openFds();
});

after(async () => {
  await killAllPeers();
  await stopSharedActor();
  objects.cleanup();
  for (const dispose of guards.splice(0)) dispose();
});

for (const [index, w] of WAITABLES.entries()) {
  describe(`conformance: ${w.name}`, () => {
    it(`${CHECKS.waits}. without a timeout, the call waits until another process completes it (async and sync)`, TIMEOUT, async () => {
      await withInstance(w, async (instance) => {
        const pending = instance.op(1);
        await supply(instance, 11);
        assert.equal(await pending, expected(w, 1, 11));
        await checkDelivered(instance, [1]);
      });
      await withInstance(w, async (instance) => {
        // The other process acts 100 ms from now, while this thread is blocked.
        const later = await instance.supply(12, 100);
        assert.equal(instance.opSync(2), expected(w, 2, 12));
        await later.done;
        await checkDelivered(instance, [2]);
      });
    });

    it(`${CHECKS.timeoutZero}. timeout 0 tries once: ERR_IPC_TIMEOUT when it would wait, the result when it can`, TIMEOUT, async () => {
      await withInstance(w, async (instance) => {
        await rejectsWith(() => instance.op(1, { timeout: 0 }), 'ERR_IPC_TIMEOUT', / timed out after 0 ms/);
        await supply(instance, 11);
        assert.equal(await instance.op(2, { timeout: 0 }), expected(w, 2, 11));
        await rejectsWith(() => instance.op(3, { timeout: 0 }), 'ERR_IPC_TIMEOUT');
        await checkDelivered(instance, [2]);
      });
    });

    it(`${CHECKS.timeoutN}. timeout n rejects with ERR_IPC_TIMEOUT after at least n ms, and leaves nothing behind`, TIMEOUT, async () => {
      await withInstance(w, async (instance) => {
        const started = performance.now();
        await rejectsWith(() => instance.op(1, { timeout: N_MS }), 'ERR_IPC_TIMEOUT', new RegExp(` timed out after ${N_MS} ms`));
        atLeast(started, N_MS, 'op({ timeout })');
        await supply(instance, 11);
        assert.equal(await instance.op(2, { timeout: BOUNDED }), expected(w, 2, 11));
        await checkDelivered(instance, [2]);
      });
    });

    it(`${CHECKS.sync}. the sync form: timeout n and timeout 0 throw ERR_IPC_TIMEOUT when it would wait; it returns when it can`, TIMEOUT, async () => {
      await withInstance(w, async (instance) => {
        const started = performance.now();
        throwsWith(() => instance.opSync(1, { timeout: N_MS }), 'ERR_IPC_TIMEOUT', new RegExp(` timed out after ${N_MS} ms`));
        atLeast(started, N_MS, 'opSync({ timeout })');
        throwsWith(() => instance.opSync(2, { timeout: 0 }), 'ERR_IPC_TIMEOUT', / timed out after 0 ms/);
        await supply(instance, 11);
        assert.equal(instance.opSync(3, { timeout: 0 }), expected(w, 3, 11));
        await supply(instance, 12);
        assert.equal(instance.opSync(4, { timeout: BOUNDED }), expected(w, 4, 12));
        await checkDelivered(instance, [3, 4]);
      });
    });

    it(`${CHECKS.try}. the try form returns its "nothing" when it would wait, the result when it can`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'try')) return;
      await withInstance(w, async (instance) => {
        const form = instance.tryOp;
        assert.ok(form !== undefined, 'the adapter has a try form');
        assert.deepEqual(form.call(1), { raw: form.nothing, tag: undefined });
        await supply(instance, 11);
        const got = form.call(2);
        assert.notEqual(got.raw, form.nothing);
        assert.equal(got.tag, expected(w, 2, 11));
        // Taken exactly once.
        assert.deepEqual(form.call(3), { raw: form.nothing, tag: undefined });
        await checkDelivered(instance, [2]);
      });
    });

    it(`${CHECKS.preAborted}. a pre-aborted signal rejects with ERR_IPC_ABORTED and consumes nothing`, TIMEOUT, async () => {
      await withInstance(w, async (instance) => {
        await supply(instance, 11);
        const reason = new Error('stopped before the call');
        const ac = new AbortController();
        ac.abort(reason);
        const err = await rejectsWith(() => instance.op(1, { signal: ac.signal }), 'ERR_IPC_ABORTED', / was aborted/);
        assert.equal(err.cause, reason, 'the abort reason is the cause');
        await rejectsWith(() => instance.op(2, { signal: ac.signal, timeout: 0 }), 'ERR_IPC_ABORTED');
        // What was there is still there for the next call.
        assert.equal(await instance.op(3, { timeout: 0 }), expected(w, 3, 11));
        await checkDelivered(instance, [3]);
      });
    });

    it(`${CHECKS.abortMidWait}. an abort mid-wait rejects with ERR_IPC_ABORTED and loses nothing that arrives afterwards`, TIMEOUT, async () => {
      await withInstance(w, async (instance) => {
        const ac = new AbortController();
        const aborted = instance.op(1, { signal: ac.signal });
        setTimeout(() => ac.abort(), 30);
        await rejectsWith(() => aborted, 'ERR_IPC_ABORTED');
        await supply(instance, 11);
        assert.equal(await instance.op(2, { timeout: BOUNDED }), expected(w, 2, 11));

        // An aborted call at the head of the queue hands its turn to the next one.
        const ac2 = new AbortController();
        const head = instance.op(3, { signal: ac2.signal });
        const next = instance.op(4);
        ac2.abort();
        await rejectsWith(() => head, 'ERR_IPC_ABORTED');
        await supply(instance, 12);
        assert.equal(await next, expected(w, 4, 12));
        await checkDelivered(instance, [2, 4]);
      });
    });

    it(`${CHECKS.close}. close() rejects pending calls with ERR_IPC_CLOSED, is idempotent, and every later use fails with ERR_IPC_CLOSED`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'close')) return;
      await withInstance(w, async (instance) => {
        const pending = [instance.op(1), instance.op(2, { timeout: BOUNDED })];
        for (const p of pending) p.catch(() => undefined);
        instance.close();
        for (const p of pending) await rejectsWith(() => p, 'ERR_IPC_CLOSED', /closed/);
        instance.close();
        await rejectsClosed('op()', () => instance.op(3));
        throwsWith(() => instance.opSync(4, { timeout: 0 }), 'ERR_IPC_CLOSED');
        if (instance.tryOp !== undefined) throwsWith(() => instance.tryOp!.call(5), 'ERR_IPC_CLOSED');
        const calls = instance.afterClose?.() ?? [];
        assert.ok(calls.length > 0, 'the adapter lists the methods of the handle');
        for (const { name, call, async } of calls) {
          if (async) await rejectsClosed(name, call);
          else throwsWith(call, 'ERR_IPC_CLOSED');
        }
      });
    });

    it(`${CHECKS.iteration}. async iteration ends quietly when the handle is closed`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'iteration')) return;
      await withInstance(w, async (instance) => {
        assert.ok(instance.iterate !== undefined, 'the adapter iterates');
        const got: Tag[] = [];
        let first!: () => void;
        const gotOne = new Promise<void>((resolve) => { first = resolve; });
        const loop = (async () => {
          for await (const tag of instance.iterate!()) {
            got.push(tag);
            first();
          }
        })();
        await supply(instance, 11);
        await gotOne;
        instance.close();
        await loop;
        assert.deepEqual(got, [11]);
        for await (const tag of instance.iterate()) assert.fail(`a closed handle yielded ${tag}`);
      });
    });

    it(`${CHECKS.order}. pending calls are served first come, first served, and a later call never overtakes them`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'order')) return;
      await withInstance(w, async (instance) => {
        const settledOrder: Tag[] = [];
        const track = (tag: Tag): Promise<Tag> => {
          const p = instance.op(tag, { timeout: BOUNDED });
          p.then(() => settledOrder.push(tag), () => settledOrder.push(-tag));
          return p;
        };
        // Three pending calls, completions arriving one by one.
        const calls = [track(1), track(2), track(3)];
        for (let i = 0; i < calls.length; i++) {
          await supply(instance, 11 + i);
          assert.equal(await calls[i], expected(w, i + 1, 11 + i));
          // The other side acted once: exactly one call was served.
          for (const later of calls.slice(i + 1)) assert.equal(await stillPending(later, 50), true, 'one completion serves one call');
        }
        assert.deepEqual(settledOrder, [1, 2, 3]);

        // A completion is available (made synchronously, so the waiting
        // call has not been told yet): new calls must not take it first.
        assert.ok(instance.supplyLocal !== undefined, 'the adapter supplies synchronously');
        const a = track(4);
        const b = track(5);
        await supply(instance, 21);
        assert.equal(await a, expected(w, 4, 21));
        instance.supplyLocal(22);
        if (instance.tryOp !== undefined) assert.equal(instance.tryOp.call(6).raw, instance.tryOp.nothing, 'tryOp() did not overtake');
        const c = track(8);
        assert.equal(await b, expected(w, 5, 22));
        await supply(instance, 23);
        assert.equal(await c, expected(w, 8, 23));
        assert.deepEqual(settledOrder, [1, 2, 3, 4, 5, 8]);
        await checkDelivered(instance, [1, 2, 3, 4, 5, 8]);
      });
    });

    it(`${CHECKS.order}. a sync call made while async calls are pending does not overtake them`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'order')) return;
      await withInstance(w, async (instance) => {
        // One call completed first (a lock is then held by this thread, as in the check above).
        const warm = instance.op(0, { timeout: BOUNDED });
        await supply(instance, 10);
        assert.equal(await warm, expected(w, 0, 10));
        const first = instance.op(1, { timeout: BOUNDED });
        first.catch(() => undefined);
        // Both a completion and a waiting call: the completion is the waiting call's.
        instance.supplyLocal!(11);
        throwsWith(() => instance.opSync(2, { timeout: 0 }), 'ERR_IPC_TIMEOUT', / timed out after 0 ms/);
        assert.equal(await first, expected(w, 1, 11));
        await checkDelivered(instance, [0, 1]);
      });
    });

    it(`${CHECKS.unknownOption}. unknown option keys are refused with ERR_IPC_INVALID_ARGUMENT naming "timeout"`, TIMEOUT, async () => {
      await withInstance(w, async (instance) => {
        await supply(instance, 11);
        await rejectsWith(() => instance.op(1, { timeOut: 5 }), 'ERR_IPC_INVALID_ARGUMENT', /"timeOut"; did you mean "timeout"\?/);
        throwsWith(() => instance.opSync(2, { timeOut: 5 }), 'ERR_IPC_INVALID_ARGUMENT', /"timeOut"; did you mean "timeout"\?/);
        await rejectsWith(() => instance.op(3, { signal: 'no' }), 'ERR_IPC_INVALID_ARGUMENT', /signal must be an AbortSignal/);
        await rejectsWith(() => instance.op(4, { timeout: -1 }), 'ERR_IPC_INVALID_ARGUMENT', /timeout must be/);
        // A refused call consumed nothing.
        assert.equal(await instance.op(5, { timeout: 0 }), expected(w, 5, 11));
        await checkDelivered(instance, [5]);
      });
    });

    const kill = w.peerKilled;
    it(`${CHECKS.peerKilled}. a peer killed with SIGKILL mid-operation${kill ? ` (${kill.doing})` : ''} leaves this side working`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'peerKilled')) return;
      assert.ok(kill !== undefined, 'the adapter has a kill scenario');
      await withInstance(w, async (instance) => {
        let pending: Promise<Tag> | undefined;
        if (kill.order === 'call-first') pending = instance.op(1, { timeout: BOUNDED });
        const peer = await kill.start(instance, 1);
        if (kill.blocked) t.diagnostic(`the peer sleeps in ${await peer.untilBlocked()}`);
        pending ??= instance.op(1, { timeout: BOUNDED });
        pending.catch(() => undefined);
        assert.deepEqual(await peer.kill('SIGKILL'), { code: null, signal: 'SIGKILL' });
        const outcome = kill.outcome;
        if (outcome === 'supply') {
          await supply(instance, 11);
          assert.equal(await pending, expected(w, 1, 11));
        } else if (outcome === 'peer') {
          assert.equal(await pending, expected(w, 1, 1));
        } else {
          await rejectsWith(() => pending!, outcome.code);
          outcome.recover(instance);
        }
        // This side keeps working.
        await supply(instance, 21);
        assert.equal(await instance.op(2, { timeout: BOUNDED }), expected(w, 2, 21));
        await checkDelivered(instance, typeof outcome === 'string' ? [1, 2] : [2]);
      });
    });

    it(`${CHECKS.soak}. exactly once, in order, intact: ${SOAK_COUNT} records with checksums through a random mix of calls`, TIMEOUT, async (t) => {
      if (!applies(t, w, 'soak')) return;
      assert.ok(w.soak !== undefined, 'the adapter has a soak');
      const seed = SEED + index;
      const started = performance.now();
      const s = await w.soak(SOAK_COUNT, seed);
      try {
        const mix = s.direction === 'receive' ? await driveReceive(s, SOAK_COUNT, seed) : await driveSend(s, SOAK_COUNT, seed);
        t.diagnostic(`seed ${seed}, ${(performance.now() - started).toFixed(0)} ms, calls: ${JSON.stringify(mix.forms)}`);
      } finally {
        await s.cleanup();
      }
    });
  });
}

describe('conformance: a pipe end opened again by path', () => {
  // /dev/stdin, /dev/fd/N and bash's <(cmd) give a program a pipe it opens
  // by path: a second open file description of the same pipe. Its ends
  // must run the triple as the ends pipe() makes do.
  it('reads and writes through ends opened via /proc/self/fd, as through the original ends', TIMEOUT, async () => {
    const { readEnd, writeEnd } = pipe();
    const reader = PipeReadEnd.fromFd(openSync(`/proc/self/fd/${readEnd.fd}`, fsConstants.O_RDONLY));
    const writer = PipeWriteEnd.fromFd(openSync(`/proc/self/fd/${writeEnd.fd}`, fsConstants.O_WRONLY));
    try {
      assert.equal(reader.tryRead(), undefined);
      assert.equal(writer.tryWrite(unit(1)), unit(1).length);
      assert.deepEqual(reader.tryRead(), unit(1));
      writer.writeSync(unit(2), { timeout: 0 });
      assert.deepEqual(reader.readSync({ timeout: 0 }), unit(2));
      await writer.write(unit(3), { timeout: 0 });
      assert.deepEqual(await reader.read({ timeout: 0 }), unit(3));
    } finally {
      for (const end of [reader, writer, readEnd, writeEnd]) end.close();
    }
  });
});

describe('conformance: the suite itself', () => {
  it('leaves nothing behind: no queues, segments, FIFOs, processes or descriptors', TIMEOUT, async () => {
    await stopSharedActor();
    for (const dispose of guards.splice(0)) dispose();
    assert.deepEqual(objects.leftovers(), []);
    assert.deepEqual(fifoLeftovers(), []);
    assert.equal(runningChildren(), 0, 'no actor or peer process is left');
    // libuv closes a child's stdio pipes just after its exit is reported.
    const describeFds = (fds: string[]): string[] => fds.map((fd) => {
      try {
        return `${fd} -> ${readlinkSync(`/proc/self/fd/${fd}`)}`;
      } catch {
        return `${fd} (gone)`;
      }
    });
    for (let i = 0; i < 50 && openFds().length > baseline.length; i++) await sleep(10);
    assert.deepEqual(describeFds(openFds()), describeFds(baseline));
  });
});
