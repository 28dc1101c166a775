/**
 * Codecs layer typed messages over the byte payloads of every mechanism.
 * @internal
 * @module
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import { IpcError } from '../errors.js';
import { checkBytes, invalidArgument } from './validate.js';

/** Turns values into message bytes and back. */
export interface Codec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Buffer): T;
}

/**
 * What a send accepts for messages received as `T`: any `Uint8Array` when
 * messages are raw bytes (received as `Buffer`), `T` itself with a codec.
 */
export type Outgoing<T> = [T] extends [Buffer] ? Uint8Array : T;

/**
 * A codec choice: `'json'` (UTF-8 JSON text), `'msgpack'` (MessagePack:
 * compact, binary-safe, keeps `Uint8Array`s and `Date`s) or your own
 * `{ encode, decode }`. Without a codec, messages are raw bytes.
 */
export type CodecOption<T> = 'json' | 'msgpack' | Codec<T>;

const textEncoder = new TextEncoder();

const jsonCodec: Codec<unknown> = {
  encode: (value) => {
    // JSON.stringify returns undefined for undefined, functions and symbols: no message at all.
    const text = JSON.stringify(value) as string | undefined;
    if (text === undefined) throw new TypeError(`${typeof value} has no JSON form; send null, or an object, array, string, number or boolean`);
    return textEncoder.encode(text);
  },
  decode: (bytes) => JSON.parse(bytes.toString('utf8')) as unknown,
};

const msgpackEncoder = new Encoder();
const msgpackDecoder = new Decoder();

const msgpackCodec: Codec<unknown> = {
  encode: (value) => msgpackEncoder.encode(value),
  // Binary values come out as Uint8Array views, as they went in (not Buffers).
  decode: (bytes) => msgpackDecoder.decode(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)),
};

const rawCodec: Codec<Buffer> = {
  encode: (value) => checkBytes(value),
  decode: (bytes) => bytes,
};

/** The codec for an option value; raw bytes when absent. */
export function resolveCodec<T>(option: unknown): Codec<T> {
  if (option === undefined) return rawCodec as unknown as Codec<T>;
  if (option === 'json') return jsonCodec as Codec<T>;
  if (option === 'msgpack') return msgpackCodec as Codec<T>;
  if (option !== null && typeof option === 'object' &&
    typeof (option as Codec<T>).encode === 'function' && typeof (option as Codec<T>).decode === 'function') {
    return option as Codec<T>;
  }
  throw invalidArgument('codec', option, '"json", "msgpack", or an object with encode(value) and decode(bytes) functions');
}

/** Encodes with the codec, reporting codec failures as ERR_IPC_CODEC. */
export function encodeWith<T>(codec: Codec<T>, value: T, address: string): Uint8Array {
  let bytes: unknown;
  try {
    bytes = codec.encode(value);
  } catch (err) {
    if (err instanceof IpcError) throw err;
    throw new IpcError('ERR_IPC_CODEC', `Encoding a message for ${address} failed: ${(err as Error)?.message ?? err}`, { address, cause: err });
  }
  if (!ArrayBuffer.isView(bytes) || !(bytes instanceof Uint8Array)) {
    throw new IpcError('ERR_IPC_CODEC', `The codec's encode() for ${address} returned ${typeof bytes}, not a Uint8Array.`, { address });
  }
  return bytes;
}

/** Decodes with the codec, reporting failures as ERR_IPC_CODEC; the raw bytes stay on `cause`. */
export function decodeWith<T>(codec: Codec<T>, bytes: Buffer, address: string): T {
  try {
    return codec.decode(bytes);
  } catch (err) {
    throw new IpcError('ERR_IPC_CODEC',
      `A ${bytes.length}-byte message from ${address} could not be decoded: ${(err as Error)?.message ?? err}. ` +
      'The message was consumed; check that every sender uses the same codec.', { address, cause: err });
  }
}
