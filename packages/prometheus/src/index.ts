export { busBacklog, type ExportedGroup } from './bus-backlog.js';
export { createPrometheusMetrics, PrometheusMetrics } from './instrumentation.js';
export { errorType, OTHER } from './labels.js';
export { DURATION_BUCKETS, END_TO_END_BUCKETS } from './metrics.js';
export type { BacklogEntry, BacklogSource, PrometheusOptions } from './options.js';
