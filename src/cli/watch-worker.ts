/**
 * The worker thread of `ipckit watch`: takes a sample (watch-sample.ts)
 * each time it is asked, with the filter it was started with, and posts it
 * back. Listing reads /proc and the IPC objects synchronously; here that
 * never holds up the command's event loop.
 * @internal
 * @module
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type WatchFilter, sampleObjects } from './watch-sample.js';

const filter = workerData as WatchFilter;
parentPort!.on('message', () => {
  parentPort!.postMessage(sampleObjects(filter));
});
