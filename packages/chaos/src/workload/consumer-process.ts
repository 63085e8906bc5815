import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChaosTimeoutError } from '../errors.js';
import type { ConsumerConfig } from './consumer-child.js';

/** The consumer child: `.js` next to this file when built, else the `.ts` source through tsx. */
function childCommand(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const js = join(here, 'consumer-child.js');
  if (existsSync(js)) return [js];
  return ['--conditions=wharf-source', '--import', 'tsx', join(here, 'consumer-child.ts')];
}

/** A consumer process a scenario can kill -9, SIGSTOP and replace. */
export class ConsumerProcess {
  #child: ChildProcess | undefined;
  #stderr: string[] = [];
  /** Consumer processes started so far (1 + restarts). */
  starts = 0;

  constructor(
    private readonly config: ConsumerConfig,
    private readonly onLine: (line: string) => void = () => undefined,
  ) {}

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The last lines the consumer wrote to stderr, for a failure report. */
  get lastErrors(): string[] {
    return this.#stderr.slice(-20);
  }

  /** Spawns the consumer and resolves once it is subscribed. */
  async start(timeoutMs = 120_000): Promise<void> {
    this.starts += 1;
    const child = spawn(process.execPath, childCommand(), {
      env: { ...process.env, WHARF_CHAOS_CONSUMER: JSON.stringify(this.config), KAFKAJS_NO_PARTITIONER_WARNING: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n').filter(Boolean)) {
        this.#stderr.push(line);
        if (this.#stderr.length > 200) this.#stderr.shift();
        this.onLine(line);
      }
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new ChaosTimeoutError(
              `the consumer process did not subscribe within ${timeoutMs} ms: ${this.lastErrors.slice(-3).join(' | ')}`,
            ),
          ),
        timeoutMs,
      );
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        if (chunk.includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(
          new ChaosTimeoutError(
            `the consumer process exited (${signal ?? code}) before subscribing: ${this.lastErrors.slice(-3).join(' | ')}`,
          ),
        );
      });
    });
  }

  /** kill -9, waits for the exit. */
  async kill(): Promise<void> {
    await this.#signalAndWait('SIGKILL', 10_000);
  }

  pause(): void {
    this.#child?.kill('SIGSTOP');
  }

  resume(): void {
    this.#child?.kill('SIGCONT');
  }

  /** Clean stop (SIGTERM → bus.close()), then SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 20_000): Promise<void> {
    this.resume();
    try {
      await this.#signalAndWait('SIGTERM', timeoutMs);
    } catch {
      await this.kill();
    }
  }

  async #signalAndWait(signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new ChaosTimeoutError(`consumer pid ${child.pid} did not exit on ${signal} within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }
}
