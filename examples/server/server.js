// Terminal 1: node examples/server/server.js [strategy] [address]
//
// Serves examples/server/handler.js with one of the five strategies:
// blocking (one connection at a time), fork (a process per connection),
// prefork (a pool of two processes), poll (visits every connection every
// 10 ms) or event (the default: readiness notifications). The clients and
// the handler are the same whichever is chosen.
// SIGINT (Ctrl+C) or SIGTERM closes the server: its child processes are
// stopped and its socket file is removed.
import { SERVER_STRATEGIES, serve, shutdownOn } from 'ipckit';

const strategy = process.argv[2] ?? 'event';
const address = process.argv[3] ?? 'unix:/tmp/ipckit-example-server.sock';
const me = `server ${process.pid}`;
if (!SERVER_STRATEGIES.includes(strategy)) {
  console.error(`${me}: the strategy is one of ${SERVER_STRATEGIES.join(', ')}, not "${strategy}"`);
  process.exit(2);
}

const server = await serve(address, new URL('./handler.js', import.meta.url), {
  strategy,
  codec: 'json',
  // Two, whatever the number of CPUs (the default), so that the output below is the same everywhere.
  ...(strategy === 'prefork' ? { workers: 2 } : {}),
});
shutdownOn(['SIGINT', 'SIGTERM'], {
  async cleanup(info) {
    const from = info.pid === null ? 'the terminal' : `pid ${info.pid}`;
    const children = server.childPids;
    await server.close();   // stops accepting, stops the children (SIGTERM; SIGKILL after 5 s), removes the socket file
    console.log(`${me}: ${info.signal} from ${from}; closed ${server.address}, ${children.length} child process${children.length === 1 ? '' : 'es'} stopped`);
  },
});

const who = {
  blocking: `child ${server.childPids[0]} accepts and serves one connection at a time`,
  fork: 'a new child process for each connection',
  prefork: `children ${server.childPids.join(' and ')} take connections in turn`,
  poll: 'this process visits every connection every 10 ms',
  event: 'this process serves the connections that are ready',
}[strategy];
console.log(`${me}: listening on ${server.address} with strategy ${strategy}: ${who}. ` +
  `In another terminal: node examples/server/client.js ${server.address}`);
