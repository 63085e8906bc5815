import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { rabbitBinary } from '../brokers/rabbitmq.js';
import { BrokerControlError } from '../errors.js';
import { NATS_MORE_USERS, passwordUser, rabbitHash, type SecureUser } from './brokers.js';

/** RabbitMQ permissions of a user on the vhost `wharf` (regexes, as `rabbitmqctl set_permissions` takes them). */
export interface RabbitMqGrant {
  readonly configure: string;
  readonly write: string;
  readonly read: string;
}

/** NATS subject permissions of a user (allow lists). */
export interface NatsGrant {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

/** A user to add, with its rights (RabbitMQ: on vhost `wharf`; NATS: subjects). */
export interface SecureUserGrant<G> {
  readonly name: string;
  readonly grant: G;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

function newUser(dir: string, kind: string, name: string): SecureUser {
  if (!NAME.test(name))
    throw new BrokerControlError(`user name ${JSON.stringify(name)} must be 1-64 letters, digits, "_" or "-"`);
  const users = join(dir, 'users');
  mkdirSync(users, { recursive: true, mode: 0o700 });
  return passwordUser(name, join(users, `${kind}-${name}.password`));
}

function rabbitmqctl(dir: string, port: number, args: readonly string[]): Promise<string> {
  const node = `wharf-secure-${port}@localhost`;
  return new Promise((resolve, reject) => {
    // HOME is the node's data directory, where its Erlang cookie is (see rabbitNodeEnv).
    const env = { ...process.env, HOME: join(dir, 'rabbitmq'), ERL_EPMD_ADDRESS: '127.0.0.1' };
    execFile(rabbitBinary('rabbitmqctl'), ['-n', node, ...args], { env, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error)
        reject(
          new BrokerControlError(`rabbitmqctl -n ${node} ${args[0]} failed: ${stderr.trim() || error.message}`, {
            cause: error,
          }),
        );
      else resolve(stdout);
    });
  });
}

/**
 * Adds users to a running secure RabbitMQ node (or replaces their passwords and permissions), each with
 * a new random password in a file of its own (mode 0600, under `<dir>/users`), in one
 * `rabbitmqctl import_definitions`. Resolves with the users once the node has them.
 */
export async function addRabbitMqUsers(
  target: { readonly dir: string; readonly port: number },
  users: readonly SecureUserGrant<RabbitMqGrant>[],
): Promise<SecureUser[]> {
  const made = users.map((u) => newUser(target.dir, 'rabbitmq', u.name));
  const file = join(target.dir, 'users', `rabbitmq-definitions-${randomBytes(4).toString('hex')}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      users: made.map((u) => ({
        name: u.name,
        password_hash: rabbitHash(u.password),
        hashing_algorithm: 'rabbit_password_hashing_sha256',
        tags: [],
      })),
      permissions: users.map(({ name, grant }) => ({ user: name, vhost: 'wharf', ...grant })),
    }),
    { mode: 0o600 },
  );
  await rabbitmqctl(target.dir, target.port, ['import_definitions', file]);
  return made;
}

/** The nats-server among `pids` that runs the main secure config (not the expired/wrong-host servers). */
function natsPid(config: string, pids: readonly number[]): number {
  for (const pid of pids) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(config)) return pid;
    } catch {
      // gone, or not ours
    }
  }
  throw new BrokerControlError(
    `no running nats-server with the configuration ${config} among processes ${pids.join(', ')}`,
  );
}

/**
 * An exclusive lock file: two processes adding users at once would each rewrite the configuration from
 * what it held before, and one's users would be lost. A lock left by a killed process expires after 30 s.
 */
async function lock(path: string): Promise<() => void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      closeSync(openSync(path, 'wx', 0o600));
      return () => rmSync(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (Date.now() > deadline) rmSync(path, { force: true });
      else await sleep(50);
    }
  }
}

const reloads = (log: string): number => {
  try {
    return readFileSync(log, 'utf8').split('Reloaded server configuration').length - 1;
  } catch {
    return 0;
  }
};

/**
 * Adds users to a running secure nats-server (or replaces their passwords and permissions): writes them
 * into its configuration, one a line after {@link NATS_MORE_USERS}, and has the server reload it
 * (SIGHUP). Resolves once the server logged the reload, so the users can connect.
 */
export async function addNatsUsers(
  target: { readonly dir: string; readonly port: number; readonly pids: readonly number[] },
  users: readonly SecureUserGrant<NatsGrant>[],
): Promise<SecureUser[]> {
  const data = join(target.dir, 'nats-main');
  const config = join(data, 'nats.conf');
  const log = join(data, `nats-server-${target.port}.log`);
  const pid = natsPid(config, target.pids);
  const made = users.map((u) => newUser(target.dir, 'nats', u.name));
  const q = JSON.stringify;
  const lines = users.map(({ name, grant }, i) => {
    const allow = (subjects: readonly string[]) => `{ allow: [${subjects.map((s) => q(s)).join(', ')}] }`;
    return `    { user: ${q(name)}, password: ${q(made[i]?.password)}, permissions: { publish: ${allow(grant.publish)}, subscribe: ${allow(grant.subscribe)} } }`;
  });
  const release = await lock(`${config}.lock`);
  try {
    let text = readFileSync(config, 'utf8');
    if (!text.includes(NATS_MORE_USERS)) {
      // A server started before the marker existed: its users array ends the authorization block.
      const end = text.lastIndexOf('\n  ]\n}');
      if (end < 0) throw new BrokerControlError(`cannot find the users in ${config}`);
      text = `${text.slice(0, end)}\n    ${NATS_MORE_USERS}${text.slice(end)}`;
    }
    const at = text.indexOf(NATS_MORE_USERS) + NATS_MORE_USERS.length;
    const end = text.indexOf('\n  ]', at);
    const replaced = new Set(users.map((u) => `user: ${q(u.name)},`));
    const kept = text
      .slice(at, end)
      .split('\n')
      .filter((line) => line.trim() !== '' && ![...replaced].some((r) => line.includes(r)));
    writeFileSync(config, `${text.slice(0, at)}\n${[...kept, ...lines].join('\n')}${text.slice(end)}`, { mode: 0o600 });
    const before = reloads(log);
    process.kill(pid, 'SIGHUP');
    const deadline = Date.now() + 10_000;
    while (reloads(log) <= before) {
      if (Date.now() > deadline)
        throw new BrokerControlError(`nats-server ${pid} did not reload ${config} within 10 s (see ${log})`);
      await sleep(50);
    }
  } finally {
    release();
  }
  return made;
}
