import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { brokersRequired, sleep } from '@wharf/conformance';
import { type Bus, createBus, silentLogger } from '@wharf/core';
import { afterAll, describe, it } from 'vitest';
import { adapter, cleanupChannel, skipKafka, unavailable } from './helpers.js';

const EVENTS = 1_000;
const CONCURRENCY = 4;
const POISON_EVERY = 10;

/**
 * Issue 22, the mechanism at scale: many more delayed retries in flight than the subscription's
 * concurrency limit. Every event fails twice before it succeeds, every tenth fails for good. Each
 * must end exactly once: handled successfully once, or dead-lettered once — none stuck, none
 * doubled — within a bound.
 */
describe.skipIf(skipKafka)('kafka: delayed retries beyond the concurrency limit', () => {
  if (unavailable && brokersRequired()) {
    it('broker is reachable', () => {
      throw new Error(`${unavailable} — CI requires Kafka (bash scripts/kafka.sh up)`);
    });
    return;
  }
  const channel = `kt-retries-${randomBytes(4).toString('hex')}`;
  const group = 'g';
  const buses: Bus[] = [];
  afterAll(async () => {
    await Promise.allSettled(buses.map((b) => b.close()));
    await cleanupChannel(channel, [group]).catch(() => undefined);
  });

  it(`${EVENTS} events, each retried twice, concurrency ${CONCURRENCY}: all acked or dead-lettered once`, {
    timeout: 120_000,
  }, async () => {
    const bus = createBus({ logger: silentLogger, adapter: adapter(), shutdownTimeoutMs: 2_000 });
    buses.push(bus);
    const attempts = new Map<number, number>();
    const succeeded = new Map<number, number>();
    let peak = 0;
    let running = 0;
    await bus.subscribe(
      channel,
      { group, concurrency: CONCURRENCY, retry: { maxAttempts: 3, delays: [300, 600] } },
      async (event, ctx) => {
        const n = (event.data as { n: number }).n;
        running++;
        peak = Math.max(peak, running);
        try {
          attempts.set(n, (attempts.get(n) ?? 0) + 1);
          await sleep(2);
          if (n % POISON_EVERY === 0) throw new Error(`poison ${n}`);
          if (ctx.attempt < 3) throw new Error(`flaky ${n} attempt ${ctx.attempt}`);
          succeeded.set(n, (succeeded.get(n) ?? 0) + 1);
        } finally {
          running--;
        }
      },
    );
    const started = Date.now();
    for (let i = 0; i < EVENTS; i += 100) {
      await bus.publishBatch(
        channel,
        Array.from({ length: 100 }, (_, j) => ({
          type: 'Job',
          id: `job-${i + j}`,
          partitionkey: `k${(i + j) % 7}`,
          data: { n: i + j },
        })),
      );
    }
    const poison = Array.from({ length: EVENTS }, (_, n) => n).filter((n) => n % POISON_EVERY === 0);
    const good = EVENTS - poison.length;
    let deadIds: string[] = [];
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      if (succeeded.size === good) {
        deadIds = (await bus.listDeadLetters(channel, group, { limit: EVENTS })).map((d) => d.event?.id ?? '?');
        if (deadIds.length >= poison.length) break;
      }
      await sleep(500);
    }
    const took = Date.now() - started;
    process.stdout.write(
      `[wharf] kafka retries at scale: ${EVENTS} events, ${[...attempts.values()].reduce((a, b) => a + b, 0)} attempts, ${took} ms, peak ${peak} running\n`,
    );
    assert.equal(succeeded.size, good, `${good - succeeded.size} events never succeeded (stuck)`);
    assert.deepEqual(
      [...succeeded.values()].filter((c) => c !== 1),
      [],
      'an event succeeded twice',
    );
    assert.deepEqual(
      deadIds.sort(),
      poison.map((n) => `job-${n}`).sort(),
      'dead letters are exactly the poison events, once each',
    );
    for (const n of poison) assert.equal(attempts.get(n), 3, `poison ${n} ran ${attempts.get(n)} times`);
    assert.ok(peak <= CONCURRENCY, `peak ${peak} handlers at once`);
  });
});
