import {
  type GroupBacklog,
  type NormalizedRetryPolicy,
  retryTiers,
  TopologyError,
  UnknownGroupError,
} from '@wharf/core';
import type { ChannelModel } from 'amqplib';
import { COMPONENT, replyCode } from './errors.js';
import { declaredQueueNames, type GroupNames } from './topology.js';

/** What a passive declare tells about a queue: AMQP 0-9-1 gives these two counts and nothing else. */
interface QueueCounts {
  /** Messages ready for delivery (not those delivered and unacknowledged). */
  readonly messages: number;
  readonly consumers: number;
}

/**
 * Passively declares one queue on a channel of its own: a queue that does not exist makes the broker
 * close the channel with 404, which must not take down a channel anything else uses. `undefined` for 404.
 */
async function check(model: ChannelModel, queue: string): Promise<QueueCounts | undefined> {
  const ch = await model.createChannel();
  ch.on('error', () => undefined);
  try {
    const ok = await ch.checkQueue(queue);
    return { messages: ok.messageCount, consumers: ok.consumerCount };
  } catch (error) {
    if (replyCode(error) === 404) return undefined;
    throw new TopologyError(COMPONENT, `cannot read the state of queue "${queue}": ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    await ch.close().catch(() => undefined);
  }
}

/**
 * A group's backlog from passive declares (no management API needed; nothing is created):
 * - `ready` and `consumers`: the group's work queue;
 * - `delayed`: the ready messages of its retry tier queues, those of `policy` and any this process
 *   declared for the group (a queue the broker does not have counts 0) — AMQP cannot list queues;
 * - `deadLetters`: the dead-letter queue;
 * - `inFlight`: always 0 — AMQP 0-9-1 reports no count of delivered, unacknowledged messages (the
 *   management API's `messages_unacknowledged` does).
 */
export async function readBacklog(
  model: ChannelModel,
  prefix: string,
  channel: string,
  group: string,
  names: GroupNames,
  policy: NormalizedRetryPolicy,
): Promise<GroupBacklog> {
  const tiers = new Set(
    retryTiers(policy)
      .filter((tier) => tier > 0)
      .map((tier) => names.tier(tier)),
  );
  const tierStart = names.tier(0).replace(/0$/, '');
  for (const queue of declaredQueueNames(prefix, channel)) if (queue.startsWith(tierStart)) tiers.add(queue);
  const [work, deadLetters, ...delayed] = await Promise.all([
    check(model, names.queue),
    check(model, names.deadLetters),
    ...[...tiers].map((queue) => check(model, queue)),
  ]);
  if (!work) throw new UnknownGroupError(COMPONENT, channel, group, `queue "${names.queue}" does not exist`);
  return {
    ready: work.messages,
    inFlight: 0,
    delayed: delayed.reduce((sum, tier) => sum + (tier?.messages ?? 0), 0),
    deadLetters: deadLetters?.messages ?? 0,
    consumers: work.consumers,
  };
}
