/**
 * The code blocks of the documentation, read the way the doc-snippet test
 * runs them (see test/docs.test.ts and "Code in the documentation" in
 * docs/architecture.md).
 *
 * Every fence whose language is ts, typescript, js, javascript or mjs is a
 * program. An HTML comment on the line just before a fence, invisible when
 * the page is rendered, says how it runs:
 *
 * - `<!-- snippet: file=NAME.js -->`: a module other blocks of the page use
 *   (a child they spawn, a handler they load); written as NAME.js (NAME.ts
 *   when run as TypeScript) in the page's folder and not run by itself.
 * - `<!-- snippet: group=NAME -->`: the blocks of the page with that group
 *   run together, each as its own process, started in page order: the next
 *   once the one before has printed its first line or exited.
 * - `<!-- snippet: output -->` before any fence: the exact standard output of
 *   the program just before it.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export const PROGRAM_LANGUAGES = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs']);

export interface Snippet {
  /** The page, relative to the repository root: `README.md`, `docs/pipe.md`. */
  page: string;
  /** The 1-based line of the opening fence. */
  line: number;
  code: string;
  /** Set for a module other blocks use: its file name, ending in `.js`. */
  file?: string;
  group?: string;
  /** The exact standard output expected, from an `output` block after it. */
  output?: string;
}

/** A problem with the markup itself: a marker nothing follows, an unknown key. */
export interface MarkupProblem {
  page: string;
  line: number;
  message: string;
}

const MARKER = /^<!--\s*snippet:(.*?)-->\s*$/;
const FENCE = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/;

/** Every Markdown page of the repository's documentation: README.md and docs/, recursively. */
export function documentationPages(root: string): string[] {
  const pages = ['README.md'];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(path.join(root, dir)).sort()) {
      const rel = path.posix.join(dir, entry);
      if (statSync(path.join(root, rel)).isDirectory()) walk(rel);
      else if (entry.endsWith('.md')) pages.push(rel);
    }
  };
  walk('docs');
  return pages;
}

/** Reads the program blocks of one page. */
export function readSnippets(root: string, page: string): { snippets: Snippet[]; problems: MarkupProblem[] } {
  const lines = readFileSync(path.join(root, page), 'utf8').split('\n');
  const snippets: Snippet[] = [];
  const problems: MarkupProblem[] = [];
  let marker: { line: number; keys: Map<string, string> } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!;
    const markerMatch = MARKER.exec(text);
    if (markerMatch) {
      if (marker) problems.push({ page, line: marker.line, message: 'a snippet marker must be followed by a fence' });
      marker = { line: i + 1, keys: parseKeys(markerMatch[1]!, page, i + 1, problems) };
      continue;
    }
    const fence = FENCE.exec(text);
    if (!fence) {
      if (marker && text.trim() !== '') {
        problems.push({ page, line: marker.line, message: 'a snippet marker must be on the line just before a fence' });
        marker = undefined;
      }
      continue;
    }
    const [, indent, ticks, language] = fence as unknown as [string, string, string, string];
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = lines[j]!;
      const t = close.trim();
      if (t.length >= ticks.length && [...t].every((c) => c === ticks[0])) break;
      body.push(close.startsWith(indent) ? close.slice(indent.length) : close);
    }
    if (j === lines.length) problems.push({ page, line: i + 1, message: 'this fence is never closed' });
    const keys = marker?.keys ?? new Map<string, string>();
    marker = undefined;
    const code = body.join('\n') + '\n';
    if (keys.has('output')) {
      const program = snippets.at(-1);
      if (!program || program.file !== undefined) problems.push({ page, line: i + 1, message: 'an output block must follow a program' });
      else if (program.output !== undefined) problems.push({ page, line: i + 1, message: 'a program has one output block' });
      else program.output = code;
    } else if (PROGRAM_LANGUAGES.has(language.toLowerCase())) {
      const snippet: Snippet = { page, line: i + 1, code };
      const file = keys.get('file');
      if (file !== undefined) {
        if (!/^[\w-]+\.js$/.test(file)) problems.push({ page, line: i + 1, message: `file=${file}: a module's name is a plain NAME.js` });
        snippet.file = file;
      }
      const group = keys.get('group');
      if (group !== undefined) snippet.group = group;
      snippets.push(snippet);
    } else if (keys.size > 0) {
      problems.push({ page, line: i + 1, message: `a snippet marker before a ${language || 'plain'} fence, which is not run` });
    }
    i = j;
  }
  if (marker) problems.push({ page, line: marker.line, message: 'a snippet marker must be followed by a fence' });
  return { snippets, problems };
}

function parseKeys(text: string, page: string, line: number, problems: MarkupProblem[]): Map<string, string> {
  const keys = new Map<string, string>();
  for (const token of text.trim().split(/\s+/).filter(Boolean)) {
    const [key, value] = token.split('=', 2) as [string, string | undefined];
    const valued = key === 'file' || key === 'group';
    if (key !== 'file' && key !== 'group' && key !== 'output') {
      problems.push({ page, line, message: `unknown snippet marker key "${key}" (file=NAME.js, group=NAME or output)` });
    } else if (valued !== (value !== undefined) || value === '') {
      problems.push({ page, line, message: valued ? `${key} needs a value: ${key}=NAME` : `${key} takes no value` });
    } else {
      keys.set(key, value ?? '');
    }
  }
  if (keys.has('file') && keys.has('group')) problems.push({ page, line, message: 'a module (file=) is not run, so it has no group' });
  return keys;
}

/** A folder name for a page: `docs/pipe.md` → `docs-pipe`. */
export function pageFolder(page: string): string {
  return page.replace(/\.md$/, '').replace(/[^\w-]+/g, '-');
}

/** The runs of a page: a program alone, or the members of a group, in page order. */
export function runsOf(snippets: Snippet[]): Snippet[][] {
  const runs: Snippet[][] = [];
  const groups = new Map<string, Snippet[]>();
  for (const s of snippets) {
    if (s.file !== undefined) continue;
    if (s.group === undefined) {
      runs.push([s]);
      continue;
    }
    let members = groups.get(s.group);
    if (!members) {
      members = [];
      groups.set(s.group, members);
      runs.push(members);
    }
    members.push(s);
  }
  return runs;
}
