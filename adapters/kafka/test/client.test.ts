import { strict as assert } from 'node:assert';
import { EventEmitter } from 'node:events';
import kafkajs from 'kafkajs';
import { afterEach, describe, it, vi } from 'vitest';
import { type ClientConsumer, wrapConsumer } from '../src/client.js';

/**
 * A stand-in for a kafkajs consumer, enough to drive the wrapper through what kafkajs does on a
 * crash: it stops its runner, then emits `consumer.crash` with `restart` telling whether it starts
 * again by itself. `restart: false` is what kafkajs 2.2.4 reports for "Failed to find group
 * coordinator" when a broker restart lands in a rebalance (tulios/kafkajs#1630): the consumer then
 * never starts again unless its owner does it.
 */
class FakeConsumer {
  readonly events = {
    CRASH: 'consumer.crash',
    GROUP_JOIN: 'consumer.group_join',
    COMMIT_OFFSETS: 'consumer.commit_offsets',
  } as const;
  readonly #emitter = new EventEmitter();
  runs = 0;
  running = false;
  disconnects = 0;
  /** What the next commitOffsets does: kafkajs resolves without sending once its runner stopped. */
  commitMode: 'acknowledge' | 'silently-skip' = 'acknowledge';

  on(event: string, listener: (event: { payload: unknown }) => void): void {
    this.#emitter.on(event, listener);
  }
  emit(event: string, payload: unknown): void {
    this.#emitter.emit(event, { payload });
  }
  async connect(): Promise<void> {}
  async subscribe(): Promise<void> {}
  async run(): Promise<void> {
    this.runs++;
    this.running = true;
  }
  async disconnect(): Promise<void> {
    this.disconnects++;
    this.running = false;
  }
  crash(error: Error, restart: boolean): void {
    this.running = false;
    this.emit(this.events.CRASH, { error, groupId: 'g', restart });
  }
  join(memberId = 'm-1'): void {
    this.emit(this.events.GROUP_JOIN, { memberId, memberAssignment: { t: [0] } });
  }
  #notRunning(): void {
    if (!this.running)
      throw new kafkajs.KafkaJSNonRetriableError(
        'Consumer group was not initialized, consumer#run must be called first',
      );
  }
  pause(): void {
    this.#notRunning();
  }
  resume(): void {
    this.#notRunning();
  }
  seek(): void {
    this.#notRunning();
  }
  async commitOffsets(offsets: { topic: string; partition: number; offset: string }[]): Promise<void> {
    this.#notRunning();
    if (this.commitMode === 'silently-skip') return;
    const topics = [...new Set(offsets.map((o) => o.topic))].map((topic) => ({
      topic,
      partitions: offsets.filter((o) => o.topic === topic).map((o) => ({ partition: o.partition, offset: o.offset })),
    }));
    this.emit(this.events.COMMIT_OFFSETS, { topics });
  }
}

/** The wrapper over a fake kafkajs that makes a new consumer per call, as kafkajs does. */
function wrapped(evict?: (groupId: string, memberId: string) => Promise<void>) {
  const fakes: FakeConsumer[] = [];
  const kafka = {
    consumer: () => {
      const fake = new FakeConsumer();
      fakes.push(fake);
      return fake;
    },
  } as unknown as Pick<kafkajs.Kafka, 'consumer'>;
  const consumer: ClientConsumer = wrapConsumer(
    kafka,
    {
      groupId: 'g',
      sessionTimeoutMs: 6_000,
      rebalanceTimeoutMs: 10_000,
      heartbeatIntervalMs: 300,
      maxWaitTimeMs: 100,
      partitionsConcurrently: 1,
    },
    evict,
  );
  const crashes: [string, boolean][] = [];
  consumer.onCrash((error, restarting) => crashes.push([error.message, restarting]));
  return {
    consumer,
    crashes,
    /** The kafkajs consumer in use now. */
    fake: () => fakes[fakes.length - 1] as FakeConsumer,
    /** Consumers created, and runs over all of them. */
    created: () => fakes.length,
    runs: () => fakes.reduce((sum, f) => sum + f.runs, 0),
  };
}

