import { describe, expect, it } from 'vitest';
import { comparable, formatSummary, runSaga, type SagaSummary, SagaUsageError } from '../src/index.js';
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

  it('prints the summary for humans', () => {
    const summary = {
      ...EXPECTED_SUMMARY,
      run: { broker: 'rabbitmq', runId: 'cafe0001', services: [], dedup: { bus: 40, services: 16 }, handlers: {} },
      timings: { durationMs: 2500, ordersPerSecond: 60 },
    } as SagaSummary;
    expect(formatSummary(summary)).toBe(
      [
        'Order saga on rabbitmq — 150 orders, seed 7 (run cafe0001)',
        '',
        '  confirmed                  115',
        '  cancelled                   30  (inventory-rejected 15, payment-failed 15)',
        '  dead-lettered                5  (retries-exhausted 5)',
        '  retries                     45',
        '  duplicates suppressed       31  (consumers dropped 40 by dedup store, 16 by own state)',
        '  events published           735  (31 deliberately twice)',
        '  notifications sent         145',
        '  incidents                    0',
        '  throughput                  60 orders/s  (2.50 s)',
        '',
        'Invariants',
        '  ✓ every order terminal or dead-lettered with a reason',
        '      150 orders: 145 terminal, 5 dead-lettered with a reason',
        '  ✓ every order ended as its scenario says',
        '      all 150 orders ended as the scenario predicts',
        '  ✓ final stock = initial − items of confirmed orders',
        '      7 SKUs: final = initial − 412 items of 115 confirmed orders − 14 items held for 5 dead-lettered orders (until replayed); never negative',
        '  ✓ exactly one charge per confirmed order, none otherwise',
        '      115 charges: one for each of 115 confirmed orders, none for 30 cancelled and 5 dead-lettered',
        '  ✓ the audit log holds every published event exactly once',
        '      735 published events, each in the audit log exactly once',
        '  ✓ every terminal order notified exactly once',
        '      145 customers notified once, each about a terminal order',
        '',
        'All invariants hold.',
      ].join('\n'),
    );
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
    // It names the stuck orders, their scenario kind and the state the order service has them in.
    expect(summary.invariants.settled.detail).toMatch(
      /orders neither terminal nor dead-lettered, e\.g\. ord_\w+-\d+ \((ok|flaky|declined|out-of-stock|poison), placed\)/,
    );
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
