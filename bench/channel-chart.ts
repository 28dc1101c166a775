/**
 * Draws the chart of docs/performance.md#shared-memory-channel from the
 * results `npm run bench -- channel` writes (bench/results/latest.json):
 *
 *   node dist/bench/channel-chart.js bench/results/latest.json > docs/channel.svg
 *
 * Two panels of horizontal bars, pinned and unpinned side by side: the
 * median round trip of a 64-byte message (µs, log scale: shorter is
 * better), and the throughput of 64 KiB messages (MB/s, log scale: longer
 * is better), for the channel, the C reference and Node's other ways.
 */
import { readFileSync } from 'node:fs';
import { BAR_H, PLACEMENTS, ROW_H, escapeXml, placementLegend } from './svg.js';

interface Row {
  mechanism: string;
  variant: string;
  placement: string;
  metric: string;
  value: number;
}

/** The bars of each panel, in order: the variant as the benchmark names it, and its label. */
const ROUND_TRIPS: [string, string][] = [
  ['C futex ring', 'C futex ring'],
  ['ipckit channel sync', 'channel, sync calls'],
  ['ipckit channel async', 'channel, async calls'],
  ['C busy-polling ring (CPUs 0|1)', 'C ring, busy-polling'],
  ['ipckit channel busy-polling (CPUs 0|1)', 'channel, busy-polling'],
  ['ipckit posix mq sync', 'ipckit POSIX queue, sync'],
  ['ipckit unix stream sync', 'ipckit Unix stream, sync'],
  ['node net unix', 'node net, Unix socket'],
  ['node worker postMessage', 'node worker postMessage'],
  ['node child_process IPC', 'node child_process IPC'],
];
const THROUGHPUT: [string, string][] = [
  ['C futex ring', 'C futex ring (memcpy)'],
  ['ipckit channel sync into', 'channel, receiveInto'],
  ['ipckit channel loan+view', 'channel, loan + view'],
  ['ipckit channel sync', 'channel, sync calls'],
  ['ipckit channel async', 'channel, async calls'],
  ['ipckit unix stream sync', 'ipckit Unix stream, sync'],
  ['node net unix', 'node net, Unix socket'],
  ['node worker postMessage', 'node worker postMessage'],
  ['node child_process IPC', 'node child_process IPC'],
];

const LABEL_W = 180;
const PLOT_W = 300;
const TOP = 40;
const BOTTOM = 36;
const PANEL_W = LABEL_W + PLOT_W + 20;


function fmt(v: number): string {
  if (v >= 1000) return `${Math.round(v).toLocaleString('en-US')}`;
  return v >= 10 ? v.toFixed(0) : v.toFixed(2);
}

/** One panel at x0: a bar per variant and placement found in `rows`, on a log axis from `min` to `max`. */
function panel(rows: Row[], x0: number, title: string, metric: string, bars: [string, string][], min: number, max: number): string {
  const xOf = (v: number): number => x0 + LABEL_W + (Math.log10(v) - Math.log10(min)) / (Math.log10(max) - Math.log10(min)) * PLOT_W;
  const out: string[] = [`<text x="${x0 + PANEL_W / 2}" y="16" text-anchor="middle" font-weight="bold">${escapeXml(title)}</text>`];
  const height = bars.length * ROW_H;
  // Decade grid lines and their labels.
  for (let d = Math.ceil(Math.log10(min)); d <= Math.floor(Math.log10(max)); d++) {
    const x = xOf(10 ** d);
    out.push(`<line x1="${x}" y1="${TOP - 4}" x2="${x}" y2="${TOP + height}" stroke="#ddd"/>`);
    out.push(`<text x="${x}" y="${TOP + height + 14}" text-anchor="middle" font-size="10">${fmt(10 ** d)}</text>`);
  }
  bars.forEach(([variant, label], i) => {
    const y = TOP + i * ROW_H;
    out.push(`<text x="${x0 + LABEL_W - 6}" y="${y + BAR_H + 3}" text-anchor="end" font-size="11">${escapeXml(label)}</text>`);
    PLACEMENTS.forEach(([placement, colour], j) => {
      const row = rows.find((r) => r.variant === variant && r.placement === placement && r.metric === metric);
      if (row === undefined) return;
      const v = Math.min(Math.max(row.value, min), max);
      const by = y + j * BAR_H;
      out.push(`<rect x="${x0 + LABEL_W}" y="${by}" width="${Math.max(1, xOf(v) - x0 - LABEL_W)}" height="${BAR_H - 1}" fill="${colour}"/>`);
      out.push(`<text x="${xOf(v) + 3}" y="${by + BAR_H - 1}" font-size="9">${fmt(row.value)}</text>`);
    });
  });
  return out.join('\n');
}

const [file] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: node dist/bench/channel-chart.js bench/results/latest.json > docs/channel.svg\n');
  process.exit(2);
}
const rows = (JSON.parse(readFileSync(file, 'utf8')) as Row[]).filter((r) => r.mechanism === 'channel');
const height = TOP + Math.max(ROUND_TRIPS.length, THROUGHPUT.length) * ROW_H + BOTTOM + 18;
const width = 2 * PANEL_W;
const legend = placementLegend(height);
process.stdout.write([
  `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
  `<rect width="${width}" height="${height}" fill="white"/>`,
  panel(rows, 0, 'round trip, 64 B, p50 µs (log; shorter is better)', 'rtt_p50_us', ROUND_TRIPS, 0.1, 100),
  panel(rows, PANEL_W, 'throughput, 64 KiB messages, MB/s (log; longer is better)', 'throughput_mb_s', THROUGHPUT, 100, 100_000),
  ...legend,
  '</svg>',
  '',
].join('\n'));
