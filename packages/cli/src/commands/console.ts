import { loadContractGroups, loadPayloadValidator } from '@wharf/asyncapi';
import { startConsole } from '@wharf/console';
import { createBus, type DeadLetterTarget, redactUrl } from '@wharf/core';
import { brokerUrl, parse, positiveInt, UsageError } from '../args.js';
import { targetsOf } from '../backlog.js';
import type { Output } from '../output.js';

export const consoleUsage = `wharf console --broker <url> (--spec <asyncapi.yaml> | --channel <c> --group <g>… | --saga)
              [--port 8080] [--host 127.0.0.1] [--token T] [--allow-edit] [--refresh-ms 1000]

Serves a web page to see and fix dead letters: each group's backlog, in flight and dead letters,
live; dead letters grouped by reason and error type, with filters and search; the detail of one;
replay one, a selection or a whole group; purge with a typed confirmation; and, with --allow-edit,
edit-and-replay (a new id, correlated to the original; an edited payload that breaks the contract
given with --spec is refused before it is sent).

It binds 127.0.0.1 unless --host says otherwise and prints the address to open, with its access
token (random unless --token): every request needs it, actions also a CSRF token, and the broker's
credentials never reach the page. Stop it with Ctrl-C.`;

export async function consoleCommand(argv: string[], output: Output): Promise<number> {
  const { values } = parse(argv, {
    broker: { type: 'string' },
    spec: { type: 'string' },
    channel: { type: 'string' },
    group: { type: 'string', multiple: true },
    saga: { type: 'boolean' },
    namespace: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    token: { type: 'string' },
    'allow-edit': { type: 'boolean' },
    'refresh-ms': { type: 'string' },
  });
  let targets: DeadLetterTarget[];
  if (values.spec !== undefined) {
    const { groups } = await loadContractGroups(values.spec);
    targets = groups
      .filter((g) => values.channel === undefined || g.channel === values.channel)
      .filter((g) => !values.group?.length || values.group.includes(g.group))
      .map(({ channel, group }) => ({ channel, group }));
    if (targets.length === 0)
      throw new UsageError(`the contract ${values.spec} names no such receiving channel and group`);
  } else targets = await targetsOf(values);
  const port = values.port === undefined ? 8080 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    throw new UsageError(`--port must be 0-65535, got "${values.port}"`);
  const url = brokerUrl(values.broker);
  const validator = values.spec !== undefined ? await loadPayloadValidator(values.spec) : undefined;
  const bus = createBus({ url, ...(validator ? { validator } : {}) });
  const server = await startConsole({
    bus,
    targets,
    port,
    host: values.host,
    token: values.token,
    allowEdit: values['allow-edit'] ?? false,
    refreshMs: positiveInt(values['refresh-ms'], 'refresh-ms', 1_000),
  });
  output.err(`wharf console for ${redactUrl(url)}: ${targets.length} channel groups`);
  output.out(`open ${server.url}`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  await bus.close();
  return 0;
}
