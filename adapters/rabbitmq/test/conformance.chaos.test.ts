import { runConformance } from '@wharf/conformance';
import { silentLogger } from '@wharf/core';
import { afterAll } from 'vitest';
import createRabbitMqAdapter, { conformanceHarness } from '../src/index.js';
import { PREFIX } from './helpers.js';
import { PrivateNode, privateNodeUnavailable } from './private-node.js';

// Only the restart case runs here, against a node of its own (the shared node is never stopped):
// it is started before the suite is collected because the harness needs its URL.
const node = privateNodeUnavailable === undefined ? await PrivateNode.start('conformance') : undefined;
afterAll(async () => {
  await node?.destroy();
}, 120_000);

const url = node?.url ?? 'amqp://guest:guest@127.0.0.1:1';
const harness = conformanceHarness(url, PREFIX);

runConformance({
  name: 'rabbitmq (broker restart, private node)',
  create: () => createRabbitMqAdapter({ url, logger: silentLogger }),
  ...(privateNodeUnavailable !== undefined ? { unavailable: privateNodeUnavailable } : {}),
  publishForeign: harness.publishForeign,
  cleanup: harness.cleanup,
  restartBroker: async () => {
    await node?.restart(1_000);
  },
  only: ['broker-restart'],
});
