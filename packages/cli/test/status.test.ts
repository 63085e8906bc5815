import { randomBytes } from 'node:crypto';
import { brokersRequired, probeBroker } from '@wharf/conformance';
import { type Bus, createBus, silentLogger } from '@wharf/core';
import { channelGroups } from '@wharf/example-order-saga';
import { conformanceHarness as kafkaHarness } from '@wharf/kafka';
import { conformanceHarness as natsHarness } from '@wharf/nats';
import { conformanceHarness as rabbitHarness } from '@wharf/rabbitmq';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../src/main.js';
import { decideReplicas } from '../src/scale.js';

/** Runs `wharf …` in this process, so a memory:// broker is shared with the test. */
async function wharf(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    out: (text) => {
      stdout += text.endsWith('\n') ? text : `${text}\n`;
    },
    err: (text) => {
      stderr += text.endsWith('\n') ? text : `${text}\n`;
    },
  });
  return { code, stdout, stderr };
}

interface StatusJson {
  groups: { channel: string; group: string; ready: number; inFlight: number; delayed: number; deadLetters: number }[];
  missing: { channel: string; group: string }[];
}

const unique = (label: string): string => `${label}-${randomBytes(4).toString('hex')}`;
const buses: Bus[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.allSettled(buses.splice(0).map((b) => b.close()));
  for (const cleanup of cleanups.splice(0)) await cleanup().catch(() => undefined);
});
function bus(url: string): Bus {
  const b = createBus({ url, logger: silentLogger, shutdownTimeoutMs: 2_000 });
  buses.push(b);
  return b;
}

async function publish(b: Bus, channel: string, total: number): Promise<void> {
  for (let i = 0; i < total; i += 100) {
    await b.publishBatch(
      channel,
      Array.from({ length: Math.min(100, total - i) }, (_, k) => ({ type: 'Queued', data: { n: i + k } })),
    );
  }
}

describe('decideReplicas', () => {
  it('applies ceil(backlog × 1.2 / capacity), 0 when empty, capped where the broker caps', () => {
    expect(decideReplicas({ backlog: 500, capacity: 100 }).replicas).toBe(6);
    expect(decideReplicas({ backlog: 35, capacity: 1 }).replicas).toBe(42);
    expect(decideReplicas({ backlog: 1, capacity: 1_000 }).replicas).toBe(1);
    expect(decideReplicas({ backlog: 0, capacity: 10 }).replicas).toBe(0);
    expect(decideReplicas({ backlog: 501, capacity: 100 })).toMatchObject({ uncapped: 7, replicas: 7 });
    expect(decideReplicas({ backlog: 500, capacity: 100, cap: 3 })).toMatchObject({ uncapped: 6, cap: 3, replicas: 3 });
    expect(() => decideReplicas({ backlog: 1, capacity: 0 })).toThrow(RangeError);
  });
});

describe('wharf status and scale on memory', () => {
  it('prints the backlog by state, as a table and as JSON, and reports groups not declared', async () => {
    const url = `memory://${unique('cli-status')}`;
    const b = bus(url);
    await b.declare('orders', { groups: ['billing', 'audit'] });
    await publish(b, 'orders', 500);

    const run = await wharf(
      'status',
      '--broker',
      url,
      '--channel',
      'orders',
      '--group',
      'billing',
      '--group',
      'audit',
      '--json',
    );
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as StatusJson;
    expect(report.groups).toEqual([
      { channel: 'orders', group: 'billing', ready: 500, inFlight: 0, delayed: 0, deadLetters: 0, consumers: 0 },
      { channel: 'orders', group: 'audit', ready: 500, inFlight: 0, delayed: 0, deadLetters: 0, consumers: 0 },
    ]);
    expect(report.missing).toEqual([]);

    const table = await wharf('status', '--broker', url, '--channel', 'orders', '--group', 'billing');
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/CHANNEL\s+GROUP\s+READY\s+IN FLIGHT\s+DELAYED\s+DEAD LETTERS\s+CONSUMERS/);
    expect(table.stdout).toMatch(/orders\s+billing\s+500\s+0\s+0\s+0\s+0/);

    const missing = await wharf('status', '--broker', url, '--channel', 'orders', '--group', 'nobody', '--json');
    expect(missing.code).toBe(1);
    expect((JSON.parse(missing.stdout) as StatusJson).missing).toMatchObject([{ channel: 'orders', group: 'nobody' }]);
  });

  it('--saga reports every channel and group of the order saga', async () => {
    const url = `memory://${unique('cli-saga')}`;
    const b = bus(url);
    const pairs = channelGroups('ns');
    for (const [channel, groups] of pairs) await b.declare(channel, { groups });
    const first = [...pairs.keys()][0] as string;
    await publish(b, first, 2);
    const run = await wharf('status', '--broker', url, '--saga', '--namespace', 'ns', '--json');
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as StatusJson;
    expect(report.groups).toHaveLength([...pairs.values()].flat().length);
    for (const row of report.groups) expect(row.ready).toBe(row.channel === first ? 2 : 0);
    const other = await wharf('status', '--broker', url, '--saga', '--namespace', 'other', '--json');
    expect(other.code).toBe(1);
    expect((JSON.parse(other.stdout) as StatusJson).missing).toHaveLength(report.groups.length);
  });

  it('watches: one JSON line per reading', async () => {
    const url = `memory://${unique('cli-watch')}`;
    const b = bus(url);
    await b.declare('orders', { groups: ['billing'] });
    await publish(b, 'orders', 3);
    const run = await wharf(
      'status',
      '--broker',
      url,
      '--channel',
      'orders',
      '--group',
      'billing',
      '--watch',
      '--interval',
      '1',
      '--iterations',
      '2',
      '--json',
    );
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const line of lines) expect((JSON.parse(line) as StatusJson).groups[0]?.ready).toBe(3);
  });

  it('scale shows the rule, its inputs and the replicas', async () => {
    const url = `memory://${unique('cli-scale')}`;
    const b = bus(url);
    await b.declare('orders', { groups: ['billing'] });
    await publish(b, 'orders', 500);
    const run = await wharf(
      'scale',
      '--broker',
      url,
      '--channel',
      'orders',
      '--group',
      'billing',
      '--capacity',
      '100',
      '--json',
    );
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      inputs: { backlog: 500, capacity: 100, headroom: 1.2 },
      uncapped: 6,
      cap: null,
      replicas: 6,
    });
    const human = await wharf(
      'scale',
      '--broker',
      url,
      '--channel',
      'orders',
      '--group',
      'billing',
      '--capacity',
      '100',
    );
    expect(human.stdout).toContain('replicas = ceil(500 × 1.2 / 100) = 6');
  });

  it('refuses missing or bad flags with usage', async () => {
    const noGroup = await wharf('status', '--broker', 'memory://', '--channel', 'orders');
    expect(noGroup.code).toBe(2);
    expect(noGroup.stderr).toContain('--group');
    const capacity = await wharf('scale', '--broker', 'memory://', '--channel', 'c', '--group', 'g', '--capacity', '0');
    expect(capacity.code).toBe(2);
    expect(capacity.stderr).toContain('--capacity must be');
    const delays = await wharf('status', '--channel', 'c', '--group', 'g', '--retry-delays', 'soon');
    expect(delays.code).toBe(2);
    const unknown = await wharf(
      'scale',
      '--broker',
      `memory://${unique('x')}`,
      '--channel',
      'c',
      '--group',
      'g',
      '--capacity',
      '5',
    );
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('is not declared');
  });
});

