export { amqpServes, kafkaServes, natsJetStreamServes } from './brokers/handshake.js';
export {
  BROKER_KINDS,
  type BrokerKind,
  type ManagedBroker,
  type ManagedRabbitMq,
  type StartBrokerOptions,
  startBroker,
} from './brokers/index.js';
export { freePort } from './brokers/ports.js';
export {
  type BrokerWitness,
  type CheckInput,
  type CheckResult,
  check,
  type DeliveryRecord,
  eventKey,
  type PublishOutcome,
  type PublishRecord,
} from './checker/checker.js';
export * from './errors.js';
export type { DataFault, Direction, Fault } from './proxy/fault.js';
export { type FaultProxy, type ProxyOptions, type ProxyStats, startProxy } from './proxy/proxy.js';
export {
  RABBITMQ_SNI,
  type SecureBroker,
  type SecureBrokers,
  type SecureBrokersOptions,
  type SecureKafka,
  type SecureNats,
  type SecureRabbitMq,
  type SecureUser,
  startSecureBrokers,
} from './secure/brokers.js';
export { type CertPair, makeCertificates, type TestCertificates } from './secure/certs.js';
export {
  addKafkaUsers,
  addNatsUsers,
  addRabbitMqUsers,
  type KafkaAclGrant,
  type KafkaGrant,
  type NatsGrant,
  type RabbitMqGrant,
  type SecureUserGrant,
} from './secure/users.js';
export { type ChaosOptions, type ChaosReport, runChaos, selectScenarios } from './suite.js';
export { type ScenarioSummary, type Spread, summarize } from './summary.js';
export * from './workload/index.js';
