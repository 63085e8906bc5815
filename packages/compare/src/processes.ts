import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CompareError } from './errors.js';
import type { ServiceConfig } from './service-main.js';

const TICKS_PER_SECOND = Number(readTicks());

function readTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat; 0 when it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields are counted after its closing one.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** The pid listening on a local TCP port (the broker's), when `ss` can tell; undefined otherwise. */
export function listenerPid(port: number): number | undefined {
  try {
    const out = execFileSync('ss', ['-Hltnp', `sport = :${port}`], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const match = /pid=(\d+)/.exec(out);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The entry to spawn and how: TypeScript sources under tsx (tests, `--conditions=wharf-source`) or the build. */
function entry(): { file: string; execArgv: string[]; cwd?: string } {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts')) {
    return {
      file: fileURLToPath(new URL('./service-main.ts', import.meta.url)),
      execArgv: ['--conditions=wharf-source', '--import', 'tsx'],
      // tsx is the repository's: resolve it from the root, wherever the caller runs.
      cwd: fileURLToPath(new URL('../../..', import.meta.url)),
    };
  }
  return { file: fileURLToPath(new URL('./service-main.js', import.meta.url)), execArgv: [] };
}

/** One service process the harness started. */
export class ServiceProcess {
  #child: ChildProcess;
  #stderr = '';
  /** CPU of earlier incarnations (before a restart). */
  #cpuBefore = 0;
  url = '';

  private constructor(
    readonly variant: 'sync' | 'async',
    readonly service: string,
    private config: ServiceConfig,
  ) {
    this.#child = this.#spawn();
  }

  static async start(variant: 'sync' | 'async', service: string, config: ServiceConfig): Promise<ServiceProcess> {
    const proc = new ServiceProcess(variant, service, config);
    await proc.#ready();
    return proc;
  }

  get pid(): number {
    return this.#child.pid ?? 0;
  }

  /** CPU seconds over every incarnation of this service. */
  cpuSeconds(): number {
    return this.#cpuBefore + cpuSeconds(this.pid);
  }

  #spawn(): ChildProcess {
    const { file, execArgv, cwd } = entry();
    const child = spawn(process.execPath, [...execArgv, file, this.variant, this.service], {
      ...(cwd ? { cwd } : {}),
      env: { ...process.env, WHARF_COMPARE_SERVICE: JSON.stringify(this.config) },
      // The IPC channel closes when the harness dies: the service then stops too, never orphaned.
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.#stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      if (process.env.WHARF_COMPARE_DEBUG) process.stderr.write(chunk);
      this.#stderr = (this.#stderr + chunk.toString()).slice(-4_000);
    });
    return child;
  }

  async #ready(timeoutMs = 60_000): Promise<void> {
    const child = this.#child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => fail(`did not start within ${timeoutMs / 1000} s`), timeoutMs);
      const fail = (why: string): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new CompareError(`the ${this.variant} ${this.service} service ${why}:\n${this.#stderr}`));
      };
      child.on('exit', (code) => fail(`exited with ${code}`));
      child.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /ready (\S+)/.exec(out);
        if (match) {
          clearTimeout(timer);
          child.removeAllListeners('exit');
          if (match[1] !== '-') this.url = match[1] as string;
          resolve();
        }
      });
    });
  }

  /** Kills the process at once (a crash, not a graceful stop) and waits for it to be gone. */
  async kill(): Promise<void> {
    this.#cpuBefore += cpuSeconds(this.pid);
    await this.#stop('SIGKILL');
  }

  /** Starts it again on the same port. */
  async restart(): Promise<void> {
    if (this.url) this.config = { ...this.config, port: Number(new URL(this.url).port) };
    this.#child = this.#spawn();
    await this.#ready();
  }

  /** Stops it gracefully (SIGTERM, then SIGKILL after 15 s). */
  async stop(): Promise<void> {
    await this.#stop('SIGTERM', 15_000);
  }

  async #stop(signal: NodeJS.Signals, killAfterMs?: number): Promise<void> {
    const child = this.#child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    const timer = killAfterMs ? setTimeout(() => child.kill('SIGKILL'), killAfterMs) : undefined;
    await exited;
    if (timer) clearTimeout(timer);
  }
}
