/**
 * What the declarations promise a TypeScript user, checked by the compiler
 * when the suite is built: a line here that stops compiling (or an
 * `@ts-expect-error` that stops erring) fails `npm test` before any test runs.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { Channel, Fifo, PipeReadEnd, PosixMessageQueue, SysvMessageQueue, bind, connect, listen, pipe, serve, socketPair } from '../src/index.js';

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
  const plain = pipe();
  const chunk: Buffer | null = await plain.readEnd.read();
  const framed = pipe({ codec: 'json' });
  await framed.writeEnd.send({ any: 'value' });
  const got = await framed.readEnd.receive();
  const value: { n: number } | undefined = got?.data;
  const jobs = await Fifo.openRead<Job>('/t', { codec: 'msgpack' });
  const fifoJob: Job | undefined = (await jobs.receive())?.data;
  const wrapped: PipeReadEnd = [3].map((fd) => PipeReadEnd.fromFd(fd))[0]!;
  void [chunk, value, fifoJob, wrapped];
  // @ts-expect-error: no such codec
  PosixMessageQueue.open('/t', { codec: 'yaml' });
  // A codec chosen at run time, maybe none (exactOptionalPropertyTypes allows undefined explicitly).
  const which: 'json' | undefined = process.env['IPCKIT_JSON'] === '1' ? 'json' : undefined;
  const maybe = PosixMessageQueue.open('/t', { codec: which });
  void maybe;
  // A codec of your own types the messages from what decode returns (written before encode, TypeScript infers left to right).
  const upper = PosixMessageQueue.open('/t', { codec: { decode: (b) => b.toString(), encode: (s) => Buffer.from(s.toUpperCase()) } });
  const shout: string = (await upper.receive()).data;
  // @ts-expect-error: the codec's values are strings
  await upper.send(42);
  void shout;
  void [bytes, anything, job, text, wrong, reply, clientBytes, from];
}

it('the rule for a message type: the type argument, else any with a named codec, else Buffer', () => {
  assert.equal(typeof declarations, 'function');
});
