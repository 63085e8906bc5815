import { randomBytes } from 'node:crypto';
import type { Bus, DeadLetterTarget } from '@wharf/core';
import { ConsoleConfigError } from './errors.js';

/** Options of {@link startConsole}. */
export interface ConsoleOptions {
  /** The bus whose broker the page shows (its URL's credentials never reach the page). */
  readonly bus: Bus;
  /** The channels and groups shown (`loadContractGroups(spec).groups` for a whole contract). */
  readonly targets: readonly DeadLetterTarget[];
  /** Default 127.0.0.1: the page is reachable from this machine only unless told otherwise. */
  readonly host?: string;
  /** Default 8080; 0 picks a free port. */
  readonly port?: number;
  /** The access token every request must carry; default 24 random bytes, hex. */
  readonly token?: string;
  /** Allow edit-and-replay (a corrected payload under a new id). Default false. */
  readonly allowEdit?: boolean;
  /** How often the overview is read from the broker and pushed to open pages. Default 1,000 ms. */
  readonly refreshMs?: number;
  /** Dead letters read per group at most, per request. Default 10,000. */
  readonly scanLimit?: number;
}

export interface ResolvedConsoleOptions {
  readonly bus: Bus;
  readonly targets: readonly DeadLetterTarget[];
  readonly host: string;
  readonly port: number;
  readonly token: string;
  readonly allowEdit: boolean;
  readonly refreshMs: number;
  readonly scanLimit: number;
}

export function resolveOptions(options: ConsoleOptions): ResolvedConsoleOptions {
  if (options.targets.length === 0) {
    throw new ConsoleConfigError('name at least one channel and group to show (or a contract with receive operations)');
  }
  const port = options.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new ConsoleConfigError(`port must be an integer from 0 to 65535, got ${String(port)}`);
  }
  const token = options.token ?? randomBytes(24).toString('hex');
  if (!/^[A-Za-z0-9._~-]{16,256}$/.test(token)) {
    throw new ConsoleConfigError('the token must be 16-256 letters, digits, ".", "_", "~" or "-"');
  }
  const refreshMs = options.refreshMs ?? 1_000;
  if (!Number.isInteger(refreshMs) || refreshMs < 100) {
    throw new ConsoleConfigError(`refreshMs must be an integer >= 100, got ${String(refreshMs)}`);
  }
  return {
    bus: options.bus,
    targets: options.targets,
    host: options.host ?? '127.0.0.1',
    port,
    token,
    allowEdit: options.allowEdit ?? false,
    refreshMs,
    scanLimit: options.scanLimit ?? 10_000,
  };
}
