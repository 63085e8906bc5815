import { AsyncLocalStorage } from 'node:async_hooks';
import {
  type CloudEvent,
  combineInstrumentations,
  createBus,
  type Instrumentation,
  NonRetryableError,
  type Settlement,
  silentLogger,
} from '@wharf/core';
import { describe, expect, it } from 'vitest';

let n = 0;
const fresh = () => `memory://instrumentation-test-${++n}`;
/** Waits until `done()` holds (polling, so a loaded machine only makes it slower). */
async function until(done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the bus');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Records every hook call as a line, in order. */
function recorder(name: string, lines: string[]): Instrumentation {
  return {
    publish(op) {
      lines.push(
        `${name} publish ${op.system} ${op.channel} ${op.events.map((e) => e.type).join(',')} batch=${op.batch}`,
      );
      return { end: (error) => void lines.push(`${name} published ${op.channel} ${error ? 'error' : 'ok'}`) };
    },
    handle(op) {
      lines.push(`${name} handle ${op.channel}/${op.group} ${op.event.type} attempt=${op.attempt}/${op.maxAttempts}`);
      return {
        run(handler) {
          lines.push(`${name} run`);
          return handler();
        },
        handled: (result) => void lines.push(`${name} handled ${result.error ? 'error' : 'ok'}`),
        end: (s) => void lines.push(`${name} end ${s.outcome}`),
      };
    },
    settled: (s) => void lines.push(`${name} settled ${s.outcome} ${s.reason ?? ''}`.trim()),
  };
}

describe('instrumentation hook', () => {
  it('sees publish, handler start, run, retry, dead letter and settlement in order', async () => {
    const lines: string[] = [];
    const settlements: Settlement[] = [];
    const bus = createBus({
      url: fresh(),
      logger: silentLogger,
      instrumentation: [recorder('a', lines), { settled: (s) => void settlements.push(s) }],
    });
    await bus.subscribe('c', { group: 'g', retry: { maxAttempts: 2, delays: [10] } }, (event) => {
      lines.push(`handler ${event.type}`);
      if (event.type === 'Bad') throw new NonRetryableError('refused');
      throw new Error('always');
    });
    await bus.publish('c', { type: 'Bad' });
    await until(() => bus.stats().deadLettered === 1);
    await bus.publishBatch('c', [{ type: 'Flaky' }]);
    await until(() => bus.stats().deadLettered === 2);
    await bus.close();

    // When a publish resolves relative to its delivery is the broker's business: checked apart.
    expect(lines.filter((line) => line.startsWith('a published'))).toEqual(['a published c ok', 'a published c ok']);
    expect(lines.filter((line) => !line.startsWith('a published'))).toEqual([
      'a publish memory c Bad batch=false',
      'a handle c/g Bad attempt=1/2',
      'a run',
      'handler Bad',
      'a handled error',
      'a end dead-lettered',
      'a settled dead-lettered non-retryable',
      'a publish memory c Flaky batch=true',
      'a handle c/g Flaky attempt=1/2',
      'a run',
      'handler Flaky',
      'a handled error',
      'a end retried',
      'a settled retried',
      'a handle c/g Flaky attempt=2/2',
      'a run',
      'handler Flaky',
      'a handled error',
      'a end dead-lettered',
      'a settled dead-lettered retries-exhausted',
    ]);
    const retried = settlements.find((s) => s.outcome === 'retried');
    expect(retried?.retry?.attempt).toBe(2);
    expect(retried?.error).toMatchObject({ message: 'always' });
    expect(settlements.map((s) => s.system)).toEqual(['memory', 'memory', 'memory']);
  });

  it('settles undecodable and duplicate deliveries without a handler scope', async () => {
    const lines: string[] = [];
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: recorder('a', lines) });
    await bus.subscribe('c', { group: 'g' }, () => undefined);
    const first = await bus.publish('c', { type: 'Ok' });
    await bus.publish('c', { type: 'Ok', id: first.id, source: first.source });
    await until(() => bus.stats().acked + bus.stats().duplicates === 2);
    await bus.close();
    expect(lines.filter((line) => line.includes('settled'))).toEqual(['a settled acked', 'a settled duplicate']);
    expect(lines.filter((line) => line.includes('handle '))).toHaveLength(1);
  });

  it('lets a publish hook set trace context that handlers, retries and ctx.publish see', async () => {
    const seen: Array<{ type: string; attempt: number; traceparent: unknown; tracestate: unknown }> = [];
    const tracer: Instrumentation = {
      publish(op) {
        op.events.forEach((event, index) => {
          // A caused event gets the context of what caused it, like a tracer continuing a trace.
          const parent = op.cause?.traceparent as string | undefined;
          op.setTraceContext(index, parent ?? `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`, `k=${event.type}`);
        });
        return undefined;
      },
    };
    const bus = createBus({ url: fresh(), logger: silentLogger, instrumentation: tracer });
    await bus.subscribe('c', { group: 'g', retry: { maxAttempts: 2, delays: [10] } }, async (event, ctx) => {
      seen.push({
        type: event.type,
        attempt: ctx.attempt,
        traceparent: event.traceparent,
        tracestate: event.tracestate,
      });
      if (event.type === 'First' && ctx.attempt === 1) throw new Error('again');
      if (event.type === 'First') await ctx.publish('c', { type: 'Second' });
    });
    const published = await bus.publish('c', { type: 'First' });
    expect(published.traceparent).toBe(`00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`);
    await until(() => seen.length === 3);
    await bus.close();
    const trace = `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`;
    expect(seen).toEqual([
      { type: 'First', attempt: 1, traceparent: trace, tracestate: 'k=First' },
      { type: 'First', attempt: 2, traceparent: trace, tracestate: 'k=First' },
      { type: 'Second', attempt: 1, traceparent: trace, tracestate: 'k=Second' },
    ]);
  });

  it('rejects trace context outside the hook and malformed values', async () => {
    let kept: { setTraceContext(index: number, traceparent: string): void } | undefined;
    const errors: string[] = [];
    const bus = createBus({
      url: fresh(),
      logger: { ...silentLogger, error: (message: string) => void errors.push(message) },
      instrumentation: {
        publish(op) {
          kept = op;
          op.setTraceContext(0, 'bad\r\nvalue');
          return undefined;
        },
      },
    });
    await bus.subscribe('c', { group: 'g' }, () => undefined);
    const event = await bus.publish('c', { type: 'Ok' });
    expect(event.traceparent).toBeUndefined();
    expect(errors).toEqual(['[wharf] [core] an instrumentation threw in publish']);
    expect(() => kept?.setTraceContext(0, `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`)).toThrow(/only allowed inside/);
    await bus.close();
  });

  it('runs the handler inside every scope, the first instrumentation outermost', async () => {
    const store = new AsyncLocalStorage<string[]>();
    const wrap =
      (name: string): Instrumentation['handle'] =>
      () => ({
        run: (handler) => store.run([...(store.getStore() ?? []), name], handler),
      });
    let inside: string[] | undefined;
    const bus = createBus({
      url: fresh(),
      logger: silentLogger,
      instrumentation: [{ handle: wrap('outer') }, { handle: wrap('inner') }],
    });
    await bus.subscribe('c', { group: 'g' }, async () => {
      await new Promise((resolve) => setImmediate(resolve));
      inside = store.getStore();
    });
    await bus.publish('c', { type: 'Ok' });
    await until(() => inside !== undefined);
    await bus.close();
    expect(inside).toEqual(['outer', 'inner']);
  });

  it('ends a publish scope with the error of a publish that failed', async () => {
    const ends: unknown[] = [];
    const bus = createBus({
      url: fresh(),
      logger: silentLogger,
      instrumentation: { publish: () => ({ end: (error) => void ends.push(error) }) },
    });
    // No group on the channel: the memory broker refuses the event as unroutable.
    await expect(bus.publish('nobody', { type: 'Ok' })).rejects.toThrow();
    expect(ends).toHaveLength(1);
    expect((ends[0] as Error).name).toBe('UnroutableError');
    await bus.close();
  });

  it('keeps going when an instrumentation throws', async () => {
    const handled: CloudEvent[] = [];
    const broken: Instrumentation = {
      publish: () => {
        throw new Error('publish hook');
      },
      handle: () => ({
        handled: () => {
          throw new Error('handled hook');
        },
      }),
      settled: () => {
        throw new Error('settled hook');
      },
    };
    const errors: string[] = [];
    const bus = createBus({
      url: fresh(),
      logger: { ...silentLogger, error: (message: string) => void errors.push(message) },
      instrumentation: broken,
    });
    await bus.subscribe('c', { group: 'g' }, (event) => void handled.push(event));
    await bus.publish('c', { type: 'Ok' });
    await until(() => bus.stats().acked === 1);
    await bus.close();
    expect(handled).toHaveLength(1);
    expect(bus.stats()).toMatchObject({ acked: 1, incidents: 0 });
    expect(errors).toEqual([
      '[wharf] [core] an instrumentation threw in publish',
      '[wharf] [core] an instrumentation threw in handled',
      '[wharf] [core] an instrumentation threw in settled',
    ]);
  });

  it('combines instrumentations into one that calls each in order', () => {
    const lines: string[] = [];
    const combined = combineInstrumentations([recorder('a', lines), recorder('b', lines)]);
    const scope = combined.handle?.({
      system: 'memory',
      channel: 'c',
      group: 'g',
      event: { specversion: '1.0', id: '1', source: 's', type: 'T' },
      attempt: 1,
      maxAttempts: 1,
    });
    expect(scope?.run?.(() => 42)).toBe(42);
    expect(lines).toEqual(['a handle c/g T attempt=1/1', 'b handle c/g T attempt=1/1', 'a run', 'b run']);
  });
});
