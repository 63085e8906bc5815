import { JetStreamApiError } from '@nats-io/jetstream';
import { AuthorizationError, NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';
import {
  AuthenticationError,
  BrokerUnreachableError,
  classifyTlsError,
  NotAuthorizedError,
  PublishError,
  type TlsOptions,
  TopologyError,
  type WharfError,
} from '@wharf/core';
import { ADAPTER_NAME } from './options.js';
import { ReplyTimeoutError, ServerNotReadingError } from './requests.js';

function causeChain(error: unknown): unknown[] {
  const out: unknown[] = [];
  let current: unknown = error;
  for (let i = 0; i < 5 && current !== undefined && current !== null; i++) {
    out.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return out;
}

function has(error: unknown, type: abstract new (...args: never[]) => unknown): boolean {
  return causeChain(error).some((e) => e instanceof type);
}

function text(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function jetStreamNotEnabled(display: string, cause?: unknown): TopologyError {
  return new TopologyError(
    ADAPTER_NAME,
    `JetStream is not enabled on the NATS server at ${display} (or not for this account) — start nats-server with -js (or add "jetstream {}" to its configuration)`,
    { cause },
  );
}

/** Maps a failure of the first connection to a typed error. `display` holds no credentials. */
export function connectError(
  error: unknown,
  display: string,
  timeoutMs: number,
  tls?: { readonly options: TlsOptions; readonly host: string },
): WharfError {
  if (tls) {
    const typed = classifyTlsError(ADAPTER_NAME, error, {
      broker: `the NATS server at ${display}`,
      host: tls.options.servername ?? tls.host,
      tls: tls.options,
    });
    if (typed) return typed;
  }
  if (has(error, AuthorizationError) || /authori[sz]ation|authentication/i.test(text(error))) {
    return new AuthenticationError(
      ADAPTER_NAME,
      `the NATS server at ${display} rejected the credentials — check the user/password, token or creds file`,
      { cause: error },
    );
  }
  if (
    causeChain(error).some((e) => (e as Error)?.name === 'JetStreamNotEnabled') ||
    /jetstream (is )?not enabled/i.test(text(error))
  ) {
    return jetStreamNotEnabled(display, error);
  }
  const tlsFailure = causeChain(error).some((e) =>
    /^ERR_TLS|^ERR_SSL|CERT|SELF_SIGNED/.test(String((e as { code?: unknown })?.code ?? '')),
  );
  if (tlsFailure || /certificate|tls/i.test(text(error))) {
    return new BrokerUnreachableError(
      ADAPTER_NAME,
      `the TLS handshake with NATS at ${display} failed (${text(error)}) — check the tls options (caFile/ca for a private CA) and the server certificate's names`,
      { cause: error },
    );
  }
  return new BrokerUnreachableError(
    ADAPTER_NAME,
    `cannot reach NATS at ${display} within ${timeoutMs} ms (${text(error)}) — is nats-server running with JetStream (-js)? start one with: pnpm wharf brokers up nats`,
    { cause: error },
  );
}

/**
 * The server refused a publish or subscription on `subject` (a "Permissions Violation"): the user's
 * permissions do not allow it.
 */
export function notAuthorized(operation: string, subject: string, cause: unknown): NotAuthorizedError {
  return new NotAuthorizedError(
    ADAPTER_NAME,
    `subject "${subject}"`,
    `the NATS server refused to let this user ${operation === 'subscription' ? 'subscribe to' : 'publish to'} "${subject}" (Permissions Violation) — allow the subject in the user's ${operation === 'subscription' ? 'subscribe' : 'publish'} permissions (Wharf uses <subjectPrefix>.<channel>, the JetStream API $JS.API.>, acks $JS.ACK.> and inboxes _INBOX.>), or use a subjectPrefix the permissions allow`,
    { cause },
  );
}

/** JetStream API error codes that mean "the stream is at its limits". */
const LIMIT_CODES = new Set([10077, 10047, 10028, 10054, 10027]);

/** Maps a failed JetStream publish to `PublishError`, saying what to do. */
export function publishError(error: unknown, subject: string, stream: string, timeoutMs: number): PublishError {
  if (error instanceof JetStreamApiError) {
    const limit = LIMIT_CODES.has(error.code) || /maximum|exceed|limit|insufficient/i.test(error.message);
    return new PublishError(
      ADAPTER_NAME,
      limit
        ? `stream ${stream} refused the event on ${subject}: ${error.message} — the stream is at its limits (max_msgs/max_bytes, discard new); consume or purge it, or raise the limits`
        : `stream ${stream} refused the event on ${subject}: ${error.message} (JetStream code ${error.code})`,
      { cause: error },
    );
  }
  if (has(error, NoRespondersError) || (error instanceof RequestError && error.isNoResponders())) {
    return new PublishError(
      ADAPTER_NAME,
      `no JetStream stream stores ${subject} (no responders) — the stream ${stream} was deleted or JetStream is down; declare the channel again`,
      { cause: error },
    );
  }
  if (has(error, TimeoutError) || has(error, ReplyTimeoutError)) {
    return new PublishError(
      ADAPTER_NAME,
      `no PubAck for ${subject} within ${timeoutMs} ms — the server may be down or reconnecting; the event may or may not be stored, publish it again (the same id is deduplicated)`,
      { cause: error },
    );
  }
  return new PublishError(ADAPTER_NAME, `publishing to ${subject} failed: ${text(error)}`, { cause: error });
}

export function isNoResponders(error: unknown): boolean {
  return has(error, NoRespondersError) || (error instanceof RequestError && error.isNoResponders());
}

export function isStreamNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === 10059;
}

/**
 * A failure a retry may cure: no answer in time (server restarting, overloaded), no responders (JetStream not
 * ready yet after a restart), the connection dropped mid-request.
 */
export function isTransient(error: unknown): boolean {
  return (
    has(error, TimeoutError) ||
    has(error, ReplyTimeoutError) ||
    has(error, ServerNotReadingError) ||
    isNoResponders(error) ||
    /timeout|disconnect|connection (closed|lost)|temporarily unavailable/i.test(text(error))
  );
}
