import { inspect } from 'node:util';
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
  PublishError,
  type PublishRequestOptions,
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
import { plainRecord } from './raw.js';
import { Subscriber } from './subscriber.js';
import { checkTls } from './tls-check.js';
import { Topology } from './topology.js';

interface Connected {
  readonly admin: ClientAdmin;
  readonly producer: ClientProducer;
  readonly publisher: Publisher;
}

/**
 * Wharf on Apache Kafka, through @platformatic/kafka (the default) or kafkajs, both behind
 * `client-types.ts`. See README.md for the mapping of channels and groups onto topics and consumer
 * groups, and for the retry and dead-letter mechanics.
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
  /** The adopted topic of each raw subscription in this process, by channel and group: replays go there. */
  /** Topics a raw publish found to exist. */
  readonly #plainTopics = new Set<string>();

  constructor(init: AdapterInit & KafkaAdapterOptions) {
    this.options = resolveOptions(init.url, init);
    this.#logger = init.logger;
    this.capabilities = Object.freeze({
      ...DEFAULT_CAPABILITIES,
      orderedByKey: true,
      // A topic keeps every event whether or not a group reads it: nothing is unroutable.
      rejectsUnroutable: false,
      maxMessageBytes: this.options.maxMessageBytes,
      // Plain messages on existing topics: see raw.ts.
      rawMessages: true,
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
          await checkTls(o, Math.min(3_000, o.connectTimeoutMs));
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
          throw toWharfError(error, { where: o.where, doing: 'connecting', tls: o.tls });
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

  async publish(channel: string, messages: readonly WireMessage[], options?: PublishRequestOptions): Promise<void> {
    if (options?.raw !== undefined) return this.#publishPlain(options.raw.queue ?? channel, messages);
    // Connected (the usual case): no await on #ready, which cost a turn per publish. The
    // publisher's promise is awaited, not returned: an async function that returns a promise
    // takes two more microtask turns to adopt it.
    const ready = this.#ready('publish');
    const { publisher } = ready instanceof Promise ? await ready : ready;
    await publisher.publish(channel, messages);
  }

  /**
   * Plain records (value alone, keyed by the partition key, acks=all) to an existing topic. The topic
   * is checked first: brokers that auto-create topics would otherwise make a new one of a mistyped name.
   * A replayed dead letter (it has the `replayed` attribute) keeps its event id as `message-id`, so the
   * raw consumer wraps it into the same event.
   */
  async #publishPlain(topic: string, messages: readonly WireMessage[]): Promise<void> {
    const ready = this.#ready('publish');
    const { publisher, admin } = ready instanceof Promise ? await ready : ready;
    if (!this.#plainTopics.has(topic)) {
      if (!(await admin.listTopics()).includes(topic)) {
        throw new PublishError(
          ADAPTER_NAME,
          `raw publish to topic "${topic}": it does not exist, and Wharf does not create a legacy consumer's topic — create it (kafka-topics.sh --create) or name the right topic in raw.queue`,
        );
      }
      this.#plainTopics.add(topic);
    }
    await publisher.send(
      topic,
      messages.map((m) => plainRecord(m, m.attributes.replayed !== undefined)),
      `publishing plain records to ${topic}`,
    );
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
      const names = this.#topology.names;
      throw toWharfError(error, {
        where: this.options.where,
        doing: `subscribing ${request.group} to ${request.channel}`,
        tls: this.options.tls,
        topics: [names.channel(request.channel)],
        group: names.group(request.channel, request.group),
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

  /**
   * Deletes the group's retry and dead-letter topics and its consumer groups (the one that reads the
   * channel, and the dead-letter reader's). The channel's topic stays: other groups read it. A
   * group's member may still be leaving right after its subscriber stopped (NON_EMPTY_GROUP): the
   * delete is tried again for up to a session timeout.
   */
  async deleteGroup(channel: string, group: string, policy: NormalizedRetryPolicy): Promise<void> {
    await this.#ready('delete a group');
    const admin = await this.#admin();
    const names = this.#topology.names;
    const doing = `deleting group ${group} of ${channel}`;
    try {
      const { retries, dlt } = names.groupTopics(channel, group, policy);
      const existing = new Set(await admin.listTopics());
      const topics = [...retries.values(), dlt].filter((topic) => existing.has(topic));
      await admin.deleteTopics(topics);
      for (const topic of topics) this.#topology.forget(topic);
      const deadline = Date.now() + Math.max(this.options.sessionTimeoutMs, 5_000);
      // Topic deletion completes asynchronously: resolve once the metadata no longer lists them, so a
      // backlog read right after this finds the group gone instead of a topic half deleted.
      while (topics.length > 0) {
        const listed = new Set(await admin.listTopics());
        if (!topics.some((topic) => listed.has(topic))) break;
        if (Date.now() > deadline)
          throw new Error(`topics ${topics.join(', ')} were still listed after their deletion`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      for (const id of [names.group(channel, group), names.deadLetterReader(channel, group)]) {
        for (;;) {
          const failure = await admin.deleteGroups([id]).then(
            () => undefined,
            (error: unknown) => error ?? new Error('DeleteGroups failed'),
          );
          if (failure === undefined) break;
          const kind = groupDeleteError(failure);
          if (kind === 'not-found') break;
          if (kind !== 'non-empty' || Date.now() > deadline) throw failure;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
    } catch (error) {
      throw toWharfError(error, { where: this.options.where, doing, tls: this.options.tls });
    }
  }

  /** Lag from committed offsets and watermarks through the admin client; see backlog.ts. */
  async backlog(channel: string, group: string, _policy: NormalizedRetryPolicy): Promise<GroupBacklog> {
    await this.#ready('read a backlog');
    const admin = await this.#admin();
    try {
      return await readBacklog(admin, this.#topology.names, channel, group);
    } catch (error) {
      if (error instanceof UnknownGroupError) throw error;
      throw toWharfError(error, {
        where: this.options.where,
        doing: `reading the backlog of ${group} on ${channel}`,
        tls: this.options.tls,
        group: this.#topology.names.group(channel, group),
      });
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

  /**
   * The client library's own handle: with @platformatic/kafka (the default) `{ kind: 'platformatic',
   * options, admins }`, the base options to build its `Producer`, `Consumer` or `Admin` with; with
   * kafkajs the `Kafka` instance.
   */
  raw(): unknown {
    return this.#client.native;
  }
}

/**
 * What a failed DeleteGroups says, from its protocol error type. kafkajs nests it per group
 * (`error.groups[].error.type`), other clients put it on the error: both are looked for.
 */
function groupDeleteError(error: unknown): 'not-found' | 'non-empty' | 'other' {
  const text = inspect(error, { depth: 5 });
  if (/GROUP_ID_NOT_FOUND|GroupIdNotFound|does not exist/i.test(text)) return 'not-found';
  if (/NON_EMPTY_GROUP|NonEmptyGroup|is not empty/i.test(text)) return 'non-empty';
  return 'other';
}
