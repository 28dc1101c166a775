/**
 * A handler module whose every server child process exits at once (the
 * server process itself loads it fine): a pool that keeps dying.
 */
if (process.argv[1]?.endsWith('server-child.js')) process.exit(3);
export default (data: Buffer): Buffer => data;
