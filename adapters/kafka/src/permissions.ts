import { Names } from './topology.js';

/** What one user may touch, in Wharf terms: the channels it publishes to and the groups it consumes. */
export interface ChannelAccess {
  readonly sends: readonly string[];
  readonly consumes: readonly { readonly channel: string; readonly group: string }[];
}

/** The resource types an ACL of {@link permissionsFor} names (Kafka's `ResourceType`, lower case). */
export type KafkaResourceType = 'topic' | 'group';

/**
 * The operations an ACL of {@link permissionsFor} allows (Kafka's `AclOperation`, lower case). On a
 * topic, `read` and `write` imply `describe`; on a group, `read` implies `describe`.
 */
export type KafkaOperation = 'read' | 'write' | 'describe' | 'describe-configs';

/**
 * One Kafka ACL for the user, without its principal and host (`User:<name>`, `*`: the caller's
 * choice): `kafka-acls.sh --add --allow-principal User:<name> --operation <operation>
 * --<resourceType> <resourceName> --resource-pattern-type <patternType>`.
 */
export interface KafkaAcl {
  readonly resourceType: KafkaResourceType;
  readonly resourceName: string;
  /** `literal`: that name only; `prefixed`: every name that starts with it. */
  readonly patternType: 'literal' | 'prefixed';
  readonly operation: KafkaOperation;
  readonly permission: 'allow';
}

/** Options of {@link permissionsFor}. */
export interface KafkaPermissionsOptions {
  /** The adapter's `topicPrefix`. Default `wharf`. */
  readonly topicPrefix?: string;
  /**
   * The groups' retry delay tiers in ms (`retryTiers(policy)` of `@wharf/core`): a literal ACL per
   * tier topic. Default: one prefixed ACL per group on `<group topic>-retry-`, so a new retry policy
   * needs no new ACLs.
   */
  readonly retryTiers?: readonly number[];
}

/**
 * The least Kafka ACLs for a user that publishes to `access.sends` and consumes `access.consumes`
 * with this adapter (either client), when an administrator has created the topics and declared the
 * groups first (as `wharf saga` does). Names are the adapter's own (see topology.ts), so a channel or
 * group whose name was shortened with a hash gets the shortened one.
 *
 * - each channel it sends on: `write` on the channel's topic (metadata and `listTopics` need
 *   `describe`, which `write` implies; a publish first checks that the topic is listed) and
 *   `describe-configs` (read only: a publish refused as too large reports the topic's
 *   `max.message.bytes`);
 * - each group it consumes: `read` on the channel's topic (fetch, offsets; implies `describe`),
 *   `read` on the consumer group `<prefix>-<channel>-<group>` (join, sync, heartbeat, leave,
 *   offset commits and fetches, describe: implies `describe`), `read`, `write` and
 *   `describe-configs` on its retry topics (it consumes them in the same group and produces its
 *   retries into them), `write` and `describe-configs` on its dead-letter topic, and `describe` on its dead-letter reader group
 *   (the backlog a service reports reads that group's committed offsets; reading dead letters is
 *   the operator's, see below);
 * - the idempotent producer (the adapter's default) needs no ACL of its own: since Kafka 3.0
 *   (KIP-679) `InitProducerId` without a transactional id is allowed to a principal with `write` on
 *   any topic, instead of the deprecated `IdempotentWrite` on the cluster.
 *
 * Not granted: `create`, `delete`, `alter` or `alter-configs` on anything (a user cannot create a
 * topic by publishing to an undeclared channel, nor delete or reconfigure a channel's topic), the
 * cluster, transactional ids, the consumer groups and retry topics of other groups, and reading or
 * writing other channels. So `deleteGroup`, `readDeadLetters` (it commits in the reader group) and
 * the replay of dead letters are for an administrator (as the saga's coordinator).
 *
 * Gaps Kafka forces: a topic ACL is not tied to a group (a consumer that assigns partitions itself
 * fetches without one), so `read` on a channel's topic lets the user read the whole channel, not
 * only through its own group, and a group ACL is not tied to topics (the user may commit offsets of
 * its group for any topic it may read); `describe`, implied by `read` and `write`, shows a topic's
 * partitions and offsets. `InitProducerId` is allowed by `write` on any topic, not on the topics
 * the producer writes. A user with no channel at all gets no ACL and so no `write` for
 * `InitProducerId`: give its adapter `idempotent: false` (or no user).
 * Retry tiers are matched by a prefix unless `retryTiers` is given; no other Wharf name starts
 * with `<prefix>-<channel>-<group>-retry-`, because the adapter escapes `-` inside a name.
 */
export function permissionsFor(access: ChannelAccess, options: KafkaPermissionsOptions = {}): KafkaAcl[] {
  const names = new Names(options.topicPrefix ?? 'wharf');
  const acls = new Map<string, KafkaAcl>();
  const allow = (
    resourceType: KafkaResourceType,
    resourceName: string,
    operation: KafkaOperation,
    patternType: KafkaAcl['patternType'] = 'literal',
  ): void => {
    const acl: KafkaAcl = { resourceType, resourceName, patternType, operation, permission: 'allow' };
    acls.set(`${resourceType}\n${patternType}\n${resourceName}\n${operation}`, acl);
  };
  for (const channel of access.sends) {
    const topic = names.channel(channel);
    allow('topic', topic, 'write');
    allow('topic', topic, 'describe-configs');
  }
  for (const { channel, group } of access.consumes) {
    allow('topic', names.channel(channel), 'read');
    allow('group', names.group(channel, group), 'read');
    const retries =
      options.retryTiers === undefined
        ? [{ name: `${names.group(channel, group)}-retry-`, pattern: 'prefixed' as const }]
        : options.retryTiers.map((tier) => ({ name: names.retry(channel, group, tier), pattern: 'literal' as const }));
    for (const { name, pattern } of retries) {
      allow('topic', name, 'read', pattern);
      allow('topic', name, 'write', pattern);
      allow('topic', name, 'describe-configs', pattern);
    }
    const dlt = names.deadLetter(channel, group);
    allow('topic', dlt, 'write');
    allow('topic', dlt, 'describe-configs');
    allow('group', names.deadLetterReader(channel, group), 'describe');
  }
  const order = (a: KafkaAcl): string => `${a.resourceType}\n${a.resourceName}\n${a.patternType}\n${a.operation}`;
  return [...acls.values()].sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
}
