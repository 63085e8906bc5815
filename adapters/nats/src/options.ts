import { readFileSync } from 'node:fs';
import { type ConnectionOptions, credsAuthenticator } from '@nats-io/transport-node';
import { ConfigError, credentialsFromEnv, parseBrokerUrl, resolveTlsOptions, type TlsOptions } from '@wharf/core';

export const ADAPTER_NAME = 'nats';

/**
 * Default consumer `ack_wait`. It was 30 s: a consumer killed with `kill -9` left its in-flight deliveries
 * waiting that long. 4 s keeps the kill → redelivery time under issue 13's 5 s; live subscribers send `+WPI`
 * every second (a quarter of it), so a timer may run 3 s late before a slow handler's delivery is redelivered.
 */
export const DEFAULT_ACK_WAIT_MS = 4_000;

/**
 * TLS settings: the core's `TlsOptions` (files, `servername`, `rejectUnauthorized`, verification on by
 * default), or PEM contents (contents win when both are given). URL parameters `?ca=…&cert=…&key=…`
 * give the files too.
 */
export interface NatsTlsOptions extends TlsOptions {
  ca?: string;
  cert?: string;
  key?: string;
}

/** Options of the NATS JetStream adapter, besides the URL. */
export interface NatsAdapterOptions {
  /** TLS settings; `tls://` URLs turn TLS on with the system CAs when this is not given. */
  tls?: NatsTlsOptions;
  /** User name and password (override the URL's; else `WHARF_BROKER_USERNAME` / `WHARF_BROKER_PASSWORD`). */
  user?: string;
  pass?: string;
  /** Auth token (a URL with only a user part, `nats://token@host`, also means a token). */
  token?: string;
  /** Path of a `.creds` file (JWT + nkey seed) for decentralised auth. */
  credsFile?: string;
  /** Connection name shown by the server's monitoring. Default `wharf`. */
  name?: string;
  /** Bound on the first connection and the JetStream check, ms. Default 5000. */
  connectTimeoutMs?: number;
  /** How long a publish waits for its PubAck (also settlement confirmations), ms. Default 10000. */
  publishTimeoutMs?: number;
  /**
   * Consumer `ack_wait`: a delivery not settled nor marked working within it is redelivered, ms. Default 4000.
   * It bounds how long the deliveries of a killed or frozen process wait before another member of the group gets
   * them (issue 13: recovery under 5 s). Handlers may run longer: a live subscriber marks each of its in-flight
   * deliveries working every `ackWaitMs / 4`. Raise it if handlers block the event loop for seconds at a time.
   */
  ackWaitMs?: number;
  /**
   * Consumer `max_ack_pending`: the server-side cap on unsettled deliveries of a group, messages waiting
   * in a retry delay included. Default: the subscription's concurrency plus `retryHeadroom`.
   */
  maxAckPending?: number;
  /** Deliveries held in retry delays that do not block new work (added to `max_ack_pending`). Default 1000. */
  retryHeadroom?: number;
  /**
   * Deliveries beyond `maxAttempts` that may end without a settlement (crash, hang past `ackWaitMs`,
   * release at shutdown) before the event is dead-lettered as `retries-exhausted`. Default 3.
   */
  extraDeliveries?: number;
  /** Subject root; channels live at `<prefix>.<channel>`. Default `wharf`. */
  subjectPrefix?: string;
  /** Stream name root; channel streams are `<PREFIX>-<channel>`. Default `WHARF`. */
  streamPrefix?: string;
  /** Channel stream limits (publish fails with `PublishError` when reached; nothing is dropped). */
  maxStreamBytes?: number;
  maxStreamMessages?: number;
  /** Channel stream `max_age`, ms (0 = unlimited). Default 0. */
  maxAgeMs?: number;
  /** `Nats-Msg-Id` duplicate window, ms. Default 120000 (the server's default). */
  duplicateWindowMs?: number;
  /**
   * How often the events every group settled are purged from the channel streams, ms. Default 5000.
   * 0: this process never purges (its user then needs neither `$JS.API.STREAM.PURGE` nor
   * `$JS.API.CONSUMER.LIST`); another process with those rights, such as an operator's, must.
   */
  purgeIntervalMs?: number;
  /** Stream replicas (clusters). Default 1. */
  replicas?: number;
  /**
   * Subject root of this connection's reply inboxes (PubAcks, pulled messages, API replies). Default
   * `_INBOX`. Give each user its own (`_INBOX_payment`) and allow it only that in `subscribe`: with the
   * shared default, a user allowed to subscribe to `_INBOX.>` can read the replies of every other user.
   */
  inboxPrefix?: string;
}

