import { type DynamicModule, Inject, Module, type Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { Bus, createBus } from '@wharf/core';
import { WHARF_MODULE_OPTIONS, type WharfModuleAsyncOptions, type WharfModuleOptions } from './options.js';
import { WharfRuntime } from './runtime.js';

/** Injects the bus (the `Bus` class is its token): `constructor(@InjectBus() private readonly bus: Bus)`. */
export const InjectBus = (): PropertyDecorator & ParameterDecorator => Inject(Bus);

function createFromOptions(options: WharfModuleOptions): Bus {
  const { bus, global: _global, ...busOptions } = options;
  return bus ?? createBus(busOptions);
}

/**
 * Provides a Wharf `Bus` to a NestJS application, subscribes the `@OnEvent` methods of its
 * providers when it has started, and closes the bus gracefully when it stops (`app.close()`, or a
 * signal after `app.enableShutdownHooks()`): running handlers finish before the connection closes.
 *
 * @example
 * ```ts
 * @Module({ imports: [WharfModule.forRoot({ url: 'amqp://guest:guest@127.0.0.1:5672' })], providers: [Billing] })
 * class AppModule {}
 * ```
 */
@Module({})
// biome-ignore lint/complexity/noStaticOnlyClass: NestJS modules are classes with static factories.
export class WharfModule {
  /** The module with a bus made from `options` (or `options.bus`). */
  static forRoot(options: WharfModuleOptions = {}): DynamicModule {
    return build({ provide: WHARF_MODULE_OPTIONS, useValue: options }, [], options.global);
  }

  /** The module with a bus made from what `useFactory` resolves to (from configuration, secrets…). */
  static forRootAsync(options: WharfModuleAsyncOptions): DynamicModule {
    const provider: Provider = {
      provide: WHARF_MODULE_OPTIONS,
      useFactory: options.useFactory,
      inject: options.inject ?? [],
    };
    return build(provider, options.imports ?? [], options.global);
  }
}

function build(options: Provider, imports: NonNullable<DynamicModule['imports']>, global = true): DynamicModule {
  return {
    module: WharfModule,
    global,
    imports: [DiscoveryModule, ...imports],
    providers: [options, { provide: Bus, useFactory: createFromOptions, inject: [WHARF_MODULE_OPTIONS] }, WharfRuntime],
    exports: [Bus],
  };
}
