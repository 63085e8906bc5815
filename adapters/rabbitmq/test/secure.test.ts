import { readFileSync } from 'node:fs';
import { RABBITMQ_SNI, type SecureBrokers, type SecureRabbitMq } from '@wharf/chaos';
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
import createRabbitMqAdapter, { type RabbitMqAdapterOptions } from '../src/index.js';
import { unique } from './helpers.js';
import { secureRabbitPerFile, secureUnavailable } from './secure-brokers.js';

const policy = normalizeRetryPolicy({ maxAttempts: 1 });

/** Every line every adapter of this file logged, and every error it threw: checked for secrets at the end. */
const logged: string[] = [];
const logger: Logger = Object.fromEntries(
  (['debug', 'info', 'warn', 'error'] as const).map((level) => [
    level,
    (message: string, fields?: Record<string, unknown>) => logged.push(`${message} ${JSON.stringify(fields ?? {})}`),
  ]),
) as unknown as Logger;

describe.skipIf(secureUnavailable !== undefined)('RabbitMQ over mutual TLS (a TLS-only node of its own)', () => {
  const brokers = secureRabbitPerFile();
  const rabbit = (): SecureRabbitMq => brokers().rabbitmq as SecureRabbitMq;
  const certs = (): SecureBrokers['certs'] => brokers().certs;
  /** `amqps://user:password@127.0.0.1:port/vhost`. */
  const url = (user = rabbit().admin, vhost = 'wharf'): string =>
    `amqps://${user.name}:${user.password}@127.0.0.1:${rabbit().port}/${vhost}`;
  const mtls = (): NonNullable<RabbitMqAdapterOptions['tls']> => ({
    caFile: certs().ca,
    certFile: certs().client.cert,
    keyFile: certs().client.key,
  });

  /** The typed error `connect()` rejects with; the adapter is closed either way. */
  async function connectError(u: string, options: RabbitMqAdapterOptions = {}): Promise<WharfError> {
    const adapter = createRabbitMqAdapter({ url: u, logger, connectAttempts: 2, ...options });
    const started = Date.now();
    try {
      const error = await adapter.connect().then(
        () => undefined,
        (e: unknown) => e,
      );
      if (!error) throw new Error('connect() succeeded where it must fail');
      // Refusals are answered at once, never retried until a timeout.
      expect(Date.now() - started).toBeLessThan(3_000);
      logged.push(String((error as Error).message), String((error as Error).cause));
      return error as WharfError;
    } finally {
      await adapter.close();
    }
  }

  it('publishes and consumes with a client certificate and a password from the URL', async () => {
    const bus = createBus({
      adapter: createRabbitMqAdapter({ url: url(), logger, tls: mtls() }),
      logger,
    });
    const channel = unique('tls');
    try {
      let resolveId: (id: string) => void = () => undefined;
      const got = new Promise<string>((resolve) => {
        resolveId = resolve;
      });
      await bus.subscribe(channel, { group: 'g' }, async (event) => resolveId(event.id));
      const sent = await bus.publish(channel, { type: 'OverMutualTls', data: { ok: true } });
      expect(await got).toBe(sent.id);
    } finally {
      await bus.close();
    }
  });

  it('takes the TLS files from URL parameters and the credentials from the environment', async () => {
    const { admin } = rabbit();
    const q = new URLSearchParams({ ca: certs().ca, cert: certs().client.cert, key: certs().client.key });
    process.env.WHARF_BROKER_USERNAME = admin.name;
    process.env.WHARF_BROKER_PASSWORD = admin.password;
    const adapter = createRabbitMqAdapter({
      url: `amqps://127.0.0.1:${rabbit().port}/wharf?${q}`,
      logger,
    });
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
  });

  it('TLS files on a plain amqp:// URL are a ConfigError (they would be ignored)', () => {
    expect(() => createRabbitMqAdapter({ url: `amqp://127.0.0.1:${rabbit().port}/wharf?ca=/x.pem`, logger })).toThrow(
      ConfigError,
    );
  });

  it('an untrusted broker certificate is an UntrustedCertificateError (server verification is on by default)', async () => {
    const own = await connectError(url(), { tls: { ...mtls(), caFile: certs().untrustedCa } });
    expect(own).toBeInstanceOf(UntrustedCertificateError);
    expect(own.code).toBe('ERR_WHARF_TLS_UNTRUSTED');
    expect(own.message).toMatch(/tls\.caFile/);
    // No CA at all: the system's CAs do not know the test CA either.
    const system = await connectError(url(), {
      tls: { certFile: certs().client.cert, keyFile: certs().client.key },
    });
    expect(system).toBeInstanceOf(UntrustedCertificateError);
  });

  it('a certificate for another host name is a CertificateHostnameError', async () => {
    const error = await connectError(url(), { tls: { ...mtls(), servername: RABBITMQ_SNI.wrongHost } });
    expect(error).toBeInstanceOf(CertificateHostnameError);
    expect(error.message).toContain(RABBITMQ_SNI.wrongHost);
  });

  it('an expired broker certificate is a CertificateExpiredError', async () => {
    const error = await connectError(url(), { tls: { ...mtls(), servername: RABBITMQ_SNI.expired } });
    expect(error).toBeInstanceOf(CertificateExpiredError);
  });

  it('no client certificate is a ClientCertificateError (missing); one from an untrusted CA is one (rejected)', async () => {
    const missing = await connectError(url(), { tls: { caFile: certs().ca } });
    expect(missing).toBeInstanceOf(ClientCertificateError);
    expect((missing as ClientCertificateError).reason).toBe('missing');
    const rejected = await connectError(url(), {
      tls: { caFile: certs().ca, certFile: certs().untrustedClient.cert, keyFile: certs().untrustedClient.key },
    });
    expect(rejected).toBeInstanceOf(ClientCertificateError);
    expect((rejected as ClientCertificateError).reason).toBe('rejected');
  });

  it('a wrong password is an AuthenticationError that does not contain the password', async () => {
    const wrong = { ...rabbit().admin, password: 'wrong-Pa55word-xyz' };
    const error = await connectError(url(wrong), { tls: mtls() });
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(`${error.message} ${String(error.cause)}`).not.toContain('wrong-Pa55word-xyz');
  });

  it('a vhost the user may not open is a NotAuthorizedError naming the vhost', async () => {
    const error = await connectError(url(rabbit().admin, 'other'), { tls: mtls() });
    expect(error).toBeInstanceOf(NotAuthorizedError);
    expect((error as NotAuthorizedError).resource).toBe('vhost "other"');
  });

  it('a declaration outside the user’s permissions is a NotAuthorizedError naming the exchange; a prefix it may use works', async () => {
    const denied = createRabbitMqAdapter({ url: url(rabbit().limited), logger, tls: mtls() });
    const channel = unique('denied');
    try {
      await denied.connect();
      const started = Date.now();
      const error = await denied.publish(channel, [encodeEvent(createEvent({ type: 'Denied' }, '/secure'))]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(NotAuthorizedError);
      expect((error as NotAuthorizedError).resource).toBe(`exchange 'wharf.${channel}' in vhost 'wharf'`);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await denied.close();
    }
    const allowed = createRabbitMqAdapter({
      url: url(rabbit().limited),
      logger,
      tls: mtls(),
      prefix: 'limited',
    });
    try {
      await allowed.connect();
      await allowed.declare(channel, ['g'], policy);
      await allowed.publish(channel, [encodeEvent(createEvent({ type: 'Allowed' }, '/secure'))]);
    } finally {
      await allowed.close();
    }
  });

  it('the password files hold the passwords (what `--password-file` reads)', () => {
    expect(readFileSync(rabbit().admin.passwordFile, 'utf8')).toBe(rabbit().admin.password);
  });

  // Last: reads what the tests above logged and threw.
  it('no log line or error of this file contains a password or a private key', () => {
    const secrets = [
      rabbit().admin.password,
      rabbit().limited.password,
      'wrong-Pa55word-xyz',
      readFileSync(certs().client.key, 'utf8').split('\n')[1] as string,
    ];
    expect(logged.length).toBeGreaterThan(5);
    const all = logged.join('\n');
    for (const secret of secrets) expect(all.includes(secret), `secret ${secret.slice(0, 4)}… was logged`).toBe(false);
  });
});
