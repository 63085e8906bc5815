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
 *             (dead-letter replays too, with `op.replay`)
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
   * `true` when `replayDeadLetters` republishes dead letters (one per operation). Such an event keeps
   * the `traceparent`/`tracestate` of its first publish, as a retry does: a tracer should make its
   * send span part of that trace and leave the trace context as it is.
   */
  readonly replay: boolean;
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
  replay = false,
): PublishOperation & { seal(): void } {
  let sealed = false;
  return {
    system,
    channel,
    events,
    batch,
    cause,
    replay,
    setTraceContext(index, traceparent, tracestate) {
      if (sealed) throw new Error('setTraceContext is only allowed inside the publish hook');
      const event = events[index] as Record<string, unknown> | undefined;
      if (event === undefined) throw new RangeError(`no event at index ${index}`);
      if (!HEADER_VALUE.test(traceparent)) throw new TypeError('traceparent must be printable ASCII');
      event.traceparent = traceparent;
      if (tracestate === undefined || tracestate === '') {
        // Only when there is one: `delete` turns the event into a slow dictionary-mode object, and
        // every later read of it (encoding, the adapter) pays for that.
        if (event.tracestate !== undefined) delete event.tracestate;
      } else if (HEADER_VALUE.test(tracestate)) event.tracestate = tracestate;
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
  // try/catch inline rather than a guard taking a closure: these run for every event, and a
  // closure per member per call was a measurable share of what instrumentation cost.
  const report = (what: string, error: unknown): void => {
    logger.error(`[wharf] [core] an instrumentation threw in ${what}`, { error: describeError(error).message });
  };
  return {
    publish(operation) {
      let scopes: PublishScope[] | undefined;
      for (const member of members) {
        if (member.publish === undefined) continue;
        let scope: PublishScope | undefined;
        try {
          scope = member.publish(operation);
        } catch (error) {
          report('publish', error);
        }
        if (scope === undefined) continue;
        if (scopes === undefined) scopes = [scope];
        else scopes.push(scope);
      }
      if (scopes === undefined) return undefined;
      const all = scopes;
      return {
        run: all.some((scope) => scope.run !== undefined) ? (work) => runNested(all, 0, work) : undefined,
        end(error: unknown) {
          for (const scope of all) {
            try {
              scope.end(error);
            } catch (thrown) {
              report('publish end', thrown);
            }
          }
        },
      } satisfies PublishScope;
    },
    handle(operation) {
      let scopes: HandleScope[] | undefined;
      for (const member of members) {
        if (member.handle === undefined) continue;
        let scope: HandleScope | undefined;
        try {
          scope = member.handle(operation);
        } catch (error) {
          report('handle', error);
        }
        if (scope === undefined) continue;
        if (scopes === undefined) scopes = [scope];
        else scopes.push(scope);
      }
      if (scopes === undefined) return undefined;
      const all = scopes;
      return {
        run: all.some((scope) => scope.run !== undefined) ? (work) => runNested(all, 0, work) : undefined,
        handled(result) {
          for (const scope of all) {
            if (scope.handled === undefined) continue;
            try {
              scope.handled(result);
            } catch (error) {
              report('handled', error);
            }
          }
        },
        end(settlement) {
          for (const scope of all) {
            if (scope.end === undefined) continue;
            try {
              scope.end(settlement);
            } catch (error) {
              report('handle end', error);
            }
          }
        },
      } satisfies HandleScope;
    },
    settled(settlement) {
      for (const member of members) {
        if (member.settled === undefined) continue;
        try {
          member.settled(settlement);
        } catch (error) {
          report('settled', error);
        }
      }
    },
  };
}

/**
 * Calls `work` inside the `run` of every scope from `from` on, the first outermost (called on the
 * scope: a scope's `run` may use `this`). Scopes without `run` are stepped over.
 */
function runNested<R>(scopes: readonly { run?<X>(work: () => X): X }[], from: number, work: () => R): R {
  for (let i = from; i < scopes.length; i++) {
    const scope = scopes[i];
    if (scope?.run !== undefined) return scope.run(() => runNested(scopes, i + 1, work));
  }
  return work();
}
