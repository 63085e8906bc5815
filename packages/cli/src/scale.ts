/** The headroom of the scaling rule: 20 % above what the backlog needs. */
export const HEADROOM = 1.2;

/** What the scaling rule decided, with its inputs. */
export interface ScaleDecision {
  /** Events to work off: ready plus in flight (delayed events wait for their time, not for replicas). */
  readonly backlog: number;
  /** Events per second one replica handles. */
  readonly capacity: number;
  readonly headroom: number;
  /** `ceil(backlog × headroom / capacity)`. */
  readonly uncapped: number;
  /** The most replicas that receive events at once (Kafka: partitions), when the broker limits it. */
  readonly cap: number | undefined;
  /** `min(uncapped, cap)`: 0 for an empty backlog, at least 1 otherwise. */
  readonly replicas: number;
}

/**
 * The rule `replicas = ceil(backlog × 1.2 / capacity)`, capped at the broker's limit. It sizes for
 * working off the backlog in one second with 20 % headroom; to allow T seconds, pass capacity × T.
 */
export function decideReplicas(input: { backlog: number; capacity: number; cap?: number | undefined }): ScaleDecision {
  const { backlog, capacity, cap } = input;
  if (!(Number.isFinite(capacity) && capacity > 0)) throw new RangeError(`capacity must be > 0, got ${capacity}`);
  // The small tolerance keeps binary floating point from rounding 600.0000000000001 up to 601.
  const uncapped = backlog <= 0 ? 0 : Math.ceil((backlog * HEADROOM) / capacity - 1e-9);
  const replicas = cap !== undefined ? Math.min(uncapped, cap) : uncapped;
  return { backlog, capacity, headroom: HEADROOM, uncapped, cap, replicas };
}
