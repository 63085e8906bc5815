import { randomBytes } from 'node:crypto';
import { BENCH_GROUP, benchBus, median, roundAll, type Summary } from '@wharf/cli';
import type { BenchOptions, BenchResult } from '@wharf/core';
import { redactUrl } from '@wharf/core';
import type { Peer, PeerSettings } from './peers.js';

export interface CompareOptions extends PeerSettings {
  readonly url: string;
  readonly events: number;
  readonly size: number;
  readonly window: number;
  readonly rounds: number;
  /**
   * One unmeasured round of each side first (the default, as `wharf bench` does), so JIT and
   * connection set-up are not measured. Tests turn it off to stay fast.
   */
  readonly warmUp?: boolean;
  /** Progress lines ("round 1/3: peer…"). */
  readonly progress?: (line: string) => void;
}

export type Side = 'peer' | 'bus' | 'raw';
const SIDES: readonly Side[] = ['peer', 'bus', 'raw'];

/** Peer to bus or raw: >1 means the peer is faster (throughput) or slower (p99, CPU). */
export interface Ratios {
  readonly throughput: number;
  readonly p99: number;
  readonly cpu: number;
}

export interface Comparison {
  readonly peer: string;
  readonly broker: string;
  readonly events: number;
  readonly size: number;
  readonly window: number;
  readonly rounds: number;
  readonly transient: boolean;
  /** Medians over the rounds, rounded as `wharf bench` prints them. */
  readonly figures: Readonly<Record<Side, Summary>>;
  readonly ratio: { readonly peerBus: Ratios; readonly peerRaw: Ratios };
  /** Every measured round, in order, so a report can give ranges as well as medians. */
  readonly runs: Readonly<Record<Side, readonly BenchResult[]>>;
}

const round2 = (n: number): number => Math.round(n * 100) / 100;

function ratios(a: Summary, b: Summary): Ratios {
  return {
    throughput: round2(a.throughput / b.throughput),
    p99: round2(a.p99Ms / Math.max(b.p99Ms, 1e-6)),
    cpu: round2(a.cpuUsPerEvent / Math.max(b.cpuUsPerEvent, 1e-6)),
  };
}

/**
 * Measures a peer, the Wharf bus on the same broker (`benchBus`, what `wharf bench` runs) and the
 * broker's raw baseline in one process, rounds alternating: the order rotates every round, as in
 * `wharf bench`, so no side always inherits the others' warm code or a quiet moment of the shared
 * machine. Every round gets a fresh channel; the bus's topology is deleted after its round (the
 * peers and raw baselines delete their own).
 */
export async function comparePeer(peer: Peer, options: CompareOptions): Promise<Comparison> {
  const settings: PeerSettings = { transient: options.transient === true };
  const fresh = (): BenchOptions => ({
    url: options.url,
    events: options.events,
    size: options.size,
    window: options.window,
    channel: `bench-${randomBytes(4).toString('hex')}`,
  });
  const side = async (which: Side): Promise<BenchResult> => {
    const run = fresh();
    if (which === 'peer') return peer.run(run, settings);
    if (which === 'raw') return peer.raw(run);
    try {
      return await benchBus(run);
    } finally {
      await peer.cleanupBus(options.url, run.channel, [BENCH_GROUP]).catch(() => undefined);
    }
  };
  if (options.warmUp !== false) {
    options.progress?.('warm-up: peer, bus and raw…');
    for (const which of SIDES) await side(which);
  }
  const runs: Record<Side, BenchResult[]> = { peer: [], bus: [], raw: [] };
  for (let i = 0; i < options.rounds; i++) {
    const order = [...SIDES.slice(i % SIDES.length), ...SIDES.slice(0, i % SIDES.length)];
    for (const which of order) {
      options.progress?.(`round ${i + 1}/${options.rounds}: ${which}…`);
      runs[which].push(await side(which));
    }
  }
  const figures = {
    peer: roundAll(median(runs.peer)),
    bus: roundAll(median(runs.bus)),
    raw: roundAll(median(runs.raw)),
  };
  return {
    peer: peer.label,
    broker: redactUrl(options.url),
    events: options.events,
    size: options.size,
    window: options.window,
    rounds: options.rounds,
    transient: settings.transient === true,
    figures,
    ratio: { peerBus: ratios(figures.peer, figures.bus), peerRaw: ratios(figures.peer, figures.raw) },
    runs,
  };
}
