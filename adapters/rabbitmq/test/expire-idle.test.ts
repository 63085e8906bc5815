import { strict as assert } from 'node:assert';
import { createBus, silentLogger } from '@wharf/core';
import { afterAll, describe, it } from 'vitest';
import createRabbitMqAdapter from '../src/index.js';
import { groupNames } from '../src/topology.js';
import { cleanup, PREFIX, unavailable, unique, url, withChannel } from './helpers.js';

// A group that lives as long as one process (reply inboxes): once its consumer is gone without
// anyone deleting it — a process killed with kill -9 — RabbitMQ deletes its queues itself.
const channel = unique('idle');
const group = unique('g');
const kept = unique('kept');

/** Whether the queue exists: a passive declare, on a channel of its own (a 404 closes it). */
const exists = (queue: string): Promise<boolean> =>
  withChannel((ch) =>
    ch.checkQueue(queue).then(
      () => true,
      () => false,
    ),
  );

afterAll(() => cleanup(channel, [group, kept]));

describe.skipIf(unavailable !== undefined)('rabbitmq: expireWhenIdleMs', () => {
  it("deletes a group's queues once idle that long, keeps them while consumed, and leaves other groups alone", {
    timeout: 30_000,
  }, async () => {
    const bus = createBus({ adapter: createRabbitMqAdapter({ url, logger: silentLogger }), logger: silentLogger });
    const names = groupNames(PREFIX, channel, group);
    try {
      await bus.subscribe(channel, { group, expireWhenIdleMs: 1_500 }, async () => undefined);
      await bus.subscribe(channel, { group: kept }, async () => undefined);
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      assert.ok(await exists(names.queue), 'a consumed queue outlives its idle time');
    } finally {
      // Closing stops the consumers and deletes nothing: what a killed process leaves.
      await bus.close();
    }
    const closedAt = Date.now();
    while ((await exists(names.queue)) || (await exists(names.deadLetters))) {
      assert.ok(Date.now() - closedAt < 15_000, 'the idle group queues still exist 15 s after their consumer left');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.ok(await exists(groupNames(PREFIX, channel, kept).queue), 'a group without expiry stays');
  });
});
