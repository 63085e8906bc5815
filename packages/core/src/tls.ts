import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import {
  CertificateExpiredError,
  CertificateHostnameError,
  ClientCertificateError,
  ConfigError,
  type TlsError,
  UntrustedCertificateError,
} from './errors.js';

/**
 * TLS settings every adapter takes, as files (read when the adapter connects, so a renewed
 * certificate is picked up by the next connection). Server verification is on unless
 * `rejectUnauthorized: false`, which only options (never the URL) can say.
 */
export interface TlsOptions {
  /** PEM file with the CA certificate(s) that signed the broker's certificate. Default: the system's CAs. */
  caFile?: string;
  /** PEM client certificate, for mutual TLS. Needs `keyFile`. */
  certFile?: string;
  /** PEM private key of the client certificate. Needs `certFile`. */
  keyFile?: string;
  /** Passphrase of the private key. Never logged. */
  passphrase?: string;
  /** The name to check the broker's certificate against (and send as SNI), when it differs from the URL's host. */
  servername?: string;
  /** Verify the broker's certificate. Default `true`; turn off only for local experiments. */
  rejectUnauthorized?: boolean;
}

/** URL query parameters that name TLS files: `amqps://host/vhost?ca=/etc/ca.pem&cert=…&key=…`. */
const URL_PARAMS = { ca: 'caFile', cert: 'certFile', key: 'keyFile', servername: 'servername' } as const;

/** Environment variables that carry credentials when neither the options nor the URL do. */
export const CREDENTIAL_ENV = { username: 'WHARF_BROKER_USERNAME', password: 'WHARF_BROKER_PASSWORD' } as const;

/**
 * Merges TLS options with the URL's `ca`, `cert`, `key` and `servername` parameters (options win)
 * and validates them. Returns undefined when neither gives any. Throws `ConfigError`. No I/O.
 */
export function resolveTlsOptions(
  component: string,
  params: URLSearchParams,
  options: TlsOptions | undefined,
): TlsOptions | undefined {
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new ConfigError(component, 'option tls must be an object like { caFile, certFile, keyFile }');
  }
  const merged: TlsOptions = {};
  for (const [param, key] of Object.entries(URL_PARAMS)) {
    const value = params.get(param);
    if (value !== null) merged[key] = value;
  }
  Object.assign(merged, options);
  for (const key of ['caFile', 'certFile', 'keyFile', 'servername', 'passphrase'] as const) {
    const value = merged[key];
    if (value !== undefined && (typeof value !== 'string' || value === '')) {
      throw new ConfigError(component, `option tls.${key} must be a non-empty string`);
    }
  }
  if (merged.rejectUnauthorized !== undefined && typeof merged.rejectUnauthorized !== 'boolean') {
    throw new ConfigError(component, 'option tls.rejectUnauthorized must be a boolean');
  }
  if ((merged.certFile === undefined) !== (merged.keyFile === undefined)) {
    throw new ConfigError(
      component,
      'a client certificate needs both tls.certFile and tls.keyFile (URL: ?cert=…&key=…) — give the pair or neither',
    );
  }
  return Object.keys(merged).length === 0 ? undefined : merged;
}

/** What `node:tls` `connect` takes, read from the files of `TlsOptions`. */
export interface TlsMaterial {
  ca?: Buffer[];
  cert?: Buffer;
  key?: Buffer;
  passphrase?: string;
  servername?: string;
  rejectUnauthorized: boolean;
}

/**
 * Reads the files of `tls` for a connection to `host`. The SNI name is `servername`, else the host
 * when it is a name: Node refuses an IP address as SNI, and without one it checks the certificate
 * against the IP itself. Throws `ConfigError` naming a file that cannot be read.
 */
export function readTlsMaterial(component: string, tls: TlsOptions, host: string): TlsMaterial {
  const read = (file: string | undefined, key: string): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (cause) {
      throw new ConfigError(component, `cannot read tls.${key} "${file}": ${(cause as Error).message}`, { cause });
    }
  };
  const out: TlsMaterial = { rejectUnauthorized: tls.rejectUnauthorized ?? true };
  const ca = read(tls.caFile, 'caFile');
  const cert = read(tls.certFile, 'certFile');
  const key = read(tls.keyFile, 'keyFile');
  if (ca) out.ca = [ca];
  if (cert) out.cert = cert;
  if (key) out.key = key;
  if (tls.passphrase !== undefined) out.passphrase = tls.passphrase;
  const name = tls.servername ?? (isIP(host.replace(/^\[(.*)\]$/, '$1')) === 0 ? host : undefined);
  if (name !== undefined) out.servername = name;
  return out;
}

