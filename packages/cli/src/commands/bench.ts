import { randomBytes } from 'node:crypto';
import {
  type BenchOptions,
  type BenchResult,
  createBus,
  type Instrumentation,
  importAdapterModule,
  parseBrokerUrl,
  payloadAge,
  type RawBaseline,
  redactUrl,
  silentLogger,
  stampPayload,
  startMeasurement,
  windowed,
} from '@wharf/core';
import { parse, positiveInt, UsageError } from '../args.js';
import { applyConnection, brokerConnection, connectionFlags, connectionUsage } from '../connection.js';
import { json, type Output } from '../output.js';
import { type ObservedCounts, startObservation } from './observe.js';
import { parseDuration, type SoakResult, soak } from './soak.js';

export const benchUsage = `wharf bench [--broker <url>] [--client NAME] [--events N] [--size BYTES] [--window N] [--rounds N] [--observe] [--json]
wharf bench --soak <duration> [--sample-every <duration>] [--broker <url>] [--events N] [--size BYTES] [--window N] [--json]
wharf bench --outbox [--broker <url>] [--postgres-url <url>] [--events N] [--size BYTES] [--writers N]
            [--batch N] [--keys N] [--rate EVENTS_PER_S] [--json]

Publish -> consume -> ack through the bus and through the broker's raw client with the same bytes,
durability and publish window, after one unmeasured round of each; rounds alternate bus and raw
(bus first, then raw first). Prints throughput, end-to-end latency p50/p99 and client CPU per
event (medians over the rounds), and the bus/raw ratios: the median of the rounds' own ratios (a
round runs both sides back to back, so its ratio cancels what drifts over a run). --observe adds
the same bus bench with Prometheus metrics and OpenTelemetry tracing on (the SDK with an exporter
that drops the spans), in the same rotation, and reports its throughput against the bus without
them (ratio.observe).
--client NAME (Kafka: platformatic, the default, or kafkajs) runs the bus on that client library
and measures the same library raw (the URL's ?client= parameter does the same).

--soak 10m (or 180s) runs the bus side without stopping for that long: one bus and one subscription,
bursts of --events published with --window in flight, each handled before the next. It prints the
process's RSS and heapUsed (after a full GC) every --sample-every (30s by default) and, at the end,
their least-squares slopes in MB/min, over the whole run and over its second half (a leak keeps
rising there; what fills once does not). --json gives { samples, slopes, lateSlopes, … }.

--outbox measures the PostgreSQL outbox instead: writers append and commit, relays publish; latency
runs from a transaction's COMMIT to the broker's confirm. It runs once with one relay and once with
two (--json: { relay: { throughput, p50Ms, p99Ms }, relays2: {…} }). --rate paces the writers
(0, the default, is as fast as they can); --postgres-url defaults to WHARF_POSTGRES_URL, else the
local test database.

${connectionUsage}`;

/** The bus bench's consumer group, named so a round's topology can be deleted after it. */
export const BENCH_GROUP = 'bench';

/** Measures the bus on one broker: the same loop a service runs, with the stamp in the payload. */
export async function benchBus(
  options: BenchOptions,
  instrumentation: readonly Instrumentation[] = [],
): Promise<BenchResult> {
  const bus = createBus({ url: options.url, logger: silentLogger, instrumentation });
  try {
    let received = 0;
    let done: () => void = () => {};
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    let measure: ReturnType<typeof startMeasurement> | undefined;
    await bus.subscribe(
      options.channel,
      { group: BENCH_GROUP, concurrency: options.window, dedup: true, retry: { maxAttempts: 1 } },
      (event) => {
        measure?.record(payloadAge(event.data as Uint8Array));
        if (++received === options.events) done();
      },
    );
    // The clock starts after subscribe: topology and group joins are not what is measured.
    measure = startMeasurement(options.events);
    await windowed(options.events, options.window, () =>
      bus.publish(options.channel, { type: 'BenchEvent', data: stampPayload(options.size) }),
    );
    await finished;
    return measure.finish();
  } finally {
    await bus.close();
  }
}

interface AdapterModule {
  rawBaseline?: RawBaseline;
  /** Present where the adapter ships one: its `cleanup` deletes what a bench run declared. */
  conformanceHarness?: (url: string) => { cleanup?: (channel: string, groups: readonly string[]) => Promise<void> };
}

/** A side's figures over its rounds (see {@link median}). */
export interface Summary {
  throughput: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerEvent: number;
}

