import { JetStreamApiError } from '@nats-io/jetstream';
import { MsgHdrsImpl, NoRespondersError } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { pubAckCheck } from '../src/publisher.js';
import { neededFrom, purgeResetsPending, sparedByPurge } from '../src/retention.js';

const reply = (text: string, headers?: MsgHdrsImpl) => ({ data: Buffer.from(text), headers });

describe('nats PubAck check', () => {
  const check = pubAckCheck('WHARF-orders_2Eplaced');

  it('accepts the server’s PubAck, a duplicate, and other formattings of a success', () => {
    expect(() => check(reply('{"stream":"WHARF-orders_2Eplaced", "seq":1}'), 's')).not.toThrow();
    expect(() => check(reply('{"stream":"WHARF-orders_2Eplaced", "seq":42,"duplicate": true}'), 's')).not.toThrow();
    // Not the 2.9 template: the JSON path decides.
    expect(() => check(reply('{"stream":"WHARF-orders_2Eplaced","seq":7}'), 's')).not.toThrow();
    expect(() => check(reply('{"seq":7,"stream":"WHARF-orders_2Eplaced","domain":"hub"}'), 's')).not.toThrow();
  });

  it('rejects errors, replies without a sequence, other streams’ shapes it cannot parse, and no responders', () => {
    expect(() =>
      check(
        reply('{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"X"}'),
        's',
      ),
    ).toThrow(JetStreamApiError);
    expect(() => check(reply('{"stream":"WHARF-orders_2Eplaced", "seq":}'), 's')).toThrow();
    expect(() => check(reply('{"stream":"WHARF-orders_2Eplaced"}'), 's')).toThrow(/no sequence/);
    expect(() => check(reply('not json'), 's')).toThrow(/not a PubAck/);
    const status = MsgHdrsImpl.decode(Buffer.from('NATS/1.0 503\r\n\r\n'));
    expect(() => check(reply('', status), 's')).toThrow(NoRespondersError);
    // The template with a status header is not taken as a success by the byte comparison.
    expect(() => check(reply('{"stream":"WHARF-orders_2Eplaced", "seq":1}', status), 's')).toThrow(NoRespondersError);
  });
});

describe('nats retention: what a group still needs', () => {
  const info = (ackFloor: number, delivered: number, pending: number) => ({
    ack_floor: { consumer_seq: 0, stream_seq: ackFloor },
    delivered: { consumer_seq: 0, stream_seq: delivered },
    num_ack_pending: pending,
  });

  it('keeps everything above the ack floor while something is unsettled, else everything after the last delivery', () => {
    expect(neededFrom(info(10, 15, 2))).toBe(11);
    expect(neededFrom(info(15, 15, 0))).toBe(16);
    // A new group (deliver policy new) on a stream at sequence 5: its floor is 0, its start is 6.
    expect(neededFrom(info(0, 5, 0))).toBe(6);
  });

  it('purges only where the server keeps the pending state of every consumer (nats-server < 2.9.15 resets it)', () => {
    expect(purgeResetsPending('2.9.10')).toBe(true);
    expect(purgeResetsPending('2.9.14')).toBe(true);
    expect(purgeResetsPending(undefined)).toBe(true);
    expect(purgeResetsPending('2.9.15')).toBe(false);
    expect(purgeResetsPending('2.10.4')).toBe(false);
    expect(purgeResetsPending('v2.11.0-beta')).toBe(false);
    expect(sparedByPurge({ config: { filter_subject: 'wharf.orders_2Eplaced' } })).toBe(true);
    expect(sparedByPurge({ config: {} })).toBe(false);
    expect(sparedByPurge({ config: { filter_subject: '>' } })).toBe(false);
  });
});
