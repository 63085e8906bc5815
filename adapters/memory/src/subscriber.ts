import type { AdapterSubscription, DeadLetterInfo, Delivery, RetryInstruction, SubscribeRequest } from '@wharf/core';
import { deadLetterHeaders } from '@wharf/core';
import type { Consumer, Entry, Lease, MemoryBroker } from './broker.js';

/** A group consumer on the memory broker: hands each lease to the core as a Delivery. */
export class MemorySubscriber implements Consumer, AdapterSubscription {
  readonly concurrency: number;
  outstanding = 0;
  #stopped = false;

  constructor(
    private readonly broker: MemoryBroker,
    private readonly request: SubscribeRequest,
    private readonly onDelivery: (delivery: Delivery) => Promise<void>,
    private readonly onStop: (subscriber: MemorySubscriber) => void,
  ) {
    this.concurrency = request.concurrency;
  }

  start(): void {
    this.broker.attach(this.request.channel, this.request.group, this);
  }

  deliver(entry: Entry, lease: Lease): void {
    const { broker } = this;
    const { channel, group } = this.request;
    const delivery: Delivery = {
      decoded: entry.decoded,
      attempt: entry.attempt,
      ...(entry.firstFailureAt !== undefined ? { firstFailureAt: entry.firstFailureAt } : {}),
      async ack() {
        broker.settle(lease, channel, group, 'done');
      },
      async retry(instruction: RetryInstruction) {
        if (lease.settled) return;
        entry.attempt = instruction.attempt;
        entry.firstFailureAt = instruction.firstFailureAt;
        broker.settle(lease, channel, group, { retryInMs: instruction.delayMs });
      },
      async deadLetter(info: DeadLetterInfo) {
        if (lease.settled) return;
        broker.addDeadLetter(channel, group, { decoded: entry.decoded, headers: deadLetterHeaders(info) });
        broker.settle(lease, channel, group, 'done');
      },
      async release() {
        broker.settle(lease, channel, group, 'release');
      },
    };
    // A handler must not run after stop(); the lease returns to the queue instead.
    if (this.#stopped) {
      broker.settle(lease, channel, group, 'release');
      return;
    }
    this.onDelivery(delivery).catch(() => broker.settle(lease, channel, group, 'release'));
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.broker.detach(this.request.channel, this.request.group, this);
    this.onStop(this);
  }

  /** A dropped connection: unsettled leases go back to the queue. */
  revoke(): void {
    this.broker.revoke(this);
  }
}
