/**
 * The only module that loads the compiled addon. Everything else imports the
 * typed {@link native} object from here.
 *
 * Convention: every function returns a non-negative result or `-errno`.
 * @internal
 * @module
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { IpcError, registerErrnos, setErrnoDescriber } from './errors.js';

/** A libuv poll handle over a descriptor; see native/readiness.cc. */
export interface NativeFdWatcher {
  /** Starts or re-targets the watch; 0 or a negative errno. */
  start(events: number): number;
  stop(): void;
  close(): void;
  /** Whether an active watch keeps the process alive (it does by default). */
  ref(): void;
  unref(): void;
}

/** Fields of `msgctl(IPC_STAT)`. */
export interface NativeMsgStat {
  key: number;
  uid: number;
  gid: number;
  cuid: number;
  cgid: number;
  mode: number;
  messages: number;
  bytes: number;
  maxBytes: number;
  lastSendPid: number;
  lastReceivePid: number;
  sendTime: number;
  receiveTime: number;
  changeTime: number;
}

/** Fields of `shmctl(IPC_STAT)`. */
export interface NativeShmStat {
  key: number;
  size: number;
  mode: number;
  removed: boolean;
  uid: number;
  gid: number;
  cuid: number;
  cgid: number;
  attachments: number;
  creatorPid: number;
  lastPid: number;
  attachTime: number;
  detachTime: number;
  changeTime: number;
}

export interface NativeBinding {
  close(fd: number): number;
  strerror(errno: number): string;
  getFlags(fd: number): number;
  getFdFlags(fd: number): number;
  fdConstants: { O_NONBLOCK: number; O_CLOEXEC: number; FD_CLOEXEC: number };
  extraErrno: Record<string, number>;

  FdWatcher: new (fd: number, callback: (status: number, events: number) => void) => NativeFdWatcher;
  readinessConstants: { READABLE: number; WRITABLE: number; DISCONNECT: number };

  cancelJob(id: number): boolean;
  wakeSignal: number;

  mqOpen(name: string, oflag: number, mode: number, maxMessages: number, maxMessageSize: number): number;
  mqUnlink(name: string): number;
  /** timeoutMs: -1 blocks, 0 tries (ETIMEDOUT if it would block), n waits; spinUs: spin first. */
  mqSend(fd: number, data: Uint8Array, priority: number, timeoutMs: number, spinUs: number): number;
  /** Receives into buffer[offset..]; out[0] = priority. Timeout and spin as mqSend. */
  mqReceive(fd: number, buffer: Uint8Array, offset: number, out: Uint32Array, timeoutMs: number, spinUs: number): number;
  mqGetAttr(fd: number, out: Float64Array): number;
  ftok(path: string, projectId: number): number;
  msgGet(key: number, flags: number, mode: number): number;
  /** Timeout and spin as mqSend; ETIMEDOUT when a try would block. */
  msgSnd(id: number, type: number, data: Uint8Array, timeoutMs: number, spinUs: number): number;
  /** Receives a long type then the payload into buffer[offset..]; typeInOut[0]: the selector in, the received type out. */
  msgRcv(id: number, buffer: Uint8Array, offset: number, typeInOut: Float64Array, timeoutMs: number, spinUs: number): number;
  msgStat(id: number): NativeMsgStat | number;
  msgSetMaxBytes(id: number, bytes: number): number;
  msgRemove(id: number): number;
  msgRcvAsync(id: number, capacity: number, type: number,
    callback: (result: number, data?: Buffer, type?: number) => void): number;
  msgSndAsync(id: number, type: number, data: Uint8Array, callback: (result: number) => void): number;
  /** memmove between two byte views (fast for SharedArrayBuffer-backed ones). */
  copyBytes(dst: Uint8Array, dstOffset: number, src: Uint8Array, srcOffset: number, length: number): number;
  shmOpen(name: string, oflag: number, mode: number): number;
  shmUnlink(name: string): number;
  ftruncate(fd: number, size: number): number;
  /** posix_fallocate: sets the size and reserves the memory. */
  allocate(fd: number, size: number): number;
  mapFd(fd: number, size: number, readOnly: boolean): SharedArrayBuffer | number;
  shmGet(key: number, size: number, flags: number, mode: number): number;
  shmAttach(id: number, size: number, readOnly: boolean): SharedArrayBuffer | number;
  shmStat(id: number): NativeShmStat | number;
  shmRemove(id: number): number;
  /** Replaces the mapping under `buffer` with private anonymous memory. */
  detachMapping(buffer: SharedArrayBuffer): number;
  shmConstants: { O_RDONLY: number; O_RDWR: number; O_CREAT: number; O_EXCL: number; IPC_CREAT: number; IPC_EXCL: number; PAGE_SIZE: number };

