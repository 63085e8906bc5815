/**
 * Vitest helpers: `useTestBus()` gives each test a fresh test bus and closes it after the test, and
 * importing this module adds the matchers `toHavePublished`, `toHaveConsumed` and
 * `toHaveDeadLettered` to `expect`.
 */
import type { ContractTypes } from '@wharf/asyncapi';
import { afterEach, beforeEach, expect } from 'vitest';
import type { TestBusOptions } from './options.js';
import { createTestBus, type TestBus } from './test-bus.js';

/**
 * A test bus per test: created before each test of the file (or `describe` block) that calls it,
 * closed (and, on a real broker, cleaned up) after it. The returned object always refers to the
 * current test's bus.
 *
 * @example
 * ```ts
 * const t = useTestBus();
 * it('charges', async () => {
 *   await t.bus.subscribe('orders', { group: 'billing' }, charge);
 *   await t.bus.publish('orders', { type: 'OrderPlaced', data: { orderId: 'o-1' } });
 *   await t.settled();
 *   expect(t).toHaveConsumed('orders', 'billing', { orderId: 'o-1' });
 * });
 * ```
 */
export function useTestBus<C extends ContractTypes = ContractTypes>(options: TestBusOptions<C> = {}): TestBus<C> {
  let current: TestBus<C> | undefined;
  beforeEach(() => {
    current = createTestBus(options);
  });
  afterEach(async () => {
    const kit = current;
    current = undefined;
    await kit?.close();
  });
  const kit = (): TestBus<C> => {
    if (!current) throw new Error('[wharf] [testing] useTestBus(): the test bus exists only while a test runs');
    return current;
  };
  return new Proxy({} as TestBus<C>, {
    get(_target, property) {
      const value = Reflect.get(kit(), property) as unknown;
      return typeof value === 'function' ? value.bind(current) : value;
    },
    has: (_target, property) => Reflect.has(kit(), property),
  });
}

interface MatcherState {
  equals(a: unknown, b: unknown): boolean;
  isNot: boolean;
  utils: { printExpected(value: unknown): string; printReceived(value: unknown): string };
}

interface MatcherResult {
  pass: boolean;
  message: () => string;
}

function isTestBus(value: unknown): value is TestBus {
  return typeof value === 'object' && value !== null && 'published' in value && 'consumed' in value;
}

function match(
  state: MatcherState,
  what: string,
  datas: readonly unknown[],
  expected: unknown,
  hasExpected: boolean,
): MatcherResult {
  const pass = hasExpected ? datas.some((data) => state.equals(data, expected)) : datas.length > 0;
  const wanted = hasExpected ? ` with data ${state.utils.printExpected(expected)}` : '';
  return {
    pass,
    message: () =>
      `expected ${what}${state.isNot ? ' not' : ''} to hold an event${wanted}; it holds ${state.utils.printReceived(datas)}`,
  };
}

const matchers = {
  toHavePublished(this: MatcherState, kit: unknown, channel: string, ...data: [unknown?]): MatcherResult {
    if (!isTestBus(kit)) throw new TypeError('toHavePublished: expect() a test bus (createTestBus or useTestBus)');
    const datas = kit.published(channel).map((event) => event.data);
    return match(this, `the events published on ${channel}`, datas, data[0], data.length > 0);
  },
  toHaveConsumed(this: MatcherState, kit: unknown, channel: string, group: string, ...data: [unknown?]): MatcherResult {
    if (!isTestBus(kit)) throw new TypeError('toHaveConsumed: expect() a test bus (createTestBus or useTestBus)');
    const datas = kit.consumed(channel, group).map((event) => event.data);
    return match(this, `the events ${group} handled on ${channel}`, datas, data[0], data.length > 0);
  },
  async toHaveDeadLettered(
    this: MatcherState,
    kit: unknown,
    channel: string,
    group: string,
    ...data: [unknown?]
  ): Promise<MatcherResult> {
    if (!isTestBus(kit)) throw new TypeError('toHaveDeadLettered: expect() a test bus (createTestBus or useTestBus)');
    const datas = (await kit.deadLetters(channel, group)).map((d) => d.event?.data);
    return match(this, `the dead letters of ${channel}/${group}`, datas, data[0], data.length > 0);
  },
};

expect.extend(matchers);

/** The matchers this module adds to `expect`. */
export interface TestBusMatchers<R = unknown> {
  /** Some event the broker accepted on `channel` (with this `data`, compared deeply, when given). */
  toHavePublished(channel: string, data?: unknown): R;
  /** Some event of `channel` that `group` handled successfully (with this `data`, when given). */
  toHaveConsumed(channel: string, group: string, data?: unknown): R;
  /** Some dead letter of `channel`/`group` (with this `data`, when given); await it. */
  toHaveDeadLettered(channel: string, group: string, data?: unknown): Promise<R>;
}

declare module 'vitest' {
  // biome-ignore lint/suspicious/noExplicitAny: must repeat vitest's own declaration to merge with it
  interface Matchers<T = any> extends TestBusMatchers<T> {}
}
