import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';

/** The server's answer to a request: its payload and headers (status replies carry `code`). */
export interface Reply {
  readonly data: Uint8Array;
  readonly headers: MsgHdrs | undefined;
}

/** A request waiting for its reply; also its place in the write queue. */
interface Pending {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Pre-encoded headers (`nc.publish()` only calls `encode()` on them). */
  readonly headers: MsgHdrs | undefined;
  readonly id: number;
  /** Validates the reply; what it throws rejects the request, else it resolves with no value. */
  readonly check: (reply: Reply, subject: string) => void;
  resolve(): void;
  reject(error: Error): void;
  readonly deadline: number;
}

/** The writes of one loop turn: one promise for all of them, settled by the PONG after them. */
interface Turn {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
  deadline: number;
}

/** No answer within the bound. */
export class ReplyTimeoutError extends Error {
  override readonly name = 'ReplyTimeoutError';
}

/** The server left a PING unanswered past {@link NOT_READING_MS}: a request was refused, not written. */
export class ServerNotReadingError extends Error {
  override readonly name = 'ServerNotReadingError';
}

/**
 * A server that has not answered a PING for this long is not reading this connection (paused, or a
 * black-holed link that nats.js notices only through its own PINGs, every 2 minutes by default). A
 * request written then would only wait in the socket's buffer, which grew ~2 MB/s at 1,000 publishes/s
 * through a long pause (packages/chaos/scripts/outage-memory.ts); it is refused instead.
 */
