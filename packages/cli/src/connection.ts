import { readFileSync } from 'node:fs';
import { CREDENTIAL_ENV } from '@wharf/core';
import { brokerUrl, UsageError } from './args.js';

/**
 * The connection flags every command that reaches a broker takes (`conformance`, `saga`, `bench`,
 * `dlq`), as printed by `wharf brokers up secure`. TLS files become the URL's `ca`, `cert`, `key` and
 * `servername` parameters (which the adapters read); credentials become `WHARF_BROKER_USERNAME` /
 * `WHARF_BROKER_PASSWORD` (so the password is on no command line and in no URL that could be printed).
 */
export const connectionFlags = {
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-servername': { type: 'string' },
  username: { type: 'string' },
  'password-file': { type: 'string' },
} as const;

export const connectionUsage = `Connection: --tls-ca FILE --tls-cert FILE --tls-key FILE [--tls-servername NAME] (TLS, mutual TLS),
--username NAME --password-file FILE (or WHARF_BROKER_USERNAME / WHARF_BROKER_PASSWORD). wharf brokers up
secure prints the flags that reach its brokers.`;

type ConnectionValues = { readonly [K in keyof typeof connectionFlags]?: string | undefined };

/** The broker to use: its URL (TLS files as parameters) and the environment that carries the credentials. */
export interface BrokerConnection {
  readonly url: string;
  readonly env: Readonly<Record<string, string>>;
}

/** Builds the connection from `--broker` and the connection flags. Throws `UsageError`. */
export function brokerConnection(broker: string | undefined, values: ConnectionValues): BrokerConnection {
  let url = brokerUrl(broker);
  const params = new URLSearchParams();
  const files = { 'tls-ca': 'ca', 'tls-cert': 'cert', 'tls-key': 'key', 'tls-servername': 'servername' } as const;
  for (const [flag, param] of Object.entries(files) as [keyof typeof files, string][]) {
    const value = values[flag];
    if (value !== undefined) params.set(param, value);
  }
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together (the client certificate and its key)');
  }
  if ([...params.keys()].length > 0) url += `${url.includes('?') ? '&' : '?'}${params}`;
  const env: Record<string, string> = {};
  if (values.username !== undefined) env[CREDENTIAL_ENV.username] = values.username;
  const file = values['password-file'];
  if (file !== undefined) {
    let password: string;
    try {
      password = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (cause) {
      throw new UsageError(`--password-file ${file} cannot be read: ${(cause as Error).message}`);
    }
    if (password === '') throw new UsageError(`--password-file ${file} is empty`);
    env[CREDENTIAL_ENV.password] = password;
  }
  return { url, env };
}

/** Makes the connection's credentials visible to adapters created in this process. */
export function applyConnection(connection: BrokerConnection): string {
  Object.assign(process.env, connection.env);
  return connection.url;
}
