import { readFileSync } from 'node:fs';
import { addNatsUsers, type SecureBrokers, type SecureNats } from '@wharf/chaos';
import {
  AuthenticationError,
  CertificateExpiredError,
  CertificateHostnameError,
  ClientCertificateError,
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
import createNatsAdapter, { channelNames, type NatsAdapterOptions, permissionsFor } from '../src/index.js';
import { resolveOptions } from '../src/options.js';
import { unique } from './helpers.js';
import { secureNatsPerFile, secureUnavailable } from './secure-brokers.js';

const policy = normalizeRetryPolicy({ maxAttempts: 1 });

/** Every line every adapter of this file logged, and every error it threw: checked for secrets at the end. */
const logged: string[] = [];
const logger: Logger = Object.fromEntries(
  (['debug', 'info', 'warn', 'error'] as const).map((level) => [
    level,
    (message: string, fields?: Record<string, unknown>) => logged.push(`${message} ${JSON.stringify(fields ?? {})}`),
  ]),
) as unknown as Logger;

describe.skipIf(secureUnavailable !== undefined)('NATS over mutual TLS (a TLS-only server of its own)', () => {
  const brokers = secureNatsPerFile();
  const nats = (): SecureNats => brokers().nats as SecureNats;
  const certs = (): SecureBrokers['certs'] => brokers().certs;
  const port = (u: string): string => u.slice(u.lastIndexOf(':') + 1);
  /** `tls://user:password@127.0.0.1:port` of the main server, or of one with a bad certificate. */
  const url = (user = nats().admin, server = nats().url): string =>
    `tls://${user.name}:${user.password}@127.0.0.1:${port(server)}`;
  const mtls = (): NonNullable<NatsAdapterOptions['tls']> => ({
    caFile: certs().ca,
    certFile: certs().client.cert,
    keyFile: certs().client.key,
  });

  /** The typed error `connect()` rejects with, within 3 s; the adapter is closed either way. */
  async function connectError(u: string, options: NatsAdapterOptions = {}): Promise<WharfError> {
    const adapter = createNatsAdapter({ url: u, logger, ...options });
    const started = Date.now();
    try {
      const error = await adapter.connect().then(
        () => undefined,
        (e: unknown) => e,
      );
      if (!error) throw new Error('connect() succeeded where it must fail');
      // A refusal is reported as such, not as the connect timeout (5 s) running out.
      expect(Date.now() - started).toBeLessThan(3_000);
      logged.push(String((error as Error).message), String((error as Error).cause));
      return error as WharfError;
    } finally {
      await adapter.close();
    }
  }

  it('publishes and consumes with a client certificate and a password from the URL', async () => {
    const bus = createBus({
      adapter: createNatsAdapter({ url: url(), logger, tls: mtls() }),
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
    const q = new URLSearchParams({ ca: certs().ca, cert: certs().client.cert, key: certs().client.key });
    process.env.WHARF_BROKER_USERNAME = nats().admin.name;
    process.env.WHARF_BROKER_PASSWORD = nats().admin.password;
    const adapter = createNatsAdapter({ url: `nats://127.0.0.1:${nats().port}?${q}`, logger });
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

  it('an untrusted server certificate is an UntrustedCertificateError (verification is on by default)', async () => {
    const own = await connectError(url(), { tls: { ...mtls(), caFile: certs().untrustedCa } });
    expect(own).toBeInstanceOf(UntrustedCertificateError);
    expect(own.code).toBe('ERR_WHARF_TLS_UNTRUSTED');
    const system = await connectError(url(), { tls: { certFile: certs().client.cert, keyFile: certs().client.key } });
    expect(system).toBeInstanceOf(UntrustedCertificateError);
  });

  it('a server certificate for another host name is a CertificateHostnameError', async () => {
    const error = await connectError(url(nats().admin, nats().wrongHostUrl), { tls: mtls() });
    expect(error).toBeInstanceOf(CertificateHostnameError);
  });

  it('an expired server certificate is a CertificateExpiredError', async () => {
    const error = await connectError(url(nats().admin, nats().expiredUrl), { tls: mtls() });
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
    const error = await connectError(url({ ...nats().admin, password: 'wrong-Pa55word-xyz' }), { tls: mtls() });
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(`${error.message} ${String(error.cause)}`).not.toContain('wrong-Pa55word-xyz');
  });

  it('a publish to a subject outside the user’s permissions is a NotAuthorizedError at once; a prefix it may use works', async () => {
    const channel = unique('denied');
    const denied = createNatsAdapter({ url: url(nats().limited), logger, tls: mtls() });
    try {
      await denied.connect();
      await denied.declare(channel, ['g'], policy);
      const started = Date.now();
      const error = await denied.publish(channel, [encodeEvent(createEvent({ type: 'Denied' }, '/secure'))]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(NotAuthorizedError);
      const { subject } = channelNames(resolveOptions('nats://127.0.0.1', {}), channel);
      expect((error as NotAuthorizedError).resource).toBe(`subject "${subject}"`);
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      await denied.close();
    }
    const allowed = createNatsAdapter({
      url: url(nats().limited),
      logger,
      tls: mtls(),
      subjectPrefix: 'limited',
      streamPrefix: 'LIMITED',
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

  it('users added while the server runs (addNatsUsers + permissionsFor) get their group and nothing else; two added at once both work', async () => {
    const channel = unique('granted');
    const admin = createNatsAdapter({ url: url(), logger, tls: mtls() });
    const buses: ReturnType<typeof createBus>[] = [];
    try {
      await admin.connect();
      await admin.declare(channel, ['a', 'b'], policy);
      const target = { dir: brokers().dir, port: nats().port, pids: brokers().pids() };
      const user = (group: string) => ({
        name: `user-${group}`,
        grant: permissionsFor(
          { sends: [channel], consumes: [{ channel, group }] },
          { inboxPrefix: `_INBOX_user-${group}` },
        ),
      });
      // At once: each rewrites the server's configuration, and neither may lose the other's user.
      const [[a], [b]] = await Promise.all([addNatsUsers(target, [user('a')]), addNatsUsers(target, [user('b')])]);
      for (const [made, own, other] of [
        [a, 'a', 'b'],
        [b, 'b', 'a'],
      ] as const) {
        if (!made) throw new Error('no user made');
        added.push(made.password);
        const bus = createBus({
          url: `tls://127.0.0.1:${port(nats().url)}`,
          adapterOptions: {
            user: made.name,
            pass: made.password,
            tls: mtls(),
            inboxPrefix: `_INBOX_${made.name}`,
            purgeIntervalMs: 0,
          },
          logger,
        });
        buses.push(bus);
        // Group b also holds what user-a published (fan-out): wait for this user's own event.
        let arrived: (id: string) => void = () => {};
        const own$ = new Promise<string>((resolve) => {
          arrived = resolve;
        });
        await bus.subscribe(channel, { group: own }, async (event) => {
          if ((event.data as { own?: string }).own === own) arrived(event.id);
        });
        const sent = await bus.publish(channel, { type: 'Granted', data: { own } });
        expect(await own$).toBe(sent.id);
        const error = await bus
          .subscribe(channel, { group: other }, async () => {})
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(error).toBeInstanceOf(NotAuthorizedError);
      }
    } finally {
      await Promise.all(buses.map((bus) => bus.close()));
      await admin.close();
    }
  });

  // Last: reads what the tests above logged and threw.
  it('no log line or error of this file contains a password or a private key', () => {
    const secrets = [
      ...added,
      nats().admin.password,
      nats().limited.password,
      'wrong-Pa55word-xyz',
      readFileSync(certs().client.key, 'utf8').split('\n')[1] as string,
    ];
    expect(logged.length).toBeGreaterThan(5);
    const all = logged.join('\n');
    for (const secret of secrets) expect(all.includes(secret), `secret ${secret.slice(0, 4)}… was logged`).toBe(false);
  });
});
