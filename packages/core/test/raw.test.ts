import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { describe, it } from 'vitest';
import { ConfigError, createBus, decodeEvent, silentLogger, UnsupportedError, wrapPlainMessage } from '../src/index.js';

const raw = { type: 'OrderPlaced', source: 'urn:legacy:orders' };

describe('raw mode in the core', () => {
  it('wraps a plain body with the message id, or a hash of the body as id', () => {
    const body = Buffer.from('{"orderId": "o-1"}');
    const withId = wrapPlainMessage(raw, { body, messageId: 'm-1', time: '2026-01-02T03:04:05.000Z' });
    assert.ok(withId.ok);
    const event = decodeEvent(withId.message);
    assert.equal(event.id, 'm-1');
    assert.equal(event.type, 'OrderPlaced');
    assert.equal(event.source, 'urn:legacy:orders');
    assert.equal(event.datacontenttype, 'application/json');
    assert.equal(event.time, '2026-01-02T03:04:05.000Z');
    assert.deepEqual(event.data, { orderId: 'o-1' });

    const hashed = wrapPlainMessage(raw, { body, messageId: '' });
    const again = wrapPlainMessage(raw, { body: Buffer.from(body) });
    assert.ok(hashed.ok && again.ok);
    const expected = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    assert.equal(hashed.message.attributes.id, expected);
    assert.equal(again.message.attributes.id, expected);
    const other = wrapPlainMessage(raw, { body: Buffer.from('{"orderId": "o-2"}') });
    assert.ok(other.ok);
    assert.notEqual(other.message.attributes.id, expected);
  });

  it('leaves a non-JSON body to the decoder, which refuses it', () => {
    const wrapped = wrapPlainMessage(raw, { body: Buffer.from('not json') });
    assert.ok(wrapped.ok);
    assert.throws(() => decodeEvent(wrapped.message), /not valid JSON/);
    const text = wrapPlainMessage(raw, { body: Buffer.from('plain text'), contentType: 'text/plain' });
    assert.ok(text.ok);
    assert.equal(decodeEvent(text.message).data, 'plain text');
  });

  it('refuses raw mode on an adapter without it, and a raw option without type or source', async () => {
    const bus = createBus({ url: 'memory://', logger: silentLogger });
    try {
      await assert.rejects(
        bus.subscribe('orders', { group: 'g', raw }, async () => undefined),
        (error: unknown) => error instanceof UnsupportedError && /no raw mode/.test(error.message),
      );
      await assert.rejects(
        bus.publish('orders', { type: 'OrderPlaced', data: {} }, { raw: {} }),
        (error: unknown) => error instanceof UnsupportedError,
      );
      await assert.rejects(
        bus.subscribe('orders', { group: 'g', raw: { type: '', source: 's' } }, async () => undefined),
        (error: unknown) => error instanceof ConfigError && /raw.type/.test(error.message),
      );
    } finally {
      await bus.close();
    }
  });
});
