import { serviceAccess } from '@wharf/example-order-saga';
import { splitName, unescapeName } from '@wharf/kafka';
import { describe, expect, it } from 'vitest';
import { sagaGrants, serviceUser } from '../src/secure-saga.js';
import { wharf } from './wharf.js';

// The pure half of `wharf saga --secure` (the other half, against real brokers: saga-secure.test.ts).
describe('saga --secure: grants and flags', () => {
  it('gives each service a user of its own, per namespace, with rights only over its own names', () => {
    const access = serviceAccess('ns');
    const rabbit = sagaGrants('rabbitmq', access, 'ns');
    const nats = sagaGrants('nats', access, 'ns');
    const kafka = sagaGrants('kafka', access, 'ns');
    expect(kafka.map((g) => g.user)).toEqual(access.map((a) => `ns-${a.service}`));
    expect(rabbit.map((g) => g.user)).toEqual(access.map((a) => `ns-${a.service}`));
    expect(serviceUser('order', undefined)).toBe('saga-order');
    for (const [i, a] of access.entries()) {
      const r = rabbit[i];
      const n = nats[i];
      if (!r || !n) throw new Error('a grant is missing');
      // Another service's group never appears in this service's rights.
      for (const other of access.filter((o) => o.service !== a.service)) {
        expect(r.grant.read).not.toContain(`/${other.service}(`);
        expect(n.grant.publish.join(' ')).not.toMatch(new RegExp(`\\.${other.service}(\\.|$| )`));
      }
      // Kafka: every ACL on a group, a retry or a dead-letter topic names this service's group.
      const k = kafka[i];
      if (!k) throw new Error('a grant is missing');
      for (const acl of k.grant) {
        const [, channel, group] = (splitName(acl.resourceName.replace(/-$/, '')) ?? []).map(unescapeName);
        if (acl.resourceType === 'group' || group !== undefined) expect(group, acl.resourceName).toBe(a.service);
        if (acl.operation === 'write' && group === undefined) expect(a.sends).toContain(channel);
      }
      expect(k.grant.some((acl) => acl.resourceType === 'group')).toBe(a.consumes.length > 0);
      expect(n.inboxPrefix).toBe(`_INBOX_ns-${a.service}`);
      expect(n.grant.subscribe).toContain(`_INBOX_ns-${a.service}.>`);
      expect(n.grant.subscribe).not.toContain('_INBOX.>');
    }
  });

  it('refuses --secure without a secure broker kind, or with flags it decides itself', async () => {
    const bare = await wharf('saga', '--secure');
    expect(bare.code).toBe(2);
    expect(bare.stderr).toMatch(/--secure needs --broker rabbitmq, --broker nats or --broker kafka/);
    const url = await wharf('saga', '--secure', '--broker', 'amqp://127.0.0.1');
    expect(url.code).toBe(2);
    const flags = await wharf('saga', '--secure', '--broker', 'nats', '--username', 'x', '--services', 'order');
    expect(flags.code).toBe(2);
    expect(flags.stderr).toMatch(/cannot be combined with --username, --services/);
  });
});
