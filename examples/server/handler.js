// The handler of server.js, a module of its own: the blocking, fork and
// prefork strategies run it in child processes, which import this file
// (a function cannot be handed to another process). Under event and poll it
// runs in the server process itself.
//
// One call per message: the request (decoded by the 'json' codec) and the
// connection it came on. What it returns is the reply.
export default function handler(request, connection) {
  return {
    shout: String(request.word).toUpperCase(),
    servedBy: process.pid,          // which process ran this call
    connection: connection.id,      // numbered per process that serves connections
  };
}
