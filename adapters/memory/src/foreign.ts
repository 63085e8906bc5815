import { parseBrokerUrl } from '@wharf/core';
import { MemoryBroker } from './broker.js';
import { decodeForeign, type ForeignMemoryMessage } from './codec.js';
import { systemClock } from './options.js';

/** Puts a message on a memory broker as a foreign (non-Wharf) producer would. */
export async function publishForeign(url: string, channel: string, message: ForeignMemoryMessage): Promise<void> {
  const name = parseBrokerUrl(url).hosts[0]?.host ?? 'default';
  MemoryBroker.get(name, systemClock).append(channel, [decodeForeign(message)], [message.headers?.ce_partitionkey]);
}

/** What `wharf conformance` needs beyond the adapter: a foreign producer and a (simulated) restart. */
export function conformanceHarness(url: string): {
  publishForeign: (channel: string, message: ForeignMemoryMessage) => Promise<void>;
  restartBroker: () => Promise<void>;
} {
  const name = parseBrokerUrl(url).hosts[0]?.host ?? 'default';
  return {
    publishForeign: (channel, message) => publishForeign(url, channel, message),
    restartBroker: () => MemoryBroker.get(name, systemClock).restart(300),
  };
}
