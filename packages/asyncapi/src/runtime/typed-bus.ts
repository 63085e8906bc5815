import {
  type Bus,
  type CloudEvent,
  ConfigError,
  type ContractIssue,
  ContractViolationError,
  type EventInput,
  type HandlerContext,
  type SubscribeOptions,
  type Subscription,
} from '@wharf/core';
import type { ContractTypes, RuntimeContract, RuntimeMessage, RuntimeOperation } from './contract.js';
import { checkMessage, decodePayload, validatorIssues } from './validator.js';

type Ops<C extends ContractTypes> = C['operations'];
type OpsOf<C extends ContractTypes, A extends 'send' | 'receive'> = {
  [K in keyof Ops<C>]: Ops<C>[K]['action'] extends A ? K : never;
}[keyof Ops<C>] &
  string;

/** Operation ids whose action is `send`. */
export type SendOperation<C extends ContractTypes> = OpsOf<C, 'send'>;
/** Operation ids whose action is `receive`. */
export type ReceiveOperation<C extends ContractTypes> = OpsOf<C, 'receive'>;

/** Ids of the messages an operation carries. */
export type OperationMessage<C extends ContractTypes, K extends keyof Ops<C>> = Ops<C>[K]['messages'] &
  keyof C['messages'];

/** The payload type of an operation (a union when it carries several messages). */
export type OperationPayload<C extends ContractTypes, K extends keyof Ops<C>> = C['messages'][OperationMessage<
  C,
  K
>]['payload'];

/** The CloudEvent a receive handler gets: a union discriminated by `type`. */
export type OperationEvent<C extends ContractTypes, K extends keyof Ops<C>> = {
  [M in OperationMessage<C, K>]: CloudEvent<C['messages'][M]['payload']> & { readonly type: C['messages'][M]['type'] };
}[OperationMessage<C, K>];

type ChannelParameters<C extends ContractTypes, K extends keyof Ops<C>> = C['channels'][Ops<C>[K]['channel'] &
  keyof C['channels']]['parameters'];

type ParameterOption<C extends ContractTypes, K extends keyof Ops<C>> = keyof ChannelParameters<C, K> extends never
  ? { parameters?: undefined }
  : { parameters: ChannelParameters<C, K> };

/** CloudEvents attributes a sender may set (everything but `type` and `data`). */
export type SendAttributes = Omit<EventInput, 'type' | 'data'>;

/** Options of {@link TypedBus.send}. */
export type SendOptions<C extends ContractTypes, K extends keyof Ops<C>> = SendAttributes & {
  /** Which message to send, for an operation with several; default: the only one. */
  message?: OperationMessage<C, K>;
} & ParameterOption<C, K>;

type OpsWithReply<C extends ContractTypes, A extends 'send' | 'receive'> = {
  [K in keyof Ops<C>]: Ops<C>[K] extends { action: A; reply: { messages: string } } ? K : never;
}[keyof Ops<C>] &
  string;

/** `send` operations with an AsyncAPI `reply`: what {@link TypedBus.request} takes. */
export type RequestOperation<C extends ContractTypes> = OpsWithReply<C, 'send'>;
/** `receive` operations with an AsyncAPI `reply`: their {@link TypedBus.on} handler returns the reply payload. */
export type RespondOperation<C extends ContractTypes> = OpsWithReply<C, 'receive'>;

/** Ids of the messages a reply of an operation may carry. */
export type ReplyMessage<C extends ContractTypes, K extends keyof Ops<C>> = Ops<C>[K] extends {
  reply: { messages: infer M };
}
  ? M & keyof C['messages']
  : never;

/** The payload type of an operation's reply (a union when the reply may carry several messages). */
export type ReplyPayload<C extends ContractTypes, K extends keyof Ops<C>> = C['messages'][ReplyMessage<
  C,
  K
>]['payload'];

/** The reply event {@link TypedBus.request} resolves with: discriminated by `type`, with `inreplyto`. */
export type ReplyEvent<C extends ContractTypes, K extends keyof Ops<C>> = {
  [M in ReplyMessage<C, K>]: CloudEvent<C['messages'][M]['payload']> & {
    readonly type: C['messages'][M]['type'];
    readonly inreplyto: string;
  };
}[ReplyMessage<C, K>];

