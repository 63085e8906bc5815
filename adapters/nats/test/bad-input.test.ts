import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { freePort } from '@wharf/chaos';
import { brokersRequired, probeBroker } from '@wharf/conformance';
import {
  AuthenticationError,
  BrokerUnreachableError,
  ConfigError,
  createBus,
  createEvent,
  encodeEvent,
  type Logger,
  PublishError,
  silentLogger,
  TopologyError,
  UntrustedCertificateError,
} from '@wharf/core';
import { afterAll, describe, expect, it } from 'vitest';
import createNatsAdapter, { channelNames } from '../src/index.js';
import { resolveOptions } from '../src/options.js';
import { adapter, cleanup, unavailable, unique, url, withConnection } from './helpers.js';

if (unavailable && brokersRequired()) throw new Error(`${unavailable} — CI requires NATS`);

const policy = { maxAttempts: 1, delays: [], jitter: 0 };
const servers: ChildProcess[] = [];
const dirs: string[] = [];

/**
 * Starts a private nats-server with extra flags on a free port below the ephemeral range (a random
 * port could be taken by any outgoing connection and the server then exits on "address in use": seen
 * once with two test files running at once); stopped by pid after the file.
 */
async function privateServer(args: string[]): Promise<number> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'wharf-nats-'));
  dirs.push(dir);
  const child = spawn('/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(port), '-sd', dir, ...args], {
    stdio: 'ignore',
  });
  servers.push(child);
  const deadline = Date.now() + 10_000;
  while ((await probeBroker('NATS', '127.0.0.1', port, 300)) !== undefined) {
    if (child.exitCode !== null) throw new Error(`private nats-server on ${port} exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error(`private nats-server on ${port} did not start`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return port;
}

afterAll(() => {
  for (const child of servers) if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Collects everything logged, to prove secrets never appear. */
function recordingLogger(lines: string[]): Logger {
  const log = (message: string, fields?: Record<string, unknown>) =>
    lines.push(`${message} ${JSON.stringify(fields ?? {})}`);
  return { debug: log, info: log, warn: log, error: log };
}

describe('nats adapter: bad input (no server needed)', () => {
  it('rejects channel and group names that cannot be subjects, and bad options, with ConfigError', async () => {
    expect(() =>
      createNatsAdapter({ url: 'nats://127.0.0.1:4222', logger: silentLogger, subjectPrefix: 'a.*' }),
    ).toThrow(ConfigError);
    expect(() =>
      createNatsAdapter({ url: 'nats://127.0.0.1:4222', logger: silentLogger, subjectPrefix: 'a b' }),
    ).toThrow(ConfigError);
    expect(() =>
      createNatsAdapter({ url: 'nats://127.0.0.1:4222', logger: silentLogger, streamPrefix: 'A.B' }),
    ).toThrow(ConfigError);
    expect(() => createNatsAdapter({ url: 'nats://127.0.0.1:4222', logger: silentLogger, ackWaitMs: 10 })).toThrow(
      ConfigError,
    );
    expect(() => createNatsAdapter({ url: 'amqp://127.0.0.1', logger: silentLogger })).toThrow(ConfigError);
    for (const inboxPrefix of ['_INBOX.>', 'a b', '']) {
      expect(() => resolveOptions('nats://127.0.0.1:4222', { inboxPrefix }), inboxPrefix).toThrow(ConfigError);
    }
    expect(resolveOptions('nats://127.0.0.1:4222', { inboxPrefix: '_INBOX_payment' }).inboxPrefix).toBe(
      '_INBOX_payment',
    );
    expect(resolveOptions('nats://127.0.0.1:4222', {}).inboxPrefix).toBe('_INBOX');
    // 0 turns this process's purging off (a user without purge rights); 1-9 ms stays a mistake.
    expect(resolveOptions('nats://127.0.0.1:4222', { purgeIntervalMs: 0 }).purgeIntervalMs).toBe(0);
    expect(() => resolveOptions('nats://127.0.0.1:4222', { purgeIntervalMs: 5 })).toThrow(ConfigError);
    const options = resolveOptions('nats://127.0.0.1:4222', {});
    for (const bad of ['orders.>', 'a*b', 'has space', '', '.leading', 'tab\there']) {
      expect(() => channelNames(options, bad), bad).toThrow(ConfigError);
    }
    // Dots, dashes and underscores are fine and never collide.
    const a = channelNames(options, 'a.b');
    const b = channelNames(options, 'a_b');
    const c = channelNames(options, 'a-b');
    expect(new Set([a.stream, b.stream, c.stream, a.dlqStream, b.dlqStream, c.dlqStream]).size).toBe(6);
    expect(a.subject).toBe('wharf.a_2Eb');
  });

  it('fails a connect to a closed port within the bound with BrokerUnreachableError', async () => {
    const a = createNatsAdapter({ url: 'nats://127.0.0.1:1', logger: silentLogger, connectTimeoutMs: 1_000 });
    const started = Date.now();
    await expect(a.connect()).rejects.toBeInstanceOf(BrokerUnreachableError);
    expect(Date.now() - started).toBeLessThan(5_000);
    await a.close();
  });

  it('fails a connect to a host that never answers within the bound (black hole)', async () => {
    // 10.255.255.1 is unroutable here: the TCP handshake never completes.
    const a = createNatsAdapter({ url: 'nats://10.255.255.1:4222', logger: silentLogger, connectTimeoutMs: 1_000 });
    const started = Date.now();
    await expect(a.connect()).rejects.toBeInstanceOf(BrokerUnreachableError);
    expect(Date.now() - started).toBeLessThan(4_000);
    await a.close();
  });
});

describe.skipIf(unavailable !== undefined)('nats adapter: bad input against servers', () => {
  it('says clearly when JetStream is not enabled on the server', async () => {
    const port = await privateServer([]);
    const a = createNatsAdapter({ url: `nats://127.0.0.1:${port}`, logger: silentLogger, connectTimeoutMs: 2_000 });
    const error = await a.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TopologyError);
    expect((error as Error).message).toMatch(/JetStream is not enabled.*-js/);
    await a.close();
  });

  it('maps rejected credentials to AuthenticationError without leaking the password', async () => {
    const port = await privateServer(['-js', '--user', 'wharf', '--pass', 's3cret-right']);
    const lines: string[] = [];
    const wrong = createNatsAdapter({
      url: `nats://wharf:s3cret-wrong@127.0.0.1:${port}`,
      logger: recordingLogger(lines),
      connectTimeoutMs: 2_000,
    });
    const error = await wrong.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(String((error as Error).message)).not.toContain('s3cret');
    expect(lines.join('\n')).not.toContain('s3cret');
    await wrong.close();
    // The right ones work, from the URL or from options.
    const right = createNatsAdapter({ url: `nats://wharf:s3cret-right@127.0.0.1:${port}`, logger: silentLogger });
    await right.connect();
    await right.close();
    const viaOptions = createNatsAdapter({
      url: `nats://127.0.0.1:${port}`,
      user: 'wharf',
      pass: 's3cret-right',
      logger: silentLogger,
    });
    await viaOptions.connect();
    await viaOptions.close();
  });

  it('accepts a token from the URL', async () => {
    const port = await privateServer(['-js', '--auth', 'tok-123']);
    const a = createNatsAdapter({ url: `nats://tok-123@127.0.0.1:${port}`, logger: silentLogger });
    await a.connect();
    await a.close();
    const bad = createNatsAdapter({
      url: `nats://nope@127.0.0.1:${port}`,
      logger: silentLogger,
      connectTimeoutMs: 2_000,
    });
    await expect(bad.connect()).rejects.toBeInstanceOf(AuthenticationError);
    await bad.close();
  });

  it('connects over TLS with a CA from options (tls:// URL), and fails without trusting the CA', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-nats-tls-'));
    dirs.push(dir);
    const file = (name: string) => join(dir, name);
    const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=wharf-test-ca',
      '-keyout',
      file('ca.key'),
      '-out',
      file('ca.pem'),
    );
    ssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=127.0.0.1',
      '-keyout',
      file('server.key'),
      '-out',
      file('server.csr'),
    );
    execFileSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > ${file('ext.cnf')}`]);
    ssl(
      'x509',
      '-req',
      '-in',
      file('server.csr'),
      '-CA',
      file('ca.pem'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      file('ext.cnf'),
      '-out',
      file('server.pem'),
    );
    const port = await privateServer(['-js', '--tls', '--tlscert', file('server.pem'), '--tlskey', file('server.key')]);
    const trusted = createNatsAdapter({
      url: `tls://127.0.0.1:${port}`,
      logger: silentLogger,
      tls: { caFile: file('ca.pem') },
    });
    await trusted.connect();
    const channel = unique('nats-tls');
    await trusted.declare(channel, ['g'], policy);
    await trusted.publish(channel, [encodeEvent(createEvent({ type: 'OverTls' }, '/tls'))]);
    await trusted.close();
    const untrusted = createNatsAdapter({
      url: `tls://127.0.0.1:${port}`,
      logger: silentLogger,
      connectTimeoutMs: 2_000,
    });
    const error = await untrusted.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UntrustedCertificateError);
    expect((error as Error).message).toMatch(/tls\.caFile/);
    await untrusted.close();
  });

  it('fails publishes with PublishError when the stream is at its limits, and drops nothing silently', async () => {
    const channel = unique('nats-limits');
    const a = adapter({ maxStreamMessages: 3 });
    try {
      await a.connect();
      await a.declare(channel, ['g'], policy);
      const wire = (n: number) => encodeEvent(createEvent({ type: 'Fill', data: { n } }, '/limits'));
      await a.publish(channel, [wire(1), wire(2), wire(3)]);
      const error = await a.publish(channel, [wire(4)]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PublishError);
      expect((error as Error).message).toMatch(/limits/);
      const info = await withConnection(async (nc) =>
        (await jetstreamManager(nc)).streams.info(channelNames(resolveOptions(url, {}), channel).stream),
      );
      expect(info.state.messages).toBe(3);
    } finally {
      await a.close();
      await cleanup(channel);
    }
  });

  it('refuses an event above max_payload before sending it', async () => {
    const channel = unique('nats-big');
    const bus = createBus({ adapter: adapter(), logger: silentLogger });
    try {
      await bus.declare(channel, { groups: ['g'] });
      const limit = bus.adapter?.capabilities.maxMessageBytes ?? 0;
      expect(limit).toBeGreaterThan(900_000);
      await expect(bus.publish(channel, { type: 'Big', data: new Uint8Array(limit + 1) })).rejects.toThrow(
        /above the broker/,
      );
    } finally {
      await bus.close();
      await cleanup(channel);
    }
  });
});
