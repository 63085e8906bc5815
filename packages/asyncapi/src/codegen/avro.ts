import type avro from 'avsc';
import type { Diagnostic } from '../errors.js';
import { type AvroSchema, parseAvro } from '../runtime/avro.js';
import { child, type Loc, locKey, type Workspace } from './load.js';
import { docComment, propertyKey, type TypeEmitter } from './typescript.js';

/** `schemaFormat`s of Avro payloads (AsyncAPI's registry: avro, avro+json, avro+yaml, any version). */
export const AVRO_FORMAT = /^application\/vnd\.apache\.avro(\+json|\+yaml)?(\s*;.*)?$/i;

/** Content types that put the Avro binary encoding on the wire (anything else carries the JSON form). */
export const AVRO_BINARY_CONTENT_TYPE =
  /^(application\/avro|avro\/binary|application\/vnd\.apache\.avro\+binary)(\s*;.*)?$/i;

const INT_MIN = -2147483648;
const INT_MAX = 2147483647;
const LATIN1 = '^[\\u0000-\\u00ff]*$';

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

type Report = (loc: Loc, code: string, message: string) => void;

/**
 * The Avro schema written at `loc`, with every `$ref` replaced by what it points to (a `.avsc` file
 * next to the document, or a part of it), as @asyncapi/parser dereferences before its Avro parser
 * runs. A named type met a second time through the same reference becomes a reference by name,
 * since Avro allows one definition per name.
 */
export function inlineAvro(ws: Workspace, loc: Loc, report: Report): AvroSchema | undefined {
  const defined = new Set<string>();
  const stack: string[] = [];
  const visit = (at: Loc): unknown => {
    const { loc: target, value } = ws.resolve(at);
    const key = locKey(target);
    if (stack.includes(key)) {
      report(at, 'avro-schema', 'this $ref makes the Avro schema contain itself; refer to the named type by its name');
      return 'null';
    }
    if (Array.isArray(value)) {
      stack.push(key);
      const out = value.map((_, i) => visit(child(target, i)));
      stack.pop();
      return out;
    }
    if (!isRecord(value)) return value;
    const named = ['record', 'error', 'enum', 'fixed'].includes(String(value.type)) && typeof value.name === 'string';
    if (named && defined.has(key)) {
      const name = value.name as string;
      return typeof value.namespace === 'string' && !name.includes('.') ? `${value.namespace}.${name}` : name;
    }
    if (named) defined.add(key);
    stack.push(key);
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value)) {
      // `default` and `symbols` are data; every other member may hold a schema or a $ref.
      out[k] = k === 'default' || k === 'symbols' ? value[k] : visit(child(target, k));
    }
    stack.pop();
    return out;
  };
  const schema = visit(loc);
  return typeof schema === 'string' || Array.isArray(schema) || isRecord(schema) ? (schema as AvroSchema) : undefined;
}

/**
 * Parses an Avro payload schema with avsc; a schema avsc refuses is an error at its file and line.
 * For a message whose content type is Avro binary, also parses it the way the codec will (unions
 * unwrapped) so an ambiguous union is refused at codegen, not at the first send.
 */
export function checkAvro(
  ws: Workspace,
  loc: Loc,
  schema: AvroSchema,
  binary: boolean,
  messageId: string,
): { type: avro.Type | undefined; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const fail = (message: string): void => {
    // avsc names the culprit ("undefined type name: strnig"); point at it when it is written once.
    const culprit = /(?:undefined type name|unknown type): (\S+)/.exec(message)?.[1];
    const at = (culprit !== undefined ? findString(ws, loc, culprit) : undefined) ?? loc;
    diagnostics.push({
      file: ws.display(at.file),
      ...ws.position(at),
      pointer: at.pointer,
      severity: 'error',
      code: 'avro-schema',
      message,
    });
  };
  let type: avro.Type | undefined;
  try {
    type = parseAvro(schema, 'auto');
  } catch (error) {
    fail(`the Avro payload schema of message "${messageId}" is invalid: ${(error as Error).message}`);
    return { type: undefined, diagnostics };
  }
  if (binary) {
    try {
      parseAvro(schema, 'never');
    } catch (error) {
      fail(
        `message "${messageId}" is sent as Avro binary, but its schema has a union that cannot be told apart without a wrapper (${(error as Error).message}); give each record of the union a distinguishing shape or send the JSON form`,
      );
    }
  }
  return { type, diagnostics };
}

