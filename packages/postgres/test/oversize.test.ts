import { randomBytes } from 'node:crypto';
import { brokersRequired, probeBroker } from '@wharf/conformance';
import type { CloudEvent } from '@wharf/core';
import { conformanceHarness as natsHarness } from '@wharf/nats';
import { afterEach, describe, expect, it } from 'vitest';
import { createOutbox } from '../src/index.js';
import { recordingBus, sleep, type TestDb, testDb, until } from './harness.js';

// A payload larger than the real broker's limit (NATS `max_payload`, 1 MiB by default, which the
// adapter reads from the server): no retry can pass, so the relay must not try forever, nor drop
// it. It parks the row with the reason (or dead-letters it when configured) after one attempt.
const NATS_URL = process.env.WHARF_NATS_URL ?? 'nats://127.0.0.1:4222';
const natsDown = await probeBroker('NATS', '127.0.0.1', 4222);
const FAST = { pollIntervalMs: 250, backoff: { initialMs: 50, maxMs: 100 } } as const;
const seqOf = (e: CloudEvent) => (e.data as { seq: number }).seq;

describe('postgres: a payload larger than the broker accepts (NATS)', () => {
  if (natsDown) {
    if (brokersRequired()) {
      it('broker is reachable', () => {
        throw new Error(`${natsDown} — CI requires NATS`);
      });
    } else process.stdout.write(`[wharf] postgres oversize tests skipped: ${natsDown}\n`);
    return;
  }
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  async function scene(label: string, onPoison: 'block' | 'dead-letter') {
    const db: TestDb = await testDb(label);
    cleanups.push(() => db.drop());
    const ch = `pgbig-${randomBytes(3).toString('hex')}`;
    cleanups.push(() => natsHarness(NATS_URL).cleanup(ch));
    const { bus, received } = await recordingBus(ch, { url: NATS_URL });
    cleanups.push(() => bus.close());
    const outbox = createOutbox(db.pool, { schema: db.schema });
    // 1.5 MiB of data: over NATS's 1 MiB max_payload, well within what PostgreSQL stores.
    const big = randomBytes(1_536 * 1024).toString('base64');
    await outbox.transaction(async (client) => {
      await outbox.append(client, ch, { type: 'Before', partitionkey: 'p', data: { seq: 1 } });
      await outbox.append(client, ch, { type: 'TooBig', partitionkey: 'p', data: { seq: 2, big } });
      await outbox.append(client, ch, { type: 'After', partitionkey: 'p', data: { seq: 3 } });
      await outbox.append(client, ch, { type: 'Other', partitionkey: 'q', data: { seq: 4 } });
    });
    const relay = outbox.startRelay(bus, { ...FAST, onPoison });
    cleanups.push(() => relay.stop());
    return { db, outbox, relay, received };
  }

  it('parks it after one attempt with the reason, holds its key back, lets other keys go on', async () => {
    const { db, outbox, relay, received } = await scene('big_block', 'block');
    await until(async () => (await outbox.stats()).parked === 1, 15_000, 'the parked row');
    await until(() => received.length >= 2, 15_000, 'the publishable events');
    // Several polls later: still one attempt, nothing else sent (no retry loop), the key held back.
    await sleep(1_500);
    expect(received.map(seqOf).sort()).toEqual([1, 4]);
    expect(relay.stats()).toMatchObject({ failures: 1, parked: 1 });
    const { rows } = await db.pool.query(
      `SELECT type, attempts, last_error, parked_at, length(payload) AS bytes FROM "${db.schema}".outbox ORDER BY id`,
    );
    expect(rows.map((r) => r.type)).toEqual(['TooBig', 'After']);
    expect(rows[0]).toMatchObject({ attempts: 1 });
    expect(rows[0].parked_at).not.toBeNull();
    expect(rows[0].bytes).toBeGreaterThan(1_048_576);
    expect(rows[0].last_error).toMatch(/^MessageTooLargeError: .* \d+ bytes, above the broker's limit of \d+ bytes/);
    expect(rows[1].parked_at).toBeNull();
    expect(await outbox.stats()).toMatchObject({ parked: 1, unsent: 1 });
  });

  it("dead-letter mode moves it aside with the reason; the key's later events go on in order", async () => {
    const { db, outbox, relay, received } = await scene('big_dlq', 'dead-letter');
    await until(() => received.length >= 3, 15_000, 'the events around the oversized one');
    await until(async () => (await outbox.stats()).unsent === 0, 10_000, 'an empty outbox');
    expect(received.filter((e) => (e.partitionkey ?? '') === 'p').map(seqOf)).toEqual([1, 3]);
    expect(relay.stats()).toMatchObject({ failures: 1, parked: 1 });
    const { rows } = await db.pool.query(
      `SELECT type, attempts, last_error, length(payload) AS bytes FROM "${db.schema}".outbox_dead_letters`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ type: 'TooBig', attempts: 1 });
    expect(rows[0].bytes).toBeGreaterThan(1_048_576);
    expect(rows[0].last_error).toMatch(/^MessageTooLargeError: .*above the broker's limit/);
  });
});
