import { randomBytes } from 'node:crypto';
import { type ContractTypes, createTypedBus, type TypedBus } from '@wharf/asyncapi';
import {
  ADAPTER_PACKAGES,
  type Bus,
  type BusOptions,
  ConfigError,
  createBus,
  type Instrumentation,
  importAdapterModule,
  loadAdapter,
  silentLogger,
} from '@wharf/core';
import { createMemoryAdapter } from '@wharf/memory';
import { LogicalClock, type TestClock } from './clock.js';
import { SettleTimeoutError } from './errors.js';
import { IsolatedAdapter, type Isolation } from './isolate.js';
import { resolveOptions, type TestBusOptions } from './options.js';
import { Tracker } from './tracker.js';
import type { ChannelEvent, ChannelName, SettlementRecord, TestDeadLetter } from './types.js';

/**
 * A bus for tests, with recorders. On memory (the default) retry delays wait for `clock.advance()`
 * and take no real time; with `broker` (or `WHARF_TEST_BROKER`) the same test runs on a real broker,
 * on channels and groups of its own that `close()` deletes.
 */
export interface TestBus<C extends ContractTypes = ContractTypes> {
  /** The bus to hand to the code under test: a real `Bus`, with the real core settling every event. */
  readonly bus: Bus;
  /** The bus typed by the contract (`send('<operation>', payload)`, `on('<operation>', …)`); throws without one. */
  readonly typed: TypedBus<C>;
  /** `memory` or the real broker's adapter name. */
  readonly broker: string;
  /**
   * The broker URL (`memory://wharf-test-<id>` on memory). A bus made from it directly is neither
   * isolated nor recorded: use {@link TestBus.createBus} for more buses.
   */
  readonly url: string;
  /** What the kit puts before every channel and group name on a real broker (`''` on memory, whose broker is private). */
  readonly prefix: string;
  readonly clock: TestClock;
  /**
   * Another bus on the same broker, clock and recorders, for code that creates a bus per service.
   * Its options are merged over the kit's `bus` options.
   */
  createBus(options?: Omit<BusOptions, 'url' | 'adapter'>): Bus;
  /** Events the broker accepted on `channel`, in order, from every bus of the kit. */
  published<A extends ChannelName<C>>(channel: A): ChannelEvent<C, A>[];
  /** Events a handler of `group` handled successfully (acknowledged), in order. */
  consumed<A extends ChannelName<C>>(channel: A, group: string): ChannelEvent<C, A>[];
  /** Every settlement of `group` on `channel`: acked, retried (with the error), dead-lettered… */
  settlements<A extends ChannelName<C>>(channel: A, group: string): SettlementRecord<ChannelEvent<C, A>>[];
  /** The group's dead letters, read back from the broker. */
  deadLetters<A extends ChannelName<C>>(channel: A, group: string): Promise<TestDeadLetter<ChannelEvent<C, A>>[]>;
  /**
   * Resolves once nothing is in flight: every publish confirmed, and every event delivered to a
   * subscribed group settled for good or held for a retry that is not yet due. Throws
   * `SettleTimeoutError` naming what is still in flight after `timeoutMs`.
   */
  settled(options?: { timeoutMs?: number }): Promise<void>;
  /** Closes every bus of the kit and, on a real broker, deletes its channels, groups and retry tiers. Idempotent. */
  close(): Promise<void>;
}

/**
 * Creates a test bus.
 *
 * @example
 * ```ts
 * const t = createTestBus();
 * await t.bus.subscribe('orders', { group: 'billing', retry: { delays: [30_000] } }, handler);
 * await t.bus.publish('orders', { type: 'OrderPlaced', data: { orderId: 'o-1' } });
 * await t.clock.advance(30_000); // the retry runs now, in no real time
 * expect(t.consumed('orders', 'billing')).toHaveLength(1);
 * await t.close();
 * ```
 */