/** Where a string value is written in the schema at `loc` (following `$ref`s), if anywhere. */
function findString(ws: Workspace, loc: Loc, text: string, depth = 0): Loc | undefined {
  if (depth > 64) return undefined;
  const { loc: at, value } = ws.resolve(loc);
  if (value === text) return at;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findString(ws, child(at, i), text, depth + 1);
      if (found) return found;
    }
  } else if (isRecord(value)) {
    for (const key of Object.keys(value)) {
      if (key === 'doc' || key === 'default' || key === 'symbols') continue;
      const found = findString(ws, child(at, key), text, depth + 1);
      if (found) return found;
    }
  }
  return undefined;
}

function nullable(type: avro.Type): boolean {
  return (type as { types?: avro.Type[] }).types?.some((t) => t.typeName === 'null') ?? false;
}

function logicalName(type: avro.Type): string | undefined {
  return type.typeName.startsWith('logical:') ? type.typeName.slice('logical:'.length) : undefined;
}

function underlying(type: avro.Type): avro.Type {
  return (type as avro.types.LogicalType).underlyingType ?? type;
}

function decimalPattern(type: avro.Type): string {
  const { precision, scale } = type as unknown as { precision: number; scale: number };
  const whole = Math.max(precision - scale, 1);
  return scale === 0 ? `^-?\\d{1,${whole}}$` : `^-?\\d{1,${whole}}(\\.\\d{1,${scale}})?$`;
}

/**
 * The JSON Schema of an Avro schema's JSON form, for Ajv: records are closed objects whose nullable
 * fields may be absent, unions are `anyOf` of their branches (unwrapped), bytes and fixed are strings
 * of code points 0-255, decimals decimal strings; named types live in `$defs` by full name.
 */
export function avroJsonSchema(root: avro.Type): Record<string, unknown> {
  const defs: Record<string, unknown> = {};
  const convert = (type: avro.Type): Record<string, unknown> => {
    const logical = logicalName(type);
    if (logical === 'decimal') return { type: 'string', pattern: decimalPattern(type) };
    if (logical === 'uuid') return { type: 'string', format: 'uuid' };
    if (logical === 'date') return { type: 'integer', minimum: INT_MIN, maximum: INT_MAX };
    if (logical === 'time-millis') return { type: 'integer', minimum: 0, maximum: 86_399_999 };
    if (logical !== undefined) return convert(underlying(type));
    switch (type.typeName) {
      case 'null':
        return { type: 'null' };
      case 'boolean':
        return { type: 'boolean' };
      case 'int':
        return { type: 'integer', minimum: INT_MIN, maximum: INT_MAX };
      case 'long':
        return { type: 'integer', minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER };
      case 'float':
      case 'double':
        return { type: 'number' };
      case 'bytes':
        return { type: 'string', pattern: LATIN1 };
      case 'string':
        return { type: 'string' };
      case 'array':
        return { type: 'array', items: convert((type as avro.types.ArrayType).itemsType) };
      case 'map':
        return { type: 'object', additionalProperties: convert((type as avro.types.MapType).valuesType as avro.Type) };
      case 'enum':
      case 'fixed':
      case 'record':
      case 'error':
        return named(type);
      default:
        if (type.typeName.startsWith('union')) {
          return { anyOf: (type as avro.types.UnwrappedUnionType).types.map(convert) };
        }
        return {};
    }
  };
  const named = (type: avro.Type): Record<string, unknown> => {
    const name = type.name as string;
    const ref = { $ref: `#/$defs/${name}` };
    if (name in defs) return ref;
    defs[name] = {};
    if (type.typeName === 'enum') defs[name] = { type: 'string', enum: (type as avro.types.EnumType).symbols };
    else if (type.typeName === 'fixed') {
      const size = (type as avro.types.FixedType).size;
      defs[name] = { type: 'string', minLength: size, maxLength: size, pattern: LATIN1 };
    } else {
      const fields = (type as avro.types.RecordType).fields;
      defs[name] = {
        type: 'object',
        properties: Object.fromEntries(fields.map((f) => [f.name, convert(f.type)])),
        required: fields.filter((f) => !nullable(f.type)).map((f) => f.name),
        additionalProperties: false,
      };
    }
    return ref;
  };
  const schema = convert(root);
  return Object.keys(defs).length === 0 ? schema : { ...schema, $defs: defs };
}

function pascal(text: string): string {
  return text
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('');
}

