/**
 * The documentation runs as written: every program block of README.md and
 * docs/ (see test/helpers/snippets.ts for the markup) is run as JavaScript
 * and, compiled with the settings `tsc --init` writes, as TypeScript, on the
 * Node that runs this suite, from a project where `import 'ipckit'` resolves
 * to this package. Each must exit 0 by itself, and print exactly what an
 * `output` block says it prints.
 *
 * Each must also clean up after itself: no IPC object, file or process of
 * its own may outlive it (see test/helpers/run-snippets.ts: as root, each
 * run gets IPC and mount namespaces of its own, and what is left in them
 * when it ends is what it leaked).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { documentationPages, pageFolder, readSnippets, runsOf } from './helpers/snippets.js';
import { baseName, ISOLATED, runTogether } from './helpers/run-snippets.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
/** How long one program, or one group together, may take. */
const RUN_MS = 30_000;

const pages = documentationPages(ROOT).map((page) => ({ page, ...readSnippets(ROOT, page) }));
const scratch = realpathSync(mkdtempSync(path.join(tmpdir(), 'ipckit-docs-')));
const MODES = [
  { name: 'JavaScript', dir: path.join(scratch, 'js'), extension: '.js' },
  { name: 'TypeScript', dir: path.join(scratch, 'ts'), extension: '.ts' },
] as const;

/** A project of its own per language, each block of a page in the page's folder. */
function prepare(): void {
  for (const mode of MODES) {
    mkdirSync(path.join(mode.dir, 'node_modules'), { recursive: true });
    writeFileSync(path.join(mode.dir, 'package.json'), JSON.stringify({ name: `docs-${mode.extension.slice(1)}`, private: true, type: 'module' }));
    symlinkSync(ROOT, path.join(mode.dir, 'node_modules', 'ipckit'), 'dir');
    for (const { page, snippets } of pages) {
      if (snippets.length === 0) continue;
      mkdirSync(path.join(mode.dir, pageFolder(page)));
      for (const s of snippets) writeFileSync(path.join(mode.dir, pageFolder(page), baseName(s) + mode.extension), s.code);
    }
  }
}

/** tsc's errors, by file relative to the TypeScript project. */
let diagnostics: Map<string, string[]> | undefined;

async function compile(): Promise<Map<string, string[]>> {
  const dir = MODES[1].dir;
  const run = promisify(execFile);
  await run(process.execPath, [TSC, '--init'], { cwd: dir });
  const errors = new Map<string, string[]>();
  try {
    await run(process.execPath, [TSC, '-p', '.', '--pretty', 'false'], { cwd: dir, maxBuffer: 16 << 20 });
  } catch (err) {
    const { stdout, code } = err as { stdout?: string; code?: unknown };
    if (typeof stdout !== 'string' || stdout === '') throw err;
    let last: string[] | undefined;
    for (const line of stdout.split('\n')) {
      const m = /^(.+?)\((\d+),(\d+)\): (error .*)$/.exec(line);
      if (m) {
        last = errors.get(m[1]!) ?? [];
        errors.set(m[1]!, last);
        last.push(`${m[2]}:${m[3]} ${m[4]}`);
      } else if (line.trim() !== '') {
        if (!last) throw new Error(`tsc exited ${String(code)}: ${stdout}`);
        last.push(line);
      }
    }
  }
  return errors;
}

before(async () => {
  prepare();
  diagnostics = await compile();
});

after(() => {
  rmSync(scratch, { recursive: true, force: true });
});

it('the snippet markup of every page is well formed', (t) => {
  if (!ISOLATED) t.diagnostic('not root, or no unshare/nsenter: the runs are not checked for IPC objects or /tmp files left behind');
  assert.deepEqual(pages.flatMap((p) => p.problems.map((x) => `${x.page}:${x.line}: ${x.message}`)), []);
});

for (const { page, snippets } of pages) {
  if (snippets.length === 0) continue;
  describe(page, () => {
    it('compiles as TypeScript with the settings of tsc --init', () => {
      const found = snippets.flatMap((s) => {
        const file = path.posix.join(pageFolder(page), baseName(s) + '.ts');
        return (diagnostics!.get(file) ?? []).map((d) => `${page}:${s.line} (${file}) ${d}`);
      });
      assert.deepEqual(found, []);
      // tsc reports no type errors at all while any file has a syntax error
      const stopped = [...diagnostics!].filter(([, ds]) => ds.some((d) => / error TS1\d{3}:/.test(d))).map(([file]) => file);
      assert.deepEqual(stopped, [], 'tsc checked no types: fix the syntax errors of these files first');
    });
    for (const members of runsOf(snippets)) {
      const lines = members.map((s) => s.line).join(' + ');
      for (const mode of MODES) {
        it(`line ${lines} runs as ${mode.name}`, { timeout: RUN_MS + 10_000 }, async () => {
          await runTogether(members, path.join(mode.dir, pageFolder(page)), mode.extension, { runMs: RUN_MS, bind: [scratch, ROOT] });
        });
      }
    }
  });
}
