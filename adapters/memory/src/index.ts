import type { AdapterInit } from '@wharf/core';
import { MemoryAdapter } from './adapter.js';
import type { MemoryAdapterOptions } from './options.js';

export { ADAPTER_NAME, MemoryAdapter } from './adapter.js';
export { rawBaseline } from './bench.js';
export { MemoryBroker } from './broker.js';
export type { ForeignMemoryMessage } from './codec.js';
export { decodeForeign } from './codec.js';
export { conformanceHarness, publishForeign } from './foreign.js';
export type { Clock, MemoryAdapterOptions } from './options.js';

/** Creates a memory adapter: `createMemoryAdapter({ url: 'memory://', logger })`. */
export function createMemoryAdapter(init: AdapterInit & MemoryAdapterOptions): MemoryAdapter {
  return new MemoryAdapter(init);
}

export default createMemoryAdapter;
