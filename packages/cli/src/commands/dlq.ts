import { createInterface } from 'node:readline/promises';
import { loadContractGroups } from '@wharf/asyncapi';
import {
  createBus,
  type DeadLetterEntry,
  type DeadLetterFilter,
  DeadLetterQueue,
  type DeadLetterTarget,
  redactUrl,
  UnknownDeadLetterError,
} from '@wharf/core';
import { parse, positiveInt, UsageError } from '../args.js';
import { targetsOf as groupTargets } from '../backlog.js';
import { applyConnection, brokerConnection, connectionFlags, connectionUsage } from '../connection.js';
import { json, type Output } from '../output.js';

export const dlqUsage = `wharf dlq list    <where> [filters] [--json]
wharf dlq show    <id> <where> [--json]
wharf dlq replay  <id>… | --all [filters]  <where> [--to <channel>] [--json]
wharf dlq purge   <id>… | --all [filters]  <where> [--yes] [--json]

where:    --spec <asyncapi.yaml>   every channel and group of the contract's receive operations
                                   (narrow with --channel and/or --group)
          --channel <c> --group <g> [--group <g>…]   one channel's groups
          --saga [--namespace NS]                    the order saga's channels and groups
          [--broker <url>]  (default WHARF_BROKER, else memory://)
filters:  --reason R  --error-type T  --event-type T  --correlation-id C  --id ID   (each may repeat)
          --since T --until T   last failure at or after / before T: ISO time or an age (30m, 2h, 1d)
          [--scan-limit N]      dead letters read per group at most (default 10000)

list groups the dead letters by reason and error type, with counts. replay publishes each one back
to its failing group (its channel where the broker cannot address one group; --to another channel),
waits for the broker's confirm, then removes it, one at a time; it carries a "replayed" time and a
"replaycount" one higher. purge removes them for good: it lists what it would remove and asks you to
type "purge", or give --yes. Ids are event ids, or channel/group/id keys where one event failed in
several groups. Exit status 1 when an id is unknown or a dead letter could not be replayed.

${connectionUsage}`;

export async function dlq(argv: string[], output: Output): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...connectionFlags,
    broker: { type: 'string' },
    spec: { type: 'string' },
    channel: { type: 'string' },
    group: { type: 'string', multiple: true },
    saga: { type: 'boolean' },
    namespace: { type: 'string' },
    reason: { type: 'string', multiple: true },
    'error-type': { type: 'string', multiple: true },
    'event-type': { type: 'string', multiple: true },
    'correlation-id': { type: 'string', multiple: true },
    id: { type: 'string', multiple: true },
    since: { type: 'string' },
    until: { type: 'string' },
    'scan-limit': { type: 'string' },
    limit: { type: 'string' },
    all: { type: 'boolean' },
    to: { type: 'string' },
    yes: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  const [action, ...ids] = positionals;
  if (action !== 'list' && action !== 'show' && action !== 'replay' && action !== 'purge') {
    throw new UsageError('dlq needs an action: list, show, replay or purge');
  }
  const targets = await targetsOf(values);
  const filter: DeadLetterFilter = {
    reasons: values.reason,
    errorTypes: values['error-type'],
    eventTypes: values['event-type'],
    correlationIds: values['correlation-id'],
    ids: [...(values.id ?? []), ...ids],
    since: time(values.since, 'since'),
    until: time(values.until, 'until'),
  };
  if (action === 'list' && ids.length > 0) throw new UsageError('list takes no ids: use --id to filter');
  if (action === 'show' && ids.length !== 1) throw new UsageError('show needs one id');
  const selective = ids.length > 0 || Object.values(filter).some((v) => (Array.isArray(v) ? v.length > 0 : v));
  if ((action === 'replay' || action === 'purge') && !selective && !values.all) {
    throw new UsageError(`${action} needs ids, filters, or --all for every dead letter of the groups named`);
  }
  if (values.to !== undefined && action !== 'replay') throw new UsageError('--to goes with replay');
  // --limit was the older spelling of the scan bound.
  const scanLimit = positiveInt(values['scan-limit'] ?? values.limit, 'scan-limit', 10_000);
  const url = applyConnection(brokerConnection(values.broker, values));
  const bus = createBus({ url });
  const queue = new DeadLetterQueue(bus, { scanLimit });
  const broker = redactUrl(url);
  try {
    switch (action) {
      case 'list': {
        const listing = await queue.list(targets, filter);
        if (values.json) {
          json(output, { broker, targets, ...listing });
          return 0;
        }
        output.out(`${listing.deadLetters.length} dead letters in ${where(targets)} on ${broker}`);
        for (const row of listing.summary)
          output.out(`  ${String(row.count).padStart(6)}  ${row.reason}  ${row.errorType}`);
        for (const entry of listing.deadLetters) output.out(line(entry));
        for (const t of listing.truncated)
          output.err(`only the first ${scanLimit} of ${t.channel}/${t.group} were read`);
        return 0;
      }
      case 'show': {
        const entries = await queue.show(targets, ids[0] as string);
        if (values.json) json(output, { broker, deadLetters: entries });
        else for (const entry of entries) output.out(detail(entry));
        return 0;
      }
      case 'replay': {
        const outcome = await queue.replay(targets, filter, {
          to: values.to,
          onReplayed: (entry) => {
            if (!values.json) output.err(`replayed ${entry.key}`);
          },
        });
        return report(output, values.json, broker, 'replayed', outcome, targets);
      }
      case 'purge': {
        let purgeFilter = filter;
        if (!values.yes) {
          const { deadLetters } = await queue.list(targets, filter);
          if (deadLetters.length === 0) return report(output, values.json, broker, 'purged', none(filter), targets);
          if (!process.stdin.isTTY) {
            throw new UsageError(
              `purge would remove ${deadLetters.length} dead letters for good: confirm with --yes when not at a terminal`,
            );
          }
          for (const entry of deadLetters) output.err(line(entry));
          const rl = createInterface({ input: process.stdin, output: process.stderr });
          const answer = await rl.question(`Remove these ${deadLetters.length} dead letters for good? Type "purge": `);
          rl.close();
          if (answer.trim() !== 'purge') {
            output.err('nothing purged');
            return 1;
          }
          // Exactly what was shown: a dead letter arriving since is not removed unseen.
          purgeFilter = { ids: deadLetters.map((d) => d.key) };
        }
        const outcome = await queue.purge(targets, purgeFilter);
        return report(output, values.json, broker, 'purged', outcome, targets);
      }
    }
  } finally {
    await bus.close();
  }
}

