import { randomBytes } from 'node:crypto';
import { parseBrokerUrl } from '@wharf/core';

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
