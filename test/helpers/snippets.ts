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
 *   the program just before it (no other fence between them).
 *
 * A marker may be indented (a block in a list item). A comment that looks
 * like a marker but is not one (`<!-- snipet: … -->`, `<!-- Snippet: … -->`,
 * text after the `-->`), a key given twice, a group of one block (a typo in
 * a group's name) and a module no other block of the page names are
 * problems, so that a block cannot silently run other than as marked.
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

const MARKER = /^\s*<!--\s*snippet:(.*?)-->\s*$/;
/** A line that was meant as a marker: checked against MARKER, so that a typo is reported rather than ignored. */
const NEAR_MARKER = /<!--\s*snip/i;
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
  return parseSnippets(readFileSync(path.join(root, page), 'utf8'), page);
}

/** Reads the program blocks of a page's text (`page` names it in what is returned). */
export function parseSnippets(markdown: string, page: string): { snippets: Snippet[]; problems: MarkupProblem[] } {
  const lines = markdown.split('\n');
  const snippets: Snippet[] = [];
  const problems: MarkupProblem[] = [];
  let marker: { line: number; keys: Map<string, string> } | undefined;
  /** The program of the last fence, if the last fence was a program that is run (what an output block may follow). */
  let lastFence: Snippet | undefined;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!;
    const markerMatch = MARKER.exec(text);
    if (!markerMatch && NEAR_MARKER.test(text) && !/`[^`]*<!--/.test(text)) {
      problems.push({ page, line: i + 1, message: 'this looks like a snippet marker but is not one: write <!-- snippet: KEY[=VALUE] --> alone on its line' });
    }
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
    const program = lastFence;
    lastFence = undefined;
    if (keys.has('output')) {
      if (!program) problems.push({ page, line: i + 1, message: 'an output block must directly follow the program it shows (no other fence between them)' });
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
      if (file === undefined) lastFence = snippet;
    } else if (keys.size > 0) {
      problems.push({ page, line: i + 1, message: `a snippet marker before a ${language || 'plain'} fence, which is not run` });
    }
    i = j;
  }
  if (marker) problems.push({ page, line: marker.line, message: 'a snippet marker must be followed by a fence' });
  const groups = new Map<string, Snippet[]>();
  for (const s of snippets) if (s.group !== undefined) groups.set(s.group, [...(groups.get(s.group) ?? []), s]);
  for (const [group, members] of groups) {
    if (members.length === 1) problems.push({ page, line: members[0]!.line, message: `group=${group} has this block only (a typo in the name of its group?)` });
  }
  const files = new Set<string>();
  for (const s of snippets) {
    if (s.file === undefined) continue;
    if (files.has(s.file)) problems.push({ page, line: s.line, message: `file=${s.file}: another module of the page has this name` });
    files.add(s.file);
    const stem = s.file.slice(0, -'.js'.length);
    if (!snippets.some((other) => other !== s && new RegExp(`\\b${stem}(\\.js)?\\b`).test(other.code))) {
      problems.push({ page, line: s.line, message: `file=${s.file}: no other block of the page uses this module` });
    }
  }
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
    } else if (keys.has(key)) {
      problems.push({ page, line, message: `${key} is given twice` });
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
