import { hostname } from 'node:os';
import type { ConnectionOptions } from 'node:tls';
import {
  ConfigError,
  credentialsFromEnv,
  parseBrokerUrl,
  readTlsMaterial,
  redactUrl,
  resolveTlsOptions,
  type TlsOptions,
} from '@wharf/core';

export const ADAPTER_NAME = 'kafka';
const DEFAULT_PORT = 9092;

/** Options of the Kafka adapter that a URL cannot carry. Every duration is in milliseconds. */
export interface KafkaAdapterOptions {
  /** Prefix of every topic and consumer group Wharf creates. Default `wharf`. */
  topicPrefix?: string;
  /** Partitions of a channel topic created on first use. Default 3. */
  partitions?: number;
  /** Partitions of each retry topic and dead-letter topic. Default 1. */
  retryPartitions?: number;
  /** Replication factor of created topics; -1 takes the broker's default. Default -1. */
  replicationFactor?: number;
  /** Do not create topics: a missing topic is a `TopologyError`. Default false. */
  requireTopics?: boolean;
  /** Largest event body accepted; created topics get `max.message.bytes` with room for headers. Default 8 MiB. */
  maxMessageBytes?: number;
  /**
   * How long `connect()`, declaring and subscribing wait for unreachable brokers (retrying with
   * backoff: a service started during a broker restart waits for it); after it, `BrokerUnreachableError`.
   * Default 60 s.
   */
  connectTimeoutMs?: number;
  /** Bound on one publish, client retries included (e.g. while a broker restarts). Default 30 s. */
  publishTimeoutMs?: number;
  /**
   * Consumer group session timeout: a member that stops heartbeating (killed, frozen) keeps its
   * partitions this long before the others get them. Default 6 s, the broker's default
   * `group.min.session.timeout.ms` (a lower value needs a broker configured lower).
   */
  sessionTimeoutMs?: number;
  /** How long a rebalance waits for running handlers before the member is dropped. Default 60 s. */
  rebalanceTimeoutMs?: number;
  /** How often a member heartbeats; at most a third of `sessionTimeoutMs`. Default 1 s. */
  heartbeatIntervalMs?: number;
  /** Longest fetch long-poll; also bounds how late a due retry is picked up. Default 250. */
  maxWaitTimeMs?: number;
  /** Offsets of acknowledged events are committed at least this often during long batches. Default 1 s. */
  commitIntervalMs?: number;
  /** Pause before a released event is fetched again (avoids a hot loop when settling keeps failing). Default 200. */
  releaseBackoffMs?: number;
  /** Idempotent producer (kafkajs calls it experimental). Default true. */
  idempotent?: boolean;
  /**
   * TLS as files, like every Wharf adapter: `caFile`, `certFile`/`keyFile` (mutual TLS), `servername`;
   * the broker's certificate is verified unless `rejectUnauthorized: false`. The URL parameters
   * `?ca=…&cert=…&key=…&servername=…` give the same; either turns TLS on, as does `kafkas://`. The files
   * are read when the adapter is created.
   */
  tls?: TlsOptions;
  /** Node `tls.connect` options handed to the client as they are (for what `tls` cannot say); `tls` wins. */
  ssl?: boolean | ConnectionOptions;
  /** SASL user name: overrides the URL's; else `WHARF_BROKER_USERNAME`. */
  username?: string;
  /** SASL password: overrides the URL's; else `WHARF_BROKER_PASSWORD` (with the user from there or the same user). Never logged. */
  password?: string;
  /** SASL mechanism. Default `plain` (`?mechanism=scram-sha-512` in the URL works too). */
  saslMechanism?: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  clientId?: string;
  /**
   * The client library: `platformatic` (@platformatic/kafka, the default) or `kafkajs`. The URL
   * parameter `?client=` works too. @platformatic/kafka needs Node >= 20.19.4; on an
   * older Node choose `kafkajs`. See the README for which to choose and why.
   */
  client?: ClientKind;
}

export type ClientKind = 'kafkajs' | 'platformatic';
const CLIENT_KINDS: readonly string[] = ['kafkajs', 'platformatic'];

/** Whether @platformatic/kafka 1.x supports this Node version: its `engines` come to >= 20.19.4. */
export function platformaticRuns(version: string): boolean {
  const [major = 0, minor = 0, patch = 0] = version.split('.').map((n) => Number.parseInt(n, 10));
  if (major !== 20) return major > 20;
  return minor > 19 || (minor === 19 && patch >= 4);
}

export interface ResolvedKafkaOptions {
  readonly brokers: readonly string[];
  /** For messages: the brokers, never the credentials. */
  readonly where: string;
  readonly clientId: string;
  readonly client: ClientKind;
  readonly topicPrefix: string;
  readonly partitions: number;
  readonly retryPartitions: number;
  readonly replicationFactor: number;
  readonly requireTopics: boolean;
  readonly maxMessageBytes: number;
  readonly connectTimeoutMs: number;
  readonly publishTimeoutMs: number;
  readonly sessionTimeoutMs: number;
  readonly rebalanceTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly maxWaitTimeMs: number;
  readonly commitIntervalMs: number;
  readonly releaseBackoffMs: number;
  readonly idempotent: boolean;
  readonly ssl: boolean | ConnectionOptions | undefined;
  /** The TLS files (for messages and the start-up TLS check); undefined when only `ssl` or nothing gave TLS. */
  readonly tls: TlsOptions | undefined;
  readonly sasl:
    | { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string }
    | undefined;
}

const MECHANISMS = new Set(['plain', 'scram-sha-256', 'scram-sha-512']);

