import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Bus, type GroupBacklog, type RetryPolicy, UnknownGroupError } from '@wharf/core';
import { UsageError } from './args.js';

/** One group's backlog as `status` and `scale` print it: the bus's reading, named. */
export interface BacklogRow extends GroupBacklog {
  readonly channel: string;
  readonly group: string;
}

/** A group that was asked for and is not declared on the broker. */
export interface MissingGroup {
  readonly channel: string;
  readonly group: string;
  readonly error: string;
}

export interface Target {
  readonly channel: string;
  readonly group: string;
}

export function toRow(target: Target, backlog: GroupBacklog): BacklogRow {
  return {
    channel: target.channel,
    group: target.group,
    ready: backlog.ready,
    inFlight: backlog.inFlight,
    delayed: backlog.delayed,
    deadLetters: backlog.deadLetters,
    ...(backlog.consumers !== undefined ? { consumers: backlog.consumers } : {}),
    ...(backlog.maxConsumers !== undefined ? { maxConsumers: backlog.maxConsumers } : {}),
  };
}

/** Reads every target's backlog, one at a time (a few round trips each); undeclared groups are listed apart. */
export async function readBacklogs(
  bus: Bus,
  targets: readonly Target[],
  retry: RetryPolicy | undefined,
): Promise<{ groups: BacklogRow[]; missing: MissingGroup[] }> {
  const groups: BacklogRow[] = [];
  const missing: MissingGroup[] = [];
  for (const target of targets) {
    try {
      groups.push(toRow(target, await bus.backlog(target.channel, target.group, retry ? { retry } : {})));
    } catch (error) {
      if (!(error instanceof UnknownGroupError)) throw error;
      missing.push({ ...target, error: error.message });
    }
  }
  return { groups, missing };
}

/** `--retry-delays 5000,30000`: the retry tiers to count as delayed on brokers that cannot list them. */
export function retryDelays(value: string | undefined): RetryPolicy | undefined {
  if (value === undefined) return undefined;
  const delays = value.split(',').map((part) => Number(part.trim()));
  if (delays.length === 0 || delays.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new UsageError(`--retry-delays must be milliseconds separated by commas (e.g. 5000,30000), got "${value}"`);
  }
  return { maxAttempts: delays.length + 1, delays };
}

/** The groups to report: `--channel` with one or more `--group`, or every (channel, group) pair of the saga. */
export async function targetsOf(values: {
  channel?: string | undefined;
  group?: string[] | undefined;
  saga?: boolean | undefined;
  namespace?: string | undefined;
}): Promise<Target[]> {
  if (values.saga) {
    if (values.channel || values.group?.length) throw new UsageError('give --saga or --channel/--group, not both');
    const channelGroups = await loadSagaTopology();
    return [...channelGroups(values.namespace).entries()].flatMap(([channel, groups]) =>
      groups.map((group) => ({ channel, group })),
    );
  }
  if (values.namespace) throw new UsageError('--namespace goes with --saga');
  if (!values.channel || !values.group?.length) {
    throw new UsageError(
      'name the groups: --channel <channel> --group <group> (--group may repeat), or --saga for the order saga',
    );
  }
  const channel = values.channel;
  return values.group.map((group) => ({ channel, group }));
}

type ChannelGroups = (namespace?: string) => Map<string, readonly string[]>;

async function loadSagaTopology(): Promise<ChannelGroups> {
  const name = '@wharf/example-order-saga';
  const pick = (module: unknown): ChannelGroups => (module as { channelGroups: ChannelGroups }).channelGroups;
  try {
    return pick(await import(name));
  } catch {
    try {
      const resolved = createRequire(join(process.cwd(), 'noop.js')).resolve(name);
      return pick(await import(pathToFileURL(resolved).href));
    } catch (cause) {
      throw new UsageError(
        `the order saga example (${name}) is not available: run from a Wharf checkout, or give --channel and --group (${String(cause)})`,
      );
    }
  }
}

/** A fixed-width table; `-` where a broker does not know a value. */
export function formatTable(rows: readonly BacklogRow[]): string {
  const header = ['CHANNEL', 'GROUP', 'READY', 'IN FLIGHT', 'DELAYED', 'DEAD LETTERS', 'CONSUMERS'];
  const cells = rows.map((r) => [
    r.channel,
    r.group,
    String(r.ready),
    String(r.inFlight),
    String(r.delayed),
    String(r.deadLetters),
    r.consumers === undefined ? '-' : String(r.consumers),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: readonly string[]): string =>
    c
      .map((cell, i) => (i < 2 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(header), ...cells.map(line)].join('\n');
}
