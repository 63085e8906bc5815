import { describe, expect, it } from 'vitest';
import { channelNames, dlqSubject, durableName, permissionsFor } from '../src/index.js';

/** NATS subject matching: `*` one token, `>` one or more trailing tokens. */
function allows(patterns: readonly string[], subject: string): boolean {
  const tokens = subject.split('.');
  return patterns.some((pattern) => {
    const parts = pattern.split('.');
    for (let i = 0; i < parts.length; i++) {
      if (parts[i] === '>') return tokens.length > i;
      if (i >= tokens.length || (parts[i] !== '*' && parts[i] !== tokens[i])) return false;
    }
    return parts.length === tokens.length;
  });
}

describe('permissionsFor', () => {
  const names = { subjectPrefix: 'wharf', streamPrefix: 'WHARF' };
  const access = { sends: ['orders.placed'], consumes: [{ channel: 'payment.done', group: 'order' }] };
  const p = permissionsFor(access, { inboxPrefix: '_INBOX_order' });
  const sent = channelNames(names, 'orders.placed');
  const consumed = channelNames(names, 'payment.done');
  const own = durableName('order');

  it('lets the user publish to its channels and its dead letters only', () => {
    expect(allows(p.publish, sent.subject)).toBe(true);
    expect(allows(p.publish, consumed.subject)).toBe(false);
    expect(allows(p.publish, dlqSubject(names, 'payment.done', 'order'))).toBe(true);
    expect(allows(p.publish, dlqSubject(names, 'payment.done', 'audit'))).toBe(false);
    expect(allows(p.publish, 'wharf.other')).toBe(false);
  });

  it('allows the JetStream API for its own consumer and nothing of other groups', () => {
    for (const subject of [
      '$JS.API.INFO',
      `$JS.API.STREAM.INFO.${sent.stream}`,
      `$JS.API.STREAM.CREATE.${consumed.dlqStream}`,
      `$JS.API.CONSUMER.CREATE.${consumed.stream}.${own}.${consumed.subject}`,
      `$JS.API.CONSUMER.INFO.${consumed.stream}.${own}`,
      `$JS.API.CONSUMER.MSG.NEXT.${consumed.stream}.${own}`,
      `$JS.ACK.${consumed.stream}.${own}.1.2.3.4.5`,
    ]) {
      expect(allows(p.publish, subject), subject).toBe(true);
    }
    for (const subject of [
      `$JS.API.CONSUMER.MSG.NEXT.${consumed.stream}.audit`,
      `$JS.API.CONSUMER.CREATE.${consumed.stream}.audit`,
      `$JS.API.CONSUMER.DELETE.${consumed.stream}.${own}`,
      `$JS.API.STREAM.DELETE.${consumed.stream}`,
      `$JS.API.STREAM.PURGE.${consumed.stream}`,
      `$JS.API.STREAM.UPDATE.${consumed.stream}`,
      `$JS.ACK.${consumed.stream}.audit.1.2.3.4.5`,
      `$JS.API.CONSUMER.MSG.NEXT.${sent.stream}.${own}`,
    ]) {
      expect(allows(p.publish, subject), subject).toBe(false);
    }
  });

  it('subscribes only to its own inboxes and its own advisories', () => {
    expect(allows(p.subscribe, '_INBOX_order.abc.1')).toBe(true);
    expect(allows(p.subscribe, '_INBOX.abc.1')).toBe(false);
    expect(allows(p.subscribe, `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${consumed.stream}.${own}`)).toBe(true);
    expect(allows(p.subscribe, consumed.subject)).toBe(false);
    expect(allows(p.subscribe, '>')).toBe(false);
  });
});
