import type { Clock } from '@wharf/memory';

interface Timer {
  readonly due: number;
  readonly seq: number;
  readonly callback: () => void;
}

/**
 * The test bus's clock. On memory it is the broker's clock: retry delays are timers on it and fire
 * only when {@link TestClock.advance} passes them. On a real broker the broker holds delays in real
 * time (scaled down by `timeScale`); the clock then only orders the retries the kit waits for.
 */
export interface TestClock {
  /** `true` on memory: delays take no real time. `false` on a real broker: they take `delay × timeScale`. */
  readonly virtual: boolean;
  /** Logical time in ms; starts at the real time the bus was created and moves only with `advance`. */
  now(): number;
  /**
   * Lets `ms` of time pass for retry delays, then waits until nothing due is in flight: every retry
   * that falls due within `ms` (a retry scheduled by a retry included) runs and settles.
   */
  advance(ms: number): Promise<void>;
}

/**
 * Logical time plus the memory broker's timers. `advance` fires timers one due time after another,
 * letting what each one started settle before the next, so chains of retries run in order.
 */
export class LogicalClock implements Clock {
  #now = Date.now();
  #seq = 0;
  readonly #timers: Timer[] = [];

  now(): number {
    return this.#now;
  }

  /** The memory broker's retry delays land here instead of on the event loop. */
  setTimeout(callback: () => void, ms: number): { unref(): void } {
    // A retry without delay is due now: it runs at once, as on the system clock, with no advance().
    if (!(ms > 0)) {
      setImmediate(callback);
      return { unref: () => undefined };
    }
    this.#timers.push({ due: this.#now + Math.max(0, ms), seq: this.#seq++, callback });
    return { unref: () => undefined };
  }

  /** Timers waiting. */
  get pending(): number {
    return this.#timers.length;
  }

  /**
   * Moves to `target`, stopping at each due time in between: `step(due)` is called with the next
   * due time at or before `target` (or undefined when none is left) and must bring time there and
   * let the work settle. Returns when time is at `target`.
   */
  async advanceTo(target: number, step: (due: number) => Promise<void>, nextDue: () => number | undefined) {
    for (;;) {
      const due = nextDue();
      if (due === undefined || due > target) break;
      await step(due);
    }
    this.#now = Math.max(this.#now, target);
  }

  /** Sets logical time (never backwards) and fires the timers due by then, oldest first. */
  moveTo(time: number): void {
    this.#now = Math.max(this.#now, time);
    const due = this.#timers.filter((t) => t.due <= this.#now).sort((a, b) => a.due - b.due || a.seq - b.seq);
    for (const timer of due) this.#timers.splice(this.#timers.indexOf(timer), 1);
    for (const timer of due) timer.callback();
  }

  /** The earliest timer's due time. */
  nextTimer(): number | undefined {
    let min: number | undefined;
    for (const t of this.#timers) if (min === undefined || t.due < min) min = t.due;
    return min;
  }
}
