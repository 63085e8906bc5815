import type { JetStreamClient } from '@nats-io/jetstream';
import {
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  nanos,
  type Subscription,
} from '@nats-io/transport-node';
import {
  type AdapterSubscription,
  CrashLoopError,
  type DeadLetterInfo,
  type Decoded,
  type Delivery,
  deadLetterInfo,
  describeError,
  type IncidentSink,
  incidentSink,
  type Logger,
  type RetryInstruction,
  type SubscribeRequest,
} from '@wharf/core';
import { decodeDelivered } from './codec.js';
import { writeDeadLetter } from './dead-letters.js';
import type { ResolvedNatsOptions } from './options.js';
import { deadLetterHeaders, decodePlain } from './raw.js';
import type { Requests } from './requests.js';
import { type ChannelNames, maxDeliver } from './topology.js';

const ACK = new TextEncoder().encode('+ACK');
const NAK = new TextEncoder().encode('-NAK');
const TERM = new TextEncoder().encode('+TERM');
const WPI = new TextEncoder().encode('+WPI');
const encoder = new TextEncoder();

/** How long one pull request waits on the server for messages. */
const PULL_EXPIRES_MS = 15_000;
/** The server's idle heartbeat on a waiting pull request (nats-server 2.9 supports `idle_heartbeat`). */
const PULL_HEARTBEAT_MS = 1_000;
/**
 * Silence on the inbox, with a pull request outstanding, after which the consumer counts as stalled and is
 * declared again and pulled anew: a server restarted without our client noticing, a consumer lost with it.
 */
const STALL_MS = 5 * PULL_HEARTBEAT_MS;

/** Delivery metadata from a JetStream ack subject. */
export interface DeliveryMeta {
  readonly stream: string;
  readonly consumer: string;
  readonly deliveryCount: number;
  readonly streamSequence: number;
  readonly timestampNanos: string;
}

/** Dot positions of the subject being parsed (reused: no array per message). */
const dots: number[] = [];

/** Parses `$JS.ACK.[<domain>.<hash>.]<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>[.<rand>]`. */
export function parseAckSubject(reply: string): DeliveryMeta | undefined {
  if (!reply.startsWith('$JS.ACK.')) return undefined;
  let n = 0;
  for (let at = reply.indexOf('.'); at >= 0; at = reply.indexOf('.', at + 1)) dots[n++] = at;
  const tokens = n + 1;
  const base = tokens === 9 ? 2 : 4;
  if (tokens < base + 7) return undefined;
  const start = (k: number): number => (dots[k - 1] as number) + 1;
  const end = (k: number): number => (k < n ? (dots[k] as number) : reply.length);
  return {
    stream: reply.slice(start(base), end(base)),
    consumer: reply.slice(start(base + 1), end(base + 1)),
    deliveryCount: decimal(reply, start(base + 2), end(base + 2)),
    streamSequence: decimal(reply, start(base + 3), end(base + 3)),
    timestampNanos: reply.slice(start(base + 5), end(base + 5)),
  };
}

/** `Number(text.slice(from, to))` without the substring for the usual all-digits token. */
function decimal(text: string, from: number, to: number): number {
  if (to - from > 15) return Number(text.slice(from, to));
  let value = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return Number(text.slice(from, to));
    value = value * 10 + c;
  }
  return value;
}

/**
 * What JetStream cannot carry on a redelivered message (it is the same stored message, so no header can
 * change): how often it was released (a release must not count as an attempt) and when it first failed.
 * Kept per process, bounded; a message released by a process that then exits is seen by the next one with
 * one attempt more (see README, "Attempts").
 */
class AttemptBook {
  readonly #entries = new Map<string, { releases: number; firstFailureAt?: string }>();
  readonly #limit = 100_000;

  /** Empty (nothing released or failed: the usual case), no key is built nor looked up. */
  get(meta: DeliveryMeta): { releases: number; firstFailureAt?: string } | undefined {
    return this.#entries.size === 0 ? undefined : this.#entries.get(bookKey(meta));
  }

