import { strict as assert } from 'node:assert';
import { sleep } from '@wharf/conformance';
import { createBus, silentLogger } from '@wharf/core';
import * as amqp from 'amqplib';
import { afterAll, beforeAll, describe, it } from 'vitest';
import createRabbitMqAdapter from '../src/index.js';
import { unique } from './helpers.js';
import { DLX_WORKER_RETRY_MS, PrivateNode, privateNodeUnavailable } from './private-node.js';

// Retry copies wait in a tier queue until their TTL runs out; the broker then dead-letters them back
// to the group's queue. A kill -9 while copies wait lets their TTL run out during the outage. At boot,
// RabbitMQ recovers the quorum queues (and their dead-letter workers) before the exchanges: the worker
// finds no exchange "" yet and parks the copies until `dead_letter_worker_publisher_confirm_timeout`
// (180 s by default). Found as the saga's "unsettled" retried orders after a mid-run broker kill. The
// node here has the setting the README asks of operators (5 s): every retry must come back soon after
// the restart, none lost. With WHARF_RABBITMQ_DLX_WORKER_RETRY_MS=180000 this test fails.
const EVENTS = 30;
/** Each group has its own tier queue, each a separate chance for the broker's boot race. */
const GROUPS = ['g1', 'g2', 'g3', 'g4', 'g5', 'g6'];
/**
 * Idle quorum queues on the node: its boot recovers them all before the exchanges, which widens the
 * window in which a tier queue's worker runs without exchange "" (the saga's node has ~120 queues;
 * with a handful the window is a few milliseconds and the copies often slip through).
 */
const IDLE_QUEUES = 150;
/** Longer than the copies' store and the kill (rabbitmqctl flushes first), shorter than the outage. */
const DELAY_MS = 3_000;
/** The consumer's reconnect and the worker's 5 s retry, with slack for a loaded machine; far below 180 s. */
const BACK_WITHIN_MS = 30_000;

let node: PrivateNode;

beforeAll(async () => {
  if (privateNodeUnavailable !== undefined) return;
  node = await PrivateNode.start('retry-outage');
  const connection = await amqp.connect(node.url);
  const ch = await connection.createConfirmChannel();
  for (let i = 0; i < IDLE_QUEUES; i++) {
    await ch.assertQueue(`idle-${i}`, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    // A log to replay makes each queue's recovery take longer, as on a node in use.
    for (let m = 0; m < 20; m++) ch.sendToQueue(`idle-${i}`, Buffer.alloc(1024), { persistent: true });
  }
  await ch.waitForConfirms();
  await connection.close();
}, 180_000);

afterAll(async () => {
  await node?.destroy();
}, 120_000);

describe.skipIf(privateNodeUnavailable !== undefined)('rabbitmq retries due during a broker outage', () => {
  it('come back soon after a kill -9 and restart, none lost', { timeout: 240_000 }, async () => {
    const channel = unique('outage');
    const bus = createBus({
      adapter: createRabbitMqAdapter({ url: node.url, logger: silentLogger, publishWaitMs: 120_000 }),
      publishTimeoutMs: 120_000,
      logger: silentLogger,
      shutdownTimeoutMs: 1_000,
    });
    try {
      // Per group, the events its first attempt failed on and those its retry brought back.
      const firsts = GROUPS.map(() => new Set<string>());
      const seconds = GROUPS.map(() => new Set<string>());
      const total = (sets: Set<string>[]): number => sets.reduce((n, set) => n + set.size, 0);
      let allFailed!: () => void;
      const failedOnce = new Promise<void>((resolve) => {
        allFailed = resolve;
      });
      let allBack!: () => void;
      const back = new Promise<void>((resolve) => {
        allBack = resolve;
      });
      for (const [g, group] of GROUPS.entries()) {
        await bus.subscribe(
          channel,
          { group, concurrency: 8, retry: { maxAttempts: 3, delays: [DELAY_MS] } },
          (event, context) => {
            if (context.attempt === 1) {
              firsts[g]!.add(event.id);
              if (total(firsts) === EVENTS * GROUPS.length) setImmediate(allFailed);
              throw new Error('first attempt fails: a retry copy goes to the tier queue');
            }
            seconds[g]!.add(event.id);
            if (total(seconds) === EVENTS * GROUPS.length) allBack();
          },
        );
      }
      const sent = await Promise.all(
        Array.from({ length: EVENTS }, (_, n) => bus.publish(channel, { type: 'Tick', data: { n } })),
      );
      await failedOnce;
      // Let the last copies be confirmed, then kill within their delay, so it runs out while the node is down.
      await sleep(300);
      await node.kill9();
      await sleep(DELAY_MS);
      await node.boot();
      const restartedAt = Date.now();
      const late = sleep(BACK_WITHIN_MS).then(() => 'late' as const);
      const outcome = await Promise.race([back.then(() => 'back' as const), late]);
      const missing = GROUPS.flatMap((group, g) =>
        sent.filter((e) => !seconds[g]!.has(e.id)).map((e) => `${group}:${e.id}`),
      );
      assert.equal(
        outcome,
        'back',
        `${missing.length} of ${EVENTS * GROUPS.length} retries not back ${BACK_WITHIN_MS} ms after the restart (dead_letter_worker_publisher_confirm_timeout ${DLX_WORKER_RETRY_MS} ms), e.g. ${missing.slice(0, 3).join(', ')}`,
      );
      console.info(
        `[rabbitmq] ${EVENTS * GROUPS.length} retries due during the outage back ${Date.now() - restartedAt} ms after the restart`,
      );
    } finally {
      await bus.close();
    }
  });
});
