import { describe, expect, it } from 'vitest';
import { runScenario, SCENARIOS } from '../src/index.js';
import { privateBroker } from './chaos-suite.js';

// The suite must be able to fail: the same consumer kill -9, with an adapter that acks each
// delivery before the handler runs (at-most-once), must be reported as loss by the checker.
describe('a deliberately broken adapter (acks before the handler)', () => {
  const { broker, proxy } = privateBroker('rabbitmq');
  const consumerKill = SCENARIOS.find((scenario) => scenario.name === 'consumer-kill');

  it('loses events under a consumer kill -9, and the checker says so', async () => {
    if (consumerKill === undefined) throw new Error('the consumer-kill scenario is missing');
    // Slow handlers keep several acked-but-unhandled events in flight at the moment of the kill.
    const report = await runScenario(consumerKill, {
      broker: broker(),
      proxy: proxy(),
      events: 600,
      handlerMs: 100,
      ackBeforeHandler: true,
    });
    process.stderr.write(
      `[chaos] broken adapter: lost ${report.lost} (${report.lostIds.slice(0, 10).join(',')}), consumed ${report.consumed}/${report.confirmed}\n`,
    );
    expect(report.error).toBeUndefined();
    expect(report.confirmed).toBe(600);
    expect(report.lost).toBeGreaterThan(0);
    expect(report.ok).toBe(false);
  }, 400_000);
});
