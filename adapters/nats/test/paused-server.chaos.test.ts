import { type Bus, createBus, PublishError, silentLogger } from '@wharf/core';
import { describe, expect, it } from 'vitest';
import createNatsAdapter from '../src/index.js';
import { unavailable } from './helpers.js';
import { privateServerPerFile } from './private-server.js';

// Issue 13, item 3: an outage must not make the bus buffer without bound. A paused server (SIGSTOP: the
// socket stays open, nothing is read) took every publish into the socket's write buffer until nats.js's own
// PING noticed, minutes later: RSS grew ~2 MB/s at 1,000 publishes/s. The adapter now probes with a PING
// while it publishes and, once one is unanswered for 5 s, refuses publishes with a typed error instead of
// writing them; the first PONG after the pause ends it. The shared server is never paused.

const privateServer = privateServerPerFile(unavailable === undefined);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(unavailable !== undefined)('nats adapter: publishing to a paused server (private server)', () => {
  it('refuses publishes once a PING is unanswered for 5 s, and publishes again after the pause', async () => {
    const server = privateServer();
    const bus: Bus = createBus({
      adapter: createNatsAdapter({ url: server.url, logger: silentLogger, publishTimeoutMs: 30_000 }),
      logger: silentLogger,
      publishTimeoutMs: 60_000,
    });
    try {
      await bus.declare('paused', { groups: ['g'] });
      await bus.publish('paused', { type: 'Before', id: 'before-1' });
      server.pause();
      const pausedAt = Date.now();
      // Publishes go on as a busy service's would; those written before the refusal wait for the server.
      const outcomes: Promise<unknown>[] = [];
      let refusedAt: number | undefined;
      let refusal: unknown;
      for (let n = 0; refusedAt === undefined && Date.now() - pausedAt < 20_000; n++) {
        const publishing = bus.publish('paused', { type: 'During', id: `during-${n}` });
        outcomes.push(publishing.catch(() => undefined));
        const settled = await Promise.race([
          publishing.then(
            () => 'ok',
            (error: unknown) => error,
          ),
          sleep(100),
        ]);
        if (settled instanceof Error) {
          refusedAt = Date.now();
          refusal = settled;
        }
      }
      expect(refusal).toBeInstanceOf(PublishError);
      expect(String((refusal as Error).message)).toMatch(/not answered a PING|not reading/);
      // Refused after the 5 s bound (and the 1 s probe spacing), not long after: the buffer stops growing.
      expect((refusedAt as number) - pausedAt).toBeGreaterThanOrEqual(5_000);
      expect((refusedAt as number) - pausedAt).toBeLessThan(12_000);
      // A refusal is immediate, not a wait for the timeout.
      const started = Date.now();
      await expect(bus.publish('paused', { type: 'During', id: 'refused-1' })).rejects.toBeInstanceOf(PublishError);
      expect(Date.now() - started).toBeLessThan(1_000);
      server.resume();
      // The first PONG after the pause ends the refusal.
      const deadline = Date.now() + 15_000;
      let after: unknown = 'not tried';
      while (Date.now() < deadline) {
        try {
          await bus.publish('paused', { type: 'After', id: 'after-1' });
          after = 'ok';
          break;
        } catch (error) {
          after = error;
          await sleep(200);
        }
      }
      expect(after).toBe('ok');
      await Promise.all(outcomes);
    } finally {
      server.resume();
      await bus.close();
    }
  }, 90_000);
});
