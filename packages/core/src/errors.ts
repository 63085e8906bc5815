/**
 * Every error Wharf throws is a `WharfError` with a stable `code`, the component that raised it
 * and, where another error caused it, `cause`. Messages say what we were doing and what to do.
 */
export class WharfError extends Error {
  override readonly name: string = 'WharfError';
  readonly code: string;
  readonly component: string;

  constructor(code: string, component: string, message: string, options?: { cause?: unknown }) {
    super(`[wharf] [${component}] ${message}`, options);
    this.code = code;
    this.component = component;
  }
}

/** The broker URL cannot be parsed or names a scheme Wharf does not know. */
export class InvalidUrlError extends WharfError {
  override readonly name = 'InvalidUrlError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_INVALID_URL', 'core', message, options);
  }
}

/** The adapter package for a URL scheme is not installed. */
export class AdapterNotInstalledError extends WharfError {
  override readonly name = 'AdapterNotInstalledError';
  readonly packageName: string;
  constructor(packageName: string, scheme: string, options?: { cause?: unknown }) {
    super(
      'ERR_WHARF_ADAPTER_NOT_INSTALLED',
      'core',
      `the URL scheme "${scheme}:" needs the package ${packageName}, which is not installed — run: npm install ${packageName}`,
      options,
    );
    this.packageName = packageName;
  }
}

/** Options, a retry policy or a subscription are not valid. */
export class ConfigError extends WharfError {
  override readonly name = 'ConfigError';
  constructor(component: string, message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_CONFIG', component, message, options);
  }
}

/** An event lacks a required CloudEvents attribute, has a malformed one, or cannot be serialised. */
export class InvalidEventError extends WharfError {
  override readonly name = 'InvalidEventError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_INVALID_EVENT', 'core', message, options);
  }
}

/** An operation was attempted on a bus or adapter after `close()`. */
export class ClosedError extends WharfError {
  override readonly name = 'ClosedError';
  constructor(component: string, operation: string) {
    super('ERR_WHARF_CLOSED', component, `cannot ${operation}: the bus is closed — create a new bus`);
  }
}

/** The broker cannot be reached (refused, timed out, DNS) within the configured bound. */
export class BrokerUnreachableError extends WharfError {
  override readonly name = 'BrokerUnreachableError';
  constructor(component: string, message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_BROKER_UNREACHABLE', component, message, options);
  }
}

/** The broker rejected the credentials. */
export class AuthenticationError extends WharfError {
  override readonly name = 'AuthenticationError';
  constructor(component: string, message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_AUTH', component, message, options);
  }
}

/** The broker did not durably accept a published event (nacked, returned, limits reached). */
export class PublishError extends WharfError {
  override readonly name = 'PublishError';
  constructor(component: string, message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_PUBLISH', component, message, options);
  }
}

/**
 * A publish was not answered within `publishTimeoutMs`. `mayHaveBeenStored` is true when the event
 * reached the adapter (its outcome is unknown: publish again with the same id, consumers drop the
 * duplicate) and false when it was never sent (no room under `maxPendingPublishes`).
 */
export class PublishTimeoutError extends WharfError {
  override readonly name = 'PublishTimeoutError';
  readonly mayHaveBeenStored: boolean;
  constructor(component: string, message: string, mayHaveBeenStored: boolean, options?: { cause?: unknown }) {
    super('ERR_WHARF_PUBLISH_TIMEOUT', component, message, options);
    this.mayHaveBeenStored = mayHaveBeenStored;
  }
}

/** `maxPendingPublishes` events already wait for the broker and `backpressure` is `'fail'`. Nothing was sent. */
export class BackpressureError extends WharfError {
  override readonly name = 'BackpressureError';
  constructor(component: string, message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_BACKPRESSURE', component, message, options);
  }
}

/** An event reached no queue: no group has been declared on its channel. Nothing was stored. */
export class UnroutableError extends WharfError {
  override readonly name = 'UnroutableError';
  readonly channel: string;
  constructor(component: string, channel: string) {
    super(
      'ERR_WHARF_UNROUTABLE',
      component,
      `no group is declared on channel "${channel}", so the event would be lost — subscribe a group or call bus.declare("${channel}", { groups: [...] }) before publishing`,
    );
    this.channel = channel;
  }
}

