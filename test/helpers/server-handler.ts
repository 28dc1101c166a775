/**
 * The handler module the server tests serve with, under every strategy:
 * what a request says decides the reply.
 */
import type { Connection } from '../../src/index.js';

export default function handler(data: Buffer, connection: Connection): unknown {
  // Served with a codec: a decoded value comes back inside an object.
  if (!Buffer.isBuffer(data)) return { got: data };
  const text = data.toString();
  if (text === 'pid') return String(process.pid);
  if (text === 'fail') throw new Error('asked to fail');
  if (text === 'peer') return JSON.stringify(connection.peer);
  if (text === 'nothing') return undefined;
  if (text === 'write-null') connection.write(null as never);
  // Never answers: what the client sends after it waits for this call.
  if (text === 'hang') return new Promise<string>(() => undefined);
  if (text === 'twice') {
    connection.write('first');
    return 'second';
  }
  if (text === 'bye') {
    connection.end();
    return 'bye';
  }
  if (text.startsWith('later:')) return new Promise((resolve) => setTimeout(() => resolve(`later ${text.slice(6)}`), Number(text.slice(6))));
  if (text.startsWith('big:')) return Buffer.alloc(Number(text.slice(4)), 0x61);
  return `echo:${text}`;
}
