import { randomBytes } from 'node:crypto';
import { brokersRequired, probeBroker } from '@wharf/conformance';
import { parseBrokerUrl } from '@wharf/core';

/** The real brokers, at the URLs the adapters' own suites use. */
export const BROKERS = [
  { name: 'rabbitmq', url: process.env.WHARF_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672', port: 5672 },
  { name: 'kafka', url: process.env.WHARF_KAFKA_URL ?? 'kafka://127.0.0.1:9092', port: 9092 },
  { name: 'nats', url: process.env.WHARF_NATS_URL ?? 'nats://127.0.0.1:4222', port: 4222 },
] as const;

/**
 * Short Kafka session and polls, as the Kafka suite uses, so a test's group joins and its retries
 * are picked up in seconds.
 */
export const ADAPTER_OPTIONS: Record<string, Record<string, unknown>> = {
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

/** Why the broker at `url` cannot be used, or undefined when it answers. */
export async function unavailable(name: string, url: string, port: number): Promise<string | undefined> {
  const host = parseBrokerUrl(url).hosts[0];
  return probeBroker(name, host?.host ?? '127.0.0.1', host?.port ?? port);
}

/** Skips (locally) or fails (CI / WHARF_REQUIRE_BROKERS) a test whose broker is missing, saying why. */
export function skipOrFail(ctx: { skip(note?: string): void }, name: string, reason: string): void {
  if (brokersRequired()) throw new Error(`[prometheus] the ${name} test needs its broker: ${reason}`);
  console.warn(`[prometheus] skipping the ${name} test: ${reason}`);
  ctx.skip(reason);
}

/** A channel name no other test or run uses. */
export function uniqueChannel(label: string): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

/** Deletes what a test declared on `url` (queues, retry tiers, topics, streams), through the adapter's harness. */
export async function cleanup(url: string, channel: string, groups: readonly string[], delays: readonly number[]) {
  const scheme = parseBrokerUrl(url).scheme;
  const pkg = { amqp: '@wharf/rabbitmq', amqps: '@wharf/rabbitmq', kafka: '@wharf/kafka', nats: '@wharf/nats' }[scheme];
  if (pkg === undefined) return;
  const { conformanceHarness } = (await import(pkg)) as {
    conformanceHarness(url: string): {
      cleanup(channel: string, groups: readonly string[], retryDelaysMs?: readonly number[]): Promise<void>;
    };
  };
  await conformanceHarness(url).cleanup(channel, groups, delays);
}
