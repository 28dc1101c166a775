/**
 * The handler of `ipckit serve --echo`: every message (or chunk) goes back
 * as it came. A module of its own, so that every strategy can load it in
 * its child processes.
 * @internal
 * @module
 */
export default function echo(data: Buffer): Buffer {
  return data;
}
