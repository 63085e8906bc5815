import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';

/** The server's answer to a request: its payload and headers (status replies carry `code`). */
export interface Reply {
  readonly data: Uint8Array;
  readonly headers: MsgHdrs | undefined;
}

interface Pending {
  resolve(reply: Reply): void;
  reject(error: Error): void;
  readonly deadline: number;
}

/** No answer within the bound. */
export class ReplyTimeoutError extends Error {
  override readonly name = 'ReplyTimeoutError';
}

/**
 * Request/reply on one wildcard inbox, for the hot path: PubAcks and ack/nak/term confirmations.
 * nats.js's `request()` builds an Error (a stack trace) and a timer for every call even when it succeeds;
 * here a reply costs a map lookup, and one sweep per second enforces the timeouts.
 */
export class Requests {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #pending = new Map<number, Pending>();
  readonly #sub: Subscription;
  readonly #sweep: NodeJS.Timeout;
  #n = 0;
  #queue: { subject: string; data: Uint8Array; reply: string | undefined; headers: MsgHdrs | undefined; id: number }[] =
    [];
  /** Writes of this loop turn waiting for the server's PONG. */
  #written: { resolve(): void; reject(error: Error): void }[] = [];
  #scheduled = false;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    this.#prefix = `${createInbox()}.`;
    this.#sub = nc.subscribe(`${this.#prefix}*`, { callback: (_error, msg) => this.#answer(msg) });
    this.#sweep = setInterval(() => this.#expire(), 250);
    this.#sweep.unref();
  }

  #answer(msg: Msg | undefined): void {
    if (!msg) return;
    const id = Number(msg.subject.slice(this.#prefix.length));
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    pending.resolve({ data: msg.data, headers: msg.headers });
  }

  #expire(): void {
    if (this.#pending.size === 0) return;
    const now = Date.now();
    for (const [id, pending] of this.#pending) {
      if (pending.deadline > now) continue;
      this.#pending.delete(id);
      pending.reject(new ReplyTimeoutError('no reply within the timeout'));
    }
  }

  /**
   * Publishes `data` to `subject` and resolves with the reply; rejects on timeout or a failed publish.
   * Publishes are held until the end of the current event-loop turn, so the many small requests of one
   * turn (acks of a batch of handlers, a pipelined publish) leave in one socket write.
   */
  request(subject: string, data: Uint8Array, timeoutMs: number, headers?: MsgHdrs): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const id = ++this.#n;
      this.#pending.set(id, { resolve, reject, deadline: Date.now() + timeoutMs });
      this.#queue.push({ subject, data, reply: this.#prefix + id, headers, id });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#flush);
      }
    });
  }

  /**
   * Publishes `data` without a reply subject and resolves once the server has read it: one PING/PONG
   * round trip confirms every write of the loop turn (the server handles a connection's messages in order).
   * Used for acks, naks and terms, where a reply per message would cost a message each way.
   */
  write(subject: string, data: Uint8Array, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#written.push({ resolve, reject });
      this.#queue.push({ subject, data, reply: undefined, headers: undefined, id: 0 });
      this.#writeTimeoutMs = timeoutMs;
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#flush);
      }
    });
  }

  #writeTimeoutMs = 10_000;

  readonly #flush = (): void => {
    this.#scheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    const written = this.#written;
    this.#written = [];
    for (const item of queue) {
      try {
        if (item.reply === undefined) this.#nc.publish(item.subject, item.data);
        else
          this.#nc.publish(
            item.subject,
            item.data,
            item.headers ? { reply: item.reply, headers: item.headers } : { reply: item.reply },
          );
      } catch (error) {
        const pending = this.#pending.get(item.id);
        this.#pending.delete(item.id);
        pending?.reject(error as Error);
      }
    }
    if (written.length > 0) this.#confirm(written);
  };

  #confirm(written: { resolve(): void; reject(error: Error): void }[]): void {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ReplyTimeoutError('the server did not answer a PING in time')),
        this.#writeTimeoutMs,
      );
    });
    Promise.race([this.#nc.flush(), timeout]).then(
      () => {
        clearTimeout(timer);
        for (const w of written) w.resolve();
      },
      (error: unknown) => {
        clearTimeout(timer);
        for (const w of written) w.reject(error as Error);
      },
    );
  }

  close(reason: Error): void {
    clearInterval(this.#sweep);
    try {
      this.#sub.unsubscribe();
    } catch {
      // already closed with the connection
    }
    for (const pending of this.#pending.values()) pending.reject(reason);
    this.#pending.clear();
  }
}
