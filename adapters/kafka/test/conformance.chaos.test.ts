import { runConformance } from '@wharf/conformance';
import { silentLogger } from '@wharf/core';
import { afterAll } from 'vitest';
import createKafkaAdapter, { conformanceHarness } from '../src/index.js';
import { FAST } from './helpers.js';
import { PrivateBroker } from './private-broker.js';

// The restart case stops and starts a broker: a private one on free ports, never the shared broker
// other suites (and other engineers' runs) use at the same time. Stopped and deleted at the end.
const broker = await PrivateBroker.create();
let unavailable: string | undefined;
try {
  await broker.up();
} catch (error) {
  unavailable = `a private Kafka broker could not be started (${String(error)})`;
}
afterAll(() => broker.stop(), 120_000);
const harness = conformanceHarness(broker.url);

// Both clients (issue 21): the restart case on the second client too.
for (const client of ['kafkajs', 'platformatic'] as const) {
  runConformance({
    name: `kafka (chaos, ${client})`,
    create: () => createKafkaAdapter({ url: broker.url, logger: silentLogger, ...FAST, client }),
    ...(unavailable !== undefined ? { unavailable } : {}),
    publishForeign: harness.publishForeign,
    cleanup: harness.cleanup,
    // Stopped cleanly, then started again whatever happened.
    restartBroker: async () => {
      try {
        await broker.restart();
      } finally {
        await broker.up();
      }
    },
    only: ['broker-restart'],
  });
}
