import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireBroker, TEST_BROKERS } from '@wharf/conformance';
import { afterAll, describe, expect, it } from 'vitest';
import { wharf } from './wharf.js';

const dir = mkdtempSync(join(tmpdir(), 'wharf-cli-observe-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Sum of a metric's samples in a Prometheus text exposition, over series whose labels include `where`. */
function sum(text: string, name: string, where: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const labels = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(where).every(([k, v]) => labels[k] === v)) total += Number(match[3]);
  }
  return total;
}

describe('wharf saga --metrics-file', () => {
  it('writes every service’s metrics at the end of the run, matching the summary', async () => {
    const file = join(dir, 'saga.prom');
    const run = await wharf('saga', '--broker', 'memory://', '--orders', '60', '--metrics-file', file, '--json');
    expect(run.code, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout) as {
      orders: number;
      retries: number;
      eventsPublished: number;
      eventsPublishedTwice: number;
      deadLettersByReason: Record<string, number>;
      run: { handlers: Record<string, { delivered: number }> };
    };
    const text = readFileSync(file, 'utf8');
    expect(sum(text, 'saga_orders_placed_total', { service: 'order' })).toBe(summary.orders);
    expect(sum(text, 'messaging_client_sent_messages_total')).toBe(
      summary.eventsPublished + summary.eventsPublishedTwice,
    );
    expect(sum(text, 'wharf_retries_total')).toBe(summary.retries);
    expect(sum(text, 'wharf_dead_lettered_total')).toBe(
      Object.values(summary.deadLettersByReason).reduce((a, b) => a + b, 0),
    );
    for (const [service, { delivered }] of Object.entries(summary.run.handlers)) {
      expect(sum(text, 'messaging_client_consumed_messages_total', { service }), service).toBe(delivered);
    }
  }, 120_000);

  it('refuses a bad metrics port, and a metrics file for a services-only process', async () => {
    const port = await wharf('saga', '--broker', 'memory://', '--metrics-port', 'x');
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('--metrics-port must be an integer');
    const services = await wharf('saga', '--broker', 'memory://', '--services', 'order', '--metrics-file', 'x.prom');
    expect(services.code).toBe(2);
    expect(services.stderr).toContain('--metrics-file is for the coordinator');
  });
});

describe('wharf bench --observe', () => {
  it('measures the bus with metrics and tracing on against the bus without, and shows they ran', async () => {
    const events = 2000;
    const run = await wharf(
      'bench',
      '--broker',
      'memory://',
      '--events',
      String(events),
      '--rounds',
      '1',
      '--observe',
      '--json',
    );
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as {
      bus: { throughput: number };
      observed: { throughput: number; lastRound: { spans: number; sent: number; consumed: number } };
      ratio: { observe: number };
    };
    expect(result.observed.throughput).toBeGreaterThan(0);
    expect(result.ratio.observe).toBeCloseTo(result.observed.throughput / result.bus.throughput, 1);
    // The observed round really was observed: a send and a process span per event, every event counted.
    expect(result.observed.lastRound.sent).toBe(events);
    expect(result.observed.lastRound.consumed).toBe(events);
    expect(result.observed.lastRound.spans).toBe(2 * events);
  }, 120_000);

  // Every broker: on Kafka it was once reported not to work. Each run counts its spans and series.
  for (const broker of TEST_BROKERS) {
    it(`observes the bench on ${broker.name} too`, async (ctx) => {
      if (!(await requireBroker(ctx, 'cli', broker))) return;
      const events = 1000;
      const args = ['--events', String(events), '--rounds', '1', '--observe', '--json'];
      const run = await wharf('bench', '--broker', broker.url, ...args);
      expect(run.code, run.stderr).toBe(0);
      const result = JSON.parse(run.stdout) as {
        observed: { throughput: number; lastRound: { spans: number; sent: number; consumed: number } };
        ratio: { observe: number };
      };
      expect(result.observed.throughput).toBeGreaterThan(0);
      expect(result.ratio.observe).toBeGreaterThan(0);
      expect(result.observed.lastRound).toEqual({ spans: 2 * events, sent: events, consumed: events });
    }, 180_000);
  }

  it('leaves ratio.observe out without --observe', async () => {
    const run = await wharf('bench', '--broker', 'memory://', '--events', '500', '--rounds', '1', '--json');
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { ratio: Record<string, number>; observed?: unknown };
    expect(result.ratio.observe).toBeUndefined();
    expect(result.observed).toBeUndefined();
  }, 60_000);
});
