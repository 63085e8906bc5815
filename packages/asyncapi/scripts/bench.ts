// Measures codegen time for specs/orders.asyncapi.yaml and the cost of contract validation per event.
// Run from the repo root: npx tsx --conditions wharf-source packages/asyncapi/scripts/bench.ts [events]
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBus, silentLogger } from '@wharf/core';
import { contract } from '../../../examples/order-saga/src/generated/index.js';
import { contractValidator, createTypedBus, generate } from '../src/index.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const events = Number(process.argv[2] ?? 20_000);
const payload = {
  orderId: 'ord_2025_000042',
  customerId: 'cus_7731',
  lines: [
    { sku: 'BOOK-0001', quantity: 2, unitPrice: { amount: 1999, currency: 'EUR' } },
    { sku: 'MUG-0042', quantity: 1, unitPrice: { amount: 1999, currency: 'EUR' } },
  ],
  total: { amount: 5997, currency: 'EUR' },
  placedAt: '2025-03-01T10:15:30.000Z',
};

const runs: number[] = [];
for (let i = 0; i < 3; i++) {
  const result = await generate(join(repo, 'specs/orders.asyncapi.yaml'), {
    outDir: join(repo, 'examples/order-saga/src/generated'),
    check: true,
  });
  runs.push(result.timings.totalMs);
  console.log(
    `codegen run ${i + 1}: ${result.timings.totalMs.toFixed(0)} ms (of which @asyncapi/parser ${result.timings.parseMs.toFixed(0)} ms)`,
  );
}

// The validator alone (publish direction, payload + CloudEvents headers).
const validator = contractValidator(contract);
const event = {
  specversion: '1.0',
  id: 'e-1',
  source: 'urn:wharf:bench',
  type: 'OrderPlaced',
  time: new Date().toISOString(),
  data: payload,
} as const;
for (let i = 0; i < 10_000; i++) validator.validate('publish', 'orders.placed', event);
let t = performance.now();
for (let i = 0; i < events * 10; i++) validator.validate('publish', 'orders.placed', event);
const validateUs = ((performance.now() - t) * 1000) / (events * 10);
console.log(`contractValidator.validate: ${validateUs.toFixed(2)} µs/event`);

// Publish + consume on the memory adapter, validation on (both directions) vs off.
async function roundTrip(validate: boolean): Promise<number> {
  const bus = createBus({ url: 'memory://', logger: silentLogger, ...(validate ? { validator } : {}) });
  let seen = 0;
  let done: () => void = () => {};
  const all = new Promise<void>((resolve) => {
    done = resolve;
  });
  await bus.subscribe('orders.placed', { group: 'bench', concurrency: 64, dedup: false }, () => {
    if (++seen === events) done();
  });
  const started = performance.now();
  for (let i = 0; i < events; i += 100) {
    await bus.publishBatch(
      'orders.placed',
      Array.from({ length: 100 }, () => ({ type: 'OrderPlaced', data: payload })),
    );
  }
  await all;
  const us = ((performance.now() - started) * 1000) / events;
  await bus.close();
  return us;
}
await roundTrip(false);
const off = await roundTrip(false);
const on = await roundTrip(true);
console.log(
  `memory round trip, ${events} events: validation off ${off.toFixed(2)} µs/event, on ${on.toFixed(2)} µs/event (+${(on - off).toFixed(2)})`,
);

// The typed bus's send path (validates before publishing).
const typed = createTypedBus(createBus({ url: 'memory://', logger: silentLogger }), contract);
await typed.bus.declare('orders.placed', { groups: ['bench'] });
t = performance.now();
for (let i = 0; i < 2000; i++) await typed.send('placeOrder', payload);
console.log(
  `typed send (validate + publish, sequential): ${(((performance.now() - t) * 1000) / 2000).toFixed(2)} µs/event`,
);
await typed.bus.close();
