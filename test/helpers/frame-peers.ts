/**
 * Peers of framed pipe tests shared by the batch test files: writers in
 * other processes that send tagged messages through one pipe (each
 * writer's must arrive whole and in order), and a reader that is not
 * ipckit (Python reading 4-byte big-endian lengths, then the bytes).
 */
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type PipeReadEnd, type PipeWriteEnd, spawn } from '../../src/index.js';
import { closed, trackChild } from './peer.js';

const INDEX = fileURLToPath(new URL('../../src/index.js', import.meta.url));

/** Messages each writer sends, and their size (well under PIPE_BUF). */
const PER_WRITER = 3000;
const SIZE = 150;

/** The message `i` of writer `tag`. */
function tagged(tag: string, i: number): string {
  return `${tag}:${i}:`.padEnd(SIZE, tag);
}

/**
 * Starts writers x, y and z, each running `send` (a module body that has
 * `end`, a PipeWriteEnd on fd 3, `all`, its messages, and `MessageBatch`)
 * on a copy of `writeEnd`, which this process then closes.
 */
export function startTaggedWriters(writeEnd: PipeWriteEnd, send: string): ChildProcess[] {
  const script = [
    `import { MessageBatch, PipeWriteEnd } from ${JSON.stringify(INDEX)};`,
    'const end = PipeWriteEnd.fromFd(3);',
    'const tag = process.argv[1];',
    `const all = Array.from({ length: ${PER_WRITER} }, (_, i) => \`\${tag}:\${i}:\`.padEnd(${SIZE}, tag));`,
    'void MessageBatch;',
    send,
    'end.close();',
  ].join('\n');
  const writers = ['x', 'y', 'z'].map((tag) => trackChild(spawn(process.execPath, ['--input-type=module', '-e', script, tag],
    { fds: { 3: writeEnd }, stdio: ['ignore', 'ignore', 'inherit'] })));
  writeEnd.close();
  return writers;
}

/** Waits for the writers, then checks that `got` holds every writer's messages, whole and in its order. */
export async function checkTaggedWriters(writers: ChildProcess[], got: string[]): Promise<void> {
  // Through the promise made at spawn: a writer killed by a signal has exitCode null after its 'exit' already fired.
  const ends = await Promise.all(writers.map((child) => closed(child)));
  assert.deepEqual(ends, [0, 0, 0].map((code) => ({ code, signal: null })));
  assert.equal(got.length, 3 * PER_WRITER);
  for (const tag of ['x', 'y', 'z']) {
    assert.deepEqual(got.filter((m) => m.startsWith(`${tag}:`)), Array.from({ length: PER_WRITER }, (_, i) => tagged(tag, i)));
  }
}

/**
 * A Python reader of `readEnd` (which this process then closes): it reads
 * frames until the end and prints them joined by `|`. Resolves to what it
 * printed once it exited with 0.
 */
export function pythonFrameReader(readEnd: PipeReadEnd): Promise<string> {
  const reader = trackChild(spawn('python3', ['-c', [
    'import os, struct',
    'f = os.fdopen(3, "rb")',
    'out = []',
    'while True:',
    '    head = f.read(4)',
    '    if len(head) < 4: break',
    '    (n,) = struct.unpack(">I", head)',
    '    out.append(f.read(n).decode())',
    'print("|".join(out))'].join('\n')], { fds: { 3: readEnd }, stdio: ['ignore', 'pipe', 'inherit'] }));
  readEnd.close();
  let printed = '';
  reader.stdout!.setEncoding('utf8').on('data', (chunk: string) => { printed += chunk; });
  return new Promise((resolve, reject) => reader.once('close', (code) => (code === 0 ? resolve(printed) : reject(new Error(`the reader exited ${code}`)))));
}
