import { join } from 'node:path';
import {
  type Bus,
  type CloudEvent,
  ContractViolationError,
  createBus,
  type HandlerContext,
  NonRetryableError,
  RequestTimeoutError,
  type SubscribeOptions,
  type Subscription,
  silentLogger,
} from '@wharf/core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTypedBus, generate, type RuntimeContract } from '../src/index.js';
import { generatedDir, here, repo, typecheck } from './helpers.js';

const spec = join(here, 'fixtures/fidelity/reply.asyncapi.yaml');
const out = join(generatedDir, 'reply');
let contract: RuntimeContract;

beforeAll(async () => {
  await generate(spec, { outDir: out, runtimeImport: '../../../src/index.js' });
  ({ contract } = (await import(join(out, 'contract.ts'))) as { contract: RuntimeContract });
}, 60_000);

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

let n = 0;
/**
 * The typed bus with the operation ids as plain strings: the contract is generated when the test
 * runs, so its types are checked by reply-usage.ts (compiled above) rather than here.
 */
interface Untyped {
  readonly bus: Bus;
  request(operation: string, payload: unknown, options?: Record<string, unknown>): Promise<CloudEvent>;
  on(
    operation: string,
    options: SubscribeOptions,
    handler: (event: CloudEvent, context: HandlerContext) => unknown,
  ): Promise<Subscription>;
}

/** A requester and a responder on one in-process broker, as two services. */
function services() {
  const url = `memory://reply-${++n}`;
  const make = () => {
    const bus = createBus({ url, logger: silentLogger });
    closers.push(() => bus.close());
    return createTypedBus(bus, contract) as unknown as Untyped;
  };
  return { shop: make(), pricing: make() };
}

describe('request/reply from AsyncAPI 3.0 reply', () => {
  it('reads reply: its messages, its runtime address, a fixed reply channel', () => {
    expect(contract.operations.requestQuote?.reply).toEqual({
      channel: 'quoteReplies',
      messages: ['QuoteGiven', 'QuoteRefused'],
      addressLocation: '$message.header#/replyTo',
    });
    expect(contract.operations.countStock?.reply).toEqual({
      channel: 'stockAnswers',
      address: 'pricing.stock.answers',
      messages: ['StockCounted'],
    });
    expect(contract.operations.askStock?.action).toBe('send');
  });

  it('generates types that type request, reply and responder (every @ts-expect-error is needed)', () => {
    const usage = join(repo, 'packages/asyncapi/test/fixtures/reply-usage.ts');
    expect(typecheck([join(out, 'index.ts'), usage])).toEqual([]);
  }, 60_000);

  it('a request resolves to the typed reply its responder returned, checked against the contract', async () => {
    const { shop, pricing } = services();
    await pricing.on('answerQuote', { group: 'pricing' }, (event) => {
      const { sku, quantity } = event.data as { sku: string; quantity: number };
      return sku === 'BOOK-1' ? { sku, cents: quantity * 1999 } : { sku, reason: 'unknown-sku' };
    });
    const given = await shop.request('requestQuote', { sku: 'BOOK-1', quantity: 2 }, { timeoutMs: 2_000 });
    expect(given.type).toBe('QuoteGiven');
    expect(given.data).toEqual({ sku: 'BOOK-1', cents: 3998 });
    const refused = await shop.request('requestQuote', { sku: 'PEN-9', quantity: 1 }, { timeoutMs: 2_000 });
    expect(refused.type).toBe('QuoteRefused');
    expect(refused.data).toEqual({ sku: 'PEN-9', reason: 'unknown-sku' });
  });

  it('sends the reply to the fixed reply channel, else to <channel>.reply', async () => {
    const { shop, pricing } = services();
    const replyTo: unknown[] = [];
    await pricing.on('countStock', { group: 'stock' }, (event, ctx) => {
      replyTo.push(ctx.channel);
      return { sku: (event.data as { sku: string }).sku, count: 3 };
    });
    const raw = pricing.bus;
    await raw.subscribe('pricing.stock', { group: 'spy' }, (event) => {
      replyTo.push(event.replyto);
    });
    const counted = await shop.request('askStock', { sku: 'BOOK-1' }, { timeoutMs: 2_000 });
    expect(counted.data).toEqual({ sku: 'BOOK-1', count: 3 });
    expect(replyTo).toContain('pricing.stock.answers');
    await raw.subscribe('pricing.quote', { group: 'spy' }, (event) => {
      replyTo.push(event.replyto);
    });
    await pricing.on('answerQuote', { group: 'pricing' }, () => ({ sku: 'BOOK-1', cents: 1 }));
    await shop.request('requestQuote', { sku: 'BOOK-1', quantity: 1 }, { timeoutMs: 2_000 });
    expect(replyTo).toContain('pricing.quote.reply');
  });

  it('an invalid request throws before anything is sent', async () => {
    const { shop } = services();
    const error = await shop.request('requestQuote', { sku: 'book', quantity: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ContractViolationError);
    expect((error as ContractViolationError).issues.map((i) => i.path).sort()).toEqual(['/quantity', '/sku']);
    expect(shop.bus.stats().published).toBe(0);
  });

  it('a responder whose reply breaks the contract dead-letters the request as invalid; the requester times out', async () => {
    const { shop, pricing } = services();
    await pricing.on('answerQuote', { group: 'pricing' }, () => ({ sku: 'BOOK-1', cents: -5 }));
    await expect(
      shop.request('requestQuote', { sku: 'BOOK-1', quantity: 1 }, { timeoutMs: 300 }),
    ).rejects.toBeInstanceOf(RequestTimeoutError);
    const [dead] = await pricing.bus.listDeadLetters('pricing.quote', 'pricing');
    expect(dead?.info?.reason).toBe('invalid');
    expect(dead?.info?.errorMessage).toMatch(
      /the payload of the reply of operation "answerQuote" \(it matches none of QuoteGiven, QuoteRefused\)/,
    );
    expect(dead?.info?.errorMessage).toMatch(/\/cents QuoteGiven: must be >= 0/);
  });

  it('a reply that breaks the contract rejects the request with ContractViolationError', async () => {
    const { shop, pricing } = services();
    // A responder outside the typed bus, answering with a type the reply does not allow.
    await pricing.bus.respond('pricing.quote', { group: 'rogue' }, () => ({ type: 'Gossip', data: {} }));
    const error = await shop
      .request('requestQuote', { sku: 'BOOK-1', quantity: 1 }, { timeoutMs: 2_000 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ContractViolationError);
    expect((error as Error).message).toMatch(/in reply to operation "requestQuote"/);
    expect((error as ContractViolationError).issues[0]?.message).toMatch(/type "Gossip" is not a message/);
  });

  it('refuses request on an operation without reply, and a throwing responder is retried then dead-lettered', async () => {
    const { shop, pricing } = services();
    await expect(shop.request('answerQuote', {})).rejects.toThrow(/answerQuote" is a receive operation/);
    let calls = 0;
    await pricing.on('answerQuote', { group: 'pricing', retry: { maxAttempts: 2, delays: [10] } }, () => {
      calls++;
      throw calls === 1 ? new Error('flaky') : new NonRetryableError('no price list');
    });
    await expect(
      shop.request('requestQuote', { sku: 'BOOK-1', quantity: 1 }, { timeoutMs: 300 }),
    ).rejects.toBeInstanceOf(RequestTimeoutError);
    expect(calls).toBe(2);
  });
});
