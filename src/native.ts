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

/** A libuv poll handle over one of ipckit's epoll sets; see native/readiness.cc. */
export interface NativeFdWatcher {
  /** Starts watching for readability; 0 or a negative errno. */
  start(): number;
  stop(): void;
  close(): void;
  /** Whether an active watch keeps the process alive (it does by default). */
  ref(): void;
  unref(): void;
}

/** The owner, creator and mode every System V stat reports (SetIpcPerm in native/common.h). */
export interface NativeIpcPerm {
  key: number;
  uid: number;
  gid: number;
  cuid: number;
  cgid: number;
  mode: number;
}

/** Fields of `msgctl(IPC_STAT)`. */
export interface NativeMsgStat extends NativeIpcPerm {
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
export interface NativeShmStat extends NativeIpcPerm {
  size: number;
  removed: boolean;
  attachments: number;
  creatorPid: number;
  lastPid: number;
  attachTime: number;
  detachTime: number;
  changeTime: number;
}

/** Fields of `semctl(IPC_STAT)`. */
export interface NativeSemStat extends NativeIpcPerm {
  count: number;
  opTime: number;
  changeTime: number;
}

/**
 * The addon's functions. A call that can wait is one bounded attempt: it
 * spins up to `spinUs`, sleeps up to `timeoutMs` (0: not at all; -1: no
 * limit) and returns -EAGAIN when there is nothing yet.
 */
export interface NativeBinding {
  // fd.cc: descriptor I/O and every flag constant
  close(fd: number): number;
  /**
   * Records that a handle of this environment owns fd (closed when the environment ends): the owner's token.
   * -EEXIST if one already does, unless `fresh` (just made by the kernel: the old record is stale).
   */
  holdFd(fd: number, fresh: boolean): number;
  /** Closes a descriptor the owner with `token` still owns; -EBADF (and nothing closed) otherwise. */
  releaseFd(fd: number, token: number): number;
  strerror(errno: number): string;
  getFlags(fd: number): number;
  getFdFlags(fd: number): number;
  setNonBlocking(fd: number, on: boolean): number;
  /** One read as the descriptor's mode says; spins up to spinUs on EAGAIN. 0 = end of data. */
  readFd(fd: number, buffer: Uint8Array, offset: number, length: number, spinUs: number): number;
  writeFd(fd: number, buffer: Uint8Array, offset: number, length: number, spinUs: number): number;
  /**
   * Gathered write of list[at[0]..] from byte at[1] on (framed: each element
   * behind its 4-byte length), moving `at` past what went: bytes written,
   * -EAGAIN (nothing), or -errno. Mode: GATHER_* constants.
   */
  writevFd(fd: number, list: readonly Uint8Array[] | Uint8Array, at: Float64Array, mode: number, spinUs: number, lengths?: Uint32Array, count?: number,
    timeoutMs?: number): number;
  /** Moves whole frames of `buffer[from..to)` down over their length prefixes (see native/fd.cc); the messages taken. */
  unframe(buffer: Uint8Array, from: number, to: number, lengths: Uint32Array, first: number, maxSize: number, out: Float64Array): number;
  /** One scattered read into the buffers in order: bytes read (0 = end), or -errno. */
  readvFd(fd: number, list: readonly Uint8Array[], mode: number, spinUs: number): number;
  /** revents, or 0 when nothing happened within timeoutMs (or a signal came). */
  pollFd(fd: number, events: number, timeoutMs: number): number;
  /** open(2) with O_CLOEXEC; a blocking open gives up after timeoutMs with -ETIMEDOUT. */
  openPath(path: string, flags: number, timeoutMs: number): number;
  constants: {
    O_RDONLY: number; O_WRONLY: number; O_RDWR: number; O_ACCMODE: number; O_CREAT: number; O_EXCL: number;
    O_NONBLOCK: number; O_CLOEXEC: number; O_NOFOLLOW: number; O_PATH: number; FD_CLOEXEC: number;
    POLLIN: number; POLLOUT: number; POLLHUP: number; POLLERR: number;
    EPOLLIN: number; EPOLLOUT: number; EPOLLHUP: number; EPOLLERR: number; EPOLLET: number; EPOLLRDHUP: number; POLLNVAL: number;
    EPOLL_CTL_ADD: number; EPOLL_CTL_MOD: number; EPOLL_CTL_DEL: number;
    IPC_CREAT: number; IPC_EXCL: number; IPC_NOWAIT: number; SEM_UNDO: number; IN_OPEN: number; PIPE_BUF: number;
    IOV_MAX: number; GATHER_FRAMED: number; GATHER_ATOMIC: number; GATHER_SOCKET: number;
  };
  extraErrno: Record<string, number>;

