/**
 * Request/reply on top of publish and subscribe, the same on every adapter.
 *
 * A request is an ordinary event with the extension `replyto` (the channel its reply goes to).
 * The responder's reply is an ordinary event on that channel with the extension `inreplyto` (the
 * request's id). Each bus listens on a reply channel with a group of its own (`bus.replyGroup`),
 * so every requester process gets the replies of that channel and keeps those it waits for by
 * `inreplyto`; the rest (late, duplicate, another requester's) are acked and dropped.
 */
import { randomUUID } from 'node:crypto';
import type { Adapter } from './adapter.js';
import type { SubscribeOptions, Subscription } from './bus.js';
import type { Handler, HandlerContext } from './consumer.js';
import type { CloudEvent, EventInput } from './envelope.js';
import {
  ClosedError,
  ConfigError,
  describeError,
  NonRetryableError,
  RequestTimeoutError,
  TimeoutError,
  UnroutableError,
} from './errors.js';
import type { Logger } from './logger.js';
import { normalizeRetryPolicy } from './policy.js';
import type { Stats } from './stats.js';
import { withTimeout } from './timeout.js';

/** The extension on a request naming the channel its reply goes to. */
export const REPLY_TO_EXTENSION = 'replyto';
/** The extension on a reply naming the id of the request it answers. */
export const IN_REPLY_TO_EXTENSION = 'inreplyto';

/** An inbox makes one attempt per reply: a reply nobody waits for is worth nothing later. */
const INBOX_RETRY = { maxAttempts: 1 } as const;

/**
 * An inbox whose bus died without `close()` (kill -9, OOM) is deleted by the broker after this long
 * without a consumer (see `SubscribeOptions.expireWhenIdleMs`): every reply on its channel would
 * otherwise pile up in it for good. Long enough to outlast a reconnect.
 */
export const INBOX_IDLE_EXPIRY_MS = 10 * 60_000;

/** Default of {@link RequestOptions.timeoutMs}. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** Options of `bus.request`. */
export interface RequestOptions {
  /**
   * Reject with `RequestTimeoutError` when no reply arrived this many ms after the request was
   * handed to the broker's publish (default 30 s). The responder retries a failing handler per its
   * own retry policy: a timeout shorter than that schedule gives up before the retries end.
   */
  timeoutMs?: number;
  /** The channel the reply comes back on. Default `<channel>.reply`. */
  replyTo?: string;
  /** Aborting it rejects the request with the signal's reason and forgets it (a late reply is dropped). */
  signal?: AbortSignal;
}

/**
 * A responder: handles a request and resolves with the reply (an event input: `type`, `data` and
 * any attributes). Throwing follows the subscription's retry policy, then dead-letters the request;
 * the requester then times out.
 */
export type Responder<T = unknown, R = unknown> = (
  event: CloudEvent<T>,
  context: HandlerContext,
) => EventInput<R> | Promise<EventInput<R>>;

/** What a {@link Requester} needs from its bus. */
export interface RequesterDeps {
  readonly group: string;
  readonly logger: Logger;
  readonly stats: Stats;
  subscribe(channel: string, options: SubscribeOptions, handler: Handler): Promise<Subscription>;
  publish(channel: string, input: EventInput<unknown>): Promise<CloudEvent<unknown>>;
  checkChannel(channel: string): void;
}

interface Pending {
  readonly resolve: (event: CloudEvent) => void;
  readonly reject: (error: unknown) => void;
  timer: NodeJS.Timeout | undefined;
  unlisten: (() => void) | undefined;
}

/** The requesting side of one bus: reply inboxes, one per reply channel, and the requests waiting. */
export class Requester {
  readonly #deps: RequesterDeps;
  readonly #pending = new Map<string, Pending>();
  readonly #inboxes = new Map<string, Promise<Subscription>>();
  #closed = false;

  constructor(deps: RequesterDeps) {
    this.#deps = deps;
  }

