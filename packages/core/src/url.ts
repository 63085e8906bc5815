import { InvalidUrlError } from './errors.js';

/** Which package serves which URL scheme. */
export const ADAPTER_PACKAGES: Readonly<Record<string, string>> = Object.freeze({
  memory: '@wharf/memory',
  amqp: '@wharf/rabbitmq',
  amqps: '@wharf/rabbitmq',
  kafka: '@wharf/kafka',
  kafkas: '@wharf/kafka',
  nats: '@wharf/nats',
  tls: '@wharf/nats',
});

/** A broker URL taken apart. Several hosts are allowed (`kafka://a:9092,b:9092`). */
export interface BrokerUrl {
  readonly scheme: string;
  readonly username?: string;
  readonly password?: string;
  readonly hosts: readonly { host: string; port?: number }[];
  /** Path without the leading slash, decoded (a RabbitMQ vhost, a memory broker name). */
  readonly path: string;
  readonly params: URLSearchParams;
}

const SHAPE = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/;

/**
 * Parses `scheme://[user[:password]@]host[:port][,host[:port]…][/path][?query]`.
 * Throws `InvalidUrlError` naming what is wrong; the password never appears in the message.
 */
export function parseBrokerUrl(url: string): BrokerUrl {
  if (typeof url !== 'string' || url.trim() === '') {
    throw new InvalidUrlError('no broker URL given — pass { url } to createBus or set WHARF_BROKER (e.g. memory://)');
  }
  const match = SHAPE.exec(url.trim());
  if (!match) {
    throw new InvalidUrlError(
      `"${redactUrl(url)}" is not a broker URL; expected scheme://host[:port], e.g. amqp://localhost:5672`,
    );
  }
  const [, rawScheme = '', userinfo, hostList = '', path = '', query = ''] = match;
  const scheme = rawScheme.toLowerCase();
  if (!(scheme in ADAPTER_PACKAGES)) {
    throw new InvalidUrlError(
      `unknown broker scheme "${scheme}:" — use one of ${Object.keys(ADAPTER_PACKAGES)
        .map((s) => `${s}://`)
        .join(', ')}`,
    );
  }
  const hosts = hostList === '' ? [] : hostList.split(',').map((entry) => parseHost(entry, url));
  if (hosts.length === 0 && scheme !== 'memory') {
    throw new InvalidUrlError(`"${redactUrl(url)}" names no host`);
  }
  let username: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    username = safeDecode(colon < 0 ? userinfo : userinfo.slice(0, colon), url);
    password = colon < 0 ? undefined : safeDecode(userinfo.slice(colon + 1), url);
  }
  return {
    scheme,
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    hosts,
    path: safeDecode(path.replace(/^\//, ''), url),
    params: new URLSearchParams(query),
  };
}

function parseHost(entry: string, url: string): { host: string; port?: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+)(?::(\d{1,5}))?$/.exec(entry.trim());
  if (!m?.[1]) throw new InvalidUrlError(`"${redactUrl(url)}" has an invalid host "${entry}"`);
  if (m[2] === undefined) return { host: m[1] };
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new InvalidUrlError(`"${redactUrl(url)}" has an invalid port ${m[2]}`);
  return { host: m[1], port };
}

function safeDecode(text: string, url: string): string {
  try {
    return decodeURIComponent(text);
  } catch (cause) {
    throw new InvalidUrlError(`"${redactUrl(url)}" has invalid percent-encoding`, { cause });
  }
}

/** The URL with any password replaced by `***`, safe for logs and error messages. */
export function redactUrl(url: string): string {
  return String(url).replace(/^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^:@/?#]*):[^@/?#]*@/, '$1:***@');
}
