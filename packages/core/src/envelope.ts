import { randomUUID } from 'node:crypto';
import { InvalidEventError } from './errors.js';

/**
 * A CloudEvents 1.0 event as a handler sees it: context attributes plus decoded `data`.
 * Extensions are flat string attributes, as in the CloudEvents JSON format.
 */
export interface CloudEvent<T = unknown> {
  readonly specversion: '1.0';
  readonly id: string;
  readonly source: string;
  /** The AsyncAPI message name, e.g. `OrderPlaced`. */
  readonly type: string;
  readonly time?: string;
  readonly datacontenttype?: string;
  readonly dataschema?: string;
  readonly subject?: string;
  /** Extension: events with the same key keep their order where the broker can. */
  readonly partitionkey?: string;
  /** Extension (distributed tracing): W3C trace context of the starting trace. */
  readonly traceparent?: string;
  readonly tracestate?: string;
  /** Extension: ties every event of one business transaction together. */
  readonly correlationid?: string;
  /** Extension: the id of the event that caused this one. */
  readonly causationid?: string;
  /** Extension on a request (`bus.request`): the channel its reply goes to. */
  readonly replyto?: string;
  /** Extension on a reply: the id of the request it answers. */
  readonly inreplyto?: string;
  /** Extension set on an event replayed from a dead-letter destination: the time of the replay. */
  readonly replayed?: string;
  readonly data?: T;
  readonly [extension: string]: unknown;
}

/** What a publisher gives: `type` and `data`; everything else has a default. */
export interface EventInput<T = unknown> {
  type: string;
  data?: T;
  id?: string;
  source?: string;
  time?: string;
  datacontenttype?: string;
  dataschema?: string;
  subject?: string;
  partitionkey?: string;
  traceparent?: string;
  tracestate?: string;
  correlationid?: string;
  causationid?: string;
  /** Further extension attributes; names must be lower-case letters and digits. */
  extensions?: Readonly<Record<string, string>>;
}

/**
 * An event as the adapters carry it: every context attribute as a string (including
 * `datacontenttype`), and the data already encoded. Adapters map `attributes` onto their
 * binding's headers and `body` onto the payload.
 */
