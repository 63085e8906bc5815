import { MsgHdrsImpl } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { decodeHeaderValue, decodeMessage, encodeHeaders, encodeHeaderValue, messageId } from '../src/codec.js';
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
