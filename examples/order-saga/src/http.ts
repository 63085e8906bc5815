import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { PlannedOrder } from './scenario.js';
import type { OrderService, PlaceResult } from './services/order.js';

/** Request header with which the saga asks the order service to publish an order's events twice. */
export const FAULT_HEADER = 'x-wharf-fault';
const MAX_BODY = 1024 * 1024;

export interface OrderApiOptions {
  /** Honour the `x-wharf-fault: publish-twice` header (the saga's fault injection). Default false. */
  faultInjection?: boolean;
  /**
   * A `POST /orders` SERVER span (OpenTelemetry, global tracer provider), continuing a
   * `traceparent` the client sent: the root of the order's trace. Default false.
   */
  tracing?: boolean;
}

/**
 * The order service's HTTP API:
 * - `POST /orders` → 202 `{ orderId }`; 400 `{ error, issues }` with the contract's validation
 *   errors (nothing published); 409 when the client's `orderId` exists with other contents;
 * - `GET /orders/:id` → 200 with state and history; 404 for an unknown order;
 * - `GET /health` → 200.
 */
export function createOrderApi(orders: OrderService, options: OrderApiOptions = {}): Server {
  return createServer((req, res) => {
    handle(orders, options, req, res).catch((error: unknown) => {
      send(res, 503, { error: 'unavailable', message: error instanceof Error ? error.message : String(error) });
    });
  });
}

async function handle(
  orders: OrderService,
  options: OrderApiOptions,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (path === '/health' && req.method === 'GET') return send(res, 200, { ok: true });
  if (path === '/orders') {
    if (req.method !== 'POST') return send(res, 405, { error: 'method-not-allowed' }, { allow: 'POST' });
    const text = await readBody(req);
    if (text === undefined) return send(res, 413, { error: 'body-too-large', limit: MAX_BODY });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return send(res, 400, { error: 'invalid-json', issues: [{ path: '', message: 'the body is not valid JSON' }] });
    }
    const publishTwice = options.faultInjection === true && req.headers[FAULT_HEADER] === 'publish-twice';
    const place = () => orders.place(body, { publishTwice });
    const result = options.tracing ? await traced(req, place) : await place();
    if (!result.ok) return send(res, result.status, { error: result.error, issues: result.issues });
    return send(res, 202, { orderId: result.orderId }, { location: `/orders/${result.orderId}` });
  }
  const match = /^\/orders\/([^/]+)$/.exec(path);
  if (match && req.method === 'GET') {
    const order = await orders.get(decodeURIComponent(match[1]!));
    if (!order) return send(res, 404, { error: 'not-found', message: `no order ${match[1]}` });
    const { published: _published, ...view } = order;
    return send(res, 200, view);
  }
  return send(res, 404, { error: 'not-found', message: `no route ${req.method} ${path}` });
}

const tracer = trace.getTracer('@wharf/example-order-saga');

/**
 * Runs the placement inside a `POST /orders` SERVER span, so the `send orders.placed` span and
 * everything after it belong to the request's trace (what HTTP server instrumentation would do;
 * done by hand here because it needs no module hooks).
 */
async function traced<R extends { ok: boolean }>(req: IncomingMessage, place: () => Promise<R>): Promise<R> {
  const parent = propagation.extract(context.active(), req.headers);
  return tracer.startActiveSpan(
    'POST /orders',
    { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'POST', 'http.route': '/orders' } },
    parent,
    async (span) => {
      try {
        const result = await place();
        if (!result.ok) span.setStatus({ code: SpanStatusCode.ERROR });
        return result;
      } catch (error) {
        span.recordException(error instanceof Error ? error : String(error));
        span.setStatus({ code: SpanStatusCode.ERROR });
        throw error;
      } finally {
        span.end();
      }
    },
  );
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Places one planned order. */
export type Placer = (order: PlannedOrder) => Promise<PlaceResult>;

/** Places orders through a remote order service's HTTP API (its URL given, or written to the state directory). */
export async function httpPlacer(orderUrl: string | undefined, stateDir: string | undefined): Promise<Placer> {
  const base = orderUrl ?? (stateDir ? await waitForFile(join(stateDir, 'order-url'), 15_000) : undefined);
  if (!base) throw new Error('[wharf] [saga] no order service: run it here, pass orderUrl, or start it with stateDir');
  return async (order) => {
    const response = await postOrder(new URL('/orders', base), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(order.publishTwice ? { [FAULT_HEADER]: 'publish-twice' } : {}),
      },
      body: JSON.stringify(order.request),
    });
    const body = (await response.json()) as { orderId?: string; error?: string; issues?: [] };
    if (response.status === 202) return { ok: true, orderId: body.orderId ?? order.orderId, created: true };
    return {
      ok: false,
      status: response.status as 400,
      error: body.error ?? `HTTP ${response.status}`,
      issues: body.issues ?? [],
    };
  };
}

/** How long a placement keeps retrying a connection the order service reset or refused. */
const PLACE_RETRY_MS = 30_000;

/**
 * POSTs an order, again after a network failure: a keep-alive connection the server closed just
 * as it was reused ends in ECONNRESET (seen at a load average of 30). The order carries its own
 * id, so a repeat of an order that did arrive is answered 202 and published once.
 */
async function postOrder(url: URL, init: RequestInit): Promise<Response> {
  const deadline = Date.now() + PLACE_RETRY_MS;
  for (let wait = 50; ; wait = Math.min(wait * 2, 1_000)) {
    try {
      return await fetch(url, init);
    } catch (error) {
      if (Date.now() + wait > deadline) {
        throw new Error(
          `[wharf] [saga] could not place an order at ${url.href} for ${PLACE_RETRY_MS / 1_000} s — is the order service running?`,
          { cause: error },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

async function waitForFile(file: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(`[wharf] [saga] the order service did not announce its URL in ${file} — is it running?`, {
          cause: error,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
