import { join } from 'node:path';
import { type CloudEvent, ContractViolationError, createBus, type EventValidator, silentLogger } from '@wharf/core';
import { afterEach, describe, expect, it } from 'vitest';
import { contract, type OrderPlacedPayload } from '../../../examples/order-saga/src/generated/index.js';
import { contractValidator, createTypedBus, generate } from '../src/index.js';
import { generatedDir, repo, typecheck } from './helpers.js';

const placed: OrderPlacedPayload = {
  orderId: 'ord_2025_000042',
  customerId: 'cus_7731',
  lines: [{ sku: 'BOOK-0001', quantity: 2, unitPrice: { amount: 1999, currency: 'EUR' } }],
  total: { amount: 3998, currency: 'EUR' },
  placedAt: '2025-03-01T10:15:30.000Z',
};

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

function memoryBus(validator?: EventValidator) {
  const bus = createBus({ url: 'memory://', logger: silentLogger, ...(validator ? { validator } : {}) });
  closers.push(() => bus.close());
  return bus;
}

async function until(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('the typed bus on the memory adapter', () => {
  it('sends and receives a valid event with its CloudEvents type', async () => {
    const bus = memoryBus();
    const orders = createTypedBus(bus, contract);
    const received: CloudEvent[] = [];
    await orders.on('inventoryOnOrderPlaced', { group: 'inventory' }, (event) => {
      received.push(event);
    });
    const sent = await orders.send('placeOrder', placed, { subject: placed.orderId });
    expect(sent.type).toBe('OrderPlaced');
    await until(() => received.length === 1);
    expect(received[0]?.data).toEqual(placed);
    expect(received[0]?.subject).toBe(placed.orderId);
  });

  it('throws ContractViolationError listing the failing paths on an invalid payload, and sends nothing', async () => {
    const bus = memoryBus();
    const orders = createTypedBus(bus, contract);
    const bad = { ...placed, orderId: 'order-1', total: { amount: -1, currency: 'euro' }, lines: [] };
    const error = await orders.send('placeOrder', bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ContractViolationError);
    const paths = (error as ContractViolationError).issues.map((i) => i.path).sort();
    expect(paths).toEqual(['/lines', '/orderId', '/total/amount', '/total/currency']);
    expect(bus.stats().published).toBe(0);
  });

  it('rejects a receive operation at runtime too (for untyped callers)', async () => {
    const orders = createTypedBus(memoryBus(), contract) as unknown as {
      send(operation: string, payload: unknown): Promise<unknown>;
    };
    await expect(orders.send('inventoryOnOrderPlaced', placed)).rejects.toThrow(/receive operation/);
    await expect(orders.send('nope', placed)).rejects.toThrow(/unknown operation "nope"/);
  });

  it('dead-letters a received event that breaks the contract with reason invalid', async () => {
    const bus = memoryBus();
    const orders = createTypedBus(bus, contract);
    let calls = 0;
    await orders.on('inventoryOnOrderPlaced', { group: 'inventory' }, () => {
      calls++;
    });
    // A foreign producer that does not use the contract.
    await bus.publish('orders.placed', { type: 'OrderPlaced', data: { orderId: 'nope' } });
    await until(async () => (await bus.listDeadLetters('orders.placed', 'inventory')).length === 1);
    const [dead] = await bus.listDeadLetters('orders.placed', 'inventory');
    expect(dead?.info?.reason).toBe('invalid');
    expect(dead?.info?.errorMessage).toMatch(/\/orderId/);
    expect(calls).toBe(0);
  });
});

describe('contractValidator as the bus validator', () => {
  it('rejects an invalid publish before anything is sent and lets valid events through', async () => {
    const bus = memoryBus(contractValidator(contract));
    await expect(bus.publish('orders.placed', { type: 'OrderPlaced', data: { orderId: 'x' } })).rejects.toThrow(
      ContractViolationError,
    );
    await expect(bus.publish('orders.placed', { type: 'PaymentFailed', data: placed })).rejects.toThrow(
      /not a message of this channel/,
    );
    // Channels outside the contract are not governed by it (unless unknownChannels: 'reject').
    await bus.declare('elsewhere', { groups: ['g'] });
    await expect(bus.publish('elsewhere', { type: 'Anything', data: 1 })).resolves.toBeDefined();
    expect(() =>
      contractValidator(contract, { unknownChannels: 'reject' }).validate('publish', 'elsewhere', {
        specversion: '1.0',
        id: '1',
        source: 's',
        type: 'T',
      }),
    ).toThrow(/not in the contract/);
  });

  it('dead-letters an invalid consumed event with reason invalid', async () => {
    const check = contractValidator(contract);
    // Validates on consume only, like a consumer whose producers skip validation.
    const bus = memoryBus({
      validate: (direction, channel, event) => direction === 'consume' && check.validate(direction, channel, event),
    });
    const seen: unknown[] = [];
    await bus.subscribe('orders.placed', { group: 'audit' }, (event) => {
      seen.push(event.data);
    });
    await bus.publish('orders.placed', {
      type: 'OrderPlaced',
      data: { ...placed, lines: [{ sku: 'x', quantity: 0 }] },
    });
    await bus.publish('orders.placed', { type: 'OrderPlaced', data: placed });
    await until(async () => seen.length === 1 && (await bus.listDeadLetters('orders.placed', 'audit')).length === 1);
    const [dead] = await bus.listDeadLetters('orders.placed', 'audit');
    expect(dead?.info?.reason).toBe('invalid');
    expect(dead?.info?.errorMessage).toMatch(/lines\/0/);
  });
});

describe('compile-time checks', () => {
  it('misuse of the typed bus fails to compile (every @ts-expect-error is needed)', async () => {
    await generate(join(repo, 'packages/asyncapi/test/fixtures/features/features.asyncapi.yaml'), {
      outDir: join(generatedDir, 'features'),
    });
    expect(typecheck([join(repo, 'packages/asyncapi/test/fixtures/typed-bus-usage.ts')])).toEqual([]);
  });
});
