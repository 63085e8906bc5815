import { setTimeout as sleep } from 'node:timers/promises';
import type { BrokerKind, ManagedBroker, ManagedRabbitMq } from '../brokers/index.js';
import { natsRequest } from '../brokers/nats-request.js';
import type { FaultProxy } from '../proxy/proxy.js';
import type { ConsumerProcess } from './consumer-process.js';

/** What a scenario's injector can act on. */
export interface FaultContext {
  readonly broker: ManagedBroker;
  readonly proxy: FaultProxy;
  readonly consumer: ConsumerProcess;
  readonly channel: string;
  /** Longer than the client's heartbeat / session timeout / ack wait on this broker, ms. */
  readonly timeoutMs: number;
  readonly log: (message: string) => void;
  /** Counts one injected fault (for the report). */
  fault(): void;
}

/** A named fault and how to inject it; `inject` resolves once the fault is healed. */
export interface Scenario {
  readonly name: string;
  readonly description: string;
  inject(context: FaultContext): Promise<void>;
  /** Undoes the fault whatever happened (runs in `finally`); the broker must be left running. */
  heal?(context: FaultContext): Promise<void>;
}

async function proxyFault(context: FaultContext, fault: Parameters<FaultProxy['set']>[0], ms: number): Promise<void> {
  context.fault();
  context.proxy.set(fault);
  await sleep(ms);
  context.proxy.heal();
}

/** Every scenario, in the order `--scenario all` runs them. */
export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'broker-kill',
    description: 'broker kill -9, restarted 1 s later; 3 cycles',
    async inject(context) {
      for (let cycle = 0; cycle < 3; cycle++) {
        context.fault();
        await context.broker.kill();
        await sleep(1_000);
        await context.broker.start();
        if (cycle < 2) await sleep(1_500);
      }
    },
  },
  {
    name: 'broker-restart',
    description: 'clean broker restart (SIGTERM, then start)',
    async inject(context) {
      context.fault();
      await context.broker.restart();
    },
  },
  {
    name: 'broker-pause',
    description: 'broker SIGSTOP for 2 s',
    async inject(context) {
      context.fault();
      await context.broker.pause();
      await sleep(2_000);
      await context.broker.resume();
    },
  },
  {
    name: 'broker-pause-long',
    description: 'broker SIGSTOP past the client heartbeat / session timeout / ack wait',
    async inject(context) {
      context.fault();
      await context.broker.pause();
      await sleep(context.timeoutMs);
      await context.broker.resume();
    },
  },
  {
    name: 'proxy-latency',
    description: 'proxy latency 200 ms ± 100 ms both ways for 5 s',
    inject: (context) => proxyFault(context, { kind: 'latency', latencyMs: 200, jitterMs: 100 }, 5_000),
  },
  {
    name: 'proxy-blackhole',
    description: 'proxy black hole both ways for 5 s (connections stay open)',
    inject: (context) => proxyFault(context, { kind: 'blackhole' }, 5_000),
  },
  {
    name: 'proxy-lost-acks',
    description: 'proxy drops broker→client traffic only for 5 s (confirms and acks lost)',
    inject: (context) => proxyFault(context, { kind: 'blackhole', direction: 'downstream' }, 5_000),
  },
  {
    name: 'proxy-reset',
    description: 'proxy resets every connection (RST) and refuses new ones for 1 s',
    inject: (context) => proxyFault(context, { kind: 'reset' }, 1_000),
  },
  {
    name: 'proxy-flapping',
    description: 'proxy resets every connection every 1–5 s for 10 s',
    inject: (context) => proxyFault(context, { kind: 'flapping', minMs: 1_000, maxMs: 5_000 }, 10_000),
  },
  {
    name: 'proxy-slicer',
    description: 'proxy forwards 1 byte per write both ways for 3 s',
    inject: (context) => proxyFault(context, { kind: 'slicer' }, 3_000),
  },
  {
    name: 'consumer-kill',
    description: 'consumer process kill -9 mid-batch, replaced at once; 2 cycles',
    async inject(context) {
      for (let cycle = 0; cycle < 2; cycle++) {
        context.fault();
        await context.consumer.kill();
        await context.consumer.start();
        await sleep(1_000);
      }
    },
  },
  {
    name: 'consumer-stall',
    description: 'consumer process SIGSTOP past the session timeout / ack wait, then SIGCONT',
    async inject(context) {
      context.fault();
      context.consumer.pause();
      await sleep(context.timeoutMs);
      context.consumer.resume();
    },
    async heal(context) {
      context.consumer.resume();
    },
  },
  {
    name: 'backpressure',
    description:
      'broker refuses or slows publishes for 5 s: RabbitMQ memory alarm, JetStream stream limit, Kafka link throttled to 20 KB/s',
    async inject(context) {
      context.fault();
      await backpressure(context, true);
      await sleep(5_000);
      await backpressure(context, false);
    },
    async heal(context) {
      await backpressure(context, false).catch((error: unknown) =>
        context.log(`could not lift backpressure: ${String(error)}`),
      );
    },
  },
];

/** Names of every scenario. */
export const SCENARIO_NAMES: readonly string[] = SCENARIOS.map((scenario) => scenario.name);

const limited = new WeakMap<ManagedBroker, { stream: string; config: Record<string, unknown> }>();

async function backpressure(context: FaultContext, on: boolean): Promise<void> {
  const kind: BrokerKind = context.broker.kind;
  if (kind === 'rabbitmq') {
    // A tiny watermark raises the memory alarm at once: publishers are blocked (connection.blocked).
    await (context.broker as ManagedRabbitMq).rabbitmqctl('set_vm_memory_high_watermark', on ? '0.0000001' : '0.4');
    return;
  }
  if (kind === 'kafka') {
    if (on) context.proxy.set({ kind: 'throttle', bytesPerSecond: 20_000 });
    else context.proxy.heal();
    return;
  }
  // JetStream: cap the stream at its current message count with discard-new, so every new publish
  // is refused by the server (`maximum messages exceeded`); then restore its configuration.
  const port = context.broker.port;
  if (on) {
    const names = JSON.parse(await natsRequest(port, '$JS.API.STREAM.NAMES', '{}')) as { streams?: string[] };
    const stream = (names.streams ?? []).find(
      (name) =>
        !name.includes('DLQ') &&
        name.toLowerCase().includes(context.channel.split('-').pop()?.toLowerCase() ?? '\u0000'),
    );
    if (stream === undefined)
      throw new Error(`no JetStream stream found for ${context.channel} among ${JSON.stringify(names.streams)}`);
    const info = JSON.parse(await natsRequest(port, `$JS.API.STREAM.INFO.${stream}`, '')) as {
      config: Record<string, unknown>;
      state: { messages: number };
    };
    limited.set(context.broker, { stream, config: info.config });
    const reply = await natsRequest(
      port,
      `$JS.API.STREAM.UPDATE.${stream}`,
      JSON.stringify({ ...info.config, max_msgs: Math.max(1, info.state.messages), discard: 'new' }),
    );
    if (reply.includes('"error"')) throw new Error(`stream limit update refused: ${reply}`);
    return;
  }
  const saved = limited.get(context.broker);
  if (saved === undefined) return;
  limited.delete(context.broker);
  const reply = await natsRequest(port, `$JS.API.STREAM.UPDATE.${saved.stream}`, JSON.stringify(saved.config));
  if (reply.includes('"error"')) throw new Error(`stream limit restore refused: ${reply}`);
}
