/**
 * Draws the chart of docs/performance.md#batched-calls from the results of
 * `npm run bench -- message-queue pipe socket channel` (one run, so every
 * ratio is to a C reference measured in that run):
 *
 *   node dist/bench/batch-chart.js bench/results/latest.json > docs/batches.svg
 *
 * Horizontal bars, pinned and unpinned, of each row's throughput as a
 * ratio to its C reference (1 = as fast as C; longer is better), one
 * message per call beside batched calls, with the 0.8 target marked.
 */
import { readFileSync } from 'node:fs';
import { BAR_H, PLACEMENTS, ROW_H, escapeXml, placementLegend } from './svg.js';

interface Row {
  mechanism: string;
  variant: string;
  placement: string;
  metric: string;
  value: number;
  ratio: number | null;
}

/** The bars, in order: mechanism, variant as the benchmark names it, label. */
const BARS: [string, string, string][] = [
  ['message-queue', 'ipckit posix sync', 'POSIX queue 8 KiB, sync'],
  ['message-queue', 'ipckit posix sync batch', 'POSIX queue 8 KiB, sync batch'],
  ['message-queue', 'ipckit posix sync packed', 'POSIX queue 8 KiB, sync MessageBatch'],
  ['message-queue', 'ipckit posix async packed', 'POSIX queue 8 KiB, async MessageBatch'],
  ['message-queue', 'ipckit posix sync into', 'POSIX queue 8 KiB, receiveInto'],
  ['message-queue', 'ipckit sysv sync', 'System V queue 8 KiB, sync'],
  ['message-queue', 'ipckit sysv sync batch', 'System V queue 8 KiB, sync batch'],
  ['message-queue', 'ipckit sysv sync packed', 'System V queue 8 KiB, sync MessageBatch'],
  ['message-queue', 'ipckit sysv async packed', 'System V queue 8 KiB, async MessageBatch'],
  ['message-queue', 'ipckit sysv sync into', 'System V queue 8 KiB, receiveInto'],
  ['pipe', 'ipckit pipe 256 B messages sync', 'pipe 256 B, sync (C: write each)'],
  ['pipe', 'ipckit pipe 256 B messages sync batch', 'pipe 256 B, sync batch (C: writev)'],
  ['pipe', 'ipckit pipe 256 B messages async batch', 'pipe 256 B, async batch (C: writev)'],
  ['pipe', 'ipckit pipe 256 B messages sync packed', 'pipe 256 B, sync MessageBatch (C: writev)'],
  ['pipe', 'ipckit pipe 256 B messages async packed', 'pipe 256 B, async MessageBatch (C: writev)'],
  ['pipe', 'ipckit pipe 256 B messages sync packed vs atomic C', 'pipe 256 B, sync MessageBatch (C: atomic writev)'],
  ['socket', 'ipckit unix stream 256 B sync', 'Unix stream 256 B, sync'],
  ['socket', 'ipckit unix stream 256 B sync batch', 'Unix stream 256 B, sync batch'],
  ['socket', 'ipckit unix stream 256 B sync packed', 'Unix stream 256 B, sync MessageBatch'],
  ['socket', 'ipckit unix stream 256 B async packed', 'Unix stream 256 B, async MessageBatch'],
  ['socket', 'ipckit unix seqpacket 256 B sync', 'seqpacket 256 B, sync'],
  ['socket', 'ipckit unix seqpacket 256 B sync batch', 'seqpacket 256 B, sync batch'],
  ['socket', 'ipckit unix seqpacket 256 B sync packed', 'seqpacket 256 B, sync MessageBatch'],
  ['socket', 'ipckit unix dgram 256 B sync', 'Unix datagram 256 B, sync'],
  ['socket', 'ipckit unix dgram 256 B sync batch', 'Unix datagram 256 B, sync batch'],
  ['socket', 'ipckit unix dgram 256 B sync packed', 'Unix datagram 256 B, sync MessageBatch'],
  ['socket', 'ipckit unix dgram 256 B async packed', 'Unix datagram 256 B, async MessageBatch'],
  ['channel', 'ipckit channel 256 B sync', 'channel 256 B, sync'],
  ['channel', 'ipckit channel 256 B sync batch', 'channel 256 B, sync batch'],
  ['channel', 'ipckit channel 256 B async batch', 'channel 256 B, async batch'],
  ['channel', 'ipckit channel 256 B sync packed', 'channel 256 B, sync MessageBatch'],
  ['channel', 'ipckit channel 256 B async packed', 'channel 256 B, async MessageBatch'],
];

