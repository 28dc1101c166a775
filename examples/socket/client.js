// Terminal 2: node examples/socket/client.js [address] [file]
//
// Connects to server.js, asks who the server thinks it is, opens a file and
// passes the open descriptor with a request (the server counts it without
// opening the path), and shows how a failing request handler is reported.
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connect } from 'ipckit';

const address = process.argv[2] ?? 'unix:/tmp/ipckit-example.sock';
const file = process.argv[3] ?? fileURLToPath(import.meta.url);
const me = `client ${process.pid}`;

async function main(sock) {
  // A Unix socket also tells the client who the server is: its credentials when it called listen().
  console.log(`${me}: connected to ${sock.remoteAddress}, served by pid ${sock.peer.pid} (uid ${sock.peer.uid})`);

  const seen = await sock.request({ op: 'whoami' }, { timeout: 5000 });
  console.log(`${me}: the server sees me as pid ${seen.pid}, uid ${seen.uid}, gid ${seen.gid}`);

  // The server receives its own copy of the descriptor (SCM_RIGHTS); ours is closed once the reply is in.
  const fd = openSync(file, 'r');
  const counts = await sock.request({ op: 'count' }, { fds: [fd], timeout: 5000 }).finally(() => closeSync(fd));
  console.log(`${me}: ${file}: ${counts.lines} lines, ${counts.words} words, ${counts.bytes} bytes, counted by pid ${sock.peer.pid}`);

  try {
    await sock.request({ op: 'shout' }, { timeout: 5000 });
  } catch (err) {
    if (err.code !== 'ERR_IPC_REMOTE') throw err;
    console.log(`${me}: "shout" failed: ${err.code} (the handler's code was ${err.cause.code})`);
  }
}

try {
  const sock = await connect(address, { codec: 'json', timeout: 5000 });
  try {
    await main(sock);
  } finally {
    sock.close();
  }
  console.log(`${me}: done`);
} catch (err) {
  // ECONNREFUSED or ENOENT: no server; ERR_IPC_PEER_CLOSED: the server closed the connection (its allow-list refused us).
  console.error(`${me}: ${err.code}: ${err.message}`);
  process.exitCode = 1;
}
