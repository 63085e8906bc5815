import * as amqp from 'amqplib';
import { declaredQueueNames, exchangeName, groupNames } from './topology.js';

/** A message as a non-Wharf producer sends it. */
export interface ForeignAmqpMessage {
  readonly body: Uint8Array;
  readonly headers?: Readonly<Record<string, string>>;
  readonly contentType?: string;
}

/**
 * What the conformance suite needs beyond the adapter, with plain amqplib: a foreign producer for
 * the undecodable and structured-mode cases, and the deletion of what a case declared.
 * `wharf conformance --broker amqp://…` picks it up.
 */
export function conformanceHarness(
  url: string,
  prefix = 'wharf',
): {
  publishForeign: (channel: string, message: ForeignAmqpMessage) => Promise<void>;
  /**
   * Deletes the channel's exchange and its groups' queues. Retry tier queues are known only to the
   * process that declared them; pass the policy's delays when another process (a child) did.
   */
  cleanup: (channel: string, groups: readonly string[], retryDelaysMs?: readonly number[]) => Promise<void>;
} {
  const withConnection = async <T>(work: (connection: amqp.ChannelModel) => Promise<T>): Promise<T> => {
    const connection = await amqp.connect(url, { noDelay: true });
    try {
      return await work(connection);
    } finally {
      await connection.close().catch(() => undefined);
    }
  };
  return {
    publishForeign: (channel, message) =>
      withConnection(async (connection) => {
        const ch = await connection.createConfirmChannel();
        ch.on('error', () => undefined);
        await new Promise<void>((resolve, reject) => {
          ch.publish(
            exchangeName(prefix, channel),
            '',
            Buffer.from(message.body),
            {
              persistent: true,
              headers: { ...message.headers },
              ...(message.contentType !== undefined ? { contentType: message.contentType } : {}),
            },
            (error: unknown) => (error ? reject(error) : resolve()),
          );
        });
      }),
    cleanup: (channel, groups, retryDelaysMs = []) =>
      withConnection(async (connection) => {
        const names = new Set(declaredQueueNames(prefix, channel));
        for (const group of groups) {
          const g = groupNames(prefix, channel, group);
          names.add(g.queue);
          names.add(g.deadLetters);
          for (const delay of retryDelaysMs) if (delay > 0) names.add(g.tier(delay));
        }
        // A fresh channel per delete: a failed delete closes its channel.
        const each = async (work: (ch: amqp.Channel) => Promise<unknown>): Promise<void> => {
          const ch = await connection.createChannel();
          ch.on('error', () => undefined);
          await work(ch).catch(() => undefined);
          await ch.close().catch(() => undefined);
        };
        for (const name of names) await each((ch) => ch.deleteQueue(name));
        await each((ch) => ch.deleteExchange(exchangeName(prefix, channel)));
      }),
  };
}
