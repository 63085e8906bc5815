import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { probeBroker } from '@wharf/conformance';
import { parse, UsageError } from '../args.js';
import type { Output } from '../output.js';
import { repoRoot } from '../repo.js';

export const brokersUsage = `wharf brokers up|down|status [kafka|rabbitmq|nats|all]

Local brokers without Docker. Kafka runs from the official jars on Maven Central (scripts/kafka.sh);
RabbitMQ and NATS are expected as system services — status says how to start one that is down.
With Docker: docker compose -f scripts/docker-compose.yml up -d`;

const SYSTEM: Record<string, { port: number; start: string }> = {
  rabbitmq: { port: 5672, start: 'rabbitmq-server -detached' },
  nats: {
    port: 4222,
    start:
      'start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log',
  },
};

export async function brokers(argv: string[], output: Output): Promise<number> {
  const { positionals } = parse(argv, {});
  const [action, which = 'all'] = positionals;
  if (action !== 'up' && action !== 'down' && action !== 'status')
    throw new UsageError('brokers needs up, down or status');
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