export interface WireMessage {
  readonly attributes: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

const REQUIRED = ['id', 'source', 'type', 'specversion'] as const;
const ATTRIBUTE_NAME = /^[a-z0-9]{1,20}$/;
/** The context attributes the spec defines (with the JSON format's data members). */
const SPEC_ATTRIBUTES = [
  'specversion',
  'id',
  'source',
  'type',
  'time',
  'datacontenttype',
  'dataschema',
  'subject',
] as const;
/** Attributes the spec defines; anything else is an extension. */
const KNOWN = new Set<string>([...SPEC_ATTRIBUTES, 'data', 'data_base64']);

/**
 * The attribute names Wharf itself writes: the spec's context attributes and the extensions in
 * {@link CloudEvent}. Adapters map their header names onto these constants when decoding, so hot
 * decode paths neither slice a fresh string per header nor build objects of changing shapes.
 */
export const WELL_KNOWN_ATTRIBUTES: readonly string[] = Object.freeze([
  ...SPEC_ATTRIBUTES,
  'partitionkey',
  'traceparent',
  'tracestate',
  'correlationid',
  'causationid',
  'replayed',
]);

export const JSON_CONTENT_TYPE = 'application/json';
export const BINARY_CONTENT_TYPE = 'application/octet-stream';
export const STRUCTURED_CONTENT_TYPE = 'application/cloudevents+json';

const validNames = new Set<string>([...KNOWN].filter((name) => name !== 'data_base64'));
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
const EMPTY = new Uint8Array(0);

/** The last timestamp `createEvent` generated and the millisecond it stands for. */
let generatedMs = Number.NaN;
// Both start as a timestamp that parses, never '' (which must still be rejected).
let generatedTime = '1970-01-01T00:00:00.000Z';
/** The last `time` attribute that parsed; events arriving in the same millisecond share it. */
let parsedTime = generatedTime;

/** `new Date().toISOString()`, formatted once per millisecond rather than once per event. */
function currentTime(): string {
  const now = Date.now();
  if (now !== generatedMs) {
    generatedMs = now;
    generatedTime = new Date(now).toISOString();
  }
  return generatedTime;
}

/**
 * A fresh event id. Node's `randomUUID()` builds its string from ~20 concatenated pieces, so each id
 * kept (by the memory broker's consumers, or by a caller holding the published event) weighed ~490
 * bytes instead of ~66. `toLowerCase()` returns one flat copy; a UUID is lower-case already.
 */
function newId(): string {
  return randomUUID().toLowerCase();
}

/** Builds a complete CloudEvent from input, filling `id`, `time`, `specversion` and `source`. */
export function createEvent<T>(input: EventInput<T>, defaultSource: string): CloudEvent<T> {
  if (input === null || typeof input !== 'object') {
    throw new InvalidEventError(`an event must be an object with at least "type", got ${typeof input}`);
  }
  const event: Record<string, unknown> = {
    specversion: '1.0',
    id: input.id ?? newId(),
    source: input.source ?? defaultSource,
    time: input.time ?? currentTime(),
  };
  // for…in rather than spread and Object.entries: this runs for every published event.
  for (const name in input) {
    if (name === 'extensions' || name === 'data') continue;
    const value = input[name as keyof EventInput<T>];
    if (value !== undefined) event[name] = value;
  }
  const { extensions, data } = input;
  if (extensions) for (const name in extensions) event[name] = extensions[name];
  if (data !== undefined) {
    event.data = data;
    event.datacontenttype ??= data instanceof Uint8Array ? BINARY_CONTENT_TYPE : JSON_CONTENT_TYPE;
  }
  validateEvent(event);
  return event as CloudEvent<T>;
}

/** Checks the required attributes and the shape of every attribute; throws `InvalidEventError`. */
export function validateEvent(event: Record<string, unknown>): void {
  for (const name in event) {
    if (name !== 'data') checkAttribute(name, event[name]);
  }
  checkRequired(event);
}

/** One attribute's name and value (`undefined` stands for absent). */
function checkAttribute(name: string, value: unknown): void {
  if (!validNames.has(name)) {
    if (!ATTRIBUTE_NAME.test(name)) {
      throw new InvalidEventError(
        `attribute name "${name}" is invalid: CloudEvents names are 1-20 lower-case letters or digits`,
      );
    }
    // Names repeat from event to event; remembering valid ones keeps the regex off the hot path.
    if (validNames.size < 10_000) validNames.add(name);
  }
  if (value !== undefined && typeof value !== 'string') {
    throw new InvalidEventError(`attribute "${name}" must be a string, got ${typeof value}`);
  }
}

/** The required attributes, the spec version and the time's format. */
function checkRequired(event: Record<string, unknown>): void {
  for (const name of REQUIRED) {
    const value = event[name];
    if (typeof value !== 'string' || value.length === 0) {
      throw new InvalidEventError(`the event's "${name}" attribute is required and must be a non-empty string`);
    }
  }
  if (event.specversion !== '1.0') {
    throw new InvalidEventError(
      `specversion "${String(event.specversion)}" is not supported; Wharf speaks CloudEvents 1.0`,
    );
  }
  const time = event.time;
  // Date.parse gives the same answer for the same string: skip it for the time that parsed last
  // and for the one this process just generated.
  if (typeof time === 'string' && time !== parsedTime && time !== generatedTime) {
    if (Number.isNaN(Date.parse(time))) {
      throw new InvalidEventError(`attribute "time" must be an RFC 3339 timestamp, got "${time}"`);
    }
    parsedTime = time;
  }
}

type DataKind = 'json' | 'text' | 'binary';

/** What each content type seen so far decodes as: parsing it again per event was a hot-path cost. */
const dataKinds = new Map<string, DataKind>();

function dataKind(contentType: string | undefined): DataKind {
  if (contentType === undefined) return 'json';
  let kind = dataKinds.get(contentType);
  if (kind === undefined) {
    kind = checkJson(contentType) ? 'json' : contentType.toLowerCase().startsWith('text/') ? 'text' : 'binary';
    if (dataKinds.size < 1_000) dataKinds.set(contentType, kind);
  }
  return kind;
}

function isJson(contentType: string | undefined): boolean {
  return dataKind(contentType) === 'json';
}

function checkJson(contentType: string): boolean {
  const base = contentType.split(';', 1)[0]?.trim().toLowerCase() ?? '';
  return base === JSON_CONTENT_TYPE || base.endsWith('+json') || base === 'text/json';
}

/** Encodes an event for the wire (binary content mode). Throws `InvalidEventError` if data cannot be serialised. */
export function encodeEvent(event: CloudEvent): WireMessage {
  const attributes: Record<string, string> = {};
  for (const name in event) {
    const value = event[name];
    if (name !== 'data' && typeof value === 'string') attributes[name] = value;
  }
  return { attributes, body: encodeData(event.data, event.datacontenttype) };
}

function encodeData(data: unknown, contentType: string | undefined): Uint8Array {
  if (data === undefined) return EMPTY;
  if (data instanceof Uint8Array) return data;
  if (typeof data === 'string' && !isJson(contentType)) return utf8Bytes(data);
  if (!isJson(contentType)) {
    throw new InvalidEventError(
      `data for content type "${contentType}" must be a Uint8Array or a string; serialise it first or use application/json`,
    );
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(data);
  } catch (cause) {
    throw new InvalidEventError(`the event's data cannot be serialised as JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
  if (text === undefined) {
    throw new InvalidEventError(`the event's data (${typeof data}) cannot be serialised as JSON`);
  }
  return utf8Bytes(text);
}

/**
 * UTF-8 bytes of a string. Buffer.from takes small ones from Node's shared pool, where
 * TextEncoder.encode allocates an ArrayBuffer per call (several times slower for event-sized data).
 */
function utf8Bytes(text: string): Uint8Array {
  return Buffer.from(text, 'utf8');
}

/**
 * Decodes a wire message into a CloudEvent, validating attributes and parsing data by content type.
 * Throws `InvalidEventError` when it is not a valid CloudEvent (the consumer dead-letters it as `undecodable`).
 */
export function decodeEvent(message: WireMessage): CloudEvent {
  const { attributes } = message;
  // One pass copies and checks; `data` comes from the body, never from an attribute of that name.
  const event: Record<string, unknown> = {};
  for (const name in attributes) {
    if (name === 'data') continue;
    const value = attributes[name];
    checkAttribute(name, value);
    event[name] = value;
  }
  checkRequired(event);
  if (message.body.length > 0) event.data = decodeData(message.body, attributes.datacontenttype);
  return event as unknown as CloudEvent;
}

function decodeData(body: Uint8Array, contentType: string | undefined): unknown {
  const kind = dataKind(contentType);
  if (kind === 'json') {
    try {
      return JSON.parse(decoder.decode(body));
    } catch (cause) {
      throw new InvalidEventError(`the body is not valid JSON for content type ${contentType ?? '(none)'}`, { cause });
    }
  }
  if (kind === 'text') {
    try {
      return decoder.decode(body);
    } catch (cause) {
      throw new InvalidEventError(`the body is not valid UTF-8 for content type ${contentType}`, { cause });
    }
  }
  return body;
}

/** True when a content type announces the CloudEvents structured JSON format. */
export function isStructured(contentType: string | undefined): boolean {
  return contentType?.toLowerCase().startsWith(STRUCTURED_CONTENT_TYPE) ?? false;
}

/**
 * Parses a structured-mode body (`application/cloudevents+json`) into a wire message, so foreign
 * producers using the official CloudEvents SDKs interoperate. Throws `InvalidEventError`.
 */
export function decodeStructured(body: Uint8Array): WireMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(body));
  } catch (cause) {
    throw new InvalidEventError('a structured CloudEvent body is not valid JSON', { cause });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new InvalidEventError('a structured CloudEvent must be a JSON object');
  }
  const { data, data_base64: dataBase64, ...rest } = parsed as Record<string, unknown>;
  const attributes: Record<string, string> = {};
  for (const [name, value] of Object.entries(rest)) {
    if (value === null || value === undefined) continue;
    // Structured JSON may carry extension values as numbers or booleans; the binding maps them to strings.
    attributes[name] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  validateEvent(attributes);
  let out: Uint8Array = EMPTY;
  if (typeof dataBase64 === 'string') out = Buffer.from(dataBase64, 'base64');
  else if (data !== undefined) {
    if (typeof data === 'string' && !isJson(attributes.datacontenttype)) out = encoder.encode(data);
    else {
      out = encoder.encode(JSON.stringify(data));
      attributes.datacontenttype ??= JSON_CONTENT_TYPE;
    }
  }
  return { attributes, body: out };
}

/** Encodes an event in structured mode (for interop and tests). */
export function encodeStructured(event: CloudEvent): Uint8Array {
  const { data, ...attrs } = event;
  const out: Record<string, unknown> = { ...attrs };
  if (data instanceof Uint8Array) out.data_base64 = Buffer.from(data).toString('base64');
  else if (data !== undefined) out.data = data;
  return encoder.encode(JSON.stringify(out));
}

/** Attribute names defined by the spec (not extensions). */
export function isSpecAttribute(name: string): boolean {
  return KNOWN.has(name);
}
