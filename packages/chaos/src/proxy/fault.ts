/** Which traffic a fault applies to: client→broker (`upstream`), broker→client (`downstream`), or both. */
export type Direction = 'both' | 'upstream' | 'downstream';

/**
 * A fault on the proxied link (after Toxiproxy's toxics). Faults on data apply to `direction`
 * (default both); the other direction passes untouched.
 * - `latency`: every chunk is held `latencyMs` ± `jitterMs` (order kept);
 * - `blackhole`: data is swallowed, connections stay open (`downstream` only = lost acknowledgements);
 * - `slicer`: data is forwarded one byte per write;
 * - `throttle`: at most `bytesPerSecond`;
 * - `reset`: every open and new connection is reset (RST) at once;
 * - `flapping`: every 1–5 s (`minMs`..`maxMs`) all open connections are reset.
 */
export type Fault =
  | { readonly kind: 'none' }
  | { readonly kind: 'latency'; readonly latencyMs: number; readonly jitterMs?: number; readonly direction?: Direction }
  | { readonly kind: 'blackhole'; readonly direction?: Direction }
  | { readonly kind: 'slicer'; readonly direction?: Direction }
  | { readonly kind: 'throttle'; readonly bytesPerSecond: number; readonly direction?: Direction }
  | { readonly kind: 'reset' }
  | { readonly kind: 'flapping'; readonly minMs?: number; readonly maxMs?: number };

/** The part of a fault that acts on the data of one direction. */
export type DataFault =
  | { readonly kind: 'pass' }
  | { readonly kind: 'latency'; readonly latencyMs: number; readonly jitterMs: number }
  | { readonly kind: 'blackhole' }
  | { readonly kind: 'slicer' }
  | { readonly kind: 'throttle'; readonly bytesPerSecond: number };

const PASS: DataFault = { kind: 'pass' };

/** The data fault a fault puts on one direction. */
export function dataFault(fault: Fault, direction: 'upstream' | 'downstream'): DataFault {
  if (fault.kind === 'none' || fault.kind === 'reset' || fault.kind === 'flapping') return PASS;
  const applies = (fault.direction ?? 'both') === 'both' || fault.direction === direction;
  if (!applies) return PASS;
  switch (fault.kind) {
    case 'latency':
      return { kind: 'latency', latencyMs: fault.latencyMs, jitterMs: fault.jitterMs ?? 0 };
    case 'throttle':
      return { kind: 'throttle', bytesPerSecond: fault.bytesPerSecond };
    default:
      return { kind: fault.kind };
  }
}

/** A small seeded PRNG (mulberry32) so jitter and flapping intervals repeat for a seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
