import { runConformance } from '@wharf/conformance';
import { adapter, cleanup, publishForeign, unavailable } from './helpers.js';

runConformance({
  name: 'nats',
  create: () => adapter(),
  ...(unavailable !== undefined ? { unavailable } : {}),
  publishForeign,
  cleanup,
});
