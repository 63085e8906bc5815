import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '@wharf/chaos';
import { brokersRequired } from '@wharf/conformance';
import * as amqp from 'amqplib';

const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The server and CLI scripts themselves: `/usr/sbin/rabbitmq-*` switch to the `rabbitmq` user as root,
 * which drops our environment (node name, ports, cookie) and would talk to the shared node.
 */
const BIN = process.env.WHARF_RABBITMQ_BIN ?? '/usr/lib/rabbitmq/bin';

/**
 * `dead_letter_worker_publisher_confirm_timeout` of a private node: `WHARF_RABBITMQ_DLX_WORKER_RETRY_MS`
 * (180000, the broker's default, shows what the setting prevents), 5 s otherwise.
 */
export const DLX_WORKER_RETRY_MS = Number(process.env.WHARF_RABBITMQ_DLX_WORKER_RETRY_MS ?? 5_000);

/** Why a private node cannot be started here (no RabbitMQ installed), or undefined. */
export const privateNodeUnavailable: string | undefined = existsSync(join(BIN, 'rabbitmq-server'))
  ? undefined
  : `no RabbitMQ server scripts in ${BIN} (set WHARF_RABBITMQ_BIN)`;
if (privateNodeUnavailable && brokersRequired()) {
  throw new Error(`[wharf] rabbitmq fault tests need a private node: ${privateNodeUnavailable}`);
}

/**
 * A RabbitMQ node of our own, on free ports, with its data in a temporary directory: the target of
 * every fault (kill -9, SIGSTOP, memory alarm, declare storms) so the node other tests and engineers
 * share is never touched. `start()` waits until it completes an AMQP handshake; `destroy()` stops it
 * and removes its data, whatever state it is in.
 */
export class PrivateNode {
  readonly nodename: string;
  readonly dir: string;
  readonly port: number;
  readonly distPort: number;
  #child: ChildProcess | undefined;
  /** The Erlang VM itself: the server script stays as a parent that turns signals into `rabbitmqctl stop`. */
  #vm: number | undefined;
  #exited: Promise<void> = Promise.resolve();
  #paused = false;
  readonly #onExit = (): void => this.#killNow();

  private constructor(dir: string, port: number, distPort: number, label: string) {
    this.dir = dir;
    this.port = port;
    this.distPort = distPort;
    this.nodename = `wharf-${label}-${randomBytes(3).toString('hex')}@localhost`;
  }

  /** Creates the node's directory and starts it; rejects (after cleaning up) if it gives no handshake in time. */
  static async start(label: string, bootTimeoutMs = 120_000): Promise<PrivateNode> {
    if (privateNodeUnavailable) throw new Error(privateNodeUnavailable);
    const dir = mkdtempSync(join(tmpdir(), `wharf-rmq-${label}-`));
    const [port, distPort] = await freePorts();
    const node = new PrivateNode(dir, port, distPort, label);
    node.#writeConfig();
    try {
      await node.boot(bootTimeoutMs);
    } catch (error) {
      await node.destroy();
      throw error;
    }
    return node;
  }

  get url(): string {
    return `amqp://guest:guest@127.0.0.1:${this.port}`;
  }

  /** The pid of the node's Erlang VM (what a `kill -9` or SIGSTOP hits). */
  get pid(): number | undefined {
    return this.#vm;
  }

