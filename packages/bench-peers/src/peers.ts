import type { BenchOptions, BenchResult, RawBaseline } from '@wharf/core';
import * as nats from '@wharf/nats';
import * as rabbitmq from '@wharf/rabbitmq';
import { benchMoleculerNats } from './moleculer-nats.js';
import { benchNestRmq } from './nest-rmq.js';

/** The peers this package measures. */
export const PEER_NAMES = ['nest-rmq', 'moleculer-nats'] as const;
export type PeerName = (typeof PEER_NAMES)[number];

/** Settings a run of a peer can change; each peer ignores what is not its own. */
export interface PeerSettings {
  /** NestJS: a classic queue and non-persistent messages (see `NestRmqSettings.transient`). */
  readonly transient?: boolean;
}

/** One peer and what it is compared with: the bus on the same broker and that broker's raw baseline. */
export interface Peer {
  readonly name: PeerName;
  /** How the report names the peer. */
  readonly label: string;
  /** The broker it runs on when no URL is given (the local test broker). */
  readonly defaultUrl: string;
  readonly run: (options: BenchOptions, settings: PeerSettings) => Promise<BenchResult>;
  /** The adapter's raw-client baseline, the one `wharf bench` measures. */
  readonly raw: RawBaseline;
  /** Deletes what a bus round declared on `channel` (the adapter's conformance harness cleanup). */
  readonly cleanupBus: (url: string, channel: string, groups: readonly string[]) => Promise<void>;
}

export const PEERS: Readonly<Record<PeerName, Peer>> = {
  'nest-rmq': {
    name: 'nest-rmq',
    label: 'NestJS RMQ',
    defaultUrl: 'amqp://guest:guest@127.0.0.1:5672',
    run: (options, settings) => benchNestRmq(options, settings),
    raw: rabbitmq.rawBaseline,
    cleanupBus: (url, channel, groups) => rabbitmq.conformanceHarness(url).cleanup(channel, groups),
  },
  'moleculer-nats': {
    name: 'moleculer-nats',
    label: 'Moleculer Channels',
    defaultUrl: 'nats://127.0.0.1:4222',
    run: (options) => benchMoleculerNats(options),
    raw: nats.rawBaseline,
    cleanupBus: (url, channel) => nats.conformanceHarness(url).cleanup(channel),
  },
};

export function isPeerName(name: string): name is PeerName {
  return (PEER_NAMES as readonly string[]).includes(name);
}
