import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import pg from 'pg';
import { PG_URL, sleep } from './harness.js';

// Stopping and starting the machine's shared PostgreSQL (Debian's cluster, as in
// /work/shared/SERVICES.md). Only the `chaos` project's postgres restart file uses this: vitest runs
// that project after every other one (groupOrder), and this one file holds every test that restarts
// PostgreSQL, so no two of them overlap.

/** The Debian cluster, or why this machine has none this test can drive. */
export function cluster(): { version: string; name: string } | string {
  if (!existsSync('/usr/bin/pg_ctlcluster')) return 'pg_ctlcluster is not installed (Debian postgresql-common)';
  if (!existsSync('/etc/postgresql')) return 'no Debian PostgreSQL cluster in /etc/postgresql';
  const version = readdirSync('/etc/postgresql').sort().pop();
  if (!version) return 'no Debian PostgreSQL cluster in /etc/postgresql';
  if (new URL(PG_URL).hostname !== '127.0.0.1' && new URL(PG_URL).hostname !== 'localhost') {
    return `WHARF_POSTGRES_URL points at ${new URL(PG_URL).host}, not the local cluster this test restarts`;
  }
  return { version, name: 'main' };
}

function ctl(action: 'start' | 'stop' | 'restart'): void {
  const c = cluster();
  if (typeof c === 'string') throw new Error(c);
  // Fast shutdown: open sessions are terminated, as when a database server goes away.
  const mode = action === 'start' ? [] : ['-m', 'fast'];
  execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', c.version, c.name, action, ...mode], {
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 60_000,
  });
}

/** True when a new connection can run a query. */
export async function answers(): Promise<boolean> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 1_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function untilAnswers(timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await answers())) {
    if (Date.now() > deadline) throw new Error(`PostgreSQL did not answer within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export function stopPostgres(): void {
  ctl('stop');
}

/**
 * Starts PostgreSQL without blocking this process (its clients keep their own timers, as a service's
 * would) and resolves with `performance.now()` when a new connection first answered (polled every 20 ms).
 */
export async function startPostgres(): Promise<number> {
  const c = cluster();
  if (typeof c === 'string') throw new Error(c);
  const started = promisify(execFile)('pg_ctlcluster', ['--skip-systemctl-redirect', c.version, c.name, 'start'], {
    timeout: 60_000,
  });
  const deadline = Date.now() + 60_000;
  while (!(await answers())) {
    if (Date.now() > deadline) throw new Error('PostgreSQL did not answer within 60 s of its start');
    await sleep(20);
  }
  const up = performance.now();
  await started;
  return up;
}

export async function restartPostgres(): Promise<void> {
  ctl('restart');
  await untilAnswers();
}

/** Leaves the shared PostgreSQL running, whatever a test did to it (for finally / afterAll). */
export async function ensurePostgresRunning(): Promise<void> {
  if (await answers()) return;
  try {
    ctl('start');
  } catch {
    // Already starting, or stopped by a crash: the wait below decides.
  }
  await untilAnswers();
}
