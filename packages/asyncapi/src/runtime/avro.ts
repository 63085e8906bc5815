import avro from 'avsc';
import type { PayloadCodec } from './contract.js';

/** An Avro schema as JSON (a primitive name, a named-type object, or a union array). */
export type AvroSchema = string | readonly unknown[] | { readonly [key: string]: unknown };

type LogicalTypeClass = new (schema: avro.Schema, opts?: unknown) => avro.types.LogicalType;

/**
 * `decimal` as a decimal string in the JSON form (`"-12.30"`), two's-complement big-endian bytes
 * of the unscaled value on the Avro binary wire. A string keeps every digit: a JSON number would
 * round money through a double.
 */
class DecimalType extends avro.types.LogicalType {
  readonly precision: number;
  readonly scale: number;
  readonly #size: number | undefined;

  constructor(schema: avro.Schema, opts?: unknown) {
    super(schema, opts);
    const s = schema as { precision?: unknown; scale?: unknown; size?: unknown };
    const precision = s.precision;
    const scale = s.scale ?? 0;
    if (typeof precision !== 'number' || !Number.isInteger(precision) || precision < 1) {
      throw new Error(`decimal needs a positive integer precision, got ${JSON.stringify(precision)}`);
    }
    if (typeof scale !== 'number' || !Number.isInteger(scale) || scale < 0 || scale > precision) {
      throw new Error(`decimal scale must be an integer from 0 to the precision, got ${JSON.stringify(scale)}`);
    }
    this.precision = precision;
    this.scale = scale;
    this.#size = typeof s.size === 'number' ? s.size : undefined;
  }

  protected override _fromValue(buffer: Buffer): string {
    let unscaled = 0n;
    for (const byte of buffer) unscaled = (unscaled << 8n) | BigInt(byte);
    if (buffer.length > 0 && ((buffer[0] as number) & 0x80) !== 0) unscaled -= 1n << BigInt(buffer.length * 8);
    const negative = unscaled < 0n;
    const digits = (negative ? -unscaled : unscaled).toString().padStart(this.scale + 1, '0');
    const point = digits.length - this.scale;
    const text = this.scale === 0 ? digits : `${digits.slice(0, point)}.${digits.slice(point)}`;
    return negative ? `-${text}` : text;
  }

