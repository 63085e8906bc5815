import { randomBytes } from 'node:crypto';
import type { BenchResult } from '@wharf/core';
import * as amqp from 'amqplib';
import { connect as connectNats } from 'nats';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  benchMoleculerNats,
  benchNestRmq,
  type Comparison,
  comparePeer,
  formatComparison,
  moleculerStreamName,
  nestQueueName,
  PEERS,
} from '../src/index.js';

const RABBITMQ = process.env.WHARF_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const NATS = process.env.WHARF_NATS_URL ?? 'nats://127.0.0.1:4222';
const EVENTS = 300;
const small = { events: EVENTS, size: 1024, window: 64, rounds: 1, warmUp: false } as const;

const unique = (label: string): string => `${label}-${randomBytes(4).toString('hex')}`;

/** A broker that accepts TCP but never completes a handshake would hang Nest's endless reconnects: fail fast instead. */
async function handshake(name: string, open: () => Promise<{ close(): Promise<unknown> }>): Promise<void> {
  try {
    await (await open()).close();
  } catch (error) {
    throw new Error(`[wharf] bench-peers tests need ${name}: ${(error as Error).message}`);
  }
}

function expectComplete(result: BenchResult): void {
  expect(result.events).toBe(EVENTS);
  expect(result.throughput).toBeGreaterThan(0);
  expect(result.p50Ms).toBeGreaterThan(0);
  expect(result.p99Ms).toBeGreaterThanOrEqual(result.p50Ms);
  // A latency decoded from a mangled stamp would be absurd (negative, or years).
  expect(result.p99Ms).toBeLessThan(60_000);
  expect(result.cpuUsPerEvent).toBeGreaterThan(0);
}

function expectComparison(c: Comparison): void {
  for (const side of ['peer', 'bus', 'raw'] as const) {
    expect(c.runs[side]).toHaveLength(1);
    expectComplete(c.runs[side][0]!);
    expect(c.figures[side].throughput).toBeGreaterThan(0);
  }
  for (const r of [c.ratio.peerBus, c.ratio.peerRaw]) {
    expect(r.throughput).toBeGreaterThan(0);
    expect(r.p99).toBeGreaterThan(0);
    expect(r.cpu).toBeGreaterThan(0);
  }
  const text = formatComparison(c).join('\n');
  expect(text).toMatch(/^peer +\d+/m);
  expect(text).toContain(`ratio peer/bus: throughput ${c.ratio.peerBus.throughput}`);
}

describe('nest-rmq against RabbitMQ', () => {
  beforeAll(() => handshake(`RabbitMQ at ${RABBITMQ}`, () => amqp.connect(RABBITMQ, { timeout: 5_000 })));

  it('measures NestJS, the bus and raw amqplib side by side, every event arriving', async () => {
    expectComparison(await comparePeer(PEERS['nest-rmq'], { url: RABBITMQ, ...small }));
  });

  it('delivers every event with non-persistent messages too, and deletes its queue', async () => {
    const channel = unique('peers-test');
    expectComplete(await benchNestRmq({ url: RABBITMQ, channel, ...small }, { transient: true }));
    const connection = await amqp.connect(RABBITMQ);
    try {
      const ch = await connection.createChannel();
      ch.on('error', () => undefined);
      await expect(ch.checkQueue(nestQueueName(channel))).rejects.toThrow(/404/);
    } finally {
      await connection.close().catch(() => undefined);
    }
  });
});

describe('moleculer-nats against NATS JetStream', () => {
  beforeAll(() => handshake(`NATS at ${NATS}`, () => connectNats({ servers: new URL(NATS).host, timeout: 5_000 })));

  it('measures Moleculer Channels, the bus and raw nats.js side by side, every event arriving', async () => {
    expectComparison(await comparePeer(PEERS['moleculer-nats'], { url: NATS, ...small }));
  });

  it('deletes the stream it created', async () => {
    const channel = unique('peers-test');
    expectComplete(await benchMoleculerNats({ url: NATS, channel, ...small }));
    const nc = await connectNats({ servers: new URL(NATS).host });
    try {
      const jsm = await nc.jetstreamManager();
      await expect(jsm.streams.info(moleculerStreamName(channel))).rejects.toThrow(/stream not found/);
    } finally {
      await nc.close();
    }
  });
});
