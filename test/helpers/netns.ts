/**
 * Network namespaces standing for hosts, for the tests that cross
 * "machines": `ip` run and checked, a list of set-up steps, removal.
 */
import { spawnSync } from 'node:child_process';

/** Runs `ip ARGS`: whether it succeeded, and what it said if not. */
export function ip(...args: string[]): { ok: boolean; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  return { ok: r.status === 0, err: `${r.stderr ?? ''}${r.error?.message ?? ''}` };
}

/** Why namespaces cannot be made here, or undefined when they can (root and iproute2). */
export function netnsMissing(): string | undefined {
  if (process.getuid!() !== 0) return 'needs root to create network namespaces';
  if (spawnSync('ip', ['-V']).status !== 0) return 'needs iproute2 (ip)';
  return undefined;
}

/** Runs `ip` steps in order; the first refusal, as a skip reason, or undefined when all went through. */
export function ipSteps(steps: string[][]): string | undefined {
  for (const step of steps) {
    const r = ip(...step);
    if (!r.ok) return `the kernel refused "ip ${step.join(' ')}": ${r.err.trim()}`;
  }
  return undefined;
}

/** Whether `ip netns list` still names any namespace containing `tag`. */
export function namespacesLeft(tag: string): boolean {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout?.includes(tag) ?? false;
}
