import { execFileSync } from 'node:child_process';
import { type SecureBrokers, startSecureBrokers } from '@wharf/chaos';
import { brokersRequired } from '@wharf/conformance';
import { afterAll, beforeAll } from 'vitest';

function javaMissing(): string | undefined {
  try {
    execFileSync(process.env.JAVA_HOME ? `${process.env.JAVA_HOME}/bin/java` : 'java', ['-version'], {
      stdio: 'ignore',
      timeout: 20_000,
    });
    return undefined;
  } catch {
    return 'no java on PATH or in JAVA_HOME (scripts/kafka.sh needs Java 17+)';
  }
}

/** Why the secure Kafka node cannot be started here, or undefined. */
export const secureUnavailable: string | undefined = javaMissing();
// Under CI the secure tests fail instead of skipping.
if (secureUnavailable && brokersRequired()) throw new Error(`[wharf] kafka TLS tests: ${secureUnavailable}`);
if (secureUnavailable) process.stdout.write(`[wharf] kafka TLS tests skipped: ${secureUnavailable}\n`);

/**
 * A locked-down Kafka node of this test file's own (SSL with client certificates, SASL_SSL with
 * SCRAM, ACLs), started before its tests and stopped and removed after them, failed or not.
 */
export function secureKafkaPerFile(): () => SecureBrokers {
  let brokers: SecureBrokers | undefined;
  beforeAll(async () => {
    if (secureUnavailable === undefined) brokers = await startSecureBrokers({ kinds: ['kafka'] });
  }, 180_000);
  afterAll(async () => {
    await brokers?.destroy();
  }, 60_000);
  return () => {
    if (!brokers) throw new Error('the secure Kafka node is not running');
    return brokers;
  };
}
