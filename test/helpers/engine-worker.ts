/** A worker that blocks in one *Sync wait until it is terminated (see engine-peer.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { Fifo, Mutex, PosixMessageQueue, PosixSharedMemory, Semaphore, SysvMessageQueue, listenForSignals, pipe } from '../../src/index.js';
import { native } from '../../src/native.js';

const { kind, address, offset } = workerData as { kind: string; address: string | number; offset?: number };

const block: Record<string, () => unknown> = {
  sysv: () => SysvMessageQueue.open(address).receiveSync({ type: 999_999 }),
  posix: () => PosixMessageQueue.open(address as string).receiveSync(),
  mutex: () => Mutex.open(PosixSharedMemory.open(address as string), offset ?? 0).lockSync(),
  semaphore: () => Semaphore.open(PosixSharedMemory.open(address as string), offset ?? 0).waitSync(),
  pipe: () => pipe().readEnd.readSync(),
  fifo: () => Fifo.openReadSync(address as string),
  signal: () => listenForSignals('SIGRTMIN+9').receiveSync(),
};

parentPort!.postMessage({ tid: native.gettid() });
block[kind]!();
