#!/usr/bin/env node
// The package as a user installs it, checked on every supported Node.js:
// `npm pack` (with the prebuilt binaries made by scripts/prebuild.mjs),
// then, for each Node major, the tarball installed into a scratch project
// twice — with install scripts blocked (--ignore-scripts, as pnpm does by
// default) and with them allowed — with no compiler on PATH, then imported
// and used between two processes (a POSIX queue and a named semaphore), and
// its CLI run. Also checks what the tarball holds.
//
//   node scripts/check-package.mjs [--node 20,22,24]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = path.join(ROOT, 'build', 'node-binaries');
const { values } = parseArgs({ options: { node: { type: 'string', default: '20,22,24' } } });

/** The node binary of node-linux-<arch>@<major> from the npm registry, extracted once. */
function nodeBinary(major, arch = process.arch) {
  const dir = path.join(CACHE, `${arch}-${major}`);
  const node = path.join(dir, 'package', 'bin', 'node');
  if (!existsSync(node)) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const tarball = execFileSync('npm', ['pack', `node-linux-${arch}@${major}`, '--silent'], { cwd: dir, encoding: 'utf8' }).trim().split('\n').pop();
    execFileSync('tar', ['xzf', tarball, 'package/bin/node'], { cwd: dir });
    rmSync(path.join(dir, tarball));
  }
  return node;
}

const npmCli = path.join(execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim(), 'npm', 'bin', 'npm-cli.js');

/** PATH holding only this node (as `node`) and a shell (npm runs install scripts with sh): no python, make or compiler. */
function barePath(node) {
  const bin = mkdtempSync(path.join(tmpdir(), 'ipckit-bare-bin-'));
  symlinkSync(node, path.join(bin, 'node'));
  symlinkSync('/bin/sh', path.join(bin, 'sh'));
  return bin;
}

