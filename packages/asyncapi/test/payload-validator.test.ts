import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CloudEvent, ContractViolationError } from '@wharf/core';
import { describe, expect, it } from 'vitest';
import { loadContractGroups, loadPayloadValidator } from '../src/index.js';

const spec = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'specs', 'orders.asyncapi.yaml');
const event = (type: string, data: unknown) =>
  ({ specversion: '1.0', id: 'e-1', source: 's', type, data }) as CloudEvent;

describe('payloadValidator (run time, from a contract file)', () => {
  it("refuses a payload that breaks the message's schema and lets others through", async () => {
    const validator = await loadPayloadValidator(spec);
    const check = () => validator.validate('publish', 'orders.placed', event('OrderPlaced', { orderId: 'ord_1' }));
    expect(check).toThrow(ContractViolationError);
    expect(check).toThrow("/data must have required property 'customerId'");
    // Not described by the contract: not this validator's business.
    expect(() => validator.validate('publish', 'orders.placed', event('Other', {}))).not.toThrow();
    expect(() => validator.validate('publish', 'elsewhere', event('OrderPlaced', {}))).not.toThrow();
  });

  it("lists the order saga's receiving channels and groups", async () => {
    const { groups, ungrouped } = await loadContractGroups(spec);
    expect(ungrouped).toEqual([]);
    expect(groups).toHaveLength(17);
    expect(groups).toContainEqual({
      channel: 'payments.failed',
      group: 'inventory',
      operation: 'inventoryOnPaymentFailed',
    });
    expect(groups.filter((g) => g.group === 'audit')).toHaveLength(9);
  });
});
