import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection, headers as natsHeaders } from '@nats-io/transport-node';
import type { LegacyProducer } from '@wharf/core';
import { CONTENT_TYPE } from './codec.js';
import { connectionOptions, type NatsAdapterOptions, resolveOptions } from './options.js';
import { channelNames } from './topology.js';

/** A message as a non-Wharf producer sends it. */
export interface ForeignNatsMessage {
  readonly body: Uint8Array;
  readonly headers?: Readonly<Record<string, string>>;
  readonly contentType?: string;
}

/** What `wharf conformance` needs beyond the adapter (see {@link conformanceHarness}). */
export interface NatsConformanceHarness {
  /** Publishes to a channel's subject with plain nats.js JetStream, as a foreign producer would. */
  publishForeign(channel: string, message: ForeignNatsMessage): Promise<void>;
  /** Deletes the channel's stream (its group consumers go with it) and its dead-letter stream. */
  cleanup(channel: string, groups?: readonly string[]): Promise<void>;
  /**
   * A producer as legacy nats.js code is written: a file stream of its own on its own subject, and JSON
   * published with JetStream, the message id as `Nats-Msg-Id`.
   */
  legacyProducer(): LegacyProducer;
  /** Conformance cases JetStream cannot pass, with the reason. */
  readonly skip: readonly { readonly reason: string; readonly tests: readonly string[] }[];
}

/** Conformance cases JetStream cannot pass, with the reason (the adapter's tests and `wharf conformance` use them). */
export const CONFORMANCE_SKIPS: NatsConformanceHarness['skip'] = [
  {
    reason:
      'JetStream keeps a message nak-ed with a delay ack-pending and has no count of its own for it: backlog() reports it in inFlight (test/backlog.test.ts)',
    tests: ['backlog-delayed'],
  },
];

async function send(nc: NatsConnection, subject: string, message: ForeignNatsMessage): Promise<void> {
  const h = natsHeaders();
  for (const [name, value] of Object.entries(message.headers ?? {})) h.set(name, value);
  if (message.contentType !== undefined) h.set(CONTENT_TYPE, message.contentType);
  await jetstream(nc).publish(subject, message.body, { headers: h });
}

/**
 * Publishes with plain nats.js JetStream to a channel's subject, as a foreign producer would (for interop
 * and the conformance suite's undecodable/structured cases). The channel must have been declared.
 */
export async function publishForeign(
  nc: NatsConnection,
  channel: string,
  message: ForeignNatsMessage,
  url = 'nats://127.0.0.1:4222',
): Promise<void> {
  await send(nc, channelNames(resolveOptions(url, {}), channel).subject, message);
}

/**
 * What the conformance suite needs beyond the adapter, with plain nats.js: a foreign producer for the
 * undecodable and structured-mode cases, and the deletion of what a case declared. Stream and subject
 * names come from the same options as the adapter's (`subjectPrefix`, `streamPrefix`, credentials, TLS).
 * `wharf conformance --broker nats://…` picks it up; the adapter's own tests use it too. Each call opens
 * and closes its own connection, so there is nothing to close.
 */
export function conformanceHarness(url: string, options: NatsAdapterOptions = {}): NatsConformanceHarness {
  const o = resolveOptions(url, options);
  const withConnection = async <T>(work: (nc: NatsConnection) => Promise<T>): Promise<T> => {
    const nc = await connect({ ...connectionOptions(o), name: `${o.name}-harness`, maxReconnectAttempts: 0 });
    try {
      return await work(nc);
    } finally {
      await nc.close().catch(() => undefined);
    }
  };
  const connectOptions = { ...connectionOptions(o), name: `${o.name}-legacy`, maxReconnectAttempts: 0 };
  return {
    skip: CONFORMANCE_SKIPS,
    legacyProducer: () => legacyStream(() => connect(connectOptions)),
    publishForeign: (channel, message) => withConnection((nc) => send(nc, channelNames(o, channel).subject, message)),
    cleanup: (channel) =>
      withConnection(async (nc) => {
        const names = channelNames(o, channel);
        const jsm = await jetstreamManager(nc);
        await jsm.streams.delete(names.stream).catch(() => undefined);
        await jsm.streams.delete(names.dlqStream).catch(() => undefined);
      }),
  };
}

function legacyStream(open: () => Promise<NatsConnection>): LegacyProducer {
  const id = randomBytes(4).toString('hex');
  const stream = `LEGACY_ORDERS_${id}`;
  const subject = `legacy-${id}.orders.placed`;
  let nc: NatsConnection | undefined;
  return {
    queue: subject,
    async declare() {
      nc = await open();
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({
        name: stream,
        subjects: [subject],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        max_msgs: 10_000,
      });
    },
    async publish(body, options = {}) {
      if (nc === undefined) throw new Error('declare() first');
      await jetstream(nc).publish(subject, body, options.messageId === undefined ? {} : { msgID: options.messageId });
    },
    async close() {
      if (nc === undefined) return;
      const jsm = await jetstreamManager(nc).catch(() => undefined);
      await jsm?.streams.delete(stream).catch(() => undefined);
      await nc.close().catch(() => undefined);
    },
  };
}
