import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { Recorder } from '@wharf/conformance';
import { type Bus, createBus, silentLogger } from '@wharf/core';
import { CloudEvent, Kafka } from 'cloudevents';
import { afterAll, describe, it } from 'vitest';
import { decode, encode } from '../src/codec.js';
import { adapter, cleanupChannel, publishForeign, skipKafka } from './helpers.js';

const created: [string, string[]][] = [];
const buses: Bus[] = [];

function setup(label: string): { channel: string; group: string; bus: Bus } {
  const channel = `kt-${label}-${randomBytes(4).toString('hex')}`;
  created.push([channel, ['g']]);
  const bus = createBus({ logger: silentLogger, adapter: adapter(), shutdownTimeoutMs: 2_000 });
  buses.push(bus);
  return { channel, group: 'g', bus };
}

/** kafkajs takes string or Buffer header values; the SDK leaves some attributes as non-strings. */
function stringHeaders(headers: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = String(value);
  return out;
}

describe.skipIf(skipKafka)('CloudEvents SDK interop (Kafka binding)', () => {
  afterAll(async () => {
    await Promise.allSettled(buses.map((b) => b.close()));
    for (const [channel, groups] of created) await cleanupChannel(channel, groups).catch(() => undefined);
  });

  it('receives a binary-mode event written by the official SDK with the same attributes', async () => {
    const { channel, group, bus } = setup('sdk-binary');
    const rec = new Recorder();
    await bus.subscribe(channel, { group }, (e, c) => rec.record(e, c.attempt));
    const event = new CloudEvent({
      type: 'com.example.order.placed',
      source: '/sdk/orders',
      subject: 'order-7',
      datacontenttype: 'application/json',
      partitionkey: 'order-7',
      tenant: 'acme',
      data: { orderId: 'order-7', total: 42.5 },
    });
    const message = Kafka.binary(event);
    // Kafka.binary leaves `value` as the data object: serialising it is the producer's job.
    await publishForeign(channel, {
      key: message.key as string,
      body: Buffer.from(JSON.stringify(message.value)),
      headers: stringHeaders(message.headers as Record<string, unknown>),
    });
    await rec.count(1, 15_000);
    const got = rec.received[0]?.event;
    for (const name of [
      'id',
      'type',
      'source',
      'subject',
      'specversion',
      'time',
      'datacontenttype',
      'partitionkey',
      'tenant',
    ]) {
      assert.equal(got?.[name], (event as unknown as Record<string, unknown>)[name], `attribute ${name}`);
    }
    assert.deepEqual(got?.data, event.data);
  });

  it('receives a structured-mode event written by the official SDK', async () => {
    const { channel, group, bus } = setup('sdk-structured');
    const rec = new Recorder();
    await bus.subscribe(channel, { group }, (e, c) => rec.record(e, c.attempt));
    const event = new CloudEvent({ type: 'com.example.ping', source: '/sdk', data: { n: 1 }, tenant: 'acme' });
    const message = Kafka.structured(event);
    await publishForeign(channel, {
      body: Buffer.from(String(message.value)),
      headers: stringHeaders(message.headers as Record<string, unknown>),
    });
    await rec.count(1, 15_000);
    const got = rec.received[0]?.event;
    assert.equal(got?.id, event.id);
    assert.equal(got?.tenant, 'acme');
    assert.deepEqual(got?.data, { n: 1 });
  });
});

describe('codec against the SDK (no broker)', () => {
  it('writes records the SDK reads back as the same event', () => {
    const record = encode({
      attributes: {
        specversion: '1.0',
        id: 'e-1',
        source: '/wharf',
        type: 'T',
        datacontenttype: 'application/json',
        partitionkey: 'k-1',
        tenant: 'acme',
      },
      body: Buffer.from('{"a":1}'),
    });
    // Kafka.toEvent throws on Buffer header values (what kafkajs delivers): hand it strings.
    const headers = stringHeaders(record.headers as Record<string, unknown>);
    // The SDK's Message type omits the Kafka fields its Kafka binding reads (key, value).
    const message = {
      key: record.key as string,
      value: record.value as Buffer,
      body: record.value as Buffer,
      headers,
      timestamp: String(Date.now()),
    };
    const event = Kafka.toEvent(message as Parameters<typeof Kafka.toEvent>[0]) as CloudEvent;
    assert.equal(event.id, 'e-1');
    assert.equal(event.partitionkey, 'k-1');
    assert.equal(event.tenant, 'acme');
    assert.equal(headers['content-type'], 'application/json');
  });

  it('maps the record key to partitionkey and refuses malformed headers', () => {
    const base = {
      topic: 't',
      partition: 0,
      offset: '0',
      timestamp: '0',
      value: Buffer.from('{}'),
    };
    const ok = decode({
      ...base,
      key: Buffer.from('k-9'),
      headers: { ce_specversion: Buffer.from('1.0'), ce_id: 'x', ce_source: '/s', ce_type: 't' },
    });
    assert.ok(ok.ok && ok.message.attributes.partitionkey === 'k-9');
    const badUtf8 = decode({
      ...base,
      key: null,
      headers: { ce_specversion: '1.0', ce_id: Buffer.from([0xff, 0xfe]), ce_source: '/s', ce_type: 't' },
    });
    assert.ok(!badUtf8.ok && /UTF-8/.test(badUtf8.error.message));
    const repeated = decode({
      ...base,
      key: null,
      headers: { ce_specversion: '1.0', ce_id: ['a', 'b'], ce_source: '/s', ce_type: 't' },
    });
    assert.ok(!repeated.ok && /appears 2 times/.test(repeated.error.message));
    const foreign = decode({ ...base, key: null, headers: { origin: 'legacy' } });
    assert.ok(!foreign.ok && /not a CloudEvent/.test(foreign.error.message));
  });
});