export interface ResolvedNatsOptions {
  readonly servers: string[];
  /** The URL without credentials, for messages. */
  readonly display: string;
  readonly user: string | undefined;
  readonly pass: string | undefined;
  readonly token: string | undefined;
  readonly credsFile: string | undefined;
  readonly tls: NatsTlsOptions | undefined;
  readonly name: string;
  readonly connectTimeoutMs: number;
  readonly publishTimeoutMs: number;
  readonly ackWaitMs: number;
  readonly maxAckPending: number | undefined;
  readonly retryHeadroom: number;
  readonly extraDeliveries: number;
  readonly subjectPrefix: string;
  readonly streamPrefix: string;
  readonly maxStreamBytes: number;
  readonly maxStreamMessages: number;
  readonly maxAgeMs: number;
  readonly duplicateWindowMs: number;
  readonly purgeIntervalMs: number;
  readonly inboxPrefix: string;
  readonly replicas: number;
}

/** Subject tokens and stream names: no separators, wildcards or whitespace. */
const SUBJECT_PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const STREAM_PREFIX = /^[A-Za-z0-9_]{1,32}$/;

function positiveInt(value: unknown, what: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new ConfigError(ADAPTER_NAME, `${what} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') {
    throw new ConfigError(ADAPTER_NAME, `${what} must be a non-empty string`);
  }
  return value;
}

/** Validates options and merges them with the URL; throws `ConfigError` (never echoing secrets). */
export function resolveOptions(url: string, options: NatsAdapterOptions): ResolvedNatsOptions {
  const parsed = parseBrokerUrl(url);
  if (parsed.scheme !== 'nats' && parsed.scheme !== 'tls') {
    throw new ConfigError(ADAPTER_NAME, `the NATS adapter takes nats:// or tls:// URLs, got ${parsed.scheme}://`);
  }
  const servers = parsed.hosts.map(({ host, port }) => `${host}:${port ?? 4222}`);
  // NATS convention: a user part without a password is a token.
  const urlToken = parsed.username !== undefined && parsed.password === undefined ? parsed.username : undefined;
  const urlUser = parsed.password !== undefined ? parsed.username : undefined;
  const token = optionalString(options.token, 'token') ?? urlToken;
  const env = credentialsFromEnv();
  const user =
    optionalString(options.user, 'user') ??
    urlUser ??
    optionalString(parsed.params.get('user') ?? undefined, 'user') ??
    (token === undefined && options.credsFile === undefined ? env.username : undefined);
  const pass =
    optionalString(options.pass, 'pass') ??
    (options.user === undefined ? parsed.password : undefined) ??
    (user !== undefined && user === env.username ? env.password : undefined);
  if (token !== undefined && user !== undefined) {
    throw new ConfigError(ADAPTER_NAME, 'give either a token or a user and password, not both');
  }
  const credsFile = optionalString(options.credsFile, 'credsFile');
  if (credsFile !== undefined) {
    try {
      readFileSync(credsFile);
    } catch (cause) {
      throw new ConfigError(ADAPTER_NAME, `credsFile ${credsFile} cannot be read: ${(cause as Error).message}`, {
        cause,
      });
    }
  }
  if (options.tls !== undefined && (options.tls === null || typeof options.tls !== 'object')) {
    throw new ConfigError(ADAPTER_NAME, 'tls must be an object with caFile/certFile/keyFile or ca/cert/key');
  }
  const contents = options.tls !== undefined && (options.tls.cert !== undefined || options.tls.key !== undefined);
  let tls: NatsTlsOptions | undefined = contents
    ? { ...options.tls }
    : (resolveTlsOptions(ADAPTER_NAME, parsed.params, options.tls) as NatsTlsOptions | undefined);
  if (tls === undefined && (parsed.scheme === 'tls' || parsed.params.get('tls') === 'true')) tls = {};
  const subjectPrefix = options.subjectPrefix ?? 'wharf';
  if (typeof subjectPrefix !== 'string' || !SUBJECT_PREFIX.test(subjectPrefix)) {
    throw new ConfigError(
      ADAPTER_NAME,
      `subjectPrefix ${JSON.stringify(subjectPrefix)} is not a valid subject: use dot-separated tokens of letters, digits, "_" or "-" (no spaces, "*" or ">")`,
    );
  }
  const streamPrefix = options.streamPrefix ?? 'WHARF';
  if (typeof streamPrefix !== 'string' || !STREAM_PREFIX.test(streamPrefix)) {
    throw new ConfigError(
      ADAPTER_NAME,
      `streamPrefix ${JSON.stringify(streamPrefix)} is not valid: use 1-32 letters, digits or "_"`,
    );
  }
  const inboxPrefix = options.inboxPrefix ?? '_INBOX';
  if (typeof inboxPrefix !== 'string' || !SUBJECT_PREFIX.test(inboxPrefix)) {
    throw new ConfigError(
      ADAPTER_NAME,
      `inboxPrefix ${JSON.stringify(inboxPrefix)} is not a valid subject: use dot-separated tokens of letters, digits, "_" or "-" (no spaces, "*" or ">")`,
    );
  }
  const ackWaitMs = positiveInt(options.ackWaitMs, 'ackWaitMs', DEFAULT_ACK_WAIT_MS, 1_000);
  const maxAckPending =
    options.maxAckPending === undefined ? undefined : positiveInt(options.maxAckPending, 'maxAckPending', 1);
  return {
    servers,
    display: `${parsed.scheme}://${servers.join(',')}`,
    user,
    pass,
    token,
    credsFile,
    tls,
    name: optionalString(options.name, 'name') ?? 'wharf',
    connectTimeoutMs: positiveInt(options.connectTimeoutMs, 'connectTimeoutMs', 5_000),
    publishTimeoutMs: positiveInt(options.publishTimeoutMs, 'publishTimeoutMs', 10_000),
    ackWaitMs,
    maxAckPending,
    retryHeadroom: positiveInt(options.retryHeadroom, 'retryHeadroom', 1_000, 0),
    extraDeliveries: positiveInt(options.extraDeliveries, 'extraDeliveries', 3, 1),
    subjectPrefix,
    streamPrefix,
    inboxPrefix,
    maxStreamBytes: positiveInt(options.maxStreamBytes, 'maxStreamBytes', -1, -1),
    maxStreamMessages: positiveInt(options.maxStreamMessages, 'maxStreamMessages', -1, -1),
    maxAgeMs: positiveInt(options.maxAgeMs, 'maxAgeMs', 0, 0),
    duplicateWindowMs: positiveInt(options.duplicateWindowMs, 'duplicateWindowMs', 120_000, 100),
    purgeIntervalMs:
      options.purgeIntervalMs === 0 ? 0 : positiveInt(options.purgeIntervalMs, 'purgeIntervalMs', 5_000, 10),
    replicas: positiveInt(options.replicas, 'replicas', 1, 1),
  };
}

