import type { CompareResult, VariantResult } from './compare.js';

/** The figures the article behind this project gives for the same comparison. */
export const ARTICLE = {
  sync: { acceptedPerSec: 1_200, avgMs: 150, p99Ms: 1_200, recovery: '30 s+', coresPer1k: 2.1 },
  async: { acceptedPerSec: 8_500, avgMs: 25, p99Ms: 210, recovery: '< 5 s', coresPer1k: 0.7 },
} as const;

const n = (value: number): string => value.toLocaleString('en-US', { maximumFractionDigits: 1 });
const ms = (value: number): string => `${n(value)} ms`;
const recovered = (v: VariantResult): string =>
  v.recoveryMs < 0 ? `none within ${n(v.recovery.watchedMs / 1000)} s` : ms(v.recoveryMs);

/** The comparison as a markdown table, measured figures beside the article's. */
export function formatTable(result: CompareResult): string {
  const { sync, async } = result;
  const broker = (v: VariantResult): string =>
    v.brokerCoresPer1k === undefined ? '' : ` (+ ${n(v.brokerCoresPer1k)} broker)`;
  const rows: [string, string, string, string, string][] = [
    [
      'accepted orders/s (saturation)',
      n(sync.acceptedPerSec),
      n(async.acceptedPerSec),
      n(ARTICLE.sync.acceptedPerSec),
      n(ARTICLE.async.acceptedPerSec),
    ],
    ['order request, average', ms(sync.avgMs), ms(async.avgMs), ms(ARTICLE.sync.avgMs), ms(ARTICLE.async.avgMs)],
    ['order request, p50', ms(sync.p50Ms), ms(async.p50Ms), '', ''],
    ['order request, p99', ms(sync.p99Ms), ms(async.p99Ms), ms(ARTICLE.sync.p99Ms), ms(ARTICLE.async.p99Ms)],
    ['until the order is final, average', ms(sync.completionAvgMs), ms(async.completionAvgMs), '', ''],
    ['until the order is final, p99', ms(sync.completionP99Ms), ms(async.completionP99Ms), '', ''],
    [
      'CPU cores per 1,000 orders/s',
      n(sync.coresPer1k),
      `${n(async.coresPer1k)}${broker(async)}`,
      n(ARTICLE.sync.coresPer1k),
      n(ARTICLE.async.coresPer1k),
    ],
    [
      'payment down 10 s: completions resume after',
      recovered(sync),
      recovered(async),
      ARTICLE.sync.recovery,
      ARTICLE.async.recovery,
    ],
    ['payment down 10 s: orders failed', n(sync.failed), n(async.failed), '', ''],
    ['payment down 10 s: accepted orders lost', n(sync.lost), n(async.lost), '', ''],
  ];
  const head = `| ${result.broker} | sync HTTP (measured) | bus (measured) | sync (article) | async MQ (article) |\n| --- | --- | --- | --- | --- |`;
  return [head, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
