import type { Adapter, Capabilities, LegacyProducer } from '@wharf/core';

/** A message as a foreign producer (not Wharf) would send it, for the undecodable and interop cases. */
export interface ForeignMessage {
  readonly body: Uint8Array;
  /** Native headers / application properties, as plain strings. */
  readonly headers?: Readonly<Record<string, string>>;
  /** The content type in the broker's native place (AMQP property, Kafka/NATS header). */
  readonly contentType?: string;
}

/** How a broker is put through the suite. */
export interface ConformanceOptions {
  /** Shown in test names, e.g. `rabbitmq`. */
  readonly name: string;
  /** Makes a fresh, unconnected adapter for the broker under test. Called several times per case. */
  readonly create: () => Adapter;
  /** Overrides of what the adapter declares (rarely needed). */
  readonly capabilities?: Partial<Capabilities>;
  /**
   * Registers only these cases, for splitting the suite across files (e.g. the restart case in a
   * file that runs alone). Cases left out are not reported at all; use `skip` to report them.
   */
  readonly only?: readonly string[];
  /** Cases not run, each group with the reason; the reasons are printed. */
  readonly skip?: readonly { readonly reason: string; readonly tests: readonly string[] }[];
  /** Stops and starts the real broker; the restart case runs only when given. Must leave it running. */
  readonly restartBroker?: () => Promise<void>;
  /** Sends a message with the broker's raw client to the channel, as a foreign producer would. */
  readonly publishForeign?: (channel: string, message: ForeignMessage) => Promise<void>;
  /** Makes a legacy producer for the raw-mode cases (only with `capabilities.rawMessages`). */
  readonly legacyProducer?: () => LegacyProducer;
  /** Deletes what a case left on the broker (queues, topics, streams) for the channel. */
  readonly cleanup?: (channel: string, groups: readonly string[]) => Promise<void>;
  /** Set when the broker cannot be reached: every case is reported skipped with this reason, or fails in CI. */
  readonly unavailable?: string;
  /** Multiplies time tolerances for slow brokers. Default 1. */
  readonly slowness?: number;
}
