/**
 * Draws the chart of docs/performance.md#concurrent-connections from the
 * reports of `ipckit bench connections --json` (one JSON object per line):
 *
 *   node dist/bench/connections-chart.js results.jsonl > docs/connections.svg
 *
 * Two panels over N (the connections asked for, log scale): connections
 * sustained, and p99 latency of those answered. One line per strategy.
 */
import { readFileSync } from 'node:fs';

interface Report {
  strategy: string;
  connections: number;
  sustained: number;
  p99Ms: number | null;
  transport?: string;
  placement?: string;
}

const COLOURS: Record<string, string> = {
  net: '#888888', event: '#1f77b4', poll: '#2ca02c', prefork: '#9467bd', fork: '#d62728', blocking: '#ff7f0e',
};

const WIDTH = 420;
const HEIGHT = 300;
const MARGIN = { left: 60, right: 16, top: 34, bottom: 44 };

function log10(x: number): number {
  return Math.log10(Math.max(x, 1e-9));
}

/** One panel: x = N (log), y = value (log), a polyline per strategy. */
function panel(reports: Report[], x0: number, title: string, value: (r: Report) => number | null, yMin: number, yMax: number, unit: string): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const sizes = [...new Set(reports.map((r) => r.connections))].sort((a, b) => a - b);
  const xOf = (n: number): number => x0 + MARGIN.left + (log10(n) - log10(sizes[0]!)) / (log10(sizes.at(-1)!) - log10(sizes[0]!)) * plotW;
  const yOf = (v: number): number => MARGIN.top + plotH - (log10(v) - log10(yMin)) / (log10(yMax) - log10(yMin)) * plotH;
  const parts: string[] = [`<text x="${x0 + WIDTH / 2}" y="18" text-anchor="middle" font-weight="bold">${title}</text>`];
  for (let decade = Math.ceil(log10(yMin)); decade <= Math.floor(log10(yMax)); decade++) {
    const y = yOf(10 ** decade);
    parts.push(`<line x1="${x0 + MARGIN.left}" x2="${x0 + WIDTH - MARGIN.right}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${x0 + MARGIN.left - 6}" y="${y + 4}" text-anchor="end">${(10 ** decade).toLocaleString('en-US')}${unit}</text>`);
  }
  for (const n of sizes) {
    parts.push(`<text x="${xOf(n)}" y="${HEIGHT - MARGIN.bottom + 16}" text-anchor="middle">${n.toLocaleString('en-US')}</text>`);
  }
  parts.push(`<text x="${x0 + MARGIN.left + plotW / 2}" y="${HEIGHT - 8}" text-anchor="middle">connections asked for (N)</text>`);
  for (const strategy of Object.keys(COLOURS)) {
    const points = reports.filter((r) => r.strategy === strategy).sort((a, b) => a.connections - b.connections)
      .map((r) => [r.connections, value(r)] as const).filter((p): p is readonly [number, number] => p[1] !== null && p[1] > 0);
    if (points.length === 0) continue;
    const path = points.map(([n, v]) => `${xOf(n).toFixed(1)},${yOf(Math.min(Math.max(v, yMin), yMax)).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${COLOURS[strategy]}" stroke-width="2" points="${path}"/>`);
    for (const [n, v] of points) {
      parts.push(`<circle cx="${xOf(n).toFixed(1)}" cy="${yOf(Math.min(Math.max(v, yMin), yMax)).toFixed(1)}" r="3" fill="${COLOURS[strategy]}"/>`);
    }
  }
  return parts.join('');
}

const file = process.argv[2];
if (file === undefined) {
  process.stderr.write('usage: node dist/bench/connections-chart.js <reports.jsonl>\n');
  process.exit(2);
}
const reports = readFileSync(file, 'utf8').split('\n').filter((line) => line.trim() !== '')
  .map((line) => JSON.parse(line) as Report)
  .filter((r) => (r.transport ?? 'unix') === 'unix' && (r.placement ?? 'unpinned') === 'unpinned' && typeof r.sustained === 'number');
const legend = Object.entries(COLOURS).map(([strategy, colour], i) =>
  `<rect x="${MARGIN.left + i * 120}" y="${HEIGHT + 8}" width="12" height="12" fill="${colour}"/>` +
  `<text x="${MARGIN.left + i * 120 + 18}" y="${HEIGHT + 19}">${strategy === 'net' ? 'net (Node reference)' : strategy}</text>`).join('');
process.stdout.write(`<svg xmlns="http://www.w3.org/2000/svg" width="${2 * WIDTH}" height="${HEIGHT + 30}" font-family="sans-serif" font-size="11">` +
  '<rect width="100%" height="100%" fill="white"/>' +
  panel(reports, 0, 'connections sustained', (r) => r.sustained, 1, 10_000, '') +
  panel(reports, WIDTH, 'p99 latency of answered requests', (r) => r.p99Ms, 0.1, 10_000, ' ms') +
  `${legend}</svg>\n`);
