/**
 * The doc-snippet runner itself (test/helpers/snippets.ts and
 * test/helpers/run-snippets.ts): markup that would let a block run other than
 * as marked is reported, and a block that hangs, leaves something behind or
 * never gets started fails.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseSnippets, type Snippet } from './helpers/snippets.js';
import { baseName, ISOLATED, runTogether } from './helpers/run-snippets.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function problems(markdown: string): string[] {
  return parseSnippets(markdown, 'page.md').problems.map((p) => `${p.line}: ${p.message}`);
}

describe('the snippet markup', () => {
  it('reports a marker with a typo, in the wrong case or with text after it, instead of ignoring it', () => {
    for (const marker of ['<!-- snipet: output -->', '<!-- Snippet: output -->', '<!--snippets: output-->', '<!-- snippet: output --> x']) {
      const found = problems(['```js', 'console.log(1);', '```', '', marker, '```text', '1', '```'].join('\n'));
      assert.equal(found.length, 1, `${marker}: ${found.join('; ')}`);
      assert.match(found[0]!, /^5: this looks like a snippet marker/);
    }
    assert.deepEqual(problems('Write `<!-- snippet: output -->` before it.\n'), [], 'a marker quoted in inline code is prose');
  });

  it('reads a marker indented in a list item, and the block under it without the indentation', () => {
    const { snippets, problems: found } = parseSnippets([
      '- first:',
      '',
      '  <!-- snippet: group=pair -->',
      '  ```js',
      '  console.log("a");',
      '  ```',
      '- second:',
      '  <!-- snippet: group=pair -->',
      '  ```js',
      '  console.log("b");',
      '  ```',
      '  <!-- snippet: output -->',
      '  ```text',
      '  b',
      '  ```',
    ].join('\n'), 'page.md');
    assert.deepEqual(found, []);
    assert.deepEqual(snippets.map((s) => [s.line, s.group, s.code, s.output]), [
      [4, 'pair', 'console.log("a");\n', undefined],
      [9, 'pair', 'console.log("b");\n', 'b\n'],
    ]);
  });

  it('reads fences of four backticks and of tildes, with shorter fences inside', () => {
    const { snippets, problems: found } = parseSnippets([
      '````js',
      'const fence = `',
      '```',
      '`;',
      '````',
      '~~~ts',
      '// ```',
      'console.log(1);',
      '~~~',
    ].join('\n'), 'page.md');
    assert.deepEqual(found, []);
    assert.deepEqual(snippets.map((s) => s.code), ['const fence = `\n```\n`;\n', '// ```\nconsole.log(1);\n']);
  });

  it('wants an output block right after its program, with no other fence between', () => {
    const found = problems(['```js', 'console.log(1);', '```', '```sh', 'node x.js', '```', '<!-- snippet: output -->', '```text', '1', '```'].join('\n'));
    assert.deepEqual(found, ['8: an output block must directly follow the program it shows (no other fence between them)']);
    assert.deepEqual(problems(['<!-- snippet: file=child.js -->', '```js', '```', '<!-- snippet: output -->', '```text', '```', '```js', 'import "./child.js";', '```'].join('\n')),
      ['5: an output block must directly follow the program it shows (no other fence between them)']);
  });

  it('reports a key given twice, a group of one block and a module no block uses', () => {
    assert.deepEqual(problems(['<!-- snippet: group=a group=b -->', '```js', '```', '<!-- snippet: group=b -->', '```js', '```'].join('\n')),
      ['1: group is given twice', '2: group=a has this block only (a typo in the name of its group?)', '5: group=b has this block only (a typo in the name of its group?)']);
    assert.deepEqual(problems(['<!-- snippet: group=server -->', '```js', '```', '<!-- snippet: group=sever -->', '```js', '```'].join('\n')).length, 2);
    assert.deepEqual(problems(['<!-- snippet: file=handler.js -->', '```js', '```', '```js', 'console.log(1);', '```'].join('\n')),
      ['2: file=handler.js: no other block of the page uses this module']);
    assert.deepEqual(problems(['<!-- snippet: file=handler.js -->', '```js', '```', '```js', 'await import("./handler.js");', '```'].join('\n')), []);
  });
});

describe('the snippet runner', () => {
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'ipckit-snippets-')));
  mkdirSync(path.join(dir, 'node_modules'));
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ private: true, type: 'module' }));
  symlinkSync(ROOT, path.join(dir, 'node_modules', 'ipckit'), 'dir');
  after(() => rmSync(dir, { recursive: true, force: true }));
  let line = 0;
  /** Programs written to `dir` as blocks of one run (a group if more than one). */
  function blocks(...codes: string[]): Snippet[] {
    return codes.map((code) => {
      const s: Snippet = { page: 'page.md', line: ++line, code, ...(codes.length > 1 ? { group: 'g' } : {}) };
      writeFileSync(path.join(dir, baseName(s) + '.js'), code);
      return s;
    });
  }
  const run = (members: Snippet[], runMs = 10_000): Promise<void> => runTogether(members, dir, '.js', { runMs, bind: [ROOT] });

  it('passes a group whose members clean up, and checks their output', async () => {
    const [server, client] = blocks(
      "import { PosixMessageQueue } from 'ipckit';\nconst q = PosixMessageQueue.create('/snippets-ok', { codec: 'json' });\n" +
        "console.log('ready');\nconst { data } = await q.receive({ timeout: 5000 });\nconsole.log(data.n);\nq.unlink();\nq.close();\n",
      "import { PosixMessageQueue } from 'ipckit';\nconst q = PosixMessageQueue.open('/snippets-ok', { codec: 'json' });\nawait q.send({ n: 7 });\nq.close();\n");
    server!.output = 'ready\n7\n';
    await run([server!, client!]);
    server!.output = 'ready\n8\n';
    await assert.rejects(run([server!, client!]), /the output of page\.md/);
  });

  it('fails a program that throws in a promise nobody awaits', async () => {
    await assert.rejects(run(blocks("Promise.reject(new Error('lost')).then(() => {});\nconsole.log('done');\n")), /ended with 1[\s\S]*lost/);
  });

  it('fails a program that leaves a file in its folder, or a process running', async () => {
    await assert.rejects(run(blocks("import { writeFileSync } from 'node:fs';\nwriteFileSync('left.txt', 'x');\n")), /left\.txt \(in the page's folder\)/);
    await assert.rejects(run(blocks("import { spawn } from 'node:child_process';\nspawn('sleep', ['30'], { stdio: 'ignore' }).unref();\n")),
      /a process started by page\.md:\d+/);
  });

  it('fails a program that leaves an IPC object or a file in /tmp behind', { skip: !ISOLATED && 'needs root, unshare and nsenter' }, async () => {
    const leaks: [string, RegExp][] = [
      ["import { PosixMessageQueue } from 'ipckit';\nPosixMessageQueue.create('/snippets-leak').close();\n", /the POSIX message queue \/snippets-leak/],
      ["import { PosixSharedMemory } from 'ipckit';\nPosixSharedMemory.create('/snippets-leak', { size: 4096 }).close();\n", /the POSIX segment \/snippets-leak/],
      ["import { NamedSemaphore } from 'ipckit';\nNamedSemaphore.create('/snippets-leak').close();\n", /the POSIX semaphore \/snippets-leak/],
      ["import { SysvMessageQueue } from 'ipckit';\nSysvMessageQueue.create(0x5e1f0001).close();\n", /a System V message queue \(key 0x5e1f0001/],
      ["import { Fifo } from 'ipckit';\nFifo.create('/tmp/snippets-leak.fifo');\n", /\/tmp\/snippets-leak\.fifo/],
    ];
    for (const [code, left] of leaks) await assert.rejects(run(blocks(code)), left);
    // Each run has namespaces of its own: what one left is not there for the next, nor on the machine.
    await run(blocks("import { PosixMessageQueue } from 'ipckit';\nconst q = PosixMessageQueue.create('/snippets-leak');\nq.unlink();\nq.close();\n"));
  });

  it('kills a run that hangs and says which member never started (no line from the one before)', async () => {
    const started = Date.now();
    await assert.rejects(run(blocks("process.stdout.write('ready');\nsetTimeout(() => {}, 60_000);\n", "console.log('never');\n"), 1500),
      (err: Error) => {
        assert.match(err.message, /still running after 1500 ms/);
        assert.match(err.message, /never started \(waiting for a line of output from page\.md:\d+.*\): page\.md:\d+/);
        return true;
      });
    assert.ok(Date.now() - started < 6000);
  });

  it('kills a hanging program whose child holds its output open', async () => {
    await assert.rejects(run(blocks("import { spawn } from 'node:child_process';\nspawn('sleep', ['60'], { stdio: 'inherit' });\n"), 1500),
      /still running after 1500 ms/);
  });
});
