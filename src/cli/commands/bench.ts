/**
 * `ipckit bench`: runs the benchmark harness of a source checkout.
 * @internal
 * @module
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { IpcError } from '../../errors.js';
import type { Leaf } from '../program.js';

const HARNESS = fileURLToPath(new URL('../../../bench/harness.js', import.meta.url));

export const benchCommand: Leaf = {
  name: 'bench',
  summary: 'measure every mechanism against a C reference and the Node built-in',
  args: '[mechanism...]',
  minArgs: 0,
  maxArgs: 32,
  details: 'The same as "npm run bench -- [mechanism...]" in a checkout; prints ratios and writes bench/results/latest.json.',
  options: {
    quick: { type: 'boolean', description: 'fewer iterations (a smoke run, not for figures)' },
  },
  async run(ctx) {
    if (!existsSync(HARNESS)) {
      throw new IpcError('ERR_IPC_USAGE', 'The benchmark harness ships with the source checkout only: clone the repository, run "npm ci", then "npm run bench".');
    }
    const args = [HARNESS, ...ctx.positionals, ...(ctx.values.quick ? ['--quick'] : []), ...(ctx.json ? ['--json'] : [])];
    const code = await new Promise<number>((resolve, reject) => {
      spawn(process.execPath, args, { stdio: 'inherit' }).on('error', reject).on('close', (c) => resolve(c ?? 1));
    });
    process.exitCode = code;
  },
};
