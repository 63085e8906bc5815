import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { CodegenError } from './errors.js';

/** A channel and a consumer group that receives from it, as a contract names them. */
export interface ContractGroup {
  /** The Wharf channel name: the channel's `address` (or its key when it has none). */
  readonly channel: string;
  readonly group: string;
  /** The receive operation that names the group. */
  readonly operation: string;
}

/**
 * The (channel, group) pairs of a contract's receive operations, in document order, without
 * duplicates. AsyncAPI has no notion of a consumer group, so the group is read from the operation's
 * bindings (own or through its traits): `x-wharf-group`, then the Kafka binding's `groupId`
 * (a string or a schema with `const`), then the NATS binding's `queue`. Operations naming none are
 * left out (listed in `ungrouped`). Local `$ref`s only.
 */
export function contractGroups(document: unknown): { groups: ContractGroup[]; ungrouped: string[] } {
  const root = record(document);
  const resolve = (value: unknown): Record<string, unknown> => {
    const node = record(value);
    const ref = node.$ref;
    if (typeof ref !== 'string' || !ref.startsWith('#/')) return node;
    let at: unknown = root;
    for (const token of ref.slice(2).split('/')) {
      at = record(at)[token.replace(/~1/g, '/').replace(/~0/g, '~')];
    }
    return record(at);
  };
  const groups: ContractGroup[] = [];
  const ungrouped: string[] = [];
  const seen = new Set<string>();
  for (const [name, value] of Object.entries(record(root.operations))) {
    const operation = resolve(value);
    if (operation.action !== 'receive') continue;
    const channelRef = record(operation.channel).$ref;
    const channelKey = typeof channelRef === 'string' ? channelRef.split('/').pop() : undefined;
    const channelNode = resolve(operation.channel);
    const channel = typeof channelNode.address === 'string' ? channelNode.address : channelKey;
    const sources = [operation, ...list(operation.traits).map(resolve)];
    const group = sources.map((source) => groupOf(source, resolve)).find((g) => g !== undefined);
    if (channel === undefined || group === undefined) {
      ungrouped.push(name);
      continue;
    }
    const id = `${channel}\u0000${group}`;
    if (seen.has(id)) continue;
    seen.add(id);
    groups.push({ channel, group, operation: name });
  }
  return { groups, ungrouped };
}

/** {@link contractGroups} of an AsyncAPI document file (YAML or JSON). */
export async function loadContractGroups(path: string): Promise<{ groups: ContractGroup[]; ungrouped: string[] }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new CodegenError(`cannot read the contract ${path}: ${(error as Error).message}`, [], { cause: error });
  }
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    throw new CodegenError(`cannot parse the contract ${path}: ${(error as Error).message}`, [], { cause: error });
  }
  return contractGroups(document);
}

function groupOf(
  source: Record<string, unknown>,
  resolve: (value: unknown) => Record<string, unknown>,
): string | undefined {
  if (typeof source['x-wharf-group'] === 'string') return source['x-wharf-group'];
  const bindings = resolve(source.bindings);
  const groupId = record(bindings.kafka).groupId;
  if (typeof groupId === 'string') return groupId;
  const constant = record(groupId).const;
  if (typeof constant === 'string') return constant;
  const queue = record(bindings.nats).queue;
  return typeof queue === 'string' ? queue : undefined;
}

function record(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}
