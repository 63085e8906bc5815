import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BrokerControlError } from '../errors.js';

const run = promisify(execFile);

/** A certificate and its private key, as PEM files. */
export interface CertPair {
  readonly cert: string;
  readonly key: string;
}

/** Every file `makeCertificates` writes. Paths are absolute. */
export interface TestCertificates {
  readonly dir: string;
  /** The CA every good certificate is signed by (what clients and servers trust). */
  readonly ca: string;
  /** Server certificate for `localhost` and `127.0.0.1`. */
  readonly server: CertPair;
  /** A client certificate (CN `wharf-client`) signed by the CA, for mutual TLS. */
  readonly client: CertPair;
  /**
   * For `localhost`/`127.0.0.1`, CN `wharf-broker`, usable as server and as client: a Kafka node
   * presents it and also connects with it to its own controller listener (mutual TLS), as the super user.
   */
  readonly broker: CertPair;
  /** Signed by the CA, for `localhost`/`127.0.0.1`/`expired.test`, valid only in 2020. */
  readonly expired: CertPair;
  /** Signed by the CA, for `wrong-host.test` only. */
  readonly wrongHost: CertPair;
  /** A second CA nobody trusts, and a client certificate it signed. */
  readonly untrustedCa: string;
  readonly untrustedClient: CertPair;
}

async function openssl(dir: string, args: readonly string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir, timeout: 30_000 });
  } catch (cause) {
    const stderr = String((cause as { stderr?: unknown }).stderr ?? '').trim();
    throw new BrokerControlError(`openssl ${args[0]} failed: ${stderr || (cause as Error).message}`, { cause });
  }
}

// P-256 keys: made in milliseconds (RSA 2048 takes about a second each on a loaded machine).
const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function makeCa(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  await openssl(dir, ['req', '-x509', ...KEY, '-keyout', key, '-out', cert, '-days', '30', '-subj', `/CN=${name}`]);
  return { cert, key };
}

/**
 * One certificate signed by `ca`. `openssl ca` (not `x509 -req`) because only it takes explicit
 * start and end dates on OpenSSL 3.0, which the expired certificate needs.
 */
async function sign(
  dir: string,
  ca: { cert: string; key: string },
  name: string,
  options: {
    cn: string;
    san?: string;
    usage: 'serverAuth' | 'clientAuth' | 'serverAuth,clientAuth';
    dates?: [string, string];
  },
): Promise<CertPair> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.pem`);
  await openssl(dir, ['req', ...KEY, '-keyout', key, '-out', csr, '-subj', `/CN=${options.cn}`]);
  const db = join(dir, `${name}.db`);
  mkdirSync(db, { recursive: true });
  writeFileSync(join(db, 'index.txt'), '');
  writeFileSync(join(db, 'serial'), `${randomBytes(8).toString('hex')}\n`);
  const config = join(dir, `${name}.cnf`);
  writeFileSync(
    config,
    [
      '[ca]',
      'default_ca = wharf',
      '[wharf]',
      `database = ${join(db, 'index.txt')}`,
      `new_certs_dir = ${db}`,
      `serial = ${join(db, 'serial')}`,
      'default_md = sha256',
      'policy = any',
      'copy_extensions = none',
      'unique_subject = no',
      '[any]',
      'commonName = supplied',
      '[ext]',
      'basicConstraints = CA:FALSE',
      'keyUsage = digitalSignature, keyEncipherment',
      `extendedKeyUsage = ${options.usage}`,
      ...(options.san ? [`subjectAltName = ${options.san}`] : []),
      '',
    ].join('\n'),
  );
  const [start, end] = options.dates ?? [];
  await openssl(dir, [
    'ca',
    '-batch',
    '-config',
    config,
    '-extensions',
    'ext',
    '-cert',
    ca.cert,
    '-keyfile',
    ca.key,
    '-in',
    csr,
    '-out',
    cert,
    '-notext',
    ...(start && end ? ['-startdate', start, '-enddate', end] : ['-days', '30']),
  ]);
  return { cert, key };
}

/**
 * Makes a test PKI in `dir` with openssl: a CA, a server certificate for localhost/127.0.0.1, a
 * client certificate, and the bad ones the negative tests need (expired, wrong host name, signed
 * by an untrusted CA). Keys are unencrypted and readable only by this user.
 */
export async function makeCertificates(dir: string): Promise<TestCertificates> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await makeCa(dir, 'ca');
  const untrusted = await makeCa(dir, 'untrusted-ca');
  const [server, client, broker, expired, wrongHost, untrustedClient] = await Promise.all([
    sign(dir, ca, 'server', { cn: 'localhost', san: 'DNS:localhost,IP:127.0.0.1', usage: 'serverAuth' }),
    sign(dir, ca, 'client', { cn: 'wharf-client', usage: 'clientAuth' }),
    sign(dir, ca, 'broker', { cn: 'wharf-broker', san: 'DNS:localhost,IP:127.0.0.1', usage: 'serverAuth,clientAuth' }),
    sign(dir, ca, 'expired', {
      cn: 'localhost',
      san: 'DNS:localhost,DNS:expired.test,IP:127.0.0.1',
      usage: 'serverAuth,clientAuth',
      dates: ['20200101000000Z', '20200102000000Z'],
    }),
    sign(dir, ca, 'wrong-host', { cn: 'wrong-host.test', san: 'DNS:wrong-host.test', usage: 'serverAuth' }),
    sign(dir, untrusted, 'untrusted-client', { cn: 'wharf-client', usage: 'clientAuth' }),
  ]);
  return { dir, ca: ca.cert, server, client, broker, expired, wrongHost, untrustedCa: untrusted.cert, untrustedClient };
}
