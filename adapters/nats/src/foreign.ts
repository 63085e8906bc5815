import { jetstream } from '@nats-io/jetstream';
import { type NatsConnection, headers as natsHeaders } from '@nats-io/transport-node';
import { CONTENT_TYPE } from './codec.js';
import { resolveOptions } from './options.js';
import { channelNames } from './topology.js';

/** A message as a non-Wharf producer sends it. */
export interface ForeignNatsMessage {
  readonly body: Uint8Array;
  readonly headers?: Readonly<Record<string, string>>;
  readonly contentType?: string;
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
  const { subject } = channelNames(resolveOptions(url, {}), channel);
  const h = natsHeaders();
  for (const [name, value] of Object.entries(message.headers ?? {})) h.set(name, value);
  if (message.contentType !== undefined) h.set(CONTENT_TYPE, message.contentType);
  await jetstream(nc).publish(subject, message.body, { headers: h });
}
