import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { portOpen } from '../src/brokers/ports.js';
import {
  amqpServes,
  BROKER_KINDS,
  kafkaServes,
  type ManagedBroker,
  natsJetStreamServes,
  startBroker,
} from '../src/index.js';

const serves = { nats: natsJetStreamServes, rabbitmq: amqpServes, kafka: kafkaServes } as const;

// Each kind: start privately, kill -9 (port closes), start again (handshake), clean restart, SIGSTOP (no answer) / SIGCONT (answers), destroy (process and data gone).
describe.each(BROKER_KINDS)('managed %s broker', (kind) => {
  let broker: ManagedBroker | undefined;
  afterAll(async () => {
    await broker?.destroy();
  });

  it('starts, is killed, restarts and serves again, pauses, and is destroyed', async () => {
    broker = await startBroker(kind);
    expect([4222, 5672, 9092]).not.toContain(broker.port);
    const probe = (): Promise<boolean> => serves[kind](broker?.port ?? 0, 2_000);
    expect(await probe()).toBe(true);
    const first = broker.pid();
    expect(first).toBeGreaterThan(0);

    await broker.kill();
    expect(broker.pid()).toBeUndefined();
    expect(await portOpen(broker.port)).toBe(false);

    await broker.start();
    expect(await probe()).toBe(true);
    expect(broker.pid()).not.toBe(first);

    // restart({ hard: true }) is kill() + start(), proven above; the clean restart is its own path.
    await broker.restart();
    expect(await probe()).toBe(true);

    await broker.pause();
    expect(await probe()).toBe(false);
    await broker.resume();
    expect(await probe()).toBe(true);

    const { dataDir } = broker;
    await broker.destroy();
    await broker.destroy(); // idempotent
    expect(broker.pid()).toBeUndefined();
    expect(existsSync(dataDir)).toBe(false);
    expect(await portOpen(broker.port)).toBe(false);
  }, 600_000);
});
