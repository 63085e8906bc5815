import {
  type Adapter,
  AdapterNotInstalledError,
  ClosedError,
  ConfigError,
  ContractViolationError,
  createBus,
  type EventValidator,
  InvalidEventError,
  InvalidUrlError,
  loadAdapter,
  NonRetryableError,
  silentLogger,
  UnknownGroupError,
  UnsupportedError,
} from '@wharf/core';
import { describe, expect, it } from 'vitest';
import createMemoryAdapter from '../src/index.js';

let n = 0;
const fresh = () => `memory://bus-test-${++n}`;
const bus = (options: Parameters<typeof createBus>[0] = {}) =>
  createBus({ url: fresh(), logger: silentLogger, ...options });

describe('createBus and bad input', () => {
  it('rejects unknown schemes and malformed URLs at once', () => {
    expect(() => createBus({ url: 'redis://localhost' })).toThrow(InvalidUrlError);
    expect(() => createBus({ url: 'not a url' })).toThrow(/is not a broker URL/);
  });

  it('uses WHARF_BROKER, then memory://', () => {
    const before = process.env.WHARF_BROKER;
    process.env.WHARF_BROKER = 'nats://127.0.0.1:4222';
    expect(createBus().url).toBe('nats://127.0.0.1:4222');
    delete process.env.WHARF_BROKER;
    expect(createBus().url).toBe('memory://');
    if (before !== undefined) process.env.WHARF_BROKER = before;
  });

  it('names the package to install when an adapter is missing', async () => {
    const error = await loadAdapter(
      { url: 'memory://', logger: silentLogger },
      { memory: '@wharf/not-installed' },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdapterNotInstalledError);
    expect((error as Error).message).toContain('npm install @wharf/not-installed');
  });

  it('loads the adapter for the URL scheme', async () => {
    const adapter = await loadAdapter({ url: 'memory://', logger: silentLogger });
    expect(adapter.name).toBe('memory');
  });

  it('refuses data that cannot be serialised, and sends nothing', async () => {
    const b = bus();
    const seen: unknown[] = [];
    await b.subscribe('c', { group: 'g' }, (e) => void seen.push(e));
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(b.publish('c', { type: 'T', data: cyclic })).rejects.toThrow(InvalidEventError);
    // One bad event in a batch stops the whole batch before anything is sent.
    await expect(b.publishBatch('c', [{ type: 'Ok' }, { type: 'T', data: cyclic }])).rejects.toThrow(InvalidEventError);
    await b.publish('c', { type: 'Marker' });
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.map((e) => (e as { type: string }).type)).toEqual(['Marker']);
    await b.close();
  });

  it('rejects events missing required attributes', async () => {
    const b = bus();
    await expect(b.publish('c', { type: '' })).rejects.toThrow(/"type" attribute is required/);
    await expect(b.publish('c', {} as never)).rejects.toThrow(InvalidEventError);
    await b.close();
  });

  it.each([
    [{ group: 'g', retry: { maxAttempts: 0 } }, /maxAttempts/],
    [{ group: 'g', retry: { delays: [-5] } }, /delays\[0\]/],
    [{ group: 'g', concurrency: 0 }, /concurrency must be an integer/],
    [{ group: 'bad group!' }, /group name "bad group!" is invalid/],
  ])('rejects subscription options %j', async (options, message) => {
    const b = bus();
    await expect(b.subscribe('c', options, () => {})).rejects.toThrow(ConfigError);
    await expect(b.subscribe('c', options, () => {})).rejects.toThrow(message);
    await b.close();
  });

  it('rejects invalid channel names', async () => {
    const b = bus();
    await expect(b.publish('has space', { type: 'T' })).rejects.toThrow(/channel name "has space" is invalid/);
    await b.close();
  });

  it('fails publish, subscribe and connect after close, and close is idempotent', async () => {
    const b = bus();
    await b.close();
    await b.close();
    await expect(b.publish('c', { type: 'T' })).rejects.toThrow(ClosedError);
    await expect(b.subscribe('c', { group: 'g' }, () => {})).rejects.toThrow(ClosedError);
    await expect(b.connect()).rejects.toThrow(/the bus is closed/);
  });

  it('keeps accepted events when a publisher bus closes: a new bus on the same broker gets them', async () => {
    const url = fresh();
    const first = createBus({ url, logger: silentLogger });
    await first.declare('c', { groups: ['g'] });
    await first.publishBatch('c', [{ type: 'A' }, { type: 'B' }]);
    await first.close();
    const second = createBus({ url, logger: silentLogger });
    const types: string[] = [];
    await second.subscribe('c', { group: 'g' }, (e) => void types.push(e.type));
    await new Promise((r) => setTimeout(r, 50));
    expect(types).toEqual(['A', 'B']);
    await second.close();
  });
});

