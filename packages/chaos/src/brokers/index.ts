import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChaosOptionsError } from '../errors.js';
import { kafkaDriver } from './kafka.js';
import { natsDriver } from './nats.js';
import { freePort } from './ports.js';
import { ProcessBroker } from './process.js';
import { rabbitmqDriver } from './rabbitmq.js';
import type { BrokerKind, ManagedBroker, StartBrokerOptions } from './types.js';

export { BROKER_KINDS, type BrokerKind, type ManagedBroker, type StartBrokerOptions } from './types.js';

/** Ports of the shared brokers, which a private broker must never take. */
const SHARED_PORTS = new Set([4222, 5672, 9092, 9093, 25672, 15672, 5432, 6379]);

/** A RabbitMQ managed broker also runs `rabbitmqctl -n <its node>` (memory alarms, queue depth). */
export interface ManagedRabbitMq extends ManagedBroker {
  readonly kind: 'rabbitmq';
  /** Its Erlang node name (`wharf-chaos-<port>@localhost`). */
  readonly node: string;
  /** Runs `rabbitmqctl -n <node> ...args` against this node only; resolves with stdout. */
  rabbitmqctl(...args: string[]): Promise<string>;
}

class RabbitBroker extends ProcessBroker implements ManagedRabbitMq {
  declare readonly kind: 'rabbitmq';
  constructor(private readonly rabbit: ReturnType<typeof rabbitmqDriver>) {
    super(rabbit);
  }
  get node(): string {
    return this.rabbit.node;
  }
  rabbitmqctl(...args: string[]): Promise<string> {
    return this.rabbit.ctl(...args);
  }
}

async function port(given: number | undefined): Promise<number> {
  if (given !== undefined) {
    if (SHARED_PORTS.has(given))
      throw new ChaosOptionsError(
        `port ${given} belongs to a shared broker; a managed broker must use another (omit it for a free one)`,
      );
    return given;
  }
  for (;;) {
    const candidate = await freePort();
    if (!SHARED_PORTS.has(candidate)) return candidate;
  }
}

/**
 * Starts a private broker of `kind` on free loopback ports with its own data dir, and resolves
 * once it completes a protocol handshake. Call `destroy()` when done (it also runs at exit).
 *
 * @example
 * const broker = await startBroker('nats');
 * try {
 *   await broker.restart({ hard: true }); // kill -9, start again
 * } finally {
 *   await broker.destroy();
 * }
 */
export async function startBroker(kind: 'rabbitmq', options?: StartBrokerOptions): Promise<ManagedRabbitMq>;
export async function startBroker(kind: BrokerKind, options?: StartBrokerOptions): Promise<ManagedBroker>;
export async function startBroker(kind: BrokerKind, options: StartBrokerOptions = {}): Promise<ManagedBroker> {
  const client = await port(options.port);
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), `wharf-chaos-${kind}-`)));
  await mkdir(dataDir, { recursive: true });
  let broker: ProcessBroker;
  switch (kind) {
    case 'nats':
      broker = new ProcessBroker(natsDriver(client, dataDir));
      break;
    case 'rabbitmq':
      broker = new RabbitBroker(rabbitmqDriver(client, await port(undefined), dataDir));
      break;
    case 'kafka': {
      const controller = await port(undefined);
      const proxyTarget = options.proxyPort === undefined ? undefined : await port(undefined);
      broker = new ProcessBroker(
        kafkaDriver({ port: client, controller, proxyPort: options.proxyPort, proxyTarget }, dataDir),
      );
      break;
    }
    default:
      throw new ChaosOptionsError(`unknown broker kind ${String(kind)}: use nats, rabbitmq or kafka`);
  }
  try {
    await broker.start();
  } catch (error) {
    await broker.destroy().catch(() => undefined);
    throw error;
  }
  return broker;
}
