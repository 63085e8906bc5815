import { readFileSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { BrokerControlError } from '../errors.js';
import { portOpen, waitUntil } from './ports.js';
import type { BrokerKind, ManagedBroker } from './types.js';

/** True while a process with this id exists (a stopped one included). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // A killed broker whose parent has not reaped it yet (a zombie) is gone for our purposes.
  return processState(pid) !== 'Z';
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** What differs between brokers: how to launch, find, probe and stop one. */
export interface BrokerDriver {
  readonly kind: BrokerKind;
  readonly url: string;
  readonly port: number;
  readonly proxyTarget: number;
  readonly dataDir: string;
  /** Bound for a start, by broker (a JVM or an Erlang VM boot is slow on a busy 2-core machine). */
  readonly startTimeoutMs: number;
  /** Spawns the broker process(es); resolves once launched (not yet serving). */
  launch(): Promise<void>;
  /** The main broker process id, when known. */
  pid(): number | undefined;
  /** A protocol handshake; true when it serves. */
  serves(): Promise<boolean>;
  /** Extra processes to SIGKILL with the broker (wrappers). */
  companions?(): number[];
  /**
   * Runs just before a SIGKILL, bounded; its failure does not stop the kill. Only for a broker bug
   * that would otherwise make the kill test the broker instead of the client (see rabbitmq.ts).
   */
  beforeKill?(): Promise<void>;
}

const live = new Set<ProcessBroker>();
let hooked = false;

/** Last-chance clean-up: a test run that dies must not leave private brokers or their data behind. */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const broker of live) broker.destroySync();
  });
  for (const name of ['SIGINT', 'SIGTERM'] as const) {
    process.once(name, () => {
      for (const broker of live) broker.destroySync();
      // Re-raise so the default (or another handler's) behaviour still applies.
      if (process.listenerCount(name) === 0) process.kill(process.pid, name);
    });
  }
}

/** The shared life-cycle of every managed broker; the driver supplies the broker-specific parts. */
export class ProcessBroker implements ManagedBroker {
  readonly kind: BrokerKind;
  readonly url: string;
  readonly port: number;
  readonly proxyTarget: number;
  readonly dataDir: string;
  #destroyed = false;

  constructor(protected readonly driver: BrokerDriver) {
    this.kind = driver.kind;
    this.url = driver.url;
    this.port = driver.port;
    this.proxyTarget = driver.proxyTarget;
    this.dataDir = driver.dataDir;
    live.add(this);
    hookExit();
  }

  pid(): number | undefined {
    const pid = this.driver.pid();
    return pid !== undefined && alive(pid) ? pid : undefined;
  }

  async start(): Promise<void> {
    this.#assertLive('start');
    if (this.pid() !== undefined && (await this.driver.serves())) return;
    if (this.pid() === undefined) await this.driver.launch();
    await waitUntil(
      `${this.kind} broker on 127.0.0.1:${this.port} completing a handshake`,
      async () => {
        if (this.pid() === undefined && !(await this.driver.serves())) {
          throw new BrokerControlError(`${this.kind} broker process exited during start-up (logs in ${this.dataDir})`);
        }
        return this.driver.serves();
      },
      this.driver.startTimeoutMs,
      250,
    ).catch((error: unknown) => {
      throw new BrokerControlError(
        `could not start the private ${this.kind} broker on port ${this.port} (logs in ${this.dataDir})`,
        { cause: error },
      );
    });
  }

  async kill(): Promise<void> {
    if (this.pid() !== undefined) await this.driver.beforeKill?.().catch(() => undefined);
    const pids = this.#pids();
    for (const pid of pids) signal(pid, 'SIGKILL');
    await this.#waitGone(pids, 15_000);
  }

  async restart(options: { hard?: boolean } = {}): Promise<void> {
    this.#assertLive('restart');
    if (options.hard) await this.kill();
    else await this.stop();
    await this.start();
  }

  /** Clean stop: SIGTERM (brokers flush and close on it), SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 30_000): Promise<void> {
    const pid = this.pid();
    if (pid === undefined) return;
    signal(pid, 'SIGCONT');
    signal(pid, 'SIGTERM');
    try {
      await this.#waitGone([pid], timeoutMs);
    } catch {
      await this.kill();
    }
    // Wrappers exit with the broker; anything left is killed.
    const rest = this.#pids();
    for (const other of rest) signal(other, 'SIGKILL');
    await this.#waitGone(rest, 5_000);
  }

  async pause(): Promise<void> {
    const pid = this.pid();
    if (pid === undefined)
      throw new BrokerControlError(`cannot pause the ${this.kind} broker on port ${this.port}: it is not running`);
    signal(pid, 'SIGSTOP');
    await waitUntil(`${this.kind} broker pid ${pid} stopping`, async () => processState(pid) === 'T', 5_000, 20);
  }

  async resume(): Promise<void> {
    const pid = this.pid();
    if (pid !== undefined) signal(pid, 'SIGCONT');
  }

  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    await this.kill().catch(() => undefined);
    this.#destroyed = true;
    live.delete(this);
    await rm(this.dataDir, { recursive: true, force: true, maxRetries: 3 });
  }

  /** Synchronous destroy for the exit hook (no await is possible there). */
  destroySync(): void {
    if (this.#destroyed) return;
    for (const pid of this.#pids()) signal(pid, 'SIGKILL');
    this.#destroyed = true;
    live.delete(this);
    try {
      rmSync(this.dataDir, { recursive: true, force: true });
    } catch {
      // The process is exiting: nothing else can be done.
    }
  }

  /** Wrapper processes that live and die with the broker (a RabbitMQ server script). */
  companionPids(): number[] {
    return (this.driver.companions?.() ?? []).filter((pid) => alive(pid));
  }

  /**
   * Lets the broker outlive this process: no clean-up at exit. For `wharf brokers up`, whose brokers
   * are stopped later by another process; `destroy()` still works.
   */
  detach(): void {
    live.delete(this);
  }

  #pids(): number[] {
    const pids = [this.driver.pid(), ...(this.driver.companions?.() ?? [])];
    return pids.filter((pid): pid is number => pid !== undefined && alive(pid));
  }

  async #waitGone(pids: number[], timeoutMs: number): Promise<void> {
    await waitUntil(
      `${this.kind} broker (pid ${pids.join(', ') || 'none'}) exiting and port ${this.port} closing`,
      async () => pids.every((pid) => !alive(pid)) && !(await portOpen(this.port, 300)),
      timeoutMs,
      50,
    );
  }

  #assertLive(action: string): void {
    if (this.#destroyed)
      throw new BrokerControlError(`cannot ${action} the ${this.kind} broker on port ${this.port}: it was destroyed`);
  }
}

/** The one-letter state from /proc (`T` stopped, `Z` zombie), or undefined when unknown. */
export function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const end = stat.lastIndexOf(')');
    return stat.slice(end + 2, end + 3);
  } catch {
    return undefined;
  }
}
