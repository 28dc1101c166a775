/**
 * The package as a user gets it: importing ipckit never needs the native
 * addon (the first call that does throws ERR_IPC_ADDON, and the CLI says so
 * in one line), and the constants ipckit states without it are the kernel's.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MQ_PRIO_MAX, PIPE_BUF, SCM_MAX_FD } from '../src/index.js';
import { native } from '../src/native.js';
import { EPOLL_CTL, READABLE, WRITABLE } from '../src/internal/readiness.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A copy of the compiled package with no addon built: what `npm install --ignore-scripts` leaves without a prebuilt binary. */
function packageWithoutAddon(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ipckit-no-addon-'));
  dirs.push(dir);
  cpSync(path.join(ROOT, 'dist', 'src'), path.join(dir, 'dist', 'src'), { recursive: true });
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'ipckit', type: 'module' }));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}

describe('without the native addon', () => {
  it('importing ipckit works; the first call that needs the addon throws ERR_IPC_ADDON saying how to build it', () => {
    const dir = packageWithoutAddon();
    const script = `
      const m = await import(${JSON.stringify(path.join(dir, 'dist', 'src', 'index.js'))});
      const out = { IpcError: typeof m.IpcError, MQ_PRIO_MAX: m.MQ_PRIO_MAX, exports: Object.keys(m).length };
      try { m.PosixMessageQueue.create('/never'); } catch (err) { out.create = [err.code, err instanceof m.IpcError, err.message]; }
      try { new m.IpcError('ERR_IPC_TIMEOUT', 'made without the addon'); out.made = true; } catch (err) { out.made = err.code; }
      console.log(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { IpcError: string; MQ_PRIO_MAX: number; exports: number; create: [string, boolean, string]; made: boolean };
    assert.equal(out.IpcError, 'function');
    assert.equal(out.MQ_PRIO_MAX, 32768);
    assert.ok(out.exports > 50);
    assert.equal(out.made, true);
    assert.deepEqual(out.create.slice(0, 2), ['ERR_IPC_ADDON', true]);
    assert.match(out.create[2], /^The ipckit native addon could not be loaded \(.*build\/Release\/ipckit\.node: not there; .*prebuilds\/linux-\w+\/ipckit\.abi\d+\.node: not there\)\. No prebuilt binary fits linux-\w+ with Node\.js v[\d.]+ \(ABI \d+\): build it with "npm rebuild ipckit"/);
  });

  it('the CLI prints CODE: message and exits 1, without a stack trace', () => {
    const dir = packageWithoutAddon();
    const r = spawnSync(process.execPath, [path.join(dir, 'dist', 'src', 'cli', 'main.js'), 'ls'], { encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^ERR_IPC_ADDON: The ipckit native addon could not be loaded \(.*\n$/);
  });
});

describe('constants stated without the addon', () => {
  it('are the kernel\'s, as the addon reads them from its headers', () => {
    assert.equal(PIPE_BUF, native.constants.PIPE_BUF);
    assert.equal(SCM_MAX_FD, native.socketConstants.SCM_MAX_FD);
    assert.equal(MQ_PRIO_MAX, native.mqPrioMax);
    assert.equal(READABLE, native.constants.EPOLLIN);
    assert.equal(WRITABLE, native.constants.EPOLLOUT);
    assert.deepEqual(EPOLL_CTL, { ADD: native.constants.EPOLL_CTL_ADD, DEL: native.constants.EPOLL_CTL_DEL, MOD: native.constants.EPOLL_CTL_MOD });
  });
});
