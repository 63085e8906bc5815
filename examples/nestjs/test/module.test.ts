import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Controller, type INestApplicationContext, Injectable, Module, Scope } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { deleteTestTopology, requireBroker, TEST_BROKERS } from '@wharf/conformance';
import { Bus, ClosedError, type CloudEvent, ConfigError, createBus, silentLogger, WharfError } from '@wharf/core';
import { createTestBus, type TestBus } from '@wharf/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AppModule,
  BILLING,
  Billing,
  OnEvent,
  ORDERS,
  Orders,
  PAYMENTS,
  RECEIPTS,
  Receipts,
  type SampleSettings,
  WharfModule,
  WharfRuntime,
} from '../src/index.js';

const unique = (label: string): string => `${label}-${randomBytes(4).toString('hex')}`;
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

const rabbit = TEST_BROKERS.find((b) => b.name === 'rabbitmq')!;
const BROKERS: readonly { name: string; url: string; port: number }[] = [{ name: 'memory', url: '', port: 0 }, rabbit];

/** The sample app on a test bus (memory, or isolated channels on the real broker), closed after the test. */
async function startSample(
  broker: { name: string; url: string },
  settings: SampleSettings = {},
): Promise<{ kit: TestBus; app: INestApplicationContext }> {
  const kit = createTestBus(broker.name === 'memory' ? {} : { broker: broker.url });
  cleanups.push(() => kit.close());
  const app = await NestFactory.createApplicationContext(AppModule.forRoot({ bus: kit.bus }, settings), {
    logger: false,
  });
  cleanups.push(() => app.close());
  return { kit, app };
}

/** Subscribers attached to a group, as the broker counts them, read through a fresh bus of the kit. */
async function consumers(kit: TestBus, channel: string, group: string): Promise<number | undefined> {
  const probe = kit.createBus();
  try {
    return (await probe.backlog(channel, group)).consumers;
  } finally {
    await probe.close();
  }
}

describe.each(BROKERS)('the sample NestJS application on $name', (broker) => {
  it('starts, handles an event through @OnEvent, receives the follow-up, and shuts down cleanly', async (ctx) => {
    if (broker.name !== 'memory' && !(await requireBroker(ctx, 'nestjs', broker))) return;
    const { kit, app } = await startSample(broker);
    expect(await consumers(kit, ORDERS, BILLING)).toBe(1);
    expect(await consumers(kit, PAYMENTS, RECEIPTS)).toBe(1);

    const placed = await app.get(Orders).place({ orderId: 'o-1', total: 1999 });
    await kit.settled();
    expect(app.get(Billing).charged.get('o-1')).toBe(1999);
    expect(kit.consumed(ORDERS, BILLING).map((e) => e.id)).toEqual([placed.id]);
    // The follow-up went out through ctx.publish (caused by the order) and reached the explicit subscriber.
    const [charged] = kit.published(PAYMENTS);
    expect(charged).toMatchObject({ type: 'PaymentCharged', causationid: placed.id });
    expect(charged?.data).toEqual({ orderId: 'o-1', amount: 1999 });
    expect(app.get(Receipts).sent).toEqual([{ orderId: 'o-1', amount: 1999 }]);

    await app.close();
    await expect(kit.bus.publish(ORDERS, { type: 'OrderPlaced', data: {} })).rejects.toBeInstanceOf(ClosedError);
    expect(await consumers(kit, ORDERS, BILLING)).toBe(0);
    expect(await consumers(kit, PAYMENTS, RECEIPTS)).toBe(0);
  });

  it('app.close() lets a running handler finish before the bus closes', async (ctx) => {
    if (broker.name !== 'memory' && !(await requireBroker(ctx, 'nestjs', broker))) return;
    const steps: string[] = [];
    let started: () => void = () => {};
    const charging = new Promise<void>((resolve) => {
      started = resolve;
    });
    const { kit, app } = await startSample(broker, {
      chargeMs: 300,
      onCharge: (stage, orderId) => {
        steps.push(`${stage} ${orderId}`);
        if (stage === 'start') started();
      },
    });
    const close = kit.bus.close.bind(kit.bus);
    kit.bus.close = async () => {
      steps.push('bus closing');
      await close();
    };

    await app.get(Orders).place({ orderId: 'o-slow', total: 5 });
    await charging;
    expect(app.get(Billing).charged.has('o-slow')).toBe(false);
    await app.close();
    expect(steps).toEqual(['start o-slow', 'end o-slow', 'bus closing']);
    expect(app.get(Billing).charged.get('o-slow')).toBe(5);
    expect(kit.settlements(ORDERS, BILLING).map((s) => s.outcome)).toEqual(['acked']);
    // Its follow-up was published before the connection closed.
    expect(kit.published(PAYMENTS).map((e) => e.data)).toEqual([{ orderId: 'o-slow', amount: 5 }]);
    expect(await consumers(kit, ORDERS, BILLING)).toBe(0);
  });
});

