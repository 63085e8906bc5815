/**
 * Wharf in a NestJS application: `WharfModule` provides the bus, `@OnEvent` subscribes provider
 * methods at bootstrap, and application shutdown lets running handlers finish before the bus closes.
 */
export { AppModule } from './app.module.js';
export {
  type EventHandlerMethod,
  ON_EVENT_METADATA,
  OnEvent,
  type OnEventMetadata,
} from './on-event.js';
export { WHARF_MODULE_OPTIONS, type WharfModuleAsyncOptions, type WharfModuleOptions } from './options.js';
export {
  BILLING,
  Billing,
  ORDERS,
  type Order,
  Orders,
  PAYMENTS,
  type Payment,
  RECEIPTS,
  Receipts,
  SAMPLE_SETTINGS,
  type SampleSettings,
} from './orders.js';
export { type DiscoveredHandler, WharfRuntime } from './runtime.js';
export { InjectBus, WharfModule } from './wharf.module.js';
