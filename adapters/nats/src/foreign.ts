import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection, headers as natsHeaders } from '@nats-io/transport-node';
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
  return {
    skip: CONFORMANCE_SKIPS,
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
