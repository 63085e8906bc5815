import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '@wharf/cli';
import { createBus, silentLogger } from '@wharf/core';
import { afterAll, expect, it } from 'vitest';

// The comparison on the shared NATS server (its JetStream streams are the cheapest to create and
// delete), briefly: two low rates for 2 s each and a 3 s payment outage. What it proves is not a
// figure but the claim's shape: the bus variant loses no accepted order while payment is down,
// the synchronous one fails the orders made meanwhile, and the report holds its charts.
const URL = process.env.WHARF_NATS_URL ?? 'nats://127.0.0.1:4222';
const required = ['CI', 'WHARF_REQUIRE_BROKERS'].some(
  (name) => !['', '0', 'false', undefined].includes(process.env[name]),
);
const dir = mkdtempSync(join(tmpdir(), 'wharf-compare-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function unavailable(): Promise<string | undefined> {
  const bus = createBus({ url: URL, logger: silentLogger });
  try {
    await bus.connect();
    return undefined;
  } catch (error) {
    return String(error);
  } finally {
    await bus.close().catch(() => {});
  }
}

it('measures both variants, loses no order on the bus through a payment outage, and writes the report', async (ctx) => {
  const why = await unavailable();
  if (why) {
    if (required) throw new Error(`[compare] the test needs NATS at ${URL} (CI / WHARF_REQUIRE_BROKERS): ${why}`);
    console.warn(`[compare] skipping: NATS at ${URL} is not reachable: ${why}`);
    ctx.skip(why);
  }
  const out: string[] = [];
  const err: string[] = [];
  const report = join(dir, 'report');
  const code = await main(
    ['compare', '--broker', URL, '--rates', '20,40', '--duration', '2', '--outage', '3', '--json', '--report', report],
    { out: (t) => out.push(t), err: (t) => err.push(t) },
  );
  expect(code, err.join('')).toBe(0);
  expect(out).toHaveLength(1);
  const result = JSON.parse(out[0] as string);
  expect(result.broker).toBe(URL);
  expect(result.machine.cpus).toBeGreaterThan(0);
  for (const variant of ['sync', 'async'] as const) {
    const v = result[variant];
    for (const key of [
      'acceptedPerSec',
      'p50Ms',
      'p99Ms',
      'completionP99Ms',
      'coresPer1k',
      'recoveryMs',
      'lost',
      'failed',
    ]) {
      expect(typeof v[key], `${variant}.${key}`).toBe('number');
    }
    expect(v.acceptedPerSec, variant).toBeGreaterThan(10);
    expect(v.coresPer1k, variant).toBeGreaterThan(0);
    expect(v.rates).toHaveLength(2);
    // Every order that ended, ended as the saga's scenario says (the same business rules both ways).
    for (const point of v.rates) expect(point.mismatched, variant).toBe(0);
  }
  // Payment down: the bus took every order and completed every accepted one once payment was back.
  expect(result.async.lost).toBe(0);
  expect(result.async.failed).toBe(0);
  expect(result.async.recoveryMs).toBeGreaterThanOrEqual(0);
  const outage = result.async.recovery.timeline.filter(
    (p: { t: number }) => p.t >= result.async.recovery.killedAt + 1 && p.t < result.async.recovery.restartedAt,
  );
  expect(outage.reduce((sum: number, p: { accepted: number }) => sum + p.accepted, 0)).toBeGreaterThan(0);
  // …while the synchronous side failed the orders made meanwhile, and lost none it had answered.
  expect(result.sync.failed).toBeGreaterThan(0);
  expect(result.sync.lost).toBe(0);

  const markdown = readFileSync(join(report, 'README.md'), 'utf8');
  expect(markdown).toContain('| accepted orders/s (saturation) |');
  for (const chart of ['throughput-latency.svg', 'recovery.svg']) {
    expect(markdown).toContain(`](${chart})`);
    const svg = readFileSync(join(report, chart), 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]*>/);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('<path');
    expect(svg).not.toContain('NaN');
  }
  expect(JSON.parse(readFileSync(join(report, 'compare.json'), 'utf8')).async.lost).toBe(0);
}, 180_000);

it('refuses memory:// and bad rates as usage errors, before starting anything, never printing a password', async () => {
  const run = async (...argv: string[]) => {
    const err: string[] = [];
    const code = await main(['compare', ...argv], { out: () => {}, err: (t) => err.push(t) });
    return { code, err: err.join('') };
  };
  const memory = await run('--broker', 'memory://');
  expect(memory.code).toBe(2);
  expect(memory.err).toContain('memory:// lives inside one process');
  const rates = await run('--broker', 'amqp://u:hunter2@127.0.0.1:5672', '--rates', '100,0');
  expect(rates.code).toBe(2);
  expect(rates.err).toContain('--rates must be positive');
  expect(rates.err).not.toContain('hunter2');
});
