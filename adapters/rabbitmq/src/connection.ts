import type { Logger } from '@wharf/core';
import { ClosedError, readTlsMaterial } from '@wharf/core';
import * as amqp from 'amqplib';
import { COMPONENT, classifyConnectError, scrub, unreachable } from './errors.js';
import { type RabbitMqAdapterOptions, type ResolvedOptions, resolveOptions } from './options.js';

/** Runs after every (re)connection, in registration order: re-create channels, re-declare, re-subscribe. */
export type UpHook = (model: amqp.ChannelModel) => Promise<void>;
/** Runs when the connection is lost (not on close()). */
export type DownHook = (error: Error) => void;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One AMQP connection that comes back on its own. The adapter keeps two (publishing and consuming,
 * RabbitMQ's advice: flow control that blocks publishers must not stall consumers' acks).
 * Startup makes bounded attempts and fails with a typed error; after that, reconnection retries
 * with capped exponential backoff until `close()`.
 */
/**
 * Destroys `model`'s socket now, with no close handshake: the broker is not answering (a handshake would
 * wait on the same silence) or no byte that arrives from now on may be read. The link sees the
 * connection close and reconnects.
 */
export function dropConnection(model: amqp.ChannelModel, reason: Error): void {
  const stream = (model.connection as unknown as { stream?: { destroy?: (error?: Error) => void } }).stream;
  if (typeof stream?.destroy === 'function') stream.destroy(reason);
  else void model.close().catch(() => undefined);
}

export class Link {
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  readonly #name: string;
  readonly #up: UpHook[] = [];
  readonly #down: DownHook[] = [];
  #model: amqp.ChannelModel | undefined;
  #closed = false;
  #reconnecting: Promise<void> | undefined;
  #waiters: (() => void)[] = [];
  #hostIndex = 0;
  #lastReadAt = 0;
  #silenceEndedAt = 0;

  constructor(name: string, options: ResolvedOptions, logger: Logger) {
    this.#name = name;
    this.#options = options;
    this.#logger = logger;
  }

