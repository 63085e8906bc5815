import { type Tracer, type TracerProvider, trace } from '@opentelemetry/api';

/** Options of {@link createTracing}. */
export interface TracingOptions {
  /** The tracer to make spans with. Default: from `tracerProvider`. */
  tracer?: Tracer;
  /** Where the tracer comes from when `tracer` is not given. Default: the global provider. */
  tracerProvider?: TracerProvider;
}

export const INSTRUMENTATION_NAME = '@wharf/otel';
export const INSTRUMENTATION_VERSION = '0.1.0';

export function resolveTracer(options: TracingOptions): Tracer {
  if (options.tracer !== undefined) return options.tracer;
  const provider = options.tracerProvider ?? trace.getTracerProvider();
  return provider.getTracer(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION);
}
