import { type ApiError, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { NoRespondersError } from '@nats-io/transport-node';
import { PublishError, type WireMessage } from '@wharf/core';
import { encodeHeaders } from './codec.js';
import { isNoResponders, publishError } from './errors.js';
import type { ResolvedNatsOptions } from './options.js';
import type { Requests } from './requests.js';
import { type ChannelNames, ensureChannel } from './topology.js';

/**
 * Publishes with JetStream PubAcks. A channel's streams are created on first use (cached), so a publish
 * to a channel no group declared yet is stored for nobody rather than failing: interest retention drops it.
 */
export class Publisher {
  readonly #channels = new Map<string, Promise<ChannelNames>>();

  constructor(
    private readonly requests: Requests,
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
    let names = await this.channel(channel);
    try {
      try {
        await this.#send(names, messages);
      } catch (error) {
        if (!isNoResponders(error)) throw error;
        // The stream was deleted behind our back: declare it again and retry once (ids deduplicate).
        this.forget(channel);
        names = await this.channel(channel);
        await this.#send(names, messages);
      }
    } catch (error) {
      if (error instanceof PublishError) throw error;
      throw publishError(error, names.subject, names.stream, this.options.publishTimeoutMs);
    }
  }

  async #send(names: ChannelNames, messages: readonly WireMessage[]): Promise<void> {
    const timeout = this.options.publishTimeoutMs;
    if (messages.length === 1) {
      const message = messages[0] as WireMessage;
      return pubAck(
        await this.requests.request(names.subject, message.body, timeout, encodeHeaders(message)),
        names.subject,
      );
    }
    const acks = messages.map((message) =>
      this.requests
        .request(names.subject, message.body, timeout, encodeHeaders(message))
        .then((reply) => pubAck(reply, names.subject)),
    );
    const results = await Promise.allSettled(acks);
    for (const result of results) if (result.status === 'rejected') throw result.reason;
  }
}

const decoder = new TextDecoder();

/** Checks a PubAck: `{"stream":…,"seq":…}` (a duplicate is a success), `{"error":…}`, or a 503 status. */
function pubAck(reply: { data: Uint8Array; headers?: { code: number } | undefined }, subject: string): void {
  if (reply.headers?.code === 503) throw new NoRespondersError(subject);
  let ack: { error?: ApiError; seq?: number };
  try {
    ack = JSON.parse(decoder.decode(reply.data)) as { error?: ApiError; seq?: number };
  } catch (cause) {
    throw new Error(
      `the server answered a publish with something that is not a PubAck (status ${reply.headers?.code ?? 'none'})`,
      { cause },
    );
  }
  if (ack.error) throw new JetStreamApiError(ack.error);
  if (typeof ack.seq !== 'number') throw new Error('the PubAck carries no sequence number');
}
