import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { runConformance, sleep, untilAccepted } from '@wharf/conformance';
import { createBus, silentLogger } from '@wharf/core';
import { afterAll, describe, expect, it } from 'vitest';
import createNatsAdapter, { channelNames, conformanceHarness, type NatsAdapterOptions } from '../src/index.js';
import { resolveOptions } from '../src/options.js';
import { unavailable, unique } from './helpers.js';
import { PrivateNatsServer } from './private-server.js';

// Real nats-server restarts (SIGTERM, 1.5 s down, start), on a server of this file's own: the shared one on
// 4222 is never stopped. These run sequentially, after everything else.
const server = unavailable === undefined ? await PrivateNatsServer.start() : undefined;
afterAll(async () => {
  await server?.stop();
});
const url = server?.url ?? 'nats://127.0.0.1:1';
const harness = conformanceHarness(url);
const { publishForeign, cleanup } = harness;
const adapter = (options: NatsAdapterOptions = {}) => createNatsAdapter({ url, logger: silentLogger, ...options });
const restartServer = (downMs: number) => server?.restart(downMs, 'SIGTERM') ?? Promise.resolve();
async function withConnection<T>(work: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: url.replace('nats://', ''), noAsyncTraces: true });
  try {
    return await work(nc);
  } finally {
    await nc.close().catch(() => undefined);
  }
}

// The restart case lost an event published during the restart while channel streams had interest retention
// (nats-server 2.9 acknowledged it without storing it); the streams have limits retention now. README,
// "Broker restarts".
runConformance({
  name: 'nats (restart)',
  create: () => adapter(),
  ...(unavailable !== undefined ? { unavailable } : {}),
  publishForeign: (channel, message) => publishForeign(channel, message),
  cleanup: (channel, groups) => cleanup(channel, groups),
  restartBroker: () => restartServer(1_500),
  only: ['broker-restart'],
});

describe.skipIf(unavailable !== undefined)('nats adapter across a server restart', () => {
  it('resolves a publish issued while the server is down once it is back, not after publishTimeoutMs', async () => {
    const channel = unique('nats-outage');
    const bus = createBus({ adapter: adapter({ publishTimeoutMs: 15_000 }), logger: silentLogger });
    try {
      await bus.declare(channel, { groups: ['g'] });
      const restarting = restartServer(2_000);
      await new Promise((r) => setTimeout(r, 700));
      const started = Date.now();
      // nats.js drops what is written while it is disconnected: only the adapter's resend brings this one in.
      const published = bus.publish(channel, { type: 'DuringOutage', data: { n: 1 } });
      await restarting;
      const back = Date.now();
      await published;
      expect(Date.now() - back).toBeLessThan(8_000);
      expect(Date.now() - started).toBeLessThan(15_000);
      const stream = channelNames(resolveOptions(url, {}), channel).stream;
      const state = await withConnection(async (nc) => (await jetstreamManager(nc)).streams.info(stream));
      expect(state.state.messages).toBe(1);
    } finally {
      await bus.close();
      await cleanup(channel);
    }
  });

  it('keeps every event for a group that lags behind another one (fan-out), publishing through the restart', async () => {
    const channel = unique('nats-lagging');
    const bus = createBus({ adapter: adapter(), logger: silentLogger });
    try {
      await bus.declare(channel, { groups: ['fast', 'slow'] });
      const fast = new Set<string>();
      await bus.subscribe(channel, { group: 'fast', concurrency: 4 }, (e) => {
        fast.add(e.id);
      });
      // Published one at a time, every 5 ms, through the restart; a failed publish is retried with its id.
      const sent: string[] = [];
      let publishing = true;
      const publisher = (async () => {
        for (let n = 0; publishing; n++) {
          const input = { type: 'Fanned', id: `fanned-${n}-${channel}`, data: { n } };
          await untilAccepted(() => bus.publish(channel, input), 100, 250);
          sent.push(input.id);
          await sleep(5);
        }
      })();
      await sleep(500);
      await restartServer(1_500);
      await sleep(500);
      publishing = false;
      await publisher;
      // The slow group runs only now: it must get everything, including what the fast group acked long ago.
      const slow = new Set<string>();
      await untilAccepted(
        () =>
          bus.subscribe(channel, { group: 'slow', concurrency: 4 }, (e) => {
            slow.add(e.id);
          }),
        30,
        500,
      );
      const deadline = Date.now() + 60_000;
      const missing = () => sent.filter((id) => !slow.has(id) || !fast.has(id));
      while (missing().length > 0 && Date.now() < deadline) await sleep(100);
      const stream = channelNames(resolveOptions(url, {}), channel).stream;
      const state = await withConnection(async (nc) => (await jetstreamManager(nc)).streams.info(stream));
      expect(
        sent.filter((id) => !slow.has(id)),
        `slow group; ${sent.length} sent; stream state ${JSON.stringify(state.state)}`,
      ).toEqual([]);
      expect(
        sent.filter((id) => !fast.has(id)),
        'fast group',
      ).toEqual([]);
    } finally {
      await bus.close();
      await cleanup(channel);
    }
  });
});
