import { context, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { ATTR, EVENT } from '@wharf/otel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServices } from '../src/index.js';
import { type OrderKind, planOrders } from '../src/scenario.js';
import { consumerGroups } from '../src/topology.js';
import { BROKERS, deleteNamespace, probeBroker, skipOrFail, testNamespace } from './brokers.js';

// The application's side: the SDK with an in-memory exporter, registered globally (what the
// example script does with a console exporter).
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

/** The channels an order of each kind passes through, in order (its events' `send` spans). */
const CHAINS: Record<Exclude<OrderKind, 'flaky'> | 'flaky', readonly string[]> = {
  ok: ['orders.placed', 'inventory.reserved', 'payments.completed', 'orders.confirmed', 'notifications.sent'],
  flaky: ['orders.placed', 'inventory.reserved', 'payments.completed', 'orders.confirmed', 'notifications.sent'],
  declined: [
    'orders.placed',
    'inventory.reserved',
    'payments.failed',
    'inventory.released',
    'orders.cancelled',
    'notifications.sent',
  ],
  'out-of-stock': ['orders.placed', 'inventory.rejected', 'orders.cancelled', 'notifications.sent'],
  poison: ['orders.placed', 'inventory.reserved'],
};
/** Payment's attempts at the charge: a flaky gateway succeeds on the third, a poison charge never (4 attempts). */
const CHARGE_ATTEMPTS: Partial<Record<OrderKind, number>> = { flaky: 3, poison: 4 };

/** `name [group]` of every span an order of `kind` must give, sorted. */
function expectedSpans(kind: OrderKind): string[] {
  const out = ['POST /orders'];
  for (const channel of CHAINS[kind]) {
    out.push(`send ${channel}`);
    for (const { group } of consumerGroups().filter((c) => c.channel === channel)) {
      const attempts = channel === 'inventory.reserved' && group === 'payment' ? (CHARGE_ATTEMPTS[kind] ?? 1) : 1;
      for (let i = 0; i < attempts; i++) out.push(`process ${channel} [${group}]`);
    }
  }
  return out.sort();
}

/** `name [group]`, with the run's channel namespace taken out of the name. */
const label = (span: ReadableSpan): string => {
  const group = span.attributes[ATTR.group];
  const name = span.name.replace(/ t[\w-]+\./, ' ');
  return group === undefined ? name : `${name} [${String(group)}]`;
};
/** The span's channel without the run's namespace. */
const destination = (span: ReadableSpan): string => String(span.attributes[ATTR.destination]).replace(/^t[\w-]+\./, '');
const parentId = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId;

beforeAll(() => {
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
});
afterAll(async () => {
  await provider.shutdown();
  trace.disable();
  context.disable();
});

const TARGETS = [{ name: 'memory', url: 'memory://saga-tracing' }, ...BROKERS];

describe.each(TARGETS)('one trace per order on $name, from POST /orders to its final event', ({ name, url }) => {
  it('gives each order one trace with correct parents and links, retries and dead letters included', {
    timeout: 180_000,
  }, async (ctx) => {
    if (name !== 'memory') {
      const unavailable = await probeBroker(url);
      if (unavailable !== undefined) return skipOrFail(ctx, `the saga's traces on ${name}`, unavailable);
    }
    const namespace = testNamespace('trace');
    const services = await startServices({ url, stateDir: false, tracing: true, namespace, brokerWaitMs: 15_000 });
    ctx.onTestFinished(async () => {
      await services.close();
      await deleteNamespace(url, namespace);
    });
    exporter.reset();
    const onBroker = (address: string) => `${namespace}.${address}`;
    // One order of each kind, none published twice (a duplicate adds a second `send` span).
    const plan = planOrders(60, 3, namespace);
    const kinds: OrderKind[] = ['ok', 'flaky', 'declined', 'out-of-stock', 'poison'];
    const orders = kinds.map((kind) => plan.find((p) => p.kind === kind && !p.publishTwice)!);
    for (const order of orders) {
      const response = await fetch(`${services.orderUrl}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(order.request),
      });
      expect(response.status).toBe(202);
    }

    // Each POST started a trace of its own; wait until every trace holds the spans its kind gives.
    const roots = () => exporter.getFinishedSpans().filter((s) => s.name === 'POST /orders');
    const traceOf = (traceId: string) => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const orderOf = (spans: ReadableSpan[]) =>
      orders.find((o) => spans.some((s) => s.attributes[ATTR.eventSubject] === o.orderId));
    const complete = () =>
      roots().length === orders.length &&
      roots().every((root) => {
        const spans = traceOf(root.spanContext().traceId);
        const order = orderOf(spans);
        return order !== undefined && spans.length >= expectedSpans(order.kind).length;
      });
    for (let i = 0; i < 1_200 && !complete(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setTimeout(resolve, 200)); // nothing more arrives

    const all = exporter.getFinishedSpans();
    const traceIds = new Set(all.map((s) => s.spanContext().traceId));
    expect(traceIds.size).toBe(orders.length);
    const byId = new Map(all.map((s) => [s.spanContext().spanId, s]));

    for (const order of orders) {
      // Every span about the order is in one trace, and that trace is about this order only.
      const about = all.filter((s) => s.attributes[ATTR.eventSubject] === order.orderId);
      const ids = new Set(about.map((s) => s.spanContext().traceId));
      expect(ids.size, order.kind).toBe(1);
      const spans = traceOf([...ids][0]!);
      expect(spans.map(label).sort(), order.kind).toEqual(expectedSpans(order.kind));
      for (const s of spans) {
        if (s.name !== 'POST /orders') expect(s.attributes[ATTR.eventSubject], s.name).toBe(order.orderId);
      }

      const [root, ...rest] = [
        spans.find((s) => s.name === 'POST /orders')!,
        ...spans.filter((s) => s.name !== 'POST /orders'),
      ];
      expect(root!.kind).toBe(SpanKind.SERVER);
      expect(parentId(root!)).toBeUndefined();
      for (const span of rest) {
        const parent = byId.get(parentId(span) ?? '');
        expect(parent, `${label(span)} has its parent in the trace`).toBeDefined();
        expect(parent!.spanContext().traceId).toBe(root!.spanContext().traceId);
        const channel = destination(span);
        if (span.name.startsWith('send ')) {
          expect(span.kind).toBe(SpanKind.PRODUCER);
          // OrderPlaced is sent by the request; every later event by the handler of its cause.
          if (channel === 'orders.placed') expect(parent).toBe(root);
          else {
            expect(parent!.name).toMatch(/^process /);
            expect(CHAINS[order.kind].indexOf(destination(parent!))).toBe(CHAINS[order.kind].indexOf(channel) - 1);
          }
        } else {
          // A process span links to the send of its event (every attempt to the same one) and is its child.
          expect(span.kind).toBe(SpanKind.CONSUMER);
          expect(span.links).toHaveLength(1);
          const sent = byId.get(span.links[0]!.context.spanId);
          expect(sent?.name).toBe(`send ${onBroker(channel)}`);
          expect(sent?.attributes[ATTR.messageId]).toBe(span.attributes[ATTR.messageId]);
          expect(parent).toBe(sent);
        }
      }

      // Retries and the dead letter are events on the charge's process spans.
      const charges = spans.filter((s) => label(s) === 'process inventory.reserved [payment]');
      const events = charges.flatMap((s) => s.events.map((e) => e.name));
      const charged = CHAINS[order.kind].includes('inventory.reserved');
      const attempts = charged ? (CHARGE_ATTEMPTS[order.kind] ?? 1) : 0;
      expect(events.filter((e) => e === EVENT.retry)).toHaveLength(Math.max(attempts - 1, 0));
      expect(events.filter((e) => e === EVENT.deadLetter)).toHaveLength(order.kind === 'poison' ? 1 : 0);
      expect(charges.map((s) => s.attributes[ATTR.attempt]).sort()).toEqual(
        Array.from({ length: attempts }, (_, i) => i + 1),
      );
    }
  });
});