/** nats.js connection options for resolved options (the adapter's and the conformance harness's). */
export function connectionOptions(o: ResolvedNatsOptions): ConnectionOptions {
  const options: ConnectionOptions = {
    servers: o.servers,
    name: o.name,
    timeout: o.connectTimeoutMs,
    // The client's default gives up after 10 attempts; a service must outlive a broker restart.
    maxReconnectAttempts: -1,
    // A restarted local server is back within a second or two; half a second between attempts keeps recovery
    // under the 5 s the design promises without a storm of connection attempts.
    reconnectTimeWait: 500,
    // nats.js's default PING every 2 minutes leaves a connection that stopped carrying data (bytes lost
    // on a cut link, a server that stopped reading) unnoticed for 4-6 minutes: a consumer on it received
    // nothing after a 5 s black hole and never recovered. Every 5 s, stale after 2 unanswered: such a
    // connection is dropped and reconnected within 15 s.
    pingInterval: 5_000,
    maxPingOut: 2,
    noAsyncTraces: true,
    waitOnFirstConnect: false,
    inboxPrefix: o.inboxPrefix,
  };
  if (o.user !== undefined) options.user = o.user;
  if (o.pass !== undefined) options.pass = o.pass;
  if (o.token !== undefined) options.token = o.token;
  if (o.tls !== undefined) options.tls = { ...o.tls };
  if (o.credsFile !== undefined) options.authenticator = credsAuthenticator(readFileSync(o.credsFile));
  return options;
}
