import type { CompareResult } from '@wharf/compare';
import { brokerUrl, parse, UsageError } from '../args.js';
import { json, type Output } from '../output.js';

export const compareUsage = `wharf compare --broker <url> [--rates r1,r2,…] [--duration S] [--outage S] [--seed S] [--json] [--report <dir>]

The same order flow two ways, one after the other, each service in its own process:
  sync  the order service calls inventory, then payment, over HTTP (keep-alive pools, timeouts,
        retries with backoff, a circuit breaker), and answers when the order is final;
  bus   the order saga's five services on --broker, the order service answering 202 at once.
Each offered rate (orders/s, default 50,100,200) is held for --duration seconds (default 10) with
open-loop HTTP load (autocannon); then, at the lowest rate, the payment service is killed for
--outage seconds (default 10) and started again. Prints accepted orders/s at saturation, request
latency (avg, p50, p99), time until the order is final (avg, p99), CPU cores per 1,000 orders/s
over every service process, and for the outage: time until orders are confirmed again, orders
failed, accepted orders lost.
--json prints { machine, broker, sync: {…}, async: {…} }; --report <dir> writes a markdown report
with SVG charts (throughput against latency, the recovery timeline) and the JSON.
Exits 1 when the bus variant lost an accepted order.`;

/** `wharf compare`: measures the synchronous and the bus variant of the order flow side by side. */
export async function compare(argv: string[], output: Output): Promise<number> {
  const { values } = parse(argv, {
    broker: { type: 'string' },
    rates: { type: 'string' },
    duration: { type: 'string' },
    outage: { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'boolean' },
    report: { type: 'string' },
  });
  const rates = values.rates?.split(',').map((r) => Number(r.trim()));
  const duration = values.duration === undefined ? undefined : Number(values.duration);
  // Loaded on use: autocannon and Vega are heavy, and every other command would pay for them at start.
  const { CompareUsageError, formatTable, runCompare, writeReport } = await import('@wharf/compare');
  let result: CompareResult;
  try {
    result = await runCompare({
      url: brokerUrl(values.broker),
      ...(rates ? { rates } : {}),
      ...(duration !== undefined ? { durationS: duration } : {}),
      ...(values.outage !== undefined ? { outageS: Number(values.outage) } : {}),
      ...(values.seed !== undefined ? { seed: values.seed } : {}),
      onProgress: (message) => output.err(message),
    });
  } catch (error) {
    if (error instanceof CompareUsageError) throw new UsageError(error.message.replace('[wharf] [compare] ', ''));
    throw error;
  }
  if (values.report) {
    const files = await writeReport(result, values.report);
    output.err(`[compare] report written: ${files.join(', ')}`);
  }
  if (values.json) json(output, result);
  else output.out(formatTable(result));
  return result.async.lost === 0 ? 0 : 1;
}
