import type { Attributes } from '@opentelemetry/api';
import type { CloudEvent } from '@wharf/core';

/** Attribute names: the OpenTelemetry messaging and CloudEvents conventions, then Wharf's own. */
export const ATTR = {
  system: 'messaging.system',
  destination: 'messaging.destination.name',
  group: 'messaging.consumer.group.name',
  messageId: 'messaging.message.id',
  operationName: 'messaging.operation.name',
  operationType: 'messaging.operation.type',
  batchCount: 'messaging.batch.message_count',
  eventId: 'cloudevents.event_id',
  eventType: 'cloudevents.event_type',
  eventSource: 'cloudevents.event_source',
  eventSubject: 'cloudevents.event_subject',
  errorType: 'error.type',
  attempt: 'wharf.attempt',
  maxAttempts: 'wharf.max_attempts',
  outcome: 'wharf.outcome',
  reason: 'wharf.dead_letter.reason',
  retryDelay: 'wharf.retry.delay_ms',
  replay: 'wharf.replay',
} as const;

/** Span event names. */
export const EVENT = {
  retry: 'wharf.retry',
  deadLetter: 'wharf.dead_letter',
} as const;

/** Adds the attributes every span about `event` carries to `attributes` (never the payload). */
export function withEventAttributes(attributes: Attributes, event: CloudEvent): Attributes {
  attributes[ATTR.messageId] = event.id;
  attributes[ATTR.eventId] = event.id;
  attributes[ATTR.eventType] = event.type;
  attributes[ATTR.eventSource] = event.source;
  if (event.subject !== undefined) attributes[ATTR.eventSubject] = event.subject;
  return attributes;
}

/** The error's class name, or `_OTHER` for a thrown value that is not an Error. */
export function errorType(error: unknown): string {
  if (!(error instanceof Error)) return '_OTHER';
  const name = error.constructor?.name;
  return typeof name === 'string' && name !== '' ? name : '_OTHER';
}
