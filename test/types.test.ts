/**
 * What the declarations promise a TypeScript user, checked by the compiler
 * when the suite is built: a line here that stops compiling (or an
 * `@ts-expect-error` that stops erring) fails `npm test` before any test runs.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { Channel, PosixMessageQueue, SysvMessageQueue, bind, connect, listen, serve, socketPair, type Decoded } from '../src/index.js';

interface Job { id: number }

// Compiled, never called: the checks are the types.
export async function declarations(): Promise<void> {
  const raw = PosixMessageQueue.open('/t');
  const bytes: Buffer = (await raw.receive()).data;
  // @ts-expect-error: without a codec a message is a Buffer
  (await raw.receive()).data.id;
  await raw.send('text is sent as UTF-8');

  const json = PosixMessageQueue.open('/t', { codec: 'json' });
  const anything: { whatever: number } = (await json.receive()).data;   // any, as JSON.parse gives
  await json.send({ id: 1 });

  const typed = SysvMessageQueue.open<Job>(1, { codec: 'msgpack' });
  const job: Job = (await typed.receive()).data;
  // @ts-expect-error: a typed queue sends its type
  await typed.send(1, 'not a job');

  const own = Channel.open('/t', { codec: { encode: (s: string) => Buffer.from(s), decode: (b) => b.toString() } });
  const text: string = (await own.receive()).data;
  // @ts-expect-error: the codec says string
  const wrong: number = (await own.receive()).data;

  const [a, b] = socketPair({ codec: 'json' });
  void b.serve(({ n }) => ({ square: n * n }));
  const reply: { square: number } = await a.request({ n: 3 });
  const server = listen('unix:/t', { codec: 'json' });
  for await (const conn of server) void conn.serve(({ n }) => ({ n }));
  const client = await connect('unix:/t');
  const clientBytes: Buffer = (await client.receive()).data;
  const datagram = bind('udp://127.0.0.1:0', { codec: 'msgpack' });
  const from: { any: 'thing' } = (await datagram.receive()).data;
  await serve('unix:/t', ({ x }) => ({ y: x }), { codec: 'json' });
  // @ts-expect-error: no such codec
  PosixMessageQueue.open('/t', { codec: 'yaml' });
  void [bytes, anything, job, text, wrong, reply, clientBytes, from];
}

it('the rule for a message type: the type argument, else any with a named codec, else Buffer', () => {
  const checks: [Decoded<Buffer, undefined>, Decoded<Buffer, 'json'>, Decoded<Job, 'json'>] = [Buffer.alloc(0), 'any', { id: 1 }];
  assert.equal(checks.length, 3);
  assert.equal(typeof declarations, 'function');
});
