/**
 * WireMessage <-> Kafka record, following the CloudEvents Kafka protocol binding 1.0:
 * binary content mode (`ce_<attribute>` headers, `content-type` for `datacontenttype`, the value is
 * the data, `partitionkey` is the record key) when publishing; binary and structured
 * (`application/cloudevents+json`) accepted when consuming.
 */
import {
  type Decoded,
  decodeStructured,
  describeError,
  isStructured,
  UndecodableMessageError,
  WELL_KNOWN_ATTRIBUTES,
  type WireMessage,
} from '@wharf/core';
import type { IncomingHeaders, IncomingRecord, OutgoingRecord } from './client.js';
import { ADAPTER_NAME } from './options.js';

export const CE_PREFIX = 'ce_';
export const CONTENT_TYPE = 'content-type';
/** Our bookkeeping headers on retry records; they never reach an event's attributes. */
export const DUE_HEADER = 'wharf-due';
export const ORIGIN_HEADER = 'wharf-origin';

const EMPTY = new Uint8Array(0);

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Values up to this size are remembered by {@link LastValue}; longer ones are decoded each time. */
const REMEMBERED_BYTES = 128;

/**
 * The last value one header had, as bytes and as text. Most headers repeat from record to record
 * (the type, the source, the content type); comparing a few bytes is much cheaper than decoding them.
 */
export class LastValue {
  #bytes: Uint8Array = EMPTY;
  #text = '';

  text(raw: Buffer, name: string): string {
    const bytes = this.#bytes;
    const length = raw.length;
    if (length === bytes.length) {
      let i = 0;
      while (i < length && raw[i] === bytes[i]) i++;
      if (i === length) return this.#text;
    }
    const text = bufferText(raw, name);
    if (length <= REMEMBERED_BYTES) {
      // A copy: the record's bytes are a view of a whole fetch response, which must not be kept alive.
      this.#bytes = new Uint8Array(raw);
      this.#text = text;
    }
    return text;
  }
}

/** How a known header is read: the attribute it holds, and its last value where values repeat. */
interface KnownHeader {
  readonly attribute: string;
  readonly last: LastValue | undefined;
}

/** Attributes whose values usually repeat between records; ids never do, and times only within a millisecond. */
export const REPEATING_ATTRIBUTES: readonly string[] = ['specversion', 'source', 'type', 'dataschema', 'subject'];
const REPEATING = new Set(REPEATING_ATTRIBUTES);

/** `ce_<name>` for the attributes Wharf writes, both ways: no string is built or sliced per header. */
const HEADER_OF = new Map<string, string>(WELL_KNOWN_ATTRIBUTES.map((name) => [name, CE_PREFIX + name]));
const KNOWN_HEADERS = new Map<string, KnownHeader>(
  WELL_KNOWN_ATTRIBUTES.map((name) => [
    CE_PREFIX + name,
    { attribute: name, last: REPEATING.has(name) ? new LastValue() : undefined },
  ]),
);
const CONTENT_TYPES = new LastValue();

/** Encodes an event as a binary-mode record. */
export function encode(message: WireMessage): OutgoingRecord {
  const headers: Record<string, string> = {};
  const { attributes } = message;
  for (const name in attributes) {
    const value = attributes[name] as string;
    if (name === 'datacontenttype') headers[CONTENT_TYPE] = value;
    else headers[HEADER_OF.get(name) ?? CE_PREFIX + name] = value;
  }
  const body = message.body;
  return {
    key: attributes.partitionkey ?? null,
    value:
      body.length === 0
        ? null
        : Buffer.isBuffer(body)
          ? body
          : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
    headers,
  };
}

/** The size a record takes in a batch, close enough to compare with `max.message.bytes`. */
export function recordSize(record: OutgoingRecord): number {
  let size = 70 + (record.value?.length ?? 0) + (record.key === null ? 0 : Buffer.byteLength(record.key));
  for (const name in record.headers) {
    const value = record.headers[name] as Buffer | string | (Buffer | string)[];
    for (const v of Array.isArray(value) ? value : [value]) {
      size += 10 + Buffer.byteLength(name) + (typeof v === 'string' ? Buffer.byteLength(v) : v.length);
    }
  }
  return size;
}

