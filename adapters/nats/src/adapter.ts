import {
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { connect, type NatsConnection, PermissionViolationError, type Subscription } from '@nats-io/transport-node';
import {
  type Adapter,
  type AdapterInit,
  type AdapterSubscription,
  type Capabilities,
  ClosedError,
  classifyTlsError,
  DEFAULT_CAPABILITIES,
  type Delivery,
  deadLetterInfo,
  describeError,
  type GroupBacklog,
  incidentSink,
  type Logger,
  type NormalizedRetryPolicy,
  type PublishRequestOptions,
  type StoredDeadLetter,
  type SubscribeRequest,
  TopologyError,
  TopologyMismatchError,
  type WireMessage,
  withTimeout,
} from '@wharf/core';
import { CONSUMER_NOT_FOUND, readBacklog } from './backlog.js';
import { readDeadLetters, writeDeadLetter } from './dead-letters.js';
import { connectError, isNoResponders, isStreamNotFound, notAuthorized } from './errors.js';
import {
  ADAPTER_NAME,
  connectionOptions,
  type NatsAdapterOptions,
  type NatsTlsOptions,
  type ResolvedNatsOptions,
  resolveOptions,
} from './options.js';
import { Publisher } from './publisher.js';
import { adoptStream, deadLetterHeaders, decodePlain, publishPlain } from './raw.js';
import { Requests } from './requests.js';
import { type RemovedUnsettled, Retention } from './retention.js';
import { crashLoop, eventIdOf, Subscriber } from './subscriber.js';
import { probeTls } from './tls-probe.js';
import {
  type ChannelNames,
  channelNames,
  dlqSubject,
  durableName,
  ensureConsumer,
  ensureDeadLetterStream,
} from './topology.js';
import { retrying } from './transient.js';

/** NATS's default `max_payload` (1 MiB), used until the server tells us its own. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
/** How long a stalled subscriber's PING may go unanswered before the connection is replaced. */
const LINK_CHECK_MS = 1_000;
/** A TLS connection not up after this long is diagnosed with a connection of our own (see probeTls). */
const TLS_PROBE_AFTER_MS = 300;

/** `host` of `host:port` (brackets of an IPv6 address removed). */
function hostOf(server: string): string {
  return server.slice(0, server.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
}
/** Room left in `max_payload` for the `ce-*` headers. */
const HEADER_ROOM = 8 * 1024;

interface Connected {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly publisher: Publisher;
  readonly requests: Requests;
  readonly retention: Retention;
}

/**
 * The NATS JetStream adapter. Channel → stream + subject, group → durable pull consumer; retries are
 * `nak(delay)` held by the server; dead letters go to a per-channel dead-letter stream. See README.md.
 */
export class NatsAdapter implements Adapter {
  readonly name = ADAPTER_NAME;
  readonly #options: ResolvedNatsOptions;
  readonly #logger: Logger;
  readonly #subscribers = new Set<Subscriber>();
  readonly #advisories = new Set<Subscription>();
  readonly #allSubscribers = new Set<Subscriber>();
  #connected: Connected | undefined;
  #capabilities: Capabilities | undefined;
  #connecting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #linkCheck: Promise<boolean> | undefined;
  /** The adopted subject of each raw subscription in this process, by channel and group: replays go there. */

  constructor(init: AdapterInit & NatsAdapterOptions) {
    this.#options = resolveOptions(init.url, init);
    this.#logger = init.logger;
  }

  get capabilities(): Capabilities {
    const maxPayload = this.#connected?.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
    if (this.#capabilities?.maxMessageBytes !== maxPayload - HEADER_ROOM) {
      this.#capabilities = Object.freeze({
        ...DEFAULT_CAPABILITIES,
        // One consumer hands messages out in stream order, but with concurrency > 1, competing subscribers
        // or a nak-delayed retry, later events overtake earlier ones: no per-key order is promised.
        orderedByKey: false,
        // A publish to a channel without groups is accepted (interest retention then keeps it for nobody).
        rejectsUnroutable: false,
        brokerDeduplication: true,
        maxMessageBytes: Math.max(1, maxPayload - HEADER_ROOM),
        // Plain messages on existing streams: see raw.ts.
        rawMessages: true,
      });
    }
    return this.#capabilities;
  }

  /** The resolved options (no secrets are logged from them). */
  get options(): ResolvedNatsOptions {
    return this.#options;
  }

  connect(): Promise<void> {
    if (this.#closing) return Promise.reject(new ClosedError(ADAPTER_NAME, 'connect'));
    this.#connecting ??= this.#connect();
    this.#connecting.catch(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async #connect(): Promise<void> {
    const o = this.#options;
    const options = connectionOptions(o);
    let nc: NatsConnection;
    const tls = o.tls && o.servers[0] ? { options: o.tls, host: hostOf(o.servers[0]) } : undefined;
    const connecting = connect(options);
    try {
      // A connection that completes after we gave up must not linger.
      const connected = withTimeout(connecting, o.connectTimeoutMs + 1_000, () => {
        connecting.then((late) => late.close()).catch(() => {});
        return new Error(`no connection within ${o.connectTimeoutMs + 1_000} ms`);
      });
      nc = tls ? await Promise.race([connected, this.#tlsRefusal(connecting, tls.options)]) : await connected;
    } catch (error) {
      connecting.then((late) => late.close()).catch(() => {});
      throw connectError(error, o.display, o.connectTimeoutMs, tls);
    }
    try {
      const jsm = await jetstreamManager(nc, { timeout: o.connectTimeoutMs });
      const js = jetstream(nc, { timeout: o.publishTimeoutMs });
      const requests = new Requests(nc, () => void this.#checkLink(nc, 'publishes went unanswered'), o.inboxPrefix);
      const retention = new Retention(jsm, this.#logger, o.purgeIntervalMs, nc.info?.version, (removed) =>
        this.#reportRemoved(removed),
      );
      const publisher = new Publisher(requests, jsm, o, (declared) => {
        if (declared.purgeSettled) retention.track(declared.stream);
        else this.#warnRetention(declared.stream);
      });
      this.#connected = { nc, js, jsm, requests, publisher, retention };
    } catch (error) {
      await nc.close().catch(() => {});
      throw connectError(error, o.display, o.connectTimeoutMs);
    }
    if (this.#closing) {
      await nc.close().catch(() => {});
      throw new ClosedError(ADAPTER_NAME, 'connect');
    }
    this.#watch(nc);
  }

  /**
   * Rejects with the TLS error when a connection still not up after TLS_PROBE_AFTER_MS is refused by
   * the server's TLS layer (nats.js would report only a timeout: see probeTls); else never settles.
   */
  #tlsRefusal(connecting: Promise<NatsConnection>, tls: NatsTlsOptions): Promise<never> {
    return new Promise<never>((_, reject) => {
      let done = false;
      connecting.then(
        () => {
          done = true;
        },
        () => {
          done = true;
        },
      );
      const timer = setTimeout(async () => {
        if (done || !this.#options.servers[0]) return;
        const server = this.#options.servers[0];
        const refusal = await probeTls(server, tls, this.#options.connectTimeoutMs);
        // Only a certificate problem ends the wait early; anything else is left to nats.js's own attempt.
        const target = { broker: 'NATS', host: tls.servername ?? hostOf(server), tls };
        if (refusal && !done && classifyTlsError(ADAPTER_NAME, refusal, target)) reject(refusal);
      }, TLS_PROBE_AFTER_MS);
      timer.unref();
    });
  }

  readonly #warned = new Set<string>();

  /** An unsettled event removed from a channel stream: an incident on the group's subscription in this process. */
  #reportRemoved(removed: RemovedUnsettled): void {
    const subscriber = [...this.#subscribers].find(
      (s) => s.stream === removed.stream && s.durable === removed.consumer,
    );
    const report = incidentSink(subscriber?.request ?? {}, this.#logger);
    const count = removed.toSeq - removed.fromSeq + 1;
    report({
      kind: 'removed',
      component: ADAPTER_NAME,
      channel: subscriber?.request.channel ?? removed.stream,
      group: subscriber?.request.group ?? removed.consumer,
      message: `${count} event(s) the group had not settled were removed from stream ${removed.stream} (sequences ${removed.fromSeq}-${removed.toSeq}) by its limits (max_age, max_msgs, max_bytes) or by hand; they will not be delivered`,
      details: { stream: removed.stream, consumer: removed.consumer, fromSeq: removed.fromSeq, toSeq: removed.toSeq },
    });
  }

  /** A channel stream kept from an older version (interest retention) has the server's restart problem. */
  #warnRetention(stream: string): void {
    if (this.#warned.has(stream)) return;
    this.#warned.add(stream);
    this.#logger.warn(
      `[wharf] [nats] stream ${stream} exists without limits retention (made by an older @wharf/nats or by an operator): nats-server 2.9 can acknowledge and drop events of an interest-retention stream published while it shuts down; delete the stream (nats stream rm ${stream}) when it is empty so the adapter recreates it`,
    );
  }

  #watch(nc: NatsConnection): void {
    (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'error' && status.error instanceof PermissionViolationError) {
          const { operation, subject } = status.error;
          this.#logger.warn(`[wharf] [nats] the server refused ${operation} on "${subject}" (Permissions Violation)`);
          // A refused publish gets no PubAck: fail the publishes waiting for one now, typed, not at their timeout.
          if (operation === 'publish')
            this.#connected?.requests.refuse(subject, notAuthorized(operation, subject, status.error));
        } else if (status.type === 'disconnect') {
          this.#logger.warn(`[wharf] [nats] disconnected from ${this.#options.display}; reconnecting`);
          for (const subscriber of this.#subscribers) subscriber.disconnected();
        } else if (status.type === 'reconnect') {
          this.#logger.info(`[wharf] [nats] reconnected to ${this.#options.display}`);
          // Publishes still waiting for their PubAck will not get one on this connection: send them again.
          this.#connected?.requests.resend();
          // Pull requests live on the server: after a restart they are gone, so every subscriber asks again.
          for (const subscriber of this.#subscribers) subscriber.reset();
        }
      }
    })().catch(() => {});
  }

  /**
   * The one connection-health check, for consumers and producers alike: a stalled pull (no message nor
   * heartbeat), or a publish refused because the server left a PING unanswered for 5 s, on a
   * connection nats.js still calls open: is the server reading it? A link that dropped bytes (a black
   * hole that healed) can leave the protocol out of step in either direction, so requests on it (the
   * consumer's redeclare, every PubAck) vanish, and nats.js notices only when two of its PINGs go
   * unanswered: up to 10 s later. One PING answered within LINK_CHECK_MS says the link is fine;
   * otherwise the connection is replaced now (the reconnect resends waiting publishes and makes every
   * subscriber pull anew). Callers that see trouble together share one check.
   */
  #checkLink(nc: NatsConnection, after: string): Promise<boolean> {
    this.#linkCheck ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const answered = await Promise.race([
        nc.flush().then(
          () => true,
          () => false,
        ),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), LINK_CHECK_MS);
        }),
      ]).finally(() => clearTimeout(timer));
      if (!answered && !nc.isClosed() && !this.#closing) {
        this.#logger.warn(
          `[wharf] [nats] the server did not answer a PING within ${LINK_CHECK_MS} ms after ${after}; replacing the connection to ${this.#options.display}`,
        );
        await nc.reconnect().catch(() => undefined);
      }
      return answered;
    })().finally(() => {
      this.#linkCheck = undefined;
    });
    return this.#linkCheck;
  }

  #ready(operation: string): Connected {
    if (this.#closing) throw new ClosedError(ADAPTER_NAME, operation);
    if (!this.#connected) throw new ClosedError(ADAPTER_NAME, `${operation} before connect()`);
    return this.#connected;
  }

  publish(channel: string, messages: readonly WireMessage[], options?: PublishRequestOptions): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    try {
      const { js, publisher } = this.#ready('publish');
      if (options?.raw !== undefined) {
        return publishPlain(js, options.raw.queue ?? channel, messages, this.#options.publishTimeoutMs);
      }
      return publisher.publish(channel, messages);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async declare(channel: string, groups: readonly string[], policy: NormalizedRetryPolicy): Promise<void> {
    const { jsm, publisher } = this.#ready('declare');
    const names = await publisher.channel(channel);
    const pending = this.#options.maxAckPending ?? this.#options.retryHeadroom + 1;
    for (const group of groups) await ensureConsumer(jsm, this.#options, names, group, policy, pending);
  }

  async subscribe(
    request: SubscribeRequest,
    onDelivery: (delivery: Delivery) => Promise<void>,
  ): Promise<AdapterSubscription> {
    const { nc, js, jsm, publisher, requests } = this.#ready('subscribe');
    const { channel, group, policy } = request;
    const pending = this.#options.maxAckPending ?? request.concurrency + this.#options.retryHeadroom;
    const raw = request.raw;
    const declare = async (): Promise<{ names: ChannelNames; durable: string }> => {
      if (raw !== undefined) {
        // Raw mode: the producer's stream stands in for the channel's; dead letters stay the channel's.
        const subject = raw.queue ?? channel;
        const stream = await adoptStream(jsm, subject, raw.arguments);
        const names = { ...(await ensureDeadLetterStream(jsm, this.#options, channel)), stream, subject };
        const durable = await ensureConsumer(jsm, this.#options, names, group, policy, pending);
        await checkAdoptedConsumer(jsm, stream, durable, subject);
        return { names, durable };
      }
      const names = await publisher.channel(channel);
      const durable = await ensureConsumer(jsm, this.#options, names, group, policy, pending, request.expireWhenIdleMs);
      return { names, durable };
    };
    const { names, durable } = await declare();
    if (this.#closing) throw new ClosedError(ADAPTER_NAME, 'subscribe');
    const subject = dlqSubject(this.#options, channel, group);
    const advisory = this.#watchMaxDeliveries(nc, js, jsm, names.stream, durable, names.dlqStream, subject, request);
    const subscriber = new Subscriber(
      {
        nc,
        js,
        requests,
        options: this.#options,
        logger: this.#logger,
        names,
        durable,
        dlqSubject: subject,
        checkLink: () => this.#checkLink(nc, 'a stalled pull'),
        redeclare: async () => {
          if (raw === undefined) publisher.forget(channel);
          await declare();
        },
      },
      request,
      onDelivery,
      () => {
        this.#subscribers.delete(subscriber);
        advisory.unsubscribe();
        this.#advisories.delete(advisory);
      },
    );
    this.#subscribers.add(subscriber);
    this.#allSubscribers.add(subscriber);
    subscriber.start();
    return subscriber;
  }

  /**
   * The last line of the crash-loop backstop: when the server stops delivering a message (MaxDeliver) and
   * our own dead-lettering on the last delivery did not happen, copy it from the stream into the dead-letter
   * stream by sequence. The advisory is at-most-once; every subscriber of the group receives it and the
   * dead-letter stream's duplicate window keeps one copy.
   */
  #watchMaxDeliveries(
    nc: NatsConnection,
    js: JetStreamClient,
    jsm: JetStreamManager,
    stream: string,
    durable: string,
    dlqStream: string,
    subject: string,
    request: SubscribeRequest,
  ): Subscription {
    const report = incidentSink(request, this.#logger);
    const sub = nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${durable}`, {
      callback: (error, msg) => {
        if (error) return;
        let advisory: { stream_seq: number; deliveries: number };
        try {
          advisory = msg.json<{ stream_seq: number; deliveries: number }>();
        } catch {
          return;
        }
        const incident = (eventId: string | undefined, message: string, cause?: unknown): void =>
          report({
            kind: 'max-deliveries',
            component: ADAPTER_NAME,
            channel: request.channel,
            group: request.group,
            eventId,
            message,
            details: { stream, streamSequence: advisory.stream_seq, deliveries: advisory.deliveries },
            ...(cause === undefined ? {} : { error: describeError(cause).message }),
          });
        let eventId: string | undefined;
        (async () => {
          const stored = await jsm.streams.getMessage(stream, { seq: advisory.stream_seq });
          if (!stored) {
            // Removed before it could be copied: the server will not deliver it again.
            throw new Error(`stream ${stream} no longer holds sequence ${advisory.stream_seq}`);
          }
          const raw = request.raw;
          const decoded =
            raw === undefined ? undefined : decodePlain(raw, { data: stored.data, headers: stored.header }, undefined);
          eventId = decoded?.ok ? decoded.message.attributes.id : eventIdOf(stored.header);
          const write = () =>
            writeDeadLetter(js, {
              subject,
              stream: dlqStream,
              headers:
                decoded === undefined ? stored.header : deadLetterHeaders(stored.header, decoded, stored.subject),
              body: stored.data,
              info: deadLetterInfo({
                reason: 'retries-exhausted',
                error: crashLoop(advisory.deliveries),
                channel: request.channel,
                group: request.group,
                attempts: advisory.deliveries,
              }),
              msgId: `${durable} ${advisory.stream_seq}`,
              timeoutMs: this.#options.publishTimeoutMs,
            });
          // Bounded: a few tries a second apart (the same msgId keeps one copy), then the incident says it is stuck.
          for (let attempt = 1; ; attempt++) {
            try {
              await write();
              break;
            } catch (writeError) {
              if (attempt >= 3 || this.#closing) throw writeError;
              await new Promise((r) => setTimeout(r, 1_000));
            }
          }
          incident(
            eventId,
            `reached MaxDeliver (${advisory.deliveries} deliveries) without a confirmed dead letter; copied to the dead-letter stream from the server's advisory`,
          );
        })().catch((cause: unknown) => {
          incident(
            eventId,
            `reached MaxDeliver (${advisory.deliveries} deliveries) and could not be copied to the dead-letter stream: the server will not deliver it again (stream ${stream}, sequence ${advisory.stream_seq})`,
            cause,
          );
        });
      },
    });
    this.#advisories.add(sub);
    return sub;
  }

  async readDeadLetters(
    channel: string,
    group: string,
    options: { limit: number },
    visit: (deadLetter: StoredDeadLetter) => Promise<boolean>,
  ): Promise<void> {
    const { jsm } = this.#ready('read dead letters');
    const names = channelNames(this.#options, channel);
    // nats-server 2.9 lets a direct get on a stream that does not exist time out (no "no responders"),
    // which would cost the read's whole retry budget: ask for the stream first.
    if (await streamMissing(jsm, names.dlqStream)) return;
    try {
      await readDeadLetters(jsm, names.dlqStream, dlqSubject(this.#options, channel, group), options.limit, visit);
    } catch (error) {
      if (isStreamNotFound(error)) return;
      // Direct gets have no responders when the stream does not exist (or JetStream is still starting): ask.
      if (isNoResponders(error) && (await streamMissing(jsm, names.dlqStream))) return;
      throw new TopologyError(
        ADAPTER_NAME,
        `cannot read dead letters of ${channel}/${group} from stream ${names.dlqStream}: ${(error as Error).message} — tried again for about 5 s; check that nats-server is running with JetStream, then list again`,
        { cause: error },
      );
    }
  }

  /**
   * Deletes the group's durable consumer. Its dead letters stay in the channel's dead-letter stream
   * (shared by the channel's groups) until retention removes them: a partial purge of a stream makes
   * nats-server 2.9.10 forget every consumer's pending redeliveries (see the README).
   */
  async deleteGroup(channel: string, group: string, _policy: NormalizedRetryPolicy): Promise<void> {
    const { jsm } = this.#ready('delete a group');
    const names = channelNames(this.#options, channel);
    try {
      await retrying(() => jsm.consumers.delete(names.stream, durableName(group)));
    } catch (error) {
      if (isStreamNotFound(error) || (error instanceof JetStreamApiError && error.code === CONSUMER_NOT_FOUND)) return;
      throw error;
    }
  }

  /** Consumer info and dead-letter stream info; see backlog.ts. */
  async backlog(channel: string, group: string, _policy: NormalizedRetryPolicy): Promise<GroupBacklog> {
    const { jsm } = this.#ready('read a backlog');
    const names = channelNames(this.#options, channel);
    return readBacklog(jsm, names, durableName(group), dlqSubject(this.#options, channel, group), channel, group);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#connecting?.catch(() => {});
      for (const subscriber of [...this.#subscribers]) await subscriber.stop();
      const connected = this.#connected;
      if (!connected) return;
      await connected.retention.close();
      try {
        await connected.nc.drain();
      } catch {
        await connected.nc.close().catch(() => {});
      }
      for (const subscriber of this.#allSubscribers) subscriber.dispose();
      connected.requests.close(new ClosedError(ADAPTER_NAME, 'wait for a reply'));
    })();
    return this.#closing;
  }

  /** The native `NatsConnection` (build `jetstream(nc)` on it for what Wharf does not cover). */
  raw(): NatsConnection | undefined {
    return this.#connected?.nc;
  }
}

/**
 * Two raw subscriptions with the same group name on one adopted stream share a durable; one on another
 * subject would silently consume the other's messages, so a consumer filtered otherwise is refused.
 */
async function checkAdoptedConsumer(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  subject: string,
): Promise<void> {
  const info = await retrying(() => jsm.consumers.info(stream, durable));
  const filter = info.config.filter_subject;
  if (filter !== subject) {
    throw new TopologyMismatchError(
      ADAPTER_NAME,
      subject,
      `the durable consumer ${durable} on the adopted stream ${stream} filters "${filter ?? '(nothing)'}", not "${subject}": another subscription or program uses the same consumer name — choose another group name, or remove that consumer (nats consumer rm ${stream} ${durable})`,
    );
  }
}

/** True when the server says the stream does not exist (not when it cannot be asked). */
async function streamMissing(jsm: JetStreamManager, stream: string): Promise<boolean> {
  try {
    await retrying(() => jsm.streams.info(stream));
    return false;
  } catch (error) {
    return isStreamNotFound(error);
  }
}
