import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../brokers/ports.js';
import type { BrokerDriver } from '../brokers/process.js';
import { ProcessBroker } from '../brokers/process.js';
import { rabbitBinary, rabbitNodeEnv } from '../brokers/rabbitmq.js';
import { BrokerControlError } from '../errors.js';
import { makeCertificates, type TestCertificates } from './certs.js';
import { grantKafkaAcls, KAFKA_CLIENT_PRINCIPAL, secureKafkaDriver, secureKafkaPorts } from './kafka.js';
import { amqpsServes, natsTlsServes } from './probe.js';

/** The users every secure broker has. Passwords are random per start and live in files, mode 0600. */
export interface SecureUser {
  readonly name: string;
  readonly password: string;
  /** A file holding only the password (for `--password-file`). */
  readonly passwordFile: string;
}

/** A secure broker: TLS only, client certificates required, users with limited rights. */
export interface SecureBroker {
  readonly kind: 'rabbitmq' | 'nats' | 'kafka';
  /** URL without credentials, e.g. `amqps://localhost:41234/wharf`. */
  readonly url: string;
  readonly port: number;
  /** Every right on the broker's Wharf vhost / every subject. */
  readonly admin: SecureUser;
  /**
   * Only names that start with `limited` (RabbitMQ: resources on vhost `wharf`; NATS: subjects
   * `limited.>`, plus the JetStream API and inboxes; Kafka: topics, groups and transactional ids,
   * by prefixed ACLs, and topics but no groups starting with `shared`). For "not authorised" tests.
   */
  readonly limited: SecureUser;
  pid(): number | undefined;
}

/** The RabbitMQ node also has a vhost `other` that no user may open. */
export interface SecureRabbitMq extends SecureBroker {
  readonly kind: 'rabbitmq';
}

/** Extra NATS servers that present bad certificates (NATS cannot choose a certificate by SNI). */
export interface SecureNats extends SecureBroker {
  readonly kind: 'nats';
  /** A server presenting a certificate that expired in 2020, signed by the trusted CA. */
  readonly expiredUrl: string;
  /** A server presenting a certificate for `wrong-host.test`, signed by the trusted CA. */
  readonly wrongHostUrl: string;
}

/**
 * A KRaft node with no plaintext listener. `url`/`port` is SASL_SSL (SCRAM-SHA-256 and -512, no client
 * certificate asked); `sslUrl` requires a client certificate and takes its CN as the user
 * (`wharf-client`, with the admin's rights). The node's own certificate (`certs.broker`) is the super user.
 */
export interface SecureKafka extends SecureBroker {
  readonly kind: 'kafka';
  /** `kafkas://127.0.0.1:port`: SSL, client certificate required. */
  readonly sslUrl: string;
  /** SSL presenting a certificate that expired in 2020, signed by the trusted CA (client certificate required). */
  readonly expiredUrl: string;
  /** SSL presenting a certificate for `wrong-host.test`, signed by the trusted CA (client certificate required). */
  readonly wrongHostUrl: string;
}

/** What `startSecureBrokers` started. */
export interface SecureBrokers {
  readonly dir: string;
  readonly certs: TestCertificates;
  readonly rabbitmq?: SecureRabbitMq;
  readonly nats?: SecureNats;
  readonly kafka?: SecureKafka;
  /** Process ids to stop (for `wharf brokers down secure` after the starting process has gone). */
  pids(): number[];
  /** Stops every broker and removes the directory (certificates, data, passwords). Idempotent. */
  destroy(): Promise<void>;
  /** Lets the brokers outlive this process (no clean-up at exit); `destroy()` still works. */
  detach(): void;
}

/** Options of {@link startSecureBrokers}. */
export interface SecureBrokersOptions {
  /** Which brokers to start. Default all three. */
  readonly kinds?: readonly ('rabbitmq' | 'nats' | 'kafka')[];
  /** Directory for certificates, configs and data; a fresh temporary one by default. Removed by destroy(). */
  readonly dir?: string;
}