  #entry(meta: DeliveryMeta): { releases: number; firstFailureAt?: string } {
    const key = bookKey(meta);
    let entry = this.#entries.get(key);
    if (!entry) {
      if (this.#entries.size >= this.#limit) {
        const oldest = this.#entries.keys().next().value;
        if (oldest !== undefined) this.#entries.delete(oldest);
      }
      entry = { releases: 0 };
      this.#entries.set(key, entry);
    }
    return entry;
  }

  release(meta: DeliveryMeta): void {
    this.#entry(meta).releases++;
  }

  failed(meta: DeliveryMeta, at: string): void {
    this.#entry(meta).firstFailureAt ??= at;
  }

  done(meta: DeliveryMeta): void {
    if (this.#entries.size > 0) this.#entries.delete(bookKey(meta));
  }
}

/** A stored message as seen by one consumer: the attempt book's key. */
function bookKey(meta: DeliveryMeta): string {
  return `${meta.stream}/${meta.consumer}/${meta.streamSequence}`;
}

/** Shared across adapters in the process, so a new bus in the same process still knows what was released. */
const book = new AttemptBook();

export interface SubscriberDeps {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly requests: Requests;
  readonly options: ResolvedNatsOptions;
  readonly logger: Logger;
  readonly names: ChannelNames;
  readonly durable: string;
  readonly dlqSubject: string;
  /** Declares the consumer again (after it was deleted or the server lost it). */
  readonly redeclare: () => Promise<void>;
  /** Whether the server answers a PING on this connection; replaces the connection when it does not. */
  readonly checkLink: () => Promise<boolean>;
}

/**
 * One subscription: a pull loop on the group's durable consumer that never asks for more messages than
 * it has free slots (`concurrency` minus unsettled minus already requested), so the concurrency bound
 * holds per subscriber even when several compete on one durable.
 */
export class Subscriber implements AdapterSubscription {
  readonly #deps: SubscriberDeps;
  readonly #request: SubscribeRequest;
  readonly #onDelivery: (delivery: Delivery) => Promise<void>;
  readonly #inbox: string;
  readonly #nextSubject: string;
  readonly #inflight = new Set<NatsDelivery>();
  readonly #threshold: number;
  readonly #maxDeliver: number;
  readonly #incident: IncidentSink;
  #sub: Subscription | undefined;
  #requested = 0;
  #unsettled = 0;
  #seq = 0;
  #lastPullAt = 0;
  /** Last time anything (message, status, heartbeat) arrived on the pull inbox. */
  #lastSign = 0;
  #stallTimer: NodeJS.Timeout | undefined;
  #lastStallCheck = 0;
  /** Between the connection's disconnect and reconnect: silence is expected then, not a stall. */
  #offline = false;
  #stopped = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #workingTimer: NodeJS.Timeout | undefined;
  readonly onStopped: () => void;

  constructor(
    deps: SubscriberDeps,
    request: SubscribeRequest,
    onDelivery: (delivery: Delivery) => Promise<void>,
    onStopped: () => void,
  ) {
    this.#deps = deps;
    this.#request = request;
    this.#onDelivery = onDelivery;
    this.onStopped = onStopped;
    this.#inbox = createInbox(deps.options.inboxPrefix);
    this.#nextSubject = `$JS.API.CONSUMER.MSG.NEXT.${deps.names.stream}.${deps.durable}`;
    // Ask again once a tenth of the slots (at least 4, at most all) are free. Waiting for half left
    // only ~50 requested at times while a publisher's flush brings up to `window` messages at once:
    // the rest waited a pull round trip in the stream (p50 +1.5 ms, p99 +5–8 ms at 14k events/s).
    // A pull is one small message; one per ten deliveries costs well under a microsecond each.
    this.#threshold = Math.min(request.concurrency, Math.max(4, Math.floor(request.concurrency / 10)));
    this.#maxDeliver = maxDeliver(request.policy, deps.options);
    this.#incident = incidentSink(request, deps.logger);
  }

