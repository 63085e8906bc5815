import type { Logger } from './logger.js';

/**
 * What kind of departure from the normal path (ack, retry, dead letter) an incident reports.
 * - `settle-failed`: an ack, release or retry could not be applied; the broker redelivers.
 * - `dead-letter-failed`: the dead-letter write failed; the event was released for redelivery.
 * - `max-deliveries`: the broker's own delivery cap was reached without a confirmed dead letter.
 * - `removed`: the broker removed an unsettled event (retention, limits) before it was settled.
 * - `stalled`: a consumer stopped receiving and was restarted.
 * - `other`: anything else an adapter must not keep quiet.
 */
export type IncidentKind = 'settle-failed' | 'dead-letter-failed' | 'max-deliveries' | 'removed' | 'stalled' | 'other';

/**
 * An event left the normal path, or may have. The bus logs every incident as an error naming the
 * channel, group and event id, counts it in `stats().incidents`, and hands it to the observer.
 * An event is never stuck without one.
 */
export interface Incident {
  readonly kind: IncidentKind;
  /** The adapter or component that saw it (`core`, `nats`, …). */
  readonly component: string;
  readonly channel: string;
  readonly group: string;
  /** The CloudEvent id, where known (a broker advisory may only carry a sequence). */
  readonly eventId?: string | undefined;
  /** What happened and what was done about it, for a person. */
  readonly message: string;
  /** Broker-specific identifiers (stream sequence, offset, delivery tag). */
  readonly details?: Readonly<Record<string, unknown>>;
  readonly error?: unknown;
}

/** Where adapters report incidents; given to every adapter factory by the bus as `AdapterInit.incident`. */
export type IncidentSink = (incident: Incident) => void;

/** Logs an incident as one error line with its channel, group and event id. */
export function logIncident(logger: Logger, incident: Incident): void {
  const error = incident.error;
  logger.error(
    `[wharf] [${incident.component}] ${incident.kind} on ${incident.channel}/${incident.group}${
      incident.eventId === undefined ? '' : ` (event ${incident.eventId})`
    }: ${incident.message}`,
    {
      kind: incident.kind,
      channel: incident.channel,
      group: incident.group,
      ...(incident.eventId === undefined ? {} : { eventId: incident.eventId }),
      ...(incident.details ?? {}),
      ...(error === undefined ? {} : { error: error instanceof Error ? error.message : String(error) }),
    },
  );
}

/**
 * The sink an adapter should use for a subscription: the bus's, or, when a test calls the adapter
 * directly, one that logs through the adapter's logger.
 */
export function incidentSink(request: { readonly incident?: IncidentSink | undefined }, logger: Logger): IncidentSink {
  return request.incident ?? ((incident) => logIncident(logger, incident));
}
