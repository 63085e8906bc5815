import { runConformance } from '@wharf/conformance';
import { adapter, cleanup, publishForeign, unavailable } from './helpers.js';

runConformance({
  name: 'nats',
  create: () => adapter(),
  ...(unavailable !== undefined ? { unavailable } : {}),
  publishForeign,
  cleanup,
  skip: [
    {
      reason:
        'JetStream keeps a message nak-ed with a delay ack-pending and has no count of its own for it: it is in inFlight (backlog.test.ts)',
      tests: ['backlog-delayed'],
    },
  ],
});
