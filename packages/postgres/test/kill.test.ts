import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { brokersRequired, probeBroker } from '@wharf/conformance';
import { createBus, silentLogger } from '@wharf/core';
import { escapeName, conformanceHarness as natsHarness } from '@wharf/nats';
import { conformanceHarness as rabbitHarness } from '@wharf/rabbitmq';
import { afterEach, describe, expect, it } from 'vitest';
import { createInbox, createOutbox } from '../src/index.js';
import { PG_URL, sleep, type TestDb, testDb, until } from './harness.js';

const NATS_URL = process.env.WHARF_NATS_URL ?? 'nats://127.0.0.1:4222';
const AMQP_URL = process.env.WHARF_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

interface Broker {
  readonly name: string;
  readonly url: string;
  readonly unavailable: string | undefined;
  cleanup(channel: string): Promise<void>;
  /** What the inbox saw: JetStream drops the republish by its Nats-Msg-Id; RabbitMQ delivers it again. */
  readonly outcomes: boolean[];
  /** Extra checks on the broker after the takeover. */
  check?(channel: string): Promise<void>;
}

const BROKERS: Broker[] = [
  {
    name: 'NATS',
    url: NATS_URL,
    unavailable: await probeBroker('NATS', '127.0.0.1', 4222),
    cleanup: (channel) => natsHarness(NATS_URL).cleanup(channel),
    outcomes: [false],
    async check(channel) {
      // JetStream recognised the republish as a duplicate (same source + id): one message was ever
      // stored. `last_seq`, not `messages`: the adapter's retention purge removes settled events (every
      // 5 s), so the count of messages held could already be 0 (CI saw it).
      const nc = await connect({ servers: NATS_URL.replace('nats://', '') });
      try {
        const jsm = await jetstreamManager(nc);
        const info = await jsm.streams.info(`WHARF-${escapeName(channel)}`);
        expect(info.state.last_seq).toBe(1);
      } finally {
        await nc.close();
      }
    },
  },
  {
    name: 'RabbitMQ',
    url: AMQP_URL,
    unavailable: await probeBroker('RabbitMQ', '127.0.0.1', 5672),
    // The default policy's retry tiers (5 s, 30 s) were declared by this process's subscription.
    cleanup: (channel) => rabbitHarness(AMQP_URL).cleanup(channel, ['g'], [5_000, 30_000]),
    // Delivered twice; the inbox recognises the second and the consumer acks it.
    outcomes: [false, true],
  },
];

/** Starts a relay process; resolves once it printed `line` (a prefix), with the rest of that line. */
function child(
  schema: string,
  brokerUrl: string,
  ttlMs: number,
  partitions = 16,
): { proc: ChildProcess; waitFor: (prefix: string) => Promise<string> } {
  const script = fileURLToPath(new URL('./fixtures/relay-child.ts', import.meta.url));
  const proc = spawn(
    process.execPath,
    [
      '--conditions=wharf-source',
      '--import',
      'tsx',
      script,
      PG_URL,
      schema,
      brokerUrl,
      String(ttlMs),
      String(partitions),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  let buffer = '';
  proc.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    lines.push(...parts);
    for (const wake of waiters.splice(0)) wake();
  });
  const waitFor = async (prefix: string): Promise<string> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const line = lines.find((l) => l.startsWith(prefix));
      if (line !== undefined) return line.slice(prefix.length).trim();
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`relay child never printed "${prefix}"`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  };
  return { proc, waitFor };
}

