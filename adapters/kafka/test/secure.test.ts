import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { SecureBrokers, SecureKafka } from '@wharf/chaos';
import {
  AuthenticationError,
  CertificateExpiredError,
  CertificateHostnameError,
  ClientCertificateError,
  ConfigError,
  createBus,
  createEvent,
  encodeEvent,
  type Logger,
  NotAuthorizedError,
  normalizeRetryPolicy,
  UntrustedCertificateError,
  type WharfError,
} from '@wharf/core';
import { describe, expect, it } from 'vitest';
import createKafkaAdapter, { type KafkaAdapterOptions, Names } from '../src/index.js';
import { resolveOptions } from '../src/options.js';
import { secureKafkaPerFile, secureUnavailable } from './secure-brokers.js';

const policy = normalizeRetryPolicy({ maxAttempts: 1 });
const WRONG_PASSWORD = 'wrong-Pa55word-kafka-xyz';

/** Every line every adapter of this file logged, and every error it threw: checked for secrets at the end. */
const logged: string[] = [];
const logger: Logger = Object.fromEntries(
  (['debug', 'info', 'warn', 'error'] as const).map((level) => [
    level,
    (message: string, fields?: Record<string, unknown>) => logged.push(`${message} ${JSON.stringify(fields ?? {})}`),
  ]),
) as unknown as Logger;

const FAST: KafkaAdapterOptions = {
  sessionTimeoutMs: 6_000,
  heartbeatIntervalMs: 300,
  rebalanceTimeoutMs: 10_000,
  maxWaitTimeMs: 100,
  commitIntervalMs: 200,
  connectTimeoutMs: 10_000,
  partitions: 1,
};

const unique = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`;

/** An error with everything it carries, as text: message, stack and the causes below it. */
function everything(error: unknown): string {
  const out: string[] = [];
  let current: unknown = error;
  for (let i = 0; i < 8 && current; i++) {
    const e = current as { message?: unknown; stack?: unknown; cause?: unknown; errors?: unknown };
    out.push(String(e.message), String(e.stack));
    if (Array.isArray(e.errors)) out.push(...e.errors.map((x) => everything(x)));
    current = e.cause ?? (e as { originalError?: unknown }).originalError;
  }
  return out.join('\n');
}

describe('Kafka TLS and SASL options', () => {
  it('TLS files from the URL or options turn TLS on; options win; a client certificate needs its key', () => {
    const ca = new URL(import.meta.url).pathname; // any readable file stands in for a PEM here
    const fromUrl = resolveOptions(`kafka://127.0.0.1:9092?ca=${encodeURIComponent(ca)}&servername=broker.test`, {});
    expect(fromUrl.tls).toEqual({ caFile: ca, servername: 'broker.test' });
    expect(fromUrl.ssl).toMatchObject({ rejectUnauthorized: true, servername: 'broker.test' });
    expect((fromUrl.ssl as { ca: Buffer[] }).ca[0]).toBeInstanceOf(Buffer);
    expect(resolveOptions('kafkas://127.0.0.1', {}).ssl).toBe(true);
    expect(resolveOptions('kafka://127.0.0.1', {}).ssl).toBeUndefined();
    expect(() => resolveOptions('kafka://127.0.0.1', { tls: { certFile: ca } })).toThrow(ConfigError);
    expect(() => resolveOptions('kafka://127.0.0.1', { tls: { caFile: '/nonexistent/ca.pem' } })).toThrow(
      /cannot read tls.caFile "\/nonexistent\/ca.pem"/,
    );
  });

  it('credentials: options over the URL over WHARF_BROKER_USERNAME / WHARF_BROKER_PASSWORD', () => {
    process.env.WHARF_BROKER_USERNAME = 'env-user';
    process.env.WHARF_BROKER_PASSWORD = 'env-pass';
    try {
      expect(resolveOptions('kafka://127.0.0.1?mechanism=scram-sha-256', {}).sasl).toEqual({
        mechanism: 'scram-sha-256',
        username: 'env-user',
        password: 'env-pass',
      });
      expect(resolveOptions('kafka://u:p@127.0.0.1', {}).sasl).toMatchObject({ username: 'u', password: 'p' });
      // Another user than the environment's does not get the environment's password.
      expect(resolveOptions('kafka://127.0.0.1', { username: 'other' }).sasl).toMatchObject({ password: '' });
      expect(
        resolveOptions('kafka://u:p@127.0.0.1', { username: 'o', password: 'q', saslMechanism: 'scram-sha-512' }).sasl,
      ).toEqual({ mechanism: 'scram-sha-512', username: 'o', password: 'q' });
    } finally {
      delete process.env.WHARF_BROKER_USERNAME;
      delete process.env.WHARF_BROKER_PASSWORD;
    }
  });
});

