import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import type { Logger } from '@wharf/core';
import { type BacklogSource, createPrometheusMetrics, type PrometheusMetrics } from '@wharf/prometheus';
import { Counter, Registry } from 'prom-client';
import { SERVICES, type ServiceName } from './topology.js';

/** Where the services of a host serve `/metrics`. */
export interface MetricsListen {
  /**
   * 0 (default): every service on a free port of its own. N > 0: each service on N + its index in
   * `SERVICES` (order N, inventory N+1, payment N+2, notification N+3, audit N+4), so a scrape
   * configuration can name them.
   */
  port?: number;
  /** Interface to listen on. Default 127.0.0.1. */
  host?: string;
}

/**
 * One service's metrics: Wharf's bus metrics (`@wharf/prometheus`), the backlog of the groups it
 * consumes in (`wharf_consumer_backlog_messages`, read from the broker on scrape) and the saga's own
 * counter, in a registry of the service's own, every series labelled `service="<name>"` so the
 * metrics of several services stay apart when they are written to one file.
 */
export class ServiceMetrics {
  readonly registry: Registry;
  /** The instrumentation every bus of this service is created with (its replicas share it). */
  readonly bus: PrometheusMetrics;
  /** Orders the order service accepted (`POST /orders` that created an order); 0 for the others. */
  readonly ordersPlaced: Counter<never>;

  constructor(
    readonly service: ServiceName,
    backlog?: { source: BacklogSource; logger: Logger },
  ) {
    this.registry = new Registry();
    this.registry.setDefaultLabels({ service });
    this.bus = createPrometheusMetrics({
      registry: this.registry,
      ...(backlog ? { backlog: backlog.source, logger: backlog.logger } : {}),
    });
    this.ordersPlaced = new Counter({
      name: 'saga_orders_placed_total',
      help: 'Orders the order service accepted and published (a repeated POST of the same order counts once)',
      registers: service === 'order' ? [this.registry] : [],
    });
  }

  /** The registry in Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** A service's `/metrics` endpoint. */
export interface MetricsEndpoint {
  readonly service: ServiceName;
  /** `http://host:port/metrics`. */
  readonly url: string;
  close(): Promise<void>;
}

/** Serves one service's registry on `GET /metrics` (404 elsewhere). */
export async function serveMetrics(metrics: ServiceMetrics, listen: MetricsListen = {}): Promise<MetricsEndpoint> {
  const base = listen.port ?? 0;
  if (!(Number.isInteger(base) && base >= 0 && base <= 65_535 - SERVICES.length)) {
    throw new RangeError(`the metrics port must be an integer from 0 to ${65_535 - SERVICES.length}, got ${base}`);
  }
  const port = base === 0 ? 0 : base + SERVICES.indexOf(metrics.service);
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are on GET /metrics\n');
      return;
    }
    metrics.text().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (error: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(error)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, listen.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    service: metrics.service,
    url: `http://${host}:${address.port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * Merges expositions of several registries into one valid Prometheus text document: one `# HELP`
 * and `# TYPE` per metric family, then every registry's samples of it. (Concatenating the texts
 * would repeat `# TYPE` lines, which the text format forbids.) The samples must already differ by
 * a label, here `service`.
 */
export function mergeExpositions(texts: readonly string[]): string {
  const families = new Map<string, { help: string; type: string; samples: string[] }>();
  for (const text of texts) {
    let current: { help: string; type: string; samples: string[] } | undefined;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (meta) {
        const [, kind, name, rest] = meta as unknown as [string, 'HELP' | 'TYPE', string, string];
        current = families.get(name) ?? { help: '', type: '', samples: [] };
        families.set(name, current);
        if (kind === 'HELP') current.help = rest;
        else current.type = rest;
      } else if (!line.startsWith('#') && current) current.samples.push(line);
    }
  }
  const out: string[] = [];
  for (const [name, family] of families) {
    if (family.samples.length === 0) continue;
    out.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.type}`, ...family.samples);
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/** Writes `text` to `file` (creating its directory). */
export function writeMetricsFile(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

/** Directory, under a run's state directory, where service processes announce their `/metrics` URLs. */
export const METRICS_DIR = 'metrics';

/** Announces a process's endpoints to a coordinator sharing `stateDir`; returns what removes the announcement. */
export function announceMetrics(stateDir: string, endpoints: readonly MetricsEndpoint[]): () => void {
  const dir = join(stateDir, METRICS_DIR);
  mkdirSync(dir, { recursive: true });
  const files = endpoints.map((endpoint) => {
    const file = join(dir, `${endpoint.service}-${process.pid}.url`);
    writeFileSync(file, endpoint.url);
    return file;
  });
  return () => {
    for (const file of files) rmSync(file, { force: true });
  };
}

/**
 * Scrapes the endpoints service processes announced in `stateDir`, each sample labelled with the
 * endpoint's `instance` (host:port) as Prometheus would, so two processes of one service stay
 * apart. An endpoint that does not answer (a process gone without removing its file) is skipped
 * with a warning.
 */
export async function remoteMetrics(stateDir: string, logger: Logger): Promise<string[]> {
  const dir = join(stateDir, METRICS_DIR);
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => name.endsWith('.url'));
  } catch {
    return [];
  }
  const texts: string[] = [];
  for (const name of names.sort()) {
    let url = '';
    try {
      url = readFileSync(join(dir, name), 'utf8').trim();
      const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      texts.push(withLabel(await response.text(), 'instance', new URL(url).host));
    } catch (error) {
      logger.warn(`[saga] cannot read the metrics of ${name} (${url}): ${String(error)}`);
    }
  }
  return texts;
}

/** Adds a label to every sample of an exposition. */
export function withLabel(text: string, label: string, value: string): string {
  const pair = `${label}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
  return text
    .split('\n')
    .map((line) => {
      if (line === '' || line.startsWith('#')) return line;
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{)?/.exec(line);
      if (!match) return line;
      const name = match[1]!;
      if (match[2]) return `${name}{${pair},${line.slice(name.length + 1)}`;
      return `${name}{${pair}}${line.slice(name.length)}`;
    })
    .join('\n');
}
