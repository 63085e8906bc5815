import type { AdapterInit } from '@wharf/core';
import { NatsAdapter } from './adapter.js';
import type { NatsAdapterOptions } from './options.js';

export { NatsAdapter } from './adapter.js';
export { rawBaseline } from './bench.js';
export { decodeMessage, encodeHeaders, messageId } from './codec.js';
export type { ForeignNatsMessage, NatsConformanceHarness } from './foreign.js';
export { CONFORMANCE_SKIPS, conformanceHarness, publishForeign } from './foreign.js';
export type { NatsAdapterOptions, NatsTlsOptions } from './options.js';
export { ADAPTER_NAME } from './options.js';
export { type ChannelAccess, type NatsPermissions, permissionsFor } from './permissions.js';
export type { ChannelNames } from './topology.js';
export { channelNames, dlqSubject, durableName, escapeName } from './topology.js';

/** Creates a NATS JetStream adapter: `createNatsAdapter({ url: 'nats://127.0.0.1:4222', logger })`. */
export function createNatsAdapter(init: AdapterInit & NatsAdapterOptions): NatsAdapter {
  return new NatsAdapter(init);
}

export default createNatsAdapter;
