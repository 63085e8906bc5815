import { ConfigError, credentialsFromEnv, parseBrokerUrl, resolveTlsOptions, type TlsOptions } from '@wharf/core';
import { COMPONENT } from './errors.js';

/**
 * TLS settings for `amqps://` (the core's `TlsOptions`): files read at each connection, server
 * verification on by default. URL parameters `?ca=…&cert=…&key=…&servername=…` give the same.
 */
export type RabbitMqTlsOptions = TlsOptions;

/** Options of the RabbitMQ adapter that a URL cannot carry. Every one has a default. */
export interface RabbitMqAdapterOptions {
  /** Overrides the URL's user name (else the URL's, else `WHARF_BROKER_USERNAME`, else `guest`). */
  username?: string;
  /** Overrides the URL's password (else the URL's, else `WHARF_BROKER_PASSWORD`, else `guest`). Never logged. */
  password?: string;
  /** TLS files and checks (`amqps://` URLs only); merged with the URL's `ca`, `cert`, `key` parameters. */
  tls?: RabbitMqTlsOptions;
  /** Connection attempts per host at startup before `BrokerUnreachableError`. Default 5. */
  connectAttempts?: number;
  /** Bound on one connection attempt (TCP + TLS + AMQP handshake), ms. Default 5000. */
  connectTimeoutMs?: number;
  /**
   * AMQP heartbeat, seconds (0 turns it off). Both sides declare the connection dead after about
   * two missed beats, so this bounds how long a silently dead link goes unnoticed. Default 10.
   */
  heartbeatSeconds?: number;
  /**
   * Consumer watchdog: a consumer with free prefetch slots that has received nothing for this long
   * gets a passive check of its queue; if messages are ready there, the broker is waiting for acks
   * of deliveries this client never received (lost on a link that did not fail), so the consumer's
   * channel is closed (the broker requeues them), consumed again, and a `stalled` incident reported.
   * Ms; 0 turns it off. Default 5000.
   */
  consumerWatchdogMs?: number;
  /**
   * Publisher confirm watchdog: with publishes outstanding, nothing received (no confirm, no
   * heartbeat) for this long on a connection the broker has not blocked means the link is silently
   * losing data; the publish connection is dropped so they are re-sent on a new one (a silent gap
   * would otherwise let the broker's confirms settle the wrong publishes). Ms; 0 turns it off.
   * Default 3/4 of the heartbeat (7500 ms with the default 10 s heartbeat; off without heartbeats):
   * the broker sends a heartbeat every half timeout when idle, so a live broker never trips it.
   */
  confirmStallMs?: number;
  /** First delay between reconnection attempts, ms; doubles up to `reconnectMaxDelayMs`. Default 100. */
  reconnectInitialDelayMs?: number;
  /**
   * Largest delay between reconnection attempts, ms. Default 2000: an attempt while the broker is away
   * is a refused connection, cheap, and with 5 s a restarted node was used up to 5 s after it accepted
   * connections (chaos `broker-kill` 3.6 s, `proxy-reset` up to 3.6 s).
   */
  reconnectMaxDelayMs?: number;
  /**
   * How long a publish waits for the connection to come back (and for a publish that was in flight
   * when it dropped to be re-sent) before it fails with `PublishError`, ms. `0` fails at once. Default 30000.
   */
  publishWaitMs?: number;
  /**
   * How long one declaration (exchange, queues, bindings, `basic.consume`) may go unanswered before the
   * connection it runs on is replaced and the declaration tried again, ms. RabbitMQ 3.10 leaves a declare
   * or consume on a quorum queue whose replica is still starting after a restart unanswered for about a
   * minute, then closes the whole connection (541); meanwhile every other declaration on that channel
   * waits behind it. Default 15000.
   */
  declareTimeoutMs?: number;
  /**
   * The group queues' `x-delivery-limit`: deliveries that end without a settlement (a consumer that
   * crashes or loses its connection mid-handler, or a release) before the broker dead-letters the
   * message. A backstop against crash loops, not the retry policy. Fixed per queue once declared. Default 20.
   */
  deliveryLimit?: number;
  /**
   * Largest message body accepted, bytes; larger events fail with `MessageTooLargeError` before
   * anything is sent. At most the broker's `max_message_size` (128 MiB on 3.10) minus room for headers.
   * Default 16 MiB.
   */
  maxMessageBytes?: number;
  /** Prefix of every exchange and queue name. Default `wharf`. */
  prefix?: string;
  /** How long `close()` waits for unconfirmed publishes before closing the connection, ms. Default 5000. */
  closeTimeoutMs?: number;
  /**
   * Send the frames amqplib has ready in one turn with one socket write (`writev`) instead of one
   * write each. Same bytes, same order; far fewer system calls. Default `true`.
   */
  coalesceWrites?: boolean;
}

export interface ResolvedHost {
  readonly host: string;
  readonly port: number;
}

