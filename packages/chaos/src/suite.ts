import { type BrokerKind, startBroker } from './brokers/index.js';
import { freePort } from './brokers/ports.js';
import { ChaosOptionsError } from './errors.js';
import { startProxy } from './proxy/proxy.js';
import { type ScenarioSummary, summarize } from './summary.js';
import { type RunOptions, runScenario, type ScenarioReport } from './workload/runner.js';
import { SCENARIOS, type Scenario } from './workload/scenarios.js';

/** Options of {@link runChaos}. */
export interface ChaosOptions extends Omit<RunOptions, 'broker' | 'proxy'> {
  readonly kind: BrokerKind;
  /** Scenario names, or `all`. */
  readonly scenarios: readonly string[] | 'all';
  /** Rounds: every scenario runs this many times (default 1), on the same private broker. */
  readonly repeat?: number;
}

/** What `wharf chaos --json` prints. */
export interface ChaosReport {
  readonly broker: BrokerKind;
  /** Every run, round after round (each round runs the scenarios in order). */
  readonly scenarios: readonly ScenarioReport[];
  /** Per scenario over the rounds: recovery and duplicates as median and max. */
  readonly summary: readonly ScenarioSummary[];
  readonly ok: boolean;
}

/** Resolves scenario names (or `all`) to scenarios; unknown names are a typed error. */
export function selectScenarios(names: readonly string[] | 'all'): Scenario[] {
  if (names === 'all') return [...SCENARIOS];
  return names.map((name) => {
    const scenario = SCENARIOS.find((candidate) => candidate.name === name);
    if (scenario === undefined)
      throw new ChaosOptionsError(
        `unknown scenario "${name}": use one of ${SCENARIOS.map((s) => s.name).join(', ')} or all`,
      );
    return scenario;
  });
}

/**
 * Starts a private broker of `kind` behind a fault proxy, runs the scenarios one after another,
 * and destroys broker and proxy at the end (also when a run fails).
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const scenarios = selectScenarios(options.scenarios);
  const repeat = options.repeat ?? 1;
  if (!Number.isInteger(repeat) || repeat < 1)
    throw new ChaosOptionsError(`repeat must be a positive integer, got ${repeat}`);
  const log = options.log ?? (() => undefined);
  const proxyPort = await freePort();
  log(`starting a private ${options.kind} broker`);
  const broker = await startBroker(options.kind, { proxyPort });
  const proxy = await startProxy({ target: broker.proxyTarget, port: proxyPort, seed: options.seed ?? 1 });
  const reports: ScenarioReport[] = [];
  try {
    for (let round = 1; round <= repeat; round++) {
      for (const scenario of scenarios) {
        // Each round its own seed: other fault timings and jitter, not the same run again.
        const seed = (options.seed ?? 1) + round - 1;
        const report = await runScenario(scenario, { ...options, seed, broker, proxy });
        log(
          `${options.kind} ${report.name}${repeat > 1 ? ` (round ${round}/${repeat})` : ''}: ${report.ok ? 'ok' : 'FAILED'} — confirmed ${report.confirmed}/${report.published}, lost ${report.lost}, unexpected ${report.unexpected}, duplicates ${report.duplicates}, duplicate effects ${report.duplicateEffects}, recovered ${report.recovered}, pending ${report.pendingAtDeadline}, stalled ${report.stalled}, recovery ${report.recoveryMs ?? '-'} ms${report.error ? `, error ${report.error}` : ''}`,
        );
        reports.push(report);
      }
    }
  } finally {
    await proxy.close();
    await broker.destroy();
  }
  return {
    broker: options.kind,
    scenarios: reports,
    summary: summarize(reports),
    ok: reports.every((report) => report.ok),
  };
}
