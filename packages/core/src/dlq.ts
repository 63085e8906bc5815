import { createHash, randomUUID } from 'node:crypto';
import type { Bus, DeadLetter } from './bus.js';
import type { DeadLetterInfo } from './dead-letter.js';
import type { CloudEvent } from './envelope.js';
import { ConfigError, UnknownDeadLetterError } from './errors.js';

/**
 * Operating on dead letters across channels and groups: list with filters, show, replay, purge and
 * edit-and-replay. `wharf dlq` and `wharf console` are thin layers over this module, so they behave
 * the same on every broker: everything here is built on the adapter's one dead-letter primitive
 * (`readDeadLetters`: visit oldest first, remove only when the visit resolves true).
 */

/** One channel's group whose dead letters are read. */
export interface DeadLetterTarget {
  readonly channel: string;
  readonly group: string;
}

/** Which dead letters an operation applies to; every criterion given must match (each list is "any of"). */
export interface DeadLetterFilter {
  /** Dead-letter reasons (`retries-exhausted`, `non-retryable`, `invalid`, `undecodable`, `no-handler`). */
  readonly reasons?: readonly string[] | undefined;
  /** Error class names, e.g. `NonRetryableError`. */
  readonly errorTypes?: readonly string[] | undefined;
  /** CloudEvents `type`s. */
  readonly eventTypes?: readonly string[] | undefined;
  /** Last failure at or after this time. */
  readonly since?: Date | undefined;
  /** Last failure at or before this time. */
  readonly until?: Date | undefined;
  /** Event ids, or keys (`channel/group/id`) where one id is dead-lettered in several groups. */
  readonly ids?: readonly string[] | undefined;
  readonly correlationIds?: readonly string[] | undefined;
  /** Case-insensitive substring of the id, key or correlation id (the console's search box). */
  readonly search?: string | undefined;
}

/** A dead letter as listed, with where it lives. */
export interface DeadLetterEntry {
  /** `channel/group/id`: unique across the targets read. */
  readonly key: string;
  /** The event id; `undecodable-<hash>` for a message that could not be decoded (it has no readable id). */
  readonly id: string;
  readonly channel: string;
  readonly group: string;
  readonly event: CloudEvent | undefined;
  readonly info: DeadLetterInfo | undefined;
  readonly decodeError: string | undefined;
  /** How often the event was replayed before it was dead-lettered this time (the `replaycount` extension). */
  readonly replayCount: number;
}

/** A count of dead letters with one reason and error type. */
export interface DeadLetterGroupCount {
  readonly reason: string;
  readonly errorType: string;
  readonly count: number;
}

export interface DeadLetterListing {
  readonly deadLetters: readonly DeadLetterEntry[];
  /** Counts by reason and error type, largest first. */
  readonly summary: readonly DeadLetterGroupCount[];
  /** Targets with more dead letters than `scanLimit`: the listing is partial for them. */
  readonly truncated: readonly DeadLetterTarget[];
}

/** What a replay or purge did. */
export interface DeadLetterOutcome {
  /** Keys of the dead letters replayed (published, confirmed, then removed) or purged. */
  readonly done: readonly string[];
  /** Matching dead letters left in place, with why (an undecodable message cannot be replayed). */
  readonly skipped: readonly { readonly key: string; readonly why: string }[];
  /** Ids asked for that no target holds. */
  readonly notFound: readonly string[];
}

/** Options of {@link DeadLetterQueue.replay}. */
export interface ReplayOptions {
  /** Publish to this channel instead of the dead letter's own (all its groups). */
  readonly to?: string | undefined;
  /** Called after each dead letter is replayed and removed (progress for long replays). */
  readonly onReplayed?: ((entry: DeadLetterEntry) => void) | undefined;
}

/** Extension carrying how often an event has been replayed from a dead-letter destination. */
export const REPLAY_COUNT_EXTENSION = 'replaycount';

/** Options of {@link DeadLetterQueue}. */
export interface DeadLetterQueueOptions {
  /** Dead letters read per target at most, per operation. Default 10,000. */
  readonly scanLimit?: number;
}

/**
 * Dead letters across channels and groups, for people fixing them.
 *
 * Replay safety, on every broker: each dead letter is published (to its failing group only where
 * the adapter has `publishToGroup`, else to its channel), the broker's confirm is awaited, and only
 * then is the dead letter removed, one at a time. An interrupted replay therefore loses nothing; it
 * may leave a dead letter that was already published, and replaying it again publishes the same id,
 * which the group's dedup store turns into one effect. Each replay carries the `replayed` time and
 * a `replaycount` one higher than the dead letter's.
 *
 * @example
 * ```ts
 * const dlq = new DeadLetterQueue(createBus({ url: 'amqp://localhost' }));
 * const { summary } = await dlq.list([{ channel: 'orders', group: 'billing' }], { reasons: ['non-retryable'] });
 * await dlq.replay([{ channel: 'orders', group: 'billing' }], { ids: ['e-1'] });
 * ```
 */
