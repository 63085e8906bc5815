import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { createBus, type Instrumentation, silentLogger } from '@wharf/core';
import { createPrometheusMetrics } from '../prometheus/src/index.js';
import { createTracing } from './src/index.js';

if (process.env.CM) context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const N = 20_000;
let run = 0;
async function once(make: () => Instrumentation[] | undefined): Promise<number> {
  const bus = createBus({ url: `memory://bench-${++run}`, logger: silentLogger, instrumentation: make() ?? [] });
  let seen = 0;
  let done: () => void = () => {};
  const all = new Promise<void>((r) => (done = r));
  await bus.subscribe('c', { group: 'g', concurrency: 64, dedup: false }, () => { if (++seen === N) done(); });
  const start = performance.now();
  for (let i = 0; i < N; i += 100) await bus.publishBatch('c', Array.from({ length: 100 }, () => ({ type: 'T', data: { i } })));
  await all;
  const ms = performance.now() - start;
  await bus.close();
  return N / (ms / 1000);
}
const variants: Record<string, () => Instrumentation[] | undefined> = {
  none: () => undefined,
  empty: () => [{ publish: () => ({ end() {} }), handle: () => ({ handled() {}, end() {} }), settled() {} }],
  prometheus: () => [createPrometheusMetrics()],
  otelNoop: () => [createTracing()],
  otel: () => [createTracing({ tracer: new BasicTracerProvider().getTracer('x') })],
  both: () => [createPrometheusMetrics(), createTracing({ tracer: new BasicTracerProvider().getTracer('x') })],
};
const results: Record<string, number[]> = {};
for (let round = 0; round < 5; round++) for (const [name, make] of Object.entries(variants).filter(([n]) => (process.env.ONLY ?? n).split(',').includes(n))) (results[name] ??= []).push(await once(make));
for (const [name, values] of Object.entries(results)) {
  const sorted = [...values].sort((a, b) => a - b);
  console.log(name, Math.round(sorted[2] ?? 0), 'events/s (median of 5)');
}
