import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BrokerControlError } from '../errors.js';
import { kafkaServes } from './handshake.js';
import type { BrokerDriver } from './process.js';

/** The repository's scripts/kafka.sh: this file is packages/chaos/{src,dist}/brokers/kafka.{ts,js}. */
export function kafkaScript(): string {
  const script =
    process.env.WHARF_KAFKA_SCRIPT ??
    resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'scripts', 'kafka.sh');
  if (!existsSync(script)) {
    throw new BrokerControlError(
      `cannot find scripts/kafka.sh at ${script}: run from a Wharf checkout or set WHARF_KAFKA_SCRIPT`,
    );
  }
  return script;
}

/**
 * A private KRaft node through scripts/kafka.sh with its own ports and data dir. With a proxy port,
 * the script adds a PROXY listener on `proxyTarget` that advertises `proxyPort`. `secure` gives the
 * script's extra environment (KAFKA_SECURE_CONFIG…) and the handshake that proves a locked-down node serves.
 */
export function kafkaDriver(
  ports: { port: number; controller: number; proxyPort?: number; proxyTarget?: number },
  dataDir: string,
  secure?: { env: NodeJS.ProcessEnv; serves(): Promise<boolean>; url: string },
): BrokerDriver & { script(command: string): Promise<string> } {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...secure?.env,
    KAFKA_PORT: String(ports.port),
    KAFKA_CONTROLLER_PORT: String(ports.controller),
    WHARF_KAFKA_DATA: dataDir,
    KAFKA_HEAP_OPTS: process.env.WHARF_CHAOS_KAFKA_HEAP ?? '-Xmx512m -Xms128m',
    KAFKA_STOP_TIMEOUT: '20',
    KAFKA_START_TIMEOUT: '150',
  };
  if (ports.proxyPort !== undefined && ports.proxyTarget !== undefined) {
    env.KAFKA_PROXY_PORT = String(ports.proxyPort);
    env.KAFKA_PROXY_LISTENER_PORT = String(ports.proxyTarget);
  }
  const script = (command: string): Promise<string> =>
    new Promise((done, reject) => {
      execFile('bash', [kafkaScript(), command], { env, timeout: 200_000 }, (error, stdout, stderr) => {
        if (error)
          reject(
            new BrokerControlError(
              `scripts/kafka.sh ${command} (port ${ports.port}) failed: ${stderr.trim().split('\n').slice(-5).join(' | ') || error.message}`,
              { cause: error },
            ),
          );
        else done(stdout);
      });
    });
  return {
    kind: 'kafka',
    url: secure?.url ?? `kafka://127.0.0.1:${ports.port}`,
    port: ports.port,
    proxyTarget: ports.proxyTarget ?? ports.port,
    dataDir,
    startTimeoutMs: 180_000,
    script,
    async launch() {
      await script('up');
    },
    pid() {
      try {
        const pid = Number.parseInt(readFileSync(join(dataDir, 'kafka.pid'), 'utf8').trim(), 10);
        return Number.isInteger(pid) && pid > 0 ? pid : undefined;
      } catch {
        return undefined;
      }
    },
    serves: async () =>
      secure
        ? secure.serves()
        : (await kafkaServes(ports.port)) &&
          (ports.proxyTarget === undefined || (await kafkaServes(ports.proxyTarget))),
  };
}
