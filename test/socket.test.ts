/**
 * Sockets: the address syntax every socket kind shares.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseSocketAddress } from '../src/internal/socket-address.js';
import { throwsWith } from './helpers/assert.js';

describe('socket addresses', () => {
  it('unix, unix-dgram and unix-seqpacket name a path, or with @ an abstract name of exactly its bytes', () => {
    assert.deepEqual(parseSocketAddress('unix:/run/app.sock'),
      { family: 'unix', type: 'stream', path: '/run/app.sock', abstract: false, text: 'unix:/run/app.sock' });
    assert.deepEqual(parseSocketAddress('unix-dgram:relative.sock'),
      { family: 'unix', type: 'dgram', path: 'relative.sock', abstract: false, text: 'unix-dgram:relative.sock' });
    assert.deepEqual(parseSocketAddress('unix-seqpacket:@bus'),
      { family: 'unix', type: 'seqpacket', name: Buffer.from('bus'), abstract: true, text: 'unix-seqpacket:@bus' });
    // UTF-8 bytes, not UTF-16 units, count: 107 bytes is the most sun_path holds after the leading NUL or before the final one.
    assert.equal((parseSocketAddress(`unix:@${'é'.repeat(53)}x`) as { name: Buffer }).name.length, 107);
    assert.equal(parseSocketAddress(`unix:/${'p'.repeat(106)}`).text.length, 5 + 107);
  });

  it('tcp and udp take IPv4 and bracketed IPv6 literals and localhost; port 0 asks for an ephemeral port', () => {
    assert.deepEqual(parseSocketAddress('tcp://127.0.0.1:7000'),
      { family: 'inet', type: 'stream', protocol: 'tcp', host: '127.0.0.1', version: 4, port: 7000, text: 'tcp://127.0.0.1:7000' });
    assert.deepEqual(parseSocketAddress('udp://[::1]:0'),
      { family: 'inet', type: 'dgram', protocol: 'udp', host: '::1', version: 6, port: 0, text: 'udp://[::1]:0' });
    assert.deepEqual(parseSocketAddress('tcp://localhost:65535'),
      { family: 'inet', type: 'stream', protocol: 'tcp', host: '127.0.0.1', version: 4, port: 65535, text: 'tcp://127.0.0.1:65535' });
    assert.deepEqual(parseSocketAddress('udp://[fe80::1%eth0]:53'),
      { family: 'inet', type: 'dgram', protocol: 'udp', host: 'fe80::1', version: 6, zone: 'eth0', port: 53, text: 'udp://[fe80::1%eth0]:53' });
  });

  it('refuses what no socket can be bound to, saying why', () => {
    const cases: [unknown, RegExp][] = [
      [42, /must be a string/],
      ['/run/app.sock', /use one of unix:\/path/],
      ['unix:', /a path is needed after "unix:"/],
      ['unix-dgram:@', /at least one character after "@"/],
      ['unix:/a\0b', /NUL/],
      [`unix:/${'p'.repeat(107)}`, /at most 107 bytes \(sun_path\); this one has 108/],
      [`unix:@${'n'.repeat(108)}`, /at most 107 bytes; this one has 108/],
      ['unix:/\ud800', /lone UTF-16 surrogate/],
      ['tcp://127.0.0.1', /a port is needed/],
      ['tcp://127.0.0.1:65536', /from 0 to 65535; got "65536"/],
      ['tcp://127.0.0.1:-1', /from 0 to 65535; got "-1"/],
      ['tcp://127.0.0.1:', /from 0 to 65535; got ""/],
      ['udp://::1:53', /goes in brackets: "udp:\/\/\[::1\]:53"/],
      ['udp://[::1:53', /lacks its "\]"/],
      ['udp://[::1]53', /a port is needed after "\]"/],
      ['tcp://example.com:80', /IPv4 literal .* or localhost; got "example.com". Resolve other names first/],
      ['tcp://256.1.1.1:80', /got "256.1.1.1"/],
      ['tcp://[fe80::1%eth 0]:80', /an IPv6 zone is an interface name/],
      ['sctp://127.0.0.1:80', /use one of/],
    ];
    for (const [text, message] of cases) {
      const err = throwsWith(() => parseSocketAddress(text), 'ERR_IPC_INVALID_ADDRESS', message);
      assert.equal(err.address, typeof text === 'string' ? text : undefined);
    }
  });
});
