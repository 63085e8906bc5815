import {
  type Logger,
  MessageTooLargeError,
  PublishError,
  type WharfError,
  type WireMessage,
  withTimeout,
} from '@wharf/core';
import { type ClientAdmin, type ClientProducer, classifyError, type OutgoingRecord } from './client.js';
import { encode, recordSize } from './codec.js';
import { toWharfError } from './errors.js';
import { ADAPTER_NAME, type ResolvedKafkaOptions } from './options.js';
import type { Topology } from './topology.js';

interface Pending {
  readonly topic: string;
  readonly records: readonly OutgoingRecord[];
  readonly bytes: number;
  readonly doing: string;
  readonly resolve: () => void;
  readonly reject: (error: WharfError) => void;
}

/** Soft cap of one coalesced produce request; a single larger call is still sent whole. */
const MAX_REQUEST_BYTES = 1024 * 1024;

/** Resolves after the current turn of the event loop, once pending promise callbacks have run. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Produces records with acks=all through one (idempotent) producer. The idempotent producer allows
 * one request in flight per broker, so calls that arrive while a request is in flight are coalesced
 * into the next one (what the Java client's accumulator does): each call still resolves only when
 * the broker acknowledged its records, and records of one call keep their order.
 *
 * A request is taken from the queue one event-loop turn after the first call arrived (or after the
 * previous request was acknowledged), not at once: calls made together (a loop of publishes, the
 * callers woken by an acknowledgement publishing again) reach `send` over several promise ticks.
 * Taking the queue at the first of them sent it alone and made the others wait a whole extra
 * round trip behind it (requests alternated between 1 record and the rest: a latency tail).
 */
export class Publisher {
  readonly #queue: Pending[] = [];
  #flushing = false;

  constructor(
    readonly options: ResolvedKafkaOptions,
    readonly producer: ClientProducer,
    readonly admin: () => Promise<ClientAdmin>,
    readonly topology: Topology,
    readonly logger: Logger,
  ) {}

  /** Resolves once the broker acknowledged every message (no extra promise on the hot path). */
  publish(channel: string, messages: readonly WireMessage[]): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    const topic = this.topology.names.channel(channel);
    const doing = `publishing to channel ${channel}`;
    const ensuring = this.topology.ensureChannel(topic);
    if (ensuring) return ensuring.then(() => this.send(topic, messages.map(encode), doing));
    return this.send(topic, messages.map(encode), doing);
  }

  /** Sends records to a topic; resolves once the broker acknowledged all of them. */
  send(topic: string, records: readonly OutgoingRecord[], doing: string): Promise<void> {
    // Only a cap for coalescing: the value plus a typical header block is close enough.
    let bytes = 0;
    for (const r of records) bytes += (r.value?.length ?? 0) + 512;
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ topic, records, bytes, doing, resolve, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        void this.#flush();
      }
    });
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        await nextTurn();
        const take: Pending[] = [];
        let bytes = 0;
        while (this.#queue.length > 0) {
          const next = this.#queue[0] as Pending;
          if (take.length > 0 && bytes + next.bytes > MAX_REQUEST_BYTES) break;
          take.push(next);
          bytes += next.bytes;
          this.#queue.shift();
        }
        await this.#sendTogether(take);
      }
    } finally {
      this.#flushing = false;
    }
  }

  async #sendTogether(items: readonly Pending[]): Promise<void> {
    try {
      await this.#produce(items);
      for (const item of items) item.resolve();
    } catch (error) {
      if (items.length > 1 && classifyError(error) === 'too-large') {
        // One oversized call must not fail the calls it was coalesced with: send each alone.
        for (const item of items) await this.#sendTogether([item]);
        return;
      }
      for (const item of items) item.reject(await this.#map(error, item));
    }
  }

  #produce(items: readonly Pending[]): Promise<void> {
    const byTopic = new Map<string, OutgoingRecord[]>();
    for (const item of items) {
      const list = byTopic.get(item.topic);
      if (list) list.push(...item.records);
      else byTopic.set(item.topic, [...item.records]);
    }
    const batch = [...byTopic].map(([topic, records]) => ({ topic, records }));
    return withTimeout(
      this.producer.send(batch),
      this.options.publishTimeoutMs,
      () =>
        new PublishError(
          ADAPTER_NAME,
          `the brokers ${this.options.where} did not acknowledge within ${this.options.publishTimeoutMs} ms (publishTimeoutMs); the events may or may not be stored — publish again (consumers deduplicate by id)`,
        ),
    );
  }

  async #map(error: unknown, item: Pending): Promise<WharfError> {
    const kind = classifyError(error);
    if (kind === 'too-large') {
      const largest = Math.max(...item.records.map(recordSize));
      const limit = await this.admin()
        .then((a) => a.maxMessageBytes(item.topic))
        .catch(() => undefined);
      const tooLarge = new MessageTooLargeError(ADAPTER_NAME, largest, limit ?? -1);
      (tooLarge as { cause?: unknown }).cause = error;
      return tooLarge;
    }
    if (kind === 'unknown-topic') this.topology.forget(item.topic);
    return toWharfError(error, {
      where: this.options.where,
      doing: item.doing,
      tls: this.options.tls,
      topics: [item.topic],
    });
  }
}
