import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '@wharf/chaos';

const script = fileURLToPath(new URL('../../../scripts/kafka.sh', import.meta.url));
const run = promisify(execFile);

/**
 * A Kafka broker of the test's own (never the shared one on 9092), started through the project
 * script on free ports with a temporary data directory. Faults target it only; `stop()` removes it.
 */
export class PrivateBroker {
  private constructor(
    readonly port: number,
    readonly controllerPort: number,
    readonly dataDir: string,
  ) {}

  static async create(): Promise<PrivateBroker> {
    const port = await freePort();
    let controllerPort = await freePort();
    while (controllerPort === port) controllerPort = await freePort();
    return new PrivateBroker(port, controllerPort, await mkdtemp(join(tmpdir(), 'wharf-kafka-chaos-')));
  }

  get url(): string {
    return `kafka://127.0.0.1:${this.port}`;
  }

  async #script(command: 'up' | 'down' | 'restart'): Promise<void> {
    await run('bash', [script, command], {
      timeout: 180_000,
      env: {
        ...process.env,
        KAFKA_PORT: String(this.port),
        KAFKA_CONTROLLER_PORT: String(this.controllerPort),
        WHARF_KAFKA_DATA: this.dataDir,
        KAFKA_HEAP_OPTS: '-Xmx512m -Xms128m',
      },
    });
  }

  up(): Promise<void> {
    return this.#script('up');
  }

  /** A clean stop and start (SIGTERM, then up). */
  restart(): Promise<void> {
    return this.#script('restart');
  }

  async #pid(): Promise<number> {
    const pid = Number((await readFile(join(this.dataDir, 'kafka.pid'), 'utf8')).trim());
    if (!Number.isInteger(pid) || pid <= 1) throw new Error(`no broker pid in ${this.dataDir}`);
    return pid;
  }

  /** Freezes the broker (SIGSTOP): connections stay open, requests get no answer until `resume()`. */
  async pause(): Promise<void> {
    process.kill(await this.#pid(), 'SIGSTOP');
  }

  /** Lets a paused broker run again (SIGCONT); it then handles the requests that waited. */
  async resume(): Promise<void> {
    process.kill(await this.#pid(), 'SIGCONT');
  }

  /** `kill -9` of the broker process (the pid the script recorded). */
  async kill9(): Promise<void> {
    const pid = await this.#pid();
    process.kill(pid, 'SIGKILL');
    // The port is free once the process is gone.
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Stops the broker and deletes its data; safe to call whatever state it is in. */
  async stop(): Promise<void> {
    try {
      await this.resume().catch(() => undefined);
      await this.#script('down');
    } finally {
      await rm(this.dataDir, { recursive: true, force: true });
    }
  }
}
