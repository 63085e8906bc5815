import { runConformance } from '@wharf/conformance';
import { adapter, cleanupChannel, legacyProducer, publishForeign, unavailable } from './helpers.js';

runConformance({
  name: 'kafka',
  create: () => adapter(),
  ...(unavailable !== undefined ? { unavailable } : {}),
  publishForeign,
  legacyProducer,
  cleanup: cleanupChannel,
  skip: [{ reason: 'runs in conformance.chaos.test.ts (it restarts the broker)', tests: ['broker-restart'] }],
});
