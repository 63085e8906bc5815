import type { Instrumentation } from '@wharf/core';

/** What one observed bench round recorded, to show the instrumentation really ran. */
export interface ObservedCounts {
  /** Spans the SDK ended (send + process per event, at least). */
  readonly spans: number;
  /** `messaging_client_sent_messages_total` summed over its series. */
  readonly sent: number;
  /** `messaging_client_consumed_messages_total` summed over its series. */
  readonly consumed: number;
}

/** Metrics and tracing for one bench round, as an application would run them in production. */
export interface Observation {
  readonly instrumentation: Instrumentation[];
  /** Flushes and shuts the SDK down; resolves with what was recorded. */
  finish(): Promise<ObservedCounts>;
}

/**
 * `wharf bench --observe`: @wharf/prometheus on a registry of its own and @wharf/otel on the
 * OpenTelemetry SDK (AsyncLocalStorage context manager, always-on sampling, a batch span processor
 * and an exporter that drops the spans: the SDK's cost without a collector's). Loaded only when
 * asked for, so a plain bench pays nothing for these modules.
 */
export async function startObservation(): Promise<Observation> {
  const [{ context, trace }, { AsyncLocalStorageContextManager }, sdk, { createPrometheusMetrics }, { createTracing }] =
    await Promise.all([
      import('@opentelemetry/api'),
      import('@opentelemetry/context-async-hooks'),
      import('@opentelemetry/sdk-trace-base'),
      import('@wharf/prometheus'),
      import('@wharf/otel'),
    ]);
  let spans = 0;
  const noopExporter: import('@opentelemetry/sdk-trace-base').SpanExporter = {
    export: (_spans, done) => done({ code: 0 }),
    shutdown: async () => {},
  };
  const counter: import('@opentelemetry/sdk-trace-base').SpanProcessor = {
    onStart: () => {},
    onEnd: () => {
      spans++;
    },
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  const provider = new sdk.BasicTracerProvider({
    spanProcessors: [new sdk.BatchSpanProcessor(noopExporter), counter],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  const metrics = createPrometheusMetrics();
  const tracing = createTracing({ tracerProvider: provider });
  return {
    instrumentation: [metrics, tracing],
    async finish() {
      await provider.forceFlush();
      await provider.shutdown();
      context.disable();
      trace.disable();
      const json = await metrics.registry.getMetricsAsJSON();
      const sum = (name: string): number =>
        json.find((m) => m.name === name)?.values.reduce((total, v) => total + v.value, 0) ?? 0;
      return {
        spans,
        sent: sum('messaging_client_sent_messages_total'),
        consumed: sum('messaging_client_consumed_messages_total'),
      };
    },
  };
}
