/**
 * How a Poller's wait scales with the number of registered objects:
 * `node dist/bench/select-scaling.js [N...]` registers N socket-pair ends
 * (default 10, 1000, 9000; a process here may hold 20,000 descriptors, two
 * per pair), makes the last one readable, and times add, tryWait and wait.
 * With epoll a wait costs what is ready, not what is registered: the three
 * rows should read alike.
 */
import { Poller, socketPair } from '../src/index.js';

const sizes = process.argv.slice(2).map(Number).filter((n) => Number.isInteger(n) && n > 0);
for (const n of sizes.length > 0 ? sizes : [10, 1000, 9000]) {
  const pairs = Array.from({ length: n }, () => socketPair());
  const poller = new Poller();
  let started = performance.now();
  for (const [, end] of pairs) poller.add(end);
  const addUs = ((performance.now() - started) * 1000) / n;
  await pairs[n - 1]![0].send(Buffer.from('x'));
  started = performance.now();
  for (let i = 0; i < 20_000; i++) poller.tryWait();
  const tryUs = ((performance.now() - started) * 1000) / 20_000;
  started = performance.now();
  for (let i = 0; i < 2000; i++) await poller.wait();
  const waitUs = ((performance.now() - started) * 1000) / 2000;
  console.log(`${n} registered: add ${addUs.toFixed(2)} µs each; tryWait (1 ready) ${tryUs.toFixed(2)} µs; wait() ${waitUs.toFixed(2)} µs`);
  poller.close();
  for (const [a, b] of pairs) {
    a.close();
    b.close();
  }
}
