import { expect, it } from 'vitest';
import { shop } from '../example/shop.js';
import { PG_URL, uniqueSchema } from './harness.js';

it("postgres: the README's example runs: one invoice, the redelivery recognised", async () => {
  expect(await shop(PG_URL, uniqueSchema('example'))).toEqual({ invoices: 1, duplicates: 1 });
});
