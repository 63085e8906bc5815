import { describe, expect, it } from 'vitest';
import { comparable } from '../src/index.js';
import { BROKERS, deleteNamespace, runSagaProcess, skipOrFail, testNamespace } from './brokers.js';
import { EXPECTED_SUMMARY, ORDERS, SEED } from './expected.js';

// The memory summary (test/saga.test.ts) is the reference: every broker must reach exactly it.
// A broker that is not running (or whose adapter is missing) is skipped with the reason printed;
// under CI it fails instead.
describe.each(BROKERS)('order saga on $name', ({ name, url }) => {
  it('reaches the same summary as on memory, every invariant holding', { timeout: 300_000 }, async (ctx) => {
    const namespace = testNamespace('brokers');
    ctx.onTestFinished(() => deleteNamespace(url, namespace));
    const result = await runSagaProcess([url, String(ORDERS), String(SEED)], { WHARF_SAGA_NAMESPACE: namespace });
    if (result.unavailable !== undefined) return skipOrFail(ctx, `the saga on ${name}`, result.unavailable);
    const { summary } = result;
    expect(summary.run.broker).toBe(name);
    expect(comparable(summary)).toEqual(EXPECTED_SUMMARY);
    console.info(
      `[saga] ${name}: ${summary.timings.ordersPerSecond} orders/s (${summary.timings.durationMs} ms for ${ORDERS} orders)`,
    );
  });
});

describe('order saga on a broker that is not there', () => {
  it.each([
    ['rabbitmq', 'amqp://guest:guest@127.0.0.1:1'],
    ['nats', 'nats://127.0.0.1:1'],
  ])('fails at start with a clear error naming the broker (%s)', { timeout: 60_000 }, async (_name, url) => {
    const started = Date.now();
    const result = await runSagaProcess([url, '5', '1']);
    expect(result.unavailable).toMatch(
      /cannot start the saga on .*127\.0\.0\.1:1.*(cannot reach|not reachable|unreachable|refused)/i,
    );
    expect(Date.now() - started).toBeLessThan(45_000);
  });
});
