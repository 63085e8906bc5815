import {
  type Adapter,
  type AdapterInit,
  type AdapterSubscription,
  type Capabilities,
  ClosedError,
  DEFAULT_CAPABILITIES,
  type Delivery,
  describeError,
  type GroupBacklog,
  type Logger,
  type NormalizedRetryPolicy,
  type StoredDeadLetter,
  type SubscribeRequest,
  UnknownGroupError,
  type WireMessage,
  withTimeout,
} from '@wharf/core';
import { readBacklog } from './backlog.js';
import type { ClientAdmin, ClientProducer, KafkaClient } from './client.js';
import { openClient } from './clients.js';
import { readDeadLetters } from './dead-letters.js';
import { toWharfError, unreachable, whileUnreachable } from './errors.js';
import { ADAPTER_NAME, type KafkaAdapterOptions, type ResolvedKafkaOptions, resolveOptions } from './options.js';
import { Publisher } from './publisher.js';
import { Subscriber } from './subscriber.js';
import { Topology } from './topology.js';

interface Connected {
  readonly admin: ClientAdmin;
  readonly producer: ClientProducer;
  readonly publisher: Publisher;
}

/**
 * Wharf on Apache Kafka (through kafkajs, behind `client.ts`). See README.md for the mapping of
 * channels and groups onto topics and consumer groups, and for the retry and dead-letter mechanics.
 */
/** Bound on one request to a broker (see createClient below). */
const REQUEST_TIMEOUT_MS = 5_000;

export class KafkaAdapter implements Adapter {
  readonly name = ADAPTER_NAME;
  readonly capabilities: Capabilities;
  readonly options: ResolvedKafkaOptions;
  readonly #logger: Logger;
  readonly #client: KafkaClient;
  readonly #topology: Topology;
  readonly #subscribers = new Set<Subscriber>();
  #connecting: Promise<Connected> | undefined;
  #connected: Connected | undefined;
  #closing: Promise<void> | undefined;

