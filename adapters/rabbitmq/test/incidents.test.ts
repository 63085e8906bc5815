import { strict as assert } from 'node:assert';
import { sleep } from '@wharf/conformance';
import { type Bus, createBus, type Logger, silentLogger } from '@wharf/core';
import type { GetMessage } from 'amqplib';
import { afterEach, describe, it } from 'vitest';
import createRabbitMqAdapter, { groupNames } from '../src/index.js';
import { cleanup, PREFIX, unavailable, unique, url, withChannel } from './helpers.js';

// Issue 22, "never silent": what the quorum queue's x-delivery-limit and a refused retry publish do
// to an event is reported as an incident (counted in stats, one error line naming the event).
const LIMIT = 2;
const opened: { close(): Promise<void> }[] = [];
const created: [string, string[]][] = [];

afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((o) => o.close()));
  for (const [channel, groups] of created.splice(0)) await cleanup(channel, groups);
});

function capture(): { logger: Logger; errors: string[] } {
  const errors: string[] = [];
  return { logger: { ...silentLogger, error: (message) => errors.push(message) }, errors };
}

function bus(logger: Logger): Bus {
  const b = createBus({
    adapter: createRabbitMqAdapter({ url, logger: silentLogger, deliveryLimit: LIMIT }),
    logger,
    shutdownTimeoutMs: 1_000,
  });
  opened.push(b);
  return b;
}

async function depth(queue: string): Promise<number> {
  return withChannel(async (ch) => (await ch.checkQueue(queue)).messageCount);
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Takes the queue's next message with basic.get and returns it with reject+requeue, `times` times. */
async function returnUnsettled(queue: string, times: number): Promise<number[]> {
  return withChannel(async (ch) => {
    const counts: number[] = [];
    for (let i = 0; i < times; i++) {
      let m: GetMessage | false = false;
      for (let tries = 0; m === false && tries < 200; tries++) {
        m = await ch.get(queue, { noAck: false });
        if (m === false) await sleep(25);
      }
      assert.ok(m, `no message in ${queue}`);
      counts.push(Number(m.properties.headers?.['x-delivery-count'] ?? 0));
      ch.reject(m, true);
    }
    return counts;
  });
}

describe.skipIf(unavailable !== undefined)('rabbitmq incidents (real broker)', () => {
  it('reports the delivery at the quorum queue x-delivery-limit, naming the event; one more return is dead-lettered by the broker', async () => {
    const channel = unique('limit');
    const group = unique('g');
    created.push([channel, [group]]);
    const names = groupNames(PREFIX, channel, group);
    const { logger, errors } = capture();
    const b = bus(logger);
    await b.declare(channel, { groups: [group] });

    // What our topology does at the limit: after LIMIT + 1 unsettled returns the broker moves the
    // message to the group's dead-letter queue itself.
    const dropped = await b.publish(channel, { type: 'Crashy', data: { n: 1 } });
    assert.deepEqual(await returnUnsettled(names.queue, LIMIT + 1), [0, 1, 2]);
    await until(
      'the broker to dead-letter the message past its limit',
      async () => (await depth(names.deadLetters)) === 1,
    );
    assert.equal(await depth(names.queue), 0);
    const [crashLoop] = await b.listDeadLetters(channel, group);
    assert.equal(crashLoop?.event?.id, dropped.id);
    assert.equal(crashLoop?.info?.errorType, 'CrashLoopError');

    // An event returned LIMIT times: its next delivery is the last one before the broker takes over.
    const last = await b.publish(channel, { type: 'Crashy', data: { n: 2 } });
    assert.deepEqual(await returnUnsettled(names.queue, LIMIT), [0, 1]);
    const handled: string[] = [];
    await b.subscribe(channel, { group }, (e) => {
      handled.push(e.id);
    });
    await until('the handler', () => handled.length === 1);
    await until('the incident', () => b.stats().incidents === 1);
    assert.deepEqual(handled, [last.id]);
    const line = errors.find((l) => l.includes('max-deliveries'));
    assert.ok(line, `no max-deliveries error line in ${JSON.stringify(errors)}`);
    assert.ok(line.includes(last.id), `the error line does not name event ${last.id}: ${line}`);
    assert.ok(line.includes(`${channel}/${group}`), `the error line does not name ${channel}/${group}: ${line}`);
    await until('the ack', async () => (await depth(names.queue)) === 0);
  });

  it('a retry the broker returns (tier queue gone) is reported each time, and the delivery limit ends the loop in the dead-letter queue', async () => {
    const channel = unique('refused');
    const group = unique('g');
    created.push([channel, [group]]);
    const names = groupNames(PREFIX, channel, group);
    const { logger, errors } = capture();
    const b = bus(logger);
    let calls = 0;
    await b.subscribe(channel, { group, dedup: false, retry: { maxAttempts: 3, delays: [60_000] } }, () => {
      calls++;
      throw new Error('always');
    });
    // Someone deleted the tier queue: every retry publish is returned by the broker (mandatory).
    await withChannel((ch) => ch.deleteQueue(names.tier(60_000)));
    const sent = await b.publish(channel, { type: 'Doomed', data: {} });
    await until('the broker dead-letter at the delivery limit', async () => (await depth(names.deadLetters)) === 1);
    assert.equal(calls, LIMIT + 1, `handled ${calls} times`);
    const stats = b.stats();
    // LIMIT + 1 refused retries (each released) and the warning on the last delivery.
    assert.equal(stats.incidents, LIMIT + 2, `incidents ${stats.incidents}: ${JSON.stringify(errors)}`);
    assert.equal(errors.filter((l) => l.includes('settle-failed') && l.includes(sent.id)).length, LIMIT + 1);
    assert.equal(errors.filter((l) => l.includes('max-deliveries') && l.includes(sent.id)).length, 1);
    assert.equal(await depth(names.queue), 0);
  });
});
