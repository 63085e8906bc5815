import { context, SpanKind } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { createTracing, type OpenTelemetryTracing } from '../src/index.js';

/** An SDK tracer whose finished spans are kept in memory, and the instrumentation using it. */
export function tracingHarness(): { tracing: OpenTelemetryTracing; spans: () => ReadableSpan[] } {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracing = createTracing({ tracer: provider.getTracer('wharf-test') });
  return { tracing, spans: () => exporter.getFinishedSpans() };
}

/** Registers the AsyncLocalStorage context manager, as the Node SDK does. */
export function enableContextManager(): void {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
}

export const kindName = (span: ReadableSpan): string => SpanKind[span.kind];
export const spanId = (span: ReadableSpan | undefined): string | undefined => span?.spanContext().spanId;
export const traceId = (span: ReadableSpan): string => span.spanContext().traceId;
export const parentOf = (span: ReadableSpan | undefined): string | undefined => span?.parentSpanContext?.spanId;
export const linksOf = (span: ReadableSpan | undefined): string[] =>
  (span?.links ?? []).map((link) => link.context.spanId);

/** Waits until `count` spans named like `name` have finished. */
export async function spansNamed(
  spans: () => ReadableSpan[],
  name: RegExp,
  count: number,
  timeoutMs = 10_000,
): Promise<ReadableSpan[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = spans().filter((span) => name.test(span.name));
    if (found.length >= count) return found;
    if (Date.now() > deadline) throw new Error(`only ${found.length} of ${count} spans named ${name} finished`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
