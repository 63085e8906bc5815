export { ackBeforeHandler } from './ack-early.js';
export { ConsumerProcess } from './consumer-process.js';
export { CLIENT_TIMEOUTS, type RunOptions, runScenario, type ScenarioReport } from './runner.js';
export { type FaultContext, SCENARIO_NAMES, SCENARIOS, type Scenario } from './scenarios.js';
