import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { type SecureBrokers, startSecureBrokers } from '@wharf/chaos';

/** Where `wharf brokers up secure` keeps its brokers: `WHARF_SECURE_DIR`, else one directory per user. */
export function secureDir(): string {
  return process.env.WHARF_SECURE_DIR ?? join(tmpdir(), `wharf-secure-${userInfo().username}`);
}

/** One broker as `--json` prints it: its URL and the `wharf` flags that reach it. */
export interface SecureEndpoint {
  readonly url: string;
  readonly args: readonly string[];
}

/** What `up` records and prints. No password: the args point at password files (mode 0600). */
export interface SecureState {
  readonly dir: string;
  readonly pids: readonly number[];
  readonly rabbitmq?: SecureEndpoint;
  readonly nats?: SecureEndpoint;
  readonly kafka?: SecureEndpoint;
}

function endpoints(brokers: SecureBrokers): Pick<SecureState, 'rabbitmq' | 'nats' | 'kafka'> {
  const tls = [
    '--tls-ca',
    brokers.certs.ca,
    '--tls-cert',
    brokers.certs.client.cert,
    '--tls-key',
    brokers.certs.client.key,
  ];
  const out: { rabbitmq?: SecureEndpoint; nats?: SecureEndpoint; kafka?: SecureEndpoint } = {};
  if (brokers.rabbitmq) {
    const { port, admin } = brokers.rabbitmq;
    // 127.0.0.1, not localhost: the certificate names both, and localhost may resolve to ::1 first.
    const url = `amqps://127.0.0.1:${port}/wharf`;
    out.rabbitmq = {
      url,
      args: ['--broker', url, ...tls, '--username', admin.name, '--password-file', admin.passwordFile],
    };
  }
  if (brokers.nats) {
    const { port, admin } = brokers.nats;
    const url = `tls://127.0.0.1:${port}`;
    out.nats = {
      url,
      args: ['--broker', url, ...tls, '--username', admin.name, '--password-file', admin.passwordFile],
    };
  }
  if (brokers.kafka) {
    const { port, admin } = brokers.kafka;
    // The SASL_SSL listener: the password authenticates, so no client certificate (the SSL listener asks for one).
    const url = `kafkas://127.0.0.1:${port}?mechanism=scram-sha-512`;
    out.kafka = {
      url,
      args: [
        '--broker',
        url,
        '--tls-ca',
        brokers.certs.ca,
        '--username',
        admin.name,
        '--password-file',
        admin.passwordFile,
      ],
    };
  }
  return out;
}

function alive(pid: number, dir: string): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A recycled pid belongs to someone else: ours mention their directory on the command line or in HOME.
  for (const file of ['cmdline', 'environ']) {
    try {
      if (readFileSync(`/proc/${pid}/${file}`, 'utf8').includes(dir)) return true;
    } catch {
      // not readable: not ours
    }
  }
  return false;
}

function readState(dir: string): SecureState | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as SecureState;
  } catch {
    return undefined;
  }
}

/**
 * Starts the secure brokers in the background (or finds them running) and records them. They keep
 * running after this process exits, until {@link secureDown}.
 */
export async function secureUp(): Promise<{ state: SecureState; started: boolean }> {
  const dir = secureDir();
  const known = readState(dir);
  if (known && known.pids.length > 0 && known.pids.every((pid) => alive(pid, dir))) {
    return { state: known, started: false };
  }
  if (known || existsSync(dir)) await secureDown();
  const brokers = await startSecureBrokers({ dir });
  brokers.detach();
  const state: SecureState = { dir, pids: brokers.pids(), ...endpoints(brokers) };
  writeFileSync(join(dir, 'state.json'), JSON.stringify(state, null, 2), { mode: 0o600 });
  return { state, started: true };
}

/** Stops the brokers `secureUp` started and removes their directory (certificates, data, passwords). */
export async function secureDown(): Promise<boolean> {
  const dir = secureDir();
  const state = readState(dir);
  const pids = (state?.pids ?? []).filter((pid) => alive(pid, dir));
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 30_000;
  while (pids.some((pid) => alive(pid, dir)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  for (const pid of pids.filter((p) => alive(p, dir))) process.kill(pid, 'SIGKILL');
  const existed = state !== undefined || existsSync(dir);
  rmSync(dir, { recursive: true, force: true });
  return existed;
}
