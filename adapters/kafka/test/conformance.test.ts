import { runConformance } from '@wharf/conformance';
import { adapter, cleanupChannel, publishForeign, unavailable } from './helpers.js';

runConformance({
  name: 'kafka',
  create: () => adapter(),
  ...(unavailable !== undefined ? { unavailable } : {}),
  publishForeign,
  cleanup: cleanupChannel,
  skip: [{ reason: 'runs in conformance.chaos.test.ts (it restarts the broker)', tests: ['broker-restart'] }],
});
