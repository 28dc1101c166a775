/**
 * The handler of `ipckit demo blocking`: every request is answered with the
 * pid of the process that ran the handler, so the demo can tell the server
 * process from its children. A module of its own, so that the strategies
 * that serve in child processes can load it there.
 * @internal
 * @module
 */
export default function pid(): string {
  return String(process.pid);
}
