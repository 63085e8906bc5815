import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import { silentLogger } from '@wharf/core';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createClient } from '../src/client.js';
import { createPlatformaticClient } from '../src/client-platformatic.js';
import { PrivateBroker } from './private-broker.js';

/** Sockets of this process still open to `port`: each keeps the process alive. */
function socketsTo(port: number): Socket[] {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.filter((h): h is Socket => h instanceof Socket && !h.destroyed && h.remotePort === port);
}

// One private broker for the file: its tests pause it and kill it.
let broker: PrivateBroker;
beforeAll(async () => {
  broker = await PrivateBroker.create();
  await broker.up();
}, 200_000);
afterAll(async () => {
  await broker?.stop();
}, 60_000);

// On both clients: a consumer whose group cannot be left (a broker that stopped answering, a coordinator that
// restarted) must still close its connections: the library's close() keeps them open when leaving
// fails, and a saga process then stayed alive after its bus had closed.
describe('closing clients whose broker does not answer', () => {
  it.each([
    ['kafkajs', createClient],
    ['platformatic', createPlatformaticClient],
  ] as const)(
    '%s: disconnect() of the consumer, producer and admin resolves within its request bound and leaves no socket to the broker open',
    async (_, create) => {
      const requestTimeoutMs = 2_000;
      const client = create({
        brokers: [`127.0.0.1:${broker.port}`],
        clientId: 'wharf-close-test',
        connectionTimeoutMs: 3_000,
        requestTimeoutMs,
        retries: 2,
        maxRetryTimeMs: 500,
        logger: silentLogger,
      });
      const topic = `close-${randomBytes(4).toString('hex')}`;
      const admin = await client.admin();
      await admin.createTopics([{ topic, partitions: 1, replicationFactor: -1, configs: {} }]);
      const producer = await client.producer({
        idempotent: true,
        acks: -1,
        retries: 2,
        maxRetryTimeMs: 500,
        requestTimeoutMs,
      });
      await producer.send([{ topic, records: [{ key: null, value: Buffer.from('x'), headers: {} }] }]);
      const consumer = client.consumer({
        groupId: `${topic}-g`,
        sessionTimeoutMs: 6_000,
        rebalanceTimeoutMs: 10_000,
        heartbeatIntervalMs: 300,
        maxWaitTimeMs: 100,
        partitionsConcurrently: 1,
      });
      const assigned = new Promise<void>((resolve) => consumer.onAssigned(() => resolve()));
      void consumer.run([topic], async () => undefined);
      await assigned;
      assert.ok(socketsTo(broker.port).length > 0, 'the consumer is connected');

      await broker.pause();
      try {
        const started = performance.now();
        await Promise.all([consumer.disconnect(), producer.disconnect(), admin.disconnect()]);
        const elapsed = performance.now() - started;
        // The leave request is bounded by the fetch wait plus the request timeout; then the sockets are closed.
        assert.ok(elapsed < requestTimeoutMs + 3_000, `disconnect took ${Math.round(elapsed)} ms`);
        assert.deepEqual(
          socketsTo(broker.port).map((s) => `${s.localPort}->${s.remotePort}`),
          [],
          'no socket left open to the broker',
        );
      } finally {
        await broker.resume();
      }
    },
    60_000,
  );
});

// kafkajs' send reconnects a disconnected cluster when it retries (sendMessages.js: `if
// (!cluster.isConnected()) await cluster.connect()`), and its admin refreshes metadata the same way,
// so a call still retrying when its client is disconnected — a publish whose caller gave up, a
// replaced producer's — opened a connection that no one closed: after a broker kill -9 mid-run, a
// saga process stayed alive with it until the broker dropped idle connections (10 min). The
// producer and the admin disconnect again once their calls have ended. @platformatic/kafka is held
// to the same (it passed without a change).
describe('a call still retrying when its client is disconnected', () => {
  const settings = { retries: 30, maxRetryTimeMs: 500, requestTimeoutMs: 2_000 };
  const connect = (create: typeof createClient, clientId: string) =>
    create({
      brokers: [`127.0.0.1:${broker.port}`],
      clientId,
      connectionTimeoutMs: 1_000,
      ...settings,
      logger: silentLogger,
    });

  /**
   * Kills the broker, starts `call` (it retries: connections are refused), disconnects its client,
   * brings the broker back, and once the call has ended checks that no socket to the broker is open.
   */
  async function retryingThroughDisconnect(call: () => Promise<unknown>, disconnect: () => Promise<void>) {
    await broker.kill9();
    const outcome = call().then(
      () => 'succeeded',
      (error: Error) => `failed: ${error.message}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    const disconnected = disconnect();
    await broker.up();
    const ended = await outcome;
    await disconnected;
    // The retry that reconnected, if any, has ended: nothing may stay open.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(
      socketsTo(broker.port).map((s) => `${s.localPort}->${s.remotePort}`),
      [],
      `no socket left open to the broker (the call ${ended})`,
    );
  }

  const clients = [
    ['kafkajs', createClient],
    ['platformatic', createPlatformaticClient],
  ] as const;

  it.each(clients)(
    '%s: a send leaves no connection to the broker once it ended, even when the broker came back meanwhile',
    async (_, create) => {
      const client = connect(create, 'wharf-close-retrying');
      const topic = `close-retrying-${randomBytes(4).toString('hex')}`;
      const admin = await client.admin();
      await admin.createTopics([{ topic, partitions: 1, replicationFactor: -1, configs: {} }]);
      await admin.disconnect();
      const producer = await client.producer({ idempotent: true, acks: -1, ...settings });
      const record = { key: null, value: Buffer.from('x'), headers: {} };
      await producer.send([{ topic, records: [record] }]);
      await retryingThroughDisconnect(
        () => producer.send([{ topic, records: [record] }]),
        () => producer.disconnect(),
      );
    },
    120_000,
  );

  it.each(clients)(
    '%s: an admin call leaves no connection either',
    async (_, create) => {
      const client = connect(create, 'wharf-close-admin-retrying');
      const topic = `close-admin-${randomBytes(4).toString('hex')}`;
      const admin = await client.admin();
      await admin.createTopics([{ topic, partitions: 1, replicationFactor: -1, configs: {} }]);
      await retryingThroughDisconnect(
        () => admin.ends(topic),
        () => admin.disconnect(),
      );
    },
    120_000,
  );
});
