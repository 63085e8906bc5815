import { runConformance } from '@wharf/conformance';
import { adapter, cleanup, publishForeign, restartServer, unavailable } from './helpers.js';

// Known issue (issue 5, open): in full CI runs this case lost one event published during the
// server restart in 2 of 5 runs (59 of 60 received, no dead letter); run alone it passed 8 of 8.
// Until it is understood it runs only on request: WHARF_NATS_RESTART=1 npx vitest run --project chaos adapters/nats
const investigate = process.env.WHARF_NATS_RESTART === '1';

// Only the restart case runs here (sequentially, after everything else); the rest run in conformance.test.ts.
runConformance({
  name: 'nats (restart)',
  create: () => adapter(),
  ...(unavailable !== undefined ? { unavailable } : {}),
  publishForeign,
  cleanup,
  restartBroker: () => restartServer(1_500),
  only: ['broker-restart'],
  skip: investigate
    ? []
    : [
        {
          reason:
            'known issue: an event published during a nats-server 2.9.10 restart was lost in 2 of 5 CI runs (issue 5); set WHARF_NATS_RESTART=1 to run it',
          tests: ['broker-restart'],
        },
      ],
});
