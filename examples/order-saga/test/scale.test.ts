import { describe, expect, it } from 'vitest';
import { comparable } from '../src/index.js';
import { BROKERS, deleteNamespace, runSagaProcess, skipOrFail, testNamespace } from './brokers.js';
import { EXPECTED_SCALE_SUMMARY, SCALE_ORDERS, SEED } from './expected.js';

// Issue 22: the saga at 10,000 orders on every transport, each in its own process as `wharf saga`
// runs it, must reach exactly the summary above — every order terminal or dead-lettered, every
// invariant holding, no incident. A transport that leaves events stuck fails here with the stuck
// orders named in the `settled` invariant's detail.
//
// The wait for orders to settle is bounded (2 minutes, a healthy run needs a fraction of it), so a
// stuck run fails within the test's own time limit rather than hanging CI.
const SETTLE_TIMEOUT_MS = 120_000;

describe.each([{ name: 'memory', url: 'memory://' }, ...BROKERS])('order saga at scale on $name', ({ name, url }) => {
  it(`settles ${SCALE_ORDERS.toLocaleString('en-US')} orders with every invariant holding`, {
    timeout: 300_000,
  }, async (ctx) => {
    const started = Date.now();
    const namespace = testNamespace('scale');
    ctx.onTestFinished(() => deleteNamespace(url, namespace));
    const result = await runSagaProcess([url, String(SCALE_ORDERS), String(SEED)], {
      WHARF_SAGA_TIMEOUT_MS: String(SETTLE_TIMEOUT_MS),
      WHARF_SAGA_NAMESPACE: namespace,
    });
    if (result.unavailable !== undefined) return skipOrFail(ctx, `the saga at scale on ${name}`, result.unavailable);
    const { summary } = result;
    const { durationMs, ordersPerSecond } = summary.timings;
    console.info(
      `[saga] ${name} at ${SCALE_ORDERS} orders: ${ordersPerSecond} orders/s, ` +
        `${Math.round((summary.eventsPublished / durationMs) * 1000)} events/s (${durationMs} ms; ` +
        `${Date.now() - started} ms with start-up); unsettled ${summary.unsettled}, incidents ${summary.incidents}`,
    );
    expect(summary.run.broker).toBe(name);
    expect(comparable(summary)).toEqual(EXPECTED_SCALE_SUMMARY);
  });
});
