import { jetstreamManager } from '@nats-io/jetstream';
import { brokersRequired } from '@wharf/conformance';
import { type Bus, createBus, silentLogger } from '@wharf/core';
import { afterEach, describe, expect, it } from 'vitest';
import { channelNames } from '../src/index.js';
import { resolveOptions } from '../src/options.js';
import { adapter, cleanup, unavailable, unique, url, withConnection } from './helpers.js';

// Issue 22: on nats-server 2.9.10 the saga lost every event waiting in a nak delay whenever the adapter's
// retention purge ran (a partial purge reset the consumers' pending state). These tests keep many delayed
// retries in flight while the purge runs every 100 ms.

if (unavailable && brokersRequired()) throw new Error(`${unavailable} — CI requires NATS`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(predicate: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const buses: Bus[] = [];
const channels: string[] = [];
afterEach(async () => {
  await Promise.allSettled(buses.splice(0).map((b) => b.close()));
  for (const c of channels.splice(0)) await cleanup(c, ['g']);
});

function bus(options: Parameters<typeof adapter>[0]): Bus {
  const b = createBus({ adapter: adapter(options), logger: silentLogger });
  buses.push(b);
  return b;
}

async function consumerState(channel: string) {
  const stream = channelNames(resolveOptions(url, {}), channel).stream;
  return withConnection(async (nc) => {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.consumers.info(stream, 'g');
    return { ackPending: info.num_ack_pending, pending: info.num_pending };
  });
}

describe.skipIf(unavailable !== undefined)('nats adapter: delayed retries under the retention purge', () => {
  it('redelivers events waiting in a nak delay when settled events before them are purged', async () => {
    const channel = unique('nats-purge-delay');
    channels.push(channel);
    const b = bus({ purgeIntervalMs: 100 });
    await b.declare(channel, { groups: ['g'] });
    const calls = new Map<string, number>();
    await b.subscribe(
      channel,
      { group: 'g', concurrency: 8, retry: { maxAttempts: 3, delays: [1_500] } },
      async (event) => {
        const n = (calls.get(event.id) ?? 0) + 1;
        calls.set(event.id, n);
        if (event.type === 'FailsOnce' && n === 1) throw new Error('first attempt fails');
      },
    );
    // Settled events first, so the purge has something to remove below the delayed ones.
    await b.publishBatch(
      channel,
      Array.from({ length: 5 }, (_, n) => ({ type: 'Fine', id: `fine-${n}`, data: n })),
    );
    await until(() => calls.size === 5, 'the settled events', 10_000);
    const failing = Array.from({ length: 10 }, (_, n) => ({ type: 'FailsOnce', id: `once-${n}`, data: n }));
    await b.publishBatch(channel, failing);
    // Several purges run while all ten wait out their 1.5 s delay.
    await until(() => failing.every((e) => calls.get(e.id) === 2), 'every delayed event to come back', 10_000);
    expect(b.stats().incidents).toBe(0);
  });

  it('settles every event exactly once with more delayed retries in flight than max_ack_pending', async () => {
    const channel = unique('nats-pressure');
    channels.push(channel);
    const total = 300;
    // The server's pending cap (delayed retries count toward it) is far below the retries in flight at once.
    const b = bus({ purgeIntervalMs: 100, maxAckPending: 16 });
    await b.declare(channel, { groups: ['g'] });
    const kind = (n: number) => (n % 3 === 0 ? 'Fine' : n % 3 === 1 ? 'Flaky' : 'Poison');
    const succeeded = new Map<string, number>();
    const attempts = new Map<string, number>();
    await b.subscribe(
      channel,
      { group: 'g', concurrency: 8, retry: { maxAttempts: 3, delays: [200, 400] } },
      async (event, ctx) => {
        attempts.set(event.id, (attempts.get(event.id) ?? 0) + 1);
        if (event.type === 'Poison') throw new Error('never succeeds');
        if (event.type === 'Flaky' && ctx.attempt < 2) throw new Error('fails once');
        succeeded.set(event.id, (succeeded.get(event.id) ?? 0) + 1);
      },
    );
    const started = Date.now();
    await b.publishBatch(
      channel,
      Array.from({ length: total }, (_, n) => ({ type: kind(n), id: `ev-${n}`, data: n })),
    );
    const poison = Array.from({ length: total }, (_, n) => n)
      .filter((n) => kind(n) === 'Poison')
      .map((n) => `ev-${n}`);
    const good = total - poison.length;
    let deadLettered: string[] = [];
    await until(
      () => succeeded.size === good && b.stats().deadLettered === poison.length,
      'every event settled',
      45_000,
    );
    const elapsed = Date.now() - started;
    deadLettered = (await b.listDeadLetters(channel, 'g', { limit: 1_000 })).map((d) => d.event?.id ?? '?');

    expect([...succeeded.values()].every((n) => n === 1)).toBe(true);
    expect(deadLettered.sort()).toEqual([...poison].sort());
    for (const id of poison) expect(attempts.get(id)).toBe(3);
    expect(b.stats().incidents).toBe(0);
    // Nothing left with the server: no delivery pending, nothing undelivered.
    expect(await consumerState(channel)).toEqual({ ackPending: 0, pending: 0 });
    expect(elapsed).toBeLessThan(45_000);
  });
});
