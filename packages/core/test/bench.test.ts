import { describe, expect, it } from 'vitest';
import { payloadAge, stampPayload, startMeasurement, windowed } from '../src/index.js';

describe('bench helpers', () => {
  it('keeps at most `window` sends unresolved and waits for all of them', async () => {
    let running = 0;
    let peak = 0;
    let done = 0;
    await windowed(50, 4, async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 1));
      running--;
      done++;
    });
    expect(peak).toBe(4);
    expect(done).toBe(50);
  });

  it('rejects with the first failure', async () => {
    await expect(
      windowed(10, 3, async (i) => {
        if (i === 4) throw new Error('broker said no');
      }),
    ).rejects.toThrow('broker said no');
  });

  it('measures latency from a stamped payload', async () => {
    const measure = startMeasurement(2);
    const payload = stampPayload(1024);
    expect(payload.length).toBe(1024);
    await new Promise((r) => setTimeout(r, 20));
    measure.record(payloadAge(payload));
    measure.record(payloadAge(payload));
    const result = measure.finish();
    expect(result.events).toBe(2);
    expect(result.p50Ms).toBeGreaterThanOrEqual(19);
    expect(result.p99Ms).toBeLessThan(5_000);
  });
});
