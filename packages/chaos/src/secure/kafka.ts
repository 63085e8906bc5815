import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import kafkajs from 'kafkajs';
import { kafkaServes } from '../brokers/handshake.js';
import { kafkaDriver } from '../brokers/kafka.js';
import { freePort, HOST } from '../brokers/ports.js';
import type { BrokerDriver } from '../brokers/process.js';
import type { TestCertificates } from './certs.js';

const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, Kafka, logLevel, ResourcePatternTypes } = kafkajs;

/** The principal of a client certificate: its CN (`ssl.principal.mapping.rules`). The broker's own is the super user. */
export const KAFKA_BROKER_PRINCIPAL = 'wharf-broker';
export const KAFKA_CLIENT_PRINCIPAL = 'wharf-client';

/** The listeners of the locked-down node, each on a free port of 127.0.0.1. */
export interface SecureKafkaPorts {
  /** SSL, client certificate required; the principal is the certificate's CN. kafka.sh's KAFKA_PORT. */
  readonly ssl: number;
  /** SASL_SSL with SCRAM-SHA-256 and SCRAM-SHA-512, no client certificate asked. */
  readonly saslSsl: number;
  /** SSL presenting a certificate that expired in 2020 (signed by the trusted CA). */
  readonly expired: number;
  /** SSL presenting a certificate for `wrong-host.test` only (signed by the trusted CA). */
  readonly wrongHost: number;
  readonly controller: number;
}

export async function secureKafkaPorts(): Promise<SecureKafkaPorts> {
  return {
    ssl: await freePort(),
    saslSsl: await freePort(),
    expired: await freePort(),
    wrongHost: await freePort(),
    controller: await freePort(),
  };
}

/** Kafka's PEM keystore is one file: the private key (PKCS#8, as openssl 3 writes it) then the certificate. */
function bundle(dir: string, name: string, pair: { cert: string; key: string }): string {
  const file = join(dir, `${name}.keystore.pem`);
  writeFileSync(file, `${readFileSync(pair.key, 'utf8').trim()}\n${readFileSync(pair.cert, 'utf8').trim()}\n`, {
    mode: 0o600,
  });
  return file;
}

/**
 * server.properties keys for kafka.sh's KAFKA_SECURE_CONFIG: TLS on every listener (the controller's
 * too: mutual TLS, the broker connects to it as the super user), SCRAM on SASL_SSL, the standard
 * authorizer with nothing allowed unless an ACL says so.
 */
function secureProperties(dataDir: string, ports: SecureKafkaPorts, certs: TestCertificates): string {
  const keystore = bundle(dataDir, 'broker', certs.broker);
  const expired = bundle(dataDir, 'expired', certs.expired);
  const wrongHost = bundle(dataDir, 'wrong-host', certs.wrongHost);
  const at = (name: string, port: number): string => `${name}://${HOST}:${port}`;
  const serving = [
    at('SSL', ports.ssl),
    at('SASL_SSL', ports.saslSsl),
    at('EXPIRED', ports.expired),
    at('WRONGHOST', ports.wrongHost),
  ];
  const scram = 'org.apache.kafka.common.security.scram.ScramLoginModule required;';
  return [
    `listeners=${[...serving, at('CONTROLLER', ports.controller)].join(',')}`,
    `advertised.listeners=${serving.join(',')}`,
    'listener.security.protocol.map=CONTROLLER:SSL,SSL:SSL,SASL_SSL:SASL_SSL,EXPIRED:SSL,WRONGHOST:SSL',
    'inter.broker.listener.name=SSL',
    'ssl.keystore.type=PEM',
    `ssl.keystore.location=${keystore}`,
    'ssl.truststore.type=PEM',
    `ssl.truststore.location=${certs.ca}`,
    // Every listener asks for a client certificate except SASL_SSL, where the password authenticates.
    'ssl.client.auth=required',
    'listener.name.sasl_ssl.ssl.client.auth=none',
    `listener.name.expired.ssl.keystore.location=${expired}`,
    `listener.name.wronghost.ssl.keystore.location=${wrongHost}`,
    // User:wharf-client rather than User:CN=wharf-client: ACLs and super.users name the CN.
    'ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT',
    'sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512',
    `listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=${scram}`,
    `listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=${scram}`,
    'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer',
    `super.users=User:${KAFKA_BROKER_PRINCIPAL}`,
    'allow.everyone.if.no.acl.found=false',
    '',
  ].join('\n');
}

