import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { WireMessage } from '@wharf/core';
import { encodeHeaders } from './codec.js';
import { isNoResponders, publishError } from './errors.js';
import type { ResolvedNatsOptions } from './options.js';
import { type ChannelNames, ensureChannel } from './topology.js';

/**
 * Publishes with JetStream PubAcks. A channel's streams are created on first use (cached), so a publish
 * to a channel no group declared yet is stored for nobody rather than failing: interest retention drops it.
 */
export class Publisher {
  readonly #channels = new Map<string, Promise<ChannelNames>>();

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly options: ResolvedNatsOptions,
  ) {}

  /** The channel's names, its streams declared once per adapter. */
  channel(channel: string): Promise<ChannelNames> {
    let names = this.#channels.get(channel);
    if (!names) {
      names = ensureChannel(this.jsm, this.options, channel);
      this.#channels.set(channel, names);
      names.catch(() => this.#channels.delete(channel));
    }
    return names;
  }

  forget(channel: string): void {
    this.#channels.delete(channel);
  }

  /** Pipelines every publish and resolves when all were acknowledged; messages keep array order in the stream. */
  async publish(channel: string, messages: readonly WireMessage[]): Promise<void> {
    const names = await this.channel(channel);
    try {
      await this.#send(names, messages);
    } catch (error) {
      if (!isNoResponders(error)) throw error;
      // The stream was deleted behind our back: declare it again and retry once (ids deduplicate).
      this.forget(channel);
      await this.#send(await this.channel(channel), messages);
    }
  }

  async #send(names: ChannelNames, messages: readonly WireMessage[]): Promise<void> {
    const timeout = this.options.publishTimeoutMs;
    const acks = messages.map((message) =>
      this.js.publish(names.subject, message.body, { headers: encodeHeaders(message), timeout }),
    );
    const results = await Promise.allSettled(acks);
    for (const result of results) {
      if (result.status === 'rejected') {
        if (isNoResponders(result.reason)) throw result.reason;
        throw publishError(result.reason, names.subject, names.stream, timeout);
      }
    }
  }
}
