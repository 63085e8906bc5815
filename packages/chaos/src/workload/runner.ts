import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Bus, createBus, type Logger, withTimeout } from '@wharf/core';
import type { ManagedBroker } from '../brokers/index.js';
import type { BrokerWitness } from '../checker/checker.js';
import { type CheckResult, check, eventKey, type PublishRecord } from '../checker/checker.js';
import { ChaosTimeoutError } from '../errors.js';
import { seededRandom } from '../proxy/fault.js';
import type { FaultProxy } from '../proxy/proxy.js';
import { ConsumerProcess } from './consumer-process.js';
import { parseConsumerLog } from './log.js';
import type { FaultContext, Scenario } from './scenarios.js';
import { askBroker } from './witness.js';

/** Client settings per broker, short enough that "longer than the timeout" fits a CI run. */
export const CLIENT_TIMEOUTS = {
  rabbitmq: { adapterOptions: { heartbeatSeconds: 5 }, timeoutMs: 15_000 },
  kafka: { adapterOptions: { sessionTimeoutMs: 10_000, heartbeatIntervalMs: 1_000 }, timeoutMs: 15_000 },
  nats: { adapterOptions: { ackWaitMs: 10_000 }, timeoutMs: 15_000 },
} as const;

/** How one scenario is run. */
export interface RunOptions {
  readonly broker: ManagedBroker;
  /** The proxy every client connects through (a pass-through unless a fault is set). */
  readonly proxy: FaultProxy;
  readonly events: number;
  readonly seed?: number;
  /** Producers publishing concurrently (ids `p0`…). Default 2. */
  readonly producers?: number;
  /** Publishes are spread over this long, ms. Default 6,000. */
  readonly spreadMs?: number;
  /** When the fault starts after publishing began, ms. Default 1,500. */
  readonly faultAtMs?: number;
  /** A publish must settle within this (the bus's `publishTimeoutMs`), ms. Default 10,000. */
  readonly publishTimeoutMs?: number;
  /** No delivery for this long after the fault healed, with events missing, is a stall. Default 30,000. */
  readonly stallMs?: number;
  /** Consumer handler time per event, ms (makes "mid-batch" real). Default 2. */
  readonly handlerMs?: number;
  /** Consumer concurrency. Default 8. */
  readonly concurrency?: number;
  /** Adapter options added to the run's own (e.g. `{ client: 'platformatic' }` on Kafka). */
  readonly adapterOptions?: Readonly<Record<string, unknown>>;
  /** Use the deliberately broken adapter that acks before the handler (proves the checker fails). */
  readonly ackBeforeHandler?: boolean;
  /** Progress lines (stderr in the CLI). */
  readonly log?: (message: string) => void;
}

/** One scenario's result: the checker's verdict plus what was done. */
export interface ScenarioReport extends CheckResult {
  readonly name: string;
  readonly broker: string;
  readonly events: number;
  /** Faults injected (kills, pauses, proxy faults…). */
  readonly faults: number;
  readonly consumerStarts: number;
  readonly durationMs: number;
  /** Set when the run itself failed (an injector threw, the consumer could not start). */
  readonly error?: string;
}

const quiet = (log: (message: string) => void, prefix: string): Logger => ({
  debug: () => undefined,
  info: () => undefined,
  warn: (message) => log(`${prefix} WARN ${message}`),
  error: (message, fields) =>
    log(`${prefix} ERROR ${message}${fields?.error instanceof Error ? `: ${fields.error.message}` : ''}`),
});

/**
 * Runs one scenario: a consumer child process, paced producers in this process through the proxy,
 * the fault part-way through, a full drain, then the checker. Leaves the broker running and the
 * proxy healed whatever happens.
 */
