import { runConformance } from '@wharf/conformance';
import { adapter, cleanupChannel, legacyProducer, publishForeign, unavailable } from './helpers.js';

// The same suite with the adapter on @platformatic/kafka; the harness (foreign producer, cleanup)
// stays on kafkajs, so the records it writes come from another client, as a foreign producer's do.
runConformance({
  name: 'kafka (platformatic)',
  create: () => adapter({ client: 'platformatic' }),
  ...(unavailable !== undefined ? { unavailable } : {}),
  publishForeign,
  legacyProducer,
  cleanup: cleanupChannel,
  skip: [{ reason: 'a broker restart is chaos-only (conformance.chaos.test.ts)', tests: ['broker-restart'] }],
});
