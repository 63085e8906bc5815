import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_RETRY_POLICY, normalizeRetryPolicy, retryDelay, retryTiers } from '../src/index.js';

describe('retry policy', () => {
  it('defaults to 3 attempts, 5 s then 30 s', () => {
    expect(normalizeRetryPolicy(undefined)).toEqual({ maxAttempts: 3, delays: [5_000, 30_000], jitter: 0 });
    expect(normalizeRetryPolicy({})).toEqual(DEFAULT_RETRY_POLICY);
  });

  it('repeats the last explicit delay for further attempts', () => {
    expect(normalizeRetryPolicy({ maxAttempts: 5, delays: [100, 200] }).delays).toEqual([100, 200, 200, 200]);
  });

  it('expands exponential backoff and caps it', () => {
    const policy = normalizeRetryPolicy({ maxAttempts: 6, backoff: { initialMs: 100, multiplier: 3, maxMs: 2_000 } });
    expect(policy.delays).toEqual([100, 300, 900, 2_000, 2_000]);
    expect(retryTiers(policy)).toEqual([100, 300, 900, 2_000]);
  });

  it('has no delays when there is a single attempt', () => {
    expect(normalizeRetryPolicy({ maxAttempts: 1 }).delays).toEqual([]);
  });

  it('applies jitter within its bounds', () => {
    const policy = normalizeRetryPolicy({ maxAttempts: 2, delays: [1_000], jitter: 0.2 });
    expect(retryDelay(policy, 1, () => 0)).toBe(800);
    expect(retryDelay(policy, 1, () => 0.5)).toBe(1_000);
    expect(retryDelay(policy, 1, () => 0.999999)).toBe(1_200);
  });

  it.each([
    [{ maxAttempts: 0 }, /maxAttempts must be an integer from 1/],
    [{ maxAttempts: 2.5 }, /maxAttempts/],
    [{ delays: [-1] }, /retry.delays\[0\] must be a number of milliseconds/],
    [{ delays: [Number.NaN] }, /retry.delays\[0\]/],
    [{ delays: [] }, /non-empty array/],
    [{ delays: [1], backoff: { initialMs: 1 } }, /not both/],
    [{ backoff: { initialMs: 10, multiplier: 0.5 } }, /multiplier must be a number >= 1/],
    [{ jitter: 2 }, /jitter must be a fraction/],
  ])('rejects %j', (policy, message) => {
    expect(() => normalizeRetryPolicy(policy)).toThrow(ConfigError);
    expect(() => normalizeRetryPolicy(policy)).toThrow(message);
  });
});
