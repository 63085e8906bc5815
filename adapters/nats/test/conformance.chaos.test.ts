import { runConformance } from '@wharf/conformance';
import { adapter, cleanup, publishForeign, restartServer, unavailable } from './helpers.js';

// Only the restart case runs here (sequentially, after everything else); the rest run in conformance.test.ts.
runConformance({
  name: 'nats (restart)',
  create: () => adapter(),
  ...(unavailable !== undefined ? { unavailable } : {}),
  publishForeign,
  cleanup,
  restartBroker: () => restartServer(1_500),
  only: ['broker-restart'],
});
