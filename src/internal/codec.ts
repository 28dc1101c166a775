/**
 * Codecs layer typed messages over the byte payloads of every mechanism.
 * @internal
 * @module
 */
import { Decoder, EXT_TIMESTAMP, Encoder, ExtensionCodec, decodeTimestampExtension, encodeTimestampExtension } from '@msgpack/msgpack';
import { IpcError } from '../errors.js';
import { invalidArgument, isBytes, isUint8Array, isWellFormed, notBytes, toBytes } from './validate.js';

/** Turns values into message bytes and back. */
export interface Codec<T> {
  /** The bytes of one message. A throw fails the send with `ERR_IPC_CODEC`, the error as its `cause`. */
  encode(value: T): Uint8Array;
  /** The value of one received message. A throw fails the receive with `ERR_IPC_CODEC`; the message is consumed. */
  decode(bytes: Buffer): T;
}

/**
 * What a send takes for messages received as `T`: bytes without a codec
 * (any `Uint8Array`, or a string, sent as its UTF-8 bytes), the codec's
 * values with one (`any` stays `any`).
 */
export type Outgoing<T> = 0 extends 1 & T ? any : [T] extends [Buffer] ? Uint8Array | string : T;

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

// Dates go as MessagePack timestamps, both ways checked: an Invalid Date has
// no timestamp (it would arrive as 1970), and a timestamp outside the range
// of a Date is refused rather than decoded to an Invalid Date.
const extensions = new ExtensionCodec();
extensions.register({
  type: EXT_TIMESTAMP,
  encode: (value: unknown) => {
    if (!(value instanceof Date)) return null;
    if (Number.isNaN(value.getTime())) throw new TypeError('an Invalid Date has no MessagePack timestamp');
    return encodeTimestampExtension(value);
  },
  decode: (data: Uint8Array) => {
    const date = decodeTimestampExtension(data);
    if (Number.isNaN(date.getTime())) throw new TypeError('a timestamp outside the range of a JavaScript Date');
    return date;
  },
});

const msgpackEncoder = new Encoder({ extensionCodec: extensions });
const msgpackDecoder = new Decoder({ extensionCodec: extensions });

/**
 * Refuses what MessagePack would carry but not deliver as sent: a string
 * with a lone UTF-16 surrogate (it has no UTF-8 form and would arrive as
 * U+FFFD), and an object with an own `__proto__` key (decoders refuse it,
 * so every receiver would fail). Depth is the encoder's to limit.
 */
function checkPortable(value: unknown, depth = 0): void {
  if (depth > 100) return;
  if (typeof value === 'string') {
    if (!isWellFormed(value)) throw new TypeError('a string with a lone UTF-16 surrogate has no UTF-8 form (it would arrive as U+FFFD)');
    return;
  }
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value) || value instanceof Date) return;
  if (Array.isArray(value)) {
    for (const item of value) checkPortable(item, depth + 1);
  } else if (value instanceof Map) {
    for (const [k, v] of value) {
      checkPortable(k, depth + 1);
      checkPortable(v, depth + 1);
    }
  } else {
    if (Object.hasOwn(value, '__proto__')) {
      throw new TypeError('an object with an own "__proto__" key: receivers refuse that key (it could pollute prototypes)');
    }
    for (const [k, v] of Object.entries(value)) {
      checkPortable(k, depth + 1);
      checkPortable(v, depth + 1);
    }
  }
}

const msgpackCodec: Codec<unknown> = {
  encode: (value) => {
    checkPortable(value);
    return msgpackEncoder.encode(value);
  },
  // Binary values come out as Uint8Array views, as they went in (not Buffers).
  decode: (bytes) => msgpackDecoder.decode(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)),
};

const rawCodec: Codec<Buffer> = {
  encode: (value) => toBytes(value) as Buffer,
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
  // (Raw bytes were checked by toBytes, once: a second read of their length could only disagree with the first.)
  if (codec !== rawCodec && !isBytes(bytes)) {
    if (!isUint8Array(bytes)) {
      throw new IpcError('ERR_IPC_CODEC', `The codec's encode() for ${address} returned ${typeof bytes}, not a Uint8Array.`, { address });
    }
    throw notBytes(`What the codec's encode() for ${address} returned`, bytes, 'a Uint8Array', 'ERR_IPC_CODEC');
  }
  return bytes as Uint8Array;
}

/** Decodes with the codec, reporting failures as ERR_IPC_CODEC with the decoder's error as `cause`. */
export function decodeWith<T>(codec: Codec<T>, bytes: Buffer, address: string): T {
  try {
    return codec.decode(bytes);
  } catch (err) {
    throw new IpcError('ERR_IPC_CODEC',
      `A ${bytes.length}-byte message from ${address} could not be decoded: ${(err as Error)?.message ?? err}. ` +
      'The message was consumed; check that every sender uses the same codec.', { address, cause: err });
  }
}
