/** Opens the client library the options chose. */
import { createClient } from './client.js';
import { createPlatformaticClient } from './client-platformatic.js';
import type { ClientConfig, KafkaClient } from './client-types.js';
import type { ClientKind } from './options.js';

export function openClient(kind: ClientKind, config: ClientConfig): KafkaClient {
  return kind === 'platformatic' ? createPlatformaticClient(config) : createClient(config);
}
