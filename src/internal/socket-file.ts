/**
 * What is bound to a Unix socket file, asked of the kernel without
 * disturbing anyone: a datagram socket connects to the file, reached
 * through an O_PATH descriptor (`/proc/self/fd/N`, so the path's length
 * does not matter and a file swapped in meanwhile is not the one asked
 * about). The kernel looks up the socket bound to that inode before it
 * checks anything else:
 *
 * - success (or EPERM: it is connected to another peer): a datagram socket;
 * - EPROTOTYPE: a stream or seqpacket socket, listening or merely bound;
 * - ECONNREFUSED: nothing: the file is stale.
 *
 * Unlike a stream connect, this never queues a connection on a live server,
 * and never takes a socket that is bound but not yet listening for a dead one.
 * @internal
 * @module
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import { E } from '../errors.js';
import { lazily, native } from '../native.js';

const S = lazily(() => native.socketConstants);
/** Flags of an O_PATH open that does not follow a final symbolic link. */
export function oPathFlags(): number {
  return native.constants.O_PATH | native.constants.O_NOFOLLOW | native.constants.O_CLOEXEC;
}

/** What is bound to a socket file. `unknown` carries the errno of the connect that could not tell. */
export type Binding = { binding: 'dgram' | 'stream' | 'none' } | { binding: 'unknown'; r: number };

/** Asks the kernel what is bound to the socket file open as the O_PATH descriptor `fd`. */
export function bindingOf(fd: number): Binding {
  const probe = native.socketOpen(S.AF_UNIX, S.SOCK_DGRAM, true);
  if (probe < 0) return { binding: 'unknown', r: probe };
  const sockaddr = native.unixAddress(Buffer.from(`/proc/self/fd/${fd}`), false);
  const r = typeof sockaddr === 'number' ? sockaddr : native.connect(probe, sockaddr);
  native.close(probe);
  if (r === 0 || r === E.EPERM) return { binding: 'dgram' };
  if (r === E.EPROTOTYPE) return { binding: 'stream' };
  if (r === E.ECONNREFUSED) return { binding: 'none' };
  return { binding: 'unknown', r };
}

/**
 * What is bound to the socket file at `path` (a string or the bytes of a
 * path): `absent` if nothing is there, `not-socket` if something else is,
 * else its binding and identity.
 */
export function bindingAt(path: string | Buffer): { binding: 'absent' } | { binding: 'not-socket' } | (Binding & { dev: number; ino: number; uid: number }) {
  let fd;
  try {
    fd = openSync(path, oPathFlags());
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? { binding: 'absent' } : code === 'ELOOP' ? { binding: 'not-socket' } : { binding: 'unknown', r: -((err as NodeJS.ErrnoException).errno ?? 0), dev: 0, ino: 0, uid: -1 };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isSocket()) return { binding: 'not-socket' };
    return { ...bindingOf(fd), dev: st.dev, ino: st.ino, uid: st.uid };
  } finally {
    closeSync(fd);
  }
}
