/**
 * The request/reply envelope (docs/socket.md, "The request/reply envelope"):
 * a kind byte and a 4-byte big-endian id before each message's body. Spoken
 * by `MessageSocket.request`/`serve` and by `serve()` with framing
 * 'requests'.
 * @internal
 * @module
 */

/** Envelope kinds (the first payload byte). */
export const REQUEST = 1;
export const REPLY = 2;
export const FAILURE = 3;
/** Bytes before the body: the kind and the id. */
export const ENVELOPE = 5;

/** `body` in an envelope of `kind` for request `id`. */
export function envelope(kind: number, id: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(ENVELOPE + body.length);
  out[0] = kind;
  out.writeUInt32BE(id, 1);
  out.set(body, ENVELOPE);
  return out;
}

/** A message's kind, id and body; undefined for one too short or of no known kind. */
export function openEnvelope(bytes: Buffer): { kind: number; id: number; body: Buffer } | undefined {
  if (bytes.length < ENVELOPE || bytes[0]! < REQUEST || bytes[0]! > FAILURE) return undefined;
  return { kind: bytes[0]!, id: bytes.readUInt32BE(1), body: bytes.subarray(ENVELOPE) };
}

/** The failure reply to request `id`: `err`'s code and message as JSON. */
export function failureEnvelope(id: number, err: unknown): Buffer {
  let code: unknown = null;
  let message: unknown;
  try {
    code = (err as { code?: unknown } | null)?.code;
    message = (err as { message?: unknown } | null)?.message;
    if (typeof message !== 'string') message = String(err);
  } catch {
    // A value whose properties or string form throw still gets an answer.
    message = 'the handler threw a value that cannot be described';
  }
  return envelope(FAILURE, id, Buffer.from(JSON.stringify({ code: typeof code === 'string' ? code : null, message })));
}
