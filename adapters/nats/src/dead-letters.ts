import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { type MsgHdrs, headers as natsHeaders } from '@nats-io/transport-node';
import { type DeadLetterInfo, DeadLetterWriteError, deadLetterHeaders, type StoredDeadLetter } from '@wharf/core';
import { decodeMessage, headerRecord } from './codec.js';
import { isTransient, publishError } from './errors.js';
import { ADAPTER_NAME } from './options.js';

const DL_PREFIX = 'wharf-dl-';

/**
 * Writes a dead letter: the original payload and headers (`ce-*`, `content-type`, foreign ones) plus the
 * `wharf-dl-*` metadata, to the group's subject in the channel's dead-letter stream. Resolves on the PubAck.
 * `msgId` deduplicates a second write of the same delivery (when the following term was lost).
 */
export async function writeDeadLetter(
  js: JetStreamClient,
  input: {
    subject: string;
    stream: string;
    headers: MsgHdrs | undefined;
    body: Uint8Array;
    info: DeadLetterInfo;
    msgId: string;
    timeoutMs: number;
  },
): Promise<void> {
  const h = natsHeaders();
  if (input.headers) {
    for (const key of input.headers.keys()) {
      // Server-interpreted headers (Nats-Msg-Id, Nats-Expected-*…) must not act on the dead-letter stream.
      if (key.toLowerCase().startsWith('nats-')) continue;
      for (const value of input.headers.values(key)) h.append(key, value);
    }
  }
  for (const [name, value] of Object.entries(deadLetterHeaders(input.info))) h.set(name, value);
  h.set('Nats-Msg-Id', input.msgId);
  try {
    await js.publish(input.subject, input.body, { headers: h, timeout: input.timeoutMs });
  } catch (error) {
    const mapped = publishError(error, input.subject, input.stream, input.timeoutMs);
    throw new DeadLetterWriteError(ADAPTER_NAME, `the dead-letter write was not confirmed: ${mapped.message}`, {
      cause: error,
    });
  }
}

/**
 * Visits a group's dead letters oldest first, by direct get on the dead-letter stream (next message on the
 * group's subject after the last one seen); deletes one only when `visit` resolves `true`.
 */
export async function readDeadLetters(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
  limit: number,
  visit: (deadLetter: StoredDeadLetter) => Promise<boolean>,
): Promise<void> {
  let seq = 1;
  for (let seen = 0; seen < limit; seen++) {
    const from = seq;
    const stored = await retrying(() => jsm.direct.getMessage(stream, { seq: from, next_by_subj: subject }));
    if (!stored) return;
    const all = headerRecord(stored.header);
    const dl: Record<string, string> = {};
    for (const [name, value] of Object.entries(all)) if (name.startsWith(DL_PREFIX)) dl[name] = value;
    const remove = await visit({
      decoded: decodeMessage(withoutDeadLetterHeaders(stored.header), stored.data),
      headers: dl,
    });
    if (remove) await retrying(() => jsm.streams.deleteMessage(stream, stored.seq, false));
    seq = stored.seq + 1;
  }
}

function withoutDeadLetterHeaders(h: MsgHdrs | undefined): MsgHdrs | undefined {
  if (!h) return h;
  const out = natsHeaders();
  for (const key of h.keys()) {
    if (key.toLowerCase().startsWith(DL_PREFIX)) continue;
    for (const value of h.values(key)) out.append(key, value);
  }
  return out;
}

/** Delays between tries of a dead-letter read: about 5 s in all, enough for a server restart to finish. */
const READ_BACKOFF_MS = [250, 500, 1_000, 1_500, 2_000];

/**
 * One request of a dead-letter read, tried again on a transient failure (issue 13: a saga's dead-letter listing
 * aborted with "timeout" while the server restarted). Reads and deletes by sequence are idempotent.
 */
export async function retrying<T>(request: () => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await request();
    } catch (error) {
      const wait = READ_BACKOFF_MS[n];
      if (wait === undefined || !isTransient(error)) throw error;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
