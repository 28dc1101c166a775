/**
 * The echo server a Node user would write with `net`, the reference of the
 * connections benchmark: `node dist/bench/net-echo.js <address>`, where the
 * address is `unix:/path` (or a bare path) or `tcp://host:port` (or
 * `host:port`; port 0 lets the kernel choose). Once listening it prints one
 * line `{"listening":"<address>","pid":<pid>}`; SIGTERM closes every
 * connection and the listener, then it exits 0.
 */
import net from 'node:net';

/** Where to listen, from a command-line address. */
function target(address: string): { path: string } | { host: string; port: number } {
  const tcp = /^(?:tcp:\/\/)?(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(address);
  if (tcp) return { host: tcp[1]!.replace(/^\[|\]$/g, ''), port: Number(tcp[2]) };
  const path = address.startsWith('unix:') ? address.slice('unix:'.length) : address;
  if (!path.startsWith('/')) throw new Error(`net-echo: not an address: "${address}" (unix:/path or tcp://host:port)`);
  return { path };
}

const address = process.argv[2];
if (address === undefined) {
  process.stderr.write('usage: node net-echo.js <unix:/path | tcp://host:port>\n');
  process.exit(2);
}
const where = target(address);
const sockets = new Set<net.Socket>();
const server = net.createServer((socket) => {
  sockets.add(socket);
  socket.setNoDelay(true);
  socket.on('data', (chunk: Buffer) => socket.write(chunk));
  socket.on('end', () => socket.end());
  // A reset by the peer is the peer's business; the socket is only forgotten.
  socket.on('error', () => {});
  socket.on('close', () => sockets.delete(socket));
});
server.on('error', (err) => {
  process.stderr.write(`net-echo: ${err.message}\n`);
  process.exit(1);
});
// Node's default backlog (511), as a user would leave it.
server.listen('path' in where ? { path: where.path } : { host: where.host, port: where.port }, () => {
  const bound = server.address();
  const listening = typeof bound === 'string' ? `unix:${bound}` : `tcp://${bound!.family === 'IPv6' ? `[${bound!.address}]` : bound!.address}:${bound!.port}`;
  process.stdout.write(`${JSON.stringify({ listening, pid: process.pid })}\n`);
});
process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  for (const socket of sockets) socket.destroy();
});
