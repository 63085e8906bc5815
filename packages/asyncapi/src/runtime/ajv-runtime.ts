import { createRequire } from 'node:module';
import { compilePattern, PATTERN_MODULE } from './pattern.js';

const require = createRequire(import.meta.url);

/**
 * The helper modules that Ajv's standalone code `require`s, keyed by the specifier it uses.
 * Generated validators are ES modules that import this map from `@wharf/asyncapi` instead of
 * calling `require` (which does not exist in ESM) — and so the generated code needs neither Ajv
 * nor ajv-formats as a dependency of the package it lives in.
 */
export const ajvRuntime: Readonly<Record<string, unknown>> = {
  'ajv/dist/runtime/equal': require('ajv/dist/runtime/equal'),
  'ajv/dist/runtime/ucs2length': require('ajv/dist/runtime/ucs2length'),
  'ajv/dist/runtime/uri': require('ajv/dist/runtime/uri'),
  'ajv/dist/runtime/validation_error': require('ajv/dist/runtime/validation_error'),
  'ajv-formats/dist/formats': require('ajv-formats/dist/formats'),
  [PATTERN_MODULE]: { compilePattern },
};

/** Specifiers the code generator may rewrite (anything else is a generator error). */
export const AJV_RUNTIME_MODULES: readonly string[] = Object.keys(ajvRuntime);
