/**
 * The error registry: every code is documented once in docs/errors.md, and
 * the source uses no ERR_IPC_* code outside the registry.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IPC_ERROR_CODES, IpcError } from '../src/index.js';
import { errnoName, limitError, systemError } from '../src/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(full) : entry.name.endsWith('.ts') ? [full] : [];
  });
}

describe('error registry', () => {
  const registry = Object.keys(IPC_ERROR_CODES);

  it('is alphabetical', () => {
    assert.deepEqual(registry, [...registry].sort());
  });

  it('matches the table in docs/errors.md exactly', () => {
    const doc = readFileSync(path.join(ROOT, 'docs', 'errors.md'), 'utf8');
    const documented = [...doc.matchAll(/^\| `(ERR_IPC_[A-Z_]+)` \|/gm)].map((m) => m[1]);
    assert.deepEqual(documented, registry);
  });

  it('covers every ERR_IPC_* code the source uses', () => {
    const used = new Set<string>();
    for (const file of sourceFiles(path.join(ROOT, 'src'))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\b(ERR_IPC_[A-Z_]+)\b/g)) used.add(m[1]!);
    }
    const unregistered = [...used].filter((code) => !registry.includes(code));
    assert.deepEqual(unregistered, []);
  });

  it('builds system errors with code, errno, syscall, address and advice', () => {
    const err = systemError(-17, 'mq_open', '/jobs', 'Use open().');
    assert.ok(err instanceof IpcError);
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'IpcError');
    assert.equal(err.code, 'EEXIST');
    assert.equal(err.errno, -17);
    assert.equal(err.syscall, 'mq_open');
    assert.equal(err.address, '/jobs');
    assert.equal(err.message, 'mq_open /jobs failed: File exists (EEXIST). Use open().');
    const limit = limitError(-22, 'mq_open', '/jobs', 'raise fs.mqueue.msg_max');
    assert.equal(limit.code, 'ERR_IPC_LIMIT');
    assert.equal(limit.errno, -22);
    assert.equal(limit.message, 'mq_open /jobs failed (EINVAL): raise fs.mqueue.msg_max');
    assert.equal(errnoName(11), 'EAGAIN');
    assert.equal(errnoName(-2), 'ENOENT');
  });
});
