import { runConformance } from '@wharf/conformance';
import { silentLogger } from '@wharf/core';
import createRabbitMqAdapter from '../src/index.js';
import { cleanup, legacyProducer, publishForeign, unavailable, url } from './helpers.js';

runConformance({
  name: 'rabbitmq',
  create: () => createRabbitMqAdapter({ url, logger: silentLogger }),
  ...(unavailable !== undefined ? { unavailable } : {}),
  publishForeign,
  legacyProducer,
  cleanup,
});
