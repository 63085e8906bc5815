import { createBus, redactUrl } from '@wharf/core';
import { brokerUrl, parse, positiveInt, UsageError } from '../args.js';
import { formatTable, readBacklogs, retryDelays, targetsOf } from '../backlog.js';
import { json, type Output } from '../output.js';

export const statusUsage = `wharf status --channel <channel> --group <group> [--group <group>…] [--broker <url>] [--json]
wharf status --saga [--namespace NS] [--broker <url>] [--json]
   options: [--retry-delays MS,MS] [--watch [--interval SECONDS] [--iterations N]]

Prints each group's backlog as the broker counts it: ready (waiting for a subscriber), in flight
(handed to a subscriber, not yet settled), delayed (held for a retry), dead letters, and the
consumers attached where the broker knows them (-: it does not). Nothing is created on the broker.
Brokers cannot list a channel's groups, so name them, or use --saga for every channel and group of
the order saga (in --namespace NS when its run had one).

--retry-delays   the groups' retry delays (default 5000,30000), for RabbitMQ, whose retry tier
                 queues cannot be listed over AMQP; other brokers find their tiers themselves
--watch          reads again every --interval seconds (default 5) until interrupted, or --iterations times
--json           { broker, groups: [{ channel, group, ready, inFlight, delayed, deadLetters,
                 consumers? }], missing: [{ channel, group, error }] }; with --watch, one such object per line

Exit status 1 when a group named is not declared on the broker (it is listed under "missing").`;

export async function status(argv: string[], output: Output): Promise<number> {
  const { values } = parse(argv, {
    broker: { type: 'string' },
    channel: { type: 'string' },
    group: { type: 'string', multiple: true },
    saga: { type: 'boolean' },
    namespace: { type: 'string' },
    'retry-delays': { type: 'string' },
    watch: { type: 'boolean' },
    interval: { type: 'string' },
    iterations: { type: 'string' },
    json: { type: 'boolean' },
  });
  const targets = await targetsOf(values);
  const retry = retryDelays(values['retry-delays']);
  if (!values.watch && (values.interval !== undefined || values.iterations !== undefined)) {
    throw new UsageError('--interval and --iterations go with --watch');
  }
  const intervalMs = positiveInt(values.interval, 'interval', 5) * 1_000;
  const iterations = values.watch ? positiveInt(values.iterations, 'iterations', Number.POSITIVE_INFINITY) : 1;
  const url = brokerUrl(values.broker);
  const bus = createBus({ url });
  const stop = new AbortController();
  const interrupt = (): void => stop.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  let missingAny = false;
  try {
    for (let n = 0; n < iterations && !stop.signal.aborted; n++) {
      if (n > 0) await sleep(intervalMs, stop.signal);
      if (stop.signal.aborted) break;
      const { groups, missing } = await readBacklogs(bus, targets, retry);
      missingAny = missing.length > 0;
      if (values.json) {
        const report = { broker: redactUrl(url), at: new Date().toISOString(), groups, missing };
        if (values.watch) output.out(JSON.stringify(report));
        else json(output, report);
        continue;
      }
      const lines = [`${redactUrl(url)} at ${new Date().toISOString()}`];
      if (groups.length > 0) lines.push(formatTable(groups));
      for (const m of missing) lines.push(`not declared: ${m.channel}/${m.group}`);
      output.out(`${lines.join('\n')}\n`);
    }
    return missingAny ? 1 : 0;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    await bus.close();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
