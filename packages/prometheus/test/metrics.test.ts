import { createBus, NonRetryableError, silentLogger } from '@wharf/core';
import { Histogram, Registry, register } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { type BacklogEntry, busBacklog, createPrometheusMetrics, END_TO_END_BUCKETS, OTHER } from '../src/index.js';
import { expectedFigures, FIGURES, runWorkload, sample, settled } from './workload.js';

let n = 0;
const fresh = () => `memory://prometheus-test-${++n}`;

describe('@wharf/prometheus on memory://', () => {
  it('counts a known workload exactly: published, retried, dead-lettered, handler calls', async () => {
    const metrics = createPrometheusMetrics();
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: metrics });
    await runWorkload(bus, 'orders', 'billing');
    await settled(metrics.registry, FIGURES.consumed, 10_000);
    await bus.close();
    expect(await expectedFigures(metrics.registry, 'memory', 'orders', 'billing')).toEqual(FIGURES);
    // Every handler start was at or after its event's time, under a second later here.
    expect(await sample(metrics.registry, 'wharf_end_to_end_latency_seconds_bucket', { le: '10' })).toBe(18);
  });

  it('counts a failed publish with its error class', async () => {
    const metrics = createPrometheusMetrics();
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: metrics });
    // No group on the channel: the memory broker refuses the event as unroutable.
    await expect(bus.publish('nobody', { type: 'Ok' })).rejects.toThrow();
    await bus.close();
    expect(
      await sample(metrics.registry, 'messaging_client_sent_messages_total', { error_type: 'UnroutableError' }),
    ).toBe(1);
    expect(await sample(metrics.registry, 'messaging_client_sent_messages_total', { error_type: '' })).toBe(0);
  });

  it('clamps the end-to-end latency of an event stamped in the future at 0', async () => {
    const metrics = createPrometheusMetrics();
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: metrics });
    await bus.subscribe('c', { group: 'g' }, () => undefined);
    await bus.publish('c', { type: 'Ok', time: new Date(Date.now() + 3_600_000).toISOString() });
    await settled(metrics.registry, 1, 5_000);
    await bus.close();
    expect(await sample(metrics.registry, 'wharf_end_to_end_latency_seconds_sum')).toBe(0);
    expect(await sample(metrics.registry, 'wharf_end_to_end_latency_seconds_bucket', { le: '0.005' })).toBe(1);
  });

  it('caps label values: the overflow becomes _OTHER, and nothing carries an event id', async () => {
    const metrics = createPrometheusMetrics({ maxLabelValues: 2 });
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: metrics });
    const channels = ['c1', 'c2', 'c3', 'c4'];
    for (const channel of channels) await bus.subscribe(channel, { group: 'g' }, () => undefined);
    const ids: string[] = [];
    for (const channel of channels) ids.push((await bus.publish(channel, { type: 'Ok' })).id);
    await settled(metrics.registry, 4, 5_000);
    await bus.close();
    const destinations = async (name: string) =>
      (await metrics.registry.getSingleMetric(name)?.get())?.values.map((v) => v.labels.destination);
    expect(new Set(await destinations('messaging_client_sent_messages_total'))).toEqual(new Set(['c1', 'c2', OTHER]));
    expect(await sample(metrics.registry, 'messaging_client_sent_messages_total', { destination: OTHER })).toBe(2);
    expect(await sample(metrics.registry, 'messaging_client_consumed_messages_total', { destination: OTHER })).toBe(2);
    const text = await metrics.registry.metrics();
    for (const id of ids) expect(text).not.toContain(id);
  });

  it('registers in the registry given, never the global one, and adds no default metrics', async () => {
    const registry = new Registry();
    const before = (await register.getMetricsAsJSON()).length;
    const metrics = createPrometheusMetrics({ registry });
    expect(metrics.registry).toBe(registry);
    const names = (await registry.getMetricsAsJSON()).map((metric) => metric.name).sort();
    expect(names).toEqual([
      'messaging_client_consumed_messages_total',
      'messaging_client_operation_duration_seconds',
      'messaging_client_sent_messages_total',
      'messaging_process_duration_seconds',
      'wharf_dead_lettered_total',
      'wharf_end_to_end_latency_seconds',
      'wharf_handler_in_flight',
      'wharf_retries_total',
    ]);
    expect((await register.getMetricsAsJSON()).length).toBe(before);
  });

  it('uses the conventions’ buckets, 5 ms to 10 s, and up to 1 h end to end', async () => {
    const metrics = createPrometheusMetrics();
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: metrics });
    await bus.subscribe('c', { group: 'g' }, () => undefined);
    await bus.publish('c', { type: 'Ok' });
    await settled(metrics.registry, 1, 5_000);
    await bus.close();
    const les = async (name: string) =>
      (await metrics.registry.getSingleMetric(name)?.get())?.values
        .filter((v) => (v as { metricName?: string }).metricName === `${name}_bucket`)
        .map((v) => v.labels.le);
    expect(await les('messaging_process_duration_seconds')).toEqual([
      0.005,
      0.01,
      0.025,
      0.05,
      0.075,
      0.1,
      0.25,
      0.5,
      0.75,
      1,
      2.5,
      5,
      7.5,
      10,
      '+Inf',
    ]);
    expect((await les('wharf_end_to_end_latency_seconds'))?.slice(-3)).toEqual([1800, 3600, '+Inf']);
  });
});

