/** Counters a bus keeps; read them with `bus.stats()` or export them to your metrics system. */
export interface Stats {
  published: number;
  delivered: number;
  acked: number;
  failures: number;
  retried: number;
  deadLettered: number;
  deadLetterFailures: number;
  duplicates: number;
  released: number;
  discarded: number;
  /** Events that left the normal path (logged as errors with channel, group and id; see `Incident`). */
  incidents: number;
  /** Publishes (events) that were not answered within `publishTimeoutMs`. */
  publishTimeouts: number;
  /** Requests (`bus.request`) that got no reply within their `timeoutMs`. */
  requestTimeouts: number;
  /** Replies that matched no waiting request: late (after a timeout), duplicate, or for another requester. */
  repliesDropped: number;
  /** Total time spent in handlers, ms. */
  handlerMs: number;
}

export function createStats(): Stats {
  return {
    published: 0,
    delivered: 0,
    acked: 0,
    failures: 0,
    retried: 0,
    deadLettered: 0,
    deadLetterFailures: 0,
    duplicates: 0,
    released: 0,
    discarded: 0,
    incidents: 0,
    publishTimeouts: 0,
    requestTimeouts: 0,
    repliesDropped: 0,
    handlerMs: 0,
  };
}
