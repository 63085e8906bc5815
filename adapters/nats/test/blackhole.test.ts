import { startProxy } from '@wharf/chaos';
import { createBus, type Logger, silentLogger } from '@wharf/core';
import { describe, expect, it } from 'vitest';
import createNatsAdapter from '../src/index.js';
import { port, unavailable, unique } from './helpers.js';

// A black hole that heals leaves a NATS connection out of step: the bytes lost mid-protocol mean the
// server never answers this connection's PINGs again, so every PubAck is lost. nats.js notices only
// after `maxPingOut` unanswered PINGs of its own (10 s with the adapter's settings); a producer whose
// window of publishes was full sent nothing new and stayed stuck until then (chaos proxy-blackhole:
// recovery 5.0–7.8 s, 1,341–1,480 of 2,000 publishes confirmed). The adapter now checks the link
// itself when its publishes have waited past a PING unanswered for 5 s, and replaces the connection.
// The fault proxy sits in front of the shared server, which is never touched.

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(unavailable !== undefined)('nats adapter: a producer behind a healed black hole (fault proxy)', () => {
  it('replaces its connection itself and publishes again within seconds of the heal', async () => {
    const proxy = await startProxy({ target: port });
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (message) => warnings.push(message) };
    const bus = createBus({
      adapter: createNatsAdapter({ url: `nats://127.0.0.1:${proxy.port}`, logger, publishTimeoutMs: 30_000 }),
      logger: silentLogger,
      publishTimeoutMs: 60_000,
    });
    const channel = unique('blackhole');
    try {
      await bus.declare(channel, { groups: ['g'] });
      await bus.publish(channel, { type: 'Before', data: {} });
      proxy.set({ kind: 'blackhole' });
      // A window of publishes waits for PubAcks that the black hole swallows.
      const waiting = Array.from({ length: 50 }, (_, i) => bus.publish(channel, { type: 'During', data: { i } }));
      for (const p of waiting) p.catch(() => undefined);
      await sleep(5_000);
      proxy.heal();
      const healedAt = Date.now();
      // Every publish of the window is confirmed (resent on the new connection; duplicates are dropped by id).
      await Promise.all(waiting);
      const recoveryMs = Date.now() - healedAt;
      await bus.publish(channel, { type: 'After', data: {} });
      console.info(`[nats blackhole] publishes confirmed ${recoveryMs} ms after the heal`);
      expect(warnings.some((w) => /publishes went unanswered; replacing the connection/.test(w))).toBe(true);
      // nats.js alone would need two more unanswered 5 s PINGs.
      expect(recoveryMs).toBeLessThan(5_000);
    } finally {
      await bus.close();
      await proxy.close();
    }
  }, 60_000);
});
