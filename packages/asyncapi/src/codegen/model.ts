import type { Diagnostic } from '../errors.js';
import { AVRO_BINARY_CONTENT_TYPE, AVRO_FORMAT } from './avro.js';
import { child, type Loc, locKey, unescapeToken, type Workspace } from './load.js';

/** A message of the document, normalised across AsyncAPI 2.x and 3.x. */
export interface MessageModel {
  /** Unique id: the components key, else the channel key (3.x) / `messageId` (2.x). */
  readonly id: string;
  /** The CloudEvents `type`: the message `name`, else its id. */
  readonly type: string;
  readonly loc: Loc;
  /** Where the payload schema is written (possibly a `$ref`), when there is one. */
  readonly payload: Loc | undefined;
  /** The language of the payload schema: JSON Schema (AsyncAPI's dialect included) or Avro. */
  readonly payloadFormat: 'schema' | 'avro';
  /** The payload travels as Avro binary (content type `application/avro` or `avro/binary`). */
  readonly avroBinary: boolean;
  readonly headers: Loc | undefined;
  readonly contentType: string | undefined;
  readonly description: string | undefined;
  readonly examples: readonly ExampleModel[];
}

export interface ExampleModel {
  readonly label: string;
  readonly payload?: unknown;
  readonly headers?: unknown;
  readonly hasPayload: boolean;
  readonly hasHeaders: boolean;
}

export interface ChannelModel {
  readonly id: string;
  readonly address: string;
  readonly description: string | undefined;
  readonly parameters: readonly { name: string; values: readonly string[] | undefined; description?: string }[];
  readonly messages: string[];
}

export interface OperationModel {
  readonly id: string;
  readonly action: 'send' | 'receive';
  readonly channel: string;
  readonly messages: readonly string[];
  readonly description: string | undefined;
  /** AsyncAPI 3.x `reply`: the operation is a request, answered on this channel with these messages. */
  readonly reply: ReplyModel | undefined;
}

/** An operation's `reply` (AsyncAPI 3.x Operation Reply Object). */
export interface ReplyModel {
  /** Channel id of the reply channel, when the reply names one. */
  readonly channel: string | undefined;
  /** Ids of the messages a reply may carry (the reply channel's messages when it lists none). */
  readonly messages: readonly string[];
  /** The reply channel's `address` when the document fixes one (not `null`, which means "set at run time"). */
  readonly address: string | undefined;
  /** `address.location`: the runtime expression where the requester puts the reply address, e.g. `$message.header#/replyTo`. */
  readonly addressLocation: string | undefined;
}

export interface DocumentModel {
  readonly asyncapi: string;
  readonly title: string;
  readonly version: string;
  readonly channels: readonly ChannelModel[];
  readonly operations: readonly OperationModel[];
  readonly messages: readonly MessageModel[];
  /** Component schemas of the root document, in document order. */
  readonly componentSchemas: readonly { name: string; loc: Loc }[];
  readonly diagnostics: readonly Diagnostic[];
}

