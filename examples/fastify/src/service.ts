import { type Bus, createBus, WharfError, withTimeout } from '@wharf/core';
import Fastify, { type FastifyInstance } from 'fastify';

/** Where the service's events go, and the group it consumes them in. */
export const CHANNEL = 'orders.placed';
export const GROUP = 'billing';

/** An order as `POST /orders` takes it and the event carries it. */
export interface Order {
  orderId: string;
  total: number;
}

/** Options of {@link createService}. */
export interface ServiceOptions {
  /** The bus to use (a test passes its test bus). Default: `createBus({ url })`. */
  bus?: Bus;
  /** Broker URL when no bus is given. Default: `WHARF_BROKER`, else `memory://`. */
  url?: string;
  /** How long `/ready` waits for the broker's answer before it says not ready. Default 1 s. */
  readyTimeoutMs?: number;
  /** How long charging takes, to show that shutdown waits for running handlers. Default 0. */
  chargeMs?: number;
}

export type ServiceState = 'created' | 'starting' | 'ready' | 'stopping' | 'stopped';

/** A Fastify service that publishes orders and charges them in a Wharf consumer group. */
export interface Service {
  readonly app: FastifyInstance;
  readonly bus: Bus;
  readonly state: ServiceState;
  /** Orders charged, by id. */
  readonly charges: ReadonlyMap<string, number>;
  /** Listens, then subscribes; ready once both are done. Resolves with the base URL. */
  start(listen?: { port?: number; host?: string }): Promise<string>;
  /** Stops taking requests and events, lets running handlers finish, closes the bus. Idempotent. */
  stop(): Promise<void>;
}

/** Not ready: starting, stopping, or the broker did not answer. */
class BrokerCheckTimeout extends WharfError {
  override readonly name = 'BrokerCheckTimeout';
  constructor(ms: number) {
    super('ERR_WHARF_EXAMPLE_READY', 'fastify-example', `the broker did not answer within ${ms} ms`);
  }
}

/**
 * Builds the service. `/health` is liveness (the process answers); `/ready` is readiness: started,
 * not stopping, and the broker answers a read of the group's backlog now — so it turns 503 while
 * the broker connection is down and back to 200 when the adapter has reconnected.
 */
export function createService(options: ServiceOptions = {}): Service {
  const bus = options.bus ?? createBus(options.url === undefined ? {} : { url: options.url });
  const readyTimeoutMs = options.readyTimeoutMs ?? 1_000;
  const app = Fastify({ logger: false });
  const charges = new Map<string, number>();
  let state: ServiceState = 'created';
  let stopping: Promise<void> | undefined;

  app.get('/health', async () => ({ status: 'ok' }));

  app.get('/ready', async (_request, reply) => {
    if (state !== 'ready') return reply.code(503).send({ status: state });
    try {
      await withTimeout(bus.backlog(CHANNEL, GROUP), readyTimeoutMs, () => new BrokerCheckTimeout(readyTimeoutMs));
      return { status: 'ready', broker: 'up' };
    } catch (error) {
      return reply.code(503).send({ status: 'broker-unavailable', error: (error as Error).message });
    }
  });

  app.post<{ Body: Order }>(
    '/orders',
    {
      schema: {
        body: {
          type: 'object',
          required: ['orderId', 'total'],
          additionalProperties: false,
          properties: { orderId: { type: 'string', minLength: 1 }, total: { type: 'integer', minimum: 0 } },
        },
      },
    },
    async (request, reply) => {
      const event = await bus.publish<Order>(CHANNEL, { type: 'OrderPlaced', data: request.body });
      return reply.code(202).send({ orderId: request.body.orderId, eventId: event.id });
    },
  );

  app.get<{ Params: { orderId: string } }>('/charges/:orderId', async (request, reply) => {
    const total = charges.get(request.params.orderId);
    if (total === undefined) return reply.code(404).send({ error: 'not-found' });
    return { orderId: request.params.orderId, total };
  });

  // Fastify closes in this order: preClose (still serving), stop listening and finish requests, onClose.
  app.addHook('preClose', async () => {
    state = 'stopping';
  });
  app.addHook('onClose', async () => {
    await bus.close();
    state = 'stopped';
  });

  return {
    app,
    bus,
    get state() {
      return state;
    },
    charges,
    async start(listen = {}) {
      state = 'starting';
      // Listen first: an orchestrator sees the process live (/health) and not ready while the broker connects.
      const url = await app.listen({ port: listen.port ?? 0, host: listen.host ?? '127.0.0.1' });
      await bus.subscribe<Order>(
        CHANNEL,
        { group: GROUP, retry: { maxAttempts: 3, delays: [1_000, 5_000] } },
        async (event) => {
          const order = event.data!;
          if (options.chargeMs) await new Promise((resolve) => setTimeout(resolve, options.chargeMs));
          charges.set(order.orderId, order.total);
        },
      );
      state = 'ready';
      return url;
    },
    stop() {
      stopping ??= app.close();
      return stopping;
    },
  };
}