/** An event is larger than the broker accepts; it was not sent. */
export class MessageTooLargeError extends WharfError {
  override readonly name = 'MessageTooLargeError';
  constructor(component: string, size: number, limit: number) {
    super(
      'ERR_WHARF_MESSAGE_TOO_LARGE',
      component,
      `the encoded event is ${size} bytes, above the broker's limit of ${limit} bytes — send a reference to the data instead, or raise the broker limit and the adapter's maxMessageBytes`,
    );
  }
}

/** A message on the wire is not a CloudEvent Wharf can decode. It is dead-lettered as `undecodable`. */
export class UndecodableMessageError extends WharfError {
  override readonly name = 'UndecodableMessageError';
  constructor(component: string, message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_UNDECODABLE', component, message, options);
  }
}

/** The broker's topology (queues, topics, streams) could not be declared or is missing. */
export class TopologyError extends WharfError {
  override readonly name: string = 'TopologyError';
  constructor(component: string, message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_TOPOLOGY', component, message, options);
  }
}

/** A group that was never declared on a channel was asked about (`bus.backlog`). Nothing was created. */
export class UnknownGroupError extends WharfError {
  override readonly name = 'UnknownGroupError';
  readonly channel: string;
  readonly group: string;
  constructor(component: string, channel: string, group: string, detail?: string, options?: { cause?: unknown }) {
    super(
      'ERR_WHARF_UNKNOWN_GROUP',
      component,
      `group "${group}" is not declared on channel "${channel}"${detail ? ` (${detail})` : ''} — check the names, or subscribe the group or call bus.declare("${channel}", { groups: ["${group}"] }) first`,
      options,
    );
    this.channel = channel;
    this.group = group;
  }
}

/** The adapter does not implement an optional member (for example `backlog`). */
export class UnsupportedError extends WharfError {
  override readonly name = 'UnsupportedError';
  constructor(component: string, message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_UNSUPPORTED', component, message, options);
  }
}

/** An operation did not finish within its bound. */
export class TimeoutError extends WharfError {
  override readonly name = 'TimeoutError';
  constructor(component: string, message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_TIMEOUT', component, message, options);
  }
}

/**
 * A request got no reply within its `timeoutMs`. Nothing of the request is left behind in this
 * process (timer, listener and pending entry are gone); a reply that arrives later is dropped.
 * The request itself may still be handled (at-least-once): make the responder idempotent, or
 * give the request an `id` and send it again with the same id so the responder's dedup skips it.
 */
