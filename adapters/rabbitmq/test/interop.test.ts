import { strict as assert } from 'node:assert';
import { Recorder } from '@wharf/conformance';
import { createBus, silentLogger } from '@wharf/core';
import { CloudEvent as SdkEvent } from 'cloudevents';
import { afterEach, describe, it } from 'vitest';
import createRabbitMqAdapter, { exchangeName } from '../src/index.js';
import { cleanup, PREFIX, unavailable, unique, url, withChannel } from './helpers.js';

const toClose: { close(): Promise<void> }[] = [];
const created: [string, string[]][] = [];
afterEach(async () => {
  await Promise.allSettled(toClose.splice(0).map((b) => b.close()));
  for (const [c, g] of created.splice(0)) await cleanup(c, g);
});

async function setup(): Promise<{ channel: string; rec: Recorder }> {
  const channel = unique('interop');
  const group = unique('g');
  created.push([channel, [group]]);
  const bus = createBus({ adapter: createRabbitMqAdapter({ url, logger: silentLogger }), logger: silentLogger });
  toClose.push(bus);
  const rec = new Recorder();
  await bus.subscribe(channel, { group }, (e, c) => rec.record(e, c.attempt));
  return { channel, rec };
}

function send(channel: string, body: Buffer, options: Record<string, unknown>): Promise<void> {
  return withChannel(
    (ch) =>
      new Promise<void>((resolve, reject) => {
        ch.publish(exchangeName(PREFIX, channel), '', body, { persistent: true, ...options }, (e: unknown) =>
          e ? reject(e) : resolve(),
        );
      }),
  );
}

describe.skipIf(unavailable !== undefined)('interop with non-Wharf AMQP producers', () => {
  it('receives an event built with the CloudEvents SDK and sent by plain amqplib with cloudEvents_ headers', async () => {
    const { channel, rec } = await setup();
    const sdk = new SdkEvent({
      type: 'com.example.order.placed',
      source: '/shop/checkout',
      subject: 'order-42',
      datacontenttype: 'application/json',
      dataschema: 'https://example.com/schemas/order.json',
      data: { orderId: 42, total: 19.99 },
      partitionkey: 'customer-7',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      tenant: 'acme',
    });
    // The AMQP binding: every attribute but datacontenttype as a cloudEvents_ header; that one is content-type.
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(sdk.toJSON())) {
      if (name === 'data' || name === 'datacontenttype' || value === undefined) continue;
      headers[`cloudEvents_${name}`] = String(value);
    }
    await send(channel, Buffer.from(JSON.stringify(sdk.data)), {
      contentType: sdk.datacontenttype,
      messageId: sdk.id,
      headers,
    });
    await rec.count(1, 10_000);
    const got = rec.received[0]?.event;
    assert.ok(got);
    for (const name of ['id', 'source', 'type', 'specversion', 'time', 'subject', 'dataschema', 'datacontenttype']) {
      assert.equal(got[name], (sdk as unknown as Record<string, unknown>)[name], `attribute ${name}`);
    }
    assert.equal(got.partitionkey, 'customer-7');
    assert.equal(got.traceparent, sdk.traceparent);
    assert.equal(got.tenant, 'acme');
    assert.deepEqual(got.data, { orderId: 42, total: 19.99 });
  });

  it('accepts the older cloudEvents: prefix and byte-array header values', async () => {
    const { channel, rec } = await setup();
    await send(channel, Buffer.from('hello'), {
      contentType: 'text/plain',
      headers: {
        'cloudEvents:specversion': '1.0',
        'cloudEvents:id': 'old-1',
        'cloudEvents:source': '/legacy',
        'cloudEvents:type': Buffer.from('Legacy.Event'),
      },
    });
    await rec.count(1, 10_000);
    const got = rec.received[0]?.event;
    assert.equal(got?.id, 'old-1');
    assert.equal(got?.type, 'Legacy.Event');
    assert.equal(got?.data, 'hello');
  });
});
