export { BENCH_GROUP, benchBus, median, roundAll, type Summary } from './commands/bench.js';
export { main, usage } from './main.js';
export type { Output } from './output.js';