function integer(value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && /^-?\d+$/.test(value)) value = Number(value);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(ADAPTER_NAME, `${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/** Validates options and the URL (`kafka://host1:9092,host2:9092`, `kafkas://user:pass@host`); throws `ConfigError`. */
export function resolveOptions(url: string, options: KafkaAdapterOptions): ResolvedKafkaOptions {
  const parsed = parseBrokerUrl(url);
  if (parsed.scheme !== 'kafka' && parsed.scheme !== 'kafkas') {
    throw new ConfigError(ADAPTER_NAME, `the Kafka adapter takes kafka:// or kafkas:// URLs, got "${redactUrl(url)}"`);
  }
  const brokers = parsed.hosts.map((h) => `${h.host}:${h.port ?? DEFAULT_PORT}`);
  const param = (name: string): string | undefined => parsed.params.get(name) ?? undefined;

  const topicPrefix = options.topicPrefix ?? param('topicPrefix') ?? 'wharf';
  if (!/^[A-Za-z0-9._-]{1,40}$/.test(topicPrefix)) {
    throw new ConfigError(
      ADAPTER_NAME,
      `topicPrefix "${topicPrefix}" is invalid: use 1-40 letters, digits, ".", "_" or "-"`,
    );
  }
  const mechanism = options.saslMechanism ?? param('mechanism') ?? 'plain';
  if (!MECHANISMS.has(mechanism)) {
    throw new ConfigError(
      ADAPTER_NAME,
      `SASL mechanism "${mechanism}" is not supported; use plain, scram-sha-256 or scram-sha-512`,
    );
  }
  for (const key of ['username', 'password'] as const) {
    if (options[key] !== undefined && (typeof options[key] !== 'string' || options[key] === '')) {
      throw new ConfigError(ADAPTER_NAME, `${key} must be a non-empty string`);
    }
  }
  const env = credentialsFromEnv();
  const username = options.username ?? parsed.username ?? env.username;
  const password =
    options.password ??
    (options.username === undefined ? parsed.password : undefined) ??
    (username !== undefined && username === env.username ? env.password : undefined);
  const sasl =
    username !== undefined
      ? {
          mechanism: mechanism as 'plain' | 'scram-sha-256' | 'scram-sha-512',
          username,
          password: password ?? '',
        }
      : undefined;
  const tls = resolveTlsOptions(ADAPTER_NAME, parsed.params, options.tls);
  let ssl = options.ssl ?? (parsed.scheme === 'kafkas' ? true : undefined);
  if (tls !== undefined) {
    // No SNI name from the first host here: the clients send each broker's own host name.
    const material = readTlsMaterial(ADAPTER_NAME, { ...tls, servername: undefined }, '0.0.0.0');
    ssl = {
      ...(typeof ssl === 'object' ? ssl : {}),
      ...material,
      ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
    };
  }
  const client = options.client ?? param('client') ?? 'platformatic';
  if (!CLIENT_KINDS.includes(client)) {
    throw new ConfigError(ADAPTER_NAME, `client "${client}" is not supported; use platformatic or kafkajs`);
  }
  if (client === 'platformatic' && !platformaticRuns(process.versions.node)) {
    throw new ConfigError(
      ADAPTER_NAME,
      `the Kafka client @platformatic/kafka (the adapter's default) needs Node >= 20.19.4, and this is Node ${process.versions.node}: upgrade Node, or choose client: 'kafkajs' (?client=kafkajs)`,
    );
  }
  const heartbeatIntervalMs = integer(options.heartbeatIntervalMs, 'heartbeatIntervalMs', 50, 60_000, 1_000);
  const sessionTimeoutMs = integer(options.sessionTimeoutMs, 'sessionTimeoutMs', 1_000, 3_600_000, 6_000);
  if (heartbeatIntervalMs * 3 > sessionTimeoutMs) {
    throw new ConfigError(
      ADAPTER_NAME,
      `heartbeatIntervalMs (${heartbeatIntervalMs}) must be at most a third of sessionTimeoutMs (${sessionTimeoutMs})`,
    );
  }
  return {
    brokers,
    where: brokers.join(','),
    clientId: options.clientId ?? param('clientId') ?? `wharf-${hostname()}-${process.pid}`,
    client: client as ClientKind,
    topicPrefix,
    partitions: integer(options.partitions ?? param('partitions'), 'partitions', 1, 10_000, 3),
    retryPartitions: integer(options.retryPartitions, 'retryPartitions', 1, 10_000, 1),
    replicationFactor: integer(options.replicationFactor, 'replicationFactor', -1, 100, -1),
    requireTopics: options.requireTopics ?? param('requireTopics') === 'true',
    maxMessageBytes: integer(options.maxMessageBytes, 'maxMessageBytes', 1_024, 512 * 1024 * 1024, 8 * 1024 * 1024),
    connectTimeoutMs: integer(options.connectTimeoutMs, 'connectTimeoutMs', 100, 600_000, 60_000),
    publishTimeoutMs: integer(options.publishTimeoutMs, 'publishTimeoutMs', 100, 3_600_000, 30_000),
    sessionTimeoutMs,
    rebalanceTimeoutMs: integer(options.rebalanceTimeoutMs, 'rebalanceTimeoutMs', 1_000, 3_600_000, 60_000),
    heartbeatIntervalMs,
    maxWaitTimeMs: integer(options.maxWaitTimeMs, 'maxWaitTimeMs', 10, 30_000, 250),
    commitIntervalMs: integer(options.commitIntervalMs, 'commitIntervalMs', 10, 600_000, 1_000),
    releaseBackoffMs: integer(options.releaseBackoffMs, 'releaseBackoffMs', 0, 600_000, 200),
    idempotent: options.idempotent ?? true,
    ssl,
    tls,
    sasl,
  };
}