/** Median of each figure over the rounds: one slow round (GC, a broker fsync) should not decide. */
export function median(results: BenchResult[]): Summary {
  const mid = (pick: (r: BenchResult) => number): number => {
    const values = results.map(pick).sort((a, b) => a - b);
    return values[Math.floor(values.length / 2)] ?? 0;
  };
  return {
    throughput: mid((r) => r.throughput),
    p50Ms: mid((r) => r.p50Ms),
    p99Ms: mid((r) => r.p99Ms),
    cpuUsPerEvent: mid((r) => r.cpuUsPerEvent),
  };
}

/**
 * `--client NAME`: the adapter's client library, for both the bus and the raw baseline (Kafka:
 * platformatic or kafkajs). It travels as the URL's `client` parameter, which the adapter validates.
 */
function withClient(url: string, client: string | undefined): string {
  if (client === undefined) return url;
  const scheme = parseBrokerUrl(url).scheme;
  if (scheme !== 'kafka' && scheme !== 'kafkas') {
    throw new UsageError(`--client chooses the Kafka adapter's client library; the ${scheme}: adapter has one`);
  }
  return `${url}${url.includes('?') ? '&' : '?'}client=${encodeURIComponent(client)}`;
}

const round2 = (n: number): number => Math.round(n * 100) / 100;

/**
 * The median of each round's bus/raw throughput ratio. The two sides of a round run back to back, so
 * their ratio cancels what drifts over a run (a broker's page cache, its JIT, its log segments); the
 * medians of each side taken apart do not: on this machine the same code gave 0.77-0.97 that way,
 * as the raw side's figures wandered between 22k and 41k events/s from run to run.
 */
export function pairedRatio(bus: readonly BenchResult[], raw: readonly BenchResult[]): number {
  const ratios = bus.map((b, i) => b.throughput / (raw[i] as BenchResult).throughput).sort((a, b) => a - b);
  const mid = Math.floor(ratios.length / 2);
  return ratios.length % 2 === 1
    ? (ratios[mid] as number)
    : ((ratios[mid - 1] as number) + (ratios[mid] as number)) / 2;
}

