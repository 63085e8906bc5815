import { strict as assert } from 'node:assert';
import { describe, it } from 'vitest';
import { HeaderNames, headerNameBytes, LastBytes } from '../src/header-bytes.js';

describe('header bytes', () => {
  it('shares the bytes of a header name between records', () => {
    const a = headerNameBytes('ce_type');
    assert.equal(headerNameBytes('ce_type'), a);
    assert.equal(a.toString(), 'ce_type');
    assert.equal(headerNameBytes('ce_id').toString(), 'ce_id');
  });

  it('encodes a repeated value once, and a new value anew', () => {
    const last = new LastBytes();
    const t = last.bytes('OrderPlaced');
    assert.equal(last.bytes('OrderPlaced'), t);
    assert.equal(last.bytes('OrderPaid').toString(), 'OrderPaid');
    assert.equal(last.bytes('OrderPlaced').toString(), 'OrderPlaced');
    assert.equal(last.bytes('é').toString(), 'é');
    assert.equal(last.bytes('').length, 0);
  });

  it('reads known names without decoding, and any other name as UTF-8', () => {
    const names = new HeaderNames(['ce_id', 'ce_type', 'ce_time']);
    assert.equal(names.text(Buffer.from('ce_id')), 'ce_id');
    // Same length as known names, different bytes.
    assert.equal(names.text(Buffer.from('ce_xx')), 'ce_xx');
    assert.equal(names.text(Buffer.from('ce_tipe')), 'ce_tipe');
    assert.equal(names.text(Buffer.from('ce_time')), 'ce_time');
    assert.equal(names.text(Buffer.from('größe')), 'größe');
    assert.equal(names.text(Buffer.alloc(0)), '');
  });
});
