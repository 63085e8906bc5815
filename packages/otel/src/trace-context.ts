import { createTraceState, INVALID_SPANID, INVALID_TRACEID, type SpanContext, TraceFlags } from '@opentelemetry/api';

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const VERSION_00 = /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/;

/**
 * The span context a CloudEvent's `traceparent`/`tracestate` carry (W3C Trace Context), or
 * undefined when it has none or a malformed one. Written here rather than through the global
 * propagator: the CloudEvents tracing extension is W3C format whatever propagator the
 * application configured for HTTP (B3, Jaeger…).
 */
export function parseTraceContext(traceparent: unknown, tracestate: unknown): SpanContext | undefined {
  if (typeof traceparent !== 'string') return undefined;
  let context: SpanContext | undefined;
  // What Wharf writes (version 00, sampled or not) is checked without capture groups and sliced:
  // this runs for every event handled.
  if (traceparent.length === 55 && VERSION_00.test(traceparent)) {
    context = {
      traceId: traceparent.slice(3, 35),
      spanId: traceparent.slice(36, 52),
      traceFlags: traceparent.charCodeAt(54) === 49 ? TraceFlags.SAMPLED : TraceFlags.NONE,
      isRemote: true,
    };
  } else {
    const match = TRACEPARENT.exec(traceparent.trim());
    if (match === null) return undefined;
    const [, version, traceId = '', spanId = '', flags = '00', rest] = match;
    // Version ff is invalid; version 00 has no trailing fields.
    if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
    context = { traceId, spanId, traceFlags: Number.parseInt(flags, 16) & TraceFlags.SAMPLED, isRemote: true };
  }
  // The patterns checked the hex digits already; what `trace.isSpanContextValid` adds is the all-zero ids.
  if (context.traceId === INVALID_TRACEID || context.spanId === INVALID_SPANID) return undefined;
  if (typeof tracestate === 'string' && tracestate !== '') {
    return { ...context, traceState: createTraceState(tracestate) };
  }
  return context;
}

/** `traceparent` and `tracestate` for a span context. */
export function formatTraceContext(context: SpanContext): { traceparent: string; tracestate: string | undefined } {
  const flags = (context.traceFlags & TraceFlags.SAMPLED) === 0 ? '00' : '01';
  const state = context.traceState?.serialize();
  return {
    traceparent: `00-${context.traceId}-${context.spanId}-${flags}`,
    tracestate: state === undefined || state === '' ? undefined : state,
  };
}
