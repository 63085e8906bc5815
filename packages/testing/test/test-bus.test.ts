import { NonRetryableError } from '@wharf/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestBus, SettleTimeoutError, type TestBus } from '../src/index.js';

let kit: TestBus | undefined;
afterEach(async () => {
  await kit?.close();
  kit = undefined;
});

describe('createTestBus on memory', () => {
  it('runs a 30 s retry at clock.advance(30_000), in no real time', async () => {
    kit = createTestBus();
    const attempts: number[] = [];
    await kit.bus.subscribe(
      'payments',
      { group: 'billing', retry: { maxAttempts: 2, delays: [30_000] } },
      (_e, ctx) => {
        attempts.push(ctx.attempt);
        if (ctx.attempt === 1) throw new Error('gateway timed out');
      },
    );
    const started = performance.now();
    await kit.bus.publish('payments', { type: 'PaymentRequested', data: { orderId: 'o-1' } });
    await kit.settled();
    expect(attempts).toEqual([1]);
    expect(kit.consumed('payments', 'billing')).toEqual([]);

    await kit.clock.advance(29_999);
    expect(attempts).toEqual([1]);
    await kit.clock.advance(1);
    expect(attempts).toEqual([1, 2]);
    expect(kit.consumed('payments', 'billing').map((e) => e.data)).toEqual([{ orderId: 'o-1' }]);
    // The 30 s retry delay ran on the fake clock: far less than 30 s of real time, even on a loaded machine.
    expect(performance.now() - started).toBeLessThan(5_000);

    const [first, second] = kit.settlements('payments', 'billing');
    expect(first).toMatchObject({ outcome: 'retried', attempt: 1, retryInMs: 30_000 });
    expect(String(first?.error)).toContain('gateway timed out');
    expect(second).toMatchObject({ outcome: 'acked', attempt: 2 });
  });

  it('runs a retry without delay at once, with no advance', async () => {
    kit = createTestBus();
    const attempts: number[] = [];
    await kit.bus.subscribe('now', { group: 'g', retry: { maxAttempts: 2, delays: [0] } }, (_e, ctx) => {
      attempts.push(ctx.attempt);
      if (ctx.attempt === 1) throw new Error('once');
    });
    await kit.bus.publish('now', { type: 'T', data: null });
    await kit.settled();
    expect(attempts).toEqual([1, 2]);
  });

  it('follows a chain of retries within one advance, each at its own due time', async () => {
    kit = createTestBus();
    const at: number[] = [];
    const start = kit.clock.now();
    await kit.bus.subscribe('c', { group: 'g', retry: { maxAttempts: 4, delays: [5_000, 30_000, 60_000] } }, () => {
      at.push((kit as TestBus).clock.now() - start);
      throw new Error('down');
    });
    await kit.bus.publish('c', { type: 'T', data: 1 });
    await kit.clock.advance(10 * 60_000);
    expect(at).toEqual([0, 5_000, 35_000, 95_000]);
    const [dead] = await kit.deadLetters('c', 'g');
    expect(dead?.info).toMatchObject({ reason: 'retries-exhausted', attempts: 4, errorMessage: 'down' });
  });

  it('records dead letters with their reason, and what was published', async () => {
    kit = createTestBus();
    await kit.bus.subscribe('orders', { group: 'billing' }, (event) => {
      if ((event.data as { total: number }).total < 0) throw new NonRetryableError('negative total');
    });
    await kit.bus.publish('orders', { type: 'OrderPlaced', data: { total: -1 } });
    await kit.bus.publish('orders', { type: 'OrderPlaced', data: { total: 5 } });
    await kit.settled();
    expect(kit.published('orders').map((e) => e.data)).toEqual([{ total: -1 }, { total: 5 }]);
    expect(kit.consumed('orders', 'billing').map((e) => e.data)).toEqual([{ total: 5 }]);
    const dead = await kit.deadLetters('orders', 'billing');
    expect(dead).toHaveLength(1);
    expect(dead[0]?.event?.data).toEqual({ total: -1 });
    expect(dead[0]?.info).toMatchObject({ reason: 'non-retryable', errorMessage: 'negative total', attempts: 1 });
  });

  it('waits in settled() for events that handlers publish in turn', async () => {
    kit = createTestBus();
    await kit.bus.subscribe('a', { group: 'relay' }, async (event, ctx) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      await ctx.publish('b', { type: 'Relayed', data: event.data });
    });
    await kit.bus.subscribe('b', { group: 'sink' }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
    });
    await kit.bus.publish('a', { type: 'Start', data: 'x' });
    await kit.settled();
    expect(kit.consumed('b', 'sink').map((e) => e.data)).toEqual(['x']);
  });

  it('names what is still in flight when settled() times out', async () => {
    kit = createTestBus({ bus: { shutdownTimeoutMs: 10 } });
    await kit.bus.subscribe('stuck', { group: 'g' }, () => new Promise(() => {}));
    await kit.bus.publish('stuck', { type: 'T', data: null });
    const error = await kit.settled({ timeoutMs: 50 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SettleTimeoutError);
    expect(String(error)).toContain('stuck/g: 1 event(s) not settled');
  });

  it('keeps two test buses apart', async () => {
    const a = createTestBus();
    const b = createTestBus();
    await a.bus.subscribe('same', { group: 'g' }, () => {});
    await b.bus.subscribe('same', { group: 'g' }, () => {});
    await a.bus.publish('same', { type: 'T', data: 'a' });
    await a.settled();
    await b.settled();
    expect(a.consumed('same', 'g')).toHaveLength(1);
    expect(b.consumed('same', 'g')).toHaveLength(0);
    await Promise.all([a.close(), b.close()]);
  });
});