export async function runScenario(scenario: Scenario, options: RunOptions): Promise<ScenarioReport> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const { broker, proxy } = options;
  const timeouts = CLIENT_TIMEOUTS[broker.kind];
  const random = seededRandom(options.seed ?? 1);
  const runId = `${Date.now().toString(36)}${Math.floor(random() * 1e6).toString(36)}`;
  const channel = `chaos-${scenario.name}-${runId}`;
  const group = 'consumer';
  const url = broker.url.replace(/:\d+$/, `:${proxy.port}`);
  const publishTimeoutMs = options.publishTimeoutMs ?? 10_000;
  const logFile = join(tmpdir(), `wharf-chaos-${runId}.log`);
  const consumer = new ConsumerProcess(
    {
      url,
      channel,
      group,
      log: logFile,
      concurrency: options.concurrency ?? 8,
      handlerMs: options.handlerMs ?? 2,
      adapterOptions: { ...timeouts.adapterOptions, ...options.adapterOptions },
      ackBeforeHandler: options.ackBeforeHandler ?? false,
    },
    (line) => log(`  ${line}`),
  );
  let faults = 0;
  const context: FaultContext = {
    broker,
    proxy,
    consumer,
    channel,
    timeoutMs: timeouts.timeoutMs,
    log,
    fault: () => {
      faults += 1;
    },
  };
  const publishes = new Map<string, PublishRecord>();
  let bus: Bus | undefined;
  let faultEndedAt: number | undefined;
  let stalled = false;
  let witness: BrokerWitness | undefined;
  let error: string | undefined;
  try {
    bus = createBus({
      url,
      adapterOptions: { ...timeouts.adapterOptions, ...options.adapterOptions },
      publishTimeoutMs,
      logger: quiet(log, '  [producer]'),
    });
    await within('declaring the channel', 60_000, bus.declare(channel, { groups: [group] }));
    await within('starting the consumer process', 120_000, consumer.start());
    log(`${broker.kind} ${scenario.name}: publishing ${options.events} events`);
    // Two thirds of the events are published around the fault, the rest after it healed, so
    // recovery (fault end → first delivery) is measured on events that exist.
    const during = Math.ceil((options.events * 2) / 3);
    const faultRun = (async () => {
      await sleep(options.faultAtMs ?? 1_500);
      log(`${broker.kind} ${scenario.name}: fault — ${scenario.description}`);
      await within(`the fault "${scenario.name}"`, 300_000, scenario.inject(context));
      faultEndedAt = Date.now();
      log(`${broker.kind} ${scenario.name}: fault healed`);
    })();
    const publishing = publishRange(
      bus,
      channel,
      options,
      publishes,
      publishTimeoutMs,
      0,
      during,
      options.spreadMs ?? 6_000,
    );
    const [faultResult, publishResult] = await Promise.allSettled([faultRun, publishing]);
    if (faultResult.status === 'rejected') throw faultResult.reason;
    if (publishResult.status === 'rejected') throw publishResult.reason;
    await publishRange(bus, channel, options, publishes, publishTimeoutMs, during, options.events, 2_000);
    let missing: number;
    ({ stalled, missing } = await drain(scenario, context, publishes, logFile, options.stallMs ?? 30_000, log));
    if (missing > 0) {
      witness = await within('asking the broker what it holds', 30_000, askBroker(broker, channel, group)).catch(
        (e: unknown) => ({ foundInBroker: 0, how: `asking the broker failed: ${String(e)}` }),
      );
      log(`${broker.kind} ${scenario.name}: ${missing} confirmed events unconsumed; the broker says: ${witness.how}`);
    }
  } catch (caught) {
    error = caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught);
    log(`${broker.kind} ${scenario.name}: run failed: ${error}`);
  } finally {
    // Every clean-up step is bounded: a client wedged by the fault must not hang the whole run
    // (the report would never be written); a step that overruns is logged and the next one runs.
    proxy.heal();
    const step = (what: string, ms: number, run: () => Promise<unknown>): Promise<void> =>
      within(what, ms, run()).then(
        () => undefined,
        (e: unknown) => log(`${broker.kind} ${scenario.name}: ${what}: ${e instanceof Error ? e.message : String(e)}`),
      );
    await step('healing the fault', 60_000, async () => scenario.heal?.(context));
    await step('resuming the broker', 30_000, () => broker.resume());
    if (broker.pid() === undefined) await step('restarting the broker', 120_000, () => broker.start());
    await step('stopping the consumer', 40_000, () => consumer.stop());
    await step('closing the producer bus', 30_000, async () => bus?.close());
  }
  const result = check({
    publishes: [...publishes.values()],
    deliveries: parseConsumerLog(logFile),
    faultEndedAt,
    stalled,
    ordered: false,
    ...(witness ? { witness } : {}),
  });
  rmSync(logFile, { force: true });
  return {
    name: scenario.name,
    broker: broker.kind,
    events: options.events,
    faults,
    consumerStarts: consumer.starts,
    durationMs: Date.now() - started,
    ...result,
    ...(error ? { error, ok: false } : {}),
  };
}

