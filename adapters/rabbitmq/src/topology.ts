import { createHash } from 'node:crypto';
import { type NormalizedRetryPolicy, retryTiers } from '@wharf/core';
import type { Channel, ChannelModel } from 'amqplib';
import { topologyError } from './errors.js';

/**
 * What the adapter declares, per Wharf channel `C` and group `G` (prefix `wharf`):
 *
 * - exchange `wharf.C` (fanout, durable): every publish to channel `C` goes here;
 * - queue `wharf.C/G` (quorum, bound to the exchange): the group's work queue — fan-out across
 *   groups, competing consumers within one. Its `x-delivery-limit` dead-letters a message that keeps
 *   coming back unsettled (crash loop) into the group's dead-letter queue, at least once;
 * - queue `wharf.C/G/retry.<ms>` (quorum), one per delay tier of the retry policy: a retry is
 *   published here with a per-message TTL and, when it expires, the broker dead-letters it through
 *   the default exchange to `wharf.C/G` only — other groups never see it;
 * - queue `wharf.C/G/dlq` (quorum): the group's dead letters;
 * - exchange `wharf.C/G` (direct, durable, auto-delete; the work queue's name, since exchanges and
 *   queues have separate names): the group's own way in. The work queue, the retry tiers and the
 *   dead-letter queue are bound to it, each under its own name, and the adapter sends its retries
 *   and dead letters through it. Through the default exchange they would need write on
 *   `amq.default`, which RabbitMQ cannot scope by routing key: that right reaches every queue of the
 *   vhost by name, another group's too (see permissions.ts). It goes away with the group's last
 *   queue (auto-delete), so deleting the queues deletes everything.
 *
 * `/` separates the parts because channel and group names cannot contain it, so no two
 * (channel, group) pairs share a name. Names above AMQP's 255-byte limit are shortened with a hash.
 */
export interface GroupNames {
  /** The channel's exchange (fanout). */
  readonly exchange: string;
  /** The group's own exchange (direct): its queues are bound to it under their own names. */
  readonly groupExchange: string;
  readonly queue: string;
  readonly deadLetters: string;
  tier(delayMs: number): string;
}

const MAX_NAME_BYTES = 255;

function fit(name: string): string {
  if (Buffer.byteLength(name) <= MAX_NAME_BYTES) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 16);
  return `${name.slice(0, MAX_NAME_BYTES - hash.length - 1)}~${hash}`;
}

export function exchangeName(prefix: string, channel: string): string {
  return fit(`${prefix}.${channel}`);
}

export function groupNames(prefix: string, channel: string, group: string): GroupNames {
  const base = `${prefix}.${channel}/${group}`;
  return {
    exchange: exchangeName(prefix, channel),
    groupExchange: fit(base),
    queue: fit(base),
    deadLetters: fit(`${base}/dlq`),
    tier: (delayMs: number) => fit(`${base}/retry.${delayMs}`),
  };
}

/**
 * Every queue name this process declared for a channel, so tests and tools can delete exactly what
 * was created (tier queues depend on the policies used).
 */
const declaredQueues = new Map<string, Set<string>>();

export function declaredQueueNames(prefix: string, channel: string): string[] {
  return [...(declaredQueues.get(exchangeName(prefix, channel)) ?? [])];
}

function remember(exchange: string, queue: string): void {
  const set = declaredQueues.get(exchange) ?? new Set<string>();
  declaredQueues.set(exchange, set);
  set.add(queue);
}

const QUORUM = { 'x-queue-type': 'quorum' } as const;
/** At-least-once dead-lettering: the broker keeps the message until the target queue confirmed it. */
const AT_LEAST_ONCE = { 'x-dead-letter-strategy': 'at-least-once', 'x-overflow': 'reject-publish' } as const;

/**
 * Whether `exchange` exists, asked on a throwaway channel of `model` (a 404 closes the channel it is
 * asked on, and the topology channel is shared). False also when the question fails: the declaration
 * that follows then reports what is wrong.
 */
async function exchangeExists(model: ChannelModel, exchange: string): Promise<boolean> {
  try {
    await checkExchange(model, exchange);
    return true;
  } catch {
    return false;
  }
}

/**
 * Declares the channel's exchange. With `model`, an exchange that already exists (an operator or an
 * administrator's process declared it) is only checked, passively: a user with least privilege then
 * needs no configure permission on the channel's exchange, which would let it delete the exchange.
 */
export async function declareExchange(ch: Channel, exchange: string, model?: ChannelModel): Promise<void> {
  if (model !== undefined && (await exchangeExists(model, exchange))) return;
  try {
    await ch.assertExchange(exchange, 'fanout', { durable: true });
  } catch (error) {
    throw topologyError(`exchange "${exchange}"`, error);
  }
}