const failures = [];
function check(what, ok, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? `: ${detail}` : ''}`);
  if (!ok) failures.push(what);
}

// The tarball.
const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', tmpdir()], { cwd: ROOT, encoding: 'utf8' }))[0];
const tarball = path.join(tmpdir(), packed.filename);
const files = packed.files.map((f) => f.path);
check('the tarball has LICENSE, README.md and package.json', ['LICENSE', 'README.md', 'package.json'].every((f) => files.includes(f)));
check('the tarball has a prebuilt addon for every supported Node on linux-x64',
  ['115', '127', '137'].every((abi) => files.includes(`prebuilds/linux-x64/ipckit.abi${abi}.node`)));
console.log(`     prebuilt: ${files.filter((f) => f.startsWith('prebuilds/')).join(' ')}`);
check('the tarball has no tests, benchmarks, soak or source maps', !files.some((f) => /^(dist\/(test|bench|soak)\/|.*\.map$)/.test(f)),
  files.filter((f) => /^(dist\/(test|bench|soak)\/|.*\.map$)/.test(f)).slice(0, 3).join(', '));

const EXCHANGE = `
import { spawn } from 'node:child_process';
import { NamedSemaphore, PosixMessageQueue, IpcError } from 'ipckit';
if (process.argv[2] === 'child') {
  const q = PosixMessageQueue.open(process.argv[3]);
  const sem = NamedSemaphore.open(process.argv[4]);
  await sem.wait({ timeout: 10000 });
  q.sendSync(Buffer.from('hello from ' + process.pid));
  q.close(); sem.close();
} else {
  const name = '/ipckit-pkg-' + process.pid;
  const q = PosixMessageQueue.create(name);
  const sem = NamedSemaphore.create(name + '-go');
  const child = spawn(process.execPath, [process.argv[1], 'child', name, name + '-go'], { stdio: 'inherit' });
  sem.post();
  const { data } = await q.receive({ timeout: 10000 });
  await new Promise((resolve) => child.on('exit', resolve));
  q.unlink(); q.close(); sem.unlink(); sem.close();
  console.log(JSON.stringify({ got: data.toString().startsWith('hello from '), node: process.version, IpcError: typeof IpcError }));
}
`;

// TypeScript as a user sets it up: the settings \`tsc --init\` writes (types: [], strict, nodenext),
// with Node's types coming in through the package's own declarations.
const TYPED = `
import { IpcError, PosixMessageQueue } from 'ipckit';
const q = PosixMessageQueue.create('/ipckit-pkg-ts-' + process.pid, { codec: 'json' });
try {
  await q.send({ n: 41 });
  const { data } = await q.receive({ timeout: 5000 });
  const bytes: Buffer = Buffer.from('typed');
  console.log(JSON.stringify({ n: data.n + 1, bytes: bytes.length, IpcError: typeof IpcError }));
} finally {
  q.unlink();
  q.close();
}
`;
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

for (const major of values.node.split(',')) {
  const node = nodeBinary(major);
  const bin = barePath(node);
  for (const scripts of ['--ignore-scripts', '--foreground-scripts']) {
    const project = mkdtempSync(path.join(tmpdir(), 'ipckit-user-'));
    try {
      writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'user', version: '1.0.0', type: 'module', private: true }));
      writeFileSync(path.join(project, 'exchange.js'), EXCHANGE);
      const env = { ...process.env, PATH: bin, npm_config_node_gyp: '/nonexistent' };
      let installed = '';
      try {
        installed = execFileSync(node, [npmCli, 'install', '--no-audit', '--no-fund', scripts, tarball], { cwd: project, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (err) {
        check(`Node ${major} ${scripts}: npm install`, false, String(err.stderr ?? err).split('\n').slice(-5).join(' '));
        continue;
      }
      const built = existsSync(path.join(project, 'node_modules', 'ipckit', 'build'));
      check(`Node ${major} ${scripts}: installed without compiling`, !built, installed.includes('prebuilt') ? 'the install step chose the prebuilt addon' : '');
      const out = execFileSync(node, ['exchange.js'], { cwd: project, env, encoding: 'utf8' });
      const result = JSON.parse(out.trim().split('\n').pop());
      check(`Node ${major} ${scripts}: two processes exchange a message, started by a named semaphore`, result.got === true && result.node.startsWith(`v${major}.`), out.trim());
      const version = execFileSync(node, [path.join(project, 'node_modules', 'ipckit', 'dist', 'src', 'cli', 'main.js'), 'ls', '--json'], { cwd: project, env, encoding: 'utf8' });
      check(`Node ${major} ${scripts}: ipckit ls --json`, version.trim().startsWith('{'));
      const help = execFileSync(node, [path.join(project, 'node_modules', 'ipckit', 'dist', 'src', 'cli', 'main.js'), '--help'], { cwd: project, env, encoding: 'utf8' });
      check(`Node ${major} ${scripts}: ipckit --help offers no bench (its harness ships with the checkout only)`, help.includes('watch') && !/^\s+bench\b/m.test(help));
      if (scripts === '--ignore-scripts' && existsSync(TSC)) {
        writeFileSync(path.join(project, 'typed.ts'), TYPED);
        let compiled = '';
        try {
          execFileSync(node, [TSC, '--init'], { cwd: project, env, stdio: 'ignore' });
          execFileSync(node, [TSC, '-p', '.', '--pretty', 'false'], { cwd: project, env, encoding: 'utf8' });
          compiled = execFileSync(node, ['typed.js'], { cwd: project, env, encoding: 'utf8' }).trim();
        } catch (err) {
          compiled = String(err.stdout || err.stderr || err).trim();
        }
        check(`Node ${major}: a TypeScript program compiles with tsc --init's settings and runs`, compiled === '{"n":42,"bytes":5,"IpcError":"function"}', compiled.split('\n').slice(0, 3).join(' '));
      }
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  }
  rmSync(bin, { recursive: true, force: true });
}
// arm64: the prebuilt binaries, loaded by the arm64 Node of each line under qemu-user (with Debian's
// arm64 libraries, from the cross compiler's packages). One process: qemu-user cannot start another.
const ARM_SMOKE = `
import { Channel, Mutex, NamedSemaphore, PosixSharedMemory, SemaphoreSet } from 'ipckit';
const name = '/ipckit-arm64-' + process.pid;
const sem = NamedSemaphore.create(name, { value: 1 });
const took = sem.tryWait();
const waited = sem.wait({ timeout: 2000 });
sem.post();
await waited;
const set = SemaphoreSet.create(0x6e000000 + (process.pid & 0xffff), { count: 2, value: [1, 0] });
set.opSync([{ index: 0, delta: -1, undo: true }, { index: 1, delta: 1 }]);
const shm = PosixSharedMemory.create(name + '-m', { size: 4096 });
await Mutex.create(shm, 0).withLock(() => undefined);
const ch = Channel.create(name + '-c', { capacity: 4096 });
ch.trySend(Buffer.from('ring'));
const got = ch.tryReceive().data.toString();
console.log(JSON.stringify({ arch: process.arch, node: process.version, took, values: set.values(), got }));
sem.close(); NamedSemaphore.unlink(name); set.remove(); shm.close(); PosixSharedMemory.unlink(name + '-m'); ch.close(); Channel.unlink(name + '-c');
`;
const QEMU_LIBS = '/usr/aarch64-linux-gnu';
const qemu = ['/usr/bin/qemu-aarch64', '/usr/bin/qemu-aarch64-static'].find((q) => existsSync(q));
if (files.some((f) => f.startsWith('prebuilds/linux-arm64/')) && qemu !== undefined && existsSync(path.join(QEMU_LIBS, 'lib', 'ld-linux-aarch64.so.1'))) {
  const project = mkdtempSync(path.join(tmpdir(), 'ipckit-arm64-'));
  try {
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'user', version: '1.0.0', type: 'module', private: true }));
    writeFileSync(path.join(project, 'smoke.js'), ARM_SMOKE);
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--force', '--cpu=arm64', tarball], { cwd: project, stdio: 'ignore' });
    for (const major of values.node.split(',')) {
      const node = nodeBinary(major, 'arm64');
      let out = '';
      try {
        out = execFileSync(qemu, ['-L', QEMU_LIBS, node, 'smoke.js'], { cwd: project, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (err) {
        out = String(err.stderr ?? err);
      }
      let result = {};
      try {
        result = JSON.parse(out.trim().split('\n').pop());
      } catch {
        /* Reported below. */
      }
      check(`Node ${major} on arm64 (qemu-user): the prebuilt addon loads; semaphores, a segment's Mutex and a channel work`,
        result.arch === 'arm64' && result.took === true && String(result.values) === '0,1' && result.got === 'ring', out.trim().split('\n').slice(-3).join(' '));
    }
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
} else {
  console.log('skip arm64: no prebuilt arm64 addon in the tarball, or no qemu-aarch64 with arm64 libraries (apt-get install qemu-user g++-aarch64-linux-gnu)');
}

rmSync(tarball, { force: true });
if (failures.length > 0) {
  console.error(`${failures.length} check(s) failed: ${failures.join('; ')}`);
  process.exit(1);
}
console.log('the package installs and works on every supported Node.js');
