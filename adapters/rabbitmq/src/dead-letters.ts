import { ATTEMPT_HEADER, DEAD_LETTER_HEADERS, readAttempt, type StoredDeadLetter } from '@wharf/core';
import type { Channel, GetMessage } from 'amqplib';
import { decodeMessage, headerString } from './codec.js';
import { replyCode } from './errors.js';
import type { GroupNames } from './topology.js';

const DL_PREFIX = 'wharf-dl-';

/**
 * The `wharf-dl-*` headers of a dead letter. A message the broker dead-lettered by itself (the
 * group queue's `x-delivery-limit` crash-loop backstop) has none; its metadata is made up from `x-death`.
 */
export function storedHeaders(message: GetMessage, channel: string, group: string): Record<string, string> {
  const headers = message.properties.headers ?? {};
  const out: Record<string, string> = {};
  for (const key in headers) {
    if (!key.startsWith(DL_PREFIX)) continue;
    const value = headerString(headers[key]);
    if (value !== undefined) out[key] = value;
  }
  if (out[DEAD_LETTER_HEADERS.reason] !== undefined) return out;
  const death = Array.isArray(headers['x-death']) ? headers['x-death'][0] : undefined;
  const reason = headerString(headers['x-first-death-reason']) ?? headerString(death?.reason);
  if (reason === undefined) return out;
  const seconds = Number(headerString(death?.time) ?? Number.NaN);
  const at = Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : '';
  out[DEAD_LETTER_HEADERS.reason] = 'retries-exhausted';
  out[DEAD_LETTER_HEADERS.errorType] = reason === 'delivery_limit' ? 'CrashLoopError' : `broker-${reason}`;
  out[DEAD_LETTER_HEADERS.errorMessage] =
    reason === 'delivery_limit'
      ? 'RabbitMQ dead-lettered the event after x-delivery-limit deliveries without a settlement: consumers crashed or lost their connection while handling it (crash loop)'
      : `RabbitMQ dead-lettered the event (${reason})`;
  out[DEAD_LETTER_HEADERS.channel] = channel;
  out[DEAD_LETTER_HEADERS.group] = group;
  out[DEAD_LETTER_HEADERS.attempts] = String(readAttempt(headers[ATTEMPT_HEADER]));
  out[DEAD_LETTER_HEADERS.firstFailureAt] = at;
  out[DEAD_LETTER_HEADERS.lastFailureAt] = at;
  out[DEAD_LETTER_HEADERS.host] = '';
  return out;
}

/**
 * Visits up to `limit` dead letters, oldest first, with basic.get on a channel of its own. A dead
 * letter is acked (removed) only when `visit` resolves true; the others stay unacked until the end,
 * so one read never sees the same message twice, and then go back to the queue.
 */
export async function readDeadLetters(
  ch: Channel,
  names: GroupNames,
  channel: string,
  group: string,
  limit: number,
  visit: (deadLetter: StoredDeadLetter) => Promise<boolean>,
  answered: <T>(request: Promise<T>) => Promise<T> = (request) => request,
): Promise<void> {
  try {
    await answered(ch.checkQueue(names.deadLetters));
  } catch (error) {
    if (replyCode(error) === 404) return; // never declared: no dead letters
    throw error;
  }
  const kept: GetMessage[] = [];
  try {
    for (let n = 0; n < limit; n++) {
      const message = await answered(ch.get(names.deadLetters, { noAck: false }));
      if (message === false) break;
      let remove = false;
      try {
        remove = await visit({ decoded: decodeMessage(message), headers: storedHeaders(message, channel, group) });
      } finally {
        if (remove) ch.ack(message);
        else kept.push(message);
      }
    }
  } finally {
    for (const message of kept) {
      try {
        ch.reject(message, true);
      } catch {
        // The channel is gone: the broker took every unacked message back already.
      }
    }
  }
}
