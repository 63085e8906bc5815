import { createRequire } from 'node:module';
import { dirname, relative, sep } from 'node:path';
import type { ErrorObject } from 'ajv';
import { CodegenError, type Diagnostic } from '../errors.js';
import { AJV_RUNTIME_MODULES } from '../runtime/ajv-runtime.js';
import { compilePattern } from '../runtime/pattern.js';
import type { Loc, Workspace } from './load.js';
import type { MessageModel } from './model.js';
import { prepareForAjv } from './prepare.js';

const require = createRequire(import.meta.url);

/** One validator to emit: its export name and the schema location it checks. */
export interface ValidatorSpec {
  readonly exportName: string;
  readonly loc: Loc;
  readonly what: string;
  /** A schema made by codegen (the JSON Schema of an Avro payload) to check instead of the one at `loc`. */
  readonly schema?: Record<string, unknown>;
}

/** An `examples` entry of the document that its own schema rejects. */
export interface ExampleFailure {
  readonly message: string;
  readonly example: string;
  readonly part: 'payload' | 'headers';
  readonly errors: readonly string[];
}

export interface CompiledValidators {
  readonly code: string;
  readonly warnings: readonly Diagnostic[];
  readonly exampleFailures: readonly ExampleFailure[];
}

/**
 * A schema id that does not depend on where the checkout lives: the file's path relative to the
 * root document under a fixed virtual folder. Ajv embeds ids in the standalone code, and absolute
 * paths made the output differ between machines (and `--check` fail on a fresh clone).
 */
function stableUri(root: string, file: string): string {
  const relativePath = relative(dirname(root), file).split(sep).join('/');
  return new URL(relativePath, 'file:///asyncapi/').href;
}

function refTo(root: string, loc: Loc): string {
  const fragment = loc.pointer
    .split('/')
    .map((t) => encodeURIComponent(t))
    .join('/');
  return `${stableUri(root, loc.file)}#${fragment}`;
}

/**
 * Compiles every payload and header schema with Ajv 8 (+ ajv-formats) into one standalone ES module.
 * The source files are added to Ajv as whole documents and each validator is a `$ref` into them, so
 * recursive schemas compile (a dereferenced recursive schema would overflow the stack) and relative
 * `$ref`s between files resolve. Ajv's `require` calls are rewritten into lookups in `ajvRuntime`,
 * imported from `runtimeImport`, so the module works under ESM.
 */
export function compileValidators(
  ws: Workspace,
  specs: readonly ValidatorSpec[],
  messages: readonly MessageModel[],
  exportOf: (message: MessageModel, part: 'payload' | 'headers') => string | undefined,
  runtimeImport: string,
): CompiledValidators {
  const Ajv = require('ajv').default as typeof import('ajv').default;
  const addFormats = require('ajv-formats').default as typeof import('ajv-formats').default;
  const standaloneCode = require('ajv/dist/standalone')
    .default as typeof import('ajv/dist/standalone/index.js').default;
  const warnings: Diagnostic[] = [];
  const logger = {
    log: () => {},
    warn: (...args: unknown[]) => {
      warnings.push({
        file: ws.display(ws.root),
        severity: 'warning',
        code: 'ajv',
        message: args.map(String).join(' '),
      });
    },
    error: (...args: unknown[]) => {
      warnings.push({
        file: ws.display(ws.root),
        severity: 'warning',
        code: 'ajv',
        message: args.map(String).join(' '),
      });
    },
  };
  // Patterns valid only without the u flag need Wharf's engine; otherwise Ajv's own stays in the output.
  const prepared = ws.files.map((file) => ({ file, ...prepareForAjv(ws, file, ws.json(file)) }));
  for (const p of prepared) warnings.push(...p.warnings);
  const legacy = prepared.some((p) => p.legacyPatterns > 0);
  const ajv = new Ajv({
    strict: false,
    allErrors: true,
    validateSchema: false,
    logger,
    code: { source: true, esm: true, lines: true, ...(legacy ? { regExp: compilePattern } : {}) },
  });
  addFormats(ajv);
  for (const { file, json } of prepared) {
    // The document's own `id` (AsyncAPI's identifier) would read as a draft-04 schema id to Ajv.
    const { id: _id, ...rest } = (json !== null && typeof json === 'object' ? json : {}) as Record<string, unknown>;
    ajv.addSchema(file === ws.root || 'asyncapi' in rest ? rest : (json as object), stableUri(ws.root, file));
  }
  const errors: Diagnostic[] = [];
  const mapping: Record<string, string> = {};
  for (const spec of specs) {
    try {
      let target = refTo(ws.root, spec.loc);
      if (spec.schema) {
        target = `file:///asyncapi/avro/${spec.exportName}.json`;
        ajv.addSchema(spec.schema, target);
      }
      ajv.addSchema({ $ref: target }, spec.exportName);
      ajv.getSchema(spec.exportName);
      mapping[spec.exportName] = spec.exportName;
    } catch (cause) {
      errors.push({
        file: ws.display(spec.loc.file),
        ...ws.position(spec.loc),
        pointer: spec.loc.pointer,
        severity: 'error',
        code: 'schema',
        message: `the ${spec.what} schema cannot be compiled: ${(cause as Error).message}`,
      });
    }
  }
  if (errors.length > 0) throw new CodegenError('some schemas cannot be compiled into validators', errors);

  const exampleFailures: ExampleFailure[] = [];
  for (const message of messages) {
    for (const example of message.examples) {
      for (const part of ['payload', 'headers'] as const) {
        const has = part === 'payload' ? example.hasPayload : example.hasHeaders;
        const name = exportOf(message, part);
        if (!has || !name) continue;
        const validate = ajv.getSchema(name);
        if (validate && !validate(example[part])) {
          exampleFailures.push({
            message: message.id,
            example: example.label,
            part,
            errors: (validate.errors ?? []).map(
              (e: ErrorObject) => `${e.instancePath || '/'} ${e.message ?? e.keyword}`,
            ),
          });
        }
      }
    }
  }

  let code = specs.length === 0 ? '' : standaloneCode(ajv, mapping);
  code = code.replace(/require\("([^"]+)"\)/g, (_: string, specifier: string) => {
    if (!AJV_RUNTIME_MODULES.includes(specifier)) {
      throw new CodegenError(`the validators need the module "${specifier}", which wharf codegen cannot provide`, []);
    }
    return `__ajvRuntime[${JSON.stringify(specifier)}]`;
  });
  code = code.replace(/^"use strict";/, '');
  code = code.replace(/export const (\w+) = (\w+);/g, 'export const $1: Validator = $2 as unknown as Validator;');
  const header = [
    '// @ts-nocheck — Ajv standalone code',
    `import { ajvRuntime as __ajvRuntime } from ${JSON.stringify(runtimeImport)};`,
    `import type { CompiledValidator as Validator } from ${JSON.stringify(runtimeImport)};`,
    '',
  ].join('\n');
  return { code: `${header}${code.trim()}\n`, warnings, exampleFailures };
}
