import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * Who may use the console. Every request carries the token: in the `wharf_console` cookie the page
 * gets on its first visit (`/?token=T`, HttpOnly, SameSite=Strict), or as `Authorization: Bearer T`
 * for scripts. Actions are POSTs that must also carry the CSRF token the page was served with, and
 * come from the page's own origin: a foreign page can neither read the CSRF token nor send the
 * SameSite cookie, and the Origin check stops a DNS-rebinding page on another name.
 */
export class Access {
  static readonly COOKIE = 'wharf_console';
  static readonly CSRF_HEADER = 'x-wharf-csrf';
  readonly csrf: string;
  readonly #token: Buffer;

  constructor(token: string) {
    this.#token = Buffer.from(token);
    this.csrf = createHmac('sha256', token).update('wharf-console-csrf').digest('hex');
  }

  /** The token as the first visit carries it in the query string, if right. */
  queryToken(url: URL): boolean {
    const given = url.searchParams.get('token');
    return given !== null && this.#same(given);
  }

  /** The request carries the token (cookie or bearer). */
  allowed(req: IncomingMessage): boolean {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ') && this.#same(auth.slice(7))) return true;
    const cookie = cookieValue(req.headers.cookie, Access.COOKIE);
    return cookie !== undefined && this.#same(cookie);
  }

  /** Why an action request is refused, or undefined when it may run. */
  refuseAction(req: IncomingMessage): string | undefined {
    if (req.method !== 'POST') return 'actions are POST requests';
    const csrf = req.headers[Access.CSRF_HEADER];
    if (typeof csrf !== 'string' || !safeEqual(csrf, this.csrf)) return 'missing or wrong CSRF token';
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host ?? ''}`) return 'cross-origin request refused';
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) return 'actions take application/json';
    return undefined;
  }

  cookie(): string {
    return `${Access.COOKIE}=${this.#token.toString()}; HttpOnly; SameSite=Strict; Path=/`;
  }

  #same(given: string): boolean {
    const buffer = Buffer.from(given);
    return buffer.length === this.#token.length && timingSafeEqual(buffer, this.#token);
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return rest.join('=');
  }
  return undefined;
}
