import { type Msg, type MsgHdrs, MsgHdrsImpl } from '@nats-io/transport-node';
import { type Decoded, decodeStructured, isStructured, UndecodableMessageError, type WireMessage } from '@wharf/core';
import { ADAPTER_NAME } from './options.js';

/**
 * CloudEvents NATS protocol binding (1.0.3 draft), binary content mode: every context attribute in a
 * `ce-<name>` header, `datacontenttype` in `content-type`, the data as the message payload. Structured
 * mode (`content-type: application/cloudevents+json`) is accepted on consume.
 */
export const CE_PREFIX = 'ce-';
export const CONTENT_TYPE = 'content-type';
const MSG_ID = 'Nats-Msg-Id';

/**
 * NATS header values cannot hold CR or LF, and nats.js trims values on both ends. Attribute values are
 * percent-encoded the way the HTTP binding does for the few characters that need it (`%`, control
 * characters, leading/trailing white space), so any string survives a round trip.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we encode
const NEEDS_ENCODING = /[%\u0000-\u001f\u007f]|^\s|\s$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we encode
const ENCODE = /[%\u0000-\u001f\u007f]|^\s+|\s+$/g;

const percent = (text: string): string => {
  let out = '';
  for (const c of text) out += `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
};

export function encodeHeaderValue(value: string): string {
  if (!NEEDS_ENCODING.test(value)) return value;
  return value.replace(ENCODE, percent);
}

export function decodeHeaderValue(value: string): string {
  if (!value.includes('%')) return value;
  // Only our own escapes (two hex digits) are decoded; a foreign "100%" stays as it is.
  return value.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

/** The `Nats-Msg-Id`: the server drops a republish of the same id within the duplicate window. */
export function messageId(attributes: Readonly<Record<string, string>>): string {
  // CloudEvents identity is source + id; a replay must not be dropped as a duplicate of the original.
  const base = `${attributes.source ?? ''} ${attributes.id ?? ''}`;
  const replayed = attributes.replayed;
  return encodeHeaderValue(replayed === undefined ? base : `${base} replayed ${replayed}`);
}

/**
 * Native headers for a wire message (binary content mode). The map is filled directly: values are already
 * header-safe, and `MsgHdrs.set()` re-validates and re-scans every key on each call (a hot-path cost).
 */
export function encodeHeaders(message: WireMessage): MsgHdrsImpl {
  const h = new MsgHdrsImpl();
  const map = h.headers;
  for (const name in message.attributes) {
    const value = encodeHeaderValue(message.attributes[name] as string);
    map.set(name === 'datacontenttype' ? CONTENT_TYPE : CE_PREFIX + name, [value]);
  }
  map.set(MSG_ID, [messageId(message.attributes)]);
  return h;
}

const decoder = new TextDecoder();

/**
 * The header block of a publish (`NATS/1.0\r\n<name>: <value>\r\n…\r\n`), byte for byte what
 * `encodeHeaders(message).encode()` gives, built without the `MsgHdrs` map, its per-entry arrays and its
 * string re-assembly: the publish hot path.
 */
export function encodeHeaderBlock(message: WireMessage): Uint8Array {
  const attributes = message.attributes;
  let s = 'NATS/1.0\r\n';
  for (const name in attributes) {
    s += `${name === 'datacontenttype' ? CONTENT_TYPE : CE_PREFIX + name}: ${encodeHeaderValue(attributes[name] as string)}\r\n`;
  }
  // Buffer.from (pooled) rather than TextEncoder.encode, which allocates an ArrayBuffer per call: ~10x faster.
  return Buffer.from(`${s}${MSG_ID}: ${messageId(attributes)}\r\n\r\n`, 'utf8');
}

/**
 * Headers already encoded as a block: `nc.publish()` only calls `encode()` on the headers it is given.
 * Used by the hot path only; never handed to code that reads headers back.
 */
export class EncodedHeaders {
  constructor(readonly block: Uint8Array) {}
  encode(): Uint8Array {
    return this.block;
  }
}

/** The raw header block of a received message, where nats.js 3.x exposes it (`MsgImpl`): `null` = no headers. */
function rawHeaderBlock(msg: Msg): Uint8Array | null | undefined {
  const m = msg as unknown as { _rdata?: unknown; _msg?: { hdr?: unknown } };
  const hdr = m._msg?.hdr;
  const data = m._rdata;
  if (typeof hdr !== 'number' || !(data instanceof Uint8Array)) return undefined;
  return hdr < 0 ? null : data.subarray(0, hdr);
}

/** Whether `text[from, to)` is a header name nats.js accepts (printable ASCII except `:`); it throws on others. */
function validName(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c < 33 || c > 126) return false;
  }
  return to > from;
}

/**
 * Decodes a delivered message as {@link decodeMessage}`(msg.headers, msg.data)` does, but reads the header
 * block directly instead of building nats.js's `MsgHdrs` (whose parse and every `get()` rescan all keys).
 * Anything unusual (a status line, a name nats.js would reject, another client version) takes the
 * `MsgHdrs` path, so the result is the same.
 */
