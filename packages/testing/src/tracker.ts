import type { CloudEvent, Instrumentation, Settlement } from '@wharf/core';
import type { SettlementRecord } from './types.js';

/** A retry the broker holds: redelivered at logical time `due` as delivery `attempt`. */
interface Waiting {
  readonly id: string | undefined;
  readonly attempt: number;
  readonly due: number;
}

interface GroupState {
  readonly channel: string;
  readonly group: string;
  /** Events published on the channel before the group existed: they never reach it. */
  readonly since: number;
  /** Events sent to this group alone (dead-letter replays). */
  extra: number;
  /** Deliveries settled for good: acked, dead-lettered, duplicate, discarded. */
  finals: number;
  consumers: number;
  readonly waiting: Waiting[];
  readonly settlements: SettlementRecord[];
  /** Retry delays the broker holds for it (as the broker sees them), for cleanup. */
  readonly delays: Set<number>;
}

const FINAL = new Set(['acked', 'dead-lettered', 'duplicate', 'discarded']);

/**
 * Counts what is in flight, for `settled()`, and records what was published and consumed. Adapters
 * wrapped by the test bus report publishes and subscriptions (by the channel and group names the
 * service uses); the bus's instrumentation reports events and settlements.
 *
 * An event is in flight for a group that has a consumer until a delivery of it settles for good.
 * A retried event stops being in flight while its retry is not due: on memory the virtual clock
 * decides when it is, on a real broker the logical clock the kit advances.
 */
export class Tracker {
  readonly #published = new Map<string, CloudEvent[]>();
  /** Events handed to the broker per channel, counted before the broker confirmed (memory delivers first). */
  readonly #sent = new Map<string, number>();
  readonly #groups = new Map<string, GroupState>();
  #pendingPublishes = 0;

  constructor(private readonly now: () => number) {}

  // Reports of the wrapped adapters.

  publishing(channel: string, count: number): void {
    this.#sent.set(channel, (this.#sent.get(channel) ?? 0) + count);
    this.#pendingPublishes++;
  }

  published(channel: string, count: number, ok: boolean): void {
    this.#pendingPublishes--;
    if (!ok) this.#sent.set(channel, (this.#sent.get(channel) ?? 0) - count);
  }

  publishingToGroup(channel: string, group: string, count: number): void {
    this.#group(channel, group).extra += count;
    this.#pendingPublishes++;
  }

  publishedToGroup(channel: string, group: string, count: number, ok: boolean): void {
    this.#pendingPublishes--;
    if (!ok) this.#group(channel, group).extra -= count;
  }

  declared(channel: string, group: string, delays: readonly number[]): void {
    const state = this.#group(channel, group);
    for (const delay of delays) state.delays.add(delay);
  }

  subscribed(channel: string, group: string): void {
    this.#group(channel, group).consumers++;
  }

  unsubscribed(channel: string, group: string): void {
    this.#group(channel, group).consumers--;
  }

  /** Every channel and group the wrapped adapters touched, with the delays the broker held. */
  topology(): Map<string, { groups: Set<string>; delays: Set<number> }> {
    const out = new Map<string, { groups: Set<string>; delays: Set<number> }>();
    for (const channel of this.#sent.keys()) out.set(channel, { groups: new Set(), delays: new Set() });
    for (const state of this.#groups.values()) {
      let entry = out.get(state.channel);
      if (!entry) {
        entry = { groups: new Set(), delays: new Set() };
        out.set(state.channel, entry);
      }
      entry.groups.add(state.group);
      for (const delay of state.delays) entry.delays.add(delay);
    }
    return out;
  }

  // The bus's instrumentation.

  readonly instrumentation: Instrumentation = {
    publish: (operation) => ({
      end: (error) => {
        if (error !== undefined) return;
        let list = this.#published.get(operation.channel);
        if (!list) {
          list = [];
          this.#published.set(operation.channel, list);
        }
        list.push(...operation.events);
      },
    }),
    settled: (settlement) => this.#settled(settlement),
  };

  #settled(s: Settlement): void {
    const state = this.#group(s.channel, s.group);
    state.settlements.push({
      outcome: s.outcome,
      attempt: s.attempt,
      event: s.event,
      error: s.error,
      reason: s.reason,
      retryInMs: s.retry?.delayMs,
    });
    // This delivery is the retry some earlier settlement was waiting for.
    const id = s.event?.id;
    const at = state.waiting.findIndex((w) => w.id === id && w.attempt === s.attempt);
    if (at >= 0) state.waiting.splice(at, 1);
    if (FINAL.has(s.outcome)) state.finals++;
    else if (s.outcome === 'retried' && s.retry) {
      state.waiting.push({ id, attempt: s.retry.attempt, due: this.now() + s.retry.delayMs });
    }
  }

  // Queries.

  publishedOn(channel: string): CloudEvent[] {
    return [...(this.#published.get(channel) ?? [])];
  }

  settlementsOf(channel: string, group: string): SettlementRecord[] {
    return [...(this.#groups.get(key(channel, group))?.settlements ?? [])];
  }

  /** The earliest logical time a held retry falls due. */
  nextRetryDue(): number | undefined {
    let min: number | undefined;
    for (const state of this.#groups.values()) {
      for (const w of state.waiting) if (min === undefined || w.due < min) min = w.due;
    }
    return min;
  }

  /** What keeps the bus from being settled, one line each; empty when nothing is in flight. */
  inFlight(): string[] {
    const now = this.now();
    const lines: string[] = [];
    if (this.#pendingPublishes > 0) lines.push(`${this.#pendingPublishes} publish(es) not yet confirmed by the broker`);
    for (const state of this.#groups.values()) {
      if (state.consumers <= 0) continue;
      const unsettled = (this.#sent.get(state.channel) ?? 0) - state.since + state.extra - state.finals;
      const due = state.waiting.filter((w) => w.due <= now).length;
      const held = state.waiting.length - due;
      if (unsettled > held) {
        lines.push(
          `${state.channel}/${state.group}: ${unsettled - held} event(s) not settled` +
            (due > 0 ? ` (${due} retry/retries due and not yet redelivered)` : ''),
        );
      }
    }
    return lines;
  }

  #group(channel: string, group: string): GroupState {
    const k = key(channel, group);
    let state = this.#groups.get(k);
    if (!state) {
      state = {
        channel,
        group,
        since: this.#sent.get(channel) ?? 0,
        extra: 0,
        finals: 0,
        consumers: 0,
        waiting: [],
        settlements: [],
        delays: new Set(),
      };
      this.#groups.set(k, state);
    }
    return state;
  }
}

function key(channel: string, group: string): string {
  return `${channel}\u0000${group}`;
}
