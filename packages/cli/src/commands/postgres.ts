import { createBus, redactUrl } from '@wharf/core';
import { CdcRelay, createOutbox, migrate } from '@wharf/postgres';
import pg from 'pg';
import { brokerUrl, parse, positiveInt, UsageError } from '../args.js';
import { json, type Output } from '../output.js';

export const postgresUsage = `wharf postgres migrate --url <postgres-url> [--schema S] [--json]
wharf postgres relay   --url <postgres-url> [--broker <url>] [--schema S] [--partitions N]
                       [--concurrency N] [--lease-ttl MS] [--listen] [--cdc [--slot S]]

migrate applies the outbox and inbox SQL migrations shipped with @wharf/postgres (idempotent; safe
when several processes run it at once). relay publishes the outbox's rows to the broker until
SIGINT or SIGTERM, then stops gracefully (the round in progress finishes, leases are given back).
--url defaults to WHARF_POSTGRES_URL; --schema to "wharf"; --partitions (16) must match the writers'.
--cdc streams the outbox's inserts from a logical replication slot (--slot, default wharf_<schema>;
one per relay group) instead of polling; it needs wal_level = logical and falls back to polling,
with a warning, where CDC cannot run. Run either CDC relays or polling relays on a schema, not both.`;

/** `wharf postgres migrate|relay`. `signal` stops the relay (SIGINT/SIGTERM when not given). */
export async function postgres(argv: string[], output: Output, signal?: AbortSignal): Promise<number> {
  const { values, positionals } = parse(argv, {
    url: { type: 'string' },
    broker: { type: 'string' },
    schema: { type: 'string' },
    partitions: { type: 'string' },
    concurrency: { type: 'string' },
    'lease-ttl': { type: 'string' },
    listen: { type: 'boolean' },
    cdc: { type: 'boolean' },
    slot: { type: 'string' },
    json: { type: 'boolean' },
  });
  const [action] = positionals;
  if (action !== 'migrate' && action !== 'relay') throw new UsageError('postgres needs an action: migrate or relay');
  const url = values.url ?? process.env.WHARF_POSTGRES_URL;
  if (!url) throw new UsageError('postgres needs --url <postgres-url> (or WHARF_POSTGRES_URL)');
  const schema = values.schema ?? 'wharf';
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  // An idle client's connection error must not crash the process; the relay retries on its own.
  pool.on('error', (error) => output.err(`[wharf] [postgres] idle connection lost: ${error.message}`));
  try {
    if (action === 'migrate') {
      const result = await migrate(pool, { schema });
      if (values.json) json(output, { postgres: redactUrl(url), ...result });
      else if (result.applied.length === 0) output.out(`schema "${schema}" is up to date`);
      else output.out(`applied to schema "${schema}": ${result.applied.join(', ')}`);
      return 0;
    }
    return await relay(pool, output, {
      broker: brokerUrl(values.broker),
      schema,
      partitions: positiveInt(values.partitions, 'partitions', 16),
      concurrency: positiveInt(values.concurrency, 'concurrency', 64),
      leaseTtlMs: positiveInt(values['lease-ttl'], 'lease-ttl', 10_000),
      listen: values.listen ?? false,
      cdc: values.cdc ?? false,
      slot: values.slot,
      signal,
    });
  } finally {
    await pool.end();
  }
}

async function relay(
  pool: pg.Pool,
  output: Output,
  o: {
    broker: string;
    schema: string;
    partitions: number;
    concurrency: number;
    leaseTtlMs: number;
    listen: boolean;
    cdc: boolean;
    slot: string | undefined;
    signal: AbortSignal | undefined;
  },
): Promise<number> {
  const bus = createBus({ url: o.broker });
  const outbox = createOutbox(pool, { schema: o.schema, partitions: o.partitions });
  const options = { concurrency: o.concurrency, leaseTtlMs: o.leaseTtlMs, listen: o.listen };
  const relay = o.cdc
    ? outbox.startRelay(bus, { ...options, mode: 'cdc', ...(o.slot === undefined ? {} : { slot: o.slot }) })
    : outbox.startRelay(bus, options);
  if (relay instanceof CdcRelay) {
    output.err(`CDC relay on slot "${relay.slot}": schema "${o.schema}" -> ${redactUrl(o.broker)} (Ctrl-C stops it)`);
    void relay.ready.then((mode) =>
      output.err(
        mode === 'cdc'
          ? `relay mode: cdc (streaming from slot "${relay.slot}")`
          : `relay mode: polling (fallback: ${relay.stats().fallback ?? 'stopped before streaming'})`,
      ),
    );
  } else output.err(`relay ${relay.owner}: schema "${o.schema}" -> ${redactUrl(o.broker)} (Ctrl-C stops it)`);
  const published = (): number =>
    relay instanceof CdcRelay
      ? relay.stats().published + (relay.stats().polling?.published ?? 0)
      : relay.stats().published;
  const report = setInterval(() => {
    const detail =
      relay instanceof CdcRelay
        ? `mode ${relay.mode} · transactions ${relay.stats().transactions}`
        : `partitions ${relay.stats().partitions.length}`;
    outbox
      .stats()
      .then((s) =>
        output.err(
          `published ${published()} · ${detail} · unsent ${s.unsent} · oldest ${s.oldestUnsentAgeMs} ms · parked ${s.parked}`,
        ),
      )
      .catch(() => undefined);
  }, 5_000);
  await new Promise<void>((resolve) => {
    if (o.signal) {
      if (o.signal.aborted) resolve();
      o.signal.addEventListener('abort', () => resolve(), { once: true });
      return;
    }
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  clearInterval(report);
  output.err('stopping the relay…');
  await relay.stop();
  await bus.close();
  output.err(`relay stopped after publishing ${published()} events`);
  return 0;
}
