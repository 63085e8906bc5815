import { strict as assert } from 'node:assert';
import { type CloudEvent, RequestTimeoutError, UnknownGroupError } from '@wharf/core';
import { sleep } from '../assertions.js';
import type { ConformanceCase } from './types.js';

interface Ping {
  readonly n: number;
}

interface Pong {
  readonly n: number;
  readonly doubled: number;
}

/** Request/reply, built by the core on publish and subscribe: the same on every adapter. */
export const requestReplyCases: ConformanceCase[] = [
  {
    id: 'request-reply',
    rule: 'a request gets its own reply by correlation id, each requester only its own; no reply times out with RequestTimeoutError and leaves nothing waiting; a late reply is dropped',
    timeoutMs: 90_000,
    async run(t) {
      const channel = t.channel('rr');
      const replyTo = `${channel}.reply`;
      const responderGroup = t.group(channel, 'responder');
      const responder = t.bus();
      const first = t.bus();
      const second = t.bus();
      t.track(replyTo, first.replyGroup);
      t.track(replyTo, second.replyGroup);
      let handled = 0;
      await responder.respond<Ping, Pong>(channel, { group: responderGroup, concurrency: 4 }, (event) => {
        handled++;
        const n = event.data?.n ?? -1;
        return { type: 'Pong', data: { n, doubled: n * 2 }, subject: event.subject ?? 'none' };
      });
      // Both inboxes consume before the first request: a reply is never published into a void.
      await Promise.all([first.listenForReplies(replyTo), second.listenForReplies(replyTo)]);

      const ask = (bus: typeof first, n: number) =>
        bus.request<Pong, Ping>(
          channel,
          { type: 'Ping', data: { n }, subject: `s-${n}`, correlationid: `saga-${n}` },
          { timeoutMs: t.ms(20_000) },
        );
      const started = Date.now();
      const replies = await Promise.all([ask(first, 1), ask(second, 2), ask(first, 3), ask(second, 4)]);
      replies.forEach((reply: CloudEvent<Pong>, i) => {
        const n = i + 1;
        assert.equal(reply.type, 'Pong');
        assert.deepEqual(reply.data, { n, doubled: n * 2 }, `reply ${n} answers its own request`);
        assert.equal(reply.subject, `s-${n}`);
        assert.equal(typeof reply.inreplyto, 'string', 'a reply carries inreplyto');
        assert.equal(reply.causationid, reply.inreplyto, 'the reply is caused by the request');
        assert.equal(reply.correlationid, `saga-${n}`, 'the correlation id carries over');
      });
      assert.equal(new Set(replies.map((r) => r.inreplyto)).size, 4);
      assert.equal(handled, 4);
      assert.ok(Date.now() - started < t.ms(20_000));
      // Each requester gets every reply of the shared reply channel and drops the other's.
      await waitUntil(() => first.stats().repliesDropped >= 2 && second.stats().repliesDropped >= 2, t.ms(10_000));

      // No responder: the request times out, typed, and nothing keeps waiting for it.
      const quiet = t.channel('rr-quiet');
      const quietGroup = t.group(quiet, 'responder');
      t.track(`${quiet}.reply`, first.replyGroup);
      await first.declare(quiet, { groups: [quietGroup] });
      await first.listenForReplies(`${quiet}.reply`);
      const dropped = first.stats().repliesDropped;
      const before = Date.now();
      const error = await first.request(quiet, { type: 'Ping', data: { n: 9 } }, { timeoutMs: t.ms(800) }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(error instanceof RequestTimeoutError, `expected RequestTimeoutError, got ${String(error)}`);
      assert.ok(Date.now() - before >= t.ms(800) - 5, 'not before timeoutMs');
      assert.equal(first.stats().requestTimeouts, 1);
      // A responder that comes later still handles the stored request (at-least-once); its reply is dropped.
      let late = 0;
      await responder.respond<Ping, Pong>(quiet, { group: quietGroup }, (event) => {
        late++;
        return { type: 'Pong', data: { n: event.data?.n ?? -1, doubled: 0 } };
      });
      await waitUntil(() => late === 1 && first.stats().repliesDropped === dropped + 1, t.ms(20_000));
      await sleep(t.ms(300));
      assert.equal(late, 1);
    },
  },
  {
    id: 'reply-inbox-deleted',
    rule: "deleteGroup deletes one group alone: a bus's close deletes its reply inbox, and the channel's other groups keep receiving",
    requires: (_capabilities, _options, probe) => {
      if (probe.deleteGroup === undefined) return 'the adapter has no deleteGroup: reply inboxes stay on the broker';
      if (probe.backlog === undefined) return 'the adapter has no backlog to observe groups with';
      return undefined;
    },
    timeoutMs: 90_000,
    async run(t) {
      const channel = t.channel('rr-del');
      const replyTo = `${channel}.reply`;
      const responder = t.bus();
      const requester = t.bus();
      const observer = t.bus();
      t.track(replyTo, requester.replyGroup);
      const keeper = t.group(replyTo, 'keeper');
      await observer.declare(replyTo, { groups: [keeper] });
      await responder.respond<number>(channel, { group: t.group(channel, 'responder') }, (event) => ({
        type: 'Pong',
        data: event.data,
      }));
      const reply = await requester.request(channel, { type: 'Ping', data: 7 }, { timeoutMs: t.ms(20_000) });
      assert.equal(reply.data, 7);
      const before = await observer.backlog(replyTo, requester.replyGroup);
      assert.equal(typeof before.ready, 'number', 'the inbox group exists while its bus runs');
      await requester.close();
      // A bus that never saw the deleted destinations: kafkajs keeps listing a deleted topic it had
      // metadata for, and its listTopics then fails (a known limit of the Kafka adapter's backlog).
      const witness = t.bus();
      await assert.rejects(witness.backlog(replyTo, requester.replyGroup), UnknownGroupError);
      // The other group of the reply channel is untouched and still gets what is published there.
      await witness.publish(replyTo, { type: 'Pong', data: 8 });
      await waitUntil(async () => (await witness.backlog(replyTo, keeper)).ready >= 1, t.ms(15_000));
    },
  },
];

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(20);
  }
}
