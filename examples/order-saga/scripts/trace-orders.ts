/**
 * The order saga with OpenTelemetry tracing: places a few orders through `POST /orders` and prints
 * each order's trace as a tree, from the request to its final event.
 *
 *   npx tsx examples/order-saga/scripts/trace-orders.ts            # memory://
 *   WHARF_BROKER=amqp://guest:guest@127.0.0.1:5672 npx tsx examples/order-saga/scripts/trace-orders.ts
 *
 * In production the SDK gets an OTLP exporter (Jaeger, Tempo…) instead of the in-memory one used
 * here to print the trees; nothing else changes.
 */
import { randomBytes } from 'node:crypto';
import { context, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { startServices } from '../src/index.js';
import { planOrders } from '../src/scenario.js';
import { deleteNamespace } from '../test/brokers.js';

// 1. The application registers the SDK before the services start.
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
trace.setGlobalTracerProvider(provider);
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

// 2. The services, with tracing on (spans on every bus and on POST /orders). A namespace of its own
//    keeps this run's channels apart on a shared broker.
const url = process.env.WHARF_BROKER || 'memory://trace-orders';
const namespace = `trace-${randomBytes(3).toString('hex')}`;
const services = await startServices({ url, stateDir: false, tracing: true, namespace, brokerWaitMs: 15_000 });

// 3. A confirmed order, one whose payment gateway fails twice, and one whose charge is dead-lettered.
const plan = planOrders(60, 3, namespace);
const orders = (['ok', 'flaky', 'poison'] as const).map(
  (kind) => plan.find((p) => p.kind === kind && !p.publishTwice)!,
);
for (const order of orders) {
  const response = await fetch(`${services.orderUrl}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(order.request),
  });
  if (response.status !== 202) throw new Error(`POST /orders answered ${response.status}: ${await response.text()}`);
}
// Retries are held 100 + 200 + 300 ms; wait until no span has ended for a second.
let seen = -1;
while (exporter.getFinishedSpans().length !== seen) {
  seen = exporter.getFinishedSpans().length;
  await new Promise((resolve) => setTimeout(resolve, 1_000));
}
await services.close();

// 4. One tree per trace.
const spans = exporter.getFinishedSpans();
const started = (s: ReadableSpan) => s.startTime[0] * 1e9 + s.startTime[1];
const children = new Map<string | undefined, ReadableSpan[]>();
for (const span of [...spans].sort((a, b) => started(a) - started(b))) {
  const parent = span.parentSpanContext?.spanId;
  children.set(parent, [...(children.get(parent) ?? []), span]);
}
const print = (span: ReadableSpan, depth: number): void => {
  const group = span.attributes['messaging.consumer.group.name'];
  const attempt = span.attributes['wharf.attempt'];
  const events = span.events.map((e) => e.name).join(', ');
  console.log(
    `${'  '.repeat(depth)}${span.name}${group ? ` [${group}]` : ''} (${SpanKind[span.kind]})` +
      `${attempt && Number(attempt) > 1 ? ` attempt ${attempt}` : ''}${events ? ` — ${events}` : ''}`,
  );
  for (const child of children.get(span.spanContext().spanId) ?? []) print(child, depth + 1);
};
for (const root of children.get(undefined) ?? []) {
  console.log(`\ntrace ${root.spanContext().traceId}`);
  print(root, 1);
}
const traces = new Set(spans.map((s) => s.spanContext().traceId)).size;
console.log(
  `\n${orders.length} orders, ${traces} traces, ${spans.length} spans on ${services.services.length} services`,
);
await provider.shutdown();
// Delete what the run declared on a real broker (memory:// forgets it on exit).
await deleteNamespace(url, namespace);
