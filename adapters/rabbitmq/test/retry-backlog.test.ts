import { strict as assert } from 'node:assert';
import { sleep } from '@wharf/conformance';
import { type Bus, createBus, silentLogger } from '@wharf/core';
import { afterEach, describe, it } from 'vitest';
import createRabbitMqAdapter, { groupNames } from '../src/index.js';
import { cleanup, PREFIX, unavailable, unique, url, withChannel } from './helpers.js';

// Issue 22: far more events waiting in the TTL retry tiers than the consumer's prefetch. The tiers
// are held by the broker, so the prefetch window must only ever hold the events being handled: every
// event ends acked or dead-lettered exactly once, none stays in a tier or the group queue.
const EVENTS = 300;
const CONCURRENCY = 4;
const DELAYS = [300, 700];

const opened: { close(): Promise<void> }[] = [];
const created: [string, string[]][] = [];

afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((o) => o.close()));
  for (const [channel, groups] of created.splice(0)) await cleanup(channel, groups);
});

function bus(): Bus {
  const b = createBus({
    adapter: createRabbitMqAdapter({ url, logger: silentLogger }),
    logger: silentLogger,
    shutdownTimeoutMs: 2_000,
  });
  opened.push(b);
  return b;
}

async function depths(queues: readonly string[]): Promise<Record<string, number>> {
  return withChannel(async (ch) => {
    const out: Record<string, number> = {};
    for (const q of queues) out[q] = (await ch.checkQueue(q)).messageCount;
    return out;
  });
}

describe.skipIf(unavailable !== undefined)('rabbitmq retries beyond prefetch (real broker)', () => {
  it(`${EVENTS} events retried twice through the TTL tiers with prefetch ${CONCURRENCY}: each acked or dead-lettered exactly once`, async () => {
    const channel = unique('retry-backlog');
    const group = unique('g');
    created.push([channel, [group]]);
    const names = groupNames(PREFIX, channel, group);
    const acked = new Map<string, number>();
    const attempts = new Map<string, number[]>();
    let peakTiers = 0;
    let active = 0;
    let peakActive = 0;
    const consumer = bus();
    // dedup off: a duplicate delivery must show up as a second completion, not be hidden.
    await consumer.subscribe(
      channel,
      { group, concurrency: CONCURRENCY, dedup: false, retry: { maxAttempts: 3, delays: DELAYS, jitter: 0.2 } },
      async (e, c) => {
        active++;
        peakActive = Math.max(peakActive, active);
        try {
          attempts.set(e.id, [...(attempts.get(e.id) ?? []), c.attempt]);
          const n = (e.data as { n: number }).n;
          // Every tenth event always fails (dead-lettered after 3 attempts); the rest succeed on attempt 3.
          if (n % 10 === 0 || c.attempt < 3) throw new Error(`fails on attempt ${c.attempt}`);
          acked.set(e.id, (acked.get(e.id) ?? 0) + 1);
        } finally {
          active--;
        }
      },
    );
    const publisher = bus();
    const started = performance.now();
    const sent = await publisher.publishBatch(
      channel,
      Array.from({ length: EVENTS }, (_, n) => ({ type: 'Flaky', data: { n } })),
    );
    const ids = sent.map((e) => e.id);
    const failing = new Set(sent.filter((_, n) => n % 10 === 0).map((e) => e.id));

    // The backlog really sits in the broker's tiers, many times the prefetch.
    const tiers = DELAYS.map((d) => names.tier(d));
    const deadline = performance.now() + 90_000;
    let dlq = 0;
    for (;;) {
      const d = await depths([...tiers, names.deadLetters]);
      peakTiers = Math.max(peakTiers, ...tiers.map((t) => d[t] ?? 0));
      dlq = d[names.deadLetters] ?? 0;
      if (acked.size + dlq >= EVENTS) break;
      assert.ok(
        performance.now() < deadline,
        `stuck: ${acked.size} acked, ${dlq} dead-lettered of ${EVENTS} after 90 s; queues ${JSON.stringify(d)}`,
      );
      await sleep(100);
    }
    const elapsed = performance.now() - started;
    // Let late duplicates, if any, arrive before counting.
    await sleep(1_000);

    assert.ok(
      peakTiers > CONCURRENCY * 10,
      `only ${peakTiers} events waited in one tier at once; the test proves nothing`,
    );
    assert.ok(peakActive <= CONCURRENCY, `${peakActive} handlers ran at once with concurrency ${CONCURRENCY}`);
    for (const id of ids) {
      if (failing.has(id)) {
        assert.equal(acked.get(id), undefined, `always-failing ${id} was acked`);
      } else {
        assert.equal(acked.get(id), 1, `${id} acked ${acked.get(id) ?? 0} times`);
      }
      assert.deepEqual(attempts.get(id), [1, 2, 3], `${id} handled on attempts ${attempts.get(id)?.join(',')}`);
    }
    const deadLetters = await consumer.listDeadLetters(channel, group, { limit: EVENTS });
    const deadIds = deadLetters.map((d) => d.event?.id);
    assert.equal(deadIds.length, failing.size, `${deadIds.length} dead letters, expected ${failing.size}`);
    assert.deepEqual(new Set(deadIds), failing);
    for (const d of deadLetters) {
      assert.equal(d.info?.reason, 'retries-exhausted');
      assert.equal(d.info?.attempts, 3);
    }
    const left = await depths([names.queue, ...tiers]);
    for (const [q, n] of Object.entries(left)) assert.equal(n, 0, `${n} messages left in ${q}`);
    const stats = consumer.stats();
    assert.equal(stats.incidents, 0, 'an incident was reported on the happy path');
    process.stdout.write(
      `[wharf] retry backlog: ${EVENTS} events, prefetch ${CONCURRENCY}, peak ${peakTiers} waiting in one tier, done in ${Math.round(elapsed)} ms\n`,
    );
  }, 120_000);
});
