/**
 * @wharf/testing — test the handlers of a service that embeds Wharf: a test bus on memory with a
 * virtual clock and recorders, the same test on a real broker (`WHARF_TEST_BROKER`), and
 * `startBroker` for a broker from Testcontainers or the one already running.
 */

export {
  BROKER_IMAGES,
  type BrokerFacts,
  type BrokerKind,
  type BrokerSelection,
  type BrokerSource,
  type ContainerRuntime,
  DEFAULT_BROKERS,
  detectContainerRuntime,
  kafkaEnvironment,
  type StartBrokerOptions,
  type StartedBroker,
  selectBrokerSource,
  startBroker,
  type TestcontainersModule,
} from './brokers.js';
export type { TestClock } from './clock.js';
export { BrokerStartError, RealTimeError, SettleTimeoutError } from './errors.js';
export { KAFKA_TEST_OPTIONS, type TestBusOptions } from './options.js';
export { createTestBus, type TestBus } from './test-bus.js';
export type { ChannelEvent, ChannelName, SettlementRecord, TestDeadLetter } from './types.js';
