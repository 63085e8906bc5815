import { describe, expect, it } from 'vitest';
import { leastSquaresSlope, parseDuration } from '../src/commands/soak.js';

describe('soak helpers', () => {
  it('parses durations with a unit and refuses the rest', () => {
    expect(parseDuration('10m', 'soak')).toBe(600_000);
    expect(parseDuration('180s', 'soak')).toBe(180_000);
    expect(parseDuration('500ms', 'soak')).toBe(500);
    expect(parseDuration('1h', 'soak')).toBe(3_600_000);
    expect(() => parseDuration('10', 'soak')).toThrow('--soak must be a duration');
    expect(() => parseDuration('0s', 'soak')).toThrow('--soak must be a duration');
    expect(() => parseDuration('-1m', 'soak')).toThrow('--soak must be a duration');
  });

  it('fits the least-squares slope', () => {
    expect(leastSquaresSlope([])).toBe(0);
    expect(leastSquaresSlope([[1, 5]])).toBe(0);
    expect(
      leastSquaresSlope([
        [0, 1],
        [1, 3],
        [2, 5],
      ]),
    ).toBeCloseTo(2, 10);
    // Noise around a flat line: the residuals cancel.
    expect(
      leastSquaresSlope([
        [0, 10],
        [1, 12],
        [2, 8],
        [3, 10],
      ]),
    ).toBeCloseTo(-0.4, 10);
  });
});
