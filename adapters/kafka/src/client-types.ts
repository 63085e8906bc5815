/**
 * What the adapter needs from a Kafka client library. `client.ts` (kafkajs) and
 * `client-platformatic.ts` (@platformatic/kafka) implement it; nothing else imports either library.
 */
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from '@wharf/core';

/** Header values as they arrive: the wire allows repeated names, so a value may be a list. */
export type IncomingHeaders = Readonly<Record<string, Buffer | string | (Buffer | string)[] | undefined>>;

/** A record to produce. */
export interface OutgoingRecord {
  /** Set to choose the partition; otherwise the key's hash (murmur2, as the Java client) picks it. */
  readonly partition?: number;
  readonly key: string | Buffer | null;
  readonly value: Buffer | null;
  /** A list value is written as the same header repeated (what a foreign record may have had). */
  readonly headers: Readonly<Record<string, Buffer | string | (Buffer | string)[]>>;
}

/** A consumed record. Offsets are decimal strings (64-bit). */
export interface IncomingRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: IncomingHeaders;
  readonly timestamp: string;
}

export interface TopicSpec {
  readonly topic: string;
  readonly partitions: number;
  /** -1: the broker's default. */
  readonly replicationFactor: number;
  readonly configs: Readonly<Record<string, string>>;
}

/** A committed offset of a group; `offset` is "-1" when nothing is committed. */
export interface CommittedOffset {
  readonly partition: number;
  readonly offset: string;
  readonly metadata: string | null;
}

export interface PartitionEnd {
  readonly partition: number;
  /** First offset still stored. */
  readonly low: string;
  /** Offset the next record will get. */
  readonly high: string;
}

export interface OffsetCommit {
  readonly topic: string;
  readonly partition: number;
  /** The next offset to consume. */
  readonly offset: string;
  readonly metadata?: string | null;
}

export interface TopicPartitions {
  readonly topic: string;
  readonly partitions: readonly number[];
}

/** Partitions of a topic to pause or resume; without `partitions`, the whole topic. */
export interface PauseTarget {
  readonly topic: string;
  readonly partitions?: readonly number[];
}

export interface ClientAdmin {
  /** Creates the topics that do not exist yet; resolves once they have leaders. */
  createTopics(specs: readonly TopicSpec[]): Promise<void>;
  listTopics(): Promise<string[]>;
  /**
   * Waits (with backoff, up to `timeoutMs`) until every partition of each topic has a leader in the
   * broker's metadata; resolves with the topics that still have none at the deadline (empty: all ready).
   */
  awaitLeaders(topics: readonly string[], timeoutMs: number): Promise<string[]>;
  deleteTopics(topics: readonly string[]): Promise<void>;
  deleteGroups(groups: readonly string[]): Promise<void>;
  committed(groupId: string, topic: string): Promise<CommittedOffset[]>;
  ends(topic: string): Promise<PartitionEnd[]>;
  /** Members of a consumer group right now (0 for a group with none, or unknown to the broker). */
  members(groupId: string): Promise<number>;
  /** The topic's `max.message.bytes`, or undefined when it cannot be read. */
  maxMessageBytes(topic: string): Promise<number | undefined>;
  /** The named configs of a topic as the broker describes them (absent names left out). */
  topicConfigs(topic: string, names: readonly string[]): Promise<Record<string, string>>;
  disconnect(): Promise<void>;
}

export interface ClientProducer {
  /** Resolves once the broker acknowledged every record (acks as configured). */
  send(batch: readonly { topic: string; records: readonly OutgoingRecord[] }[]): Promise<void>;
  disconnect(): Promise<void>;
}

/** One fetched batch of one partition, handed to the consumer's handler. */
export interface FetchedBatch {
  readonly topic: string;
  readonly partition: number;
  readonly records: readonly IncomingRecord[];
  /** Sends a heartbeat if one is due; rejects when the group is rebalancing or the broker is gone. */
  heartbeat(): Promise<void>;
  /** Marks `offset` consumed locally: the next fetch starts after it (nothing is committed). */
  resolve(offset: string): void;
  /** False once the consumer stops or this partition was sought elsewhere. */
  isActive(): boolean;
}

export interface ConsumerSettings {
  readonly groupId: string;
  readonly sessionTimeoutMs: number;
  readonly rebalanceTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly maxWaitTimeMs: number;
  /** Partitions whose batches are handled at the same time. */
  readonly partitionsConcurrently: number;
}

export interface ClientConsumer {
  /** Subscribes, starts the fetch loop and calls `onBatch` per partition batch (never throws out of it). */
  run(topics: readonly string[], onBatch: (batch: FetchedBatch) => Promise<void>): Promise<void>;
  /** Called after every (re)join with this member's partitions. */
  onAssigned(listener: (assignment: readonly TopicPartitions[]) => void): void;
  /** Called when the client gave up and, if `restarting`, starts again by itself. */
  onCrash(listener: (error: Error, restarting: boolean) => void): void;
  pause(targets: readonly PauseTarget[]): void;
  resume(targets: readonly PauseTarget[]): void;
  seek(topic: string, partition: number, offset: string): void;
  /** Commits with this member's generation; rejects if the group moved on. */
  commit(offsets: readonly OffsetCommit[]): Promise<void>;
  /** Stops fetching, leaves the group and closes connections. */
  disconnect(): Promise<void>;
}

export interface ClientConfig {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly ssl?: boolean | ConnectionOptions;
  readonly sasl?: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string };
  readonly connectionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** Retries of one operation (connect, produce, commit) before it fails. */
  readonly retries: number;
  readonly maxRetryTimeMs: number;
  readonly logger: Logger;
}

export interface ProducerSettings {
  readonly idempotent: boolean;
  readonly acks: -1 | 1 | 0;
  readonly retries: number;
  readonly maxRetryTimeMs: number;
  readonly requestTimeoutMs: number;
}

/** A connected client factory. */
export interface KafkaClient {
  admin(): Promise<ClientAdmin>;
  producer(settings: ProducerSettings): Promise<ClientProducer>;
  consumer(settings: ConsumerSettings): ClientConsumer;
  /** The client library's own instance (kafkajs `Kafka`, or @platformatic/kafka's clients) for `Adapter.raw()`. */
  readonly native: unknown;
}

/** What went wrong, independent of the client library. */
export type ErrorKind =
  | 'unreachable'
  | 'auth'
  | 'too-large'
  | 'unknown-topic'
  | 'topic-exists'
  | 'rebalancing'
  | 'group-not-empty'
  /** A TLS check failed (certificate untrusted, for another host, expired; client certificate missing or refused). */
  | 'tls'
  /** The broker refused an operation to the authenticated user (an ACL). */
  | 'not-authorized'
  | 'other';
