import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BROKERS, probeBroker, skipOrFail } from './brokers.js';

// A `--services` process whose broker cannot be used must exit with a clear error and a non-zero
// status, not hang: bad credentials at once, an unreachable broker once `--broker-wait` is over.
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const CLI = fileURLToPath(new URL('../../../packages/cli/src/bin.ts', import.meta.url));

async function runCli(args: readonly string[]): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, ['--conditions=wharf-source', '--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  child.stdout?.on('data', (chunk) => {
    stderr += chunk;
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, stderr, ms: Date.now() - started };
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('wharf saga --services when the broker cannot be used', () => {
  it('exits 1 with the broker error once --broker-wait is over', { timeout: 120_000 }, async () => {
    const port = await closedPort();
    const result = await runCli([
      'saga',
      '--broker',
      `nats://127.0.0.1:${port}`,
      '--services',
      'inventory',
      '--namespace',
      'tfatal',
      '--broker-wait',
      '1',
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`cannot start the saga on nats://127.0.0.1:${port}`);
  });

  it('exits 1 at once when the broker refuses the credentials', { timeout: 120_000 }, async (ctx) => {
    const rabbit = BROKERS.find((b) => b.name === 'rabbitmq')!;
    const unavailable = await probeBroker(rabbit.url);
    if (unavailable !== undefined) return skipOrFail(ctx, 'the bad-credentials case on RabbitMQ', unavailable);
    const url = new URL(rabbit.url);
    url.password = 'not-the-password';
    // No --broker-wait: refused credentials are not worth waiting for.
    const result = await runCli(['saga', '--broker', url.href, '--services', 'inventory', '--namespace', 'tfatal']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('refused the credentials');
  });
});
