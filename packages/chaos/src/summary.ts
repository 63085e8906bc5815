import type { ScenarioReport } from './workload/runner.js';

/** Median and maximum of one figure over a scenario's runs (null when no run measured it). */
export interface Spread {
  readonly median: number | null;
  readonly max: number | null;
}

/** One scenario over every round of a `--repeat` run: the README table's row. */
export interface ScenarioSummary {
  readonly name: string;
  readonly runs: number;
  /** Every run passed (nothing lost, unexpected, duplicated in effect, stalled or pending). */
  readonly ok: boolean;
  readonly events: number;
  /** Faults injected, summed over the runs. */
  readonly faults: number;
  readonly lost: number;
  readonly duplicateEffects: number;
  readonly duplicates: Spread;
  readonly recoveryMs: Spread;
}

function spread(values: readonly (number | undefined)[]): Spread {
  const measured = values.filter((v): v is number => v !== undefined).sort((a, b) => a - b);
  if (measured.length === 0) return { median: null, max: null };
  const mid = measured.length >> 1;
  // The lower middle of an even count: a median that is one of the measured runs.
  const median = measured[measured.length % 2 === 1 ? mid : mid - 1] as number;
  return { median, max: measured[measured.length - 1] as number };
}

/** Groups the reports of repeated rounds by scenario, in first-seen order. */
export function summarize(reports: readonly ScenarioReport[]): ScenarioSummary[] {
  const byName = new Map<string, ScenarioReport[]>();
  for (const report of reports) byName.set(report.name, [...(byName.get(report.name) ?? []), report]);
  return [...byName].map(([name, runs]) => ({
    name,
    runs: runs.length,
    ok: runs.every((r) => r.ok),
    events: runs[0]?.events ?? 0,
    faults: runs.reduce((n, r) => n + r.faults, 0),
    lost: runs.reduce((n, r) => n + r.lost, 0),
    duplicateEffects: runs.reduce((n, r) => n + r.duplicateEffects, 0),
    duplicates: spread(runs.map((r) => r.duplicates)),
    recoveryMs: spread(runs.map((r) => r.recoveryMs)),
  }));
}
