import {
  ClosedError,
  type CloudEvent,
  ConfigError,
  createBus,
  NonRetryableError,
  RequestTimeoutError,
  silentLogger,
} from '@wharf/core';
import { afterEach, describe, expect, it } from 'vitest';

let n = 0;
const buses: ReturnType<typeof createBus>[] = [];
/** Two buses on one in-process broker: a requester and a responder, as two services would be. */
const pair = () => {
  const url = `memory://request-test-${++n}`;
  const make = () => {
    const bus = createBus({ url, logger: silentLogger, shutdownTimeoutMs: 1_000 });
    buses.push(bus);
    return bus;
  };
  return { requester: make(), responder: make() };
};
afterEach(async () => {
  await Promise.all(buses.splice(0).map((bus) => bus.close()));
});

/** Timers of this process, by Node's own count: a request that leaks one shows here. */
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

const waitFor = async (check: () => boolean, ms = 5_000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

describe('request/reply', () => {
  it('resolves with the reply; the reply names its request and carries the correlation', async () => {
    const { requester, responder } = pair();
    await responder.respond<{ a: number; b: number }>('sum', { group: 'calc' }, (event) => ({
      type: 'Summed',
      data: { total: (event.data?.a ?? 0) + (event.data?.b ?? 0) },
    }));
    const reply = await requester.request<{ total: number }>(
      'sum',
      { type: 'Sum', data: { a: 2, b: 3 }, correlationid: 'order-7' },
      { timeoutMs: 2_000 },
    );
    expect(reply.data).toEqual({ total: 5 });
    expect(reply.type).toBe('Summed');
    expect(reply.correlationid).toBe('order-7');
    expect(reply.inreplyto).toBe(reply.causationid);
    expect(requester.stats()).toMatchObject({ requestTimeouts: 0, repliesDropped: 0 });
  });

  it('times out with RequestTimeoutError and leaves no timer, listener or pending request', async () => {
    const { requester, responder } = pair();
    await responder.declare('slow', { groups: ['nobody-home'] });
    await requester.listenForReplies('slow.reply');
    // Timers are counted process-wide: let the short ones of earlier work end first, and allow the
    // count to fall (a timer of something else ending meanwhile; under CI load it went 3 -> 2), never
    // to rise: the request's own timer left behind would add one.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const idle = timers();
    const controller = new AbortController();
    const error = await requester
      .request('slow', { type: 'Ping' }, { timeoutMs: 50, signal: controller.signal })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestTimeoutError);
    expect((error as RequestTimeoutError).timeoutMs).toBe(50);
    expect((error as RequestTimeoutError).message).toMatch(/no reply to request .* on slow within 50 ms/);
    expect(timers()).toBeLessThanOrEqual(idle);
    // Aborting after the timeout finds no listener to call and nothing to reject.
    controller.abort(new Error('too late'));
    expect(requester.stats().requestTimeouts).toBe(1);
  });

  it('drops a second reply to one request: the first wins', async () => {
    const { requester, responder } = pair();
    await responder.subscribe('dup', { group: 'echo' }, async (event, ctx) => {
      // A responder that (wrongly) answers twice, as two redeliveries handled by two instances would.
      for (const copy of [1, 2]) {
        await ctx.publish(event.replyto as string, {
          type: 'Echo',
          data: { copy },
          extensions: { inreplyto: event.id },
        });
      }
    });
    const reply = await requester.request<{ copy: number }>('dup', { type: 'Ping' }, { timeoutMs: 2_000 });
    expect(reply.data).toEqual({ copy: 1 });
    await waitFor(() => requester.stats().repliesDropped === 1);
  });

  it('retries a responder that throws, per its policy, then dead-letters the request; the requester times out', async () => {
    const { requester, responder } = pair();
    let calls = 0;
    await responder.respond('flaky', { group: 'calc', retry: { maxAttempts: 3, delays: [10] } }, (_event, ctx) => {
      calls++;
      if (ctx.attempt < 3) throw new Error('not yet');
      return { type: 'Done', data: { attempt: ctx.attempt } };
    });
    const reply = await requester.request<{ attempt: number }>('flaky', { type: 'Go' }, { timeoutMs: 2_000 });
    expect(reply.data).toEqual({ attempt: 3 });
    expect(calls).toBe(3);

    await responder.respond('poison', { group: 'calc' }, () => {
      throw new NonRetryableError('cannot answer this');
    });
    await expect(requester.request('poison', { type: 'Go' }, { timeoutMs: 200 })).rejects.toBeInstanceOf(
      RequestTimeoutError,
    );
    const [dead] = await responder.listDeadLetters('poison', 'calc');
    expect(dead?.info?.reason).toBe('non-retryable');
    expect(dead?.event?.replyto).toBe('poison.reply');
  });

  it('rejects waiting requests with ClosedError on close, and then refuses new ones', async () => {
    const { requester, responder } = pair();
    await responder.declare('never', { groups: ['nobody'] });
    const idle = timers();
    const waiting = requester.request('never', { type: 'Ping' }, { timeoutMs: 60_000 });
    await requester.listenForReplies('never.reply');
    await requester.close();
    await expect(waiting).rejects.toBeInstanceOf(ClosedError);
    await expect(requester.request('never', { type: 'Ping' })).rejects.toBeInstanceOf(ClosedError);
    expect(timers()).toBeLessThanOrEqual(idle);
  });

  it('rejects with the abort reason and forgets the request', async () => {
    const { requester, responder } = pair();
    await responder.declare('held', { groups: ['nobody'] });
    await requester.listenForReplies('held.reply');
    const controller = new AbortController();
    const waiting = requester.request('held', { type: 'Ping' }, { timeoutMs: 60_000, signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort(new Error('user left'));
    await expect(waiting).rejects.toThrow('user left');
  });

  it('fails with the publish error when the request cannot be routed, and checks its options', async () => {
    const { requester } = pair();
    await expect(requester.request('no-group', { type: 'Ping' }, { timeoutMs: 1_000 })).rejects.toThrow(
      /no group is declared on channel "no-group"/,
    );
    await expect(requester.request('x', { type: 'Ping' }, { timeoutMs: 0 })).rejects.toBeInstanceOf(ConfigError);
    await expect(requester.request('x', { type: 'Ping' }, { replyTo: 'bad name' })).rejects.toBeInstanceOf(ConfigError);
  });

  it('sends a reply to the replyTo channel it is given; a responder without a requester left acks', async () => {
    const { requester, responder } = pair();
    const seen: CloudEvent[] = [];
    await responder.respond('q', { group: 'r' }, (event) => {
      seen.push(event);
      return { type: 'A', data: 1 };
    });
    const reply = await requester.request('q', { type: 'Q' }, { replyTo: 'answers.q', timeoutMs: 2_000 });
    expect(reply.data).toBe(1);
    expect(seen[0]?.replyto).toBe('answers.q');
    // A plain event on a responder's channel (no replyto) is handled; no reply is sent.
    await responder.publish('q', { type: 'Q' });
    await waitFor(() => seen.length === 2);
    await waitFor(() => responder.stats().acked === 2);
    // A reply channel nobody listens on (the requester is gone): acked, not retried or dead-lettered.
    await responder.publish('q', { type: 'Q', extensions: { replyto: 'gone.for.good' } });
    await waitFor(() => responder.stats().acked === 3);
    expect(responder.stats()).toMatchObject({ retried: 0, deadLettered: 0 });
  });
});
