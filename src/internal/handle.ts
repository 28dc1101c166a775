/**
 * The base of every handle: closed state, the errors of use after close,
 * the pending calls that `close()` rejects, descriptors released on close
 * (or, for a handle dropped without `close()`, when it is garbage
 * collected), `Symbol.dispose` and `Symbol.asyncDispose`.
 *
 * @internal
 * @module
 */
import { E, IpcError, systemError } from '../errors.js';
import { native } from '../native.js';
import { type Lane, type LaneOwner } from './operation.js';
import { type Watch, watchDescriptor } from './readiness.js';
import { closedError } from './wait.js';

/**
 * What a handle holds in the kernel, kept apart from the handle so that a
 * handle nobody closed can still be released after it is collected. Its
 * descriptors are also recorded natively, so that the ones still held when
 * the environment ends (a worker exits) are closed then.
 */
class Held {
  fds: OwnedFd[] = [];
  watches: Watch[] = [];
  /** Other process-wide state to give back (a signal's handler). */
  releasers: (() => void)[] = [];

  release(): void {
    for (const release of this.releasers.splice(0)) release();
    // A descriptor leaves the readiness registry before it is closed.
    for (const watch of this.watches.splice(0)) watch.release();
    for (const owned of this.fds.splice(0)) owned.close();
  }
}

/**
 * A descriptor this thread's ipckit owns: closed by its owner, or when the
 * environment ends. A descriptor is owned once: wrapping the same number
 * twice would let one owner close it under the other.
 */
export class OwnedFd {
  readonly fd: number;
  readonly #token: number;

  /** `fresh`: just made by the kernel for ipckit (not a descriptor a user handed over). */
  constructor(fd: number, fresh: boolean) {
    const token = native.holdFd(fd, fresh);
    if (token === E.EEXIST) {
      throw new IpcError('ERR_IPC_INVALID_ARGUMENT',
        `fd ${fd} already belongs to an ipckit handle of this thread. A descriptor is wrapped once: close that handle first, or keep using it.`);
    }
    this.fd = fd;
    this.#token = token;
  }

  /** Closes it, unless someone closed it behind ipckit's back and the number now belongs to another owner. */
  close(): void {
    native.releaseFd(this.fd, this.#token);
  }
}

const collected = new FinalizationRegistry<Held>((held) => held.release());

/**
 * `openOrCreate` for every kind of object: create it, or else open it.
 * Other processes may create and remove the same object meanwhile; a few
 * rounds settle that race. `create` returns undefined when the object
 * exists, `open` when it does not.
 */
export function createOrOpen<H>(create: () => H | undefined, open: () => H | undefined, syscall: string, address: string): H {
  for (let round = 0; round < 8; round++) {
    const handle = create() ?? open();
    if (handle !== undefined) return handle;
  }
  throw systemError(E.ENOENT, syscall, address, 'The object was created and removed repeatedly by other processes; retry.');
}

export abstract class Handle implements LaneOwner, Disposable, AsyncDisposable {
  #closed = false;
  readonly #busy = new Set<Lane>();
  readonly #held = new Held();

  constructor() {
    collected.register(this, this.#held, this);
  }

  /** How the object is addressed, for messages. */
  abstract get address(): string;

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Releases this process's handle on the object. Pending calls reject with
   * `ERR_IPC_CLOSED`; the object itself lives on. Calling it again does nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const error = this.closedError('the pending call');
    for (const lane of [...this.#busy]) lane.rejectAll(error);
    collected.unregister(this);
    this.released();
    this.#held.release();
  }

  /** `using handle = ...`: the same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes, then resolves once no waiter thread is still in a system call for this handle. */
  async [Symbol.asyncDispose](): Promise<void> {
    const lanes = [...this.#busy];
    this.close();
    await Promise.all(lanes.map((lane) => lane.settledJobs()));
  }

  /** @internal Throws `ERR_IPC_CLOSED` after `close()`. */
  check(what: string): void {
    if (this.#closed) throw this.closedError(what);
  }

  /** @internal */
  closedError(what: string): IpcError {
    return closedError(what, this.address);
  }

  /** @internal */
  laneBusy(lane: Lane, busy: boolean): void {
    if (busy) this.#busy.add(lane);
    else this.#busy.delete(lane);
  }

  /**
   * Takes ownership of `fd`: closed with the handle. `handedOver`: a
   * descriptor the user gave (fromFd), refused if another handle owns it.
   */
  protected holdFd(fd: number, handedOver = false): number {
    this.#held.fds.push(new OwnedFd(fd, !handedOver));
    return fd;
  }

  /**
   * Runs `release` when the handle is closed, or collected without being
   * closed. It must not refer to the handle (or it would never be collected).
   */
  protected holdRelease(release: () => void): void {
    this.#held.releasers.push(release);
  }

  /** The shared readiness watch of `fd`, released with the handle (before its descriptors are closed). */
  protected watch(fd: number): Watch {
    const watch = watchDescriptor(fd);
    this.#held.watches.push(watch);
    return watch;
  }

  /** Runs on close(), before the descriptors are released. */
  protected released(): void { /* Nothing by default. */ }
}
