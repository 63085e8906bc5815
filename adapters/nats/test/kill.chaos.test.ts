import { sleep, untilAccepted } from '@wharf/conformance';
import { type Bus, createBus, type Logger } from '@wharf/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import createNatsAdapter from '../src/index.js';
import { unavailable } from './helpers.js';
import { PrivateNatsServer } from './private-server.js';

// Issue 13 (NATS): a nats-server kill -9 in the middle of a workload with retries and dead letters. Runs on a
// private server started by the test (the shared one on 4222 is never touched).

async function until(predicate: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** Keeps error lines, and a timeline of everything for the report of a failure. */
function recording(): Logger & { errors: string[]; timeline: string[] } {
  const errors: string[] = [];
  const timeline: string[] = [];
  const at = (message: string) => timeline.push(`${new Date().toISOString().slice(11, 23)} ${message}`);
  return {
    errors,
    timeline,
    debug: () => {},
    info: at,
    warn: at,
    error: (message) => {
      at(message);
      errors.push(message);
    },
  };
}

let server: PrivateNatsServer;
beforeAll(async () => {
  if (unavailable === undefined) server = await PrivateNatsServer.start();
});
afterAll(async () => {
  await server?.stop();
});

describe.skipIf(unavailable !== undefined)('nats adapter across a server kill -9 (private server)', () => {
  it('loses nothing and leaves nothing stuck: retries, dead letters and fan-out through a kill -9 and restart', async () => {
    const logger = recording();
    const bus: Bus = createBus({
      adapter: createNatsAdapter({ url: server.url, logger, purgeIntervalMs: 250, publishTimeoutMs: 3_000 }),
      logger,
    });
    const channel = 'kill-chaos';
    const kind = (n: number) => (n % 10 === 0 ? 'Poison' : n % 10 === 1 ? 'Flaky' : 'Fine');
    const succeeded = new Map<string, number>();
    const audited = new Map<string, number>();
    let back = 0;
    let firstAfterBack = 0;
    try {
      await bus.declare(channel, { groups: ['work', 'audit'] });
      await bus.subscribe(
        channel,
        { group: 'work', concurrency: 8, retry: { maxAttempts: 3, delays: [300, 600] } },
        async (event, ctx) => {
          if (back > 0 && firstAfterBack === 0) {
            firstAfterBack = Date.now();
            logger.info(`test: first delivery after the restart: ${event.id}`);
          }
          if (event.type === 'Poison') throw new Error('never succeeds');
          if (event.type === 'Flaky' && ctx.attempt < 2) throw new Error('fails once');
          succeeded.set(event.id, (succeeded.get(event.id) ?? 0) + 1);
        },
      );
      await bus.subscribe(channel, { group: 'audit', concurrency: 8 }, async (event) => {
        audited.set(event.id, (audited.get(event.id) ?? 0) + 1);
      });

      // Published one at a time through the outage; a failed publish is repeated with its id (deduplicated).
      const sent: { id: string; type: string }[] = [];
      let publishing = true;
      const publisher = (async () => {
        for (let n = 0; publishing; n++) {
          const input = { type: kind(n), id: `k-${n}`, data: { n } };
          await untilAccepted(() => bus.publish(channel, input), 100, 250);
          sent.push(input);
          await sleep(4);
        }
      })();
      await sleep(1_500);
      await server.kill();
      await sleep(1_500);
      await server.restart();
      back = Date.now();
      logger.info('test: the server is back');
      // Dead letters can be read while JetStream is still recovering (reads retry transient failures).
      await bus.listDeadLetters(channel, 'work');
      logger.info('test: dead letters listed');
      await until(() => firstAfterBack > 0, 'the first delivery after the restart', 15_000);
      const recoveryMs = firstAfterBack - back;
      await sleep(1_000);
      publishing = false;
      await publisher;

      const poison = sent.filter((e) => e.type === 'Poison').map((e) => e.id);
      const good = sent.filter((e) => e.type !== 'Poison').map((e) => e.id);
      // A delivery whose ack the kill lost comes back after ack_wait (30 s): the bound covers it.
      await until(
        () => good.every((id) => succeeded.has(id)) && sent.every((e) => audited.has(e.id)),
        'every event handled by both groups',
        60_000,
      );
      await until(() => bus.stats().deadLettered >= poison.length, 'every poison event dead-lettered', 30_000);
      const dead = (await bus.listDeadLetters(channel, 'work', { limit: 10_000 })).map((d) => d.event?.id ?? '?');

      expect(new Set(dead)).toEqual(new Set(poison));
      // Exactly-once effects (the dedup store absorbs redeliveries).
      expect([...succeeded.values()].filter((n) => n !== 1)).toEqual([]);
      expect([...audited.values()].filter((n) => n !== 1)).toEqual([]);
      expect(logger.errors.filter((line) => line.includes('max-deliveries'))).toEqual([]);
      expect(recoveryMs, logger.timeline.join('\n')).toBeLessThan(5_000);
      process.stdout.write(
        `[wharf] nats kill -9: ${sent.length} events, recovery ${recoveryMs} ms after the restart, ${dead.length} dead letters\n`,
      );
    } finally {
      await bus.close();
    }
  }, 150_000);
});
