// Terminal 2: node examples/server/client.js [address]
//
// Opens three connections to server.js; on each at the same time it sends
// two words, one after the other, and then closes it. It prints which
// process served each request: the server itself, or one of its children.
import { connect } from 'ipckit';

const address = process.argv[2] ?? 'unix:/tmp/ipckit-example-server.sock';
const me = `client ${process.pid}`;
const words = [['pear', 'fig'], ['plum', 'lime'], ['kiwi', 'date']];

try {
  // One after the other, so that the server accepts them in this order.
  const socks = [];
  for (const _ of words) socks.push(await connect(address, { codec: 'json', timeout: 5000 }));
  // The process that called listen(), as the kernel recorded it (Unix sockets only).
  const server = socks[0].peer?.pid;
  const lines = await Promise.all(socks.map(async (sock, i) => {
    try {
      const out = [];
      for (const word of words[i]) {
        await sock.send({ word });
        const { data } = await sock.receive({ timeout: 10_000 });
        const by = data.servedBy === server ? 'the server itself' : `pid ${data.servedBy}`;
        out.push(`${me}: connection ${i + 1}: "${word}" -> "${data.shout}", served by ${by} (its connection ${data.connection})`);
      }
      return out;
    } finally {
      sock.close();   // a blocking server serves the next connection only once this one ends
    }
  }));
  for (const line of lines.flat()) console.log(line);
  console.log(`${me}: done`);
} catch (err) {
  // ECONNREFUSED or ENOENT: no server there.
  console.error(`${me}: ${err.code}: ${err.message}`);
  process.exitCode = 1;
}