  #writeConfig(): void {
    mkdirSync(join(this.dir, 'log'), { recursive: true });
    writeFileSync(
      join(this.dir, 'rabbitmq.conf'),
      [
        `listeners.tcp.local = 127.0.0.1:${this.port}`,
        // Small disks on CI machines must not raise a disk alarm that blocks every publisher.
        'disk_free_limit.absolute = 50MB',
        '',
      ].join('\n'),
    );
    // The adapter README's setting for operators (see "Retries due during a broker outage"): without
    // it, retry copies whose delay runs out while the node is down come back 180 s after its restart.
    writeFileSync(
      join(this.dir, 'advanced.config'),
      `[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, ${DLX_WORKER_RETRY_MS}}]}].\n`,
    );
    // No plugins: the management plugin's port would clash with the shared node's.
    writeFileSync(join(this.dir, 'enabled_plugins'), '[].\n');
    // Our own env file, so /etc/rabbitmq/rabbitmq-env.conf (the shared node's name) is not read.
    writeFileSync(join(this.dir, 'env.conf'), '\n');
    const cookie = join(this.dir, '.erlang.cookie');
    writeFileSync(cookie, randomBytes(16).toString('hex').toUpperCase());
    chmodSync(cookie, 0o400);
  }

  #env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      HOME: this.dir,
      RABBITMQ_NODENAME: this.nodename,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(this.port),
      RABBITMQ_DIST_PORT: String(this.distPort),
      RABBITMQ_CONFIG_FILE: join(this.dir, 'rabbitmq.conf'),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(this.dir, 'advanced.config'),
      RABBITMQ_CONF_ENV_FILE: join(this.dir, 'env.conf'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(this.dir, 'enabled_plugins'),
      RABBITMQ_MNESIA_BASE: join(this.dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(this.dir, 'log'),
      RABBITMQ_PID_FILE: join(this.dir, 'node.pid'),
      ERL_EPMD_ADDRESS: '127.0.0.1',
      ERL_FLAGS: '-kernel inet_dist_use_interface {127,0,0,1}',
    };
  }

  /** Starts the node process (again, on the same data after a kill) and waits for a handshake. */
  async boot(timeoutMs = 120_000): Promise<number> {
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) return 0;
    const started = Date.now();
    const child = spawn(join(BIN, 'rabbitmq-server'), [], {
      env: this.#env(),
      cwd: this.dir,
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    this.#child = child;
    this.#vm = undefined;
    this.#paused = false;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    process.off('exit', this.#onExit);
    process.once('exit', this.#onExit);
    const deadline = started + timeoutMs;
    let last = 'no attempt';
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `private RabbitMQ node ${this.nodename} exited during boot (${child.exitCode ?? child.signalCode}):\n${this.logTail()}`,
        );
      }
      last = await handshake(this.url, 2_000);
      if (last === 'ok') {
        this.#vm = Number(readFileSync(join(this.dir, 'node.pid'), 'utf8').trim()) || undefined;
        if (this.#vm === undefined) throw new Error(`private RabbitMQ node ${this.nodename} wrote no pid file`);
        return Date.now() - started;
      }
      await sleep(250);
    }
    throw new Error(
      `private RabbitMQ node ${this.nodename} on port ${this.port} gave no AMQP handshake within ${timeoutMs} ms (last: ${last}):\n${this.logTail()}`,
    );
  }

  /** `rabbitmqctl -n <this node> …` with a bound. */
  async ctl(args: readonly string[], timeoutMs = 60_000): Promise<string> {
    const { stdout } = await run(join(BIN, 'rabbitmqctl'), ['-n', this.nodename, ...args], {
      env: this.#env(),
      cwd: this.dir,
      timeout: timeoutMs,
    });
    return stdout;
  }

  /** `kill -9` of the node: no goodbye to clients, the data stays for the next boot. */
  async kill9(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    // RabbitMQ 3.10 loses a quorum queue declared since its Ra registry was last flushed (see
    // beforeKill in @wharf/chaos's rabbitmq driver and this adapter's README, "Known broker limit"): flush it, then kill.
    if (!this.#paused) await this.ctl(['eval', 'dets:sync(ra_directory_reverse).'], 5_000).catch(() => undefined);
    this.#signal('SIGKILL');
    // The server script exits once its VM is gone.
    await this.#exited;
    this.#vm = undefined;
    this.#paused = false;
  }

  /** Stops the node cleanly (clients get a connection.close), the data stays for the next boot. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    if (this.#paused) this.resume();
    await this.ctl(['stop'], 60_000).catch(() => child.kill('SIGKILL'));
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([
      this.#exited.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), 30_000);
      }),
    ]);
    clearTimeout(timer);
    if (!exited) {
      this.#killNow();
      await this.#exited;
    }
  }

  /** A clean restart (stop, stay down `downMs`, boot on the same data); resolves with the outage in ms. */
  async restart(downMs = 1_000): Promise<number> {
    const started = Date.now();
    await this.stop();
    await sleep(downMs);
    await this.boot();
    return Date.now() - started;
  }

  /** SIGSTOP: the node keeps its sockets open but answers nothing (a GC pause, a frozen VM). */
  pause(): void {
    this.#signal('SIGSTOP');
    this.#paused = true;
  }

  resume(): void {
    this.#signal('SIGCONT');
    this.#paused = false;
  }

  #signal(signal: NodeJS.Signals): void {
    const child = this.#child;
    if (this.#vm === undefined || !child || child.exitCode !== null || child.signalCode !== null)
      throw new Error(`private RabbitMQ node ${this.nodename} is not running`);
    try {
      process.kill(this.#vm, signal);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }

  /** Stops the node whatever its state and removes its data directory. Never throws. */
  async destroy(): Promise<void> {
    try {
      if (this.#paused) this.resume();
      await this.stop().catch(() => undefined);
      this.#killNow();
      await this.#exited;
    } finally {
      process.off('exit', this.#onExit);
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  #killNow(): void {
    // The VM lives inside its server script's lifetime: once the script is gone, so is the VM, and
    // its pid is not signalled again (it could belong to another process by then).
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    for (const pid of [this.#vm, child.pid]) {
      if (pid === undefined) continue;
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }

  logTail(lines = 30): string {
    try {
      const file = join(this.dir, 'log', `${this.nodename}.log`);
      return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

/** 'ok' when an AMQP connection completes its handshake within `timeoutMs`, else why not. */
export async function handshake(url: string, timeoutMs: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const connecting = amqp.connect(url, { timeout: timeoutMs });
  try {
    const connection = await Promise.race([
      connecting,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no handshake within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    await connection.close().catch(() => undefined);
    return 'ok';
  } catch (error) {
    connecting.then((c) => c.close()).catch(() => undefined);
    return (error as Error).message;
  } finally {
    clearTimeout(timer);
  }
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * An AMQP port and a distribution port. rabbitmqctl listens on the distribution port + 10000, so
 * that one must be free as well.
 */
async function freePorts(): Promise<[number, number]> {
  const amqpPort = await freePort();
  for (let i = 0; i < 200; i++) {
    const dist = 20_000 + Math.floor(Math.random() * 20_000);
    if (dist === amqpPort) continue;
    if ((await portFree(dist)) && (await portFree(dist + 10_000))) return [amqpPort, dist];
  }
  throw new Error('no free distribution port for a private RabbitMQ node');
}
