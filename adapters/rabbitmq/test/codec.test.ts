import { strict as assert } from 'node:assert';
import { createEvent, encodeEvent, encodeStructured, type WireMessage } from '@wharf/core';
import type { Message } from 'amqplib';
import { describe, it } from 'vitest';
import { decodeMessage, encodeProperties, republishProperties } from '../src/codec.js';
import { groupNames } from '../src/topology.js';

function asDelivered(content: Buffer, properties: Record<string, unknown>): Message {
  return {
    content,
    fields: { deliveryTag: 1, redelivered: false, exchange: 'x', routingKey: '' },
    properties: { headers: {}, ...properties } as Message['properties'],
  };
}

describe('codec (CloudEvents AMQP binding)', () => {
  it('binary mode: attributes as cloudEvents_ headers, datacontenttype as contentType, id as messageId', () => {
    const event = createEvent({ type: 'T', data: { a: 1 }, subject: 's', extensions: { tenant: 'x' } }, 'urn:src');
    const wire = encodeEvent(event);
    const props = encodeProperties(wire);
    assert.equal(props.contentType, 'application/json');
    assert.equal(props.messageId, event.id);
    assert.equal(props.persistent, true);
    assert.equal(props.mandatory, true);
    assert.equal(props.headers.cloudEvents_type, 'T');
    assert.equal(props.headers.cloudEvents_tenant, 'x');
    assert.equal(props.headers.cloudEvents_datacontenttype, undefined);
    const decoded = decodeMessage(asDelivered(Buffer.from(wire.body), props as Record<string, unknown>));
    assert.ok(decoded.ok);
    assert.deepEqual((decoded as { message: WireMessage }).message.attributes, wire.attributes);
  });

  it('structured mode is decoded; garbage is { ok: false } and never throws', () => {
    const event = createEvent({ type: 'S', data: 'x', datacontenttype: 'text/plain' }, 'urn:s');
    const ok = decodeMessage(
      asDelivered(Buffer.from(encodeStructured(event)), { contentType: 'application/cloudevents+json' }),
    );
    assert.ok(ok.ok);
    const bad = decodeMessage(asDelivered(Buffer.from('{'), { contentType: 'application/cloudevents+json' }));
    assert.equal(bad.ok, false);
    const none = decodeMessage(asDelivered(Buffer.from('x'), { headers: undefined }));
    assert.equal(none.ok, false);
  });

  it('republishing drops broker headers and keeps producer properties', () => {
    const m = asDelivered(Buffer.from('x'), {
      messageId: 'm1',
      contentType: 'text/plain',
      headers: { cloudEvents_id: 'm1', 'x-death': [{}], 'x-delivery-count': 3, custom: 'keep' },
    });
    const p = republishProperties(m, { 'wharf-attempt': '2' });
    assert.deepEqual(p.headers, { cloudEvents_id: 'm1', custom: 'keep', 'wharf-attempt': '2' });
    assert.equal(p.messageId, 'm1');
    assert.equal(p.persistent, true);
  });
});

describe('topology names', () => {
  it('never collide between (channel, group) pairs and fit AMQP’s 255 bytes', () => {
    assert.notEqual(groupNames('wharf', 'a.b', 'c').queue, groupNames('wharf', 'a', 'b.c').queue);
    const long = groupNames('wharf', 'c'.repeat(200), 'g'.repeat(200));
    for (const name of [long.queue, long.deadLetters, long.tier(30_000), long.exchange]) {
      assert.ok(Buffer.byteLength(name) <= 255, name);
    }
    assert.notEqual(long.tier(5_000), long.tier(30_000));
    assert.notEqual(long.queue, long.deadLetters);
  });
});
