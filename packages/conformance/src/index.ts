export type { Received } from './assertions.js';
export {
  assertExactlyOnce,
  assertNoneLost,
  assertNoUnexpected,
  assertPerKeyOrder,
  Recorder,
  sleep,
  untilAccepted,
} from './assertions.js';
export { brokersRequired, probeBroker } from './broker.js';
export type { ConformanceCase } from './cases/types.js';
export { CaseContext } from './harness.js';
export type { ConformanceOptions, ForeignMessage } from './options.js';
export { CASE_IDS, CASES, runConformance } from './suite.js';
export {
  deleteTestTopology,
  type ReadmeExample,
  readmeExample,
  requireBroker,
  TEST_ADAPTER_OPTIONS,
  TEST_BROKERS,
} from './test-support.js';
