/**
 * The API reference in docs/api/ is generated from the TSDoc by
 * `npm run docs:api`. Generated again here into a temporary folder, it must
 * match the committed one file for file, so it cannot fall behind the source.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const COMMITTED = path.join(ROOT, 'docs', 'api');
const REGENERATE = 'run `npm run docs:api` and commit docs/api/';

/** Every file under `dir`, as paths relative to it, sorted. */
function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
    .sort();
}

describe('docs/api', () => {
  const out = mkdtempSync(path.join(tmpdir(), 'ipckit-api-docs-'));
  after(() => rmSync(out, { recursive: true, force: true }));

  it('is what `npm run docs:api` makes of the source now', { timeout: 60_000 }, () => {
    const typedoc = path.join(ROOT, 'node_modules', 'typedoc', 'bin', 'typedoc');
    const run = spawnSync(process.execPath, [typedoc, '--out', out, '--logLevel', 'Warn'], {
      cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, encoding: 'utf8',
    });
    assert.equal(run.status, 0, `typedoc failed (its warnings are errors: an export without TSDoc, a broken link; see typedoc.json):\n${run.stdout}${run.stderr}`);
    const made = files(out);
    const committed = files(COMMITTED);
    for (const file of [...new Set([...made, ...committed])].sort()) {
      if (!committed.includes(file)) assert.fail(`docs/api/${file} is missing: ${REGENERATE}.`);
      if (!made.includes(file)) assert.fail(`docs/api/${file} is no longer generated: ${REGENERATE}.`);
      if (!readFileSync(path.join(out, file)).equals(readFileSync(path.join(COMMITTED, file)))) {
        assert.fail(`docs/api/${file} is out of date: ${REGENERATE}.`);
      }
    }
  });
});
