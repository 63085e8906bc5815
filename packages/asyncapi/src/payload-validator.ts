import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { type CloudEvent, type ContractIssue, ContractViolationError, type EventValidator } from '@wharf/core';
import { parse } from 'yaml';
import { CodegenError } from './errors.js';

const require = createRequire(import.meta.url);

/**
 * A validator of event payloads compiled at run time from one AsyncAPI document (local `$ref`s
 * only), for tools that are given a contract file rather than generated code: the console checks an
 * edited payload with it before sending. Events of a type or on a channel the contract does not
 * describe pass; services use `wharf codegen`'s precompiled validators instead.
 */
export function payloadValidator(document: unknown): EventValidator {
  const Ajv = require('ajv').default as typeof import('ajv').default;
  const addFormats = require('ajv-formats').default as typeof import('ajv-formats').default;
  const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false, logger: false });
  addFormats(ajv);
  const root = record(document);
  // The document's own `id` (AsyncAPI's identifier) would read as a draft-04 schema id to Ajv.
  const { id: _id, ...rest } = root;
  ajv.addSchema(rest, 'contract');
  const byChannel = new Map<string, Map<string, string>>();
  for (const [key, value] of Object.entries(record(root.channels))) {
    const channel = resolve(root, value, `#/channels/${escapeToken(key)}`);
    const address = typeof channel.node.address === 'string' ? channel.node.address : key;
    const types = byChannel.get(address) ?? new Map<string, string>();
    for (const [id, message] of Object.entries(record(channel.node.messages))) {
      const m = resolve(root, message, `${channel.pointer}/messages/${escapeToken(id)}`);
      const name = typeof m.node.name === 'string' ? m.node.name : id;
      if (m.node.payload !== undefined && !types.has(name)) types.set(name, `contract#${m.pointer}/payload`);
    }
    byChannel.set(address, types);
  }
  return {
    validate(direction: 'publish' | 'consume', channel: string, event: CloudEvent): void {
      const ref = byChannel.get(channel)?.get(event.type);
      if (ref === undefined) return;
      const check = ajv.getSchema(ref) ?? ajv.compile({ $ref: ref });
      if (check(event.data)) return;
      const issues: ContractIssue[] = (check.errors ?? []).map((e) => ({
        path: `/data${e.instancePath}`,
        message: e.message ?? e.keyword,
      }));
      throw new ContractViolationError(`${direction} of ${event.type} on ${channel}`, issues);
    },
  };
}

/** {@link payloadValidator} of an AsyncAPI document file (YAML or JSON). */
export async function loadPayloadValidator(path: string): Promise<EventValidator> {
  let document: unknown;
  try {
    document = parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new CodegenError(`cannot read the contract ${path}: ${(error as Error).message}`, [], { cause: error });
  }
  return payloadValidator(document);
}

/** Follows a local `$ref` to its node, keeping the JSON pointer that Ajv can address. */
function resolve(
  root: Record<string, unknown>,
  value: unknown,
  pointer: string,
): { node: Record<string, unknown>; pointer: string } {
  let node = record(value);
  let at = pointer;
  for (let hops = 0; typeof node.$ref === 'string' && node.$ref.startsWith('#/') && hops < 16; hops++) {
    at = node.$ref;
    let next: unknown = root;
    for (const token of node.$ref.slice(2).split('/'))
      next = record(next)[token.replace(/~1/g, '/').replace(/~0/g, '~')];
    node = record(next);
  }
  return { node, pointer: at.slice(1) };
}

function escapeToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

function record(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}
