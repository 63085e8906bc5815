import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brokersRequired } from '@wharf/conformance';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wharf } from './wharf.js';

// `wharf brokers up secure` starts a RabbitMQ node, nats-server and a Kafka node (java) of its own: all must be installed.
const missing = [
  process.env.WHARF_RABBITMQ_SERVER ?? '/usr/lib/rabbitmq/bin/rabbitmq-server',
  process.env.WHARF_NATS_SERVER ?? '/usr/sbin/nats-server',
].filter((binary) => !existsSync(binary));
const unavailable = missing.length > 0 ? `not installed: ${missing.join(', ')}` : undefined;
if (unavailable && brokersRequired()) throw new Error(`[wharf] secure broker tests: ${unavailable}`);
if (unavailable) process.stdout.write(`[wharf] secure broker tests skipped: ${unavailable}\n`);

interface Endpoint {
  url: string;
  args: string[];
}

/**
 * The CLI end to end over mutual TLS: `brokers up secure --json`, the conformance suite and the saga
 * with the printed flags on RabbitMQ and NATS, a wrong password, `brokers down secure`. Every byte any
 * of those runs printed is kept, and checked at the end for the passwords and private keys used.
 */
describe.skipIf(unavailable !== undefined)('wharf over mutual TLS (brokers up secure)', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'wharf-cli-secure-')), 'brokers');
  const outputs: string[] = [];
  let endpoints: { rabbitmq: Endpoint; nats: Endpoint; kafka: Endpoint };
  const run = async (...args: string[]) => {
    const result = await wharf(...args);
    outputs.push(result.stdout, result.stderr);
    return result;
  };

  beforeAll(async () => {
    process.env.WHARF_SECURE_DIR = dir;
    const up = await run('brokers', 'up', 'secure', '--json');
    expect(up.code, up.stderr).toBe(0);
    endpoints = JSON.parse(up.stdout);
  }, 180_000);

  afterAll(async () => {
    const down = await run('brokers', 'down', 'secure');
    delete process.env.WHARF_SECURE_DIR;
    expect(down.code).toBe(0);
    expect(existsSync(dir)).toBe(false);
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }, 60_000);

  it('--json prints each broker’s URL and the flags that reach it, nothing else on stdout', () => {
    for (const [scheme, endpoint] of [
      ['amqps:', endpoints.rabbitmq],
      ['tls:', endpoints.nats],
    ] as const) {
      expect(new URL(endpoint.url).protocol).toBe(scheme);
      expect(endpoint.args.slice(0, 2)).toEqual(['--broker', endpoint.url]);
      for (const flag of ['--tls-ca', '--tls-cert', '--tls-key', '--username', '--password-file']) {
        const file = endpoint.args[endpoint.args.indexOf(flag) + 1];
        expect(file, flag).toBeDefined();
        if (flag !== '--username') expect(existsSync(file as string), `${flag} ${file}`).toBe(true);
      }
    }
    // Kafka: the SASL_SSL listener, where the password authenticates (no client certificate).
    expect(new URL(endpoints.kafka.url).protocol).toBe('kafkas:');
    expect(endpoints.kafka.url).toContain('mechanism=scram-sha-512');
    expect(endpoints.kafka.args.slice(0, 2)).toEqual(['--broker', endpoints.kafka.url]);
    for (const flag of ['--tls-ca', '--username', '--password-file']) {
      expect(endpoints.kafka.args, flag).toContain(flag);
    }
  });

  it('a second up finds the running brokers instead of starting others', async () => {
    const again = await run('brokers', 'up', 'secure', '--json');
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual(endpoints);
  });

  // Kafka's suite over SASL_SSL runs in adapters/kafka/test/conformance-secure.test.ts, on both
  // clients; here its flags are proven by the saga below.
  it.each(['rabbitmq', 'nats'] as const)(
    'the conformance suite passes on %s over TLS with a password',
    async (kind) => {
      const result = await run('conformance', ...endpoints[kind].args, '--json');
      const report = JSON.parse(result.stdout) as { passed: number; failed: number; cases: { failure?: string }[] };
      expect(report.failed, JSON.stringify(report.cases.filter((c) => c.failure))).toBe(0);
      expect(report.passed).toBeGreaterThanOrEqual(20);
      expect(result.code).toBe(0);
    },
    240_000,
  );

  it.each(['rabbitmq', 'nats', 'kafka'] as const)(
    'the saga keeps its invariants on %s over TLS',
    async (kind) => {
      const result = await run('saga', ...endpoints[kind].args, '--orders', '20', '--seed', '3', '--json');
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout).ok).toBe(true);
    },
    120_000,
  );

  it('a wrong password fails the run with the typed error and without printing the password', async () => {
    const wrong = join(dir, 'wrong.password');
    writeFileSync(wrong, 'Wr0ng-pa55word-for-the-test', { mode: 0o600 });
    const args = [...endpoints.nats.args];
    args[args.indexOf('--password-file') + 1] = wrong;
    const result = await run('saga', ...args, '--orders', '1', '--broker-wait', '5', '--json');
    expect(result.code).not.toBe(0);
    expect(`${result.stdout}${result.stderr}`).toMatch(/rejected the credentials/);
  }, 60_000);

  // Last: it reads every output of the runs above.
  it('no output of any run contains a password or a private key', () => {
    const secrets = [
      'Wr0ng-pa55word-for-the-test',
      ...readdirSync(dir)
        .filter((name) => name.endsWith('.password'))
        .map((name) => readFileSync(join(dir, name), 'utf8')),
      ...readdirSync(join(dir, 'certs'))
        .filter((name) => name.endsWith('.key'))
        .map((name) => readFileSync(join(dir, 'certs', name), 'utf8').split('\n')[1] as string),
    ];
    expect(secrets.length).toBeGreaterThanOrEqual(5);
    expect(outputs.length).toBeGreaterThanOrEqual(14);
    const all = outputs.join('\n');
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(16);
      expect(all.includes(secret), `a secret (${secret.slice(0, 4)}…) appears in the output`).toBe(false);
    }
  });
});
