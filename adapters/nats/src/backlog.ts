import { type ConsumerInfo, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { type GroupBacklog, TopologyError, UnknownGroupError } from '@wharf/core';
import { isStreamNotFound } from './errors.js';
import { ADAPTER_NAME } from './options.js';
import { retrying } from './transient.js';

/** The JetStream API error code for a consumer that does not exist. */
export const CONSUMER_NOT_FOUND = 10014;

/**
 * A group's backlog from the JetStream API (consumer info and stream info; nothing is created):
 * - `ready`: the durable consumer's `num_pending` (stored, not yet delivered to the group);
 * - `inFlight`: the consumer's `num_ack_pending` (delivered, not yet acked or terminated). A message
 *   `nak`ed with a delay (a retry) stays ack-pending on the server until it is redelivered, and the
 *   server gives no separate count (`num_redelivered` counts only messages already redelivered), so
 *   events waiting out a retry delay are counted here;
 * - `delayed`: always 0, for the reason above;
 * - `deadLetters`: messages on the group's subject of the channel's dead-letter stream;
 * - `consumers`: not given — a pull consumer has no membership the server counts.
 */
export async function readBacklog(
  jsm: JetStreamManager,
  names: { stream: string; dlqStream: string },
  durable: string,
  dlqSubject: string,
  channel: string,
  group: string,
): Promise<GroupBacklog> {
  let info: ConsumerInfo;
  try {
    info = await retrying(() => jsm.consumers.info(names.stream, durable));
  } catch (error) {
    if (isStreamNotFound(error) || (error instanceof JetStreamApiError && error.code === CONSUMER_NOT_FOUND)) {
      throw new UnknownGroupError(
        ADAPTER_NAME,
        channel,
        group,
        `no durable consumer ${durable} on stream ${names.stream}`,
      );
    }
    throw new TopologyError(
      ADAPTER_NAME,
      `cannot read consumer ${durable} on ${names.stream}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  let deadLetters = 0;
  try {
    const dlq = await retrying(() => jsm.streams.info(names.dlqStream, { subjects_filter: dlqSubject }));
    deadLetters = dlq.state.subjects?.[dlqSubject] ?? 0;
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
  }
  return {
    ready: info.num_pending,
    inFlight: info.num_ack_pending,
    delayed: 0,
    deadLetters,
  };
}
