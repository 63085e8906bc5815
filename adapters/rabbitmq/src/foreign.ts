import { randomBytes } from 'node:crypto';
import type { LegacyProducer } from '@wharf/core';
import type * as amqp from 'amqplib';
import { connectPlain } from './connection.js';
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
  /**
   * A producer as legacy amqplib/pika code is written: a durable queue of its own with a dead-letter
   * exchange, and persistent JSON through the default exchange with publisher confirms.
   */
  legacyProducer: () => LegacyProducer;
} {
  const withConnection = async <T>(work: (connection: amqp.ChannelModel) => Promise<T>): Promise<T> => {
    const connection = await connectPlain(url, { prefix });
    try {
      return await work(connection);
    } finally {
      await connection.close().catch(() => undefined);
    }
  };
  return {
    legacyProducer: () => legacyQueue(url, prefix),
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

function legacyQueue(url: string, prefix: string): LegacyProducer {
  const queue = `legacy-orders-${randomBytes(4).toString('hex')}`;
  let connection: amqp.ChannelModel | undefined;
  let ch: amqp.ConfirmChannel | undefined;
  return {
    queue,
    async declare() {
      connection = await connectPlain(url, { prefix });
      ch = await connection.createConfirmChannel();
      ch.on('error', () => undefined);
      await ch.assertQueue(queue, { durable: true, arguments: { 'x-dead-letter-exchange': `${queue}.dlx` } });
    },
    publish: (body, options = {}) =>
      new Promise<void>((resolve, reject) => {
        if (ch === undefined) throw new Error('declare() first');
        ch.sendToQueue(
          queue,
          Buffer.from(body),
          {
            persistent: true,
            contentType: 'application/json',
            ...(options.messageId !== undefined ? { messageId: options.messageId } : {}),
          },
          (error: unknown) => (error ? reject(error) : resolve()),
        );
      }),
    async close() {
      if (connection === undefined) return;
      const cleanup = await connection.createChannel().catch(() => undefined);
      await cleanup?.deleteQueue(queue).catch(() => undefined);
      await connection.close().catch(() => undefined);
    },
  };
}