describe('contract validation hooks and handler maps', () => {
  const validator: EventValidator = {
    validate(direction, _channel, event) {
      const data = event.data as { qty?: unknown } | undefined;
      if (typeof data?.qty !== 'number') {
        throw new ContractViolationError(`${direction === 'publish' ? 'published' : 'received'} ${event.type}`, [
          { path: '/qty', message: 'must be number' },
        ]);
      }
    },
  };

  it('throws ContractViolationError on publish and sends nothing', async () => {
    const b = bus({ validator });
    await b.declare('c', { groups: ['g'] });
    const error = await b.publish('c', { type: 'T', data: { qty: 'two' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ContractViolationError);
    expect((error as ContractViolationError).issues).toEqual([{ path: '/qty', message: 'must be number' }]);
    expect(b.stats().published).toBe(0);
    await b.close();
  });

  it('dead-letters a received event that breaks the contract as invalid', async () => {
    const url = fresh();
    const producer = createBus({ url, logger: silentLogger });
    const consumer = createBus({ url, logger: silentLogger, validator });
    let calls = 0;
    await consumer.subscribe('c', { group: 'g' }, () => void calls++);
    await producer.publish('c', { type: 'T', data: { qty: 'many' } });
    await new Promise((r) => setTimeout(r, 50));
    const [dead] = await consumer.listDeadLetters('c', 'g');
    expect(calls).toBe(0);
    expect(dead?.info?.reason).toBe('invalid');
    expect(dead?.info?.errorMessage).toContain('/qty must be number');
    await producer.close();
    await consumer.close();
  });

  it('dispatches by type and dead-letters unknown types as no-handler', async () => {
    const b = bus();
    const seen: string[] = [];
    await b.subscribe('c', { group: 'g' }, { Known: (e) => void seen.push(e.id) });
    const known = await b.publish('c', { type: 'Known' });
    await b.publish('c', { type: 'Stranger' });
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual([known.id]);
    const [dead] = await b.listDeadLetters('c', 'g');
    expect(dead?.info?.reason).toBe('no-handler');
    expect(dead?.event?.type).toBe('Stranger');
    await b.close();
  });
});

describe('backlog', () => {
  it('is UnsupportedError on an adapter without the member, and UnknownGroupError for an undeclared group', async () => {
    const url = fresh();
    const full = createMemoryAdapter({ url, logger: silentLogger });
    // The same adapter as one written before the member existed.
    const without: Adapter = {
      name: full.name,
      capabilities: full.capabilities,
      connect: () => full.connect(),
      publish: (channel, messages) => full.publish(channel, messages),
      declare: (channel, groups, policy) => full.declare(channel, groups, policy),
      subscribe: (request, onDelivery) => full.subscribe(request, onDelivery),
      readDeadLetters: (channel, group, options, visit) => full.readDeadLetters(channel, group, options, visit),
      close: () => full.close(),
      raw: () => full.raw(),
    };
    const b = createBus({ adapter: without, logger: silentLogger });
    await expect(b.backlog('c', 'g')).rejects.toBeInstanceOf(UnsupportedError);
    await b.close();
    const c = bus();
    await expect(c.backlog('c', 'g')).rejects.toBeInstanceOf(UnknownGroupError);
    await expect(c.backlog('c', 'bad group')).rejects.toBeInstanceOf(ConfigError);
    await c.close();
  });
});

describe('memory adapter specifics', () => {
  it('holds retry delays on an injectable clock', async () => {
    const timers: { at: number; fn: () => void }[] = [];
    let now = 0;
    const clock = { now: () => now, setTimeout: (fn: () => void, ms: number) => timers.push({ at: now + ms, fn }) };
    const b = createBus({
      adapter: createMemoryAdapter({ url: fresh(), logger: silentLogger, clock }),
      logger: silentLogger,
    });
    const attempts: number[] = [];
    await b.subscribe('c', { group: 'g', retry: { maxAttempts: 3, delays: [60_000, 3_600_000] } }, (_, ctx) => {
      attempts.push(ctx.attempt);
      throw new Error('no');
    });
    await b.publish('c', { type: 'T' });
    await new Promise((r) => setTimeout(r, 20));
    expect(attempts).toEqual([1]);
    expect(timers.map((t) => t.at)).toEqual([60_000]);
    now = 60_000;
    timers.shift()?.fn();
    await new Promise((r) => setTimeout(r, 20));
    expect(attempts).toEqual([1, 2]);
    expect(timers.map((t) => t.at)).toEqual([60_000 + 3_600_000]);
    now += 3_600_000;
    timers.shift()?.fn();
    await new Promise((r) => setTimeout(r, 20));
    expect(attempts).toEqual([1, 2, 3]);
    expect((await b.listDeadLetters('c', 'g'))[0]?.info?.reason).toBe('retries-exhausted');
    await b.close();
  });

  it('rejects publishing to a channel without groups, so nothing is silently lost', async () => {
    const b = bus();
    await expect(b.publish('nobody-listens', { type: 'T' })).rejects.toThrow(/no group is declared on channel/);
    await b.close();
  });
});

describe('tracing and metrics', () => {
  it('ctx.publish carries correlation, causation and trace context', async () => {
    const b = bus();
    const seen: { id: string; correlationid?: string; causationid?: string; traceparent?: string }[] = [];
    await b.subscribe('second', { group: 'g' }, (e) => void seen.push(e));
    await b.subscribe('first', { group: 'g' }, async (_, ctx) => {
      await ctx.publish('second', { type: 'Caused' });
    });
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const first = await b.publish('first', { type: 'Start', traceparent });
    await new Promise((r) => setTimeout(r, 50));
    expect(seen[0]).toMatchObject({ correlationid: first.id, causationid: first.id, traceparent });
    await b.close();
  });

  it('gives a context whose members still work when destructured', async () => {
    const b = bus();
    const seen: { type: string; causationid?: string }[] = [];
    await b.subscribe('second', { group: 'g' }, (e) => void seen.push(e));
    await b.subscribe('first', { group: 'g' }, async (e, { publish, deadLetter, channel, group, attempt }) => {
      if (e.type === 'Refuse') deadLetter('refused');
      await publish('second', { type: `From-${channel}-${group}-${attempt}` });
    });
    const first = await b.publish('first', { type: 'Start' });
    await b.publish('first', { type: 'Refuse' });
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual([expect.objectContaining({ type: 'From-first-g-1', causationid: first.id })]);
    expect((await b.listDeadLetters('first', 'g'))[0]?.info).toMatchObject({
      reason: 'non-retryable',
      errorMessage: 'refused',
    });
    await b.close();
  });

  it('reports every settlement and publish to the observer', async () => {
    const outcomes: string[] = [];
    let published = 0;
    const b = bus({
      observer: {
        onSettled: (outcome, info) => outcomes.push(`${outcome}:${info.type}:${info.attempt}`),
        onPublished: (_, count) => {
          published += count;
        },
      },
    });
    await b.subscribe('c', { group: 'g', retry: { maxAttempts: 2, delays: [10] } }, (e, ctx) => {
      if (e.type === 'Flaky' && ctx.attempt === 1) throw new Error('once');
      if (e.type === 'Bad') throw new NonRetryableError('no');
    });
    const ok = await b.publish('c', { type: 'Ok' });
    await b.publish('c', { type: 'Ok', id: ok.id, source: ok.source });
    await b.publishBatch('c', [{ type: 'Flaky' }, { type: 'Bad' }]);
    await new Promise((r) => setTimeout(r, 100));
    expect(published).toBe(4);
    expect(outcomes.sort()).toEqual(
      ['acked:Flaky:2', 'acked:Ok:1', 'dead-lettered:Bad:1', 'duplicate:Ok:1', 'retried:Flaky:1'].sort(),
    );
    expect(b.stats()).toMatchObject({ acked: 2, duplicates: 1, retried: 1, deadLettered: 1, failures: 2 });
    await b.close();
  });
});

describe('never silent', () => {
  it('reports an event the bus cannot settle as an incident naming it, and redelivers it', async () => {
    const lines: string[] = [];
    const logger = {
      ...silentLogger,
      error: (message: string, fields?: Record<string, unknown>) =>
        void lines.push(`${message} ${JSON.stringify(fields)}`),
    };
    let broken = true;
    const dedup = {
      has: () => {
        if (broken) {
          broken = false;
          throw new Error('dedup store down');
        }
        return false;
      },
      add: () => {},
    };
    const incidents: string[] = [];
    const b = createBus({ url: fresh(), logger, dedup, observer: { onIncident: (i) => void incidents.push(i.kind) } });
    const handled: string[] = [];
    await b.subscribe('c', { group: 'g' }, (e) => void handled.push(e.id));
    const event = await b.publish('c', { type: 'T', id: 'evt-1' });
    await until(() => handled.length === 1);
    expect(handled).toEqual([event.id]);
    expect(b.stats().incidents).toBe(1);
    expect(b.stats().released).toBe(1);
    expect(incidents).toEqual(['settle-failed']);
    expect(
      lines.some((line) => line.includes('c/g') && line.includes('evt-1') && line.includes('dedup store down')),
    ).toBe(true);
    await b.close();
  });

  it('bounds a publish the adapter never answers with PublishTimeoutError, and counts it', async () => {
    const inner = createMemoryAdapter({ url: fresh(), logger: silentLogger });
    // A memory broker whose publish is never answered, as a broker that went silent would leave it.
    const adapter: Adapter = {
      name: inner.name,
      capabilities: inner.capabilities,
      connect: () => inner.connect(),
      publish: () => new Promise<void>(() => {}),
      declare: (channel, groups, policy) => inner.declare(channel, groups, policy),
      subscribe: (request, onDelivery) => inner.subscribe(request, onDelivery),
      readDeadLetters: (channel, group, options, visit) => inner.readDeadLetters(channel, group, options, visit),
      close: () => inner.close(),
      raw: () => inner.raw(),
    };
    const b = createBus({ adapter, logger: silentLogger, publishTimeoutMs: 100 });
    const error = await b.publish('c', { type: 'T' }).catch((e: unknown) => e);
    expect((error as Error).name).toBe('PublishTimeoutError');
    expect(b.stats().publishTimeouts).toBe(1);
    expect(b.pendingPublishes).toBe(1);
    await b.close();
  });
});

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('a second copy of an event in flight', () => {
  it('waits for the first copy and is dropped as a duplicate, so the effect happens once', async () => {
    const b = bus();
    let runs = 0;
    await b.subscribe('c', { group: 'g', concurrency: 4 }, async () => {
      runs++;
      await new Promise((resolve) => setTimeout(resolve, 100));
    });
    // Two copies of one event at once, as a redelivery on a new channel meets a handler still running.
    await Promise.all([b.publish('c', { type: 'T', id: 'same' }), b.publish('c', { type: 'T', id: 'same' })]);
    await until(() => b.stats().acked + b.stats().duplicates === 2);
    expect(runs).toBe(1);
    expect(b.stats().duplicates).toBe(1);
    await b.close();
  });

  it('runs the second copy when the first failed', async () => {
    const b = bus();
    let runs = 0;
    await b.subscribe('c', { group: 'g', concurrency: 4, retry: { maxAttempts: 1 } }, async () => {
      runs++;
      await new Promise((resolve) => setTimeout(resolve, 50));
      if (runs === 1) throw new Error('first copy fails');
    });
    await Promise.all([b.publish('c', { type: 'T', id: 'same' }), b.publish('c', { type: 'T', id: 'same' })]);
    await until(() => b.stats().acked + b.stats().deadLettered === 2);
    expect(runs).toBe(2);
    expect(b.stats().acked).toBe(1);
    await b.close();
  });
});

describe('delayed retries at scale', () => {
  it('settles every event when far more retries wait than the subscription runs at once', async () => {
    const b = bus();
    const attempts = new Map<string, number>();
    const done = new Set<string>();
    // 1,000 events, 4 at a time: every event fails twice (so ~1,000 retries wait at once), every
    // tenth fails always and must end as exactly one dead letter.
    await b.subscribe(
      'c',
      { group: 'g', concurrency: 4, retry: { maxAttempts: 3, delays: [20, 40] } },
      (event, ctx) => {
        attempts.set(event.id, ctx.attempt);
        const n = Number(event.id.slice(2));
        if (n % 10 === 0 || ctx.attempt < 3) throw new Error('not yet');
        done.add(event.id);
      },
    );
    const ids = Array.from({ length: 1000 }, (_, i) => `e-${i}`);
    await b.publishBatch(
      'c',
      ids.map((id) => ({ type: 'T', id })),
    );
    await until(() => b.stats().acked + b.stats().deadLettered === 1000, 30_000);
    expect(done.size).toBe(900);
    expect(b.stats().deadLettered).toBe(100);
    expect(b.stats().retried).toBe(2000);
    expect([...attempts.values()].every((a) => a === 3)).toBe(true);
    const letters = await b.listDeadLetters('c', 'g', { limit: 1000 });
    expect(new Set(letters.map((l) => l.event?.id)).size).toBe(100);
    expect(b.stats().incidents).toBe(0);
    await b.close();
  });
});
