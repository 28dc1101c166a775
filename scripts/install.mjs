#!/usr/bin/env node
// npm's install step for ipckit: nothing to do when a prebuilt binary in
// prebuilds/ loads in this Node.js on this machine; otherwise the addon is
// compiled from native/ with node-gyp (python3, make and g++), as a
// checkout always is. Installs with scripts blocked (--ignore-scripts,
// pnpm's default) skip this and use the prebuilt binary directly.
// `--from-source` always compiles (npm run build, after a change to native/).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const prebuilt = path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`, `ipckit.abi${process.versions.modules}.node`);

function loads(file) {
  try {
    createRequire(import.meta.url)(file);
    return true;
  } catch {
    return false;
  }
}

const fromSource = process.argv.includes('--from-source');
if (!fromSource && existsSync(prebuilt) && loads(prebuilt)) {
  console.log(`ipckit: using the prebuilt addon ${path.relative(ROOT, prebuilt)}`);
} else {
  if (!fromSource) {
    console.log(`ipckit: no prebuilt addon for ${process.platform}-${process.arch}, Node ABI ${process.versions.modules}: compiling it (needs python3, make and g++)`);
  }
  const gyp = process.env.npm_config_node_gyp;
  const [command, args] = gyp && existsSync(gyp) ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']];
  execFileSync(command, args, { cwd: ROOT, stdio: 'inherit' });
}
