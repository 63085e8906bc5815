import { runConformance } from '@wharf/conformance';
import { adapter, cleanupChannel, legacyProducer, publishForeign, unavailable } from './helpers.js';

// The same suite with the adapter on kafkajs, its second client (conformance.test.ts runs the
// default, @platformatic/kafka). The harness (foreign producer, cleanup) is on kafkajs.
runConformance({
  name: 'kafka (kafkajs)',
  create: () => adapter({ client: 'kafkajs' }),
  ...(unavailable !== undefined ? { unavailable } : {}),
  publishForeign,
  legacyProducer,
  cleanup: cleanupChannel,
  skip: [{ reason: 'a broker restart is chaos-only (conformance.chaos.test.ts)', tests: ['broker-restart'] }],
});
