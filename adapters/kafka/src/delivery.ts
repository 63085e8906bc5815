/**
 * One record on its way through the handler (`Item`, the core's `Delivery` for it), the slots that
 * bound how many are unsettled, and what a batch's settled records commit.
 */
import {
  ATTEMPT_HEADER,
  type DeadLetterInfo,
  type Decoded,
  type Delivery,
  FIRST_FAILURE_HEADER,
  type RetryInstruction,
  readAttempt,
} from '@wharf/core';
import type { IncomingRecord } from './client.js';
import { decode, headerText } from './codec.js';

export type ItemState = 'queued' | 'running' | 'done' | 'released' | 'skipped';

/** Where a settled record is written when it is not simply acknowledged. */
export interface RecordWriter {
  retry(record: IncomingRecord, instruction: RetryInstruction): Promise<void>;
  deadLetter(record: IncomingRecord, info: DeadLetterInfo): Promise<void>;
}

/** What ack and release return: they settle at once, so one resolved promise serves them all. */
const SETTLED: Promise<void> = Promise.resolve();

const UNREAD: Decoded = { ok: false, error: new Error('[wharf] [kafka] the record was not read yet') };

/**
 * One record of a batch on its way through the handler, and the core's handle to settle it: one
 * object per record with its methods on the prototype, not a set of closures per delivery.
 */
export class Item implements Delivery {
  state: ItemState = 'queued';
  decoded: Decoded = UNREAD;
  attempt = 1;
  firstFailureAt: string | undefined;

  constructor(
    readonly record: IncomingRecord,
    readonly writer: RecordWriter,
    /** How the record becomes an event: a CloudEvent binding, or a plain message wrapped (raw mode). */
    readonly decoder: (record: IncomingRecord) => Decoded = decode,
  ) {}

  /** The record's offset, a decimal string (parsed only where a commit needs the number). */
  get offset(): string {
    return this.record.offset;
  }

  /** Reads the record as it is handed over; `extraAttempts` counts deliveries a crashed consumer made. */
  open(extraAttempts: number): this {
    const { record } = this;
    this.state = 'running';
    this.decoded = this.decoder(record);
    this.attempt = attemptOf(record, extraAttempts);
    this.firstFailureAt = safeHeader(record, FIRST_FAILURE_HEADER);
    return this;
  }

  ack(): Promise<void> {
    const refused = this.#refused('ack');
    if (refused) return refused;
    this.state = 'done';
    return SETTLED;
  }

  async retry(instruction: RetryInstruction): Promise<void> {
    const refused = this.#refused('retry');
    if (refused) return refused;
    await this.writer.retry(this.record, instruction);
    this.state = 'done';
  }

  async deadLetter(info: DeadLetterInfo): Promise<void> {
    const refused = this.#refused('dead-letter');
    if (refused) return refused;
    await this.writer.deadLetter(this.record, info);
    this.state = 'done';
  }

  release(): Promise<void> {
    const refused = this.#refused('release');
    if (refused) return refused;
    this.state = 'released';
    return SETTLED;
  }

  /** A rejection when this delivery is settled already (the core settles each once). */
  #refused(what: string): Promise<never> | undefined {
    if (this.state === 'running') return undefined;
    return Promise.reject(
      new Error(`[wharf] [kafka] cannot ${what}: this delivery was already settled (${this.state})`),
    );
  }
}

/** A counting semaphore whose waiters can be cancelled (on stop). */
export class Slots {
  #free: number;
  readonly #waiters: ((ok: boolean) => void)[] = [];
  constructor(size: number) {
    this.#free = size;
  }
  /** Takes a slot if one is free (no promise, no microtask hop on the hot path). */
  tryAcquire(): boolean {
    if (this.#free === 0) return false;
    this.#free--;
    return true;
  }
  acquire(): Promise<boolean> {
    if (this.tryAcquire()) return Promise.resolve(true);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  release(): void {
    const next = this.#waiters.shift();
    if (next) next(true);
    else this.#free++;
  }
  cancel(): void {
    for (const waiter of this.#waiters.splice(0)) waiter(false);
  }
}

/** The offset after the leading run of settled records, or undefined when the first is not settled. */
export function commitTarget(items: readonly Item[]): bigint | undefined {
  let settled = 0;
  while (settled < items.length && (items[settled] as Item).state === 'done') settled++;
  return settled === 0 ? undefined : BigInt((items[settled - 1] as Item).offset) + 1n;
}

/**
 * The attempt a delivery of `record` is: its attempt header (written with a retry) plus deliveries a
 * crashed consumer made. Read the same way for the first record of a partition (crash-loop check)
 * and for the delivery itself.
 */
export function attemptOf(record: IncomingRecord, extraAttempts: number): number {
  return readAttempt(safeHeader(record, ATTEMPT_HEADER)) + extraAttempts;
}

/** A bookkeeping header, or undefined when it is absent or malformed (a foreign record's, say). */
export function safeHeader(record: IncomingRecord, name: string): string | undefined {
  try {
    return headerText(record.headers, name);
  } catch {
    return undefined;
  }
}
