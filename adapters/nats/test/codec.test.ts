import type { Msg } from '@nats-io/transport-node';
import { MsgHdrsImpl } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import {
  decodeDelivered,
  decodeHeaderValue,
  decodeMessage,
  encodeHeaderBlock,
  encodeHeaders,
  encodeHeaderValue,
  messageId,
} from '../src/codec.js';
import { parseAckSubject } from '../src/subscriber.js';
import { escapeName } from '../src/topology.js';

describe('nats codec (CloudEvents NATS binding, binary mode)', () => {
  it('round-trips attribute values NATS headers cannot carry as they are', () => {
    const attributes = {
      specversion: '1.0',
      id: 'id-1',
      source: ' /padded source ',
      type: 't',
      subject: 'two\r\nlines and 100% sure',
      datacontenttype: 'text/plain; charset=utf-8',
      tenant: 'ünïcödé 日本',
    };
    const wire = MsgHdrsImpl.decode(encodeHeaders({ attributes, body: new Uint8Array([1]) }).encode());
    expect(wire.get('ce-subject')).not.toMatch(/[\r\n]/);
    expect(wire.get('content-type')).toBe('text/plain; charset=utf-8');
    const decoded = decodeMessage(wire, new Uint8Array([1]));
    expect(decoded).toEqual({ ok: true, message: { attributes, body: new Uint8Array([1]) } });
  });

  it('encodes the hot-path header block byte for byte like MsgHdrs', () => {
    const message = {
      attributes: {
        specversion: '1.0',
        id: 'x',
        source: ' /s ',
        type: 't',
        subject: 'a\r\nb 100%',
        tenant: 'ünï 日本',
      },
      body: new Uint8Array([1]),
    };
    expect(new Uint8Array(encodeHeaderBlock(message))).toEqual(encodeHeaders(message).encode());
    const replayed = { ...message, attributes: { ...message.attributes, replayed: '2026-01-01T00:00:00Z' } };
    expect(new Uint8Array(encodeHeaderBlock(replayed))).toEqual(encodeHeaders(replayed).encode());
  });

  it('decodes a delivered message from its raw header block like decodeMessage(msg.headers)', () => {
    const body = new TextEncoder().encode('payload');
    const delivered = (block: string | undefined): Msg => {
      const head = block === undefined ? new Uint8Array() : new TextEncoder().encode(block);
      const rdata = new Uint8Array(head.length + body.length);
      rdata.set(head);
      rdata.set(body, head.length);
      return {
        _msg: { hdr: block === undefined ? -1 : head.length },
        _rdata: rdata,
        headers: block === undefined ? undefined : MsgHdrsImpl.decode(head),
        data: body,
      } as unknown as Msg;
    };
    const blocks = [
      encodeHeaders({
        attributes: { specversion: '1.0', id: 'i', source: ' s ', type: 't', datacontenttype: 'text/plain', x: 'ü\n' },
        body,
      }).toString(),
      // duplicates (first value wins), names differing in case (the later one wins), odd spacing, foreign headers
      'NATS/1.0\r\nce-specversion: 1.0\r\nce-id:  a  \r\nce-id: b\r\nCE-Type: T1\r\nce-type: t2\r\nX-Foo: bar\r\nno colon\r\n\r\n',
      'NATS/1.0\r\nce-specversion: 1.0\r\nce-ID: a\r\nce-id: b\r\nce-ID: c\r\ncontent-type: x\r\nContent-Type: y\r\ncontent-type: z\r\n\r\n',
      'NATS/1.0\r\nce-specversion: 1.0\r\nce-constructor: a\r\nce-id: %41\r\n\r\n',
      'NATS/1.0\r\nce-specversion: 1.0\r\nce-: empty\r\nCE-ID: x\r\ncontent-typo: y\r\n\r\n',
      // blanks around values; then a raw non-ASCII value (byte offsets no longer match the text's)
      'NATS/1.0\r\nce-specversion: 1.0\r\nce-id:\t\u000b a long id with blanks \t\u000c\r\nce-source: urn:x\r\n\r\n',
      'NATS/1.0\r\nce-specversion: 1.0\r\nce-id: \tanother long id\t\r\nce-source: urn:café\r\n\r\n',
      'NATS/1.0\r\nContent-Type: application/cloudevents+json\r\n\r\n',
      'NATS/1.0\r\nContent-Type: text/plain\r\n\r\n',
      'NATS/1.0\r\n\r\n',
      undefined,
    ];
    for (const block of blocks) {
      const msg = delivered(block);
      const decoded = decodeDelivered(msg);
      const expected = decodeMessage(msg.headers, body);
      expect(decoded.ok).toBe(expected.ok);
      if (decoded.ok && expected.ok) expect(decoded.message).toEqual(expected.message);
      if (!decoded.ok && !expected.ok) expect(decoded.error.message).toBe(expected.error.message);
    }
  });

  it('parses JetStream ack subjects with and without a domain', () => {
    expect(parseAckSubject('$JS.ACK.S.C.2.345.3.1700000000000000000.5')).toEqual({
      stream: 'S',
      consumer: 'C',
      deliveryCount: 2,
      streamSequence: 345,
      timestampNanos: '1700000000000000000',
    });
    expect(parseAckSubject('$JS.ACK.D.H.S.C.12.345.3.17.5.rand')).toMatchObject({ stream: 'S', deliveryCount: 12 });
    expect(parseAckSubject('$JS.ACK.S.C.x.2.3.4.5')?.deliveryCount).toBeNaN();
    expect(parseAckSubject('$JS.ACK.S.C.1.2.3.4')).toBeUndefined();
    expect(parseAckSubject('$JS.ACKS.C.1.2.3.4.5.6')).toBeUndefined();
  });

  it('leaves foreign values without our escapes alone', () => {
    expect(decodeHeaderValue('100%')).toBe('100%');
    expect(decodeHeaderValue(encodeHeaderValue('%zz'))).toBe('%zz');
  });

  it('reports a message without ce-specversion as undecodable, naming why', () => {
    const h = new MsgHdrsImpl();
    h.set('content-type', 'text/plain');
    const decoded = decodeMessage(h, new TextEncoder().encode('hello'));
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) expect(decoded.error.message).toMatch(/not a CloudEvent/);
    expect(decodeMessage(undefined, new Uint8Array()).ok).toBe(false);
  });

  it('keys the dedup id by source and id, and a replay gets its own', () => {
    const a = messageId({ source: '/a', id: '1' });
    expect(messageId({ source: '/b', id: '1' })).not.toBe(a);
    expect(messageId({ source: '/a', id: '1', replayed: '2026-01-01T00:00:00Z' })).not.toBe(a);
  });

  it('escapes names injectively into single subject tokens', () => {
    const names = ['a.b', 'a_b', 'a-b', 'a_2Eb', 'A.b'];
    const escaped = names.map(escapeName);
    expect(new Set(escaped).size).toBe(names.length);
    for (const e of escaped) expect(e).toMatch(/^[A-Za-z0-9_]+$/);
    expect(escapeName('x'.repeat(200)).length).toBeLessThanOrEqual(120);
  });
});
