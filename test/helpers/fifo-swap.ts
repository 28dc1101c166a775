/**
 * The directory-swap race against a FIFO path, as a hostile user plays it:
 * `dir/d/f` is the FIFO a caller checks, `dir/decoy/f` another FIFO with a
 * writer blocked in open() on it (the first reader to open the decoy lets
 * that writer through), and a process exchanging `dir/d` with a link to
 * `dir/decoy` (renameat2 RENAME_EXCHANGE) as fast as it goes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { Fifo } from '../../src/index.js';
import { waitUntil } from './assert.js';
import { trackChild } from './peer.js';
import { blockedIn } from './proc.js';

const SWAP = 'import ctypes, os, sys\nreal, link, decoy = sys.argv[1:]\nos.symlink(decoy, link)\nlibc = ctypes.CDLL(None, use_errno=True)\n' +
  'while libc.renameat2(-100, real.encode(), -100, link.encode(), 2) == 0:\n    pass\nsys.exit(os.strerror(ctypes.get_errno()))';

export interface FifoSwap {
  /** The path the caller means: `dir/d/f`. */
  fifo: string;
  /** The decoy FIFO, `dir/decoy/f` (to chown before calling start()). */
  decoy: string;
  /** Starts the blocked writer on the decoy and the swapping; resolves once both are under way. */
  start(): Promise<void>;
  /** Whether the decoy's writer still waits in open(): nothing opened the decoy. */
  decoyUntouched(): Promise<void>;
  stop(): void;
}

/** Makes both FIFOs under `dir` (which must exist and be empty of d, decoy and link). */
export function fifoSwap(dir: string): FifoSwap {
  const [real, link, decoyDir] = ['d', 'link', 'decoy'].map((name) => path.join(dir, name)) as [string, string, string];
  mkdirSync(real);
  mkdirSync(decoyDir);
  const fifo = path.join(real, 'f');
  const decoy = path.join(decoyDir, 'f');
  Fifo.create(fifo);
  Fifo.create(decoy);
  const children: ChildProcess[] = [];
  let blocked: ChildProcess | undefined;
  return {
    fifo,
    decoy,
    async start() {
      blocked = trackChild(spawn('python3', ['-c', 'import os, sys\nos.open(sys.argv[1], os.O_WRONLY)', decoy], { stdio: 'ignore' }));
      children.push(blocked);
      await blockedIn(blocked.pid!, 'openat');
      children.push(trackChild(spawn('python3', ['-c', SWAP, real, link, decoyDir], { stdio: 'ignore' })));
      await waitUntil('the swapping started', () => {
        try {
          return readlinkSync(real) === decoyDir;
        } catch {
          return false; // The real directory is there (or the link is not yet).
        }
      });
    },
    async decoyUntouched() {
      await blockedIn(blocked!.pid!, 'openat', { timeoutMs: 1000 });
    },
    stop() {
      for (const child of children) child.kill('SIGKILL');
    },
  };
}
