import { parseArgs } from 'node:util';
import type { CompareOptions } from './compare.js';
import { PeerBenchUsageError } from './errors.js';
import { isPeerName, PEER_NAMES, PEERS, type Peer } from './peers.js';

export const usage = `node packages/bench-peers/dist/main.js --peer ${PEER_NAMES.join('|')} [--broker <url>] [--events N] [--size BYTES]
       [--window N] [--rounds N] [--transient] [--json]

Measures the peer, the Wharf bus on the same broker and the broker's raw client in one run, rounds
alternating (after one unmeasured round of each), and prints their medians and the peer/bus and
peer/raw ratios. --broker defaults to the local test broker (amqp://guest:guest@127.0.0.1:5672 for
nest-rmq, nats://127.0.0.1:4222 for moleculer-nats). --transient (nest-rmq only) gives Nest a classic
queue and non-persistent messages instead of a quorum queue and persistent ones.`;

export interface Invocation {
  readonly peer: Peer;
  readonly options: Omit<CompareOptions, 'progress'>;
  readonly json: boolean;
}

function positiveInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new PeerBenchUsageError(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

/** Reads the runner's command line; `undefined` means `--help` was asked for. */
export function parseInvocation(argv: readonly string[]): Invocation | undefined {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(argv).values;
  } catch (error) {
    throw new PeerBenchUsageError(`${(error as Error).message}\n\n${usage}`);
  }
  if (values.help) return undefined;
  const name = values.peer;
  if (name === undefined || !isPeerName(name)) {
    throw new PeerBenchUsageError(`--peer must be one of ${PEER_NAMES.join(', ')}${name ? `, got "${name}"` : ''}`);
  }
  const peer = PEERS[name];
  if (values.transient && name !== 'nest-rmq')
    throw new PeerBenchUsageError('--transient applies to --peer nest-rmq only');
  return {
    peer,
    json: values.json === true,
    options: {
      url: values.broker ?? peer.defaultUrl,
      events: positiveInt(values.events, 'events', 20_000),
      size: positiveInt(values.size, 'size', 1024),
      window: positiveInt(values.window, 'window', 256),
      rounds: positiveInt(values.rounds, 'rounds', 3),
      transient: values.transient === true,
    },
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      peer: { type: 'string' },
      broker: { type: 'string' },
      events: { type: 'string' },
      size: { type: 'string' },
      window: { type: 'string' },
      rounds: { type: 'string' },
      transient: { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
