/**
 * The NATS mailbox as seen by the conformance suite: the adapters of its
 * receive and its send (the same checks as the kernel queues), their actor
 * side, and the one nats-server they share.
 *
 * The server is started on first use, on a free loopback port with storage
 * of its own, and stopped by `stopNatsServer()`. Without nats-server on the
 * machine every check is skipped with that reason.
 *
 * What differs from a kernel queue, each a documented property of the
 * mailbox (docs/nats.md): there are no `*Sync` forms, the try forms return
 * promises (they ask the server, never wait for a message or room), close
 * is async, and a completion made "locally" goes through the server too.
 */
import assert from 'node:assert/strict';
import { NatsMailbox, type NatsMessage } from '../../src/index.js';
import { Actor, type Started, sharedActor } from './actor.js';
import { NatsServer, natsMissing } from './nats-server.js';
import { readRecord, record } from './records.js';
import {
  type Check, type ClosedCall, type Instance, type RemoteContext, type SoakReport, type Tag, type Waitable, unit, unitTag,
} from './waitables.js';

/** How long a remote wait may take before it fails instead of hanging. */
const REMOTE_TIMEOUT = 20_000;
/** The shortest ackWait a mailbox takes: a message whose receiver died comes back after it. */
const ACK_WAIT = 1000;
/** Records in each NATS soak: every call is a round trip to the server, about a millisecond. */
const SOAK = 2000;

let server: NatsServer | undefined;
let starting: Promise<NatsServer> | undefined;
/** Mailboxes made here and not yet removed (the suite checks the server holds none at the end). */
const made = new Set<string>();
let count = 0;

/** The shared server, started on first use. */
function natsServer(): Promise<NatsServer> {
  starting ??= (async () => {
    const s = new NatsServer();
    server = s;
    await s.start();
    return s;
  })();
  return starting;
}

/** Stops the shared server and removes its storage (nothing if it never started). */
export async function stopNatsServer(): Promise<void> {
  const s = server;
  server = undefined;
  starting = undefined;
  await s?.dispose();
}

