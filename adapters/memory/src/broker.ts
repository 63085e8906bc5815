import { type Decoded, type GroupBacklog, UnknownGroupError, UnroutableError, type WireMessage } from '@wharf/core';
import type { Clock } from './options.js';

/** A stored message: the event as the bus encoded it, or what a foreign producer sent. */
export interface Entry {
  readonly decoded: Decoded;
  readonly key: string | undefined;
  attempt: number;
  firstFailureAt: string | undefined;
}

/** A stored dead letter. */
export interface DeadEntry {
  readonly decoded: Decoded;
  readonly headers: Readonly<Record<string, string>>;
}

/** One consumer attached to a group. */
export interface Consumer {
  readonly concurrency: number;
  outstanding: number;
  /** Hands an entry over; `token` identifies this hand-over so a stale settlement is ignored. */
  deliver(entry: Entry, token: Lease): void;
}

/** One hand-over of an entry to a consumer; settled at most once. */
export interface Lease {
  readonly entry: Entry;
  readonly consumer: Consumer;
  settled: boolean;
}

class Group {
  readonly ready: Entry[] = [];
  readonly leases = new Set<Lease>();
  readonly consumers: Consumer[] = [];
  readonly deadLetters: DeadEntry[] = [];
  readonly keysInFlight = new Map<string, number>();
  /** Entries waiting out a retry delay. */
  delayed = 0;
  next = 0;
  scheduled = false;
}

/**
 * An in-process broker. It outlives the adapters that connect to it (durability for the life of
 * the process), so a bus can close and a new one pick up where it left off, like with a real broker.
 */
export class MemoryBroker {
  static readonly #registry = new Map<string, MemoryBroker>();

  /** The broker for a name (`memory://name`); created on first use. */
  static get(name: string, clock: Clock): MemoryBroker {
    let broker = MemoryBroker.#registry.get(name);
    if (!broker) {
      broker = new MemoryBroker(clock);
      MemoryBroker.#registry.set(name, broker);
    }
    return broker;
  }

  readonly #channels = new Map<string, Map<string, Group>>();
  readonly #clock: Clock;
  #down: Promise<void> | undefined;

  private constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Creates the groups so that events published from now on are kept for them. */
  declare(channel: string, groups: readonly string[]): void {
    let map = this.#channels.get(channel);
    if (!map) {
      map = new Map();
      this.#channels.set(channel, map);
    }
    for (const name of groups) if (!map.has(name)) map.set(name, new Group());
  }

  /** Forgets a group and what it held; a channel left without groups is forgotten too (unroutable again). */
  deleteGroup(channel: string, groupName: string): void {
    const map = this.#channels.get(channel);
    map?.delete(groupName);
    if (map?.size === 0) this.#channels.delete(channel);
  }

  async publish(channel: string, messages: readonly WireMessage[], group?: string): Promise<void> {
    await this.#down;
    this.append(
      channel,
      messages.map((message) => ({ ok: true, message }) as const),
      messages.map((m) => m.attributes.partitionkey),
      group,
    );
  }

  /** Stores entries (events, or decoded foreign messages) in every group of the channel, or in one. */
  append(channel: string, decoded: readonly Decoded[], keys: readonly (string | undefined)[], only?: string): void {
    const all = this.#channels.get(channel);
    const one = only === undefined ? undefined : all?.get(only);
    const groups = only === undefined ? all?.values() : one ? [one] : [];
    if (!all || all.size === 0 || (only !== undefined && !one)) throw new UnroutableError('memory', channel);
    for (const group of groups ?? []) {
      for (let i = 0; i < decoded.length; i++) {
        group.ready.push({ decoded: decoded[i] as Decoded, key: keys[i], attempt: 1, firstFailureAt: undefined });
      }
      this.#schedule(group);
    }
  }

  attach(channel: string, groupName: string, consumer: Consumer): void {
    this.declare(channel, [groupName]);
    const group = this.#group(channel, groupName);
    group.consumers.push(consumer);
    this.#schedule(group);
  }

  detach(channel: string, groupName: string, consumer: Consumer): void {
    const group = this.#group(channel, groupName);
    const at = group.consumers.indexOf(consumer);
    if (at >= 0) group.consumers.splice(at, 1);
  }

