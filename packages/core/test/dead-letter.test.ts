import { describe, expect, it } from 'vitest';
import { deadLetterHeaders, deadLetterInfo, NonRetryableError, oneLine, parseDeadLetterHeaders } from '../src/index.js';

describe('dead-letter metadata', () => {
  it('round-trips through headers', () => {
    const info = deadLetterInfo({
      reason: 'non-retryable',
      error: new NonRetryableError('bad card'),
      channel: 'payments',
      group: 'billing',
      attempts: 1,
      now: new Date('2026-01-02T03:04:05.000Z'),
    });
    expect(info).toMatchObject({ errorType: 'NonRetryableError', firstFailureAt: '2026-01-02T03:04:05.000Z' });
    expect(parseDeadLetterHeaders(deadLetterHeaders(info))).toEqual(info);
    // The stack's frames, on one line that a NATS header can hold.
    expect(info.errorStack).toMatch(/^at .*dead-letter\.test\.ts/);
    expect(info.errorStack).not.toMatch(/[\r\n]/);
    expect(deadLetterHeaders(info)['wharf-dl-error-stack']).toBe(info.errorStack);
  });

  it('has no stack for a thrown value that is not an Error', () => {
    const info = deadLetterInfo({ reason: 'non-retryable', error: 'nope', channel: 'c', group: 'g', attempts: 1 });
    expect(info.errorStack).toBeUndefined();
    expect(Object.keys(deadLetterHeaders(info))).not.toContain('wharf-dl-error-stack');
    expect(parseDeadLetterHeaders(deadLetterHeaders(info))).toEqual(info);
  });

  it('keeps error messages on one bounded line, safe for NATS headers', () => {
    const line = oneLine(`first\r\nsecond\u0000${'x'.repeat(5_000)}`);
    expect(line).not.toMatch(/[\r\n\u0000]/);
    expect(line.length).toBe(1024);
    expect(line.startsWith('first second')).toBe(true);
  });

  it('returns undefined for headers without a known reason', () => {
    expect(parseDeadLetterHeaders({ 'wharf-dl-reason': 'whatever' })).toBeUndefined();
  });
});
