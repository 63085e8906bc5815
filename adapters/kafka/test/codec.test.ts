import { strict as assert } from 'node:assert';
import { describe, it } from 'vitest';
import type { IncomingRecord } from '../src/client.js';
import { decode } from '../src/codec.js';

/** A record as kafkajs hands it over: header values are Buffers. */
function record(headers: Record<string, Buffer | string>): IncomingRecord {
  return { topic: 't', partition: 0, offset: '0', timestamp: '0', key: null, value: Buffer.from('{}'), headers };
}

function typeOf(type: Buffer, contentType = 'application/json'): string | undefined {
  const decoded = decode(
    record({ ce_specversion: '1.0', ce_id: 'i', ce_source: '/s', ce_type: type, 'content-type': contentType }),
  );
  assert.ok(decoded.ok);
  return decoded.message.attributes.type;
}

// No broker needed: the decoder's memory of repeated header values must never answer for other bytes.
describe('Kafka record decoding', () => {
  it('reads repeated header values right, including different values of the same length', () => {
    assert.equal(typeOf(Buffer.from('alpha')), 'alpha');
    assert.equal(typeOf(Buffer.from('gamma')), 'gamma');
    assert.equal(typeOf(Buffer.from('alpha')), 'alpha');
    assert.equal(typeOf(Buffer.from('alphas')), 'alphas');
    assert.equal(typeOf(Buffer.from('')), '');
  });

  it('does not keep a reference to the bytes it remembered', () => {
    const bytes = Buffer.from('delta');
    assert.equal(typeOf(bytes), 'delta');
    bytes.write('omega');
    assert.equal(typeOf(bytes), 'omega');
  });

  it('still refuses invalid UTF-8 after a valid value of the same length', () => {
    assert.equal(typeOf(Buffer.from('ab')), 'ab');
    const bad = decode(
      record({ ce_specversion: '1.0', ce_id: 'i', ce_source: '/s', ce_type: Buffer.from([0xff, 0xfe]) }),
    );
    assert.ok(!bad.ok && /not valid UTF-8/.test(bad.error.message));
  });

  it('maps content-type to datacontenttype, remembered like the other repeating headers', () => {
    const decoded = (contentType: string) => {
      const d = decode(
        record({
          ce_specversion: '1.0',
          ce_id: 'i',
          ce_source: '/s',
          ce_type: 't',
          'content-type': Buffer.from(contentType),
        }),
      );
      assert.ok(d.ok);
      return d.message.attributes.datacontenttype;
    };
    assert.equal(decoded('application/json'), 'application/json');
    assert.equal(decoded('application/jsox'), 'application/jsox');
    assert.equal(decoded('application/json'), 'application/json');
  });

  it('keeps extension attributes it has no constant for', () => {
    const d = decode(
      record({ ce_specversion: '1.0', ce_id: 'i', ce_source: '/s', ce_type: 't', ce_tenant: Buffer.from('acme') }),
    );
    assert.ok(d.ok && d.message.attributes.tenant === 'acme');
  });
});