export function createTestBus<C extends ContractTypes = ContractTypes>(options: TestBusOptions<C> = {}): TestBus<C> {
  const resolved = resolveOptions(options as TestBusOptions<ContractTypes>);
  const clock = new LogicalClock();
  const tracker = new Tracker(() => clock.now());
  const id = randomBytes(4).toString('hex');
  const memoryUrl = `memory://wharf-test-${id}`;
  const isolation: Isolation = {
    prefix: resolved.broker === undefined ? '' : `wt${id}-`,
    timeScale: resolved.timeScale,
    maxRealDelayMs: resolved.maxRealDelayMs,
  };
  const adapterName =
    resolved.broker === undefined
      ? 'memory'
      : (ADAPTER_PACKAGES[resolved.scheme] ?? resolved.scheme).replace('@wharf/', '');
  const buses: Bus[] = [];

  const makeBus = (extra: Omit<BusOptions, 'url' | 'adapter'> = {}): Bus => {
    if (closing) throw new ConfigError('testing', 'the test bus is closed: create a new one');
    const merged = { ...options.bus, ...extra };
    const logger = merged.logger ?? silentLogger;
    const load = async () =>
      resolved.broker === undefined
        ? createMemoryAdapter({ url: memoryUrl, logger, clock })
        : loadAdapter({ ...resolved.adapterOptions, url: resolved.broker, logger });
    const own: Instrumentation[] = [tracker.instrumentation];
    const given = merged.instrumentation;
    if (given !== undefined) own.push(...(Array.isArray(given) ? given : [given as Instrumentation]));
    const bus = createBus({
      ...merged,
      logger,
      adapter: new IsolatedAdapter(adapterName, load, isolation, tracker),
      instrumentation: own,
    });
    buses.push(bus);
    return bus;
  };

  const settled = async (settleOptions: { timeoutMs?: number } = {}): Promise<void> => {
    const timeoutMs = settleOptions.timeoutMs ?? resolved.settleTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    // On memory everything moves in microtasks and I/O-free turns: yield a turn at a time. On a
    // real broker deliveries arrive over the network: poll.
    const pause = resolved.broker === undefined ? 0 : 10;
    for (;;) {
      const inFlight = tracker.inFlight();
      if (inFlight.length === 0) return;
      if (Date.now() > deadline) {
        throw new SettleTimeoutError(
          `still in flight after ${timeoutMs} ms on ${adapterName}: ${inFlight.join('; ')} — a handler that never returns, ` +
            'a subscription missing for a group, or a retry the clock has not reached (clock.advance)?',
        );
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  };

  const testClock: TestClock = {
    virtual: resolved.broker === undefined,
    now: () => clock.now(),
    async advance(ms: number) {
      if (!(typeof ms === 'number' && Number.isFinite(ms) && ms >= 0)) {
        throw new ConfigError('testing', `clock.advance takes a number of milliseconds >= 0, got ${String(ms)}`);
      }
      await settled();
      const target = clock.now() + ms;
      // Stop at each due time: a retry that fails again schedules the next one, which may fall due
      // within `ms` too. Memory's timers and the retries a real broker holds are both followed.
      const nextDue = () => {
        const a = clock.nextTimer();
        const b = tracker.nextRetryDue();
        return a === undefined ? b : b === undefined ? a : Math.min(a, b);
      };
      await clock.advanceTo(
        target,
        async (due) => {
          clock.moveTo(due);
          await settled();
        },
        nextDue,
      );
      clock.moveTo(target);
      await settled();
    },
  };

  let closing: Promise<void> | undefined;
  const main = makeBus();
  let typed: TypedBus<C> | undefined;

  return {
    bus: main,
    get typed(): TypedBus<C> {
      if (!options.contract) {
        throw new ConfigError('testing', 'the test bus has no contract: pass createTestBus({ contract })');
      }
      typed ??= createTypedBus(main, options.contract);
      return typed;
    },
    broker: adapterName,
    url: resolved.broker ?? memoryUrl,
    prefix: isolation.prefix,
    clock: testClock,
    createBus: makeBus,
    published: (channel) => tracker.publishedOn(channel) as never[],
    consumed: (channel, group) =>
      tracker
        .settlementsOf(channel, group)
        .filter((s) => s.outcome === 'acked' && s.event !== undefined)
        .map((s) => s.event) as never[],
    settlements: (channel, group) => tracker.settlementsOf(channel, group) as never[],
    deadLetters: async (channel, group) => (await main.listDeadLetters(channel, group, { limit: 1_000 })) as never[],
    settled,
    close() {
      closing ??= (async () => {
        await Promise.all(buses.map((bus) => bus.close()));
        if (resolved.broker !== undefined) await deleteTopology(resolved.broker, isolation.prefix, tracker);
      })();
      return closing;
    },
  };
}

interface Harness {
  conformanceHarness?: (url: string) => {
    cleanup?: (channel: string, groups: readonly string[], retryDelaysMs?: readonly number[]) => Promise<void>;
  };
}

/** Deletes what the kit's buses declared on a real broker, through the adapter package's harness. */
async function deleteTopology(url: string, prefix: string, tracker: Tracker): Promise<void> {
  const mod = (await importAdapterModule(url)) as Harness;
  const cleanup = mod.conformanceHarness?.(url).cleanup;
  if (!cleanup) return;
  for (const [channel, { groups, delays }] of tracker.topology()) {
    await cleanup(
      prefix + channel,
      [...groups].map((g) => prefix + g),
      [...delays],
    );
  }
}
