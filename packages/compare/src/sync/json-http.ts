import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const MAX_BODY = 1024 * 1024;

/** A JSON answer: status, body and extra headers. */
export interface Reply {
  status: number;
  body: unknown;
}

/** A route: resolves the reply, or undefined when the path is not its own. */
export type Route = (method: string, path: string, body: unknown, req: IncomingMessage) => Promise<Reply | undefined>;

/** A small JSON-over-HTTP server: the synchronous services need nothing more than node:http. */
export function jsonServer(route: Route): Server {
  const server = createServer((req, res) => {
    handle(route, req, res).catch((error: unknown) => {
      send(res, {
        status: 500,
        body: { error: 'internal', message: error instanceof Error ? error.message : String(error) },
      });
    });
  });
  // Keep-alive sockets from the callers' pools outlive a request; without this the server closes
  // them after 5 s and a pooled request races the close (ECONNRESET under load).
  server.keepAliveTimeout = 65_000;
  return server;
}

async function handle(route: Route, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) return send(res, { status: 413, body: { error: 'body-too-large' } });
    chunks.push(chunk as Buffer);
  }
  let body: unknown;
  if (size > 0) {
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return send(res, { status: 400, body: { error: 'invalid-json' } });
    }
  }
  if (path === '/health') return send(res, { status: 200, body: { ok: true } });
  const reply = await route(req.method ?? 'GET', path, body, req);
  send(res, reply ?? { status: 404, body: { error: 'not-found', message: `no route ${req.method} ${path}` } });
}

function send(res: ServerResponse, reply: Reply): void {
  res.writeHead(reply.status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(reply.body));
}

/** Listens on 127.0.0.1 (port 0 = any free port); resolves with the base URL. */
export async function listen(server: Server, port = 0): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  return `http://127.0.0.1:${address.port}`;
}
