import { randomUUID } from 'node:crypto';
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { type BenchOptions, type BenchResult, payloadAge, stampPayload, startMeasurement, windowed } from '@wharf/core';
import { resolveOptions } from './options.js';
import { escapeName } from './topology.js';

/**
 * The raw nats.js JetStream baseline for `wharf bench`, written the way nats.js's docs and examples
 * recommend for throughput with the bus's durability (file storage, limits retention, a PubAck per
 * event, a `Nats-Msg-Id` per event):
 * - publishes are pipelined: `js.publish` is called without awaiting, and a counting window keeps
 *   `window` PubAcks outstanding at once (core's `windowed`, the loop the bus bench uses too);
 * - a durable pull consumer with explicit acks is read with `consume()` in callback mode, its pull
 *   sized to the window (`max_messages = window`, pulled again once a quarter has arrived: nats.js's
 *   default threshold), so the server keeps up to `window` messages on their way like RabbitMQ's
 *   prefetch does;
 * - every message is acked (explicit ack policy: JetStream has no cumulative ack on it) but no ack is
 *   awaited: `ack()` is a fire-and-forget publish that nats.js coalesces with the others in its
 *   outbound buffer, so a burst of acks leaves in one socket write.
 */
export async function rawBaseline(options: BenchOptions): Promise<BenchResult> {
  const resolved = resolveOptions(options.url, {});
  const nc = await connect({ servers: resolved.servers, noAsyncTraces: true, maxReconnectAttempts: -1 });
  const stream = `RAW-${escapeName(options.channel)}`;
  const subject = `raw.${escapeName(options.channel)}`;
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  try {
    await jsm.streams.add({
      name: stream,
      subjects: [subject],
      storage: StorageType.File,
      // The bus's channel streams have limits retention (topology.ts): the server does the same work per event.
      retention: RetentionPolicy.Limits,
    });
    await jsm.consumers.add(stream, {
      durable_name: 'bench',
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.New,
    });
    const consumer = await js.consumers.get(stream, 'bench');
    const measure = startMeasurement(options.events);
    let received = 0;
    let finish: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    // Callback mode: nats.js's fastest consume path (no async iterator per message).
    const messages = await consumer.consume({
      max_messages: options.window,
      callback: (m) => {
        measure.record(payloadAge(m.data));
        // Not `ackAck()`: awaiting the server's reply per message would serialise the consumer.
        m.ack();
        if (++received === options.events) finish();
      },
    });
    const source = 'urn:wharf:bench';
    // The same pacing loop as the bus bench (core's `windowed`): `window` publishes awaiting their PubAck.
    await windowed(options.events, options.window, () => {
      // The same bytes as the bus sends: CloudEvents NATS binding headers and a Nats-Msg-Id.
      const id = randomUUID();
      const h = headers();
      h.set('ce-specversion', '1.0');
      h.set('ce-id', id);
      h.set('ce-source', source);
      h.set('ce-time', new Date().toISOString());
      h.set('ce-type', 'BenchEvent');
      h.set('content-type', 'application/octet-stream');
      h.set('Nats-Msg-Id', `${source} ${id}`);
      return js.publish(subject, stampPayload(options.size), { headers: h });
    });
    await done;
    const result = measure.finish();
    await messages.close();
    return result;
  } finally {
    await jsm.streams.delete(stream).catch(() => {});
    await nc.close();
  }
}
