export type {
  Adapter,
  AdapterFactory,
  AdapterInit,
  AdapterSubscription,
  Capabilities,
  Decoded,
  Delivery,
  GroupBacklog,
  PublishRequestOptions,
  RetryInstruction,
  StoredDeadLetter,
  SubscribeRequest,
} from './adapter.js';
export { DEFAULT_CAPABILITIES } from './adapter.js';
export type { BenchOptions, BenchResult, RawBaseline } from './bench.js';
export { payloadAge, stampPayload, startMeasurement, windowed } from './bench.js';
export type { BusOptions, DeadLetter, SubscribeOptions, Subscription } from './bus.js';
export { Bus, createBus } from './bus.js';
export type { BusObserver, EventValidator, Handler, HandlerContext, HandlerMap, SettleOutcome } from './consumer.js';
export { dispatchByType, NoHandlerError } from './consumer.js';
export type { DeadLetterInfo, DeadLetterReason } from './dead-letter.js';
export {
  DEAD_LETTER_HEADERS,
  deadLetterHeaders,
  deadLetterInfo,
  MAX_ERROR_STACK,
  oneLine,
  parseDeadLetterHeaders,
  STACK_SEPARATOR,
} from './dead-letter.js';
export type { DedupStore } from './dedup.js';
export { MemoryDedupStore } from './dedup.js';
export type {
  DeadLetterEntry,
  DeadLetterFilter,
  DeadLetterGroupCount,
  DeadLetterListing,
  DeadLetterOutcome,
  DeadLetterQueueOptions,
  DeadLetterTarget,
  ReplayOptions,
} from './dlq.js';
export { DeadLetterQueue, REPLAY_COUNT_EXTENSION } from './dlq.js';
export type { CloudEvent, EventInput, WireMessage } from './envelope.js';
export {
  BINARY_CONTENT_TYPE,
  createEvent,
  decodeEvent,
  decodeStructured,
  encodeEvent,
  encodeStructured,
  isStructured,
  JSON_CONTENT_TYPE,
  STRUCTURED_CONTENT_TYPE,
  validateEvent,
  WELL_KNOWN_ATTRIBUTES,
} from './envelope.js';
export * from './errors.js';
export { ATTEMPT_HEADER, FIRST_FAILURE_HEADER, readAttempt, retryHeaders } from './headers.js';
export type { Incident, IncidentKind, IncidentSink } from './incident.js';
export { incidentSink, logIncident } from './incident.js';
export type {
  HandleOperation,
  HandlerResult,
  HandleScope,
  Instrumentation,
  PublishOperation,
  PublishScope,
  Settlement,
} from './instrumentation.js';
export { combineInstrumentations } from './instrumentation.js';
export { importAdapterModule, loadAdapter } from './load.js';
export type { Logger } from './logger.js';
export { consoleLogger, silentLogger } from './logger.js';
export type { NormalizedRetryPolicy, RetryPolicy } from './policy.js';
export { DEFAULT_RETRY_POLICY, normalizeRetryPolicy, retryDelay, retryTiers } from './policy.js';
export type { BackpressureMode } from './publish-gate.js';
export type { LegacyProducer, PlainMessage, PublishOptions, RawPublishOptions, RawSubscribeOptions } from './raw.js';
export { RAW_QUEUE_HEADER, wrapPlainMessage } from './raw.js';
export type { RequestOptions, Responder } from './request.js';
export {
  DEFAULT_REQUEST_TIMEOUT_MS,
  IN_REPLY_TO_EXTENSION,
  REPLY_TO_EXTENSION,
} from './request.js';
export type { Stats } from './stats.js';
export { withTimeout } from './timeout.js';
export type { TlsMaterial, TlsOptions, TlsTarget } from './tls.js';
export { CREDENTIAL_ENV, classifyTlsError, credentialsFromEnv, readTlsMaterial, resolveTlsOptions } from './tls.js';
export type { BrokerUrl } from './url.js';
export { ADAPTER_PACKAGES, parseBrokerUrl, redactUrl } from './url.js';
