/**
 * The child process of the blocking, fork and prefork server strategies
 * (see server.ts): `node server-child.js <config JSON>`, with its
 * descriptor 3 being the listening socket (blocking), one connection
 * (fork) or the Unix socket the parent passes connections over (prefork).
 * It is killed when its parent's thread ends (PR_SET_PDEATHSIG): a server
 * killed outright leaves no child serving on.
 * @internal
 * @module
 */
import { constants } from 'node:os';
import { E, IpcError } from '../errors.js';
import { native } from '../native.js';
import { type ChildConfig, loadHandler, serveBlocking, serveHandedOver } from '../server.js';
import { MessageSocket } from '../socket.js';
import { resolveCodec } from './codec.js';

const FD = 3;

const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
// SIGKILL: a child sleeping in accept or read runs no JavaScript, so a handler the user's module set for SIGTERM
// could not end it, and nothing should serve on for a server that is gone.
if (native.parentDeathSignal(constants.signals.SIGKILL, config.parent) < 0) {
  // The server is already gone: nobody would ever stop this process.
  process.exit(0);
}
const handler = await loadHandler<unknown>(config.handler);
const codec = config.codec === undefined ? undefined : resolveCodec<unknown>(config.codec);

switch (config.role) {
  case 'connection':
    await serveBlocking(FD, 1, config, handler, codec);
    break;
  case 'listener': {
    // The blocking server: accept sleeps until a client comes, and while one is served the others wait.
    native.setNonBlocking(FD, false);
    for (let id = 1; ; id++) {
      const fd = native.accept(FD);
      // A client that gave up before it was accepted (ECONNABORTED comes back as EAGAIN).
      if (fd === E.EAGAIN) continue;
      if (fd < 0) {
        process.stderr.write(`${new IpcError('ERR_IPC_INTERNAL', `accept failed: ${native.strerror(-fd)}`).message}\n`);
        process.exit(1);
      }
      await serveBlocking(fd, id, config, handler, codec);
    }
  }
  case 'worker':
    await serveHandedOver(MessageSocket.fromFd(FD), config, handler, codec);
    break;
}
process.exit(0);
