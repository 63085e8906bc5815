import { type MsgHdrs, headers as natsHeaders } from '@nats-io/transport-node';
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
 * NATS header values cannot hold CR or LF. Attribute values are percent-encoded the way the HTTP binding
 * does for the few characters that need it (`%`, control characters), so any string survives a round trip.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we encode
const NEEDS_ENCODING = /[%\u0000-\u001f\u007f]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we encode
const ENCODE = /[%\u0000-\u001f\u007f]/g;

export function encodeHeaderValue(value: string): string {
  if (!NEEDS_ENCODING.test(value)) return value;
  return value.replace(ENCODE, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
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

/** Native headers for a wire message (binary content mode). */
export function encodeHeaders(message: WireMessage): MsgHdrs {
  const h = natsHeaders();
  for (const name in message.attributes) {
    const value = message.attributes[name] as string;
    if (name === 'datacontenttype') h.set(CONTENT_TYPE, encodeHeaderValue(value));
    else h.set(CE_PREFIX + name, encodeHeaderValue(value));
  }
  h.set(MSG_ID, messageId(message.attributes));
  return h;
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
    const cause = error as Error;
    return {
      ok: false,
      error:
        cause instanceof UndecodableMessageError
          ? cause
          : new UndecodableMessageError(ADAPTER_NAME, cause.message, { cause }),
    };
  }
}