/** Options of {@link TypedBus.request}: those of `send` plus the wait for the reply. */
export type TypedRequestOptions<C extends ContractTypes, K extends keyof Ops<C>> = SendOptions<C, K> & {
  /** Reject with `RequestTimeoutError` after this many ms without a reply (default 30 s). */
  timeoutMs?: number;
  /**
   * The channel the reply comes back on. Default: the reply channel's address in the contract when
   * it is a fixed one (no parameters) other than the request's, else `<request channel>.reply`.
   */
  replyTo?: string;
  /** Aborting it rejects the request with the signal's reason. */
  signal?: AbortSignal;
};

/** What an {@link TypedBus.on} handler returns: the reply payload for an operation with a reply. */
export type OnResult<C extends ContractTypes, K extends keyof Ops<C>> = Ops<C>[K] extends {
  reply: { messages: string };
}
  ? ReplyPayload<C, K> | Promise<ReplyPayload<C, K>>
  : unknown;

/** Options of {@link TypedBus.on}: core's subscribe options plus address parameters. */
export type OnOptions<C extends ContractTypes, K extends keyof Ops<C>> = SubscribeOptions & ParameterOption<C, K>;

type OptionsArg<O> = O extends { parameters: infer _P } ? [options: O] : [options?: O];

/** A bus typed by a generated contract. */
export interface TypedBus<C extends ContractTypes> {
  /** The bus it sends on and subscribes to. */
  readonly bus: Bus;
  readonly contract: RuntimeContract<C>;
  /**
   * Publishes a message of a `send` operation. The payload is checked against the contract first:
   * an invalid one throws `ContractViolationError` listing the failing paths, and nothing is sent.
   */
  send<K extends SendOperation<C>>(
    operation: K,
    payload: OperationPayload<C, K>,
    ...options: OptionsArg<SendOptions<C, K>>
  ): Promise<CloudEvent<OperationPayload<C, K>>>;
  /**
   * Sends a request on a `send` operation that has an AsyncAPI `reply` and resolves with the reply,
   * checked against the reply's messages (a reply that breaks the contract rejects with
   * `ContractViolationError`). The request is checked like `send`. Rejects with `RequestTimeoutError`
   * when no reply arrives within `timeoutMs` (see `Bus.request` for the semantics).
   *
   * @example
   * ```ts
   * const reply = await pricing.request('requestQuote', { sku: 'A-1' }, { timeoutMs: 5_000 });
   * reply.data.cents; // typed from the reply message
   * ```
   */
  request<K extends RequestOperation<C>>(
    operation: K,
    payload: OperationPayload<C, K>,
    ...options: OptionsArg<TypedRequestOptions<C, K>>
  ): Promise<ReplyEvent<C, K>>;
  /**
   * Subscribes a handler to a `receive` operation. An event whose type or payload breaks the
   * contract never reaches the handler: it is dead-lettered with reason `invalid`.
   * For an operation with an AsyncAPI `reply`, the handler returns the reply payload: it is checked
   * against the reply's messages (a bad one dead-letters the request as `invalid`) and sent to the
   * requester before the request is acked.
   */
  on<K extends ReceiveOperation<C>>(
    operation: K,
    options: OnOptions<C, K>,
    handler: (event: OperationEvent<C, K>, context: HandlerContext) => OnResult<C, K>,
  ): Promise<Subscription>;
  /** The concrete channel name of an operation (parameters filled in). */
  channelOf<K extends keyof Ops<C> & string>(operation: K, parameters?: Record<string, string>): string;
}

/** Options of {@link createTypedBus}. */
export interface TypedBusOptions {
  /** Check CloudEvents attributes against message `headers` schemas too (default true). */
  headers?: boolean;
}

/**
 * Wraps a bus with the operations of a generated contract:
 * `send('<send operation>', payload)` and `on('<receive operation>', { group }, handler)` are typed
 * from the contract, so a wrong payload, a receive operation used for sending or a misspelt
 * operation does not compile.
 *
 * @example
 * ```ts
 * import { contract } from './generated/index.js';
 * const orders = createTypedBus(createBus({ url: 'memory://' }), contract);
 * await orders.on('inventoryOnOrderPlaced', { group: 'inventory' }, async (event) => {
 *   event.data?.lines; // typed
 * });
 * await orders.send('placeOrder', { orderId: 'ord_1', ... });
 * ```
 */