  /** Requests waiting for a reply. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Subscribes this bus's inbox on a reply channel, once. Resolves when it consumes, so a reply
   * published from then on reaches it (on Kafka: after the group joined and got its partitions).
   */
  listen(replyTo: string): Promise<Subscription> {
    if (this.#closed) return Promise.reject(new ClosedError('core', 'listen for replies'));
    this.#deps.checkChannel(replyTo);
    let inbox = this.#inboxes.get(replyTo);
    if (inbox === undefined) {
      inbox = this.#deps.subscribe(
        replyTo,
        // One attempt and no dead letters: a reply nobody waits for is worth nothing later.
        // No dedup store: the pending map drops a second copy of a reply already taken.
        {
          group: this.#deps.group,
          concurrency: 64,
          dedup: false,
          deadLetter: false,
          retry: INBOX_RETRY,
          expireWhenIdleMs: INBOX_IDLE_EXPIRY_MS,
        },
        (event) => this.#onReply(event),
      );
      this.#inboxes.set(replyTo, inbox);
      // A failed subscribe is tried again by the next request.
      inbox.catch(() => this.#inboxes.delete(replyTo));
    }
    return inbox;
  }

  #onReply(event: CloudEvent): void {
    const id = event[IN_REPLY_TO_EXTENSION];
    const waiting = typeof id === 'string' ? this.#pending.get(id) : undefined;
    if (waiting === undefined) {
      this.#deps.stats.repliesDropped++;
      this.#deps.logger.debug('[wharf] [core] dropped a reply no request of this bus waits for', {
        id: event.id,
        inreplyto: typeof id === 'string' ? id : undefined,
      });
      return;
    }
    this.#forget(id as string, waiting);
    waiting.resolve(event);
  }

  #forget(id: string, waiting: Pending): void {
    this.#pending.delete(id);
    clearTimeout(waiting.timer);
    waiting.unlisten?.();
  }

  /** Publishes `input` to `channel` as a request and resolves with the first reply to it. */
  async request(channel: string, input: EventInput<unknown>, options: RequestOptions): Promise<CloudEvent> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0 && timeoutMs <= 2_147_483_647)) {
      throw new ConfigError('core', `request timeoutMs must be a number of milliseconds > 0, got ${String(timeoutMs)}`);
    }
    if (input === null || typeof input !== 'object') {
      throw new ConfigError('core', 'request needs an event input with at least "type"');
    }
    this.#deps.checkChannel(channel);
    const replyTo = options.replyTo ?? `${channel}.reply`;
    const signal = options.signal;
    signal?.throwIfAborted();
    await this.listen(replyTo);
    if (this.#closed) throw new ClosedError('core', 'request');
    signal?.throwIfAborted();
    const id = input.id ?? randomUUID();
    if (this.#pending.has(id)) {
      throw new ConfigError('core', `a request with id ${id} is already waiting for its reply on this bus`);
    }
    return new Promise<CloudEvent>((resolve, reject) => {
      const waiting: Pending = { resolve, reject, timer: undefined, unlisten: undefined };
      // Registered before publishing: a fast responder can answer before the publish confirm arrives.
      this.#pending.set(id, waiting);
      waiting.timer = setTimeout(() => {
        this.#forget(id, waiting);
        this.#deps.stats.requestTimeouts++;
        reject(new RequestTimeoutError(channel, id, timeoutMs));
      }, timeoutMs);
      if (signal !== undefined) {
        const onAbort = (): void => {
          this.#forget(id, waiting);
          reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        waiting.unlisten = () => signal.removeEventListener('abort', onAbort);
      }
      const extensions = { ...input.extensions, [REPLY_TO_EXTENSION]: replyTo };
      this.#deps.publish(channel, { ...input, id, extensions }).then(
        () => undefined,
        (error: unknown) => {
          // Still waiting: the publish failed before any reply, so the request failed with it.
          if (this.#pending.get(id) !== waiting) return;
          this.#forget(id, waiting);
          reject(error);
        },
      );
    });
  }

  /**
   * Deletes this bus's inbox group on every reply channel it listened on, through the adapter's
   * `deleteGroup` (after the bus stopped the inbox subscriptions): each requester process would
   * otherwise leave a queue, consumer or consumer group behind on the broker. A failure is logged,
   * naming what to delete by hand; it does not fail `close()`.
   */
  async deleteInboxes(adapter: Adapter): Promise<void> {
    const remove = adapter.deleteGroup?.bind(adapter);
    for (const [channel, inbox] of this.#inboxes) {
      if (
        !(await inbox.then(
          () => true,
          () => false,
        ))
      )
        continue;
      if (remove === undefined) {
        this.#deps.logger.warn(
          `[wharf] [core] the ${adapter.name} adapter cannot delete groups: the reply inbox ${this.#deps.group} stays on ${channel} — delete it with the broker's tools`,
        );
        continue;
      }
      try {
        await withTimeout(remove(channel, this.#deps.group, normalizeRetryPolicy(INBOX_RETRY)), 15_000, () => {
          return new TimeoutError('core', `deleting the reply inbox ${this.#deps.group} on ${channel} took over 15 s`);
        });
      } catch (error) {
        this.#deps.logger.warn(
          `[wharf] [core] could not delete the reply inbox ${this.#deps.group} on ${channel} — delete that group with the broker's tools`,
          { error: describeError(error).message },
        );
      }
    }
  }

  /** Rejects every waiting request with `ClosedError`; the bus closes the inbox subscriptions. */
  close(): void {
    this.#closed = true;
    for (const [id, waiting] of this.#pending) {
      this.#forget(id, waiting);
      waiting.reject(new ClosedError('core', 'wait for a reply'));
    }
  }
}

const CHANNEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

/**
 * Turns a responder into a subscription handler: runs it, then publishes its reply to the request's
 * `replyto` channel with `inreplyto` set, before the request is acked. The reply is published once
 * the handler succeeded, so a failed reply publish retries the request like any failure.
 */
export function replyingHandler(responder: Responder, logger: Logger): Handler {
  return async (event, context) => {
    const reply = await responder(event, context);
    const to = event[REPLY_TO_EXTENSION];
    if (to === undefined) {
      logger.warn(
        `[wharf] [core] a responder on ${context.channel}/${context.group} handled an event without "replyto"; no reply sent`,
        {
          id: event.id,
        },
      );
      return;
    }
    if (typeof to !== 'string' || !CHANNEL.test(to)) {
      throw new NonRetryableError(`the request's "replyto" ${JSON.stringify(to)} is not a channel name`);
    }
    if (reply === null || typeof reply !== 'object' || typeof reply.type !== 'string') {
      throw new NonRetryableError(
        `the responder on ${context.channel} resolved with ${reply === null ? 'null' : typeof reply}; it must resolve with the reply, an event input { type, data }`,
      );
    }
    try {
      await context.publish(to, { ...reply, extensions: { ...reply.extensions, [IN_REPLY_TO_EXTENSION]: event.id } });
    } catch (error) {
      // No group on the reply channel: every requester listening there is gone. Retrying cannot help.
      if (error instanceof UnroutableError) {
        logger.warn(`[wharf] [core] no requester listens on ${to} any more; the reply to ${event.id} is dropped`, {
          id: event.id,
        });
        return;
      }
      throw error;
    }
  };
}
