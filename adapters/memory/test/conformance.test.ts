import { runConformance } from '@wharf/conformance';
import { silentLogger } from '@wharf/core';
import createMemoryAdapter, { MemoryBroker, publishForeign } from '../src/index.js';
import { systemClock } from '../src/options.js';

const url = 'memory://conformance';

runConformance({
  name: 'memory',
  create: () => createMemoryAdapter({ url, logger: silentLogger }),
  publishForeign: (channel, message) => publishForeign(url, channel, message),
  restartBroker: () => MemoryBroker.get('conformance', systemClock).restart(300),
});
