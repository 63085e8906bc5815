import { describe, expect, it } from 'vitest';
import { exchangeName, groupNames, permissionsFor } from '../src/index.js';

// RabbitMQ matches permissions with Erlang's re (PCRE); these regexes use only what JavaScript's share.
const matches = (regex: string, name: string): boolean => regex !== '' && new RegExp(regex).test(name);

describe('permissionsFor', () => {
  const access = {
    sends: ['orders.placed'],
    consumes: [
      { channel: 'payments.done', group: 'order' },
      { channel: 'stock-rejected', group: 'order' },
    ],
  };
  const p = permissionsFor(access);
  const own = groupNames('wharf', 'payments.done', 'order');

  it('lets the user publish to its channels and nowhere else', () => {
    expect(matches(p.write, exchangeName('wharf', 'orders.placed'))).toBe(true);
    expect(matches(p.write, exchangeName('wharf', 'payments.done'))).toBe(false);
    expect(matches(p.write, exchangeName('wharf', 'orders.placedX'))).toBe(false);
    expect(matches(p.write, 'wharf.ordersXplaced')).toBe(false);
  });

  it('gives no write on amq.default: retries and dead letters go through the group’s own exchange', () => {
    // amq.default reaches every queue of the vhost by name, another group's too.
    expect(matches(p.write, 'amq.default')).toBe(false);
    expect(matches(p.configure, 'amq.default')).toBe(false);
    expect(own.groupExchange).not.toBe(own.exchange);
    // Declared with the group (configure), bound to its queues (read), published to (write).
    expect(matches(p.configure, own.groupExchange)).toBe(true);
    expect(matches(p.read, own.groupExchange)).toBe(true);
    expect(matches(p.write, own.groupExchange)).toBe(true);
    const other = groupNames('wharf', 'payments.done', 'audit');
    const prefixOfOwn = groupNames('wharf', 'payments.done', 'order2');
    for (const exchange of [other.groupExchange, prefixOfOwn.groupExchange]) {
      expect(matches(p.configure, exchange)).toBe(false);
      expect(matches(p.read, exchange)).toBe(false);
      expect(matches(p.write, exchange)).toBe(false);
    }
  });

  it('lets the user declare, bind and consume its own queues, retry tiers and dead letters', () => {
    for (const queue of [own.queue, own.deadLetters, own.tier(100), own.tier(30_000)]) {
      expect(matches(p.configure, queue)).toBe(true);
      expect(matches(p.read, queue)).toBe(true);
      expect(matches(p.write, queue)).toBe(true);
    }
    expect(matches(p.read, exchangeName('wharf', 'payments.done'))).toBe(true);
    // Exchanges exist before (an administrator declares them): configure on one would allow deleting it.
    expect(matches(p.configure, exchangeName('wharf', 'payments.done'))).toBe(false);
    expect(matches(p.configure, exchangeName('wharf', 'orders.placed'))).toBe(false);
    expect(matches(p.read, groupNames('wharf', 'stock-rejected', 'order').queue)).toBe(true);
  });

  it("refuses another group's queues on the same channel, and other channels' queues", () => {
    const other = groupNames('wharf', 'payments.done', 'audit');
    const prefixOfOwn = groupNames('wharf', 'payments.done', 'order2');
    const elsewhere = groupNames('wharf', 'orders.placed', 'order');
    for (const queue of [other.queue, other.deadLetters, other.tier(100), prefixOfOwn.queue, elsewhere.queue]) {
      expect(matches(p.configure, queue)).toBe(false);
      expect(matches(p.read, queue)).toBe(false);
      expect(matches(p.write, queue)).toBe(false);
    }
    expect(matches(p.read, exchangeName('wharf', 'orders.placed'))).toBe(false);
    expect(matches(p.configure, `${own.queue}/dlqX`)).toBe(false);
  });

  it('gives no right at all to a user with no channel, and follows the prefix', () => {
    const none = permissionsFor({ sends: [], consumes: [] });
    expect(none.configure).toBe('');
    expect(none.read).toBe('');
    expect(none.write).toBe('');
    const prefixed = permissionsFor({ sends: ['a'], consumes: [] }, { prefix: 'shop' });
    expect(matches(prefixed.write, 'shop.a')).toBe(true);
    expect(matches(prefixed.write, 'wharf.a')).toBe(false);
  });
});
