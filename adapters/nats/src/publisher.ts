import { type ApiError, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { type MsgHdrs, NoRespondersError } from '@nats-io/transport-node';
import { NotAuthorizedError, PublishError, type WireMessage } from '@wharf/core';
import { EncodedHeaders, encodeHeaderBlock } from './codec.js';
import { isNoResponders, publishError } from './errors.js';
import type { ResolvedNatsOptions } from './options.js';
import type { Reply, Requests } from './requests.js';
import { type ChannelNames, type DeclaredChannel, ensureChannel } from './topology.js';

/**
 * Publishes with JetStream PubAcks. A channel's streams are created on first use (cached), so a publish
 * to a channel no group declared yet is stored for nobody rather than failing: the settled-event purge
 * removes it (retention.ts).
 */
export class Publisher {
  readonly #channels = new Map<string, Promise<DeclaredChannel>>();
  /** Channels whose streams are declared: the publish hot path needs no await for them. */
  readonly #ready = new Map<string, Ready>();

  constructor(
    private readonly requests: Requests,
    private readonly jsm: JetStreamManager,
    private readonly options: ResolvedNatsOptions,
    /** Told about every channel whose streams were declared (or found). */
    private readonly onDeclared: (declared: DeclaredChannel) => void = () => {},
  ) {}

  /** The channel's names, its streams declared once per adapter. */
  channel(channel: string): Promise<DeclaredChannel> {
    let names = this.#channels.get(channel);
    if (!names) {
      const declared = ensureChannel(this.jsm, this.options, channel);
      names = declared;
      this.#channels.set(channel, declared);
      declared.then(
        (ready) => {
          if (this.#channels.get(channel) !== declared) return;
          this.#ready.set(channel, readyOf(ready));
          this.onDeclared(ready);
        },
        () => {
          if (this.#channels.get(channel) === declared) this.#channels.delete(channel);
        },
      );
    }
    return names;
  }

  forget(channel: string): void {
    this.#channels.delete(channel);
    this.#ready.delete(channel);
  }

  /** Pipelines every publish and resolves when all were acknowledged; messages keep array order in the stream. */
  publish(channel: string, messages: readonly WireMessage[]): Promise<void> {
    const ready = this.#ready.get(channel);
    if (ready === undefined) return this.#publishDeclaring(channel, messages);
    return this.#send(ready, messages).catch((error: unknown) => this.#recover(error, channel, ready.names, messages));
  }

  async #publishDeclaring(channel: string, messages: readonly WireMessage[]): Promise<void> {
    const names = await this.channel(channel);
    try {
      await this.#send(this.#ready.get(channel) ?? readyOf(names), messages);
    } catch (error) {
      await this.#recover(error, channel, names, messages);
    }
  }

  async #recover(
    error: unknown,
    channel: string,
    names: ChannelNames,
    messages: readonly WireMessage[],
  ): Promise<void> {
    let current = names;
    try {
      if (!isNoResponders(error)) throw error;
      // The stream was deleted behind our back: declare it again and retry once (ids deduplicate).
      this.forget(channel);
      current = await this.channel(channel);
      await this.#send(readyOf(current), messages);
    } catch (failure) {
      if (failure instanceof PublishError || failure instanceof NotAuthorizedError) throw failure;
      throw publishError(failure, current.subject, current.stream, this.options.publishTimeoutMs);
    }
  }

  #send(ready: Ready, messages: readonly WireMessage[]): Promise<void> {
    const timeout = this.options.publishTimeoutMs;
    const subject = ready.names.subject;
    const check = ready.check;
    if (messages.length === 1) {
      const message = messages[0] as WireMessage;
      return this.requests.request(subject, message.body, timeout, headersOf(message), check);
    }
    const acks = messages.map((message) =>
      this.requests.request(subject, message.body, timeout, headersOf(message), check),
    );
    return Promise.allSettled(acks).then((results) => {
      for (const result of results) if (result.status === 'rejected') throw result.reason;
    });
  }
}

/** A declared channel and the PubAck check of its stream. */
interface Ready {
  readonly names: ChannelNames;
  readonly check: (reply: Reply, subject: string) => void;
}

function readyOf(names: ChannelNames): Ready {
  return { names, check: pubAckCheck(names.stream) };
}

/** The message's headers, encoded once (see {@link encodeHeaderBlock}). */
function headersOf(message: WireMessage): MsgHdrs {
  return new EncodedHeaders(encodeHeaderBlock(message)) as unknown as MsgHdrs;
}

const decoder = new TextDecoder();

/**
 * The PubAck check for one stream. The server answers a stored publish with `{"stream":"<name>", "seq":<n>…`
 * (2.9's template); a reply that starts exactly so, with a digit after it and no status header, is accepted
 * by comparing bytes, with no string decoding or JSON parsing (a duplicate's `"duplicate": true` comes after
 * the digits: accepted too, a duplicate is a success). Anything else (an error, another server version's
 * formatting, a status reply) goes through {@link pubAck}.
 */
export function pubAckCheck(stream: string): (reply: Reply, subject: string) => void {
  const expected = Buffer.from(`{"stream":${JSON.stringify(stream)}, "seq":`);
  const n = expected.length;
  return (reply, subject) => {
    const data = reply.data;
    if (reply.headers === undefined && data.length > n) {
      const digit = data[n] as number;
      if (digit >= 48 && digit <= 57) {
        let i = 0;
        while (i < n && data[i] === expected[i]) i++;
        if (i === n) return;
      }
    }
    pubAck(reply, subject);
  };
}

/** Checks a PubAck: `{"stream":…,"seq":…}` (a duplicate is a success), `{"error":…}`, or a 503 status. */
export function pubAck(reply: { data: Uint8Array; headers?: { code: number } | undefined }, subject: string): void {
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
