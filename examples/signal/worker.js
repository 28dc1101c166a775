// Terminal 1: node examples/signal/worker.js
//
// A small service whose only inbox is signals. Jobs arrive as SIGRTMIN+1
// carrying a number (sigqueue); the answer goes back to the sender's pid,
// which the kernel reports, as SIGRTMIN+2 carrying the result. SIGUSR2 asks
// for a status report. SIGINT (Ctrl+C) or SIGTERM shuts it down cleanly.
import { listenForSignals, sendSignal, shutdownOn } from 'ipckit';

const me = `worker ${process.pid}`;
// From here on no job is lost, even if several arrive while one is handled:
// real-time signals queue in the kernel, and the listener keeps them in order.
const inbox = listenForSignals(['SIGRTMIN+1', 'SIGUSR2']);
let done = 0;

/** Answers `pid`; a sender that has already exited (ESRCH) gets no answer. */
function answer(pid, value) {
  try {
    sendSignal(pid, 'SIGRTMIN+2', { value });
  } catch (err) {
    if (err.code !== 'ESRCH') throw err;
    console.log(`${me}: pid ${pid} has exited; its answer (${value}) is dropped`);
  }
}

shutdownOn(['SIGINT', 'SIGTERM'], {
  cleanup(info) {
    const from = info.pid === null ? 'the terminal' : `pid ${info.pid}`;
    console.log(`${me}: ${info.signal} from ${from}; ${done} jobs done, shutting down`);
    inbox.close();
  },
});

console.log(`${me}: ready. In another terminal: node examples/signal/control.js ${process.pid}`);
for await (const info of inbox) {
  if (info.pid === null) continue; // only processes can be answered
  if (info.signal === 'SIGUSR2') {
    console.log(`${me}: status asked by pid ${info.pid}: ${done} jobs done`);
    answer(info.pid, done);
    continue;
  }
  const n = info.value ?? 0;
  done++;
  console.log(`${me}: job ${n} from pid ${info.pid} (uid ${info.uid}): ${n} squared is ${n * n}`);
  answer(info.pid, n * n);
}