  // readiness.cc
  /** Only ever over ipckit's own epoll set (see readiness.ts). */
  FdWatcher: new (fd: number, callback: (status: number, events: number) => void) => NativeFdWatcher;
  epollCreate(): number;
  epollCtl(epfd: number, op: number, fd: number, events: number, token: number): number;
  /** Writes (token, events) pairs into out; returns how many. */
  epollWait(epfd: number, out: Uint32Array, timeoutMs: number): number;
  /** poll(2) over many descriptors: how many are ready, their revents written. */
  pollMany(fds: Int32Array, events: Int32Array, revents: Int32Array, timeoutMs: number): number;

  // jobs.cc
  cancelJob(id: number): boolean;
  /** [threads, idle] of the waiter pool. */
  waiterThreads(): [number, number];
  wakeSignal: number;
  maskSignal: number;
  maxWaiterThreads: number;

  // message-queue.cc
  mqOpen(name: string, oflag: number, mode: number, maxMessages: number, maxMessageSize: number): number;
  mqUnlink(name: string): number;
  mqSend(fd: number, data: Uint8Array, priority: number, timeoutMs: number, spinUs: number): number;
  /** Receives into buffer[offset..]: priority * 2^32 + length, or -errno. */
  mqReceive(fd: number, buffer: Uint8Array, offset: number, timeoutMs: number, spinUs: number): number;
  /** out = [flags, maxmsg, msgsize, curmsgs] */
  mqGetAttr(fd: number, out: Float64Array): number;
  mqPrioMax: number;
  ftok(path: string, projectId: number): number;
  msgGet(key: number, flags: number, mode: number): number;
  msgSnd(id: number, type: number, data: Uint8Array, timeoutMs: number, spinUs: number): number;
  /** Receives a long (the message's type) then the payload into buffer[offset..]: the payload's length, or -errno. */
  msgRcv(id: number, buffer: Uint8Array, offset: number, type: number, timeoutMs: number, spinUs: number): number;
  /**
   * Receives a long (the type) then the payload into scratch, then copies the payload to target[0..]: its length, or
   * -errno; -(4096 + length) if taken but not copied (longer than the target), its bytes left in scratch.
   */
  msgRcvInto(id: number, scratch: Uint8Array, target: Uint8Array, type: number, timeoutMs: number, spinUs: number): number;
  msgStat(id: number): NativeMsgStat | number;
  msgSetMaxBytes(id: number, bytes: number): number;
  msgRemove(id: number): number;
  /** Receives into buffer[offset..] on a waiter thread (the region must stay reserved); callback(result, type). */
  msgRcvAsync(id: number, buffer: Uint8Array, offset: number, type: number, callback: (result: number, type?: number) => void): number;
  msgSndAsync(id: number, type: number, data: Uint8Array, callback: (result: number) => void): number;
  /** Sends list[next[0]..] (advancing next[0]); the first may wait, the rest only while there is room: the count sent, or -errno. */
  mqSendMany(fd: number, list: readonly Uint8Array[] | Uint8Array, priority: number, next: Uint32Array, timeoutMs: number, spinUs: number,
    lengths?: Uint32Array, count?: number): number;
  mqReceiveBatch(fd: number, data: Uint8Array, lengths: Uint32Array, io: Float64Array, timeoutMs: number, spinUs: number, priorities?: Uint32Array): number;
  /** io[0] max, io[1] msgsize in; io[2 + 2i] length, io[3 + 2i] priority out; messages at aligned offsets from `offset`. */
  mqReceiveMany(fd: number, buffer: Uint8Array, offset: number, io: Uint32Array, timeoutMs: number, spinUs: number): number;
  msgSndMany(id: number, type: number, list: readonly Uint8Array[] | Uint8Array, next: Uint32Array, timeoutMs: number, spinUs: number,
    lengths?: Uint32Array, count?: number): number;
  msgRcvBatch(id: number, data: Uint8Array, lengths: Uint32Array, io: Float64Array, timeoutMs: number, spinUs: number, types?: Float64Array): number;
  /** io[0] selector, io[1] max, io[2] largest payload in; io[3 + 2i] length, io[4 + 2i] type out; each a long then the payload. */
  msgRcvMany(id: number, buffer: Uint8Array, offset: number, io: Float64Array, timeoutMs: number, spinUs: number): number;

