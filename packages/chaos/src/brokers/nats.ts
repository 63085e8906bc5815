import { type ChildProcess, spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { natsJetStreamServes } from './handshake.js';
import type { BrokerDriver } from './process.js';

/** `nats-server -a 127.0.0.1 -p <port> -js -sd <dir>`, a child in its own process group. */
export function natsDriver(port: number, dataDir: string): BrokerDriver {
  let child: ChildProcess | undefined;
  return {
    kind: 'nats',
    url: `nats://127.0.0.1:${port}`,
    port,
    proxyTarget: port,
    dataDir,
    startTimeoutMs: 30_000,
    async launch() {
      const log = openSync(join(dataDir, 'nats-server.log'), 'a');
      const binary = process.env.WHARF_NATS_SERVER ?? 'nats-server';
      child = spawn(binary, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(dataDir, 'jetstream')], {
        detached: true,
        stdio: ['ignore', log, log],
      });
      child.on('error', () => undefined); // a missing binary shows as "exited during start-up"
      child.unref();
    },
    pid: () => (child?.exitCode === null && child.signalCode === null ? child.pid : undefined),
    serves: () => natsJetStreamServes(port),
  };
}