const BROKERS = [
  {
    name: 'rabbitmq',
    url: process.env.WHARF_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
    port: 5672,
    cleanup: (url: string, channel: string) => rabbitHarness(url, 'wharf').cleanup(channel, ['billing']),
    cap: null,
  },
  {
    name: 'kafka',
    url: process.env.WHARF_KAFKA_URL ?? 'kafka://127.0.0.1:9092',
    port: 9092,
    cleanup: (url: string, channel: string) => kafkaHarness(url).cleanup(channel, ['billing']),
    // The adapter's default partition count.
    cap: 3,
  },
  {
    name: 'nats',
    url: process.env.WHARF_NATS_URL ?? 'nats://127.0.0.1:4222',
    port: 4222,
    cleanup: (url: string, channel: string) => natsHarness(url).cleanup(channel, ['billing']),
    cap: null,
  },
] as const;

describe.each(BROKERS)('wharf status and scale on $name', (broker) => {
  it('reports 500 ready events, the replicas for them, then 0 once drained', async (ctx) => {
    const host = new URL(broker.url.replace(/^kafka:/, 'http:')).hostname;
    const unavailable = await probeBroker(broker.name, host, broker.port);
    if (unavailable !== undefined) {
      if (brokersRequired()) throw new Error(unavailable);
      ctx.skip(unavailable);
    }
    const channel = unique(`cli-status-${broker.name}`);
    cleanups.push(() => broker.cleanup(broker.url, channel));
    const b = bus(broker.url);
    await b.declare(channel, { groups: ['billing'] });
    await publish(b, channel, 500);

    const read = async (): Promise<StatusJson['groups'][number] | undefined> => {
      const run = await wharf('status', '--broker', broker.url, '--channel', channel, '--group', 'billing', '--json');
      expect(run.code, run.stderr).toBe(0);
      return (JSON.parse(run.stdout) as StatusJson).groups[0];
    };
    expect(await read()).toMatchObject({
      channel,
      group: 'billing',
      ready: 500,
      inFlight: 0,
      delayed: 0,
      deadLetters: 0,
    });

    const scaled = await wharf(
      'scale',
      '--broker',
      broker.url,
      '--channel',
      channel,
      '--group',
      'billing',
      '--capacity',
      '100',
      '--json',
    );
    expect(scaled.code, scaled.stderr).toBe(0);
    expect(JSON.parse(scaled.stdout)).toMatchObject({
      inputs: { backlog: 500, capacity: 100 },
      uncapped: 6,
      cap: broker.cap,
      replicas: broker.cap ?? 6,
    });

    let handled = 0;
    await b.subscribe(channel, { group: 'billing', concurrency: 20 }, () => {
      handled++;
    });
    const deadline = Date.now() + 60_000;
    let last = await read();
    while ((handled < 500 || last?.ready !== 0 || last.inFlight !== 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      last = await read();
    }
    expect(handled).toBe(500);
    expect(last).toMatchObject({ ready: 0, inFlight: 0, delayed: 0, deadLetters: 0 });
  });
});