  // shared-memory.cc
  /** memmove between two byte views (fast for SharedArrayBuffer-backed ones). */
  ringPut(ring: Uint8Array, words: Int32Array, io: Float64Array, data: Uint8Array, lengths: Uint32Array): number;
  ringTake(ring: Uint8Array, words: Int32Array, io: Float64Array, data: Uint8Array, lengths: Uint32Array): number;
  copyBytes(dst: Uint8Array, dstOffset: number, src: Uint8Array, srcOffset: number, length: number): number;
  /** An unnamed POSIX segment (O_TMPFILE in /dev/shm) with exactly `mode`, or -errno. */
  /** The index of a POSIX mapping's truncation flag in truncationFlags(), or -1. */
  guardSlot(buffer: SharedArrayBuffer): number;
  /** The flags the SIGBUS handler raises when a mapped segment was truncated (one Int32 per mapping). */
  truncationFlags(): SharedArrayBuffer;
  shmCreateUnnamed(mode: number): number;
  /** Names the unnamed segment `fd` (linkat into /dev/shm); -EEXIST if the name is taken. */
  shmPublish(fd: number, name: string): number;
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
  pageSize: number;

  // lock.cc
  /** 0 once words[index] !== expected (or woken), -EAGAIN if it still holds after timeoutMs. */
  futexWait(words: Int32Array, index: number, expected: number, timeoutMs: number, spinUs: number): number;
  /** On a waiter thread: result 0 when the word changed, 1 when thread watchTid (started at watchStart) is gone. */
  futexWaitAsync(words: Int32Array, index: number, expected: number, watchTid: number, watchStart: number,
    callback: (result: number) => void): number;
  futexWake(words: Int32Array, index: number, count: number): number;
  threadAlive(tid: number, start: number): boolean;
  gettid(): number;

  // semaphore.cc: POSIX named semaphores on a mapped sem_t (a Uint8Array over it)
  /** glibc's sem_init(view, 1, value): 0 or -errno. */
  semInit(view: Uint8Array, value: number): number;
  /** 0 once a unit is taken, -EAGAIN if none within timeoutMs (a sleep is cut after 1 s). */
  semWait(view: Uint8Array, timeoutMs: number, spinUs: number): number;
  /** Wakes up to n sleepers on the value word: how many woke, or -errno. */
  semWake(view: Uint8Array, n: number): number;
  /** On a waiter thread: result 0 once a unit is taken, -ESTALE if the mapping in truncatedSlot was truncated. */
  semWaitAsync(view: Uint8Array, truncatedSlot: number, callback: (result: number) => void): number;
  // System V sets; ops are [index, delta (16-bit pattern), flags] triples
  semGet(key: number, count: number, flags: number, mode: number): number;
  /** 0, -EAGAIN (not within timeoutMs), -EBUSY (an IPC_NOWAIT operation could not proceed), or -errno. */
  semOp(id: number, ops: Uint16Array, timeoutMs: number, spinUs: number): number;
  /** On a waiter thread: 0, -EBUSY as semOp, or -errno. */
  semOpAsync(id: number, ops: Uint16Array, callback: (result: number) => void): number;
  semStat(id: number): NativeSemStat | number;
  /** out[4i..4i+3] = value, waiting for increase, waiting for zero, last pid of semaphore i. */
  semInfo(id: number, out: Float64Array): number;
  semGetValue(id: number, index: number): number;
  semSetValue(id: number, index: number, value: number): number;
  semSetAll(id: number, values: Uint16Array): number;
  semGetAll(id: number, values: Uint16Array): number;
  semRemove(id: number): number;

