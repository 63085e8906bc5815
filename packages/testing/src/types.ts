import type { ContractTypes } from '@wharf/asyncapi';
import type { CloudEvent, DeadLetterInfo, DeadLetterReason, SettleOutcome } from '@wharf/core';

/*
 * Types that let a test bus speak the generated contract's channel addresses: `published('orders.placed')`
 * is a list of OrderPlaced events. Without a contract every channel is a string and every event a
 * CloudEvent of unknown data.
 */

type Channels<C extends ContractTypes> = C['channels'];
type Operations<C extends ContractTypes> = C['operations'];

/** A channel address of the contract (any string without a contract). */
export type ChannelName<C extends ContractTypes> = string extends keyof Channels<C>
  ? string
  : Channels<C>[keyof Channels<C>]['address'];

type ChannelIdOf<C extends ContractTypes, A extends string> = {
  [K in keyof Channels<C>]: Channels<C>[K]['address'] extends A ? K : never;
}[keyof Channels<C>];

type MessagesOn<C extends ContractTypes, A extends string> = {
  [K in keyof Operations<C>]: Operations<C>[K]['channel'] extends ChannelIdOf<C, A>
    ? Operations<C>[K]['messages']
    : never;
}[keyof Operations<C>] &
  keyof C['messages'];

/** The events a channel carries: a union discriminated by `type` (a plain CloudEvent without a contract). */
export type ChannelEvent<C extends ContractTypes, A extends string> = string extends keyof Channels<C>
  ? CloudEvent
  : {
      [M in MessagesOn<C, A>]: CloudEvent<C['messages'][M]['payload']> & { readonly type: C['messages'][M]['type'] };
    }[MessagesOn<C, A>];

/** How the bus settled one delivery to a group, as the test bus recorded it. */
export interface SettlementRecord<E extends CloudEvent = CloudEvent> {
  readonly outcome: SettleOutcome;
  /** 1-based delivery attempt. */
  readonly attempt: number;
  /** Undefined for an undecodable message. */
  readonly event: E | undefined;
  /** What the handler threw, for `retried` and `dead-lettered`. */
  readonly error: unknown;
  readonly reason: DeadLetterReason | undefined;
  /** The delay the retry policy asked for, for `retried` (before any `timeScale`). */
  readonly retryInMs: number | undefined;
}

/** A dead letter read back from the broker. */
export interface TestDeadLetter<E extends CloudEvent = CloudEvent> {
  readonly event: E | undefined;
  readonly info: DeadLetterInfo | undefined;
  readonly decodeError: string | undefined;
}
