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
  /** AsyncAPI 3.x `reply`: the operation is a request/reply operation. */
  readonly reply?: RuntimeReply;
}

/** The reply of a request/reply operation. */
export interface RuntimeReply {
  /** Channel id of the reply channel, when the document names one. */
  readonly channel?: string;
  /** Ids of the messages a reply may carry. */
  readonly messages: readonly string[];
  /** The reply channel's address when the document fixes one; absent when it is set at run time (`address: null`). */
  readonly address?: string;
  /**
   * Where the document says the requester puts the reply address (a runtime expression such as
   * `$message.header#/replyTo`). Wharf always carries it in the CloudEvents extension `replyto`.
   */
  readonly addressLocation?: string;
}

export interface RuntimeMessage {
  /** The CloudEvents `type`: the message `name`, else its id. */
  readonly type: string;
  readonly contentType?: string;
  readonly payload?: CompiledValidator;
  readonly headers?: CompiledValidator;
  /** Present when the payload travels as Avro binary: the validators check the JSON form, this encodes it. */
  readonly codec?: PayloadCodec;
}

/** The shape of the generated contract types (`Contract` in the generated `contract.ts`). */
export interface ContractTypes {
  channels: Record<string, { address: string; parameters: Record<string, string> }>;
  operations: Record<
    string,
    {
      action: 'send' | 'receive';
      channel: string;
      messages: string;
      reply?: { channel: string | undefined; messages: string };
    }
  >;
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

/**
 * How a message's payload travels when its content type is not JSON (Avro binary): the application
 * gives and gets the JSON form, which the validators check; the codec turns it into bytes and back.
 */
export interface PayloadCodec {
  /** The content type of the encoded payload (the message's `contentType`). */
  readonly contentType: string;
  /** JSON form to bytes; throws when the value does not fit the schema. */
  encode(data: unknown): Uint8Array;
  /** Bytes to the JSON form; throws when the bytes are not a value of the schema. */
  decode(body: Uint8Array): unknown;
}