export class RequestTimeoutError extends WharfError {
  override readonly name = 'RequestTimeoutError';
  /** The channel the request was published to. */
  readonly channel: string;
  /** The request event's id (the `inreplyto` a reply would carry). */
  readonly requestId: string;
  readonly timeoutMs: number;
  constructor(channel: string, requestId: string, timeoutMs: number) {
    super(
      'ERR_WHARF_REQUEST_TIMEOUT',
      'core',
      `no reply to request ${requestId} on ${channel} within ${timeoutMs} ms — is a responder subscribed (bus.respond) and is timeoutMs longer than its retry schedule?`,
    );
    this.channel = channel;
    this.requestId = requestId;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Thrown by a handler to dead-letter the event at once, without retries.
 * Use it for failures that no retry can fix (a poison payload, a business rule that rejects).
 */
export class NonRetryableError extends Error {
  override readonly name: string = 'NonRetryableError';
}

/** One failing location in a payload checked against the contract. */
export interface ContractIssue {
  /** JSON pointer into the payload, `""` for the root. */
  readonly path: string;
  readonly message: string;
}

/**
 * An event breaks the contract (its AsyncAPI schema). On publish nothing is sent;
 * on consume the event is dead-lettered with reason `invalid`.
 */
export class ContractViolationError extends WharfError {
  override readonly name = 'ContractViolationError';
  readonly issues: readonly ContractIssue[];
  constructor(what: string, issues: readonly ContractIssue[]) {
    const list = issues.map((i) => `${i.path || '/'} ${i.message}`).join('; ');
    super('ERR_WHARF_CONTRACT', 'contract', `${what} violates the contract: ${list}`);
    this.issues = issues;
  }
}

/** The dead-letter write was not confirmed; the original was left unsettled for redelivery. */
export class DeadLetterWriteError extends WharfError {
  override readonly name = 'DeadLetterWriteError';
  constructor(component: string, message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_DEAD_LETTER_WRITE', component, message, options);
  }
}

/** Short, single-line description of any thrown value, for logs and dead-letter metadata. */
export function describeError(error: unknown): { type: string; message: string } {
  if (error instanceof Error) return { type: error.name, message: error.message };
  return { type: typeof error, message: String(error) };
}

/**
 * A message was delivered again and again without ever being settled: the consumer crashed, hung
 * past the broker's ack timeout or was killed mid-handler. Adapters dead-letter it (reason
 * `retries-exhausted`, error type `CrashLoopError`) from the broker's delivery count, so a poison
 * message that kills its consumer cannot loop forever.
 */
export class CrashLoopError extends Error {
  override readonly name = 'CrashLoopError';
}

/** No dead letter with the id asked for is in the dead-letter destinations searched. */
export class UnknownDeadLetterError extends WharfError {
  override readonly name = 'UnknownDeadLetterError';
  readonly ids: readonly string[];
  constructor(ids: readonly string[], where: string) {
    super(
      'ERR_WHARF_UNKNOWN_DEAD_LETTER',
      'dlq',
      `no dead letter with id ${ids.map((id) => JSON.stringify(id)).join(', ')} in ${where} — list them with: wharf dlq list`,
    );
    this.ids = ids;
  }
}

/**
 * An existing queue (topic, stream) that raw mode adopts is missing, or exists with other arguments
 * than the ones the subscription requires. Nothing was created or changed; the connection stays usable.
 */
export class TopologyMismatchError extends TopologyError {
  override readonly name = 'TopologyMismatchError';
  /** The queue (topic, subject) that was to be adopted. */
  readonly queue: string;
  constructor(component: string, queue: string, message: string, options?: { cause?: unknown }) {
    super(component, message, options);
    this.queue = queue;
  }
}

/**
 * A TLS connection to the broker failed a check. Subclasses name the check; catch this class for
 * "any TLS problem". Never retried: a certificate does not fix itself between attempts.
 */
export class TlsError extends WharfError {
  override readonly name: string = 'TlsError';
}

/** The broker's certificate is not signed by a CA this client trusts (`caFile`, `?ca=`). */
export class UntrustedCertificateError extends TlsError {
  override readonly name = 'UntrustedCertificateError';
  constructor(component: string, message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_TLS_UNTRUSTED', component, message, options);
  }
}

/** The broker's certificate is not for the host name (or IP address) the client connected to. */
export class CertificateHostnameError extends TlsError {
  override readonly name = 'CertificateHostnameError';
  constructor(component: string, message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_TLS_HOSTNAME', component, message, options);
  }
}

/** The broker's certificate has expired (or is not valid yet). */
export class CertificateExpiredError extends TlsError {
  override readonly name = 'CertificateExpiredError';
  constructor(component: string, message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_TLS_EXPIRED', component, message, options);
  }
}

/**
 * The broker requires a client certificate (mutual TLS) and got none (`reason: 'missing'`), or
 * refused the one given (`'rejected'`: signed by a CA it does not trust, expired, wrong usage).
 */
export class ClientCertificateError extends TlsError {
  override readonly name = 'ClientCertificateError';
  readonly reason: 'missing' | 'rejected';
  constructor(component: string, reason: 'missing' | 'rejected', message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_TLS_CLIENT_CERT', component, message, options);
    this.reason = reason;
  }
}

/**
 * The broker accepted the credentials but refused an operation: the user may not open the vhost,
 * declare or write to the exchange or queue, publish to or subscribe on the subject.
 * `resource` names what was refused (`vhost "other"`, `subject "orders.placed"`).
 */
export class NotAuthorizedError extends WharfError {
  override readonly name = 'NotAuthorizedError';
  readonly resource: string;
  constructor(component: string, resource: string, message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_NOT_AUTHORIZED', component, message, options);
    this.resource = resource;
  }
}