export class DeadLetterQueue {
  readonly #bus: Bus;
  readonly #scanLimit: number;

  constructor(bus: Bus, options: DeadLetterQueueOptions = {}) {
    const scanLimit = options.scanLimit ?? 10_000;
    if (!Number.isInteger(scanLimit) || scanLimit < 1) {
      throw new ConfigError('dlq', `scanLimit must be an integer >= 1, got ${String(scanLimit)}`);
    }
    this.#bus = bus;
    this.#scanLimit = scanLimit;
  }

  /** Lists the dead letters of every target that match `filter`, oldest first per target, without removing any. */
  async list(targets: readonly DeadLetterTarget[], filter: DeadLetterFilter = {}): Promise<DeadLetterListing> {
    const deadLetters: DeadLetterEntry[] = [];
    const truncated: DeadLetterTarget[] = [];
    for (const target of targets) {
      let seen = 0;
      await this.#bus.visitDeadLetters(target.channel, target.group, { limit: this.#scanLimit }, async (letter) => {
        seen++;
        const entry = toEntry(target, letter);
        if (matches(entry, filter)) deadLetters.push(entry);
        return false;
      });
      if (seen >= this.#scanLimit) truncated.push(target);
    }
    return { deadLetters, summary: summarize(deadLetters), truncated };
  }

  /**
   * The dead letters with this id (or key): one, or one per group where the same event failed in
   * several. Throws `UnknownDeadLetterError` when no target holds it.
   */
  async show(targets: readonly DeadLetterTarget[], id: string): Promise<DeadLetterEntry[]> {
    const { deadLetters } = await this.list(targets, { ids: [id] });
    if (deadLetters.length === 0) throw new UnknownDeadLetterError([id], describe(targets));
    return [...deadLetters];
  }

  /**
   * Replays every dead letter matching `filter` (give `ids` for one or several), one at a time:
   * publish, await the broker's confirm, remove. Rejects with the first publish error, leaving that
   * dead letter and all not yet reached in place.
   */
  async replay(
    targets: readonly DeadLetterTarget[],
    filter: DeadLetterFilter = {},
    options: ReplayOptions = {},
  ): Promise<DeadLetterOutcome> {
    return this.#settle(targets, filter, async (entry) => {
      if (entry.event === undefined) return 'an undecodable message cannot be replayed: purge it once understood';
      const again = {
        ...entry.event,
        replayed: new Date().toISOString(),
        [REPLAY_COUNT_EXTENSION]: String(entry.replayCount + 1),
      } as CloudEvent;
      if (options.to !== undefined) await this.#bus.republish(options.to, again);
      else await this.#bus.republish(entry.channel, again, { group: entry.group, rawQueue: entry.info?.rawQueue });
      options.onReplayed?.(entry);
      return true;
    });
  }

  /** Removes every dead letter matching `filter` for good. */
  purge(targets: readonly DeadLetterTarget[], filter: DeadLetterFilter = {}): Promise<DeadLetterOutcome> {
    return this.#settle(targets, filter, async () => true);
  }

  /**
   * Publishes a corrected copy of one dead letter: `data` replaces the payload, the event gets a new
   * id, `causationid` names the original and `correlationid` is the original's (or its id). The copy
   * is checked against the bus's contract before anything is sent (`ContractViolationError`); once the
   * broker confirmed it, the original dead letter is removed. Resolves with the event sent.
   */
  async editAndReplay(target: DeadLetterTarget, id: string, data: unknown): Promise<CloudEvent> {
    let sent: CloudEvent | undefined;
    const outcome = await this.#settle([target], { ids: [id] }, async (entry) => {
      if (sent !== undefined) return 'only the first match is edited';
      const original = entry.event;
      if (original === undefined) return 'an undecodable message cannot be edited';
      const { id: _old, replayed: _r, [REPLAY_COUNT_EXTENSION]: _c, ...rest } = original;
      const edited = {
        ...rest,
        id: randomUUID(),
        time: new Date().toISOString(),
        data,
        causationid: original.id,
        correlationid: original.correlationid ?? original.id,
        replayed: new Date().toISOString(),
        [REPLAY_COUNT_EXTENSION]: String(entry.replayCount + 1),
      } as CloudEvent;
      await this.#bus.republish(entry.channel, edited, {
        group: entry.group,
        validate: true,
        rawQueue: entry.info?.rawQueue,
      });
      sent = edited;
      return true;
    });
    if (sent === undefined) {
      if (outcome.notFound.length > 0) throw new UnknownDeadLetterError([id], describe([target]));
      throw new ConfigError('dlq', `dead letter ${id} cannot be edited: ${outcome.skipped[0]?.why ?? 'unknown'}`);
    }
    return sent;
  }

  /** Visits every target; `act` returns true to remove a matching dead letter, or why it stays. */
  async #settle(
    targets: readonly DeadLetterTarget[],
    filter: DeadLetterFilter,
    act: (entry: DeadLetterEntry) => Promise<true | string>,
  ): Promise<DeadLetterOutcome> {
    const done: string[] = [];
    const skipped: { key: string; why: string }[] = [];
    const found = new Set<string>();
    for (const target of targets) {
      await this.#bus.visitDeadLetters(target.channel, target.group, { limit: this.#scanLimit }, async (letter) => {
        const entry = toEntry(target, letter);
        if (!matches(entry, filter)) return false;
        found.add(entry.id);
        found.add(entry.key);
        const result = await act(entry);
        if (result === true) {
          done.push(entry.key);
          return true;
        }
        skipped.push({ key: entry.key, why: result });
        return false;
      });
    }
    const notFound = (filter.ids ?? []).filter((id) => !found.has(id));
    return { done, skipped, notFound };
  }
}

