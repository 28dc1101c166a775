/**
 * The test handler, in a process that ignores SIGTERM (a graceful-shutdown
 * hook that never ends): only SIGKILL stops it.
 */
process.on('SIGTERM', () => undefined);
export { default } from './server-handler.js';
