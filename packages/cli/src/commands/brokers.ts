import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { probeBroker } from '@wharf/conformance';
import { parse, UsageError } from '../args.js';
import { json, type Output } from '../output.js';
import { repoRoot } from '../repo.js';
import { secureDown, secureUp } from '../secure.js';

export const brokersUsage = `wharf brokers up|down|status [kafka|rabbitmq|nats|all]
wharf brokers up|down secure [--json]

Local brokers without Docker. Kafka runs from the official jars on Maven Central (scripts/kafka.sh);
RabbitMQ and NATS are expected as system services — status says how to start one that is down.
With Docker: docker compose -f scripts/docker-compose.yml up -d

secure: a second RabbitMQ node, nats-server and a Kafka node beside the plain ones, on their own free
ports, TLS only with client certificates required (mutual TLS; Kafka also has a SASL_SSL listener
with SCRAM that asks for none), users with limited rights, and certificates made with openssl at
start (in WHARF_SECURE_DIR, default $TMPDIR/wharf-secure-$USER). Prints each URL and the wharf flags
that reach it (--json: { rabbitmq: { url, args }, nats: { url, args }, kafka: { url, args } });
conformance, saga, bench and dlq take those flags; wharf saga --secure --broker rabbitmq|nats|kafka runs
every saga service as a least-privilege user of its own on them. down stops them and deletes the directory.`;

const SYSTEM: Record<string, { port: number; start: string }> = {
  rabbitmq: { port: 5672, start: 'rabbitmq-server -detached' },
  nats: {
    port: 4222,
    start:
      'start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log',
  },
};

async function secure(action: 'up' | 'down' | 'status', asJson: boolean, output: Output): Promise<number> {
  if (action === 'down') {
    const stopped = await secureDown();
    output.err(stopped ? 'secure brokers stopped and their directory removed' : 'no secure brokers were running');
    return 0;
  }
  if (action === 'status')
    throw new UsageError('brokers status secure: use brokers up secure (it reports running ones)');
  output.err('starting the secure brokers (certificates, RabbitMQ node, nats-server, Kafka node)…');
  const { state, started } = await secureUp();
  const { rabbitmq, nats, kafka } = state;
  if (asJson) {
    json(output, { ...(rabbitmq ? { rabbitmq } : {}), ...(nats ? { nats } : {}), ...(kafka ? { kafka } : {}) });
    return 0;
  }
  output.out(
    `secure brokers ${started ? 'started' : 'already running'} (files in ${state.dir}); stop them with: wharf brokers down secure`,
  );
  for (const [name, endpoint] of Object.entries({ rabbitmq, nats, kafka })) {
    if (endpoint) output.out(`${name}: ${endpoint.url}\n  wharf conformance ${endpoint.args.join(' ')}`);
  }
  return 0;
}

export async function brokers(argv: string[], output: Output): Promise<number> {
  const { positionals, values } = parse(argv, { json: { type: 'boolean' } });
  const [action, which = 'all'] = positionals;
  if (action !== 'up' && action !== 'down' && action !== 'status')
    throw new UsageError('brokers needs up, down or status');
  if (which === 'secure') return secure(action, values.json === true, output);
  if (!['kafka', 'rabbitmq', 'nats', 'all'].includes(which)) throw new UsageError(`unknown broker "${which}"`);
  let failed = false;
  if (which === 'kafka' || which === 'all') {
    const root = repoRoot();
    if (!root)
      throw new UsageError(
        'brokers kafka needs a Wharf checkout (scripts/kafka.sh); with Docker use scripts/docker-compose.yml',
      );
    const result = spawnSync('bash', [join(root, 'scripts', 'kafka.sh'), action], { stdio: 'inherit' });
    if (result.status !== 0) failed = true;
  }
  for (const name of ['rabbitmq', 'nats'] as const) {
    if (which !== name && which !== 'all') continue;
    const { port, start } = SYSTEM[name] as { port: number; start: string };
    const down = await probeBroker(name, '127.0.0.1', port);
    if (action === 'down') {
      output.err(`${name} is a system service here; stop it with your service manager`);
      continue;
    }
    if (down === undefined) output.out(`${name}: running on 127.0.0.1:${port}`);
    else {
      output.out(`${name}: ${down} — start it with: ${start}`);
      failed = true;
    }
  }
  return failed ? 1 : 0;
}
