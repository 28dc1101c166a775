#!/usr/bin/env node
/**
 * The reliability suite: `npm run soak -- --minutes N`.
 *
 * Runs every section for its share of N minutes (default 1) and prints one
 * Markdown report: exactly-once delivery under load, chaos (processes
 * killed mid-flight), leak cycles, resource exhaustion, the security matrix
 * and fuzzing. Exits 1 if any section found a broken invariant.
 */
import { writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { parseArgs } from 'node:util';
import { type Section, type SectionResult, renderMarkdown } from './report.js';
import { SECTIONS } from './sections.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '1' },
    only: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});

if (values.help) {
  process.stdout.write(`Usage: npm run soak -- [--minutes N] [--only ${SECTIONS.map((s) => s.section.name).join(',')}] [--out report.md]\n`);
  process.exit(0);
}

const minutes = Number(values.minutes);
if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 24 * 60) {
  process.stderr.write(`--minutes must be a number of minutes above 0; got ${values.minutes}\n`);
  process.exit(2);
}
const only = values.only?.split(',').map((s) => s.trim());
const known = new Set(SECTIONS.map((s) => s.section.name));
for (const name of only ?? []) {
  if (!known.has(name)) {
    process.stderr.write(`--only: no section "${name}" (sections: ${[...known].join(', ')})\n`);
    process.exit(2);
  }
}

const chosen = SECTIONS.filter((s) => only === undefined || only.includes(s.section.name));
const totalWeight = chosen.reduce((sum, s) => sum + s.weight, 0);
const results: SectionResult[] = [];
const started = Date.now();
for (const { section, weight } of chosen) {
  const budgetMs = (minutes * 60_000 * weight) / totalWeight;
  results.push(await runSection(section, budgetMs));
}

const header = [
  `## Reliability run: ${minutes} minute(s), ${new Date(started).toISOString().slice(0, 16)}Z`,
  '',
  `Node ${process.version}, Linux ${release()}, ${cpus().length} CPUs (${cpus()[0]?.model.trim() ?? 'unknown'}); ` +
    `took ${((Date.now() - started) / 60_000).toFixed(1)} min. Command: \`npm run soak -- --minutes ${minutes}\`.`,
].join('\n');
const report = renderMarkdown(results, header);
process.stdout.write(`${report}\n`);
if (values.out !== undefined) writeFileSync(values.out, `${report}\n`);
const failed = results.flatMap((r) => r.failures.map((f) => `${r.title}: ${f}`));
if (failed.length > 0) {
  process.stderr.write(`\n${failed.length} invariant(s) broken:\n${failed.map((f) => `  - ${f}`).join('\n')}\n`);
  process.exit(1);
}

async function runSection(section: Section, budgetMs: number): Promise<SectionResult> {
  const t0 = Date.now();
  process.stderr.write(`[soak] ${section.name}: ${(budgetMs / 1000).toFixed(0)} s\n`);
  try {
    const result = await section.run({ budgetMs, log: (line) => process.stderr.write(`[soak] ${section.name}: ${line}\n`) });
    process.stderr.write(`[soak] ${section.name}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${result.failures.length} failure(s)\n`);
    return result;
  } catch (err) {
    // A section that throws is itself a failure, reported with the rest.
    return { title: section.name, about: 'The section did not complete.', columns: ['error'], rows: [[String((err as Error)?.stack ?? err)]], failures: [`threw ${String(err)}`] };
  }
}