/** What kafkajs' joinAndSync throws when the coordinator lookup fails (it bails, wrapping the cause). */
const coordinatorLost = (): Error => {
  const NotFound = kafkajs.KafkaJSGroupCoordinatorNotFound as unknown as new (message: string) => Error;
  return new kafkajs.KafkaJSNonRetriableError(new NotFound('Failed to find group coordinator'));
};

describe('kafka client: a consumer kafkajs does not restart', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is recreated after a non-retriable crash (broker restart during a rebalance), with a growing delay', async () => {
    vi.useFakeTimers();
    const { fake, runs, created, consumer, crashes } = wrapped();
    await consumer.run(['t'], async () => {});
    assert.equal(runs(), 1);

    fake().crash(coordinatorLost(), false);
    assert.deepEqual(crashes, [['Failed to find group coordinator', true]], 'reported as restarting');
    await vi.advanceTimersByTimeAsync(499);
    assert.equal(runs(), 1);
    await vi.advanceTimersByTimeAsync(1);
    assert.equal(runs(), 2, 'restarted after 500 ms');
    assert.equal(created(), 2, 'as a new kafkajs consumer');

    // Still no coordinator: the next attempt waits twice as long.
    fake().crash(coordinatorLost(), false);
    await vi.advanceTimersByTimeAsync(999);
    assert.equal(runs(), 2);
    await vi.advanceTimersByTimeAsync(1);
    assert.equal(runs(), 3);

    // A join resets the delay.
    fake().join();
    fake().crash(coordinatorLost(), false);
    await vi.advanceTimersByTimeAsync(500);
    assert.equal(runs(), 4);
  });

  it('restarts a crash kafkajs would have restarted itself (its restart timer leaks rejections)', async () => {
    vi.useFakeTimers();
    const { fake, runs, consumer, crashes } = wrapped();
    await consumer.run(['t'], async () => {});
    // kafkajs is told not to restart (restartOnFailure answers false), so it reports restart: false.
    fake().crash(
      new kafkajs.KafkaJSNumberOfRetriesExceeded(new Error('read ECONNRESET'), { retryCount: 8, retryTime: 5_000 }),
      false,
    );
    await vi.advanceTimersByTimeAsync(500);
    assert.equal(runs(), 2);
    assert.deepEqual(crashes, [['read ECONNRESET', true]]);
    await consumer.disconnect();
  });

  it('crashes again, and retries, when the new consumer cannot start (the broker still away)', async () => {
    vi.useFakeTimers();
    const { fake, runs, created, consumer, crashes } = wrapped();
    await consumer.run(['t'], async () => {});
    const refuse = vi.spyOn(FakeConsumer.prototype, 'connect').mockRejectedValue(new Error('connect ECONNREFUSED'));
    fake().crash(coordinatorLost(), false);
    await vi.advanceTimersByTimeAsync(500);
    assert.equal(created(), 2);
    assert.equal(runs(), 1, 'the second consumer never ran');
    assert.deepEqual(crashes.at(-1), ['connect ECONNREFUSED', true]);
    refuse.mockRestore();
    await vi.advanceTimersByTimeAsync(1_000);
    assert.equal(created(), 3);
    assert.equal(runs(), 2, 'the third one did');
    await consumer.disconnect();
  });

  it('is not restarted after disconnect(), nor when the brokers refuse the credentials', async () => {
    vi.useFakeTimers();
    const a = wrapped();
    await a.consumer.run(['t'], async () => {});
    a.fake().crash(coordinatorLost(), false);
    await a.consumer.disconnect();
    await vi.advanceTimersByTimeAsync(20_000);
    assert.equal(a.runs(), 1, 'a pending restart is cancelled by disconnect()');

    const b = wrapped();
    await b.consumer.run(['t'], async () => {});
    const auth = new kafkajs.KafkaJSProtocolError('SASL authentication failed');
    (auth as { type?: string }).type = 'SASL_AUTHENTICATION_FAILED';
    b.fake().crash(auth, false);
    await vi.advanceTimersByTimeAsync(20_000);
    assert.equal(b.runs(), 1);
    assert.deepEqual(b.crashes, [['SASL authentication failed', false]], 'reported as stopped');
  });

  it('leaves the group again when a restart joins after disconnect()', async () => {
    const { fake, consumer } = wrapped();
    await consumer.run(['t'], async () => {});
    await consumer.disconnect();
    fake().join();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(fake().disconnects, 2);
  });

  it('ignores pause, resume and seek between a crash and the restart (the restart reads committed offsets)', async () => {
    const { fake, consumer } = wrapped();
    await consumer.run(['t'], async () => {});
    fake().crash(coordinatorLost(), false);
    consumer.pause([{ topic: 't', partitions: [0] }]);
    consumer.resume([{ topic: 't', partitions: [0] }]);
    consumer.seek('t', 0, '5');
    await consumer.disconnect();
  });

  it('fails a commit kafkajs resolved without sending (its runner had stopped), and passes acknowledged ones', async () => {
    const { fake, consumer } = wrapped();
    await consumer.run(['t'], async () => {});
    await consumer.commit([{ topic: 't', partition: 0, offset: '7' }]);
    fake().commitMode = 'silently-skip';
    await assert.rejects(consumer.commit([{ topic: 't', partition: 0, offset: '8' }]), /was not sent/);
    // An acknowledgement is used once: a later skipped commit of the same offset still fails.
    fake().commitMode = 'acknowledge';
    await consumer.commit([{ topic: 't', partition: 0, offset: '9' }]);
    fake().commitMode = 'silently-skip';
    await assert.rejects(consumer.commit([{ topic: 't', partition: 0, offset: '9' }]), /was not sent/);
    await consumer.disconnect();
  });
});