  protected override _toValue(value: unknown): Buffer | undefined {
    // isValid() calls this too: answer undefined (invalid) rather than throw.
    if (typeof value !== 'string') return undefined;
    const match = /^(-)?(\d+)(?:\.(\d+))?$/.exec(value);
    if (!match) return undefined;
    const [, sign, whole = '', fraction = ''] = match;
    if (fraction.length > this.scale) return undefined;
    const digits = `${whole}${fraction.padEnd(this.scale, '0')}`.replace(/^0+(?=\d)/, '');
    if (digits.length > this.precision) return undefined;
    let unscaled = BigInt(digits) * (sign ? -1n : 1n);
    let length = 1;
    while (unscaled < -(1n << BigInt(length * 8 - 1)) || unscaled >= 1n << BigInt(length * 8 - 1)) length++;
    if (this.#size !== undefined) {
      if (length > this.#size) return undefined;
      length = this.#size;
    }
    const out = Buffer.alloc(length);
    for (let i = length - 1; i >= 0; i--) {
      out[i] = Number(unscaled & 0xffn);
      unscaled >>= 8n;
    }
    return out;
  }

  protected override _resolve(type: avro.Type): ((value: unknown) => unknown) | undefined {
    return avro.Type.isType(type, 'logical:decimal') ? (value) => value : undefined;
  }
}

/** Logical types whose JSON form is their underlying value: kept so codegen can type and document them. */
function passThrough(): LogicalTypeClass {
  return class extends avro.types.LogicalType {
    protected override _fromValue(value: unknown): unknown {
      return value;
    }
    protected override _toValue(value: unknown): unknown {
      return value;
    }
    protected override _resolve(type: avro.Type): ((value: unknown) => unknown) | undefined {
      return avro.Type.isType(type, 'logical') ? undefined : (value) => value;
    }
  };
}

/** The logical types Wharf implements (others fall back to their underlying type, as Avro says). */
export const AVRO_LOGICAL_TYPES: Readonly<Record<string, LogicalTypeClass>> = {
  decimal: DecimalType,
  uuid: passThrough(),
  date: passThrough(),
  'time-millis': passThrough(),
  'timestamp-millis': passThrough(),
};

/**
 * Parses an Avro schema with avsc. `wrapUnions: 'never'` is what the codec needs (the JSON form has
 * no union wrappers); it throws on a union avsc cannot tell apart unwrapped (two records, say).
 */
export function parseAvro(schema: AvroSchema, wrapUnions: 'auto' | 'never'): avro.Type {
  return avro.Type.forSchema(schema as avro.Schema, { logicalTypes: AVRO_LOGICAL_TYPES, wrapUnions });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !Buffer.isBuffer(value);
}

function isNullable(type: avro.Type): boolean {
  return (type as { types?: avro.Type[] }).types?.some((t) => t.typeName === 'null') ?? false;
}

/** The JSON form of a payload to what avsc encodes: strings to bytes, absent nullable fields to null. */
function toAvro(type: avro.Type, value: unknown): unknown {
  const name = type.typeName;
  if (name.startsWith('logical:')) return value;
  if ((name === 'bytes' || name === 'fixed') && typeof value === 'string') return Buffer.from(value, 'latin1');
  if (name === 'record' && isRecord(value)) {
    const out: Record<string, unknown> = {};
    for (const field of (type as avro.types.RecordType).fields) {
      const item = value[field.name];
      out[field.name] = item === undefined && isNullable(field.type) ? null : toAvro(field.type, item);
    }
    return out;
  }
  if (name === 'array' && Array.isArray(value))
    return value.map((v) => toAvro((type as avro.types.ArrayType).itemsType, v));
  if (name === 'map' && isRecord(value)) {
    const values = (type as avro.types.MapType).valuesType as avro.Type;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toAvro(values, v)]));
  }
  if (name.startsWith('union')) {
    for (const branch of (type as avro.types.UnwrappedUnionType).types) {
      const candidate = toAvro(branch, value);
      if (branch.isValid(candidate)) return candidate;
    }
  }
  return value;
}

/** What avsc decoded to the JSON form: bytes to strings, records to plain objects. */
function fromAvro(type: avro.Type, value: unknown): unknown {
  const name = type.typeName;
  if (name.startsWith('logical:')) return value;
  if (Buffer.isBuffer(value)) return value.toString('latin1');
  if (name === 'record' && value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const field of (type as avro.types.RecordType).fields) {
      out[field.name] = fromAvro(field.type, (value as Record<string, unknown>)[field.name]);
    }
    return out;
  }
  if (name === 'array' && Array.isArray(value))
    return value.map((v) => fromAvro((type as avro.types.ArrayType).itemsType, v));
  if (name === 'map' && isRecord(value)) {
    const values = (type as avro.types.MapType).valuesType as avro.Type;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromAvro(values, v)]));
  }
  if (name.startsWith('union')) {
    const branch = (type as avro.types.UnwrappedUnionType).types.find((t) => t.isValid(value));
    return branch ? fromAvro(branch, value) : value;
  }
  return value;
}

/**
 * The codec of a message whose content type is Avro binary (`application/avro`, `avro/binary`):
 * the payload travels as Avro binary (no Confluent Schema Registry header), the application sees
 * its JSON form. The schema is parsed on first use, so importing a contract costs nothing.
 */
export function avroCodec(schema: AvroSchema, contentType: string): PayloadCodec {
  let parsed: avro.Type | undefined;
  const type = (): avro.Type => {
    parsed ??= parseAvro(schema, 'never');
    return parsed;
  };
  return {
    contentType,
    encode(data) {
      const t = type();
      const value = toAvro(t, data);
      const problems: string[] = [];
      if (!t.isValid(value, { errorHook: (path) => problems.push(`/${path.join('/')}`) })) {
        throw new Error(`the payload does not match its Avro schema at ${problems.join(', ') || '/'}`);
      }
      return t.toBuffer(value);
    },
    decode(body) {
      const t = type();
      const buffer = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
      return fromAvro(t, t.fromBuffer(buffer));
    },
  };
}
