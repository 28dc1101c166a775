/**
 * Entry point of an actor process (see actor.ts): reads JSON-line requests
 * `{ id, op, params }` on stdin, runs the `REMOTE` handler `op` of
 * waitables.ts, and answers on stdout with `{ id, value }` when the handler
 * reports it started, then `{ id, done: true, value }` or `{ id, error }`.
 * It exits when stdin closes.
 */
import { createInterface } from 'node:readline';
import { NATS_REMOTE } from './nats-waitables.js';
import { REMOTE, RemoteState } from './waitables.js';

function send(message: unknown): void {
  // Pipes are written synchronously on Linux: a handler may block right after reporting.
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

const state = new RemoteState();
const handlers = { ...REMOTE, ...NATS_REMOTE };

createInterface({ input: process.stdin })
  .on('line', (line) => {
    const { id, op, params } = JSON.parse(line) as { id: number; op: string; params: Record<string, unknown> };
    const handler = handlers[op];
    if (handler === undefined) {
      send({ id, error: { code: null, message: `unknown remote operation ${op}` } });
      return;
    }
    const started = (value: unknown = null): void => send({ id, value });
    Promise.resolve()
      .then(() => handler(params, { started, state }))
      .then(
        (value) => send({ id, done: true, value: value ?? null }),
        (err: unknown) => send({ id, error: { code: (err as { code?: string }).code ?? null, message: (err as Error).message ?? String(err) } }),
      );
  })
  .on('close', () => process.exit(0));
