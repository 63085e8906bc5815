export { type CompareResult, runCompare, type VariantResult } from './compare.js';
export { CompareError, CompareUsageError } from './errors.js';
export { ARTICLE, formatTable } from './format.js';
export type { Machine } from './machine.js';
export type { RatePoint, Recovery, TimelinePoint } from './measure.js';
export { type CompareOptions, DEFAULT_RATES } from './options.js';
export { writeReport } from './report.js';
