import channels from '@moleculer/channels';
import { type BenchOptions, type BenchResult, startMeasurement, windowed } from '@wharf/core';
import moleculer from 'moleculer';
import { connect } from 'nats';
import { eventAge, type PeerEvent, stampEvent } from './payload.js';

/** `broker.sendToChannel`, which the channels middleware adds to the broker (its types do not declare it). */
interface ChannelBroker extends moleculer.ServiceBroker {
  sendToChannel(channelName: string, payload: PeerEvent, options?: Record<string, unknown>): Promise<void>;
}

/** The channel a run sends to, named after the run's fresh channel so runs never share a stream. */
export function moleculerChannelName(channel: string): string {
  return `mol-${channel}`;
}

/** The JetStream stream the NATS adapter creates for a channel: its name with `.` turned into `_`. */
export function moleculerStreamName(channel: string): string {
  return moleculerChannelName(channel).split('.').join('_');
}

/**
 * Moleculer 0.14 with `@moleculer/channels` on its NATS JetStream adapter, set up as its README
 * shows (`ChannelsMiddleware({ adapter: { type: 'NATS', options: { nats: { url } } } })`, the
 * adapter's defaults otherwise: file storage, limits retention, explicit acks), measured like the bus
 * bench: `broker.sendToChannel` with at most `window` sends awaiting their PubAck, and a channel
 * handler with `maxInFlight` = `window` (the adapter makes that the consumer's `max_ack_pending`)
 * which the adapter acks once the handler returns. The clock starts once the broker has started (the
 * stream and the durable consumer exist); the stream is deleted afterwards.
 */
export async function benchMoleculerNats(options: BenchOptions): Promise<BenchResult> {
  const channel = moleculerChannelName(options.channel);
  let measure: ReturnType<typeof startMeasurement> | undefined;
  let received = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  const broker = new moleculer.ServiceBroker({
    logger: false,
    middlewares: [
      // The adapter's typings require every option; its defaults (defaultsDeep) fill in what is left out.
      channels.Middleware({
        adapter: { type: 'NATS', options: { nats: { url: options.url } } },
      } as unknown as Parameters<typeof channels.Middleware>[0]) as unknown as moleculer.Middleware,
    ],
  }) as ChannelBroker;
  broker.createService({
    name: 'bench',
    channels: {
      [channel]: {
        group: 'bench',
        maxInFlight: options.window,
        handler(event: PeerEvent): void {
          measure?.record(eventAge(event));
          if (++received === options.events) done();
        },
      },
    },
  } as moleculer.ServiceSchema);
  try {
    await broker.start();
    measure = startMeasurement(options.events);
    await windowed(options.events, options.window, () => broker.sendToChannel(channel, stampEvent(options.size)));
    await finished;
    return measure.finish();
  } finally {
    await broker.stop().catch(() => undefined);
    await deleteStream(options.url, moleculerStreamName(options.channel));
  }
}

async function deleteStream(url: string, stream: string): Promise<void> {
  const nc = await connect({ servers: new URL(url).host });
  try {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.delete(stream);
  } finally {
    await nc.close();
  }
}
