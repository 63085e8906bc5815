import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BrokerKind,
  type FaultProxy,
  freePort,
  type ManagedBroker,
  runScenario,
  SCENARIOS,
  type ScenarioReport,
  startBroker,
  startProxy,
} from '../src/index.js';

/** Events per scenario: ~2,000 in CI; the long tier is `wharf chaos --events 100000` by hand. */
export const EVENTS = Number(process.env.WHARF_CHAOS_EVENTS ?? 2_000);

/** The verdict fields a passing scenario must show (printed in full on failure). */
export function verdict(report: ScenarioReport): Record<string, unknown> {
  return {
    lost: report.lost,
    unexpected: report.unexpected,
    duplicateEffects: report.duplicateEffects,
    pendingAtDeadline: report.pendingAtDeadline,
    stalled: report.stalled,
    error: report.error,
  };
}

export const PASSING = {
  lost: 0,
  unexpected: 0,
  duplicateEffects: 0,
  pendingAtDeadline: 0,
  stalled: false,
  error: undefined,
};

/** One private broker of `kind` behind a fault proxy, shared by the file's tests; destroyed after. */
export function privateBroker(kind: BrokerKind): { broker: () => ManagedBroker; proxy: () => FaultProxy } {
  let broker: ManagedBroker | undefined;
  let proxy: FaultProxy | undefined;
  beforeAll(async () => {
    const proxyPort = await freePort();
    broker = await startBroker(kind, { proxyPort });
    proxy = await startProxy({ target: broker.proxyTarget, port: proxyPort });
  }, 300_000);
  afterAll(async () => {
    await proxy?.close();
    await broker?.destroy();
  }, 120_000);
  return {
    broker: () => broker as ManagedBroker,
    proxy: () => proxy as FaultProxy,
  };
}

/**
 * Every scenario on a private broker of `kind`, one test each. A scenario that fails because of an
 * adapter bug fails here: it is never skipped (the report lists them for the adapter owners).
 */
export function chaosSuite(kind: BrokerKind, adapterOptions?: Readonly<Record<string, unknown>>): void {
  const on = adapterOptions === undefined ? '' : ` with ${JSON.stringify(adapterOptions)}`;
  describe(`chaos on a private ${kind} broker${on} (${EVENTS} events per scenario)`, () => {
    const { broker, proxy } = privateBroker(kind);
    for (const scenario of SCENARIOS) {
      it(scenario.name, async () => {
        const report = await runScenario(scenario, {
          broker: broker(),
          proxy: proxy(),
          events: EVENTS,
          ...(adapterOptions === undefined ? {} : { adapterOptions }),
          log: (line) => process.stderr.write(`${line}\n`),
        });
        const { lostIds, ...numbers } = report;
        process.stderr.write(
          `[chaos] ${kind}${on} ${JSON.stringify(numbers)} lostIds=${lostIds.slice(0, 10).join(',')}\n`,
        );
        expect(report.published).toBe(EVENTS);
        expect(report.faults).toBeGreaterThan(0);
        expect(verdict(report)).toEqual(PASSING);
      }, 400_000);
    }
  });
}