/** A mutual-TLS ApiVersions handshake on the SSL listener, with the broker's own certificate. */
function sslServes(port: number, certs: TestCertificates): Promise<boolean> {
  return kafkaServes(port, 3_000, {
    open: () =>
      tlsConnect({
        host: HOST,
        port,
        ca: readFileSync(certs.ca),
        cert: readFileSync(certs.broker.cert),
        key: readFileSync(certs.broker.key),
      }),
    ready: 'secureConnect',
  });
}

/**
 * The driver of a locked-down KRaft node through scripts/kafka.sh: `users` are made at format time
 * with SCRAM-SHA-256 and SCRAM-SHA-512 (KAFKA_SCRAM_FILE, mode 0600); ACLs come after the start,
 * see {@link grantKafkaAcls}.
 */
export function secureKafkaDriver(
  ports: SecureKafkaPorts,
  dataDir: string,
  certs: TestCertificates,
  users: readonly { name: string; password: string }[],
): BrokerDriver {
  const config = join(dataDir, 'secure.properties');
  writeFileSync(config, secureProperties(dataDir, ports, certs), { mode: 0o600 });
  const scram = join(dataDir, 'scram-users');
  writeFileSync(
    scram,
    users
      .flatMap((u) => ['SCRAM-SHA-256', 'SCRAM-SHA-512'].map((m) => `${m}=[name=${u.name},password=${u.password}]`))
      .join('\n'),
    { mode: 0o600 },
  );
  return kafkaDriver({ port: ports.ssl, controller: ports.controller }, dataDir, {
    env: {
      KAFKA_SECURE_CONFIG: config,
      KAFKA_SCRAM_FILE: scram,
      // Every refused operation in logs/server.log: a run that must need no refusal can be checked.
      KAFKA_AUTHORIZER_LOG_LEVEL: 'INFO',
      KAFKA_PROBE_CA: certs.ca,
      KAFKA_PROBE_CERT: certs.broker.cert,
      KAFKA_PROBE_KEY: certs.broker.key,
    },
    url: `kafkas://${HOST}:${ports.saslSsl}`,
    serves: () => sslServes(ports.ssl, certs),
  });
}

/**
 * ACLs, created through the Admin API as the super user (the broker's certificate on the SSL
 * listener): `admin` and the client certificate's principal may do everything on every topic, group
 * and transactional id; `limited` only on those whose names start with `limited` (prefixed ACLs), and
 * on topics (no group) that start with `shared`: a Wharf topicPrefix `shared` then reaches its topics
 * but not its consumer groups, which tests a refused group.
 */
export async function grantKafkaAcls(
  ports: SecureKafkaPorts,
  certs: TestCertificates,
  limited: string,
  admins: readonly string[],
): Promise<void> {
  const kafka = new Kafka({
    clientId: 'wharf-secure-setup',
    brokers: [`${HOST}:${ports.ssl}`],
    logLevel: logLevel.NOTHING,
    ssl: { ca: [readFileSync(certs.ca)], cert: readFileSync(certs.broker.cert), key: readFileSync(certs.broker.key) },
    retry: { retries: 5 },
  });
  const admin = kafka.admin();
  const resources = [AclResourceTypes.TOPIC, AclResourceTypes.GROUP, AclResourceTypes.TRANSACTIONAL_ID];
  const allow = (principal: string, resourceName: string, prefixed: boolean) =>
    resources.map((resourceType) => ({
      resourceType,
      resourceName,
      resourcePatternType: prefixed ? ResourcePatternTypes.PREFIXED : ResourcePatternTypes.LITERAL,
      principal: `User:${principal}`,
      host: '*',
      operation: AclOperationTypes.ALL,
      permissionType: AclPermissionTypes.ALLOW,
    }));
  await admin.connect();
  try {
    await admin.createAcls({
      acl: [
        ...admins.flatMap((name) => allow(name, '*', false)),
        ...allow(limited, 'limited', true),
        ...allow(limited, 'shared', true).filter((acl) => acl.resourceType === AclResourceTypes.TOPIC),
      ],
    });
  } finally {
    await admin.disconnect();
  }
}
