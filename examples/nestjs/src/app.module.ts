import { type DynamicModule, Module } from '@nestjs/common';
import type { WharfModuleOptions } from './options.js';
import { Billing, Orders, Receipts, SAMPLE_SETTINGS, type SampleSettings } from './orders.js';
import { WharfModule } from './wharf.module.js';

/** The sample application: the Wharf module, a publisher and two handlers. */
@Module({})
// biome-ignore lint/complexity/noStaticOnlyClass: NestJS modules are classes with static factories.
export class AppModule {
  static forRoot(wharf: WharfModuleOptions = {}, settings: SampleSettings = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [WharfModule.forRoot(wharf)],
      providers: [{ provide: SAMPLE_SETTINGS, useValue: settings }, Orders, Billing, Receipts],
      exports: [Orders, Billing, Receipts],
    };
  }
}
