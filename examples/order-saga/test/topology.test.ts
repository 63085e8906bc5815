import { describe, expect, it } from 'vitest';
import { contract } from '../src/contract.js';
import { consumerGroups, OPERATIONS, RECEIVES, SENDS, SERVICES, serviceAccess } from '../src/topology.js';

// serviceAccess is what `wharf saga --secure` derives each service's broker rights from: an operation
// missing here would be refused at run time, one listed twice would give a service a right it never uses.
describe('the saga topology (who sends and consumes what)', () => {
  const operations = Object.entries(contract.operations);

  it('gives every send operation of the contract to exactly one service, and every receive one', () => {
    for (const [action, table] of [
      ['send', SENDS],
      ['receive', RECEIVES],
    ] as const) {
      const listed = SERVICES.flatMap((service) => table[service] as readonly string[]);
      const inContract = operations.filter(([, op]) => op.action === action).map(([id]) => id);
      expect([...listed].sort(), action).toEqual([...inContract].sort());
      expect(new Set(listed).size, `${action} operations listed twice`).toBe(listed.length);
    }
  });

  it('serviceAccess lists, per service, the namespaced channels it sends on and only its own groups', () => {
    const access = serviceAccess('ns1');
    expect(access.map((a) => a.service)).toEqual([...SERVICES]);
    for (const a of access) {
      expect(a.sends).toEqual([...new Set(SENDS[a.service].map((op) => `ns1.${OPERATIONS[op].channel}`))]);
      expect(a.consumes.every((c) => c.group === a.service)).toBe(true);
      expect(a.consumes).toEqual(consumerGroups('ns1').filter((c) => c.group === a.service));
    }
    expect(access.find((a) => a.service === 'audit')?.sends).toEqual([]);
    expect(serviceAccess().find((a) => a.service === 'order')?.sends).toContain(OPERATIONS.placeOrder.channel);
  });
});
