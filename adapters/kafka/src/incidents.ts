/** How the consumer side reports an event (or records) leaving the normal path: never silently. */
import { type IncidentKind, incidentSink, type Logger, type SubscribeRequest } from '@wharf/core';
import type { IncomingRecord } from './client.js';
import { decode } from './codec.js';
import { ADAPTER_NAME } from './options.js';

export interface ReportExtra {
  /** The record concerned: its topic, partition, offset and (when it decodes) event id are named. */
  readonly record?: IncomingRecord;
  readonly details?: Record<string, unknown>;
  readonly error?: unknown;
}

export type Reporter = (kind: IncidentKind, message: string, extra?: ReportExtra) => void;

/** A reporter for one subscription: the bus's incident sink, or the logger without a bus. */
export function reporter(request: SubscribeRequest, logger: Logger, consumerGroup: string): Reporter {
  const sink = incidentSink(request, logger);
  return (kind, message, extra = {}) => {
    const { record } = extra;
    sink({
      kind,
      component: ADAPTER_NAME,
      channel: request.channel,
      group: request.group,
      eventId: record === undefined ? undefined : eventIdOf(record),
      message,
      details: {
        consumerGroup,
        ...(record === undefined ? {} : { topic: record.topic, partition: record.partition, offset: record.offset }),
        ...extra.details,
      },
      ...(extra.error === undefined ? {} : { error: extra.error }),
    });
  };
}

function eventIdOf(record: IncomingRecord): string | undefined {
  try {
    const decoded = decode(record);
    return decoded.ok ? decoded.message.attributes.id : undefined;
  } catch {
    return undefined;
  }
}
