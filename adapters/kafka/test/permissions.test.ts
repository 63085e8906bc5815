import { DEFAULT_RETRY_POLICY, normalizeRetryPolicy, retryTiers } from '@wharf/core';
import { describe, expect, it } from 'vitest';
import { type KafkaAcl, type KafkaOperation, Names, permissionsFor } from '../src/index.js';

type Operation = KafkaOperation | 'create' | 'delete' | 'alter' | 'alter-configs';

/**
 * Kafka's StandardAuthorizer for allow-only ACLs: a literal ACL matches its name, a prefixed one every
 * name that starts with it; `describe` is implied by read, write, delete and alter, `describe-configs`
 * by alter-configs (AclOperation's implications).
 */
function allowed(acls: readonly KafkaAcl[], type: KafkaAcl['resourceType'], name: string, op: Operation): boolean {
  const implies: Record<string, readonly string[]> = {
    describe: ['describe', 'read', 'write', 'delete', 'alter'],
    'describe-configs': ['describe-configs', 'alter-configs'],
  };
  return acls.some(
    (acl) =>
      acl.permission === 'allow' &&
      acl.resourceType === type &&
      (acl.patternType === 'literal' ? acl.resourceName === name : name.startsWith(acl.resourceName)) &&
      (implies[op] ?? [op]).includes(acl.operation),
  );
}

