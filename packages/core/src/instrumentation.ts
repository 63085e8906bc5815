import type { RetryInstruction } from './adapter.js';
import type { SettleOutcome } from './consumer.js';
import type { DeadLetterReason } from './dead-letter.js';
import type { CloudEvent } from './envelope.js';
import { describeError } from './errors.js';
import type { Logger } from './logger.js';

/*
 * The instrumentation contract: how metrics and tracing packages (`@wharf/prometheus`,
 * `@wharf/otel`) see the bus without the core importing either. Give one or several to
 * `createBus({ instrumentation })`. Every member is optional; the core calls them in this order:
 *
 *   publish:  publish(op) ─► op.setTraceContext(…)? ─► scope.run(encode + send) ─► scope.end(error?)
 *   consume:  [decode, validate, dedup] ─► handle(op) ─► scope.run(handler) ─► scope.handled(…)
 *             ─► settlement (ack / retry / dead letter / release) ─► scope.end(settlement)
 *             ─► settled(settlement)             (settled runs for every delivery, handled or not)
 */

/** A publish (one event, or one `publishBatch`) about to be encoded and sent. */
export interface PublishOperation {
  /** The adapter's name (`memory`, `rabbitmq`, `kafka`, `nats`), the OpenTelemetry `messaging.system`. */
  readonly system: string;
  readonly channel: string;
  /** The complete events, in order. */
  readonly events: readonly CloudEvent[];
  /** `true` for `publishBatch` (even of one event). */
  readonly batch: boolean;
  /**
   * The event being handled when a handler published through `ctx.publish`: the cause of these
   * events. A tracer continues its trace from it when no span is active.
   */
  readonly cause: CloudEvent | undefined;
  /**
   * Sets the W3C trace context the event at `index` carries (the CloudEvents distributed tracing
   * extension). Only before the operation's hook returns; later calls throw. Values must be
   * printable ASCII without CR/LF (header rules of every binding).
   */
  setTraceContext(index: number, traceparent: string, tracestate?: string): void;
}

/** What an instrumentation follows of one publish. */
export interface PublishScope {
  /**
   * Calls `send` (encoding, the adapter's publish and the wait for the broker) and returns what it
   * returns, e.g. inside the send span's context, so that a broker client's own instrumentation (and
   * an in-process broker's delivery) sees it as the ambient span. Same rules as {@link HandleScope.run}.
   */
  run?<R>(send: () => R): R;
  /**
   * The broker accepted every event (`error` undefined), or the publish failed before or during
   * the send. Called exactly once.
   */
  end(error?: unknown): void;
}

/** A decoded event whose handler is about to run (after contract validation and dedup). */
export interface HandleOperation {
  readonly system: string;
  readonly channel: string;
  readonly group: string;
  readonly event: CloudEvent;
  /** 1-based, as `ctx.attempt`. */
  readonly attempt: number;
  readonly maxAttempts: number;
}

/** The outcome of a handler call. */
export interface HandlerResult {
  /** What the handler threw (or rejected with); undefined when it succeeded. */
  readonly error: unknown;
  /** `true` when shutdown interrupted it (the event is released, not retried). */
  readonly aborted: boolean;
  readonly durationMs: number;
}

/** What an instrumentation follows of one handler call. */
export interface HandleScope {
  /**
   * Calls `handler` and returns what it returns, e.g. inside an active tracing context so that
   * `ctx.publish` and other instrumented clients in the handler continue the trace. Must call it
   * exactly once, synchronously. Scopes of several instrumentations nest in their order.
   */
  run?<R>(handler: () => R): R;
  /** The handler finished (before the event is settled): durations and in-flight gauges end here. */
  handled?(result: HandlerResult): void;
  /** The event was settled; the same object `settled` then receives. */
  end?(settlement: Settlement): void;
}

/** How one delivery was settled. */
export interface Settlement {
  readonly system: string;
  readonly channel: string;
  readonly group: string;
  readonly outcome: SettleOutcome;
  readonly attempt: number;
  /** The event, when it could be decoded. */
  readonly event: CloudEvent | undefined;
  /** 0 when the handler did not run. */
  readonly handlerMs: number;
  /** Why it was dead-lettered (or discarded, with dead-lettering off). */
  readonly reason?: DeadLetterReason | undefined;
  /** The handler's error (retried, dead-lettered), or why the event could not be handled. */
  readonly error?: unknown;
  /** The redelivery asked for, when `outcome` is `retried`. */
  readonly retry?: RetryInstruction | undefined;
}

