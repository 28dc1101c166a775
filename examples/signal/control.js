// Terminal 2: node examples/signal/control.js <worker pid>
//
// Sends the worker three jobs with sigqueue, reads each answer from the
// signal the worker sends back, asks for its status, then stops it with
// SIGTERM and waits until it has exited.
import { listenForSignals, sendSignal } from 'ipckit';

const worker = Number(process.argv[2]);
if (!Number.isInteger(worker) || worker < 1) {
  console.error('usage: node examples/signal/control.js <worker pid>');
  process.exit(2);
}
const me = `control ${process.pid}`;

// Listen before sending, so no answer can arrive while nobody handles it.
const answers = listenForSignals('SIGRTMIN+2');
async function answerFromWorker() {
  for (;;) {
    const info = await answers.receive({ timeout: 5000 });
    if (info.pid === worker) return info.value;
  }
}

for (const n of [3, 4, 12]) {
  sendSignal(worker, 'SIGRTMIN+1', { value: n });
  console.log(`${me}: job ${n} -> ${await answerFromWorker()}`);
}
sendSignal(worker, 'SIGUSR2');
console.log(`${me}: the worker has done ${await answerFromWorker()} jobs`);

sendSignal(worker, 'SIGTERM');
console.log(`${me}: sent SIGTERM`);
// Signal 0 only checks that the process still exists.
const gone = () => {
  try {
    process.kill(worker, 0);
    return false;
  } catch {
    return true;
  }
};
for (let i = 0; i < 100 && !gone(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
console.log(gone() ? `${me}: worker ${worker} has exited` : `${me}: worker ${worker} is still running`);
answers.close();
