import { randomBytes } from 'node:crypto';
import type { LegacyProducer } from '@wharf/core';
import { type Adapter, Bus, type BusOptions, type Capabilities, DEFAULT_CAPABILITIES, silentLogger } from '@wharf/core';
import type { ConformanceOptions } from './options.js';

/** What a case gets: fresh names, buses that are closed for it, and the broker's capabilities. */
export class CaseContext {
  readonly capabilities: Capabilities;
  /** The adapter can publish to one group (dead-letter replays reach only that group). */
  readonly addressesGroups: boolean;
  readonly #options: ConformanceOptions;
  readonly #buses: Bus[] = [];
  readonly #producers: LegacyProducer[] = [];
  readonly #channels = new Map<string, Set<string>>();
  readonly #id = randomBytes(4).toString('hex');
  #n = 0;

  constructor(options: ConformanceOptions, probe: Adapter) {
    this.#options = options;
    this.capabilities = { ...DEFAULT_CAPABILITIES, ...probe.capabilities, ...options.capabilities };
    this.addressesGroups = typeof probe.publishToGroup === 'function';
  }

  get options(): ConformanceOptions {
    return this.#options;
  }

  /** A channel name no other case or run uses. */
  channel(label: string): string {
    const name = `conf-${label}-${this.#id}-${++this.#n}`;
    this.#channels.set(name, new Set());
    return name;
  }

  /** A group name, remembered for cleanup. */
  group(channel: string, label: string): string {
    const name = `${label}-${this.#id}`;
    this.#channels.get(channel)?.add(name);
    return name;
  }

  /** Remembers a group named elsewhere (a bus's `replyGroup`) on a channel, for cleanup. */
  track(channel: string, group: string): void {
    let groups = this.#channels.get(channel);
    if (groups === undefined) {
      groups = new Set();
      this.#channels.set(channel, groups);
    }
    groups.add(group);
  }

  /** A bus on a fresh adapter (its own connection), closed after the case. */
  bus(options: Omit<BusOptions, 'adapter' | 'url'> = {}, adapter: Adapter = this.#options.create()): Bus {
    const bus = new Bus({ logger: silentLogger, shutdownTimeoutMs: 2_000, ...options, adapter });
    this.#buses.push(bus);
    return bus;
  }

  /** A declared legacy producer (the harness's `legacyProducer`), closed after the case's buses. */
  async legacyProducer(): Promise<LegacyProducer> {
    const make = this.#options.legacyProducer;
    if (make === undefined) throw new Error('the harness gives no legacyProducer');
    const producer = make();
    this.#producers.push(producer);
    await producer.declare();
    return producer;
  }

  /** Scales a time bound for slow brokers. */
  ms(base: number): number {
    return Math.round(base * (this.#options.slowness ?? 1));
  }

  async dispose(): Promise<void> {
    await Promise.allSettled(this.#buses.map((bus) => bus.close()));
    // After the buses: a consumer still running on a deleted Kafka topic would make the broker create it again.
    await Promise.allSettled(this.#producers.map((producer) => producer.close()));
    const { cleanup } = this.#options;
    if (cleanup) {
      for (const [channel, groups] of this.#channels) {
        await cleanup(channel, [...groups]).catch(() => undefined);
      }
    }
  }
}
