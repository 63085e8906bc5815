import {
  type Attributes,
  type Context,
  context,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type {
  CloudEvent,
  HandleOperation,
  HandlerResult,
  HandleScope,
  Instrumentation,
  PublishOperation,
  PublishScope,
  Settlement,
} from '@wharf/core';
import { ATTR, EVENT, errorType, withEventAttributes } from './attributes.js';
import { resolveTracer, type TracingOptions } from './options.js';
import { formatTraceContext, parseTraceContext } from './trace-context.js';

/**
 * OpenTelemetry spans for a Wharf bus, fed by the core's instrumentation hook:
 * - `send <channel>` (PRODUCER) per publish; for a batch, `create <channel>` (PRODUCER) per event
 *   and one `send <channel>` (CLIENT) linking them. The creation context goes into the event's
 *   `traceparent`/`tracestate`.
 * - `process <channel>` (CONSUMER) per handler call, linked to the creation context; a child of
 *   the ambient span if one is active (amqplib/kafkajs instrumentation), else of the creation
 *   context. It is active while the handler runs, so `ctx.publish` continues the trace.
 * - retries and dead letters are events on the process span.
 */
export class OpenTelemetryTracing implements Instrumentation {
  readonly #tracer: Tracer;
  /** The process span of each event being handled, for `ctx.publish` when no context manager runs. */
  readonly #handling = new WeakMap<CloudEvent, Span>();
  /** Settlements a process span received, so `settled` does not trace them twice. */
  readonly #traced = new WeakSet<Settlement>();

  constructor(options: TracingOptions = {}) {
    this.#tracer = resolveTracer(options);
  }

  publish(operation: PublishOperation): PublishScope {
    const { channel, events, system } = operation;
    if (!operation.batch) {
      const event = events[0] as CloudEvent;
      const span = this.#tracer.startSpan(
        `send ${channel}`,
        {
          kind: SpanKind.PRODUCER,
          attributes: withEventAttributes(publishAttributes(system, channel, 'send'), event),
        },
        this.#parentForPublish(operation, event),
      );
      this.#inject(operation, 0, span);
      return this.#sendScope(span);
    }
    // The send span starts first so that create spans with no other parent become its children: a
    // batch published outside any trace is then one trace, not one per event plus one for the send.
    const send = this.#tracer.startSpan(
      `send ${channel}`,
      {
        kind: SpanKind.CLIENT,
        attributes: { ...publishAttributes(system, channel, 'send'), [ATTR.batchCount]: events.length },
      },
      this.#parentForPublish(operation, undefined),
    );
    const sendContext = trace.setSpan(context.active(), send);
    const links: Link[] = [];
    events.forEach((event, index) => {
      const parent = this.#parentForPublish(operation, event);
      const create = this.#tracer.startSpan(
        `create ${channel}`,
        {
          kind: SpanKind.PRODUCER,
          attributes: withEventAttributes(publishAttributes(system, channel, 'create'), event),
        },
        trace.getSpan(parent) === undefined ? sendContext : parent,
      );
      this.#inject(operation, index, create);
      links.push({ context: create.spanContext() });
      create.end();
    });
    // Span.addLinks came with @opentelemetry/api 1.7; with an older API the links are left out.
    (send as Partial<Pick<Span, 'addLinks'>>).addLinks?.(links);
    return this.#sendScope(send);
  }

  /** The send span is active while the adapter publishes: the broker client's own spans nest under it. */
  #sendScope(span: Span): PublishScope {
    const inside = trace.setSpan(context.active(), span);
    return {
      run: (send) => context.with(inside, send),
      end: (error) => finish(span, error),
    };
  }

  handle(operation: HandleOperation): HandleScope {
    const { event, channel, group } = operation;
    const creation = parseTraceContext(event.traceparent, event.tracestate);
    const active = context.active();
    const ambient = trace.getSpan(active);
    // Only a span still recording counts as ambient: a socket's callbacks run in the context where the
    // socket was opened, which can be a publish or request whose span ended long ago.
    const hasAmbient = ambient?.isRecording() === true && trace.isSpanContextValid(ambient.spanContext());
    const parent = hasAmbient || creation === undefined ? active : trace.setSpanContext(active, creation);
    const span = this.#tracer.startSpan(
      `process ${channel}`,
      {
        kind: SpanKind.CONSUMER,
        links: creation === undefined ? [] : [{ context: creation }],
        attributes: withEventAttributes(
          {
            [ATTR.system]: operation.system,
            [ATTR.destination]: channel,
            [ATTR.group]: group,
            [ATTR.operationName]: 'process',
            [ATTR.operationType]: 'process',
            [ATTR.attempt]: operation.attempt,
            [ATTR.maxAttempts]: operation.maxAttempts,
          },
          event,
        ),
      },
      parent,
    );
    this.#handling.set(event, span);
    const inside = trace.setSpan(parent, span);
    return {
      run: (handler) => context.with(inside, handler),
      handled: (result: HandlerResult) => {
        if (result.error !== undefined) {
          span.setAttribute(ATTR.errorType, errorType(result.error));
          if (result.error instanceof Error) span.recordException(result.error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: messageOf(result.error) });
        } else if (result.aborted) {
          span.setAttribute(ATTR.errorType, '_OTHER');
          span.setStatus({ code: SpanStatusCode.ERROR, message: 'interrupted by shutdown; redelivered later' });
        }
      },
      end: (settlement: Settlement) => {
        this.#traced.add(settlement);
        this.#handling.delete(event);
        recordSettlement(span, settlement);
        span.end();
      },
    };
  }

  /** A delivery dead-lettered before any handler ran (undecodable, invalid) still gets a span. */
  settled(settlement: Settlement): void {
    if (this.#traced.has(settlement) || settlement.outcome !== 'dead-lettered') return;
    const event = settlement.event;
    const creation = event === undefined ? undefined : parseTraceContext(event.traceparent, event.tracestate);
    const active = context.active();
    const span = this.#tracer.startSpan(
      `process ${settlement.channel}`,
      {
        kind: SpanKind.CONSUMER,
        links: creation === undefined ? [] : [{ context: creation }],
        attributes: {
          [ATTR.system]: settlement.system,
          [ATTR.destination]: settlement.channel,
          [ATTR.group]: settlement.group,
          [ATTR.operationName]: 'process',
          [ATTR.operationType]: 'process',
          [ATTR.attempt]: settlement.attempt,
        },
      },
      trace.getSpan(active)?.isRecording() === true || creation === undefined
        ? active
        : trace.setSpanContext(active, creation),
    );
    if (event !== undefined) span.setAttributes(withEventAttributes({}, event));
    span.setAttribute(ATTR.errorType, errorType(settlement.error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: messageOf(settlement.error) });
    recordSettlement(span, settlement);
    span.end();
  }

  /**
   * The parent of a send/create span: the active span (a handler's process span, an HTTP request);
   * else the process span of the event that caused this one (`ctx.publish` without a context
   * manager); else a `traceparent` the caller put on the event; else a new trace.
   */
  #parentForPublish(operation: PublishOperation, event: CloudEvent | undefined): Context {
    const active = context.active();
    if (trace.getSpan(active) !== undefined) return active;
    const causing = operation.cause === undefined ? undefined : this.#handling.get(operation.cause);
    if (causing !== undefined) return trace.setSpan(active, causing);
    const given = event === undefined ? undefined : parseTraceContext(event.traceparent, event.tracestate);
    return given === undefined ? ROOT_CONTEXT : trace.setSpanContext(active, given);
  }

  #inject(operation: PublishOperation, index: number, span: Span): void {
    const { traceparent, tracestate } = formatTraceContext(span.spanContext());
    operation.setTraceContext(index, traceparent, tracestate);
  }
}

