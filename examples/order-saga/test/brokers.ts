import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { SAGA_RETRY } from '../src/host.js';
import { channelGroups, type SagaSummary } from '../src/index.js';

/** The real brokers the saga must behave identically on, with their local default URLs. */
export const BROKERS = [
  { name: 'rabbitmq', url: process.env.WHARF_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672' },
  { name: 'kafka', url: process.env.WHARF_KAFKA_URL ?? 'kafka://127.0.0.1:9092' },
  { name: 'nats', url: process.env.WHARF_NATS_URL ?? 'nats://127.0.0.1:4222' },
] as const;

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/**
 * Starts a fixture in its own Node process on the TypeScript sources, as `wharf` would run the
 * saga: adapters load by URL like in production, outside the test runner's module graph.
 */
export function spawnFixture(
  name: string,
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): ChildProcess {
  const report = ['--report-on-signal', '--report-signal=SIGUSR2', `--report-directory=${REPORTS}`];
  return spawn(process.execPath, ['--conditions=wharf-source', ...report, '--import', 'tsx', fixture(name), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

const REPORTS = join(tmpdir(), 'wharf-saga-reports');
mkdirSync(REPORTS, { recursive: true });

interface NodeReport {
  javascriptStack?: { message?: string; stack?: string[] };
  libuv?: {
    type: string;
    is_active?: boolean;
    is_referenced?: boolean;
    remoteEndpoint?: { host: string; port: number };
    localEndpoint?: { port: number };
    timeout?: number;
  }[];
}

/**
 * What keeps a fixture process alive: its Node diagnostic report (SIGUSR2), reduced to the active,
 * referenced libuv handles (sockets with their peers, timers) and its JavaScript stack. A run that
 * does not end says why in the failure, not only that it hung.
 */
export async function whatKeepsItAlive(child: ChildProcess): Promise<string> {
  if (child.exitCode !== null || child.pid === undefined) return `(exited with ${child.exitCode})`;
  const pid = child.pid;
  child.kill('SIGUSR2');
  for (let waited = 0; waited < 5_000; waited += 100) {
    await sleep(100);
    const file = readdirSync(REPORTS).find((name) => name.includes(`.${pid}.`) && name.endsWith('.json'));
    if (file === undefined) continue;
    try {
      const report = JSON.parse(readFileSync(join(REPORTS, file), 'utf8')) as NodeReport;
      rmSync(join(REPORTS, file), { force: true });
      const handles = (report.libuv ?? [])
        .filter((h) => h.is_active && h.is_referenced !== false)
        .map((h) =>
          h.remoteEndpoint
            ? `${h.type} ${h.localEndpoint?.port ?? '?'}->${h.remoteEndpoint.host}:${h.remoteEndpoint.port}`
            : h.timeout !== undefined
              ? `${h.type} (${h.timeout} ms)`
              : h.type,
        );
      return `active handles: ${handles.join(', ') || 'none'}\nstack: ${(report.javascriptStack?.stack ?? []).slice(0, 8).join(' | ')}`;
    } catch {
      // written but not complete yet
    }
  }
  return '(no diagnostic report within 5 s)';
}

/** Brokers are required (a missing one fails) under CI or WHARF_REQUIRE_BROKERS, as in scripts/test.mjs. */
export function brokersRequired(): boolean {
  return ['CI', 'WHARF_REQUIRE_BROKERS'].some((name) => {
    const value = process.env[name];
    return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
  });
}

/**
 * Skips a test whose broker cannot be used, printing why — or fails it under CI, where every
 * broker must be there.
 */
export function skipOrFail(ctx: { skip(note?: string): void }, what: string, reason: string): void {
  if (brokersRequired()) throw new Error(`[saga] ${what} needs its broker (CI / WHARF_REQUIRE_BROKERS): ${reason}`);
  console.warn(`[saga] skipping ${what}: ${reason}`);
  ctx.skip(reason);
}

/** Runs the saga in a child process: the summary, or why the broker cannot be used. */
export async function runSagaProcess(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<{ summary: SagaSummary; unavailable?: undefined } | { unavailable: string; summary?: undefined }> {
  const child = spawnFixture('saga.ts', args, env);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const last = stdout.trim().split('\n').pop() ?? '';
  if (code === 3) {
    const { unavailable } = JSON.parse(last) as { unavailable: string };
    return { unavailable };
  }
  if (code !== 0) throw new Error(`the saga process exited with ${code}:\n${stderr.slice(-4000)}`);
  return { summary: JSON.parse(last) as SagaSummary };
}

/** Why a broker cannot be used (not running, adapter missing), or undefined when it answers. */
export async function probeBroker(url: string): Promise<string | undefined> {
  const child = spawnFixture('probe.ts', [url]);
  let stdout = '';
  child.stdout?.on('data', (chunk) => {
    stdout += chunk;
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code === 0) return undefined;
  return stdout.trim() || `the probe exited with ${code}`;
}

/** A channel namespace of its own for one test, so saga runs sharing a broker never see each other's events. */
export function testNamespace(label: string): string {
  return `t${label}-${randomBytes(3).toString('hex')}`;
}

/**
 * Deletes everything a saga run declared in `namespace` (channel queues/topics/streams, retry tiers,
 * dead letters), through the adapter's own harness. Never throws: a broker that is gone has nothing left.
 */
export async function deleteNamespace(url: string, namespace: string): Promise<void> {
  const scheme = url.slice(0, url.indexOf(':'));
  const pkg = { amqp: '@wharf/rabbitmq', amqps: '@wharf/rabbitmq', kafka: '@wharf/kafka', nats: '@wharf/nats' }[scheme];
  if (!pkg) return;
  const { conformanceHarness } = (await import(pkg)) as {
    conformanceHarness(url: string): {
      cleanup(channel: string, groups: readonly string[], retryDelaysMs?: readonly number[]): Promise<void>;
    };
  };
  const harness = conformanceHarness(url);
  // The saga's child process declared the retry tiers: name them, or their queues outlive the test
  // (153 RabbitMQ quorum queues per CI run piled up on the shared node until it wedged).
  for (const [channel, groups] of channelGroups(namespace)) {
    await harness.cleanup(channel, groups, SAGA_RETRY.delays ?? []).catch((error: unknown) => {
      console.warn(`[saga] could not delete ${channel} on ${url}: ${String(error)}`);
    });
  }
}
