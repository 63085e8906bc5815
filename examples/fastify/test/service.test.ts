import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startProxy } from '@wharf/chaos';
import { requireBroker, TEST_BROKERS } from '@wharf/conformance';
import { ClosedError } from '@wharf/core';
import { createTestBus, type TestBus } from '@wharf/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { CHANNEL, createService, GROUP, type Service } from '../src/index.js';

let kit: TestBus | undefined;
let service: Service | undefined;
afterEach(async () => {
  await service?.stop();
  await kit?.close();
  service = undefined;
  kit = undefined;
});

const post = (base: string, body: unknown) =>
  fetch(`${base}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

/** Polls `/ready` until it answers `status`, at most `ms`. */
async function readyBecomes(base: string, status: number, ms: number): Promise<{ status: number; body: unknown }> {
  const deadline = Date.now() + ms;
  for (;;) {
    const response = await fetch(`${base}/ready`);
    const body = await response.json();
    if (response.status === status || Date.now() > deadline) return { status: response.status, body };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('a Fastify service with Wharf inside', () => {
  it('starts, handles an event, and shuts down cleanly', async () => {
    kit = createTestBus();
    service = createService({ bus: kit.bus });
    expect((await service.app.inject({ url: '/ready' })).statusCode).toBe(503);
    const base = await service.start();
    expect(service.state).toBe('ready');
    expect(await (await fetch(`${base}/health`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${base}/ready`);
    expect([ready.status, await ready.json()]).toEqual([200, { status: 'ready', broker: 'up' }]);

    const accepted = await post(base, { orderId: 'o-1', total: 1999 });
    expect(accepted.status).toBe(202);
    expect((await post(base, { orderId: 'o-2', total: -1 })).status).toBe(400);
    await kit.settled();
    expect(kit.published(CHANNEL).map((e) => e.data)).toEqual([{ orderId: 'o-1', total: 1999 }]);
    expect(kit.consumed(CHANNEL, GROUP)).toHaveLength(1);
    expect(await (await fetch(`${base}/charges/o-1`)).json()).toEqual({ orderId: 'o-1', total: 1999 });

    await service.stop();
    expect(service.state).toBe('stopped');
    await expect(fetch(`${base}/health`)).rejects.toThrow();
    await expect(kit.bus.publish(CHANNEL, { type: 'OrderPlaced', data: {} })).rejects.toBeInstanceOf(ClosedError);
  });

  it('lets a running handler finish before the bus closes', async () => {
    kit = createTestBus();
    service = createService({ bus: kit.bus, chargeMs: 200 });
    const base = await service.start();
    await post(base, { orderId: 'o-slow', total: 5 });
    // The handler is charging now; stop while it runs.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(service.charges.has('o-slow')).toBe(false);
    await service.stop();
    expect(service.charges.get('o-slow')).toBe(5);
    expect(kit.settlements(CHANNEL, GROUP).map((s) => s.outcome)).toEqual(['acked']);
  });

  it('turns /ready to 503 while the RabbitMQ connection is down, and back once it reconnects', {
    timeout: 60_000,
  }, async (ctx) => {
    const rabbit = TEST_BROKERS.find((b) => b.name === 'rabbitmq')!;
    if (!(await requireBroker(ctx, 'fastify', rabbit))) return;
    const proxy = await startProxy({ target: rabbit.port });
    try {
      kit = createTestBus({ broker: `amqp://guest:guest@127.0.0.1:${proxy.port}` });
      service = createService({ bus: kit.bus, readyTimeoutMs: 500 });
      const base = await service.start();
      expect((await readyBecomes(base, 200, 5_000)).status).toBe(200);

      proxy.set({ kind: 'reset' });
      const down = await readyBecomes(base, 503, 10_000);
      expect(down.status).toBe(503);
      expect(down.body).toMatchObject({ status: 'broker-unavailable' });
      expect((await fetch(`${base}/health`)).status).toBe(200);

      proxy.heal();
      expect((await readyBecomes(base, 200, 30_000)).status).toBe(200);
      // And it works again: an order goes through the reconnected bus.
      expect((await post(base, { orderId: 'o-after', total: 7 })).status).toBe(202);
      await kit.settled();
      expect(service.charges.get('o-after')).toBe(7);
      await service.stop();
      await kit.close();
    } finally {
      await proxy.close();
    }
  });

  it('runs as a process and exits 0 on SIGTERM', { timeout: 60_000 }, async () => {
    const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
    const child = spawn(process.execPath, ['--conditions=wharf-source', '--import', 'tsx', main], {
      cwd: fileURLToPath(new URL('../../..', import.meta.url)),
      env: { ...process.env, PORT: '0', WHARF_BROKER: 'memory://' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    const base = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        const match = /listening on (http:\/\/\S+)/.exec(chunk.toString());
        if (match) resolve(match[1] as string);
      });
      child.once('exit', (code) => reject(new Error(`exited ${String(code)} before listening: ${output}`)));
    });
    expect((await post(base, { orderId: 'o-proc', total: 3 })).status).toBe(202);
    // The child's own bus: poll what it reports until its handler has run.
    let charge: Response | undefined;
    for (let i = 0; i < 100 && charge?.status !== 200; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 50));
      charge = await fetch(`${base}/charges/o-proc`);
    }
    expect(await charge?.json()).toEqual({ orderId: 'o-proc', total: 3 });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).toBe('');
  });
});
