import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SyntaxNode } from '@lezer/common';
import { parser } from '@prometheus-io/lezer-promql';
import { createBus, silentLogger } from '@wharf/core';
import { createPrometheusMetrics } from '@wharf/prometheus';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ServiceMetrics } from '../src/metrics.js';
import { SERVICES } from '../src/topology.js';
import { parseExposition } from './prom-text.js';

const ops = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'ops');

/**
 * The metric names (with each label seen on them) that a real registry exposes after a small
 * workload touching every metric: publishes, handler calls, a retry, a dead letter, a backlog read,
 * and the saga's own counter. Labels Prometheus adds on scrape (`job`, `instance`) are allowed too.
 */
async function exposedMetrics(): Promise<Map<string, Set<string>>> {
  const metrics = createPrometheusMetrics({
    backlog: async () => [{ channel: 'ops-orders', group: 'ops', ready: 1, inFlight: 0, delayed: 0, deadLetters: 1 }],
  });
  const bus = createBus({
    url: `memory://ops-dashboard-${Math.random().toString(36).slice(2)}`,
    instrumentation: metrics,
    logger: silentLogger,
  });
  let settled = 0;
  await bus.subscribe('ops-orders', { group: 'ops', retry: { maxAttempts: 2, delays: [10] } }, async (event) => {
    settled++;
    if (event.type === 'Poison') throw new TypeError('poison');
  });
  await bus.publish('ops-orders', { type: 'OrderPlaced' });
  await bus.publish('ops-orders', { type: 'Poison' });
  for (let i = 0; i < 100 && settled < 3; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  await new Promise((resolve) => setTimeout(resolve, 50));
  await bus.close();
  const saga = new ServiceMetrics('order');
  saga.ordersPlaced.inc();

  const names = new Map<string, Set<string>>();
  for (const text of [await metrics.registry.metrics(), await saga.text()]) {
    for (const sample of parseExposition(text)) {
      const labels = names.get(sample.name) ?? new Set(['job', 'instance']);
      for (const label of Object.keys(sample.labels)) labels.add(label);
      names.set(sample.name, labels);
    }
  }
  return names;
}

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

const dashboard = JSON.parse(readFileSync(join(ops, 'grafana', 'wharf-dashboard.json'), 'utf8')) as {
  panels: Panel[];
  templating: { list: { name: string; type: string; definition?: string }[] };
};

/** Grafana's built-in and dashboard variables, as Grafana interpolates them before querying. */
function interpolate(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$capacity', '1000');
}

/** Every metric selector of a PromQL expression, with the label names it matches on. */
function selectors(expr: string): { name: string; labels: string[] }[] {
  const tree = parser.parse(expr);
  const errors: string[] = [];
  const found: { name: string; labels: string[] }[] = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError) errors.push(`at ${node.from}: "${expr.slice(node.from, node.to + 10)}"`);
      if (node.name === 'VectorSelector') {
        const selector = node.node;
        const identifier = selector.getChild('Identifier');
        const labels: string[] = [];
        const matchers = selector.getChild('LabelMatchers');
        for (let m: SyntaxNode | null = matchers?.firstChild ?? null; m; m = m.nextSibling) {
          const label = m.getChild('LabelName');
          if (label) labels.push(expr.slice(label.from, label.to));
        }
        found.push({ name: identifier ? expr.slice(identifier.from, identifier.to) : '', labels });
      }
    },
  });
  if (errors.length > 0) throw new Error(`PromQL does not parse: ${expr}\n${errors.join('\n')}`);
  return found;
}

const allPanels = (panels: Panel[]): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);

describe('ops/grafana/wharf-dashboard.json', () => {
  it('queries only metrics and labels a real @wharf/prometheus registry exposes', async () => {
    const exposed = await exposedMetrics();
    // The workload reached every metric the package registers (else the check below proves less).
    for (const name of [
      'messaging_client_sent_messages_total',
      'messaging_client_operation_duration_seconds_bucket',
      'messaging_client_consumed_messages_total',
      'messaging_process_duration_seconds_bucket',
      'wharf_retries_total',
      'wharf_dead_lettered_total',
      'wharf_handler_in_flight',
      'wharf_end_to_end_latency_seconds_bucket',
      'wharf_consumer_backlog_messages',
    ]) {
      expect(exposed.has(name), name).toBe(true);
    }
    const used = new Set<string>();
    const targets = allPanels(dashboard.panels).flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, t })));
    expect(targets.length).toBeGreaterThan(10);
    for (const { panel, t } of targets) {
      const found = selectors(interpolate(t.expr));
      expect(found.length, `${panel}: ${t.expr}`).toBeGreaterThan(0);
      for (const { name, labels } of found) {
        expect(exposed.has(name), `${panel}: ${name} is not exposed by the registry`).toBe(true);
        for (const label of labels) {
          expect(exposed.get(name)!.has(label), `${panel}: ${name} has no label ${label}`).toBe(true);
        }
        used.add(name.replace(/_(bucket|sum|count)$/, ''));
      }
    }
    // Variables: label_values(metric, label) names an exposed metric and one of its labels.
    for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
      const match = /^label_values\((\w+), (\w+)\)$/.exec(variable.definition ?? '');
      expect(match, variable.name).not.toBeNull();
      expect(exposed.get(match![1]!)?.has(match![2]!), variable.definition).toBe(true);
    }
    // And every metric the issue names is on the dashboard.
    for (const name of [
      'messaging_client_sent_messages_total',
      'messaging_client_operation_duration_seconds',
      'messaging_client_consumed_messages_total',
      'messaging_process_duration_seconds',
      'wharf_retries_total',
      'wharf_dead_lettered_total',
      'wharf_handler_in_flight',
      'wharf_end_to_end_latency_seconds',
      'wharf_consumer_backlog_messages',
    ]) {
      expect(used.has(name), `${name} is on no panel`).toBe(true);
    }
  });

  it('the check fails on an unknown metric and on PromQL that does not parse', async () => {
    const exposed = await exposedMetrics();
    const [typo] = selectors('sum(rate(wharf_retry_total[1m]))');
    expect(exposed.has(typo!.name)).toBe(false);
    expect(() => selectors('sum(rate(wharf_retries_total[1m])')).toThrow(/does not parse/);
  });
});

describe('ops/prometheus/prometheus.yml', () => {
  it('scrapes each saga service where --metrics-port 9464 puts it', () => {
    const config = parseYaml(readFileSync(join(ops, 'prometheus', 'prometheus.yml'), 'utf8')) as {
      scrape_configs: {
        job_name: string;
        metrics_path: string;
        static_configs: { targets: string[]; labels: { service: string } }[];
      }[];
    };
    const saga = config.scrape_configs.find((job) => job.job_name === 'wharf-order-saga');
    expect(saga?.metrics_path).toBe('/metrics');
    const byService = Object.fromEntries(saga!.static_configs.map((c) => [c.labels.service, c.targets]));
    expect(byService).toEqual(Object.fromEntries(SERVICES.map((s, i) => [s, [`127.0.0.1:${9464 + i}`]])));
  });
});
