/**
 * The runtime shape of a generated contract. `wharf codegen` emits one plain object of this shape
 * (`contract` in the generated `contract.ts`); the bus reads it, the AsyncAPI parser never runs at
 * runtime. The type parameter carries the generated TypeScript types for the typed bus.
 */

/** A precompiled (Ajv standalone) validator: returns true or sets `errors`. */
export interface CompiledValidator {
  (data: unknown): boolean;
  errors?: readonly ValidatorError[] | null;
}

/** The part of an Ajv error the bus reports. */
export interface ValidatorError {
  readonly instancePath: string;
  readonly keyword: string;
  readonly message?: string;
  readonly params?: Record<string, unknown>;
}

export interface RuntimeChannel {
  /** The Wharf channel name, possibly with `{parameter}` placeholders. */
  readonly address: string;
  /** Names of the address parameters, in the order they appear. */
  readonly parameters: readonly string[];
  /** Ids of the messages the channel carries. */
  readonly messages: readonly string[];
}

export interface RuntimeOperation {
  readonly action: 'send' | 'receive';
  /** Channel id. */
  readonly channel: string;
  /** Ids of the messages this operation sends or receives. */
  readonly messages: readonly string[];
}

export interface RuntimeMessage {
  /** The CloudEvents `type`: the message `name`, else its id. */
  readonly type: string;
  readonly contentType?: string;
  readonly payload?: CompiledValidator;
  readonly headers?: CompiledValidator;
}

/** The shape of the generated contract types (`Contract` in the generated `contract.ts`). */
export interface ContractTypes {
  channels: Record<string, { address: string; parameters: Record<string, string> }>;
  operations: Record<string, { action: 'send' | 'receive'; channel: string; messages: string }>;
  messages: Record<string, { type: string; payload: unknown; headers: unknown }>;
}

/** A generated contract: plain data plus precompiled validators. */
export interface RuntimeContract<C extends ContractTypes = ContractTypes> {
  readonly title: string;
  readonly version: string;
  /** Source document, relative to the generated directory, and the sha256 of the sources. */
  readonly source: string;
  readonly sha256: string;
  readonly channels: Readonly<Record<string, RuntimeChannel>>;
  readonly operations: Readonly<Record<string, RuntimeOperation>>;
  readonly messages: Readonly<Record<string, RuntimeMessage>>;
  /** Phantom member carrying the generated types; never set at runtime. */
  readonly __types?: C;
}
