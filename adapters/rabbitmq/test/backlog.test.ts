import { createBus, type GroupBacklog, silentLogger } from '@wharf/core';
import { afterEach, describe, expect, it } from 'vitest';
import createRabbitMqAdapter from '../src/index.js';
import { cleanup, unavailable, unique, url } from './helpers.js';

/**
 * What the conformance backlog cases cannot show on RabbitMQ: AMQP's passive declare counts only
 * ready messages, so events in handlers (delivered, unacknowledged) are in neither `ready` nor
 * `inFlight`; and a backlog read on a missing queue leaves the adapter's own channels working.
 */
describe.skipIf(unavailable !== undefined)('rabbitmq backlog', () => {
  const opened: { close(): Promise<void> }[] = [];
  const created: string[] = [];
  afterEach(async () => {
    await Promise.allSettled(opened.splice(0).map((o) => o.close()));
    for (const channel of created.splice(0)) await cleanup(channel, ['g']);
  });
  const bus = () => {
    const b = createBus({
      adapter: createRabbitMqAdapter({ url, logger: silentLogger }),
      logger: silentLogger,
      shutdownTimeoutMs: 1_000,
    });
    opened.push(b);
    return b;
  };

  it('counts ready messages only: those held by running handlers are not readable over AMQP', async () => {
    const channel = unique('backlog-unacked');
    created.push(channel);
    const b = bus();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let running = 0;
    await b.subscribe(channel, { group: 'g', concurrency: 2 }, async () => {
      running++;
      await gate;
    });
    await b.publishBatch(
      channel,
      [1, 2, 3, 4, 5].map((n) => ({ type: 'Held', data: { n } })),
    );
    let backlog: GroupBacklog | undefined;
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
      backlog = await b.backlog(channel, 'g');
      if (running === 2 && backlog.ready === 3) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(running).toBe(2);
    expect(backlog).toEqual({ ready: 3, inFlight: 0, delayed: 0, deadLetters: 0, consumers: 1 });
    release();
  });

  it('reads a missing group without disturbing the adapter: publishing still works', async () => {
    const channel = unique('backlog-missing');
    created.push(channel);
    const b = bus();
    await b.declare(channel, { groups: ['g'] });
    await expect(b.backlog(channel, 'absent')).rejects.toMatchObject({ code: 'ERR_WHARF_UNKNOWN_GROUP' });
    await b.publish(channel, { type: 'After' });
    expect((await b.backlog(channel, 'g')).ready).toBe(1);
  });
});
