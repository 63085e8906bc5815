import { strict as assert } from 'node:assert';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { brokersRequired } from '@wharf/conformance';
import {
  type Adapter,
  createBus,
  createEvent,
  type Delivery,
  encodeEvent,
  type NormalizedRetryPolicy,
  silentLogger,
  type WireMessage,
} from '@wharf/core';
import { CloudEvent } from 'cloudevents';
import { afterEach, describe, expect, it } from 'vitest';
import { channelNames, dlqSubject } from '../src/index.js';
import { resolveOptions } from '../src/options.js';
import { adapter, cleanup, unavailable, unique, url, withConnection } from './helpers.js';

if (unavailable && brokersRequired()) throw new Error(`${unavailable} — CI requires NATS`);
if (unavailable) process.stdout.write(`[wharf] nats adapter tests skipped: ${unavailable}\n`);

const policy = (maxAttempts: number, delays: number[] = [100]): NormalizedRetryPolicy => ({
  maxAttempts,
  delays: Array.from({ length: maxAttempts - 1 }, (_, i) => delays[Math.min(i, delays.length - 1)] as number),
  jitter: 0,
});

const wire = (input: Parameters<typeof createEvent>[0]): WireMessage => encodeEvent(createEvent(input, '/nats-test'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(predicate: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const open: Adapter[] = [];
const channels: string[] = [];
function track(a: Adapter): Adapter {
  open.push(a);
  return a;
}
function channel(label: string): string {
  const name = unique(`nats-${label}`);
  channels.push(name);
  return name;
}

afterEach(async () => {
  await Promise.allSettled(open.splice(0).map((a) => a.close()));
  for (const c of channels.splice(0)) await cleanup(c);
});

const names = (c: string) => channelNames(resolveOptions(url, {}), c);

describe.skipIf(unavailable !== undefined)('nats adapter (JetStream specifics)', () => {
  it('holds retry delays on the server (nak with delay): redelivery waits, even with no consumer process in between', async () => {
    const c = channel('delay');
    const p = policy(3, [1_500, 800]);
    const first = track(adapter());
    await first.connect();
    await first.declare(c, ['g'], p);
    const seen: { attempt: number; at: number }[] = [];
    await first.subscribe({ channel: c, group: 'g', concurrency: 1, policy: p }, async (d: Delivery) => {
      seen.push({ attempt: d.attempt, at: Date.now() });
      await d.retry({
        attempt: d.attempt + 1,
        tierMs: 1_500,
        delayMs: 1_500,
        firstFailureAt: new Date().toISOString(),
      });
    });
    await first.publish(c, [wire({ type: 'Delayed' })]);
    await until(() => seen.length === 1, 'first delivery');
    // The process that asked for the delay goes away: only the server can bring the message back.
    await first.close();
    const second = track(adapter());
    await second.connect();
    await second.subscribe({ channel: c, group: 'g', concurrency: 1, policy: p }, async (d: Delivery) => {
      seen.push({ attempt: d.attempt, at: Date.now() });
      if (d.attempt === 2) {
        await d.retry({ attempt: 3, tierMs: 800, delayMs: 800, firstFailureAt: new Date().toISOString() });
      } else await d.ack();
    });
    await until(() => seen.length === 3, 'three deliveries');
    const gap1 = (seen[1]?.at ?? 0) - (seen[0]?.at ?? 0);
    const gap2 = (seen[2]?.at ?? 0) - (seen[1]?.at ?? 0);
    expect(seen.map((s) => s.attempt)).toEqual([1, 2, 3]);
    expect(gap1).toBeGreaterThanOrEqual(1_400);
    expect(gap1).toBeLessThan(1_500 + 1_500);
    expect(gap2).toBeGreaterThanOrEqual(750);
    expect(gap2).toBeLessThan(800 + 1_500);
  });

  it('purges what every group settled (limits retention), keeps what a lagging group needs, keeps nothing for no group', async () => {
    const c = channel('retention');
    const lonely = channel('nogroup');
    const a = track(adapter({ purgeIntervalMs: 100 }));
    const bus = createBus({ adapter: a, logger: silentLogger });
    const info = (stream: string) => withConnection(async (nc) => (await jetstreamManager(nc)).streams.info(stream));
    await bus.declare(c, { groups: ['fast', 'slow'] });
    const fast: string[] = [];
    await bus.subscribe(c, { group: 'fast', concurrency: 2 }, (e) => {
      fast.push(e.id);
    });
    const sent = await bus.publishBatch(
      c,
      Array.from({ length: 5 }, (_, n) => ({ type: 'Kept', data: { n } })),
    );
    await until(() => fast.length === 5, 'the fast group');
    await sleep(600);
    const held = await info(names(c).stream);
    expect(held.config.retention).toBe('limits');
    expect(held.state.messages).toBe(5);
    const slow: string[] = [];
    await bus.subscribe(c, { group: 'slow' }, (e) => {
      slow.push(e.id);
    });
    await until(() => slow.length === 5, 'the slow group');
    expect(slow.sort()).toEqual(sent.map((e) => e.id).sort());
    const deadline = Date.now() + 10_000;
    while ((await info(names(c).stream)).state.messages > 0) {
      if (Date.now() > deadline) throw new Error('settled events were not purged');
      await sleep(100);
    }
    // A channel without groups keeps nothing (publishing to it is still accepted).
    await bus.publish(lonely, { type: 'ForNobody' });
    while ((await info(names(lonely).stream)).state.messages > 0) {
      if (Date.now() > deadline) throw new Error('an event for no group was kept');
      await sleep(100);
    }
    await bus.close();
  });

  it('deduplicates a republished id in the server window, but not a replay or another source', async () => {
    const c = channel('dedup');
    const a = track(adapter());
    await a.connect();
    await a.declare(c, ['g'], policy(1));
    const event = createEvent({ type: 'Once', data: { n: 1 } }, '/src-a');
    await a.publish(c, [encodeEvent(event)]);
    await a.publish(c, [encodeEvent(event)]);
    await a.publish(c, [encodeEvent({ ...event, source: '/src-b' })]);
    await a.publish(c, [encodeEvent({ ...event, replayed: new Date().toISOString() })]);
    const info = await withConnection(async (nc) => (await jetstreamManager(nc)).streams.info(names(c).stream));
    expect(info.state.messages).toBe(3);
    // And the header on the wire is what the server deduplicates on.
    const stored = await withConnection(async (nc) =>
      (await jetstreamManager(nc)).streams.getMessage(names(c).stream, { seq: 1 }),
    );
    expect(stored?.header.get('Nats-Msg-Id')).toBe(`/src-a ${event.id}`);
  });

  it('keeps a long handler’s message with working() heartbeats: no redelivery past ack_wait', async () => {
    const c = channel('long');
    const a = track(adapter({ ackWaitMs: 1_000 }));
    const bus = createBus({ adapter: a, logger: silentLogger });
    let calls = 0;
    let done = false;
    await bus.subscribe(c, { group: 'g', concurrency: 2 }, async () => {
      calls++;
      await sleep(4_000);
      done = true;
    });
    await bus.publish(c, { type: 'Slow' });
    await until(() => done, 'the slow handler', 15_000);
    await sleep(1_500);
    expect(calls).toBe(1);
    const info = await withConnection(async (nc) => (await jetstreamManager(nc)).consumers.info(names(c).stream, 'g'));
    expect(info.num_redelivered).toBe(0);
    expect(info.num_ack_pending).toBe(0);
    await bus.close();
  });

  it('updates a consumer made by an older version (ack_wait 30 s, no filter) on declare, keeping its position', async () => {
    const c = channel('upgrade');
    const a = track(adapter());
    const bus = createBus({ adapter: a, logger: silentLogger });
    await bus.declare(c, { groups: [] });
    // The consumer as @wharf/nats made it before: ack_wait 30 s, no filter subject; one event waits for it.
    await withConnection(async (nc) => {
      const jsm = await jetstreamManager(nc);
      await jsm.consumers.add(names(c).stream, {
        durable_name: 'g',
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.New,
        ack_wait: 30_000_000_000,
        max_deliver: 7,
        max_ack_pending: 1001,
      });
    });
    await bus.publish(c, { type: 'Before', id: 'before-1' });
    await bus.declare(c, { groups: ['g'] });
    const info = await withConnection(async (nc) => (await jetstreamManager(nc)).consumers.info(names(c).stream, 'g'));
    expect(info.config.ack_wait).toBe(4_000_000_000);
    expect(info.config.filter_subject).toBe(names(c).subject);
    const seen: string[] = [];
    await bus.subscribe(c, { group: 'g' }, async (event) => {
      seen.push(event.id);
    });
    await until(() => seen.includes('before-1'), 'the event published before the upgrade');
    await bus.close();
  });

  it('uses every concurrency slot: six long handlers run at once on a concurrency-6 subscription', async () => {
    // A pull loop that asked only for "enough" free slots (a threshold) while a request was open left the last
    // slot idle once that request was used up, until a handler settled: five long handlers ran, not six.
    const c = channel('slots');
    const bus = createBus({ adapter: track(adapter()), logger: silentLogger });
    await bus.declare(c, { groups: ['g'] });
    let running = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    await bus.subscribe(c, { group: 'g', concurrency: 6 }, async (event) => {
      if (event.type !== 'Long') return;
      running++;
      await gate;
    });
    await bus.publishBatch(
      c,
      Array.from({ length: 10 }, () => ({ type: 'Quick' })),
    );
    await sleep(500);
    await bus.publishBatch(
      c,
      Array.from({ length: 6 }, () => ({ type: 'Long' })),
    );
    try {
      await until(() => running === 6, 'six long handlers running at once', 5_000);
    } finally {
      release();
    }
    await bus.close();
  });

  it('ends a crash loop dead-lettered: deliveries that are never settled stop at MaxDeliver with a dead letter', async () => {
    const c = channel('crash');
    const p = policy(2);
    // max_deliver = maxAttempts (2) + extraDeliveries (1) + 1 = 4; the 4th delivery is dead-lettered by us.
    const opts = { ackWaitMs: 1_000, extraDeliveries: 1 };
    const setup = track(adapter(opts));
    await setup.connect();
    await setup.declare(c, ['g'], p);
    const sent = wire({ type: 'Crashes', data: { n: 1 } });
    await setup.publish(c, [sent]);
    const attempts: number[] = [];
    for (let crash = 1; crash <= 3; crash++) {
      // Each "process" takes the message and dies before settling it.
      const victim = adapter(opts);
      await victim.connect();
      let got = false;
      await victim.subscribe({ channel: c, group: 'g', concurrency: 1, policy: p }, async (d) => {
        attempts.push(d.attempt);
        got = true;
      });
      await until(() => got, `delivery ${crash}`, 15_000);
      await victim.close();
    }
    // Attempts never exceed maxAttempts as the handler sees them.
    expect(attempts).toEqual([1, 2, 2]);
    const survivor = track(adapter(opts));
    await survivor.connect();
    let handled = 0;
    await survivor.subscribe({ channel: c, group: 'g', concurrency: 1, policy: p }, async (d) => {
      handled++;
      await d.ack();
    });
    const dead: { reason?: string; type?: string; id?: string }[] = [];
    await until(() => dead.length > 0, 'the dead letter', 15_000).catch(() => undefined);
    const deadline = Date.now() + 15_000;
    while (dead.length === 0 && Date.now() < deadline) {
      await survivor.readDeadLetters(c, 'g', { limit: 10 }, async (d) => {
        dead.push({
          reason: d.headers['wharf-dl-reason'],
          type: d.headers['wharf-dl-error-type'],
          id: d.decoded.ok ? d.decoded.message.attributes.id : undefined,
        });
        return false;
      });
      if (dead.length === 0) await sleep(200);
    }
    expect(handled).toBe(0);
    expect(dead).toEqual([{ reason: 'retries-exhausted', type: 'CrashLoopError', id: sent.attributes.id }]);
    const info = await withConnection(async (nc) => (await jetstreamManager(nc)).consumers.info(names(c).stream, 'g'));
    expect(info.num_ack_pending).toBe(0);
    expect(info.config.max_deliver).toBe(4);
  });

  it('interoperates with foreign producers and consumers via the CloudEvents SDK (binary ce- headers, structured)', async () => {
    const c = channel('foreign');
    const bus = createBus({ adapter: track(adapter()), logger: silentLogger });
    const got: Record<string, unknown>[] = [];
    await bus.subscribe(c, { group: 'g' }, (e) => {
      got.push({ ...e });
    });
    // A raw consumer of the same channel, as a non-Wharf service would read it.
    const raw: { headers: Record<string, string>; body: string }[] = [];
    await withConnection(async (nc) => {
      const jsm = await jetstreamManager(nc);
      await jsm.consumers.add(names(c).stream, {
        durable_name: 'foreign-reader',
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.New,
      });
      const js = jetstream(nc);
      // Binary mode from a foreign producer, with a multi-line value percent-encoded as the binding asks.
      const sdkEvent = new CloudEvent({ type: 'sdk.binary', source: '/sdk', data: { a: 1 }, tenant: 'x' });
      const h = natsHeaders();
      for (const [k, v] of Object.entries(sdkEvent.toJSON())) {
        if (k === 'data' || k === 'data_base64' || v === undefined) continue;
        if (k === 'datacontenttype') h.set('content-type', String(v));
        else h.set(`ce-${k}`, String(v));
      }
      h.set('ce-comment', 'two%0Alines');
      await js.publish(names(c).subject, new TextEncoder().encode(JSON.stringify(sdkEvent.data)), { headers: h });
      // Structured mode from the SDK.
      const structured = new CloudEvent({ type: 'sdk.structured', source: '/sdk', data: { b: 2 } });
      const sh = natsHeaders();
      sh.set('content-type', 'application/cloudevents+json');
      await js.publish(names(c).subject, new TextEncoder().encode(JSON.stringify(structured)), { headers: sh });
      // Wharf publishes; the raw reader sees the NATS binding's headers.
      await bus.publish(c, { type: 'wharf.out', data: { c: 3 }, subject: 'with\nnewline' });
      const consumer = await js.consumers.get(names(c).stream, 'foreign-reader');
      const batch = await consumer.fetch({ max_messages: 3, expires: 5_000 });
      for await (const m of batch) {
        const headers: Record<string, string> = {};
        for (const k of m.headers?.keys() ?? []) headers[k] = m.headers?.get(k) ?? '';
        raw.push({ headers, body: m.string() });
        m.ack();
      }
    });
    await until(() => got.length === 3, 'three events');
    const byType = new Map(got.map((e) => [e.type, e]));
    expect(byType.get('sdk.binary')).toMatchObject({
      source: '/sdk',
      tenant: 'x',
      comment: 'two\nlines',
      data: { a: 1 },
    });
    expect(byType.get('sdk.structured')).toMatchObject({ source: '/sdk', data: { b: 2 } });
    expect(byType.get('wharf.out')).toMatchObject({ subject: 'with\nnewline', data: { c: 3 } });
    const out = raw.find((r) => r.headers['ce-type'] === 'wharf.out');
    assert.ok(out, 'the raw reader did not see the Wharf event');
    expect(out.headers['ce-specversion']).toBe('1.0');
    expect(out.headers['content-type']).toBe('application/json');
    expect(out.headers['ce-subject']).toBe('with%0Anewline');
    expect(JSON.parse(out.body)).toEqual({ c: 3 });
    // The SDK accepts what we send as a valid CloudEvent.
    const attrs: Record<string, string> = {};
    for (const [k, v] of Object.entries(out.headers))
      if (k.startsWith('ce-')) attrs[k.slice(3)] = decodeURIComponent(v);
    const parsed = new CloudEvent({
      ...attrs,
      datacontenttype: out.headers['content-type'],
      data: JSON.parse(out.body),
    });
    expect(parsed.validate()).toBe(true);
    await bus.close();
  });

  it('writes dead letters with the original headers and wharf-dl-* metadata, and removes them only when told', async () => {
    const c = channel('dlq');
    const a = track(adapter());
    const bus = createBus({ adapter: a, logger: silentLogger });
    await bus.subscribe(c, { group: 'g', retry: { maxAttempts: 1 } }, () => {
      throw new Error('line one\r\nline two');
    });
    const sent = await bus.publishBatch(c, [
      { type: 'Bad', data: { n: 1 }, extensions: { tenant: 'acme' } },
      { type: 'Bad', data: { n: 2 } },
    ]);
    const deadline = Date.now() + 15_000;
    let list = await bus.listDeadLetters(c, 'g');
    while (list.length < 2 && Date.now() < deadline) {
      await sleep(100);
      list = await bus.listDeadLetters(c, 'g');
    }
    expect(list.map((d) => d.event?.id)).toEqual(sent.map((e) => e.id));
    expect(list[0]?.event?.tenant).toBe('acme');
    expect(list[0]?.info?.errorMessage).toBe('line one line two');
    const stored = await withConnection(async (nc) =>
      (await jetstreamManager(nc)).streams.getMessage(names(c).dlqStream, { seq: 1 }),
    );
    expect(stored?.subject).toBe(dlqSubject(resolveOptions(url, {}), c, 'g'));
    expect(stored?.header.get('ce-id')).toBe(sent[0]?.id);
    expect(stored?.header.get('wharf-dl-reason')).toBe('retries-exhausted');
    // Visiting without removing keeps them; removing the first leaves the second.
    let visited = 0;
    await a.readDeadLetters(c, 'g', { limit: 1 }, async () => {
      visited++;
      return true;
    });
    expect(visited).toBe(1);
    expect((await bus.listDeadLetters(c, 'g')).map((d) => d.event?.id)).toEqual([sent[1]?.id]);
    // Another group's dead letters are separate.
    expect(await bus.listDeadLetters(c, 'other')).toEqual([]);
    await bus.close();
  });
});
