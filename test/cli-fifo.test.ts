/**
 * `ipckit fifo read` and `ipckit rm` of a FIFO, run as real child processes
 * against real FIFOs: lines counted across writers that come and go, no byte
 * taken past the last line asked for, and nothing taken for a reader that
 * left.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Fifo, type PipeReadEnd, type PipeWriteEnd } from '../src/index.js';
import { fails, ipckit, jsonLines, launch, launchIntoPipe, ls, ok } from './helpers/cli.js';
import { killAllPeers, runningChildren } from './helpers/peer.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-cli-fifo-'));
let counter = 0;

after(async () => {
  await killAllPeers();
  rmSync(dir, { recursive: true, force: true });
});

/** A new FIFO of this file's directory, with a name no other test uses. */
function newFifo(label: string): string {
  const p = path.join(dir, `${label}-${++counter}`);
  Fifo.create(p);
  return p;
}

/** Both ends held by the test: a reader (so that a writer can open) and a writer. */
async function holdBothEnds(p: string): Promise<{ reader: PipeReadEnd; writer: PipeWriteEnd }> {
  const reader = await Fifo.openRead(p, { nonBlocking: true });
  return { reader, writer: await Fifo.openWrite(p, { nonBlocking: true }) };
}

describe('ipckit fifo read --count', () => {
  it('counts lines across writers that come and go; the next writer finds a reader; no byte past the last line is taken', async () => {
    const p = newFifo('writers');
    const reader = launch(['fifo', 'read', p, '--count', '4']);
    // Each writer is its own process, and closes the FIFO before the next one opens it.
    for (const text of ['one', 'two']) await ok(['fifo', 'write', p, text, '--timeout', '5000']);
    const last = await Fifo.openWrite(p, { timeout: 5000 });
    try {
      await last.write(Buffer.from('three\nfour\nfive\n'));
      const r = await reader.done;
      assert.deepEqual([r.status, r.stdout, r.stderr], [0, 'one\ntwo\nthree\nfour\n', '']);
      // The fifth line is still in the FIFO (this writer keeps it alive) for the next reader.
      const next = await Fifo.openRead(p, { nonBlocking: true });
      assert.equal(next.tryRead()?.toString(), 'five\n');
      next.close();
    } finally {
      last.close();
    }
    Fifo.unlink(p);
  });

  it('--nonblock prints the lines that are there and fails with EAGAIN when fewer than N are', async () => {
    const p = newFifo('nonblock');
    const { reader, writer } = await holdBothEnds(p);
    try {
      await writer.write(Buffer.from('a\nb\nc\n'));
      assert.equal((await ok(['fifo', 'read', p, '--count', '2', '--nonblock'])).stdout, 'a\nb\n');
      // Only the two lines were taken.
      assert.equal(reader.tryRead()?.toString(), 'c\n');

      await writer.write(Buffer.from('x\ny'));
      const json = ['fifo', 'read', p, '--count', '3', '--nonblock', '--json'];
      const partial = await ipckit(json);
      assert.equal(partial.status, 1);
      // The incomplete line that was read is printed, marked, rather than dropped.
      assert.deepEqual(jsonLines(partial.stdout), [{ line: 'x' }, { line: 'y', complete: false }]);
      assert.deepEqual(JSON.parse(partial.stderr), { error: {
        code: 'EAGAIN', errno: -11, syscall: 'read', address: p,
        message: `read ${p} failed: Resource temporarily unavailable (EAGAIN). Only 1 of 3 lines were in the FIFO and --nonblock was given.`,
      } });
      assert.equal(reader.tryRead(), undefined);

      const empty = await fails(['fifo', 'read', p, '--count', '1', '--nonblock'], 1, 'EAGAIN');
      assert.equal(empty, `EAGAIN: read ${p} failed: Resource temporarily unavailable (EAGAIN). Nothing is in the FIFO and --nonblock was given.\n`);
    } finally {
      reader.close();
      writer.close();
    }
    Fifo.unlink(p);
  });

  it('reads nothing once stdout\'s reader is gone: exit 1 with EPIPE, the lines stay in the FIFO', async () => {
    const p = newFifo('gone');
    const { reader, writer } = await holdBothEnds(p);
    try {
      await writer.write(Buffer.from('a\nb\n'));
      const r = await launchIntoPipe(['fifo', 'read', p, '--count', '2'], { readerGone: true }).done;
      assert.deepEqual([r.status, r.stderr], [1, `EPIPE: stdout's reader left after 0 of 2 lines. Nothing more was read from ${p}.\n`]);
      assert.equal(reader.tryRead()?.toString(), 'a\nb\n');
    } finally {
      reader.close();
      writer.close();
    }
    Fifo.unlink(p);
  });

  it('names the bytes it read and could not print as lost: exit 1, the next line stays in the FIFO', async () => {
    const p = newFifo('lost');
    const { reader, writer } = await holdBothEnds(p);
    try {
      const long = 'y'.repeat(6000);
      await writer.write(Buffer.from(`${long}\nnext\n`));
      // 6001 bytes cannot fit a 4096-byte pipe that nobody reads: the write stays unfinished.
      const run = launchIntoPipe(['fifo', 'read', p, '--count', '1', '--json'], { capacity: 4096 });
      assert.equal((await run.readEnd.read({ maxBytes: 20 }))?.toString(), `{"line":"${long.slice(0, 11)}`);
      run.readEnd.close();
      const r = await run.done;
      assert.equal(r.status, 1);
      assert.deepEqual(JSON.parse(r.stderr), { error: {
        code: 'EPIPE', errno: -32, syscall: 'write', lost: { data: `${long}\n` },
        message: `6001 bytes read from ${p} (from line 1 of 1) could not be printed: stdout's reader left. They are lost (a FIFO cannot take bytes back).`,
      } });
      assert.equal(reader.tryRead()?.toString(), 'next\n');
    } finally {
      reader.close();
      writer.close();
    }
    Fifo.unlink(p);
  });
});

