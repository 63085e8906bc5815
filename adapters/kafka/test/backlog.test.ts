import { describe, expect, it } from 'vitest';
import { lag } from '../src/backlog.js';

const end = (partition: number, low: number, high: number) => ({ partition, low: String(low), high: String(high) });
const at = (partition: number, offset: number) => ({ partition, offset: String(offset), metadata: null });

describe('kafka backlog lag', () => {
  it('sums high watermark minus committed offset over the partitions', () => {
    expect(lag([end(0, 0, 10), end(1, 0, 7), end(2, 0, 0)], [at(0, 4), at(1, 7), at(2, 0)], 'end')).toBe(6);
  });

  it('counts from the low watermark when retention deleted past the committed offset', () => {
    expect(lag([end(0, 50, 60)], [at(0, 10)], 'end')).toBe(10);
  });

  it('counts an uncommitted partition as empty on the channel topic and from its start on a private topic', () => {
    expect(lag([end(0, 5, 9)], [at(0, -1)], 'end')).toBe(0);
    expect(lag([end(0, 5, 9)], [], 'start')).toBe(4);
  });

  it('goes past 2^53 without losing the offsets (bigint arithmetic)', () => {
    const big = 2 ** 60;
    expect(lag([{ partition: 0, low: '0', high: (BigInt(big) + 3n).toString() }], [at(0, 0)], 'end')).toBeGreaterThan(
      0,
    );
    expect(
      lag(
        [{ partition: 0, low: '0', high: (BigInt(big) + 3n).toString() }],
        [{ partition: 0, offset: String(BigInt(big)), metadata: null }],
        'end',
      ),
    ).toBe(3);
  });
});
