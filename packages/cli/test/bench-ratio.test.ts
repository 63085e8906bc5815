import { strict as assert } from 'node:assert';
import type { BenchResult } from '@wharf/core';
import { describe, it } from 'vitest';
import { pairedRatio } from '../src/commands/bench.js';

const run = (throughput: number): BenchResult => ({
  events: 1,
  seconds: 1,
  throughput,
  p50Ms: 1,
  p99Ms: 1,
  cpuUsPerEvent: 1,
});

describe('the bench ratio', () => {
  it("is the median of the rounds' own ratios, which a drift shared by both sides does not move", () => {
    // The broker slows down over the run; each round's bus is 0.9 of its raw side.
    const raw = [40_000, 30_000, 20_000].map(run);
    const bus = [36_000, 27_000, 18_000].map(run);
    assert.equal(pairedRatio(bus, raw), 0.9);
    // Two rounds at 0.9 and one slow bus round: the rounds say 0.9; the medians taken apart (24k over 30k) 0.8.
    assert.equal(pairedRatio([18_000, 36_000, 24_000].map(run), [20_000, 40_000, 30_000].map(run)), 0.9);
  });

  it('averages the middle two of an even number of rounds', () => {
    assert.equal(pairedRatio([8, 9, 10, 10].map(run), [10, 10, 10, 10].map(run)), 0.95);
  });
});
