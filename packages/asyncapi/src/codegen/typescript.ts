import { basename, extname } from 'node:path';
import { child, type Loc, locKey, type Workspace } from './load.js';

const RESERVED = new Set(
  (
    'break case catch class const continue debugger default delete do else enum export extends false finally for ' +
    'function if import in instanceof new null return super switch this throw true try typeof var void while with ' +
    'as implements interface let package private protected public static yield any unknown never number bigint ' +
    'boolean string symbol object undefined type keyof readonly infer is asserts await async declare module namespace ' +
    'require global constructor'
  ).split(' '),
);

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A TypeScript identifier for a schema name: kept as written when it is one, else made one. */
export function toTypeName(raw: string): string {
  let name = raw;
  if (!IDENTIFIER.test(name)) {
    name = name
      .split(/[^A-Za-z0-9_$]+/)
      .filter(Boolean)
      .map((part) => part[0]?.toUpperCase() + part.slice(1))
      .join('');
    if (name === '') name = 'Schema';
    if (/^[0-9]/.test(name)) name = `_${name}`;
  }
  if (RESERVED.has(name)) name = `${name}_`;
  return name;
}

/** A property key: bare when it is an identifier, quoted otherwise. */
export function propertyKey(key: string): string {
  return IDENTIFIER.test(key) ? key : JSON.stringify(key);
}

