import { strict as assert } from 'node:assert';
import { setImmediate as nextTurn } from 'node:timers/promises';
import amqp, { type Channel, type ConsumeMessage } from 'amqplib';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { AckBatcher } from '../src/acks.js';
import { unavailable, unique, url } from './helpers.js';

/** Consumes `count` messages of `queue` on a new channel (prefetch = count), in delivery order. */
async function receive(model: amqp.ChannelModel, queue: string, count: number) {
  const channel = await model.createChannel();
  await channel.prefetch(count);
  const got: ConsumeMessage[] = [];
  await new Promise<void>((resolve) => {
    void channel.consume(queue, (message) => {
      if (message === null) return;
      got.push(message);
      if (got.length === count) resolve();
    });
  });
  // Every ack frame the batcher sends, as [highest tag, multiple].
  const frames: [number, boolean][] = [];
  const ack = channel.ack.bind(channel);
  channel.ack = (message, allUpTo) => {
    frames.push([message.fields.deliveryTag, allUpTo === true]);
    ack(message, allUpTo);
  };
  return { channel, got, frames };
}

const body = (message: ConsumeMessage): string => message.content.toString();

describe.skipIf(unavailable !== undefined)('rabbitmq: coalesced acks (real broker)', () => {
  let model: amqp.ChannelModel;
  // A queue per test, so a failed test's consumer cannot take the next test's messages.
  let queue: string;
  const queues: string[] = [];

  beforeAll(async () => {
    model = await amqp.connect(url);
  });
  afterAll(async () => {
    const ch = await model.createChannel();
    for (const name of queues) await ch.deleteQueue(name).catch(() => undefined);
    await model.close();
  });

  async function fill(count: number): Promise<void> {
    queue = unique('wharf-test-acks');
    queues.push(queue);
    const ch = await model.createConfirmChannel();
    await ch.assertQueue(queue, { durable: false });
    for (let i = 1; i <= count; i++) ch.sendToQueue(queue, Buffer.from(`m${i}`));
    await ch.waitForConfirms();
    await ch.close();
  }

  /** Closes the channel and reads what the broker gives back: exactly the deliveries never acked. */
  async function redelivered(channel: Channel, expected: number): Promise<string[]> {
    await channel.close();
    if (expected === 0) {
      const ch = await model.createChannel();
      const { messageCount } = await ch.checkQueue(queue);
      await ch.close();
      assert.equal(messageCount, 0, 'nothing came back to the queue');
      return [];
    }
    const again = await receive(model, queue, expected);
    const bodies = again.got.map(body);
    await again.channel.close();
    return bodies;
  }

  it('sends one multiple ack for a turn in which every delivery was acked', async () => {
    await fill(50);
    const { channel, got, frames } = await receive(model, queue, 50);
    const acks = new AckBatcher(channel);
    for (const message of got) acks.delivered(message);
    for (const message of [...got].reverse()) acks.ack(message); // settled out of order
    await nextTurn();
    // The 32nd held ack flushes at once: tags 19-50 are acked, 1-18 not yet, so 19-50 go one by one
    // (in tag order); the other 18 flush at the end of the turn, as one multiple ack.
    const oneByOne = Array.from({ length: 32 }, (_, i): [number, boolean] => [19 + i, false]);
    assert.deepEqual(frames, [...oneByOne, [18, true]]);
    assert.deepEqual(await redelivered(channel, 0), []);
  });

  it('never covers an unsettled delivery, and does not hold back the acks behind it', async () => {
    await fill(20);
    const { channel, got, frames } = await receive(model, queue, 20);
    const acks = new AckBatcher(channel);
    for (const message of got) acks.delivered(message);
    const held = new Set([3, 12]);
    for (const message of got) {
      const n = message.fields.deliveryTag;
      if (n === 7) acks.reject(message, true);
      else if (!held.has(n)) acks.ack(message);
    }
    await nextTurn();
    const individual = [4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20].map((n): [number, boolean] => [
      n,
      false,
    ]);
    assert.deepEqual(frames, [...individual, [2, true]]);
    // The broker gives back exactly the two unsettled ones and the rejected one.
    assert.deepEqual((await redelivered(channel, 3)).sort(), ['m12', 'm3', 'm7']);
  });

  it('a later multiple ack skips a rejected tag and covers the acks that waited behind the first', async () => {
    await fill(6);
    const { channel, got, frames } = await receive(model, queue, 6);
    const acks = new AckBatcher(channel);
    for (const message of got) acks.delivered(message);
    const [m1, m2, m3, m4, m5] = got as [
      ConsumeMessage,
      ConsumeMessage,
      ConsumeMessage,
      ConsumeMessage,
      ConsumeMessage,
    ];
    acks.ack(m2);
    acks.reject(m3, false);
    await nextTurn();
    assert.deepEqual(frames, [[2, false]], 'm1 unsettled: m2 alone');
    acks.ack(m1);
    acks.ack(m4);
    acks.ack(m5);
    await nextTurn();
    assert.deepEqual(frames.slice(1), [[5, true]], 'one frame for m1, m4, m5 (m3 was rejected)');
    assert.deepEqual(await redelivered(channel, 1), ['m6']);
  });
});
