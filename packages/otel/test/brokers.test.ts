import { randomBytes } from 'node:crypto';
import { requireBroker, TEST_ADAPTER_OPTIONS, TEST_BROKERS } from '@wharf/conformance';
import { createBus, parseBrokerUrl, silentLogger } from '@wharf/core';
import { beforeAll, describe, it } from 'vitest';
import { enableContextManager, spansNamed, tracingHarness } from './harness.js';
import { expectSagaTraces, runMiniSaga, SAGA_CHANNELS, SAGA_RETRY } from './saga.js';

const PACKAGES: Record<string, string> = { amqp: '@wharf/rabbitmq', kafka: '@wharf/kafka', nats: '@wharf/nats' };

beforeAll(enableContextManager);

/** Deletes the saga's queues/streams and retry tiers through the adapter's own harness. */
async function cleanup(url: string, prefix: string): Promise<void> {
  const pkg = PACKAGES[parseBrokerUrl(url).scheme] ?? '@wharf/rabbitmq';
  const { conformanceHarness } = (await import(pkg)) as {
    conformanceHarness(url: string): {
      cleanup(channel: string, groups: readonly string[], retryDelaysMs?: readonly number[]): Promise<void>;
    };
  };
  const harness = conformanceHarness(url);
  for (const [channel, group] of SAGA_CHANNELS(prefix)) await harness.cleanup(channel, [group], SAGA_RETRY.delays);
}

describe('@wharf/otel on real brokers', () => {
  for (const broker of TEST_BROKERS) {
    it(`gives one trace per order across the mini saga on ${broker.name}`, async (ctx) => {
      if (!(await requireBroker(ctx, 'otel', broker))) return;
      const prefix = `otel-${randomBytes(4).toString('hex')}`;
      const { tracing, spans } = tracingHarness();
      const bus = createBus({
        url: broker.url,
        logger: silentLogger,
        instrumentation: tracing,
        adapterOptions: TEST_ADAPTER_OPTIONS[broker.name] ?? {},
      });
      try {
        await runMiniSaga(bus, prefix, ['o-1', 'o-2', 'o-3']);
        await spansNamed(spans, new RegExp(`^process ${prefix}.outcomes`), 3, 30_000);
        await bus.close();
        expectSagaTraces(spans(), prefix, 3, { ambientIsSend: true });
      } finally {
        await bus.close();
        await cleanup(broker.url, prefix);
      }
    }, 120_000);
  }
});
