import { describe, expect, it } from 'vitest';
import { BackpressureError, PublishTimeoutError } from '../src/errors.js';
import { PublishGate } from '../src/publish-gate.js';

const never = (): Promise<void> => new Promise(() => {});

describe('PublishGate', () => {
  it('passes a confirmed publish and its error through', async () => {
    const gate = new PublishGate('core', 1000, 10, 'wait');
    await expect(gate.run(1, async () => {})).resolves.toBeUndefined();
    await expect(gate.run(1, async () => Promise.reject(new Error('nack')))).rejects.toThrow('nack');
    expect(gate.pending).toBe(0);
  });

  it('holds nothing for answered publishes even when the timers never run (a tight publish loop)', async () => {
    const gate = new PublishGate('core', 30_000, 256, 'wait');
    // Only microtasks between publishes: the timeout sweep's timer never fires during the loop.
    for (let i = 0; i < 10_000; i++) await gate.run(1, async () => {});
    await gate.run(1, async () => Promise.reject(new Error('nack'))).catch(() => undefined);
    expect(gate.held).toBe(0);
    // An unanswered publish is held (for its timeout) behind answered ones, which go when it does.
    let answer: () => void = () => {};
    const slow = gate.run(1, () => new Promise<void>((resolve) => (answer = resolve)));
    for (let i = 0; i < 100; i++) await gate.run(1, async () => {});
    expect(gate.held).toBe(101);
    answer();
    await slow;
    expect(gate.held).toBe(0);
  });

  it('rejects an unanswered publish with PublishTimeoutError at its deadline, and keeps its slot', async () => {
    let timedOut = 0;
    const gate = new PublishGate('core', 100, 10, 'wait', (count) => {
      timedOut += count;
    });
    const started = Date.now();
    const error = await gate.run(3, never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PublishTimeoutError);
    expect((error as PublishTimeoutError).mayHaveBeenStored).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(95);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(timedOut).toBe(3);
    // The adapter still holds those events: they count until it answers.
    expect(gate.pending).toBe(3);
  });

  it("in 'wait' mode holds a publish until room frees, then sends it", async () => {
    const gate = new PublishGate('core', 2000, 2, 'wait');
    let confirm: () => void = () => {};
    const first = gate.run(2, () => new Promise<void>((resolve) => (confirm = resolve)));
    let sent = false;
    const second = gate.run(1, async () => {
      sent = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(sent).toBe(false);
    confirm();
    await first;
    await second;
    expect(sent).toBe(true);
    expect(gate.pending).toBe(0);
  });

  it("in 'wait' mode fails a publish that finds no room before its deadline, without sending it", async () => {
    const gate = new PublishGate('core', 100, 1, 'wait');
    void gate.run(1, never).catch(() => {});
    let sent = false;
    const error = await gate
      .run(1, async () => {
        sent = true;
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PublishTimeoutError);
    expect((error as PublishTimeoutError).mayHaveBeenStored).toBe(false);
    expect(sent).toBe(false);
  });

  it("in 'fail' mode rejects at once with BackpressureError", async () => {
    const gate = new PublishGate('core', 1000, 1, 'fail');
    void gate.run(1, never).catch(() => {});
    await expect(gate.run(1, async () => {})).rejects.toBeInstanceOf(BackpressureError);
  });

  it('lets one batch larger than the bound go when nothing else is pending', async () => {
    const gate = new PublishGate('core', 1000, 2, 'fail');
    await expect(gate.run(5, async () => {})).resolves.toBeUndefined();
  });

  it('admits thousands of waiters in order and expires the rest, across the queue compaction', async () => {
    const gate = new PublishGate('core', 5_000, 2, 'wait');
    const answers: (() => void)[] = [];
    const slow = (): Promise<void> => new Promise((resolve) => answers.push(resolve));
    const sent: number[] = [];
    const outcomes = Array.from({ length: 5_000 }, (_, i) =>
      gate
        .run(1, () => {
          sent.push(i);
          return slow();
        })
        .then(
          () => 'ok',
          (e: unknown) => (e instanceof PublishTimeoutError ? 'timeout' : 'other'),
        ),
    );
    // Answer publishes as they are sent, until 3,000 went through two slots (past 1,024 admitted).
    const until = Date.now() + 4_000;
    while (sent.length < 3_000 && Date.now() < until) {
      await new Promise((resolve) => setImmediate(resolve));
      answers.splice(0).forEach((answer) => {
        answer();
      });
    }
    const results = await Promise.all(outcomes);
    expect(sent.slice(0, 3_000)).toEqual(Array.from({ length: 3_000 }, (_, i) => i));
    expect(results.slice(0, 3_000).every((r) => r === 'ok')).toBe(true);
    expect(results.filter((r) => r === 'other')).toEqual([]);
    expect(results.slice(3_002).every((r) => r === 'timeout')).toBe(true);
  });
});
