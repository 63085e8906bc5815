import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SERVICES } from '../src/index.js';
import {
  BROKERS,
  deleteNamespace,
  probeBroker,
  runSagaProcess,
  skipOrFail,
  spawnFixture,
  testNamespace,
} from './brokers.js';
import { parseExposition, total } from './prom-text.js';

// One process per service, two competing inventory processes, a coordinator that only places
// orders over HTTP and checks: the services share nothing but the broker and a state directory.
const LAYOUT = ['order', 'inventory', 'inventory', 'payment', 'notification', 'audit'];
const ORDERS = 60;

interface Running {
  readonly child: ChildProcess;
  readonly ready: Promise<string>;
  readonly exited: Promise<number | null>;
  output: string;
}

function start(url: string, services: string, stateDir: string, namespace: string): Running {
  const child = spawnFixture('services.ts', [url, services, stateDir], { WHARF_SAGA_NAMESPACE: namespace });
  const running: Running = {
    child,
    output: '',
    ready: new Promise((resolve, reject) => {
      child.stdout?.on('data', (chunk) => {
        running.output += chunk;
        const line = running.output.split('\n').find((l) => l.startsWith('ready '));
        if (line) resolve(line);
      });
      child.stderr?.on('data', (chunk) => {
        running.output += chunk;
      });
      child.on('exit', (code) =>
        reject(new Error(`${services} exited with ${code} before it was ready:\n${running.output}`)),
      );
    }),
    exited: new Promise((resolve) => child.on('exit', resolve)),
  };
  return running;
}

describe.each(BROKERS)('order saga as separate processes on $name', ({ name, url }) => {
  let processes: Running[] = [];
  let stateDir = '';

  afterEach(async () => {
    for (const p of processes) if (p.child.exitCode === null) p.child.kill('SIGTERM');
    await Promise.all(processes.map((p) => p.exited));
    processes = [];
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('keeps every invariant with two inventory replicas competing', { timeout: 300_000 }, async (ctx) => {
    stateDir = mkdtempSync(join(tmpdir(), 'wharf-saga-'));
    const unavailable = await probeBroker(url);
    if (unavailable !== undefined) return skipOrFail(ctx, `the multi-process saga on ${name}`, unavailable);

    const namespace = testNamespace('multi');
    // The processes stop before their channels are deleted.
    ctx.onTestFinished(async () => {
      for (const p of processes) if (p.child.exitCode === null) p.child.kill('SIGTERM');
      await Promise.all(processes.map((p) => p.exited));
      await deleteNamespace(url, namespace);
    });
    processes = LAYOUT.map((service) => start(url, service, stateDir, namespace));
    await Promise.all(processes.map((p) => p.ready));

    const metricsFile = join(stateDir, 'run.prom');
    const result = await runSagaProcess([url, String(ORDERS), '7', stateDir, ''], {
      WHARF_SAGA_NAMESPACE: namespace,
      WHARF_SAGA_METRICS_FILE: metricsFile,
    });
    const summary = result.summary!;
    for (const [key, invariant] of Object.entries(summary.invariants)) {
      expect({ key, ...invariant }).toMatchObject({ key, ok: true });
    }
    expect(summary.run.services).toEqual([]);
    expect(summary.confirmed + summary.cancelled + summary.deadLettered).toBe(ORDERS);
    expect(summary.deadLettersByReason).toEqual({ 'retries-exhausted': summary.deadLettered });
    expect(summary.deadLettered).toBeGreaterThan(0);
    expect(summary.retries).toBeGreaterThan(0);

    // Both inventory processes took a share of the work.
    // The services are still running and rewrite their stats file (temp file, then rename): skip the temp files.
    const stats = readdirSync(join(stateDir, 'stats'))
      .filter((file) => file.endsWith('.json'))
      .map(
        (file) =>
          JSON.parse(readFileSync(join(stateDir, 'stats', file), 'utf8')) as {
            service: string;
            bus: { acked: number };
          },
      );
    const inventory = stats.filter((s) => s.service === 'inventory');
    expect(inventory).toHaveLength(2);
    for (const replica of inventory) expect(replica.bus.acked).toBeGreaterThan(0);

    // The coordinator scraped every process's /metrics, announced in the state directory.
    const samples = parseExposition(readFileSync(metricsFile, 'utf8'));
    expect(total(samples, 'saga_orders_placed_total')).toBe(ORDERS);
    // Competing inventory processes each have their own dedup store: both may handle the two copies
    // of a duplicated event and both publish its result, so the publishes are at least the ledger's
    // copies. The extra copies are dropped (by JetStream's id window or the audit's dedup store):
    // the audit service handled each distinct event once.
    const sent = total(samples, 'messaging_client_sent_messages_total', { error_type: '' });
    expect(sent).toBeGreaterThanOrEqual(summary.eventsPublished + summary.eventsPublishedTwice);
    expect(total(samples, 'messaging_process_duration_seconds_count', { service: 'audit' })).toBe(
      summary.eventsPublished,
    );
    expect(total(samples, 'wharf_retries_total')).toBe(summary.retries);
    expect(total(samples, 'wharf_dead_lettered_total', { reason: 'retries-exhausted' })).toBe(summary.deadLettered);
    for (const service of SERVICES) {
      expect(total(samples, 'messaging_client_consumed_messages_total', { service }), service).toBe(
        summary.run.handlers[service]!.delivered,
      );
    }
    // Two inventory processes: two instances, told apart by the `instance` label.
    const instances = new Set(samples.filter((s) => s.labels.service === 'inventory').map((s) => s.labels.instance));
    expect(instances.size).toBe(2);

    // SIGTERM shuts each process down gracefully.
    for (const p of processes) p.child.kill('SIGTERM');
    const codes = await Promise.all(processes.map((p) => p.exited));
    expect(codes).toEqual(LAYOUT.map(() => 0));
    for (const p of processes) expect(p.output).toContain('stopped');
    console.info(`[saga] ${name}, ${LAYOUT.length} processes: ${summary.timings.ordersPerSecond} orders/s`);
  });
});
