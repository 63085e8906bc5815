import { describe, expect, it } from 'vitest';
import {
  createEvent,
  decodeEvent,
  decodeStructured,
  encodeEvent,
  encodeStructured,
  InvalidEventError,
} from '../src/index.js';

describe('CloudEvents envelope', () => {
  it('fills id, time, specversion, source and content type', () => {
    const event = createEvent({ type: 'OrderPlaced', data: { a: 1 } }, '/orders');
    expect(event.specversion).toBe('1.0');
    expect(event.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(event.source).toBe('/orders');
    expect(Date.parse(event.time ?? '')).not.toBeNaN();
    expect(event.datacontenttype).toBe('application/json');
  });

  it('keeps given attributes and extensions', () => {
    const event = createEvent(
      { type: 'T', id: 'x-1', source: '/s', partitionkey: 'k', correlationid: 'c', extensions: { tenant: 'acme' } },
      '/default',
    );
    expect(event).toMatchObject({ id: 'x-1', source: '/s', partitionkey: 'k', correlationid: 'c', tenant: 'acme' });
  });

  it('round-trips JSON, binary, text and empty data through the wire form', () => {
    for (const [data, contentType] of [
      [{ nested: { list: [1, 'two', null] } }, undefined],
      [new Uint8Array([0, 255, 10]), undefined],
      ['héllo', 'text/plain'],
      [undefined, undefined],
    ] as const) {
      const event = createEvent({ type: 'T', data, ...(contentType ? { datacontenttype: contentType } : {}) }, '/s');
      const back = decodeEvent(encodeEvent(event));
      expect(back).toEqual(event);
    }
  });

  it.each([
    [{ type: '' }, /"type" attribute is required/],
    [{ type: 'T', time: 'yesterday' }, /RFC 3339/],
    [{ type: 'T', extensions: { 'Bad-Name': 'x' } }, /attribute name "Bad-Name" is invalid/],
    [{ type: 'T', extensions: { n: 5 as unknown as string } }, /must be a string/],
  ])('rejects %j', (input, message) => {
    expect(() => createEvent(input, '/s')).toThrow(InvalidEventError);
    expect(() => createEvent(input, '/s')).toThrow(message);
  });

  it('refuses data that JSON cannot carry', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => encodeEvent(createEvent({ type: 'T', data: cyclic }, '/s'))).toThrow(/cannot be serialised as JSON/);
    expect(() => encodeEvent(createEvent({ type: 'T', data: 10n as unknown as object }, '/s'))).toThrow(
      InvalidEventError,
    );
  });

  it('reads structured mode, including data_base64 and non-string extensions', () => {
    const event = createEvent({ type: 'T', data: new Uint8Array([1, 2, 3]), extensions: { tenant: 'a' } }, '/s');
    const { data, ...attributes } = decodeEvent(decodeStructured(encodeStructured(event)));
    const { data: sentData, ...sentAttributes } = event;
    expect(attributes).toEqual(sentAttributes);
    expect([...(data as Uint8Array)]).toEqual([...(sentData as Uint8Array)]);
    const withNumber = decodeStructured(
      new TextEncoder().encode(
        JSON.stringify({ specversion: '1.0', id: '1', source: '/x', type: 'T', count: 3, data: { a: 1 } }),
      ),
    );
    expect(withNumber.attributes.count).toBe('3');
    expect(decodeEvent(withNumber).data).toEqual({ a: 1 });
  });

  it('rejects malformed structured bodies and wire messages', () => {
    expect(() => decodeStructured(new TextEncoder().encode('{oops'))).toThrow(/not valid JSON/);
    expect(() => decodeStructured(new TextEncoder().encode('[1]'))).toThrow(/must be a JSON object/);
    expect(() => decodeEvent({ attributes: { id: '1', source: '/s', type: 'T' }, body: new Uint8Array() })).toThrow(
      /specversion/,
    );
    expect(() =>
      decodeEvent({
        attributes: { id: '1', source: '/s', type: 'T', specversion: '1.0', datacontenttype: 'application/json' },
        body: new TextEncoder().encode('{bad'),
      }),
    ).toThrow(/not valid JSON/);
    expect(() =>
      decodeEvent({ attributes: { id: '1', source: '/s', type: 'T', specversion: '1.0', Bad: 'x' }, body: EMPTY }),
    ).toThrow(/attribute name "Bad" is invalid/);
  });

  it('takes data from the body only, and decodes it by content type', () => {
    const base = { id: '1', source: '/s', type: 'T', specversion: '1.0' };
    const fromHeader = decodeEvent({ attributes: { ...base, data: 'smuggled' }, body: EMPTY });
    expect(fromHeader.data).toBeUndefined();
    const text = decodeEvent({
      attributes: { ...base, datacontenttype: 'text/plain; charset=utf-8' },
      body: new TextEncoder().encode('héllo'),
    });
    expect(text.data).toBe('héllo');
    const bytes = new Uint8Array([0, 1, 2]);
    expect(decodeEvent({ attributes: { ...base, datacontenttype: 'image/png' }, body: bytes }).data).toBe(bytes);
    expect(decodeEvent({ attributes: { ...base }, body: new TextEncoder().encode('[1]') }).data).toEqual([1]);
  });
});

const EMPTY = new Uint8Array(0);