describe('kafka client: the member of a crashed consumer', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is evicted before its replacement starts, so the join is not held for its session', async () => {
    vi.useFakeTimers();
    const evicted: string[] = [];
    const { fake, runs, consumer } = wrapped(async (groupId, memberId) => {
      evicted.push(`${groupId}/${memberId}`);
    });
    await consumer.run(['t'], async () => {});
    fake().join('member-a');
    fake().crash(coordinatorLost(), false);
    await vi.advanceTimersByTimeAsync(500);
    assert.deepEqual(evicted, ['g/member-a']);
    assert.equal(runs(), 2, 'the replacement started after the eviction');

    // The replacement never joined: nothing of it to evict, and member-a is not evicted twice.
    fake().crash(coordinatorLost(), false);
    await vi.advanceTimersByTimeAsync(1_000);
    assert.deepEqual(evicted, ['g/member-a']);
    assert.equal(runs(), 3);
  });

  it('retries the eviction while the broker is away, and stops trying once the member is unknown', async () => {
    vi.useFakeTimers();
    const answers: (Error | undefined)[] = [
      new Error('Connection error: connect ECONNREFUSED'),
      Object.assign(new Error('The coordinator is not aware of this member'), { type: 'UNKNOWN_MEMBER_ID' }),
    ];
    let calls = 0;
    const { fake, runs, consumer, crashes } = wrapped(async () => {
      calls++;
      const answer = answers.shift();
      if (answer) throw answer;
    });
    await consumer.run(['t'], async () => {});
    fake().join('member-a');
    fake().crash(coordinatorLost(), false);
    await vi.advanceTimersByTimeAsync(500);
    assert.equal(runs(), 1, 'no start while the eviction failed');
    assert.match(crashes.at(-1)?.[0] ?? '', /ECONNREFUSED/, 'reported as a failed restart');
    await vi.advanceTimersByTimeAsync(1_000);
    assert.equal(calls, 2);
    assert.equal(runs(), 2, 'started once the broker said the member is gone');
  });
});