export async function bench(argv: string[], output: Output): Promise<number> {
  const { values } = parse(argv, {
    ...connectionFlags,
    broker: { type: 'string' },
    events: { type: 'string' },
    size: { type: 'string' },
    window: { type: 'string' },
    rounds: { type: 'string' },
    observe: { type: 'boolean' },
    json: { type: 'boolean' },
    outbox: { type: 'boolean' },
    'postgres-url': { type: 'string' },
    writers: { type: 'string' },
    batch: { type: 'string' },
    keys: { type: 'string' },
    rate: { type: 'string' },
    soak: { type: 'string' },
    'sample-every': { type: 'string' },
    client: { type: 'string' },
  });
  const url = withClient(applyConnection(brokerConnection(values.broker, values)), values.client);
  if (values.outbox) return benchOutboxCommand(url, values, output);
  const events = positiveInt(values.events, 'events', 10_000);
  const size = positiveInt(values.size, 'size', 1024);
  const window = positiveInt(values.window, 'window', 100);
  const rounds = positiveInt(values.rounds, 'rounds', 3);
  if (values['sample-every'] !== undefined && values.soak === undefined) {
    throw new UsageError('--sample-every needs --soak');
  }
  if (values.soak !== undefined) {
    const durationMs = parseDuration(values.soak, 'soak');
    const sampleEveryMs = parseDuration(values['sample-every'] ?? '30s', 'sample-every');
    return soakCommand({ url, events, size, window, durationMs, sampleEveryMs, json: values.json === true }, output);
  }
  const mod = (await importAdapterModule(url)) as AdapterModule;
  const raw = mod.rawBaseline;
  if (typeof raw !== 'function')
    throw new UsageError(`the ${parseBrokerUrl(url).scheme}: adapter has no raw baseline for wharf bench`);
  // Each bus round declares a fresh channel; delete it afterwards so a bench leaves the broker as it found it.
  const cleanup = mod.conformanceHarness?.(url).cleanup;
  const busRound = async (options: BenchOptions): Promise<BenchResult> => {
    try {
      return await benchBus(options);
    } finally {
      await cleanup?.(options.channel, [BENCH_GROUP]).catch(() => undefined);
    }
  };
  // A fresh SDK and registry per round: one round's spans and series never weigh on the next.
  let observedCounts: ObservedCounts | undefined;
  const observedRound = async (options: BenchOptions): Promise<BenchResult> => {
    const observation = await startObservation();
    try {
      return await benchBus(options, observation.instrumentation);
    } finally {
      observedCounts = await observation.finish();
      await cleanup?.(options.channel, [BENCH_GROUP]).catch(() => undefined);
    }
  };
  const busRuns: BenchResult[] = [];
  const rawRuns: BenchResult[] = [];
  const observedRuns: BenchResult[] = [];
  const run = (): BenchOptions => ({ url, events, size, window, channel: `bench-${randomBytes(4).toString('hex')}` });
  const observe = values.observe === true;
  // A full round of each side first, unmeasured, so JIT and connection set-up are not measured:
  // 1,000 events were too few (on Kafka both sides still got ~30% faster over the next rounds).
  if (!values.json) output.err(observe ? 'warm-up: bus, raw and observed bus…' : 'warm-up: bus and raw…');
  await busRound(run());
  await raw(run());
  if (observe) await observedRound(run());
  const base = observe ? (['bus', 'raw', 'observed'] as const) : (['bus', 'raw'] as const);
  for (let i = 0; i < rounds; i++) {
    // The order rotates: whichever side runs later in a round inherits the earlier ones' warmer
    // client code (the raw client is the bus's client), so a fixed order favoured one side.
    const sides = [...base.slice(i % base.length), ...base.slice(0, i % base.length)];
    for (const side of sides) {
      if (!values.json) output.err(`round ${i + 1}/${rounds}: ${side}…`);
      if (side === 'bus') busRuns.push(await busRound(run()));
      else if (side === 'raw') rawRuns.push(await raw(run()));
      else observedRuns.push(await observedRound(run()));
    }
  }
  const bus = median(busRuns);
  const rawSummary = median(rawRuns);
  const observed = observe ? median(observedRuns) : undefined;
  const ratio = {
    throughput: round2(pairedRatio(busRuns, rawRuns)),
    throughputOfMedians: round2(bus.throughput / rawSummary.throughput),
    throughputRounds: busRuns.map((b, i) => round2(b.throughput / (rawRuns[i] as BenchResult).throughput)),
    p99: round2(bus.p99Ms / Math.max(rawSummary.p99Ms, 1e-6)),
    p99TargetMs: round2(rawSummary.p99Ms * 1.2 + 0.5),
    ...(observed ? { observe: round2(pairedRatio(observedRuns, busRuns)) } : {}),
  };
  const result = {
    broker: redactUrl(url),
    events,
    size,
    window,
    rounds,
    bus: roundAll(bus),
    raw: roundAll(rawSummary),
    ...(observed ? { observed: { ...roundAll(observed), lastRound: observedCounts } } : {}),
    ratio,
  };
  if (values.json) {
    json(output, result);
    return 0;
  }
  output.out(
    `wharf bench on ${result.broker}: ${events} events of ${size} B, window ${window}, median of ${rounds} rounds`,
  );
  output.out(`        throughput/s      p50 ms     p99 ms   cpu µs/event`);
  const rows: [string, Summary][] = [
    ['bus', result.bus],
    ['raw', result.raw],
  ];
  if (result.observed) rows.push(['bus+obs', result.observed]);
  for (const [label, s] of rows) {
    output.out(
      `${label.padEnd(8)}${String(s.throughput).padStart(12)}${String(s.p50Ms).padStart(12)}${String(s.p99Ms).padStart(11)}${String(s.cpuUsPerEvent).padStart(15)}`,
    );
  }
  output.out(
    `ratio bus/raw: throughput ${ratio.throughput} (target >= 0.90; rounds ${ratio.throughputRounds.join(' ')}; ${ratio.throughputOfMedians} between the medians), p99 ${result.bus.p99Ms} ms vs target <= ${ratio.p99TargetMs} ms`,
  );
  if (ratio.observe !== undefined && observedCounts) {
    output.out(
      `ratio observed/bus: throughput ${ratio.observe} (target >= 0.95); metrics and tracing on: ${observedCounts.spans} spans, ${observedCounts.sent} sent and ${observedCounts.consumed} consumed counted in the last round`,
    );
  }
  return 0;
}

