import { describe, expect, it } from 'vitest';
import { backlogRate } from '../src/api.js';

describe('backlogRate', () => {
  it('is absent on the first reading and when no time passed', () => {
    expect(backlogRate(undefined, { at: 1_000, waiting: 5 })).toBeUndefined();
    expect(backlogRate({ at: 1_000, waiting: 5 }, { at: 1_000, waiting: 9 })).toBeUndefined();
  });

  it('is negative while the group drains and positive while it falls behind, per second', () => {
    expect(backlogRate({ at: 0, waiting: 500 }, { at: 2_000, waiting: 300 })).toBe(-100);
    expect(backlogRate({ at: 0, waiting: 0 }, { at: 4_000, waiting: 10 })).toBe(2.5);
    expect(backlogRate({ at: 0, waiting: 7 }, { at: 3_000, waiting: 7 })).toBe(0);
    expect(backlogRate({ at: 0, waiting: 0 }, { at: 3_000, waiting: 1 })).toBe(0.3);
  });
});
