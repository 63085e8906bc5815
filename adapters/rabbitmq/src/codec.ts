import { type Decoded, decodeStructured, isStructured, UndecodableMessageError, type WireMessage } from '@wharf/core';
import type { Message, Options } from 'amqplib';
import { COMPONENT } from './errors.js';

/**
 * CloudEvents AMQP binding over AMQP 0-9-1. Binary content mode: every context attribute becomes an
 * application header `cloudEvents_<name>` (the binding's current prefix), except `datacontenttype`,
 * which is the `contentType` property; `messageId` carries the event id as well. On consume the older
 * `cloudEvents:` prefix and structured mode (`application/cloudevents+json`) are accepted too.
 */
export const HEADER_PREFIX = 'cloudEvents_';
const OLD_PREFIX = 'cloudEvents:';
const PREFIX_LENGTH = HEADER_PREFIX.length;

/** Prefixed header names, computed once per attribute name rather than once per message. */
const prefixed = new Map<string, string>();
function headerName(attribute: string): string {
  let name = prefixed.get(attribute);
  if (name === undefined) {
    name = HEADER_PREFIX + attribute;
    if (prefixed.size < 1024) prefixed.set(attribute, name);
  }
  return name;
}

/** Publish properties of a Wharf event: persistent, mandatory, binary-mode headers. */
export function encodeProperties(message: WireMessage): Options.Publish {
  const headers: Record<string, string> = {};
  const attributes = message.attributes;
  let contentType: string | undefined;
  for (const name in attributes) {
    const value = attributes[name] as string;
    if (name === 'datacontenttype') contentType = value;
    else headers[headerName(name)] = value;
  }
  return {
    persistent: true,
    mandatory: true,
    contentType,
    messageId: attributes.id,
    headers,
  };
}

/** The message body as a Buffer without copying. */
export function toBuffer(body: Uint8Array): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/** A header value as a string (foreign producers send byte arrays, numbers, booleans). */
export function headerString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value === undefined || value === null) return undefined;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value instanceof Date) return value.toISOString();
  // AMQP typed values as amqplib decodes some of them: { '!': type, value }.
  if (typeof value === 'object' && value !== null && 'value' in value)
    return headerString((value as { value: unknown }).value);
  return undefined;
}

/**
 * Decodes a delivered message into a wire message. Never throws: what is not a CloudEvent comes back
 * as `{ ok: false }` and is dead-lettered as `undecodable` by the core.
 */
export function decodeMessage(message: Message): Decoded {
  const { properties } = message;
  const contentType = typeof properties.contentType === 'string' ? properties.contentType : undefined;
  try {
    if (isStructured(contentType)) {
      return { ok: true, message: decodeStructured(message.content) };
    }
    const attributes: Record<string, string> = {};
    let found = false;
    const headers = properties.headers;
    if (headers) {
      for (const key in headers) {
        let name: string | undefined;
        if (key.startsWith(HEADER_PREFIX)) name = key.slice(PREFIX_LENGTH);
        else if (key.startsWith(OLD_PREFIX)) name = key.slice(PREFIX_LENGTH);
        else continue;
        const value = headerString(headers[key]);
        if (value === undefined || name === '') continue;
        attributes[name.toLowerCase()] = value;
        found = true;
      }
    }
    if (!found) {
      return {
        ok: false,
        error: new UndecodableMessageError(
          COMPONENT,
          `the message${properties.messageId ? ` ${String(properties.messageId)}` : ''} is not a CloudEvent: it has no ${HEADER_PREFIX}* headers and content type ${contentType ?? '(none)'} is not ${'application/cloudevents+json'}`,
        ),
      };
    }
    if (contentType !== undefined) attributes.datacontenttype = contentType;
    return { ok: true, message: { attributes, body: message.content } };
  } catch (error) {
    return {
      ok: false,
      error:
        error instanceof UndecodableMessageError
          ? error
          : new UndecodableMessageError(COMPONENT, (error as Error).message, { cause: error }),
    };
  }
}

/** Headers the broker owns (`x-death`, `x-first-death-*`, `x-delivery-count`…): never copied onto a republish. */
export function isBrokerHeader(name: string): boolean {
  return name.startsWith('x-');
}

/**
 * Properties for republishing a delivered message (retry, dead letter): everything the producer set,
 * persistent and mandatory, with the broker's own headers dropped and `extra` headers added.
 */
export function republishProperties(message: Message, extra: Record<string, string>): Options.Publish {
  const p = message.properties;
  const headers: Record<string, unknown> = {};
  if (p.headers) for (const key in p.headers) if (!isBrokerHeader(key)) headers[key] = p.headers[key];
  Object.assign(headers, extra);
  const out: Options.Publish = { persistent: true, mandatory: true, headers };
  if (p.contentType !== undefined) out.contentType = p.contentType;
  if (p.contentEncoding !== undefined) out.contentEncoding = p.contentEncoding;
  if (p.messageId !== undefined) out.messageId = p.messageId;
  if (p.correlationId !== undefined) out.correlationId = p.correlationId;
  if (p.replyTo !== undefined) out.replyTo = p.replyTo;
  if (p.timestamp !== undefined) out.timestamp = p.timestamp;
  if (p.type !== undefined) out.type = p.type;
  if (p.appId !== undefined) out.appId = p.appId;
  if (p.priority !== undefined) out.priority = p.priority;
  return out;
}
