/**
 * Offset commits of one subscription: what is committed per partition (never moved back), and a
 * queue that sends one commit request at a time for all partitions.
 */
import type { ClientConsumer } from './client.js';

/** A target offset of one partition (the next offset to consume). */
export interface CommitTarget {
  readonly topic: string;
  readonly partition: number;
  readonly target: bigint;
}

/** Commits of one assignment: the newest target per partition, and whether a request is in flight. */
interface CommitQueue {
  readonly pending: Map<string, CommitTarget>;
  sending: boolean;
  /** Settles once the request that takes the pending targets was answered (or given up). */
  answered: Promise<void> | undefined;
  answer: () => void;
}

function commitQueue(): CommitQueue {
  return { pending: new Map(), sending: false, answered: undefined, answer: () => {} };
}

/**
 * Per assignment (`reset()` on every rebalance): the committed offset of each partition as far as
 * this member knows, and the commit queue. A failed commit forgets its offsets again (the events
 * after the last committed offset are delivered again) and is handed to `onFailure`.
 */
export class OffsetCommits {
  #committed = new Map<string, bigint>();
  #queue: CommitQueue = commitQueue();
  /** Requests in flight; leaving the group waits for them. */
  readonly #inFlight = new Set<Promise<void>>();

  constructor(
    readonly consumer: () => ClientConsumer,
    readonly onFailure: (offsets: readonly CommitTarget[], error: unknown) => void,
  ) {}

  /** A new assignment: forget what was committed, wake whoever waits for the old queue. */
  reset(): void {
    this.#committed = new Map();
    this.#answerAll(this.#queue);
    this.#queue = commitQueue();
  }

  /** Records an offset committed outside the queue (the crash-loop probe's synchronous commit). */
  committedAt(topic: string, partition: number, offset: bigint): void {
    this.#committed.set(`${topic}|${partition}`, offset);
  }

  /** The requests still in flight. */
  inFlight(): Promise<void>[] {
    return [...this.#inFlight];
  }

  /**
   * Queues a commit; the promise settles (never rejects: a failure goes to `onFailure`) once the
   * request that carries it was answered, or is undefined when nothing moves forward. One commit
   * request is in flight per subscription; the targets that arrive meanwhile (the newest per
   * partition) go together in the next one. So a partition's commits land in order (never a lower
   * offset after a higher one), and a busy subscription sends one commit per round trip for all its
   * partitions, not one per batch.
   */
  queued(topic: string, partition: number, target: bigint): Promise<void> | undefined {
    const key = `${topic}|${partition}`;
    if (!this.#beyondCommitted(key, target)) return undefined;
    const queue = this.#queue;
    const pending = queue.pending.get(key);
    if (pending === undefined || pending.target < target) queue.pending.set(key, { topic, partition, target });
    queue.answered ??= new Promise<void>((resolve) => {
      queue.answer = resolve;
    });
    const answered = queue.answered;
    if (!queue.sending) {
      queue.sending = true;
      const work = this.#send(queue);
      this.#inFlight.add(work);
      void work.finally(() => this.#inFlight.delete(work));
    }
    return answered;
  }

  /** Commits one partition now, outside the queue (never rejects). */
  async now(topic: string, partition: number, target: bigint): Promise<void> {
    if (this.#claim(`${topic}|${partition}`, target)) await this.#sendOffsets([{ topic, partition, target }]);
  }

  async #send(queue: CommitQueue): Promise<void> {
    try {
      // Stops when the assignment changed: the partitions may belong to other members now.
      while (queue.pending.size > 0 && queue === this.#queue) {
        // One turn later, so the batches of one fetch, which settle over a few ticks, share the
        // request: sent at the first of them, the others waited for a second round trip.
        await new Promise((resolve) => setImmediate(resolve));
        if (queue !== this.#queue) break;
        const offsets: CommitTarget[] = [];
        for (const [key, commit] of queue.pending) {
          if (this.#claim(key, commit.target)) offsets.push(commit);
        }
        queue.pending.clear();
        const answer = queue.answer;
        queue.answered = undefined;
        if (offsets.length > 0) await this.#sendOffsets(offsets);
        answer();
      }
    } finally {
      queue.sending = false;
      this.#answerAll(queue);
    }
  }

  /** Wakes whoever waits for a queue's commits once it is dropped (a new assignment) or stopped sending. */
  #answerAll(queue: CommitQueue): void {
    if (queue.sending) return;
    queue.answered = undefined;
    queue.answer();
  }

  /** Whether `target` moves the partition's committed offset forward (never back). */
  #beyondCommitted(key: string, target: bigint): boolean {
    const last = this.#committed.get(key);
    return last === undefined || target > last;
  }

  /** Records `target` as the partition's committed offset when it moves it forward; false when it would not. */
  #claim(key: string, target: bigint): boolean {
    if (!this.#beyondCommitted(key, target)) return false;
    this.#committed.set(key, target);
    return true;
  }

  /** Commits offsets already claimed; a failure forgets them again and goes to `onFailure`. */
  async #sendOffsets(offsets: readonly CommitTarget[]): Promise<void> {
    try {
      await this.consumer().commit(
        offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: String(o.target) })),
      );
    } catch (error) {
      for (const o of offsets) {
        const key = `${o.topic}|${o.partition}`;
        if (this.#committed.get(key) === o.target) this.#committed.delete(key);
      }
      this.onFailure(offsets, error);
    }
  }
}