function none(filter: DeadLetterFilter) {
  return { done: [], skipped: [], notFound: [...(filter.ids ?? [])] };
}

function report(
  output: Output,
  asJson: boolean | undefined,
  broker: string,
  verb: 'replayed' | 'purged',
  outcome: { done: readonly string[]; skipped: readonly { key: string; why: string }[]; notFound: readonly string[] },
  targets: readonly DeadLetterTarget[],
): number {
  const failed = outcome.notFound.length > 0 || (verb === 'replayed' && outcome.skipped.length > 0);
  if (asJson) {
    json(output, { broker, [verb]: outcome.done, skipped: outcome.skipped, notFound: outcome.notFound });
  } else {
    output.out(`${verb} ${outcome.done.length} dead letters`);
    for (const s of outcome.skipped) output.out(`left ${s.key}: ${s.why}`);
  }
  if (outcome.notFound.length > 0) output.err(new UnknownDeadLetterError(outcome.notFound, where(targets)).message);
  return failed ? 1 : 0;
}

function line(entry: DeadLetterEntry): string {
  const what = entry.event ? `${entry.event.type} ${entry.id}` : `${entry.id} (${entry.decodeError ?? 'undecodable'})`;
  const info = entry.info;
  return `- ${entry.channel}/${entry.group}  ${what}\n    ${info?.reason ?? '?'} after ${info?.attempts ?? '?'} attempts, last ${info?.lastFailureAt ?? '?'}: ${info?.errorType ?? ''} ${info?.errorMessage ?? ''}`;
}

function detail(entry: DeadLetterEntry): string {
  const { event, info } = entry;
  const lines = [
    `${entry.key}`,
    `  reason        ${info?.reason ?? '?'}`,
    `  error         ${info?.errorType ?? ''}: ${info?.errorMessage ?? ''}`,
    `  attempts      ${info?.attempts ?? '?'}`,
    `  first failure ${info?.firstFailureAt ?? '?'}`,
    `  last failure  ${info?.lastFailureAt ?? '?'}  on ${info?.host || '?'}`,
    `  replays       ${entry.replayCount}`,
  ];
  if (info?.errorStack) lines.push(`  stack         ${info.errorStack.split(' | ').join('\n                ')}`);
  if (event) {
    const { data, ...attributes } = event;
    lines.push(`  attributes    ${JSON.stringify(attributes, null, 2).replace(/\n/g, '\n  ')}`);
    lines.push(
      `  data          ${data === undefined ? '(none)' : JSON.stringify(data, null, 2).replace(/\n/g, '\n  ')}`,
    );
  } else lines.push(`  undecodable   ${entry.decodeError ?? ''}`);
  return lines.join('\n');
}

function where(targets: readonly DeadLetterTarget[]): string {
  return targets.length === 1 ? `${targets[0]?.channel}/${targets[0]?.group}` : `${targets.length} groups`;
}

const AGE = /^(\d+)(s|m|h|d)$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `--since 2h` (an age) or `--since 2026-12-06T10:00:00Z`. */
function time(value: string | undefined, name: string): Date | undefined {
  if (value === undefined) return undefined;
  const age = AGE.exec(value);
  if (age) return new Date(Date.now() - Number(age[1]) * UNIT_MS[age[2] as keyof typeof UNIT_MS]);
  const at = Date.parse(value);
  if (Number.isNaN(at))
    throw new UsageError(`--${name} must be an ISO time or an age such as 30m, 2h, 1d; got "${value}"`);
  return new Date(at);
}

/** Dead-letter targets: a contract's receive groups, the saga's, or one channel's named groups. */
async function targetsOf(values: {
  spec?: string | undefined;
  channel?: string | undefined;
  group?: string[] | undefined;
  saga?: boolean | undefined;
  namespace?: string | undefined;
}): Promise<DeadLetterTarget[]> {
  if (values.spec !== undefined) {
    if (values.saga) throw new UsageError('give --spec or --saga, not both');
    const { groups } = await loadContractGroups(values.spec);
    const picked = groups
      .filter((g) => values.channel === undefined || g.channel === values.channel)
      .filter((g) => !values.group?.length || values.group.includes(g.group))
      .map(({ channel, group }) => ({ channel, group }));
    if (picked.length === 0)
      throw new UsageError(`the contract ${values.spec} names no such receiving channel and group`);
    return picked;
  }
  return groupTargets(values);
}
