import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@wharf/chaos';
import { createBus, silentLogger } from '@wharf/core';
import { afterAll, describe, expect, it } from 'vitest';
import { channelGroups, runSaga, SagaUsageError, SERVICES, startServices } from '../src/index.js';
import { mergeExpositions, withLabel } from '../src/metrics.js';
import { ORDERS, SEED } from './expected.js';
import { parseExposition, total } from './prom-text.js';

const dir = mkdtempSync(join(tmpdir(), 'wharf-saga-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** True when nothing listens on the loopback port. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** The first of `count` consecutive free ports, below the ephemeral range (from `freePort`). */
async function consecutiveFreePorts(count: number): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = await freePort();
    const free = await Promise.all(Array.from({ length: count - 1 }, (_, i) => canListen(base + i + 1)));
    if (free.every(Boolean)) return base;
  }
  throw new Error(`no ${count} consecutive free ports`);
}

describe('saga metrics', () => {
  it('writes every service’s metrics at the end of a run, with counts matching the summary', async () => {
    const file = join(dir, 'nested', 'run.prom');
    const summary = await runSaga({ url: 'memory://saga-metrics', orders: ORDERS, seed: SEED, metricsFile: file });
    expect(summary.ok).toBe(true);
    const text = readFileSync(file, 'utf8');
    // One valid exposition: every family's TYPE once, although five registries wrote it.
    const types = text.split('\n').filter((line) => line.startsWith('# TYPE '));
    expect(new Set(types).size).toBe(types.length);
    const samples = parseExposition(text);

    // Every service has its own series.
    for (const service of SERVICES) {
      expect(total(samples, 'messaging_client_consumed_messages_total', { service })).toBe(
        summary.run.handlers[service]!.delivered,
      );
      expect(total(samples, 'wharf_handler_in_flight', { service })).toBe(0);
    }
    expect(total(samples, 'saga_orders_placed_total', { service: 'order' })).toBe(summary.orders);
    // Every publish of the run, the deliberate second copies included, confirmed by the broker.
    expect(total(samples, 'messaging_client_sent_messages_total', { error_type: '' })).toBe(
      summary.eventsPublished + summary.eventsPublishedTwice,
    );
    expect(total(samples, 'messaging_client_sent_messages_total')).toBe(
      summary.eventsPublished + summary.eventsPublishedTwice,
    );
    expect(total(samples, 'wharf_retries_total')).toBe(summary.retries);
    expect(total(samples, 'wharf_retries_total', { service: 'payment' })).toBe(summary.retries);
    const deadLetters: Record<string, number> = {};
    for (const s of samples.filter((s) => s.name === 'wharf_dead_lettered_total')) {
      deadLetters[s.labels.reason!] = (deadLetters[s.labels.reason!] ?? 0) + s.value;
    }
    expect(deadLetters).toEqual(summary.deadLettersByReason);

    // Successful handler calls, per outcome of the saga.
    const handled = (service: string, destination: string) =>
      total(samples, 'messaging_process_duration_seconds_count', { service, destination, error_type: '' });
    expect(handled('order', 'payments.completed')).toBe(summary.confirmed);
    expect(handled('order', 'inventory.rejected')).toBe(summary.cancelledByReason['inventory-rejected']);
    expect(handled('order', 'inventory.released')).toBe(summary.cancelledByReason['payment-failed']);
    expect(
      total(samples, 'messaging_process_duration_seconds_count', { service: 'notification', error_type: '' }),
    ).toBe(summary.notificationsSent);
    // The audit service handles every distinct event once (copies are dropped before the handler)…
    expect(total(samples, 'messaging_process_duration_seconds_count', { service: 'audit' })).toBe(
      summary.eventsPublished,
    );
    // …and receives every copy of every event published, channel by channel.
    for (const s of samples.filter((s) => s.name === 'messaging_client_sent_messages_total')) {
      expect(
        total(samples, 'messaging_client_consumed_messages_total', {
          service: 'audit',
          destination: s.labels.destination!,
        }),
      ).toBe(s.value);
    }
    // Every handler call waited for something: the end-to-end histogram has one per call.
    expect(total(samples, 'wharf_end_to_end_latency_seconds_count')).toBe(
      total(samples, 'messaging_process_duration_seconds_count'),
    );
  });

  it('serves each service’s registry on GET /metrics while the services run', async () => {
    const running = await startServices({ url: 'memory://saga-metrics-http', stateDir: false });
    try {
      expect(Object.keys(running.metricsUrls).sort()).toEqual([...SERVICES].sort());
      const placed = await fetch(`${running.orderUrl}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          customerId: 'cus_1',
          customerEmail: 'ada@example.com',
          lines: [{ sku: 'BOOK-0001', quantity: 1, unitPrice: { amount: 1999, currency: 'EUR' } }],
        }),
      });
      expect(placed.status).toBe(202);
      const order = await fetch(running.metricsUrls.order!);
      expect(order.status).toBe(200);
      expect(order.headers.get('content-type')).toContain('text/plain');
      const samples = parseExposition(await order.text());
      expect(total(samples, 'saga_orders_placed_total')).toBe(1);
      expect(total(samples, 'messaging_client_sent_messages_total', { destination: 'orders.placed' })).toBe(1);
      expect(new Set(samples.map((s) => s.labels.service))).toEqual(new Set(['order']));
      // Another service's endpoint holds only its own series.
      const audit = parseExposition(await (await fetch(running.metricsUrls.audit!)).text());
      expect(new Set(audit.map((s) => s.labels.service))).toEqual(new Set(['audit']));
      expect(audit.some((s) => s.name === 'saga_orders_placed_total')).toBe(false);
      const other = await fetch(running.metricsUrls.order!.replace('/metrics', '/other'));
      expect(other.status).toBe(404);
    } finally {
      await running.close();
    }
  });

  it('reports the backlog of each service’s groups on /metrics (wharf_consumer_backlog_messages)', async () => {
    const url = 'memory://saga-metrics-backlog';
    const running = await startServices({ url, stateDir: false });
    // A bus of the test's own on the same in-process broker, for the broker's own answer.
    const spy = createBus({ url, logger: silentLogger });
    try {
      // 19.53 EUR: the payment gateway's poison case, which payment dead-letters at once.
      const placed = await fetch(`${running.orderUrl}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          customerId: 'cus_1',
          customerEmail: 'ada@example.com',
          lines: [{ sku: 'BOOK-0001', quantity: 1, unitPrice: { amount: 1953, currency: 'EUR' } }],
        }),
      });
      expect(placed.status).toBe(202);
      let deadLetters = 0;
      for (let i = 0; i < 250 && deadLetters === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        deadLetters = (await spy.backlog('inventory.reserved', 'payment')).deadLetters;
      }
      expect(deadLetters).toBe(1);
      for (const service of SERVICES) {
        const samples = parseExposition(await (await fetch(running.metricsUrls[service]!)).text()).filter(
          (s) => s.name === 'wharf_consumer_backlog_messages',
        );
        const groups = [...channelGroups()].filter(([, consumers]) => consumers.includes(service));
        expect(groups.length, service).toBeGreaterThan(0);
        // Every group the service consumes in, with each state, as the broker reports it.
        expect(samples.length, service).toBe(groups.length * 4);
        for (const [channel] of groups) {
          const backlog = await spy.backlog(channel, service);
          const value = (state: string) =>
            total(samples, 'wharf_consumer_backlog_messages', { destination: channel, consumer_group: service, state });
          expect([value('ready'), value('in_flight'), value('delayed'), value('dead_letter')], channel).toEqual([
            backlog.ready,
            backlog.inFlight,
            backlog.delayed,
            backlog.deadLetters,
          ]);
        }
      }
      const payment = parseExposition(await (await fetch(running.metricsUrls.payment!)).text());
      expect(total(payment, 'wharf_consumer_backlog_messages', { state: 'dead_letter' })).toBe(1);
    } finally {
      await spy.close();
      await running.close();
    }
  });

  it('puts the services on consecutive ports from --metrics-port', async () => {
    // Five consecutive ports, below the ephemeral range (an outgoing connection could hold one there).
    const base = await consecutiveFreePorts(SERVICES.length);
    const running = await startServices({ url: 'memory://saga-metrics-port', stateDir: false, metricsPort: base });
    try {
      SERVICES.forEach((service, index) => {
        expect(running.metricsUrls[service]).toBe(`http://127.0.0.1:${base + index}/metrics`);
      });
    } finally {
      await running.close();
    }
  });

  it('refuses a bad port or file', async () => {
    await expect(runSaga({ url: 'memory://', orders: 1, metricsPort: -1 })).rejects.toThrow(SagaUsageError);
    await expect(runSaga({ url: 'memory://', orders: 1, metricsFile: '' })).rejects.toThrow(SagaUsageError);
  });

  it('merges expositions into one document and labels remote samples', () => {
    const a = '# HELP x_total X\n# TYPE x_total counter\nx_total{service="a"} 1\n';
    const b = '# HELP x_total X\n# TYPE x_total counter\nx_total{service="b"} 2\n# HELP y Y\n# TYPE y gauge\ny 3\n';
    expect(mergeExpositions([a, withLabel(b, 'instance', 'h:1')])).toBe(
      [
        '# HELP x_total X',
        '# TYPE x_total counter',
        'x_total{service="a"} 1',
        'x_total{instance="h:1",service="b"} 2',
        '# HELP y Y',
        '# TYPE y gauge',
        'y{instance="h:1"} 3',
        '',
      ].join('\n'),
    );
  });
});
