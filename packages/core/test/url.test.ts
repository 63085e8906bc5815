import { describe, expect, it } from 'vitest';
import { InvalidUrlError, parseBrokerUrl, redactUrl } from '../src/index.js';

describe('broker URLs', () => {
  it('parses credentials, several hosts, a vhost and parameters', () => {
    const url = parseBrokerUrl('amqps://user:p%40ss@rabbit-1:5671,rabbit-2/my%2Fvhost?heartbeat=10');
    expect(url).toMatchObject({ scheme: 'amqps', username: 'user', password: 'p@ss', path: 'my/vhost' });
    expect(url.hosts).toEqual([{ host: 'rabbit-1', port: 5671 }, { host: 'rabbit-2' }]);
    expect(url.params.get('heartbeat')).toBe('10');
  });

  it('parses memory and kafka URLs', () => {
    expect(parseBrokerUrl('memory://').hosts).toEqual([]);
    expect(parseBrokerUrl('memory://tests').hosts).toEqual([{ host: 'tests' }]);
    expect(parseBrokerUrl('kafka://a:9092,b:9093').hosts).toHaveLength(2);
    expect(parseBrokerUrl('nats://[::1]:4222').hosts).toEqual([{ host: '[::1]', port: 4222 }]);
  });

  it.each([
    ['', /no broker URL given/],
    ['localhost:5672', /is not a broker URL/],
    ['redis://localhost', /unknown broker scheme "redis:"/],
    ['amqp://', /names no host/],
    ['amqp://host:99999', /invalid port/],
    ['amqp://user:secret@ho st', /invalid host/],
  ])('rejects %j with a clear message', (url, message) => {
    expect(() => parseBrokerUrl(url)).toThrow(InvalidUrlError);
    expect(() => parseBrokerUrl(url)).toThrow(message);
  });

  it('never puts a password in an error or a log line', () => {
    expect(redactUrl('amqp://guest:hunter2@h:5672/v')).toBe('amqp://guest:***@h:5672/v');
    expect(() => parseBrokerUrl('amqp://u:hunter2@bad host')).toThrow(/^(?!.*hunter2)/s);
  });
});
