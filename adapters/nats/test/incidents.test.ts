import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { brokersRequired } from '@wharf/conformance';
import { type Bus, createBus, type Logger, NonRetryableError } from '@wharf/core';
import { afterEach, describe, expect, it } from 'vitest';
import { channelNames } from '../src/index.js';
import { resolveOptions } from '../src/options.js';
import { adapter, cleanup, unavailable, unique, url, withConnection } from './helpers.js';

// Never silent (issue 22): an event that leaves the normal path without a settlement the core asked for is an
// incident the bus counts and logs as an error naming channel, group and event id.

if (unavailable && brokersRequired()) throw new Error(`${unavailable} — CI requires NATS`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(predicate: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A logger that keeps its error lines. */
function recording(): Logger & { errors: string[] } {
  const errors: string[] = [];
  const noop = () => {};
  return { errors, debug: noop, info: noop, warn: noop, error: (message) => errors.push(message) };
}

const buses: Bus[] = [];
const channels: string[] = [];
afterEach(async () => {
  await Promise.allSettled(buses.splice(0).map((b) => b.close()));
  for (const c of channels.splice(0)) await cleanup(c, ['g']);
});

describe.skipIf(unavailable !== undefined)('nats adapter: incidents', () => {
  it('reports an event that reached MaxDeliver with every dead-letter write refused, naming it', async () => {
    const channel = unique('nats-incident');
    channels.push(channel);
    const logger = recording();
    // max_deliver = maxAttempts (1) + extraDeliveries (1) + 1 = 3.
    const bus = createBus({ adapter: adapter({ extraDeliveries: 1 }, logger), logger });
    buses.push(bus);
    await bus.declare(channel, { groups: ['g'] });
    // The dead-letter stream is full (max_msgs 1, discard new): every dead-letter write is refused.
    const names = channelNames(resolveOptions(url, {}), channel);
    await withConnection(async (nc) => {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(names.dlqStream);
      await jsm.streams.update(names.dlqStream, { ...info.config, max_msgs: 1 });
      await jetstream(nc).publish(names.dlqSubjects.replace('*', 'someone_5Felse'), 'filler');
    });
    await bus.subscribe(channel, { group: 'g', concurrency: 1, retry: { maxAttempts: 1 } }, () => {
      throw new NonRetryableError('poison');
    });
    await bus.publish(channel, { type: 'Poison', id: 'stuck-event-1', data: {} });

    const named = (kind: string) =>
      logger.errors.some((line) => line.includes(`${kind} on ${channel}/g (event stuck-event-1)`));
    // The core's dead-letter write fails on each delivery; on the last one the adapter's backstop fails too,
    // then the server's advisory arrives and its copy is refused as well: the event is stuck, and said to be.
    await until(
      () => named('max-deliveries') && logger.errors.some((line) => line.includes('could not be copied')),
      'the max-deliveries incident',
      20_000,
    );
    expect(named('dead-letter-failed')).toBe(true);
    expect(bus.stats().incidents).toBeGreaterThanOrEqual(3);
    expect(bus.stats().deadLettered).toBe(0);
  });

  it('reports events a group had not settled that the stream removed (max_age)', async () => {
    const channel = unique('nats-removed');
    channels.push(channel);
    const logger = recording();
    const bus = createBus({ adapter: adapter({ maxAgeMs: 1_000, purgeIntervalMs: 200 }, logger), logger });
    buses.push(bus);
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const seen: string[] = [];
    await bus.subscribe(channel, { group: 'g', concurrency: 1 }, async (event) => {
      seen.push(event.id);
      await held;
    });
    // The first is held by the handler; the other two wait in the stream and expire there after 1 s. (The held
    // one expires too; the server then drops it from the consumer's pending list, so the report may start at 2.)
    await bus.publishBatch(
      channel,
      ['r-1', 'r-2', 'r-3'].map((id) => ({ type: 'Expiring', id, data: {} })),
    );
    await until(
      () => logger.errors.some((line) => line.includes(`removed on ${channel}/g`)),
      'the removed incident',
      10_000,
    );
    release();
    expect(seen).toEqual(['r-1']);
    expect(bus.stats().incidents).toBeGreaterThanOrEqual(1);
    const line = logger.errors.find((l) => l.includes('removed on')) ?? '';
    expect(line, line).toMatch(/\(sequences [12]-3\)/);
  });

  it('reports no stall for an idle subscription that keeps hearing heartbeats', async () => {
    const channel = unique('nats-idle');
    channels.push(channel);
    const logger = recording();
    const bus = createBus({ adapter: adapter({}, logger), logger });
    buses.push(bus);
    let handled = 0;
    await bus.subscribe(channel, { group: 'g', concurrency: 4 }, () => {
      handled++;
    });
    // Longer than the stall threshold (5 missed 1 s heartbeats): an idle pull is not a stalled one.
    await sleep(6_500);
    await bus.publish(channel, { type: 'AfterIdle', data: {} });
    await until(() => handled === 1, 'the event after the idle time', 5_000);
    expect(logger.errors).toEqual([]);
    expect(bus.stats().incidents).toBe(0);
  });
});
