import { randomBytes } from 'node:crypto';
import { brokersRequired, probeBroker } from '@wharf/conformance';
import { createBus, parseBrokerUrl, silentLogger } from '@wharf/core';
import { beforeAll, describe, it } from 'vitest';
import { enableContextManager, spansNamed, tracingHarness } from './harness.js';
import { expectSagaTraces, runMiniSaga, SAGA_CHANNELS, SAGA_RETRY } from './saga.js';

const BROKERS = [
  { name: 'rabbitmq', url: process.env.WHARF_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672', port: 5672 },
  { name: 'kafka', url: process.env.WHARF_KAFKA_URL ?? 'kafka://127.0.0.1:9092', port: 9092 },
  { name: 'nats', url: process.env.WHARF_NATS_URL ?? 'nats://127.0.0.1:4222', port: 4222 },
] as const;

/** Short Kafka session and polls, as the Kafka suite uses, so groups join and retries run in seconds. */
const ADAPTER_OPTIONS: Record<string, Record<string, unknown>> = {
  kafka: {
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 300,
    rebalanceTimeoutMs: 10_000,
    maxWaitTimeMs: 100,
    commitIntervalMs: 200,
    releaseBackoffMs: 100,
    connectTimeoutMs: 10_000,
  },
};
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
  for (const broker of BROKERS) {
    it(`gives one trace per order across the mini saga on ${broker.name}`, async (ctx) => {
      const host = parseBrokerUrl(broker.url).hosts[0];
      const reason = await probeBroker(broker.name, host?.host ?? '127.0.0.1', host?.port ?? broker.port);
      if (reason !== undefined) {
        if (brokersRequired()) throw new Error(`[otel] the ${broker.name} test needs its broker: ${reason}`);
        console.warn(`[otel] skipping the ${broker.name} test: ${reason}`);
        return ctx.skip(reason);
      }
      const prefix = `otel-${randomBytes(4).toString('hex')}`;
      const { tracing, spans } = tracingHarness();
      const bus = createBus({
        url: broker.url,
        logger: silentLogger,
        instrumentation: tracing,
        adapterOptions: ADAPTER_OPTIONS[broker.name] ?? {},
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