  /** Ends a lease: the entry is done (ack, dead letter) or moves on (retry, release). */
  settle(lease: Lease, channel: string, groupName: string, then: 'done' | 'release' | { retryInMs: number }): boolean {
    const group = this.#group(channel, groupName);
    if (!this.#endLease(group, lease)) return false;
    const { entry } = lease;
    if (then === 'release') group.ready.unshift(entry);
    else if (then !== 'done') {
      // The broker, not the consumer, holds the delay; unref so a pending retry alone does not keep the process up.
      group.delayed++;
      const timer = this.#clock.setTimeout(() => {
        group.delayed--;
        group.ready.push(entry);
        this.#schedule(group);
      }, then.retryInMs);
      (timer as { unref?: () => void }).unref?.();
    }
    this.#schedule(group);
    return true;
  }

  addDeadLetter(channel: string, groupName: string, deadLetter: DeadEntry): void {
    this.#group(channel, groupName).deadLetters.push(deadLetter);
  }

  deadLetters(channel: string, groupName: string): DeadEntry[] {
    return this.#channels.get(channel)?.get(groupName)?.deadLetters ?? [];
  }

  /** The group's backlog by state; `UnknownGroupError` for a group never declared. */
  backlog(channel: string, groupName: string): GroupBacklog {
    const group = this.#channels.get(channel)?.get(groupName);
    if (!group) throw new UnknownGroupError('memory', channel, groupName);
    return {
      ready: group.ready.length,
      inFlight: group.leases.size,
      delayed: group.delayed,
      deadLetters: group.deadLetters.length,
      consumers: group.consumers.length,
    };
  }

  /** Takes back every unsettled lease of `consumer` (a dropped connection): the entries are redelivered. */
  revoke(consumer: Consumer): void {
    for (const groups of this.#channels.values()) {
      for (const group of groups.values()) {
        const mine = [...group.leases].filter((lease) => lease.consumer === consumer);
        for (const lease of mine.reverse()) this.#revokeLease(group, lease);
      }
    }
  }

  /**
   * Simulates a broker restart: every connection drops (unsettled leases return to their queues and
   * later settlements of them are ignored), publishes wait, and delivery resumes after `downMs`.
   */
  async restart(downMs = 200): Promise<void> {
    let up: () => void = () => {};
    this.#down = new Promise((resolve) => {
      up = resolve;
    });
    for (const groups of this.#channels.values()) {
      for (const group of groups.values()) {
        for (const lease of [...group.leases].reverse()) this.#revokeLease(group, lease);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, downMs));
    this.#down = undefined;
    up();
    for (const groups of this.#channels.values()) for (const group of groups.values()) this.#schedule(group);
  }

  #revokeLease(group: Group, lease: Lease): void {
    if (this.#endLease(group, lease)) group.ready.unshift(lease.entry);
  }

  /** Marks a lease settled and frees its consumer slot and key; false when it already was. */
  #endLease(group: Group, lease: Lease): boolean {
    if (lease.settled) return false;
    lease.settled = true;
    group.leases.delete(lease);
    lease.consumer.outstanding--;
    const key = lease.entry.key;
    if (key !== undefined) {
      const n = (group.keysInFlight.get(key) ?? 1) - 1;
      if (n === 0) group.keysInFlight.delete(key);
      else group.keysInFlight.set(key, n);
    }
    return true;
  }

  #group(channel: string, name: string): Group {
    const group = this.#channels.get(channel)?.get(name);
    if (!group) throw new Error(`[wharf] [memory] group ${channel}/${name} was never declared`);
    return group;
  }

  #schedule(group: Group): void {
    if (group.scheduled) return;
    group.scheduled = true;
    queueMicrotask(() => {
      group.scheduled = false;
      this.#pump(group);
    });
  }

  /** Hands ready entries to consumers round-robin, within each one's concurrency, one lease per key at a time. */
  #pump(group: Group): void {
    if (this.#down) return;
    while (group.ready.length > 0 && group.consumers.length > 0) {
      const consumer = this.#nextConsumer(group);
      if (!consumer) return;
      const at = this.#nextEntry(group);
      if (at < 0) return;
      const [entry] = group.ready.splice(at, 1) as [Entry];
      if (entry.key !== undefined) group.keysInFlight.set(entry.key, (group.keysInFlight.get(entry.key) ?? 0) + 1);
      const lease: Lease = { entry, consumer, settled: false };
      group.leases.add(lease);
      consumer.outstanding++;
      consumer.deliver(entry, lease);
    }
  }

  #nextConsumer(group: Group): Consumer | undefined {
    const n = group.consumers.length;
    for (let i = 0; i < n; i++) {
      const consumer = group.consumers[(group.next + i) % n] as Consumer;
      if (consumer.outstanding < consumer.concurrency) {
        group.next = (group.next + i + 1) % n;
        return consumer;
      }
    }
    return undefined;
  }

  #nextEntry(group: Group): number {
    if (group.keysInFlight.size === 0) return 0;
    return group.ready.findIndex((entry) => entry.key === undefined || !group.keysInFlight.has(entry.key));
  }
}
