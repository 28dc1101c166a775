/// <reference types="node" preserve="true" />
/**
 * ipckit: every inter-process-communication mechanism of the Linux kernel,
 * for real, from TypeScript.
 *
 * This reference lists every export of the package, a section per
 * mechanism. The guides in the package's `docs/` folder (one page per
 * mechanism, and `errors.md` for every error code) explain the concepts.
 * Every operation that can wait comes in three forms: `op()` returns a
 * Promise and never blocks the event loop, `opSync()` blocks the calling
 * thread, `tryOp()` never waits; `timeout` is in milliseconds (absent: wait
 * for ever, `0`: try once). Failures are {@link IpcError}s with a stable
 * `code`.
 * @module
 */
export { IpcError, IPC_ERROR_CODES, type IpcErrorCode, type IpcOwnErrorCode, type IpcErrorDetails } from './errors.js';
export { type SysvAddress, formatKey } from './internal/address.js';
export { type Codec, type CodecOption, type Outgoing } from './internal/codec.js';
export { type WaitOptions, type SyncWaitOptions, type SpinOptions } from './internal/wait.js';
export { type OwnerOption } from './internal/trust.js';
export { type StreamOptions } from './internal/streams.js';
export { type ReceiveManyOptions, type ReceiveManySyncOptions } from './internal/batch.js';
export { MessageBatch, type MessageBatchOptions } from './internal/message-batch.js';
export {
  PosixMessageQueue, SysvMessageQueue, MQ_PRIO_MAX, SYSV_TYPE_MAX, DEFAULT_SPIN_US,
  type MessageQueue, type QueueAccess,
  type PosixMessage, type PosixMessageQueueAttributes, type PosixMessageQueueCreateOptions,
  type PosixMessageQueueOpenOptions, type PosixMessageQueueLimits, type PosixSendOptions, type PosixSendSyncOptions,
  type SysvMessage, type SysvMessageQueueStat, type SysvMessageQueueCreateOptions, type SysvMessageQueueOpenOptions,
  type SysvMessageQueueLimits, type SysvReceiveOptions, type SysvReceiveSyncOptions,
  type SysvReceiveManyOptions, type SysvReceiveManySyncOptions, type SysvReceiveBatchOptions, type SysvReceiveBatchSyncOptions,
  type PosixReceiveBatchOptions, type PosixReceiveBatchSyncOptions,
  type PosixReceivedInto, type SysvReceivedInto,
} from './message-queue.js';
export {
  listIpcObjects, isAlive, type IpcInventory, type IpcObjectInfo, type IpcObjectKind, type IpcProcessRef, type UnixSocketKind,
} from './inventory.js';
export {
  PosixSharedMemory, SysvSharedMemory, SharedMemory, SHM_MAX_SIZE,
  type SharedMemoryCreateOptions, type SharedMemoryOpenOptions, type PosixSharedMemoryStat, type SysvSharedMemoryStat,
  type SharedMemoryLimits,
} from './shared-memory.js';
export { Mutex, Semaphore, SEM_VALUE_MAX, type LockOptions, type WithLockOptions } from './lock.js';
export {
  pipe, spawn, PipeReadEnd, PipeWriteEnd, PIPE_BUF, DEFAULT_READ_SIZE, DEFAULT_MAX_MESSAGE,
  type PipeOptions, type ReadOptions, type ReadSyncOptions, type MessageReadOptions, type MessageReadSyncOptions,
  type SpawnWithFdsOptions, type PipeEnds, type PipeMessage, type PipeReadEndOptions, type PipeWriteEndOptions,
} from './pipe.js';
export { Fifo, type FifoOpenOptions, type FifoOpenSyncOptions, type FifoOpenReadOptions, type FifoOpenReadSyncOptions } from './fifo.js';
export {
  onSignal, restoreDefault, ignore, sendSignal, waitForSignal, waitForSignalSync, listenForSignals, SignalListener, SIGNAL_LISTENER_CAPACITY,
  shutdownOn, listSignals, signalName, signalNumber,
  type SignalSpec, type SignalInfo, type SignalHandler, type SignalTarget, type ShutdownOptions, type SignalDescription,
} from './signal.js';
export {
  listen, connect, connectSync, socketPair, bind, MessageSocket, SocketServer, DatagramSocket,
  DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_HIGH_WATER_MARK, DEFAULT_FRAME_TIMEOUT, DEFAULT_CONCURRENCY, SCM_MAX_FD, type ServeOptions,
  type SocketKind, type SocketMessage, type Datagram, type PeerCredentials, type PassableFd, type MessageSocketOptions,
  type ConnectOptions, type ListenOptions, type BindOptions, type RequestOptions, type DatagramSendOptions, type DatagramSendManyOptions, type DatagramReceiveBatchOptions, type DatagramReceiveBatchSyncOptions, type SocketReceivedInto, type DatagramReceivedInto, type RefusedPeer,
} from './socket.js';
export {
  select, selectSync, Poller,
  type Interest, type Ready, type SelectOptions, type SelectSyncOptions, type PollerInterest, type PollEvent,
} from './select.js';
export { type Pollable } from './internal/readiness.js';
export {
  serve, Server, SERVER_STRATEGIES, DEFAULT_MAX_CHILDREN, DEFAULT_POLL_INTERVAL,
  type ServerStrategy, type ServerOptions, type ServerStats, type Framing, type Connection, type ConnectionHandler, type Reply,
} from './server.js';
export {
  Channel, ChannelView, CHANNEL_MIN_CAPACITY, CHANNEL_MAX_CAPACITY, DEFAULT_CHANNEL_CAPACITY, DEFAULT_CHANNEL_MESSAGE,
  type ChannelCreateOptions, type ChannelOpenOptions, type ChannelMessage, type ChannelStats,
} from './channel.js';
export {
  NamedSemaphore, SemaphoreSet, SEM_NAME_MAX, SEMVMX, SEMAEM,
  type NamedSemaphoreCreateOptions, type NamedSemaphoreOpenOptions, type NamedSemaphoreStat,
  type SemaphoreOperation, type SemaphoreSetCreateOptions, type SemaphoreSetOpenOptions, type SemaphoreSetStat, type SemaphoreSetLimits,
} from './semaphore.js';
export {
  NatsMailbox, NATS_PRIORITY_LEVELS, NATS_DEFAULT_MAX_MESSAGES, NATS_DEFAULT_MAX_MESSAGE_SIZE,
  type NatsConnectionOptions, type NatsMailboxOpenOptions, type NatsMailboxCreateOptions, type NatsSendOptions,
  type NatsReceiveOptions, type NatsMessage, type NatsMailboxAttributes,
} from './nats.js';
