import {
  AuthenticationError,
  BrokerUnreachableError,
  classifyTlsError,
  describeError,
  MessageTooLargeError,
  NotAuthorizedError,
  PublishError,
  type TlsOptions,
  TopologyError,
  WharfError,
} from '@wharf/core';
import { errorTree, notAuthorizedResource } from './classify.js';
import { classifyError } from './client.js';
import { ADAPTER_NAME } from './options.js';

const START_HINT = 'is Kafka running? start one with `bash scripts/kafka.sh up` (or `pnpm wharf brokers up kafka`)';

export function unreachable(where: string, doing: string, cause?: unknown): BrokerUnreachableError {
  const detail = cause === undefined ? '' : ` (${describeError(cause).message})`;
  return new BrokerUnreachableError(
    ADAPTER_NAME,
    `cannot reach brokers ${where} while ${doing}${detail} — ${START_HINT}`,
    {
      cause,
    },
  );
}

export function missingTopics(topics: readonly string[]): TopologyError {
  return new TopologyError(
    ADAPTER_NAME,
    `topic${topics.length > 1 ? 's' : ''} ${topics.join(', ')} do${topics.length > 1 ? '' : 'es'} not exist and requireTopics is on — create ${topics.length > 1 ? 'them' : 'it'} (kafka-topics.sh --create) or turn requireTopics off so Wharf creates topics on first use`,
  );
}

/** What a failed operation was doing and on what, for the typed error's message and `resource`. */
export interface ErrorContext {
  readonly where: string;
  readonly doing: string;
  readonly size?: number;
  readonly limit?: number;
  /** The TLS files in use, for a certificate error's advice. */
  readonly tls?: TlsOptions | undefined;
  /** The topics and the consumer group the operation touched: an authorisation error names them. */
  readonly topics?: readonly string[];
  readonly group?: string;
}

/** The typed TLS error for a failed handshake anywhere in the client's error tree. */
export function tlsError(error: unknown, where: string, tls: TlsOptions | undefined): WharfError | undefined {
  const host = tls?.servername ?? where.split(',')[0]?.replace(/:\d+$/, '') ?? where;
  for (const e of errorTree(error)) {
    const typed = classifyTlsError(ADAPTER_NAME, e, { broker: `Kafka at ${where}`, host, tls });
    if (typed !== undefined) {
      (typed as { cause?: unknown }).cause = error;
      return typed;
    }
  }
  return undefined;
}

function notAuthorized(error: unknown, context: ErrorContext): NotAuthorizedError {
  const kind = notAuthorizedResource(error) ?? 'cluster';
  const quoted = (names: readonly string[]) => names.map((n) => `"${n}"`).join(', ');
  const resource =
    kind === 'topic' && context.topics !== undefined && context.topics.length > 0
      ? `topic${context.topics.length > 1 ? 's' : ''} ${quoted(context.topics)}`
      : kind === 'group' && context.group !== undefined
        ? `group "${context.group}"`
        : kind;
  return new NotAuthorizedError(
    ADAPTER_NAME,
    resource,
    `brokers ${context.where} refused ${resource} to this user while ${context.doing} — grant it with an ACL (kafka-acls.sh --add --allow-principal User:… --operation All ${kind === 'group' ? '--group' : kind === 'topic' ? '--topic' : '--cluster'} …, prefixed names with --resource-pattern-type prefixed), or use a topicPrefix the user may use`,
    { cause: error },
  );
}

/** Maps an error from the client onto Wharf's typed errors; `doing` says what we were doing. */
export function toWharfError(error: unknown, context: ErrorContext): WharfError {
  if (error instanceof WharfError) return error;
  switch (classifyError(error)) {
    case 'tls':
      return tlsError(error, context.where, context.tls) ?? unreachable(context.where, context.doing, error);
    case 'not-authorized':
      return notAuthorized(error, context);
    case 'unreachable':
      return unreachable(context.where, context.doing, error);
    case 'auth':
      return new AuthenticationError(
        ADAPTER_NAME,
        `brokers ${context.where} rejected the credentials while ${context.doing} (${describeError(error).message}) — check the user, password and SASL mechanism`,
        { cause: error },
      );
    case 'too-large': {
      const err = new MessageTooLargeError(ADAPTER_NAME, context.size ?? -1, context.limit ?? -1);
      (err as { cause?: unknown }).cause = error;
      return err;
    }
    case 'unknown-topic':
      return new TopologyError(
        ADAPTER_NAME,
        `a topic is missing while ${context.doing} (${describeError(error).message}) — create it or turn requireTopics off`,
        { cause: error },
      );
    default:
      return new PublishError(ADAPTER_NAME, `${context.doing} failed: ${describeError(error).message}`, {
        cause: error,
      });
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether an error means the brokers could not be reached (typed already, or from the client). */
export function isUnreachable(error: unknown): boolean {
  return error instanceof BrokerUnreachableError || classifyError(error) === 'unreachable';
}

/**
 * Runs `work` again while it fails because the brokers cannot be reached (backoff from 250 ms,
 * doubling up to 5 s), until `timeoutMs` has passed: a service started during a broker outage or
 * restart waits for the broker instead of exiting with ECONNREFUSED. Any other error, and the last
 * unreachable one at the deadline, is thrown (`stop()` true also ends the wait: closing).
 */
export async function whileUnreachable<T>(
  work: () => Promise<T>,
  timeoutMs: number,
  onWait?: (error: unknown, delayMs: number) => void,
  stop?: () => boolean,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      const delay = Math.min(5_000, 250 * 2 ** attempt);
      if (!isUnreachable(error) || Date.now() + delay >= deadline || stop?.()) throw error;
      onWait?.(error, delay);
      await sleep(delay);
    }
  }
}
