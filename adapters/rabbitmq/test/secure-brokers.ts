import { existsSync } from 'node:fs';
import { type SecureBrokers, startSecureBrokers } from '@wharf/chaos';
import { brokersRequired } from '@wharf/conformance';
import { afterAll, beforeAll } from 'vitest';

/** Why the secure RabbitMQ node cannot be started here, or undefined. */
export const secureUnavailable: string | undefined = existsSync(
  process.env.WHARF_RABBITMQ_SERVER ?? '/usr/lib/rabbitmq/bin/rabbitmq-server',
)
  ? undefined
  : 'no rabbitmq-server in /usr/lib/rabbitmq/bin (set WHARF_RABBITMQ_SERVER)';
// Under CI the secure tests fail instead of skipping.
if (secureUnavailable && brokersRequired()) throw new Error(`[wharf] rabbitmq TLS tests: ${secureUnavailable}`);
if (secureUnavailable) process.stdout.write(`[wharf] rabbitmq TLS tests skipped: ${secureUnavailable}\n`);

/** A TLS-only RabbitMQ node (mutual TLS, users, vhosts) for one test file, stopped and removed after it. */
export function secureRabbitPerFile(): () => SecureBrokers {
  let brokers: SecureBrokers | undefined;
  beforeAll(async () => {
    brokers = await startSecureBrokers({ kinds: ['rabbitmq'] });
  }, 150_000);
  afterAll(async () => {
    await brokers?.destroy();
  });
  return () => {
    if (!brokers) throw new Error('the secure RabbitMQ node is not running');
    return brokers;
  };
}
