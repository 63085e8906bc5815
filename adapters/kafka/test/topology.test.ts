import { strict as assert } from 'node:assert';
import { ConfigError } from '@wharf/core';
import { describe, it } from 'vitest';
import { escapeName, MAX_TOPIC_NAME, Names, splitName, unescapeName } from '../src/index.js';

const names = new Names('wharf');
/** Kafka refuses a topic that equals an existing one once `.` and `_` are treated alike. */
const kafkaKey = (name: string): string => name.replaceAll('_', '.');

/** Every broker object of a (channel, group) pair, with what it is, for collision checks. */
function objects(n: Names, channel: string, group: string): [string, string][] {
  const at = `${n.prefix}|${channel}|${group}`;
  return [
    [`${n.prefix}|${channel}|channel`, n.channel(channel)],
    [`${at}|group`, n.group(channel, group)],
    [`${at}|retry 200`, n.retry(channel, group, 200)],
    [`${at}|retry 5000`, n.retry(channel, group, 5_000)],
    [`${at}|dlt`, n.deadLetter(channel, group)],
    [`${at}|reader`, n.deadLetterReader(channel, group)],
  ];
}

describe('kafka topic and group names', () => {
  it('keeps common names readable', () => {
    assert.equal(names.channel('orders.created'), 'wharf-orders.created');
    assert.equal(names.group('orders.created', 'billing'), 'wharf-orders.created-billing');
    assert.equal(names.retry('orders.created', 'billing', 5_000), 'wharf-orders.created-billing-retry-5000');
    assert.equal(names.deadLetter('orders.created', 'billing'), 'wharf-orders.created-billing-dlt');
    assert.equal(names.deadLetterReader('orders.created', 'billing'), 'wharf-orders.created-billing-dlt-reader');
    assert.equal(names.channel('order-placed_v2'), 'wharf-order--placed-.v2');
    assert.equal(new Names('my_app').channel('x'), 'my-.app-x');
  });

  it('separates the pairs that dots used to merge', () => {
    const pairs: [string, string, string, string][] = [
      ['a.b', 'c', 'a', 'b.c'],
      ['a-b', 'c', 'a', 'b-c'],
      ['a_b', 'c', 'a', 'b_c'],
      ['a', 'b-dlt', 'a-b', 'dlt'],
      ['a', 'b', 'a-b-dlt', 'x'],
      ['a.b', 'c', 'a_b', 'c'],
    ];
    for (const [c1, g1, c2, g2] of pairs) {
      const one = objects(names, c1, g1).map(([, n]) => kafkaKey(n));
      const two = new Set(objects(names, c2, g2).map(([, n]) => kafkaKey(n)));
      assert.deepEqual(
        one.filter((n) => two.has(n)),
        [],
        `${c1}/${g1} and ${c2}/${g2} share objects`,
      );
    }
    // The channel topic of `a.b.dlt`-like names never meets a group's dead-letter topic.
    assert.notEqual(names.channel('a.b.dlt'), names.deadLetter('a', 'b'));
  });

  it('is injective on every short name over letters, ".", "-" and "_", across prefixes, even with "." = "_"', () => {
    const alphabet = ['a', '.', '-', '_'];
    let short = ['a'];
    const all = [...short];
    for (let length = 2; length <= 4; length++) {
      short = short.flatMap((s) => alphabet.map((c) => s + c));
      all.push(...short);
    }
    const seen = new Map<string, string>();
    for (const prefix of ['wharf', 'a', 'a-a', 'a.a', 'a_a', '-a', '_']) {
      const n = new Names(prefix);
      for (const channel of all) {
        for (const group of all) {
          for (const [what, name] of objects(n, channel, group)) {
            assert.ok(!name.includes('_'), `${name} holds "_"`);
            assert.ok(/^[A-Za-z0-9._-]{1,249}$/.test(name), `${name} is not a valid topic name`);
            const before = seen.get(kafkaKey(name));
            assert.ok(before === undefined || before === what, `${what} and ${before} are both ${name}`);
            seen.set(kafkaKey(name), what);
          }
        }
      }
    }
    assert.ok(seen.size > 200_000, `only ${seen.size} names checked`);
  });

  it('reads every name back into its components', () => {
    for (const [prefix, channel, group] of [
      ['wharf', 'orders.created', 'billing'],
      ['_-.', 'a-', 'b_'],
      ['x', 'a--b', 'c..d'],
      ['x', 'a_.-_b', '9'],
    ] as const) {
      const n = new Names(prefix);
      assert.deepEqual(splitName(n.retry(channel, group, 300))?.map(unescapeName), [
        prefix,
        channel,
        group,
        'retry',
        '300',
      ]);
      assert.deepEqual(splitName(n.deadLetterReader(channel, group))?.map(unescapeName), [
        prefix,
        channel,
        group,
        'dlt',
        'reader',
      ]);
      assert.ok(n.ofChannel(n.deadLetter(channel, group), channel));
      assert.ok(!n.ofChannel(n.deadLetter(`${channel}x`, group), channel));
    }
    assert.ok(names.ofChannel(names.channel('a'), 'a'));
    assert.ok(!names.ofChannel(names.channel('a-b'), 'a'), 'channel a claims channel a-b');
    assert.ok(!new Names('wharf2').ofChannel(names.channel('a'), 'a'), 'another prefix claims the topic');
    for (const foreign of ['wharf_orders', 'wharf-', '-wharf-a', 'wharf---', 'wharf-a-', 'wharf-a-!', 'wh arf-a', '']) {
      assert.equal(splitName(foreign), undefined, foreign);
    }
  });

  it('fits every name within 249 characters, hashing long components apart from any plain one', () => {
    const long = (c: string, n = 200): string => `a${c.repeat(n - 1)}`;
    const worst = new Names('-'.repeat(40));
    for (const n of [names, worst]) {
      for (const [channel, group] of [
        [long('-'), long('_')],
        [long('x'), long('y')],
        [long('x'), 'g'],
      ] as const) {
        for (const [, name] of objects(n, channel, group)) {
          assert.ok(name.length <= MAX_TOPIC_NAME, `${name.length} characters`);
        }
        assert.ok(n.retry(channel, group, 2 ** 31 - 1).length <= MAX_TOPIC_NAME);
      }
    }
    assert.equal(names.componentLimit, 111);
    // Two long names that differ only at the end: same readable start, different hashes.
    const one = names.channel(`${long('x', 199)}1`);
    const two = names.channel(`${long('x', 199)}2`);
    assert.notEqual(one, two);
    assert.equal(one.slice(0, 100), two.slice(0, 100));
    // The longest plain component stays plain, one more character is hashed and one character longer.
    const plain = long('x', names.componentLimit);
    assert.equal(names.component(plain, 'channel'), plain);
    const hashed = names.component(`${plain}x`, 'channel');
    assert.equal(hashed.length, names.componentLimit + 1);
    // A name spelled like a hashed component does not take its place: it is longer than any plain one.
    const lookalike = unescapeName(hashed);
    assert.notEqual(names.component(lookalike, 'channel'), hashed);
    // Escapes are never cut in half: the component still reads back.
    const dashes = names.component(long('-'), 'channel');
    assert.equal(dashes.length, names.componentLimit + 1);
    assert.deepEqual(splitName(`wharf-${dashes}`)?.length, 2);
  });

  it('refuses names it cannot map with ConfigError, naming them', () => {
    for (const bad of ['', ' x', 'a b', 'a/b', '-a', '_a', '.a', 'ü', 'a'.repeat(201), 7]) {
      assert.throws(
        () => names.channel(bad as string),
        (e: unknown) =>
          e instanceof ConfigError && e.message.includes(JSON.stringify(bad)) && /Kafka topic/.test(e.message),
        `accepted ${JSON.stringify(bad)}`,
      );
    }
    assert.throws(() => names.group('ok', 'not ok'), ConfigError);
    assert.throws(() => names.retry('ok', 'ok', 1.5), ConfigError);
    assert.equal(escapeName('a.b-c_d'), 'a.b--c-.d');
  });
});
