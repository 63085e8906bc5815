import { execFile, spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BrokerControlError } from '../errors.js';
import { amqpServes } from './handshake.js';
import type { BrokerDriver } from './process.js';

/** The real scripts, not Debian's /usr/sbin wrappers (which `su` to the rabbitmq user and the shared node's files). */
export function rabbitBinary(name: 'rabbitmq-server' | 'rabbitmqctl'): string {
  const override = process.env[name === 'rabbitmqctl' ? 'WHARF_RABBITMQCTL' : 'WHARF_RABBITMQ_SERVER'];
  if (override) return override;
  const lib = `/usr/lib/rabbitmq/bin/${name}`;
  return existsSync(lib) ? lib : name;
}

/**
 * The environment of a private node: its own name, ports, data, logs, pid file and config files
 * (all under `dataDir`, which is also HOME, so the Erlang cookie is its own too).
 */
export function rabbitNodeEnv(
  node: string,
  port: number,
  distPort: number,
  dataDir: string,
  pidFile: string,
): NodeJS.ProcessEnv {
  return {
    ...process.env,
    HOME: dataDir,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dataDir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dataDir, 'log'),
    RABBITMQ_PID_FILE: pidFile,
    RABBITMQ_CONFIG_FILE: join(dataDir, 'rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dataDir, 'advanced.config'),
    RABBITMQ_CONF_ENV_FILE: join(dataDir, 'rabbitmq-env.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dataDir, 'enabled_plugins'),
    ERL_EPMD_ADDRESS: '127.0.0.1',
  };
}

/** `dead_letter_worker_publisher_confirm_timeout` of a private node (see `launch`). */
const DLX_WORKER_RETRY_MS = 5_000;

/**
 * A second RabbitMQ node on its own ports, node name, data, logs, config and Erlang cookie (HOME is
 * the data dir), so `rabbitmqctl -n` reaches it and never the shared `rabbit@localhost`. The
 * system's rabbitmq.conf (which binds 5672) and rabbitmq-env.conf are replaced by our own files.
 */
export function rabbitmqDriver(
  port: number,
  distPort: number,
  dataDir: string,
): BrokerDriver & { ctl(...args: string[]): Promise<string>; readonly node: string } {
  const node = `wharf-chaos-${port}@localhost`;
  const pidFile = join(dataDir, 'rabbit.pid');
  const env = rabbitNodeEnv(node, port, distPort, dataDir, pidFile);
  let wrapper: number | undefined;
  const ctlWithin = (timeout: number, args: string[]): Promise<string> =>
    new Promise((resolve, reject) => {
      execFile(rabbitBinary('rabbitmqctl'), ['-n', node, ...args], { env, timeout }, (error, stdout, stderr) => {
        if (error)
          reject(
            new BrokerControlError(
              `rabbitmqctl -n ${node} ${args.join(' ')} failed: ${stderr.trim() || error.message}`,
              { cause: error },
            ),
          );
        else resolve(stdout);
      });
    });
  const ctl = (...args: string[]): Promise<string> => ctlWithin(60_000, args);
  return {
    kind: 'rabbitmq',
    node,
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    port,
    proxyTarget: port,
    dataDir,
    startTimeoutMs: 120_000,
    ctl,
    async launch() {
      writeFileSync(
        env.RABBITMQ_CONFIG_FILE as string,
        `listeners.tcp.local = 127.0.0.1:${port}\nloopback_users = none\n`,
      );
      // The setting the Wharf RabbitMQ adapter's README asks operators for. A kill -9 leaves retry
      // copies whose TTL runs out while the node is down; at boot the quorum queues (and their
      // at-least-once dead-letter workers) recover before the exchanges, so the worker finds no
      // exchange "" yet and parks those copies until this timeout (default 180 s) has passed —
      // retries due during an outage would come back three minutes after the restart.
      writeFileSync(
        env.RABBITMQ_ADVANCED_CONFIG_FILE as string,
        `[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, ${DLX_WORKER_RETRY_MS}}]}].\n`,
      );
      writeFileSync(env.RABBITMQ_CONF_ENV_FILE as string, '# private node: see @wharf/chaos\n');
      writeFileSync(env.RABBITMQ_ENABLED_PLUGINS_FILE as string, '[].\n');
      const log = openSync(join(dataDir, 'rabbitmq-server.out'), 'a');
      const child = spawn(rabbitBinary('rabbitmq-server'), [], {
        detached: true,
        stdio: ['ignore', log, log],
        env,
        cwd: dataDir,
      });
      child.on('error', () => undefined);
      child.unref();
      wrapper = child.pid;
    },
    pid() {
      try {
        const pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
        return Number.isInteger(pid) && pid > 0 ? pid : undefined;
      } catch {
        return undefined;
      }
    },
    companions: () => (wrapper === undefined ? [] : [wrapper]),
    serves: () => amqpServes(port),
    // RabbitMQ 3.10's Ra keeps its registry of quorum queues in a DETS file flushed only after 500 ms
    // without access. A queue declared since the last flush comes back from a kill -9 empty and
    // without a leader, forever: everything it held (confirmed messages too) is gone, and publishes
    // to it are nacked. Seen here as lost retry copies in the saga's broker-kill run (adapters/rabbitmq
    // README, "Known broker limit"). Flushing it first keeps the kill a test of the
    // client: in-flight traffic is still cut, unflushed WAL and all; only the registry is on disk.
    // Flush and kill in one step inside the node: a queue declared between a separate flush and the
    // SIGKILL (the saga declares while it starts) was still lost. The eval never answers (the node is
    // gone), so its failure is expected; the caller's SIGKILL follows for a node the eval did not reach.
    async beforeKill() {
      await ctlWithin(5_000, ['eval', 'dets:sync(ra_directory_reverse), os:cmd("kill -9 " ++ os:getpid()).']);
    },
  };
}
