import autocannon from 'autocannon';
import type { Tracker } from './tracker.js';
import type { RunningVariant } from './variants.js';

/** Latency of `POST /orders` as the load generator measured it (corrected for coordinated omission). */
export interface RequestLatency {
  avgMs: number;
  p50Ms: number;
  p99Ms: number;
}

export interface LoadResult {
  /** Seconds the load actually ran. */
  seconds: number;
  latency: RequestLatency;
  /** Requests that got no answer: connection errors and the generator's timeouts. */
  errors: number;
}

/** Most sockets the generator opens: the rate's worth, so a slow answer does not lower the offered rate. */
const MAX_CONNECTIONS = 512;

/**
 * Offers `rate` orders per second to the variant's `POST /orders` for `seconds`, each a fresh order of
 * the saga's scenario. autocannon paces all connections together (`overallRate`) and, with a rate
 * set, corrects its latencies for coordinated omission, so a stalled service is not hidden by the
 * requests it kept the generator from sending. With as many connections as orders per second, a
 * second of latency does not yet slow the offered rate down.
 */
export async function offerLoad(
  variant: RunningVariant,
  tracker: Tracker,
  rate: number,
  seconds: number,
): Promise<LoadResult> {
  const started = performance.now();
  const result = await autocannon({
    url: `${variant.orderUrl}/orders`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    connections: Math.min(MAX_CONNECTIONS, Math.max(16, Math.ceil(rate))),
    overallRate: rate,
    duration: seconds,
    timeout: 10,
    requests: [
      {
        setupRequest: (request, context) => {
          const { orderId, body } = tracker.next();
          (context as { orderId?: string }).orderId = orderId;
          return { ...request, body };
        },
        onResponse: (status, body, context) => {
          const orderId = (context as { orderId?: string }).orderId;
          if (!orderId) return;
          const final = status >= 200 && status < 300 ? variant.finalFromResponse(body) : undefined;
          tracker.answered(orderId, status, status === 502 || status === 503 ? 'failed' : final);
        },
      },
    ],
  });
  return {
    seconds: (performance.now() - started) / 1000,
    latency: { avgMs: result.latency.average, p50Ms: result.latency.p50, p99Ms: result.latency.p99 },
    errors: result.errors + result.timeouts,
  };
}