/** A JSDoc block from text lines, indented. */
export function docComment(lines: readonly string[], indent: string): string {
  const clean = lines.flatMap((l) => l.replace(/\*\//g, '*\\/').split('\n')).map((l) => l.trimEnd());
  while (clean.length > 0 && clean[clean.length - 1] === '') clean.pop();
  if (clean.length === 0) return '';
  if (clean.length === 1) return `${indent}/** ${clean[0]} */\n`;
  return `${indent}/**\n${clean.map((l) => (l ? `${indent} * ${l}` : `${indent} *`)).join('\n')}\n${indent} */\n`;
}

function schemaDoc(schema: Record<string, unknown>): string[] {
  const lines: string[] = [];
  if (typeof schema.title === 'string' && typeof schema.description !== 'string') lines.push(schema.title);
  if (typeof schema.description === 'string') lines.push(schema.description);
  if (typeof schema.format === 'string') {
    lines.push(schema.format === 'date-time' ? '@format date-time (an RFC 3339 string)' : `@format ${schema.format}`);
  }
  if (schema.deprecated === true) lines.push('@deprecated');
  return lines;
}

function literal(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'undefined';
  if (Array.isArray(value)) return `[${value.map(literal).join(', ')}]`;
  return `{ ${Object.entries(value)
    .map(([k, v]) => `${propertyKey(k)}: ${literal(v)}`)
    .join('; ')} }`;
}

function union(types: string[]): string {
  const unique = [...new Set(types)];
  if (unique.includes('unknown')) return 'unknown';
  if (unique.length === 0) return 'never';
  return unique.join(' | ');
}

function wrap(type: string): string {
  return /^[A-Za-z0-9_$.]+$/.test(type) || /^".*"$/.test(type) ? type : `(${type})`;
}

/**
 * Emits TypeScript types for the schemas of a document. Every `$ref` target becomes a named type
 * (so recursive schemas work), named after its components key (or the last pointer segment, or the
 * file name); clashes get the file's name as prefix, then a number, in a fixed order.
 */
export class TypeEmitter {
  readonly #ws: Workspace;
  readonly #names = new Map<string, string>();
  readonly #taken = new Set<string>();
  readonly #queue: { loc: Loc; name: string }[] = [];
  readonly #done = new Set<string>();
  /** Declarations written by another emitter (Avro), emitted after the JSON Schema types. */
  readonly #declared: string[] = [];

  constructor(ws: Workspace) {
    this.#ws = ws;
  }

  /** The type name for a schema defined at `loc` (already resolved), registering it if new. */
  name(loc: Loc, wanted?: string): string {
    const key = locKey(loc);
    const existing = this.#names.get(key);
    if (existing) return existing;
    const base = toTypeName(wanted ?? this.#suggest(loc));
    let name = base;
    if (this.#taken.has(name) && loc.file !== this.#ws.root) {
      name = toTypeName(`${pascalFile(loc.file)}${base[0]?.toUpperCase()}${base.slice(1)}`);
    }
    for (let n = 2; this.#taken.has(name); n++) name = `${base}${n}`;
    this.#taken.add(name);
    this.#names.set(key, name);
    this.#queue.push({ loc, name });
    return name;
  }

  /**
   * Reserves a type name for a declaration another emitter writes (see {@link declare}): the first
   * of `wanted` that is free, else the first with a number.
   */
  reserve(...wanted: readonly string[]): string {
    const names = wanted.map(toTypeName);
    let name = names.find((n) => !this.#taken.has(n));
    for (let n = 2; name === undefined; n++) if (!this.#taken.has(`${names[0]}${n}`)) name = `${names[0]}${n}`;
    this.#taken.add(name);
    return name;
  }

  /** Adds a finished declaration (of a name from {@link reserve}) to the output. */
  declare(code: string): void {
    this.#declared.push(code);
  }

  /** The type of the schema at `loc` (which may be a `$ref`), by name when it is a reference. */
  typeAt(loc: Loc, wanted?: string): string {
    const raw = this.#ws.resolve(loc);
    const at = this.#rawAt(loc);
    if (isRecord(at) && typeof at.$ref === 'string') return this.name(raw.loc);
    if (wanted !== undefined) return this.name(raw.loc, wanted);
    return this.#type(raw.loc, raw.value, '');
  }

  #rawAt(loc: Loc): unknown {
    // The value written at `loc` itself (a `$ref` object or a schema), following refs only on the way.
    const parent = loc.pointer.lastIndexOf('/');
    if (parent < 0) return this.#ws.json(loc.file);
    const holder = this.#ws.resolve({ file: loc.file, pointer: loc.pointer.slice(0, parent) });
    const token = loc.pointer
      .slice(parent + 1)
      .replace(/~1/g, '/')
      .replace(/~0/g, '~');
    const value = holder.value;
    if (Array.isArray(value)) return value[Number(token)];
    return isRecord(value) ? value[token] : undefined;
  }

  #suggest(loc: Loc): string {
    if (loc.pointer === '') return pascalFile(loc.file);
    const tokens = loc.pointer.split('/');
    const last = (tokens[tokens.length - 1] ?? 'Schema').replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(last) || ['payload', 'headers', 'schema', 'items', 'additionalProperties'].includes(last)) {
      return tokens
        .slice(-3)
        .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))
        .map((t) => t.charAt(0).toUpperCase() + t.slice(1))
        .join('_');
    }
    return last;
  }

  /** Emits every named type registered so far (and those they reference). */
  emit(): string {
    const out: string[] = [];
    while (this.#queue.length > 0) {
      const { loc, name } = this.#queue.shift() as { loc: Loc; name: string };
      const key = locKey(loc);
      if (this.#done.has(key)) continue;
      this.#done.add(key);
      const value = this.#ws.resolve(loc).value;
      const doc = isRecord(value) ? schemaDoc(value) : [];
      out.push(`${docComment(doc, '')}export type ${name} = ${this.#type(loc, value, '')};\n`);
    }
    out.push(...this.#declared);
    return out.join('\n');
  }

  #type(loc: Loc, schema: unknown, indent: string): string {
    if (schema === true || schema === undefined) return 'unknown';
    if (schema === false) return 'never';
    if (!isRecord(schema)) return 'unknown';
    if (typeof schema.$ref === 'string') return this.name(this.#ws.resolve(loc).loc);
    const parts: string[] = [];
    let base: string | undefined;
    if ('const' in schema) base = literal(schema.const);
    else if (Array.isArray(schema.enum)) base = union(schema.enum.map(literal));
    else {
      const declared = Array.isArray(schema.type)
        ? schema.type.map(String)
        : typeof schema.type === 'string'
          ? [schema.type]
          : [];
      let types = declared;
      if (types.length === 0) {
        if (['properties', 'additionalProperties', 'patternProperties', 'required'].some((k) => k in schema))
          types = ['object'];
        else if ('items' in schema || 'prefixItems' in schema) types = ['array'];
      }
      if (types.length > 0) base = union(types.map((t) => this.#typeFor(t, loc, schema, indent)));
    }
    if (base !== undefined && schema.nullable === true) base = union([base, 'null']);
    if (base !== undefined) parts.push(base);
    for (const keyword of ['oneOf', 'anyOf'] as const) {
      const members = schema[keyword];
      if (Array.isArray(members) && members.length > 0) {
        parts.push(union(members.map((_, i) => this.#member(child(loc, keyword, i), indent))));
      }
    }
    if (Array.isArray(schema.allOf)) {
      for (let i = 0; i < schema.allOf.length; i++) parts.push(this.#member(child(loc, 'allOf', i), indent));
    }
    const meaningful = parts.filter((p) => p !== 'unknown');
    if (meaningful.length === 0) return 'unknown';
    if (meaningful.length === 1) return meaningful[0] as string;
    return meaningful.map(wrap).join(' & ');
  }

  #member(loc: Loc, indent: string): string {
    const resolved = this.#ws.resolve(loc);
    const at = this.#rawAt(loc);
    if (isRecord(at) && typeof at.$ref === 'string') return this.name(resolved.loc);
    return this.#type(resolved.loc, resolved.value, indent);
  }

  #typeFor(type: string, loc: Loc, schema: Record<string, unknown>, indent: string): string {
    switch (type) {
      case 'string':
        return 'string';
      case 'number':
      case 'integer':
        return 'number';
      case 'boolean':
        return 'boolean';
      case 'null':
        return 'null';
      case 'array':
        return this.#array(loc, schema, indent);
      case 'object':
        return this.#object(loc, schema, indent);
      default:
        return 'unknown';
    }
  }

  #array(loc: Loc, schema: Record<string, unknown>, indent: string): string {
    const tuple = Array.isArray(schema.prefixItems) ? 'prefixItems' : Array.isArray(schema.items) ? 'items' : undefined;
    if (tuple) {
      const items = schema[tuple] as unknown[];
      const min = typeof schema.minItems === 'number' ? schema.minItems : 0;
      const elements = items.map((_, i) => `${this.#member(child(loc, tuple, i), indent)}${i >= min ? '?' : ''}`);
      const rest = tuple === 'items' ? schema.additionalItems : schema.items;
      if (rest !== false) {
        const restType = isRecord(rest)
          ? this.#member(child(loc, tuple === 'items' ? 'additionalItems' : 'items'), indent)
          : 'unknown';
        elements.push(`...${wrap(restType)}[]`);
      }
      return `[${elements.join(', ')}]`;
    }
    if (isRecord(schema.items) || schema.items === true) return `${wrap(this.#member(child(loc, 'items'), indent))}[]`;
    return 'unknown[]';
  }

  #object(loc: Loc, schema: Record<string, unknown>, indent: string): string {
    const inner = `${indent}  `;
    const properties = isRecord(schema.properties) ? schema.properties : {};
    const required = new Set(Array.isArray(schema.required) ? schema.required.map(String) : []);
    const lines: string[] = [];
    const propertyTypes: string[] = [];
    let optional = false;
    for (const key of Object.keys(properties)) {
      const propLoc = child(loc, 'properties', key);
      const resolved = this.#ws.resolve(propLoc);
      const type = this.#member(propLoc, inner);
      const doc = isRecord(resolved.value) ? schemaDoc(resolved.value) : [];
      const isOptional = !required.has(key);
      optional ||= isOptional;
      propertyTypes.push(type);
      lines.push(`${docComment(doc, inner)}${inner}${propertyKey(key)}${isOptional ? '?' : ''}: ${type};`);
    }
    for (const key of required) {
      if (key in properties) continue;
      propertyTypes.push('unknown');
      lines.push(`${inner}${propertyKey(key)}: unknown;`);
    }
    const extra = schema.additionalProperties;
    const patterns = isRecord(schema.patternProperties) ? Object.keys(schema.patternProperties) : [];
    if (extra !== false || patterns.length > 0) {
      const valueTypes: string[] = [];
      if (extra === undefined || extra === true) valueTypes.push('unknown');
      else if (isRecord(extra)) valueTypes.push(this.#member(child(loc, 'additionalProperties'), inner));
      for (const p of patterns) valueTypes.push(this.#member(child(loc, 'patternProperties', p), inner));
      let index = union(valueTypes);
      if (index !== 'unknown' && propertyTypes.length > 0) {
        index = union([index, ...propertyTypes, ...(optional ? ['undefined'] : [])]);
      }
      lines.push(`${inner}[key: string]: ${index};`);
    }
    if (lines.length === 0) return '{}';
    return `{\n${lines.join('\n')}\n${indent}}`;
  }
}

function pascalFile(file: string): string {
  const stem = basename(file, extname(file)).replace(/\.asyncapi$/, '');
  return toTypeName(
    stem
      .split(/[^A-Za-z0-9]+/)
      .filter(Boolean)
      .map((p) => p[0]?.toUpperCase() + p.slice(1))
      .join(''),
  );
}
