import { type Bus, createBus, silentLogger } from '@wharf/core';
import { describe, expect, it } from 'vitest';
import createNatsAdapter from '../src/index.js';
import { unavailable } from './helpers.js';
import { privateServerPerFile } from './private-server.js';

// Issue 13, item 1: replicas declaring at once on a loaded machine can keep the JetStream API from answering
// within one request's timeout (5 s). Declaring and subscribing must wait for it, bounded, not fail the service's
// start-up with "timeout". Here the private server is paused (SIGSTOP) for 7 s while six buses declare and
// subscribe to the same five channels; before the declarations retried, every one failed with a TopologyError
// "… timeout". The shared server is never paused.

const privateServer = privateServerPerFile(unavailable === undefined);

describe.skipIf(unavailable !== undefined)(
  'nats adapter: declaring while JetStream does not answer (private server)',
  () => {
    it('six buses declare and subscribe to five channels through a 7 s pause of the server, none fails', async () => {
      const server = privateServer();
      const buses: Bus[] = Array.from({ length: 6 }, () =>
        createBus({ adapter: createNatsAdapter({ url: server.url, logger: silentLogger }), logger: silentLogger }),
      );
      const channels = Array.from({ length: 5 }, (_, n) => `pause-${n}`);
      try {
        await Promise.all(buses.map((bus) => bus.connect()));
        server.pause();
        const started = Date.now();
        const declaring = Promise.allSettled(
          buses.flatMap((bus) =>
            channels.map(async (channel) => {
              await bus.declare(channel, { groups: ['a', 'b'] });
              await Promise.all(['a', 'b'].map((group) => bus.subscribe(channel, { group }, async () => {})));
            }),
          ),
        );
        await new Promise((r) => setTimeout(r, 7_000));
        server.resume();
        const results = await declaring;
        const failed = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
        expect(failed).toEqual([]);
        expect(Date.now() - started).toBeGreaterThanOrEqual(7_000);
        // The groups work: one event reaches both groups' subscribers.
        const probe = createBus({
          adapter: createNatsAdapter({ url: server.url, logger: silentLogger }),
          logger: silentLogger,
        });
        buses.push(probe);
        await probe.publish('pause-0', { type: 'Probe', id: 'p-1' });
        const deadline = Date.now() + 15_000;
        const handled = () => buses.reduce((n, bus) => n + bus.stats().acked, 0);
        while (handled() < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        expect(handled()).toBe(2);
      } finally {
        server.resume();
        await Promise.allSettled(buses.map((bus) => bus.close()));
      }
    }, 90_000);
  },
);
