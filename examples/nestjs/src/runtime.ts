import {
  Inject,
  Injectable,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { Bus, ConfigError, type Handler, type Subscription } from '@wharf/core';
import { ON_EVENT_METADATA, type OnEventMetadata } from './on-event.js';

/** A decorated method found at bootstrap, bound to its provider's instance. */
export interface DiscoveredHandler extends OnEventMetadata {
  /** `Provider.method`, for messages. */
  readonly name: string;
  readonly handler: Handler;
}

/**
 * The module's lifecycle: connects the bus, subscribes the `@OnEvent` methods, and shuts down in
 * two steps so that nothing is cut off. NestJS runs every module's `onModuleDestroy`, then every
 * `beforeApplicationShutdown`, then stops its HTTP server, then runs `onApplicationShutdown`:
 * 1. `onModuleDestroy` closes the `@OnEvent` subscriptions: no new events, and the ones being
 *    handled finish (bounded by the bus's `shutdownTimeoutMs`; an event cut off there is neither
 *    acked nor dead-lettered, and comes back later);
 * 2. `onApplicationShutdown` closes the bus: any subscription still open (made with
 *    `bus.subscribe`) drains the same way, then the connection closes. Until then other providers'
 *    shutdown hooks and in-flight HTTP requests can still publish.
 */
@Injectable()
export class WharfRuntime implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy, OnApplicationShutdown {
  readonly #subscriptions: Subscription[] = [];

  constructor(
    @Inject(Bus) private readonly bus: Bus,
    @Inject(DiscoveryService) private readonly discovery: DiscoveryService,
    @Inject(MetadataScanner) private readonly scanner: MetadataScanner,
  ) {}

  /** Connects before any provider's start-up code runs, so a broker that is down fails the start. */
  async onModuleInit(): Promise<void> {
    await this.bus.connect();
  }

  // Subscribing at bootstrap, after every module's onModuleInit, lets handlers rely on what those
  // hooks set up (a database pool, a cache) before the first event arrives.
  async onApplicationBootstrap(): Promise<void> {
    try {
      for (const found of this.handlers()) {
        this.#subscriptions.push(await this.bus.subscribe(found.channel, found.options, found.handler));
      }
    } catch (error) {
      // A failed start leaves no consumer behind to take events for an application that is not running.
      await this.onModuleDestroy();
      throw error;
    }
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all(this.#subscriptions.splice(0).map((subscription) => subscription.close()));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.bus.close();
  }

  /** Every `@OnEvent` method of the application's providers and controllers. */
  handlers(): DiscoveredHandler[] {
    const found: DiscoveredHandler[] = [];
    // An alias (`useExisting`) is a second wrapper around the same instance: subscribe it once.
    const seen = new Set<object>();
    for (const wrapper of [...this.discovery.getProviders(), ...this.discovery.getControllers()]) {
      const instance: unknown = wrapper.instance;
      if (instance === null || typeof instance !== 'object' || seen.has(instance)) continue;
      seen.add(instance);
      const prototype = Object.getPrototypeOf(instance) as object | null;
      for (const key of this.scanner.getAllMethodNames(prototype)) {
        const method = (instance as Record<string, unknown>)[key];
        if (typeof method !== 'function') continue;
        const metadata = Reflect.getMetadata(ON_EVENT_METADATA, method) as OnEventMetadata[] | undefined;
        if (metadata === undefined) continue;
        const name = `${String(wrapper.name)}.${key}`;
        if (!wrapper.isDependencyTreeStatic()) {
          throw new ConfigError(
            'nestjs',
            `@OnEvent on ${name}, a request- or transient-scoped provider: an event has no request to scope it to; make the provider a singleton (the default scope)`,
          );
        }
        const handler: Handler = (event, context) => method.call(instance, event, context);
        for (const { channel, options } of metadata) found.push({ name, channel, options, handler });
      }
    }
    return found;
  }
}
