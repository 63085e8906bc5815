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
import { checkMessage } from './validator.js';

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
   * Subscribes a handler to a `receive` operation. An event whose type or payload breaks the
   * contract never reaches the handler: it is dead-lettered with reason `invalid`.
   */
  on<K extends ReceiveOperation<C>>(
    operation: K,
    options: OnOptions<C, K>,
    handler: (event: OperationEvent<C, K>, context: HandlerContext) => unknown,
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

  const messagesOf = (operation: RuntimeOperation): RuntimeMessage[] =>
    operation.messages.map((id) => contract.messages[id]).filter((m): m is RuntimeMessage => m !== undefined);

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
      } = (rest[0] ?? {}) as SendAttributes & {
        message?: string;
        parameters?: Record<string, string>;
      };
      const channel = channelOf(id, parameters);
      const candidates = messagesOf(operation);
      let message: RuntimeMessage | undefined;
      if (chosen !== undefined) {
        message = operation.messages.includes(chosen) ? contract.messages[chosen] : undefined;
        if (!message) {
          throw new ConfigError(
            'asyncapi',
            `operation "${id}" has no message "${chosen}" (it has ${operation.messages.join(', ')})`,
          );
        }
      } else if (candidates.length === 1) {
        message = candidates[0];
      } else {
        // Several messages: the one whose schema the payload matches, if exactly one does.
        const matching = candidates.filter((m) => !m.payload || m.payload(payload));
        if (matching.length !== 1) {
          throw new ConfigError(
            'asyncapi',
            `operation "${id}" carries several messages (${operation.messages.join(', ')}); pass { message } to choose one`,
          );
        }
        message = matching[0];
      }
      if (!message) throw new ConfigError('asyncapi', `operation "${id}" has no message`);
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
      if (issues.length > 0) {
        throw new ContractViolationError(`the ${message.type} payload of operation "${id}"`, issues);
      }
      return bus.publish(channel, input) as Promise<CloudEvent<never>>;
    },
    async on(id, subscribeOptions, handler) {
      const operation = operationOf(id, 'receive');
      const { parameters, ...coreOptions } = subscribeOptions as SubscribeOptions & {
        parameters?: Record<string, string>;
      };
      const channel = channelOf(id, parameters);
      const byType = new Map(messagesOf(operation).map((m) => [m.type, m]));
      return bus.subscribe(channel, coreOptions, (event, context) => {
        const message = byType.get(event.type);
        if (!message) {
          throw new ContractViolationError(`an event received by operation "${id}"`, [
            {
              path: '',
              message: `type "${event.type}" is not a message of this operation (expected ${[...byType.keys()].join(', ')})`,
            },
          ]);
        }
        const issues = checkMessage(message, event, headers);
        if (issues.length > 0) {
          throw new ContractViolationError(`a ${event.type} event received by operation "${id}"`, issues);
        }
        return handler(event as never, context);
      });
    },
  } as TypedBus<C>;
}
