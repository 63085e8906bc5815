import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Bus, silentLogger } from '@wharf/core';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createClient } from '../src/client.js';
import createKafkaAdapter, { conformanceHarness, Names } from '../src/index.js';
import { FAST } from './helpers.js';
import { PrivateBroker } from './private-broker.js';

const child = fileURLToPath(new URL('./fixtures/load-child.ts', import.meta.url));
const EVENTS = 2_000;
const CLIENTS = ['kafkajs', 'platformatic'] as const;

interface Service {
  readonly proc: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
  /** Resolves once the service printed a line matching `pattern`. */
  readonly printed: (pattern: RegExp) => Promise<void>;
}

function service(url: string, channel: string, group: string): Service {
  const proc = spawn(
    process.execPath,
    ['--conditions=wharf-source', '--import', 'tsx', child, url, channel, group, String(EVENTS)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const watchers: [RegExp, () => void][] = [];
  const onData = (chunk: Buffer): void => {
    out += chunk.toString();
    for (const [pattern, wake] of [...watchers]) if (pattern.test(out)) wake();
  };
  proc.stdout?.on('data', onData);
  proc.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    proc,
    output: () => out,
    exited,
    printed: (pattern) =>
      new Promise<void>((resolve, reject) => {
        if (pattern.test(out)) return resolve();
        watchers.push([pattern, resolve]);
        void exited.then((code) => reject(new Error(`the service exited (${code}) before ${pattern}:\n${out}`)));
      }),
  };
}

/** Waits for the service's own verdict: every event handled and a clean exit, within `ms`. */
async function outcome(s: Service, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    s.exited,
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), ms);
    }),
  ]);
  clearTimeout(timer);
  if (code === 'timeout') s.proc.kill('SIGKILL');
  const out = s.output();
  assert.ok(!out.includes('UNHANDLED'), `an error escaped to the process:\n${out.slice(-4_000)}`);
  assert.equal(code, 0, `the service did not finish (${code}):\n${out.slice(-4_000)}`);
  assert.match(out, /\bdone\b/);
}

/**
 * Issue 13, item 2: a broker `kill -9` mid-run and at start-up. The service must not crash (no
 * unhandled kafkajs error), must wait for the broker instead of giving up, must not hang, and must
 * handle every event it published. The broker is a private one on free ports, stopped at the end.
 */
describe('kafka: broker kill -9 (private broker)', () => {
  let broker: PrivateBroker;
  const services: Service[] = [];
  const channels: string[] = [];

  beforeAll(async () => {
    broker = await PrivateBroker.create();
    await broker.up();
  }, 180_000);

  afterAll(async () => {
    for (const s of services) s.proc.kill('SIGKILL');
    try {
      const harness = conformanceHarness(broker.url);
      for (const channel of channels) await harness.cleanup(channel, ['g']).catch(() => undefined);
    } finally {
      await broker.stop();
    }
  }, 180_000);

  // Both clients, on the one private broker (issue 21: the second client passes the chaos tests too).
  for (const client of CLIENTS) {
    const urlOf = () => (client === 'platformatic' ? `${broker.url}?client=platformatic` : broker.url);

    it(`${client}: a kill -9 mid-run: no crash, no hang, every event handled`, { timeout: 240_000 }, async () => {
      const channel = `kc-mid-${randomBytes(4).toString('hex')}`;
      channels.push(channel);
      const s = service(urlOf(), channel, 'g');
      services.push(s);
      await s.printed(/received [5-9]00\b/);
      await broker.kill9();
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      await broker.up();
      await outcome(s, 180_000);
    });

    it(`${client}: a kill -9 before start-up: the service waits for the broker`, { timeout: 240_000 }, async () => {
      const channel = `kc-start-${randomBytes(4).toString('hex')}`;
      channels.push(channel);
      await broker.kill9();
      const s = service(urlOf(), channel, 'g');
      services.push(s);
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      assert.equal(s.proc.exitCode, null, `the service gave up while the broker was down:\n${s.output()}`);
      await broker.up();
      await outcome(s, 180_000);
    });

    it(`${client}: a produce request that timed out on a frozen broker: every publish that resolved is stored`, {
      timeout: 120_000,
    }, async () => {
      // A request that times out may still be written once the broker runs again. kafkajs gives its
      // sequence number back and sends the retry of a keyless record to another partition, so the
      // next record of the first partition reused a stored sequence number: the broker answered it
      // as a duplicate without writing it, and its publish resolved (before the fix: `b-1` lost,
      // `stalled` stored twice, on partitions 0 and 1).
      const channel = `kc-frozen-${randomBytes(4).toString('hex')}`;
      channels.push(channel);
      const options = { url: urlOf(), logger: silentLogger, ...FAST, publishTimeoutMs: 3_000 };
      const bus = new Bus({ logger: silentLogger, publishTimeoutMs: 3_000, adapter: createKafkaAdapter(options) });
      const resolved: string[] = [];
      const publish = async (id: string): Promise<void> => {
        try {
          await bus.publish(channel, { type: 'Tick', id });
          resolved.push(id);
        } catch {
          // reported as failed: may or may not be stored
        }
      };
      try {
        for (let i = 0; i < 6; i++) await publish(`a-${i}`);
        await broker.pause();
        const stalled = publish('stalled');
        await new Promise((resolve) => setTimeout(resolve, 4_500));
        await broker.resume();
        await stalled;
        for (let i = 0; i < 30; i++) await publish(`b-${i}`);
      } finally {
        await broker.resume();
        await bus.close();
      }
      assert.ok(resolved.length >= 30, `too few publishes succeeded: ${resolved.join(', ')}`);
      const stored = await storedIds(broker.url, new Names('wharf').channel(channel));
      const lost = resolved.filter((id) => !stored.has(id));
      assert.deepEqual(lost, [], `publishes resolved but not stored: ${lost.join(', ')}`);
    });
  }
});

/** The `ce_id` of every record of `topic`, read with a raw consumer of a throw-away group. */
async function storedIds(url: string, topic: string): Promise<Set<string>> {
  const client = createClient({
    brokers: [url.replace('kafka://', '')],
    clientId: 'wharf-kafka-tests',
    connectionTimeoutMs: 3_000,
    requestTimeoutMs: 10_000,
    retries: 5,
    maxRetryTimeMs: 1_000,
    logger: silentLogger,
  });
  const admin = await client.admin();
  const groupId = `kc-reader-${randomBytes(4).toString('hex')}`;
  const consumer = client.consumer({
    groupId,
    sessionTimeoutMs: 6_000,
    rebalanceTimeoutMs: 10_000,
    heartbeatIntervalMs: 1_000,
    maxWaitTimeMs: 100,
    partitionsConcurrently: 1,
  });
  try {
    const ends = await admin.ends(topic);
    const left = new Map(ends.map((e) => [e.partition, BigInt(e.high)]));
    const ids = new Set<string>();
    let done: () => void = () => {};
    const all = new Promise<void>((resolve) => {
      done = resolve;
    });
    const check = (): void => {
      if ([...left.values()].every((high) => high <= 0n)) done();
    };
    check();
    await consumer.run([topic], async (batch) => {
      for (const record of batch.records) {
        const id = record.headers.ce_id;
        if (id !== undefined) ids.add(String(id));
        batch.resolve(record.offset);
        if (BigInt(record.offset) + 1n >= (left.get(batch.partition) ?? 0n)) left.set(batch.partition, 0n);
      }
      check();
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      all,
      new Promise((resolve) => {
        timer = setTimeout(resolve, 30_000);
      }),
    ]);
    clearTimeout(timer);
    return ids;
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  }
}
