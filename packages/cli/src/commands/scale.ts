import { createBus, redactUrl } from '@wharf/core';
import { brokerUrl, parse, UsageError } from '../args.js';
import { retryDelays, toRow } from '../backlog.js';
import { json, type Output } from '../output.js';
import { decideReplicas } from '../scale.js';

export const scaleUsage = `wharf scale --channel <channel> --group <group> --capacity <events/s per replica> [--broker <url>] [--retry-delays MS,MS] [--json]

Applies replicas = ceil(backlog × 1.2 / capacity) to the group's backlog as the broker counts it
now, where backlog = ready + in flight (events held for a retry wait for their time, not for
replicas, and dead letters for an operator), and prints the inputs and the result. The rule sizes
for working off the backlog within a second with 20 % headroom: to allow T seconds, pass
capacity × T. On Kafka the result is capped at the channel topic's partition count: more replicas
would idle. An empty backlog gives 0 (scale to zero, or keep a minimum in your autoscaler).

--json   { broker, channel, group, backlog: { ready, inFlight, delayed, deadLetters, consumers?, maxConsumers? },
           rule, inputs: { backlog, capacity, headroom }, uncapped, cap, replicas }`;

export async function scale(argv: string[], output: Output): Promise<number> {
  const { values } = parse(argv, {
    broker: { type: 'string' },
    channel: { type: 'string' },
    group: { type: 'string' },
    capacity: { type: 'string' },
    'retry-delays': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (!values.channel || !values.group) throw new UsageError('scale needs --channel and --group');
  const capacity = Number(values.capacity);
  if (values.capacity === undefined || !(Number.isFinite(capacity) && capacity > 0)) {
    throw new UsageError(
      `--capacity must be the events per second one replica handles, a number > 0, got "${values.capacity ?? ''}"`,
    );
  }
  const retry = retryDelays(values['retry-delays']);
  const url = brokerUrl(values.broker);
  const bus = createBus({ url });
  try {
    const target = { channel: values.channel, group: values.group };
    const row = toRow(target, await bus.backlog(target.channel, target.group, retry ? { retry } : {}));
    const decision = decideReplicas({ backlog: row.ready + row.inFlight, capacity, cap: row.maxConsumers });
    if (values.json) {
      json(output, {
        broker: redactUrl(url),
        channel: row.channel,
        group: row.group,
        backlog: row,
        rule: 'replicas = ceil(backlog × 1.2 / capacity)',
        inputs: { backlog: decision.backlog, capacity, headroom: decision.headroom },
        uncapped: decision.uncapped,
        cap: decision.cap ?? null,
        replicas: decision.replicas,
      });
      return 0;
    }
    const capped =
      decision.cap !== undefined && decision.uncapped > decision.cap
        ? ` (${decision.uncapped} capped at ${decision.cap}: the channel has ${decision.cap} partitions)`
        : '';
    output.out(
      [
        `${row.channel}/${row.group} on ${redactUrl(url)}`,
        `backlog    ${decision.backlog} = ready ${row.ready} + in flight ${row.inFlight}  (delayed ${row.delayed}, dead letters ${row.deadLetters} not counted)`,
        `consumers  ${row.consumers ?? 'unknown'}${row.maxConsumers !== undefined ? ` (at most ${row.maxConsumers} receive at once)` : ''}`,
        `capacity   ${capacity} events/s per replica`,
        `replicas = ceil(${decision.backlog} × ${decision.headroom} / ${capacity}) = ${decision.uncapped}`,
        `replicas   ${decision.replicas}${capped}`,
      ].join('\n'),
    );
    return 0;
  } finally {
    await bus.close();
  }
}
