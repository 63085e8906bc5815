import { type Bus, NonRetryableError } from '@wharf/core';
import type { Registry } from 'prom-client';

/** A handler error of its own class, to check `error_type` carries the class name. */
export class DoomedError extends Error {}

export const RETRY = { maxAttempts: 2, delays: [50] } as const;

/**
 * The known workload: 6 `Ok` published one by one, 4 `Flaky` in one batch (each fails its first
 * attempt), 2 `Poison` (non-retryable) and 1 `Doomed` (fails every attempt). So 13 events in 10
 * publish calls, 5 retries (4 Flaky + 1 Doomed), 3 dead letters, 18 handler calls and settlements.
 */
export async function runWorkload(bus: Bus, channel: string, group: string): Promise<void> {
  await bus.subscribe(channel, { group, retry: RETRY, concurrency: 4 }, (event, ctx) => {
    if (event.type === 'Flaky' && ctx.attempt === 1) throw new Error('first attempt fails');
    if (event.type === 'Poison') throw new NonRetryableError('poison');
    if (event.type === 'Doomed') throw new DoomedError('always fails');
  });
  for (let i = 0; i < 6; i++) await bus.publish(channel, { type: 'Ok', data: { i } });
  await bus.publishBatch(
    channel,
    [0, 1, 2, 3].map((i) => ({ type: 'Flaky', data: { i } })),
  );
  await bus.publish(channel, { type: 'Poison' });
  await bus.publish(channel, { type: 'Poison' });
  await bus.publish(channel, { type: 'Doomed' });
}

/** The sum of a metric's samples whose labels include `labels` (`name` may end in `_count`, `_bucket`…). */
export async function sample(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const base = name.replace(/_(count|sum|bucket)$/, '');
  const metric = registry.getSingleMetric(base);
  if (metric === undefined) throw new Error(`no metric ${base} in the registry`);
  const { values } = await metric.get();
  let total = 0;
  for (const value of values) {
    const sampleName = (value as { metricName?: string }).metricName ?? base;
    if (sampleName !== name) continue;
    if (Object.entries(labels).every(([key, want]) => String(value.labels[key] ?? '') === want)) total += value.value;
  }
  return total;
}

/** Waits until `count` deliveries are settled, or fails after `timeoutMs`. */
export async function settled(registry: Registry, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const done = await sample(registry, 'messaging_client_consumed_messages_total');
    if (done >= count) return;
    if (Date.now() > deadline) throw new Error(`only ${done} of ${count} deliveries settled in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Checks every metric against the workload's exact figures. */
export async function expectedFigures(
  registry: Registry,
  system: string,
  channel: string,
  group: string,
): Promise<Record<string, number>> {
  const base = { messaging_system: system, destination: channel };
  const consume = { ...base, consumer_group: group };
  return {
    sent: await sample(registry, 'messaging_client_sent_messages_total', { ...base, error_type: '' }),
    publishCalls: await sample(registry, 'messaging_client_operation_duration_seconds_count', base),
    consumed: await sample(registry, 'messaging_client_consumed_messages_total', consume),
    retried: await sample(registry, 'wharf_retries_total', consume),
    retriedDoomed: await sample(registry, 'wharf_retries_total', { ...consume, error_type: 'DoomedError' }),
    deadNonRetryable: await sample(registry, 'wharf_dead_lettered_total', {
      ...consume,
      reason: 'non-retryable',
      error_type: 'NonRetryableError',
    }),
    deadExhausted: await sample(registry, 'wharf_dead_lettered_total', {
      ...consume,
      reason: 'retries-exhausted',
      error_type: 'DoomedError',
    }),
    handlerCalls: await sample(registry, 'messaging_process_duration_seconds_count', consume),
    handlerOk: await sample(registry, 'messaging_process_duration_seconds_count', { ...consume, error_type: '' }),
    handlerError: await sample(registry, 'messaging_process_duration_seconds_count', {
      ...consume,
      error_type: 'Error',
    }),
    handlerNonRetryable: await sample(registry, 'messaging_process_duration_seconds_count', {
      ...consume,
      error_type: 'NonRetryableError',
    }),
    handlerDoomed: await sample(registry, 'messaging_process_duration_seconds_count', {
      ...consume,
      error_type: 'DoomedError',
    }),
    inFlight: await sample(registry, 'wharf_handler_in_flight', consume),
    endToEnd: await sample(registry, 'wharf_end_to_end_latency_seconds_count', consume),
  };
}

/** What {@link expectedFigures} must return after {@link runWorkload}. */
export const FIGURES = {
  sent: 13,
  publishCalls: 10,
  consumed: 18,
  retried: 5,
  retriedDoomed: 1,
  deadNonRetryable: 2,
  deadExhausted: 1,
  handlerCalls: 18,
  handlerOk: 10,
  handlerError: 4,
  handlerNonRetryable: 2,
  handlerDoomed: 2,
  inFlight: 0,
  endToEnd: 18,
};
