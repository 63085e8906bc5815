import { existsSync } from 'node:fs';
import { type SecureBrokers, startSecureBrokers } from '@wharf/chaos';
import { brokersRequired } from '@wharf/conformance';
import { afterAll, beforeAll } from 'vitest';

/** Why the secure RabbitMQ node cannot be started here, or undefined. */
export const secureUnavailable: string | undefined = existsSync(
  process.env.WHARF_NATS_SERVER ?? '/usr/sbin/nats-server',
)
  ? undefined
  : 'no nats-server in /usr/sbin (set WHARF_NATS_SERVER)';
// Under CI the secure tests fail instead of skipping.
if (secureUnavailable && brokersRequired()) throw new Error(`[wharf] nats TLS tests: ${secureUnavailable}`);
if (secureUnavailable) process.stdout.write(`[wharf] nats TLS tests skipped: ${secureUnavailable}\n`);

/** A TLS-only nats-server (mutual TLS, users with subject permissions) for one test file, stopped and removed after it. */
export function secureNatsPerFile(): () => SecureBrokers {
  let brokers: SecureBrokers | undefined;
  beforeAll(async () => {
    brokers = await startSecureBrokers({ kinds: ['nats'] });
  }, 60_000);
  afterAll(async () => {
    await brokers?.destroy();
  });
  return () => {
    if (!brokers) throw new Error('the secure NATS server is not running');
    return brokers;
  };
}
