import { BackpressureError, PublishTimeoutError } from './errors.js';

/** How publishing behaves when `maxPendingPublishes` events are already waiting for the broker. */
export type BackpressureMode = 'wait' | 'fail';

interface Entry {
  readonly deadline: number;
  /** Settles the caller's promise once; later calls do nothing. */
  expire: (() => void) | undefined;
}

interface Waiter extends Entry {
  readonly count: number;
  admit: (() => void) | undefined;
}

/**
 * Bounds publishing: every publish settles within `timeoutMs` (confirmed, or a typed error), and
 * at most `maxPending` events are handed to the adapter and not yet answered, so an outage never
 * buffers without bound. One timer serves all publishes: they share one timeout, so a FIFO is
 * in deadline order, and a timer per publish would cost a Timeout object per event.
 */
export class PublishGate {
  #pending = 0;
  readonly #inflight: Entry[] = [];
  #head = 0;
  // A queue with a head index, not `shift()`: past ~16k entries V8 keeps an array's store in large
  // object space, where `shift()` copies the whole array, and an outage expired 56,000 waiters in
  // one quadratic sweep that blocked the event loop for 3.3 s (a 100,000-event chaos run).
  readonly #waiters: Waiter[] = [];
  #waitHead = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly component: string,
    readonly timeoutMs: number,
    readonly maxPending: number,
    readonly mode: BackpressureMode,
    readonly onTimeout: (count: number) => void = () => {},
  ) {}

  /** Events handed to the adapter and not yet answered by the broker. */
  get pending(): number {
    return this.#pending;
  }

  /** Runs `send` once there is room; settles when it does or at the deadline, whichever is first. */
  run(count: number, send: () => Promise<void>): Promise<void> {
    // A single batch larger than the bound still goes alone, or it could never go.
    if (this.#pending === 0 || this.#pending + count <= this.maxPending) return this.#start(count, send, Date.now());
    if (this.mode === 'fail') {
      return Promise.reject(
        new BackpressureError(
          this.component,
          `${this.#pending} events are already waiting for the broker's confirmation (maxPendingPublishes ${this.maxPending}); publish again later`,
        ),
      );
    }
    const started = Date.now();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        count,
        deadline: started + this.timeoutMs,
        admit: () => {
          waiter.admit = undefined;
          waiter.expire = undefined;
          this.#start(count, send, started).then(resolve, reject);
        },
        expire: () => {
          waiter.admit = undefined;
          waiter.expire = undefined;
          this.onTimeout(count);
          reject(
            new PublishTimeoutError(
              this.component,
              `no room to publish within ${this.timeoutMs} ms: ${this.#pending} events were still waiting for the broker (maxPendingPublishes ${this.maxPending}); nothing was sent — is the broker reachable?`,
              false,
            ),
          );
        },
      };
      this.#waiters.push(waiter);
      this.#arm();
    });
  }

  #start(count: number, send: () => Promise<void>, started: number): Promise<void> {
    this.#pending += count;
    let work: Promise<void>;
    try {
      work = send();
    } catch (error) {
      work = Promise.reject(error);
    }
    return new Promise<void>((resolve, reject) => {
      const entry: Entry = {
        deadline: started + this.timeoutMs,
        expire: () => {
          entry.expire = undefined;
          this.onTimeout(count);
          reject(
            new PublishTimeoutError(
              this.component,
              `the broker did not confirm ${count === 1 ? 'the event' : `${count} events`} within ${this.timeoutMs} ms; ${count === 1 ? 'it' : 'they'} may or may not have been stored (publish again with the same id: consumers drop the duplicate)`,
              true,
            ),
          );
        },
      };
      this.#inflight.push(entry);
      this.#arm();
      // The slot is freed when the adapter answers, not at the deadline: until then it holds the event.
      work.then(
        () => {
          this.#free(count);
          if (entry.expire === undefined) return;
          entry.expire = undefined;
          this.#trim();
          resolve();
        },
        (error: unknown) => {
          this.#free(count);
          if (entry.expire === undefined) return;
          entry.expire = undefined;
          this.#trim();
          reject(error);
        },
      );
    });
  }

  /**
   * Drops answered entries from the head of the in-flight queue. Without it only the timer's sweep
   * dropped them, and a publisher that never yields to the timers (a tight loop on memory://) kept
   * ~70 bytes per event it ever published (a 10-minute soak).
   */
  #trim(): void {
    const inflight = this.#inflight;
    while (this.#head < inflight.length && (inflight[this.#head] as Entry).expire === undefined) this.#head++;
    if (this.#head === inflight.length) {
      inflight.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > inflight.length) {
      inflight.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /** Publishes answered or expired whose entry is still held for the timeout sweep (for diagnostics). */
  get held(): number {
    return this.#inflight.length - this.#head;
  }

  #free(count: number): void {
    this.#pending -= count;
    const waiters = this.#waiters;
    while (this.#waitHead < waiters.length) {
      const next = waiters[this.#waitHead] as Waiter;
      if (next.admit === undefined) {
        this.#waitHead++;
        continue;
      }
      if (this.#pending > 0 && this.#pending + next.count > this.maxPending) break;
      this.#waitHead++;
      next.admit();
    }
    this.#compactWaiters();
  }

  #compactWaiters(): void {
    if (this.#waitHead === this.#waiters.length) {
      this.#waiters.length = 0;
      this.#waitHead = 0;
    } else if (this.#waitHead > 1024 && this.#waitHead * 2 > this.#waiters.length) {
      this.#waiters.splice(0, this.#waitHead);
      this.#waitHead = 0;
    }
  }

  #arm(): void {
    if (this.#timer !== undefined) return;
    // A tenth of the timeout (at least 10 ms, at most 1 s) keeps the lateness of a timeout small.
    const tick = Math.max(10, Math.min(1000, Math.floor(this.timeoutMs / 10)));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#sweep();
    }, tick);
    this.#timer.unref();
  }

  #sweep(): void {
    const now = Date.now();
    const inflight = this.#inflight;
    while (this.#head < inflight.length) {
      const entry = inflight[this.#head] as Entry;
      if (entry.expire !== undefined && entry.deadline > now) break;
      entry.expire?.();
      this.#head++;
    }
    if (this.#head > 1024 && this.#head * 2 > inflight.length) {
      inflight.splice(0, this.#head);
      this.#head = 0;
    }
    const waiters = this.#waiters;
    while (this.#waitHead < waiters.length) {
      const waiter = waiters[this.#waitHead] as Waiter;
      if (waiter.expire !== undefined && waiter.deadline > now) break;
      this.#waitHead++;
      waiter.expire?.();
    }
    this.#compactWaiters();
    if (this.#head < inflight.length || this.#waitHead < waiters.length) this.#arm();
  }
}
