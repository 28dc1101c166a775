/**
 * A producer or consumer process of the reliability suite:
 * `node dist/soak/peer.js '<json params>'`.
 *
 * It opens its endpoint, prints `ready`, waits for a line on stdin, then
 * works: a producer sends numbered, checksummed messages until its deadline;
 * a consumer receives and records each one in the ledger until a stop
 * marker comes. Either prints one JSON line of figures at the end. `mode`
 * picks the calls: `sync`, `async`, or `mixed` (alternating).
 */
import { readSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import { Ledger, MAX_SEQ } from './ledger.js';
import { MESSAGE_SIZE, transportNamed } from './transports.js';

export interface PeerParams {
  role: 'producer' | 'consumer';
  transport: string;
  address: string;
  mode: 'sync' | 'async' | 'mixed';
  /** Index among the producers, or among the consumers. */
  index: number;
  producers: number;
  consumers: number;
  ledger: string;
  /** Producers: how long to send after the start line, ms. */
  runMs: number;
}

/** The producer index of a stop marker. */
export const STOP = 0xffffffff;

/** A message: producer, sequence, send time (ns, CLOCK_MONOTONIC), payload, CRC32 of all before it. */
export function encodeMessage(producer: number, seq: number, into = Buffer.alloc(MESSAGE_SIZE)): Buffer {
  into.writeUInt32LE(producer, 0);
  into.writeUInt32LE(seq, 4);
  into.writeBigUInt64LE(process.hrtime.bigint(), 8);
  for (let i = 16; i < MESSAGE_SIZE - 4; i++) into[i] = (producer * 31 + seq * 17 + i) & 0xff;
  into.writeUInt32LE(crc32(into.subarray(0, MESSAGE_SIZE - 4)), MESSAGE_SIZE - 4);
  return into;
}

/** A stop marker: one per consumer ends the run. */
export function stopMarker(): Buffer {
  return encodeMessage(STOP, 0);
}

async function main(params: PeerParams): Promise<void> {
  const endpoint = await transportNamed(params.transport).open(params.address, params.role === 'producer' ? 'send' : 'receive');
  const ledger = Ledger.open(params.ledger, params.producers, params.consumers);
  const delay = monitorEventLoopDelay({ resolution: 10 });
  process.stdout.write('ready\n');
  readSync(0, Buffer.alloc(16));
  delay.enable();
  const sync = (i: number): boolean => params.mode === 'sync' || (params.mode === 'mixed' && i % 2 === 0);
  let figures: Record<string, unknown>;
  if (params.role === 'producer') {
    const until = performance.now() + params.runMs;
    const message = Buffer.alloc(MESSAGE_SIZE);
    let seq = 0;
    for (; seq < MAX_SEQ && performance.now() < until; seq++) {
      encodeMessage(params.index, seq, message);
      if (sync(seq)) endpoint.sendSync(message);
      else await endpoint.send(message);
      ledger.setSent(params.index, seq + 1);
    }
    figures = { sent: seq };
  } else {
    // A reservoir of latencies (µs): every message counts, memory stays bounded.
    const reservoir = new Float64Array(20_000);
    let seen = 0;
    for (let i = 0; ; i++) {
      const m = Buffer.from(sync(i) ? endpoint.receiveSync() : await endpoint.receive());
      const producer = m.readUInt32LE(0);
      if (crc32(m.subarray(0, MESSAGE_SIZE - 4)) !== m.readUInt32LE(MESSAGE_SIZE - 4)) {
        ledger.add(params.index, 'corrupt');
        continue;
      }
      if (producer === STOP) break;
      const latency = Number(process.hrtime.bigint() - m.readBigUInt64LE(8)) / 1000;
      if (seen < reservoir.length) reservoir[seen] = latency;
      else {
        const j = Math.floor(Math.random() * (seen + 1));
        if (j < reservoir.length) reservoir[j] = latency;
      }
      seen++;
      if (producer >= params.producers) {
        ledger.add(params.index, 'corrupt');
        continue;
      }
      ledger.record(params.index, producer, m.readUInt32LE(4));
    }
    figures = { latenciesUs: Array.from(reservoir.subarray(0, Math.min(seen, reservoir.length))) };
  }
  delay.disable();
  endpoint.close();
  ledger.segment.close();
  process.stdout.write(`${JSON.stringify({ ...figures, loopDelayP99Ms: delay.percentile(99) / 1e6 })}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main(JSON.parse(process.argv[2]!) as PeerParams);
