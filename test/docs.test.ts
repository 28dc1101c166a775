/**
 * The documentation runs as written: every program block of README.md and
 * docs/ (see test/helpers/snippets.ts for the markup) is run as JavaScript
 * and, compiled with the settings `tsc --init` writes, as TypeScript, on the
 * Node that runs this suite, from a project where `import 'ipckit'` resolves
 * to this package. Each must exit 0 by itself, and print exactly what an
 * `output` block says it prints.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { documentationPages, pageFolder, readSnippets, runsOf, type Snippet } from './helpers/snippets.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
/** How long one program, or one group together, may take. */
const RUN_MS = 30_000;

const pages = documentationPages(ROOT).map((page) => ({ page, ...readSnippets(ROOT, page) }));
const scratch = mkdtempSync(path.join(tmpdir(), 'ipckit-docs-'));
const MODES = [
  { name: 'JavaScript', dir: path.join(scratch, 'js'), extension: '.js' },
  { name: 'TypeScript', dir: path.join(scratch, 'ts'), extension: '.ts' },
] as const;

/** The file a block is written to, without its extension. */
function baseName(s: Snippet): string {
  return s.file !== undefined ? s.file.slice(0, -'.js'.length) : `line-${s.line}`;
}

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

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts one program; `spoke` resolves at its first line of output or its exit, whichever comes first. */
function start(file: string, cwd: string): { child: ChildProcess; spoke: Promise<void>; exited: Promise<Exit> } {
  const env = { ...process.env };
  delete env['NODE_TEST_CONTEXT'];
  const child = spawn(process.execPath, [file], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let speak: () => void = () => {};
  const spoke = new Promise<void>((resolve) => { speak = resolve; });
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (stdout.includes('\n')) speak();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  const exited = new Promise<Exit>((resolve) => {
    child.on('close', (code, signal) => {
      speak();
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, spoke, exited };
}

/** Runs the members of a run in page order and checks how each ended. */
async function runTogether(members: Snippet[], dir: string, extension: string): Promise<void> {
  const started: { snippet: Snippet; child: ChildProcess; exited: Promise<Exit> }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const overtime = new Promise<'overtime'>((resolve) => { timer = setTimeout(() => resolve('overtime'), RUN_MS); });
  try {
    for (const snippet of members) {
      const program = start(baseName(snippet) + (extension === '.ts' ? '.js' : extension), dir);
      started.push({ snippet, ...program });
      if (await Promise.race([program.spoke, overtime]) === 'overtime') break;
    }
    const all = Promise.all(started.map((s) => s.exited));
    if (await Promise.race([all, overtime]) === 'overtime') {
      for (const s of started) s.child.kill('SIGKILL');
      const ends = await all;
      assert.fail(`still running after ${RUN_MS} ms:\n` + ends.map((e, i) => describeExit(started[i]!.snippet, e)).join('\n'));
    }
    const ends = await all;
    ends.forEach((e, i) => {
      const { snippet } = started[i]!;
      assert.equal(e.code, 0, describeExit(snippet, e));
      if (snippet.output !== undefined) assert.equal(e.stdout, snippet.output, `the output of ${snippet.page}:${snippet.line}`);
    });
  } finally {
    clearTimeout(timer);
    for (const s of started) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
  }
}

function describeExit(s: Snippet, e: Exit): string {
  return `${s.page}:${s.line} ended with ${e.code ?? e.signal}\n--- stdout\n${e.stdout}--- stderr\n${e.stderr}`;
}

it('the snippet markup of every page is well formed', () => {
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
          await runTogether(members, path.join(mode.dir, pageFolder(page)), mode.extension);
        });
      }
    }
  });
}
