import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Access } from './access.js';
import { ConsoleApi } from './api.js';
import { type ConsoleOptions, resolveOptions } from './options.js';
import { Overview } from './overview.js';

/** A running console. */
export interface ConsoleServer {
  /** The address to open, token included: `http://127.0.0.1:8080/?token=…`. */
  readonly url: string;
  readonly port: number;
  readonly token: string;
  /** Stops serving and ends open pages' event streams. The bus stays open: it is the caller's. */
  close(): Promise<void>;
}

const ASSETS = new URL('../assets/', import.meta.url);
const TYPES: Readonly<Record<string, string>> = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};
const MAX_BODY = 4 * 1024 * 1024;

/**
 * Serves the dead-letter console: the page (plain HTML, JS and CSS shipped in the package's
 * `assets`, nothing built at run time), its JSON API and a server-sent event stream of the overview.
 *
 * @example
 * ```ts
 * const bus = createBus({ url: 'amqp://guest:guest@localhost:5672' });
 * const server = await startConsole({ bus, targets: [{ channel: 'payments', group: 'billing' }], port: 0 });
 * console.log(`open ${server.url}`);
 * ```
 */
export async function startConsole(options: ConsoleOptions): Promise<ConsoleServer> {
  const resolved = resolveOptions(options);
  const access = new Access(resolved.token);
  const api = new ConsoleApi(resolved);
  const overview = new Overview(api, resolved.refreshMs);
  const assets = new Map<string, string>();
  for (const name of ['index.html', 'app.js', 'app.css']) assets.set(name, readFileSync(new URL(name, ASSETS), 'utf8'));
  const page = (assets.get('index.html') as string)
    .replace('{{CSRF}}', access.csrf)
    .replace('{{ALLOW_EDIT}}', String(resolved.allowEdit));

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      send(res, 500, { error: api.scrub(error instanceof Error ? error.message : String(error)) });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://console.invalid');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cache-Control', 'no-store');
    if (req.method === 'GET' && url.pathname === '/' && access.queryToken(url)) {
      // Keep the token out of the address bar and history from now on.
      res.writeHead(303, { 'Set-Cookie': access.cookie(), Location: '/' });
      res.end();
      return;
    }
    if (!access.allowed(req)) {
      send(res, 401, { error: 'this console needs its token: open the address wharf console printed (…/?token=…)' });
      return;
    }
    if (req.method === 'GET') {
      if (url.pathname === '/') {
        res.setHeader('Content-Security-Policy', "default-src 'self'; frame-ancestors 'none'");
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        res.end(page);
        return;
      }
      const asset = url.pathname.slice(1);
      const type = TYPES[asset];
      if (type !== undefined) {
        res.writeHead(200, { 'Content-Type': type });
        res.end(assets.get(asset));
        return;
      }
      if (url.pathname === '/api/events') {
        overview.attach(res);
        return;
      }
      if (url.pathname === '/api/dead-letters') return reply(res, await api.list(url.searchParams));
      if (url.pathname === '/api/dead-letter') return reply(res, await api.show(url.searchParams.get('key') ?? ''));
      send(res, 404, { error: `no such page: ${url.pathname}` });
      return;
    }
    const refused = access.refuseAction(req);
    if (refused !== undefined) {
      send(res, 403, { error: refused });
      return;
    }
    const body = await readJson(req);
    if (body === undefined) {
      send(res, 400, { error: 'the body must be a JSON object' });
      return;
    }
    let answer: { status: number; body: unknown } | undefined;
    if (url.pathname === '/api/replay') answer = await api.replay(body);
    else if (url.pathname === '/api/purge') answer = await api.purge(body);
    else if (url.pathname === '/api/edit') answer = await api.edit(body);
    if (answer === undefined) send(res, 404, { error: `no such action: ${url.pathname}` });
    else reply(res, answer);
    overview.refreshSoon();
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(resolved.port, resolved.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = resolved.host.includes(':') ? `[${resolved.host}]` : resolved.host;
  return {
    url: `http://${host}:${port}/?token=${resolved.token}`,
    port,
    token: resolved.token,
    close: async () => {
      overview.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function reply(res: ServerResponse, answer: { status: number; body: unknown }): void {
  send(res, answer.status, answer.body);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk as Buffer);
  }
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
