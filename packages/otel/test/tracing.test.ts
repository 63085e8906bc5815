import { context, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { type CloudEvent, createBus, NonRetryableError, silentLogger } from '@wharf/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ATTR, EVENT, formatTraceContext, parseTraceContext } from '../src/index.js';
import {
  enableContextManager,
  kindName,
  linksOf,
  parentOf,
  spanId,
  spansNamed,
  traceId,
  tracingHarness,
} from './harness.js';
import { expectSagaTraces, runMiniSaga } from './saga.js';

let n = 0;
const fresh = () => `memory://otel-test-${++n}`;

beforeAll(enableContextManager);

describe('@wharf/otel on memory://', () => {
  it('makes a send PRODUCER span per publish and a process CONSUMER span linked to it', async () => {
    const { tracing, spans } = tracingHarness();
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: tracing, source: 'urn:test' });
    const seen: CloudEvent[] = [];
    await bus.subscribe('orders', { group: 'billing' }, (event) => void seen.push(event));
    const published = await bus.publish('orders', { type: 'OrderPlaced', subject: 'o-1' });
    const [process] = await spansNamed(spans, /^process /, 1);
    await bus.close();

    const send = spans().find((span) => span.name === 'send orders');
    expect(kindName(send as never)).toBe('PRODUCER');
    expect(send?.parentSpanContext).toBeUndefined();
    expect(published.traceparent).toBe(`00-${send?.spanContext().traceId}-${spanId(send)}-01`);
    expect(seen[0]?.traceparent).toBe(published.traceparent);
    expect(send?.attributes).toMatchObject({
      [ATTR.system]: 'memory',
      [ATTR.destination]: 'orders',
      [ATTR.operationName]: 'send',
      [ATTR.messageId]: published.id,
      [ATTR.eventId]: published.id,
      [ATTR.eventType]: 'OrderPlaced',
      [ATTR.eventSource]: 'urn:test',
      [ATTR.eventSubject]: 'o-1',
    });

    expect(process?.name).toBe('process orders');
    expect(process?.kind).toBe(SpanKind.CONSUMER);
    expect(parentOf(process)).toBe(spanId(send));
    expect(linksOf(process)).toEqual([spanId(send)]);
    expect(traceId(process as never)).toBe(traceId(send as never));
    expect(process?.attributes).toMatchObject({
      [ATTR.system]: 'memory',
      [ATTR.destination]: 'orders',
      [ATTR.group]: 'billing',
      [ATTR.messageId]: published.id,
      [ATTR.eventId]: published.id,
      [ATTR.eventType]: 'OrderPlaced',
      [ATTR.eventSource]: 'urn:test',
      [ATTR.attempt]: 1,
      [ATTR.outcome]: 'acked',
    });
  });

  it('makes a create span per event of a batch and one send span linking them', async () => {
    const { tracing, spans } = tracingHarness();
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: tracing });
    await bus.subscribe('orders', { group: 'billing' }, () => undefined);
    const events = await bus.publishBatch('orders', [{ type: 'A' }, { type: 'B' }]);
    const processes = await spansNamed(spans, /^process /, 2);
    await bus.close();

    const creates = spans().filter((span) => span.name === 'create orders');
    const send = spans().find((span) => span.name === 'send orders');
    expect(creates.map(kindName)).toEqual(['PRODUCER', 'PRODUCER']);
    expect(kindName(send as never)).toBe('CLIENT');
    expect(send?.attributes[ATTR.batchCount]).toBe(2);
    expect(linksOf(send)).toEqual(creates.map(spanId));
    // Published outside any trace, the batch is one trace: its create spans are children of the send.
    expect(creates.map(parentOf)).toEqual([spanId(send), spanId(send)]);
    expect(new Set([send, ...creates, ...processes].map((span) => traceId(span as never))).size).toBe(1);
    expect(events.map((event) => event.traceparent)).toEqual(
      creates.map((span) => formatTraceContext(span.spanContext()).traceparent),
    );
    for (const [index, process] of processes.entries()) {
      const create = creates.find((span) => span.attributes[ATTR.eventId] === process.attributes[ATTR.eventId]);
      expect(linksOf(process)).toEqual([spanId(create)]);
      expect(traceId(process)).toBe(traceId(create as never));
      // The in-process broker delivers while the send span is active: it is the ambient span.
      expect(parentOf(process), `process span ${index}`).toBe(spanId(send));
    }
  });

  it('records retries and dead letters as span events and keeps the original traceparent', async () => {
    const { tracing, spans } = tracingHarness();
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: tracing });
    const traceparents: string[] = [];
    await bus.subscribe('c', { group: 'g', retry: { maxAttempts: 3, delays: [10] } }, (event, ctx) => {
      if (event.type === 'Poison') throw new NonRetryableError('poison');
      traceparents.push(`${ctx.attempt} ${String(event.traceparent)}`);
      if (ctx.attempt === 1) throw new TypeError('flaky');
    });
    const flaky = await bus.publish('c', { type: 'Flaky' });
    const poison = await bus.publish('c', { type: 'Poison' });
    await spansNamed(spans, /^process /, 3);
    await bus.close();

    expect(traceparents).toEqual([`1 ${flaky.traceparent}`, `2 ${flaky.traceparent}`]);
    const send = spans().find((span) => span.attributes[ATTR.eventId] === flaky.id && span.name === 'send c');
    const [first, second] = spans().filter(
      (span) => span.name === 'process c' && span.attributes[ATTR.eventId] === flaky.id,
    );
    expect(first?.attributes).toMatchObject({
      [ATTR.attempt]: 1,
      [ATTR.outcome]: 'retried',
      [ATTR.errorType]: 'TypeError',
    });
    expect(first?.status.message).toBe('flaky');
    expect(first?.events.map((e) => [e.name, e.attributes])).toContainEqual([
      EVENT.retry,
      { [ATTR.attempt]: 2, [ATTR.retryDelay]: 10, [ATTR.errorType]: 'TypeError' },
    ]);
    expect(second?.attributes).toMatchObject({ [ATTR.attempt]: 2, [ATTR.outcome]: 'acked' });
    for (const span of [first, second]) {
      expect(linksOf(span)).toEqual([spanId(send)]);
      expect(traceId(span as never)).toBe(traceId(send as never));
    }

    const dead = spans().find((span) => span.name === 'process c' && span.attributes[ATTR.eventId] === poison.id);
    expect(dead?.attributes).toMatchObject({ [ATTR.outcome]: 'dead-lettered', [ATTR.errorType]: 'NonRetryableError' });
    expect(dead?.events.map((e) => [e.name, e.attributes])).toContainEqual([
      EVENT.deadLetter,
      { [ATTR.reason]: 'non-retryable', [ATTR.errorType]: 'NonRetryableError' },
    ]);
    // Replayed from the dead letters, the event still carries the trace it started in.
    const [deadLetter] = await createBus({ url: bus.url, logger: silentLogger }).listDeadLetters('c', 'g');
    expect(deadLetter?.event?.traceparent).toBe(poison.traceparent);
  });

  it('traces a replayed dead letter in the trace it started, keeping its traceparent', async () => {
    const { tracing, spans } = tracingHarness();
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: tracing });
    let fixed = false;
    const seen: string[] = [];
    await bus.subscribe('c', { group: 'g' }, (event) => {
      seen.push(String(event.traceparent));
      if (!fixed) throw new NonRetryableError('not yet');
    });
    const published = await bus.publish('c', { type: 'Order' });
    await spansNamed(spans, /^process /, 1);
    fixed = true;
    expect(await bus.replayDeadLetters('c', 'g')).toBe(1);
    const [dead, replayed] = await spansNamed(spans, /^process /, 2);
    await bus.close();

    const [send, replay] = spans().filter((span) => span.name === 'send c');
    expect(send?.attributes[ATTR.replay]).toBeUndefined();
    expect(replay?.attributes).toMatchObject({ [ATTR.replay]: true, [ATTR.eventId]: published.id });
    expect(kindName(replay as never)).toBe('PRODUCER');
    // The replay is part of the event's trace, under the context it was created in…
    expect(traceId(replay as never)).toBe(traceId(send as never));
    expect(parentOf(replay)).toBe(spanId(send));
    // …which the event keeps: both handler calls saw the same traceparent and link to the same send span.
    expect(seen).toEqual([published.traceparent, published.traceparent]);
    expect(dead?.attributes[ATTR.outcome]).toBe('dead-lettered');
    expect(replayed?.attributes[ATTR.outcome]).toBe('acked');
    expect(linksOf(replayed)).toEqual([spanId(send)]);
  });

  it('continues a caller’s active span, and a traceparent the caller set when none is active', async () => {
    const { tracing, spans } = tracingHarness();
    const tracer = new BasicTracerProvider().getTracer('caller');
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: tracing });
    await bus.subscribe('c', { group: 'g' }, () => undefined);
    const request = tracer.startSpan('POST /orders');
    await context.with(trace.setSpan(context.active(), request), () => bus.publish('c', { type: 'A' }));
    request.end();
    const given = `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`;
    await bus.publish('c', { type: 'B', traceparent: given, tracestate: 'vendor=x' });
    await spansNamed(spans, /^process /, 2);
    await bus.close();
    const [a, b] = ['A', 'B'].map((type) =>
      spans().find((span) => span.name === 'send c' && span.attributes[ATTR.eventType] === type),
    );
    expect(parentOf(a)).toBe(request.spanContext().spanId);
    expect(traceId(a as never)).toBe(request.spanContext().traceId);
    expect(parentOf(b)).toBe('2'.repeat(16));
    expect(traceId(b as never)).toBe('1'.repeat(32));
    expect(b?.spanContext().traceState?.get('vendor')).toBe('x');
  });

  it('gives one trace per order across a chain of caused events (ctx.publish)', async () => {
    const { tracing, spans } = tracingHarness();
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: tracing });
    await runMiniSaga(bus, 'saga', ['o-1', 'o-2', 'o-3']);
    await spansNamed(spans, /^process saga.outcomes/, 3);
    await bus.close();
    expectSagaTraces(spans(), 'saga', 3, { ambientIsSend: true });
  });
});

