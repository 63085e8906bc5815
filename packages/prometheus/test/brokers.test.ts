import { requireBroker, TEST_ADAPTER_OPTIONS, TEST_BROKERS } from '@wharf/conformance';
import { createBus, silentLogger } from '@wharf/core';
import { describe, expect, it } from 'vitest';
import { createPrometheusMetrics } from '../src/index.js';
import { cleanup, uniqueChannel } from './brokers.js';
import { expectedFigures, FIGURES, RETRY, runWorkload, settled } from './workload.js';

describe('@wharf/prometheus on the real brokers', () => {
  for (const broker of TEST_BROKERS) {
    it(`counts the known workload exactly on ${broker.name}`, async (ctx) => {
      if (!(await requireBroker(ctx, 'prometheus', broker))) return;
      const channel = uniqueChannel('prom');
      const group = 'metrics';
      const metrics = createPrometheusMetrics();
      const bus = createBus({
        url: broker.url,
        logger: silentLogger,
        instrumentation: metrics,
        adapterOptions: TEST_ADAPTER_OPTIONS[broker.name] ?? {},
      });
      try {
        await runWorkload(bus, channel, group);
        await settled(metrics.registry, FIGURES.consumed, 90_000);
        await bus.close();
        expect(await expectedFigures(metrics.registry, broker.name, channel, group)).toEqual(FIGURES);
      } finally {
        await bus.close();
        await cleanup(broker.url, channel, [group], RETRY.delays);
      }
    }, 150_000);
  }
});
