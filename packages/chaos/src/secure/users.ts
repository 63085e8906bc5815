import { execFile } from 'node:child_process';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Acl,
  AclOperations,
  AclPermissionTypes,
  Admin,
  alterUserScramCredentialsV0,
  describeUserScramCredentialsV0,
  ResourcePatternTypes,
  ResourceTypes,
  ScramMechanisms,
} from '@platformatic/kafka';
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

/**
 * One Kafka ACL of a user, allow only (what `permissionsFor` of `@wharf/kafka` gives); the principal
 * is `User:<name>` and the host `*`.
 */
export interface KafkaAclGrant {
  readonly resourceType: 'topic' | 'group' | 'cluster' | 'transactional-id';
  readonly resourceName: string;
  readonly patternType: 'literal' | 'prefixed';
  readonly operation:
    | 'read'
    | 'write'
    | 'describe'
    | 'describe-configs'
    | 'create'
    | 'delete'
    | 'alter'
    | 'alter-configs'
    | 'idempotent-write'
    | 'all';
  readonly permission: 'allow';
}

/** The ACLs of a Kafka user: all of them (adding users replaces what a user had). */
export type KafkaGrant = readonly KafkaAclGrant[];

/** A user to add, with its rights (RabbitMQ: on vhost `wharf`; NATS: subjects; Kafka: ACLs). */
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

/** The locked-down Kafka node's listeners, from the configuration it was started with (secure/kafka.ts). */
function secureKafkaListeners(dir: string, port: number): { ssl: number } {
  const config = join(dir, 'kafka', 'secure.properties');
  let text: string;
  try {
    text = readFileSync(config, 'utf8');
  } catch (cause) {
    throw new BrokerControlError(`no secure Kafka node in ${dir} (cannot read ${config})`, { cause });
  }
  const listeners = /^listeners=(.*)$/m.exec(text)?.[1] ?? '';
  const portOf = (name: string): number | undefined => {
    const found = new RegExp(`(?:^|,)${name}://[^,]*:(\\d+)(?:,|$)`).exec(listeners)?.[1];
    return found === undefined ? undefined : Number(found);
  };
  const ssl = portOf('SSL');
  if (ssl === undefined || portOf('SASL_SSL') !== port)
    throw new BrokerControlError(
      `the secure Kafka node in ${dir} has no SASL_SSL listener on port ${port} (${config})`,
    );
  return { ssl };
}

const RESOURCE_TYPES = {
  topic: ResourceTypes.TOPIC,
  group: ResourceTypes.GROUP,
  cluster: ResourceTypes.CLUSTER,
  'transactional-id': ResourceTypes.TRANSACTIONAL_ID,
} as const;

const OPERATIONS = {
  read: AclOperations.READ,
  write: AclOperations.WRITE,
  describe: AclOperations.DESCRIBE,
  'describe-configs': AclOperations.DESCRIBE_CONFIGS,
  create: AclOperations.CREATE,
  delete: AclOperations.DELETE,
  alter: AclOperations.ALTER,
  'alter-configs': AclOperations.ALTER_CONFIGS,
  'idempotent-write': AclOperations.IDEMPOTENT_WRITE,
  all: AclOperations.ALL,
} as const;

function kafkaAcl(principal: string, grant: KafkaAclGrant): Acl {
  return {
    resourceType: RESOURCE_TYPES[grant.resourceType],
    resourceName: grant.resourceType === 'cluster' ? 'kafka-cluster' : grant.resourceName,
    resourcePatternType:
      grant.patternType === 'prefixed' ? ResourcePatternTypes.PREFIXED : ResourcePatternTypes.LITERAL,
    principal,
    host: '*',
    operation: OPERATIONS[grant.operation],
    permissionType: AclPermissionTypes.ALLOW,
  };
}

/** Kafka's SCRAM mechanisms with the PBKDF2 hash and key length of each (RFC 5802's Hi()). */
const SCRAM = [
  { mechanism: ScramMechanisms.SCRAM_SHA_256, hash: 'sha256', bytes: 32 },
  { mechanism: ScramMechanisms.SCRAM_SHA_512, hash: 'sha512', bytes: 64 },
] as const;
/** Kafka's least (and default) SCRAM iteration count. */
const SCRAM_ITERATIONS = 4096;

