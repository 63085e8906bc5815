import { runConformance } from '@wharf/conformance';
import { CONFORMANCE_SKIPS } from '../src/index.js';
import { adapter, cleanup, legacyProducer, publishForeign, unavailable } from './helpers.js';

runConformance({
  name: 'nats',
  create: () => adapter(),
  ...(unavailable !== undefined ? { unavailable } : {}),
  publishForeign,
  legacyProducer,
  cleanup,
  skip: CONFORMANCE_SKIPS,
});
