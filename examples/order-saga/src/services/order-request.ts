import { randomBytes } from 'node:crypto';
import type { ContractIssue } from '@wharf/core';
import type { Money, OrderLine, OrderPlacedPayload } from '../contract.js';
import { validateOrderPlaced } from '../validation.js';

/** Turns a request body into an `OrderPlaced` payload, or the contract's reasons why it cannot be one. */
export function buildOrder(
  body: unknown,
): { ok: true; payload: OrderPlacedPayload } | { ok: false; status: 400; error: string; issues: ContractIssue[] } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { ok: false, status: 400, error: 'invalid-order', issues: [{ path: '', message: 'must be a JSON object' }] };
  }
  const { orderId, ...rest } = body as Record<string, unknown>;
  const payload = {
    ...rest,
    orderId: orderId ?? `ord_${randomBytes(6).toString('hex')}`,
    total: totalOf(rest.lines),
    placedAt: new Date().toISOString(),
  } as OrderPlacedPayload;
  const issues = validateOrderPlaced(payload);
  if (issues.length === 0 && new Set(payload.lines.map((l) => l.unitPrice.currency)).size > 1) {
    issues.push({ path: '/lines', message: 'all lines must use one currency' });
  }
  if (issues.length > 0) return { ok: false, status: 400, error: 'invalid-order', issues };
  return { ok: true, payload };
}

function totalOf(lines: unknown): Money {
  let amount = 0;
  let currency = 'EUR';
  if (Array.isArray(lines)) {
    for (const line of lines as Partial<OrderLine>[]) {
      const quantity = Number(line?.quantity);
      const price = Number(line?.unitPrice?.amount);
      if (Number.isFinite(quantity) && Number.isFinite(price)) amount += quantity * price;
      if (typeof line?.unitPrice?.currency === 'string') currency = line.unitPrice.currency;
    }
  }
  return { amount: Number.isSafeInteger(amount) && amount >= 0 ? amount : 0, currency };
}

export function sameLines(a: readonly OrderLine[], b: readonly OrderLine[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