  // doorbell.cc
  /** A bell bound to a fresh random token, stored in words[index] and words[index + 1]: its fd, or -errno. */
  bellOpen(words: Int32Array, index: number): number;
  /** Rings the bell whose token is in words[index..index + 1] (a zero token: nothing): 0 or -errno. */
  bellRing(words: Int32Array, index: number): number;
  /** One more (delta 1) or one less (-1) channel handle needs the process's ringing socket: its fd (made with the first), 0, or -errno. */
  bellRinger(delta: 1 | -1): number;
  /** Reads one ring of a bell: 1, 0 if none was there, or -errno. */
  bellDrain(fd: number): number;

  // pipe.cc
  pipe2(flags: number): [number, number] | number;
  setPipeSize(fd: number, bytes: number): number;
  getPipeSize(fd: number): number;

  // fifo.cc
  mkfifo(path: string, mode: number): number;
  fchmod(fd: number, mode: number): number;
  inotifyInit(): number;
  /** The watch descriptor of path (the same for every watch of one file in one instance). */
  inotifyAddWatch(fd: number, path: string, mask: number): number;
  inotifyRmWatch(fd: number, wd: number): number;
  drainEvents(fd: number): number;

  // signal.cc
  /** [signalfd, doorbell, this thread's eventfd]: readable while a handled signal is pending or queued for this thread. */
  signalSetup(): [number, number, number] | number;
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
  /** prctl(PR_SET_PDEATHSIG): signo comes when the parent thread ends; -ESRCH if the parent is no longer parentPid. */
  parentDeathSignal(signo: number, parentPid: number): number;
  signalConstants: { SIGRTMIN: number; SIGRTMAX: number; SI_USER: number; SI_QUEUE: number; SI_KERNEL: number; SI_TKILL: number };

