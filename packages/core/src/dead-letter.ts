import { hostname } from 'node:os';
import { describeError } from './errors.js';
import { RAW_QUEUE_HEADER } from './raw.js';

/** Why an event was dead-lettered. */
export type DeadLetterReason = 'retries-exhausted' | 'non-retryable' | 'invalid' | 'undecodable' | 'no-handler';

const REASONS: ReadonlySet<string> = new Set<DeadLetterReason>([
  'retries-exhausted',
  'non-retryable',
  'invalid',
  'undecodable',
  'no-handler',
]);

/** The metadata stored with every dead letter, on every broker. */
export interface DeadLetterInfo {
  readonly reason: DeadLetterReason;
  /** The error's class name, e.g. `NonRetryableError`. */
  readonly errorType: string;
  /** The error's message: one line, at most {@link MAX_ERROR_MESSAGE} characters. */
  readonly errorMessage: string;
  readonly channel: string;
  readonly group: string;
  /** Deliveries to the handler so far (0 when it never ran, e.g. undecodable). */
  readonly attempts: number;
  readonly firstFailureAt: string;
  readonly lastFailureAt: string;
  /** The host whose consumer dead-lettered it. */
  readonly host: string;
  /**
   * The error's stack frames on one line, joined by {@link STACK_SEPARATOR}, at most
   * {@link MAX_ERROR_STACK} characters; absent when the error had none (or for dead letters the
   * broker made on its own).
   */
  readonly errorStack?: string;
  /**
   * For a raw subscription's dead letter: the adopted queue (topic, subject) it was consumed from.
   * A replay sends it back there as a plain message, from any process (`wharf dlq replay` too).
   */
  readonly rawQueue?: string;
}

export const MAX_ERROR_MESSAGE = 1024;
/** Stacks are bounded tighter than a message would need: every dead letter carries one as a header. */
export const MAX_ERROR_STACK = 2048;
/** Joins a stack's frames in the one-line header (NATS header values cannot hold CR/LF). */
export const STACK_SEPARATOR = ' | ';

/** Header names under which the metadata travels; adapters copy them verbatim into native headers. */
export const DEAD_LETTER_HEADERS = {
  reason: 'wharf-dl-reason',
  errorType: 'wharf-dl-error-type',
  errorMessage: 'wharf-dl-error-message',
  channel: 'wharf-dl-channel',
  group: 'wharf-dl-group',
  attempts: 'wharf-dl-attempts',
  firstFailureAt: 'wharf-dl-first-failure',
  lastFailureAt: 'wharf-dl-last-failure',
  host: 'wharf-dl-host',
  errorStack: 'wharf-dl-error-stack',
} as const satisfies Record<Exclude<keyof DeadLetterInfo, 'rawQueue'>, string>;

const HOST = hostname();

/**
 * Makes a header-safe single line: NATS header values cannot hold CR/LF, and a stack trace in a
 * header bloats every message, so newlines are folded and the text is truncated.
 */
export function oneLine(text: string, limit = MAX_ERROR_MESSAGE): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we strip
  const flat = text.replace(/[\r\n\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length > limit ? `${flat.slice(0, limit - 1)}…` : flat;
}

/** Builds the metadata record for a dead letter. */
export function deadLetterInfo(input: {
  reason: DeadLetterReason;
  error: unknown;
  channel: string;
  group: string;
  attempts: number;
  firstFailureAt?: string | undefined;
  now?: Date;
}): DeadLetterInfo {
  const { type, message } = describeError(input.error);
  const last = (input.now ?? new Date()).toISOString();
  const stack = stackOf(input.error);
  return {
    reason: input.reason,
    errorType: oneLine(type, 128),
    errorMessage: oneLine(message),
    channel: input.channel,
    group: input.group,
    attempts: input.attempts,
    firstFailureAt: input.firstFailureAt ?? last,
    lastFailureAt: last,
    host: HOST,
    ...(stack ? { errorStack: stack } : {}),
  };
}

/** The stack's frames (its first line repeats the type and message), one line, bounded. */
function stackOf(error: unknown): string | undefined {
  if (!(error instanceof Error) || typeof error.stack !== 'string') return undefined;
  const frames = error.stack
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.startsWith('at '));
  if (frames.length === 0) return undefined;
  return oneLine(frames.join(STACK_SEPARATOR), MAX_ERROR_STACK);
}

/** The metadata as string headers. */
export function deadLetterHeaders(info: DeadLetterInfo): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, header] of Object.entries(DEAD_LETTER_HEADERS)) {
    const value = info[key as keyof DeadLetterInfo];
    if (value !== undefined) out[header] = String(value);
  }
  return out;
}

/** Reads metadata back from headers; returns `undefined` when the headers hold no dead-letter reason. */
export function parseDeadLetterHeaders(
  headers: Readonly<Record<string, string | undefined>>,
): DeadLetterInfo | undefined {
  const get = (key: keyof typeof DEAD_LETTER_HEADERS): string => headers[DEAD_LETTER_HEADERS[key]] ?? '';
  const reason = get('reason');
  if (!REASONS.has(reason)) return undefined;
  return {
    reason: reason as DeadLetterReason,
    errorType: get('errorType'),
    errorMessage: get('errorMessage'),
    channel: get('channel'),
    group: get('group'),
    attempts: Number(get('attempts')) || 0,
    firstFailureAt: get('firstFailureAt'),
    lastFailureAt: get('lastFailureAt'),
    host: get('host'),
    ...(get('errorStack') ? { errorStack: get('errorStack') } : {}),
    ...(headers[RAW_QUEUE_HEADER] ? { rawQueue: headers[RAW_QUEUE_HEADER] } : {}),
  };
}