/**
 * Adds users to the running secure Kafka node (or replaces their passwords and ACLs), each with a new
 * random password in a file of its own (mode 0600, under `<dir>/users`). `port` is the node's
 * SASL_SSL listener (what `wharf brokers up secure` records); the work is done on its SSL listener as
 * the super user (the broker's certificate), through the Admin API: AlterUserScramCredentials with
 * SCRAM-SHA-256 and SCRAM-SHA-512 credentials salted here (the password itself is never sent, nor
 * put on a command line), then each user's old ACLs deleted and `grant` created. Resolves once the
 * broker describes every credential and ACL, so the users can connect and act at once.
 */
export async function addKafkaUsers(
  target: { readonly dir: string; readonly port: number },
  users: readonly SecureUserGrant<KafkaGrant>[],
): Promise<SecureUser[]> {
  const { ssl } = secureKafkaListeners(target.dir, target.port);
  const made = users.map((u) => newUser(target.dir, 'kafka', u.name));
  const certs = join(target.dir, 'certs');
  const admin = new Admin({
    clientId: 'wharf-secure-users',
    bootstrapBrokers: [`127.0.0.1:${ssl}`],
    connectTimeout: 5_000,
    timeout: 10_000,
    requestTimeout: 10_000,
    retries: 3,
    retryDelay: 250,
    autocreateTopics: false,
    tls: {
      ca: readFileSync(join(certs, 'ca.pem')),
      cert: readFileSync(join(certs, 'broker.pem')),
      key: readFileSync(join(certs, 'broker.key')),
    },
  });
  const doing = `adding Kafka users ${users.map((u) => u.name).join(', ')} on 127.0.0.1:${ssl}`;
  try {
    const [connection] = (await admin.connectToBrokers()).values();
    if (connection === undefined) throw new Error('the node lists no broker in its metadata');
    // One request per mechanism: Kafka refuses a request that names a user twice (DUPLICATE_RESOURCE),
    // even for two mechanisms.
    for (const { mechanism, hash, bytes } of SCRAM) {
      const upsertions = made.map((user) => {
        const salt = randomBytes(32);
        const saltedPassword = pbkdf2Sync(user.password, salt, SCRAM_ITERATIONS, bytes, hash);
        return { name: user.name, mechanism, iterations: SCRAM_ITERATIONS, salt, saltedPassword };
      });
      await alterUserScramCredentialsV0.api.async(connection, [], upsertions);
    }
    const principals = users.map((u) => `User:${u.name}`);
    const any = (principal: string) => ({
      resourceType: ResourceTypes.ANY,
      resourceName: null,
      resourcePatternType: ResourcePatternTypes.ANY,
      principal,
      host: null,
      operation: AclOperations.ANY,
      permissionType: AclPermissionTypes.ANY,
    });
    await admin.deleteAcls({ filters: principals.map(any) });
    const creations = users.flatMap((u, i) => u.grant.map((g) => kafkaAcl(principals[i] as string, g)));
    if (creations.length > 0) await admin.createAcls({ creations });
    // The controller commits both; the broker applies them a moment later: wait until it describes them.
    const expected = users.map((u) => new Set(u.grant.map((g) => JSON.stringify(kafkaAcl('', g)))).size);
    const applied = async (): Promise<boolean> => {
      const described = await describeUserScramCredentialsV0.api
        .async(
          connection,
          users.map((u) => ({ name: u.name })),
        )
        // A user the broker does not know yet is an error in the answer.
        .catch(() => undefined);
      if (!described?.results.every((r) => r.errorCode === 0 && r.credentialInfos.length === SCRAM.length))
        return false;
      for (const [i, principal] of principals.entries()) {
        const resources = await admin.describeAcls({ filter: any(principal) });
        if (resources.reduce((sum, r) => sum + r.acls.length, 0) !== expected[i]) return false;
      }
      return true;
    };
    const deadline = Date.now() + 10_000;
    while (!(await applied())) {
      if (Date.now() > deadline) throw new Error('the broker did not describe every credential and ACL within 10 s');
      await sleep(100);
    }
  } catch (error) {
    // @platformatic/kafka's ResponseError says which API failed; the broker's reasons are its `errors`.
    const reasons = ((error as { errors?: unknown[] }).errors ?? []).map((e) => (e as Error).message);
    throw new BrokerControlError(`${doing} failed: ${[(error as Error).message, ...reasons].join('; ')}`, {
      cause: error,
    });
  } finally {
    await admin.close().catch(() => undefined);
  }
  return made;
}