  // socket.cc: descriptors users get stay blocking; every attempt passes MSG_DONTWAIT
  socketOpen(domain: number, type: number, nonBlocking: boolean): number;
  socketPair(type: number): [number, number] | number;
  /** A sockaddr_un of exactly the name's length (abstract: leading NUL, no terminator). */
  unixAddress(name: Uint8Array, abstract: boolean): Buffer | number;
  unixAutobind(): Buffer;
  /** -EINVAL: not a literal; -ENODEV: unknown zone. */
  inetAddress(host: string, port: number, zone: string): Buffer | number;
  decodeAddress(sockaddr: Uint8Array): ['unix', Buffer, boolean] | ['inet', string, number, 4 | 6, string] | ['unnamed'];
  bind(fd: number, sockaddr: Uint8Array): number;
  /** 0, -EINPROGRESS (connecting), -EAGAIN (a Unix listener's backlog is full), or -errno. */
  connect(fd: number, sockaddr: Uint8Array): number;
  listen(fd: number, backlog: number): number;
  /** A blocking close-on-exec connection, or -EAGAIN when none waits. */
  accept(fd: number): number;
  socketName(fd: number, peer: boolean): Buffer | number;
  getSockOpt(fd: number, level: number, name: number): number;
  setSockOpt(fd: number, level: number, name: number, value: number): number;
  /** out = [pid, uid, gid] */
  peerCredentials(fd: number, out: Int32Array): number;
  peerPidfd(fd: number): number;
  queuedBytes(fd: number): number;
  shutdown(fd: number, how: number): number;
  /** `head` (from headOffset) goes first in the same call; the count includes it. */
  sendMsg(fd: number, data: Uint8Array, offset: number, length: number, fds: Int32Array | null, to: Uint8Array | null, spinUs: number,
    head?: Uint8Array, headOffset?: number): number;
  /** The parts in order in one sendmsg (at most IOV_MAX), descriptors with the first byte. */
  sendParts(fd: number, parts: Uint8Array[], fds: Int32Array | null, spinUs: number): number;
  /** list[next[0]..] as one message each by sendmmsg (to: null for the connected peer), moving next[0]: messages sent, or -errno. */
  sendMmsg(fd: number, list: readonly Uint8Array[] | Uint8Array, to: Uint8Array | null, next: Uint32Array, spinUs: number, lengths?: Uint32Array, count?: number,
    timeoutMs?: number): number;
  /**
   * One recvmmsg of up to io[0] messages into `slot`-byte slots of scratch:
   * io[1 + 4i..4 + 4i] = [length, msg_flags, descriptors, address length].
   */
  recvMmsg(fd: number, scratch: Uint8Array, slot: number, io: Uint32Array, from: Uint8Array, fdsOut: Int32Array, spinUs: number): number;
  recvDatagrams(fd: number, scratch: Uint8Array, io: Uint32Array, from: Uint8Array, fdsOut: Int32Array, max: number, spinUs: number): number;
  datagramSize(fd: number, spinUs: number): number;
  /**
   * Seqpacket messages straight into a packed batch: io = [count, size,
   * maxMessageSize] in, [count, size, -, why (PACKET_STOP), detail] out;
   * the messages placed, or -EINVAL for a batch out of range.
   */
  /**
   * Seqpacket messages (or datagrams: io[5] = 1) into a packed batch; io = [count, size, maxMessageSize, why, detail(, mode)].
   * `senders`: slots of SENDER_SLOT bytes, each a sender's sockaddr then its length (little-endian 32 bits) at byte 128.
   */
  recvPackets(fd: number, data: Uint8Array, lengths: Uint32Array, io: Float64Array, spinUs: number, senders?: Uint8Array): number;
  /** meta = [msg_flags, descriptors received into fdsOut, address length]. */
  recvMsg(fd: number, buffer: Uint8Array, offset: number, length: number, fdsOut: Int32Array, from: Uint8Array | null,
    meta: Int32Array, flags: number, spinUs: number): number;
  socketConstants: {
    AF_UNIX: number; AF_INET: number; AF_INET6: number; SOCK_STREAM: number; SOCK_DGRAM: number; SOCK_SEQPACKET: number;
    SOL_SOCKET: number; SO_ERROR: number; SO_TYPE: number; SO_DOMAIN: number; SO_ACCEPTCONN: number; SO_REUSEADDR: number;
    SO_SNDBUF: number; SO_RCVBUF: number; IPPROTO_TCP: number; TCP_NODELAY: number; IPPROTO_IPV6: number; IPV6_V6ONLY: number;
    MSG_TRUNC: number; MSG_CTRUNC: number; MSG_PEEK: number; POLLRDHUP: number; SHUT_RD: number; SHUT_WR: number; SHUT_RDWR: number;
    SCM_MAX_FD: number;
  };
}

/**
 * The addon: built here from native/ (build/Release, what `npm ci` in a
 * checkout or a source install makes), else the prebuilt binary of this
 * architecture and Node ABI shipped in prebuilds/ (see scripts/prebuild.mjs).
 */
function load(): NativeBinding {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const candidates = [
    path.join(root, 'build', 'Release', 'ipckit.node'),
    path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, `ipckit.abi${process.versions.modules}.node`),
  ];
  const failures: string[] = [];
  for (const file of candidates) {
    try {
      return createRequire(import.meta.url)(file) as NativeBinding;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      failures.push(e.code === 'MODULE_NOT_FOUND' ? `${file}: not there` : `${file}: ${e.message.split('\n')[0]}`);
    }
  }
  throw new IpcError('ERR_IPC_ADDON',
    `The ipckit native addon could not be loaded (${failures.join('; ')}). No prebuilt binary fits ` +
    `${process.platform}-${process.arch} with Node.js ${process.version} (ABI ${process.versions.modules}): build it with ` +
    '"npm rebuild ipckit" (or "npm ci" in a checkout), which needs python3, make and g++.');
}

let binding: NativeBinding | undefined;

/** The addon, loaded on first use; throws `ERR_IPC_ADDON` (each time) while it cannot be loaded. */
function addon(): NativeBinding {
  if (binding === undefined) {
    const loaded = load();
    registerErrnos(loaded.extraErrno);
    binding = loaded;
  }
  return binding;
}

/**
 * An object whose properties are those of `source()`, which is called only
 * when one of them is first read: then they are copied onto the object, so
 * later reads are plain property reads. Until then nothing is loaded, so
 * importing ipckit never needs the addon (the first call that does throws
 * `ERR_IPC_ADDON`).
 */
export function lazily<T extends object>(source: () => T): T {
  const target: T = Object.create(new Proxy(Object.create(null) as object, {
    get(_unused, key) {
      const real = source();
      for (const own of Reflect.ownKeys(real)) {
        Object.defineProperty(target, own, { value: (real as Record<PropertyKey, unknown>)[own], enumerable: true });
      }
      return (real as Record<PropertyKey, unknown>)[key];
    },
  })) as T;
  return target;
}

/** The typed addon. */
export const native: NativeBinding = lazily(addon);

setErrnoDescriber((errno) => native.strerror(errno));
