import { type CloudEvent, type ContractIssue, ContractViolationError, type EventValidator } from '@wharf/core';
import type { CompiledValidator, RuntimeContract, RuntimeMessage } from './contract.js';

/** Options of {@link contractValidator}. */
export interface ContractValidatorOptions {
  /**
   * What to do with an event on a channel the contract does not describe: `allow` (default: the
   * contract governs only its own channels) or `reject` (a `ContractViolationError`).
   */
  unknownChannels?: 'allow' | 'reject';
  /** Also check the CloudEvents attributes against the message's `headers` schema (default true). */
  headers?: boolean;
}

interface ChannelEntry {
  readonly pattern: RegExp | undefined;
  readonly address: string;
  /** CloudEvents type → message. */
  readonly byType: Map<string, RuntimeMessage>;
}

/**
 * An index of a contract by channel address and CloudEvents type, shared by the validator and the
 * typed bus. Several channels may share one address: their messages are merged.
 */
export class ContractIndex {
  readonly #exact = new Map<string, ChannelEntry>();
  readonly #patterns: ChannelEntry[] = [];

  constructor(readonly contract: RuntimeContract) {
    for (const channel of Object.values(contract.channels)) {
      const parameterised = channel.parameters.length > 0;
      const existing = parameterised
        ? this.#patterns.find((p) => p.address === channel.address)
        : this.#exact.get(channel.address);
      const entry: ChannelEntry = existing ?? {
        address: channel.address,
        pattern: parameterised ? addressPattern(channel.address) : undefined,
        byType: new Map(),
      };
      for (const id of channel.messages) {
        const message = contract.messages[id];
        if (message && !entry.byType.has(message.type)) entry.byType.set(message.type, message);
      }
      if (existing) continue;
      if (parameterised) this.#patterns.push(entry);
      else this.#exact.set(channel.address, entry);
    }
  }

  /** The messages a concrete channel name may carry, or undefined when the contract has no such channel. */
  channel(name: string): ChannelEntry | undefined {
    return this.#exact.get(name) ?? this.#patterns.find((p) => p.pattern?.test(name));
  }
}

function addressPattern(address: string): RegExp {
  const parts = address.split(/\{[^}]+\}/).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('[A-Za-z0-9_-]+')}$`);
}

/** Turns a failed validator's errors into contract issues (JSON pointer + message). */
export function validatorIssues(validator: CompiledValidator, prefix = ''): ContractIssue[] {
  const errors = validator.errors ?? [];
  if (errors.length === 0) return [{ path: prefix, message: 'does not match the schema' }];
  return errors.map((error) => {
    let path = error.instancePath;
    const missing = error.params?.missingProperty;
    if (error.keyword === 'required' && typeof missing === 'string') path = `${path}/${escapePointer(missing)}`;
    const extra = error.params?.additionalProperty;
    const detail = typeof extra === 'string' ? ` (${JSON.stringify(extra)})` : '';
    return { path: `${prefix}${path}`, message: `${error.message ?? error.keyword}${detail}` };
  });
}

function escapePointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * Checks one event against one message: the payload (`data`) and, when `headers` is set, the
 * CloudEvents attributes. Returns the issues, empty when valid.
 */
export function checkMessage(message: RuntimeMessage, event: CloudEvent, headers: boolean): ContractIssue[] {
  const issues: ContractIssue[] = [];
  let data = event.data;
  if (message.codec && data instanceof Uint8Array) {
    try {
      data = message.codec.decode(data);
    } catch (cause) {
      return [{ path: '', message: `the body is not ${message.codec.contentType}: ${(cause as Error).message}` }];
    }
  }
  if (message.payload && !message.payload(data)) issues.push(...validatorIssues(message.payload));
  if (headers && message.headers) {
    const { data: _data, ...attributes } = event;
    if (!message.headers(attributes)) issues.push(...validatorIssues(message.headers, 'headers:'));
  }
  return issues;
}

/**
 * The event with its payload in the JSON form: decoded when the message travels as Avro binary and
 * the body is bytes (a JSON body from a foreign producer passes as it is). Undecodable bytes are a
 * contract violation, so the event is dead-lettered as `invalid` and never reaches the handler.
 */
export function decodePayload(message: RuntimeMessage, event: CloudEvent, what: string): CloudEvent {
  if (!message.codec || !(event.data instanceof Uint8Array)) return event;
  try {
    return { ...event, data: message.codec.decode(event.data) };
  } catch (cause) {
    throw new ContractViolationError(what, [
      { path: '', message: `the body is not ${message.codec.contentType}: ${(cause as Error).message}` },
    ]);
  }
}

/**
 * An `EventValidator` (core's bus option `validator`) that checks every published and consumed
 * event against a generated contract: the CloudEvents `type` must be a message of the channel and
 * its `data` must match that message's payload schema. A publish that fails throws
 * `ContractViolationError` and nothing is sent; a consumed event that fails is dead-lettered by
 * core with reason `invalid`.
 *
 * @example
 * ```ts
 * import { contract } from './generated/index.js';
 * const bus = createBus({ url: 'memory://', validator: contractValidator(contract) });
 * ```
 */
export function contractValidator(contract: RuntimeContract, options: ContractValidatorOptions = {}): EventValidator {
  const index = new ContractIndex(contract);
  const headers = options.headers ?? true;
  const rejectUnknown = options.unknownChannels === 'reject';
  return {
    validate(direction, channel, event) {
      const entry = index.channel(channel);
      const what =
        direction === 'publish' ? `the event to publish on "${channel}"` : `an event received on "${channel}"`;
      if (!entry) {
        if (rejectUnknown) {
          throw new ContractViolationError(what, [
            { path: '', message: `channel "${channel}" is not in the contract` },
          ]);
        }
        return;
      }
      const message = entry.byType.get(event.type);
      if (!message) {
        const expected = [...entry.byType.keys()].join(', ');
        throw new ContractViolationError(`${what} (type "${event.type}")`, [
          { path: '', message: `type "${event.type}" is not a message of this channel (expected ${expected})` },
        ]);
      }
      const issues = checkMessage(message, event, headers);
      if (issues.length > 0) throw new ContractViolationError(`${what} (type "${event.type}")`, issues);
    },
  };
}