/** Mailboxes the suite made and did not remove, as the server lists them. */
export async function natsLeftovers(): Promise<string[]> {
  if (server === undefined || made.size === 0) return [];
  const left: string[] = [];
  for (const address of made) {
    const box = await NatsMailbox.open(address).catch((err: { code?: string }) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (box === undefined) continue;
    left.push(address);
    await box.unlink();
    await box.close();
  }
  made.clear();
  return left;
}

/** A fresh mailbox on the shared server: a handle to test and a second handle of the same mailbox. */
async function fresh(full: boolean): Promise<{ box: NatsMailbox; other: NatsMailbox; address: string; remove(): Promise<void> }> {
  const s = await natsServer();
  const address = s.address(`cf-${process.pid}-${++count}-${Math.random().toString(36).slice(2, 8)}`);
  made.add(address);
  // Four 16-byte units fill the mailbox that senders test against.
  const box = await NatsMailbox.create(address, { storage: 'memory', ackWait: ACK_WAIT, maxMessages: full ? 4 : 64, maxMessageSize: 128 });
  const other = await NatsMailbox.open(address);
  return {
    box, other, address,
    async remove() {
      await box.close();
      await other.close();
      await NatsMailbox.unlink(address);
      made.delete(address);
    },
  };
}

/** The tag of a received unit, checking its metadata: priority 0, delivered before only if `again` expects it. */
function tagOf(m: NatsMessage, again = new Set<Tag>()): Tag {
  const tag = unitTag(m.data);
  assert.deepEqual(m, { data: m.data, priority: 0, redelivered: again.has(tag) ? 1 : 0 }, `the metadata of unit ${tag}`);
  return tag;
}

/** Every method of a closed handle: each returns a promise that rejects with ERR_IPC_CLOSED. */
function closedCalls(box: NatsMailbox): ClosedCall[] {
  return ([
    ['send', () => box.send(unit(0))], ['trySend', () => box.trySend(unit(0))], ['receive', () => box.receive()],
    ['tryReceive', () => box.tryReceive()], ['attributes', () => box.attributes()], ['unlink', () => box.unlink()],
  ] as [string, () => unknown][]).map(([name, call]) => ({ name, call, async: true }));
}

/** A supply through an actor request: resolves when the actor has it; `done` (recording what it returns) when it acted. */
async function remote(actor: Actor, op: string, params: Record<string, unknown>, keep?: (value: unknown) => void): Promise<{ done: Promise<void> }> {
  const request: Started = await actor.start(op, params);
  return { done: request.done.then((value) => keep?.(value)) };
}

const SKIP_ALL = (reason: string): Partial<Record<Check, string>> =>
  Object.fromEntries(['waits', 'timeoutZero', 'timeoutN', 'sync', 'try', 'preAborted', 'abortMidWait', 'close', 'iteration', 'order',
    'unknownOption', 'peerKilled', 'soak'].map((check) => [check, reason]));

const NO_SYNC = 'a NATS mailbox has no *Sync forms: its connection runs on the event loop, which a sync call would block (docs/nats.md)';

/** Units a kill scenario expects to come out a second time, by instance. */
const again = new WeakMap<Instance, Set<Tag>>();
/** Addresses of instances, for the kill scenarios' peers. */
const addresses = new WeakMap<Instance, string>();

const natsReceive: Waitable = {
  name: 'NatsMailbox.receive',
  yields: 'unit',
  soakCount: SOAK,
  notApplicable: natsMissing === false ? { sync: NO_SYNC } : SKIP_ALL(natsMissing),
  async create() {
    const { box, other, address, remove } = await fresh(false);
    const actor = sharedActor();
    const expectAgain = new Set<Tag>();
    const instance: Instance = {
      op: (_tag, o) => box.receive(o).then((m) => tagOf(m, expectAgain)),
      tryOp: {
        call: async () => {
          const m = await box.tryReceive();
          return { raw: m, tag: m === undefined ? undefined : tagOf(m, expectAgain) };
        },
        nothing: undefined,
        async: true,
      },
      supply: (tag, delayMs) => remote(actor, 'nats.send', { address, tag, delayMs }),
      supplyLocal: async (tag) => assert.equal(await other.trySend(unit(tag)), true),
      close: () => box.close(),
      afterClose: () => closedCalls(box),
      async *iterate() {
        for await (const m of box) yield tagOf(m, expectAgain);
      },
      async cleanup() {
        await actor.call('nats.forget', { address });
        await remove();
      },
    };
    again.set(instance, expectAgain);
    addresses.set(instance, address);
    return instance;
  },
  peerKilled: {
    doing: 'a receiver that fetched unit 1 is killed before handing it over: it comes out again after ackWait',
    order: 'peer-first',
    blocked: false,
    outcome: 'peer',
    async start(instance, tag) {
      again.get(instance)!.add(tag);
      const peer = new Actor();
      await peer.start('nats.fetchAndHang', { address: addresses.get(instance), tag });
      return peer;
    },
  },
  async soak(n, seed) {
    const { box, address, remove } = await fresh(false);
    const peer = new Actor();
    const peerDone = peer.call('nats.soakSend', { address, count: n, seed });
    return {
      direction: 'receive', ends: false, peerDone,
      async: (o) => box.receive(o),
      try: () => box.tryReceive(),
      records: (raw) => (raw === undefined ? [] : [readRecord((raw as NatsMessage).data)]),
      async cleanup() {
        await peer.stop();
        await remove();
      },
    };
  },
};

const natsSend: Waitable = {
  name: 'NatsMailbox.send',
  yields: 'call',
  soakCount: SOAK,
  notApplicable: natsMissing === false
    ? { sync: NO_SYNC, iteration: 'a sender is not a receiver: there is nothing to iterate' }
    : SKIP_ALL(natsMissing),
  async create() {
    const { box, other, address, remove } = await fresh(true);
    for (let i = 1; i <= 4; i++) assert.equal(await box.trySend(unit(-i)), true, 'filling the mailbox');
    assert.equal(await box.trySend(unit(-5)), false, 'the mailbox is full');
    const actor = sharedActor();
    // Units the other side took out of the mailbox, in order.
    const taken: Tag[] = [];
    const instance: Instance = {
      op: (tag, o) => box.send(unit(tag), o).then(() => tag),
      tryOp: {
        call: async (tag) => {
          const raw = await box.trySend(unit(tag));
          return { raw, tag: raw ? tag : undefined };
        },
        nothing: false,
        async: true,
      },
      supply: (_tag, delayMs) => remote(actor, 'nats.receive', { address, delayMs }, (t) => taken.push(t as Tag)),
      async supplyLocal() {
        const m = await other.tryReceive();
        assert.ok(m !== undefined, 'the full mailbox had a message to take');
        taken.push(tagOf(m));
      },
      async delivered() {
        for (let m = await other.tryReceive(); m !== undefined; m = await other.tryReceive()) taken.push(tagOf(m));
        return taken.filter((t) => t >= 0);
      },
      close: () => box.close(),
      afterClose: () => closedCalls(box),
      async cleanup() {
        await actor.call('nats.forget', { address });
        await remove();
      },
    };
    addresses.set(instance, address);
    return instance;
  },
  peerKilled: {
    doing: 'a sender waiting for room in the same full mailbox',
    order: 'peer-first',
    blocked: false,
    outcome: 'supply',
    async start(instance) {
      const peer = new Actor();
      await peer.start('nats.blockSend', { address: addresses.get(instance), tag: 999 });
      return peer;
    },
  },
  async soak(n) {
    const { box, other, address, remove } = await fresh(false);
    const peer = new Actor();
    const report = peer.call<SoakReport>('nats.soakReceive', { address, count: n });
    return {
      direction: 'send',
      async: (seq, o) => box.send(record(seq), o),
      try: (seq) => box.trySend(record(seq)),
      async finish() {
        const got = await report;
        const extra = await other.tryReceive();
        if (extra !== undefined) got.bad.push(`an extra record ${readRecord(extra.data).seq} after the last`);
        return got;
      },
      async cleanup() {
        await peer.stop();
        await remove();
      },
    };
  },
};

/** The NATS mailbox's waitables, in the order the suite runs them. */
export const NATS_WAITABLES: Waitable[] = [natsReceive, natsSend];

// ---------------------------------------------------------------------------
// The actor's side

/** The actor's handle of `address`, opened once (until `nats.forget`). */
function mailbox(ctx: RemoteContext, address: string): Promise<NatsMailbox> {
  return ctx.state.handle(`nats ${address}`, () => NatsMailbox.open(address), (p) => void p.then((box) => box.close(), () => undefined));
}

async function delayed(ctx: RemoteContext, delayMs: number | undefined): Promise<void> {
  ctx.started();
  if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
}

/** The actor's half of the NATS adapters (added to the actor's handlers by actor-main.ts). */
export const NATS_REMOTE: Record<string, (params: any, ctx: RemoteContext) => unknown> = {
  'nats.forget'({ address }, ctx) {
    ctx.state.forget(`nats ${address}`);
  },
  async 'nats.send'({ address, tag, delayMs }, ctx) {
    await delayed(ctx, delayMs);
    await (await mailbox(ctx, address)).send(unit(tag), { timeout: REMOTE_TIMEOUT });
  },
  async 'nats.receive'({ address, delayMs }, ctx) {
    await delayed(ctx, delayMs);
    return unitTag((await (await mailbox(ctx, address)).receive({ timeout: REMOTE_TIMEOUT })).data);
  },
  /** Sends unit `tag`, then receives it with a codec that reports and never returns: fetched, never handed over (killed there). */
  async 'nats.fetchAndHang'({ address, tag }, ctx) {
    await (await mailbox(ctx, address)).send(unit(tag), { timeout: REMOTE_TIMEOUT });
    const box = await NatsMailbox.open(address, {
      codec: {
        encode: (b: Buffer) => b,
        decode: (b: Buffer): Buffer => {
          ctx.started();
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
          return b;
        },
      },
    });
    await box.receive({ timeout: REMOTE_TIMEOUT });
  },
  async 'nats.blockSend'({ address, tag }, ctx) {
    const box = await mailbox(ctx, address);
    ctx.started();
    await box.send(unit(tag));
  },
  async 'nats.soakSend'({ address, count: n }, ctx) {
    const box = await mailbox(ctx, address);
    for (let seq = 0; seq < n; seq++) {
      const data = record(seq);
      if (!await box.trySend(data)) await box.send(data, { timeout: REMOTE_TIMEOUT });
    }
    return { sent: n };
  },
  async 'nats.soakReceive'({ address, count: n }, ctx) {
    const box = await mailbox(ctx, address);
    const report: SoakReport = { received: 0, bad: [] };
    for (let i = 0; i < n; i++) {
      const checked = readRecord((await box.receive({ timeout: REMOTE_TIMEOUT })).data);
      if ((!checked.ok || checked.seq !== report.received) && report.bad.length < 5) {
        report.bad.push(`record ${checked.seq} (ok ${checked.ok}) where ${report.received} was due`);
      }
      report.received = checked.seq + 1;
    }
    return report;
  },
};
