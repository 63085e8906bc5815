/** The brokers `@wharf/chaos` can run privately and put faults on. */
export type BrokerKind = 'nats' | 'rabbitmq' | 'kafka';

/** The broker kinds, in the order scenarios run on them. */
export const BROKER_KINDS: readonly BrokerKind[] = ['rabbitmq', 'kafka', 'nats'];

/**
 * A private broker process on free loopback ports with its own data directory, under the caller's
 * control. It never touches the shared brokers (5672 / 4222 / 9092).
 *
 * Rules:
 * - every method waits until its effect is observable (port closed, handshake answered);
 * - `kill`, `start`, `restart`, `pause`, `resume` may be called in any order; `start` on a serving
 *   broker and `resume` on a running one are no-ops;
 * - `destroy` is idempotent and also runs when the process exits.
 */
export interface ManagedBroker {
  readonly kind: BrokerKind;
  /** The Wharf broker URL of this instance, e.g. `nats://127.0.0.1:41234`. */
  readonly url: string;
  /** The client port. */
  readonly port: number;
  /**
   * Where a fault proxy must forward to. Equal to `port` for NATS and RabbitMQ; for Kafka started
   * with `proxyPort`, the extra listener whose advertised address is the proxy's port (kafkajs
   * follows the advertised address, so a proxy in front of the normal listener is bypassed).
   */
  readonly proxyTarget: number;
  /** The data directory (deleted by `destroy`). */
  readonly dataDir: string;
  /** The broker's OS process id, or undefined while it is not running. */
  pid(): number | undefined;
  /** SIGKILL; resolves once the process is gone and the port is closed. */
  kill(): Promise<void>;
  /** Starts it after `kill`/`restart`; resolves once it completes a protocol handshake. */
  start(): Promise<void>;
  /** `hard`: kill -9 then start; otherwise a clean stop (SIGTERM, bounded) then start. */
  restart(options?: { hard?: boolean }): Promise<void>;
  /** SIGSTOP: the process keeps its sockets open but answers nothing. */
  pause(): Promise<void>;
  /** SIGCONT after `pause`. */
  resume(): Promise<void>;
  /** Stops it (SIGKILL) and deletes its data directory; idempotent. */
  destroy(): Promise<void>;
}

/** Options of {@link startBroker}. */
export interface StartBrokerOptions {
  /** Client port; a free one by default. */
  readonly port?: number;
  /** Data directory; a fresh temporary one by default. Deleted by `destroy()` either way. */
  readonly dataDir?: string;
  /**
   * Kafka only: the port a fault proxy will listen on. The broker then gets an extra listener
   * (on `proxyTarget`) that advertises this port, so every client connection goes through the proxy.
   * Ignored for NATS and RabbitMQ, whose clients do not follow advertised addresses.
   */
  readonly proxyPort?: number;
}
