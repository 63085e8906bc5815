import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { comparable, runSaga, SagaUsageError } from '../src/index.js';
import { BROKERS, deleteNamespace, runSagaProcess, skipOrFail, testNamespace } from './brokers.js';
import { EXPECTED_SUMMARY, ORDERS, SEED } from './expected.js';

// `--store postgres`: the order, inventory and payment services keep their state in PostgreSQL,
// handle each event in an inbox transaction and send through the outbox. The memory summary
// (test/saga.test.ts) is the reference: the PostgreSQL store must reach exactly it, on every broker.
const PG_URL = process.env.WHARF_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const admin = new pg.Pool({ connectionString: PG_URL, max: 2 });
afterAll(() => admin.end());

/** A schema name of this test's own, so parallel runs never share state. */
const uniqueSchema = (label: string): string => `wt_saga_${label}_${randomBytes(4).toString('hex')}`;

async function schemaExists(schema: string): Promise<boolean> {
  const { rowCount } = await admin.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  return (rowCount ?? 0) > 0;
}

/** What a finished run left in its schema: the outbox must be empty, the inbox holds each group's events. */
async function leftIn(schema: string) {
  const count = async (sql: string): Promise<number> => Number((await admin.query(sql)).rows[0].n);
  const inbox = await admin.query<{ group_name: string; n: string }>(
    `SELECT group_name, count(*) AS n FROM "${schema}".inbox GROUP BY group_name ORDER BY group_name`,
  );
  return {
    outbox: await count(`SELECT count(*) AS n FROM "${schema}".outbox`),
    outboxDeadLetters: await count(`SELECT count(*) AS n FROM "${schema}".outbox_dead_letters`),
    inbox: Object.fromEntries(inbox.rows.map((r) => [r.group_name, Number(r.n)])),
    confirmedOrders: await count(
      `SELECT count(*) AS n FROM "${schema}".saga_state WHERE store = 'orders' AND value->>'state' = 'confirmed'`,
    ),
    charges: await count(
      `SELECT coalesce(sum((value->>'charges')::int), 0) AS n FROM "${schema}".saga_state WHERE store = 'payments'`,
    ),
  };
}

describe('order saga with --store postgres', () => {
  it('reaches the memory summary on memory://, with its state, inbox and outbox in PostgreSQL', async () => {
    const schema = uniqueSchema('mem');
    try {
      const summary = await runSaga({
        url: 'memory://saga-postgres',
        orders: ORDERS,
        seed: SEED,
        store: 'postgres',
        postgresUrl: PG_URL,
        postgresSchema: schema,
      });
      expect(comparable(summary)).toEqual(EXPECTED_SUMMARY);
      const left = await leftIn(schema);
      // Everything was relayed, nothing parked; each transactional service recorded what it handled.
      expect(left.outbox).toBe(0);
      expect(left.outboxDeadLetters).toBe(0);
      expect(Object.keys(left.inbox)).toEqual(['inventory', 'order', 'payment']);
      // Payment handled one InventoryReserved per order that got that far: confirmed, declined, poison
      // (poison orders never commit, so they are not in its inbox).
      expect(left.inbox.payment).toBe(
        EXPECTED_SUMMARY.confirmed + EXPECTED_SUMMARY.cancelledByReason['payment-failed'],
      );
      expect(left.confirmedOrders).toBe(EXPECTED_SUMMARY.confirmed);
      expect(left.charges).toBe(EXPECTED_SUMMARY.confirmed);
      // Kept: the schema was named by the caller.
      expect(await schemaExists(schema)).toBe(true);
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });

  it('gives each run a schema of its own and drops it at the end', async () => {
    const summary = await runSaga({ url: 'memory://saga-postgres-own', orders: 20, seed: 3, store: 'postgres' });
    expect(summary.ok).toBe(true);
    expect(await schemaExists(`saga_${summary.run.runId}`)).toBe(false);
  });

  it('refuses options it cannot honour', async () => {
    await expect(runSaga({ url: 'memory://', orders: 1, store: 'disk' as never })).rejects.toThrow(SagaUsageError);
    await expect(runSaga({ url: 'memory://', orders: 1, postgresSchema: 'x' })).rejects.toThrow(
      /need --store postgres/,
    );
    await expect(
      runSaga({ url: 'memory://', orders: 1, store: 'postgres', postgresSchema: 'Bad-Name' }),
    ).rejects.toThrow(/lower-case SQL identifier/);
  });

  it('fails at start with a clear error when PostgreSQL cannot be reached', async () => {
    await expect(
      runSaga({ url: 'memory://', orders: 1, store: 'postgres', postgresUrl: 'postgres://postgres@127.0.0.1:1/test' }),
    ).rejects.toThrow(/cannot set up the saga's PostgreSQL store .*127\.0\.0\.1:1.*is PostgreSQL running\?/);
  });

  describe.each(BROKERS)('on $name', ({ name, url }) => {
    it('reaches the same summary as the memory store on memory', { timeout: 300_000 }, async (ctx) => {
      const namespace = testNamespace('pgstore');
      const schema = uniqueSchema(name);
      ctx.onTestFinished(async () => {
        await deleteNamespace(url, namespace);
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      });
      const result = await runSagaProcess([url, String(ORDERS), String(SEED)], {
        WHARF_SAGA_NAMESPACE: namespace,
        WHARF_SAGA_STORE: 'postgres',
        WHARF_SAGA_POSTGRES_URL: PG_URL,
        WHARF_SAGA_POSTGRES_SCHEMA: schema,
      });
      if (result.unavailable !== undefined) return skipOrFail(ctx, `the saga on ${name}`, result.unavailable);
      const { summary } = result;
      expect(summary.run.broker).toBe(name);
      expect(comparable(summary)).toEqual(EXPECTED_SUMMARY);
      const left = await leftIn(schema);
      expect(left.outbox).toBe(0);
      expect(left.charges).toBe(EXPECTED_SUMMARY.confirmed);
      console.info(
        `[saga] ${name} --store postgres: ${summary.timings.ordersPerSecond} orders/s (${summary.timings.durationMs} ms for ${ORDERS} orders)`,
      );
    });
  });
});
