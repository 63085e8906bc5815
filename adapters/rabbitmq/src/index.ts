import type { AdapterInit } from '@wharf/core';
import { RabbitMqAdapter } from './adapter.js';
import type { RabbitMqAdapterOptions } from './options.js';

export { ADAPTER_NAME, RabbitMqAdapter, type RabbitMqRaw } from './adapter.js';
export { rawBaseline } from './bench.js';
export { decodeMessage, encodeProperties, HEADER_PREFIX } from './codec.js';
export { conformanceHarness, type ForeignAmqpMessage } from './foreign.js';
export type { RabbitMqAdapterOptions, RabbitMqTlsOptions } from './options.js';
export { type ChannelAccess, permissionsFor, type RabbitMqPermissions } from './permissions.js';
export { declaredQueueNames, exchangeName, type GroupNames, groupNames } from './topology.js';

/** Creates a RabbitMQ adapter: `createRabbitMqAdapter({ url: 'amqp://guest:guest@localhost:5672', logger })`. No I/O until `connect()`. */
export function createRabbitMqAdapter(init: AdapterInit & RabbitMqAdapterOptions): RabbitMqAdapter {
  return new RabbitMqAdapter(init);
}

export default createRabbitMqAdapter;
