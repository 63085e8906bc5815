import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { importAdapterModule, parseBrokerUrl } from '@wharf/core';
import { brokersRequired, probeBroker } from './broker.js';

/*
 * Helpers for the tests of packages that run on every broker (metrics, tracing…), so that each does
 * not restate the brokers' addresses, the Kafka settings that make a test take seconds, the
 * skip-or-fail rule and the README example check.
 */

/** The real brokers, at the URLs the adapters' own suites use (`WHARF_<BROKER>_URL` overrides). */
export const TEST_BROKERS = [
  { name: 'rabbitmq', url: process.env.WHARF_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672', port: 5672 },
  { name: 'kafka', url: process.env.WHARF_KAFKA_URL ?? 'kafka://127.0.0.1:9092', port: 9092 },
  { name: 'nats', url: process.env.WHARF_NATS_URL ?? 'nats://127.0.0.1:4222', port: 4222 },
] as const;

/**
 * Deletes a test's channel and its groups' queues, topics or streams on the broker at `url`, through
 * the adapter package's `conformanceHarness().cleanup` (nothing to delete on memory://, whose
 * brokers live in the process). `retryDelaysMs`: the retry tiers to delete where only the process
 * that declared them knows them (RabbitMQ), when a child process did.
 */
export async function deleteTestTopology(
  url: string,
  channel: string,
  groups: readonly string[],
  retryDelaysMs?: readonly number[],
): Promise<void> {
  const harness = (await importAdapterModule(url)).conformanceHarness as
    | ((url: string) => {
        cleanup?: (channel: string, groups: readonly string[], retryDelaysMs?: readonly number[]) => Promise<void>;
      })
    | undefined;
  await harness?.(url).cleanup?.(channel, groups, retryDelaysMs);
}

/**
 * `adapterOptions` for tests, by broker name. Kafka: the settings of the Kafka suite's own tests —
 * a short session and heartbeat so group joins and departures settle fast (6 s is the broker's
 * minimum session timeout), short long-polls so due retries are picked up at once.
 */
export const TEST_ADAPTER_OPTIONS: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  kafka: {
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 300,
    rebalanceTimeoutMs: 10_000,
    maxWaitTimeMs: 100,
    commitIntervalMs: 200,
    releaseBackoffMs: 100,
    connectTimeoutMs: 10_000,
  },
};

/**
 * Resolves `true` when the broker at `url` answers. Otherwise skips the test (locally) or throws
 * (under CI or `WHARF_REQUIRE_BROKERS`), saying why, prefixed with `tag`.
 */
export async function requireBroker(
  ctx: { skip(note?: string): void },
  tag: string,
  broker: { readonly name: string; readonly url: string; readonly port: number },
): Promise<boolean> {
  const host = parseBrokerUrl(broker.url).hosts[0];
  const reason = await probeBroker(broker.name, host?.host ?? '127.0.0.1', host?.port ?? broker.port);
  if (reason === undefined) return true;
  if (brokersRequired()) throw new Error(`[${tag}] the ${broker.name} test needs its broker: ${reason}`);
  console.warn(`[${tag}] skipping the ${broker.name} test: ${reason}`);
  ctx.skip(reason);
  return false;
}

/** A README's example, the file it must equal, and what running that file printed. */
export interface ReadmeExample {
  /** The ```ts block after `<!-- readme-example -->`, or undefined when the README has none. */
  readonly block: string | undefined;
  readonly fixture: string;
  /** The ``` block after "prints", or undefined. */
  readonly printed: string | undefined;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Reads a README's example and runs the fixture it must be identical to (TypeScript, through tsx,
 * against the packages' sources, with `WHARF_BROKER=memory://`), from `cwd` (the repository root).
 */
export function readmeExample(readmePath: string, fixturePath: string, cwd: string): ReadmeExample {
  const readme = readFileSync(readmePath, 'utf8');
  const run = spawnSync(process.execPath, ['--conditions=wharf-source', '--import', 'tsx', fixturePath], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, WHARF_BROKER: 'memory://' },
  });
  return {
    block: /<!-- readme-example -->\s*```ts\n([\s\S]*?)```/.exec(readme)?.[1],
    fixture: readFileSync(fixturePath, 'utf8'),
    printed: /prints\s*```\n([\s\S]*?)```/.exec(readme)?.[1],
    stdout: run.stdout,
    stderr: run.stderr,
  };
}