/** The SNI names the RabbitMQ node answers with a bad certificate (RabbitMQ can, NATS cannot). */
export const RABBITMQ_SNI = { expired: 'expired.test', wrongHost: 'wrong-name.test' } as const;

/** A user with a fresh random password, written alone to `passwordFile` (mode 0600). */
export function passwordUser(name: string, passwordFile: string): SecureUser {
  // Hex: no character that needs escaping in a URL, a config file or a shell.
  const password = randomBytes(18).toString('hex');
  writeFileSync(passwordFile, password, { mode: 0o600 });
  return { name, password, passwordFile };
}

function user(dir: string, name: string): SecureUser {
  return passwordUser(name, join(dir, `${name}.password`));
}

/** RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt ‖ sha256(salt ‖ password)), 4-byte salt. */
export function rabbitHash(password: string): string {
  const salt = randomBytes(4);
  const digest = createHash('sha256')
    .update(Buffer.concat([salt, Buffer.from(password, 'utf8')]))
    .digest();
  return Buffer.concat([salt, digest]).toString('base64');
}

const erlString = (path: string): string => JSON.stringify(path);

function secureRabbitDriver(
  port: number,
  distPort: number,
  dataDir: string,
  certs: TestCertificates,
  admin: SecureUser,
  limited: SecureUser,
): BrokerDriver {
  const node = `wharf-secure-${port}@localhost`;
  const pidFile = join(dataDir, 'rabbit.pid');
  let wrapper: number | undefined;
  return {
    kind: 'rabbitmq',
    url: `amqps://localhost:${port}/wharf`,
    port,
    proxyTarget: port,
    dataDir,
    startTimeoutMs: 120_000,
    async launch() {
      const definitions = join(dataDir, 'definitions.json');
      const userEntry = (u: SecureUser, tags: string[]) => ({
        name: u.name,
        password_hash: rabbitHash(u.password),
        hashing_algorithm: 'rabbit_password_hashing_sha256',
        tags,
      });
      writeFileSync(
        definitions,
        JSON.stringify({
          users: [userEntry(admin, ['administrator']), userEntry(limited, [])],
          vhosts: [{ name: 'wharf' }, { name: 'other' }],
          permissions: [
            { user: admin.name, vhost: 'wharf', configure: '.*', write: '.*', read: '.*' },
            // This user creates its own queues, and RabbitMQ checks write on a new queue's dead-letter
            // exchange (the default one, for Wharf's work and retry queues) when it creates the queue:
            // write on amq.default. A service whose groups an administrator declared needs none (see
            // the adapter README, "Least privilege", and permissionsFor).
            {
              user: limited.name,
              vhost: 'wharf',
              configure: '^limited',
              write: '^(limited.*|amq\\.default)$',
              read: '^limited',
            },
          ],
        }),
        { mode: 0o600 },
      );
      writeFileSync(
        join(dataDir, 'rabbitmq.conf'),
        [
          'listeners.tcp = none',
          `listeners.ssl.default = 127.0.0.1:${port}`,
          // Users connect from 127.0.0.1; the restriction is for guest, who does not exist here.
          'loopback_users = none',
          'disk_free_limit.absolute = 50MB',
          `load_definitions = ${definitions}`,
          '',
        ].join('\n'),
      );
      // ssl_options in advanced.config because sni_hosts (a certificate per SNI name, for the
      // negative tests) has no rabbitmq.conf key.
      const sni = (name: string, pair: { cert: string; key: string }) =>
        `{${erlString(name)}, [{certfile, ${erlString(pair.cert)}}, {keyfile, ${erlString(pair.key)}}]}`;
      writeFileSync(
        join(dataDir, 'advanced.config'),
        `[{rabbit, [
  {ssl_options, [
    {cacertfile, ${erlString(certs.ca)}},
    {certfile, ${erlString(certs.server.cert)}},
    {keyfile, ${erlString(certs.server.key)}},
    {verify, verify_peer},
    {fail_if_no_peer_cert, true},
    {sni_hosts, [${sni(RABBITMQ_SNI.expired, certs.expired)}, ${sni(RABBITMQ_SNI.wrongHost, certs.wrongHost)}]}
  ]},
  {dead_letter_worker_publisher_confirm_timeout, 5000}
]}].
`,
      );
      writeFileSync(join(dataDir, 'rabbitmq-env.conf'), '# secure node: see @wharf/chaos secure/brokers.ts\n');
      writeFileSync(join(dataDir, 'enabled_plugins'), '[].\n');
      const log = openSync(join(dataDir, 'rabbitmq-server.out'), 'a');
      const child = spawn(rabbitBinary('rabbitmq-server'), [], {
        detached: true,
        stdio: ['ignore', log, log],
        cwd: dataDir,
        env: rabbitNodeEnv(node, port, distPort, dataDir, pidFile),
      });
      child.on('error', () => undefined);
      child.unref();
      wrapper = child.pid;
    },
    pid() {
      try {
        const pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
        return Number.isInteger(pid) && pid > 0 ? pid : undefined;
      } catch {
        return wrapper;
      }
    },
    companions: () => (wrapper === undefined ? [] : [wrapper]),
    serves: () => amqpsServes(port, certs),
  };
}

