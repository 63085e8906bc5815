import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { recoverySpec, renderSvg, throughputLatencySpec } from './charts.js';
import type { CompareResult, VariantResult } from './compare.js';
import { formatTable } from './format.js';

/** Files {@link writeReport} writes into its directory. */
export const REPORT_FILES = {
  markdown: 'README.md',
  json: 'compare.json',
  throughput: 'throughput-latency.svg',
  recovery: 'recovery.svg',
} as const;

function rateTable(name: string, v: VariantResult): string {
  const rows = v.rates.map(
    (r) =>
      `| ${r.offeredPerSec} | ${r.acceptedPerSec} | ${r.completedPerSec} | ${r.latency.avgMs} / ${r.latency.p50Ms} / ${r.latency.p99Ms} | ${r.completion.avgMs} / ${r.completion.p99Ms} | ${r.coresPer1k}${r.brokerCoresPer1k === undefined ? '' : ` (+ ${r.brokerCoresPer1k})`} | ${r.failed} | ${r.pending} |`,
  );
  return [
    `**${name}**`,
    '',
    '| offered/s | accepted/s | completed/s | request avg / p50 / p99 ms | until final avg / p99 ms | cores per 1k/s | failed | pending |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

/**
 * Writes the comparison into `dir`: a markdown report with the table beside the article's figures,
 * the per-rate detail, and two SVG charts (throughput against latency, the recovery timeline), plus
 * the JSON result.
 */
export async function writeReport(result: CompareResult, dir: string): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const m = result.machine;
  const markdown = `# Synchronous HTTP against the bus: the order flow, measured

Broker: \`${result.broker}\`. Machine: ${m.cpus} × ${m.model}, ${m.memoryGiB} GiB, ${m.platform}, Node ${m.node};
load average ${m.loadAverage} when the run began (other work on the machine skews every figure).
Offered rates ${result.settings.rates.join(', ')} orders/s, ${result.settings.durationS} s each; payment outage at
${result.settings.recoveryRate} orders/s; scenario seed ${result.settings.seed}.

${formatTable(result)}

Headline figures are at the offered rate with the most accepted orders/s. CPU is summed over every
service process (\`/proc/<pid>/stat\`) per 1,000 completed orders; "+ broker" is the broker's process
on this machine, which other work may share. Poison orders (the gateway client crashes on their
card) are counted apart: the bus dead-letters them, HTTP answers 502.

![Throughput against latency](${REPORT_FILES.throughput})

![Recovery timeline](${REPORT_FILES.recovery})

## Per rate

${rateTable('sync HTTP', result.sync)}

${rateTable('bus', result.async)}

## Payment outage

| | sync HTTP | bus |
| --- | --- | --- |
| orders sent | ${result.sync.recovery.sent} | ${result.async.recovery.sent} |
| killed at / restarted at (s) | ${result.sync.recovery.killedAt} / ${result.sync.recovery.restartedAt} | ${result.async.recovery.killedAt} / ${result.async.recovery.restartedAt} |
| first confirmed order after the restart | ${result.sync.recoveryMs} ms | ${result.async.recoveryMs} ms |
| failed | ${result.sync.failed} | ${result.async.failed} |
| accepted, never completed | ${result.sync.lost} | ${result.async.lost} |
`;
  const files: [string, string][] = [
    [REPORT_FILES.markdown, markdown],
    [REPORT_FILES.json, `${JSON.stringify(result, null, 2)}\n`],
    [REPORT_FILES.throughput, await renderSvg(throughputLatencySpec(result))],
    [REPORT_FILES.recovery, await renderSvg(recoverySpec(result))],
  ];
  for (const [name, text] of files) writeFileSync(join(dir, name), text);
  return files.map(([name]) => join(dir, name));
}
