import { describe, expect, it } from 'vitest';
import { check, type DeliveryRecord, type PublishRecord } from '../src/index.js';

const confirmed = (producer: string, n: number): PublishRecord[] =>
  Array.from({ length: n }, (_, seq) => ({ producer, seq, outcome: 'confirmed' as const }));
const delivered = (producer: string, seqs: number[], at = 1_000, effect = true): DeliveryRecord[] =>
  seqs.map((seq, i) => ({ producer, seq, at: at + i, effect }));

describe('total-queue checker', () => {
  it('passes a clean run', () => {
    const result = check({ publishes: confirmed('p0', 3), deliveries: delivered('p0', [0, 1, 2]) });
    expect(result).toMatchObject({
      published: 3,
      confirmed: 3,
      consumed: 3,
      lost: 0,
      unexpected: 0,
      duplicates: 0,
      duplicateEffects: 0,
      ok: true,
    });
  });

  it('counts a confirmed event never consumed as lost', () => {
    const result = check({ publishes: confirmed('p0', 3), deliveries: delivered('p0', [0, 2]) });
    expect(result.lost).toBe(1);
    expect(result.lostIds).toEqual(['p0-1']);
    expect(result.ok).toBe(false);
  });

  it('counts a consumed event never published as unexpected', () => {
    const result = check({ publishes: confirmed('p0', 1), deliveries: delivered('p0', [0, 7]) });
    expect(result.unexpected).toBe(1);
    expect(result.ok).toBe(false);
  });

  it('tells duplicate deliveries (fine) from duplicate effects (a defect)', () => {
    const deliveries = [...delivered('p0', [0, 1]), ...delivered('p0', [1], 2_000, false)];
    const onlyDeliveries = check({ publishes: confirmed('p0', 2), deliveries });
    expect(onlyDeliveries).toMatchObject({ duplicates: 1, duplicateEffects: 0, ok: true });
    const effects = check({
      publishes: confirmed('p0', 2),
      deliveries: [...deliveries, ...delivered('p0', [0], 3_000)],
    });
    expect(effects).toMatchObject({ duplicates: 2, duplicateEffects: 1, ok: false });
  });

  it('counts an unconfirmed publish that was consumed as recovered, and a pending one as a defect', () => {
    const publishes: PublishRecord[] = [
      { producer: 'p0', seq: 0, outcome: 'rejected', error: 'PublishTimeoutError' },
      { producer: 'p0', seq: 1, outcome: 'rejected', error: 'Error' },
      { producer: 'p0', seq: 2, outcome: 'pending' },
    ];
    const result = check({ publishes, deliveries: delivered('p0', [0, 2]) });
    expect(result).toMatchObject({
      rejected: 2,
      untypedRejections: 1,
      pendingAtDeadline: 1,
      recovered: 2,
      lost: 0,
      ok: false,
    });
  });

  it('measures recovery from the fault end to the first delivery after it', () => {
    const deliveries = [...delivered('p0', [0], 1_000), ...delivered('p0', [1], 5_500)];
    expect(check({ publishes: confirmed('p0', 2), deliveries, faultEndedAt: 5_000 }).recoveryMs).toBe(500);
    expect(check({ publishes: confirmed('p0', 2), deliveries }).recoveryMs).toBeUndefined();
  });

  it('reports a stall', () => {
    expect(check({ publishes: confirmed('p0', 1), deliveries: delivered('p0', [0]), stalled: true }).ok).toBe(false);
  });

  it('counts per-producer order violations of first effects only where ordering is declared', () => {
    const deliveries = [
      ...delivered('p0', [0, 2], 1_000),
      ...delivered('p0', [1], 3_000),
      ...delivered('p1', [0, 1], 1_000),
    ];
    expect(
      check({ publishes: [...confirmed('p0', 3), ...confirmed('p1', 2)], deliveries, ordered: true }).orderViolations,
    ).toBe(1);
    expect(check({ publishes: [...confirmed('p0', 3), ...confirmed('p1', 2)], deliveries }).orderViolations).toBe(0);
  });

  it('carries what the broker still holds of the lost events', () => {
    const result = check({
      publishes: confirmed('p0', 2),
      deliveries: delivered('p0', [0]),
      witness: { foundInBroker: 1, how: 'fresh group fetch' },
    });
    expect(result.witness).toEqual({ foundInBroker: 1, how: 'fresh group fetch' });
  });
});
