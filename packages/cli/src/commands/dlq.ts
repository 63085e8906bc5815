import { createBus, redactUrl } from '@wharf/core';
import { brokerUrl, parse, positiveInt, UsageError } from '../args.js';
import { json, type Output } from '../output.js';

export const dlqUsage = `wharf dlq list   --channel <channel> --group <group> [--broker <url>] [--limit N] [--json]
wharf dlq replay --channel <channel> --group <group> [--broker <url>] [--limit N] [--json]

list shows dead letters with their reason and error; replay publishes them back to their channel
(fresh attempt counter, "replayed" marker) and removes each once the broker accepted it.`;

export async function dlq(argv: string[], output: Output): Promise<number> {
  const { values, positionals } = parse(argv, {
    broker: { type: 'string' },
    channel: { type: 'string' },
    group: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
  });
  const [action] = positionals;
  if (action !== 'list' && action !== 'replay') throw new UsageError('dlq needs an action: list or replay');
  if (!values.channel || !values.group) throw new UsageError('dlq needs --channel and --group');
  const limit = positiveInt(values.limit, 'limit', 100);
  const url = brokerUrl(values.broker);
  const bus = createBus({ url });
  try {
    if (action === 'replay') {
      const replayed = await bus.replayDeadLetters(values.channel, values.group, { limit });
      if (values.json) json(output, { broker: redactUrl(url), channel: values.channel, group: values.group, replayed });
      else output.out(`replayed ${replayed} dead letters to ${values.channel}`);
      return 0;
    }
    const list = await bus.listDeadLetters(values.channel, values.group, { limit });
    if (values.json) {
      json(output, { broker: redactUrl(url), channel: values.channel, group: values.group, deadLetters: list });
      return 0;
    }
    output.out(`${list.length} dead letters on ${values.channel}/${values.group}`);
    for (const d of list) {
      const what = d.event ? `${d.event.type} ${d.event.id}` : `undecodable: ${d.decodeError ?? ''}`;
      output.out(
        `- ${what}\n  ${d.info?.reason ?? '?'} after ${d.info?.attempts ?? '?'} attempts: ${d.info?.errorType ?? ''} ${d.info?.errorMessage ?? ''}`,
      );
    }
    return 0;
  } finally {
    await bus.close();
  }
}
