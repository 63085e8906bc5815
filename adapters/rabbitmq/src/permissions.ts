import { exchangeName, groupNames } from './topology.js';

/** What one user may touch, in Wharf terms: the channels it publishes to and the groups it consumes. */
export interface ChannelAccess {
  readonly sends: readonly string[];
  readonly consumes: readonly { readonly channel: string; readonly group: string }[];
}

/** RabbitMQ's three permission regexes of a user on a vhost (`rabbitmqctl set_permissions`). */
export interface RabbitMqPermissions {
  readonly configure: string;
  readonly write: string;
  readonly read: string;
}

/** A regex matching nothing: RabbitMQ's convention for "no right" is the empty string, which matches nothing. */
const NONE = '';

const literal = (name: string): string => name.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');

/** Alternatives, each already a regex: `^(a|b)$`, or NONE for none. */
function anyOf(patterns: readonly string[]): string {
  const unique = [...new Set(patterns)].sort();
  return unique.length === 0 ? NONE : `^(${unique.join('|')})$`;
}

/**
 * The least RabbitMQ permissions for a user that publishes to `access.sends` and consumes
 * `access.consumes`, when an administrator has declared the topology first (as `wharf saga` does),
 * the groups with the retry policies their services use (`bus.declare(channel, { groups, retry })`):
 *
 * - configure: its own groups' queues (work, retry tiers, dead letters) and each group's own exchange
 *   (named like the work queue, see topology.ts), which the adapter declares idempotently before it
 *   consumes. Not the channels' exchanges: the adapter only checks that an existing exchange is there
 *   (passively), so the user cannot delete a channel's exchange;
 * - write: the exchanges it publishes to, its own queues (a binding needs write on the queue) and its
 *   groups' exchanges, through which the adapter sends its retries and dead letters;
 * - read: its own queues, the exchanges of the channels it consumes and its groups' exchanges (a
 *   binding needs read on the exchange).
 *
 * Nothing of another group: it can neither consume nor declare nor bind another service's queues, nor
 * publish to a channel outside `sends`, nor into another group's queue. No write on `amq.default`:
 * RabbitMQ cannot scope that right by routing key, so it would reach every queue of the vhost by name.
 * The broker's own dead-lettering (a retry tier's TTL back to the work queue, the work queue's
 * `x-delivery-limit` into the dead-letter queue) still goes through the default exchange, but the
 * broker needs no right of the user's for it. What still needs `amq.default`, and so an operator's
 * user: replaying dead letters (`Bus.republish` to a group, `wharf dlq replay`), raw-mode publishes
 * and an immediate retry into a queue adopted in raw mode (Wharf does not bind a foreign queue).
 * And creating a queue: RabbitMQ checks write on a queue's dead-letter exchange when it creates the
 * queue (not when it is declared again), and Wharf's work queues and retry tiers dead-letter through
 * the default exchange, whose arguments cannot change on existing queues. So the administrator
 * creates the groups, and the tiers of a new retry policy (`bus.declare` with it) before a service
 * uses it; the service then declares them again with these rights. Group queues are matched with any
 * retry tier (`…/retry.<ms>`), so a new policy needs no new permissions. Names longer than AMQP's
 * 255 bytes (shortened with a hash) are not supported here.
 */
export function permissionsFor(access: ChannelAccess, options: { prefix?: string } = {}): RabbitMqPermissions {
  const prefix = options.prefix ?? 'wharf';
  // One pattern for a group's queues and its own exchange, which is named like its work queue.
  const queues = access.consumes.map(({ channel, group }) => {
    const names = groupNames(prefix, channel, group);
    return `${literal(names.queue)}(/dlq|/retry\\.[0-9]+)?`;
  });
  const sent = access.sends.map((channel) => literal(exchangeName(prefix, channel)));
  const consumed = access.consumes.map(({ channel }) => literal(exchangeName(prefix, channel)));
  return {
    configure: anyOf(queues),
    write: anyOf([...sent, ...queues]),
    read: anyOf([...consumed, ...queues]),
  };
}
