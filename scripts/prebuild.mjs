#!/usr/bin/env node
// Builds the addon for every supported Node.js and architecture, into
// prebuilds/linux-<arch>/ipckit.abi<ABI>.node, where the package's loader
// (src/native.ts) and install script (scripts/install.mjs) look for them.
//
// The addon uses V8's own API (SharedArrayBuffers over mappings), so a
// binary fits one Node ABI (NODE_MODULE_VERSION): one per supported major.
// Headers come from the npm registry's node-linux-<arch> packages (each
// carries its version's include/node), so nothing is fetched from anywhere
// else. arm64 is cross-compiled with Debian's g++-aarch64-linux-gnu.
//
//   node scripts/prebuild.mjs [--arch x64,arm64] [--node 20,22,24]
//
// Needs python3, make, g++ (and g++-aarch64-linux-gnu for arm64), and
// network access to the npm registry (or its cache).
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = path.join(ROOT, 'build', 'node-headers');
/** The Node.js majors ipckit supports (package.json's engines says the same). */
const SUPPORTED_NODE_MAJORS = ['20', '22', '24'];

const { values } = parseArgs({
  options: {
    arch: { type: 'string', default: 'x64,arm64' },
    node: { type: 'string', default: SUPPORTED_NODE_MAJORS.join(',') },
  },
});

const CROSS = { arm64: { CC: 'aarch64-linux-gnu-gcc', CXX: 'aarch64-linux-gnu-g++', LINK: 'aarch64-linux-gnu-g++' } };

/** node-gyp: npm's own (npm tells lifecycle scripts where), or the one beside the npm on PATH. */
function nodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  const npm = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim();
  return path.join(npm, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
}

/** The extracted node-linux-<arch>@<major> package: its include/node, and the ABI it declares. */
function headers(arch, major) {
  const dir = path.join(CACHE, `${arch}-${major}`);
  if (!existsSync(path.join(dir, 'package', 'include', 'node', 'node_version.h'))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const tarball = execFileSync('npm', ['pack', `node-linux-${arch}@${major}`, '--silent'], { cwd: dir, encoding: 'utf8' }).trim().split('\n').pop();
    execFileSync('tar', ['xzf', tarball, 'package/include', 'package/package.json'], { cwd: dir });
    rmSync(path.join(dir, tarball));
  }
  const version = readFileSync(path.join(dir, 'package', 'include', 'node', 'node_version.h'), 'utf8');
  const abi = /#define NODE_MODULE_VERSION (\d+)/.exec(version)?.[1];
  const full = JSON.parse(readFileSync(path.join(dir, 'package', 'package.json'), 'utf8')).version;
  if (abi === undefined) throw new Error(`no NODE_MODULE_VERSION in node-linux-${arch}@${major}`);
  return { nodedir: path.join(dir, 'package'), abi, full };
}

const gyp = nodeGyp();
const addonApi = path.dirname(createRequire(import.meta.url).resolve('node-addon-api/package.json'));
for (const arch of values.arch.split(',')) {
  for (const major of values.node.split(',')) {
    const { nodedir, abi, full } = headers(arch, major);
    // A scratch copy, so that the checkout's own build/ is left alone.
    const work = mkdtempSync(path.join(tmpdir(), 'ipckit-prebuild-'));
    try {
      cpSync(path.join(ROOT, 'binding.gyp'), path.join(work, 'binding.gyp'));
      cpSync(path.join(ROOT, 'native'), path.join(work, 'native'), { recursive: true });
      mkdirSync(path.join(work, 'node_modules'));
      cpSync(addonApi, path.join(work, 'node_modules', 'node-addon-api'), { recursive: true });
      const env = { ...process.env, ...(CROSS[arch] ?? {}) };
      console.log(`prebuild: linux-${arch}, Node ${full} (ABI ${abi})`);
      execFileSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, `--arch=${arch}`, '-j', 'max'], { cwd: work, env, stdio: ['ignore', 'ignore', 'inherit'] });
      const out = path.join(ROOT, 'prebuilds', `linux-${arch}`);
      mkdirSync(out, { recursive: true });
      copyFileSync(path.join(work, 'build', 'Release', 'ipckit.node'), path.join(out, `ipckit.abi${abi}.node`));
      execFileSync(arch === 'arm64' ? 'aarch64-linux-gnu-strip' : 'strip', ['--strip-unneeded', path.join(out, `ipckit.abi${abi}.node`)]);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
}
console.log(`prebuild: ${readdirSync(path.join(ROOT, 'prebuilds')).map((d) => `${d}: ${readdirSync(path.join(ROOT, 'prebuilds', d)).join(' ')}`).join('; ')}`);
