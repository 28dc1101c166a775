// Terminal 1: node examples/socket/server.js [address]
//
// A small service on a Unix socket. Each connection carries JSON requests
// (request/reply: several may be in flight, each reply finds its request by
// id). The server knows who is calling from the kernel, not from what the
// client says: the peer's pid, uid and gid (SO_PEERCRED), and it lets in only
// its own user (allowUids). A client can pass an open file with a request
// (SCM_RIGHTS), and the server reads it without ever opening the path.
// SIGINT (Ctrl+C) or SIGTERM closes the server, which removes its socket file.
import { readFileSync, readlinkSync, closeSync, fstatSync } from 'node:fs';
import { listen, shutdownOn } from 'ipckit';

const address = process.argv[2] ?? 'unix:/tmp/ipckit-example.sock';
const me = `server ${process.pid}`;

// The socket file is made with mode 0600 from the start; a stale one left by a
// server that was killed is replaced, a live one never.
const server = listen(address, { codec: 'json', allowUids: [process.getuid()] });
server.on('refused', (peer) => console.log(`${me}: refused pid ${peer.pid}: ${peer.reason}`));
shutdownOn(['SIGINT', 'SIGTERM'], {
  cleanup(info) {
    const from = info.pid === null ? 'the terminal' : `pid ${info.pid}`;
    console.log(`${me}: ${info.signal} from ${from}; closing ${server.address}`);
    server.close();   // ends the loop below, and removes the socket file this server made
  },
});
console.log(`${me}: listening on ${server.address} (uid ${process.getuid()} only). ` +
  `In another terminal: node examples/socket/client.js ${server.address}`);

/** Counts lines, words and bytes of the file open as `fd`, then closes it: the descriptor is ours now. */
function count(fd) {
  try {
    if (!fstatSync(fd).isFile()) throw Object.assign(new Error('the descriptor is not a regular file'), { code: 'NOT_A_FILE' });
    const text = readFileSync(fd, 'utf8');
    return { lines: text.split('\n').length - (text.endsWith('\n') ? 1 : 0), words: text.split(/\s+/).filter(Boolean).length, bytes: Buffer.byteLength(text) };
  } finally {
    closeSync(fd);
  }
}

for await (const conn of server) {
  const { pid, uid, gid } = conn.peer;   // the kernel's record of the process that connected
  console.log(`${me}: connection from pid ${pid} (uid ${uid}, gid ${gid})`);
  conn.serve((request, { fds }) => {
    switch (request.op) {
      case 'whoami':
        console.log(`${me}: pid ${pid} asked who it is`);
        return { pid, uid, gid };
      case 'count': {
        if (fds.length !== 1) throw Object.assign(new Error(`pass exactly one descriptor, not ${fds.length}`), { code: 'BAD_REQUEST' });
        // What the descriptor is open on, as this process sees it (it never opened that path itself).
        console.log(`${me}: pid ${pid} passed a descriptor of ${readlinkSync(`/proc/self/fd/${fds[0]}`)}`);
        return count(fds[0]);
      }
      default:
        for (const fd of fds) closeSync(fd);
        // The requester gets ERR_IPC_REMOTE carrying this code and message.
        throw Object.assign(new Error(`unknown operation ${JSON.stringify(request.op)}`), { code: 'UNKNOWN_OP' });
    }
  }).then(
    () => console.log(`${me}: pid ${pid} hung up`),
    (err) => console.log(`${me}: connection from pid ${pid} failed: ${err.code}: ${err.message}`),
  ).finally(() => conn.close());
}