  constructor(init: AdapterInit & KafkaAdapterOptions) {
    this.options = resolveOptions(init.url, init);
    this.#logger = init.logger;
    this.capabilities = Object.freeze({
      ...DEFAULT_CAPABILITIES,
      orderedByKey: true,
      // A topic keeps every event whether or not a group reads it: nothing is unroutable.
      rejectsUnroutable: false,
      maxMessageBytes: this.options.maxMessageBytes,
    });
    const o = this.options;
    this.#client = openClient(o.client, {
      brokers: o.brokers,
      clientId: o.clientId,
      ...(o.ssl !== undefined ? { ssl: o.ssl } : {}),
      ...(o.sasl !== undefined ? { sasl: o.sasl } : {}),
      connectionTimeoutMs: Math.min(3_000, o.connectTimeoutMs),
      // A request whose bytes a broken link swallowed is answered by nobody: it fails only at this
      // bound, and the client waits on it (proxy black hole of 5 s: publishes and fetches came back
      // ~26 s after the link healed with kafkajs' 30 s). Joins, fetches and produce requests that
      // wait on purpose get their own longer bounds from kafkajs (rebalance timeout, long-poll).
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      retries: 5,
      maxRetryTimeMs: 2_000,
      logger: init.logger,
    });
    this.#topology = new Topology(o, this.#client, () => this.#admin(), init.logger);
  }

  connect(): Promise<void> {
    if (this.#closing) return Promise.reject(new ClosedError(ADAPTER_NAME, 'connect'));
    return this.#connect().then(() => undefined);
  }

  #connect(): Promise<Connected> {
    if (!this.#connecting) {
      const o = this.options;
      const work = (async (): Promise<Connected> => {
        let admin: ClientAdmin | undefined;
        try {
          // During a broker outage (a restart, a kill -9) the first attempts are refused: wait for
          // the broker, up to connectTimeoutMs, rather than fail the service's start.
          admin = await whileUnreachable(
            () => this.#client.admin(),
            o.connectTimeoutMs,
            (error, delayMs) =>
              this.#logger.warn(
                `[wharf] [kafka] brokers ${o.where} not reachable yet (${describeError(error).message}); trying again in ${delayMs} ms`,
              ),
            () => this.#closing !== undefined,
          );
          // The idempotent producer is capped by time, not by count: kafkajs' default retries forever.
          const retries = 5 + Math.ceil(Math.max(0, o.publishTimeoutMs - 3_100) / 2_000);
          const producer = await whileUnreachable(
            () =>
              this.#client.producer({
                idempotent: o.idempotent,
                acks: -1,
                retries,
                maxRetryTimeMs: 2_000,
                requestTimeoutMs: Math.min(REQUEST_TIMEOUT_MS, o.publishTimeoutMs),
              }),
            o.connectTimeoutMs,
          );
          const publisher = new Publisher(o, producer, () => this.#admin(), this.#topology, this.#logger);
          return { admin, producer, publisher };
        } catch (error) {
          await admin?.disconnect().catch(() => undefined);
          throw toWharfError(error, { where: o.where, doing: 'connecting' });
        }
      })();
      this.#connecting = withTimeout(work, o.connectTimeoutMs, () =>
        unreachable(o.where, `connecting (no answer within ${o.connectTimeoutMs} ms, connectTimeoutMs)`),
      );
      this.#connecting.then(
        (c) => {
          this.#connected = c;
        },
        () => {
          this.#connecting = undefined;
          // A connect that timed out may still finish: close what it opened.
          work.then(
            (c) => Promise.allSettled([c.admin.disconnect(), c.producer.disconnect()]),
            () => undefined,
          );
        },
      );
    }
    return this.#connecting;
  }

  async #admin(): Promise<ClientAdmin> {
    return (await this.#ready('use the admin client')).admin;
  }

  /** The connection, without a promise once connected: publish awaits only when it must. */
  #ready(operation: string): Connected | Promise<Connected> {
    if (this.#closing) return Promise.reject(new ClosedError(ADAPTER_NAME, operation));
    return this.#connected ?? this.#connect();
  }

  async publish(channel: string, messages: readonly WireMessage[]): Promise<void> {
    // Connected (the usual case): no await on #ready, which cost a turn per publish. The
    // publisher's promise is awaited, not returned: an async function that returns a promise
    // takes two more microtask turns to adopt it.
    const ready = this.#ready('publish');
    const { publisher } = ready instanceof Promise ? await ready : ready;
    await publisher.publish(channel, messages);
  }

  async declare(channel: string, groups: readonly string[], policy: NormalizedRetryPolicy): Promise<void> {
    await this.#ready('declare');
    for (const group of groups) await this.#topology.declareGroup(channel, group, policy);
  }

  async subscribe(
    request: SubscribeRequest,
    onDelivery: (delivery: Delivery) => Promise<void>,
  ): Promise<AdapterSubscription> {
    const { publisher } = await this.#ready('subscribe');
    const subscriber = new Subscriber(
      {
        options: this.options,
        client: this.#client,
        topology: this.#topology,
        publisher,
        admin: () => this.#admin(),
        logger: this.#logger,
      },
      request,
      onDelivery,
    );
    this.#subscribers.add(subscriber);
    try {
      await subscriber.start();
    } catch (error) {
      this.#subscribers.delete(subscriber);
      await subscriber.closed(1_000);
      throw toWharfError(error, {
        where: this.options.where,
        doing: `subscribing ${request.group} to ${request.channel}`,
      });
    }
    return subscriber;
  }

  async readDeadLetters(
    channel: string,
    group: string,
    options: { limit: number },
    visit: (deadLetter: StoredDeadLetter) => Promise<boolean>,
  ): Promise<void> {
    const { publisher } = await this.#ready('read dead letters');
    await readDeadLetters(
      {
        options: this.options,
        client: this.#client,
        topology: this.#topology,
        publisher,
        admin: () => this.#admin(),
      },
      channel,
      group,
      options.limit,
      visit,
    );
  }

  /** Lag from committed offsets and watermarks through the admin client; see backlog.ts. */
  async backlog(channel: string, group: string, _policy: NormalizedRetryPolicy): Promise<GroupBacklog> {
    await this.#ready('read a backlog');
    const admin = await this.#admin();
    try {
      return await readBacklog(admin, this.#topology.names, channel, group);
    } catch (error) {
      if (error instanceof UnknownGroupError) throw error;
      throw toWharfError(error, { where: this.options.where, doing: `reading the backlog of ${group} on ${channel}` });
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const bound = Math.max(this.options.sessionTimeoutMs, 10_000);
      await Promise.allSettled([...this.#subscribers].map((s) => s.closed(bound)));
      this.#subscribers.clear();
      const connected = await this.#connecting?.catch(() => undefined);
      if (connected) {
        // Bounded: with the broker gone, kafkajs' disconnect can wait for requests that never end,
        // and a service that cannot close never exits (seen: >9 min after a broker kill -9).
        const bound = (work: Promise<void>): Promise<void> =>
          withTimeout(work, 10_000, () => new Error('disconnect timeout')).catch(() => undefined);
        await Promise.all([bound(connected.producer.disconnect()), bound(connected.admin.disconnect())]);
      }
    })();
    return this.#closing;
  }

  /** The kafkajs `Kafka` instance. */
  raw(): unknown {
    return this.#client.native;
  }
}
