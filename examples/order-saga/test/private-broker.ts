import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/**
 * A broker instance of our own, on free ports and a temporary data directory, for tests that kill
 * it: the shared brokers on the default ports are never touched. `stop()` removes it and its data
 * whatever state it is in, so call it in `afterAll`/`finally`.
 */
export interface PrivateBroker {
  readonly kind: 'rabbitmq' | 'kafka' | 'nats';
  readonly url: string;
  /** Starts it (again, on the same data) and resolves once it accepts clients; nothing when it runs. */
  start(): Promise<void>;
  /** `kill -9` of the broker process: no shutdown, no flush. */
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Two free ports n and n+1 (Kafka wants its controller next to its listener in our script). */
async function freePortPair(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port < 65_000 && (await portFree(port + 1))) return port;
  }
}

async function portFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.connect(port, '127.0.0.1');
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`[saga test] ${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killPid(pid: number | undefined): void {
  if (pid === undefined || !alive(pid)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {}
}

export async function privateBroker(kind: PrivateBroker['kind']): Promise<PrivateBroker> {
  if (kind === 'nats') return privateNats();
  if (kind === 'rabbitmq') return privateRabbit();
  return privateKafka();
}

async function privateNats(): Promise<PrivateBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-saga-nats-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const broker: PrivateBroker = {
    kind: 'nats',
    url: `nats://127.0.0.1:${port}`,
    async start() {
      if (child && child.exitCode === null && child.signalCode === null) return;
      child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });
      await until(`nats-server on ${port} accepting`, () => accepts(port), 20_000);
    },
    async kill9() {
      const dying = child;
      if (!dying || dying.exitCode !== null) return;
      const exited = new Promise((resolve) => dying.once('exit', resolve));
      dying.kill('SIGKILL');
      await exited;
    },
    async stop() {
      await broker.kill9();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return broker;
}

async function privateRabbit(): Promise<PrivateBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-saga-rabbit-'));
  const port = await freePort();
  const distPort = port + 20_000 <= 65_535 ? port + 20_000 : port - 20_000;
  const node = `wharf-saga-${port}@localhost`;
  const pidFile = join(dir, 'rabbit.pid');
  mkdirSync(join(dir, 'log'), { recursive: true });
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  // The machine's /etc/rabbitmq/rabbitmq.conf pins the listener to 5672: our own config replaces it.
  writeFileSync(join(dir, 'rabbitmq.conf'), `listeners.tcp.local = 127.0.0.1:${port}\n`);
  chmodSync(join(dir, 'rabbitmq.conf'), 0o666);
  // Debian's rabbitmq-server runs the node as the rabbitmq user: it must be able to write here.
  for (const path of [dir, join(dir, 'log')]) chmodSync(path, 0o777);
  chmodSync(join(dir, 'enabled_plugins'), 0o666);
  const env = {
    ...process.env,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_PID_FILE: pidFile,
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'),
  };
  const pid = (): number | undefined => {
    try {
      const value = Number(readFileSync(pidFile, 'utf8').trim());
      return Number.isInteger(value) && value > 0 ? value : undefined;
    } catch {
      return undefined;
    }
  };
  const broker: PrivateBroker = {
    kind: 'rabbitmq',
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    async start() {
      const running = pid();
      if (running !== undefined && alive(running)) return;
      await run('rabbitmq-server', ['-detached'], { env });
      await run('rabbitmqctl', ['-n', node, 'wait', '--timeout', '90', pidFile], { env, timeout: 120_000 });
      await until(`RabbitMQ ${node} accepting on ${port}`, () => accepts(port), 30_000);
    },
    async kill9() {
      const beam = pid();
      killPid(beam);
      if (beam !== undefined) await until(`RabbitMQ ${node} gone`, async () => !alive(beam), 10_000);
    },
    async stop() {
      await broker.kill9();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return broker;
}

async function privateKafka(): Promise<PrivateBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-saga-kafka-'));
  const port = await freePortPair();
  const env = {
    ...process.env,
    KAFKA_PORT: String(port),
    KAFKA_CONTROLLER_PORT: String(port + 1),
    WHARF_KAFKA_DATA: dir,
  };
  const pid = (): number | undefined => {
    try {
      const value = Number(readFileSync(join(dir, 'kafka.pid'), 'utf8').trim());
      return Number.isInteger(value) && value > 0 ? value : undefined;
    } catch {
      return undefined;
    }
  };
  const broker: PrivateBroker = {
    kind: 'kafka',
    url: `kafka://127.0.0.1:${port}`,
    async start() {
      await run('bash', [join(ROOT, 'scripts/kafka.sh'), 'up'], { env, cwd: ROOT, timeout: 180_000 });
    },
    async kill9() {
      const java = pid();
      killPid(java);
      if (java !== undefined) await until(`Kafka on ${port} gone`, async () => !alive(java), 10_000);
    },
    async stop() {
      await broker.kill9();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return broker;
}
