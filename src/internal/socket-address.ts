/**
 * Socket addresses, one syntax for every kind:
 *
 * - `unix:/path`, `unix-dgram:/path`, `unix-seqpacket:/path`: a Unix
 *   socket bound to a file (stream, datagram, sequenced packets);
 * - `unix:@name` (and the same for the other two): the abstract namespace,
 *   a name of exactly the bytes given, so that C, Python or systemd peers
 *   reach it (Node's `net` pads such names to 108 bytes);
 * - `tcp://host:port`, `udp://host:port`: host an IPv4 literal, an IPv6
 *   literal in brackets (`[::1]`, with an optional `%zone`), or
 *   `localhost` (127.0.0.1); port 0 binds an ephemeral port.
 *
 * @internal
 * @module
 */
import { isIPv4, isIPv6 } from 'node:net';
import { IpcError } from '../errors.js';
import { isWellFormed } from './validate.js';

/** Bytes of `sun_path` in `struct sockaddr_un`. */
export const SUN_PATH_BYTES = 108;

export type SocketType = 'stream' | 'dgram' | 'seqpacket';

/** A parsed address. `text` is the canonical form, as objects report it. */
export type SocketAddress =
  | { family: 'unix'; type: SocketType; path: string; abstract: false; text: string }
  | { family: 'unix'; type: SocketType; name: Buffer; abstract: true; text: string }
  | { family: 'inet'; type: 'stream' | 'dgram'; protocol: 'tcp' | 'udp'; host: string; version: 4 | 6; zone?: string; port: number; text: string };

const UNIX_SCHEMES: Record<string, SocketType> = { 'unix:': 'stream', 'unix-dgram:': 'dgram', 'unix-seqpacket:': 'seqpacket' };

const FORMS = 'unix:/path, unix-dgram:/path, unix-seqpacket:/path (or @name for the abstract namespace), tcp://host:port or udp://host:port';

function invalid(text: string, why: string): IpcError {
  const shown = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
  return new IpcError('ERR_IPC_INVALID_ADDRESS', `Invalid socket address ${shown}: ${why}`, { address: text });
}

/** Parses a socket address; throws `ERR_IPC_INVALID_ADDRESS` saying what is wrong and what forms exist. */
export function parseSocketAddress(text: unknown): SocketAddress {
  if (typeof text !== 'string') {
    throw new IpcError('ERR_IPC_INVALID_ADDRESS', `A socket address must be a string (${FORMS}); got ${typeof text}.`);
  }
  if (!isWellFormed(text)) throw invalid(text, 'it contains a lone UTF-16 surrogate, which has no UTF-8 form.');
  const scheme = Object.keys(UNIX_SCHEMES).find((s) => text.startsWith(s));
  if (scheme !== undefined) return parseUnix(text, scheme.slice(0, -1), text.slice(scheme.length), UNIX_SCHEMES[scheme]!);
  const inet = /^(tcp|udp):\/\/(.*)$/s.exec(text);
  if (inet) return parseInet(text, inet[1] as 'tcp' | 'udp', inet[2]!);
  throw invalid(text, `use one of ${FORMS}.`);
}

function parseUnix(text: string, scheme: string, rest: string, type: SocketType): SocketAddress {
  if (rest.startsWith('@')) {
    const name = Buffer.from(rest.slice(1), 'utf8');
    if (name.length === 0) throw invalid(text, 'an abstract name needs at least one character after "@".');
    // The first byte of sun_path is the NUL that marks the abstract namespace.
    if (name.length > SUN_PATH_BYTES - 1) throw invalid(text, `an abstract name has at most ${SUN_PATH_BYTES - 1} bytes; this one has ${name.length}.`);
    return { family: 'unix', type, name, abstract: true, text: `${scheme}:@${rest.slice(1)}` };
  }
  if (rest.length === 0) throw invalid(text, `a path is needed after "${scheme}:" (e.g. ${scheme}:/run/app.sock), or @name for the abstract namespace.`);
  if (rest.includes('\0')) throw invalid(text, 'the path contains a NUL character.');
  const bytes = Buffer.byteLength(rest);
  // The kernel needs room for the terminating NUL.
  if (bytes > SUN_PATH_BYTES - 1) {
    throw invalid(text, `a socket path has at most ${SUN_PATH_BYTES - 1} bytes (sun_path); this one has ${bytes}. Use a shorter path, ` +
      'a relative one from a nearby directory, or an abstract name.');
  }
  return { family: 'unix', type, path: rest, abstract: false, text: `${scheme}:${rest}` };
}

function parseInet(text: string, protocol: 'tcp' | 'udp', rest: string): SocketAddress {
  let host: string;
  let portText: string;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw invalid(text, 'an IPv6 address in brackets lacks its "]".');
    host = rest.slice(1, close);
    if (rest[close + 1] !== ':') throw invalid(text, `a port is needed after "]" (e.g. ${protocol}://[::1]:7000).`);
    portText = rest.slice(close + 2);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon < 0) throw invalid(text, `a port is needed (e.g. ${protocol}://127.0.0.1:7000; 0 binds an ephemeral one).`);
    host = rest.slice(0, colon);
    portText = rest.slice(colon + 1);
    if (host.includes(':')) throw invalid(text, `an IPv6 address goes in brackets: ${JSON.stringify(`${protocol}://[${host}]:${portText}`)}.`);
  }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw invalid(text, `the port must be an integer from 0 to 65535; got ${JSON.stringify(portText)}.`);
  }
  const port = Number(portText);
  const type = protocol === 'tcp' ? 'stream' : 'dgram';
  if (host === 'localhost') return { family: 'inet', type, protocol, host: '127.0.0.1', version: 4, port, text: `${protocol}://127.0.0.1:${port}` };
  if (isIPv4(host)) return { family: 'inet', type, protocol, host, version: 4, port, text: `${protocol}://${host}:${port}` };
  const percent = host.indexOf('%');
  const bare = percent < 0 ? host : host.slice(0, percent);
  const zone = percent < 0 ? undefined : host.slice(percent + 1);
  if (isIPv6(bare)) {
    if (zone !== undefined && !/^[A-Za-z0-9_.-]{1,15}$/.test(zone)) {
      throw invalid(text, 'an IPv6 zone is an interface name or index (e.g. [fe80::1%eth0]).');
    }
    return { family: 'inet', type, protocol, host: bare, version: 6, ...(zone === undefined ? {} : { zone }), port, text: `${protocol}://[${host}]:${port}` };
  }
  throw invalid(text, `the host must be an IPv4 literal (127.0.0.1), an IPv6 literal in brackets ([::1]) or localhost; got ${JSON.stringify(host)}. ` +
    'Resolve other names first (dns.lookup).');
}