/** The line of the NATS config after which `addSecureUsers` (users.ts) writes its users, one a line. */
export const NATS_MORE_USERS = '# more users (addSecureUsers), one a line:';

function natsConfig(
  port: number,
  dataDir: string,
  pair: { cert: string; key: string },
  certs: TestCertificates,
  admin: SecureUser,
  limited: SecureUser,
): string {
  const file = join(dataDir, 'nats.conf');
  const q = JSON.stringify;
  writeFileSync(
    file,
    `listen: "127.0.0.1:${port}"
jetstream { store_dir: ${q(join(dataDir, 'jetstream'))} }
tls {
  cert_file: ${q(pair.cert)}
  key_file: ${q(pair.key)}
  ca_file: ${q(certs.ca)}
  verify: true
  timeout: 2
}
authorization {
  users: [
    { user: ${q(admin.name)}, password: ${q(admin.password)} }
    { user: ${q(limited.name)}, password: ${q(limited.password)}, permissions: {
      publish: { allow: ["limited.>", "$JS.API.>", "$JS.ACK.>", "_INBOX.>"] }
      subscribe: { allow: ["limited.>", "_INBOX.>"] }
    } }
    ${NATS_MORE_USERS}
  ]
}
`,
    { mode: 0o600 },
  );
  return file;
}

function secureNatsDriver(port: number, dataDir: string, config: string): BrokerDriver {
  let child: ChildProcess | undefined;
  return {
    kind: 'nats',
    url: `tls://localhost:${port}`,
    port,
    proxyTarget: port,
    dataDir,
    startTimeoutMs: 30_000,
    async launch() {
      const log = openSync(join(dataDir, `nats-server-${port}.log`), 'a');
      child = spawn(process.env.WHARF_NATS_SERVER ?? 'nats-server', ['-c', config], {
        detached: true,
        stdio: ['ignore', log, log],
      });
      child.on('error', () => undefined);
      child.unref();
    },
    pid: () => (child?.exitCode === null && child.signalCode === null ? child.pid : undefined),
    serves: () => natsTlsServes(port),
  };
}

/** Keeps ProcessBroker's own directory clean-up away from the shared directory (removed once, at the end). */
function subdir(dir: string, name: string): string {
  const path = join(dir, name);
  mkdirSync(path, { recursive: true, mode: 0o700 });
  return path;
}

/**
 * Starts RabbitMQ, NATS and Kafka with TLS only and client certificates required (mutual TLS; Kafka
 * also has a SASL_SSL listener without), beside the shared brokers, on free ports, with certificates
 * made for the occasion by openssl. Each has an `admin` user with every right and a `limited` user
 * (see {@link SecureBroker}). Resolves once each
 * completes a TLS handshake; on failure everything started is stopped and removed.
 */
