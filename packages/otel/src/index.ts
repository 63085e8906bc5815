export { ATTR, EVENT } from './attributes.js';
export type { TracingOptions } from './options.js';
export { formatTraceContext, parseTraceContext } from './trace-context.js';
export { createTracing, OpenTelemetryTracing } from './tracing.js';