/**
 * TypeScript types for the JSON form of Avro schemas, written into a {@link TypeEmitter} so that
 * names never clash with the document's JSON Schema types. A named type keeps its short name
 * (`User`), else takes its namespace as prefix (`ComExampleUser`); one full name is one type across
 * every message.
 */
export class AvroTypes {
  readonly #types: TypeEmitter;
  readonly #names = new Map<string, string>();

  constructor(types: TypeEmitter) {
    this.#types = types;
  }

  /** The type of a payload; a named root type is declared under its own name, else under `wanted`. */
  payload(type: avro.Type, wanted: string): string {
    if (type.name !== undefined) return this.#type(type, '');
    const name = this.#types.reserve(wanted);
    this.#types.declare(`export type ${name} = ${this.#type(type, '')};\n`);
    return name;
  }

  #type(type: avro.Type, indent: string): string {
    const logical = logicalName(type);
    if (logical === 'decimal' || logical === 'uuid') return 'string';
    if (logical !== undefined) return this.#type(underlying(type), indent);
    switch (type.typeName) {
      case 'null':
        return 'null';
      case 'boolean':
        return 'boolean';
      case 'int':
      case 'long':
      case 'float':
      case 'double':
        return 'number';
      case 'bytes':
      case 'string':
        return 'string';
      case 'array': {
        const items = this.#type((type as avro.types.ArrayType).itemsType, indent);
        return /^[A-Za-z0-9_$]+$/.test(items) ? `${items}[]` : `(${items})[]`;
      }
      case 'map':
        return `{ [key: string]: ${this.#type((type as avro.types.MapType).valuesType as avro.Type, indent)} }`;
      case 'enum':
      case 'fixed':
      case 'record':
      case 'error':
        return this.#named(type);
      default:
        if (type.typeName.startsWith('union')) {
          const members = (type as avro.types.UnwrappedUnionType).types.map((t) => this.#type(t, indent));
          // `T | null` reads better than Avro's customary `["null", T]` order.
          const ordered = [...members.filter((m) => m !== 'null'), ...members.filter((m) => m === 'null')];
          return [...new Set(ordered)].join(' | ');
        }
        return 'unknown';
    }
  }

  #named(type: avro.Type): string {
    const fullName = type.name as string;
    const existing = this.#names.get(fullName);
    if (existing) return existing;
    const short = fullName.slice(fullName.lastIndexOf('.') + 1);
    const name = this.#types.reserve(short, pascal(fullName));
    this.#names.set(fullName, name);
    const doc: string[] = [];
    if (type.doc) doc.push(type.doc);
    doc.push(`Avro ${type.typeName} \`${fullName}\`.`);
    let body: string;
    if (type.typeName === 'enum')
      body = (type as avro.types.EnumType).symbols.map((s) => JSON.stringify(s)).join(' | ');
    else if (type.typeName === 'fixed') {
      doc.push(`${(type as avro.types.FixedType).size} bytes, as a string of code points 0-255.`);
      body = 'string';
    } else {
      const lines = (type as avro.types.RecordType).fields.map((field) => {
        const fieldDoc = [
          ...((field as { doc?: string }).doc ? [(field as { doc?: string }).doc as string] : []),
          ...logicalDoc(field.type),
        ];
        const optional = nullable(field.type);
        return `${docComment(fieldDoc, '  ')}  ${propertyKey(field.name)}${optional ? '?' : ''}: ${this.#type(field.type, '  ')};`;
      });
      body = lines.length === 0 ? '{}' : `{\n${lines.join('\n')}\n}`;
    }
    this.#types.declare(`${docComment(doc, '')}export type ${name} = ${body};\n`);
    return name;
  }
}

function logicalDoc(type: avro.Type): string[] {
  const branches = (type as { types?: avro.Type[] }).types ?? [type];
  return branches.flatMap((t) => {
    const logical = logicalName(t);
    if (logical === 'decimal') {
      const { precision, scale } = t as unknown as { precision: number; scale: number };
      return [`@logicalType decimal(${precision}, ${scale}), as a decimal string`];
    }
    if (logical === 'date') return ['@logicalType date: days since 1970-01-01'];
    if (logical === 'time-millis') return ['@logicalType time-millis: milliseconds after midnight'];
    if (logical === 'timestamp-millis') return ['@logicalType timestamp-millis: milliseconds since the Unix epoch'];
    if (logical === 'uuid') return ['@logicalType uuid'];
    return [];
  });
}