const LABEL_W = 290;
const PLOT_W = 360;
const TOP = 40;
const BOTTOM = 40;
const WIDTH = LABEL_W + PLOT_W + 60;


const [file] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: node dist/bench/batch-chart.js bench/results/latest.json > docs/batches.svg\n');
  process.exit(2);
}
const rows = (JSON.parse(readFileSync(file, 'utf8')) as Row[]).filter((r) => r.metric === 'throughput_mb_s' && r.ratio !== null);
const ratioOf = (mechanism: string, variant: string, placement: string): number | undefined =>
  rows.find((r) => r.mechanism === mechanism && r.variant === variant && r.placement === placement)?.ratio ?? undefined;
const found = BARS.flatMap(([m, v]) => PLACEMENTS.map(([p]) => ratioOf(m, v, p))).filter((r): r is number => r !== undefined);
const max = Math.max(1.2, Math.ceil(Math.max(...found, 0) * 5) / 5);
const xOf = (v: number): number => LABEL_W + Math.min(v, max) / max * PLOT_W;
const height = TOP + BARS.length * ROW_H + BOTTOM;
const out: string[] = [
  `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="sans-serif" font-size="12">`,
  `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
  `<text x="${WIDTH / 2}" y="16" text-anchor="middle" font-weight="bold">throughput as a ratio to C in the same run (longer is better)</text>`,
];
for (let t = 0; t <= max + 1e-9; t += max > 2 ? 0.5 : 0.2) {
  const x = xOf(t);
  out.push(`<line x1="${x}" y1="${TOP - 4}" x2="${x}" y2="${TOP + BARS.length * ROW_H}" stroke="#eee"/>`);
  out.push(`<text x="${x}" y="${TOP + BARS.length * ROW_H + 14}" text-anchor="middle" font-size="10">${t.toFixed(1)}</text>`);
}
for (const [at, colour, label] of [[0.8, '#2ca02c', 'target 0.8'], [1, '#444', 'C']] as const) {
  const x = xOf(at);
  out.push(`<line x1="${x}" y1="${TOP - 8}" x2="${x}" y2="${TOP + BARS.length * ROW_H}" stroke="${colour}" stroke-dasharray="4 3"/>`);
  out.push(`<text x="${x}" y="${TOP - 10}" text-anchor="middle" font-size="10" fill="${colour}">${label}</text>`);
}
BARS.forEach(([mechanism, variant, label], i) => {
  const y = TOP + i * ROW_H;
  out.push(`<text x="${LABEL_W - 6}" y="${y + BAR_H + 3}" text-anchor="end" font-size="11">${escapeXml(label)}</text>`);
  PLACEMENTS.forEach(([placement, colour], j) => {
    const ratio = ratioOf(mechanism, variant, placement);
    if (ratio === undefined) return;
    const by = y + j * BAR_H;
    out.push(`<rect x="${LABEL_W}" y="${by}" width="${Math.max(1, xOf(ratio) - LABEL_W)}" height="${BAR_H - 1}" fill="${colour}"/>`);
    out.push(`<text x="${xOf(ratio) + 3}" y="${by + BAR_H - 1}" font-size="9">${ratio.toFixed(2)}×</text>`);
  });
});
out.push(...placementLegend(height));
out.push('</svg>', '');
process.stdout.write(out.join('\n'));
