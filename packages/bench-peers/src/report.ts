import type { Comparison, Side } from './compare.js';

/** The comparison as text, laid out like `wharf bench`'s table, with the rounds' throughput ranges. */
export function formatComparison(c: Comparison): string[] {
  const durability = c.transient ? ' (classic queue, non-persistent messages)' : '';
  const lines = [
    `${c.peer}${durability} vs Wharf bus vs raw client on ${c.broker}: ${c.events} events of ${c.size} B, window ${c.window}, median of ${c.rounds} rounds`,
    '        throughput/s      p50 ms     p99 ms   cpu µs/event   throughput range',
  ];
  for (const side of ['peer', 'bus', 'raw'] as const satisfies readonly Side[]) {
    const s = c.figures[side];
    const range = c.runs[side].map((r) => Math.round(r.throughput));
    lines.push(
      `${side.padEnd(8)}${String(s.throughput).padStart(12)}${String(s.p50Ms).padStart(12)}${String(s.p99Ms).padStart(11)}${String(s.cpuUsPerEvent).padStart(15)}   ${Math.min(...range)}–${Math.max(...range)}`,
    );
  }
  const { peerBus, peerRaw } = c.ratio;
  lines.push(`ratio peer/bus: throughput ${peerBus.throughput}, p99 ${peerBus.p99}, cpu ${peerBus.cpu}`);
  lines.push(`ratio peer/raw: throughput ${peerRaw.throughput}, p99 ${peerRaw.p99}, cpu ${peerRaw.cpu}`);
  return lines;
}