describe('ambient spans', () => {
  const { tracing, spans } = tracingHarness();
  const ambientTracer = new BasicTracerProvider().getTracer('amqplib-instrumentation');
  const event: CloudEvent = {
    specversion: '1.0',
    id: 'e-1',
    source: 's',
    type: 'T',
    traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`,
  };
  const operation = { system: 'rabbitmq', channel: 'c', group: 'g', event, attempt: 1, maxAttempts: 3 };
  const finish = (scope: ReturnType<typeof tracing.handle>) =>
    scope.end?.({ ...operation, outcome: 'acked', handlerMs: 1, event });

  it('makes the process span a child of an active ambient span, linked to the creation context', () => {
    const ambient = ambientTracer.startSpan('orders process');
    context.with(trace.setSpan(ROOT_CONTEXT, ambient), () => finish(tracing.handle(operation)));
    ambient.end();
    const process = spans().at(-1);
    expect(parentOf(process)).toBe(ambient.spanContext().spanId);
    expect(traceId(process as never)).toBe(ambient.spanContext().traceId);
    expect(linksOf(process)).toEqual(['b'.repeat(16)]);
  });

  it('ignores an ambient span that already ended (a socket opened inside an old request)', () => {
    const stale = ambientTracer.startSpan('GET /old');
    stale.end();
    context.with(trace.setSpan(ROOT_CONTEXT, stale), () => finish(tracing.handle(operation)));
    const process = spans().at(-1);
    expect(parentOf(process)).toBe('b'.repeat(16));
    expect(traceId(process as never)).toBe('a'.repeat(32));
  });

  it('makes the handler’s span active inside it', () => {
    const scope = tracing.handle(operation);
    const inside = scope.run?.(() => trace.getActiveSpan()?.spanContext().spanId);
    finish(scope);
    expect(inside).toBe(spanId(spans().at(-1)));
  });
});

describe('trace context', () => {
  it('parses and formats W3C traceparent, rejecting malformed values', () => {
    const parsed = parseTraceContext(`00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`, 'k=v');
    expect(parsed).toMatchObject({ traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: 1, isRemote: true });
    expect(parsed && formatTraceContext(parsed)).toEqual({
      traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`,
      tracestate: 'k=v',
    });
    for (const bad of [
      undefined,
      'nonsense',
      `00-${'0'.repeat(32)}-${'b'.repeat(16)}-01`,
      `00-${'a'.repeat(32)}-${'0'.repeat(16)}-01`,
      `ff-${'a'.repeat(32)}-${'b'.repeat(16)}-01`,
      `00-${'A'.repeat(32)}-${'b'.repeat(16)}-01`,
    ]) {
      expect(parseTraceContext(bad, undefined), String(bad)).toBeUndefined();
    }
  });

  it('reads unsampled, other flags, later versions and padded values as the W3C rules say', () => {
    const ids = `${'a'.repeat(32)}-${'b'.repeat(16)}`;
    expect(parseTraceContext(`00-${ids}-00`, undefined)?.traceFlags).toBe(0);
    // Only the sampled bit is kept of the flags; a later version may carry more fields.
    expect(parseTraceContext(`00-${ids}-03`, undefined)?.traceFlags).toBe(1);
    expect(parseTraceContext(`01-${ids}-01-extra`, undefined)).toMatchObject({
      traceId: 'a'.repeat(32),
      traceFlags: 1,
    });
    expect(parseTraceContext(` 00-${ids}-01 `, undefined)?.spanId).toBe('b'.repeat(16));
    expect(parseTraceContext(`00-${ids}-01-extra`, undefined)).toBeUndefined();
  });
});
