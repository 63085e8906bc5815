import { type ParseArgsConfig, parseArgs } from 'node:util';
import { WharfError } from '@wharf/core';

/** A command line the user got wrong: printed with the command's usage, exit code 2. */
export class UsageError extends WharfError {
  override readonly name = 'UsageError';
  constructor(message: string) {
    super('ERR_WHARF_USAGE', 'cli', message);
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;
type Value<T> = T extends { type: 'boolean' } ? boolean : string;
/** Parsed flags: a flag declared `multiple` is an array. */
type Values<O extends Options> = { [K in keyof O]?: O[K] extends { multiple: true } ? Value<O[K]>[] : Value<O[K]> };

/** Parses flags strictly, turning node's parse errors into a `UsageError`. */
export function parse<O extends Options>(argv: string[], options: O): { values: Values<O>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: values as Values<O>, positionals };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Reads a positive integer flag. */
export function positiveInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

/** The broker URL from --broker, else WHARF_BROKER, else memory://. */
export function brokerUrl(value: string | undefined): string {
  return value ?? process.env.WHARF_BROKER ?? 'memory://';
}
