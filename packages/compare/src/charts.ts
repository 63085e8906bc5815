import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { CompareResult } from './compare.js';

/** Renders a Vega-Lite spec to SVG without a browser or canvas (Vega's headless view). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const LABELS = { sync: 'sync HTTP', async: 'bus' } as const;

/** Latency against accepted throughput, one point per offered rate: request p99 and completion p99 per variant. */
export function throughputLatencySpec(result: CompareResult): TopLevelSpec {
  const values = (['sync', 'async'] as const).flatMap((variant) =>
    result[variant].rates.flatMap((point) => [
      {
        series: `${LABELS[variant]}: request p99`,
        accepted: point.acceptedPerSec,
        ms: Math.max(1, point.latency.p99Ms),
        offered: point.offeredPerSec,
      },
      {
        series: `${LABELS[variant]}: until final p99`,
        accepted: point.acceptedPerSec,
        ms: Math.max(1, point.completion.p99Ms),
        offered: point.offeredPerSec,
      },
    ]),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Throughput against latency (${result.broker})`,
    width: 520,
    height: 300,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'accepted', type: 'quantitative', title: 'accepted orders/s' },
      y: { field: 'ms', type: 'quantitative', title: 'latency, ms (log)', scale: { type: 'log' } },
      // One legend for both channels (same field): colour and dash tell the four lines apart in print too.
      color: {
        field: 'series',
        type: 'nominal',
        title: null,
        legend: { labelLimit: 300, orient: 'bottom', columns: 2 },
      },
      strokeDash: { field: 'series', type: 'nominal', title: null },
    },
  };
}

/** Orders per second through the payment outage: what each variant accepted, confirmed and failed. */
export function recoverySpec(result: CompareResult): TopLevelSpec {
  const values = (['sync', 'async'] as const).flatMap((variant) =>
    result[variant].recovery.timeline.flatMap((p) => [
      { t: p.t, series: `${LABELS[variant]}: confirmed`, perSec: p.confirmed },
      { t: p.t, series: `${LABELS[variant]}: failed`, perSec: p.failed },
      ...(variant === 'async' ? [{ t: p.t, series: `${LABELS[variant]}: accepted`, perSec: p.accepted }] : []),
    ]),
  );
  const { killedAt, restartedAt } = result.sync.recovery;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Payment killed at ${killedAt} s, started again at ${restartedAt} s (${result.broker})`,
    width: 560,
    height: 300,
    layer: [
      {
        data: {
          values: [
            { t: killedAt, label: 'payment killed' },
            { t: restartedAt, label: 'payment restarted' },
          ],
        },
        mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' },
        encoding: { x: { field: 't', type: 'quantitative' } },
      },
      {
        data: { values },
        mark: { type: 'line', interpolate: 'step-after' },
        encoding: {
          x: { field: 't', type: 'quantitative', title: 'seconds since the phase began' },
          y: { field: 'perSec', type: 'quantitative', title: 'orders per second' },
          color: {
            field: 'series',
            type: 'nominal',
            title: null,
            legend: { labelLimit: 300, orient: 'bottom', columns: 3 },
          },
        },
      },
    ],
  };
}
