import { strict as assert } from 'node:assert';
import { jetstreamManager } from '@nats-io/jetstream';
import { createBus, silentLogger } from '@wharf/core';
import { afterAll, describe, it } from 'vitest';
import { resolveOptions } from '../src/options.js';
import { channelNames, durableName } from '../src/topology.js';
import { adapter, cleanup, unavailable, unique, url, withConnection } from './helpers.js';

// A group that lives as long as one process (reply inboxes): once nobody pulls from its durable
// consumer — a process killed with kill -9 — the server deletes the consumer, which would otherwise
// hold back the channel's retention purge for good.
const channel = unique('idle');
const group = unique('g');
const kept = unique('kept');

const consumers = (): Promise<string[]> =>
  withConnection(async (nc) => {
    const jsm = await jetstreamManager(nc);
    const { stream } = channelNames(resolveOptions(url, {}), channel);
    const names: string[] = [];
    for await (const info of jsm.consumers.list(stream)) names.push(info.name);
    return names;
  });

afterAll(() => cleanup(channel, [group, kept]));

describe.skipIf(unavailable !== undefined)('nats: expireWhenIdleMs', () => {
  it("deletes a group's durable consumer once idle that long, keeps it while pulled, and leaves other groups alone", {
    timeout: 30_000,
  }, async () => {
    const bus = createBus({ adapter: adapter(), logger: silentLogger });
    try {
      await bus.subscribe(channel, { group, expireWhenIdleMs: 1_500 }, async () => undefined);
      await bus.subscribe(channel, { group: kept }, async () => undefined);
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      assert.ok((await consumers()).includes(durableName(group)), 'a pulled consumer outlives its idle time');
    } finally {
      // Closing stops pulling and deletes nothing: what a killed process leaves.
      await bus.close();
    }
    const closedAt = Date.now();
    while ((await consumers()).includes(durableName(group))) {
      assert.ok(Date.now() - closedAt < 15_000, 'the idle consumer still exists 15 s after the last pull');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.ok((await consumers()).includes(durableName(kept)), 'a group without expiry stays');
  });
});
