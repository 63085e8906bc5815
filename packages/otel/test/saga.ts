import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { Bus } from '@wharf/core';
import { expect } from 'vitest';
import { ATTR, EVENT } from '../src/index.js';
import { linksOf, parentOf, spanId, traceId } from './harness.js';

/** The saga's retry policy (its retry tier queues are deleted after a broker run). */
export const SAGA_RETRY = { maxAttempts: 3, delays: [20] };

/**
 * A mini saga: `OrderPlaced` on orders → payment publishes `PaymentRequested` on payments (its
 * first attempt fails, so it is retried) → billing publishes `PaymentSettled` on outcomes → done.
 * Each step publishes through `ctx.publish`. Resolves once every order reached the end.
 */
export async function runMiniSaga(bus: Bus, prefix: string, orders: readonly string[]): Promise<void> {
  const done = new Set<string>();
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const retry = SAGA_RETRY;
  await bus.subscribe(`${prefix}.outcomes`, { group: 'notify', retry }, (event) => {
    done.add((event.data as { orderId: string }).orderId);
    if (done.size === orders.length) finish();
  });
  await bus.subscribe(`${prefix}.payments`, { group: 'billing', retry }, async (event, ctx) => {
    if (ctx.attempt === 1) throw new Error('gateway flaked');
    await ctx.publish(`${prefix}.outcomes`, { type: 'PaymentSettled', data: event.data });
  });
  await bus.subscribe(`${prefix}.orders`, { group: 'payment', retry }, async (event, ctx) => {
    await ctx.publish(`${prefix}.payments`, { type: 'PaymentRequested', data: event.data });
  });
  for (const orderId of orders) await bus.publish(`${prefix}.orders`, { type: 'OrderPlaced', data: { orderId } });
  const timer = setTimeout(finish, 60_000);
  await finished;
  clearTimeout(timer);
  if (done.size !== orders.length) throw new Error(`only ${done.size} of ${orders.length} orders finished`);
}

export const SAGA_CHANNELS = (prefix: string): Array<[string, string]> => [
  [`${prefix}.orders`, 'payment'],
  [`${prefix}.payments`, 'billing'],
  [`${prefix}.outcomes`, 'notify'],
];

/**
 * Checks the spans of {@link runMiniSaga}: one trace per order, each with its seven spans, every
 * process span linked to the send span that created its event, every `ctx.publish` a child of the
 * process span it was made in.
 */
export function expectSagaTraces(
  all: readonly ReadableSpan[],
  prefix: string,
  orders: number,
  options: { ambientIsSend: boolean },
): void {
  const mine = all.filter((span) => String(span.attributes[ATTR.destination]).startsWith(`${prefix}.`));
  const traces = new Map<string, typeof mine>();
  for (const span of mine) traces.set(traceId(span), [...(traces.get(traceId(span)) ?? []), span]);
  expect(traces.size).toBe(orders);
  for (const spans of traces.values()) {
    expect(spans.map((span) => span.name).sort()).toEqual(
      [
        `send ${prefix}.orders`,
        `process ${prefix}.orders`,
        `send ${prefix}.payments`,
        `process ${prefix}.payments`,
        `process ${prefix}.payments`,
        `send ${prefix}.outcomes`,
        `process ${prefix}.outcomes`,
      ].sort(),
    );
    const byId = new Map(spans.map((span) => [spanId(span), span]));
    const sendOf = (channel: string) => spans.find((span) => span.name === `send ${prefix}.${channel}`);
    const processes = (channel: string) => spans.filter((span) => span.name === `process ${prefix}.${channel}`);
    expect(sendOf('orders')?.parentSpanContext).toBeUndefined();
    for (const channel of ['orders', 'payments', 'outcomes']) {
      for (const process of processes(channel)) {
        expect(linksOf(process)).toEqual([spanId(sendOf(channel))]);
        if (options.ambientIsSend) expect(parentOf(process)).toBe(spanId(sendOf(channel)));
        else expect(byId.has(parentOf(process) as string), `${process.name} has its parent in the trace`).toBe(true);
      }
    }
    // ctx.publish continues the trace from inside the handler: children of the process spans.
    expect(parentOf(sendOf('payments'))).toBe(spanId(processes('orders')[0]));
    const settled = processes('payments').find((span) => span.attributes[ATTR.outcome] === 'acked');
    expect(parentOf(sendOf('outcomes'))).toBe(spanId(settled));
    const retried = processes('payments').find((span) => span.attributes[ATTR.outcome] === 'retried');
    expect(retried?.events.map((event) => event.name)).toEqual([expect.any(String), EVENT.retry]);
  }
}
