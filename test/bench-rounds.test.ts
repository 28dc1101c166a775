/**
 * The benchmark harness's rounds: comparisons measured in turns, each row
 * the median of its rounds with the lowest and highest beside it, and a
 * ratio that is the ratio of the two medians (DESIGN.md §7).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type Measurement, inRounds, rowsFor } from '../bench/harness.js';

describe('benchmark rounds', () => {
  it('runs every trial once a round, in turn, and reports each figure\'s median, lowest and highest', async () => {
    const order: string[] = [];
    const c = [900, 2600, 1500, 1200, 2000];
    const ours = [1100, 1400, 1000, 1300, 1200];
    let round = 0;
    const [ref, mine] = await inRounds(5, [
      async () => {
        order.push('C');
        return { mb_s: c[round]! };
      },
      async () => {
        order.push('ipckit');
        // A count a run reports besides its figures, and a latency figure.
        return { mb_s: ours[round]!, p50_us: 10 - round++, received: 7 } as Measurement;
      },
    ]);
    assert.deepEqual(order, ['C', 'ipckit', 'C', 'ipckit', 'C', 'ipckit', 'C', 'ipckit', 'C', 'ipckit']);
    assert.deepEqual(ref, { rounds: 5, spread: { mb_s: [900, 2600] }, mb_s: 1500 });
    assert.deepEqual(mine, { rounds: 5, spread: { mb_s: [1000, 1400], p50_us: [6, 10] }, received: 35, mb_s: 1200, p50_us: 8 });
    const rows = rowsFor('pipe', 'ipckit x', 'unpinned', mine!, 'C x', ref!);
    const tput = rows.find((r) => r.metric === 'throughput_mb_s')!;
    assert.deepEqual(tput, {
      mechanism: 'pipe', variant: 'ipckit x', placement: 'unpinned', metric: 'throughput_mb_s', value: 1200,
      reference: { name: 'C x', value: 1500 }, ratio: 0.8, rounds: 5, spread: [1000, 1400],
    });
    // A figure the reference lacks has no ratio, but keeps its own spread.
    const p50 = rows.find((r) => r.metric === 'rtt_p50_us')!;
    assert.equal(p50.reference, null);
    assert.deepEqual(p50.spread, [6, 10]);
  });

  it('takes the mean of the middle two for an even number of rounds, and leaves a single round as it ran', async () => {
    const values = [4, 1, 3, 2];
    const [even] = await inRounds(4, [async () => ({ ns_per_op: values.shift()! })]);
    assert.deepEqual(even, { rounds: 4, spread: { ns_per_op: [1, 4] }, ns_per_op: 2.5 });
    const [one] = await inRounds(1, [async () => ({ mb_s: 3, sent: 9 } as Measurement)]);
    assert.deepEqual(one, { mb_s: 3, sent: 9 });
    const rows = rowsFor('pipe', 'C', 'pinned', one!, null, null);
    assert.equal(rows.length, 1);
    assert.equal('rounds' in rows[0]!, false);
    assert.equal('spread' in rows[0]!, false);
  });
});