describe.each(BROKERS)('postgres: relay killed with kill -9 between publish and delete ($name)', (broker) => {
  if (broker.unavailable) {
    if (brokersRequired()) {
      it('broker is reachable', () => {
        throw new Error(`${broker.unavailable} — CI requires ${broker.name}`);
      });
    } else {
      process.stdout.write(`[wharf] postgres kill test on ${broker.name} skipped: ${broker.unavailable}\n`);
    }
    return;
  }
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('the event is republished after the lease TTL and its effect is applied once', async () => {
    const db: TestDb = await testDb('kill');
    cleanups.push(() => db.drop());
    await db.pool.query(`CREATE TABLE "${db.schema}".effects (event_id text)`);
    const channel = `pgk-${randomBytes(3).toString('hex')}`;
    cleanups.push(() => broker.cleanup(channel));
    const bus = createBus({ url: broker.url, logger: silentLogger });
    cleanups.push(() => bus.close());
    const inbox = createInbox(db.pool, { schema: db.schema });
    const outcomes: boolean[] = [];
    // Bus dedup off: the inbox alone decides, in the effect's own transaction.
    await bus.subscribe(channel, { group: 'g', dedup: false }, async (event) => {
      const outcome = await inbox.handle(event, 'g', (client) =>
        client.query(`INSERT INTO "${db.schema}".effects VALUES ($1)`, [event.id]),
      );
      outcomes.push(outcome.duplicate);
    });
    const outbox = createOutbox(db.pool, { schema: db.schema, partitions: 4 });
    const appended = await outbox.transaction((client) =>
      outbox.append(client, channel, { type: 'OrderPlaced', partitionkey: 'o-1', data: { id: 'o-1' } }),
    );

    const TTL = 2_000;
    const relayChild = child(db.schema, broker.url, TTL, 4);
    cleanups.push(async () => {
      if (relayChild.proc.exitCode === null) relayChild.proc.kill('SIGKILL');
    });
    expect(await relayChild.waitFor('published ')).toBe(appended.id);
    relayChild.proc.kill('SIGKILL');
    const killedAt = Date.now();
    await until(() => outcomes.length === 1, 10_000, 'the first delivery');
    // Confirmed by the broker but never deleted: the row is still there.
    expect((await outbox.stats()).unsent).toBe(1);

    const survivor = outbox.startRelay(bus, { leaseTtlMs: TTL, pollIntervalMs: 250, logger: silentLogger });
    cleanups.push(() => survivor.stop());
    // Both: the relay counts a row once its DELETE's answer reaches it, and this poll, on another
    // connection, can see the commit first (CI saw published 0 right after unsent 0).
    await until(
      async () => (await outbox.stats()).unsent === 0 && survivor.stats().published > 0,
      15_000,
      'the survivor to send and delete the row',
    );
    const tookOverAfter = Date.now() - killedAt;
    // The dead relay's leases had to expire first.
    expect(tookOverAfter).toBeGreaterThanOrEqual(TTL - 500);
    expect(survivor.stats().published).toBe(1);
    await sleep(500);

    await until(() => outcomes.length >= broker.outcomes.length, 10_000, 'the deliveries');
    await sleep(300);
    await broker.check?.(channel);
    expect(outcomes).toEqual(broker.outcomes);
    const { rows } = await db.pool.query(`SELECT event_id FROM "${db.schema}".effects`);
    expect(rows).toEqual([{ event_id: appended.id }]);
  });
  it('two relays: one is killed, the other takes its partitions over after the TTL; every event arrives in key order', async () => {
    const db: TestDb = await testDb('takeover');
    cleanups.push(() => db.drop());
    const channel = `pgt-${randomBytes(3).toString('hex')}`;
    cleanups.push(() => broker.cleanup(channel));
    const bus = createBus({ url: broker.url, logger: silentLogger });
    cleanups.push(() => bus.close());
    const received: { id: string; key: string; seq: number }[] = [];
    await bus.subscribe(channel, { group: 'g', dedup: false }, async (event) => {
      received.push({ id: event.id, key: event.partitionkey ?? '', seq: (event.data as { seq: number }).seq });
    });
    const TTL = 2_000;
    const outbox = createOutbox(db.pool, { schema: db.schema, partitions: 4 });
    const survivor = outbox.startRelay(bus, { leaseTtlMs: TTL, pollIntervalMs: 250, logger: silentLogger });
    cleanups.push(() => survivor.stop());
    await until(() => survivor.stats().partitions.length === 4, 10_000, 'the survivor to lease everything');
    const relayChild = child(db.schema, broker.url, TTL, 4);
    cleanups.push(async () => {
      if (relayChild.proc.exitCode === null) relayChild.proc.kill('SIGKILL');
    });
    await relayChild.waitFor('leased');
    await until(() => survivor.stats().partitions.length === 2, 10_000, 'a 2/2 split');
    const N = 80;
    await outbox.transaction(async (client) => {
      for (let seq = 0; seq < N; seq++) {
        await outbox.append(client, channel, { type: 'E', partitionkey: `k${seq % 8}`, data: { seq } });
      }
    });
    // The child publishes the first row of one of its partitions and stalls before deleting it.
    await relayChild.waitFor('published ');
    relayChild.proc.kill('SIGKILL');
    const killedAt = Date.now();
    await until(() => survivor.stats().partitions.length === 4, 15_000, 'the takeover');
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(TTL - 700);
    await until(() => new Set(received.map((r) => r.id)).size === N, 20_000, 'every event');
    await until(async () => (await outbox.stats()).unsent === 0, 5_000, 'an empty outbox');
    for (let k = 0; k < 8; k++) {
      const firsts: number[] = [];
      for (const r of received) if (r.key === `k${k}` && !firsts.includes(r.seq)) firsts.push(r.seq);
      expect(firsts, `key k${k}`).toEqual([...firsts].sort((a, b) => a - b));
    }
  });
});
