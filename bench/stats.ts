/** Measurement helpers shared by the Node sides of every benchmark. */

/** Median and 99th percentile of round-trip samples (µs), chosen as the C references do. */
export function latency(samples: Float64Array): { p50_us: number; p99_us: number } {
  const sorted = Float64Array.from(samples).sort();
  return { p50_us: sorted[Math.floor(sorted.length / 2)]!, p99_us: sorted[Math.floor((sorted.length * 99) / 100)]! };
}

/** Runs `roundTrip` warmup + iterations times, timing the last `iterations`. */
export async function measureRoundTrips(iterations: number, roundTrip: () => void | Promise<void>): Promise<void> {
  const warmup = warmupCount(iterations);
  const samples = new Float64Array(iterations);
  for (let i = 0; i < warmup + iterations; i++) {
    const t0 = process.hrtime.bigint();
    const pending = roundTrip();
    if (pending !== undefined) await pending;
    if (i >= warmup) samples[i - warmup] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  print(latency(samples));
}

/**
 * Streams a warm-up batch (see {@link throughputBatches}), then times a
 * batch of `messages` of `size` bytes and prints MB/s. `batch(n)` sends n
 * messages and waits for the peer's acknowledgement of the whole batch.
 */
export async function measureThroughput(messages: number, size: number, batch: (n: number) => Promise<void>): Promise<void> {
  const [warmup, timed] = throughputBatches(messages) as [number, number];
  await batch(warmup);
  const t0 = process.hrtime.bigint();
  await batch(timed);
  const us = Number(process.hrtime.bigint() - t0) / 1000;
  print({ mb_s: (messages * size) / us });
}

/**
 * How many times as many messages the batched small-message rows move as
 * the single ones: batches move several times as much a second, and their
 * timed part must still be long enough to measure, past the JIT's warm-up.
 * At five times (1,000,000 messages of 256 bytes) batched C timed about
 * 40 ms on a Unix stream, ten scheduler ticks, and ipckit's rows read a
 * third less than over four times as many, most of it the warm-up's end.
 */
export const BATCHED_SCALE = 20;

/**
 * The batch sizes a throughput peer acknowledges, in order: a warm-up as
 * long as the timed part, then the timed part. A tenth was too short for
 * the JIT: timed in slices of 20,000 messages of 8 KiB, a pinned pair of
 * POSIX queue peers with async `MessageBatch` calls (ten messages a call)
 * only reached its steady rate after about 200,000 messages, 0.5 s, and the
 * first tenth of it ran at half that rate. Its optimizing compiler shares
 * the one CPU with both peers. The C references, compiled ahead of time,
 * keep a warm-up of a tenth.
 */
export function throughputBatches(messages: number): number[] {
  return [messages, messages];
}

function warmupCount(n: number): number {
  return Math.floor(n / 10);
}

/** Total round trips a server must serve for `iterations` measured ones. */
export function totalRoundTrips(iterations: number): number {
  return iterations + warmupCount(iterations);
}

export function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}
