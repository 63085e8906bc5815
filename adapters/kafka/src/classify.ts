/**
 * Maps an error of either client library onto a library-independent kind. kafkajs names a broker
 * error in `type`, @platformatic/kafka in `apiId`; both use Kafka's protocol names.
 */
import type { ErrorKind } from './client-types.js';

function rootCause(error: unknown): unknown {
  let e = error as { cause?: unknown; originalError?: unknown } | undefined;
  for (let i = 0; i < 10 && e; i++) {
    const next = e.originalError ?? e.cause;
    if (!next) break;
    e = next as typeof e;
  }
  return e;
}

const UNREACHABLE_NAMES = new Set([
  'KafkaJSGroupCoordinatorNotFound',
  'KafkaJSConnectionError',
  'KafkaJSBrokerNotFound',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSConnectionClosedError',
]);
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EPIPE',
  // @platformatic/kafka: a failed connection, and a request without an answer in time.
  'PLT_KFK_NETWORK',
  'PLT_KFK_TIMEOUT',
]);

function kindOf(e: {
  name?: string;
  type?: string;
  apiId?: string;
  code?: string;
  message?: string;
}): ErrorKind | undefined {
  const type = e.type ?? e.apiId;
  // @platformatic/kafka's metadata with topic creation off: a UserError, told apart by its text only.
  if (e.code === 'PLT_KFK_USER' && /^Unknown topic /.test(e.message ?? '')) return 'unknown-topic';
  if (type === 'MESSAGE_TOO_LARGE' || type === 'RECORD_LIST_TOO_LARGE') return 'too-large';
  if (
    type === 'UNKNOWN_TOPIC_OR_PARTITION' ||
    type === 'UNKNOWN_TOPIC_ID' ||
    e.name === 'KafkaJSTopicMetadataNotLoaded'
  )
    return 'unknown-topic';
  if (type === 'TOPIC_ALREADY_EXISTS') return 'topic-exists';
  if (type === 'REBALANCE_IN_PROGRESS' || type === 'ILLEGAL_GENERATION' || type === 'UNKNOWN_MEMBER_ID')
    return 'rebalancing';
  if (type === 'NON_EMPTY_GROUP') return 'group-not-empty';
  if (
    e.name === 'KafkaJSSASLAuthenticationError' ||
    type === 'SASL_AUTHENTICATION_FAILED' ||
    e.code === 'PLT_KFK_AUTHENTICATION'
  )
    return 'auth';
  // A broker that is starting (or just restarted) has no group coordinator yet: not ready, as unreachable.
  if (type === 'COORDINATOR_NOT_AVAILABLE' || type === 'COORDINATOR_LOAD_IN_PROGRESS') return 'unreachable';
  if (
    (e.name !== undefined && UNREACHABLE_NAMES.has(e.name)) ||
    (e.code !== undefined && UNREACHABLE_CODES.has(e.code))
  )
    return 'unreachable';
  return undefined;
}

export function classifyError(error: unknown): ErrorKind {
  for (const candidate of [error, rootCause(error)]) {
    const e = candidate as Parameters<typeof kindOf>[0] | undefined;
    if (!e) continue;
    const kind = kindOf(e);
    if (kind !== undefined) return kind;
  }
  // kafkajs' createTopics and @platformatic/kafka's responses wrap per-item errors in an aggregate.
  const errors = (error as { errors?: unknown[] } | undefined)?.errors;
  if (Array.isArray(errors) && errors.length > 0) {
    const kinds = new Set(errors.map(classifyError));
    if (kinds.size === 1) return [...kinds][0] as ErrorKind;
  }
  return 'other';
}