  start(): void {
    this.#sub = this.#deps.nc.subscribe(`${this.#inbox}.*`, {
      callback: (error, msg) => {
        if (error) {
          this.#deps.logger.warn(`[wharf] [nats] pull subscription error on ${this.#label()}`, {
            error: describeError(error).message,
          });
          return;
        }
        this.#onMessage(msg);
      },
    });
    // Long handlers: tell the server "still working" well within ack_wait so it does not redeliver.
    // Every in-flight message gets one at least every ack_wait/4, leaving room for a late timer.
    const every = Math.max(250, Math.floor(this.#deps.options.ackWaitMs / 4));
    this.#workingTimer = setInterval(() => {
      this.#heartbeat();
      this.#checkStale();
    }, every);
    this.#workingTimer.unref();
    this.#stallTimer = setInterval(() => this.#checkStalled(), PULL_HEARTBEAT_MS);
    this.#stallTimer.unref();
    this.#pull();
  }

  #label(): string {
    return `${this.#request.channel}/${this.#request.group}`;
  }

  /** The connection dropped: no heartbeat can arrive until it is back. */
  disconnected(): void {
    this.#offline = true;
  }

  /** After a reconnect the server has forgotten our pull requests: start over. */
  reset(): void {
    this.#offline = false;
    this.#requested = 0;
    this.#lastSign = Date.now();
    this.#pull();
  }

  /**
   * Asks for as many messages as there are free slots. Delivered messages carry their stream subject, not
   * the request's, so accounting is aggregate: `requested` goes down by one per message and by the unfilled
   * count (`Nats-Pending-Messages`) the server reports when a request expires or ends.
   */
  #pull(): void {
    if (this.#stopped || this.#deps.nc.isClosed()) return;
    const free = this.#request.concurrency - this.#unsettled - this.#requested;
    if (free <= 0 || (this.#requested > 0 && free < this.#threshold)) return;
    this.#requested += free;
    this.#lastPullAt = Date.now();
    if (this.#lastSign < this.#lastPullAt - PULL_HEARTBEAT_MS) this.#lastSign = this.#lastPullAt;
    try {
      this.#deps.nc.publish(
        this.#nextSubject,
        Buffer.from(
          JSON.stringify({ batch: free, expires: nanos(PULL_EXPIRES_MS), idle_heartbeat: nanos(PULL_HEARTBEAT_MS) }),
        ),
        { reply: `${this.#inbox}.${++this.#seq}` },
      );
    } catch (error) {
      this.#requested -= free;
      this.#later(1_000, false);
      this.#deps.logger.warn(`[wharf] [nats] pull request failed on ${this.#label()}`, {
        error: describeError(error).message,
      });
    }
  }

  /** Safety net: every request expires after PULL_EXPIRES_MS, so long after the last one nothing is pending. */
  #checkStale(): void {
    if (this.#requested > 0 && Date.now() - this.#lastPullAt > PULL_EXPIRES_MS + 10_000) {
      this.#requested = 0;
      this.#pull();
    }
  }

  /**
   * A waiting pull request hears from the server at least every PULL_HEARTBEAT_MS. Silence past STALL_MS while
   * one is outstanding (and the connection is up) means the server no longer holds it: declare the consumer
   * again (the server may have lost it) and pull anew, and say so, since deliveries may have waited meanwhile.
   */
  #checkStalled(): void {
    if (this.#stopped || this.#offline || this.#requested === 0 || this.#retryTimer) return;
    const nc = this.#deps.nc;
    if (nc.isClosed() || nc.isDraining()) return;
    const now = Date.now();
    // A check that runs late means the event loop was blocked: what arrived meanwhile is still unread, and
    // silence measured across it says nothing about the server. Start the measure again.
    const late = now - this.#lastStallCheck > 2 * PULL_HEARTBEAT_MS;
    this.#lastStallCheck = now;
    if (late) {
      this.#lastSign = Math.max(this.#lastSign, now - PULL_HEARTBEAT_MS);
      return;
    }
    const silentMs = now - this.#lastSign;
    if (silentMs < STALL_MS) return;
    this.#incident({
      kind: 'stalled',
      component: 'nats',
      channel: this.#request.channel,
      group: this.#request.group,
      message: `no message nor heartbeat for ${silentMs} ms on an outstanding pull request of consumer ${this.#deps.durable}; declaring it again and pulling anew`,
      details: { stream: this.#deps.names.stream, consumer: this.#deps.durable },
    });
    this.#requested = 0;
    this.#lastSign = Date.now();
    // The link first: a redeclare sent over a connection the server no longer reads in step would
    // wait out its API timeout. When the check replaced the connection, the reconnect has pulled anew
    // already; the redeclare that follows then only confirms the consumer.
    void this.#deps.checkLink().then((answered) => this.#later(answered ? 0 : 1_000, true));
  }

  #later(ms: number, redeclare: boolean): void {
    if (this.#retryTimer || this.#stopped) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#stopped) return;
      const again = redeclare ? this.#deps.redeclare() : Promise.resolve();
      again.then(
        () => this.#pull(),
        (error: unknown) => {
          this.#deps.logger.warn(`[wharf] [nats] cannot declare the consumer of ${this.#label()} again; retrying`, {
            error: describeError(error).message,
          });
          this.#later(1_000, true);
        },
      );
    }, ms);
    this.#retryTimer.unref();
  }

  #onMessage(msg: Msg): void {
    this.#lastSign = Date.now();
    const reply = msg.reply;
    if (!reply?.startsWith('$JS.ACK.')) {
      this.#onStatus(msg);
      return;
    }
    if (this.#requested > 0) this.#requested--;
    // The last message of our requests: slots that were too few to ask for while a request was open (fewer than
    // the threshold) must be asked for now, or they stay idle until a handler settles — with long handlers, for
    // their whole run (concurrency 6: five running, the sixth slot never used).
    if (this.#requested === 0) queueMicrotask(() => this.#pull());
    const meta = parseAckSubject(reply);
    if (!meta) return;
    if (this.#stopped) {
      // Arrived after stop(): give it straight back, without counting an attempt.
      book.release(meta);
      this.#bestEffort(reply, NAK);
      return;
    }
    this.#unsettled++;
    this.#hand(msg, reply, meta);
  }

  #onStatus(msg: Msg): void {
    const code = msg.headers?.code ?? 0;
    if (code === 100) return; // idle heartbeat
    const unfilled = Number(msg.headers?.get('Nats-Pending-Messages') || 0);
    this.#requested = Math.max(0, this.#requested - (Number.isFinite(unfilled) ? unfilled : 0));
    if (code === 408 || code === 404) {
      this.#pull();
      return;
    }
    const description = msg.headers?.description ?? '';
    // 503: no responders (consumer or stream gone); 409: consumer deleted, max waiting, leadership change…
    const gone = code === 503 || /deleted|not found/i.test(description);
    if (code === 503) this.#requested = 0;
    // A 409 saying the consumer was deleted or is unknown is the server losing our group; a 503 (no responders)
    // is also what every pull gets while JetStream starts after a restart: a warning, and ask again soon.
    if (gone && code !== 503) {
      this.#incident({
        kind: 'stalled',
        component: 'nats',
        channel: this.#request.channel,
        group: this.#request.group,
        message: `pull on consumer ${this.#deps.durable} ended with ${code} ${description}: the consumer or its stream is gone (deleted, or lost by a server restart); declaring it again`,
        details: { stream: this.#deps.names.stream, consumer: this.#deps.durable, code },
      });
    } else {
      this.#deps.logger.warn(`[wharf] [nats] pull on ${this.#label()} ended with ${code} ${description}`);
    }
    // 503 right after a restart: JetStream is still loading its streams; ask again soon.
    this.#later(code === 503 ? 250 : gone ? 1_000 : 250, gone);
  }

  #heartbeat(): void {
    if (this.#inflight.size === 0) return;
    for (const delivery of this.#inflight) if (!this.#bestEffort(delivery.reply, WPI)) return;
  }

  /**
   * A write whose loss the server repairs (a missed "working" lets ack_wait redeliver; a missed nak on a
   * message that came after stop() does too). It runs from timers and subscription callbacks, where a throw
   * (connection draining or closed during shutdown) would be an uncaught exception: report false instead.
   */
  #bestEffort(subject: string, data: Uint8Array): boolean {
    const nc = this.#deps.nc;
    if (nc.isClosed() || nc.isDraining()) return false;
    try {
      nc.publish(subject, data);
      return true;
    } catch {
      return false;
    }
  }

  #hand(msg: Msg, reply: string, meta: DeliveryMeta): void {
    const { policy } = this.#request;
    const known = book.get(meta);
    const attempt = Math.max(1, Math.min(meta.deliveryCount - (known?.releases ?? 0), policy.maxAttempts));
    const delivery = new NatsDelivery(this, msg, reply, meta, attempt);
    this.#inflight.add(delivery);

    // The crash-loop backstop: this is the last delivery the server will make (MaxDeliver), and earlier
    // deliveries ended without a settlement (crash, hang past ack_wait, releases). End it dead-lettered
    // rather than let the server drop it silently.
    if (meta.deliveryCount >= this.#maxDeliver) {
      const info = deadLetterInfo({
        reason: 'retries-exhausted',
        error: crashLoop(meta.deliveryCount),
        channel: this.#request.channel,
        group: this.#request.group,
        attempts: meta.deliveryCount - 1,
        firstFailureAt: known?.firstFailureAt,
      });
      const deps = this.#deps;
      delivery.deadLetter(info).then(
        () => deps.logger.warn(`[wharf] [nats] dead-lettered an event on ${this.#label()}: crash loop`),
        (error: unknown) => {
          // The server makes no further delivery (MaxDeliver): only the advisory's copy can still save it.
          this.#incident({
            kind: 'max-deliveries',
            component: 'nats',
            channel: this.#request.channel,
            group: this.#request.group,
            eventId: eventIdOf(msg.headers),
            message: `delivered ${meta.deliveryCount} times without a settlement and the crash-loop dead-letter write failed on the last delivery the server makes; the max-deliveries advisory will try to copy it to the dead-letter stream`,
            details: { stream: meta.stream, streamSequence: meta.streamSequence, deliveries: meta.deliveryCount },
            error: describeError(error).message,
          });
          delivery.release().catch(() => {});
        },
      );
      return;
    }

    if (known?.firstFailureAt !== undefined) delivery.firstFailureAt = known.firstFailureAt;
    this.#onDelivery(delivery).catch((error: unknown) => {
      this.#deps.logger.error(`[wharf] [nats] delivery handling failed on ${this.#label()}`, {
        error: describeError(error).message,
      });
    });
  }

  /**
   * @internal A delivery is settled (or about to be): its handler's work is over once the core settles,
   * so its slot is free for the next message now, not one round trip later when the server confirms (the
   * server's max_ack_pending still caps). Resolves once the server has read the ack / nak / term.
   */
  settle(delivery: NatsDelivery, payload: Uint8Array, final: boolean): Promise<void> {
    if (final) book.done(delivery.meta);
    this.#inflight.delete(delivery);
    this.#unsettled--;
    this.#pull();
    return this.#deps.requests.write(delivery.reply, payload, this.#deps.options.publishTimeoutMs);
  }

  /** @internal Raw mode: the subscription consumes plain messages (see raw.ts). */
  get raw(): SubscribeRequest['raw'] {
    return this.#request.raw;
  }

  /**
   * @internal Writes a dead letter of `msg` and resolves on its PubAck. In raw mode, with the wrapped
   * event's `ce-*` headers added, so the dead letter reads back as the event that failed.
   */
  writeDeadLetter(msg: Msg, meta: DeliveryMeta, info: DeadLetterInfo, decoded: () => Decoded): Promise<void> {
    const deps = this.#deps;
    return writeDeadLetter(deps.js, {
      subject: deps.dlqSubject,
      headers:
        this.#request.raw === undefined ? msg.headers : deadLetterHeaders(msg.headers, decoded(), deps.names.subject),
      body: msg.data,
      info,
      msgId: `${meta.consumer} ${meta.streamSequence}`,
      timeoutMs: deps.options.publishTimeoutMs,
      stream: deps.names.dlqStream,
    });
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#stallTimer);
    this.#requested = 0;
    this.onStopped();
    const linger = setTimeout(() => this.dispose(), PULL_EXPIRES_MS + 5_000);
    linger.unref();
    // The inbox stays subscribed until the connection closes, so messages the server already sent for our
    // open pull requests are given back at once (nak) instead of waiting out ack_wait.
  }

  /** Called when the connection closes: nothing more can arrive. */
  dispose(): void {
    clearInterval(this.#workingTimer);
    clearInterval(this.#stallTimer);
    try {
      this.#sub?.unsubscribe();
    } catch {
      // already closed with the connection
    }
  }

  /** The channel stream this subscription pulls from. */
  get stream(): string {
    return this.#deps.names.stream;
  }

  /** The group's durable consumer. */
  get durable(): string {
    return this.#deps.durable;
  }

  /** The subscription request (channel, group, incident sink). */
  get request(): SubscribeRequest {
    return this.#request;
  }

  /** Unsettled deliveries (for tests). */
  get unsettled(): number {
    return this.#unsettled;
  }
}

/**
 * One delivery as the core sees it. A class rather than a record of closures: one object per message on
 * the hot path. Settles at most once; the first settlement wins.
 */
class NatsDelivery implements Delivery {
  declare firstFailureAt?: string;
  #decoded: Decoded | undefined;
  #settled = false;

  constructor(
    private readonly subscriber: Subscriber,
    private readonly msg: Msg,
    readonly reply: string,
    readonly meta: DeliveryMeta,
    readonly attempt: number,
  ) {}

  /** Decoded on first use (the crash-loop backstop never needs it). */
  get decoded(): Decoded {
    const raw = this.subscriber.raw;
    this.#decoded ??=
      raw === undefined ? decodeDelivered(this.msg) : decodePlain(raw, this.msg, this.meta.timestampNanos);
    return this.#decoded;
  }

  #settle(payload: Uint8Array, final: boolean): Promise<void> {
    if (this.#settled) return Promise.resolve();
    this.#settled = true;
    return this.subscriber.settle(this, payload, final);
  }

  ack(): Promise<void> {
    return this.#settle(ACK, true);
  }

  retry(instruction: RetryInstruction): Promise<void> {
    if (this.#settled) return Promise.resolve();
    book.failed(this.meta, instruction.firstFailureAt);
    const delay = Math.max(0, Math.round(instruction.delayMs));
    return this.#settle(delay > 0 ? encoder.encode(`-NAK ${JSON.stringify({ delay: nanos(delay) })}`) : NAK, false);
  }

  async deadLetter(info: DeadLetterInfo): Promise<void> {
    if (this.#settled) return;
    await this.subscriber.writeDeadLetter(this.msg, this.meta, info, () => this.decoded);
    await this.#settle(TERM, true);
  }

  release(): Promise<void> {
    if (this.#settled) return Promise.resolve();
    book.release(this.meta);
    return this.#settle(NAK, false);
  }
}

/** The CloudEvent id in a binary-mode message's headers, for incidents (undefined when absent). */
export function eventIdOf(headers: MsgHdrs | undefined): string | undefined {
  const id = headers?.get('ce-id');
  return id ? id : undefined;
}

/** The dead-letter cause for a message the server delivered `deliveries` times without a settlement. */
export function crashLoop(deliveries: number): CrashLoopError {
  return new CrashLoopError(
    `delivered ${deliveries} times without being settled (the handler crashed, hung past ack_wait, or was interrupted); dead-lettered before the server's MaxDeliver limit dropped it`,
  );
}

export type { MsgHdrs };