  /** 0 acquired, 1 acquired from a dead owner, or -errno. */
  mutexLock(words: Int32Array, tid: number, start: number, timeoutMs: number, spinUs: number, allowSelf: boolean): number;
  /** 1 if the owner was dead and the lock is now ours, else -EBUSY / -ENOTRECOVERABLE / 0. */
  mutexTryTakeOver(words: Int32Array, tid: number, start: number): number;
  mutexLockAsync(words: Int32Array, tid: number, start: number, callback: (result: number) => void): number;
  futexWake(words: Int32Array, index: number, count: number): number;
  semWait(words: Int32Array, timeoutMs: number, spinUs: number): number;
  semWaitAsync(words: Int32Array, callback: (result: number) => void): number;
  gettid(): number;
  lockConstants: { WAITERS: number; TID_MASK: number };

  pipe2(flags: number): [number, number] | number;
  setPipeSize(fd: number, bytes: number): number;
  getPipeSize(fd: number): number;
  setNonBlocking(fd: number, on: boolean): number;
  /** timeoutMs < 0: as the descriptor's mode says (spinning up to spinUs on EAGAIN); >= 0: poll first, -ETIMEDOUT. */
  readFd(fd: number, buffer: Uint8Array, offset: number, length: number, timeoutMs: number, spinUs: number): number;
  writeFd(fd: number, buffer: Uint8Array, offset: number, length: number, timeoutMs: number, spinUs: number): number;
  pollFd(fd: number, events: number, timeoutMs: number): number;
  /** open(2) with O_CLOEXEC; a blocking open is bounded by timeoutMs (< 0: forever). */
  openPath(path: string, flags: number, timeoutMs: number): number;
  mkfifo(path: string, mode: number): number;
  fchmod(fd: number, mode: number): number;
  inotifyWatch(path: string, mask: number): number;
  drain(fd: number): number;
  pipeConstants: {
    O_RDONLY: number; O_WRONLY: number; O_RDWR: number; O_NONBLOCK: number; O_CLOEXEC: number; O_NOFOLLOW: number;
    POLLIN: number; POLLOUT: number; POLLHUP: number; POLLERR: number; IN_OPEN: number; PIPE_BUF: number;
  };

  /** The eventfd that reports signals caught by ipckit's handler. */
  signalSetup(): number;
  signalHandle(signo: number): number;
  /** disposition: 0 the action found before, 1 SIG_DFL, 2 SIG_IGN. */
  signalRelease(signo: number, disposition: number): number;
  /** Copies caught signals into out (6 numbers each: signo, code, pid, uid, value, dropped); returns the count. */
  signalDrain(out: Float64Array): number;
  /** 0 default, 1 ignored, 2 handled. */
  signalDisposition(signo: number): number;
  /** Spins up to spinUs µs for a handled signal to be pending; 1 if one is. */
  signalSpin(spinUs: number): number;
  kill(pid: number, signo: number): number;
  sigqueue(pid: number, signo: number, value: number): number;
  signalConstants: { SIGRTMIN: number; SIGRTMAX: number; SI_USER: number; SI_QUEUE: number; SI_KERNEL: number; SI_TKILL: number };

  mqConstants: {
    O_RDONLY: number; O_WRONLY: number; O_RDWR: number; O_CREAT: number; O_EXCL: number;
    O_CLOEXEC: number; IPC_CREAT: number; IPC_EXCL: number; MQ_PRIO_MAX: number;
  };
}

function load(): NativeBinding {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const file = path.join(root, 'build', 'Release', 'ipckit.node');
  try {
    return createRequire(import.meta.url)(file) as NativeBinding;
  } catch (err) {
    throw new IpcError('ERR_IPC_ADDON',
      `The ipckit native addon could not be loaded from ${file}. ` +
      'Build it with "npm rebuild ipckit" (or "npm ci" in a checkout); it needs python3, make and g++.',
      { cause: err });
  }
}

/** The typed addon. */
export const native: NativeBinding = load();

setErrnoDescriber((errno) => native.strerror(errno));
registerErrnos(native.extraErrno);
