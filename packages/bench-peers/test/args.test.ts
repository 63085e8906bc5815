import { describe, expect, it } from 'vitest';
import { PEERS, PeerBenchUsageError, parseInvocation } from '../src/index.js';

describe('parseInvocation', () => {
  it('defaults to the issue 21 run on the local broker of the peer', () => {
    const invocation = parseInvocation(['--peer', 'moleculer-nats']);
    expect(invocation?.peer).toBe(PEERS['moleculer-nats']);
    expect(invocation?.options).toMatchObject({
      url: 'nats://127.0.0.1:4222',
      events: 20_000,
      size: 1024,
      window: 256,
      rounds: 3,
      transient: false,
    });
    expect(invocation?.json).toBe(false);
  });

  it('reads every option', () => {
    const invocation = parseInvocation(
      ['--peer', 'nest-rmq', '--broker', 'amqp://u:p@h:5673', '--events', '5', '--size', '64', '--window', '8'].concat([
        '--rounds',
        '2',
        '--transient',
        '--json',
      ]),
    );
    expect(invocation?.options).toMatchObject({
      url: 'amqp://u:p@h:5673',
      events: 5,
      size: 64,
      window: 8,
      rounds: 2,
      transient: true,
    });
    expect(invocation?.json).toBe(true);
  });

  it('returns undefined for --help', () => {
    expect(parseInvocation(['--help'])).toBeUndefined();
  });

  it.each([
    [[], /--peer must be one of nest-rmq, moleculer-nats/],
    [['--peer', 'kafka'], /got "kafka"/],
    [['--peer', 'nest-rmq', '--events', '0'], /--events must be a positive integer/],
    [['--peer', 'moleculer-nats', '--transient'], /--peer nest-rmq only/],
    [['--peer', 'nest-rmq', '--evnets', '3'], /Unknown option '--evnets'/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseInvocation(argv)).toThrow(PeerBenchUsageError);
    expect(() => parseInvocation(argv)).toThrow(message);
  });
});