describe('ipckit fifo read without --count', () => {
  it('--json prints bytes that are not UTF-8 as base64, never as replacement characters', async () => {
    const p = newFifo('bytes');
    const reader = launch(['fifo', 'read', p, '--json']);
    const writer = await Fifo.openWrite(p, { timeout: 5000 });
    const bytes = Buffer.from([0xff, 0x41, 0xc3, 0x0a]);
    await writer.write(bytes);
    writer.close();
    const r = await reader.done;
    assert.deepEqual([r.status, r.stderr], [0, '']);
    // However the bytes were split into chunks, each chunk decodes back to exactly what was written.
    const chunks = jsonLines(r.stdout) as { data: string; encoding?: string }[];
    assert.deepEqual(Buffer.concat(chunks.map((c) => Buffer.from(c.data, c.encoding === 'base64' ? 'base64' : 'utf8'))), bytes);
    assert.ok(chunks.every((c) => c.encoding === 'base64' || !c.data.includes('\ufffd')), r.stdout);
    Fifo.unlink(p);
  });
});

describe('ipckit rm and FIFOs', () => {
  it('removes a FIFO that ls lists, by its path; refuses other files', async () => {
    const p = newFifo('rm');
    const holder = await Fifo.openRead(p, { nonBlocking: true });
    const listed = (await ls()).objects.find((o) => o.kind === 'fifo' && o.address === p);
    holder.close();
    assert.equal(listed?.address, p);
    assert.equal((await ok(['rm', p])).stdout, `removed ${p} (FIFO)\n`);
    assert.equal(existsSync(p), false);

    Fifo.create(p);
    assert.equal((await ok(['rm', p, '--json'])).stdout, `{"removed":"${p}","kind":"fifo"}\n`);
    assert.equal(existsSync(p), false);
    Fifo.create(p);
    assert.equal((await ok(['rm', p, '--kind', 'fifo'])).stdout, `removed ${p} (FIFO)\n`);
    assert.equal(existsSync(p), false);

    const file = path.join(dir, `plain-${++counter}`);
    writeFileSync(file, 'not a FIFO');
    try {
      assert.equal(await fails(['rm', file], 1, 'ERR_IPC_NOT_A_FIFO'),
        `ERR_IPC_NOT_A_FIFO: ${file} is not an IPC object: ipckit rm removes message queues, shared memory segments, semaphores, FIFOs and stale socket files.\n`);
      assert.equal(existsSync(file), true);
    } finally {
      rmSync(file);
    }
    assert.equal(await fails(['rm', p], 1, 'ENOENT'),
      `ENOENT: Nothing to remove at ${p}: no message queue, shared memory segment, semaphore or FIFO has this address. Run "ipckit ls" to see what exists.\n`);
  });
});

describe('cli fifo cleanup', () => {
  it('leaves no FIFO and no child process behind', async () => {
    await killAllPeers();
    assert.equal(runningChildren(), 0);
    assert.deepEqual(readdirSync(dir), []);
  });
});
