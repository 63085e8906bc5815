import { describe, expect, it } from 'vitest';
import { comparable, formatSummary, runSaga, SagaUsageError } from '../src/index.js';
import { EXPECTED_SUMMARY, ORDERS, SEED } from './expected.js';

describe('order saga on memory', () => {
  it('reaches the expected summary with every invariant holding', async () => {
    const phases = new Set<string>();
    const summary = await runSaga({
      url: 'memory://saga-test',
      orders: ORDERS,
      seed: SEED,
      onProgress: (p) => phases.add(p.phase),
    });
    expect(comparable(summary)).toEqual(EXPECTED_SUMMARY);
    for (const invariant of Object.values(summary.invariants)) expect(invariant.ok).toBe(true);
    expect(summary.run.broker).toBe('memory');
    expect(summary.timings.ordersPerSecond).toBeGreaterThan(0);
    expect([...phases]).toEqual(['starting', 'placing', 'settling', 'checking', 'done']);

    const text = formatSummary(summary);
    expect(text).toContain('confirmed                  115');
    expect(text).toContain('✓ exactly one charge per confirmed order');
    expect(text).not.toContain('✗');
    expect(text).toContain('All invariants hold.');
  });

  it('is deterministic: the same seed gives the same summary, another seed another one', async () => {
    const a = await runSaga({ url: 'memory://saga-determinism', orders: 60, seed: 'same' });
    const b = await runSaga({ url: 'memory://saga-determinism', orders: 60, seed: 'same' });
    const c = await runSaga({ url: 'memory://saga-determinism', orders: 60, seed: 'other' });
    expect(a.ok && b.ok && c.ok).toBe(true);
    expect(comparable(b)).toEqual(comparable(a));
    expect(comparable(c)).not.toEqual(comparable(a));
  });

  it('gives the same summary with competing replicas of every service', async () => {
    const summary = await runSaga({ url: 'memory://saga-replicas', orders: ORDERS, seed: SEED, replicas: 3 });
    expect(comparable(summary)).toEqual(EXPECTED_SUMMARY);
  });

  it.each([0, -3, 1.5, Number.NaN, '10' as unknown as number])(
    'rejects --orders %s with a usage error',
    async (orders) => {
      const run = runSaga({ url: 'memory://', orders, seed: 1 });
      await expect(run).rejects.toBeInstanceOf(SagaUsageError);
      await expect(run).rejects.toThrow(/--orders must be a positive integer[\s\S]*usage: wharf saga/);
    },
  );

  it('rejects an unknown service, and services split over processes on the in-process broker', async () => {
    await expect(runSaga({ url: 'memory://', orders: 1, services: ['shipping' as never] })).rejects.toThrow(
      /unknown service "shipping"/,
    );
    await expect(runSaga({ url: 'memory://', orders: 1, services: ['order'] })).rejects.toThrow(
      /memory:\/\/ lives inside one process/,
    );
  });

  it('reports orders that did not settle in time as a failed invariant, not a hang', async () => {
    const summary = await runSaga({ url: 'memory://saga-timeout', orders: 200, seed: SEED, timeoutMs: 0 });
    expect(summary.ok).toBe(false);
    expect(summary.unsettled).toBeGreaterThan(0);
    expect(summary.invariants.settled).toMatchObject({ ok: false });
    expect(summary.invariants.settled.detail).toMatch(/orders neither terminal nor dead-lettered, e\.g\. ord_/);
    const text = formatSummary(summary);
    expect(text).toContain('✗ every order terminal or dead-lettered with a reason');
    expect(text).toContain('Some invariants FAILED.');
  });

  it('reports progress with a line for humans', async () => {
    const lines: string[] = [];
    await runSaga({ url: 'memory://saga-progress', orders: 5, seed: 3, onProgress: (p) => lines.push(String(p)) });
    expect(lines[0]).toMatch(/^starting: 0\/5 orders settled \(\d+\.\d s\)$/);
    expect(lines).toContain(lines.find((l) => /^placing: 5\/5 orders placed/.test(l)));
    expect(lines.at(-1)).toMatch(/^done: 5\/5 orders settled/);
  });

  it('takes a numeric seed given as a string (as from the command line) as that number', async () => {
    const summary = await runSaga({ url: 'memory://saga-seed', orders: 20, seed: '7' });
    const reference = await runSaga({ url: 'memory://saga-seed', orders: 20, seed: 7 });
    expect(comparable(summary)).toEqual(comparable(reference));
  });

  it('fails clearly on an unknown broker scheme', async () => {
    await expect(runSaga({ url: 'mqtt://localhost', orders: 1 })).rejects.toThrow(/unknown broker scheme/);
  });
});
