/**
 * The total-queue checker (after Jepsen's): every published payload is a producer id and a counter,
 * so after a full drain each one can be accounted for. Pure: it judges records, it does no I/O.
 */

/** How a publish ended. `pending` = still unsettled at its deadline, which is a defect. */
export type PublishOutcome = 'confirmed' | 'rejected' | 'pending';

/** One attempted publish. */
export interface PublishRecord {
  readonly producer: string;
  readonly seq: number;
  readonly outcome: PublishOutcome;
  /** For `rejected`: the error's class name (a typed error is a `…Error` other than plain `Error`). */
  readonly error?: string;
}

/** One delivery that reached the consumer's bus (the dedup check), and whether it had an effect. */
export interface DeliveryRecord {
  readonly producer: string;
  readonly seq: number;
  /** Wall-clock ms when the consumer saw it. */
  readonly at: number;
  /** True when the handler ran (the delivery got past the dedup store). */
  readonly effect: boolean;
}

/** What the broker itself still holds of the lost events, asked after the drain. */
export interface BrokerWitness {
  /** Lost events a fresh fetch from the broker still found (the broker has them; Wharf lost them). */
  readonly foundInBroker: number;
  /** How the broker was asked (e.g. `fresh group fetch`, `queue depth`). */
  readonly how: string;
}

/** The inputs of {@link check}. */
export interface CheckInput {
  readonly publishes: readonly PublishRecord[];
  readonly deliveries: readonly DeliveryRecord[];
  /** When the last fault ended (ms); recovery is measured from it. */
  readonly faultEndedAt?: number;
  /** The drain saw no progress for the stall bound after the fault healed, with events missing. */
  readonly stalled?: boolean;
  /** Check per-producer order of effects (only where the adapter declares `orderedByKey`). */
  readonly ordered?: boolean;
  readonly witness?: BrokerWitness;
}

/** The checker's verdict on one run. */
export interface CheckResult {
  readonly published: number;
  readonly confirmed: number;
  readonly rejected: number;
  /** Rejections whose error is not a typed (named) error. */
  readonly untypedRejections: number;
  readonly pendingAtDeadline: number;
  /** Distinct events consumed (their handler ran). */
  readonly consumed: number;
  /** Confirmed, never consumed (no handler run finished for it). */
  readonly lost: number;
  readonly lostIds: readonly string[];
  /** Consumed, never published. */
  readonly unexpected: number;
  /** Deliveries beyond the first of each event. */
  readonly duplicates: number;
  /** Handler runs beyond the first of each event (duplicates that got past the dedup store). */
  readonly duplicateEffects: number;
  /** Publish outcome not confirmed (rejected or pending), yet consumed. */
  readonly recovered: number;
  /** Events delivered but never handled (no effect at all). */
  readonly withoutEffect: number;
  readonly stalled: boolean;
  /** Fault end to the first delivery after it, ms (undefined when no fault or no delivery after it). */
  readonly recoveryMs: number | undefined;
  /** Effects of a producer handled after a later counter of the same producer. */
  readonly orderViolations: number;
  readonly witness?: BrokerWitness;
  /** True when nothing was lost, unexpected, duplicated in effect, stalled or left pending. */
  readonly ok: boolean;
}

/** `producer-seq`, the id every chaos event carries. */
export function eventKey(producer: string, seq: number): string {
  return `${producer}-${seq}`;
}

const TYPED = /^[A-Z][A-Za-z0-9]*Error$/;

/** Judges a drained run. */
export function check(input: CheckInput): CheckResult {
  const outcomes = new Map<string, PublishRecord>();
  for (const record of input.publishes) outcomes.set(eventKey(record.producer, record.seq), record);
  const deliveries = new Map<string, number>();
  const effects = new Map<string, number>();
  let orderViolations = 0;
  const lastEffect = new Map<string, number>();
  const sorted = [...input.deliveries].sort((a, b) => a.at - b.at);
  for (const delivery of sorted) {
    const key = eventKey(delivery.producer, delivery.seq);
    deliveries.set(key, (deliveries.get(key) ?? 0) + 1);
    if (!delivery.effect) continue;
    const count = (effects.get(key) ?? 0) + 1;
    effects.set(key, count);
    if (input.ordered && count === 1) {
      const last = lastEffect.get(delivery.producer) ?? -1;
      if (delivery.seq < last) orderViolations += 1;
      else lastEffect.set(delivery.producer, delivery.seq);
    }
  }
  let confirmed = 0;
  let rejected = 0;
  let untypedRejections = 0;
  let pendingAtDeadline = 0;
  let recovered = 0;
  const lostIds: string[] = [];
  for (const [key, record] of outcomes) {
    if (record.outcome === 'confirmed') {
      confirmed += 1;
      // Consumed means handled: a delivery whose handler never finished, and that never came back, is lost too.
      if (!effects.has(key)) lostIds.push(key);
      continue;
    }
    if (record.outcome === 'rejected') {
      rejected += 1;
      if (record.error === undefined || record.error === 'Error' || !TYPED.test(record.error)) untypedRejections += 1;
    } else {
      pendingAtDeadline += 1;
    }
    if (deliveries.has(key)) recovered += 1;
  }
  let unexpected = 0;
  let duplicates = 0;
  let withoutEffect = 0;
  for (const [key, count] of deliveries) {
    if (!outcomes.has(key)) unexpected += 1;
    duplicates += count - 1;
    if (!effects.has(key)) withoutEffect += 1;
  }
  let duplicateEffects = 0;
  for (const count of effects.values()) duplicateEffects += count - 1;
  let recoveryMs: number | undefined;
  if (input.faultEndedAt !== undefined) {
    const first = sorted.find((delivery) => delivery.at >= (input.faultEndedAt ?? 0));
    if (first !== undefined) recoveryMs = first.at - input.faultEndedAt;
  }
  const stalled = input.stalled ?? false;
  const lost = lostIds.length;
  return {
    published: outcomes.size,
    confirmed,
    rejected,
    untypedRejections,
    pendingAtDeadline,
    consumed: effects.size,
    lost,
    lostIds: lostIds.slice(0, 50),
    unexpected,
    duplicates,
    duplicateEffects,
    recovered,
    withoutEffect,
    stalled,
    recoveryMs,
    orderViolations,
    ...(input.witness ? { witness: input.witness } : {}),
    ok:
      lost === 0 &&
      unexpected === 0 &&
      duplicateEffects === 0 &&
      !stalled &&
      pendingAtDeadline === 0 &&
      orderViolations === 0,
  };
}
