import { requireBroker, TEST_BROKERS } from '@wharf/conformance';
import { NonRetryableError } from '@wharf/core';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import {
  type BrokerKind,
  BrokerStartError,
  type ContainerRuntime,
  createTestBus,
  DEFAULT_BROKERS,
  detectContainerRuntime,
  selectBrokerSource,
  startBroker,
  type TestBus,
  type TestcontainersModule,
} from '../src/index.js';

const NO_RUNTIME: ContainerRuntime = { available: false, reason: 'injected: no container runtime' };
const noRuntime = async () => NO_RUNTIME;

describe('selectBrokerSource', () => {
  const runtime: ContainerRuntime = { available: true, reason: 'a container runtime is reachable' };

  it('takes a container whenever a runtime is reachable, running broker or not', () => {
    for (const kind of ['rabbitmq', 'kafka', 'nats'] as const) {
      expect(selectBrokerSource(kind, { runtime, notRunning: undefined, kafkaScript: 'k.sh' }).source).toBe(
        'container',
      );
      expect(selectBrokerSource(kind, { runtime, notRunning: 'refused', kafkaScript: undefined }).source).toBe(
        'container',
      );
    }
  });

  it('falls back to the running broker and says why no container', () => {
    const choice = selectBrokerSource('nats', { runtime: NO_RUNTIME, notRunning: undefined, kafkaScript: undefined });
    expect(choice).toEqual({
      source: 'running',
      reason: 'no container: injected: no container runtime; using the nats broker already running on 127.0.0.1:4222',
    });
  });

  it('starts Kafka with the project script only when nothing runs on its port', () => {
    const facts = { runtime: NO_RUNTIME, kafkaScript: '/repo/scripts/kafka.sh' };
    expect(selectBrokerSource('kafka', { ...facts, notRunning: undefined }).source).toBe('running');
    const script = selectBrokerSource('kafka', { ...facts, notRunning: 'ECONNREFUSED' });
    expect(script.source).toBe('script');
    expect(script.reason).toContain('nothing answers on 127.0.0.1:9092 (ECONNREFUSED)');
    expect(script.reason).toContain('/repo/scripts/kafka.sh up');
    // The script is Kafka's only: another broker that is not running is an error.
    expect(selectBrokerSource('rabbitmq', { ...facts, notRunning: 'ECONNREFUSED' }).source).toBeUndefined();
  });

  it('gives up with every reason when there is nothing to use', () => {
    const none = selectBrokerSource('kafka', {
      runtime: NO_RUNTIME,
      notRunning: 'ECONNREFUSED',
      kafkaScript: undefined,
    });
    expect(none).toEqual({
      source: undefined,
      reason:
        'cannot get a kafka broker — no container: injected: no container runtime; and ECONNREFUSED. ' +
        'Start one (bash scripts/kafka.sh up) or a container runtime.',
    });
  });
});

describe('detectContainerRuntime', () => {
  it('says the package is missing when testcontainers cannot be imported', async () => {
    const missing = await detectContainerRuntime(() =>
      Promise.reject(new Error("Cannot find package 'testcontainers'")),
    );
    expect(missing).toEqual({
      available: false,
      reason:
        "the testcontainers package is not installed (npm install -D testcontainers@11.14.0): Cannot find package 'testcontainers'",
    });
  });

  it('asks the real testcontainers, which finds no runtime on a machine without Docker or Podman', async () => {
    const found = await detectContainerRuntime();
    // These machines have no container runtime; where one exists the answer says so instead.
    expect(found.reason).toMatch(
      found.available ? /a container runtime is reachable/ : /testcontainers found no container runtime \(.+\)/,
    );
  });

  it('uses only what testcontainers 11 exports', () => {
    expectTypeOf<typeof import('testcontainers')>().toExtend<TestcontainersModule>();
  });
});

describe('startBroker without a container runtime', () => {
  let kit: TestBus | undefined;
  afterEach(async () => {
    await kit?.close();
    kit = undefined;
  });

  it.for(['rabbitmq', 'nats', 'kafka'] as const)(
    'falls back to the %s broker already running, for real',
    async (kind, ctx) => {
      if (!(await requireBroker(ctx, 'testing', TEST_BROKERS.find((b) => b.name === kind)!))) return;
      const lines: string[] = [];
      const broker = await startBroker(kind, { detectRuntime: noRuntime, log: (line) => lines.push(line) });
      expect(broker).toMatchObject({ kind, source: 'running', url: DEFAULT_BROKERS[kind].url });
      expect(lines).toEqual([`[wharf] [testing] ${broker.reason}`]);
      expect(broker.reason).toContain('no container: injected: no container runtime; using the');

      // And the broker it names works: one event through it, dead-lettered as the handler asks.
      kit = createTestBus({ broker: broker.url });
      await kit.bus.subscribe('started', { group: 'g' }, () => {
        throw new NonRetryableError('poison');
      });
      await kit.bus.publish('started', { type: 'T', data: kind });
      await kit.settled();
      expect((await kit.deadLetters('started', 'g')).map((d) => d.event?.data)).toEqual([kind]);
      await broker.stop();
    },
  );

  it('runs the Kafka script when nothing answers on 9092, and throws with the reasons for the others', async () => {
    const ran: string[] = [];
    const notRunning = async (kind: BrokerKind) => `nothing answers for ${kind} (injected)`;
    const kafka = await startBroker('kafka', {
      detectRuntime: noRuntime,
      probe: notRunning,
      kafkaScript: '/repo/scripts/kafka.sh',
      runScript: async (script) => void ran.push(script),
      log: () => {},
    });
    expect(kafka).toMatchObject({ source: 'script', url: 'kafka://127.0.0.1:9092' });
    expect(ran).toEqual(['/repo/scripts/kafka.sh']);

    const nats = startBroker('nats', { detectRuntime: noRuntime, probe: notRunning, log: () => {} });
    await expect(nats).rejects.toBeInstanceOf(BrokerStartError);
    await expect(nats).rejects.toThrow(/cannot get a nats broker — no container: injected.*nothing answers for nats/);
  });

  it('finds scripts/kafka.sh from the working directory up', async () => {
    const ran: string[] = [];
    await startBroker('kafka', {
      detectRuntime: noRuntime,
      probe: async () => 'injected',
      runScript: async (script) => void ran.push(script),
      log: () => {},
    });
    expect(ran).toHaveLength(1);
    expect(ran[0]).toMatch(/\/scripts\/kafka\.sh$/);
  });
});