export interface ResolvedOptions {
  readonly tls: boolean;
  readonly hosts: readonly ResolvedHost[];
  readonly vhost: string;
  readonly username: string;
  readonly password: string;
  readonly tlsOptions: RabbitMqTlsOptions;
  readonly connectAttempts: number;
  readonly connectTimeoutMs: number;
  readonly heartbeatSeconds: number;
  readonly consumerWatchdogMs: number;
  readonly confirmStallMs: number;
  readonly reconnectInitialDelayMs: number;
  readonly reconnectMaxDelayMs: number;
  readonly publishWaitMs: number;
  readonly declareTimeoutMs: number;
  readonly deliveryLimit: number;
  readonly maxMessageBytes: number;
  readonly prefix: string;
  readonly closeTimeoutMs: number;
  readonly coalesceWrites: boolean;
}

/** RabbitMQ 3.10's default `max_message_size`. */
export const BROKER_MAX_MESSAGE_BYTES = 128 * 1024 * 1024;
/** Room kept for properties and headers (amqplib encodes a header table into at most 64 KiB). */
const HEADER_ROOM = 64 * 1024;

function integer(value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(COMPONENT, `option ${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/** Validates the URL and options and fills in defaults; throws `ConfigError` / `InvalidUrlError`. Does no I/O. */
export function resolveOptions(url: string, options: RabbitMqAdapterOptions): ResolvedOptions {
  const parsed = parseBrokerUrl(url);
  if (parsed.scheme !== 'amqp' && parsed.scheme !== 'amqps') {
    throw new ConfigError(COMPONENT, `the RabbitMQ adapter takes amqp:// or amqps:// URLs, got ${parsed.scheme}://`);
  }
  const tls = parsed.scheme === 'amqps';
  const defaultPort = tls ? 5671 : 5672;
  const hosts = parsed.hosts.map((h) => ({ host: h.host.replace(/^\[(.*)\]$/, '$1'), port: h.port ?? defaultPort }));
  const prefix = options.prefix ?? 'wharf';
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$/.test(prefix) || prefix.startsWith('amq.')) {
    throw new ConfigError(
      COMPONENT,
      `option prefix must be 1-40 letters, digits, ".", "_" or "-" and not start with "amq.", got ${JSON.stringify(prefix)}`,
    );
  }
  const tlsOptions = resolveTlsOptions(COMPONENT, parsed.params, options.tls);
  if (tlsOptions !== undefined && !tls) {
    throw new ConfigError(
      COMPONENT,
      'TLS files were given for a plain amqp:// URL — use amqps:// (port 5671 by default) so they are used',
    );
  }
  const env = credentialsFromEnv();
  const username = options.username ?? parsed.username ?? env.username ?? 'guest';
  const password = options.password ?? parsed.password ?? env.password ?? 'guest';
  if (typeof username !== 'string' || typeof password !== 'string') {
    throw new ConfigError(COMPONENT, 'options username and password must be strings');
  }
  const heartbeatSeconds = integer(options.heartbeatSeconds, 'heartbeatSeconds', 0, 3600, 10);
  const reconnectInitialDelayMs = integer(options.reconnectInitialDelayMs, 'reconnectInitialDelayMs', 1, 60_000, 100);
  return {
    tls,
    hosts,
    // amqp://host/ and amqp://host mean the default vhost "/"; "%2F" spells it explicitly.
    vhost: parsed.path === '' ? '/' : parsed.path,
    username,
    password,
    tlsOptions: tlsOptions ?? {},
    connectAttempts: integer(options.connectAttempts, 'connectAttempts', 1, 1000, 5),
    connectTimeoutMs: integer(options.connectTimeoutMs, 'connectTimeoutMs', 100, 600_000, 5_000),
    heartbeatSeconds,
    consumerWatchdogMs: integer(options.consumerWatchdogMs, 'consumerWatchdogMs', 0, 3_600_000, 5_000),
    confirmStallMs: integer(options.confirmStallMs, 'confirmStallMs', 0, 3_600_000, heartbeatSeconds * 750),
    reconnectInitialDelayMs,
    reconnectMaxDelayMs: integer(
      options.reconnectMaxDelayMs,
      'reconnectMaxDelayMs',
      reconnectInitialDelayMs,
      600_000,
      Math.max(2_000, reconnectInitialDelayMs),
    ),
    publishWaitMs: integer(options.publishWaitMs, 'publishWaitMs', 0, 3_600_000, 30_000),
    declareTimeoutMs: integer(options.declareTimeoutMs, 'declareTimeoutMs', 100, 3_600_000, 15_000),
    deliveryLimit: integer(options.deliveryLimit, 'deliveryLimit', 1, 1_000_000, 20),
    maxMessageBytes: integer(
      options.maxMessageBytes,
      'maxMessageBytes',
      1,
      BROKER_MAX_MESSAGE_BYTES - HEADER_ROOM,
      16 * 1024 * 1024,
    ),
    prefix,
    closeTimeoutMs: integer(options.closeTimeoutMs, 'closeTimeoutMs', 0, 600_000, 5_000),
    coalesceWrites: options.coalesceWrites ?? true,
  };
}
