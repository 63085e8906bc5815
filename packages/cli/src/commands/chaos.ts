import { BROKER_KINDS, type BrokerKind, type ChaosReport, runChaos, SCENARIO_NAMES } from '@wharf/chaos';
import { parse, positiveInt, UsageError } from '../args.js';
import { json, type Output } from '../output.js';

export const chaosUsage = `wharf chaos --broker <rabbitmq|kafka|nats|url> --scenario <name>|all [--events N] [--seed S] [--repeat R] [--client C] [--json]

Injects faults while a workload runs and judges it with a total-queue checker: lost, unexpected,
duplicate effects, stalls and pending publishes fail the run (exit code 1).

The faults need control of the broker process (kill -9, SIGSTOP, memory alarm), so chaos never
touches the broker you run: --broker names a KIND (rabbitmq, kafka, nats, or a URL whose scheme
says it: amqp://, kafka://, nats://; its host and port are ignored), and chaos starts a private
broker of that kind on free loopback ports with its own data, behind a fault proxy, and deletes it
at the end. Needs nats-server, rabbitmq-server, or Java 17 (Kafka from scripts/kafka.sh).

Scenarios: ${SCENARIO_NAMES.join(', ')}
--events   events per scenario (default 2000)
--repeat   rounds: every scenario runs R times on the same private broker (round r uses seed S+r-1);
           the report adds, per scenario, recovery time and duplicates as median and max
--client   Kafka only: the adapter's client, platformatic (default) or kafkajs
--json     one JSON object on stdout; progress goes to stderr`;

/** `--broker` as a kind: a kind name, or the scheme of a URL. */
export function chaosKind(value: string | undefined): BrokerKind {
  if (value === undefined) throw new UsageError('--broker is required (rabbitmq, kafka, nats, or a URL of one)');
  if ((BROKER_KINDS as readonly string[]).includes(value)) return value as BrokerKind;
  const scheme = /^([a-z]+):\/\//.exec(value)?.[1];
  if (scheme === 'amqp' || scheme === 'amqps') return 'rabbitmq';
  if (scheme === 'kafka' || scheme === 'nats') return scheme;
  throw new UsageError(
    `--broker "${value}" is not a broker chaos can run privately: use rabbitmq, kafka or nats (or an amqp://, kafka://, nats:// URL)`,
  );
}

export async function chaos(argv: string[], output: Output): Promise<number> {
  const { values } = parse(argv, {
    broker: { type: 'string' },
    scenario: { type: 'string' },
    events: { type: 'string' },
    seed: { type: 'string' },
    repeat: { type: 'string' },
    client: { type: 'string' },
    json: { type: 'boolean' },
  });
  const kind = chaosKind(values.broker);
  if (values.scenario === undefined)
    throw new UsageError(`--scenario is required: one of ${SCENARIO_NAMES.join(', ')}, or all`);
  const scenarios = values.scenario === 'all' ? 'all' : values.scenario.split(',').map((name) => name.trim());
  for (const name of scenarios === 'all' ? [] : scenarios) {
    if (!SCENARIO_NAMES.includes(name))
      throw new UsageError(`unknown scenario "${name}": use one of ${SCENARIO_NAMES.join(', ')}, or all`);
  }
  const events = positiveInt(values.events, 'events', 2_000);
  const seed = positiveInt(values.seed, 'seed', 1);
  const repeat = positiveInt(values.repeat, 'repeat', 1);
  if (values.client !== undefined && kind !== 'kafka')
    throw new UsageError(`--client chooses the Kafka adapter's client; ${kind} has one client`);
  if (values.broker?.includes('://'))
    output.err(
      `[wharf] [chaos] ${values.broker}: chaos runs a private ${kind} broker; the URL's host and port are not used`,
    );
  const report = await runChaos({
    kind,
    scenarios,
    events,
    seed,
    repeat,
    ...(values.client !== undefined ? { adapterOptions: { client: values.client } } : {}),
    log: (line) => output.err(line),
  });
  if (values.json) json(output, toJson(report));
  else output.out(table(report));
  return report.ok ? 0 : 1;
}

/** Exactly the documented `--json` shape. */
function toJson(report: ChaosReport): unknown {
  const perRound = report.summary.length;
  return {
    broker: report.broker,
    scenarios: report.scenarios.map((s, i) => ({
      name: s.name,
      round: Math.floor(i / perRound) + 1,
      published: s.published,
      confirmed: s.confirmed,
      consumed: s.consumed,
      lost: s.lost,
      unexpected: s.unexpected,
      duplicates: s.duplicates,
      duplicateEffects: s.duplicateEffects,
      recovered: s.recovered,
      pendingAtDeadline: s.pendingAtDeadline,
      stalled: s.stalled,
      recoveryMs: s.recoveryMs ?? null,
    })),
    summary: report.summary,
  };
}

function table(report: ChaosReport): string {
  const rows = report.scenarios.map(
    (s) =>
      `  ${s.ok ? 'ok    ' : 'FAILED'} ${s.name.padEnd(18)} confirmed ${s.confirmed}/${s.published}  consumed ${s.consumed}  lost ${s.lost}  unexpected ${s.unexpected}  duplicates ${s.duplicates}  dup-effects ${s.duplicateEffects}  recovered ${s.recovered}  pending ${s.pendingAtDeadline}  stalled ${s.stalled}  recovery ${s.recoveryMs ?? '-'} ms${s.error ? `  (${s.error})` : ''}`,
  );
  const rounds = report.summary[0]?.runs ?? 1;
  const summary =
    rounds > 1
      ? [
          `per scenario over ${rounds} rounds:`,
          ...report.summary.map(
            (s) =>
              `  ${s.ok ? 'ok    ' : 'FAILED'} ${s.name.padEnd(18)} faults ${s.faults}  lost ${s.lost}  dup-effects ${s.duplicateEffects}  duplicates median ${s.duplicates.median ?? '-'} max ${s.duplicates.max ?? '-'}  recovery median ${s.recoveryMs.median ?? '-'} ms max ${s.recoveryMs.max ?? '-'} ms`,
          ),
        ]
      : [];
  return [`chaos on a private ${report.broker} broker: ${report.ok ? 'ok' : 'FAILED'}`, ...rows, ...summary].join('\n');
}
