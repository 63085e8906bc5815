import { type Decoded, TopologyMismatchError, type WireMessage, wrapPlainMessage } from '@wharf/core';
import type { ChannelModel, Message, Options } from 'amqplib';
import { headerString, toBuffer } from './codec.js';
import { COMPONENT, replyCode } from './errors.js';

/**
 * Raw mode on RabbitMQ (see README, "Plain messages on existing queues"). A raw subscription
 * consumes a queue some other producer declared; Wharf adopts it and never declares it with its own
 * arguments, so the producer's `x-dead-letter-exchange`, TTLs or queue type stay as they are.
 */

/**
 * Checks that `queue` exists (a passive declare) or, with `args`, declares it with exactly those
 * arguments (durable), which the broker refuses with 406 when the queue exists with others. Runs on
 * a channel of its own, closed afterwards either way: a refused declare closes its channel, and a
 * shared topology or consumer channel must not be the one that dies.
 */
export async function adoptQueue(
  model: ChannelModel,
  queue: string,
  args: Readonly<Record<string, unknown>> | undefined,
): Promise<void> {
  const ch = await model.createChannel();
  ch.on('error', () => undefined);
  try {
    if (args === undefined) await ch.checkQueue(queue);
    else await ch.assertQueue(queue, { durable: true, arguments: { ...args } });
  } catch (error) {
    throw adoptError(queue, args, error);
  } finally {
    await ch.close().catch(() => undefined);
  }
}

function adoptError(queue: string, args: Readonly<Record<string, unknown>> | undefined, error: unknown): Error {
  const code = replyCode(error);
  const detail = String((error as Error | undefined)?.message ?? error);
  if (code === 404) {
    return new TopologyMismatchError(
      COMPONENT,
      queue,
      `raw mode adopts the existing queue "${queue}", but it does not exist (${detail}) — start the producer that declares it first, or name the right queue in raw.queue`,
      { cause: error },
    );
  }
  if (code === 406) {
    return new TopologyMismatchError(
      COMPONENT,
      queue,
      `the existing queue "${queue}" has other arguments or durability than raw.arguments ${JSON.stringify(args)} (${detail}) — Wharf changed nothing; fix raw.arguments to match how the producer declares it, or omit them to adopt the queue as it is`,
      { cause: error },
    );
  }
  return error instanceof Error ? error : new Error(detail);
}

/** A delivered plain message as an event: the producer's message id, content type and timestamp carried over. */
export function decodePlain(raw: { type: string; source: string }, message: Message): Decoded {
  const p = message.properties;
  const timestamp = typeof p.timestamp === 'number' && Number.isFinite(p.timestamp) ? p.timestamp : undefined;
  return wrapPlainMessage(raw, {
    body: message.content,
    messageId: headerString(p.messageId),
    contentType: typeof p.contentType === 'string' ? p.contentType : undefined,
    // AMQP timestamps are seconds since the epoch.
    time: timestamp === undefined ? undefined : new Date(timestamp * 1000).toISOString(),
  });
}

/**
 * What a raw publish sends: the body alone, persistent, with the content type and the event id as
 * the message id, and no headers, which is what a consumer written for the legacy producer reads.
 */
export function plainPublish(message: WireMessage): { content: Buffer; options: Options.Publish } {
  const { attributes } = message;
  const options: Options.Publish = { persistent: true, mandatory: true };
  if (attributes.datacontenttype !== undefined) options.contentType = attributes.datacontenttype;
  if (attributes.id !== undefined) options.messageId = attributes.id;
  return { content: toBuffer(message.body), options };
}