/** A header as one string; throws on repeated or non-UTF-8 values, which no CloudEvent has. */
export function headerText(headers: IncomingHeaders, name: string, last?: LastValue): string | undefined {
  const raw = headers[name];
  return raw === undefined || raw === null ? undefined : valueText(raw, name, last);
}

function valueText(raw: Buffer | string | (Buffer | string)[], name: string, last: LastValue | undefined): string {
  if (typeof raw === 'string') return raw;
  if (Array.isArray(raw)) {
    if (raw.length !== 1) {
      throw new UndecodableMessageError(ADAPTER_NAME, `header "${name}" appears ${raw.length} times`);
    }
    return valueText(raw[0] as Buffer | string, name, last);
  }
  return last === undefined ? bufferText(raw, name) : last.text(raw, name);
}

function bufferText(raw: Buffer, name: string): string {
  // Fast path: a plain UTF-8 slice is cheap; only text with a replacement character needs the strict check.
  const fast = raw.toString();
  if (fast.indexOf('\uFFFD') === -1) return fast;
  try {
    return utf8.decode(raw);
  } catch (cause) {
    throw new UndecodableMessageError(ADAPTER_NAME, `header "${name}" is not valid UTF-8`, { cause });
  }
}

/**
 * Decodes a consumed record; one that cannot be read as a CloudEvent (no `ce_` headers, bad header
 * bytes, a bad structured body) becomes `{ ok: false }` (dead-lettered as undecodable). The
 * attributes' values are checked by the core's `decodeEvent`, as for the other adapters.
 */
export function decode(record: IncomingRecord): Decoded {
  try {
    return { ok: true, message: decodeRecord(record) };
  } catch (error) {
    const wrapped =
      error instanceof UndecodableMessageError
        ? error
        : new UndecodableMessageError(
            ADAPTER_NAME,
            `record ${record.topic}/${record.partition}@${record.offset} is not a CloudEvent: ${describeError(error).message}`,
            { cause: error },
          );
    return { ok: false, error: wrapped };
  }
}

function decodeRecord(record: IncomingRecord): WireMessage {
  const { headers } = record;
  const contentType = headerText(headers, CONTENT_TYPE, CONTENT_TYPES);
  const body = record.value ?? EMPTY;
  let message: WireMessage;
  if (isStructured(contentType)) {
    message = decodeStructured(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
  } else {
    const attributes: Record<string, string> = {};
    // One pass over the headers, with constant names for the usual attributes: this runs per record.
    for (const name in headers) {
      const raw = headers[name];
      if (raw === undefined || raw === null) continue;
      const known = KNOWN_HEADERS.get(name);
      if (known !== undefined) attributes[known.attribute] = valueText(raw, name, known.last);
      else if (name.startsWith(CE_PREFIX)) attributes[name.slice(CE_PREFIX.length)] = valueText(raw, name, undefined);
    }
    if (attributes.specversion === undefined && attributes.id === undefined) {
      throw new UndecodableMessageError(
        ADAPTER_NAME,
        `record ${record.topic}/${record.partition}@${record.offset} has no ce_specversion or ce_id header and is not in structured mode (content-type ${contentType ?? 'missing'}): not a CloudEvent`,
      );
    }
    // The binding maps datacontenttype to content-type; ce_datacontenttype (the SDK writes both) loses.
    if (contentType !== undefined) attributes.datacontenttype = contentType;
    message = { attributes, body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength) };
  }
  // The binding's key mapping: a keyed record whose event names no partitionkey carries it in the key.
  if (message.attributes.partitionkey === undefined && record.key !== null && record.key.length > 0) {
    let key: string | undefined;
    try {
      key = utf8.decode(record.key);
    } catch {
      key = undefined; // a binary key is not a partition key attribute; the event stands without it
    }
    if (key !== undefined) message = { attributes: { ...message.attributes, partitionkey: key }, body: message.body };
  }
  // The attributes are checked by the core's decodeEvent (on consume and on listing dead letters),
  // which dead-letters a bad one as undecodable: checking here too did the work twice per record.
  return message;
}

/** Header values copied verbatim (dead letters keep what arrived, foreign headers included). */
export function copyHeaders(
  headers: IncomingHeaders,
  drop: (name: string) => boolean,
): Record<string, Buffer | string | (Buffer | string)[]> {
  const out: Record<string, Buffer | string | (Buffer | string)[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || value === null || drop(name)) continue;
    out[name] = value; // repeated headers stay repeated
  }
  return out;
}
