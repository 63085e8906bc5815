/**
 * Maps an error of either client library onto a library-independent kind. kafkajs names a broker
 * error in `type`, @platformatic/kafka in `apiId`; both use Kafka's protocol names.
 */
import { classifyTlsError } from '@wharf/core';
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

/** Kafka's authorisation errors, by the resource they refuse (kafkajs `type`, @platformatic/kafka `apiId`). */
export const NOT_AUTHORIZED: Readonly<Record<string, 'topic' | 'group' | 'cluster' | 'transactional id'>> = {
  TOPIC_AUTHORIZATION_FAILED: 'topic',
  GROUP_AUTHORIZATION_FAILED: 'group',
  CLUSTER_AUTHORIZATION_FAILED: 'cluster',
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 'transactional id',
};

/**
 * Every error in the tree under `error`: the clients wrap the socket's or the broker's error in
 * `cause`/`originalError` and aggregate retries in `errors` (a failed TLS handshake three levels down
 * in @platformatic/kafka, under "Cannot connect to any broker").
 */
export function errorTree(error: unknown, limit = 40): unknown[] {
  const out: unknown[] = [];
  const queue: unknown[] = [error];
  while (queue.length > 0 && out.length < limit) {
    const e = queue.shift();
    if (e === null || typeof e !== 'object' || out.includes(e)) continue;
    out.push(e);
    const { cause, originalError, errors } = e as { cause?: unknown; originalError?: unknown; errors?: unknown };
    queue.push(originalError, cause, ...(Array.isArray(errors) ? errors : []));
  }
  return out;
}

/** The resource kind of the first authorisation error in the tree, if any. */
export function notAuthorizedResource(error: unknown): (typeof NOT_AUTHORIZED)[string] | undefined {
  for (const e of errorTree(error)) {
    const { type, apiId } = e as { type?: string; apiId?: string };
    const resource = NOT_AUTHORIZED[type ?? apiId ?? ''];
    if (resource !== undefined) return resource;
  }
  return undefined;
}

/**
 * Refusals that no retry can change, found anywhere in the tree: they win over the "cannot connect"
 * that wraps them (else a bad certificate or password was waited on like a broker restart).
 */
function refusal(error: unknown): ErrorKind | undefined {
  const tree = errorTree(error);
  const noTarget = { broker: '', host: '', tls: undefined };
  if (tree.some((e) => classifyTlsError('kafka', e, noTarget) !== undefined)) return 'tls';
  if (tree.some((e) => kindOf(e as Parameters<typeof kindOf>[0]) === 'auth')) return 'auth';
  if (notAuthorizedResource(error) !== undefined) return 'not-authorized';
  return undefined;
}

export function classifyError(error: unknown): ErrorKind {
  const refused = refusal(error);
  if (refused !== undefined) return refused;
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