const NOT_READING_MS = 5_000;
/** At most one probing PING per interval while requests are being written. */
const PROBE_EVERY_MS = 1_000;

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
  /** Requests of this loop turn, in order. */
  #requests: Pending[] = [];
  /** Writes (subject, data) of this loop turn, in order, and the promise they share. */
  #writes: (string | Uint8Array)[] = [];
  #turn: Turn | undefined;
  /** Turns whose PING is out, oldest first. */
  readonly #confirming = new Set<Turn>();
  #scheduled = false;
  /** When each probing PING in flight was sent, oldest first. */
  #probes: number[] = [];
  #probedAt = 0;

  readonly #onNotReading: () => void;

  /**
   * @param onNotReading called while the server is not reading (a PING unanswered for 5 s with requests
   *   refused or waiting), up to four times a second: the owner checks the link and replaces the connection if it is out of step (a healed black hole),
   *   instead of waiting for nats.js's own PINGs (up to `pingInterval × maxPingOut` later).
   */
  constructor(nc: NatsConnection, onNotReading: () => void = () => {}, inboxPrefix = '_INBOX') {
    this.#nc = nc;
    this.#onNotReading = onNotReading;
    this.#prefix = `${createInbox(inboxPrefix)}.`;
    this.#sub = nc.subscribe(`${this.#prefix}*`, { callback: (_error, msg) => this.#answer(msg) });
    this.#sweep = setInterval(() => this.#expire(), 250);
    this.#sweep.unref();
  }

  #answer(msg: Msg | undefined): void {
    if (!msg) return;
    const pending = this.#pending.get(this.#idOf(msg));
    if (!pending) return;
    this.#pending.delete(pending.id);
    try {
      pending.check({ data: msg.data, headers: msg.headers }, pending.subject);
    } catch (error) {
      pending.reject(error as Error);
      return;
    }
    pending.resolve();
  }

  /**
   * The request id at the end of a reply's subject. Read from the subject's bytes where nats.js 3.x exposes
   * them (`MsgImpl._msg.subject`), which spares decoding the subject into a string per reply.
   */
  #idOf(msg: Msg): number {
    const raw = (msg as unknown as { _msg?: { subject?: unknown } })._msg?.subject;
    const from = this.#prefix.length;
    if (raw instanceof Uint8Array && raw.length > from && raw.length - from <= 15) {
      let id = 0;
      for (let i = from; i < raw.length; i++) {
        const c = (raw[i] as number) - 48;
        if (c < 0 || c > 9) return Number(msg.subject.slice(from));
        id = id * 10 + c;
      }
      return id;
    }
    return Number(msg.subject.slice(from));
  }

  #expire(): void {
    if (this.#pending.size === 0 && this.#confirming.size === 0) return;
    const now = Date.now();
    // Requests wait for replies while the server has not answered a PING for long: a producer whose
    // window is full sends nothing new, so no refusal would ever raise it. Requests written just after
    // an answered probe have none of their own: probe for them here.
    if (this.#probes.length === 0 && this.#pending.size > 0) this.#probeServer();
    else if (this.#probes.length > 0 && now - (this.#probes[0] as number) > NOT_READING_MS) this.#onNotReading();
    for (const [id, pending] of this.#pending) {
      if (pending.deadline > now) continue;
      this.#pending.delete(id);
      pending.reject(new ReplyTimeoutError('no reply within the timeout'));
    }
    for (const turn of this.#confirming) {
      if (turn.deadline > now) continue;
      this.#confirming.delete(turn);
      turn.reject(new ReplyTimeoutError('the server did not answer a PING in time'));
    }
  }

  #schedule(): void {
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  /**
   * Publishes `data` to `subject` and resolves with nothing once `check` accepted the reply (the PubAck of
   * the publish hot path is checked where the reply arrives); rejects on timeout, a failed publish, or what
   * `check` throws. Publishes are held until the end of the current event-loop turn, so the many small
   * requests of one turn (a pipelined publish) leave in one socket write.
   */
  request(
    subject: string,
    data: Uint8Array,
    timeoutMs: number,
    headers: MsgHdrs | undefined,
    check: (reply: Reply, subject: string) => void,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const id = ++this.#n;
      const pending: Pending = { subject, data, headers, id, check, resolve, reject, deadline: Date.now() + timeoutMs };
      this.#pending.set(id, pending);
      this.#requests.push(pending);
      this.#schedule();
    });
  }

  /**
   * Publishes `data` without a reply subject and resolves once the server has read it: one PING/PONG
   * round trip confirms every write of the loop turn (the server handles a connection's messages in order).
   * Used for acks, naks and terms, where a reply per message would cost a message each way. All writes of
   * a turn share one promise.
   */
  write(subject: string, data: Uint8Array, timeoutMs: number): Promise<void> {
    let turn = this.#turn;
    if (!turn) {
      let resolve: () => void = () => {};
      let reject: (error: Error) => void = () => {};
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      turn = { promise, resolve, reject, deadline: 0 };
      this.#turn = turn;
    }
    turn.deadline = Math.max(turn.deadline, timeoutMs);
    this.#writes.push(subject, data);
    this.#schedule();
    return turn.promise;
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    const nc = this.#nc;
    const requests = this.#requests;
    this.#requests = [];
    if (requests.length > 0) this.#probeServer();
    const silentMs = this.#probes.length > 0 ? Date.now() - (this.#probes[0] as number) : 0;
    const refused = silentMs > NOT_READING_MS;
    if (refused) {
      const error = new ServerNotReadingError(
        `the server has not answered a PING for ${silentMs} ms: it is not reading this connection (paused, or the link is cut) and the request was not sent`,
      );
      for (const item of requests) if (this.#pending.delete(item.id)) item.reject(error);
      this.#onNotReading();
    }
    for (const item of refused ? [] : requests) {
      try {
        nc.publish(
          item.subject,
          item.data,
          item.headers ? { reply: this.#prefix + item.id, headers: item.headers } : { reply: this.#prefix + item.id },
        );
      } catch (error) {
        if (this.#pending.delete(item.id)) item.reject(error as Error);
      }
    }
    const turn = this.#turn;
    if (!turn) return;
    const writes = this.#writes;
    this.#writes = [];
    this.#turn = undefined;
    let failure: unknown;
    for (let i = 0; i < writes.length; i += 2) {
      try {
        nc.publish(writes[i] as string, writes[i + 1] as Uint8Array);
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure === undefined) this.#confirm(turn);
    else turn.reject(failure as Error);
  };

  /**
   * Sends a PING at most every PROBE_EVERY_MS while requests come (also while they are refused, so the
   * first PONG ends the refusal). PONGs come in PING order: one answers every older probe too, which
   * also covers a PING nats.js lost without settling it.
   */
  #probeServer(): void {
    const now = Date.now();
    if (now - this.#probedAt < PROBE_EVERY_MS) return;
    this.#probedAt = now;
    this.#probes.push(now);
    const done = (): void => {
      const at = this.#probes.indexOf(now);
      if (at >= 0) this.#probes = this.#probes.slice(at + 1);
    };
    this.#nc.flush().then(done, done);
  }

  /** One PING after the turn's writes; its PONG says the server has read them all. */
  #confirm(turn: Turn): void {
    turn.deadline += Date.now();
    this.#confirming.add(turn);
    this.#nc.flush().then(
      () => {
        if (this.#confirming.delete(turn)) turn.resolve();
      },
      (error: unknown) => {
        if (this.#confirming.delete(turn)) turn.reject(error as Error);
      },
    );
  }

  /**
   * After a reconnect: requests still waiting for a reply are published again, with the same reply id. A
   * request written before the connection dropped gets no reply once the server restarted, and nats.js drops
   * whatever is written while it is disconnected; both would otherwise wait out their timeout. Publishes carry
   * a `Nats-Msg-Id`, so a copy the server did store is answered as a duplicate; the first reply wins.
   */
  resend(): void {
    // A PING of the old connection may never be answered (nor rejected): it says nothing about this one.
    this.#probes = [];
    if (this.#pending.size === 0) return;
    const queued = new Set(this.#requests);
    for (const pending of this.#pending.values()) if (!queued.has(pending)) this.#requests.push(pending);
    this.#schedule();
  }

  /** Rejects every request waiting for a reply on `subject` (the server refused to take it). */
  refuse(subject: string, reason: Error): void {
    for (const [id, pending] of this.#pending) {
      if (pending.subject !== subject) continue;
      this.#pending.delete(id);
      pending.reject(reason);
    }
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
    for (const turn of this.#confirming) turn.reject(reason);
    this.#confirming.clear();
  }
}