describe('WharfModule', () => {
  it('forRoot({ url }) creates, connects and closes its own bus (RabbitMQ)', async (ctx) => {
    if (!(await requireBroker(ctx, 'nestjs', rabbit))) return;
    const channel = unique('nestjs-url');
    cleanups.push(() => deleteTestTopology(rabbit.url, channel, ['audit']));

    @Injectable()
    class Audit {
      readonly seen: string[] = [];
      @OnEvent(channel, { group: 'audit', retry: { maxAttempts: 1 } })
      record(event: CloudEvent<{ n: number }>): void {
        this.seen.push(`${event.data?.n}`);
      }
    }
    @Module({ imports: [WharfModule.forRoot({ url: rabbit.url, logger: silentLogger })], providers: [Audit] })
    class AuditModule {}

    const app = await NestFactory.createApplicationContext(AuditModule, { logger: false });
    cleanups.push(() => app.close());
    const bus = app.get(Bus);
    expect(bus.adapter?.name).toBe('rabbitmq'); // connected during start-up
    await bus.publish(channel, { type: 'Tick', data: { n: 1 } });
    const deadline = Date.now() + 5_000;
    while (app.get(Audit).seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(app.get(Audit).seen).toEqual(['1']);

    await app.close();
    await expect(bus.publish(channel, { type: 'Tick', data: { n: 2 } })).rejects.toBeInstanceOf(ClosedError);
    const probe = createBus({ url: rabbit.url, logger: silentLogger });
    cleanups.push(() => probe.close());
    expect((await probe.backlog(channel, 'audit')).consumers).toBe(0);
  });

  it('forRootAsync builds the bus from a factory and its injected configuration', async () => {
    const url = `memory://${unique('nestjs-async')}`;
    const CONFIG = Symbol('CONFIG');
    @Module({ providers: [{ provide: CONFIG, useValue: { broker: url } }], exports: [CONFIG] })
    class ConfigModule {}
    @Module({
      imports: [
        WharfModule.forRootAsync({
          imports: [ConfigModule],
          inject: [CONFIG],
          useFactory: async (config: { broker: string }) => ({ url: config.broker, logger: silentLogger }),
        }),
      ],
    })
    class Root {}
    const app = await NestFactory.createApplicationContext(Root, { logger: false });
    cleanups.push(() => app.close());
    const bus = app.get(Bus);
    expect(bus.url).toBe(url);
    expect(bus.adapter?.name).toBe('memory');
    await app.close();
    await expect(bus.publish('x', { type: 'X', data: {} })).rejects.toBeInstanceOf(ClosedError);
  });

  it('finds each decorated method once, on providers and controllers, aliases included', async () => {
    @Injectable()
    class Handlers {
      @OnEvent('a', { group: 'g' })
      @OnEvent('b', { group: 'g', concurrency: 4 })
      both(): void {}
      plain(): void {}
    }
    @Controller()
    class Endpoint {
      @OnEvent('c', { group: 'h' })
      handle(): void {}
    }
    @Module({
      imports: [WharfModule.forRoot({ url: `memory://${unique('nestjs-discovery')}` })],
      providers: [Handlers, { provide: 'ALIAS', useExisting: Handlers }],
      controllers: [Endpoint],
    })
    class Root {}
    const app = await NestFactory.createApplicationContext(Root, { logger: false });
    cleanups.push(() => app.close());
    const found = app.get(WharfRuntime).handlers();
    expect(
      found
        .map(({ name, channel, options }) => ({ name, channel, options }))
        .sort((x, y) => x.channel.localeCompare(y.channel)),
    ).toEqual([
      { name: 'Handlers.both', channel: 'a', options: { group: 'g' } },
      { name: 'Handlers.both', channel: 'b', options: { group: 'g', concurrency: 4 } },
      { name: 'Endpoint.handle', channel: 'c', options: { group: 'h' } },
    ]);
  });

  it('refuses @OnEvent on a request-scoped provider', async () => {
    @Injectable({ scope: Scope.REQUEST })
    class PerRequest {
      @OnEvent('orders.nope', { group: 'g' })
      handle(): void {}
    }
    @Module({ imports: [WharfModule.forRoot({ url: `memory://${unique('nestjs-scope')}` })], providers: [PerRequest] })
    class Root {}
    const failed = NestFactory.createApplicationContext(Root, { logger: false, abortOnError: false });
    await expect(failed).rejects.toBeInstanceOf(ConfigError);
    await expect(failed).rejects.toThrow(/PerRequest\.handle.*singleton/);
  });

  it.concurrent('fails the start when the broker cannot be reached', async () => {
    @Module({ imports: [WharfModule.forRoot({ url: 'amqp://guest:guest@127.0.0.1:1', logger: silentLogger })] })
    class Root {}
    const failed = NestFactory.createApplicationContext(Root, { logger: false, abortOnError: false });
    await expect(failed).rejects.toBeInstanceOf(WharfError);
    await expect(failed).rejects.toThrow(/127\.0\.0\.1:1/);
  });

  it.concurrent('runs as a process: SIGTERM lets the running handler finish, then exits 0', {
    timeout: 30_000,
  }, async () => {
    const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
    const child = spawn(process.execPath, ['--conditions=wharf-source', '--import', 'tsx', main, 'o-proc'], {
      // tsx reads the tsconfig of its working directory: this package's enables legacy decorators.
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: { ...process.env, WHARF_BROKER: 'memory://', CHARGE_MS: '300' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk;
        if (stdout.includes('charging o-proc')) resolve();
      });
      void exited.then((code) => reject(new Error(`exited ${String(code)} before charging: ${stdout}${stderr}`)));
    });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stdout).toBe('ready\ncharging o-proc\ncharged o-proc\n');
    expect(stderr).toBe('');
  });
});
