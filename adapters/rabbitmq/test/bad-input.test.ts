import { strict as assert } from 'node:assert';
import {
  AuthenticationError,
  BrokerUnreachableError,
  ConfigError,
  createBus,
  InvalidUrlError,
  type Logger,
  NotAuthorizedError,
  silentLogger,
} from '@wharf/core';
import { describe, it } from 'vitest';
import createRabbitMqAdapter from '../src/index.js';
import { host, port, unavailable } from './helpers.js';

function capturing(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (message: string, fields?: Record<string, unknown>): void => {
    lines.push(`${message} ${fields ? JSON.stringify(fields) : ''}`);
  };
  return { logger: { debug: at, info: at, warn: at, error: at }, lines };
}

describe('options (no broker needed)', () => {
  it('constructing does no I/O and validates options with ConfigError', () => {
    createRabbitMqAdapter({ url: 'amqp://nowhere.invalid:1', logger: silentLogger });
    assert.throws(() => createRabbitMqAdapter({ url: 'kafka://x:9092', logger: silentLogger }), ConfigError);
    assert.throws(() => createRabbitMqAdapter({ url: 'amqp://', logger: silentLogger }), InvalidUrlError);
    assert.throws(
      () => createRabbitMqAdapter({ url: 'amqp://h', logger: silentLogger, deliveryLimit: 0 }),
      /deliveryLimit must be an integer from 1/,
    );
    assert.throws(
      () => createRabbitMqAdapter({ url: 'amqp://h', logger: silentLogger, maxMessageBytes: 200 * 1024 * 1024 }),
      ConfigError,
    );
    assert.throws(() => createRabbitMqAdapter({ url: 'amqp://h', logger: silentLogger, prefix: 'amq.x' }), /prefix/);
    assert.throws(
      () => createRabbitMqAdapter({ url: 'amqps://h', logger: silentLogger, tls: { certFile: '/c.pem' } }),
      /keyFile/,
    );
  });

  it('a TLS file that cannot be read is a ConfigError naming the file, not a hang', async () => {
    const a = createRabbitMqAdapter({
      url: `amqps://guest:guest@${host}:${port}`,
      logger: silentLogger,
      tls: { caFile: '/nonexistent/ca.pem' },
      connectAttempts: 1,
    });
    await assert.rejects(a.connect(), /tls\.caFile "\/nonexistent\/ca\.pem"/);
    await a.close();
  });

  it('an unreachable broker fails after bounded retries with BrokerUnreachableError naming host:port', async () => {
    const a = createRabbitMqAdapter({
      url: 'amqp://guest:s3cret-pw@127.0.0.1:1',
      logger: silentLogger,
      connectAttempts: 3,
      reconnectInitialDelayMs: 50,
    });
    const started = Date.now();
    const error = await a.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof BrokerUnreachableError, String(error));
    assert.match(error.message, /127\.0\.0\.1:1 after 3 attempts \(ECONNREFUSED\)/);
    assert.doesNotMatch(error.message, /s3cret/);
    assert.ok(Date.now() - started < 5_000);
    await a.close();
  });
});

describe.skipIf(unavailable !== undefined)('bad input against the real broker', () => {
  it('wrong credentials fail fast with AuthenticationError, without the password anywhere', async () => {
    const { logger, lines } = capturing();
    const a = createRabbitMqAdapter({ url: `amqp://guest:wrong-pw-123@${host}:${port}`, logger, connectAttempts: 5 });
    const started = Date.now();
    const error = await a.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof AuthenticationError, String(error));
    assert.match(error.message, /refused the credentials of user "guest"/);
    assert.ok(Date.now() - started < 3_000, 'an auth failure was retried');
    assert.doesNotMatch(`${error.message} ${lines.join('\n')}`, /wrong-pw-123/);
    await a.close();
  });

  // RabbitMQ answers a missing vhost and one the user may not open alike (530 NOT_ALLOWED).
  it('a missing vhost is a clear NotAuthorizedError naming it and both causes', async () => {
    const a = createRabbitMqAdapter({ url: `amqp://guest:guest@${host}:${port}/no-such-vhost`, logger: silentLogger });
    await assert.rejects(a.connect(), (e: unknown) => {
      assert.ok(e instanceof NotAuthorizedError);
      assert.match(e.message, /vhost "no-such-vhost"/);
      assert.match(e.message, /rabbitmqctl add_vhost/);
      return true;
    });
    await a.close();
  });

  it('a bus with wrong credentials reports the typed error on first use', async () => {
    const bus = createBus({
      adapter: createRabbitMqAdapter({ url: `amqp://guest:nope@${host}:${port}`, logger: silentLogger }),
      logger: silentLogger,
    });
    await assert.rejects(bus.publish('x', { type: 'T' }), AuthenticationError);
    await bus.close();
  });
});
