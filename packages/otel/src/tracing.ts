import {
  type Attributes,
  type Context,
  context,
  INVALID_SPANID,
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
  readonly #handling = new Handling();

  constructor(options: TracingOptions = {}) {
    this.#tracer = resolveTracer(options);
  }

  publish(operation: PublishOperation): PublishScope {
    const { channel, events, system } = operation;
    const active = context.active();
    if (operation.replay) return this.#replay(operation, active);
    if (!operation.batch) {
      const event = events[0] as CloudEvent;
      const span = this.#tracer.startSpan(
        `send ${channel}`,
        { kind: SpanKind.PRODUCER, attributes: eventAttributes(system, channel, 'send', event) },
        this.#parentForPublish(operation, event, active),
      );
      this.#inject(operation, 0, span);
      return new SendScope(span, trace.setSpan(active, span));
    }
    // The send span starts first so that create spans with no other parent become its children: a
    // batch published outside any trace is then one trace, not one per event plus one for the send.
    const send = this.#tracer.startSpan(
      `send ${channel}`,
      {
        kind: SpanKind.CLIENT,
        attributes: { ...publishAttributes(system, channel, 'send'), [ATTR.batchCount]: events.length },
      },
      this.#parentForPublish(operation, undefined, active),
    );
    const sendContext = trace.setSpan(active, send);
    const links: Link[] = [];
    events.forEach((event, index) => {
      const parent = this.#parentForPublish(operation, event, active);
      const create = this.#tracer.startSpan(
        `create ${channel}`,
        { kind: SpanKind.PRODUCER, attributes: eventAttributes(system, channel, 'create', event) },
        trace.getSpan(parent) === undefined ? sendContext : parent,
      );
      this.#inject(operation, index, create);
      links.push({ context: create.spanContext() });
      create.end();
    });
    // Span.addLinks came with @opentelemetry/api 1.7; with an older API the links are left out.
    (send as Partial<Pick<Span, 'addLinks'>>).addLinks?.(links);
    return new SendScope(send, sendContext);
  }

  /**
   * A dead letter replayed: its send span joins the trace the event started in (the `traceparent` it
   * kept through retries and dead-lettering), and that trace context stays on the event, so its next
   * process span links to the same creation context as the first one did.
   */
  #replay(operation: PublishOperation, active: Context): PublishScope {
    const event = operation.events[0] as CloudEvent;
    const attributes = eventAttributes(operation.system, operation.channel, 'send', event);
    attributes[ATTR.replay] = true;
    const given = parseTraceContext(event.traceparent, event.tracestate);
    const span = this.#tracer.startSpan(
      `send ${operation.channel}`,
      { kind: SpanKind.PRODUCER, attributes },
      given === undefined ? this.#parentForPublish(operation, event, active) : trace.setSpanContext(active, given),
    );
    return new SendScope(span, trace.setSpan(active, span));
  }

  handle(operation: HandleOperation): HandleScope {
    const { event, channel, group } = operation;
    const creation = parseTraceContext(event.traceparent, event.tracestate);
    const active = context.active();
    const ambient = trace.getSpan(active);
    // Only a span still recording counts as ambient: a socket's callbacks run in the context where the
    // socket was opened, which can be a publish or request whose span ended long ago.
    // (A recording span has ids its SDK made; the all-zero ones are what an invalid context carries.)
    const hasAmbient = ambient?.isRecording() === true && ambient.spanContext().spanId !== INVALID_SPANID;
    const parent = hasAmbient || creation === undefined ? active : trace.setSpanContext(active, creation);
    // Literal keys (the names in ATTR): V8 builds such an object from a template, computed keys one by one.
    const attributes: Attributes = {
      'messaging.system': operation.system,
      'messaging.destination.name': channel,
      'messaging.consumer.group.name': group,
      'messaging.operation.name': 'process',
      'messaging.operation.type': 'process',
      'messaging.message.id': event.id,
      'cloudevents.event_id': event.id,
      'cloudevents.event_type': event.type,
      'cloudevents.event_source': event.source,
      'wharf.attempt': operation.attempt,
      'wharf.max_attempts': operation.maxAttempts,
    };
    if (event.subject !== undefined) attributes[ATTR.eventSubject] = event.subject;
    const span = this.#tracer.startSpan(
      `process ${channel}`,
      { kind: SpanKind.CONSUMER, links: creation === undefined ? [] : [{ context: creation }], attributes },
      parent,
    );
    this.#handling.spans.set(event, span);
    return new ProcessScope(this.#handling, span, event, trace.setSpan(parent, span));
  }

  /** A delivery dead-lettered before any handler ran (undecodable, invalid) still gets a span. */
  settled(settlement: Settlement): void {
    // The core calls `settled` right after the handler's scope ended with the same object.
    if (settlement.outcome !== 'dead-lettered' || settlement === this.#handling.lastEnded) return;
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
  #parentForPublish(operation: PublishOperation, event: CloudEvent | undefined, active: Context): Context {
    if (trace.getSpan(active) !== undefined) return active;
    const causing = operation.cause === undefined ? undefined : this.#handling.spans.get(operation.cause);
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
    'messaging.system': system,
    'messaging.destination.name': channel,
    'messaging.operation.name': operation,
    'messaging.operation.type': operation,
  };
}

