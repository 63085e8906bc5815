import { Bus, type GroupBacklog, silentLogger } from '@wharf/core';
import { afterEach, describe, expect, it } from 'vitest';
import { adapter, cleanup, unavailable, unique } from './helpers.js';

/**
 * What the conformance backlog cases cannot check on JetStream: an event waiting out a retry delay
 * (`nak` with a delay) is counted in `inFlight`, because the server keeps it ack-pending.
 */
describe.skipIf(unavailable !== undefined)('nats backlog', () => {
  const buses: Bus[] = [];
  const channels: string[] = [];
  afterEach(async () => {
    await Promise.allSettled(buses.splice(0).map((b) => b.close()));
    for (const channel of channels.splice(0)) await cleanup(channel).catch(() => undefined);
  });
  const bus = (): Bus => {
    const b = new Bus({ adapter: adapter(), logger: silentLogger, shutdownTimeoutMs: 2_000 });
    buses.push(b);
    return b;
  };

  async function until(read: () => Promise<GroupBacklog>, done: (b: GroupBacklog) => boolean): Promise<GroupBacklog> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const backlog = await read();
      if (done(backlog) || Date.now() > deadline) return backlog;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it('counts an event waiting out a nak delay as in flight, and no consumers', async () => {
    const channel = unique('backlog-nak');
    channels.push(channel);
    const retry = { maxAttempts: 2, delays: [600_000] };
    const consumer = bus();
    let calls = 0;
    await consumer.subscribe(channel, { group: 'g', retry }, () => {
      calls++;
      throw new Error('later');
    });
    await bus().publish(channel, { type: 'Later' });
    const backlog = await until(
      () => consumer.backlog(channel, 'g', { retry }),
      (b) => calls === 1 && b.inFlight === 1,
    );
    expect(backlog).toEqual({ ready: 0, inFlight: 1, delayed: 0, deadLetters: 0 });
    expect(calls).toBe(1);
  });
});
