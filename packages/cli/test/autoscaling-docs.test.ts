import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Names } from '@wharf/kafka';
import { durableName, escapeName } from '@wharf/nats';
import { groupNames } from '@wharf/rabbitmq';
import { describe, expect, it } from 'vitest';

const doc = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '../../../docs/autoscaling.md'), 'utf8');

/** The value of `key:` in the YAML block of the trigger `type`. */
function field(type: string, key: string): string | undefined {
  const block = doc.split('```yaml').find((b) => b.includes(`- type: ${type}\n`));
  return block?.match(new RegExp(`\\n\\s+${key}: ([^\\s#]+)`))?.[1];
}

describe('docs/autoscaling.md', () => {
  const channel = 'orders.placed';
  const group = 'inventory';

  it("gives KEDA the RabbitMQ adapter's queue name", () => {
    expect(field('rabbitmq', 'queueName')).toBe(groupNames('wharf', channel, group).queue);
  });

  it("gives KEDA the Kafka adapter's topic and consumer group", () => {
    const names = new Names('wharf');
    expect(field('kafka', 'topic')).toBe(names.channel(channel));
    expect(field('kafka', 'consumerGroup')).toBe(names.group(channel, group));
  });

  it("gives KEDA the JetStream adapter's stream and durable consumer", () => {
    expect(field('nats-jetstream', 'stream')).toBe(`WHARF-${escapeName(channel)}`);
    expect(field('nats-jetstream', 'consumer')).toBe(durableName(group));
  });
});
