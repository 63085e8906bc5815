import { runConformance } from '@wharf/conformance';
import { silentLogger } from '@wharf/core';
import createMemoryAdapter, { conformanceHarness } from '../src/index.js';

const url = 'memory://conformance';

runConformance({
  name: 'memory',
  create: () => createMemoryAdapter({ url, logger: silentLogger }),
  ...conformanceHarness(url),
});