/** The attributes of a send or create span about one event (the names in ATTR, as literal keys). */
function eventAttributes(system: string, channel: string, operation: 'send' | 'create', event: CloudEvent): Attributes {
  const attributes: Attributes = {
    'messaging.system': system,
    'messaging.destination.name': channel,
    'messaging.operation.name': operation,
    'messaging.operation.type': operation,
    'messaging.message.id': event.id,
    'cloudevents.event_id': event.id,
    'cloudevents.event_type': event.type,
    'cloudevents.event_source': event.source,
  };
  if (event.subject !== undefined) attributes[ATTR.eventSubject] = event.subject;
  return attributes;
}

/** What the process spans being handled leave for publishes and for `settled`. */
class Handling {
  /** The process span of each event being handled, for `ctx.publish` when no context manager runs. */
  readonly spans = new WeakMap<CloudEvent, Span>();
  /** The settlement a process span received last: the core calls `settled` with it right after. */
  lastEnded: Settlement | undefined;
}

/**
 * A publish's send span, active while the adapter publishes so that the broker client's own spans
 * nest under it. A class rather than closures: one object per publish.
 */
class SendScope implements PublishScope {
  constructor(
    readonly span: Span,
    readonly inside: Context,
  ) {}

  run<R>(send: () => R): R {
    return context.with(this.inside, send);
  }

  end(error?: unknown): void {
    finish(this.span, error);
  }
}

/** A handler call's process span: active while the handler runs, so `ctx.publish` continues the trace. */
class ProcessScope implements HandleScope {
  constructor(
    readonly handling: Handling,
    readonly span: Span,
    readonly event: CloudEvent,
    readonly inside: Context,
  ) {}

  run<R>(handler: () => R): R {
    return context.with(this.inside, handler);
  }

  handled(result: HandlerResult): void {
    const span = this.span;
    if (result.error !== undefined) {
      span.setAttribute(ATTR.errorType, errorType(result.error));
      if (result.error instanceof Error) span.recordException(result.error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: messageOf(result.error) });
    } else if (result.aborted) {
      span.setAttribute(ATTR.errorType, '_OTHER');
      span.setStatus({ code: SpanStatusCode.ERROR, message: 'interrupted by shutdown; redelivered later' });
    }
  }

  end(settlement: Settlement): void {
    this.handling.spans.delete(this.event);
    this.handling.lastEnded = settlement;
    recordSettlement(this.span, settlement);
    this.span.end();
  }
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
