import 'reflect-metadata';
import { Controller, type DynamicModule, Inject, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  type ClientProxy,
  ClientsModule,
  Ctx,
  EventPattern,
  type MicroserviceOptions,
  Payload,
  type RmqContext,
  type RmqOptions,
  Transport,
} from '@nestjs/microservices';
import { type BenchOptions, type BenchResult, startMeasurement, windowed } from '@wharf/core';
import * as amqp from 'amqplib';
import { lastValueFrom } from 'rxjs';
import { eventAge, type PeerEvent, stampEvent } from './payload.js';

/** How the NestJS peer stores its messages. */
export interface NestRmqSettings {
  /**
   * `false` (the default): a durable quorum queue and `persistent: true` messages, the durability the
   * bus and the raw baseline have. `true`: a durable classic queue and Nest's default
   * `persistent: false`, the setting of the figure first quoted for NestJS in issue 21.
   */
  readonly transient?: boolean;
}

const EVENT = 'bench.event';
const SINK = Symbol('bench sink');
const CLIENT = Symbol('bench client');

/** What the consumer's handler reports to: one per run, injected into the controller. */
interface Sink {
  received(event: PeerEvent): void;
}

/** The consumer as the Nest docs write one: an `@EventPattern` handler that acks by hand when done. */
@Controller()
class BenchConsumer {
  constructor(@Inject(SINK) private readonly sink: Sink) {}

  @EventPattern(EVENT)
  handle(@Payload() event: PeerEvent, @Ctx() context: RmqContext): void {
    this.sink.received(event);
    // With `noAck: false` the handler settles the message itself (docs: "Message acknowledgement").
    (context.getChannelRef() as amqp.Channel).ack(context.getMessage() as amqp.Message);
  }
}

@Module({ controllers: [BenchConsumer] })
class ConsumerModule {
  static with(sink: Sink): DynamicModule {
    return { module: ConsumerModule, providers: [{ provide: SINK, useValue: sink }] };
  }
}

@Module({})
class ProducerModule {
  static with(options: RmqOptions['options']): DynamicModule {
    return {
      module: ProducerModule,
      imports: [ClientsModule.register([{ name: CLIENT, transport: Transport.RMQ, options }])],
    };
  }
}

/** The queue a run declares, named after the run's fresh channel so runs never share one. */
export function nestQueueName(channel: string): string {
  return `nest-${channel}`;
}

/**
 * NestJS 11 microservices on the RMQ transport, measured like the bus bench: a `ClientProxy`
 * (registered with `ClientsModule`, connected at start-up) `emit`s events to a queue with at most
 * `window` emits unconfirmed (Nest's RMQ client publishes on amqp-connection-manager's confirm
 * channel, so an emit completes on the broker's confirm); a microservice in the same process
 * consumes them with an `@EventPattern` handler, `noAck: false` and `prefetchCount` = `window`, and
 * acks each one. The clock starts once both are connected; the queue is deleted afterwards.
 */
export async function benchNestRmq(options: BenchOptions, settings: NestRmqSettings = {}): Promise<BenchResult> {
  const queue = nestQueueName(options.channel);
  const shared: RmqOptions['options'] = {
    urls: [options.url],
    queue,
    queueOptions: settings.transient ? { durable: true } : { durable: true, arguments: { 'x-queue-type': 'quorum' } },
    // Nagle's algorithm delays small frames by up to 40 ms; the bus and the raw client turn it off too.
    socketOptions: { connectionOptions: { noDelay: true } },
  };
  // Consumer-only options stay off the client: it applies `noAck` to its reply-queue consumer, which
  // RabbitMQ refuses to run with acks ("reply consumer cannot acknowledge").
  const server: RmqOptions['options'] = { ...shared, noAck: false, prefetchCount: options.window };
  const client: RmqOptions['options'] = { ...shared, persistent: !settings.transient };
  let measure: ReturnType<typeof startMeasurement> | undefined;
  let received = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  const sink: Sink = {
    received(event) {
      measure?.record(eventAge(event));
      if (++received === options.events) done();
    },
  };
  const consumer = await NestFactory.createMicroservice<MicroserviceOptions>(ConsumerModule.with(sink), {
    transport: Transport.RMQ,
    options: server,
    logger: false,
  });
  const producer = await NestFactory.createApplicationContext(ProducerModule.with(client), { logger: false });
  try {
    await consumer.listen();
    const proxy = producer.get<ClientProxy>(CLIENT);
    // The docs' advice: connect at start-up, or the first emit waits for the connection.
    await proxy.connect();
    measure = startMeasurement(options.events);
    const event = (): Promise<unknown> =>
      lastValueFrom(proxy.emit(EVENT, stampEvent(options.size)), { defaultValue: undefined });
    await windowed(options.events, options.window, event);
    await finished;
    return measure.finish();
  } finally {
    await producer.close().catch(() => undefined);
    await consumer.close().catch(() => undefined);
    await deleteQueue(options.url, queue);
  }
}

async function deleteQueue(url: string, queue: string): Promise<void> {
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createChannel();
    await channel.deleteQueue(queue);
  } finally {
    await connection.close().catch(() => undefined);
  }
}