describe('what a scrape sees', () => {
  it('registry.resetMetrics() zeroes every counter and histogram the series keep as numbers', async () => {
    const metrics = createPrometheusMetrics();
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: metrics });
    await runWorkload(bus, 'orders', 'billing');
    await settled(metrics.registry, FIGURES.consumed, 10_000);
    expect(await expectedFigures(metrics.registry, 'memory', 'orders', 'billing')).toEqual(FIGURES);
    metrics.registry.resetMetrics();
    const zero = Object.fromEntries(Object.keys(FIGURES).map((key) => [key, 0]));
    expect(await expectedFigures(metrics.registry, 'memory', 'orders', 'billing')).toEqual(zero);
    expect(await sample(metrics.registry, 'wharf_end_to_end_latency_seconds_count')).toBe(0);
    // Counting goes on from zero, not from the old totals.
    await bus.subscribe('after', { group: 'g' }, () => undefined);
    await bus.publish('after', { type: 'Ok' });
    await settled(metrics.registry, 1, 5_000);
    await bus.close();
    expect(await sample(metrics.registry, 'messaging_client_sent_messages_total')).toBe(1);
    expect(await sample(metrics.registry, 'messaging_client_operation_duration_seconds_count')).toBe(1);
    expect(await sample(metrics.registry, 'messaging_process_duration_seconds_count')).toBe(1);
  });

  it('counts dead letters replayed as sent events, and their handling', async () => {
    const metrics = createPrometheusMetrics();
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: metrics });
    let fixed = false;
    await bus.subscribe('c', { group: 'g' }, () => {
      if (!fixed) throw new NonRetryableError('not yet');
    });
    for (let i = 0; i < 3; i++) await bus.publish('c', { type: 'Ok' });
    await settled(metrics.registry, 3, 5_000);
    fixed = true;
    expect(await bus.replayDeadLetters('c', 'g')).toBe(3);
    await settled(metrics.registry, 6, 5_000);
    await bus.close();
    const confirmed = { destination: 'c', error_type: '' };
    expect(await sample(metrics.registry, 'messaging_client_sent_messages_total', confirmed)).toBe(6);
    expect(await sample(metrics.registry, 'messaging_client_operation_duration_seconds_count', confirmed)).toBe(6);
    expect(await sample(metrics.registry, 'messaging_process_duration_seconds_count', { error_type: '' })).toBe(3);
    expect(await sample(metrics.registry, 'wharf_dead_lettered_total', { reason: 'non-retryable' })).toBe(3);
  });

  it("writes histograms exactly as prom-client's own Histogram writes the same observations", async () => {
    const metrics = createPrometheusMetrics();
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: metrics });
    await bus.subscribe('c', { group: 'g' }, () => undefined);
    // Each latency is at least half a second inside its bucket: the real one is the stamp's age plus
    // the time to publish and handle, which passed 2 ms on a loaded CI machine (0.003 s fell in the
    // 0.01 bucket, not the 0.005 one).
    const AGES = [1.5, 3.5, 12, 45, 7_200];
    const stamps = AGES.map((ago) => new Date(Date.now() - ago * 1000).toISOString());
    for (const time of stamps) await bus.publish('c', { type: 'Ok', time });
    await settled(metrics.registry, stamps.length, 5_000);
    await bus.close();
    const ours = (await metrics.registry.getSingleMetricAsString('wharf_end_to_end_latency_seconds')).split('\n');
    const reference = new Registry();
    const histogram = new Histogram({
      name: 'wharf_end_to_end_latency_seconds',
      help: 'x',
      labelNames: ['messaging_system', 'destination', 'consumer_group'],
      buckets: [...END_TO_END_BUCKETS],
      registers: [reference],
    });
    // The same bucket each observation fell in; _sum differs (the real latencies are not these).
    const labels = { messaging_system: 'memory', destination: 'c', consumer_group: 'g' };
    for (const seconds of AGES) histogram.observe(labels, seconds);
    const expected = (await reference.getSingleMetricAsString('wharf_end_to_end_latency_seconds')).split('\n');
    const buckets = (lines: string[]) => lines.filter((line) => line.includes('_bucket') || line.includes('_count'));
    expect(buckets(ours)).toEqual(buckets(expected));
    expect(ours.find((line) => line.startsWith('# TYPE'))).toBe('# TYPE wharf_end_to_end_latency_seconds histogram');
    expect(ours.find((line) => line.includes('_sum'))).toMatch(
      /^wharf_end_to_end_latency_seconds_sum\{messaging_system="memory",destination="c",consumer_group="g"\} 72\d\d(\.\d+)?$/,
    );
  });
});

