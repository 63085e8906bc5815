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
for (let round = 0; round < rounds; round++) {
  const base = { url, events, size, window };
  const raw = await rawBaseline({ ...base, channel: `bench-${randomBytes(4).toString('hex')}` });
  const bus = await busRun({ ...base, channel: `bench-${randomBytes(4).toString('hex')}` });
  results.push({ raw, bus });
  console.log(`round ${round + 1}: raw ${fmt(raw)}`);
  console.log(`round ${round + 1}: bus ${fmt(bus)}  ratio ${(bus.throughput / raw.throughput).toFixed(3)}`);
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const rawT = median(results.map((r) => r.raw.throughput));
const busT = median(results.map((r) => r.bus.throughput));
const rawP99 = median(results.map((r) => r.raw.p99Ms));
const busP99 = median(results.map((r) => r.bus.p99Ms));
console.log(
  `median: throughput ratio ${(busT / rawT).toFixed(3)} (target >= 0.90); p99 bus ${busP99.toFixed(2)} ms vs raw ${rawP99.toFixed(2)} ms, bound ${(1.2 * rawP99 + 0.5).toFixed(2)} ms`,
);
process.exit(0);