export async function startSecureBrokers(options: SecureBrokersOptions = {}): Promise<SecureBrokers> {
  const kinds = options.kinds ?? ['rabbitmq', 'nats', 'kafka'];
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'wharf-secure-')));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const started: ProcessBroker[] = [];
  let destroyed = false;
  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    await Promise.all(started.map((b) => b.destroy().catch(() => undefined)));
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  try {
    const certs = await makeCertificates(join(dir, 'certs'));
    let rabbitmq: SecureRabbitMq | undefined;
    let nats: SecureNats | undefined;
    let kafka: SecureKafka | undefined;
    const starts: Promise<void>[] = [];
    if (kinds.includes('rabbitmq')) {
      const data = subdir(dir, 'rabbitmq');
      const admin = user(dir, 'rabbitmq-wharf');
      const limited = user(dir, 'rabbitmq-limited');
      const [port, distPort] = [await freePort(), await freePort()];
      const broker = new ProcessBroker(
        secureRabbitDriver(port, distPort, data, certs, { ...admin, name: 'wharf' }, { ...limited, name: 'limited' }),
      );
      started.push(broker);
      starts.push(broker.start());
      rabbitmq = {
        kind: 'rabbitmq',
        url: broker.url,
        port,
        admin: { ...admin, name: 'wharf' },
        limited: { ...limited, name: 'limited' },
        pid: () => broker.pid(),
      };
    }
    if (kinds.includes('nats')) {
      const admin = { ...user(dir, 'nats-wharf'), name: 'wharf' };
      const limited = { ...user(dir, 'nats-limited'), name: 'limited' };
      const brokers = await Promise.all(
        (['main', 'expired', 'wrong-host'] as const).map(async (which) => {
          const port = await freePort();
          const data = subdir(dir, `nats-${which}`);
          const pair = which === 'main' ? certs.server : which === 'expired' ? certs.expired : certs.wrongHost;
          const broker = new ProcessBroker(
            secureNatsDriver(port, data, natsConfig(port, data, pair, certs, admin, limited)),
          );
          started.push(broker);
          starts.push(broker.start());
          return broker;
        }),
      );
      const [main, expired, wrongHost] = brokers as [ProcessBroker, ProcessBroker, ProcessBroker];
      nats = {
        kind: 'nats',
        url: main.url,
        port: main.port,
        admin,
        limited,
        expiredUrl: expired.url,
        wrongHostUrl: wrongHost.url,
        pid: () => main.pid(),
      };
    }
    if (kinds.includes('kafka')) {
      const admin = { ...user(dir, 'kafka-admin'), name: 'admin' };
      const limited = { ...user(dir, 'kafka-limited'), name: 'limited' };
      const ports = await secureKafkaPorts();
      const broker = new ProcessBroker(secureKafkaDriver(ports, subdir(dir, 'kafka'), certs, [admin, limited]));
      started.push(broker);
      starts.push(
        broker.start().then(() => grantKafkaAcls(ports, certs, limited.name, [admin.name, KAFKA_CLIENT_PRINCIPAL])),
      );
      kafka = {
        kind: 'kafka',
        url: broker.url,
        port: ports.saslSsl,
        sslUrl: `kafkas://127.0.0.1:${ports.ssl}`,
        expiredUrl: `kafkas://127.0.0.1:${ports.expired}`,
        wrongHostUrl: `kafkas://127.0.0.1:${ports.wrongHost}`,
        admin,
        limited,
        pid: () => broker.pid(),
      };
    }
    await Promise.all(starts);
    return {
      dir,
      certs,
      ...(rabbitmq ? { rabbitmq } : {}),
      ...(nats ? { nats } : {}),
      ...(kafka ? { kafka } : {}),
      pids: () => started.flatMap((b) => [b.pid(), ...b.companionPids()]).filter((p): p is number => p !== undefined),
      destroy,
      detach: () => {
        for (const broker of started) broker.detach();
      },
    };
  } catch (error) {
    await destroy();
    throw error instanceof BrokerControlError
      ? error
      : new BrokerControlError(`could not start the secure brokers: ${(error as Error).message}`, { cause: error });
  }
}
