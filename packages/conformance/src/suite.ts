import { afterAll, describe, it } from 'vitest';
import { brokersRequired } from './broker.js';
import { backlogCases } from './cases/backlog.js';
import { deliveryCases } from './cases/delivery.js';
import { failureCases } from './cases/failure.js';
import { lifecycleCases } from './cases/lifecycle.js';
import { rawCases } from './cases/raw.js';
import { requestReplyCases } from './cases/request-reply.js';
import type { ConformanceCase } from './cases/types.js';
import { CaseContext } from './harness.js';
import type { ConformanceOptions } from './options.js';

/** Every case, in the order they run. */
export const CASES: readonly ConformanceCase[] = [
  ...deliveryCases,
  ...failureCases,
  ...backlogCases,
  ...requestReplyCases,
  ...rawCases,
  ...lifecycleCases,
];

/** Ids of every case, for skip lists. */
export const CASE_IDS: readonly string[] = CASES.map((c) => c.id);

/**
 * Registers the conformance suite as vitest tests for one adapter. It never imports an adapter:
 * give it a factory. Skips are data with reasons; they are printed and appear in test names.
 *
 * @example
 * ```ts
 * runConformance({ name: 'rabbitmq', create: () => createRabbitAdapter({ url, logger: silentLogger }) });
 * ```
 */
export function runConformance(options: ConformanceOptions): void {
  const skips = new Map<string, string>();
  for (const entry of options.skip ?? []) {
    if (!entry.reason?.trim())
      throw new Error(`[wharf] [conformance] a skip of ${entry.tests.join(', ')} has no reason`);
    for (const id of entry.tests) {
      if (!CASE_IDS.includes(id))
        throw new Error(`[wharf] [conformance] cannot skip unknown case "${id}"; cases: ${CASE_IDS.join(', ')}`);
      skips.set(id, entry.reason);
    }
  }
  for (const id of options.only ?? []) {
    if (!CASE_IDS.includes(id))
      throw new Error(`[wharf] [conformance] "only" names unknown case "${id}"; cases: ${CASE_IDS.join(', ')}`);
  }
  const cases = options.only ? CASES.filter((c) => options.only?.includes(c.id)) : CASES;
  const probe = options.create();
  const printed: string[] = [];

  describe(`conformance: ${options.name}`, () => {
    if (options.unavailable !== undefined) {
      if (brokersRequired()) {
        it('broker is reachable', () => {
          throw new Error(`${options.unavailable} — CI (or WHARF_REQUIRE_BROKERS) requires this broker`);
        });
        return;
      }
      for (const c of cases) {
        it.skip(`${c.id} — skipped: ${options.unavailable}`, () => {});
      }
      printed.push(`all ${cases.length} cases skipped: ${options.unavailable}`);
    } else {
      for (const c of cases) {
        const probeContext = new CaseContext(options, probe);
        const reason = skips.get(c.id) ?? c.requires?.(probeContext.capabilities, options, probe);
        if (reason !== undefined) {
          it.skip(`${c.id} — skipped: ${reason}`, () => {});
          printed.push(`${c.id}: ${reason}`);
          continue;
        }
        const timeout = Math.round((c.timeoutMs ?? 60_000) * (options.slowness ?? 1));
        it(
          c.id,
          async () => {
            const context = new CaseContext(options, probe);
            try {
              await c.run(context);
            } finally {
              await context.dispose();
            }
          },
          timeout,
        );
      }
    }
    afterAll(() => {
      if (printed.length > 0) {
        process.stdout.write(
          `[wharf] conformance ${options.name}: skipped\n${printed.map((p) => `  - ${p}`).join('\n')}\n`,
        );
      }
    });
  });
}
