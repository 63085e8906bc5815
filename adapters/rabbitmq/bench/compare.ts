/**
 * Bus vs raw amqplib on the same broker: `npx tsx --conditions=wharf-source adapters/rabbitmq/bench/compare.ts`.
 * Env: WHARF_RABBITMQ_URL, EVENTS (20000), SIZE (1024), WINDOW (100), ROUNDS (3).
 */
import { randomBytes } from 'node:crypto';
import {
  type BenchOptions,
  type BenchResult,
  createBus,
  payloadAge,
  silentLogger,
  stampPayload,
  startMeasurement,
} from '@wharf/core';
import createRabbitMqAdapter, { rawBaseline } from '../src/index.js';
import { cleanup } from '../test/helpers.js';

const url = process.env.WHARF_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const events = Number(process.env.EVENTS ?? 20_000);
const size = Number(process.env.SIZE ?? 1024);
const window = Number(process.env.WINDOW ?? 100);
const rounds = Number(process.env.ROUNDS ?? 3);

async function busRun(options: BenchOptions): Promise<BenchResult> {
  const bus = createBus({
    adapter: createRabbitMqAdapter({
      url: options.url,
      logger: silentLogger,
      coalesceWrites: process.env.COALESCE !== '0',
    }),
    logger: silentLogger,
  });
  const group = 'bench';
  try {
    let received = 0;
    let finished!: () => void;
    const all = new Promise<void>((resolve) => {
      finished = resolve;
    });
    const measure = startMeasurement(options.events);
    await bus.subscribe(options.channel, { group, concurrency: options.window }, (event) => {
      measure.record(payloadAge(event.data as Uint8Array));
      if (++received === options.events) finished();
    });
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < options.events) {
        next++;
        await bus.publish(options.channel, { type: 'BenchEvent', data: stampPayload(options.size) });
      }
    };
    await Promise.all(Array.from({ length: options.window }, worker));
    await all;
    return measure.finish();
  } finally {
    await bus.close();
    await cleanup(options.channel, [group]);
  }
}

const fmt = (r: BenchResult): string =>
  `${Math.round(r.throughput)} ev/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  cpu ${r.cpuUsPerEvent.toFixed(0)} µs/ev`;

const results: { raw: BenchResult; bus: BenchResult }[] = [];
// One discarded warm-up round of each: JIT and the broker's first quorum queues dominate a cold run.
{
  const warm = { url, events: Math.min(events, 5_000), size, window };
  await rawBaseline({ ...warm, channel: `bench-${randomBytes(4).toString('hex')}` });
  await busRun({ ...warm, channel: `bench-${randomBytes(4).toString('hex')}` });
}
for (let round = 0; round < rounds; round++) {
  const base = { url, events, size, window };
  // Alternate which runs first, so a slow phase of the machine does not always hit the same side.
  const runRaw = () => rawBaseline({ ...base, channel: `bench-${randomBytes(4).toString('hex')}` });
  const runBus = () => busRun({ ...base, channel: `bench-${randomBytes(4).toString('hex')}` });
  let raw: BenchResult;
  let bus: BenchResult;
  if (round % 2 === 0) {
    raw = await runRaw();
    bus = await runBus();
  } else {
    bus = await runBus();
    raw = await runRaw();
  }
  results.push({ raw, bus });
  console.log(`round ${round + 1}: raw ${fmt(raw)}`);
  console.log(`round ${round + 1}: bus ${fmt(bus)}  ratio ${(bus.throughput / raw.throughput).toFixed(3)}`);
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const rawT = median(results.map((r) => r.raw.throughput));
const busT = median(results.map((r) => r.bus.throughput));
const rawP99 = median(results.map((r) => r.raw.p99Ms));
const busP99 = median(results.map((r) => r.bus.p99Ms));
const ratios = results.map((r) => r.bus.throughput / r.raw.throughput);
const p99Within = results.filter((r) => r.bus.p99Ms <= 1.2 * r.raw.p99Ms + 0.5).length;
console.log(
  `per round: median ratio ${median(ratios).toFixed(3)} (min ${Math.min(...ratios).toFixed(3)}, max ${Math.max(...ratios).toFixed(3)}); p99 within 1.2x raw + 0.5 ms in ${p99Within}/${results.length} rounds`,
);
console.log(
  `medians: throughput ratio ${(busT / rawT).toFixed(3)} (target >= 0.90); p99 bus ${busP99.toFixed(2)} ms vs raw ${rawP99.toFixed(2)} ms, bound ${(1.2 * rawP99 + 0.5).toFixed(2)} ms`,
);
process.exit(0);