export function createTypedBus<C extends ContractTypes>(
  bus: Bus,
  contract: RuntimeContract<C>,
  options: TypedBusOptions = {},
): TypedBus<C> {
  const headers = options.headers ?? true;

  const operationOf = (id: string, action: 'send' | 'receive'): RuntimeOperation => {
    const operation = contract.operations[id];
    if (!operation) {
      const known = Object.entries(contract.operations)
        .filter(([, op]) => op.action === action)
        .map(([name]) => name);
      throw new ConfigError('asyncapi', `unknown operation "${id}"; ${action} operations: ${known.join(', ')}`);
    }
    if (operation.action !== action) {
      throw new ConfigError(
        'asyncapi',
        `operation "${id}" is a ${operation.action} operation and cannot be used to ${action === 'send' ? 'send' : 'subscribe'}`,
      );
    }
    return operation;
  };

  const channelOf = (id: string, parameters?: Record<string, string>): string => {
    const operation = contract.operations[id];
    const channel = operation && contract.channels[operation.channel];
    if (!channel) throw new ConfigError('asyncapi', `unknown operation "${id}"`);
    return channel.address.replace(/\{([^}]+)\}/g, (_, name: string) => {
      const value = parameters?.[name];
      if (typeof value !== 'string' || value.length === 0) {
        throw new ConfigError('asyncapi', `operation "${id}" needs the channel parameter "${name}"`);
      }
      return value;
    });
  };

  const messagesOf = (ids: readonly string[]): RuntimeMessage[] =>
    ids.map((id) => contract.messages[id]).filter((m): m is RuntimeMessage => m !== undefined);

  /** The message an outgoing payload is: the chosen one, the only one, or the one whose schema it matches. */
  const pick = (
    id: string,
    ids: readonly string[],
    payload: unknown,
    what: string,
    chosen?: string,
  ): RuntimeMessage => {
    if (chosen !== undefined) {
      const message = ids.includes(chosen) ? contract.messages[chosen] : undefined;
      if (!message) {
        throw new ConfigError('asyncapi', `operation "${id}" has no message "${chosen}" (it has ${ids.join(', ')})`);
      }
      return message;
    }
    const candidates = messagesOf(ids);
    // Several messages: the one whose schema the payload matches, if exactly one does.
    const matching = candidates.length === 1 ? candidates : candidates.filter((m) => !m.payload || m.payload(payload));
    const message = matching[0];
    if (matching.length === 0 && candidates.length > 1) {
      // It fits none of them: a contract violation, with why for each message.
      const issues = candidates.flatMap((m) =>
        m.payload ? validatorIssues(m.payload).map((i) => ({ path: i.path, message: `${m.type}: ${i.message}` })) : [],
      );
      throw new ContractViolationError(`the payload of ${what} (it matches none of ${ids.join(', ')})`, issues);
    }
    if (matching.length !== 1 || !message) {
      throw new ConfigError(
        'asyncapi',
        candidates.length === 0
          ? `operation "${id}" has no message`
          : `operation "${id}" carries several messages (${ids.join(', ')}); pass { message } to choose one`,
      );
    }
    return message;
  };

  /** Checks an outgoing payload (and attributes) against its message and encodes it for the bus. */
  const outgoing = (
    message: RuntimeMessage,
    payload: unknown,
    attributes: SendAttributes,
    what: string,
  ): EventInput => {
    const input: EventInput = { ...attributes, type: message.type, data: payload };
    // Check with the attributes the bus will add, so header schemas see a complete event.
    const probe = {
      specversion: '1.0',
      id: input.id ?? 'pending',
      source: input.source ?? 'urn:wharf:pending',
      time: input.time ?? new Date().toISOString(),
      ...input.extensions,
      ...attributes,
      type: message.type,
      data: payload,
    } as unknown as CloudEvent;
    delete (probe as { extensions?: unknown }).extensions;
    const issues: ContractIssue[] = checkMessage(message, probe, headers);
    if (issues.length > 0) throw new ContractViolationError(`the ${message.type} payload of ${what}`, issues);
    if (!message.codec) return input;
    // Avro binary on the wire; the caller keeps the JSON form it gave.
    try {
      return { ...input, data: message.codec.encode(payload), datacontenttype: message.codec.contentType };
    } catch (cause) {
      throw new ContractViolationError(`the ${message.type} payload of ${what}`, [
        { path: '', message: (cause as Error).message },
      ]);
    }
  };

  /**
   * Checks an incoming event against the messages it may be and decodes its payload; `how` says
   * how it came (`received by operation "x"`), for the error.
   */
  const incoming = (byType: ReadonlyMap<string, RuntimeMessage>, event: CloudEvent, how: string): CloudEvent => {
    const message = byType.get(event.type);
    if (!message) {
      throw new ContractViolationError(`an event ${how}`, [
        {
          path: '',
          message: `type "${event.type}" is not a message of this operation (expected ${[...byType.keys()].join(', ')})`,
        },
      ]);
    }
    const what = `a ${event.type} event ${how}`;
    const decoded = decodePayload(message, event, what);
    const issues = checkMessage(message, decoded, headers);
    if (issues.length > 0) throw new ContractViolationError(what, issues);
    return decoded;
  };

  const typesOf = (ids: readonly string[]): Map<string, RuntimeMessage> =>
    new Map(messagesOf(ids).map((m) => [m.type, m]));

  /** Where a request's reply comes back: the reply channel's fixed address, else `<channel>.reply`. */
  const replyChannelOf = (operation: RuntimeOperation, requestChannel: string): string => {
    const address = operation.reply?.address;
    // The request's own channel would hand replies to the responders' groups as requests.
    if (address === undefined || /[{}]/.test(address) || address === requestChannel) return `${requestChannel}.reply`;
    return address;
  };

  return {
    bus,
    contract,
    channelOf,
    async send(id, payload, ...rest) {
      const operation = operationOf(id, 'send');
      const {
        message: chosen,
        parameters,
        ...attributes
      } = (rest[0] ?? {}) as SendAttributes & { message?: string; parameters?: Record<string, string> };
      const channel = channelOf(id, parameters);
      const message = pick(id, operation.messages, payload, `operation "${id}"`, chosen);
      const input = outgoing(message, payload, attributes, `operation "${id}"`);
      const published = await bus.publish(channel, input);
      return (message.codec ? { ...published, data: payload } : published) as CloudEvent<never>;
    },
    async request(id, payload, ...rest) {
      const operation = operationOf(id, 'send');
      const reply = operation.reply;
      if (!reply) {
        throw new ConfigError('asyncapi', `operation "${id}" has no reply in the contract; use send() for it`);
      }
      const {
        message: chosen,
        parameters,
        timeoutMs,
        replyTo,
        signal,
        ...attributes
      } = (rest[0] ?? {}) as SendAttributes & {
        message?: string;
        parameters?: Record<string, string>;
        timeoutMs?: number;
        replyTo?: string;
        signal?: AbortSignal;
      };
      const channel = channelOf(id, parameters);
      const message = pick(id, operation.messages, payload, `operation "${id}"`, chosen);
      const input = outgoing(message, payload, attributes, `operation "${id}"`);
      const answer = await bus.request(channel, input, {
        replyTo: replyTo ?? replyChannelOf(operation, channel),
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
        ...(signal === undefined ? {} : { signal }),
      });
      return incoming(typesOf(reply.messages), answer, `in reply to operation "${id}"`) as never;
    },
    async on(id, subscribeOptions, handler) {
      const operation = operationOf(id, 'receive');
      const { parameters, ...coreOptions } = subscribeOptions as SubscribeOptions & {
        parameters?: Record<string, string>;
      };
      const channel = channelOf(id, parameters);
      const byType = typesOf(operation.messages);
      const what = `operation "${id}"`;
      const reply = operation.reply;
      if (!reply) {
        return bus.subscribe(channel, coreOptions, (event, context) =>
          handler(incoming(byType, event, `received by ${what}`) as never, context),
        );
      }
      return bus.respond(channel, coreOptions, async (event, context) => {
        const payload = await handler(incoming(byType, event, `received by ${what}`) as never, context);
        const message = pick(id, reply.messages, payload, `the reply of ${what}`);
        return outgoing(message, payload, {}, `the reply of ${what}`);
      });
    },
  } as TypedBus<C>;
}
