import { readFileSync } from 'node:fs';
import { addRabbitMqUsers, RABBITMQ_SNI, type SecureBrokers, type SecureRabbitMq } from '@wharf/chaos';
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
  NonRetryableError,
  NotAuthorizedError,
  normalizeRetryPolicy,
  UntrustedCertificateError,
  type WharfError,
} from '@wharf/core';
import { describe, expect, it } from 'vitest';
import { connectPlain } from '../src/connection.js';
import createRabbitMqAdapter, { groupNames, permissionsFor, type RabbitMqAdapterOptions } from '../src/index.js';
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

  const added: string[] = [];

  it("a user from permissionsFor retries and dead-letters in its own group without amq.default, and cannot publish into another group's queue by name", async () => {
    const channel = unique('lp');
    const elsewhere = unique('lp-other');
    const retry = { maxAttempts: 2, delays: [200] };
    const own = groupNames('wharf', channel, 'own');
    const other = groupNames('wharf', elsewhere, 'audit');
    const admin = createRabbitMqAdapter({ url: url(), logger, tls: mtls() });
    const buses: ReturnType<typeof createBus>[] = [];
    try {
      // The administrator declares the topology first, as `wharf saga --secure` does; then removes
      // the group's exchange, as a group declared by an older version has none: the user's subscribe
      // must add it and its bindings.
      await admin.connect();
      await admin.declare(channel, ['own'], normalizeRetryPolicy(retry));
      await admin.declare(elsewhere, ['audit'], policy);
      const model = admin.raw().publishing;
      if (!model) throw new Error('the admin adapter is not connected');
      const adminCh = await model.createChannel();
      await adminCh.deleteExchange(own.groupExchange);
      await adminCh.close();

      const grant = permissionsFor({ sends: [channel], consumes: [{ channel, group: 'own' }] });
      expect(grant.write).not.toMatch(/amq/);
      const [user] = await addRabbitMqUsers({ dir: brokers().dir, port: rabbit().port }, [{ name: 'lp-own', grant }]);
      if (!user) throw new Error('no user made');
      added.push(user.password);

      const bus = createBus({ adapter: createRabbitMqAdapter({ url: url(user), logger, tls: mtls() }), logger });
      buses.push(bus);
      const attempts = new Map<string, number[]>();
      await bus.subscribe(channel, { group: 'own', retry, dedup: false }, async (event, context) => {
        attempts.set(event.id, [...(attempts.get(event.id) ?? []), context.attempt]);
        if (event.type === 'Poison') throw new NonRetryableError('poison');
        if (context.attempt < 2) throw new Error('once more');
      });
      const flaky = await bus.publish(channel, { type: 'Flaky', data: {} });
      const poison = await bus.publish(channel, { type: 'Poison', data: {} });
      const deadline = Date.now() + 15_000;
      let dead = await bus.listDeadLetters(channel, 'own');
      while ((attempts.get(flaky.id)?.length !== 2 || dead.length === 0) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        dead = await bus.listDeadLetters(channel, 'own');
      }
      // The retry went through the group's tier and came back; the dead letter is in the group's queue.
      expect(attempts.get(flaky.id)).toEqual([1, 2]);
      expect(attempts.get(poison.id)).toEqual([1]);
      expect(dead.map((d) => d.event?.id)).toEqual([poison.id]);
      expect(bus.stats().incidents).toBe(0);

      // The gap that is closed: the same credentials, with plain amqplib, cannot use the default
      // exchange to put a message into another group's queue by name.
      const plain = await connectPlain(url(user), { tls: mtls() });
      try {
        const refused = async (exchange: string, routingKey: string): Promise<Error> => {
          const ch = await plain.createConfirmChannel();
          const closed = new Promise<Error>((resolve) => ch.on('error', resolve));
          ch.publish(exchange, routingKey, Buffer.from('{}'), { persistent: true, mandatory: true });
          return closed;
        };
        const byName = await refused('', other.queue);
        expect(byName.message).toMatch(/ACCESS_REFUSED/);
        expect(byName.message).toContain('amq.default');
        // Nor through the other group's own exchange.
        expect((await refused(other.groupExchange, other.queue)).message).toMatch(/ACCESS_REFUSED/);
        // Its own group exchange routes only to its own queues: another queue's name goes nowhere.
        const ch = await plain.createConfirmChannel();
        ch.on('error', () => undefined);
        const returned = new Promise<string>((resolve) => ch.on('return', (m) => resolve(m.fields.routingKey)));
        ch.publish(own.groupExchange, other.queue, Buffer.from('{}'), { persistent: true, mandatory: true });
        expect(await returned).toBe(other.queue);
        await ch.close();
      } finally {
        await plain.close().catch(() => undefined);
      }
      const check = await model.createChannel();
      expect((await check.checkQueue(other.queue)).messageCount).toBe(0);
      await check.close();

      // What stays the administrator's: creating a queue. RabbitMQ checks write on a new queue's
      // dead-letter exchange (the default one, for a retry tier) when it creates it.
      const newTier = createBus({ adapter: createRabbitMqAdapter({ url: url(user), logger, tls: mtls() }), logger });
      buses.push(newTier);
      const refusal = await newTier
        .subscribe(channel, { group: 'own', retry: { maxAttempts: 2, delays: [700] } }, async () => {})
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(refusal).toBeInstanceOf(NotAuthorizedError);
      expect(String((refusal as Error).message)).toContain('amq.default');
      await admin.declare(channel, ['own'], normalizeRetryPolicy({ maxAttempts: 2, delays: [700] }));
      await newTier.subscribe(channel, { group: 'own', retry: { maxAttempts: 2, delays: [700] } }, async () => {});
    } finally {
      await Promise.all(buses.map((b) => b.close()));
      await admin.deleteGroup(channel, 'own', normalizeRetryPolicy(retry)).catch(() => undefined);
      await admin
        .deleteGroup(channel, 'own', normalizeRetryPolicy({ maxAttempts: 2, delays: [700] }))
        .catch(() => undefined);
      await admin.deleteGroup(elsewhere, 'audit', policy).catch(() => undefined);
      await admin.close();
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
      ...added,
      'wrong-Pa55word-xyz',
      readFileSync(certs().client.key, 'utf8').split('\n')[1] as string,
    ];
    expect(logged.length).toBeGreaterThan(5);
    const all = logged.join('\n');
    for (const secret of secrets) expect(all.includes(secret), `secret ${secret.slice(0, 4)}… was logged`).toBe(false);
  });
});
