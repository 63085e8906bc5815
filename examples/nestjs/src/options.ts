import type { InjectionToken, ModuleMetadata, OptionalFactoryDependency } from '@nestjs/common';
import type { Bus, BusOptions } from '@wharf/core';

/** Options of `WharfModule.forRoot`: the bus's options, or a bus made elsewhere. */
export interface WharfModuleOptions extends BusOptions {
  /**
   * A bus to provide instead of creating one from the other options (a test passes its test bus
   * from `@wharf/testing`). The module still connects it at start-up and closes it at shutdown.
   */
  bus?: Bus;
  /**
   * Register the module globally, so every module can inject the bus without importing it. Default
   * `true`. Global modules also run their start-up hooks before other modules' and their
   * shutdown hooks after them (NestJS orders hooks by a module's distance from the root).
   */
  global?: boolean;
}

/** Options of `WharfModule.forRootAsync`: a factory that Nest calls with `inject`'s providers. */
export interface WharfModuleAsyncOptions {
  /** Modules whose exported providers the factory needs (a ConfigModule…). */
  imports?: ModuleMetadata['imports'];
  inject?: (InjectionToken | OptionalFactoryDependency)[];
  useFactory: (...args: never[]) => Omit<WharfModuleOptions, 'global'> | Promise<Omit<WharfModuleOptions, 'global'>>;
  /** As in {@link WharfModuleOptions.global}. Default `true`. */
  global?: boolean;
}

/** The token of the resolved {@link WharfModuleOptions}. */
export const WHARF_MODULE_OPTIONS = Symbol('WHARF_MODULE_OPTIONS');