describe('wharf_consumer_backlog_messages', () => {
  const entry = (channel: string, group: string, ready: number): BacklogEntry => ({
    channel,
    group,
    ready,
    inFlight: 2,
    delayed: 3,
    deadLetters: 4,
  });

  it('reports each state per group, and one read serves scrapes within the cache time', async () => {
    let reads = 0;
    const metrics = createPrometheusMetrics({
      backlogCacheMs: 60_000,
      backlog: async () => {
        reads++;
        return [entry('orders', 'billing', 500), entry('orders', 'audit', 7)];
      },
    });
    const [first] = await Promise.all([metrics.registry.metrics(), metrics.registry.metrics()]);
    await metrics.registry.metrics();
    expect(reads).toBe(1);
    expect(first).toContain(
      'wharf_consumer_backlog_messages{destination="orders",consumer_group="billing",state="ready"} 500',
    );
    expect(first).toContain(
      'wharf_consumer_backlog_messages{destination="orders",consumer_group="billing",state="in_flight"} 2',
    );
    expect(first).toContain(
      'wharf_consumer_backlog_messages{destination="orders",consumer_group="billing",state="delayed"} 3',
    );
    expect(first).toContain(
      'wharf_consumer_backlog_messages{destination="orders",consumer_group="billing",state="dead_letter"} 4',
    );
    expect(first).toContain(
      'wharf_consumer_backlog_messages{destination="orders",consumer_group="audit",state="ready"} 7',
    );
  });

  it('reads again once the cache expired, and drops groups no longer reported', async () => {
    const answers = [[entry('a', 'g', 1), entry('b', 'g', 2)], [entry('a', 'g', 0)]];
    let reads = 0;
    const metrics = createPrometheusMetrics({ backlogCacheMs: 0, backlog: async () => answers[reads++] ?? [] });
    expect(await sample(metrics.registry, 'wharf_consumer_backlog_messages', { state: 'ready' })).toBe(3);
    expect(await sample(metrics.registry, 'wharf_consumer_backlog_messages', { state: 'ready' })).toBe(0);
    const second = await metrics.registry.metrics();
    expect(second).not.toContain('destination="b"');
    expect(reads).toBe(3);
  });

  it('logs a failed read and exports no stale backlog', async () => {
    const errors: string[] = [];
    let fail = false;
    const metrics = createPrometheusMetrics({
      backlogCacheMs: 0,
      logger: { ...silentLogger, error: (message: string) => void errors.push(message) },
      backlog: async () => {
        if (fail) throw new Error('broker gone');
        return [entry('a', 'g', 5)];
      },
    });
    expect(await sample(metrics.registry, 'wharf_consumer_backlog_messages', { state: 'ready' })).toBe(5);
    fail = true;
    const text = await metrics.registry.metrics();
    expect(text).not.toContain('state="ready"');
    expect(errors).toEqual([
      '[wharf] [prometheus] could not read the backlog; wharf_consumer_backlog_messages is empty',
    ]);
  });

  it('rejects bad options with a ConfigError', () => {
    expect(() => createPrometheusMetrics({ maxLabelValues: 0 })).toThrow(/maxLabelValues/);
    expect(() => createPrometheusMetrics({ backlogCacheMs: -1 })).toThrow(/backlogCacheMs/);
  });
});

describe('busBacklog', () => {
  it("exports the bus's own backlog reads: 5 events waiting for a group with no subscriber", async () => {
    const bus = createBus({ url: fresh(), logger: silentLogger });
    try {
      await bus.declare('orders', { groups: ['billing'] });
      for (let i = 0; i < 5; i++) await bus.publish('orders', { type: 'OrderPlaced', data: { i } });
      const metrics = createPrometheusMetrics({ backlog: busBacklog(bus, [{ channel: 'orders', group: 'billing' }]) });
      const text = await metrics.registry.metrics();
      expect(text).toContain(
        'wharf_consumer_backlog_messages{destination="orders",consumer_group="billing",state="ready"} 5',
      );
      expect(text).toContain(
        'wharf_consumer_backlog_messages{destination="orders",consumer_group="billing",state="dead_letter"} 0',
      );
    } finally {
      await bus.close();
    }
  });
});
