import { createTraceState, type SpanContext, TraceFlags, trace } from '@opentelemetry/api';

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * The span context a CloudEvent's `traceparent`/`tracestate` carry (W3C Trace Context), or
 * undefined when it has none or a malformed one. Written here rather than through the global
 * propagator: the CloudEvents tracing extension is W3C format whatever propagator the
 * application configured for HTTP (B3, Jaeger…).
 */
export function parseTraceContext(traceparent: unknown, tracestate: unknown): SpanContext | undefined {
  if (typeof traceparent !== 'string') return undefined;
  const match = TRACEPARENT.exec(traceparent.trim());
  if (match === null) return undefined;
  const [, version, traceId = '', spanId = '', flags = '00', rest] = match;
  // Version ff is invalid; version 00 has no trailing fields.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  const context: SpanContext = {
    traceId,
    spanId,
    traceFlags: Number.parseInt(flags, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  if (!trace.isSpanContextValid(context)) return undefined;
  if (typeof tracestate === 'string' && tracestate !== '') {
    return { ...context, traceState: createTraceState(tracestate) };
  }
  return context;
}

/** `traceparent` and `tracestate` for a span context. */
export function formatTraceContext(context: SpanContext): { traceparent: string; tracestate: string | undefined } {
  const flags = (context.traceFlags & TraceFlags.SAMPLED).toString(16).padStart(2, '0');
  const state = context.traceState?.serialize();
  return {
    traceparent: `00-${context.traceId}-${context.spanId}-${flags}`,
    tracestate: state === undefined || state === '' ? undefined : state,
  };
}