/** User name and password from `WHARF_BROKER_USERNAME` / `WHARF_BROKER_PASSWORD`, when set. */
export function credentialsFromEnv(env: NodeJS.ProcessEnv = process.env): { username?: string; password?: string } {
  const username = env[CREDENTIAL_ENV.username];
  const password = env[CREDENTIAL_ENV.password];
  return {
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
  };
}

const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);
const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);
/** Alerts a server sends when it refuses the client's certificate (TLS 1.3 / 1.2). */
const CLIENT_REJECTED = [
  'ALERT_UNKNOWN_CA',
  'ALERT_BAD_CERTIFICATE',
  'ALERT_CERTIFICATE_UNKNOWN',
  'ALERT_UNSUPPORTED_CERTIFICATE',
  'ALERT_CERTIFICATE_EXPIRED',
  'ALERT_CERTIFICATE_REVOKED',
];

/** The string `code`s along an error's `cause` chain (clients wrap the socket's error). */
function codes(error: unknown): string[] {
  const out: string[] = [];
  let current: unknown = error;
  for (let i = 0; i < 6 && current !== undefined && current !== null; i++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') out.push(code);
    current = (current as { cause?: unknown }).cause;
  }
  return out;
}

/** Where the connection went and with what, for messages: no secrets in here. */
export interface TlsTarget {
  /** `RabbitMQ at 127.0.0.1:5671`. */
  readonly broker: string;
  /** The name the certificate was checked against. */
  readonly host: string;
  readonly tls: TlsOptions | undefined;
}

/**
 * Maps a failed TLS connection to the typed error that says what to do, from the Node/OpenSSL
 * codes on the error or its causes; undefined when it is not a certificate problem.
 */
export function classifyTlsError(component: string, error: unknown, target: TlsTarget): TlsError | undefined {
  const found = codes(error);
  const options = { cause: error };
  const { broker, host, tls } = target;
  const trusted = tls?.caFile ? `the CA in tls.caFile "${tls.caFile}"` : "the system's CAs (no tls.caFile given)";
  if (found.some((c) => UNTRUSTED.has(c))) {
    return new UntrustedCertificateError(
      component,
      `${broker} presented a certificate that ${trusted} did not sign — give the CA that signed the broker's certificate with tls.caFile (URL: ?ca=/path/ca.pem)`,
      options,
    );
  }
  if (found.includes('ERR_TLS_CERT_ALTNAME_INVALID')) {
    return new CertificateHostnameError(
      component,
      `${broker} presented a certificate that is not for "${host}" — connect with a host name the certificate lists, set tls.servername (URL: ?servername=) to one it lists, or reissue the broker's certificate with "${host}" in its subjectAltName`,
      options,
    );
  }
  if (found.some((c) => EXPIRED.has(c))) {
    return new CertificateExpiredError(
      component,
      `${broker} presented a certificate that has expired or is not valid yet — renew the broker's certificate (and check this machine's clock)`,
      options,
    );
  }
  // Servers say "certificate required" (TLS 1.3), or "bad certificate" / "handshake failure" alike for a
  // missing certificate and a refused one (nats-server 2.9 says "bad certificate"): with none given, it is missing.
  const gaveCertificate = tls?.certFile !== undefined || (tls as { cert?: unknown } | undefined)?.cert !== undefined;
  const refusedByServer = found.some(
    (c) => c.endsWith('ALERT_HANDSHAKE_FAILURE') || CLIENT_REJECTED.some((alert) => c.endsWith(alert)),
  );
  if (found.some((c) => c.endsWith('ALERT_CERTIFICATE_REQUIRED')) || (refusedByServer && !gaveCertificate)) {
    return new ClientCertificateError(
      component,
      'missing',
      `${broker} requires a client certificate (mutual TLS) and none was given — pass tls.certFile and tls.keyFile (URL: ?cert=…&key=…)`,
      options,
    );
  }
  if (found.some((c) => CLIENT_REJECTED.some((alert) => c.endsWith(alert)))) {
    return new ClientCertificateError(
      component,
      'rejected',
      `${broker} refused the client certificate "${tls?.certFile ?? '(none)'}" — use one signed by a CA the broker trusts, not expired, with extendedKeyUsage clientAuth`,
      options,
    );
  }
  return undefined;
}
