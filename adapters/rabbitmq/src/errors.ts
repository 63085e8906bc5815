import {
  AuthenticationError,
  BrokerUnreachableError,
  classifyTlsError,
  NotAuthorizedError,
  PublishError,
  type TlsOptions,
  TopologyError,
  type WharfError,
} from '@wharf/core';

/** The component name in every message: `[wharf] [rabbitmq] …`. */
export const COMPONENT = 'rabbitmq';

const START_HINT = 'is RabbitMQ running? start it with `rabbitmq-server -detached` or `pnpm wharf brokers up rabbitmq`';

/** The AMQP reply code of a channel or connection error, when amqplib gives one. */
export function replyCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Removes a secret from a native message before it reaches a log or an error. */
export function scrub(text: string, secret: string | undefined): string {
  return secret && secret.length >= 3 ? text.split(secret).join('***') : text;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EPIPE',
  'ENOTFOUND',
]);

/** How a failed connection attempt should be treated. */
export type ConnectFailure =
  | { readonly retry: true; readonly reason: string }
  | { readonly retry: false; readonly error: WharfError };

/**
 * Classifies a failed connection attempt: network trouble is retried (then `BrokerUnreachableError`),
 * refused credentials and a missing vhost fail at once — retrying them only delays the real answer.
 */
export function classifyConnectError(
  error: unknown,
  target: {
    host: string;
    port: number;
    vhost: string;
    username: string;
    password: string;
    tls?: TlsOptions | undefined;
  },
): ConnectFailure {
  const where = `${target.host}:${target.port}`;
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = scrub(String((error as Error | undefined)?.message ?? error), target.password);
  const tlsError = classifyTlsError(COMPONENT, error, {
    broker: `RabbitMQ at ${where}`,
    host: target.tls?.servername ?? target.host,
    tls: target.tls,
  });
  if (tlsError) return { retry: false, error: tlsError };
  if (/ACCESS[-_]REFUSED|\b403\b/.test(message)) {
    return {
      retry: false,
      error: new AuthenticationError(
        COMPONENT,
        `RabbitMQ at ${where} refused the credentials of user "${target.username}" — check the user name and password in the URL or the username/password options (RabbitMQ's guest user may only connect from localhost)`,
        { cause: error },
      ),
    };
  }
  if (/ConnectionOpenOk|NOT_ALLOWED|\b530\b/.test(message)) {
    return {
      retry: false,
      error: new NotAuthorizedError(
        COMPONENT,
        `vhost "${target.vhost}"`,
        `RabbitMQ at ${where} refused to open vhost "${target.vhost}" for user "${target.username}": the user has no permissions on it, or it does not exist — grant them with \`rabbitmqctl set_permissions -p ${target.vhost} ${target.username} ".*" ".*" ".*"\` (or create it with \`rabbitmqctl add_vhost ${target.vhost}\`), or fix the URL's path`,
        { cause: error },
      ),
    };
  }
  if (typeof code === 'string' && (code.startsWith('ERR_TLS') || code.includes('CERT') || code === 'ENOENT')) {
    return {
      retry: false,
      error: new BrokerUnreachableError(
        COMPONENT,
        `TLS to RabbitMQ at ${where} failed (${code}: ${message}) — check tls.caFile/certFile/keyFile and the host name`,
        { cause: error },
      ),
    };
  }
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return { retry: true, reason: `${code}` };
  return { retry: true, reason: message };
}

export function unreachable(
  hosts: readonly { host: string; port: number }[],
  attempts: number,
  reason: string,
  cause: unknown,
): BrokerUnreachableError {
  const list = hosts.map((h) => `${h.host}:${h.port}`).join(', ');
  return new BrokerUnreachableError(
    COMPONENT,
    `cannot reach RabbitMQ at ${list} after ${attempts} attempt${attempts === 1 ? '' : 's'} (${reason}) — ${START_HINT}`,
    { cause },
  );
}

/** What an ACCESS_REFUSED (403) names: `exchange 'x' in vhost 'v'`, or undefined when it is not one. */
export function accessRefused(error: unknown): string | undefined {
  const detail = String((error as Error | undefined)?.message ?? error);
  if (replyCode(error) !== 403 && !/ACCESS_REFUSED/.test(detail)) return undefined;
  return /access to (\w+ '[^']*' in vhost '[^']*')/.exec(detail)?.[1] ?? 'a resource';
}

/** The broker refused an operation on a resource the user has no permission for (403). */
export function notAuthorized(what: string, error: unknown): NotAuthorizedError | undefined {
  const resource = accessRefused(error);
  if (resource === undefined) return undefined;
  const detail = String((error as Error | undefined)?.message ?? error);
  return new NotAuthorizedError(
    COMPONENT,
    resource,
    `RabbitMQ refused to ${what}: ${detail} — grant the user configure/write/read permissions that match the names Wharf uses (\`rabbitmqctl set_permissions -p <vhost> <user> <configure> <write> <read>\`; exchanges and queues start with the adapter's prefix), or use a prefix the permissions allow`,
    { cause: error },
  );
}

/** A declaration the broker refused: usually a queue that exists with other arguments. */
export function topologyError(what: string, error: unknown): TopologyError | NotAuthorizedError {
  const refused = notAuthorized(`declare ${what}`, error);
  if (refused) return refused;
  const code = replyCode(error);
  const detail = String((error as Error | undefined)?.message ?? error);
  const hint =
    code === 406
      ? ' — it exists with different arguments (another prefix/deliveryLimit, or not a quorum queue): delete it (`rabbitmqctl delete_queue <name>`) or use the options it was created with'
      : code === 403
        ? ' — the user lacks configure permission on this vhost'
        : '';
  return new TopologyError(COMPONENT, `cannot declare ${what}: ${detail}${hint}`, { cause: error });
}

/** A publish that the broker nacked or that could not be sent. */
export function publishFailed(what: string, cause?: unknown): PublishError {
  return new PublishError(COMPONENT, what, cause === undefined ? undefined : { cause });
}
