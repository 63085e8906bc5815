import { describe, expect, it } from 'vitest';
import { withTimeout } from '../src/index.js';

describe('withTimeout', () => {
  it('settles like the work when it settles in time', async () => {
    await expect(withTimeout(Promise.resolve(7), 1_000, () => new Error('late'))).resolves.toBe(7);
    await expect(withTimeout(Promise.reject(new Error('own')), 1_000, () => new Error('late'))).rejects.toThrow('own');
  });

  it("rejects with onTimeout's error when the work is late, and the work's own later rejection is handled", async () => {
    let fail: (error: Error) => void = () => {};
    const work = new Promise<number>((_, reject) => {
      fail = reject;
    });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      let called = 0;
      await expect(
        withTimeout(work, 20, () => {
          called++;
          return new Error('late');
        }),
      ).rejects.toThrow('late');
      expect(called).toBe(1);
      fail(new Error('after the timeout'));
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