describe.skipIf(secureUnavailable !== undefined)('Kafka locked down (a node of its own: TLS, SASL, ACLs)', () => {
  const brokers = secureKafkaPerFile();
  const kafka = (): SecureKafka => brokers().kafka as SecureKafka;
  const certs = (): SecureBrokers['certs'] => brokers().certs;
  const hostPort = (url: string): string => url.replace(/^kafkas:\/\//, '');
  /** SASL_SSL with a user and password in the URL; the CA from the options. */
  const saslUrl = (user = kafka().admin, mechanism = 'scram-sha-512'): string =>
    `kafkas://${user.name}:${user.password}@${hostPort(kafka().url)}?mechanism=${mechanism}`;
  const mtls = (): NonNullable<KafkaAdapterOptions['tls']> => ({
    caFile: certs().ca,
    certFile: certs().client.cert,
    keyFile: certs().client.key,
  });

  describe.each(['kafkajs', 'platformatic'] as const)('with %s', (client) => {
    const create = (url: string, options: KafkaAdapterOptions = {}) =>
      createKafkaAdapter({ url, logger, ...FAST, client, ...options });

    /** The typed error `connect()` rejects with, within `withinMs`; the adapter is closed either way. */
    async function connectError(url: string, options: KafkaAdapterOptions, withinMs = 3_000): Promise<WharfError> {
      const adapter = create(url, options);
      const started = Date.now();
      try {
        const error = await adapter.connect().then(
          () => undefined,
          (e: unknown) => e,
        );
        if (!error) throw new Error('connect() succeeded where it must fail');
        // A refusal is reported as such, not as connectTimeoutMs (10 s) running out.
        expect(Date.now() - started).toBeLessThan(withinMs);
        logged.push(everything(error));
        return error as WharfError;
      } finally {
        await adapter.close();
      }
    }

    async function roundTrip(url: string, options: KafkaAdapterOptions): Promise<void> {
      const bus = createBus({ adapter: create(url, options), logger });
      const channel = unique(`tls-${client}`);
      try {
        let resolveId: (id: string) => void = () => undefined;
        const got = new Promise<string>((resolve) => {
          resolveId = resolve;
        });
        await bus.subscribe(channel, { group: 'g' }, async (event) => resolveId(event.id));
        const sent = await bus.publish(channel, { type: 'OverTls', data: { ok: true } });
        expect(await got).toBe(sent.id);
      } finally {
        await bus.close();
      }
    }

    it('publishes and consumes over SASL_SSL with SCRAM-SHA-512 and the password in the URL', async () => {
      await roundTrip(saslUrl(), { tls: { caFile: certs().ca } });
    }, 60_000);

    it('takes the CA from the URL, SCRAM-SHA-256 and the credentials from the environment', async () => {
      const q = new URLSearchParams({ ca: certs().ca, mechanism: 'scram-sha-256' });
      process.env.WHARF_BROKER_USERNAME = kafka().admin.name;
      process.env.WHARF_BROKER_PASSWORD = kafka().admin.password;
      const adapter = create(`kafka://${hostPort(kafka().url)}?${q}`);
      try {
        await adapter.connect();
        const channel = unique('tls-env');
        await adapter.declare(channel, ['g'], policy);
        await adapter.publish(channel, [encodeEvent(createEvent({ type: 'FromEnv' }, '/secure'))]);
      } finally {
        delete process.env.WHARF_BROKER_USERNAME;
        delete process.env.WHARF_BROKER_PASSWORD;
        await adapter.close();
      }
    }, 60_000);

    it('publishes and consumes over mutual TLS (the client certificate is the user)', async () => {
      await roundTrip(kafka().sslUrl, { tls: mtls() });
    }, 60_000);

    it('an untrusted broker certificate is an UntrustedCertificateError (verification is on by default)', async () => {
      const own = await connectError(kafka().sslUrl, { tls: { ...mtls(), caFile: certs().untrustedCa } });
      expect(own).toBeInstanceOf(UntrustedCertificateError);
      expect(own.code).toBe('ERR_WHARF_TLS_UNTRUSTED');
      const system = await connectError(kafka().sslUrl, {
        tls: { certFile: certs().client.cert, keyFile: certs().client.key },
      });
      expect(system).toBeInstanceOf(UntrustedCertificateError);
    });

    it('a certificate for another host, or a servername it does not list, is a CertificateHostnameError', async () => {
      const listener = await connectError(kafka().wrongHostUrl, { tls: mtls() });
      expect(listener).toBeInstanceOf(CertificateHostnameError);
      const servername = await connectError(kafka().sslUrl, { tls: { ...mtls(), servername: 'other-name.test' } });
      expect(servername).toBeInstanceOf(CertificateHostnameError);
      expect(servername.message).toContain('other-name.test');
    });

    it('an expired broker certificate is a CertificateExpiredError', async () => {
      const error = await connectError(kafka().expiredUrl, { tls: mtls() });
      expect(error).toBeInstanceOf(CertificateExpiredError);
    });

    it('no client certificate on the SSL listener is a ClientCertificateError (missing); an untrusted one (rejected)', async () => {
      const missing = await connectError(kafka().sslUrl, { tls: { caFile: certs().ca } });
      expect(missing).toBeInstanceOf(ClientCertificateError);
      expect((missing as ClientCertificateError).reason).toBe('missing');
      const rejected = await connectError(kafka().sslUrl, {
        tls: { caFile: certs().ca, certFile: certs().untrustedClient.cert, keyFile: certs().untrustedClient.key },
      });
      expect(rejected).toBeInstanceOf(ClientCertificateError);
      expect((rejected as ClientCertificateError).reason).toBe('rejected');
    });

    it('a wrong password is an AuthenticationError that does not contain the password', async () => {
      const error = await connectError(
        kafka().url,
        {
          tls: { caFile: certs().ca },
          username: kafka().admin.name,
          password: WRONG_PASSWORD,
          saslMechanism: 'scram-sha-512',
        },
        // @platformatic/kafka retries a refused authentication with its connection retries (without
        // delay, see client-platformatic.ts): ~2 s there on a quiet machine, ~0.4 s with kafkajs. Each
        // retry is a TLS handshake and a SCRAM exchange with the JVM broker, which a loaded CI machine
        // slows several-fold; 8 s is still well under connectTimeoutMs (10 s), which this guards.
        8_000,
      );
      expect(error).toBeInstanceOf(AuthenticationError);
      expect(everything(error)).not.toContain(WRONG_PASSWORD);
    });

    it('a publish to a topic outside the user’s ACLs is a NotAuthorizedError naming it, at once; its own prefix works', async () => {
      const channel = unique('denied');
      const denied = create(saslUrl(kafka().limited), { tls: { caFile: certs().ca } });
      try {
        await denied.connect();
        const started = Date.now();
        const error = await denied.publish(channel, [encodeEvent(createEvent({ type: 'Denied' }, '/secure'))]).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(NotAuthorizedError);
        expect((error as NotAuthorizedError).resource).toBe(`topic "${new Names('wharf').channel(channel)}"`);
        // At once: a refusal, not publishTimeoutMs (30 s) running out. The first publish also fetches
        // metadata over TLS, ~0.8 s on a loaded machine.
        expect(Date.now() - started).toBeLessThan(5_000);
        logged.push(everything(error));
      } finally {
        await denied.close();
      }
      const allowed = create(saslUrl(kafka().limited), { tls: { caFile: certs().ca }, topicPrefix: 'limited' });
      try {
        await allowed.connect();
        await allowed.declare(channel, ['g'], policy);
        await allowed.publish(channel, [encodeEvent(createEvent({ type: 'Allowed' }, '/secure'))]);
      } finally {
        await allowed.close();
      }
    }, 60_000);

    it('a subscription with a consumer group outside the user’s ACLs is a NotAuthorizedError naming the group', async () => {
      // `shared*`: topics the limited user may use, consumer groups it may not (see startSecureBrokers).
      const channel = unique('group');
      const adapter = create(saslUrl(kafka().limited), { tls: { caFile: certs().ca }, topicPrefix: 'shared' });
      const bus = createBus({ adapter, logger });
      try {
        const started = Date.now();
        const error = await bus
          .subscribe(channel, { group: 'g' }, async () => undefined)
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(error).toBeInstanceOf(NotAuthorizedError);
        expect((error as NotAuthorizedError).resource).toBe(`group "${new Names('shared').group(channel, 'g')}"`);
        expect(Date.now() - started).toBeLessThan(5_000);
        logged.push(everything(error));
      } finally {
        await bus.close();
      }
    }, 60_000);
  });

  it('the node keeps its passwords off every command line and in files only its user can read', () => {
    const { admin, limited } = kafka();
    for (const user of [admin, limited]) {
      expect(readFileSync(user.passwordFile, 'utf8')).toBe(user.password);
      expect(statSync(user.passwordFile).mode & 0o077).toBe(0);
    }
    // The SCRAM users went to StorageTool in a java @argfile, removed after the format.
    expect(existsSync(join(brokers().dir, 'kafka', 'format.args'))).toBe(false);
    const commandLines = readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .map((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        } catch {
          return ''; // gone meanwhile
        }
      });
    expect(commandLines.some((line) => line.includes('kafka.Kafka'))).toBe(true);
    for (const user of [admin, limited]) {
      expect(commandLines.some((line) => line.includes(user.password))).toBe(false);
    }
  });

  // Last: reads what the tests above logged and threw.
  it('no log line or error of this file contains a password or a private key', () => {
    const secrets = [
      kafka().admin.password,
      kafka().limited.password,
      WRONG_PASSWORD,
      readFileSync(certs().client.key, 'utf8').split('\n')[1] as string,
    ];
    expect(logged.length).toBeGreaterThan(10);
    const all = logged.join('\n');
    for (const secret of secrets) expect(all.includes(secret), `secret ${secret.slice(0, 4)}… was logged`).toBe(false);
  });
});
