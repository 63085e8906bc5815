import { channelNames, dlqSubject, durableName } from './topology.js';

/** What one user may touch, in Wharf terms: the channels it publishes to and the groups it consumes. */
export interface ChannelAccess {
  readonly sends: readonly string[];
  readonly consumes: readonly { readonly channel: string; readonly group: string }[];
}

/** A NATS user's subject permissions (`authorization.users[].permissions` in the server's config). */
export interface NatsPermissions {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

/**
 * The least subject permissions for a user that publishes to `access.sends` and consumes
 * `access.consumes` with this adapter, when an administrator has declared the topology first (as
 * `wharf saga` does). Publish:
 *
 * - `<subjectPrefix>.<channel>` of each channel it sends on, and its own groups' dead-letter subjects;
 * - of the JetStream API, only what the adapter calls for those channels and groups: account info
 *   (`$JS.API.INFO`, when it connects), create (a no-op on an existing stream) and info of the
 *   channels' streams and dead-letter streams, create/info/pull of its own durable consumers, a stored
 *   message of a consumed stream (the max-deliveries backstop), and acks of its own consumers
 *   (`$JS.ACK.<stream>.<group>.>`).
 *
 * Subscribe: replies on `inboxPrefix` (default `_INBOX`; give each user its own, see the adapter's
 * `inboxPrefix` option, so no user can read another's replies) and the max-deliveries advisories of
 * its own consumers. Not granted: deleting or purging streams, other groups' consumers, and
 * other channels. The adapter's purge of settled events needs `$JS.API.STREAM.PURGE` and
 * `$JS.API.CONSUMER.LIST`: give such a user's adapter `purgeIntervalMs: 0` and leave purging to a
 * process with those rights (the saga's coordinator, as the admin user, does it).
 */
export function permissionsFor(
  access: ChannelAccess,
  options: { subjectPrefix?: string; streamPrefix?: string; inboxPrefix?: string } = {},
): NatsPermissions {
  const resolved = { subjectPrefix: options.subjectPrefix ?? 'wharf', streamPrefix: options.streamPrefix ?? 'WHARF' };
  const publish = new Set<string>(['$JS.API.INFO']);
  const subscribe = new Set<string>([`${options.inboxPrefix ?? '_INBOX'}.>`]);
  const streams = (channel: string): void => {
    const { stream, dlqStream } = channelNames(resolved, channel);
    for (const name of [stream, dlqStream]) {
      publish.add(`$JS.API.STREAM.CREATE.${name}`);
      publish.add(`$JS.API.STREAM.INFO.${name}`);
    }
  };
  for (const channel of access.sends) {
    publish.add(channelNames(resolved, channel).subject);
    streams(channel);
  }
  for (const { channel, group } of access.consumes) {
    streams(channel);
    const { stream } = channelNames(resolved, channel);
    const durable = durableName(group);
    publish.add(dlqSubject(resolved, channel, group));
    // nats.js creates with the filter subject in the API subject (`…CREATE.<stream>.<durable>.<filter>`).
    publish.add(`$JS.API.CONSUMER.CREATE.${stream}.${durable}`);
    publish.add(`$JS.API.CONSUMER.CREATE.${stream}.${durable}.>`);
    publish.add(`$JS.API.CONSUMER.DURABLE.CREATE.${stream}.${durable}`);
    publish.add(`$JS.API.CONSUMER.INFO.${stream}.${durable}`);
    publish.add(`$JS.API.CONSUMER.MSG.NEXT.${stream}.${durable}`);
    publish.add(`$JS.API.STREAM.MSG.GET.${stream}`);
    publish.add(`$JS.ACK.${stream}.${durable}.>`);
    subscribe.add(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${durable}`);
  }
  return { publish: [...publish].sort(), subscribe: [...subscribe].sort() };
}
