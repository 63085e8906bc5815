import { isDeepStrictEqual } from 'node:util';
import type { JetStreamClient, JetStreamManager, StreamConfig } from '@nats-io/jetstream';
import { type Msg, type MsgHdrs, headers as natsHeaders } from '@nats-io/transport-node';
import {
  type Decoded,
  PublishError,
  RAW_QUEUE_HEADER,
  type RawSubscribeOptions,
  TopologyMismatchError,
  type WireMessage,
  wrapPlainMessage,
} from '@wharf/core';
import { encodeHeaders } from './codec.js';
import { isNoResponders, isStreamNotFound, publishError } from './errors.js';
import { ADAPTER_NAME } from './options.js';
import { retrying } from './transient.js';

/**
 * Raw mode on NATS JetStream (see README, "Plain messages on existing streams"). A raw subscription
 * consumes a subject that another producer's stream holds; Wharf finds that stream by subject and
 * adopts it as it is: it never creates, updates or purges it. Only the group's durable consumer (filtered
 * to the subject) is created on it; retries are naks with a delay as usual, dead letters go to the
 * channel's own dead-letter stream.
 */

const MSG_ID = 'Nats-Msg-Id';
/**
 * On a replayed raw message: the event id, when `Nats-Msg-Id` cannot be it. The producer's stream drops
 * a second `Nats-Msg-Id` within its duplicate window, so a replay (soon after the original, typically)
 * gets a replay-unique one and names its event here.
 */
export const RAW_ID_HEADER = 'Wharf-Raw-Id';
const CONTENT_TYPE = 'content-type';

/** The producer's stream that holds `subject`, checked against `args`; resolves with its name. */
export async function adoptStream(
  jsm: JetStreamManager,
  subject: string,
  args: Readonly<Record<string, unknown>> | undefined,
): Promise<string> {
  let stream: string;
  try {
    stream = await retrying(() => jsm.streams.find(subject));
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
    throw new TopologyMismatchError(
      ADAPTER_NAME,
      subject,
      `raw mode adopts the existing stream that holds subject "${subject}", but no stream holds it — start the producer that creates its stream first (nats stream ls), or name the right subject in raw.queue`,
      { cause: error },
    );
  }
  if (args === undefined) return stream;
  const config = (await retrying(() => jsm.streams.info(stream))).config as StreamConfig & Record<string, unknown>;
  const differing = Object.entries(args).filter(([name, wanted]) => !isDeepStrictEqual(config[name], wanted));
  if (differing.length > 0) {
    const found = Object.fromEntries(differing.map(([name]) => [name, config[name]]));
    throw new TopologyMismatchError(
      ADAPTER_NAME,
      subject,
      `the existing stream ${stream} that holds "${subject}" has other arguments than raw.arguments: it has ${JSON.stringify(found)} where raw.arguments says ${JSON.stringify(Object.fromEntries(differing))} — Wharf changed nothing; fix raw.arguments to match the stream's config (nats stream info ${stream}), or omit them to adopt it as it is`,
    );
  }
  return stream;
}

/**
 * A delivered plain message as an event: the id is the producer's `Nats-Msg-Id` (else the content hash),
 * the time is when the stream stored it, the content type the producer's `content-type` header if any.
 */
export function decodePlain(
  raw: Pick<RawSubscribeOptions, 'type' | 'source'>,
  msg: Pick<Msg, 'data' | 'headers'>,
  storedNanos: string | undefined,
): Decoded {
  const h = msg.headers;
  const stored =
    storedNanos !== undefined && /^\d+$/.test(storedNanos) ? Number(BigInt(storedNanos) / 1_000_000n) : Number.NaN;
  return wrapPlainMessage(raw, {
    body: msg.data,
    // Header names are case-insensitive on the wire in practice (`Content-Type`, `content-type`).
    messageId: h?.get(RAW_ID_HEADER, 'insensitive') || h?.get(MSG_ID, 'insensitive') || undefined,
    contentType: h?.get(CONTENT_TYPE, 'insensitive') || undefined,
    time: Number.isFinite(stored) ? new Date(stored).toISOString() : undefined,
  });
}

/**
 * The headers a raw dead letter is stored with: the producer's own, then the wrapped event's `ce-*`, so
 * the dead letter reads back as the event that failed (`wharf dlq`, `bus.visitDeadLetters`) while its body
 * stays the producer's. `Nats-*` headers are dropped by the dead-letter write itself.
 */
export function deadLetterHeaders(original: MsgHdrs | undefined, decoded: Decoded, subject: string): MsgHdrs {
  const out = natsHeaders();
  if (original) for (const key of original.keys()) for (const value of original.values(key)) out.append(key, value);
  if (decoded.ok) {
    const event = encodeHeaders(decoded.message);
    for (const key of event.keys()) out.set(key, event.get(key));
  }
  out.set(RAW_QUEUE_HEADER, subject);
  return out;
}

/**
 * Publishes plain messages: the body alone, with the event id as `Nats-Msg-Id` (so the producer's
 * stream drops a second publish of the same event within its duplicate window), one PubAck each.
 * A replayed dead letter (it has the `replayed` attribute): the `Nats-Msg-Id` is the replay's own
 * (`<id> replayed <time>`, as for Wharf's own events) and the event id travels in `Wharf-Raw-Id`;
 * a duplicate PubAck (the stream stored nothing) fails.
 */
export async function publishPlain(
  js: JetStreamClient,
  subject: string,
  messages: readonly WireMessage[],
  timeoutMs: number,
): Promise<void> {
  await Promise.all(
    messages.map(async (message) => {
      const id = message.attributes.id;
      const replay = message.attributes.replayed !== undefined;
      let ack: { duplicate: boolean; stream: string };
      try {
        ack = await js.publish(subject, message.body, { timeout: timeoutMs, ...sendOptions(message, replay) });
      } catch (error) {
        if (isNoResponders(error)) {
          throw new PublishError(
            ADAPTER_NAME,
            `raw publish to subject "${subject}": no stream holds it, so it does not exist for JetStream — start the consumer's side that creates its stream first, or name the right subject in raw.queue`,
            { cause: error },
          );
        }
        throw publishError(error, subject, 'holding it', timeoutMs);
      }
      if (replay && ack.duplicate) {
        throw new PublishError(
          ADAPTER_NAME,
          `the replay of event ${id} to "${subject}" was dropped by stream ${ack.stream} as a duplicate: the stream still remembers the id within its duplicate_window — replay it once the window has passed`,
        );
      }
    }),
  );
}

function sendOptions(message: WireMessage, replay: boolean): { msgID?: string; headers?: MsgHdrs } {
  const { id, replayed } = message.attributes;
  if (!id) return {};
  if (!replay) return { msgID: id };
  const h = natsHeaders();
  h.set(RAW_ID_HEADER, id);
  return { msgID: `${id} replayed ${replayed}`, headers: h };
}
