import type { AdapterInit } from '@wharf/core';
import { KafkaAdapter } from './adapter.js';
import type { KafkaAdapterOptions } from './options.js';

export { KafkaAdapter } from './adapter.js';
export { rawBaseline } from './bench.js';
export { decode, encode } from './codec.js';
export { REMOVED_HEADER } from './dead-letters.js';
export { conformanceHarness, type ForeignKafkaMessage, type KafkaConformanceHarness } from './foreign.js';
export type { KafkaAdapterOptions } from './options.js';
export { ADAPTER_NAME } from './options.js';
export {
  type ChannelAccess,
  type KafkaAcl,
  type KafkaOperation,
  type KafkaPermissionsOptions,
  type KafkaResourceType,
  permissionsFor,
} from './permissions.js';
export { checkName, escapeName, MAX_TOPIC_NAME, Names, splitName, unescapeName } from './topology.js';

/** Creates a Kafka adapter: `createKafkaAdapter({ url: 'kafka://127.0.0.1:9092', logger })`. */
export function createKafkaAdapter(init: AdapterInit & KafkaAdapterOptions): KafkaAdapter {
  return new KafkaAdapter(init);
}

export default createKafkaAdapter;
