import { type SecureBrokers, startSecureBrokers } from '@wharf/chaos';
import { runConformance } from '@wharf/conformance';
import { silentLogger } from '@wharf/core';
import { afterAll } from 'vitest';
import createKafkaAdapter, { conformanceHarness, type KafkaAdapterOptions } from '../src/index.js';
import { FAST } from './helpers.js';
import { secureUnavailable } from './secure-brokers.js';

// The suite over SASL_SSL (SCRAM-SHA-512, the admin user, no client certificate) on a locked-down
// node of this file's own. runConformance creates an adapter while it registers the cases, so the
// node starts here, before it, rather than in a beforeAll.
const brokers: SecureBrokers | undefined =
  secureUnavailable === undefined ? await startSecureBrokers({ kinds: ['kafka'] }) : undefined;
afterAll(async () => {
  await brokers?.destroy();
}, 60_000);

const url = brokers?.kafka?.url ?? 'kafkas://127.0.0.1:1';
const secure: KafkaAdapterOptions = brokers?.kafka
  ? {
      tls: { caFile: brokers.certs.ca },
      username: brokers.kafka.admin.name,
      password: brokers.kafka.admin.password,
      saslMechanism: 'scram-sha-512',
    }
  : {};
const harness = conformanceHarness(url, secure);

for (const client of ['kafkajs', 'platformatic'] as const) {
  runConformance({
    name: `kafka (${client}) over SASL_SSL (SCRAM-SHA-512)`,
    create: () => createKafkaAdapter({ url, logger: silentLogger, ...FAST, ...secure, client }),
    ...(secureUnavailable !== undefined ? { unavailable: secureUnavailable } : {}),
    publishForeign: harness.publishForeign,
    cleanup: harness.cleanup,
    legacyProducer: harness.legacyProducer,
    skip: [{ reason: 'a broker restart is chaos-only (conformance.chaos.test.ts)', tests: ['broker-restart'] }],
  });
}