  get model(): amqp.ChannelModel | undefined {
    return this.#model;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * When the connection last came out of a silence: no byte at all from the broker for 3/4 of the
   * heartbeat, which a live broker never lets happen (it sends a heartbeat every half of it when it
   * has nothing else to say). Whatever it sent meanwhile may have been swallowed by the link; 0 when
   * that never happened (or heartbeats are off).
   */
  get silenceEndedAt(): number {
    return this.#silenceEndedAt;
  }

  onUp(hook: UpHook): void {
    this.#up.push(hook);
  }

  onDown(hook: DownHook): void {
    this.#down.push(hook);
  }

  /** Connects with bounded attempts; rejects with BrokerUnreachableError, AuthenticationError or ConfigError. */
  async open(): Promise<void> {
    const { connectAttempts, hosts } = this.#options;
    let lastReason = 'no attempt';
    let lastError: unknown;
    let delay = this.#options.reconnectInitialDelayMs;
    const total = connectAttempts * hosts.length;
    for (let attempt = 1; attempt <= total; attempt++) {
      if (this.#closed) throw new ClosedError(COMPONENT, 'connect');
      const target = this.#target();
      try {
        await this.#connect(target);
      } catch (error) {
        const failure = classifyConnectError(error, {
          ...target,
          ...this.#credentials(),
          tls: this.#options.tls ? this.#options.tlsOptions : undefined,
        });
        if (!failure.retry) throw failure.error;
        lastReason = failure.reason;
        lastError = error;
        this.#hostIndex++;
        this.#logger.debug(
          `[wharf] [rabbitmq] connection attempt ${attempt}/${total} to ${target.host}:${target.port} failed: ${failure.reason}`,
        );
        if (attempt < total) {
          await sleep(delay);
          delay = Math.min(delay * 2, this.#options.reconnectMaxDelayMs);
        }
        continue;
      }
      const model = this.#model;
      if (!model) throw new ClosedError(COMPONENT, 'connect');
      try {
        for (const hook of this.#up) await hook(model);
      } catch (error) {
        this.#model = undefined;
        await model.close().catch(() => undefined);
        throw error;
      }
      return;
    }
    throw unreachable(hosts, connectAttempts, lastReason, lastError);
  }

  /** Resolves with the live connection, waiting up to `timeoutMs` while it reconnects; undefined if it did not come back. */
  async ready(timeoutMs: number): Promise<amqp.ChannelModel | undefined> {
    if (this.#model && !this.#reconnecting) return this.#model;
    if (this.#closed || timeoutMs <= 0) return undefined;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#waiters.push(done);
    });
    return this.#reconnecting ? undefined : this.#model;
  }

  /** Drops the current connection without reconnecting (a failed startup that may be retried). */
  async disconnect(): Promise<void> {
    const model = this.#model;
    this.#model = undefined;
    if (model) await model.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake();
    const model = this.#model;
    this.#model = undefined;
    if (!model) return;
    // A close handshake on a link that stopped answering would wait forever: bound it, then drop the socket.
    let timer: NodeJS.Timeout | undefined;
    const closed = await Promise.race([
      model.close().then(
        () => true,
        () => true,
      ),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), Math.max(1_000, this.#options.closeTimeoutMs));
      }),
    ]);
    clearTimeout(timer);
    if (!closed) (model.connection as unknown as { stream?: { destroy?: () => void } }).stream?.destroy?.();
  }

  #credentials(): { vhost: string; username: string; password: string } {
    return { vhost: this.#options.vhost, username: this.#options.username, password: this.#options.password };
  }

  #target(): { host: string; port: number } {
    const hosts = this.#options.hosts;
    return hosts[this.#hostIndex % hosts.length] as { host: string; port: number };
  }

  async #connect(target: { host: string; port: number }): Promise<void> {
    const o = this.#options;
    const socket: amqp.SocketOptions = {
      // Nagle's algorithm adds ~40 ms stalls to small confirm/ack frames.
      noDelay: true,
      timeout: o.connectTimeoutMs,
      clientProperties: { connection_name: `wharf-${this.#name}` },
      ...(o.tls ? readTlsMaterial(COMPONENT, o.tlsOptions, target.host) : {}),
    };
    const connecting = amqp.connect(
      {
        protocol: o.tls ? 'amqps' : 'amqp',
        hostname: target.host,
        port: target.port,
        username: o.username,
        password: o.password,
        vhost: o.vhost,
        heartbeat: o.heartbeatSeconds,
        frameMax: 131072,
      },
      socket,
    );
    // amqplib's socket timeout covers an idle socket; bound the whole handshake as well.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(Object.assign(new Error(`timed out after ${o.connectTimeoutMs} ms`), { code: 'ETIMEDOUT' })),
        o.connectTimeoutMs,
      );
    });
    let model: amqp.ChannelModel;
    try {
      model = await Promise.race([connecting, timeout]);
    } catch (error) {
      connecting.then((late) => late.close()).catch(() => undefined);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    if (this.#closed) {
      await model.close().catch(() => undefined);
      return;
    }
    model.on('error', (error: Error) => {
      this.#logger.warn(`[wharf] [rabbitmq] ${this.#name} connection error: ${scrub(error.message, o.password)}`);
    });
    model.on('blocked', (reason: string) => {
      this.#logger.warn(
        `[wharf] [rabbitmq] the broker blocked the ${this.#name} connection (${reason}): publishes wait until it unblocks — check the broker's memory and disk alarms`,
      );
    });
    model.on('unblocked', () => this.#logger.info(`[wharf] [rabbitmq] the ${this.#name} connection is unblocked`));
    model.once('close', (error?: Error) => this.#lost(model, error));
    if (o.coalesceWrites) coalesceWrites(model);
    this.#watchSilence(model);
    this.#model = model;
  }

  #watchSilence(model: amqp.ChannelModel): void {
    const silentMs = this.#options.heartbeatSeconds * 750;
    const stream = (model.connection as unknown as { stream?: NodeJS.EventEmitter }).stream;
    if (silentMs <= 0 || !stream) return;
    this.#lastReadAt = Date.now();
    // amqplib reads on 'readable' itself; one more listener only notes the time and consumes nothing.
    stream.on('readable', () => {
      const now = Date.now();
      if (now - this.#lastReadAt >= silentMs && this.#model === model) this.#silenceEndedAt = now;
      this.#lastReadAt = now;
    });
  }

  #lost(model: amqp.ChannelModel, error: Error | undefined): void {
    if (this.#model !== model) return;
    this.#model = undefined;
    if (this.#closed) return;
    const reason = error ? scrub(error.message, this.#options.password) : 'closed by the broker';
    this.#logger.warn(`[wharf] [rabbitmq] lost the ${this.#name} connection (${reason}); reconnecting`);
    const cause = error ?? new Error('connection closed');
    for (const hook of this.#down) {
      try {
        hook(cause);
      } catch (hookError) {
        this.#logger.error(`[wharf] [rabbitmq] connection-loss handler failed: ${(hookError as Error).message}`);
      }
    }
    this.#reconnecting ??= this.#reconnect().finally(() => {
      this.#reconnecting = undefined;
      this.#wake();
    });
  }

  async #reconnect(): Promise<void> {
    let delay = this.#options.reconnectInitialDelayMs;
    for (let attempt = 1; !this.#closed; attempt++) {
      await sleep(delay * (0.8 + Math.random() * 0.4));
      if (this.#closed) return;
      const target = this.#target();
      try {
        await this.#connect(target);
      } catch (error) {
        this.#hostIndex++;
        delay = Math.min(delay * 2, this.#options.reconnectMaxDelayMs);
        this.#logger.debug(
          `[wharf] [rabbitmq] reconnection attempt ${attempt} to ${target.host}:${target.port} failed: ${scrub(String((error as Error).message), this.#options.password)}`,
        );
        continue;
      }
      const model = this.#model;
      if (!model) continue;
      try {
        for (const hook of this.#up) await hook(model);
        this.#logger.info(`[wharf] [rabbitmq] ${this.#name} connection restored`);
        return;
      } catch (error) {
        // A hook failed: most likely the connection dropped again; start over on a fresh one.
        this.#logger.warn(
          `[wharf] [rabbitmq] restoring the ${this.#name} connection failed: ${(error as Error).message}; retrying`,
        );
        if (this.#model === model) {
          this.#model = undefined;
          await model.close().catch(() => undefined);
        }
        delay = Math.min(delay * 2, this.#options.reconnectMaxDelayMs);
      }
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

interface MuxLike {
  out?: { cork?: () => void; uncork?: () => void };
  _readIncoming?: () => void;
}

/**
 * amqplib's multiplexer writes every frame (a publish, an ack) to the socket with its own
 * `write`, which is one system call each; corking the socket while it copies the frames ready in
 * one turn makes them a single `writev`. It changes no bytes or order on the wire, only how many
 * writes carry them, and roughly halves client and broker CPU per small message. Applied only when
 * amqplib's internals have the expected shape (checked, not assumed), otherwise nothing changes.
 */
export function coalesceWrites(model: amqp.ChannelModel): void {
  const mux = (model.connection as unknown as { muxer?: MuxLike }).muxer;
  const original = mux?._readIncoming;
  const out = mux?.out;
  if (!mux || typeof original !== 'function' || typeof out?.cork !== 'function' || typeof out.uncork !== 'function') {
    return;
  }
  mux._readIncoming = function readIncomingCorked(this: MuxLike): void {
    out.cork?.();
    try {
      original.call(this);
    } finally {
      out.uncork?.();
    }
  };
}

/**
 * A lazily opened plain channel on a link, for declarations and reads. A channel error closes only
 * this channel (never the confirm channel publishes ride on); the next use opens a new one.
 */
export class ChannelSlot {
  readonly #link: Link;
  #slot: Promise<{ channel: amqp.Channel; open: boolean }> | undefined;

  constructor(link: Link) {
    this.#link = link;
  }

  async get(model?: amqp.ChannelModel): Promise<amqp.Channel> {
    const current = await this.#slot?.catch(() => undefined);
    if (current?.open && (model === undefined || model === this.#link.model)) return current.channel;
    const opening = (async () => {
      const m = model ?? this.#link.model;
      if (!m) throw new Error('not connected to RabbitMQ');
      const entry = { channel: await m.createChannel(), open: true };
      entry.channel.on('error', () => undefined);
      entry.channel.once('close', () => {
        entry.open = false;
      });
      return entry;
    })();
    this.#slot = opening;
    opening.catch(() => {
      if (this.#slot === opening) this.#slot = undefined;
    });
    return (await opening).channel;
  }
}

/**
 * A plain amqplib connection to the first host of `url`, with the adapter's credentials and TLS
 * (options, URL parameters, environment): for tools beside the adapter (conformance harness, raw
 * bench baseline) that must reach a secured broker the same way.
 */
export function connectPlain(
  url: string,
  options: RabbitMqAdapterOptions = {},
  extra: { frameMax?: number } = {},
): Promise<amqp.ChannelModel> {
  const o = resolveOptions(url, options);
  const host = o.hosts[0] ?? { host: '127.0.0.1', port: 5672 };
  return amqp.connect(
    {
      protocol: o.tls ? 'amqps' : 'amqp',
      hostname: host.host,
      port: host.port,
      username: o.username,
      password: o.password,
      vhost: o.vhost,
      ...extra,
    },
    { noDelay: true, ...(o.tls ? readTlsMaterial(COMPONENT, o.tlsOptions, host.host) : {}) },
  );
}