const SUPPORTED_FORMAT = /^application\/(vnd\.aai\.asyncapi(\+json|\+yaml)?|schema\+json|schema\+yaml)(\s*;.*)?$/i;

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Makes ids unique in first-come order: `id`, `id2`, `id3`… */
class Ids {
  readonly #taken = new Set<string>();
  take(wanted: string): string {
    let id = wanted;
    for (let n = 2; this.#taken.has(id); n++) id = `${wanted}${n}`;
    this.#taken.add(id);
    return id;
  }
}

function pascal(text: string): string {
  return text
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((part) => part[0]?.toUpperCase() + part.slice(1))
    .join('');
}

/** Builds the normalised model of a loaded document (2.x or 3.x). */
export function buildModel(ws: Workspace): DocumentModel {
  const root = ws.rootJson() as Record<string, unknown>;
  const rootLoc: Loc = { file: ws.root, pointer: '' };
  const asyncapi = String(root.asyncapi);
  const info = isRecord(root.info) ? root.info : {};
  const diagnostics: Diagnostic[] = [];
  const messages = new Map<string, MessageModel>();
  const messageIds = new Ids();

  const report = (loc: Loc, code: string, message: string): void => {
    diagnostics.push({
      file: ws.display(loc.file),
      ...ws.position(loc),
      pointer: loc.pointer,
      severity: 'error',
      code,
      message,
    });
  };

  const traitsOf = (msg: Loc, value: Record<string, unknown>): { loc: Loc; value: Record<string, unknown> }[] => {
    if (!Array.isArray(value.traits)) return [];
    return value.traits.flatMap((_, i) => {
      const trait = ws.resolve(child(msg, 'traits', i));
      // 2.x allows [trait, params] pairs; the first element is the trait.
      if (Array.isArray(trait.value)) {
        const first = ws.resolve(child(trait.loc, 0));
        return isRecord(first.value) ? [{ loc: first.loc, value: first.value }] : [];
      }
      return isRecord(trait.value) ? [{ loc: trait.loc, value: trait.value }] : [];
    });
  };

  /** Registers the message defined at `ref` (a location that may be a `$ref`). */
  const addMessage = (ref: Loc, fallbackId: string): string | undefined => {
    const { loc, value } = ws.resolve(ref);
    if (!isRecord(value)) return undefined;
    const existing = messages.get(locKey(loc));
    if (existing) return existing.id;
    const v3 = !asyncapi.startsWith('2.');
    const traits = traitsOf(loc, value);
    // 3.x: the message wins over its traits; 2.x: traits are merged over the message.
    const field = (name: string): Loc | undefined => {
      const fromTraits = [...traits].reverse().find((t) => t.value[name] !== undefined);
      const own = value[name] !== undefined ? child(loc, name) : undefined;
      const trait = fromTraits ? child(fromTraits.loc, name) : undefined;
      return v3 ? (own ?? trait) : (trait ?? own);
    };
    const fieldValue = (name: string): unknown => {
      const at = field(name);
      return at ? ws.resolve(at).value : undefined;
    };
    const componentKey = /^\/components\/messages\/([^/]+)$/.exec(loc.pointer)?.[1];
    const wanted =
      (v3 ? undefined : str(value.messageId)) ??
      (componentKey ? unescapeToken(componentKey) : undefined) ??
      str(value.name) ??
      fallbackId;
    const id = messageIds.take(wanted);
    let payload = field('payload');
    let schemaFormat = str(fieldValue('schemaFormat'));
    if (payload) {
      const resolved = ws.resolve(payload).value;
      // 3.x Multi Format Schema Object: { schemaFormat, schema }.
      if (v3 && isRecord(resolved) && typeof resolved.schemaFormat === 'string' && 'schema' in resolved) {
        schemaFormat = resolved.schemaFormat;
        payload = child(ws.resolve(payload).loc, 'schema');
      }
    }
    const payloadFormat = schemaFormat !== undefined && AVRO_FORMAT.test(schemaFormat) ? 'avro' : 'schema';
    if (schemaFormat !== undefined && payloadFormat === 'schema' && !SUPPORTED_FORMAT.test(schemaFormat)) {
      report(
        payload ?? loc,
        'unsupported-schema-format',
        `message "${id}" uses schema format "${schemaFormat}"; wharf codegen supports AsyncAPI, JSON Schema and Avro payloads only (Protobuf, RAML and OpenAPI schemas are not supported) — convert the payload to a JSON Schema`,
      );
      payload = undefined;
    }
    const contentType = str(fieldValue('contentType')) ?? str(root.defaultContentType);
    const avroBinary = contentType !== undefined && AVRO_BINARY_CONTENT_TYPE.test(contentType);
    if (avroBinary && payloadFormat !== 'avro') {
      report(
        field('contentType') ?? loc,
        'unsupported-content-type',
        `message "${id}" has content type "${contentType}" (Avro binary) but its payload is not an Avro schema — give it schemaFormat application/vnd.apache.avro;version=1.9.0 or a JSON content type`,
      );
    }
    const examplesValue = fieldValue('examples');
    const examples: ExampleModel[] = Array.isArray(examplesValue)
      ? examplesValue.map((ex, i) => {
          const e = isRecord(ex) ? ex : {};
          return {
            label: str(e.name) ?? str(e.summary) ?? `#${i}`,
            payload: e.payload,
            headers: e.headers,
            hasPayload: 'payload' in e,
            hasHeaders: 'headers' in e,
          };
        })
      : [];
    const model: MessageModel = {
      id,
      type: str(value.name) ?? id,
      loc,
      payload,
      payloadFormat,
      avroBinary: avroBinary && payloadFormat === 'avro',
      headers: field('headers'),
      contentType,
      description: str(value.description) ?? str(value.summary) ?? str(value.title),
      examples,
    };
    messages.set(locKey(loc), model);
    return id;
  };

  const channels: ChannelModel[] = [];
  const operations: OperationModel[] = [];
  const channelIds = new Ids();
  const operationIds = new Ids();
  const channelsLoc = child(rootLoc, 'channels');
  const rawChannels = isRecord(root.channels) ? root.channels : {};

  const parametersOf = (
    loc: Loc,
    value: Record<string, unknown>,
    address: string,
    v3: boolean,
  ): ChannelModel['parameters'] => {
    const names = [...address.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string);
    const declared = isRecord(value.parameters) ? value.parameters : {};
    return names.map((name) => {
      const param = declared[name] !== undefined ? ws.resolve(child(loc, 'parameters', name)) : undefined;
      const p = isRecord(param?.value) ? param.value : {};
      let values: string[] | undefined;
      if (v3 && Array.isArray(p.enum)) values = p.enum.map(String);
      if (!v3 && param && isRecord(p.schema)) {
        const schema = ws.resolve(child(param.loc, 'schema')).value;
        if (isRecord(schema) && Array.isArray(schema.enum)) values = schema.enum.map(String);
      }
      const description = str(p.description);
      return description === undefined ? { name, values } : { name, values, description };
    });
  };

  if (!asyncapi.startsWith('2.')) {
    const byLoc = new Map<string, ChannelModel>();
    for (const key of Object.keys(rawChannels)) {
      const { loc, value } = ws.resolve(child(channelsLoc, key));
      if (!isRecord(value)) continue;
      const address = str(value.address) ?? key;
      const channel: ChannelModel = {
        id: channelIds.take(key),
        address,
        description: str(value.description) ?? str(value.summary) ?? str(value.title),
        parameters: parametersOf(loc, value, address, true),
        messages: [],
      };
      if (isRecord(value.messages)) {
        for (const mkey of Object.keys(value.messages)) {
          const id = addMessage(child(loc, 'messages', mkey), mkey);
          if (id && !channel.messages.includes(id)) channel.messages.push(id);
        }
      }
      byLoc.set(locKey(loc), channel);
      channels.push(channel);
    }
    /** An operation's `reply` (possibly a `$ref` to components/replies), its channel and messages. */
    const replyOf = (at: Loc, key: string): ReplyModel | undefined => {
      const { loc, value } = ws.resolve(at);
      if (!isRecord(value)) return undefined;
      const target = value.channel === undefined ? undefined : ws.resolve(child(loc, 'channel'));
      const channel = target === undefined ? undefined : byLoc.get(locKey(target.loc));
      const fixed = isRecord(target?.value) ? str(target.value.address) : undefined;
      if (value.channel !== undefined && !channel) {
        report(loc, 'reply-channel', `the reply of operation "${key}" names no channel of this document`);
      }
      const messages = Array.isArray(value.messages)
        ? value.messages.flatMap((_, i) => addMessage(child(loc, 'messages', i), `${key}Reply${i}`) ?? [])
        : (channel?.messages ?? []);
      let addressLocation: string | undefined;
      if (value.address !== undefined) {
        const address = ws.resolve(child(loc, 'address')).value;
        if (isRecord(address)) addressLocation = str(address.location);
      }
      return { channel: channel?.id, messages, address: fixed, addressLocation };
    };
    const rawOps = isRecord(root.operations) ? root.operations : {};
    for (const key of Object.keys(rawOps)) {
      const { loc, value } = ws.resolve(child(rootLoc, 'operations', key));
      if (!isRecord(value)) continue;
      const channel =
        value.channel === undefined ? undefined : byLoc.get(locKey(ws.resolve(child(loc, 'channel')).loc));
      if (!channel) {
        report(loc, 'operation-channel', `operation "${key}" has no channel of this document`);
        continue;
      }
      const ids = Array.isArray(value.messages)
        ? value.messages.flatMap((_, i) => addMessage(child(loc, 'messages', i), `${key}Message${i}`) ?? [])
        : channel.messages;
      operations.push({
        id: operationIds.take(key),
        action: value.action === 'send' ? 'send' : 'receive',
        channel: channel.id,
        messages: ids,
        description: str(value.summary) ?? str(value.description) ?? str(value.title),
        reply: value.reply === undefined ? undefined : replyOf(child(loc, 'reply'), key),
      });
    }
  } else {
    for (const address of Object.keys(rawChannels)) {
      const { loc, value } = ws.resolve(child(channelsLoc, address));
      if (!isRecord(value)) continue;
      const channel: ChannelModel = {
        id: channelIds.take(address),
        address,
        description: str(value.description),
        parameters: parametersOf(loc, value, address, false),
        messages: [],
      };
      channels.push(channel);
      // 2.x: `publish` = others publish, this application receives; `subscribe` = it sends.
      for (const verb of ['publish', 'subscribe'] as const) {
        if (value[verb] === undefined) continue;
        const op = ws.resolve(child(loc, verb));
        if (!isRecord(op.value)) continue;
        const action = verb === 'publish' ? 'receive' : 'send';
        const id = operationIds.take(str(op.value.operationId) ?? `${action}${pascal(address)}`);
        const ids: string[] = [];
        if (op.value.message !== undefined) {
          const msg = ws.resolve(child(op.loc, 'message'));
          if (isRecord(msg.value) && Array.isArray(msg.value.oneOf)) {
            msg.value.oneOf.forEach((_, i) => {
              const mid = addMessage(child(msg.loc, 'oneOf', i), `${id}Message${i + 1}`);
              if (mid) ids.push(mid);
            });
          } else {
            const mid = addMessage(child(op.loc, 'message'), `${id}Message`);
            if (mid) ids.push(mid);
          }
        }
        for (const mid of ids) if (!channel.messages.includes(mid)) channel.messages.push(mid);
        operations.push({
          id,
          action,
          channel: channel.id,
          messages: ids,
          description: str(op.value.summary) ?? str(op.value.description),
          reply: undefined,
        });
      }
    }
    // Messages only in components are part of the contract too.
  }
  const components = isRecord(root.components) ? root.components : {};
  if (isRecord(components.messages)) {
    for (const key of Object.keys(components.messages)) addMessage(child(rootLoc, 'components', 'messages', key), key);
  }
  const componentSchemas = isRecord(components.schemas)
    ? Object.keys(components.schemas).map((name) => ({ name, loc: child(rootLoc, 'components', 'schemas', name) }))
    : [];

  return {
    asyncapi,
    title: str(info.title) ?? 'AsyncAPI document',
    version: str(info.version) ?? '0.0.0',
    channels,
    operations,
    messages: [...messages.values()],
    componentSchemas,
    diagnostics,
  };
}
