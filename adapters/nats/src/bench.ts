import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { type BenchOptions, type BenchResult, payloadAge, stampPayload, startMeasurement } from '@wharf/core';
import { resolveOptions } from './options.js';
import { escapeName } from './topology.js';

/**
 * The raw nats.js JetStream baseline for `wharf bench`: the same durability as the bus (file storage,
 * PubAck per event, `window` publishes in flight, a `Nats-Msg-Id` per event), a durable pull consumer with
 * explicit ack consumed with `consume()` — nats.js's recommended way.
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
      retention: RetentionPolicy.Interest,
    });
    await jsm.consumers.add(stream, {
      durable_name: 'bench',
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.New,
    });
    const consumer = await js.consumers.get(stream, 'bench');
    const measure = startMeasurement(options.events);
    let received = 0;
    const done = new Promise<void>((resolve) => {
      const messages = consumer.consume({ max_messages: Math.max(100, options.window) });
      (async () => {
        for await (const m of await messages) {
          measure.record(payloadAge(m.data));
          m.ack();
          if (++received >= options.events) break;
        }
        resolve();
      })().catch(() => resolve());
    });
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < options.events; i++) {
      const p = js.publish(subject, stampPayload(options.size), { msgID: `bench-${i}` });
      inFlight.add(p);
      p.finally(() => inFlight.delete(p)).catch(() => {});
      if (inFlight.size >= options.window) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    await done;
    return measure.finish();
  } finally {
    await jsm.streams.delete(stream).catch(() => {});
    await nc.close();
  }
}