describe('permissionsFor', () => {
  const names = new Names('wharf');
  const access = {
    sends: ['orders.placed'],
    consumes: [
      { channel: 'payments.done', group: 'order' },
      { channel: 'stock-rejected', group: 'order' },
    ],
  };
  const acls = permissionsFor(access);
  const topic = (name: string, op: Operation) => allowed(acls, 'topic', name, op);
  const group = (name: string, op: Operation) => allowed(acls, 'group', name, op);

  it('lets the user publish to its channels and nowhere else', () => {
    const sent = names.channel('orders.placed');
    expect(topic(sent, 'write')).toBe(true);
    expect(topic(sent, 'describe')).toBe(true);
    expect(topic(sent, 'describe-configs')).toBe(true);
    // Consumed, not sent: readable, not writable.
    expect(topic(names.channel('payments.done'), 'write')).toBe(false);
    expect(topic(names.channel('payments.done'), 'read')).toBe(true);
    for (const other of [names.channel('orders.placedX'), names.channel('orders'), names.channel('other')]) {
      expect(topic(other, 'write')).toBe(false);
      expect(topic(other, 'describe')).toBe(false);
    }
    // Sending is not reading.
    expect(topic(sent, 'read')).toBe(false);
  });

  it('lets the user join, commit and read its own groups, with their retry and dead-letter topics', () => {
    const tiers = retryTiers(normalizeRetryPolicy(DEFAULT_RETRY_POLICY));
    expect(tiers.length).toBeGreaterThan(0);
    for (const { channel } of access.consumes) {
      expect(topic(names.channel(channel), 'read')).toBe(true);
      expect(group(names.group(channel, 'order'), 'read')).toBe(true);
      expect(group(names.group(channel, 'order'), 'describe')).toBe(true);
      for (const tier of [...tiers, 100, 30_000]) {
        const retry = names.retry(channel, 'order', tier);
        expect(topic(retry, 'read')).toBe(true);
        expect(topic(retry, 'write')).toBe(true);
      }
      const dlt = names.deadLetter(channel, 'order');
      expect(topic(dlt, 'write')).toBe(true);
      expect(topic(dlt, 'describe')).toBe(true);
      // Reading dead letters (the reader group commits) is the operator's; the backlog only describes it.
      expect(topic(dlt, 'read')).toBe(false);
      expect(group(names.deadLetterReader(channel, 'order'), 'describe')).toBe(true);
      expect(group(names.deadLetterReader(channel, 'order'), 'read')).toBe(false);
    }
  });

  it("refuses other groups' consumer groups and topics, on its channels and others", () => {
    const others = [
      ['payments.done', 'audit'],
      ['payments.done', 'order2'],
      ['payments.done', 'order-retry'],
      ['orders.placed', 'order'],
      ['other', 'order'],
    ] as const;
    for (const [channel, other] of others) {
      expect(group(names.group(channel, other), 'read')).toBe(false);
      expect(group(names.group(channel, other), 'describe')).toBe(false);
      for (const name of [names.retry(channel, other, 1_000), names.deadLetter(channel, other)]) {
        expect(topic(name, 'read')).toBe(false);
        expect(topic(name, 'write')).toBe(false);
        expect(topic(name, 'describe')).toBe(false);
      }
    }
  });

  it('never allows creating, deleting or altering anything, nor any cluster or transactional right', () => {
    const every = [
      ...access.sends.map((c) => names.channel(c)),
      ...access.consumes.flatMap(({ channel, group: g }) => [
        names.channel(channel),
        names.retry(channel, g, 1_000),
        names.deadLetter(channel, g),
      ]),
    ];
    for (const name of every) {
      for (const op of ['create', 'delete', 'alter', 'alter-configs'] as const) expect(topic(name, op)).toBe(false);
    }
    for (const { channel, group: g } of access.consumes) expect(group(names.group(channel, g), 'delete')).toBe(false);
    expect(acls.every((acl) => acl.resourceType === 'topic' || acl.resourceType === 'group')).toBe(true);
    expect(new Set(acls.map((acl) => acl.operation))).toEqual(
      new Set(['read', 'write', 'describe', 'describe-configs']),
    );
  });

  it('uses prefixed ACLs for the retry tiers only, literal ones with retryTiers', () => {
    const prefixed = acls.filter((acl) => acl.patternType === 'prefixed');
    expect(prefixed.map((acl) => acl.resourceName)).toEqual(
      expect.arrayContaining(access.consumes.map(({ channel }) => `${names.group(channel, 'order')}-retry-`)),
    );
    expect(prefixed.every((acl) => acl.resourceName.endsWith('-retry-'))).toBe(true);
    const literal = permissionsFor(access, { retryTiers: [200, 5_000] });
    expect(literal.every((acl) => acl.patternType === 'literal')).toBe(true);
    const retry200 = names.retry('payments.done', 'order', 200);
    expect(allowed(literal, 'topic', retry200, 'read')).toBe(true);
    expect(allowed(literal, 'topic', names.retry('payments.done', 'order', 300), 'read')).toBe(false);
  });

  it('gives no ACL to a user with no channel, follows the topic prefix, and lists each ACL once', () => {
    expect(permissionsFor({ sends: [], consumes: [] })).toEqual([]);
    const shop = permissionsFor({ sends: ['a'], consumes: [] }, { topicPrefix: 'shop' });
    expect(allowed(shop, 'topic', new Names('shop').channel('a'), 'write')).toBe(true);
    expect(allowed(shop, 'topic', names.channel('a'), 'write')).toBe(false);
    const twice = permissionsFor({
      sends: ['a', 'a'],
      consumes: [
        { channel: 'a', group: 'g' },
        { channel: 'a', group: 'g' },
      ],
    });
    const keys = twice.map((acl) => JSON.stringify(acl));
    expect(new Set(keys).size).toBe(keys.length);
    expect(permissionsFor(access)).toEqual(acls);
  });

  it('names long channels and groups as the adapter does (shortened with a hash)', () => {
    const long = 'c'.repeat(150);
    const acl = permissionsFor({ sends: [], consumes: [{ channel: long, group: long }] });
    expect(allowed(acl, 'group', names.group(long, long), 'read')).toBe(true);
    expect(allowed(acl, 'topic', names.retry(long, long, 60_000), 'read')).toBe(true);
    expect(names.group(long, long).length).toBeLessThan(249);
  });
});
