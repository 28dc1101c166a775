/**
 * The one error class of ipckit and the registry of its stable codes.
 *
 * System errors keep the kernel's errno name as their code (`EEXIST`,
 * `EAGAIN`, `EACCES`, ...). ipckit's own conditions use `ERR_IPC_*` codes,
 * listed below and documented in docs/errors.md. A code is never reused for
 * a different meaning.
 *
 * @module
 */
import { constants as osConstants } from 'node:os';

/** ipckit's own error codes, alphabetical, each with its meaning. */
export const IPC_ERROR_CODES = {
  ERR_IPC_ABORTED: 'The operation was cancelled through its AbortSignal.',
  ERR_IPC_ADDON: 'The native addon is missing or was built for another Node.js.',
  ERR_IPC_BUSY: 'A role only one may hold (the producer or consumer of a channel) is held by another live thread.',
  ERR_IPC_CLOSED: 'The handle was closed; it cannot be used any more.',
  ERR_IPC_CODEC: 'A message could not be encoded or decoded by the codec.',
  ERR_IPC_CORRUPTED: 'A structure in shared memory holds values its protocol never writes: another process overwrote it.',
  ERR_IPC_DEADLOCK: 'Waiting would never end: only the calling thread can end the wait (it holds the lock, or its own async calls wait first).',
  ERR_IPC_FRAMING: 'A length-prefixed message stream ended inside a message and cannot be read further.',
  ERR_IPC_INTERNAL: 'An unexpected failure inside ipckit (a bug); the message carries the stack.',
  ERR_IPC_INVALID_ADDRESS: 'A name, key or path does not name an IPC object.',
  ERR_IPC_INVALID_ARGUMENT: 'An option or argument has the wrong type or range.',
  ERR_IPC_LIMIT: 'A kernel or resource limit was reached; the message names the setting that raises it.',
  ERR_IPC_MESSAGE_TOO_LARGE: 'A message is larger than the object can carry.',
  ERR_IPC_NOT_A_FIFO: 'A path that should be a FIFO is something else (a file, a directory, a symbolic link).',
  ERR_IPC_NOT_OWNER: 'The calling thread does not hold the lock it tried to release or repair.',
  ERR_IPC_NOT_RECOVERABLE: 'A mutex was taken over from a dead holder and released without markConsistent(); it cannot be used.',
  ERR_IPC_OWNER_DIED: 'The previous holder of a mutex died holding it; the caller now holds it and must repair the data.',
  ERR_IPC_PEER_CLOSED: 'The other end of a connection closed it: nothing more will arrive on it.',
  ERR_IPC_PEER_DEAD: 'The process on the other side of a channel died while this side waited for it.',
  ERR_IPC_PEER_FAILED: 'A process ipckit started for the caller exited unexpectedly.',
  ERR_IPC_READ_ONLY: 'The object was opened read-only and cannot be written.',
  ERR_IPC_REMOTE: 'The peer\'s request handler failed; the message carries its error code and text.',
  ERR_IPC_SIZE_MISMATCH: 'An object exists with another size than asked for; opening never resizes.',
  ERR_IPC_STALE_VIEW: 'A zero-copy view of a received message was used after its space went back to the sender.',
  ERR_IPC_TIMEOUT: 'The operation did not complete within its timeout.',
  ERR_IPC_TRUNCATED: 'Descriptors sent with a message did not fit the receiver\'s control buffer; every one that arrived was closed.',
  ERR_IPC_UNCATCHABLE: 'A signal that cannot (or must not) be handled: SIGKILL, SIGSTOP, faults, or one Node or ipckit reserves.',
  ERR_IPC_UNREACHABLE: 'A server across the network (a NATS mailbox\'s) could not be reached within the timeout; the message names its address.',
  ERR_IPC_UNTRUSTED: 'An existing object belongs to another user, or grants more access than asked for: it may have been planted (squatting).',
  ERR_IPC_USAGE: 'The command line was not understood.',
} as const;

/** A code from ipckit's own registry. */
export type IpcOwnErrorCode = keyof typeof IPC_ERROR_CODES;

/** Every code an {@link IpcError} can carry: an `ERR_IPC_*` code or an errno name such as `'EEXIST'`. */
export type IpcErrorCode = IpcOwnErrorCode | (`E${string}` & {}); // `& {}` keeps the own codes listed (and completed by editors)

/** Extra fields of an {@link IpcError}. */
export interface IpcErrorDetails {
  /** Negative errno, as Node reports it, for system errors. */
  errno?: number;
  /** The system call that failed. */
  syscall?: string;
  /** The IPC object the operation was about: a name, key or path. */
  address?: string;
  /** The underlying error. */
  cause?: unknown;
}

/** Marks IpcError objects, so `instanceof` holds across two copies of the package. */
const BRAND = Symbol.for('ipckit.IpcError');

/**
 * The error every ipckit operation throws or rejects with.
 *
 * @example
 * ```ts
 * import { IpcError, PosixMessageQueue } from 'ipckit';
 *
 * const queue = PosixMessageQueue.create('/ipckit-example-errors');
 * try {
 *   PosixMessageQueue.create('/ipckit-example-errors'); // the name is taken
 * } catch (err) {
 *   if (!(err instanceof IpcError && err.code === 'EEXIST')) throw err;
 *   console.log(err.code, err.syscall, err.address); // EEXIST mq_open /ipckit-example-errors
 * } finally {
 *   queue.close();
 *   PosixMessageQueue.unlink('/ipckit-example-errors');
 * }
 * ```
 */
