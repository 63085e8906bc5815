import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@wharf/chaos';
import { probeBroker } from '@wharf/conformance';
import { afterAll, beforeAll } from 'vitest';

/**
 * A nats-server of the test's own (JetStream, file storage in a temporary directory, loopback, a free port), for
 * faults the shared server must never see: kill -9, restarts. `stop()` kills it and removes its data; call it
 * in `afterAll`/`finally`.
 */
export class PrivateNatsServer {
  readonly port: number;
  readonly url: string;
  readonly #dir: string;
  #process: ChildProcess | undefined;

  private constructor(port: number) {
    this.port = port;
    this.url = `nats://127.0.0.1:${port}`;
    this.#dir = mkdtempSync(join(tmpdir(), 'wharf-nats-'));
  }

  static async start(): Promise<PrivateNatsServer> {
    const server = new PrivateNatsServer(await freePort());
    await server.#spawn();
    return server;
  }

  async #spawn(): Promise<void> {
    const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.#dir], {
      stdio: 'ignore',
    });
    this.#process = child;
    const deadline = Date.now() + 20_000;
    while ((await probeBroker('NATS', '127.0.0.1', this.port, 500)) !== undefined) {
      if (child.exitCode !== null) throw new Error(`private nats-server exited with ${child.exitCode}`);
      if (Date.now() > deadline) throw new Error(`private nats-server on ${this.port} did not start in 20 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** SIGKILL by default: no shutdown, the store as it was on disk (page cache kept). SIGTERM: a clean stop. */
  async kill(signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }

  /** SIGSTOP: the server keeps its connections but answers nothing until `resume()` (an overloaded server). */
  pause(): void {
    this.#process?.kill('SIGSTOP');
  }

  /** SIGCONT after `pause()`. */
  resume(): void {
    this.#process?.kill('SIGCONT');
  }

  /** Stops it (`signal`), waits `downMs`, starts it again on the same port and store. */
  async restart(downMs = 0, signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    await this.kill(signal);
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.#spawn();
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/**
 * One private server for a test file: started before its tests when NATS is installed (`enabled`), resumed
 * (in case a test paused it) and stopped after them. Returns a getter for the running server.
 */
export function privateServerPerFile(enabled: boolean): () => PrivateNatsServer {
  let server: PrivateNatsServer | undefined;
  beforeAll(async () => {
    if (enabled) server = await PrivateNatsServer.start();
  });
  afterAll(async () => {
    server?.resume();
    await server?.stop();
  });
  return () => {
    if (!server) throw new Error('the private NATS server is not running');
    return server;
  };
}