export function decodeDelivered(msg: Msg): Decoded {
  const block = rawHeaderBlock(msg);
  if (block === undefined) return viaMsgHdrs(msg);
  if (block === null) return decodeMessage(undefined, msg.data);
  const text = decoder.decode(block);
  if (!text.startsWith('NATS/1.0\r\n')) return viaMsgHdrs(msg);
  // Values are cut from the bytes when every character is one byte (the offsets match): a slice of
  // `text` is a view that keeps the whole block alive as long as the attribute is kept (an event id
  // held in a map, say), ~250 bytes for a ~40-byte value.
  const ascii =
    text.length === block.length && !text.includes('\uFFFD')
      ? Buffer.from(block.buffer, block.byteOffset, block.byteLength)
      : undefined;
  const attributes: Record<string, string> = {};
  let contentType: string | undefined;
  let at = 10;
  while (at < text.length) {
    let end = text.indexOf('\r\n', at);
    if (end < 0) end = text.length;
    const colon = text.indexOf(':', at);
    if (end > at && colon >= 0 && colon < end) {
      if (!validName(text, at, colon)) return viaMsgHdrs(msg);
      // ce-<name> (any case) or content-type; other headers are not the event's.
      const ce =
        colon - at >= 3 &&
        (text.charCodeAt(at) | 32) === 99 &&
        (text.charCodeAt(at + 1) | 32) === 101 &&
        text.charCodeAt(at + 2) === 45;
      const isContentType = !ce && colon - at === 12 && text.slice(at, colon).toLowerCase() === CONTENT_TYPE;
      if (ce || isContentType) {
        const name = ce ? text.slice(at + 3, colon).toLowerCase() : CONTENT_TYPE;
        // MsgHdrs keeps the first value of each exact name; a later name differing only in case overrides.
        // A repeated exact name can only be one whose target is already set.
        const taken = ce ? name in attributes : contentType !== undefined;
        if (!(taken && namedBefore(text, text.slice(at, colon), at))) {
          const value = ascii ? trimmedAscii(ascii, colon + 1, end) : text.slice(colon + 1, end).trim();
          if (ce) attributes[name] = decodeHeaderValue(value);
          else contentType = value;
        }
      }
    }
    at = end + 2;
  }
  return decodeParts(attributes, contentType, msg.data);
}

/** `bytes[from, to)` as text without surrounding blanks, as `trim()` gives it for one-byte characters. */
function trimmedAscii(bytes: Buffer, from: number, to: number): string {
  const blank = (c: number | undefined): boolean => c === 32 || (c !== undefined && c >= 9 && c <= 13);
  while (from < to && blank(bytes[from])) from++;
  while (to > from && blank(bytes[to - 1])) to--;
  return bytes.toString('latin1', from, to);
}

/** The slow path: nats.js parses the headers (and throws on a header name it rejects). */
function viaMsgHdrs(msg: Msg): Decoded {
  try {
    return decodeMessage(msg.headers, msg.data);
  } catch (error) {
    return undecodable(error);
  }
}

/** Whether a header line before offset `before` of a header block has exactly the name `key`. */
function namedBefore(text: string, key: string, before: number): boolean {
  for (let at = text.indexOf('\r\n') + 2; at < before; ) {
    const end = text.indexOf('\r\n', at);
    if (text.startsWith(key, at) && text.charCodeAt(at + key.length) === 58 && at + key.length < end) return true;
    at = end + 2;
  }
  return false;
}

/** All headers of a message as a plain record (first value of each), lower-cased names. */
export function headerRecord(h: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const key of h.keys()) out[key.toLowerCase()] = h.get(key);
  return out;
}

/** Decodes a native message; anything that is not a CloudEvent becomes `{ ok: false }` (dead-lettered as undecodable). */
export function decodeMessage(h: MsgHdrs | undefined, body: Uint8Array): Decoded {
  try {
    const attributes: Record<string, string> = {};
    let contentType: string | undefined;
    if (h) {
      for (const key of h.keys()) {
        const lower = key.toLowerCase();
        if (lower === CONTENT_TYPE) contentType = h.get(key);
        else if (lower.startsWith(CE_PREFIX)) attributes[lower.slice(CE_PREFIX.length)] = decodeHeaderValue(h.get(key));
      }
    }
    return decodeParts(attributes, contentType, body);
  } catch (error) {
    return undecodable(error);
  }
}

function decodeParts(attributes: Record<string, string>, contentType: string | undefined, body: Uint8Array): Decoded {
  try {
    if (isStructured(contentType)) return { ok: true, message: decodeStructured(body) };
    if (attributes.specversion === undefined) {
      return {
        ok: false,
        error: new UndecodableMessageError(
          ADAPTER_NAME,
          'the message is not a CloudEvent: it has no ce-specversion header and its content-type is not application/cloudevents+json',
        ),
      };
    }
    if (contentType !== undefined) attributes.datacontenttype = decodeHeaderValue(contentType);
    return { ok: true, message: { attributes, body } };
  } catch (error) {
    return undecodable(error);
  }
}

function undecodable(error: unknown): Decoded {
  const cause = error as Error;
  return {
    ok: false,
    error:
      cause instanceof UndecodableMessageError
        ? cause
        : new UndecodableMessageError(ADAPTER_NAME, cause.message, { cause }),
  };
}
