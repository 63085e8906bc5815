import { runConformance } from '@wharf/conformance';
import { CONFORMANCE_SKIPS } from '../src/index.js';
import { adapter, cleanup, publishForeign, unavailable } from './helpers.js';

runConformance({
  name: 'nats',
  create: () => adapter(),
  ...(unavailable !== undefined ? { unavailable } : {}),
  publishForeign,
  cleanup,
  skip: CONFORMANCE_SKIPS,
});
