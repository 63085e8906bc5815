import { describe, expect, it } from 'vitest';
import { summarize } from '../src/summary.js';
import type { ScenarioReport } from '../src/workload/runner.js';

const run = (name: string, recoveryMs: number | undefined, duplicates: number, ok = true): ScenarioReport =>
  ({
    name,
    ok,
    events: 2000,
    faults: 1,
    lost: ok ? 0 : 3,
    duplicateEffects: 0,
    duplicates,
    recoveryMs,
  }) as ScenarioReport;

describe('summarize (wharf chaos --repeat)', () => {
  it('gives each scenario its median and max over the rounds, in first-seen order', () => {
    const summary = summarize([
      run('broker-kill', 900, 4),
      run('proxy-reset', 30, 0),
      run('broker-kill', 2_100, 10),
      run('proxy-reset', undefined, 2),
      run('broker-kill', 1_200, 6, false),
    ]);
    expect(summary).toEqual([
      {
        name: 'broker-kill',
        runs: 3,
        ok: false,
        events: 2000,
        faults: 3,
        lost: 3,
        duplicateEffects: 0,
        duplicates: { median: 6, max: 10 },
        recoveryMs: { median: 1_200, max: 2_100 },
      },
      {
        name: 'proxy-reset',
        runs: 2,
        ok: true,
        events: 2000,
        faults: 2,
        lost: 0,
        duplicateEffects: 0,
        // The lower middle of an even count; a run without a measured recovery does not count.
        duplicates: { median: 0, max: 2 },
        recoveryMs: { median: 30, max: 30 },
      },
    ]);
  });
});