function publishAttributes(system: string, channel: string, operation: 'send' | 'create'): Attributes {
  return {
    [ATTR.system]: system,
    [ATTR.destination]: channel,
    [ATTR.operationName]: operation,
    [ATTR.operationType]: operation,
  };
}

function finish(span: Span, error: unknown): void {
  if (error !== undefined) {
    span.setAttribute(ATTR.errorType, errorType(error));
    if (error instanceof Error) span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: messageOf(error) });
  }
  span.end();
}

function recordSettlement(span: Span, settlement: Settlement): void {
  span.setAttribute(ATTR.outcome, settlement.outcome);
  if (settlement.outcome === 'retried' && settlement.retry !== undefined) {
    span.addEvent(EVENT.retry, {
      [ATTR.attempt]: settlement.retry.attempt,
      [ATTR.retryDelay]: settlement.retry.delayMs,
      [ATTR.errorType]: errorType(settlement.error),
    });
  } else if (settlement.outcome === 'dead-lettered') {
    span.addEvent(EVENT.deadLetter, {
      [ATTR.reason]: settlement.reason ?? 'unknown',
      [ATTR.errorType]: errorType(settlement.error),
    });
  }
}

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 500);
}

/**
 * Creates the tracing instrumentation. Give it to `createBus({ instrumentation })`; the spans go
 * to the global tracer provider unless `tracer` or `tracerProvider` is given.
 *
 * @example
 * ```ts
 * const bus = createBus({ url: 'nats://127.0.0.1:4222', instrumentation: createTracing() });
 * ```
 */
export function createTracing(options: TracingOptions = {}): OpenTelemetryTracing {
  return new OpenTelemetryTracing(options);
}
