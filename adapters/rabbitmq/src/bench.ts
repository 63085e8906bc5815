import { randomUUID } from 'node:crypto';
import { type BenchOptions, type BenchResult, payloadAge, stampPayload, startMeasurement } from '@wharf/core';
import { HEADER_PREFIX } from './codec.js';
import { connectPlain } from './connection.js';

/**
 * The raw amqplib baseline for `wharf bench`: what a careful hand-written amqplib program does with
 * the same durability as the adapter — persistent + mandatory publishes on a confirm channel with
 * `window` unconfirmed at once (pipelined, `drain` respected), a quorum queue bound to a fanout
 * exchange, a consumer on its own connection with prefetch = `window` and acks batched with
 * `multiple` every 32 messages (or half the window, if smaller, so prefetch never fills) and at the
 * last one — and the same bytes on the wire (binary-mode CloudEvents headers, content type, message id).
 */
export async function rawBaseline(options: BenchOptions): Promise<BenchResult> {
  const pubConn = await connectPlain(options.url, {}, { frameMax: 131072 });
  const subConn = await connectPlain(options.url, {}, { frameMax: 131072 });
  const exchange = `bench-raw.${options.channel}`;
  const queue = `${exchange}/bench`;
  try {
    const admin = await pubConn.createChannel();
    await admin.assertExchange(exchange, 'fanout', { durable: true });
    await admin.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await admin.bindQueue(queue, exchange, '');

    const sub = await subConn.createChannel();
    await sub.prefetch(options.window, false);
    const ackEvery = Math.max(1, Math.min(32, Math.floor(options.window / 2)));
    const measure = startMeasurement(options.events);
    let received = 0;
    let finished!: () => void;
    const allReceived = new Promise<void>((resolve) => {
      finished = resolve;
    });
    await sub.consume(
      queue,
      (message) => {
        if (!message) return;
        measure.record(payloadAge(message.content));
        // One consumer, handled in delivery order: a multiple ack covers exactly what was handled.
        if (++received % ackEvery === 0 || received === options.events) sub.ack(message, true);
        if (received === options.events) finished();
      },
      { noAck: false },
    );

    const pub = await pubConn.createConfirmChannel();
    const source = `urn:wharf:bench`;
    let inflight = 0;
    let failed: Error | undefined;
    let wake: (() => void) | undefined;
    let writable = true;
    pub.on('drain', () => {
      writable = true;
      wake?.();
    });
    const confirmed = (error: unknown): void => {
      inflight--;
      if (error) failed ??= error as Error;
      wake?.();
    };
    const waitFor = (ready: () => boolean): Promise<void> | undefined =>
      ready()
        ? undefined
        : new Promise<void>((resolve) => {
            wake = () => {
              if (ready()) {
                wake = undefined;
                resolve();
              }
            };
          });
    for (let sent = 0; sent < options.events; sent++) {
      const gate = waitFor(() => inflight < options.window && writable);
      if (gate) await gate;
      if (failed) throw failed;
      const id = randomUUID();
      inflight++;
      writable = pub.publish(
        exchange,
        '',
        stampPayload(options.size) as Buffer,
        {
          persistent: true,
          mandatory: true,
          contentType: 'application/octet-stream',
          messageId: id,
          headers: {
            [`${HEADER_PREFIX}specversion`]: '1.0',
            [`${HEADER_PREFIX}id`]: id,
            [`${HEADER_PREFIX}source`]: source,
            [`${HEADER_PREFIX}time`]: new Date().toISOString(),
            [`${HEADER_PREFIX}type`]: 'BenchEvent',
          },
        },
        confirmed,
      );
    }
    const done = waitFor(() => inflight === 0);
    if (done) await done;
    if (failed) throw failed;
    await allReceived;
    const result = measure.finish();
    await admin.deleteQueue(queue).catch(() => undefined);
    await admin.deleteExchange(exchange).catch(() => undefined);
    return result;
  } finally {
    await subConn.close().catch(() => undefined);
    await pubConn.close().catch(() => undefined);
  }
}