/** `wharf bench --soak`: the bus alone on one channel for the duration, memory sampled as it goes. */
async function soakCommand(
  o: {
    url: string;
    events: number;
    size: number;
    window: number;
    durationMs: number;
    sampleEveryMs: number;
    json: boolean;
  },
  output: Output,
): Promise<number> {
  const mod = (await importAdapterModule(o.url)) as AdapterModule;
  const cleanup = mod.conformanceHarness?.(o.url).cleanup;
  const channel = `soak-${randomBytes(4).toString('hex')}`;
  const broker = redactUrl(o.url);
  // Samples are the result in human mode; with --json they are progress, so stdout stays one object.
  const line = (text: string): void => (o.json ? output.err(text) : output.out(text));
  line(
    `wharf bench --soak on ${broker}: ${Math.round(o.durationMs / 1000)} s, bursts of ${o.events} events of ${o.size} B, window ${o.window}, a sample every ${o.sampleEveryMs / 1000} s`,
  );
  line('      s    rss MB   heapUsed MB   external MB    events   events/s');
  let result: SoakResult;
  try {
    result = await soak({
      url: o.url,
      channel,
      group: BENCH_GROUP,
      events: o.events,
      size: o.size,
      window: o.window,
      durationMs: o.durationMs,
      sampleEveryMs: o.sampleEveryMs,
      onSample: (s) =>
        line(
          `${String(s.atS).padStart(7)}${String(s.rssMb).padStart(10)}${String(s.heapUsedMb).padStart(14)}${String(s.externalMb).padStart(14)}${String(s.events).padStart(10)}${String(s.throughput).padStart(11)}`,
        ),
    });
  } finally {
    await cleanup?.(channel, [BENCH_GROUP]).catch(() => undefined);
  }
  if (o.json) {
    json(output, { broker, size: o.size, window: o.window, burst: o.events, ...result });
    return 0;
  }
  output.out(
    `${result.events} events in ${result.seconds} s (${result.throughput}/s)${result.gcBeforeSample ? '' : '; heapUsed read without a forced GC (this Node refused --expose-gc)'}`,
  );
  output.out(
    `slope, whole run:   rss ${result.slopes.rssMbPerMin} MB/min, heapUsed ${result.slopes.heapUsedMbPerMin} MB/min`,
  );
  output.out(
    `slope, second half: rss ${result.lateSlopes.rssMbPerMin} MB/min, heapUsed ${result.lateSlopes.heapUsedMbPerMin} MB/min`,
  );
  return 0;
}

/** `wharf bench --outbox`: one relay, then two, on a fresh schema each. */
async function benchOutboxCommand(
  url: string,
  values: Partial<Record<'events' | 'size' | 'writers' | 'batch' | 'keys' | 'rate' | 'postgres-url', string>> & {
    json?: boolean;
  },
  output: Output,
): Promise<number> {
  const rate = values.rate === undefined ? 0 : Number(values.rate);
  if (!Number.isFinite(rate) || rate < 0) throw new UsageError(`--rate must be a number >= 0, got "${values.rate}"`);
  const mod = (await importAdapterModule(url)) as AdapterModule;
  const base = {
    postgresUrl: values['postgres-url'] ?? process.env.WHARF_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    brokerUrl: url,
    events: positiveInt(values.events, 'events', 20_000),
    size: positiveInt(values.size, 'size', 256),
    writers: positiveInt(values.writers, 'writers', 8),
    batch: positiveInt(values.batch, 'batch', 20),
    keys: positiveInt(values.keys, 'keys', 256),
    rate,
    cleanup: mod.conformanceHarness?.(url).cleanup,
  };
  const { benchOutbox } = await import('@wharf/postgres');
  const figures = (r: BenchResult) => ({
    throughput: Math.round(r.throughput),
    p50Ms: round2(r.p50Ms),
    p99Ms: round2(r.p99Ms),
  });
  if (!values.json) output.err('one relay…');
  const relay = figures(await benchOutbox({ ...base, relays: 1 }));
  if (!values.json) output.err('two relays…');
  const relays2 = figures(await benchOutbox({ ...base, relays: 2 }));
  const result = { broker: redactUrl(url), events: base.events, size: base.size, rate, relay, relays2 };
  if (values.json) {
    json(output, result);
    return 0;
  }
  output.out(
    `wharf bench --outbox on ${result.broker}: ${base.events} events of ${base.size} B, ${base.writers} writers x ${base.batch} per commit, ${base.keys} keys${rate > 0 ? `, paced at ${rate}/s` : ''}`,
  );
  output.out('          commit->confirm/s      p50 ms     p99 ms');
  for (const [label, s] of [
    ['1 relay', relay],
    ['2 relays', relays2],
  ] as const) {
    output.out(
      `${label.padEnd(10)}${String(s.throughput).padStart(17)}${String(s.p50Ms).padStart(12)}${String(s.p99Ms).padStart(11)}`,
    );
  }
  return 0;
}

/** The figures as `wharf bench` prints them: whole events/s, hundredths of ms and µs. */
export function roundAll(s: Summary): Summary {
  return {
    throughput: Math.round(s.throughput),
    p50Ms: round2(s.p50Ms),
    p99Ms: round2(s.p99Ms),
    cpuUsPerEvent: round2(s.cpuUsPerEvent),
  };
}
