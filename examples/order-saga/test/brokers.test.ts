import { describe, expect, it } from 'vitest';
import { comparable } from '../src/index.js';
import { BROKERS, runSagaProcess } from './brokers.js';
import { EXPECTED_SUMMARY, ORDERS, SEED } from './expected.js';

// The memory summary (test/saga.test.ts) is the reference: every broker must reach exactly it.
// A broker that is not running (or whose adapter is missing) is skipped with the reason printed;
// under CI it fails instead.
describe.each(BROKERS)('order saga on $name', ({ name, url }) => {
  it('reaches the same summary as on memory, every invariant holding', { timeout: 300_000 }, async (ctx) => {
    const result = await runSagaProcess([url, String(ORDERS), String(SEED)]);
    if (result.unavailable !== undefined) {
      console.warn(`[saga] skipping the saga on ${name}: ${result.unavailable}`);
      ctx.skip(result.unavailable);
      return;
    }
    const { summary } = result;
    expect(summary.run.broker).toBe(name);
    expect(comparable(summary)).toEqual(EXPECTED_SUMMARY);
    console.info(
      `[saga] ${name}: ${summary.timings.ordersPerSecond} orders/s (${summary.timings.durationMs} ms for ${ORDERS} orders)`,
    );
  });
});
