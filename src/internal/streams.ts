/**
 * Node streams over ipckit's byte transports (pipes, FIFOs, stream
 * sockets): a `Readable` that pulls only as fast as it is consumed, a
 * `Writable` with the transport's own backpressure.
 * @internal
 * @module
 */
import { Readable, Writable } from 'node:stream';
import { checkOptions, optionalInteger } from './validate.js';

/** Options of a transport's `toStream()`. */
export interface StreamOptions {
  /** The stream's buffering threshold in bytes (Node's default when absent). */
  highWaterMark?: number;
}

function highWaterMark(options: StreamOptions | undefined): number | undefined {
  const opts = checkOptions(options, ['highWaterMark']);
  return opts.highWaterMark === undefined ? undefined : optionalInteger(opts.highWaterMark, 'highWaterMark', 1, 2 ** 31 - 1, 0);
}

/** A Readable fed by `read(maxBytes)` (a chunk, or `null` at the end); destroying it runs `close`. */
export function readableFrom(read: (maxBytes: number) => Promise<Buffer | null>, close: () => void, maxRead: number,
  options?: StreamOptions): Readable {
  const stream: Readable = new Readable({
    highWaterMark: highWaterMark(options),
    read: (size) => {
      read(Math.max(1, Math.min(size, maxRead))).then(
        (chunk) => stream.push(chunk),
        (err: unknown) => stream.destroy(err as Error),
      );
    },
    destroy: (err, done) => {
      close();
      done(err);
    },
  });
  return stream;
}

/** A Writable that hands each chunk to `write`; ending or destroying it runs `close`. */
export function writableTo(write: (chunk: Buffer) => Promise<void>, close: () => void, options?: StreamOptions): Writable {
  return new Writable({
    highWaterMark: highWaterMark(options),
    write: (chunk: Buffer, _encoding, done) => {
      write(chunk).then(() => done(), (err: unknown) => done(err as Error));
    },
    final: (done) => {
      close();
      done();
    },
    destroy: (err, done) => {
      close();
      done(err);
    },
  });
}
