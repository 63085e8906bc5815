import { requireBroker, TEST_BROKERS } from '@wharf/conformance';
import { NonRetryableError } from '@wharf/core';
import { groupNames } from '@wharf/rabbitmq';
import * as amqp from 'amqplib';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestBus, RealTimeError, type TestBus } from '../src/index.js';

// One handler test, written once, run on memory (virtual time) and on every real broker (its own
// channels and groups, delays scaled down to milliseconds, everything deleted at the end).
const TARGETS = [{ name: 'memory', url: 'memory://', port: 0 }, ...TEST_BROKERS] as const;

let kit: TestBus | undefined;
afterEach(async () => {
  await kit?.close();
  kit = undefined;
});

interface Charge {
  orderId: string;
  poison?: boolean;
}

describe.each(TARGETS)('the same handler test on $name', (target) => {
  it('retries after 30 s, dead-letters a poison event, and cleans up', { timeout: 60_000 }, async (ctx) => {
    if (target.name !== 'memory' && !(await requireBroker(ctx, 'testing', target))) return;
    kit = createTestBus({ broker: target.url });
    expect(kit.broker).toBe(target.name);
    expect(kit.clock.virtual).toBe(target.name === 'memory');

    const attempts: Record<string, number[]> = {};
    await kit.bus.subscribe<Charge>(
      'payments',
      { group: 'billing', retry: { maxAttempts: 3, delays: [30_000] } },
      (event, context) => {
        const { orderId, poison } = event.data!;
        attempts[orderId] = [...(attempts[orderId] ?? []), context.attempt];
        if (poison) throw new NonRetryableError(`card of ${orderId} crashed the gateway client`);
        if (context.attempt === 1) throw new Error('gateway timed out');
      },
    );
    await kit.bus.publish('payments', { type: 'ChargeRequested', data: { orderId: 'o-1' } });
    await kit.bus.publish('payments', { type: 'ChargeRequested', data: { orderId: 'o-2', poison: true } });
    await kit.settled();
    await kit.clock.advance(30_000);

    expect(attempts).toEqual({ 'o-1': [1, 2], 'o-2': [1] });
    expect(kit.consumed('payments', 'billing').map((e) => e.data)).toEqual([{ orderId: 'o-1' }]);
    expect(kit.published('payments')).toHaveLength(2);
    const dead = await kit.deadLetters('payments', 'billing');
    expect(dead.map((d) => d.event?.data)).toEqual([{ orderId: 'o-2', poison: true }]);
    expect(dead[0]?.info).toMatchObject({
      reason: 'non-retryable',
      channel: 'payments',
      group: 'billing',
      attempts: 1,
      errorMessage: 'card of o-2 crashed the gateway client',
    });
  });
});

describe('a test bus on a real broker', () => {
  const rabbit = TEST_BROKERS.find((b) => b.name === 'rabbitmq')!;

  it('refuses a delay it would have to wait out in real time, saying so', async (ctx) => {
    if (!(await requireBroker(ctx, 'testing', rabbit))) return;
    kit = createTestBus({ broker: rabbit.url, timeScale: 1 });
    const subscribing = kit.bus.subscribe('slow', { group: 'g', retry: { delays: [30_000] } }, () => {});
    await expect(subscribing).rejects.toBeInstanceOf(RealTimeError);
    await expect(subscribing).rejects.toThrow(/30000 ms × timeScale 1 = 30000 ms.*test on memory/);
  });

  it('takes its broker from WHARF_TEST_BROKER, and memory:// there means memory', () => {
    const saved = process.env.WHARF_TEST_BROKER;
    try {
      process.env.WHARF_TEST_BROKER = rabbit.url;
      const onRabbit = createTestBus();
      expect([onRabbit.broker, onRabbit.clock.virtual]).toEqual(['rabbitmq', false]);
      process.env.WHARF_TEST_BROKER = 'memory://';
      expect(createTestBus().broker).toBe('memory');
      expect(createTestBus({ broker: 'nats://127.0.0.1:4222' }).broker).toBe('nats');
    } finally {
      if (saved === undefined) delete process.env.WHARF_TEST_BROKER;
      else process.env.WHARF_TEST_BROKER = saved;
    }
  });

  it('puts its channels and groups under a prefix of its own and deletes them on close', async (ctx) => {
    if (!(await requireBroker(ctx, 'testing', rabbit))) return;
    kit = createTestBus({ broker: rabbit.url });
    expect(kit.prefix).toMatch(/^wt[0-9a-f]{8}-$/);
    await kit.bus.subscribe('isolated', { group: 'g', retry: { maxAttempts: 2, delays: [1_000] } }, () => {});
    const own = groupNames('wharf', `${kit.prefix}isolated`, `${kit.prefix}g`);
    // The broker holds the 1 s delay scaled to 1 ms: that is the tier queue declared.
    const names = [own.queue, own.deadLetters, own.tier(1)];
    const connection = await amqp.connect(rabbit.url);
    const exists = async (queue: string): Promise<boolean> => {
      const ch = await connection.createChannel();
      ch.on('error', () => undefined);
      const found = await ch.checkQueue(queue).then(
        () => true,
        () => false,
      );
      await ch.close().catch(() => undefined);
      return found;
    };
    try {
      for (const name of names) expect(await exists(name), name).toBe(true);
      expect(await exists(groupNames('wharf', 'isolated', 'g').queue)).toBe(false);
      await kit.close();
      for (const name of names) expect(await exists(name), name).toBe(false);
    } finally {
      await connection.close();
    }
  });
});