/**
 * Idempotently declares what one group needs. The arguments of a queue never depend on the retry
 * policy (a redeclaration with other arguments fails), only on the tier it serves.
 *
 * `adopted`: the group consumes an existing queue in raw mode (`names.queue` is that queue, adopted
 * by `adoptQueue`), so neither the channel's exchange nor the group's queue is declared; the
 * dead-letter queue and the retry tiers are, and the tiers expire into the adopted queue.
 */
export async function declareGroup(
  ch: Channel,
  names: GroupNames,
  policy: NormalizedRetryPolicy,
  deliveryLimit: number,
  adopted = false,
  expiresMs?: number,
  model?: ChannelModel,
): Promise<void> {
  if (!adopted) await declareExchange(ch, names.exchange, model);
  // A group that lives as long as one process (SubscribeRequest.expireWhenIdleMs): the broker deletes
  // each of its queues once unused that long, so a process killed without close leaves nothing behind.
  const expires = expiresMs === undefined ? {} : { 'x-expires': expiresMs };
  const queue = async (name: string, args: Record<string, unknown>): Promise<void> => {
    try {
      await ch.assertQueue(name, { durable: true, arguments: { ...QUORUM, ...expires, ...args } });
    } catch (error) {
      throw topologyError(`queue "${name}"`, error);
    }
    remember(names.exchange, name);
  };
  await queue(names.deadLetters, {});
  if (!adopted) {
    await queue(names.queue, {
      ...AT_LEAST_ONCE,
      'x-delivery-limit': deliveryLimit,
      'x-dead-letter-exchange': '',
      'x-dead-letter-routing-key': names.deadLetters,
    });
    try {
      await ch.bindQueue(names.queue, names.exchange, '');
    } catch (error) {
      throw topologyError(`the binding of "${names.queue}" to "${names.exchange}"`, error);
    }
  }
  const tiers: string[] = [];
  for (const tier of retryTiers(policy)) {
    // Tier 0 needs no queue: an immediate retry goes straight back to the group's queue.
    if (tier <= 0) continue;
    // The broker's TTL dead-lettering back to the work queue goes through the default exchange, as
    // it always has: the broker does it, so it needs no right of the user's, and the arguments of a
    // queue that exists cannot change (a redeclaration with others is PRECONDITION_FAILED).
    await queue(names.tier(tier), {
      ...AT_LEAST_ONCE,
      'x-dead-letter-exchange': '',
      'x-dead-letter-routing-key': names.queue,
    });
    tiers.push(names.tier(tier));
  }
  // Last, so a group declared by an older version (no group exchange) gets it on its next declare.
  // An adopted queue is not bound: raw mode changes nothing on it (an immediate retry there goes
  // through the default exchange, see subscriber.ts).
  await declareGroupRoutes(ch, names, [names.deadLetters, ...tiers, ...(adopted ? [] : [names.queue])]);
}

/**
 * The group's exchange and one binding per queue, under the queue's name (all idempotent). Needs
 * configure on the exchange, and for each binding write on the queue and read on the exchange, all
 * within the group's own names (see permissions.ts).
 */
async function declareGroupRoutes(ch: Channel, names: GroupNames, queues: readonly string[]): Promise<void> {
  try {
    await ch.assertExchange(names.groupExchange, 'direct', { durable: true, autoDelete: true });
  } catch (error) {
    throw topologyError(`exchange "${names.groupExchange}"`, error);
  }
  for (const queue of queues) {
    try {
      await ch.bindQueue(queue, names.groupExchange, queue);
    } catch (error) {
      throw topologyError(`the binding of "${queue}" to "${names.groupExchange}"`, error);
    }
  }
}

/**
 * Whether the exchange exists, asked passively on a throwaway channel of `model` (a 404 closes the
 * channel it is asked on). Rejects with the broker's error: 404 when it does not exist.
 */
export async function checkExchange(model: ChannelModel, exchange: string): Promise<void> {
  const ch = await model.createChannel();
  ch.on('error', () => undefined);
  try {
    await ch.checkExchange(exchange);
  } finally {
    ch.close().catch(() => undefined);
  }
}

/** Where a retry for `tierMs` goes: the tier queue, or the group queue itself for an immediate retry. */
export function retryTarget(names: GroupNames, tierMs: number, delayMs: number): string {
  return tierMs <= 0 || delayMs <= 0 ? names.queue : names.tier(tierMs);
}

/**
 * How a retry or dead letter reaches `queue`: through the group's exchange under the queue's name,
 * except an immediate retry into a queue adopted in raw mode, which is not bound to it (raw mode
 * changes nothing on a foreign queue) and is reached through the default exchange as before.
 */
export function routeTo(names: GroupNames, queue: string, adopted: boolean): { exchange: string; routingKey: string } {
  return { exchange: adopted && queue === names.queue ? '' : names.groupExchange, routingKey: queue };
}
