import { runConformance } from '@wharf/conformance';
import { silentLogger } from '@wharf/core';
import createRabbitMqAdapter from '../src/index.js';
import { cleanup, publishForeign, restartBroker, unavailable, url } from './helpers.js';

// Only the restart case runs here: it stops the shared broker, so it runs alone (chaos project).
runConformance({
  name: 'rabbitmq (broker restart)',
  create: () => createRabbitMqAdapter({ url, logger: silentLogger }),
  ...(unavailable !== undefined ? { unavailable } : {}),
  publishForeign,
  cleanup,
  restartBroker: () => restartBroker(),
  only: ['broker-restart'],
});
