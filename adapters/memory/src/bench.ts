import { type BenchOptions, type BenchResult, payloadAge, stampPayload, startMeasurement } from '@wharf/core';

/**
 * The memory baseline: a plain in-process queue with a waiting consumer, the least a broker can do,
 * so the ratio shows what the bus itself costs per event.
 */
export async function rawBaseline(options: BenchOptions): Promise<BenchResult> {
  const queue: Uint8Array[] = [];
  let wake: (() => void) | undefined;
  let received = 0;
  const measure = startMeasurement(options.events);
  const consumer = (async () => {
    while (received < options.events) {
      const item = queue.shift();
      if (item === undefined) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        continue;
      }
      measure.record(payloadAge(item));
      received++;
    }
  })();
  for (let sent = 0; sent < options.events; ) {
    const batch = Math.min(options.window, options.events - sent);
    for (let i = 0; i < batch; i++) queue.push(stampPayload(options.size));
    sent += batch;
    wake?.();
    wake = undefined;
    await Promise.resolve();
  }
  await consumer;
  return measure.finish();
}