export class IpcError extends Error {
  /** Stable code: an `ERR_IPC_*` code or an errno name. */
  readonly code: IpcErrorCode;
  /** Negative errno, for system errors. */
  readonly errno?: number;
  /** The system call that failed, for system errors. */
  readonly syscall?: string;
  /** The object the failed operation was about. */
  readonly address?: string;

  /** ipckit makes these; `details` carries the fields of a system error and the cause. */
  constructor(code: IpcErrorCode, message: string, details: IpcErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'IpcError';
    this.code = code;
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.syscall !== undefined) this.syscall = details.syscall;
    if (details.address !== undefined) this.address = details.address;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /**
   * True for an IpcError made by any copy of ipckit loaded in this realm
   * (two versions in one dependency tree, say), not only by this one.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

const errnoNames = new Map<number, string>();
const errnoValues = new Map<string, number>();

/** Adds errno names to the table (Node's own list lacks a few Linux ones). */
export function registerErrnos(table: Record<string, number>): void {
  for (const [name, value] of Object.entries(table)) {
    if (!errnoNames.has(value)) errnoNames.set(value, name);
    errnoValues.set(name, value);
  }
}
registerErrnos(osConstants.errno);

/** The errno name (`'ENOENT'`) of a positive or negative errno value. */
export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/** The positive errno value of an errno name. */
export function errnoValue(name: string): number {
  const value = errnoValues.get(name);
  if (value === undefined) throw new Error(`unknown errno name ${name}`);
  return value;
}

/** The errno values ipckit compares results with, negative as the addon returns them. */
const ERRNO_NAMES = [
  'E2BIG', 'EACCES', 'EADDRINUSE', 'EAGAIN', 'EBADF', 'EBUSY', 'ECANCELED', 'ECONNREFUSED', 'ECONNRESET', 'EDEADLK', 'EEXIST', 'EFAULT',
  'EFBIG', 'EIDRM', 'EINPROGRESS', 'EINTR', 'EINVAL', 'EISDIR', 'ELOOP', 'EMFILE', 'EMSGSIZE', 'ENAMETOOLONG', 'ENFILE', 'ENODEV', 'ENOENT',
  'ENOMEM', 'ENOPROTOOPT', 'ENOSPC', 'ENOSR', 'ENOTCONN', 'ENOTSOCK', 'ENXIO', 'EOPNOTSUPP', 'EOVERFLOW', 'EPERM', 'EPIPE', 'ESRCH',
  'EPROTO', 'EPROTOTYPE', 'ERANGE', 'ESTALE', 'ETIMEDOUT',
] as const;

/** Negative errno values by name (`E.EAGAIN === -11`): the form native results take. */
export const E = Object.freeze(Object.fromEntries(ERRNO_NAMES.map((name) => [name, -errnoValue(name)]))) as
  Readonly<Record<(typeof ERRNO_NAMES)[number], number>>;

/** Advice per system call and errno name, declared by each mechanism with {@link defineHints}. */
const hints = new Map<string, Partial<Record<string, string>>>();

/**
 * Declares what to do when `syscall` fails with each errno: `systemError`
 * adds the advice to the message. A later declaration adds to an earlier one.
 */
export function defineHints(table: Record<string, Partial<Record<string, string>>>): void {
  for (const [syscall, advice] of Object.entries(table)) hints.set(syscall, { ...hints.get(syscall), ...advice });
}

/** What to do about a system error, when nothing more specific is known. */
const GENERIC_HINTS: Record<string, string> = {
  EACCES: 'Check the object\'s owner and mode (ipckit ls).',
  EPERM: 'The calling user is not allowed to do this; check the owner (ipckit ls).',
  EINTR: 'A signal interrupted the call; retry it.',
  EIDRM: 'The object was removed while in use; create it again.',
  EBADF: 'The descriptor is not open; the handle may have been closed elsewhere.',
  ENAMETOOLONG: 'Use a shorter name.',
};

let describe: (errno: number) => string = (errno) => errnoName(errno);

/** Installs the C library's strerror once the addon is loaded. */
export function setErrnoDescriber(fn: (errno: number) => string): void {
  describe = fn;
}

/**
 * Builds the error for a failed system call: `r` is the negative errno the
 * addon returned. The message says what failed, on which object, and what
 * to do: `hint`, else the advice declared for this call and errno
 * ({@link defineHints}), else a generic hint for the errno.
 */
export function systemError(r: number, syscall: string, address: string | undefined, hint?: string): IpcError {
  const errno = Math.abs(r);
  const code = errnoName(errno) as IpcErrorCode;
  const where = address === undefined ? syscall : `${syscall} ${address}`;
  const advice = hint ?? hints.get(syscall)?.[code] ?? GENERIC_HINTS[code];
  const message = `${where} failed: ${describe(errno)} (${code})${advice ? `. ${advice}` : ''}`;
  return new IpcError(code, message, { errno: -errno, syscall, ...(address === undefined ? {} : { address }) });
}

/**
 * A kernel-limit error: keeps the errno and syscall of the failure, carries
 * the code `ERR_IPC_LIMIT`, and says which setting to raise.
 */
export function limitError(r: number, syscall: string, address: string | undefined, explanation: string): IpcError {
  const errno = Math.abs(r);
  const where = address === undefined ? syscall : `${syscall} ${address}`;
  return new IpcError('ERR_IPC_LIMIT', `${where} failed (${errnoName(errno)}): ${explanation}`, {
    errno: -errno,
    syscall,
    ...(address === undefined ? {} : { address }),
  });
}