function toEntry(target: DeadLetterTarget, letter: DeadLetter): DeadLetterEntry {
  const id = letter.event?.id ?? undecodableId(letter);
  const count = Number(letter.event?.[REPLAY_COUNT_EXTENSION] ?? 0);
  return {
    key: `${target.channel}/${target.group}/${id}`,
    id,
    channel: target.channel,
    group: target.group,
    event: letter.event,
    info: letter.info,
    decodeError: letter.decodeError,
    replayCount: Number.isInteger(count) && count > 0 ? count : 0,
  };
}

/** A stable name for a message without a readable id: a hash of what is known about it. */
function undecodableId(letter: DeadLetter): string {
  const hash = createHash('sha256')
    .update(JSON.stringify([letter.info, letter.decodeError]))
    .digest('hex');
  return `undecodable-${hash.slice(0, 16)}`;
}

function matches(entry: DeadLetterEntry, filter: DeadLetterFilter): boolean {
  const { info, event } = entry;
  const reason = info?.reason ?? (entry.event === undefined ? 'undecodable' : 'unknown');
  if (filter.reasons?.length && !filter.reasons.includes(reason)) return false;
  if (filter.errorTypes?.length && !filter.errorTypes.includes(info?.errorType ?? '')) return false;
  if (filter.eventTypes?.length && !filter.eventTypes.includes(event?.type ?? '')) return false;
  if (filter.since || filter.until) {
    const at = Date.parse(info?.lastFailureAt ?? '');
    if (Number.isNaN(at)) return false;
    if (filter.since && at < filter.since.getTime()) return false;
    if (filter.until && at > filter.until.getTime()) return false;
  }
  if (filter.ids?.length && !filter.ids.includes(entry.id) && !filter.ids.includes(entry.key)) return false;
  if (filter.correlationIds?.length && !filter.correlationIds.includes(event?.correlationid ?? '')) return false;
  if (filter.search) {
    const needle = filter.search.toLowerCase();
    const hay = [entry.key, event?.correlationid ?? ''];
    if (!hay.some((text) => text.toLowerCase().includes(needle))) return false;
  }
  return true;
}

function summarize(entries: readonly DeadLetterEntry[]): DeadLetterGroupCount[] {
  const counts = new Map<string, DeadLetterGroupCount>();
  for (const entry of entries) {
    const reason = entry.info?.reason ?? (entry.event === undefined ? 'undecodable' : 'unknown');
    const errorType = entry.info?.errorType || '-';
    const name = `${reason}\u0000${errorType}`;
    const previous = counts.get(name);
    counts.set(name, { reason, errorType, count: (previous?.count ?? 0) + 1 });
  }
  return [...counts.values()].sort(
    (a, b) => b.count - a.count || a.reason.localeCompare(b.reason) || a.errorType.localeCompare(b.errorType),
  );
}

function describe(targets: readonly DeadLetterTarget[]): string {
  if (targets.length === 1) return `${targets[0]?.channel}/${targets[0]?.group}`;
  return `${targets.length} channel groups`;
}