/** Paced publishes from each producer; every publish is recorded with its outcome, or `pending` at its deadline. */
async function publishRange(
  bus: Bus,
  channel: string,
  options: RunOptions,
  publishes: Map<string, PublishRecord>,
  publishTimeoutMs: number,
  from: number,
  to: number,
  spreadMs: number,
): Promise<void> {
  const producers = options.producers ?? 2;
  const t0 = Date.now();
  const deadline = publishTimeoutMs + 5_000;
  const all: Promise<void>[] = [];
  for (let index = from; index < to; index++) {
    const producer = `p${index % producers}`;
    const seq = Math.floor(index / producers);
    const due = t0 + ((index - from) / Math.max(1, to - from)) * spreadMs;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    const key = eventKey(producer, seq);
    publishes.set(key, { producer, seq, outcome: 'pending' });
    // Past its deadline a publish stays `pending` (a defect) even if it settles later.
    let expired = false;
    let timer: NodeJS.Timeout | undefined;
    const settled = bus
      .publish(channel, { type: 'wharf.chaos.event', id: key, partitionkey: producer, data: { producer, seq } })
      .then(
        () => {
          if (!expired) publishes.set(key, { producer, seq, outcome: 'confirmed' });
        },
        (failure: unknown) => {
          if (!expired)
            publishes.set(key, {
              producer,
              seq,
              outcome: 'rejected',
              error: failure instanceof Error ? failure.name : typeof failure,
            });
        },
      );
    const expiry = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        expired = true;
        resolve();
      }, deadline);
    });
    all.push(Promise.race([settled, expiry]).finally(() => clearTimeout(timer)));
  }
  await Promise.all(all);
}

/** Waits until every confirmed (or recovered) event was consumed, or no progress for `stallMs`. */
async function drain(
  _scenario: Scenario,
  context: FaultContext,
  publishes: Map<string, PublishRecord>,
  logFile: string,
  stallMs: number,
  log: (message: string) => void,
): Promise<{ stalled: boolean; missing: number }> {
  context.proxy.heal();
  let lastCount = -1;
  let lastProgress = Date.now();
  for (;;) {
    const deliveries = parseConsumerLog(logFile);
    const consumed = new Set(
      deliveries.filter((delivery) => delivery.effect).map((delivery) => eventKey(delivery.producer, delivery.seq)),
    );
    const missing = [...publishes.values()].filter(
      (record) => record.outcome === 'confirmed' && !consumed.has(eventKey(record.producer, record.seq)),
    ).length;
    if (missing === 0) {
      await sleep(500); // late duplicates still count
      return { stalled: false, missing: 0 };
    }
    if (deliveries.length !== lastCount) {
      lastCount = deliveries.length;
      lastProgress = Date.now();
    } else if (Date.now() - lastProgress > stallMs) {
      log(`${context.broker.kind}: no delivery for ${stallMs} ms with ${missing} confirmed events unconsumed: stalled`);
      return { stalled: true, missing };
    }
    await sleep(250);
  }
}

/** Rejects with `ChaosTimeoutError` naming `what` if `work` has not settled within `ms`. */
function within<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  return withTimeout(work, ms, () => new ChaosTimeoutError(`${what} did not finish within ${ms} ms`));
}