/**
 * Observes and decorates the bus for metrics and tracing. Rules:
 * - every member is optional and may return `undefined` to ignore an operation;
 * - hooks run synchronously on the hot path: keep them cheap, never await;
 * - a hook that throws is logged and ignored; it never changes what the bus does (except `run`,
 *   which must call the handler);
 * - hooks never settle, retry or publish themselves; they may only set trace context on
 *   outgoing events through {@link PublishOperation.setTraceContext};
 * - retries and dead letters keep the event's original `traceparent`/`tracestate`: the core and
 *   adapters copy them unchanged on every hop.
 */
export interface Instrumentation {
  /** A publish is about to encode its events; return a scope to learn its outcome. */
  publish?(operation: PublishOperation): PublishScope | undefined;
  /** A handler is about to run; return a scope to wrap it and learn its outcome. */
  handle?(operation: HandleOperation): HandleScope | undefined;
  /** Any delivery was settled, including those whose handler never ran (undecodable, duplicate…). */
  settled?(settlement: Settlement): void;
}

/** Printable ASCII without CR/LF: what every binding's headers accept. */
const HEADER_VALUE = /^[\x20-\x7e]{1,512}$/;

/** The operation object handed to `publish` hooks; `setTraceContext` writes into the events. */
export function publishOperation(
  system: string,
  channel: string,
  events: readonly CloudEvent[],
  batch: boolean,
  cause: CloudEvent | undefined,
): PublishOperation & { seal(): void } {
  let sealed = false;
  return {
    system,
    channel,
    events,
    batch,
    cause,
    setTraceContext(index, traceparent, tracestate) {
      if (sealed) throw new Error('setTraceContext is only allowed inside the publish hook');
      const event = events[index] as Record<string, unknown> | undefined;
      if (event === undefined) throw new RangeError(`no event at index ${index}`);
      if (!HEADER_VALUE.test(traceparent)) throw new TypeError('traceparent must be printable ASCII');
      event.traceparent = traceparent;
      if (tracestate === undefined || tracestate === '') delete event.tracestate;
      else if (HEADER_VALUE.test(tracestate)) event.tracestate = tracestate;
      else throw new TypeError('tracestate must be printable ASCII');
    },
    seal() {
      sealed = true;
    },
  };
}

/**
 * One instrumentation that calls each of `list` in order (`run` wrappers nest: the first is
 * outermost). A member that throws is logged through `logger` and skipped.
 */
export function combineInstrumentations(
  list: readonly Instrumentation[],
  logger: Pick<Logger, 'error'> = { error: () => undefined },
): Instrumentation {
  const members = [...list];
  const guard = <T>(what: string, work: () => T): T | undefined => {
    try {
      return work();
    } catch (error) {
      logger.error(`[wharf] [core] an instrumentation threw in ${what}`, { error: describeError(error).message });
      return undefined;
    }
  };
  return {
    publish(operation) {
      const scopes: PublishScope[] = [];
      for (const member of members) {
        if (member.publish === undefined) continue;
        const scope = guard('publish', () => member.publish?.(operation));
        if (scope !== undefined) scopes.push(scope);
      }
      if (scopes.length === 0) return undefined;
      return {
        run: nest(scopes),
        end(error: unknown) {
          for (const scope of scopes) guard('publish end', () => scope.end(error));
        },
      };
    },
    handle(operation) {
      const scopes: HandleScope[] = [];
      for (const member of members) {
        if (member.handle === undefined) continue;
        const scope = guard('handle', () => member.handle?.(operation));
        if (scope !== undefined) scopes.push(scope);
      }
      if (scopes.length === 0) return undefined;
      return {
        run: nest(scopes),
        handled(result) {
          for (const scope of scopes) if (scope.handled) guard('handled', () => scope.handled?.(result));
        },
        end(settlement) {
          for (const scope of scopes) if (scope.end) guard('handle end', () => scope.end?.(settlement));
        },
      };
    },
    settled(settlement) {
      for (const member of members) if (member.settled) guard('settled', () => member.settled?.(settlement));
    },
  };
}

/** One `run` that calls each scope's `run` around the next, the first outermost. */
function nest(scopes: readonly { run?<R>(work: () => R): R }[]): (<R>(work: () => R) => R) | undefined {
  // Without any `run`, the core calls the handler directly: no wrapper closures per event.
  if (!scopes.some((scope) => scope.run !== undefined)) return undefined;
  return <R>(work: () => R): R => {
    let call = work;
    for (let i = scopes.length - 1; i >= 0; i--) {
      const scope = scopes[i];
      const inner = call;
      // Called on the scope: a scope's `run` may use `this`.
      if (scope?.run !== undefined) {
        const wrapper = scope as { run<X>(work: () => X): X };
        call = () => wrapper.run(inner);
      }
    }
    return call();
  };
}
